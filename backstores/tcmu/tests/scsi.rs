//! Debian's handler_file_zbc.so and handler_file_optical.so, which emulate SCSI themselves,
//! driven CDB by CDB through [`TcmuScsiDevice`]: INQUIRY, READ CAPACITY, a write and read
//! round trip through the handler's own emulation, and the handler's sense for an error.
//!
//! Needs the `tcmu-runner` package; without it each test says so and passes.
//! `USTGT_TCMU_HANDLER_DIR` overrides the handler directory.

use std::path::{Path, PathBuf};

use store_tcmu::{emulates_scsi, TcmuOptions, TcmuScsiDevice, TcmuStore, DEFAULT_HANDLER_DIR};

fn handler_dir() -> PathBuf {
    std::env::var_os("USTGT_TCMU_HANDLER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_HANDLER_DIR))
}

fn available(test: &str, file: &str) -> bool {
    let _ = env_logger::builder().is_test(true).try_init();
    let so = handler_dir().join(file);
    if !so.exists() {
        eprintln!(
            "{test}: skipped: needs {} (package tcmu-runner)",
            so.display()
        );
        return false;
    }
    true
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ustgt-tcmu-scsi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

fn open(cfg: &str, size: u64) -> TcmuScsiDevice {
    let mut o = TcmuOptions::new(cfg);
    o.handler_dir = handler_dir();
    o.size = Some(size);
    assert!(emulates_scsi(&o.handler_dir, cfg).expect("load"));
    TcmuScsiDevice::open(&o).unwrap_or_else(|e| panic!("open {cfg}: {e}"))
}

fn cdb16(opcode: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = opcode;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn cdb10(opcode: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = opcode;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn round_trip(d: &TcmuScsiDevice, write: &[u8], read: &[u8], bs: usize) {
    let data: Vec<u8> = (0..2 * bs).map(|i| (i * 7 + 3) as u8).collect();
    let w = d.execute(write, &data, 0);
    assert_eq!(w.status, 0, "write: {w:?}");
    let r = d.execute(read, &[], 2 * bs);
    assert_eq!(r.status, 0, "read sense {:02x?}", r.sense);
    assert!(r.data_in == data, "read back what was written");
}

#[test]
fn zbc_emulates_a_host_managed_zoned_disk() {
    if !available("zbc", "handler_file_zbc.so") {
        return;
    }
    let file = scratch("zbc.raw");
    let d = open(&format!("zbc/{}", file.display()), 64 << 20);
    assert!(d.handler_path().ends_with("handler_file_zbc.so"));
    let (bs, blocks) = d.geometry();
    assert_eq!((bs, blocks), (512, (64 << 20) / 512));
    let inq = d.execute(&[0x12, 0, 0, 0, 96, 0], &[], 96);
    assert_eq!(inq.status, 0);
    assert_eq!(
        inq.data_in[0] & 0x1F,
        0x14,
        "host-managed zoned block device"
    );
    let mut rc16 = [0u8; 16];
    rc16[0] = 0x9E;
    rc16[1] = 0x10;
    rc16[13] = 32;
    let cap = d.execute(&rc16, &[], 32);
    assert_eq!(cap.status, 0);
    let last = u64::from_be_bytes(cap.data_in[..8].try_into().unwrap());
    assert_eq!(last, blocks - 1);
    assert_eq!(
        u32::from_be_bytes(cap.data_in[8..12].try_into().unwrap()),
        512
    );
    // Host-managed zones are written sequentially from their write pointer; LBA 0 starts
    // the first zone.
    round_trip(&d, &cdb16(0x8A, 0, 2), &cdb16(0x88, 0, 2), 512);
    let beyond = d.execute(&cdb10(0x28, u32::try_from(blocks).unwrap(), 1), &[], 512);
    assert_eq!(beyond.status, 2);
    assert_eq!(
        (
            beyond.sense[0],
            beyond.sense[2],
            beyond.sense[12],
            beyond.sense[13]
        ),
        (0x70, 5, 0x21, 0),
        "LOGICAL BLOCK ADDRESS OUT OF RANGE, as the handler built it: {:02x?}",
        beyond.sense
    );
    let unknown = d.execute(&[0x08, 0, 0, 0, 1, 0], &[], 512);
    assert_eq!(
        (unknown.status, unknown.sense[2], unknown.sense[12]),
        (2, 5, 0x20)
    );
    assert!(d.flush().is_ok());
}

#[test]
fn optical_emulates_a_cd_dvd_device() {
    if !available("fbo", "handler_file_optical.so") {
        return;
    }
    let file = scratch("disc.iso");
    let d = open(&format!("fbo/{}", file.display()), 8 << 20);
    assert_eq!(d.geometry(), (2048, (8 << 20) / 2048));
    let inq = d.execute(&[0x12, 0, 0, 0, 96, 0], &[], 96);
    assert_eq!(inq.status, 0);
    assert_eq!(inq.data_in[0] & 0x1F, 0x05, "CD/DVD device");
    let cap = d.execute(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 8);
    assert_eq!(cap.status, 0, "{:02x?}", cap.sense);
    assert_eq!(
        u32::from_be_bytes(cap.data_in[..4].try_into().unwrap()),
        (8 << 20) / 2048 - 1
    );
    assert_eq!(
        u32::from_be_bytes(cap.data_in[4..8].try_into().unwrap()),
        2048
    );
    round_trip(&d, &cdb10(0x2A, 10, 2), &cdb10(0x28, 10, 2), 2048);
    let beyond = d.execute(&cdb10(0x28, 1 << 20, 1), &[], 2048);
    assert_eq!(
        (beyond.status, beyond.sense[2]),
        (2, 5),
        "{:02x?}",
        beyond.sense
    );
    drop(d);
    // Reopened without size=: the file's length (the handler does not extend the file, so
    // it ends after the last block written).
    let mut o = TcmuOptions::new(&format!("fbo/{}", file.display()));
    o.handler_dir = handler_dir();
    let d = TcmuScsiDevice::open(&o).expect("reopen");
    assert_eq!(d.geometry().1, 12);
    let r = d.execute(&cdb10(0x28, 10, 2), &[], 4096);
    assert_eq!(r.data_in[..8], [3, 10, 17, 24, 31, 38, 45, 52]);
}

#[test]
fn a_block_store_refuses_scsi_handlers() {
    if !available("refuse", "handler_file_zbc.so") {
        return;
    }
    let mut o = TcmuOptions::new(&format!("zbc/{}", scratch("z2.raw").display()));
    o.handler_dir = handler_dir();
    o.size = Some(64 << 20);
    let e = TcmuStore::open(&o).unwrap_err();
    assert!(e.contains("open it as a TcmuScsiDevice"), "{e}");
    assert!(!emulates_scsi(Path::new(&o.handler_dir), "qcow//x").unwrap_or(false));
}
