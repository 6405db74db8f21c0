//! The eventfd the ring signals on completion. Every `unsafe` call of the crate outside the
//! ring itself lives here.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A non-blocking eventfd.
#[derive(Debug)]
pub(crate) struct EventFd(File);

impl EventFd {
    /// Creates a non-blocking, close-on-exec eventfd with a zero counter.
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers and returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns; OwnedFd closes it once.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd(File::from(owned)))
    }

    /// The descriptor, for polling and for registration with the ring.
    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Resets the counter (never blocks).
    pub(crate) fn drain(&self) {
        let mut b = [0u8; 8];
        let _ = (&self.0).read(&mut b);
    }

    /// Makes the descriptor readable.
    pub(crate) fn signal(&self) {
        let _ = (&self.0).write(&1u64.to_ne_bytes());
    }
}
