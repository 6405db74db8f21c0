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
