//! A block-store wrapper that injects faults: it fails reads, writes (and trims, write-zeroes)
//! or flushes at chosen LBAs or every Nth operation, with a chosen errno, and can delay every
//! operation. It wraps any store, so tests can check how the SCSI layer reports store errors.
//!
//! The rules come from `inject-*` LUN options ([`InjectRules::apply_option`]):
//!
//! ```text
//! inject-read-error=T[+T...]    inject-write-error=T[+T...]    inject-flush-error=F[+F...]
//!   T := LBA | FIRST-LAST | once:N | every:N | always       (repeatable; triggers add up)
//!   F := N (= once:N) | once:N | every:N | always            (flushes have no LBA)
//! inject-read-errno=E   inject-write-errno=E   inject-flush-errno=E   (default eio)
//!   E := eio | enospc | erofs | short | 1-4095               (short: reads and writes only)
//! inject-delay-ms=MS                                          (0-60000, before every operation)
//! inject-poison[=on|off]                                      (default on)
//! ```
//!
//! Operations are counted per kind from 1 (trim and write-zeroes count as writes). A `short`
//! write stores the first half of its blocks and then fails with ENOSPC; a `short` read fills
//! the buffer and fails with EIO, as `store-file` reports short transfers. With `poison` on, an
//! injected flush failure behaves like a real failed fdatasync on a persistent store: every
//! later write and flush fails with EIO (reads keep working).
#![forbid(unsafe_code)]

mod rules;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use backstore::{BlockStore, Capabilities, Extent, Geometry};

pub use rules::{FaultKind, FaultRule, InjectRules, Trigger, MAX_DELAY_MS, OPTION_NAMES};

/// A store that forwards to `inner` except where its rules say to fail.
pub struct InjectStore {
    inner: Arc<dyn BlockStore>,
    rules: InjectRules,
    reads: AtomicU64,
    writes: AtomicU64,
    flushes: AtomicU64,
    poisoned: AtomicBool,
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl InjectStore {
    /// Wraps `inner` with `rules` (no rules: a transparent pass-through).
    pub fn new(inner: Arc<dyn BlockStore>, rules: InjectRules) -> InjectStore {
        InjectStore {
            inner,
            rules,
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> &InjectRules {
        &self.rules
    }

    /// True once an injected flush failure poisoned the store.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    fn delay(&self) {
        if !self.rules.delay.is_zero() {
            std::thread::sleep(self.rules.delay);
        }
    }

    fn blocks(&self, offset: u64, len: u64) -> (u64, u64) {
        let bs = u64::from(self.inner.geometry().block_size).max(1);
        (offset / bs, len.div_ceil(bs))
    }

    /// Counts a write-like operation and returns the fault to inject, if any.
    fn write_fault(&self, offset: u64, len: u64) -> io::Result<Option<FaultKind>> {
        self.delay();
        if self.is_poisoned() {
            return Err(errno(libc::EIO));
        }
        let n = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        let (lba, blocks) = self.blocks(offset, len);
        Ok(self
            .rules
            .write
            .fires(n, lba, blocks)
            .then_some(self.rules.write.kind))
    }
}

impl BlockStore for InjectStore {
    fn describe(&self) -> String {
        format!("{} (fault injection)", self.inner.describe())
    }

    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.delay();
        let n = self.reads.fetch_add(1, Ordering::Relaxed) + 1;
        let (lba, blocks) = self.blocks(offset, buf.len() as u64);
        if !self.rules.read.fires(n, lba, blocks) {
            return self.inner.read(offset, buf);
        }
        match self.rules.read.kind {
            FaultKind::Errno(e) => Err(errno(e)),
            FaultKind::Short => {
                self.inner.read(offset, buf)?;
                Err(errno(libc::EIO))
            }
        }
    }

    fn write(&self, offset: u64, buf: &[u8], fua: bool) -> io::Result<()> {
        match self.write_fault(offset, buf.len() as u64)? {
            None => self.inner.write(offset, buf, fua),
            Some(FaultKind::Errno(e)) => Err(errno(e)),
            Some(FaultKind::Short) => {
                let bs = self.inner.geometry().block_size as usize;
                let half = buf.len() / bs.max(1) / 2 * bs;
                if half > 0 {
                    self.inner.write(offset, &buf[..half], fua)?;
                }
                Err(errno(libc::ENOSPC))
            }
        }
    }

    fn flush(&self) -> io::Result<()> {
        self.delay();
        if self.is_poisoned() {
            return Err(errno(libc::EIO));
        }
        let n = self.flushes.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.rules.flush.fires(n, 0, 0) {
            return self.inner.flush();
        }
        if self.rules.poison {
            self.poisoned.store(true, Ordering::Release);
        }
        match self.rules.flush.kind {
            FaultKind::Errno(e) => Err(errno(e)),
            FaultKind::Short => Err(errno(libc::EIO)),
        }
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        match self.write_fault(offset, len)? {
            None => self.inner.trim(offset, len),
            Some(FaultKind::Errno(e)) => Err(errno(e)),
            Some(FaultKind::Short) => Err(errno(libc::ENOSPC)),
        }
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        match self.write_fault(offset, len)? {
            None => self.inner.write_zeroes(offset, len),
            Some(FaultKind::Errno(e)) => Err(errno(e)),
            Some(FaultKind::Short) => Err(errno(libc::ENOSPC)),
        }
    }

    fn extents(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        self.inner.extents(offset, len)
    }
}

#[cfg(test)]
mod tests;
