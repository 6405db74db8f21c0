//! Fault-injection tests: the real `ustgt` binary with `inject-*` LUN options, driven by the test
//! initiator, must report store errors with the documented sense codes and keep serving.
//!
//! The mapping under test (scsi-core `Sense::from_io`): EIO on a read -> MEDIUM ERROR /
//! UNRECOVERED READ ERROR (03h/1100h); EIO on a write or flush -> MEDIUM ERROR / WRITE ERROR
//! (03h/0C00h); ENOSPC -> DATA PROTECT / SPACE ALLOCATION FAILED (07h/2707h).

mod common;

use std::time::{Duration, Instant};

use common::Server;
use ustgt_initiator::{LoginOptions, ScsiOutcome, ScsiRequest, Session, CHECK_CONDITION};

const BS: u32 = 512;

fn start(spec: &str) -> Server {
    Server::start(&["--listen", "127.0.0.1:0", spec])
}

/// Log in and consume the unit attention every new I_T nexus starts with.
fn login(s: &Server) -> Session {
    let mut sess = Session::login(s.addr(), LoginOptions::normal(&s.iqn()))
        .unwrap_or_else(|e| panic!("login: {e} ({e:?})"));
    sess.clear_unit_attention(0)
        .expect("TEST UNIT READY after login");
    sess
}

fn good(out: &ScsiOutcome, what: &str) {
    assert!(out.good(), "{what}: {}", out.describe());
}

/// Asserts CHECK CONDITION with sense key / ASC / ASCQ.
fn sense(out: &ScsiOutcome, key: u8, asc: u8, ascq: u8, what: &str) {
    assert_eq!(out.status, CHECK_CONDITION, "{what}: {}", out.describe());
    let s = out
        .sense
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: no sense data: {}", out.describe()));
    assert_eq!(
        (s.key, s.asc, s.ascq),
        (key, asc, ascq),
        "{what}: {}",
        out.describe()
    );
}

fn read(s: &mut Session, lba: u64, blocks: u32) -> ScsiOutcome {
    s.read16(0, lba, blocks, BS).expect("READ(16)")
}

fn write(s: &mut Session, lba: u64, blocks: u32) -> ScsiOutcome {
    let data = vec![0x5Au8; (blocks * BS) as usize];
    s.write16(0, lba, &data, BS).expect("WRITE(16)")
}

fn sync_cache(s: &mut Session) -> ScsiOutcome {
    let cdb = [0x35u8, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    s.scsi(ScsiRequest::none(0, &cdb))
        .expect("SYNCHRONIZE CACHE")
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ustgt-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn read_eio_at_lbas_is_medium_error_and_server_keeps_serving() {
    let srv = start("ram:16M,inject-read-error=100-107");
    let mut s = login(&srv);
    good(&read(&mut s, 99, 1), "read before the range");
    good(&read(&mut s, 108, 8), "read after the range");
    sense(&read(&mut s, 100, 1), 0x03, 0x11, 0x00, "read of LBA 100");
    sense(
        &read(&mut s, 96, 8),
        0x03,
        0x11,
        0x00,
        "read overlapping 100",
    );
    sense(&read(&mut s, 107, 1), 0x03, 0x11, 0x00, "read of LBA 107");
    // Writes to the same blocks work, and the session is still usable.
    good(&write(&mut s, 100, 8), "write into the range");
    good(&read(&mut s, 0, 8), "read after errors");
    // A second session works too.
    let mut s2 = login(&srv);
    good(&read(&mut s2, 0, 1), "second session");
}

#[test]
fn write_eio_is_medium_error_write_error() {
    let srv = start("ram:16M,inject-write-error=50");
    let mut s = login(&srv);
    sense(&write(&mut s, 50, 1), 0x03, 0x0C, 0x00, "write of LBA 50");
    sense(&write(&mut s, 48, 4), 0x03, 0x0C, 0x00, "write over LBA 50");
    good(&write(&mut s, 51, 1), "write next to it");
    good(&read(&mut s, 50, 1), "read of LBA 50");
}

#[test]
fn write_enospc_is_data_protect_space_allocation_failed() {
    let srv = start("ram:16M,inject-write-error=always,inject-write-errno=enospc");
    let mut s = login(&srv);
    sense(
        &write(&mut s, 0, 1),
        0x07,
        0x27,
        0x07,
        "write on a full store",
    );
    good(&read(&mut s, 0, 1), "reads still work");
}

#[test]
fn short_write_is_reported_like_enospc() {
    let srv = start("ram:16M,inject-write-error=once:1,inject-write-errno=short");
    let mut s = login(&srv);
    sense(&write(&mut s, 0, 8), 0x07, 0x27, 0x07, "short write");
    good(&write(&mut s, 0, 8), "the next write");
}

#[test]
fn every_nth_write_fails() {
    let srv = start("ram:16M,inject-write-error=every:3");
    let mut s = login(&srv);
    let ok: Vec<bool> = (0..9u64).map(|i| write(&mut s, i, 1).good()).collect();
    assert_eq!(
        ok,
        [true, true, false, true, true, false, true, true, false],
        "every 3rd write fails"
    );
}

#[test]
fn flush_failure_is_medium_error_then_writes_are_refused() {
    let path = scratch("flush.img");
    let spec = format!("file:{},size=16M,inject-flush-error=1", path.display());
    let srv = start(&spec);
    let mut s = login(&srv);
    good(&write(&mut s, 0, 8), "write before the flush");
    sense(&sync_cache(&mut s), 0x03, 0x0C, 0x00, "SYNCHRONIZE CACHE");
    // Poisoned: later writes and flushes must not return GOOD.
    sense(
        &write(&mut s, 8, 1),
        0x03,
        0x0C,
        0x00,
        "write after a failed flush",
    );
    sense(&sync_cache(&mut s), 0x03, 0x0C, 0x00, "second flush");
    good(&read(&mut s, 0, 8), "reads still work");
    drop(srv);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn flush_failure_without_poison_is_transient() {
    let srv = start("ram:16M,inject-flush-error=every:2,inject-poison=off");
    let mut s = login(&srv);
    good(&sync_cache(&mut s), "1st flush");
    sense(&sync_cache(&mut s), 0x03, 0x0C, 0x00, "2nd flush");
    good(&sync_cache(&mut s), "3rd flush");
    good(&write(&mut s, 0, 1), "write");
}

#[test]
fn delay_slows_every_command_but_the_server_keeps_serving() {
    let srv = start("null:16M,inject-delay-ms=150");
    let mut s = login(&srv);
    let t = Instant::now();
    good(&read(&mut s, 0, 1), "read");
    good(&write(&mut s, 0, 1), "write");
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "two delayed commands took {:?}",
        t.elapsed()
    );
    let mut s2 = login(&srv);
    good(&read(&mut s2, 8, 1), "second session");
}

#[test]
fn persistent_ram_survives_a_restart() {
    let path = scratch("pram.img");
    let spec = format!("ram:{},size=4M", path.display());
    let data: Vec<u8> = (0..8 * BS).map(|i| (i % 251) as u8).collect();
    {
        let srv = start(&spec);
        let mut s = login(&srv);
        good(&s.write16(0, 10, &data, BS).expect("write"), "write");
        good(&sync_cache(&mut s), "flush");
        assert!(srv.stop().success());
    }
    let srv = start(&format!("ram:{}", path.display()));
    let mut s = login(&srv);
    let out = read(&mut s, 10, 8);
    good(&out, "read after restart");
    assert!(out.data_in == data, "data differs after restart");
    drop(srv);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn aio_in_a_missing_directory_is_one_clear_error() {
    let out = std::process::Command::new(common::BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "aio:/nonexistent/dir/x.img,size=1M",
        ])
        .output()
        .expect("run ustgt");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("aio:/nonexistent/dir/x.img"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
