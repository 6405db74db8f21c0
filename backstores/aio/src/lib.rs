//! A ustgt block store over a file or block device driven by io_uring.
//!
//! Every event loop opens its own [`IoQueue`] on the store ([`BlockStore::open_queue`]): one
//! ring per loop per LUN, with `queue_depth` operations in flight, a pool of registered (fixed)
//! buffers, and an eventfd the loop polls for completions. READ and WRITE go through the ring;
//! FUA writes are linked to an `fdatasync` (IORING_OP_FSYNC with DATASYNC); flushes are one
//! `fdatasync`. The synchronous [`BlockStore`] methods remain available (pread/pwrite through
//! [`store_file::FileStore`], with O_DIRECT too when `direct` is set) for the commands that do
//! not use the queue (WRITE SAME, UNMAP, COMPARE AND WRITE, VERIFY...).
//!
//! Where io_uring cannot be set up (old kernel, seccomp, `kernel.io_uring_disabled`), the store
//! still opens; [`BlockStore::open_queue`] returns `None`, a warning is logged once, and the
//! store behaves like the file store.
//!
//! Durability: after a failed `fdatasync` the store is poisoned: later writes and flushes fail
//! with EIO (Linux may have dropped the dirty pages; a later successful fsync proves nothing).
//! Size rules are those of [`store_file::FileStore::open`].
#![deny(unsafe_code)]

mod buf;
#[allow(unsafe_code)]
mod ring;
#[allow(unsafe_code)]
mod sys;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use backstore::{BlockStore, Capabilities, Extent, Geometry, IoQueue};
use store_file::{FileOptions, FileStore};

pub use ring::AioQueue;

/// Default number of operations in flight per queue.
pub const DEFAULT_QUEUE_DEPTH: u32 = 128;
/// Largest accepted queue depth (the LUNSPEC grammar's limit).
pub const MAX_QUEUE_DEPTH: u32 = 32768;
/// Operations one ring keeps in flight at most: a slot may need two entries (a FUA write and
/// its fdatasync) and a ring has at most 32768; deeper queues are clamped to this.
pub const MAX_RING_SLOTS: u32 = 16384;

/// How to open an [`AioStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AioOptions {
    /// Store size in bytes: required to create a file, grows a smaller file, must match a device.
    pub size: Option<u64>,
    /// Logical block size: 512 or 4096.
    pub block_size: u32,
    /// Open read-only and refuse writes with EROFS.
    pub read_only: bool,
    /// Create the file when it does not exist (needs `size`).
    pub create: bool,
    /// Use O_DIRECT for the queued I/O (bypassing the page cache).
    pub direct: bool,
    /// Operations in flight per queue (1..=32768; more than 16384 is clamped).
    pub queue_depth: u32,
}

impl Default for AioOptions {
    fn default() -> Self {
        AioOptions {
            size: None,
            block_size: 512,
            read_only: false,
            create: false,
            direct: false,
            queue_depth: DEFAULT_QUEUE_DEPTH,
        }
    }
}

/// What the store and all its queues share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The file the rings do I/O on (O_DIRECT when asked).
    pub ring_file: File,
    /// A buffered descriptor for finishing short transfers synchronously.
    pub plain_file: File,
    pub geometry: Geometry,
    pub caps: Capabilities,
    pub direct: bool,
    pub queue_depth: u32,
    /// Set after a failed fdatasync: writes and flushes fail with EIO from then on.
    pub poisoned: AtomicBool,
}

impl Shared {
    pub(crate) fn poison(&self) {
        if !self.poisoned.swap(true, Ordering::SeqCst) {
            log::error!("aio: fdatasync failed: later writes and flushes fail with EIO");
        }
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    /// True when a flush must reach the disk.
    pub(crate) fn needs_sync(&self) -> bool {
        self.caps.volatile_cache && !self.caps.read_only
    }
}

/// A block store over a file or block device, with io_uring queues for the event loops.
#[derive(Debug)]
pub struct AioStore {
    sync: FileStore,
    shared: Arc<Shared>,
    name: String,
    path: PathBuf,
    /// Why io_uring is unavailable, when it is.
    uring_error: Option<String>,
}

/// The warning about a missing io_uring is logged once per process.
static WARNED: AtomicBool = AtomicBool::new(false);

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl AioStore {
    /// Opens (or creates) the store; size rules are those of the file store. Fails only for the
    /// reasons [`FileStore::open`] fails or when `queue_depth` is out of range; a missing
    /// io_uring only disables the queues.
    pub fn open(path: impl AsRef<Path>, opts: AioOptions) -> io::Result<AioStore> {
        let path = path.as_ref();
        if opts.queue_depth == 0 || opts.queue_depth > MAX_QUEUE_DEPTH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("queue depth must be 1..={MAX_QUEUE_DEPTH}"),
            ));
        }
        let fopts = FileOptions {
            size: opts.size,
            block_size: opts.block_size,
            read_only: opts.read_only,
            create: opts.create,
            direct: opts.direct,
            map: false,
        };
        let sync = FileStore::open(path, fopts)?;
        let reopen = |direct: bool| {
            let mut oo = OpenOptions::new();
            oo.read(true).write(!opts.read_only);
            if direct {
                oo.custom_flags(libc::O_DIRECT);
            }
            oo.open(path)
        };
        let shared = Shared {
            ring_file: reopen(opts.direct)?,
            plain_file: reopen(false)?,
            geometry: sync.geometry(),
            caps: sync.capabilities(),
            direct: opts.direct,
            queue_depth: opts.queue_depth.min(MAX_RING_SLOTS),
            poisoned: AtomicBool::new(false),
        };
        let uring_error = ring::probe().err().map(|e| e.to_string());
        if let Some(e) = &uring_error {
            if !WARNED.swap(true, Ordering::SeqCst) {
                log::warn!(
                    "aio: io_uring unavailable ({e}): falling back to synchronous pread/pwrite"
                );
            }
        }
        Ok(AioStore {
            sync,
            shared: Arc::new(shared),
            name: format!("aio:{}", path.display()),
            path: path.to_path_buf(),
            uring_error,
        })
    }

    /// The path the store was opened on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when queues can be opened (io_uring works here).
    pub fn uring_available(&self) -> bool {
        self.uring_error.is_none()
    }

    /// True after a failed fdatasync (writes and flushes fail with EIO).
    pub fn is_poisoned(&self) -> bool {
        self.shared.is_poisoned()
    }

    /// Opens an io_uring queue directly (what [`BlockStore::open_queue`] boxes).
    pub fn queue(&self) -> io::Result<AioQueue> {
        AioQueue::new(self.shared.clone())
    }

    fn check_poison(&self) -> io::Result<()> {
        if self.shared.is_poisoned() {
            return Err(errno(libc::EIO));
        }
        Ok(())
    }

    fn sync_now(&self) -> io::Result<()> {
        self.check_poison()?;
        self.sync.flush().inspect_err(|_| self.shared.poison())
    }

    #[cfg(test)]
    pub(crate) fn disable_uring(&mut self) {
        self.uring_error = Some("disabled by test".into());
    }
}

impl BlockStore for AioStore {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn geometry(&self) -> Geometry {
        self.shared.geometry
    }

    fn capabilities(&self) -> Capabilities {
        self.shared.caps
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.sync.read(offset, buf)
    }

    fn write(&self, offset: u64, buf: &[u8], fua: bool) -> io::Result<()> {
        self.check_poison()?;
        self.sync.write(offset, buf, false)?;
        if fua {
            self.sync_now()?;
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.sync_now()
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check_poison()?;
        self.sync.trim(offset, len)
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check_poison()?;
        self.sync.write_zeroes(offset, len)
    }

    fn extents(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        self.sync.extents(offset, len)
    }

    fn open_queue(&self) -> Option<io::Result<Box<dyn IoQueue>>> {
        if self.uring_error.is_some() {
            return None;
        }
        Some(self.queue().map(|q| Box::new(q) as Box<dyn IoQueue>))
    }
}

#[cfg(test)]
mod tests;
