//! Task management against the real `ustgt` binary, driven PDU by PDU with the test initiator:
//! an aborted write never reaches the medium after its task management response, QUERY TASK
//! and QUERY TASK SET see exactly the tasks in the task set, and a SANITIZE that runs in the
//! background leaves its connection (and task management) working meanwhile.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use ustgt_initiator::wire::{lun_from_index, Bhs, DataOut, Pdu, ScsiCommand};
use ustgt_initiator::{cdb, LoginOptions, ScsiOutcome, ScsiRequest, Session};

const BS: u32 = 512;
const WAIT: Duration = Duration::from_secs(5);

/// Task management function codes and responses (RFC 7143 11.5.1, 11.6.1; RFC 7144).
const ABORT_TASK: u8 = 1;
const QUERY_TASK: u8 = 9;
const QUERY_TASK_SET: u8 = 10;
const FUNCTION_COMPLETE: u8 = 0;
const FUNCTION_SUCCEEDED: u8 = 7;

/// A session where every WRITE waits for an R2T before any data (InitialR2T=Yes, no
/// immediate data), its power-on unit attention consumed.
fn r2t_session(srv: &Server) -> Session {
    let opts = LoginOptions::normal(&srv.iqn())
        .key("InitialR2T", "Yes")
        .key("ImmediateData", "No");
    let mut s = Session::login(srv.addr(), opts).expect("login");
    s.clear_unit_attention(0).expect("TEST UNIT READY");
    s
}

fn ok(out: &ScsiOutcome) {
    assert!(out.good(), "command failed: {}", out.describe());
}

fn write(s: &mut Session, lba: u64, data: &[u8]) {
    ok(&s.write16(0, lba, data, BS).expect("WRITE(16)"));
}

fn read(s: &mut Session, lba: u64, blocks: u32) -> Vec<u8> {
    let out = s.read16(0, lba, blocks, BS).expect("READ(16)");
    ok(&out);
    out.data_in
}

/// Sends a WRITE(16) of `blocks` blocks at `lba` without data and without tracking it;
/// returns its ITT and CmdSN.
fn write_command(s: &mut Session, lba: u64, blocks: u32) -> (u32, u32) {
    let (itt, cmd_sn) = (s.alloc_itt(), s.take_cmd_sn());
    let cmd = ScsiCommand {
        immediate: false,
        final_: true,
        read: false,
        write: true,
        attr: 1,
        lun: lun_from_index(0),
        itt,
        expected_data_len: blocks * BS,
        cmd_sn,
        exp_stat_sn: s.exp_stat_sn(),
        cdb: cdb::write16(lba, blocks),
    };
    s.send_pdu(&Pdu::new(cmd, Vec::new())).expect("send WRITE");
    (itt, cmd_sn)
}

/// Waits for the R2T of the command with this ITT; returns its target transfer tag.
fn r2t_for(s: &mut Session, itt: u32) -> u32 {
    match s.recv_pdu(WAIT).expect("an R2T").bhs {
        Bhs::R2t(r) if r.itt == itt => r.ttt,
        other => panic!("expected an R2T for ITT {itt:#x}, got {other:?}"),
    }
}

/// The Data-Out that answers an R2T with all of `data`.
fn data_out(itt: u32, ttt: u32, exp_stat_sn: u32, data: Vec<u8>) -> Pdu {
    let d = DataOut {
        final_: true,
        lun: lun_from_index(0),
        itt,
        ttt,
        exp_stat_sn,
        data_sn: 0,
        buffer_offset: 0,
    };
    Pdu::new(d, data)
}

fn task_mgmt(s: &mut Session, function: u8, itt: u32, ref_cmd_sn: u32) -> u8 {
    s.task_mgmt(function, 0, itt, ref_cmd_sn)
        .expect("task management response")
        .response
}

#[test]
fn a_write_aborted_while_waiting_for_data_out_never_reaches_the_medium() {
    let srv = Server::start(&["--listen", "127.0.0.1:0", "ram:16M"]);
    let mut s = r2t_session(&srv);
    let old = vec![0x11u8; 8 * BS as usize];
    write(&mut s, 100, &old);
    let (itt, cmd_sn) = write_command(&mut s, 100, 8);
    let ttt = r2t_for(&mut s, itt);
    assert_eq!(
        task_mgmt(&mut s, QUERY_TASK, itt, cmd_sn),
        FUNCTION_SUCCEEDED
    );
    assert_eq!(
        task_mgmt(&mut s, ABORT_TASK, itt, cmd_sn),
        FUNCTION_COMPLETE
    );
    assert_eq!(
        task_mgmt(&mut s, QUERY_TASK, itt, cmd_sn),
        FUNCTION_COMPLETE
    );
    // The Data-Out arriving after the abort is refused, not written.
    let late = data_out(itt, ttt, s.exp_stat_sn(), vec![0x22; 8 * BS as usize]);
    s.send_pdu(&late).expect("send a late Data-Out");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        read(&mut s, 100, 8) == old,
        "the aborted write reached the medium"
    );
    ok(&s.test_unit_ready(0).expect("TUR"));
}

#[test]
fn a_write_held_behind_a_cmdsn_gap_and_aborted_is_never_executed() {
    let srv = Server::start(&["--listen", "127.0.0.1:0", "ram:16M"]);
    let opts = LoginOptions::normal(&srv.iqn());
    let mut s = Session::login(srv.addr(), opts).expect("login");
    s.clear_unit_attention(0).expect("TEST UNIT READY");
    let old = vec![0x33u8; BS as usize];
    write(&mut s, 7, &old);
    // Skip one CmdSN: the WRITE (with all its data as immediate data) waits for the gap.
    let gap = s.take_cmd_sn();
    let (itt, cmd_sn) = (s.alloc_itt(), s.take_cmd_sn());
    let cmd = ScsiCommand {
        immediate: false,
        final_: true,
        read: false,
        write: true,
        attr: 1,
        lun: lun_from_index(0),
        itt,
        expected_data_len: BS,
        cmd_sn,
        exp_stat_sn: s.exp_stat_sn(),
        cdb: cdb::write16(7, 1),
    };
    s.send_pdu(&Pdu::new(cmd, vec![0x44; BS as usize]))
        .expect("send WRITE");
    assert_eq!(task_mgmt(&mut s, QUERY_TASK_SET, 0, 0), FUNCTION_SUCCEEDED);
    assert_eq!(
        task_mgmt(&mut s, ABORT_TASK, itt, cmd_sn),
        FUNCTION_COMPLETE
    );
    assert_eq!(task_mgmt(&mut s, QUERY_TASK_SET, 0, 0), FUNCTION_COMPLETE);
    // Fill the gap: the window moves on, and the aborted WRITE stays unexecuted.
    let tur = ScsiCommand {
        immediate: false,
        final_: true,
        read: false,
        write: false,
        attr: 1,
        lun: lun_from_index(0),
        itt: s.alloc_itt(),
        expected_data_len: 0,
        cmd_sn: gap,
        exp_stat_sn: s.exp_stat_sn(),
        cdb: {
            let mut c = [0u8; 16];
            c[..6].copy_from_slice(&cdb::test_unit_ready());
            c
        },
    };
    s.send_pdu(&Pdu::new(tur, Vec::new())).expect("send TUR");
    match s.recv_pdu(WAIT).expect("TUR response").bhs {
        Bhs::ScsiResponse(r) => assert_eq!(r.status, 0, "{r:?}"),
        other => panic!("expected the TUR's response, got {other:?}"),
    }
    assert!(read(&mut s, 7, 1) == old, "the aborted write was executed");
}

#[test]
fn a_write_aborted_while_the_store_works_completes_before_the_tmf_response() {
    // Every store operation takes 300 ms: the ABORT TASK arrives while the WRITE runs.
    let srv = Server::start(&["--listen", "127.0.0.1:0", "ram:16M,inject-delay-ms=300"]);
    let mut s = r2t_session(&srv);
    let (itt, cmd_sn) = write_command(&mut s, 40, 2);
    let ttt = r2t_for(&mut s, itt);
    let new = vec![0x55u8; 2 * BS as usize];
    s.send_pdu(&data_out(itt, ttt, s.exp_stat_sn(), new.clone()))
        .expect("send Data-Out");
    std::thread::sleep(Duration::from_millis(50));
    let tmf_itt = s.alloc_itt();
    let abort = ustgt_initiator::wire::TaskMgmtRequest {
        immediate: true,
        function: ABORT_TASK,
        lun: lun_from_index(0),
        itt: tmf_itt,
        ref_task_tag: itt,
        cmd_sn: s.cmd_sn(),
        exp_stat_sn: s.exp_stat_sn(),
        ref_cmd_sn: cmd_sn,
        exp_data_sn: 0,
    };
    s.send_pdu(&Pdu::new(abort, Vec::new()))
        .expect("send ABORT TASK");
    // Whatever the order of the replies, once the TMF response is in, the medium holds what
    // it will hold from then on: the write is complete (the store ran it), not pending.
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no task management response");
        match s.recv_pdu(WAIT).expect("a reply").bhs {
            Bhs::TaskMgmtResponse(r) if r.itt == tmf_itt => {
                assert!(matches!(r.response, 0 | 1), "{r:?}");
                break;
            }
            Bhs::ScsiResponse(r) if r.itt == itt => assert_eq!(r.status, 0, "{r:?}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let first = read(&mut s, 40, 2);
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        read(&mut s, 40, 2) == first,
        "the medium changed after the TMF response"
    );
    assert!(
        first == new,
        "the store had written the data before the response"
    );
}

#[test]
fn report_supported_tmfs_lists_the_query_functions() {
    let srv = Server::start(&["--listen", "127.0.0.1:0", "ram:16M"]);
    let mut s = r2t_session(&srv);
    let c = [0xA3, 0x0D, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0];
    let out = s.scsi(ScsiRequest::read(0, &c, 4)).expect("REPORT TMFS");
    ok(&out);
    assert_eq!(out.data_in[0] & 0x04, 0x04, "QTS");
    assert_eq!(out.data_in[1] & 0x02, 0x02, "QTSS");
}

/// SANITIZE (10) with the BLOCK ERASE service action.
fn block_erase(immed: bool) -> [u8; 10] {
    [
        0x48,
        if immed { 0x82 } else { 0x02 },
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]
}

#[test]
fn a_background_sanitize_keeps_its_connection_and_task_management_working() {
    // 16 MiB in 1 MiB steps of 60 ms each: about a second of sanitizing.
    let srv = Server::start(&[
        "--listen",
        "127.0.0.1:0",
        "ram:16M,sanitize,inject-delay-ms=60",
    ]);
    let mut s = r2t_session(&srv);
    write(&mut s, 0, &[0x66; BS as usize]);
    let started = Instant::now();
    let itt = s
        .submit(ScsiRequest::none(0, &block_erase(false)))
        .expect("SANITIZE");
    // The connection's event loop is free: other commands are answered meanwhile.
    let tur = s.test_unit_ready(0).expect("TUR");
    let sense = tur.sense.clone().expect("NOT READY sense");
    assert_eq!(
        (sense.key, sense.asc, sense.ascq),
        (2, 0x04, 0x1B),
        "{}",
        tur.describe()
    );
    ok(&s.inquiry(0, 36).expect("INQUIRY"));
    // Aborting the SANITIZE answers at once; the operation itself goes on.
    let response = s.task_mgmt(ABORT_TASK, 0, itt, 0).expect("ABORT TASK");
    assert_eq!(response.response, FUNCTION_COMPLETE);
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "the abort waited"
    );
    s.forget(itt);
    let not_ready = s.test_unit_ready(0).expect("TUR");
    assert!(
        !not_ready.good(),
        "the sanitize stopped: {}",
        not_ready.describe()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.test_unit_ready(0).expect("TUR").good() {
        assert!(Instant::now() < deadline, "the sanitize never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(read(&mut s, 0, 1).iter().all(|b| *b == 0), "not erased");
    // With IMMED the status comes back before the operation ends.
    ok(&s
        .scsi(ScsiRequest::none(0, &block_erase(true)))
        .expect("SANITIZE IMMED"));
    let sense = s.test_unit_ready(0).expect("TUR").sense.expect("NOT READY");
    assert_eq!((sense.key, sense.asc, sense.ascq), (2, 0x04, 0x1B));
}
