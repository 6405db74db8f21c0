use iscsi_wire::{
    lun_from_index, Bhs, LogoutRequest, LogoutResponse, Pdu, TaskMgmtRequest, TaskMgmtResponse,
};

use crate::testutil::*;
use crate::types::{tmf_function as f, tmf_response as r};
use crate::{Connection, Limits, Output, ScsiResult, TmfRequest};

fn tmf(itt: u32, function: u8, lun: u64, ref_task_tag: u32, cmd_sn: u32, ref_cmd_sn: u32) -> Pdu {
    Pdu::new(
        TaskMgmtRequest {
            immediate: true,
            function,
            lun: lun_from_index(lun),
            itt,
            ref_task_tag,
            cmd_sn,
            exp_stat_sn: 0,
            ref_cmd_sn,
            exp_data_sn: 0,
        },
        vec![],
    )
}

fn tmf_resp(outs: &[Output]) -> TaskMgmtResponse {
    sent(outs)
        .into_iter()
        .find_map(|p| match p.bhs {
            Bhs::TaskMgmtResponse(r) => Some(r),
            _ => None,
        })
        .expect("TMF response")
}

fn logout(itt: u32, reason: u8, cid: u16, cmd_sn: u32) -> Pdu {
    Pdu::new(
        LogoutRequest {
            immediate: true,
            reason,
            itt,
            cid,
            cmd_sn,
            exp_stat_sn: 0,
        },
        vec![],
    )
}

fn logout_resp(outs: &[Output]) -> LogoutResponse {
    sent(outs)
        .into_iter()
        .find_map(|p| match p.bhs {
            Bhs::LogoutResponse(r) => Some(r),
            _ => None,
        })
        .expect("Logout response")
}

fn r2t_session() -> Connection {
    login_with(Limits::default(), &[("InitialR2T", "Yes")]).0
}

#[test]
fn abort_task_waiting_for_data_out() {
    let mut c = r2t_session();
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 4096, true, vec![]), 10);
    drain(&mut c);
    c.handle_pdu(
        tmf(50, f::ABORT_TASK, 0, 1, FIRST_CMD_SN + 1, FIRST_CMD_SN),
        11,
    );
    let outs = drain(&mut c);
    assert_eq!(outs.len(), 1);
    let t = tmf_resp(&outs);
    assert_eq!((t.itt, t.response), (50, r::FUNCTION_COMPLETE));
    // The task is gone: its Data-Out is now unknown.
    c.handle_pdu(data_out(1, 1, 0, 0, true, vec![0; 16]), 12);
    let outs = drain(&mut c);
    assert!(matches!(sent(&outs)[0].bhs, Bhs::Reject(_)));
}

#[test]
fn abort_executing_task_waits_and_suppresses_its_response() {
    let mut c = logged_in();
    c.handle_pdu(read_cmd(1, FIRST_CMD_SN, 512), 10);
    let t = executed(&drain(&mut c)).remove(0);
    assert!(!c.task_aborted(t.id));
    c.handle_pdu(
        tmf(50, f::ABORT_TASK, 0, 1, FIRST_CMD_SN + 1, FIRST_CMD_SN),
        11,
    );
    assert!(
        drain(&mut c).is_empty(),
        "response waits for the running task"
    );
    assert!(c.task_aborted(t.id), "the transport can see the abort");
    c.complete(
        t.id,
        ScsiResult {
            data_in: vec![0; 512],
            ..Default::default()
        },
    );
    let outs = drain(&mut c);
    assert_eq!(outs.len(), 1, "no Data-In for the aborted task: {outs:?}");
    assert_eq!(tmf_resp(&outs).response, r::FUNCTION_COMPLETE);
}

#[test]
fn abort_unknown_task_refcmdsn_rules() {
    let mut c = logged_in();
    // RefCmdSN already passed (outside the window): task does not exist.
    c.handle_pdu(tur(1, FIRST_CMD_SN), 10);
    let t = executed(&drain(&mut c)).remove(0);
    c.complete(t.id, ScsiResult::default());
    drain(&mut c);
    c.handle_pdu(
        tmf(50, f::ABORT_TASK, 0, 1, FIRST_CMD_SN + 1, FIRST_CMD_SN),
        11,
    );
    assert_eq!(tmf_resp(&drain(&mut c)).response, r::TASK_DOES_NOT_EXIST);
    // A command that never arrived (CmdSN gap), later commands held behind it.
    c.handle_pdu(tur(3, FIRST_CMD_SN + 2), 12);
    assert!(drain(&mut c).is_empty());
    c.handle_pdu(
        tmf(51, f::ABORT_TASK, 0, 2, FIRST_CMD_SN + 3, FIRST_CMD_SN + 1),
        13,
    );
    let outs = drain(&mut c);
    assert_eq!(tmf_resp(&outs).response, r::FUNCTION_COMPLETE);
    assert_eq!(executed(&outs).len(), 1, "gap filled: held command runs");
}

#[test]
fn abort_held_task() {
    let mut c = logged_in();
    c.handle_pdu(tur(2, FIRST_CMD_SN + 1), 10);
    c.handle_pdu(
        tmf(50, f::ABORT_TASK, 0, 2, FIRST_CMD_SN + 2, FIRST_CMD_SN + 1),
        11,
    );
    assert_eq!(tmf_resp(&drain(&mut c)).response, r::FUNCTION_COMPLETE);
    c.handle_pdu(tur(1, FIRST_CMD_SN), 12);
    let outs = drain(&mut c);
    assert_eq!(executed(&outs).len(), 1, "only the first command runs");
}

#[test]
fn lun_reset_involves_scsi_layer() {
    let mut c = logged_in();
    let mut p = read_cmd(1, FIRST_CMD_SN, 512);
    if let Bhs::ScsiCommand(sc) = &mut p.bhs {
        sc.lun = lun_from_index(2);
    }
    c.handle_pdu(p, 10);
    let t = executed(&drain(&mut c)).remove(0);
    c.handle_pdu(
        tmf(
            60,
            f::LOGICAL_UNIT_RESET,
            2,
            0xffff_ffff,
            FIRST_CMD_SN + 1,
            0,
        ),
        11,
    );
    let outs = drain(&mut c);
    assert_eq!(
        outs,
        vec![Output::TaskMgmt(TmfRequest {
            itt: 60,
            function: 5,
            lun: 2,
            ref_task_tag: 0xffff_ffff
        })]
    );
    c.task_mgmt_done(60, r::FUNCTION_COMPLETE);
    assert!(
        drain(&mut c).is_empty(),
        "still waiting for the aborted task"
    );
    c.complete(t.id, ScsiResult::default());
    let outs = drain(&mut c);
    assert_eq!(outs.len(), 1);
    assert_eq!(tmf_resp(&outs).response, r::FUNCTION_COMPLETE);
}

#[test]
fn abort_task_set_only_that_lun() {
    let mut c = r2t_session();
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 4096, true, vec![]), 10);
    let mut p = write_cmd(2, FIRST_CMD_SN + 1, 4096, true, vec![]);
    if let Bhs::ScsiCommand(sc) = &mut p.bhs {
        sc.lun = lun_from_index(1);
    }
    c.handle_pdu(p, 10);
    drain(&mut c);
    c.handle_pdu(tmf(70, f::ABORT_TASK_SET, 0, 0, FIRST_CMD_SN + 2, 0), 11);
    assert_eq!(tmf_resp(&drain(&mut c)).response, r::FUNCTION_COMPLETE);
    // Task 2 (LUN 1) survives.
    c.handle_pdu(
        tmf(71, f::ABORT_TASK, 1, 2, FIRST_CMD_SN + 2, FIRST_CMD_SN + 1),
        12,
    );
    assert_eq!(tmf_resp(&drain(&mut c)).response, r::FUNCTION_COMPLETE);
    c.handle_pdu(
        tmf(72, f::ABORT_TASK, 0, 1, FIRST_CMD_SN + 2, FIRST_CMD_SN),
        12,
    );
    assert_eq!(tmf_resp(&drain(&mut c)).response, r::TASK_DOES_NOT_EXIST);
}

#[test]
fn cold_reset_closes_after_response() {
    let mut c = logged_in();
    c.handle_pdu(tmf(80, f::TARGET_COLD_RESET, 0, 0, FIRST_CMD_SN, 0), 10);
    let outs = drain(&mut c);
    assert!(matches!(
        outs[0],
        Output::TaskMgmt(TmfRequest { function: 7, .. })
    ));
    c.task_mgmt_done(80, r::FUNCTION_COMPLETE);
    let outs = drain(&mut c);
    assert_eq!(tmf_resp(&outs).response, 0);
    assert_eq!(outs.last(), Some(&Output::Close));
}

#[test]
fn unsupported_functions() {
    let mut c = logged_in();
    for (func, want) in [
        (f::CLEAR_ACA, r::NOT_SUPPORTED),
        (f::TASK_REASSIGN, r::REASSIGN_NOT_SUPPORTED),
        (f::QUERY_ASYNC_EVENT, r::NOT_SUPPORTED),
        (f::I_T_NEXUS_RESET, r::NOT_SUPPORTED),
        (99, r::REJECTED),
    ] {
        c.handle_pdu(tmf(90, func, 0, 1, FIRST_CMD_SN, 0), 10);
        assert_eq!(tmf_resp(&drain(&mut c)).response, want, "function {func}");
    }
}

#[test]
fn query_task_and_task_set() {
    let mut c = r2t_session();
    // Nothing in the task set yet.
    c.handle_pdu(tmf(90, f::QUERY_TASK, 0, 1, FIRST_CMD_SN, 0), 10);
    assert_eq!(tmf_resp(&drain(&mut c)).response, r::FUNCTION_COMPLETE);
    c.handle_pdu(tmf(91, f::QUERY_TASK_SET, 0, 0, FIRST_CMD_SN, 0), 10);
    assert_eq!(tmf_resp(&drain(&mut c)).response, r::FUNCTION_COMPLETE);
    // A WRITE waiting for its Data-Out exists, on its LUN only.
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 4096, true, vec![]), 10);
    drain(&mut c);
    c.handle_pdu(tmf(92, f::QUERY_TASK, 0, 1, FIRST_CMD_SN + 1, 0), 11);
    assert_eq!(tmf_resp(&drain(&mut c)).response, r::FUNCTION_SUCCEEDED);
    c.handle_pdu(tmf(93, f::QUERY_TASK, 0, 2, FIRST_CMD_SN + 1, 0), 11);
    assert_eq!(tmf_resp(&drain(&mut c)).response, r::FUNCTION_COMPLETE);
    c.handle_pdu(tmf(94, f::QUERY_TASK_SET, 0, 0, FIRST_CMD_SN + 1, 0), 11);
    assert_eq!(tmf_resp(&drain(&mut c)).response, r::FUNCTION_SUCCEEDED);
    c.handle_pdu(tmf(95, f::QUERY_TASK_SET, 3, 0, FIRST_CMD_SN + 1, 0), 11);
    assert_eq!(tmf_resp(&drain(&mut c)).response, r::FUNCTION_COMPLETE);
    // A command held behind a CmdSN gap exists too.
    c.handle_pdu(read_cmd(7, FIRST_CMD_SN + 2, 512), 12);
    drain(&mut c);
    c.handle_pdu(tmf(96, f::QUERY_TASK, 0, 7, FIRST_CMD_SN + 1, 0), 12);
    assert_eq!(tmf_resp(&drain(&mut c)).response, r::FUNCTION_SUCCEEDED);
    // Once aborted, a task no longer exists.
    c.handle_pdu(
        tmf(97, f::ABORT_TASK, 0, 1, FIRST_CMD_SN + 1, FIRST_CMD_SN),
        13,
    );
    drain(&mut c);
    c.handle_pdu(tmf(98, f::QUERY_TASK, 0, 1, FIRST_CMD_SN + 1, 0), 13);
    assert_eq!(tmf_resp(&drain(&mut c)).response, r::FUNCTION_COMPLETE);
}

#[test]
fn logout_close_session() {
    let mut c = logged_in();
    c.handle_pdu(logout(5, 0, 1, FIRST_CMD_SN), 10);
    let outs = drain(&mut c);
    let l = logout_resp(&outs);
    assert_eq!((l.response, l.itt, l.stat_sn), (0, 5, 502));
    assert_eq!(outs.last(), Some(&Output::Close));
    assert!(c.is_closed());
}

#[test]
fn logout_with_commands_in_flight() {
    let mut c = r2t_session();
    c.handle_pdu(read_cmd(1, FIRST_CMD_SN, 512), 10);
    let t = executed(&drain(&mut c)).remove(0);
    c.handle_pdu(write_cmd(2, FIRST_CMD_SN + 1, 4096, true, vec![]), 10);
    drain(&mut c);
    c.handle_pdu(logout(5, 1, 1, FIRST_CMD_SN + 2), 11);
    assert!(drain(&mut c).is_empty(), "waits for the running read");
    // Data-Out for the dropped write is ignored now.
    c.handle_pdu(data_out(2, 1, 0, 0, true, vec![0; 4096]), 12);
    assert!(drain(&mut c).is_empty());
    c.complete(
        t.id,
        ScsiResult {
            data_in: vec![1; 512],
            ..Default::default()
        },
    );
    let outs = drain(&mut c);
    let kinds: Vec<u8> = sent(&outs).iter().map(|p| p.bhs.opcode().0).collect();
    assert_eq!(
        kinds,
        vec![0x25, 0x26],
        "Data-In with status, then Logout Response"
    );
    assert_eq!(logout_resp(&outs).response, 0);
    assert_eq!(outs.last(), Some(&Output::Close));
}

#[test]
fn logout_recovery_and_wrong_cid() {
    let mut c = logged_in();
    c.handle_pdu(logout(5, 2, 1, FIRST_CMD_SN), 10);
    let outs = drain(&mut c);
    assert_eq!(logout_resp(&outs).response, 2);
    assert!(!c.is_closed());
    c.handle_pdu(logout(6, 1, 9, FIRST_CMD_SN), 10);
    let outs = drain(&mut c);
    assert_eq!(logout_resp(&outs).response, 1);
    assert!(!c.is_closed());
    c.handle_pdu(logout(7, 5, 1, FIRST_CMD_SN), 10);
    let outs = drain(&mut c);
    assert!(matches!(sent(&outs)[0].bhs, Bhs::Reject(_)));
}

#[test]
fn target_requests_logout() {
    let mut c = logged_in();
    c.request_logout(1000, 5);
    let outs = drain(&mut c);
    let Bhs::AsyncMessage(m) = &sent(&outs)[0].bhs else {
        panic!("{outs:?}")
    };
    assert_eq!((m.event, m.param3, m.stat_sn), (1, 5, 502));
    assert_eq!(c.next_timeout(), Some(6000));
    c.handle_timeout(5999);
    assert!(drain(&mut c).is_empty());
    c.handle_timeout(6000);
    assert_eq!(drain(&mut c), vec![Output::Close]);
}

#[test]
fn lun_reset_discards_held_commands_of_that_lun_only() {
    let mut c = logged_in();
    // CmdSN FIRST is missing; two commands wait behind the gap.
    c.handle_pdu(tur(2, FIRST_CMD_SN + 1), 10);
    let mut p = tur(3, FIRST_CMD_SN + 2);
    if let Bhs::ScsiCommand(sc) = &mut p.bhs {
        sc.lun = lun_from_index(1);
    }
    c.handle_pdu(p, 10);
    c.handle_pdu(
        tmf(
            60,
            f::LOGICAL_UNIT_RESET,
            0,
            0xffff_ffff,
            FIRST_CMD_SN + 3,
            0,
        ),
        11,
    );
    drain(&mut c);
    c.task_mgmt_done(60, r::FUNCTION_COMPLETE);
    assert_eq!(tmf_resp(&drain(&mut c)).response, 0);
    c.handle_pdu(tur(1, FIRST_CMD_SN), 12);
    let ex = executed(&drain(&mut c));
    assert_eq!(ex.len(), 2, "the gap command and the LUN 1 command run");
    assert_eq!(ex[1].lun, 1);
}
