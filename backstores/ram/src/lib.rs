//! A ustgt block store in memory, anonymous or persistent.
//!
//! * [`RamStore::new`]: anonymous memory, a memfd sized with `set_len`: pages are allocated on
//!   first write, shared safely between threads through positional I/O (the `store-file`
//!   engine), and given back to the system by trim (hole punching). Nothing survives the process.
//! * [`RamStore::open_file`]: a `MAP_SHARED` mapping of a file, so the data survives a restart
//!   (and, once flushed, a crash). The file is created when absent (a size is required then),
//!   grown when a larger size is given, and always fully preallocated with `posix_fallocate`, so a
//!   full disk fails the open instead of raising SIGBUS on a later write fault. Reads and writes
//!   are copies into and out of the mapping; FUA writes msync the pages they touched and flush
//!   msyncs the whole mapping (`MS_SYNC`). With `lock` the mapping is mlocked (it needs an
//!   RLIMIT_MEMLOCK at least as large as the store). Trim writes zeroes instead of punching holes
//!   (a hole would bring the SIGBUS risk back), so UNMAP is not advertised (`trim` is false).
//!   After an msync fails the store is poisoned: later writes and flushes fail with EIO, reads
//!   keep working (a later msync that succeeds proves nothing about the pages the kernel
//!   dropped). Truncating the file under a running server is not supported (reads of the lost
//!   part would fault).
#![deny(unsafe_code)]

mod persistent;

use std::io;
use std::path::Path;

use backstore::{BlockStore, Capabilities, Extent, Geometry};
use store_file::FileStore;

use persistent::{MapOptions, MappedStore};

#[derive(Debug)]
enum Inner {
    Anonymous(FileStore),
    Mapped(MappedStore),
}

/// A block store in RAM: anonymous, or a persistent mapping of a file.
#[derive(Debug)]
pub struct RamStore {
    inner: Inner,
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
        Ok(RamStore {
            inner: Inner::Anonymous(inner),
        })
    }

    /// Opens a persistent RAM store over `path` (see the crate docs). `size` is required when
    /// the file does not exist, grows (and preallocates) a smaller file, and must not be smaller
    /// than an existing file; without it the file's length is the size. `lock` mlocks the
    /// mapping; a too low RLIMIT_MEMLOCK is reported with the limit and how to raise it.
    pub fn open_file(
        path: impl AsRef<Path>,
        size: Option<u64>,
        block_size: u32,
        read_only: bool,
        lock: bool,
    ) -> io::Result<RamStore> {
        let opts = MapOptions {
            size,
            block_size,
            read_only,
            lock,
        };
        let inner = MappedStore::open(path.as_ref(), &opts)?;
        Ok(RamStore {
            inner: Inner::Mapped(inner),
        })
    }

    /// True once a flush (msync) of a persistent store has failed; always false when anonymous.
    pub fn is_poisoned(&self) -> bool {
        match &self.inner {
            Inner::Anonymous(_) => false,
            Inner::Mapped(m) => m.is_poisoned(),
        }
    }

    fn store(&self) -> &dyn BlockStore {
        match &self.inner {
            Inner::Anonymous(f) => f,
            Inner::Mapped(m) => m,
        }
    }
}

impl BlockStore for RamStore {
    fn describe(&self) -> String {
        match &self.inner {
            Inner::Anonymous(f) => {
                let g = f.geometry();
                format!("ram:{}x{}", g.num_blocks, g.block_size)
            }
            Inner::Mapped(m) => m.describe(),
        }
    }

    fn geometry(&self) -> Geometry {
        self.store().geometry()
    }

    fn capabilities(&self) -> Capabilities {
        self.store().capabilities()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.store().read(offset, buf)
    }

    fn write(&self, offset: u64, buf: &[u8], fua: bool) -> io::Result<()> {
        self.store().write(offset, buf, fua)
    }

    fn flush(&self) -> io::Result<()> {
        self.store().flush()
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.store().trim(offset, len)
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.store().write_zeroes(offset, len)
    }

    fn extents(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        self.store().extents(offset, len)
    }
}

#[cfg(test)]
mod tests;
