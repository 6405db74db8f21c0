//! The few Linux system calls `std` does not wrap: fallocate modes, SEEK_DATA/SEEK_HOLE,
//! memfd_create and fstatfs, and the aligned buffers of `O_DIRECT`. With `map.rs`, the only
//! places of the crate with `unsafe` blocks.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Which fallocate(2) operation to perform; both keep the file size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fallocate {
    /// Deallocate the range (it reads as zeroes afterwards).
    PunchHole,
    /// Make the range read as zeroes, keeping it allocated.
    ZeroRange,
}

fn to_off(value: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(value).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))
}

/// Calls fallocate(2) on `file` over `[offset, offset + len)`.
pub(crate) fn fallocate(file: &File, op: Fallocate, offset: u64, len: u64) -> io::Result<()> {
    let mode = match op {
        Fallocate::PunchHole => libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        Fallocate::ZeroRange => libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
    };
    let (off, len) = (to_off(offset)?, to_off(len)?);
    loop {
        // SAFETY: fallocate takes no pointers; the descriptor is owned by `file`, which outlives
        // the call, and the kernel validates mode, offset and length.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), mode, off, len) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// True when an error from fallocate or lseek means "this file system cannot do that".
pub(crate) fn is_unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
    )
}

fn lseek(file: &File, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let off = to_off(offset)?;
    // SAFETY: lseek takes no pointers; the descriptor is owned by `file`, which outlives the
    // call. Moving the file position is harmless: all I/O of the crate is positional.
    let rc = unsafe { libc::lseek(file.as_raw_fd(), off, whence) };
    if rc >= 0 {
        return Ok(Some(rc as u64));
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENXIO) {
        Ok(None)
    } else {
        Err(err)
    }
}

/// The first data offset at or after `offset`, or `None` when only a hole follows.
pub(crate) fn seek_data(file: &File, offset: u64) -> io::Result<Option<u64>> {
    lseek(file, offset, libc::SEEK_DATA)
}

/// The first hole offset at or after `offset` (the end of the file counts as a hole).
pub(crate) fn seek_hole(file: &File, offset: u64) -> io::Result<Option<u64>> {
    lseek(file, offset, libc::SEEK_HOLE)
}

/// Creates an anonymous, memory-backed file (memfd_create(2)) named `name` for diagnostics.
pub(crate) fn memfd(name: &str) -> io::Result<File> {
    let cname = CString::new(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "memfd name contains a NUL byte",
        )
    })?;
    // SAFETY: `cname` is a valid NUL-terminated string that lives across the call; the kernel
    // copies it and keeps no reference.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a fresh descriptor that nothing else owns, so ownership can
    // be handed to `OwnedFd`, which closes it exactly once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(File::from(owned))
}

/// Alignment of every `O_DIRECT` transfer buffer: the largest logical sector size in use.
pub(crate) const DIRECT_ALIGN: usize = 4096;

/// True when `buf` starts on a [`DIRECT_ALIGN`] boundary.
pub(crate) fn is_aligned(buf: &[u8]) -> bool {
    (buf.as_ptr() as usize) % DIRECT_ALIGN == 0
}

/// A zero-filled heap buffer aligned to [`DIRECT_ALIGN`], for `O_DIRECT` transfers.
pub(crate) struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
    len: usize,
}

impl AlignedBuf {
    /// Allocates `len` zero bytes (at least one byte is reserved, so `len` may be zero).
    pub(crate) fn zeroed(len: usize) -> io::Result<AlignedBuf> {
        let layout = std::alloc::Layout::from_size_align(len.max(1), DIRECT_ALIGN)
            .map_err(|_| io::Error::from_raw_os_error(libc::ENOMEM))?;
        // SAFETY: the layout has a non-zero size (len.max(1)) and a valid power-of-two alignment.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = std::ptr::NonNull::new(raw)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(AlignedBuf { ptr, layout, len })
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` points to an allocation of at least `len` initialised (zeroed) bytes that
        // lives as long as `self`; the shared borrow of `self` prevents concurrent mutation.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and the exclusive borrow of `self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `alloc_zeroed` with exactly `layout` and is freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// True when `file` lives in shared memory (tmpfs, `/dev/shm`, a memfd).
pub(crate) fn is_shmem(file: &File) -> bool {
    const TMPFS_MAGIC: libc::c_long = 0x0102_1994;
    // SAFETY: `statfs` is plain old data, so all-zero is a valid value to overwrite.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable statfs for the duration of the call; the descriptor is
    // owned by `file`.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) };
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as libc::c_long;
    rc == 0 && magic == TMPFS_MAGIC
}
