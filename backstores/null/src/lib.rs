//! A ustgt block store that stores nothing (like SCST's NULLIO): writes are accepted and
//! discarded, reads return zeroes, flush and trim do nothing. It costs almost nothing, so it
//! measures the target itself. Requests are still validated like every store's (whole blocks
//! inside the store, EINVAL otherwise), so the SCSI layer sees the same behaviour.
#![forbid(unsafe_code)]

use std::io;

use backstore::{BlockStore, Capabilities, Extent, Geometry};

/// A store that discards writes and reads zeroes.
#[derive(Debug, Clone)]
pub struct NullStore {
    geometry: Geometry,
    read_only: bool,
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

impl NullStore {
    /// A writable null store of `size` bytes (a non-zero multiple of `block_size`, 512 or 4096).
    pub fn new(size: u64, block_size: u32) -> io::Result<NullStore> {
        if block_size != 512 && block_size != 4096 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("block size {block_size} is not supported (use 512 or 4096)"),
            ));
        }
        if size == 0 || size % u64::from(block_size) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("size {size} is not a non-zero multiple of the block size {block_size}"),
            ));
        }
        Ok(NullStore {
            geometry: Geometry {
                block_size,
                num_blocks: size / u64::from(block_size),
            },
            read_only: false,
        })
    }

    /// The same store, refusing writes with EROFS when `read_only`.
    pub fn read_only(mut self, read_only: bool) -> NullStore {
        self.read_only = read_only;
        self
    }

    fn check(&self, offset: u64, len: u64) -> io::Result<()> {
        let bs = u64::from(self.geometry.block_size);
        match offset.checked_add(len) {
            Some(end) if offset % bs == 0 && len % bs == 0 && end <= self.geometry.size_bytes() => {
                Ok(())
            }
            _ => Err(einval()),
        }
    }

    fn check_write(&self, offset: u64, len: u64) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::from_raw_os_error(libc::EROFS));
        }
        self.check(offset, len)
    }
}

impl BlockStore for NullStore {
    fn describe(&self) -> String {
        format!(
            "null:{}x{}",
            self.geometry.num_blocks, self.geometry.block_size
        )
    }

    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_only: self.read_only,
            volatile_cache: false,
            trim: true,
            fast_zeroes: true,
            persistent: false,
            rotational: false,
        }
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check(offset, buf.len() as u64)?;
        buf.fill(0);
        Ok(())
    }

    fn write(&self, offset: u64, buf: &[u8], _fua: bool) -> io::Result<()> {
        self.check_write(offset, buf.len() as u64)
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check_write(offset, len)
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check_write(offset, len)
    }

    /// Everything reads as zeroes, and nothing is allocated: one hole.
    fn extents(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        self.check(offset, len)?;
        Ok(vec![Extent {
            offset,
            length: len,
            hole: true,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backstore::testsuite;

    /// The suite minus the checks that read back written data, which a null store cannot do:
    /// read_after_write, first_and_last_block, fua_write, flush (reads back after flushing),
    /// write_zeroes and trim (compare neighbours with written data), concurrent_writers and
    /// concurrent_mixed (verify written patterns), and extents (requires written blocks to be
    /// reported as data; here nothing is ever allocated, so all is one hole). `check_discarding` covers the same calls
    /// (plain and FUA writes, flush, trim, write_zeroes, concurrency) for success and zero reads.
    const NEEDS_READ_BACK: &[&str] = &[
        "read_after_write",
        "first_and_last_block",
        "fua_write",
        "flush",
        "write_zeroes",
        "trim",
        "concurrent_writers",
        "concurrent_mixed",
        "extents",
    ];

    #[test]
    fn conformance_without_read_back() {
        for bs in [512u32, 4096] {
            let make =
                || -> Box<dyn BlockStore> { Box::new(NullStore::new(1 << 20, bs).expect("null")) };
            testsuite::run_checks(&make, NEEDS_READ_BACK);
            testsuite::check_discarding(&NullStore::new(1 << 20, bs).expect("null"));
        }
    }

    #[test]
    fn read_only_null() {
        let s = NullStore::new(1 << 20, 512).expect("null").read_only(true);
        testsuite::check_read_only(&s);
        let e = s.write(0, &[1; 512], false).expect_err("write");
        assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    }

    #[test]
    fn reads_fill_with_zeroes_and_writes_vanish() {
        let s = NullStore::new(1 << 30, 4096).expect("null");
        s.write(4096, &[0xFF; 8192], true).expect("write");
        let mut buf = vec![0xAAu8; 8192];
        s.read(4096, &mut buf).expect("read");
        assert!(buf.iter().all(|&b| b == 0));
        assert_eq!(s.describe(), "null:262144x4096");
        let caps = s.capabilities();
        assert!(caps.trim && !caps.persistent && !caps.volatile_cache);
        assert_eq!(
            s.extents(0, 8192).expect("extents"),
            vec![Extent {
                offset: 0,
                length: 8192,
                hole: true
            }]
        );
    }

    #[test]
    fn bad_sizes_are_refused() {
        for (size, bs, needle) in [
            (0u64, 512u32, "size 0"),
            (1000, 512, "size 1000"),
            (4096, 1024, "block size 1024"),
        ] {
            let e = NullStore::new(size, bs).expect_err("bad");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn bad_requests_are_einval() {
        let s = NullStore::new(4096, 512).expect("null");
        let mut buf = [0u8; 512];
        for (off, what) in [
            (4096u64, "end"),
            (100, "unaligned"),
            (u64::MAX - 511, "wrap"),
        ] {
            let e = s.read(off, &mut buf).expect_err(what);
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{what}");
        }
        assert!(s.write(0, &[0; 100], false).is_err());
        assert!(s.trim(512, 1).is_err());
    }
}
