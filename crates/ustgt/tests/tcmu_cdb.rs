//! Handlers that emulate SCSI themselves, served through Debian's unmodified
//! handler_file_zbc.so (a host-managed zoned disk) and handler_file_optical.so (a CD/DVD
//! device): the handler's own INQUIRY and READ CAPACITY reach the initiator, writes and reads
//! go through its emulation into its file, and its sense for an error arrives byte for byte.
//! ustgt keeps only REPORT LUNS and unit attentions.
//!
//! Needs the `tcmu-runner` package (scripts/setup installs it); the libiscsi checks also need
//! `libiscsi-bin`. A test whose tools are missing says so and passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{Server, BIN};
use ustgt_initiator::{LoginOptions, ScsiOutcome, ScsiRequest, Session};

const DIR: &str = "/usr/lib/x86_64-linux-gnu/tcmu-runner";

fn available(test: &str, file: &str) -> bool {
    let so = Path::new(DIR).join(file);
    if !so.exists() {
        eprintln!("{test}: skipped: needs {} (tcmu-runner)", so.display());
        return false;
    }
    true
}

fn scratch() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ustgt-tcmu-cdb-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn login(srv: &Server) -> Session {
    Session::login(srv.addr(), LoginOptions::normal(&srv.iqn()))
        .unwrap_or_else(|e| panic!("login: {e}"))
}

fn read(s: &mut Session, cdb: &[u8], len: u32) -> ScsiOutcome {
    s.scsi(ScsiRequest::read(0, cdb, len)).expect("command")
}

fn write(s: &mut Session, cdb: &[u8], data: Vec<u8>) -> ScsiOutcome {
    s.scsi(ScsiRequest::write(0, cdb, data)).expect("command")
}

fn cdb10(opcode: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = opcode;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// The first command of a new nexus is INQUIRY, which a pending unit attention does not
/// stop; the device type is the handler's.
fn check_inquiry(s: &mut Session, peripheral: u8) {
    let inq = s.inquiry(0, 96).expect("INQUIRY");
    assert!(inq.good(), "INQUIRY: {}", inq.describe());
    assert_eq!(inq.data_in[0], peripheral, "peripheral type");
}

/// iscsi-inq's device type line, when libiscsi's tools are installed.
fn libiscsi_type(url: &str) -> Option<String> {
    let out = Command::new("iscsi-inq").arg(url).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("Peripheral Device Type:"))
        .map(str::to_string)
}

#[test]
fn zbc_handler_is_the_device_model() {
    if !available("zbc_handler_is_the_device_model", "handler_file_zbc.so") {
        return;
    }
    let dir = scratch();
    let lun = format!("tcmu:zbc/{}/zbc.raw,size=64M", dir.display());
    let srv = Server::start(&["--listen", "127.0.0.1:0", &lun]);
    let mut s = login(&srv);
    check_inquiry(&mut s, 0x14);
    s.clear_unit_attention(0).expect("TEST UNIT READY");
    assert_eq!(s.read_capacity16(0).expect("capacity"), (131_071, 512));
    // Zones are written at their write pointer: LBA 0 starts the first one.
    let data = pattern(7, 8 * 512);
    let w = s.write16(0, 0, &data, 512).expect("write");
    assert!(w.good(), "write: {}", w.describe());
    let r = s.read16(0, 0, 8, 512).expect("read");
    assert!(r.good() && r.data_in == data, "read back: {}", r.describe());
    // A READ beyond the capacity: the handler's own sense, unchanged.
    let beyond = read(&mut s, &cdb10(0x28, 131_072, 1), 512);
    assert_eq!(beyond.status, 2, "{}", beyond.describe());
    let sense = beyond.sense.expect("sense");
    assert_eq!(
        sense.raw,
        vec![0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x21, 0, 0, 0, 0, 0],
        "ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE as the handler built it"
    );
    // READ(6) is not part of the handler's command set: its INVALID COMMAND OPERATION CODE.
    let r6 = read(&mut s, &[0x08, 0, 0, 0, 1, 0], 512);
    let sense = r6.sense.expect("sense");
    assert_eq!((sense.key, sense.asc, sense.ascq), (5, 0x20, 0));
    // REPORT LUNS is the target's.
    let rl = read(&mut s, &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], 16);
    assert!(rl.good(), "REPORT LUNS: {}", rl.describe());
    assert_eq!(&rl.data_in[..4], &[0, 0, 0, 8]);
    if let Some(line) = libiscsi_type(&format!("{}/{}/0", srv.portal(), srv.iqn())) {
        assert!(line.ends_with("unknown") || line.contains("ZBC"), "{line}");
    }
    let _ = s.logout();
    assert!(srv.stop().success(), "ustgt exit status");
    // The data went into the handler's file.
    let file = std::fs::read(dir.join("zbc.raw")).expect("zbc file");
    assert!(file.windows(data.len()).any(|w| w == data.as_slice()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn optical_handler_is_the_device_model() {
    if !available(
        "optical_handler_is_the_device_model",
        "handler_file_optical.so",
    ) {
        return;
    }
    let dir = scratch();
    let iso = dir.join("disc.iso");
    let lun = format!("tcmu:fbo/{},size=8M", iso.display());
    let srv = Server::start(&["--listen", "127.0.0.1:0", &lun]);
    let mut s = login(&srv);
    check_inquiry(&mut s, 0x05);
    assert_eq!(
        s.inquiry(0, 96).expect("INQUIRY").data_in[1] & 0x80,
        0x80,
        "RMB"
    );
    s.clear_unit_attention(0).expect("TEST UNIT READY");
    let cap = read(&mut s, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert!(cap.good(), "READ CAPACITY(10): {}", cap.describe());
    assert_eq!(
        cap.data_in,
        [0, 0, 0x0F, 0xFF, 0, 0, 8, 0],
        "4096 blocks of 2048"
    );
    let data = pattern(3, 2 * 2048);
    let w = write(&mut s, &cdb10(0x2A, 10, 2), data.clone());
    assert!(w.good(), "WRITE(10): {}", w.describe());
    let r = read(&mut s, &cdb10(0x28, 10, 2), 4096);
    assert!(r.good() && r.data_in == data, "read back: {}", r.describe());
    let beyond = read(&mut s, &cdb10(0x28, 4096, 1), 2048);
    let sense = beyond.sense.expect("sense");
    assert_eq!((beyond.status, sense.key), (2, 5), "{:02x?}", sense.raw);
    assert_eq!(
        sense.raw.len(),
        18,
        "fixed-format sense, as the handler built it"
    );
    if let Some(line) = libiscsi_type(&format!("{}/{}/0", srv.portal(), srv.iqn())) {
        assert!(line.ends_with("MMC"), "{line}");
    }
    let _ = s.logout();
    assert!(srv.stop().success(), "ustgt exit status");
    let file = std::fs::read(&iso).expect("iso");
    assert_eq!(&file[10 * 2048..12 * 2048], data.as_slice());
    // Served again without size=: the file's length, and the data is still there.
    let lun = format!("tcmu:fbo/{}", iso.display());
    let srv = Server::start(&["--listen", "127.0.0.1:0", &lun]);
    let mut s = login(&srv);
    s.clear_unit_attention(0).expect("TEST UNIT READY");
    let r = read(&mut s, &cdb10(0x28, 10, 2), 4096);
    assert!(
        r.good() && r.data_in == data,
        "after restart: {}",
        r.describe()
    );
    let _ = s.logout();
    assert!(srv.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn options_that_do_not_apply_are_refused() {
    if !available(
        "options_that_do_not_apply_are_refused",
        "handler_file_optical.so",
    ) {
        return;
    }
    let dir = scratch();
    let lun = format!("tcmu:fbo/{}/x.iso,size=8M,readonly", dir.display());
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", &lun])
        .output()
        .expect("run ustgt");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("readonly does not apply"), "{err}");
    assert!(err.contains("fbo/ro//PATH"), "{err}");
    let lun = format!("tcmu:zbc/{}/z.raw", dir.display());
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", &lun])
        .output()
        .expect("run ustgt");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("give size= for the zbc handler"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
