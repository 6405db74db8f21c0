//! A ustgt block store in anonymous memory.
//!
//! The memory is a memfd sized with `set_len`: pages are allocated on first write, shared safely
//! between threads through positional I/O (the `store-file` engine), and given back to the system
//! by trim (hole punching). Nothing survives the process.
#![forbid(unsafe_code)]

use std::io;

use backstore::{BlockStore, Capabilities, Extent, Geometry};
use store_file::FileStore;

/// A block store in RAM.
#[derive(Debug)]
pub struct RamStore {
    inner: FileStore,
}

impl RamStore {
    /// Creates a zero-filled store of `size_bytes` (a non-zero multiple of `block_size`, which is
    /// 512 or 4096). A read-only RAM store is all zeroes forever.
    pub fn new(size_bytes: u64, block_size: u32, read_only: bool) -> io::Result<RamStore> {
        store_file::check_block_size(block_size)?;
        if size_bytes == 0 || size_bytes % u64::from(block_size) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "size {size_bytes} is not a non-zero multiple of the block size {block_size}"
                ),
            ));
        }
        let file = store_file::anonymous_file("ustgt-ram")?;
        file.set_len(size_bytes)?;
        let caps = Capabilities {
            read_only,
            volatile_cache: false,
            trim: true,
            fast_zeroes: true,
            persistent: false,
            rotational: false,
        };
        let inner =
            FileStore::from_file(file, "ram", block_size, read_only)?.with_capabilities(caps);
        Ok(RamStore { inner })
    }
}

impl BlockStore for RamStore {
    fn describe(&self) -> String {
        let g = self.inner.geometry();
        format!("ram:{}x{}", g.num_blocks, g.block_size)
    }

    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, buf)
    }

    fn write(&self, offset: u64, buf: &[u8], fua: bool) -> io::Result<()> {
        self.inner.write(offset, buf, fua)
    }

    fn flush(&self) -> io::Result<()> {
        self.inner.flush()
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.trim(offset, len)
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.write_zeroes(offset, len)
    }

    fn extents(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        self.inner.extents(offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backstore::testsuite;

    #[test]
    fn conformance_512() {
        testsuite::run_all(&|| Box::new(RamStore::new(1 << 20, 512, false).expect("ram")));
    }

    #[test]
    fn conformance_4096() {
        testsuite::run_all(&|| Box::new(RamStore::new(1 << 20, 4096, false).expect("ram")));
    }

    #[test]
    fn read_only_store() {
        let s = RamStore::new(64 * 512, 512, true).expect("ram");
        testsuite::check_read_only(&s);
        let err = s.write(0, &[1; 512], false).expect_err("write");
        assert_eq!(err.raw_os_error(), Some(30), "EROFS");
    }

    #[test]
    fn capabilities_and_describe() {
        let s = RamStore::new(1 << 20, 4096, false).expect("ram");
        assert_eq!(
            s.capabilities(),
            Capabilities {
                read_only: false,
                volatile_cache: false,
                trim: true,
                fast_zeroes: true,
                persistent: false,
                rotational: false
            }
        );
        assert_eq!(
            s.geometry(),
            Geometry {
                block_size: 4096,
                num_blocks: 256
            }
        );
        assert_eq!(s.describe(), "ram:256x4096");
    }

    #[test]
    fn large_store_is_lazy() {
        // 64 GiB of address space costs nothing until written.
        let s = RamStore::new(64 << 30, 4096, false).expect("ram");
        s.write((64 << 30) - 4096, &[3; 4096], true)
            .expect("write last block");
        let mut buf = [0u8; 4096];
        s.read((64 << 30) - 4096, &mut buf).expect("read");
        assert_eq!(buf, [3; 4096]);
        s.trim((64 << 30) - 4096, 4096).expect("trim");
        let list = s.extents((64 << 30) - 8192, 8192).expect("extents");
        assert_eq!(
            list,
            vec![Extent {
                offset: (64 << 30) - 8192,
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
            (4096 + 512, 4096, "block size 4096"),
            (4096, 1024, "block size 1024"),
        ] {
            let err = RamStore::new(size, bs, false).expect_err("bad size");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
    }
}
