use iscsi_wire::{Bhs, Pdu, R2t, Reject, ScsiResponse};

use crate::testutil::*;
use crate::{Connection, Limits, Output, ScsiResult};

fn r2ts(outs: &[Output]) -> Vec<R2t> {
    sent(outs)
        .into_iter()
        .filter_map(|p| match p.bhs {
            Bhs::R2t(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn rejects(outs: &[Output]) -> Vec<(Reject, Vec<u8>)> {
    sent(outs)
        .into_iter()
        .filter_map(|p| match p.bhs {
            Bhs::Reject(r) => Some((r, p.data)),
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

fn bytes(start: usize, n: usize) -> Vec<u8> {
    (start..start + n).map(|i| (i % 253) as u8).collect()
}

fn session(keys: &[(&str, &str)]) -> Connection {
    login_with(Limits::default(), keys).0
}

#[test]
fn immediate_unsolicited_and_r2t_chain_with_two_outstanding() {
    let mut c = session(&[
        ("MaxRecvDataSegmentLength", "8192"),
        ("InitialR2T", "No"),
        ("ImmediateData", "Yes"),
        ("FirstBurstLength", "16384"),
        ("MaxBurstLength", "16384"),
        ("MaxOutstandingR2T", "2"),
    ]);
    assert_eq!(c.params().max_outstanding_r2t, 2);
    c.handle_pdu(
        write_cmd(0x20, FIRST_CMD_SN, 65536, false, bytes(0, 8192)),
        10,
    );
    let outs = drain(&mut c);
    assert!(outs.is_empty(), "waiting for unsolicited data: {outs:?}");
    c.handle_pdu(
        data_out(0x20, 0xffff_ffff, 0, 8192, true, bytes(8192, 8192)),
        11,
    );
    let outs = drain(&mut c);
    let r = r2ts(&outs);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].r2t_sn, r[0].buffer_offset, r[0].desired_len),
        (0, 16384, 16384)
    );
    assert_eq!(
        (r[1].r2t_sn, r[1].buffer_offset, r[1].desired_len),
        (1, 32768, 16384)
    );
    assert_eq!(r[0].itt, 0x20);
    assert_ne!(r[0].ttt, r[1].ttt);
    assert_eq!(
        r[0].stat_sn, 502,
        "R2T carries the next StatSN without advancing it"
    );
    // First R2T in two PDUs.
    c.handle_pdu(
        data_out(0x20, r[0].ttt, 0, 16384, false, bytes(16384, 8192)),
        12,
    );
    assert!(drain(&mut c).is_empty());
    c.handle_pdu(
        data_out(0x20, r[0].ttt, 1, 24576, true, bytes(24576, 8192)),
        13,
    );
    let outs = drain(&mut c);
    let r3 = r2ts(&outs);
    assert_eq!(r3.len(), 1);
    assert_eq!(
        (r3[0].r2t_sn, r3[0].buffer_offset, r3[0].desired_len),
        (2, 49152, 16384)
    );
    c.handle_pdu(
        data_out(0x20, r[1].ttt, 0, 32768, false, bytes(32768, 8192)),
        14,
    );
    c.handle_pdu(
        data_out(0x20, r[1].ttt, 1, 40960, true, bytes(40960, 8192)),
        15,
    );
    c.handle_pdu(
        data_out(0x20, r3[0].ttt, 0, 49152, false, bytes(49152, 8192)),
        16,
    );
    assert!(drain(&mut c).is_empty());
    c.handle_pdu(
        data_out(0x20, r3[0].ttt, 1, 57344, true, bytes(57344, 8192)),
        17,
    );
    let outs = drain(&mut c);
    let t = executed(&outs).remove(0);
    assert!(t.write);
    assert_eq!(t.data_out, bytes(0, 65536));
    c.complete(
        t.id,
        ScsiResult {
            data_out_wanted: 65536,
            ..Default::default()
        },
    );
    let (resp, _) = response(&drain(&mut c)).unwrap();
    assert_eq!(
        (resp.status, resp.underflow, resp.overflow),
        (0, false, false)
    );
    assert_eq!(resp.itt, 0x20);
}

#[test]
fn initial_r2t_yes_solicits_everything() {
    let mut c = session(&[("InitialR2T", "Yes"), ("ImmediateData", "No")]);
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 4096, true, vec![]), 10);
    let r = r2ts(&drain(&mut c));
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].buffer_offset, r[0].desired_len), (0, 4096));
    // Unsolicited data is not allowed.
    c.handle_pdu(data_out(1, 0xffff_ffff, 0, 0, true, bytes(0, 512)), 11);
    let outs = drain(&mut c);
    assert_eq!(rejects(&outs)[0].0.reason, 0x04);
    let (resp, sense) = response(&outs).expect("task terminated");
    assert_eq!(resp.status, 2);
    assert_eq!(sense[2 + 2], 0x0b, "ABORTED COMMAND");
}

#[test]
fn immediate_data_when_not_negotiated_is_rejected() {
    let mut c = session(&[("ImmediateData", "No")]);
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 512, true, bytes(0, 512)), 10);
    let outs = drain(&mut c);
    let rj = rejects(&outs);
    assert_eq!(rj[0].0.reason, 0x04);
    assert_eq!(rj[0].1.len(), 48);
    assert_eq!(rj[0].1[0] & 0x3f, 0x01, "quotes the SCSI command header");
    assert!(executed(&outs).is_empty());
}

#[test]
fn all_data_immediate_executes_at_once() {
    let mut c = logged_in();
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 1024, true, bytes(0, 1024)), 10);
    let t = executed(&drain(&mut c)).remove(0);
    assert_eq!(t.data_out, bytes(0, 1024));
}

#[test]
fn immediate_data_beyond_edtl_rejected() {
    let mut c = logged_in();
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 512, true, bytes(0, 1024)), 10);
    let outs = drain(&mut c);
    assert_eq!(rejects(&outs)[0].0.reason, 0x04);
}

#[test]
fn write_residuals() {
    let mut c = logged_in();
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 1024, true, bytes(0, 1024)), 10);
    let t = executed(&drain(&mut c)).remove(0);
    c.complete(
        t.id,
        ScsiResult {
            data_out_wanted: 512,
            ..Default::default()
        },
    );
    let (r, _) = response(&drain(&mut c)).unwrap();
    assert!(r.underflow && !r.overflow);
    assert_eq!(r.residual, 512);

    c.handle_pdu(
        write_cmd(2, FIRST_CMD_SN + 1, 1024, true, bytes(0, 1024)),
        10,
    );
    let t = executed(&drain(&mut c)).remove(0);
    c.complete(
        t.id,
        ScsiResult {
            data_out_wanted: 4096,
            ..Default::default()
        },
    );
    let (r, _) = response(&drain(&mut c)).unwrap();
    assert!(r.overflow && !r.underflow);
    assert_eq!(r.residual, 3072);
}

#[test]
fn bidi_residuals_in_response() {
    let mut c = logged_in();
    let mut p = write_cmd(1, FIRST_CMD_SN, 512, true, bytes(0, 512));
    if let Bhs::ScsiCommand(sc) = &mut p.bhs {
        sc.read = true;
    }
    p.ahs = vec![0, 5, 2, 0, 0, 0, 0x04, 0x00]; // read length 1024
    c.handle_pdu(p, 10);
    let t = executed(&drain(&mut c)).remove(0);
    assert!(t.read && t.write);
    c.complete(
        t.id,
        ScsiResult {
            data_in: bytes(0, 256),
            data_out_wanted: 512,
            ..Default::default()
        },
    );
    let outs = drain(&mut c);
    let (r, _) = response(&outs).unwrap();
    assert!(r.bidi_underflow && !r.bidi_overflow);
    assert_eq!(r.bidi_residual, 768);
    assert!(!r.underflow && !r.overflow);
    assert_eq!(r.exp_data_sn, 1);
}

#[test]
fn write_flag_with_zero_edtl_needs_no_data() {
    let mut c = logged_in();
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 0, true, vec![]), 10);
    let t = executed(&drain(&mut c)).remove(0);
    assert!(t.write);
    assert!(t.data_out.is_empty());
    // The CDB wanted one block: overflow (libiscsi Write10Residuals).
    c.complete(
        t.id,
        ScsiResult {
            data_out_wanted: 512,
            ..Default::default()
        },
    );
    let (r, _) = response(&drain(&mut c)).unwrap();
    assert_eq!(
        (r.status, r.overflow, r.underflow, r.residual),
        (0, true, false, 512)
    );
}

#[test]
fn edtl_without_direction_rejected() {
    let mut c = logged_in();
    let mut p = tur(1, FIRST_CMD_SN);
    if let Bhs::ScsiCommand(sc) = &mut p.bhs {
        sc.expected_data_len = 512;
    }
    c.handle_pdu(p, 10);
    assert_eq!(rejects(&drain(&mut c))[0].0.reason, 0x09);
}

#[test]
fn data_out_errors() {
    let mut c = session(&[("InitialR2T", "Yes"), ("ImmediateData", "No")]);
    // Unknown ITT.
    c.handle_pdu(data_out(0x77, 5, 0, 0, true, bytes(0, 16)), 10);
    assert_eq!(rejects(&drain(&mut c))[0].0.reason, 0x09);
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 8192, true, vec![]), 10);
    let r = r2ts(&drain(&mut c)).remove(0);
    // Unknown TTT: rejected, the task goes on.
    c.handle_pdu(data_out(1, r.ttt + 100, 0, 0, false, bytes(0, 16)), 11);
    let outs = drain(&mut c);
    assert_eq!(rejects(&outs)[0].0.reason, 0x09);
    assert!(response(&outs).is_none());
    // Wrong DataSN: protocol error, task terminated.
    c.handle_pdu(data_out(1, r.ttt, 5, 0, false, bytes(0, 512)), 12);
    let outs = drain(&mut c);
    assert_eq!(rejects(&outs)[0].0.reason, 0x04);
    let (resp, sense) = response(&outs).unwrap();
    assert_eq!(resp.status, 2);
    assert_eq!((sense[2 + 12], sense[2 + 13]), (0x4b, 0x00));
    // Later Data-Out for the terminated task: unknown ITT.
    c.handle_pdu(data_out(1, r.ttt, 0, 0, false, bytes(0, 512)), 13);
    assert_eq!(rejects(&drain(&mut c))[0].0.reason, 0x09);
}

#[test]
fn data_beyond_edtl_is_protocol_error_and_closes() {
    let mut c = session(&[("InitialR2T", "Yes"), ("ImmediateData", "No")]);
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 1024, true, vec![]), 10);
    let r = r2ts(&drain(&mut c)).remove(0);
    c.handle_pdu(data_out(1, r.ttt, 0, 0, true, bytes(0, 2048)), 11);
    let outs = drain(&mut c);
    assert_eq!(rejects(&outs)[0].0.reason, 0x04);
    assert!(response(&outs).is_none(), "{outs:?}");
    assert!(executed(&outs).is_empty());
    assert_eq!(outs.last(), Some(&Output::Close));
}

#[test]
fn overlapping_or_skipping_offsets_close_the_connection() {
    for offset in [0u32, 1024, 4096, u32::MAX - 100] {
        let mut c = session(&[("InitialR2T", "Yes"), ("ImmediateData", "No")]);
        c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 8192, true, vec![]), 10);
        let r = r2ts(&drain(&mut c)).remove(0);
        c.handle_pdu(data_out(1, r.ttt, 0, 0, false, bytes(0, 512)), 11);
        assert!(drain(&mut c).is_empty());
        c.handle_pdu(data_out(1, r.ttt, 1, offset, false, bytes(0, 512)), 12);
        let outs = drain(&mut c);
        assert_eq!(rejects(&outs)[0].0.reason, 0x04, "offset {offset}");
        assert_eq!(outs.last(), Some(&Output::Close), "offset {offset}");
        assert!(executed(&outs).is_empty());
    }
}

#[test]
fn later_command_not_blocked_by_earlier_waiting_for_data() {
    let mut c = session(&[("InitialR2T", "Yes")]);
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 4096, true, vec![]), 10);
    let r = r2ts(&drain(&mut c)).remove(0);
    c.handle_pdu(read_cmd(2, FIRST_CMD_SN + 1, 512), 11);
    let outs = drain(&mut c);
    let ex = executed(&outs);
    assert_eq!(ex.len(), 1);
    assert!(ex[0].read);
    c.handle_pdu(data_out(1, r.ttt, 0, 0, true, bytes(0, 4096)), 12);
    let ex = executed(&drain(&mut c));
    assert_eq!(ex.len(), 1);
    assert!(ex[0].write);
}

#[test]
fn data_digest_error_on_data_out_terminates_task() {
    let mut c = session(&[("InitialR2T", "Yes")]);
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 4096, true, vec![]), 10);
    let r = r2ts(&drain(&mut c)).remove(0);
    let dout: Pdu = data_out(1, r.ttt, 0, 0, true, bytes(0, 4096));
    let header = dout.bhs.to_raw(4096, 0);
    c.handle_wire_error(
        iscsi_wire::WireError::DataDigest {
            header,
            expected: 1,
            actual: 2,
        },
        11,
    );
    let outs = drain(&mut c);
    let rj = rejects(&outs);
    assert_eq!(rj[0].0.reason, 0x02);
    assert_eq!(rj[0].1, header.0.to_vec());
    let (resp, sense) = response(&outs).unwrap();
    assert_eq!(resp.status, 2);
    assert_eq!((sense[2 + 12], sense[2 + 13]), (0x47, 0x05));
    assert!(!c.is_closed());
}

#[test]
fn duplicate_itt_rejected_task_in_progress() {
    let mut c = session(&[("InitialR2T", "Yes")]);
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 4096, true, vec![]), 10);
    drain(&mut c);
    c.handle_pdu(read_cmd(1, FIRST_CMD_SN + 1, 512), 11);
    assert_eq!(rejects(&drain(&mut c))[0].0.reason, 0x07);
}

#[test]
fn completion_of_a_task_still_collecting_data_is_ignored() {
    let mut c = session(&[("InitialR2T", "Yes"), ("ImmediateData", "No")]);
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 4096, true, vec![]), 10);
    let r = r2ts(&drain(&mut c));
    assert_eq!(r.len(), 1);
    let id = crate::TaskId(0);
    let early = ScsiResult {
        status: 0,
        sense: Vec::new(),
        data_in: vec![1; 512],
        data_out_wanted: 4096,
    };
    c.complete(id, early);
    let outs = drain(&mut c);
    assert!(outs.is_empty(), "no status before the data is in: {outs:?}");
    // The task and its R2T survive: the data completes it as usual.
    c.handle_pdu(data_out(1, r[0].ttt, 0, 0, true, bytes(0, 4096)), 11);
    let t = executed(&drain(&mut c)).remove(0);
    assert_eq!((t.id, t.data_out.len()), (id, 4096));
    c.complete(
        id,
        ScsiResult {
            status: 0,
            sense: Vec::new(),
            data_in: Vec::new(),
            data_out_wanted: 4096,
        },
    );
    let outs = drain(&mut c);
    let (resp, _) = response(&outs).expect("status once executed");
    assert_eq!((resp.itt, resp.status, resp.residual), (1, 0, 0));
    // A second completion of the finished task is ignored too.
    c.complete(id, ScsiResult::default());
    assert!(drain(&mut c).is_empty());
}
