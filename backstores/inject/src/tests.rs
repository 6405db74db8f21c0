use super::*;
use backstore::testsuite;
use std::time::{Duration, Instant};
use store_ram::RamStore;

fn ram(blocks: u64) -> Arc<dyn BlockStore> {
    Arc::new(RamStore::new(blocks * 512, 512, false).expect("ram"))
}

fn with(opts: &[(&str, &str)]) -> InjectStore {
    let mut rules = InjectRules::default();
    for (k, v) in opts {
        assert_eq!(rules.apply_option(k, Some(v)), Ok(true), "{k}");
    }
    InjectStore::new(ram(256), rules)
}

fn os(r: io::Result<()>) -> Option<i32> {
    r.expect_err("expected an injected error").raw_os_error()
}

#[test]
fn passthrough_passes_the_suite() {
    testsuite::run_all(&|| Box::new(InjectStore::new(ram(256), InjectRules::default())));
    let ro: Arc<dyn BlockStore> = Arc::new(RamStore::new(64 * 512, 512, true).expect("ram"));
    testsuite::check_read_only(&InjectStore::new(ro, InjectRules::default()));
}

#[test]
fn read_errors_at_lbas() {
    let s = with(&[("inject-read-error", "100-107")]);
    let mut buf = vec![0u8; 512];
    s.read(99 * 512, &mut buf).expect("before");
    s.read(108 * 512, &mut buf).expect("after");
    assert_eq!(os(s.read(100 * 512, &mut buf)), Some(libc::EIO));
    assert_eq!(os(s.read(107 * 512, &mut buf)), Some(libc::EIO));
    let mut big = vec![0u8; 16 * 512];
    assert_eq!(os(s.read(92 * 512, &mut big)), Some(libc::EIO), "overlap");
    // Writes to the same blocks are not affected.
    s.write(100 * 512, &[1u8; 512], false).expect("write");
}

#[test]
fn every_nth_write_fails_with_enospc() {
    let s = with(&[
        ("inject-write-error", "every:3"),
        ("inject-write-errno", "enospc"),
    ]);
    let results: Vec<Option<i32>> = (0..7u64)
        .map(|i| {
            s.write(i * 512, &[1u8; 512], false)
                .err()
                .and_then(|e| e.raw_os_error())
        })
        .collect();
    let e = Some(libc::ENOSPC);
    assert_eq!(results, vec![None, None, e, None, None, e, None]);
    // Trim and write-zeroes count as writes: the 9th write-like operation fails.
    s.trim(0, 512).expect("8th");
    assert_eq!(os(s.write_zeroes(0, 512)), e);
}

#[test]
fn short_write_stores_half_then_enospc() {
    let s = with(&[
        ("inject-write-error", "once:1"),
        ("inject-write-errno", "short"),
    ]);
    let data = testsuite::pattern(3, 0, 8 * 512);
    assert_eq!(os(s.write(0, &data, false)), Some(libc::ENOSPC));
    let mut buf = vec![0u8; 8 * 512];
    s.read(0, &mut buf).expect("read");
    assert_eq!(buf[..4 * 512], data[..4 * 512], "first half stored");
    assert!(buf[4 * 512..].iter().all(|&b| b == 0), "second half not");
    s.write(0, &data, false).expect("the 2nd write works");
}

#[test]
fn short_read_fills_then_eio() {
    let s = with(&[
        ("inject-read-error", "always"),
        ("inject-read-errno", "short"),
    ]);
    let mut buf = vec![0u8; 512];
    assert_eq!(os(s.read(0, &mut buf)), Some(libc::EIO));
}

#[test]
fn flush_failure_poisons_by_default() {
    let s = with(&[("inject-flush-error", "2")]);
    s.flush().expect("1st flush");
    assert_eq!(os(s.flush()), Some(libc::EIO));
    assert!(s.is_poisoned());
    assert_eq!(os(s.flush()), Some(libc::EIO), "3rd flush");
    assert_eq!(os(s.write(0, &[1u8; 512], true)), Some(libc::EIO));
    assert_eq!(os(s.trim(0, 512)), Some(libc::EIO));
    let mut buf = [0u8; 512];
    s.read(0, &mut buf).expect("reads still work");
}

#[test]
fn flush_failure_without_poison_is_transient() {
    let s = with(&[
        ("inject-flush-error", "every:2"),
        ("inject-flush-errno", "enospc"),
        ("inject-poison", "off"),
    ]);
    s.flush().expect("1");
    assert_eq!(os(s.flush()), Some(libc::ENOSPC));
    s.flush().expect("3");
    s.write(0, &[1u8; 512], false).expect("write after");
    assert!(!s.is_poisoned());
}

#[test]
fn delay_applies_to_every_operation() {
    let s = with(&[("inject-delay-ms", "20")]);
    let start = Instant::now();
    let mut buf = [0u8; 512];
    s.read(0, &mut buf).expect("read");
    s.write(0, &buf, false).expect("write");
    s.flush().expect("flush");
    assert!(
        start.elapsed() >= Duration::from_millis(60),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn describes_and_forwards_geometry() {
    let s = with(&[("inject-read-error", "1")]);
    assert_eq!(s.describe(), "ram:256x512 (fault injection)");
    assert_eq!(s.geometry().num_blocks, 256);
    assert!(s.capabilities().trim);
    assert_eq!(
        s.rules().read.triggers,
        vec![Trigger::Lbas { first: 1, last: 1 }]
    );
}
