//! Files in shared memory (tmpfs, `/dev/shm`, a memfd), read and written through a shared
//! mapping instead of `pread`/`pwrite`.
//!
//! On tmpfs a `pwrite` is a system call plus a page-cache lookup per call, most of the cost of a
//! small write; a copy into a mapping of the same pages costs neither once a page is mapped. The
//! danger of a mapping is the fault: a store into a hole needs a new page, and a full tmpfs
//! answers that with SIGBUS, where `pwrite` would have returned ENOSPC. So the mapping is only
//! used for pages known to be allocated: one bit per page, set from SEEK_DATA at open and after
//! every `pwrite` that succeeded, cleared before a hole is punched. Anything else (a hole, a
//! page never written) goes through `pread`/`pwrite`, which fail cleanly, and is then known.
//!
//! Punching holes takes the exclusive side of a lock whose shared side every mapped copy holds,
//! so no copy is ever in progress on a page being freed. A file truncated by another process
//! under a running server is not supported (the pages past the new end would fault), as for the
//! persistent RAM store.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockWriteGuard};

use crate::extents;
use crate::map::{self, Mapping};
use crate::sys;

/// Files larger than this keep `pread`/`pwrite` (the page bitmap would pass 8 MiB).
const MAX_MAPPED: u64 = 256 << 30;
/// At open, the page tables of at most this much allocated data are filled in, so that the
/// first requests do not each pay a page fault (about 0.1 s per GiB).
const MAX_PREFAULT: u64 = 4 << 30;

/// The mapped engine of one shared-memory file.
#[derive(Debug)]
pub(crate) struct ShmEngine {
    map: Mapping,
    page: u64,
    /// One bit per page: set when the page is known to be allocated.
    present: Vec<AtomicU64>,
    /// Shared by mapped copies, exclusive while holes are punched.
    punch: RwLock<()>,
}

impl ShmEngine {
    /// The engine for the first `len` bytes of `file`, or `None` when the file is not in
    /// shared memory (or too large, or cannot be mapped): the caller keeps positional I/O.
    pub(crate) fn new(file: &File, len: u64, writable: bool) -> Option<ShmEngine> {
        if len == 0 || len > MAX_MAPPED || !sys::is_shmem(file) {
            return None;
        }
        let map = Mapping::new(file, usize::try_from(len).ok()?, writable).ok()?;
        let page = map::page_size() as u64;
        let pages = len.div_ceil(page);
        let present = (0..pages.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        let engine = ShmEngine {
            map,
            page,
            present,
            punch: RwLock::new(()),
        };
        // Without SEEK_DATA every page starts unknown: correct, only slower to warm up.
        if let Ok(list) = extents::map(file, 0, len, page) {
            let mut budget = MAX_PREFAULT;
            for e in list.iter().filter(|e| !e.hole) {
                engine.mark(e.offset, e.length);
                engine.prefault(e.offset, e.length.min(budget));
                budget -= e.length.min(budget);
            }
        }
        Some(engine)
    }

    /// Fills in page tables for whole allocated pages of `[offset, offset + len)`; best effort.
    fn prefault(&self, offset: u64, len: u64) {
        let first = offset.div_ceil(self.page) * self.page;
        let end = (offset + len) / self.page * self.page;
        if end > first {
            let _ = self.map.populate(first, (end - first) as usize);
        }
    }

    fn pages(&self, offset: u64, len: u64) -> std::ops::Range<u64> {
        offset / self.page..(offset + len).div_ceil(self.page)
    }

    fn is_present(&self, page: u64) -> bool {
        let word = &self.present[(page / 64) as usize];
        word.load(Ordering::Acquire) & (1 << (page % 64)) != 0
    }

    fn all_present(&self, offset: u64, len: u64) -> bool {
        self.pages(offset, len).all(|p| self.is_present(p))
    }

    /// Records that `[offset, offset + len)` is allocated (after a successful `pwrite`).
    pub(crate) fn mark(&self, offset: u64, len: u64) {
        for p in self.pages(offset, len) {
            self.present[(p / 64) as usize].fetch_or(1 << (p % 64), Ordering::Release);
        }
    }

    /// Copies out of the mapping when every page is allocated; `None`: use `pread`.
    pub(crate) fn read(&self, offset: u64, buf: &mut [u8]) -> Option<io::Result<()>> {
        let _shared = self.punch.read().unwrap_or_else(|e| e.into_inner());
        self.all_present(offset, buf.len() as u64)
            .then(|| self.map.read(offset, buf))
    }

    /// Copies into the mapping when every page is allocated; `None`: use `pwrite` (then
    /// [`mark`](Self::mark)).
    pub(crate) fn write(&self, offset: u64, buf: &[u8]) -> Option<io::Result<()>> {
        let _shared = self.punch.read().unwrap_or_else(|e| e.into_inner());
        self.all_present(offset, buf.len() as u64)
            .then(|| self.map.write(offset, buf))
    }

    /// Forgets the pages of `[offset, offset + len)` before a hole is punched there; the hole
    /// must be punched while the returned guard is held.
    pub(crate) fn forget(&self, offset: u64, len: u64) -> RwLockWriteGuard<'_, ()> {
        let guard = self.punch.write().unwrap_or_else(|e| e.into_inner());
        for p in self.pages(offset, len) {
            self.present[(p / 64) as usize].fetch_and(!(1 << (p % 64)), Ordering::Release);
        }
        guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{self, Fallocate};

    fn memfd(len: u64) -> File {
        let f = sys::memfd("shm-test").expect("memfd");
        f.set_len(len).expect("set_len");
        f
    }

    #[test]
    fn pages_follow_allocation_writes_and_punches() {
        let f = memfd(64 * 1024);
        std::os::unix::fs::FileExt::write_all_at(&f, &[1u8; 8192], 0).expect("write");
        let e = ShmEngine::new(&f, 64 * 1024, true).expect("a memfd is shared memory");
        assert!(e.all_present(0, 8192), "written pages found by SEEK_DATA");
        assert!(!e.all_present(4096, 8192), "the page after them is a hole");
        let mut buf = [0u8; 512];
        assert!(
            e.read(8192, &mut buf).is_none(),
            "holes are not read through the map"
        );
        assert!(e.write(8192, &buf).is_none(), "nor written");
        e.mark(8192, 512);
        assert!(e.write(8192, &[7u8; 512]).is_some_and(|r| r.is_ok()));
        let guard = e.forget(0, 4096);
        sys::fallocate(&f, Fallocate::PunchHole, 0, 4096).expect("punch");
        drop(guard);
        assert!(!e.all_present(0, 512));
        assert!(e.all_present(4096, 4096));
    }

    #[test]
    fn mapped_copies_are_the_file() {
        let f = memfd(16 * 1024);
        std::os::unix::fs::FileExt::write_all_at(&f, &[0u8; 16 * 1024], 0).expect("fill");
        let e = ShmEngine::new(&f, 16 * 1024, true).expect("engine");
        e.write(4096, &[9u8; 4096]).expect("mapped").expect("write");
        let mut back = [0u8; 4096];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut back, 4096).expect("pread");
        assert_eq!(back, [9u8; 4096], "pread sees the mapped write");
        std::os::unix::fs::FileExt::write_all_at(&f, &[3u8; 512], 0).expect("pwrite");
        let mut got = [0u8; 512];
        e.read(0, &mut got).expect("mapped").expect("read");
        assert_eq!(got, [3u8; 512], "the map sees the pwrite");
    }

    #[test]
    fn not_shared_memory_or_empty_gets_no_engine() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("shm-test-{}.img", std::process::id()));
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("create");
        f.set_len(4096).expect("set_len");
        let on_tmpfs = sys::is_shmem(&f);
        assert_eq!(ShmEngine::new(&f, 4096, true).is_some(), on_tmpfs);
        std::fs::remove_file(&path).expect("remove");
        assert!(ShmEngine::new(&memfd(0), 0, true).is_none());
    }
}
