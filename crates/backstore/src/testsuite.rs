//! A conformance suite every [`BlockStore`] must pass.
//!
//! Each store crate calls [`run_all`] from its tests with a factory that returns a fresh,
//! zero-filled, writable store of at least [`MIN_BLOCKS`] blocks, and [`check_read_only`] with a
//! read-only store. The checks panic (through `assert!`) with a message naming the failed property,
//! so they belong in tests only.
//!
//! Stores that cannot read back what was written (a null store) run [`run_checks`] with the
//! checks that need read-back excluded, plus [`check_discarding`].

use std::io;

use crate::{BlockStore, Extent};

/// The smallest store, in blocks, the suite can exercise.
pub const MIN_BLOCKS: u64 = 64;

/// One named check of the suite.
pub type Check = (&'static str, fn(&dyn BlockStore));

/// Every check [`run_all`] runs, in order.
pub const CHECKS: &[Check] = &[
    ("geometry", check_geometry),
    ("fresh_reads_zero", check_fresh_reads_zero),
    ("read_after_write", check_read_after_write),
    ("first_and_last_block", check_first_and_last_block),
    ("fua_write", check_fua_write),
    ("flush", check_flush),
    ("write_zeroes", check_write_zeroes),
    ("trim", check_trim),
    ("extents", check_extents),
    ("concurrent_writers", check_concurrent_writers),
    ("concurrent_mixed", check_concurrent_mixed),
    ("rejects_bad_requests", check_rejects_bad_requests),
];

/// Runs every check on fresh stores made by `make`.
pub fn run_all(make: &dyn Fn() -> Box<dyn BlockStore>) {
    run_checks(make, &[]);
}

/// Runs every check except those named in `skip` (names from [`CHECKS`]; an unknown name
/// panics, so a renamed check cannot be skipped silently).
pub fn run_checks(make: &dyn Fn() -> Box<dyn BlockStore>, skip: &[&str]) {
    for name in skip {
        assert!(
            CHECKS.iter().any(|(n, _)| n == name),
            "unknown check \"{name}\" in skip list"
        );
    }
    for (name, check) in CHECKS {
        if skip.contains(name) {
            continue;
        }
        let store = make();
        eprintln!("backstore conformance: {name} on {}", store.describe());
        check(store.as_ref());
    }
}

/// A deterministic byte pattern that differs for every (seed, offset) pair.
pub fn pattern(seed: u8, offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            let x = offset.wrapping_add(i);
            (x ^ (x >> 8) ^ (x >> 16))
                .wrapping_mul(31)
                .wrapping_add(u64::from(seed)) as u8
                | 1
        })
        .collect()
}

fn block(store: &dyn BlockStore) -> u64 {
    u64::from(store.geometry().block_size)
}

fn read_vec(store: &dyn BlockStore, offset: u64, len: u64) -> Vec<u8> {
    let mut buf = vec![0xA5u8; len as usize];
    if let Err(e) = store.read(offset, &mut buf) {
        panic!("read({offset}, {len}) failed: {e}");
    }
    buf
}

fn write_ok(store: &dyn BlockStore, offset: u64, data: &[u8], fua: bool) {
    if let Err(e) = store.write(offset, data, fua) {
        panic!("write({offset}, {}, fua={fua}) failed: {e}", data.len());
    }
}

fn assert_zero(store: &dyn BlockStore, offset: u64, len: u64, what: &str) {
    let data = read_vec(store, offset, len);
    if let Some(pos) = data.iter().position(|&b| b != 0) {
        panic!(
            "{what}: byte at {} is {:#x}, expected 0",
            offset + pos as u64,
            data[pos]
        );
    }
}

/// Geometry is sane and stable, and capabilities agree with it.
pub fn check_geometry(store: &dyn BlockStore) {
    let g = store.geometry();
    assert!(
        g.block_size == 512 || g.block_size == 4096,
        "block size {} is neither 512 nor 4096",
        g.block_size
    );
    assert!(
        g.num_blocks >= MIN_BLOCKS,
        "store has {} blocks, suite needs {MIN_BLOCKS}",
        g.num_blocks
    );
    assert_eq!(g.size_bytes(), g.num_blocks * u64::from(g.block_size));
    assert_eq!(store.geometry(), g, "geometry changed between calls");
    assert!(
        !store.capabilities().read_only,
        "run_all needs a writable store"
    );
    assert!(!store.describe().is_empty(), "describe() is empty");
}

/// A fresh store reads as zeroes everywhere.
pub fn check_fresh_reads_zero(store: &dyn BlockStore) {
    let size = store.geometry().size_bytes();
    let chunk = (1u64 << 20).min(size);
    let mut off = 0;
    while off < size {
        let n = chunk.min(size - off);
        assert_zero(store, off, n, "fresh store");
        off += n;
    }
}

/// Writes of various lengths at various offsets read back exactly, without touching neighbours.
pub fn check_read_after_write(store: &dyn BlockStore) {
    let bs = block(store);
    let cases: &[(u64, u64)] = &[(0, 1), (1, 1), (3, 2), (8, 8), (17, 5), (32, 16), (2, 30)];
    for (i, &(lba, count)) in cases.iter().enumerate() {
        let data = pattern(i as u8 + 1, lba * bs, (count * bs) as usize);
        write_ok(store, lba * bs, &data, false);
        assert_eq!(
            read_vec(store, lba * bs, count * bs),
            data,
            "read-after-write at lba {lba} x{count}"
        );
        // Reading a sub-range of what was written returns the matching slice.
        if count > 1 {
            let sub = read_vec(store, (lba + 1) * bs, bs);
            assert_eq!(
                sub,
                data[bs as usize..2 * bs as usize],
                "partial read at lba {}",
                lba + 1
            );
        }
    }
    // The final state is the last write over earlier ones: replay to compute the expectation.
    let size = MIN_BLOCKS * bs;
    let mut expect = vec![0u8; size as usize];
    for (i, &(lba, count)) in cases.iter().enumerate() {
        let data = pattern(i as u8 + 1, lba * bs, (count * bs) as usize);
        expect[(lba * bs) as usize..((lba + count) * bs) as usize].copy_from_slice(&data);
    }
    assert_eq!(
        read_vec(store, 0, size),
        expect,
        "overlapping writes did not compose"
    );
}

/// The first and last blocks of the store can be written and read.
pub fn check_first_and_last_block(store: &dyn BlockStore) {
    let bs = block(store);
    let size = store.geometry().size_bytes();
    let first = pattern(7, 0, bs as usize);
    let last = pattern(9, size - bs, bs as usize);
    write_ok(store, 0, &first, false);
    write_ok(store, size - bs, &last, false);
    assert_eq!(read_vec(store, 0, bs), first, "first block");
    assert_eq!(read_vec(store, size - bs, bs), last, "last block");
    assert_zero(store, bs, bs, "block after the first");
    assert_zero(store, size - 2 * bs, bs, "block before the last");
    // A multi-block write that ends exactly at the end of the store.
    let tail = pattern(11, size - 4 * bs, 4 * bs as usize);
    write_ok(store, size - 4 * bs, &tail, true);
    assert_eq!(read_vec(store, size - 4 * bs, 4 * bs), tail, "tail write");
}

/// FUA writes succeed and read back.
pub fn check_fua_write(store: &dyn BlockStore) {
    let bs = block(store);
    let data = pattern(21, 5 * bs, 3 * bs as usize);
    write_ok(store, 5 * bs, &data, true);
    assert_eq!(read_vec(store, 5 * bs, 3 * bs), data, "fua write");
}

/// Flush succeeds, repeatedly, with and without dirty data.
pub fn check_flush(store: &dyn BlockStore) {
    let bs = block(store);
    store.flush().expect("flush on a clean store");
    let data = pattern(33, 0, 2 * bs as usize);
    write_ok(store, 0, &data, false);
    store.flush().expect("flush after a write");
    store.flush().expect("second flush");
    assert_eq!(read_vec(store, 0, 2 * bs), data, "data after flush");
}

/// `write_zeroes` zeroes exactly the range it is given.
pub fn check_write_zeroes(store: &dyn BlockStore) {
    let bs = block(store);
    let len = 32 * bs;
    let data = pattern(41, 0, len as usize);
    write_ok(store, 0, &data, false);
    store.write_zeroes(4 * bs, 3 * bs).expect("write_zeroes");
    assert_zero(store, 4 * bs, 3 * bs, "after write_zeroes");
    assert_eq!(
        read_vec(store, 0, 4 * bs),
        data[..(4 * bs) as usize],
        "before the zeroed range"
    );
    assert_eq!(
        read_vec(store, 7 * bs, len - 7 * bs),
        data[(7 * bs) as usize..],
        "after the zeroed range"
    );
    // Zeroing a large run, then writing into it again.
    store
        .write_zeroes(8 * bs, 24 * bs)
        .expect("write_zeroes large");
    assert_zero(store, 8 * bs, 24 * bs, "after large write_zeroes");
    let again = pattern(42, 10 * bs, bs as usize);
    write_ok(store, 10 * bs, &again, false);
    assert_eq!(
        read_vec(store, 10 * bs, bs),
        again,
        "write into a zeroed range"
    );
    assert_zero(store, 11 * bs, bs, "neighbour of a rewritten block");
}

/// `trim` makes the range read as zeroes and leaves neighbours alone.
pub fn check_trim(store: &dyn BlockStore) {
    let bs = block(store);
    let len = MIN_BLOCKS * bs;
    let data = pattern(51, 0, len as usize);
    write_ok(store, 0, &data, false);
    // A single block, an odd run, and a large aligned run.
    for &(lba, count) in &[(1u64, 1u64), (3, 5), (16, 32)] {
        store.trim(lba * bs, count * bs).expect("trim");
        assert_zero(store, lba * bs, count * bs, "after trim");
    }
    let keep = [(0u64, 1u64), (2, 1), (8, 8), (48, 16)];
    for &(lba, count) in &keep {
        let range = (lba * bs) as usize..((lba + count) * bs) as usize;
        assert_eq!(
            read_vec(store, lba * bs, count * bs),
            data[range],
            "untrimmed lba {lba} x{count}"
        );
    }
    // Trimmed blocks accept new data.
    let fresh = pattern(52, 20 * bs, bs as usize);
    write_ok(store, 20 * bs, &fresh, false);
    assert_eq!(read_vec(store, 20 * bs, bs), fresh, "write after trim");
}

fn check_extent_list(list: &[Extent], offset: u64, len: u64, bs: u64) {
    assert!(!list.is_empty(), "extents({offset}, {len}) is empty");
    let mut pos = offset;
    for e in list {
        assert_eq!(
            e.offset, pos,
            "extents have a gap or overlap at {pos}: {list:?}"
        );
        assert!(e.length > 0, "empty extent in {list:?}");
        assert_eq!(
            e.offset % bs,
            0,
            "extent offset not block aligned: {list:?}"
        );
        assert_eq!(
            e.length % bs,
            0,
            "extent length not block aligned: {list:?}"
        );
        pos += e.length;
    }
    assert_eq!(
        pos,
        offset + len,
        "extents do not end at the end of the range: {list:?}"
    );
}

/// Extents cover any range exactly; written data is never reported as a hole; holes read zero.
pub fn check_extents(store: &dyn BlockStore) {
    let bs = block(store);
    let size = store.geometry().size_bytes();
    let data = pattern(61, 8 * bs, 4 * bs as usize);
    write_ok(store, 8 * bs, &data, false);
    if store.capabilities().trim {
        store.trim(32 * bs, 32 * bs).expect("trim");
    }
    for &(offset, len) in &[
        (0, size),
        (0, bs),
        (8 * bs, 4 * bs),
        (5 * bs, 20 * bs),
        (size - bs, bs),
    ] {
        let list = store.extents(offset, len).expect("extents");
        check_extent_list(&list, offset, len, bs);
        for e in &list {
            if e.hole {
                assert_zero(store, e.offset, e.length, "hole extent");
                let (a, b) = (e.offset.max(8 * bs), (e.offset + e.length).min(12 * bs));
                assert!(a >= b, "written blocks reported as a hole: {list:?}");
            }
        }
    }
}

/// Several threads writing disjoint ranges at once all land.
pub fn check_concurrent_writers(store: &dyn BlockStore) {
    const THREADS: u64 = 4;
    const ROUNDS: u8 = 8;
    let bs = block(store);
    let per = MIN_BLOCKS / THREADS;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for round in 0..ROUNDS {
                    for lba in t * per..(t + 1) * per {
                        let data = pattern(round.wrapping_mul(16) + t as u8, lba * bs, bs as usize);
                        write_ok(store, lba * bs, &data, round % 3 == 0);
                    }
                }
            });
        }
    });
    for t in 0..THREADS {
        for lba in t * per..(t + 1) * per {
            let expect = pattern(
                (ROUNDS - 1).wrapping_mul(16) + t as u8,
                lba * bs,
                bs as usize,
            );
            assert_eq!(
                read_vec(store, lba * bs, bs),
                expect,
                "thread {t} lba {lba}"
            );
        }
    }
}

/// Readers of a stable range see exact data while writers rewrite another range.
pub fn check_concurrent_mixed(store: &dyn BlockStore) {
    let bs = block(store);
    let half = MIN_BLOCKS / 2;
    let stable = pattern(81, 0, (half * bs) as usize);
    write_ok(store, 0, &stable, false);
    let stable = &stable;
    std::thread::scope(|s| {
        for t in 0..2u64 {
            s.spawn(move || {
                for round in 0..16u64 {
                    let lba = (t * 7 + round * 3) % half;
                    let got = read_vec(store, lba * bs, bs);
                    let range = (lba * bs) as usize..((lba + 1) * bs) as usize;
                    assert_eq!(got, stable[range], "reader {t} saw lba {lba} change");
                }
            });
            s.spawn(move || {
                for round in 0..16u8 {
                    let lba = half + (t + u64::from(round) * 2) % half;
                    let data = pattern(round, lba * bs, bs as usize);
                    write_ok(store, lba * bs, &data, round % 4 == 0);
                }
            });
        }
        s.spawn(move || {
            for _ in 0..4 {
                store.flush().expect("flush during concurrent I/O");
            }
        });
    });
    assert_eq!(
        read_vec(store, 0, half * bs),
        *stable,
        "stable half changed"
    );
}

fn expect_invalid(result: io::Result<()>, what: &str) {
    match result {
        Ok(()) => panic!("{what} was accepted; expected an InvalidInput (EINVAL) error"),
        Err(e) => assert_eq!(
            e.kind(),
            io::ErrorKind::InvalidInput,
            "{what} failed with {e}, expected InvalidInput (EINVAL)"
        ),
    }
}

/// Unaligned and out-of-range requests of every kind are refused with `InvalidInput` (EINVAL)
/// and change nothing.
pub fn check_rejects_bad_requests(store: &dyn BlockStore) {
    let bs = block(store);
    let size = store.geometry().size_bytes();
    let one = vec![0x5Au8; bs as usize];
    let two = vec![0x5Au8; 2 * bs as usize];
    let mut rbuf = vec![0u8; 2 * bs as usize];
    let far = u64::MAX - bs + 1;
    let cases: [(u64, u64, &str); 5] = [
        (size, bs, "past the end"),
        (size - bs, 2 * bs, "across the end"),
        (far, bs, "at an offset that overflows"),
        (1, bs, "at an unaligned offset"),
        (bs / 2, bs, "at a half-block offset"),
    ];
    for (offset, len, why) in cases {
        let n = len as usize;
        expect_invalid(store.read(offset, &mut rbuf[..n]), &format!("read {why}"));
        let data = if n == one.len() { &one[..] } else { &two[..] };
        expect_invalid(store.write(offset, data, false), &format!("write {why}"));
        expect_invalid(store.write(offset, data, true), &format!("FUA write {why}"));
        expect_invalid(store.trim(offset, len), &format!("trim {why}"));
        expect_invalid(
            store.write_zeroes(offset, len),
            &format!("write_zeroes {why}"),
        );
    }
    let short = bs as usize - 1;
    expect_invalid(store.read(0, &mut rbuf[..short]), "read of a partial block");
    expect_invalid(
        store.write(0, &one[..short], false),
        "write of a partial block",
    );
    expect_invalid(
        store.write(bs, &two[..bs as usize + 1], true),
        "write of 1+ blocks",
    );
    expect_invalid(store.trim(0, bs + 1), "trim of a partial block");
    expect_invalid(store.write_zeroes(0, 3), "write_zeroes of a partial block");
    check_fresh_reads_zero(store);
}

/// For stores that discard data (a null store): every operation succeeds, including from
/// several threads at once, and reads keep returning zeroes.
pub fn check_discarding(store: &dyn BlockStore) {
    let bs = block(store);
    let data = pattern(91, 0, 4 * bs as usize);
    write_ok(store, 0, &data, false);
    write_ok(store, 4 * bs, &data, true);
    store.flush().expect("flush");
    store.trim(8 * bs, 4 * bs).expect("trim");
    store.write_zeroes(12 * bs, 4 * bs).expect("write_zeroes");
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let data = &data;
            s.spawn(move || {
                for lba in (t * 4..MIN_BLOCKS).step_by(16) {
                    write_ok(store, lba * bs, &data[..bs as usize], lba % 2 == 0);
                    assert_zero(store, lba * bs, bs, "discarding store");
                }
            });
        }
    });
    check_fresh_reads_zero(store);
}

fn assert_refused(result: io::Result<()>, what: &str) {
    assert!(result.is_err(), "read-only store accepted {what}");
}

/// A read-only store reads, refuses every kind of write with an error, and keeps its data.
pub fn check_read_only(store: &dyn BlockStore) {
    let bs = block(store);
    assert!(
        store.capabilities().read_only,
        "capabilities().read_only is false"
    );
    let before = read_vec(store, 0, 4 * bs);
    let data = pattern(71, 0, 4 * bs as usize);
    assert_refused(store.write(0, &data, false), "write");
    assert_refused(store.write(0, &data, true), "fua write");
    assert_refused(store.write_zeroes(0, 4 * bs), "write_zeroes");
    assert_refused(store.trim(0, 4 * bs), "trim");
    assert_eq!(read_vec(store, 0, 4 * bs), before, "read-only data changed");
    store.flush().expect("flush on a read-only store");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Capabilities, Geometry};
    use std::sync::Mutex;

    /// The simplest correct store: a vector behind a lock, using every default method.
    struct VecStore {
        data: Mutex<Vec<u8>>,
        read_only: bool,
    }

    impl VecStore {
        fn new(blocks: u64, read_only: bool) -> Self {
            VecStore {
                data: Mutex::new(vec![0; (blocks * 512) as usize]),
                read_only,
            }
        }
    }

    fn check(len: usize, offset: u64, n: usize) -> io::Result<std::ops::Range<usize>> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        match start.checked_add(n) {
            Some(end) if end <= len && (start | n) & 511 == 0 => Ok(start..end),
            _ => Err(io::ErrorKind::InvalidInput.into()),
        }
    }

    impl BlockStore for VecStore {
        fn describe(&self) -> String {
            "vec".into()
        }
        fn geometry(&self) -> Geometry {
            let len = self.data.lock().map(|d| d.len()).unwrap_or(0) as u64;
            Geometry {
                block_size: 512,
                num_blocks: len / 512,
            }
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                read_only: self.read_only,
                ..Capabilities::default()
            }
        }
        fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            let d = self
                .data
                .lock()
                .map_err(|_| io::Error::from(io::ErrorKind::Other))?;
            let r = check(d.len(), offset, buf.len())?;
            buf.copy_from_slice(&d[r]);
            Ok(())
        }
        fn write(&self, offset: u64, buf: &[u8], _fua: bool) -> io::Result<()> {
            if self.read_only {
                return Err(io::Error::from(io::ErrorKind::PermissionDenied));
            }
            let mut d = self
                .data
                .lock()
                .map_err(|_| io::Error::from(io::ErrorKind::Other))?;
            let r = check(d.len(), offset, buf.len())?;
            d[r].copy_from_slice(buf);
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn reference_store_passes() {
        run_all(&|| Box::new(VecStore::new(128, false)));
        check_read_only(&VecStore::new(64, true));
    }

    /// A store that silently drops writes to one block must fail the suite.
    struct Lossy(VecStore);

    impl BlockStore for Lossy {
        fn describe(&self) -> String {
            "lossy".into()
        }
        fn geometry(&self) -> Geometry {
            self.0.geometry()
        }
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities()
        }
        fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            self.0.read(offset, buf)
        }
        fn write(&self, offset: u64, buf: &[u8], fua: bool) -> io::Result<()> {
            if offset == 17 * 512 {
                return Ok(());
            }
            self.0.write(offset, buf, fua)
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A store that accepts out-of-range requests by clamping them must fail the suite.
    struct Clamping(VecStore);

    impl BlockStore for Clamping {
        fn describe(&self) -> String {
            "clamping".into()
        }
        fn geometry(&self) -> Geometry {
            self.0.geometry()
        }
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities()
        }
        fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            let size = self.0.geometry().size_bytes();
            if offset >= size {
                buf.fill(0);
                return Ok(());
            }
            self.0.read(offset, buf)
        }
        fn write(&self, offset: u64, buf: &[u8], fua: bool) -> io::Result<()> {
            self.0.write(offset, buf, fua)
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    #[should_panic(expected = "read past the end was accepted")]
    fn clamping_store_fails() {
        check_rejects_bad_requests(&Clamping(VecStore::new(64, false)));
    }

    #[test]
    fn run_checks_skips_named_checks() {
        // The lossy store fails read_after_write; skipping it lets the rest pass.
        run_checks(
            &|| Box::new(Lossy(VecStore::new(64, false))),
            &["read_after_write", "concurrent_writers", "concurrent_mixed"],
        );
    }

    #[test]
    #[should_panic(expected = "unknown check")]
    fn unknown_skip_name_panics() {
        run_checks(&|| Box::new(VecStore::new(64, false)), &["no_such_check"]);
    }

    #[test]
    #[should_panic(expected = "read-after-write")]
    fn lossy_store_fails() {
        check_read_after_write(&Lossy(VecStore::new(64, false)));
    }

    #[test]
    #[should_panic(expected = "gap or overlap")]
    fn extent_gap_detected() {
        let list = [
            Extent {
                offset: 0,
                length: 512,
                hole: false,
            },
            Extent {
                offset: 1024,
                length: 512,
                hole: true,
            },
        ];
        check_extent_list(&list, 0, 1536, 512);
    }

    #[test]
    fn pattern_is_never_zero_and_varies() {
        let a = pattern(1, 0, 4096);
        assert!(a.iter().all(|&b| b != 0));
        assert_ne!(a, pattern(2, 0, 4096));
        assert_ne!(a[..512], a[512..1024]);
    }
}
