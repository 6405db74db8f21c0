//! Protocol engine micro-benchmarks: `cargo bench -p iscsi-proto`.
//!
//! * `engine/*`: one command through `Connection::handle_pdu` -> `Output::Execute` ->
//!   `Connection::complete` -> the Data-In / SCSI Response PDUs, with the SCSI layer faked.
//! * `pipeline/*`: everything the target does for one command except system calls: decode the
//!   command from bytes, the engine, `LunTable::execute` on a RAM store, the engine again,
//!   encode the replies into a send buffer. This is the user-space CPU floor per command.

// One small timing harness shared by every crate's benches.
#[path = "../../iscsi-wire/benches/common/mod.rs"]
mod common;

use std::sync::Arc;

use common::Bench;
use iscsi_proto::{Catalog, Connection, ConnectionConfig, Limits, Output, ScsiResult, TargetEntry};
use iscsi_wire::{encode, encode_text, Bhs, Decoder, DigestConfig, LoginRequest, Pdu, ScsiCommand};
use scsi_core::{Device, DeviceConfig, LunTable, NexusId, Request, Status, TaskAttr};
use store_ram::RamStore;

const TARGET: &str = "iqn.2026-11.io.ustgt:bench";
const NOW: u64 = 1_000;

fn kv(pairs: &[(&str, &str)]) -> Vec<u8> {
    let v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    encode_text(&v)
}

fn login_pdu(csg: u8, nsg: u8, data: Vec<u8>) -> Pdu {
    let req = LoginRequest {
        transit: true,
        cont: false,
        csg,
        nsg,
        version_max: 0,
        version_min: 0,
        isid: [0x80, 0, 2, 0x3d, 0, 0],
        tsih: 0,
        itt: 0x1000,
        cid: 1,
        cmd_sn: 1,
        exp_stat_sn: 0,
    };
    Pdu::new(req, data)
}

/// A connection in full feature phase with libiscsi's usual keys (and digests if asked).
fn logged_in(digest: &str) -> Connection {
    let cfg = ConnectionConfig {
        catalog: Arc::new(Catalog {
            targets: vec![TargetEntry {
                name: TARGET.into(),
                alias: None,
                portals: Vec::new(),
            }],
        }),
        limits: Limits::default(),
        portal_group_tag: 1,
        local_portal: "127.0.0.1:3260".into(),
        tsih: 1,
    };
    let mut c = Connection::new(cfg, 0);
    let sec = kv(&[
        (
            "InitiatorName",
            "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-load",
        ),
        ("SessionType", "Normal"),
        ("TargetName", TARGET),
        ("AuthMethod", "None"),
    ]);
    c.handle_pdu(login_pdu(0, 1, sec), 1);
    while c.poll().is_some() {}
    let op = kv(&[
        ("HeaderDigest", digest),
        ("DataDigest", digest),
        ("MaxRecvDataSegmentLength", "262144"),
        ("MaxBurstLength", "16776192"),
        ("FirstBurstLength", "262144"),
        ("InitialR2T", "No"),
        ("ImmediateData", "Yes"),
        ("MaxOutstandingR2T", "1"),
    ]);
    c.handle_pdu(login_pdu(1, 3, op), 2);
    let mut logged = false;
    while let Some(o) = c.poll() {
        logged |= matches!(o, Output::LoggedIn(_));
    }
    assert!(logged, "login did not complete");
    c
}

/// A READ(16) or WRITE(16) command PDU of `len` bytes; writes carry all data immediately.
fn rw16(write: bool, sn: u32, lba: u64, len: u32) -> Pdu {
    let mut cdb = [0u8; 16];
    cdb[0] = if write { 0x8a } else { 0x88 };
    cdb[2..10].copy_from_slice(&lba.to_be_bytes());
    cdb[10..14].copy_from_slice(&(len / 512).to_be_bytes());
    let cmd = ScsiCommand {
        final_: true,
        read: !write,
        write,
        attr: 1,
        itt: sn,
        expected_data_len: len,
        cmd_sn: sn,
        exp_stat_sn: 0,
        cdb,
        ..Default::default()
    };
    let data = if write {
        vec![0x5a; len as usize]
    } else {
        Vec::new()
    };
    Pdu::new(cmd, data)
}

/// Drains the engine; completes every task with `run`; returns the number of PDUs to send.
fn drain(c: &mut Connection, mut run: impl FnMut(&iscsi_proto::Task) -> ScsiResult) -> usize {
    let mut sent = 0;
    while let Some(o) = c.poll() {
        match o {
            Output::Execute(task) => {
                let r = run(&task);
                c.complete(task.id, r);
            }
            Output::Transmit(..) => sent += 1,
            Output::Close => panic!("the engine closed the connection"),
            _ => sent += 1,
        }
    }
    sent
}

fn bench_engine(b: &Bench) {
    for (len, write) in [
        (4096u32, false),
        (512, false),
        (4096, true),
        (131072, false),
    ] {
        let mut c = logged_in("None");
        let mut sn = 1u32;
        let data = vec![0x33u8; len as usize];
        let name = format!("engine/{}-{len}", if write { "write16" } else { "read16" });
        b.run(&name, u64::from(len), || {
            // Building the command PDU (and its immediate data) is part of the measured time.
            let pdu = rw16(write, sn, 8, len);
            sn = sn.wrapping_add(1);
            c.handle_pdu(pdu, NOW);
            drain(&mut c, |t| ScsiResult {
                status: 0,
                sense: Vec::new(),
                data_in: if t.read { data.clone() } else { Vec::new() },
                data_out_wanted: if t.write { t.expected_len } else { 0 },
            })
        });
    }
}

/// Encodes the engine's replies into `out`.
fn encode_replies(c: &mut Connection, luns: &LunTable, out: &mut Vec<u8>) {
    while let Some(o) = c.poll() {
        match o {
            Output::Execute(task) => {
                let req = Request {
                    nexus: NexusId(1),
                    cdb: &task.cdb,
                    data_out: &task.data_out,
                    expected_len: task.expected_len,
                    attr: TaskAttr::Simple,
                };
                let r = luns.execute(task.lun, &req);
                debug_assert_eq!(r.status, Status::GOOD);
                let res = ScsiResult {
                    status: r.status.0,
                    sense: r.sense,
                    data_in: r.data_in,
                    data_out_wanted: r.data_out_wanted,
                };
                c.complete(task.id, res);
            }
            Output::Transmit(pdu, d) => encode(&pdu, d, out),
            Output::Close => panic!("the engine closed the connection"),
            _ => {}
        }
    }
}

fn ram_luns() -> LunTable {
    let store = Arc::new(RamStore::new(64 << 20, 512, false).expect("ram store"));
    let dev = Arc::new(Device::new(store, DeviceConfig::new("bench0001".into())));
    let t = LunTable::new(vec![(0, dev)]);
    let tur = [0u8; 6];
    let req = Request {
        nexus: NexusId(1),
        cdb: &tur,
        data_out: &[],
        expected_len: 0,
        attr: TaskAttr::Simple,
    };
    // The first command of a nexus sees the power-on unit attention.
    let _ = t.execute(0, &req);
    let chunk = vec![0x11u8; 1 << 20];
    for off in (0..64u64 << 20).step_by(chunk.len()) {
        let wr = {
            let mut cdb = [0u8; 16];
            cdb[0] = 0x8a;
            cdb[2..10].copy_from_slice(&(off / 512).to_be_bytes());
            cdb[10..14].copy_from_slice(&((chunk.len() / 512) as u32).to_be_bytes());
            cdb
        };
        let r = t.execute(
            0,
            &Request {
                cdb: &wr,
                data_out: &chunk,
                expected_len: 1 << 20,
                ..req
            },
        );
        assert_eq!(r.status, Status::GOOD, "prefill");
    }
    t
}

fn bench_pipeline(b: &Bench) {
    let luns = ram_luns();
    for (digest, len, write) in [
        ("None", 4096u32, false),
        ("None", 512, false),
        ("None", 4096, true),
        ("CRC32C", 4096, false),
    ] {
        let mut c = logged_in(digest);
        let d = DigestConfig {
            header: digest != "None",
            data: digest != "None",
        };
        let mut dec = Decoder::new(c.decoder_config());
        let mut sn = 1u32;
        let mut lba = 0u64;
        let mut wire = Vec::with_capacity(8192);
        let mut out = Vec::with_capacity(256 * 1024);
        let tag = if digest == "None" { "" } else { "+digests" };
        let name = format!(
            "pipeline/{}-{len}{tag}",
            if write { "write16" } else { "read16" }
        );
        b.run(&name, u64::from(len), || {
            // The initiator's side (building the bytes) is outside the measured work in the
            // server, but is a small part of this loop (one encode of a 48-byte header, or of
            // 4 KiB of immediate data for writes).
            wire.clear();
            encode(&rw16(write, sn, lba, len), d, &mut wire);
            sn = sn.wrapping_add(1);
            lba = (lba + 977) % ((64 << 20) / 512 - 256);
            let mut off = 0;
            while off < wire.len() {
                match dec.decode(&wire[off..]) {
                    Ok((used, Some(pdu))) => {
                        off += used;
                        if let Bhs::ScsiCommand(_) = pdu.bhs {
                            c.handle_pdu(pdu, NOW);
                        }
                    }
                    Ok((used, None)) => off += used,
                    Err(e) => panic!("decode: {e}"),
                }
            }
            out.clear();
            encode_replies(&mut c, &luns, &mut out);
            out.len()
        });
    }
}

fn main() {
    let b = Bench::new("iscsi-proto");
    bench_engine(&b);
    bench_pipeline(&b);
}
