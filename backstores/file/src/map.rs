//! A shared memory mapping of a file, and the few system calls around it (mmap, msync, mlock,
//! posix_fallocate, getrlimit), shared by the stores that map files (`ram:PATH`, and this crate's
//! engine for files in shared memory).
//!
//! The mapping is treated like memory shared with other processes: it is only ever accessed by
//! copying bytes in and out through raw pointers, never through Rust references that outlive a
//! call, and every access is bounds-checked against the mapping first.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

/// A `MAP_SHARED` mapping of the first `len` bytes of a file.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: the mapping is plain shared memory owned by this value; all access goes through
// bounds-checked copies (`read`, `write`, `zero`), which are sound from any thread, and the
// kernel calls (msync, mlock, munmap) are thread-safe.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`: no method hands out references into the mapping.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` (non-zero) bytes of `file`, read-write when `writable`.
    pub fn new(file: &File, len: usize, writable: bool) -> io::Result<Mapping> {
        if len == 0 {
            return Err(einval());
        }
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL) cannot alias any Rust object;
        // the descriptor is valid for the call and the mapping stays valid after it is closed.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or_else(einval)?;
        Ok(Mapping { ptr, len, writable })
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a mapping is at least one byte (see [`Mapping::new`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, offset: u64, len: usize) -> io::Result<usize> {
        let start = usize::try_from(offset).map_err(|_| einval())?;
        match start.checked_add(len) {
            Some(end) if end <= self.len => Ok(start),
            _ => Err(einval()),
        }
    }

    fn check_write(&self, offset: u64, len: usize) -> io::Result<usize> {
        if !self.writable {
            return Err(io::Error::from_raw_os_error(libc::EROFS));
        }
        self.check(offset, len)
    }

    /// Copies `buf.len()` bytes at `offset` out of the mapping.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = self.check(offset, buf.len())?;
        // SAFETY: `start + buf.len() <= self.len` was checked, so the source lies inside the
        // live mapping; `buf` is a distinct Rust allocation, so the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(start), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }

    /// Copies `buf` into the mapping at `offset`.
    pub fn write(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let start = self.check_write(offset, buf.len())?;
        // SAFETY: bounds checked as in `read`; the mapping is writable (PROT_WRITE) and `buf`
        // cannot overlap it (a slice into the mapping is never created).
        unsafe { crate::stream::copy_to_medium(self.ptr.as_ptr().add(start), buf) };
        Ok(())
    }

    /// Sets `len` bytes at `offset` to zero.
    pub fn zero(&self, offset: u64, len: usize) -> io::Result<()> {
        let start = self.check_write(offset, len)?;
        // SAFETY: bounds checked; the mapping is writable.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(start), 0, len) };
        Ok(())
    }

    /// msync(MS_SYNC) of the pages covering `[offset, offset + len)`.
    pub fn sync(&self, offset: u64, len: usize) -> io::Result<()> {
        let start = self.check(offset, len)?;
        let page = page_size();
        let first = start / page * page;
        let end = (start + len).min(self.len);
        if end <= first {
            return Ok(());
        }
        // SAFETY: `first` is page aligned (msync requires it) and `[first, end)` lies inside the
        // mapping, which stays mapped for the whole call.
        let rc = unsafe {
            libc::msync(
                self.ptr.as_ptr().add(first).cast(),
                end - first,
                libc::MS_SYNC,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Faults in the page-table entries of `[offset, offset + len)` now rather than on first
    /// access (`MADV_POPULATE_WRITE`, or `_READ` on a read-only mapping). The range must be
    /// allocated in the file: this never allocates on behalf of a hole in a way that could
    /// fault later, it fails instead (as on kernels before 5.14, which lack it).
    pub fn populate(&self, offset: u64, len: usize) -> io::Result<()> {
        let start = self.check(offset, len)?;
        let page = page_size();
        let first = start / page * page;
        let end = (start + len).min(self.len);
        if end <= first {
            return Ok(());
        }
        let advice = if self.writable {
            libc::MADV_POPULATE_WRITE
        } else {
            libc::MADV_POPULATE_READ
        };
        // SAFETY: `first` is page aligned and `[first, end)` lies inside the live mapping;
        // madvise only changes page tables, never memory contents.
        let rc = unsafe { libc::madvise(self.ptr.as_ptr().add(first).cast(), end - first, advice) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// mlock of the whole mapping (faults every page in and keeps it resident).
    pub fn lock(&self) -> io::Result<()> {
        // SAFETY: the range is exactly the live mapping.
        let rc = unsafe { libc::mlock(self.ptr.as_ptr().cast(), self.len) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range is the mapping created in `new`, unmapped exactly once; no reference
        // into it exists (all access is by copying).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf takes no pointers.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// posix_fallocate over `[0, len)`: allocates every block (growing the file if needed), so
/// later stores into a shared mapping of it can never fault for lack of space.
pub fn preallocate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    loop {
        // SAFETY: takes no pointers; the descriptor is owned by `file` for the whole call.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        match rc {
            0 => return Ok(()),
            libc::EINTR => continue,
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// The soft RLIMIT_MEMLOCK in bytes (`None` when unlimited or unknown).
pub fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    if rc != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(lim.rlim_cur)
}
