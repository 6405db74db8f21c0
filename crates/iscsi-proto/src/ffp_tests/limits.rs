//! The limits of `limits.rs`: the write data budget, refused oversized writes, the Data-Out
//! timeout and the session gate.

use std::sync::{Arc, Mutex};

use iscsi_wire::{Bhs, Pdu, R2t, ScsiResponse};

use crate::login_status;
use crate::testutil::*;
use crate::{Connection, Limits, Output, ScsiResult, SessionGate, SessionInfo};

fn r2ts(outs: &[Output]) -> Vec<R2t> {
    sent(outs)
        .into_iter()
        .filter_map(|p| match p.bhs {
            Bhs::R2t(r) => Some(r),
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

/// (sense key, ASC, ASCQ) of a SCSI Response data segment (2-byte length, fixed format).
fn sense_of(data: &[u8]) -> (u8, u8, u8) {
    (data[2 + 2] & 0x0f, data[2 + 12], data[2 + 13])
}

fn bytes(start: usize, n: usize) -> Vec<u8> {
    (start..start + n).map(|i| (i % 251) as u8).collect()
}

/// Solicited writes only, 16 KiB bursts, four R2Ts at a time.
const SOLICITED: &[(&str, &str)] = &[
    ("InitialR2T", "Yes"),
    ("ImmediateData", "No"),
    ("MaxBurstLength", "16384"),
    ("MaxRecvDataSegmentLength", "16384"),
    ("MaxOutstandingR2T", "4"),
];

fn with_budget(budget: u64, keys: &[(&str, &str)]) -> Connection {
    let limits = Limits {
        write_budget: budget,
        ..Limits::default()
    };
    login_with(limits, keys).0
}

/// Send every R2T of `r` its data (offsets relative to the command) at time `now`.
fn answer(c: &mut Connection, itt: u32, r: &[R2t], now: u64) -> Vec<Output> {
    let mut outs = Vec::new();
    for x in r {
        let off = x.buffer_offset as usize;
        let len = x.desired_len as usize;
        c.handle_pdu(
            data_out(itt, x.ttt, 0, x.buffer_offset, true, bytes(off, len)),
            now,
        );
        outs.extend(drain(c));
    }
    outs
}

#[test]
fn writes_wait_for_the_budget_in_arrival_order() {
    let mut c = with_budget(64 * 1024, SOLICITED);
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 48 * 1024, true, vec![]), 10);
    let a = r2ts(&drain(&mut c));
    assert_eq!(a.len(), 3, "A is solicited at once");
    assert_eq!(c.write_data_reserved(), 48 * 1024);
    // B does not fit beside A: nothing solicited, nothing reserved for it.
    c.handle_pdu(write_cmd(2, FIRST_CMD_SN + 1, 32 * 1024, true, vec![]), 11);
    assert!(r2ts(&drain(&mut c)).is_empty());
    // C (small) would fit, but arrives after B: it waits too.
    c.handle_pdu(write_cmd(3, FIRST_CMD_SN + 2, 4096, true, vec![]), 12);
    assert!(r2ts(&drain(&mut c)).is_empty());
    assert_eq!(c.write_data_reserved(), 48 * 1024);
    let outs = answer(&mut c, 1, &a, 13);
    let t = executed(&outs).remove(0);
    assert_eq!(t.data_out, bytes(0, 48 * 1024));
    // Still executing: A holds its budget until its result.
    assert!(r2ts(&outs).is_empty());
    c.complete(t.id, ScsiResult::default());
    let outs = drain(&mut c);
    assert!(response(&outs).is_some());
    let r = r2ts(&outs);
    let itts: Vec<u32> = r.iter().map(|x| x.itt).collect();
    assert_eq!(itts, vec![2, 2, 3], "B then C admitted: {itts:?}");
    assert_eq!(c.write_data_reserved(), 36 * 1024);
    assert_eq!(c.tasks_in_flight(), 2);
}

#[test]
fn a_write_longer_than_the_budget_is_refused_at_once() {
    let mut c = with_budget(64 * 1024, SOLICITED);
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 1 << 30, true, vec![]), 10);
    let outs = drain(&mut c);
    assert!(r2ts(&outs).is_empty());
    assert!(executed(&outs).is_empty());
    let (resp, sense) = response(&outs).expect("response");
    assert_eq!(resp.status, 2);
    assert_eq!(sense_of(&sense), (0x05, 0x24, 0x00), "INVALID FIELD IN CDB");
    assert_eq!(c.tasks_in_flight(), 0);
    assert_eq!(c.write_data_reserved(), 0);
    // The session goes on.
    c.handle_pdu(write_cmd(2, FIRST_CMD_SN + 1, 4096, true, vec![]), 11);
    assert_eq!(r2ts(&drain(&mut c)).len(), 1);
}

#[test]
fn a_refused_write_takes_its_unsolicited_data_first_and_keeps_none() {
    let keys = [
        ("InitialR2T", "No"),
        ("ImmediateData", "Yes"),
        ("FirstBurstLength", "16384"),
        ("MaxBurstLength", "16384"),
        ("MaxRecvDataSegmentLength", "8192"),
    ];
    let mut c = with_budget(64 * 1024, &keys);
    c.handle_pdu(
        write_cmd(1, FIRST_CMD_SN, 1 << 20, false, bytes(0, 8192)),
        10,
    );
    assert!(drain(&mut c).is_empty(), "unsolicited data still to come");
    let held: usize = c.tasks.iter().map(|t| t.data.capacity()).sum();
    assert_eq!(held, 0, "immediate data of a refused write is dropped");
    c.handle_pdu(
        data_out(1, 0xffff_ffff, 0, 8192, true, bytes(8192, 8192)),
        11,
    );
    let outs = drain(&mut c);
    assert!(executed(&outs).is_empty());
    let (resp, sense) = response(&outs).expect("response");
    assert_eq!((resp.itt, resp.status), (1, 2));
    assert_eq!(sense_of(&sense), (0x05, 0x24, 0x00));
    assert_eq!(c.tasks_in_flight(), 0);
}

#[test]
fn huge_negotiated_lengths_allocate_only_what_arrives() {
    let limits = Limits {
        max_recv_data_segment: 0x00ff_ffff,
        max_burst: 0x00ff_ffff,
        first_burst: 0x00ff_ffff,
        ..Limits::default()
    };
    let keys = [
        ("InitialR2T", "Yes"),
        ("ImmediateData", "No"),
        ("MaxBurstLength", "16777215"),
        ("FirstBurstLength", "16777215"),
        ("MaxRecvDataSegmentLength", "16777215"),
    ];
    let (mut c, _) = login_with(limits, &keys);
    assert_eq!(c.params().max_burst, 0x00ff_ffff);
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 16 << 20, true, vec![]), 10);
    let r = r2ts(&drain(&mut c));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].desired_len, 0x00ff_ffff, "one burst of 16 MiB - 1");
    for i in 0..4u32 {
        let off = i * 512;
        c.handle_pdu(data_out(1, r[0].ttt, i, off, false, bytes(0, 512)), 11);
    }
    let t = c.tasks.iter().next().expect("task");
    assert_eq!(t.data.len(), 2048);
    assert!(
        t.data.capacity() <= 4096,
        "capacity {} for 2 KiB received",
        t.data.capacity()
    );
}

#[test]
fn unanswered_r2ts_time_out_and_end_the_command() {
    let limits = Limits {
        data_out_timeout_ms: 1000,
        ..Limits::default()
    };
    let (mut c, _) = login_with(limits, SOLICITED);
    assert_eq!(c.next_timeout(), None);
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 32 * 1024, true, vec![]), 10);
    let r = r2ts(&drain(&mut c));
    assert_eq!(c.next_timeout(), Some(1010));
    // Progress moves the deadline.
    c.handle_pdu(data_out(1, r[0].ttt, 0, 0, false, bytes(0, 4096)), 500);
    c.handle_timeout(1010);
    assert!(drain(&mut c).is_empty(), "not yet: data arrived at 500");
    assert_eq!(c.next_timeout(), Some(1500));
    c.handle_timeout(1500);
    let outs = drain(&mut c);
    let (resp, sense) = response(&outs).expect("response");
    assert_eq!((resp.itt, resp.status), (1, 2));
    assert_eq!(
        sense_of(&sense),
        (0x0b, 0x4b, 0x06),
        "ABORTED COMMAND / INITIATOR RESPONSE TIMEOUT"
    );
    assert!(!outs.contains(&Output::Close), "the session stays");
    assert_eq!(c.tasks_in_flight(), 0);
    assert_eq!(c.write_data_reserved(), 0);
    assert_eq!(c.next_timeout(), None);
    // Late data for it is rejected like any unknown task's.
    c.handle_pdu(data_out(1, r[1].ttt, 0, 16384, true, bytes(0, 512)), 1600);
    let rej = sent(&drain(&mut c));
    assert!(matches!(rej[0].bhs, Bhs::Reject(ref x) if x.reason == 0x09));
}

#[test]
fn writes_waiting_for_budget_do_not_time_out() {
    let limits = Limits {
        data_out_timeout_ms: 1000,
        write_budget: 64 * 1024,
        ..Limits::default()
    };
    let (mut c, _) = login_with(limits, SOLICITED);
    c.handle_pdu(write_cmd(1, FIRST_CMD_SN, 64 * 1024, true, vec![]), 10);
    let a = r2ts(&drain(&mut c));
    c.handle_pdu(write_cmd(2, FIRST_CMD_SN + 1, 4096, true, vec![]), 20);
    assert!(r2ts(&drain(&mut c)).is_empty());
    // A's initiator goes silent: A times out, B is admitted with a fresh deadline.
    c.handle_timeout(1010);
    let outs = drain(&mut c);
    let (resp, _) = response(&outs).expect("A ended");
    assert_eq!(resp.itt, 1);
    let b = r2ts(&outs);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].itt, 2);
    assert_eq!(c.next_timeout(), Some(2010));
    let outs = answer(&mut c, 2, &b, 1500);
    assert_eq!(executed(&outs).len(), 1);
    // The timer may wake once more for nothing, then stays off.
    c.handle_timeout(2010);
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.next_timeout(), None, "nothing owed any more");
    drop(a);
}

/// A gate that records what it was asked and answers `verdict`.
#[derive(Debug)]
struct Gate {
    verdict: Result<(), u16>,
    seen: Mutex<Vec<SessionInfo>>,
}

impl SessionGate for Gate {
    fn admit(&self, info: &SessionInfo) -> Result<(), u16> {
        if let Ok(mut s) = self.seen.lock() {
            s.push(info.clone());
        }
        self.verdict
    }
}

/// Run a normal login through `gate`; the outputs of the last request.
fn login_through(gate: Arc<Gate>) -> (Connection, Vec<Output>) {
    let mut c = Connection::new(cfg(), 0);
    c.set_session_gate(gate);
    let first = kv(&[
        ("InitiatorName", INITIATOR),
        ("SessionType", "Normal"),
        ("TargetName", TARGET),
        ("AuthMethod", "None"),
    ]);
    c.handle_pdu(login_pdu(0, 1, true, false, first), 1);
    drain(&mut c);
    c.handle_pdu(login_pdu(1, 3, true, false, kv(&[])), 2);
    let outs = drain(&mut c);
    (c, outs)
}

#[test]
fn the_session_gate_refuses_with_a_login_status() {
    let gate = Arc::new(Gate {
        verdict: Err(login_status::OUT_OF_RESOURCES),
        seen: Mutex::new(Vec::new()),
    });
    let (c, outs) = login_through(gate.clone());
    let p: Vec<Pdu> = sent(&outs);
    let r = login_resp(&p[0]);
    assert_eq!((r.status_class, r.status_detail), (0x03, 0x02));
    assert!(!outs.iter().any(|o| matches!(o, Output::LoggedIn(_))));
    assert_eq!(outs.last(), Some(&Output::Close));
    assert!(c.is_closed());
    let seen = gate.seen.lock().expect("lock");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].initiator_name, INITIATOR);
    assert_eq!(seen[0].target_name.as_deref(), Some(TARGET));
    assert_eq!(seen[0].isid, ISID);
}

#[test]
fn the_session_gate_admits() {
    let gate = Arc::new(Gate {
        verdict: Ok(()),
        seen: Mutex::new(Vec::new()),
    });
    let (_, outs) = login_through(gate.clone());
    let r = login_resp(&sent(&outs)[0]);
    assert_eq!((r.status_class, r.status_detail, r.nsg), (0, 0, 3));
    assert!(matches!(outs.last(), Some(Output::LoggedIn(_))));
    assert_eq!(gate.seen.lock().expect("lock").len(), 1);
}
