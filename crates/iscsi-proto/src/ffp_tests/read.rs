use iscsi_wire::{Bhs, DataIn, DigestConfig, Pdu, ScsiResponse};

use crate::testutil::*;
use crate::{Limits, Output, ScsiResult};

fn data_ins(outs: &[Output]) -> Vec<(DataIn, Vec<u8>)> {
    sent(outs)
        .into_iter()
        .filter_map(|p| match p.bhs {
            Bhs::DataIn(d) => Some((d, p.data)),
            _ => None,
        })
        .collect()
}

fn response(outs: &[Output]) -> Option<(ScsiResponse, Vec<u8>)> {
    sent(outs).into_iter().find_map(|p| match p.bhs {
        Bhs::ScsiResponse(r) => Some((r, p.data)),
        _ => None,
    })
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn read_split_at_mrdsl_with_status_in_last() {
    let mut c = logged_in(); // initiator MRDSL 8192
    c.handle_pdu(read_cmd(0x10, FIRST_CMD_SN, 20_000), 10);
    let outs = drain(&mut c);
    let tasks = executed(&outs);
    assert_eq!(tasks.len(), 1);
    let t = &tasks[0];
    assert!(t.read && !t.write);
    assert_eq!(t.expected_len, 20_000);
    assert_eq!(t.cdb.len(), 16);
    assert_eq!(t.cdb[0], 0x28);
    let payload = pattern(20_000);
    c.complete(
        t.id,
        ScsiResult {
            status: 0,
            data_in: payload.clone(),
            ..Default::default()
        },
    );
    let outs = drain(&mut c);
    let dis = data_ins(&outs);
    assert_eq!(dis.len(), 3);
    assert!(response(&outs).is_none(), "status collapsed into Data-In");
    let lens: Vec<usize> = dis.iter().map(|(_, d)| d.len()).collect();
    assert_eq!(lens, vec![8192, 8192, 3616]);
    for (i, (d, _)) in dis.iter().enumerate() {
        assert_eq!(d.data_sn, i as u32);
        assert_eq!(d.buffer_offset, 8192 * i as u32);
        assert_eq!(d.itt, 0x10);
        assert_eq!(d.ttt, 0xffff_ffff);
        assert_eq!(d.exp_cmd_sn, FIRST_CMD_SN + 1);
        assert_eq!(d.max_cmd_sn, FIRST_CMD_SN + 128);
    }
    assert!(!dis[0].0.final_ && !dis[0].0.status_present);
    let last = &dis[2].0;
    assert!(last.final_ && last.status_present && !last.underflow && !last.overflow);
    assert_eq!(last.status, 0);
    assert_eq!(last.stat_sn, 502, "StatSN after two login responses");
    let joined: Vec<u8> = dis.iter().flat_map(|(_, d)| d.clone()).collect();
    assert_eq!(joined, payload);
    // The bytes on the wire: opcode 0x25, flags F|S = 0x81.
    let mut wire = Vec::new();
    iscsi_wire::encode(&sent(&outs)[2], DigestConfig::default(), &mut wire);
    assert_eq!(&wire[..2], &[0x25, 0x81]);
}

#[test]
fn read_bursts_set_f_at_max_burst_boundaries() {
    let (mut c, _) = login_with(
        Limits::default(),
        &[
            ("MaxRecvDataSegmentLength", "8192"),
            ("MaxBurstLength", "16384"),
        ],
    );
    c.handle_pdu(read_cmd(1, FIRST_CMD_SN, 40_960), 10);
    let t = executed(&drain(&mut c)).remove(0);
    c.complete(
        t.id,
        ScsiResult {
            data_in: pattern(40_960),
            ..Default::default()
        },
    );
    let dis = data_ins(&drain(&mut c));
    let finals: Vec<bool> = dis.iter().map(|(d, _)| d.final_).collect();
    assert_eq!(finals, vec![false, true, false, true, true]);
}

#[test]
fn read_underflow_residual_in_data_in() {
    let mut c = logged_in();
    c.handle_pdu(read_cmd(2, FIRST_CMD_SN, 255), 10);
    let t = executed(&drain(&mut c)).remove(0);
    c.complete(
        t.id,
        ScsiResult {
            data_in: pattern(36),
            ..Default::default()
        },
    );
    let dis = data_ins(&drain(&mut c));
    assert_eq!(dis.len(), 1);
    let d = &dis[0].0;
    assert!(d.status_present && d.underflow && !d.overflow);
    assert_eq!(d.residual, 219);
}

#[test]
fn read_overflow_truncates() {
    let mut c = logged_in();
    c.handle_pdu(read_cmd(3, FIRST_CMD_SN, 512), 10);
    let t = executed(&drain(&mut c)).remove(0);
    c.complete(
        t.id,
        ScsiResult {
            data_in: pattern(1024),
            ..Default::default()
        },
    );
    let dis = data_ins(&drain(&mut c));
    assert_eq!(dis[0].1.len(), 512);
    assert!(dis[0].0.overflow);
    assert_eq!(dis[0].0.residual, 512);
}

#[test]
fn edtl_zero_with_data_is_overflow_in_response() {
    let mut c = logged_in();
    c.handle_pdu(read_cmd(4, FIRST_CMD_SN, 0), 10);
    let t = executed(&drain(&mut c)).remove(0);
    c.complete(
        t.id,
        ScsiResult {
            data_in: pattern(36),
            ..Default::default()
        },
    );
    let outs = drain(&mut c);
    assert!(data_ins(&outs).is_empty());
    let (r, data) = response(&outs).unwrap();
    assert!(r.overflow && !r.underflow);
    assert_eq!(r.residual, 36);
    assert_eq!(r.exp_data_sn, 0);
    assert!(data.is_empty());
}

#[test]
fn check_condition_sends_sense_in_response() {
    let mut c = logged_in();
    c.handle_pdu(read_cmd(5, FIRST_CMD_SN, 512), 10);
    let t = executed(&drain(&mut c)).remove(0);
    let sense = vec![
        0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x21, 0, 0, 0, 0, 0,
    ];
    c.complete(
        t.id,
        ScsiResult {
            status: 2,
            sense: sense.clone(),
            ..Default::default()
        },
    );
    let outs = drain(&mut c);
    assert!(data_ins(&outs).is_empty());
    let (r, data) = response(&outs).unwrap();
    assert_eq!((r.response, r.status), (0, 2));
    assert!(r.underflow);
    assert_eq!(r.residual, 512);
    assert_eq!(&data[..2], &[0, 18], "SenseLength prefix");
    assert_eq!(&data[2..], &sense[..]);
    let rt = roundtrip(&sent(&outs)[0], DigestConfig::default());
    assert_eq!(rt.data, data);
}

#[test]
fn read_with_sense_and_data_sends_both() {
    let mut c = logged_in();
    c.handle_pdu(read_cmd(6, FIRST_CMD_SN, 1024), 10);
    let t = executed(&drain(&mut c)).remove(0);
    c.complete(
        t.id,
        ScsiResult {
            status: 2,
            sense: vec![0x70, 0, 3],
            data_in: pattern(1024),
            data_out_wanted: 0,
        },
    );
    let outs = drain(&mut c);
    let dis = data_ins(&outs);
    assert_eq!(dis.len(), 1);
    assert!(dis[0].0.final_ && !dis[0].0.status_present);
    let (r, _) = response(&outs).unwrap();
    assert_eq!(r.exp_data_sn, 1);
    assert_eq!(r.status, 2);
}

#[test]
fn no_data_command_good_response() {
    let mut c = logged_in();
    c.handle_pdu(tur(7, FIRST_CMD_SN), 10);
    let t = executed(&drain(&mut c)).remove(0);
    assert!(!t.read && !t.write);
    c.complete(t.id, ScsiResult::default());
    let outs = drain(&mut c);
    let (r, data) = response(&outs).unwrap();
    assert_eq!(
        (r.status, r.overflow, r.underflow, r.residual),
        (0, false, false, 0)
    );
    assert!(data.is_empty());
    assert_eq!(r.stat_sn, 502);
    // Unknown or repeated completions are ignored.
    c.complete(t.id, ScsiResult::default());
    assert!(drain(&mut c).is_empty());
}

#[test]
fn lun_index_decoded() {
    let mut c = logged_in();
    let mut p = tur(8, FIRST_CMD_SN);
    if let Bhs::ScsiCommand(sc) = &mut p.bhs {
        sc.lun = iscsi_wire::lun_from_index(3);
    }
    c.handle_pdu(p, 10);
    assert_eq!(executed(&drain(&mut c))[0].lun, 3);
}

#[test]
fn extended_cdb_ahs_appended() {
    let mut c = logged_in();
    let mut p = tur(9, FIRST_CMD_SN);
    p.ahs = vec![0, 5, 1, 0, 1, 2, 3, 4];
    c.handle_pdu(p, 10);
    let t = executed(&drain(&mut c)).remove(0);
    assert_eq!(t.cdb.len(), 20);
    assert_eq!(&t.cdb[16..], &[1, 2, 3, 4]);
}

/// Every PDU of `outs`, with a shared Data-In payload copied into the PDU.
fn flattened(outs: &[Output]) -> Vec<Pdu> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Transmit(p, _) => Some(p.clone()),
            Output::TransmitShared(p, d, _) => {
                assert!(p.data.is_empty());
                let mut p = p.clone();
                p.data = d.as_slice().to_vec();
                Some(p)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn shared_data_in_is_the_same_stream_without_copies() {
    let run = |shared: bool, status: u8| {
        let mut c = logged_in(); // initiator MRDSL 8192
        c.set_shared_data_in(shared);
        c.handle_pdu(read_cmd(0x10, FIRST_CMD_SN, 20_000), 10);
        let t = executed(&drain(&mut c)).remove(0);
        c.complete(
            t.id,
            ScsiResult {
                status,
                data_in: pattern(17_000),
                ..Default::default()
            },
        );
        drain(&mut c)
    };
    for status in [0, 2] {
        let plain = run(false, status);
        let shared = run(true, status);
        assert!(plain
            .iter()
            .all(|o| !matches!(o, Output::TransmitShared(..))));
        let refs = shared
            .iter()
            .filter(|o| matches!(o, Output::TransmitShared(..)))
            .count();
        assert_eq!(refs, 3, "three Data-In slices of one buffer");
        assert_eq!(flattened(&shared), sent(&plain));
    }
}
