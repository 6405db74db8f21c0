//! Hostile inputs, full-feature sequencing: CmdSN, Data-Out, R2T, TMF, NOP
//! (docs/hostile-inputs.md section 2.4, rows S1-S18), against the real server. Every test
//! sends the hostile input, checks the answer the catalogue calls for, and ends with a fresh
//! session doing a WRITE and READ round trip.
//!
//! | row | test(s) |
//! | --- | --- |
//! | S1  | `s1_cmdsn_outside_the_window_is_silently_ignored` (also protocol.rs `cmd_sn_outside_the_window_is_ignored`) |
//! | S2  | `s2_duplicate_cmdsn_in_the_window_is_silently_ignored` |
//! | S3  | `s3_cmdsn_hole_and_flood_hold_at_most_the_window` |
//! | S4  | `s4_flood_of_immediate_commands_is_rejected_0x06` |
//! | S5  | `s5_data_out_for_no_task_or_no_r2t_is_rejected_0x09` |
//! | S6  | `s6_wrong_data_sn_is_rejected_0x04_and_fails_the_task` |
//! | S7  | `s7_bad_buffer_offsets_are_rejected_0x04_then_closed` |
//! | S8  | `s8_data_out_beyond_the_r2t_is_rejected_0x04_then_closed` |
//! | S9  | `s9_immediate_and_unsolicited_data_not_allowed_are_rejected_0x04` |
//! | S10 | `s10_direction_flags_disagreeing_with_edtl` |
//! | S11 | `s11_a_write_whose_data_never_comes_times_out` |
//! | S12 | `s12_nop_out_misuse` (data over MaxRecvDataSegmentLength: hostile_framing.rs `f5_data_segment_over_mrdsl_is_rejected_0x04_then_closed`) |
//! | S13 | `s13_snack_at_erl_0_is_rejected_0x04` |
//! | S14 | `s14_abort_task_of_an_unknown_task` |
//! | S15 | `s15_tmf_on_no_lun_or_unsupported_functions` (TASK REASSIGN at ERL 0 answers 4, "task allegiance reassignment not supported", RFC 7143 11.6.1) |
//! | S16 | `s16_lun_reset_under_write_load_completes_and_tells_other_nexuses` |
//! | S17 | `s17_logout_answers_after_commands_in_flight` (also protocol.rs `logout_with_a_write_waiting_for_data_out`) |
//! | S18 | `s18_connections_cut_at_any_byte_leave_no_descriptors` |

mod common;

use std::time::Duration;

use common::raw::*;
use common::Server;
use ustgt_initiator::wire::{
    Bhs, DataOut, LogoutRequest, NopOut, Pdu, R2t, ScsiCommand, SnackRequest,
};
use ustgt_initiator::{cdb, RawPdu, ScsiRequest, Session};

/// A TEST UNIT READY command with an explicit CmdSN.
fn tur_at(s: &mut Session, cmd_sn: u32) -> ScsiCommand {
    ScsiCommand {
        final_: true,
        attr: 1,
        itt: s.alloc_itt(),
        cmd_sn,
        exp_stat_sn: s.exp_stat_sn(),
        ..ScsiCommand::default()
    }
}

/// Move the session's next CmdSN forward to `sn`.
fn skip_to(s: &mut Session, sn: u32) {
    while s.cmd_sn() != sn {
        s.take_cmd_sn();
    }
}

/// The SCSI Response of `itt`, with its data segment.
fn response(s: &mut Session, itt: u32) -> (ustgt_initiator::wire::ScsiResponse, Vec<u8>) {
    let pdu = next(s, "a SCSI Response");
    match pdu.bhs {
        Bhs::ScsiResponse(r) if r.itt == itt => (r, pdu.data),
        other => panic!("expected the SCSI Response to {itt:#x}, got {other:?}"),
    }
}

/// Sense key, ASC and ASCQ of a SCSI Response data segment.
fn sense_of(data: &[u8]) -> (u8, u8, u8) {
    let s = ustgt_initiator::Sense::from_segment(data).expect("sense data");
    (s.key, s.asc, s.ascq)
}

/// A session whose writes all wait for R2Ts.
fn solicited(srv: &Server, max_burst: &str) -> Session {
    let opts = normal(srv)
        .key("InitialR2T", "Yes")
        .key("ImmediateData", "No")
        .key("MaxBurstLength", max_burst)
        .key("FirstBurstLength", "512");
    login(srv, opts)
}

/// Send a WRITE of `len` bytes at `lba` (no data) and return it with its first R2T.
fn write_waiting(s: &mut Session, lba: u64, len: u32) -> (ScsiCommand, R2t) {
    let cmd = command(s, &write16(lba, len / BS), false, true, len);
    s.send_pdu(&Pdu::new(cmd.clone(), Vec::new()))
        .expect("send");
    match next(s, "an R2T").bhs {
        Bhs::R2t(r) if r.itt == cmd.itt => (cmd, r),
        other => panic!("expected an R2T, got {other:?}"),
    }
}

fn data_out(cmd: &ScsiCommand, ttt: u32, data_sn: u32, offset: u32, final_: bool) -> DataOut {
    DataOut {
        final_,
        lun: cmd.lun,
        itt: cmd.itt,
        ttt,
        exp_stat_sn: 0,
        data_sn,
        buffer_offset: offset,
    }
}

/// Write `data` at `lba` in a fresh session (the medium's "before" state).
fn seed(srv: &Server, lba: u64, data: &[u8]) {
    let mut s = login(srv, normal(srv));
    write(&mut s, lba, data);
}

/// The medium holds `data` at `lba`, read in a fresh session.
fn unchanged(srv: &Server, lba: u64, data: &[u8]) {
    let mut s = login(srv, normal(srv));
    read_back(&mut s, lba, data);
}

#[test]
fn s1_cmdsn_outside_the_window_is_silently_ignored() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let (exp, max) = s.cmd_window();
    for sn in [
        max.wrapping_add(1),
        exp.wrapping_sub(1),
        exp.wrapping_add(0x8000_0000),
    ] {
        let cmd = tur_at(&mut s, sn);
        s.send_pdu(&Pdu::new(cmd, Vec::new())).expect("send");
    }
    expect_silence(&mut s);
    ok(&s.test_unit_ready(0).expect("TUR with the right CmdSN"));
    fresh_round_trip(&mut srv);
}

#[test]
fn s2_duplicate_cmdsn_in_the_window_is_silently_ignored() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let cur = s.cmd_sn();
    let a = tur_at(&mut s, cur.wrapping_add(1));
    let b = tur_at(&mut s, cur.wrapping_add(1));
    let c = tur_at(&mut s, cur);
    for cmd in [&a, &b, &c] {
        s.send_pdu(&Pdu::new(cmd.clone(), Vec::new()))
            .expect("send");
    }
    let (r, _) = response(&mut s, c.itt);
    assert_eq!(r.status, 0);
    let (r, _) = response(&mut s, a.itt);
    assert_eq!(r.status, 0);
    // The duplicate, and a repeat of a CmdSN already done, get nothing.
    let again = tur_at(&mut s, cur);
    s.send_pdu(&Pdu::new(again, Vec::new())).expect("send");
    expect_silence(&mut s);
    skip_to(&mut s, cur.wrapping_add(2));
    ok(&s.test_unit_ready(0).expect("TUR"));
    fresh_round_trip(&mut srv);
}

#[test]
fn s3_cmdsn_hole_and_flood_hold_at_most_the_window() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let (exp, max) = s.cmd_window();
    let window = max.wrapping_sub(exp).wrapping_add(1);
    assert!((2..100_000).contains(&window), "window {window}");
    // The hole at `exp` is left open while 4 windows' worth of later commands arrive.
    let mut sent = Vec::new();
    for i in 1..4 * window {
        let cmd = tur_at(&mut s, exp.wrapping_add(i));
        sent.push(cmd.itt);
        s.send_pdu(&Pdu::new(cmd, Vec::new())).expect("send");
    }
    expect_silence(&mut s);
    let fill = tur_at(&mut s, exp);
    s.send_pdu(&Pdu::new(fill.clone(), Vec::new()))
        .expect("send");
    let mut answered = Vec::new();
    loop {
        match s.recv_pdu(QUIET) {
            Ok(p) => match p.bhs {
                Bhs::ScsiResponse(r) => answered.push(r.itt),
                other => panic!("unexpected {other:?}"),
            },
            Err(e) if e.is_timeout() => break,
            Err(e) => panic!("{e}"),
        }
    }
    // Exactly the commands inside the window ran, in CmdSN order.
    let mut expected = vec![fill.itt];
    expected.extend_from_slice(&sent[..window as usize - 1]);
    assert_eq!(answered, expected);
    skip_to(&mut s, exp.wrapping_add(window));
    ok(&s.test_unit_ready(0).expect("TUR after the flood"));
    fresh_round_trip(&mut srv);
}

#[test]
fn s4_flood_of_immediate_commands_is_rejected_0x06() {
    let mut srv = start();
    let mut s = solicited(&srv, "262144");
    let (exp, max) = s.cmd_window();
    let window = max.wrapping_sub(exp).wrapping_add(1);
    let total = window + 16;
    let mut itts = Vec::new();
    for i in 0..total {
        let mut cmd = command(&mut s, &write16(u64::from(i), 1), false, true, 512);
        cmd.immediate = true;
        cmd.cmd_sn = s.cmd_sn();
        itts.push(cmd.itt);
        s.send_pdu(&Pdu::new(cmd, Vec::new())).expect("send");
    }
    skip_to(&mut s, exp);
    let (mut r2ts, mut rejects) = (0, 0);
    for _ in 0..total {
        let p = next(&mut s, "an R2T or a Reject");
        match &p.bhs {
            Bhs::R2t(_) => r2ts += 1,
            Bhs::Reject(_) => {
                reject_of(&p, 0x06);
                rejects += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(rejects >= 16, "{r2ts} R2Ts, {rejects} Rejects");
    assert!(r2ts <= window, "{r2ts} tasks over a window of {window}");
    drop(s);
    fresh_round_trip(&mut srv);
}

#[test]
fn s5_data_out_for_no_task_or_no_r2t_is_rejected_0x09() {
    let mut srv = start();
    let mut s = solicited(&srv, "262144");
    // No such task: the payload is consumed and the stream stays in step.
    let ghost = DataOut {
        final_: true,
        itt: 0x0bad_0bad,
        ttt: 0x1234,
        ..Default::default()
    };
    let raw = RawPdu::from_pdu(&Pdu::new(ghost, pattern(1, 1000)));
    s.send_raw_pdu(&raw).expect("send");
    let quoted = expect_reject(&mut s, 0x09);
    assert_eq!(quoted.0, raw.header());
    // A task, but a TTT that names no R2T of it.
    let data = pattern(2, 4096);
    let (cmd, r2t) = write_waiting(&mut s, 60, 4096);
    let stray = data_out(&cmd, r2t.ttt ^ 0x5555, 0, 0, true);
    s.send_pdu(&Pdu::new(stray, data.clone())).expect("send");
    expect_reject(&mut s, 0x09);
    // The task goes on with the right TTT.
    let good = data_out(&cmd, r2t.ttt, 0, 0, true);
    s.send_pdu(&Pdu::new(good, data.clone())).expect("send");
    let (r, _) = response(&mut s, cmd.itt);
    assert_eq!(r.status, 0, "{r:?}");
    read_back(&mut s, 60, &data);
    fresh_round_trip(&mut srv);
}

#[test]
fn s6_wrong_data_sn_is_rejected_0x04_and_fails_the_task() {
    let mut srv = start();
    let old = pattern(3, 1024);
    seed(&srv, 80, &old);
    let new = pattern(4, 1024);
    // (DataSN, offset) of the two Data-Out PDUs of a 1024-byte R2T.
    let cases: [[(u32, u32); 2]; 4] = [
        [(0, 0), (0, 512)],
        [(27, 0), (28, 512)],
        [(0xffff_ffff, 0), (0, 512)],
        [(1, 512), (0, 0)],
    ];
    for case in cases {
        let mut s = solicited(&srv, "262144");
        let (cmd, r2t) = write_waiting(&mut s, 80, 1024);
        for (i, (sn, off)) in case.into_iter().enumerate() {
            let d = data_out(&cmd, r2t.ttt, sn, off, i == 1);
            let part = new[off as usize..off as usize + 512].to_vec();
            s.send_pdu(&Pdu::new(d, part)).expect("send");
        }
        // The first misnumbered PDU is rejected and fails the task; a PDU after that
        // belongs to no task any more and is rejected too.
        let first = next(&mut s, "a Reject");
        reject_of(&first, 0x04);
        let (r, sense) = response(&mut s, cmd.itt);
        assert_eq!(r.status, 0x02, "{case:?}: {r:?}");
        assert_eq!(sense_of(&sense), (0x0b, 0x4b, 0x00), "{case:?}");
        while let Ok(p) = s.recv_pdu(QUIET) {
            let Bhs::Reject(rj) = &p.bhs else {
                panic!("{case:?}: unexpected {p:?}")
            };
            assert!(matches!(rj.reason, 0x04 | 0x09), "{case:?}: {rj:?}");
        }
        ok(&s.test_unit_ready(0).expect("TUR"));
    }
    unchanged(&srv, 80, &old);
    fresh_round_trip(&mut srv);
}

#[test]
fn s7_bad_buffer_offsets_are_rejected_0x04_then_closed() {
    let mut srv = start();
    let old = pattern(5, 2048);
    seed(&srv, 90, &old);
    // Second PDU's offset: overlapping, skipping ahead, past the end, wrapping past 2^32.
    for second in [256u32, 1024, 2048, u32::MAX - 100] {
        let mut s = solicited(&srv, "262144");
        let (cmd, r2t) = write_waiting(&mut s, 90, 2048);
        let first = data_out(&cmd, r2t.ttt, 0, 0, false);
        s.send_pdu(&Pdu::new(first, pattern(6, 512))).expect("send");
        let bad = data_out(&cmd, r2t.ttt, 1, second, false);
        let raw = RawPdu::from_pdu(&Pdu::new(bad, pattern(7, 512)));
        s.send_raw_pdu(&raw).expect("send");
        let seen = expect_closed(&mut s);
        assert_eq!(seen.len(), 1, "offset {second}: {seen:?}");
        let quoted = reject_of(&seen[0], 0x04);
        assert_eq!(quoted.0, raw.header());
    }
    unchanged(&srv, 90, &old);
    fresh_round_trip(&mut srv);
}

#[test]
fn s8_data_out_beyond_the_r2t_is_rejected_0x04_then_closed() {
    let mut srv = start();
    let old = pattern(8, 8192);
    seed(&srv, 110, &old);
    let mut s = solicited(&srv, "4096");
    assert_eq!(s.negotiated.max_burst_length, 4096);
    let (cmd, r2t) = write_waiting(&mut s, 110, 8192);
    assert_eq!(r2t.desired_len, 4096);
    // 8192 bytes answering an R2T for 4096 (and over MaxBurstLength).
    let d = data_out(&cmd, r2t.ttt, 0, 0, true);
    s.send_pdu(&Pdu::new(d, pattern(9, 8192))).expect("send");
    let seen = expect_closed(&mut s);
    assert_eq!(seen.len(), 1, "{seen:?}");
    reject_of(&seen[0], 0x04);
    unchanged(&srv, 110, &old);
    fresh_round_trip(&mut srv);
}

#[test]
fn s9_immediate_and_unsolicited_data_not_allowed_are_rejected_0x04() {
    let mut srv = start();
    let old = pattern(10, 4096);
    seed(&srv, 120, &old);
    // Immediate data with ImmediateData=No.
    let mut s = solicited(&srv, "262144");
    let cmd = command(&mut s, &write16(120, 1), false, true, 512);
    s.send_pdu(&Pdu::new(cmd.clone(), pattern(11, 512)))
        .expect("send");
    assert_eq!(expect_reject(&mut s, 0x04).itt(), cmd.itt);
    // Unsolicited Data-Out with InitialR2T=Yes: rejected, and the task fails.
    let mut cmd = command(&mut s, &write16(120, 2), false, true, 1024);
    cmd.final_ = false;
    s.send_pdu(&Pdu::new(cmd.clone(), Vec::new()))
        .expect("send");
    let r2t = match next(&mut s, "an R2T").bhs {
        Bhs::R2t(r) => r,
        other => panic!("expected an R2T, got {other:?}"),
    };
    assert_eq!(r2t.itt, cmd.itt);
    let unsolicited = data_out(&cmd, 0xffff_ffff, 0, 0, true);
    s.send_pdu(&Pdu::new(unsolicited, pattern(12, 512)))
        .expect("send");
    expect_reject(&mut s, 0x04);
    let (r, sense) = response(&mut s, cmd.itt);
    assert_eq!(r.status, 0x02);
    assert_eq!(sense_of(&sense).0, 0x0b);
    ok(&s.test_unit_ready(0).expect("TUR"));
    // Immediate data over FirstBurstLength, and over the expected length.
    let opts = normal(&srv)
        .key("ImmediateData", "Yes")
        .key("InitialR2T", "Yes")
        .key("FirstBurstLength", "4096");
    let mut s = login(&srv, opts);
    assert_eq!(s.negotiated.first_burst_length, 4096);
    let cmd = command(&mut s, &write16(120, 16), false, true, 8192);
    s.send_pdu(&Pdu::new(cmd.clone(), pattern(13, 8192)))
        .expect("send");
    assert_eq!(expect_reject(&mut s, 0x04).itt(), cmd.itt);
    let cmd = command(&mut s, &write16(120, 1), false, true, 512);
    s.send_pdu(&Pdu::new(cmd.clone(), pattern(14, 1024)))
        .expect("send");
    assert_eq!(expect_reject(&mut s, 0x04).itt(), cmd.itt);
    ok(&s.test_unit_ready(0).expect("TUR"));
    unchanged(&srv, 120, &old);
    fresh_round_trip(&mut srv);
}

#[test]
fn s10_direction_flags_disagreeing_with_edtl() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    // R=W=0 with an expected length: Reject (invalid PDU field).
    let cmd = command(&mut s, &cdb::read16(0, 1), false, false, 512);
    s.send_pdu(&Pdu::new(cmd.clone(), Vec::new()))
        .expect("send");
    assert_eq!(expect_reject(&mut s, 0x09).itt(), cmd.itt);
    // R=1 and W=1 without the Bidirectional Expected Read-Data Length AHS.
    let mut cmd = command(&mut s, &cdb::read16(0, 1), true, true, 512);
    cmd.final_ = true;
    s.send_pdu(&Pdu::new(cmd.clone(), Vec::new()))
        .expect("send");
    assert_eq!(expect_reject(&mut s, 0x09).itt(), cmd.itt);
    ok(&s.test_unit_ready(0).expect("TUR"));
    fresh_round_trip(&mut srv);
}

#[test]
fn s12_nop_out_misuse() {
    let mut srv = start();
    // A TTT that answers no NOP-In: Reject (invalid PDU field); the session goes on.
    let mut s = login(&srv, normal(&srv));
    for itt in [0xffff_ffff, s.alloc_itt()] {
        let nop = NopOut {
            immediate: true,
            itt,
            ttt: 0x0077_0077,
            cmd_sn: s.cmd_sn(),
            exp_stat_sn: s.exp_stat_sn(),
            ..NopOut::default()
        };
        s.send_pdu(&Pdu::new(nop, Vec::new())).expect("send");
        assert_eq!(expect_reject(&mut s, 0x09).itt(), itt);
    }
    let (_, echo) = s.ping(b"still here").expect("ping");
    assert_eq!(echo, b"still here");
    // ITT 0xffffffff without the I bit: protocol error, connection closed.
    let nop = NopOut {
        immediate: false,
        itt: 0xffff_ffff,
        ttt: 0xffff_ffff,
        cmd_sn: s.cmd_sn(),
        exp_stat_sn: s.exp_stat_sn(),
        ..NopOut::default()
    };
    s.send_pdu(&Pdu::new(nop, Vec::new())).expect("send");
    let seen = expect_closed(&mut s);
    assert_eq!(seen.len(), 1, "{seen:?}");
    reject_of(&seen[0], 0x04);
    fresh_round_trip(&mut srv);
}

#[test]
fn s13_snack_at_erl_0_is_rejected_0x04() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    assert_eq!(s.negotiated.error_recovery_level, 0);
    for snack_type in [0u8, 1, 2, 3] {
        let snack = SnackRequest {
            snack_type,
            itt: 0xffff_ffff,
            exp_stat_sn: s.exp_stat_sn(),
            run_length: 1,
            ..SnackRequest::default()
        };
        s.send_pdu(&Pdu::new(snack, Vec::new())).expect("send");
        expect_reject(&mut s, 0x04);
    }
    ok(&s.test_unit_ready(0).expect("TUR"));
    fresh_round_trip(&mut srv);
}

#[test]
fn s14_abort_task_of_an_unknown_task() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let (exp, max) = s.cmd_window();
    // RefCmdSN outside the window: "task does not exist".
    let rsp = s
        .task_mgmt(1, 0, 0x0dead, max.wrapping_add(10))
        .expect("ABORT TASK");
    assert_eq!(rsp.response, 1, "{rsp:?}");
    assert_eq!(rsp.exp_cmd_sn, exp, "nothing consumed");
    // RefCmdSN inside the window, the command never received (the initiator's next CmdSN
    // is past it): "function complete", and its CmdSN counts as received.
    skip_to(&mut s, exp.wrapping_add(1));
    let rsp = s.task_mgmt(1, 0, 0x0beef, exp).expect("ABORT TASK");
    assert_eq!(rsp.response, 0, "{rsp:?}");
    assert_eq!(rsp.exp_cmd_sn, exp.wrapping_add(1), "{rsp:?}");
    ok(&s.test_unit_ready(0).expect("TUR with the next CmdSN"));
    fresh_round_trip(&mut srv);
}

#[test]
fn s15_tmf_on_no_lun_or_unsupported_functions() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let lun_reset = s.task_mgmt(5, 9, 0xffff_ffff, s.cmd_sn()).expect("TMF");
    assert_eq!(lun_reset.response, 2, "LUN RESET of LUN 9: {lun_reset:?}");
    for (function, want) in [(0x1f_u8, 255u8), (0x0f, 255), (3, 5), (8, 4)] {
        let rsp = s
            .task_mgmt(function, 0, 0xffff_ffff, s.cmd_sn())
            .expect("TMF");
        assert_eq!(rsp.response, want, "function {function:#04x}: {rsp:?}");
    }
    ok(&s.test_unit_ready(0).expect("TUR"));
    fresh_round_trip(&mut srv);
}

#[test]
fn s16_lun_reset_under_write_load_completes_and_tells_other_nexuses() {
    let mut srv = start_with(&["--workers", "2", "ram:16M,inject-delay-ms=20"]);
    let mut a = login(&srv, normal(&srv));
    a.timeout = Duration::from_secs(20);
    let mut b = login(&srv, normal(&srv));
    let mut itts = Vec::new();
    for i in 0..24u64 {
        let req = ScsiRequest::write(0, &write16(1000 + i * 8, 8), pattern(i as u32, 4096));
        itts.push(a.submit(req).expect("submit"));
    }
    std::thread::sleep(Duration::from_millis(60));
    let rsp = b
        .task_mgmt(5, 0, 0xffff_ffff, b.cmd_sn())
        .expect("LUN RESET");
    assert_eq!(rsp.response, 0, "{rsp:?}");
    // Every write of the other nexus ends: GOOD (done before the reset), TASK ABORTED, or
    // CHECK CONDITION with the unit attention the reset established for this nexus.
    let mut told = false;
    for itt in itts {
        let out = a.wait(itt).expect("the write ends");
        let ua = out.sense.as_ref().map(|s| (s.key, s.asc, s.ascq)) == Some((0x06, 0x29, 0x03));
        assert!(
            out.good() || out.status == 0x40 || (out.status == 0x02 && ua),
            "write ended with {}",
            out.describe()
        );
        told |= ua;
    }
    // The other nexus learns of the reset (once).
    let first = a.test_unit_ready(0).expect("TUR");
    if told {
        ok(&first);
    } else {
        sense(&first, 0x06, 0x29, 0x03);
        ok(&a.test_unit_ready(0).expect("TUR"));
    }
    drop((a, b));
    fresh_round_trip(&mut srv);
}

#[test]
fn s17_logout_answers_after_commands_in_flight() {
    let mut srv = start_with(&["ram:16M,inject-delay-ms=200"]);
    let mut s = login(&srv, normal(&srv));
    let mut itts = Vec::new();
    for i in 0..3u64 {
        itts.push(
            s.submit(ScsiRequest::read(0, &cdb::read16(i * 8, 8), 4096))
                .expect("submit"),
        );
    }
    let logout = LogoutRequest {
        immediate: true,
        reason: 0,
        itt: s.alloc_itt(),
        cid: 0,
        cmd_sn: s.cmd_sn(),
        exp_stat_sn: s.exp_stat_sn(),
    };
    s.send_pdu(&Pdu::new(logout.clone(), Vec::new()))
        .expect("send");
    let mut statuses = 0;
    let rsp = loop {
        let p = next(&mut s, "the Logout Response");
        match p.bhs {
            Bhs::LogoutResponse(r) => break r,
            Bhs::ScsiResponse(_) => statuses += 1,
            Bhs::DataIn(d) if d.status_present => statuses += 1,
            Bhs::DataIn(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!((rsp.itt, rsp.response), (logout.itt, 0));
    assert_eq!(
        statuses, 3,
        "every read answered before the Logout Response"
    );
    let after = expect_closed(&mut s);
    assert!(after.is_empty(), "{after:?}");
    fresh_round_trip(&mut srv);
}

#[test]
fn s18_connections_cut_at_any_byte_leave_no_descriptors() {
    let mut srv = start();
    // Warm up: the first session opens what the server keeps (stores, rings).
    fresh_round_trip(&mut srv);
    let baseline = open_fds(&srv);
    let mut cuts = 0;
    for reset in [false, true] {
        for cut in [1usize, 20, 47, 48, 49, 300, 559] {
            let mut s = solicited(&srv, "262144");
            let (cmd, r2t) = write_waiting(&mut s, 130, 1024);
            let d = data_out(&cmd, r2t.ttt, 0, 0, true);
            let bytes = RawPdu::from_pdu(&Pdu::new(d, pattern(15, 512))).encode(Default::default());
            if reset {
                // Unread data in our receive buffer makes the close a reset.
                let itt = s.alloc_itt();
                let ping = NopOut {
                    immediate: true,
                    itt,
                    ttt: 0xffff_ffff,
                    cmd_sn: s.cmd_sn(),
                    exp_stat_sn: s.exp_stat_sn(),
                    ..NopOut::default()
                };
                s.send_pdu(&Pdu::new(ping, vec![1; 64])).expect("send");
                std::thread::sleep(Duration::from_millis(50));
            }
            s.send_raw(&bytes[..cut.min(bytes.len())]).expect("send");
            drop(s);
            cuts += 1;
        }
        // A command header cut short too.
        let mut s = login(&srv, normal(&srv));
        let cmd = command(&mut s, &write16(0, 1), false, true, 512);
        let bytes = RawPdu::from_pdu(&Pdu::new(cmd, vec![0; 512])).encode(Default::default());
        s.send_raw(&bytes[..30]).expect("send");
        drop(s);
    }
    assert_eq!(cuts, 14);
    let settled = eventually(Duration::from_secs(10), || open_fds(&srv) <= baseline);
    assert!(
        settled,
        "open descriptors: {} after, {baseline} before",
        open_fds(&srv)
    );
    fresh_round_trip(&mut srv);
}

#[test]
fn s11_a_write_whose_data_never_comes_times_out() {
    let mut srv = start_with(&["--data-out-timeout-ms", "500", "ram:16M"]);
    let old = pattern(16, 4096);
    seed(&srv, 140, &old);
    let mut s = solicited(&srv, "262144");
    let (cmd, r2t) = write_waiting(&mut s, 140, 4096);
    // No Data-Out: the task ends by itself.
    let started = std::time::Instant::now();
    let (r, sense) = response(&mut s, cmd.itt);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.status, 0x02, "{r:?}");
    assert_eq!(
        sense_of(&sense),
        (0x0b, 0x4b, 0x06),
        "INITIATOR RESPONSE TIMEOUT"
    );
    // Data that comes too late belongs to no task.
    let late = data_out(&cmd, r2t.ttt, 0, 0, true);
    s.send_pdu(&Pdu::new(late, pattern(17, 4096)))
        .expect("send");
    expect_reject(&mut s, 0x09);
    ok(&s.test_unit_ready(0).expect("TUR"));
    unchanged(&srv, 140, &old);
    fresh_round_trip(&mut srv);
}
