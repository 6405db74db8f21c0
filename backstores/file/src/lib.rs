//! A ustgt block store over a regular file or a block device.
//!
//! All I/O is positional (`pread`/`pwrite` through [`FileExt`]), so one open file serves every
//! thread at once without locking. FUA writes and flushes call `fdatasync`. Trim punches holes and
//! write-zeroes uses `FALLOC_FL_ZERO_RANGE`; both fall back to other means when the file system
//! cannot do them. Allocation is reported from `SEEK_DATA`/`SEEK_HOLE`.
//!
//! A regular file (or memfd) in shared memory (tmpfs, `/dev/shm`) is read and written through a
//! shared mapping wherever its pages are known to be allocated, which saves a system call and a
//! page-cache lookup per request; holes keep positional I/O, so a full tmpfs still gives ENOSPC
//! and never SIGBUS (see `shm.rs`). Not with `direct`.
//!
//! Errors keep their errno, so the SCSI engine can map EIO, ENOSPC, EROFS onto sense data.
//! Requests that are not whole blocks inside the store fail with EINVAL.
//!
//! With [`FileOptions::direct`] the file is opened with `O_DIRECT` (no page cache): every
//! transfer goes through a buffer aligned to 4096 bytes (the caller's buffer when it already is,
//! a bounce buffer otherwise). Opening probes one read so that a file system without `O_DIRECT`
//! (tmpfs on older kernels) or a device whose logical sector is larger than the block size is
//! refused at start with a clear message rather than failing every later request.
//!
//! Durability: after an `fdatasync` fails the store is *poisoned*: every later write and flush
//! fails with EIO while reads keep working. Linux may drop the dirty pages of a failed writeback
//! and clear the error, so a later `fdatasync` that succeeds proves nothing about earlier writes;
//! the only honest answer is to refuse to acknowledge anything as durable again (restart the
//! server, after checking the medium, to clear it).
//!
//! Size rules of [`FileStore::open`]:
//! - absent file: created (with [`FileOptions::create`]) at the given size; a size is required;
//! - regular file: its length is the store size; a given size larger than the file grows it
//!   (not when read-only), a given size smaller than the file is an error (no silent truncation,
//!   no partial export);
//! - block device: its size; a given size must equal it;
//! - the size must be a non-zero multiple of the block size.
#![deny(unsafe_code)]

mod extents;
#[allow(unsafe_code)]
pub mod map;
mod shm;
#[allow(unsafe_code)]
mod stream;
#[allow(unsafe_code)]
mod sys;

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use backstore::{BlockStore, Capabilities, Extent, Geometry};

use sys::Fallocate;

/// How to open a [`FileStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOptions {
    /// Store size in bytes: required to create a file, grows a smaller file, must match a device.
    pub size: Option<u64>,
    /// Logical block size: 512 or 4096.
    pub block_size: u32,
    /// Open read-only and refuse writes with EROFS.
    pub read_only: bool,
    /// Create the file when it does not exist (needs `size`).
    pub create: bool,
    /// Open with `O_DIRECT`, bypassing the page cache.
    pub direct: bool,
    /// Access a file in shared memory through a mapping (see the crate docs); off: always
    /// `pread`/`pwrite`.
    pub map: bool,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            size: None,
            block_size: 512,
            read_only: false,
            create: false,
            direct: false,
            map: true,
        }
    }
}

/// A block store over an open file: a regular file, a block device or a memfd.
#[derive(Debug)]
pub struct FileStore {
    file: File,
    name: String,
    geometry: Geometry,
    caps: Capabilities,
    punch_hole: AtomicBool,
    zero_range: AtomicBool,
    seek_data: AtomicBool,
    direct: bool,
    /// The mapped engine, for a file in shared memory.
    shm: Option<shm::ShmEngine>,
    poisoned: AtomicBool,
    #[cfg(test)]
    fail_next_sync: AtomicBool,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// Checks that `block_size` is one the SCSI engine supports (512 or 4096).
pub fn check_block_size(block_size: u32) -> io::Result<()> {
    match block_size {
        512 | 4096 => Ok(()),
        other => Err(invalid(format!(
            "block size {other} is not supported (use 512 or 4096)"
        ))),
    }
}

/// Checks that `[offset, offset + len)` is whole blocks inside the store: EINVAL otherwise.
pub fn check_request(geometry: Geometry, offset: u64, len: u64) -> io::Result<()> {
    let bs = u64::from(geometry.block_size);
    let aligned = bs != 0 && offset % bs == 0 && len % bs == 0;
    match offset.checked_add(len) {
        Some(end) if aligned && end <= geometry.size_bytes() => Ok(()),
        _ => Err(errno(libc::EINVAL)),
    }
}

/// Explains an EINVAL from opening with `O_DIRECT` (a file system without direct I/O).
fn direct_open_error(e: io::Error, opts: &FileOptions) -> io::Error {
    if opts.direct && e.raw_os_error() == Some(libc::EINVAL) {
        return invalid(format!(
            "the file system does not support O_DIRECT ({e}); drop the direct option \
             (tmpfs such as /dev/shm has no direct I/O on older kernels)"
        ));
    }
    e
}

fn geometry_for(size: u64, block_size: u32) -> io::Result<Geometry> {
    check_block_size(block_size)?;
    if size == 0 {
        return Err(invalid("size is zero".into()));
    }
    if size % u64::from(block_size) != 0 {
        return Err(invalid(format!(
            "size {size} is not a multiple of the block size {block_size}"
        )));
    }
    Ok(Geometry {
        block_size,
        num_blocks: size / u64::from(block_size),
    })
}

/// Capabilities of a store over a regular file.
fn file_capabilities(read_only: bool) -> Capabilities {
    Capabilities {
        read_only,
        volatile_cache: true,
        trim: true,
        fast_zeroes: true,
        persistent: true,
        rotational: false,
    }
}

/// Whether the block device `rdev` is rotational, from sysfs (false when unknown). A partition
/// has no queue of its own, so its parent disk's is used.
fn is_rotational(rdev: u64) -> bool {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    ["queue/rotational", "../queue/rotational"]
        .iter()
        .any(|rel| {
            let path = format!("/sys/dev/block/{major}:{minor}/{rel}");
            std::fs::read_to_string(path).is_ok_and(|s| s.trim() == "1")
        })
}

/// Creates an anonymous memory-backed file (a memfd) named `name`, empty and lazily allocated.
pub fn anonymous_file(name: &str) -> io::Result<File> {
    sys::memfd(name)
}

/// Opens `path`, creating it at `size` when absent and allowed.
fn open_or_create(path: &Path, opts: &FileOptions) -> io::Result<File> {
    let mut oo = OpenOptions::new();
    oo.read(true).write(!opts.read_only);
    if opts.direct {
        oo.custom_flags(libc::O_DIRECT);
    }
    match oo.open(path) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound && opts.create && !opts.read_only => {
            let Some(size) = opts.size else { return Err(e) };
            geometry_for(size, opts.block_size)?;
            let mut create = OpenOptions::new();
            create.read(true).write(true).create_new(true);
            if opts.direct {
                create.custom_flags(libc::O_DIRECT);
            }
            let f = create.open(path)?;
            if let Err(e) = f.set_len(size) {
                // Best effort: do not leave a half-made file behind.
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
            Ok(f)
        }
        Err(e) => Err(e),
    }
}

/// Reconciles the size of a regular file with the requested one, growing it if needed.
fn regular_file_size(file: &File, len: u64, opts: &FileOptions) -> io::Result<u64> {
    match opts.size {
        None if len == 0 => Err(invalid("the file is empty (give a size to grow it)".into())),
        None => Ok(len),
        Some(size) if size == len => Ok(len),
        Some(size) if size < len => Err(invalid(format!(
            "the file is {len} bytes, larger than the given size {size} (remove the size to use \
             the whole file)"
        ))),
        Some(_) if opts.read_only => Err(invalid(format!(
            "the file is {len} bytes, smaller than the given size, and cannot grow read-only"
        ))),
        Some(size) => {
            geometry_for(size, opts.block_size)?;
            file.set_len(size)?;
            Ok(size)
        }
    }
}

impl FileStore {
    /// Opens (or creates) a store over a regular file or block device; see the crate docs for
    /// the size rules. OS errors are returned unchanged (e.g. `NotFound` for a missing file
    /// without `create`/`size`); invalid sizes and block sizes are `InvalidInput`.
    pub fn open(path: impl AsRef<Path>, opts: FileOptions) -> io::Result<FileStore> {
        let path = path.as_ref();
        check_block_size(opts.block_size)?;
        let mut file = open_or_create(path, &opts).map_err(|e| direct_open_error(e, &opts))?;
        let meta = file.metadata()?;
        let ft = meta.file_type();
        let name = format!("file:{}", path.display());
        if ft.is_file() {
            let size = regular_file_size(&file, meta.len(), &opts)?;
            let geometry = geometry_for(size, opts.block_size)?;
            let caps = file_capabilities(opts.read_only);
            Self::build(file, name, geometry, caps)
                .mapped(opts.map)
                .direct(opts.direct)
        } else if ft.is_block_device() {
            let dev = file.seek(SeekFrom::End(0))?;
            if let Some(size) = opts.size.filter(|&s| s != dev) {
                return Err(invalid(format!(
                    "the device is {dev} bytes, not the given {size}"
                )));
            }
            let geometry = geometry_for(dev, opts.block_size)?;
            let caps = Capabilities {
                trim: false,
                fast_zeroes: false,
                rotational: is_rotational(meta.rdev()),
                ..file_capabilities(opts.read_only)
            };
            Self::build(file, name, geometry, caps)
                .mapped(opts.map)
                .direct(opts.direct)
        } else {
            Err(invalid("not a regular file or a block device".into()))
        }
    }

    /// Wraps an already open regular file (e.g. a memfd) as a store of its current length, with
    /// the capabilities of a regular file. `name` is what [`BlockStore::describe`] returns.
    pub fn from_file(
        file: File,
        name: impl Into<String>,
        block_size: u32,
        read_only: bool,
    ) -> io::Result<FileStore> {
        let len = file.metadata()?.len();
        let geometry = geometry_for(len, block_size)?;
        Ok(Self::build(
            file,
            name.into(),
            geometry,
            file_capabilities(read_only),
        ))
    }

    /// Replaces the advertised capabilities (`read_only` is kept from the store). With
    /// `volatile_cache` false, FUA writes and flushes skip `fdatasync`.
    pub fn with_capabilities(mut self, caps: Capabilities) -> FileStore {
        self.caps = Capabilities {
            read_only: self.caps.read_only,
            ..caps
        };
        self
    }

    fn build(file: File, name: String, geometry: Geometry, caps: Capabilities) -> FileStore {
        let shm = shm::ShmEngine::new(&file, geometry.size_bytes(), !caps.read_only);
        FileStore {
            shm,
            file,
            name,
            geometry,
            caps,
            punch_hole: AtomicBool::new(true),
            zero_range: AtomicBool::new(true),
            seek_data: AtomicBool::new(true),
            direct: false,
            poisoned: AtomicBool::new(false),
            #[cfg(test)]
            fail_next_sync: AtomicBool::new(false),
        }
    }

    /// Drops the mapped engine when `map` is false.
    fn mapped(mut self, map: bool) -> FileStore {
        if !map {
            self.shm = None;
        }
        self
    }

    /// Marks the store as opened with `O_DIRECT` and probes that a block-sized aligned read
    /// works, turning the EINVAL of an unsupported combination into a clear error.
    fn direct(mut self, direct: bool) -> io::Result<FileStore> {
        if !direct {
            return Ok(self);
        }
        self.direct = true;
        self.shm = None;
        let bs = self.geometry.block_size;
        let mut probe = sys::AlignedBuf::zeroed(bs as usize)?;
        match self.file.read_exact_at(&mut probe, 0) {
            Ok(()) => Ok(self),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(invalid(format!(
                "{}: O_DIRECT refused a {bs}-byte read: the device or file system needs larger \
                 or differently aligned I/O (try block-size=4096, or drop direct)",
                self.name
            ))),
            Err(e) => Err(e),
        }
    }

    /// True once an `fdatasync` has failed: writes and flushes fail with EIO from then on.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// True when reads and writes go through a shared mapping (a file in shared memory).
    pub fn is_mapped(&self) -> bool {
        self.shm.is_some()
    }

    /// True when the store was opened with `O_DIRECT`.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    fn check_range(&self, offset: u64, len: u64) -> io::Result<()> {
        check_request(self.geometry, offset, len)
    }

    fn check_writable(&self, offset: u64, len: u64) -> io::Result<()> {
        if self.caps.read_only {
            return Err(errno(libc::EROFS));
        }
        self.check_range(offset, len)?;
        if self.is_poisoned() {
            return Err(errno(libc::EIO));
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        if !self.caps.volatile_cache || self.caps.read_only {
            return Ok(());
        }
        if self.is_poisoned() {
            return Err(errno(libc::EIO));
        }
        if let Err(e) = self.sync_data() {
            self.poisoned.store(true, Ordering::Release);
            return Err(e);
        }
        Ok(())
    }

    #[cfg(not(test))]
    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// `fdatasync`, or an EIO when a test asked for the next one to fail.
    #[cfg(test)]
    fn sync_data(&self) -> io::Result<()> {
        if self.fail_next_sync.swap(false, Ordering::AcqRel) {
            return Err(errno(libc::EIO));
        }
        self.file.sync_data()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if let Some(done) = self.shm.as_ref().and_then(|m| m.read(offset, buf)) {
            return done;
        }
        if !self.direct || sys::is_aligned(buf) {
            return self.file.read_exact_at(buf, offset);
        }
        let mut bounce = sys::AlignedBuf::zeroed(buf.len())?;
        self.file.read_exact_at(&mut bounce, offset)?;
        buf.copy_from_slice(&bounce);
        Ok(())
    }

    /// Tries one fallocate mode, remembering when the file system does not support it.
    /// Returns false when the caller must fall back to something else.
    fn try_fallocate(&self, op: Fallocate, offset: u64, len: u64) -> io::Result<bool> {
        let flag = match op {
            Fallocate::PunchHole => &self.punch_hole,
            Fallocate::ZeroRange => &self.zero_range,
        };
        if !flag.load(Ordering::Relaxed) {
            return Ok(false);
        }
        // Mapped copies must not touch the pages a hole frees.
        let _punching = match (op, &self.shm) {
            (Fallocate::PunchHole, Some(m)) => Some(m.forget(offset, len)),
            _ => None,
        };
        match sys::fallocate(&self.file, op, offset, len) {
            Ok(()) => Ok(true),
            Err(e) if sys::is_unsupported(&e) => {
                flag.store(false, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Zeroes a range by writing zero buffers.
    fn zero_by_writes(&self, offset: u64, len: u64) -> io::Result<()> {
        const CHUNK: u64 = 1 << 20;
        let zeroes = vec![0u8; CHUNK.min(len) as usize];
        let mut done = 0;
        while done < len {
            let n = CHUNK.min(len - done);
            self.write_at(offset + done, &zeroes[..n as usize])?;
            done += n;
        }
        Ok(())
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let Some(m) = &self.shm else {
            return self.pwrite_at(offset, buf);
        };
        if let Some(done) = m.write(offset, buf) {
            return done;
        }
        self.pwrite_at(offset, buf)?;
        m.mark(offset, buf.len() as u64);
        Ok(())
    }

    fn pwrite_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let result = if !self.direct || sys::is_aligned(buf) {
            self.file.write_all_at(buf, offset)
        } else {
            let mut bounce = sys::AlignedBuf::zeroed(buf.len())?;
            bounce.copy_from_slice(buf);
            self.file.write_all_at(&bounce, offset)
        };
        result.map_err(|e| match e.kind() {
            // A short write: the file system ran out of room part way.
            io::ErrorKind::WriteZero => errno(libc::ENOSPC),
            _ => e,
        })
    }
}

impl BlockStore for FileStore {
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
        self.check_range(offset, buf.len() as u64)?;
        self.read_at(offset, buf).map_err(|e| match e.kind() {
            // The file shrank under us: report a medium error rather than a protocol one.
            io::ErrorKind::UnexpectedEof => errno(libc::EIO),
            _ => e,
        })
    }

    fn write(&self, offset: u64, buf: &[u8], fua: bool) -> io::Result<()> {
        self.check_writable(offset, buf.len() as u64)?;
        self.write_at(offset, buf)?;
        if fua {
            self.sync()?;
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.sync()
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check_writable(offset, len)?;
        if len == 0 || self.try_fallocate(Fallocate::PunchHole, offset, len)? {
            return Ok(());
        }
        self.zero_by_writes(offset, len)
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check_writable(offset, len)?;
        if len == 0
            || self.try_fallocate(Fallocate::ZeroRange, offset, len)?
            || self.try_fallocate(Fallocate::PunchHole, offset, len)?
        {
            return Ok(());
        }
        self.zero_by_writes(offset, len)
    }

    fn extents(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        self.check_range(offset, len)?;
        let all_data = vec![Extent {
            offset,
            length: len,
            hole: false,
        }];
        if len == 0 || !self.seek_data.load(Ordering::Relaxed) {
            return Ok(all_data);
        }
        let bs = u64::from(self.geometry.block_size);
        match extents::map(&self.file, offset, len, bs) {
            Ok(list) => Ok(list),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) || sys::is_unsupported(&e) => {
                self.seek_data.store(false, Ordering::Relaxed);
                Ok(all_data)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
