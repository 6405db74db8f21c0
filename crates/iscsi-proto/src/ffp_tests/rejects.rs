use iscsi_wire::{Bhs, DigestConfig, Pdu, RawBhs, SnackRequest, WireError};

use crate::testutil::*;
use crate::Output;

fn reject_reason(outs: &[Output]) -> u8 {
    match &sent(outs)[0].bhs {
        Bhs::Reject(r) => r.reason,
        other => panic!("expected Reject, got {other:?}"),
    }
}

#[test]
fn unknown_opcode_command_not_supported() {
    let mut c = logged_in();
    let mut raw = [0u8; 48];
    raw[0] = 0x1c;
    raw[16..20].copy_from_slice(&9u32.to_be_bytes());
    c.handle_pdu(Pdu::new(Bhs::Unknown(RawBhs(raw)), vec![]), 10);
    let outs = drain(&mut c);
    assert_eq!(reject_reason(&outs), 0x05);
    let p = &sent(&outs)[0];
    assert_eq!(p.data.len(), 48);
    assert_eq!(p.data[0], 0x1c);
    let Bhs::Reject(r) = &p.bhs else { panic!() };
    assert_eq!(r.stat_sn, 502);
    assert_eq!(r.exp_cmd_sn, FIRST_CMD_SN);
    let mut wire = Vec::new();
    iscsi_wire::encode(p, DigestConfig::default(), &mut wire);
    assert_eq!(wire[0], 0x3f);
    assert_eq!(wire[2], 0x05);
    assert_eq!(&wire[16..20], &[0xff; 4]);
}

#[test]
fn snack_rejected_at_erl0() {
    let mut c = logged_in();
    c.handle_pdu(Pdu::new(SnackRequest::default(), vec![]), 10);
    assert_eq!(reject_reason(&drain(&mut c)), 0x04);
}

#[test]
fn target_opcode_from_initiator_rejected() {
    let mut c = logged_in();
    c.handle_pdu(Pdu::new(iscsi_wire::NopIn::default(), vec![]), 10);
    assert_eq!(reject_reason(&drain(&mut c)), 0x05);
}

#[test]
fn wire_errors() {
    let mut c = logged_in();
    let header = RawBhs([0u8; 48]);
    c.handle_wire_error(WireError::InvalidField { header, what: "x" }, 10);
    assert_eq!(reject_reason(&drain(&mut c)), 0x09);
    c.handle_wire_error(
        WireError::DataDigest {
            header,
            expected: 1,
            actual: 2,
        },
        10,
    );
    let outs = drain(&mut c);
    assert_eq!(reject_reason(&outs), 0x02);
    assert!(!c.is_closed());
    c.handle_wire_error(
        WireError::DataSegmentTooLong {
            header,
            len: 1 << 20,
            max: 8192,
        },
        10,
    );
    let outs = drain(&mut c);
    assert_eq!(reject_reason(&outs), 0x04);
    assert_eq!(outs.last(), Some(&Output::Close));
    let mut c = logged_in();
    c.handle_wire_error(
        WireError::HeaderDigest {
            expected: 1,
            actual: 2,
        },
        10,
    );
    assert_eq!(drain(&mut c), vec![Output::Close]);
    // Nothing after close.
    c.handle_pdu(tur(1, FIRST_CMD_SN), 11);
    assert!(drain(&mut c).is_empty());
}

#[test]
fn abort_emits_only_close() {
    let mut c = logged_in();
    c.handle_pdu(nop_out(1, 0xffff_ffff, FIRST_CMD_SN, true, vec![]), 10);
    c.abort();
    assert_eq!(drain(&mut c), vec![Output::Close]);
    assert!(c.is_closed());
}

#[test]
fn ahs_is_a_protocol_error_where_undefined_or_inconsistent() {
    let mut c = logged_in();
    let mut nop = nop_out(1, 0xffff_ffff, FIRST_CMD_SN, true, vec![]);
    nop.ahs = vec![0, 1, 1, 0];
    c.handle_pdu(nop, 10);
    assert_eq!(reject_reason(&drain(&mut c)), 0x04);
    // An AHS whose length runs past TotalAHSLength, and an unknown AHS type.
    let mut sn = FIRST_CMD_SN;
    for ahs in [vec![0, 100, 1, 0], vec![0, 1, 0x3f, 0]] {
        let mut cmd = tur(2, sn);
        cmd.ahs = ahs;
        c.handle_pdu(cmd, 11);
        let outs = drain(&mut c);
        assert_eq!(reject_reason(&outs), 0x04);
        assert!(executed(&outs).is_empty());
        sn += 1;
    }
    // The rejected commands' CmdSNs were consumed: the next one runs.
    c.handle_pdu(tur(3, sn), 12);
    assert_eq!(executed(&drain(&mut c)).len(), 1);
    assert!(!c.is_closed());
}

#[test]
fn nop_out_without_a_tag_must_be_immediate() {
    let mut c = logged_in();
    c.handle_pdu(
        nop_out(0xffff_ffff, 0xffff_ffff, FIRST_CMD_SN, false, vec![]),
        10,
    );
    let outs = drain(&mut c);
    assert_eq!(reject_reason(&outs), 0x04);
    assert_eq!(outs.last(), Some(&Output::Close));
}

#[test]
fn nop_out_answering_no_ping_is_invalid_pdu_field() {
    let mut c = logged_in();
    c.handle_pdu(nop_out(0xffff_ffff, 0x1234, FIRST_CMD_SN, true, vec![]), 10);
    assert_eq!(reject_reason(&drain(&mut c)), 0x09);
    c.handle_pdu(nop_out(5, 0x1234, FIRST_CMD_SN, true, vec![]), 10);
    assert_eq!(reject_reason(&drain(&mut c)), 0x09);
    assert!(!c.is_closed());
    // A proper ping still works.
    c.handle_pdu(nop_out(6, 0xffff_ffff, FIRST_CMD_SN, true, vec![1, 2]), 11);
    let p = &sent(&drain(&mut c))[0];
    assert!(matches!(p.bhs, Bhs::NopIn(ref n) if n.itt == 6));
    assert_eq!(p.data, vec![1, 2]);
}

#[test]
fn undecodable_command_still_uses_up_its_cmd_sn() {
    let mut c = logged_in();
    // A TUR held behind the gap the rejected Text Request leaves.
    c.handle_pdu(tur(5, FIRST_CMD_SN + 1), 10);
    assert!(drain(&mut c).is_empty());
    let mut raw = [0u8; 48];
    raw[0] = 0x04; // Text Request, not immediate, with F and C
    raw[1] = 0xc0;
    raw[16..20].copy_from_slice(&4u32.to_be_bytes());
    raw[24..28].copy_from_slice(&FIRST_CMD_SN.to_be_bytes());
    let header = RawBhs(raw);
    c.handle_wire_error(
        WireError::InvalidField {
            header,
            what: "F and C",
        },
        11,
    );
    let outs = drain(&mut c);
    assert_eq!(reject_reason(&outs), 0x09);
    let Bhs::Reject(r) = &sent(&outs)[0].bhs else {
        panic!("{outs:?}")
    };
    assert_eq!(r.exp_cmd_sn, FIRST_CMD_SN + 1, "its CmdSN is consumed");
    assert_eq!(executed(&outs).len(), 1, "the held command runs: {outs:?}");
    // An immediate one consumes nothing.
    raw[0] = 0x44;
    raw[24..28].copy_from_slice(&(FIRST_CMD_SN + 2).to_be_bytes());
    let header = RawBhs(raw);
    c.handle_wire_error(
        WireError::InvalidField {
            header,
            what: "F and C",
        },
        12,
    );
    let Bhs::Reject(r) = &sent(&drain(&mut c))[0].bhs else {
        panic!()
    };
    assert_eq!(r.exp_cmd_sn, FIRST_CMD_SN + 2);
}

#[test]
fn bidirectional_command_without_its_read_length_is_invalid_pdu_field() {
    let mut c = logged_in();
    let mut cmd = write_cmd(2, FIRST_CMD_SN, 512, true, Vec::new());
    if let Bhs::ScsiCommand(sc) = &mut cmd.bhs {
        sc.read = true;
    }
    c.handle_pdu(cmd, 10);
    let outs = drain(&mut c);
    assert_eq!(reject_reason(&outs), 0x09);
    assert!(executed(&outs).is_empty());
    assert!(!c.is_closed());
}
