//! The persistent RAM store: a shared mapping of a preallocated file.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use backstore::{BlockStore, Capabilities, Geometry};

use store_file::map::{self, Mapping};

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// A store whose bytes live in a `MAP_SHARED` mapping of a file.
#[derive(Debug)]
pub(crate) struct MappedStore {
    map: Mapping,
    name: String,
    geometry: Geometry,
    caps: Capabilities,
    poisoned: AtomicBool,
    #[cfg(test)]
    pub(crate) fail_next_sync: AtomicBool,
}

/// How to open a [`MappedStore`].
pub(crate) struct MapOptions {
    pub size: Option<u64>,
    pub block_size: u32,
    pub read_only: bool,
    pub lock: bool,
}

fn open_file(path: &Path, opts: &MapOptions) -> io::Result<File> {
    match OpenOptions::new()
        .read(true)
        .write(!opts.read_only)
        .open(path)
    {
        Err(e) if e.kind() == io::ErrorKind::NotFound && opts.size.is_some() && !opts.read_only => {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)
        }
        other => other,
    }
}

/// The store size from the file length and the requested size (same rules as `store-file`).
fn decide_size(len: u64, opts: &MapOptions) -> io::Result<u64> {
    match opts.size {
        None if len == 0 => Err(invalid(
            "the file is empty (give size= to create or grow it)".into(),
        )),
        None => Ok(len),
        Some(size) if size < len => Err(invalid(format!(
            "the file is {len} bytes, larger than the given size {size} (remove the size to use \
             the whole file)"
        ))),
        Some(size) if size > len && opts.read_only => Err(invalid(format!(
            "the file is {len} bytes, smaller than the given size, and cannot grow read-only"
        ))),
        Some(size) => Ok(size),
    }
}

/// Explains a failed mlock with the current RLIMIT_MEMLOCK and how to raise it.
pub(crate) fn lock_error(e: io::Error, len: usize) -> io::Error {
    let limit = match map::memlock_limit() {
        Some(n) => format!("RLIMIT_MEMLOCK is {n} bytes"),
        None => "RLIMIT_MEMLOCK is unlimited".into(),
    };
    io::Error::new(
        e.kind(),
        format!(
            "cannot lock {len} bytes in memory ({e}); {limit}: raise it (ulimit -l, \
             LimitMEMLOCK= in systemd) or drop the lock option"
        ),
    )
}

impl MappedStore {
    /// Opens (creating when absent and `size` is given) and maps `path`; see the crate docs.
    pub(crate) fn open(path: &Path, opts: &MapOptions) -> io::Result<MappedStore> {
        store_file::check_block_size(opts.block_size)?;
        let file = open_file(path, opts)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(invalid(
                "persistent RAM needs a regular file (use file: for devices)".into(),
            ));
        }
        let size = decide_size(meta.len(), opts)?;
        let bs = u64::from(opts.block_size);
        if size % bs != 0 {
            return Err(invalid(format!(
                "size {size} is not a multiple of the block size {bs}"
            )));
        }
        let len = usize::try_from(size)
            .map_err(|_| invalid(format!("size {size} does not fit in memory")))?;
        if !opts.read_only {
            // Allocate every block now: a full disk fails here, not as SIGBUS on a later write.
            map::preallocate(&file, size)?;
        }
        let map = Mapping::new(&file, len, !opts.read_only)?;
        if opts.lock {
            map.lock().map_err(|e| lock_error(e, len))?;
        }
        Ok(MappedStore {
            map,
            name: format!("ram:{}", path.display()),
            geometry: Geometry {
                block_size: opts.block_size,
                num_blocks: size / bs,
            },
            caps: Capabilities {
                read_only: opts.read_only,
                volatile_cache: true,
                trim: false,
                fast_zeroes: true,
                persistent: true,
                rotational: false,
            },
            poisoned: AtomicBool::new(false),
            #[cfg(test)]
            fail_next_sync: AtomicBool::new(false),
        })
    }

    /// True once an msync has failed: writes and flushes fail with EIO from then on.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    fn check_writable(&self, offset: u64, len: u64) -> io::Result<usize> {
        if self.caps.read_only {
            return Err(errno(libc::EROFS));
        }
        store_file::check_request(self.geometry, offset, len)?;
        if self.is_poisoned() {
            return Err(errno(libc::EIO));
        }
        usize::try_from(len).map_err(|_| errno(libc::EINVAL))
    }

    /// msync of a range, poisoning the store when it fails.
    fn sync(&self, offset: u64, len: usize) -> io::Result<()> {
        if self.is_poisoned() {
            return Err(errno(libc::EIO));
        }
        if let Err(e) = self.msync(offset, len) {
            self.poisoned.store(true, Ordering::Release);
            return Err(e);
        }
        Ok(())
    }

    #[cfg(not(test))]
    fn msync(&self, offset: u64, len: usize) -> io::Result<()> {
        self.map.sync(offset, len)
    }

    /// msync, or an EIO when a test asked for the next one to fail.
    #[cfg(test)]
    fn msync(&self, offset: u64, len: usize) -> io::Result<()> {
        if self.fail_next_sync.swap(false, Ordering::AcqRel) {
            return Err(errno(libc::EIO));
        }
        self.map.sync(offset, len)
    }
}

impl BlockStore for MappedStore {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        store_file::check_request(self.geometry, offset, buf.len() as u64)?;
        self.map.read(offset, buf)
    }

    fn write(&self, offset: u64, buf: &[u8], fua: bool) -> io::Result<()> {
        let len = self.check_writable(offset, buf.len() as u64)?;
        self.map.write(offset, buf)?;
        if fua {
            self.sync(offset, len)?;
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        if self.caps.read_only {
            return Ok(());
        }
        self.sync(0, self.map.len())
    }

    /// Writes zeroes: punching holes would bring back the SIGBUS risk on a full disk.
    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.write_zeroes(offset, len)
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        let n = self.check_writable(offset, len)?;
        self.map.zero(offset, n)
    }
}
