use iscsi_wire::{Bhs, NopIn};

use crate::testutil::*;
use crate::{Connection, Limits, Output, ScsiResult};

/// A session whose CmdSN starts just below the 2^32 wrap.
fn wrapped_session() -> Connection {
    let mut c = Connection::new(cfg(), 0);
    let mut p = login_pdu(
        0,
        3,
        true,
        false,
        kv(&[("InitiatorName", INITIATOR), ("TargetName", TARGET)]),
    );
    if let Bhs::LoginRequest(r) = &mut p.bhs {
        r.cmd_sn = 0xffff_fffe;
    }
    c.handle_pdu(p, 1);
    drain(&mut c);
    c
}

fn nop_ins(outs: &[Output]) -> Vec<NopIn> {
    sent(outs)
        .into_iter()
        .filter_map(|p| match p.bhs {
            Bhs::NopIn(n) => Some(n),
            _ => None,
        })
        .collect()
}

#[test]
fn cmdsn_wraps_at_2_pow_32() {
    let mut c = wrapped_session();
    for (i, sn) in [0xffff_fffe_u32, 0xffff_ffff, 0, 1].into_iter().enumerate() {
        c.handle_pdu(tur(i as u32 + 1, sn), 10);
        let t = executed(&drain(&mut c));
        assert_eq!(t.len(), 1, "CmdSN {sn:#x}");
        c.complete(t[0].id, ScsiResult::default());
        let outs = drain(&mut c);
        let Bhs::ScsiResponse(r) = &sent(&outs)[0].bhs else {
            panic!()
        };
        assert_eq!(r.exp_cmd_sn, sn.wrapping_add(1));
        assert_eq!(r.max_cmd_sn, sn.wrapping_add(128));
    }
}

#[test]
fn out_of_window_commands_silently_dropped() {
    let mut c = logged_in();
    let max = FIRST_CMD_SN + 127;
    c.handle_pdu(tur(1, max + 1), 10);
    assert!(drain(&mut c).is_empty(), "CmdSN > MaxCmdSN ignored");
    c.handle_pdu(tur(2, FIRST_CMD_SN - 1), 10);
    assert!(drain(&mut c).is_empty(), "CmdSN < ExpCmdSN ignored");
    c.handle_pdu(tur(3, FIRST_CMD_SN), 10);
    assert_eq!(executed(&drain(&mut c)).len(), 1, "ExpCmdSN works again");
}

#[test]
fn gap_holds_later_commands_until_filled() {
    let mut c = logged_in();
    c.handle_pdu(tur(2, FIRST_CMD_SN + 1), 10);
    c.handle_pdu(tur(3, FIRST_CMD_SN + 2), 10);
    assert!(drain(&mut c).is_empty());
    c.handle_pdu(tur(1, FIRST_CMD_SN), 10);
    let order: Vec<u32> = executed(&drain(&mut c)).iter().map(|t| t.id.0).collect();
    assert_eq!(order.len(), 3);
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "executed in CmdSN order"
    );
}

#[test]
fn immediate_commands_bypass_ordering() {
    let mut c = logged_in();
    c.handle_pdu(tur(2, FIRST_CMD_SN + 1), 10);
    let mut p = tur(9, FIRST_CMD_SN);
    if let Bhs::ScsiCommand(sc) = &mut p.bhs {
        sc.immediate = true;
    }
    c.handle_pdu(p, 10);
    let outs = drain(&mut c);
    assert_eq!(executed(&outs).len(), 1);
    // ExpCmdSN did not move: the held command still waits for CmdSN FIRST.
    c.handle_pdu(tur(1, FIRST_CMD_SN), 10);
    assert_eq!(executed(&drain(&mut c)).len(), 2);
}

#[test]
fn too_many_immediate_commands_rejected() {
    let limits = Limits {
        cmd_window: 2,
        ..Limits::default()
    };
    let (mut c, _) = login_with(limits, &[]);
    for itt in 1..=3u32 {
        let mut p = tur(itt, FIRST_CMD_SN);
        if let Bhs::ScsiCommand(sc) = &mut p.bhs {
            sc.immediate = true;
        }
        c.handle_pdu(p, 10);
    }
    let outs = drain(&mut c);
    assert_eq!(executed(&outs).len(), 2);
    let Bhs::Reject(r) = &sent(&outs)[0].bhs else {
        panic!("{outs:?}")
    };
    assert_eq!(r.reason, 0x06);
}

#[test]
fn nop_out_ping_echoes_data() {
    let mut c = logged_in();
    c.handle_pdu(
        nop_out(0x42, 0xffff_ffff, FIRST_CMD_SN, false, b"hello".to_vec()),
        10,
    );
    let outs = drain(&mut c);
    let p = &sent(&outs)[0];
    let Bhs::NopIn(n) = &p.bhs else { panic!() };
    assert_eq!((n.itt, n.ttt), (0x42, 0xffff_ffff));
    assert_eq!(n.stat_sn, 502);
    assert_eq!(
        n.exp_cmd_sn,
        FIRST_CMD_SN + 1,
        "non-immediate NOP-Out consumes a CmdSN"
    );
    assert_eq!(p.data, b"hello");
}

#[test]
fn nop_out_without_itt_gets_no_answer() {
    let mut c = logged_in();
    c.handle_pdu(
        nop_out(0xffff_ffff, 0xffff_ffff, FIRST_CMD_SN, true, vec![]),
        10,
    );
    assert!(drain(&mut c).is_empty());
}

#[test]
fn target_ping_and_timeout() {
    let limits = Limits {
        nop_interval_ms: 1000,
        nop_timeout_ms: 500,
        ..Limits::default()
    };
    let (mut c, _) = login_with(limits, &[]);
    assert_eq!(c.next_timeout(), Some(1002));
    c.handle_timeout(1001);
    assert!(drain(&mut c).is_empty());
    c.handle_timeout(1002);
    let outs = drain(&mut c);
    let n = nop_ins(&outs).remove(0);
    assert_eq!(n.itt, 0xffff_ffff);
    assert_ne!(n.ttt, 0xffff_ffff);
    assert_eq!(n.stat_sn, 502, "unsolicited NOP-In does not advance StatSN");
    assert_eq!(c.next_timeout(), Some(1502));
    // The answer clears the ping.
    c.handle_pdu(
        nop_out(0xffff_ffff, n.ttt, FIRST_CMD_SN, true, vec![]),
        1200,
    );
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.next_timeout(), Some(2200));
    // No answer this time: close.
    c.handle_timeout(2200);
    drain(&mut c);
    c.handle_timeout(2700);
    assert_eq!(drain(&mut c), vec![Output::Close]);
    assert!(c.is_closed());
}

fn tur_acking(itt: u32, cmd_sn: u32, exp_stat_sn: u32) -> iscsi_wire::Pdu {
    let mut p = tur(itt, cmd_sn);
    if let Bhs::ScsiCommand(x) = &mut p.bhs {
        x.exp_stat_sn = exp_stat_sn;
    }
    p
}

#[test]
fn unread_statuses_follow_exp_stat_sn() {
    let mut c = logged_in();
    let login_unread = c.unread_statuses();
    assert!(login_unread > 0, "login responses are not acknowledged yet");
    let mut stat_sns = Vec::new();
    for i in 0..5u32 {
        c.handle_pdu(tur(i + 1, FIRST_CMD_SN + i), 10);
        let t = executed(&drain(&mut c));
        c.complete(t[0].id, ScsiResult::default());
        let Bhs::ScsiResponse(r) = &sent(&drain(&mut c))[0].bhs else {
            panic!()
        };
        stat_sns.push(r.stat_sn);
    }
    assert_eq!(c.unread_statuses(), login_unread + 5);
    // ExpStatSN = the third status: it and the two after it are unread.
    c.handle_pdu(tur_acking(6, FIRST_CMD_SN + 5, stat_sns[2]), 10);
    assert_eq!(c.unread_statuses(), 3);
    // An ExpStatSN beyond what was sent, or an older one, moves nothing.
    c.handle_pdu(tur_acking(7, FIRST_CMD_SN + 6, stat_sns[4] + 100), 10);
    c.handle_pdu(tur_acking(8, FIRST_CMD_SN + 7, stat_sns[0]), 10);
    assert_eq!(c.unread_statuses(), 3);
    c.handle_pdu(tur_acking(9, FIRST_CMD_SN + 8, stat_sns[4] + 1), 10);
    assert_eq!(c.unread_statuses(), 0, "everything read");
}
