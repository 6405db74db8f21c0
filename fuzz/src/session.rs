//! `session`: the full feature phase of iscsi-proto after a scripted login.
//!
//! Input: four header bytes (limits and the negotiated keys: MaxRecvDataSegmentLength, burst
//! lengths, R2T settings, digests, discovery or write budget and Data-Out timeout, shared
//! Data-In, first CmdSN), then operations:
//! SCSI commands with and without immediate data and AHS, Data-Out (correct, or with one field
//! wrong), "send all outstanding data", NOP-Out, task management, Text, Logout, SNACK, raw bytes,
//! PDUs the target must refuse, decoder errors, timeouts, completions of executed tasks (and of
//! tasks that do not exist, or are done), task management answers. Every PDU is encoded and goes
//! through the decoder, so the engine only sees what could arrive on a socket.
//!
//! Besides the checks of [`crate::outputs`]: Data-In only during a completion, for that task,
//! contiguous, equal to the result's data, never beyond the expected read length; at most one
//! response per task, and exactly one unless the task was hit by task management or the
//! connection closed; write data handed to the SCSI layer is exactly what was sent, at the
//! right offsets, as long as the expected length; no task is executed twice. The write side
//! (R2T sequences, the write budget, the Data-Out timeout, responses without a completion) is
//! checked by [`crate::session_writes`]; QUERY TASK answers by `Session::query_answer`.

use std::collections::{BTreeMap, BTreeSet};

use iscsi_proto::{
    cmdsn::sn_lt, Limits, Output, ScsiResult, TaskId, DEFAULT_WRITE_BUDGET, MIN_WRITE_BUDGET,
};
use iscsi_wire::{
    lun_from_index, Bhs, DataOut, LoginRequest, LogoutRequest, NopIn, NopOut, Pdu, R2t, RawBhs,
    ScsiCommand, SnackRequest, TaskMgmtRequest, TextRequest, WireError,
};

use crate::driver::{Driver, Fed, INITIATOR, ISID, TARGET, TARGET2};
use crate::input::Input;
use crate::login::pair;
use crate::outputs::RESERVED;
use crate::session_writes::{Tmf, Writes};

/// Operation tags (the tag byte modulo 20).
pub mod op {
    /// SCSI command: flags, flags2, itt, length class (+ value), immediate length (u16),
    /// CDB bytes 0 and 1 (+ AHS values).
    pub const CMD: u8 = 0;
    /// Data-Out: target selector, corruption flags, length (u16).
    pub const DATA_OUT: u8 = 1;
    /// Send every outstanding Data-Out correctly.
    pub const AUTO_DATA: u8 = 2;
    /// NOP-Out: flags, itt, length.
    pub const NOP: u8 = 3;
    /// Task management: function, referenced itt, flags, own itt.
    pub const TMF: u8 = 4;
    /// Text: flags, kind, itt.
    pub const TEXT: u8 = 5;
    /// Logout: reason, flags.
    pub const LOGOUT: u8 = 6;
    /// SNACK: type, itt, run.
    pub const SNACK: u8 = 7;
    /// Raw bytes through the decoder: blob.
    pub const RAW: u8 = 8;
    /// Timers: mode, milliseconds (u16).
    pub const TIMEOUT: u8 = 9;
    /// Complete an executed task: selector, status, sense, data mode, length (u16), residual.
    pub const COMPLETE: u8 = 10;
    /// Answer a task management request: selector, response.
    pub const TMF_DONE: u8 = 11;
    /// A decoder error: kind, selector, u32.
    pub const WIRE_ERROR: u8 = 12;
    /// A PDU the target must refuse: kind.
    pub const WRONG: u8 = 13;
    /// Shared Data-In on or off: flag.
    pub const SHARED: u8 = 14;
    /// 0: abort the connection; else an asynchronous logout request within that many seconds.
    pub const ABORT: u8 = 15;
    /// Complete every executed task with GOOD and the expected data.
    pub const COMPLETE_ALL: u8 = 16;
}

/// Data-Out bytes one input may send (see `Session::data_budget`).
pub const DATA_BUDGET: u32 = 32 << 20;

/// Number of operation tags.
pub const OPS: u8 = 17;

/// SCSI command flags.
pub mod cmd_flag {
    /// R bit.
    pub const READ: u8 = 1;
    /// W bit.
    pub const WRITE: u8 = 2;
    /// F bit.
    pub const FINAL: u8 = 4;
    /// I bit.
    pub const IMMEDIATE: u8 = 8;
    /// LUN 1 instead of 0.
    pub const LUN1: u8 = 0x80;
}

/// CDB byte 11 of commands built by the harness; bytes 12..16 hold the command's serial.
pub const MARK: u8 = 0xf7;

/// Length classes of the SCSI command op.
pub mod len_class {
    /// Zero.
    pub const ZERO: u8 = 0;
    /// One byte follows.
    pub const U8: u8 = 1;
    /// A u16 follows.
    pub const U16: u8 = 2;
    /// A u16 follows, shifted left by 8.
    pub const U24: u8 = 3;
    /// A u32 follows.
    pub const U32: u8 = 4;
    /// One byte follows: (1 + b % 64) blocks of 512.
    pub const BLOCKS: u8 = 5;
}

/// The data byte at `off` of everything the harness sends for task tag `itt`.
pub fn pattern(itt: u32, off: usize) -> u8 {
    (off as u8) ^ ((off >> 8) as u8).wrapping_mul(3) ^ (itt as u8).wrapping_mul(0x9d)
}

fn pattern_vec(itt: u32, off: usize, len: usize) -> Vec<u8> {
    (off..off + len).map(|i| pattern(itt, i)).collect()
}

/// Task tag from a selector byte: 0..16, or the reserved tag for 0xff.
pub fn itt_of(b: u8) -> u32 {
    if b == 0xff {
        RESERVED
    } else {
        u32::from(b % 16)
    }
}

/// A command the harness sent.
#[derive(Debug, Clone)]
struct CmdRec {
    itt: u32,
    read_len: u32,
    edtl: u32,
    read: bool,
    write: bool,
    lun: u64,
    cmd_sn: u32,
    executed: bool,
}

/// A task handed out with `Output::Execute` and not completed yet.
#[derive(Debug, Clone)]
struct ExecRec {
    rec: Option<CmdRec>,
    edtl: u32,
    read: bool,
    write: bool,
    /// Task management epoch when it was handed out.
    epoch: u32,
    /// No task management request was in flight when it was handed out (a held one could
    /// still abort it).
    certain: bool,
}

impl ExecRec {
    /// A response is due: no task management can have aborted the task.
    fn owed_response(&self, epoch: u32) -> bool {
        self.certain && self.epoch == epoch
    }
}

impl ExecRec {
    /// The read length, when known (commands from raw bytes may carry a bidirectional AHS).
    fn read_len(&self) -> Option<u32> {
        match &self.rec {
            Some(r) => Some(r.read_len),
            None if self.read && !self.write => Some(self.edtl),
            None if !self.read => Some(0),
            None => None,
        }
    }
}

/// Data the target is owed: an R2T, or the unsolicited burst of a command.
#[derive(Debug, Clone)]
struct Owed {
    itt: u32,
    /// TTT of the R2T, reserved for unsolicited data.
    ttt: u32,
    offset: u32,
    len: u32,
    sent: u32,
    data_sn: u32,
}

#[derive(Debug)]
struct Session {
    d: Driver,
    next_sn: u32,
    cmds: Vec<CmdRec>,
    exec: BTreeMap<TaskId, ExecRec>,
    done: Vec<TaskId>,
    seen: BTreeSet<TaskId>,
    owed: Vec<Owed>,
    tmfs: Vec<u32>,
    nop_ttt: Option<u32>,
    text_ttt: Option<(u32, u32)>,
    epoch: u32,
    /// Task management requests fed and not answered, by ITT (with a count).
    tmf_open: BTreeMap<u32, usize>,
    /// Data-Out bytes the harness may still send in this input (the engine buffers a whole
    /// write before executing it, so this bounds the memory one input can take).
    data_budget: u32,
    /// R2T sequences, the write budget and the Data-Out timeout.
    writes: Writes,
    report: Report,
}

/// What made the engine produce a batch of outputs.
#[derive(Debug, Clone)]
enum Src {
    /// A PDU (or decoder error) fed.
    Fed(Fed),
    /// A timer call.
    Timer,
    /// Another call (`task_mgmt_done`, `abort`, `request_logout`).
    Other,
}

/// What one input reached (for tests of the seeds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    /// The scripted login succeeded.
    pub logged_in: bool,
    /// Tasks handed out for execution.
    pub executed: usize,
    /// Tasks completed with a response.
    pub completed: usize,
    /// R2Ts received.
    pub r2ts: usize,
    /// Data-In PDUs received.
    pub data_in: usize,
    /// Task management responses received.
    pub tmf_responses: usize,
    /// Text responses received.
    pub text_responses: usize,
    /// The connection closed.
    pub closed: bool,
    /// R2Ts that came out of a completion (writes admitted to the budget it freed).
    pub r2ts_on_completion: usize,
    /// Writes ended by the Data-Out timeout.
    pub timeouts: usize,
    /// Writes refused for their length.
    pub refused: usize,
    /// QUERY TASK / QUERY TASK SET answered.
    pub queries: usize,
}

/// Run one input.
pub fn run(data: &[u8]) {
    report(data);
}

/// Run one input and say what it reached.
pub fn report(data: &[u8]) -> Report {
    let mut inp = Input::new(data);
    let hdr = [inp.u8(), inp.u8(), inp.u8(), inp.u8()];
    let Some(mut s) = Session::login(hdr) else {
        return Report::default();
    };
    let mut ops = 0;
    while let Some(tag) = inp.op() {
        ops += 1;
        if ops > 512 || s.d.check.closed {
            break;
        }
        s.step(tag, &mut inp);
    }
    s.complete_all();
    Report {
        logged_in: true,
        closed: s.d.check.closed,
        ..s.report
    }
}

/// The login keys and limits chosen by the header bytes.
pub struct Setup {
    /// Target limits.
    pub limits: Limits,
    /// Operational keys the initiator offers.
    pub keys: Vec<(&'static str, String)>,
    /// A discovery session.
    pub discovery: bool,
    /// Shared Data-In.
    pub shared: bool,
    /// CmdSN of the login.
    pub first_cmd_sn: u32,
}

/// Decode the four header bytes.
pub fn setup(h: [u8; 4]) -> Setup {
    let pick = |v: &[u32], b: u8| v[usize::from(b) % v.len()];
    // Bits 4-6 of h[2]: 7 is a discovery session, else a small write budget (bit 4), a short
    // Data-Out timeout (bit 5) or none (bit 6).
    let v = (h[2] >> 4) & 7;
    let limits = Limits {
        cmd_window: pick(&[1, 2, 8, 128], h[0]),
        nop_interval_ms: u64::from(pick(&[0, 0, 100, 1000], h[0] >> 2)),
        nop_timeout_ms: 300,
        max_recv_data_segment: pick(&[512, 8192, 65536, 262144], h[0] >> 4),
        immediate_data: h[0] & 0x40 == 0,
        initial_r2t: h[0] & 0x80 != 0,
        write_budget: if v & 1 != 0 {
            MIN_WRITE_BUDGET
        } else {
            DEFAULT_WRITE_BUDGET
        },
        data_out_timeout_ms: match v & 6 {
            0 => 30_000,
            4 => 0,
            _ => 500,
        },
        ..Limits::default()
    };
    let yes = |b: bool| if b { "Yes" } else { "No" }.to_string();
    let digest = |b: bool| if b { "CRC32C,None" } else { "None" }.to_string();
    let keys = vec![
        (
            "MaxRecvDataSegmentLength",
            pick(&[512, 1024, 8192, 262144], h[1]).to_string(),
        ),
        (
            "MaxBurstLength",
            pick(&[512, 4096, 65536, 262144], h[1] >> 2).to_string(),
        ),
        (
            "FirstBurstLength",
            pick(&[512, 4096, 65536, 262144], h[1] >> 4).to_string(),
        ),
        (
            "MaxOutstandingR2T",
            pick(&[1, 2, 4, 16], h[1] >> 6).to_string(),
        ),
        ("InitialR2T", yes(h[2] & 1 != 0)),
        ("ImmediateData", yes(h[2] & 2 == 0)),
        ("HeaderDigest", digest(h[2] & 4 != 0)),
        ("DataDigest", digest(h[2] & 8 != 0)),
    ];
    Setup {
        limits,
        keys,
        discovery: v == 7,
        shared: h[2] & 0x80 != 0,
        first_cmd_sn: if h[3] & 0x80 != 0 {
            0xffff_fff0 | u32::from(h[3] & 0xf)
        } else {
            u32::from(h[3]) * 1000
        },
    }
}

fn login_pdu(csg: u8, nsg: u8, cmd_sn: u32, text: Vec<u8>) -> Pdu {
    Pdu::new(
        LoginRequest {
            transit: true,
            cont: false,
            csg,
            nsg,
            version_max: 0,
            version_min: 0,
            isid: ISID,
            tsih: 0,
            itt: 0x1000,
            cid: 1,
            cmd_sn,
            exp_stat_sn: 0x200,
        },
        text,
    )
}

fn no_fix(_: &mut Pdu) {}

/// Rewrite a PDU that did not come whole from the harness so that it can never pass for one
/// of the harness's: task tags moved to the upper half, the serial mark of a CDB cleared.
fn taint(p: &mut Pdu) {
    let lift = |itt: &mut u32| {
        if *itt != RESERVED {
            *itt |= 0x8000_0000;
        }
    };
    match &mut p.bhs {
        Bhs::ScsiCommand(c) => {
            lift(&mut c.itt);
            c.cdb[11] = 0;
        }
        Bhs::DataOut(d) => lift(&mut d.itt),
        _ => {}
    }
}

impl Session {
    fn login(h: [u8; 4]) -> Option<Session> {
        let s = setup(h);
        let sane = s.limits.sanitized();
        let writes = Writes::new(sane.write_budget, sane.data_out_timeout_ms);
        let mut d = Driver::connect(s.limits.clone(), None);
        d.conn.set_shared_data_in(s.shared);
        let mut text = Vec::new();
        pair(&mut text, "InitiatorName", INITIATOR.as_bytes());
        if s.discovery {
            pair(&mut text, "SessionType", b"Discovery");
        } else {
            pair(&mut text, "SessionType", b"Normal");
            pair(&mut text, "TargetName", TARGET.as_bytes());
        }
        pair(&mut text, "AuthMethod", b"None");
        d.send(&login_pdu(0, 1, s.first_cmd_sn, text), &no_fix);
        let mut text = Vec::new();
        for (k, v) in &s.keys {
            pair(&mut text, k, v.as_bytes());
        }
        d.send(&login_pdu(1, 3, s.first_cmd_sn, text), &no_fix);
        for _ in 0..2 {
            if d.check.logged_in || d.check.closed {
                break;
            }
            d.send(&login_pdu(1, 3, s.first_cmd_sn, Vec::new()), &no_fix);
        }
        if !d.check.logged_in || d.check.closed {
            return None;
        }
        Some(Session {
            d,
            next_sn: s.first_cmd_sn,
            cmds: Vec::new(),
            exec: BTreeMap::new(),
            done: Vec::new(),
            seen: BTreeSet::new(),
            owed: Vec::new(),
            tmfs: Vec::new(),
            nop_ttt: None,
            text_ttt: None,
            epoch: 0,
            tmf_open: BTreeMap::new(),
            data_budget: DATA_BUDGET,
            writes,
            report: Report::default(),
        })
    }

    fn step(&mut self, tag: u8, inp: &mut Input) {
        match tag % OPS {
            op::CMD => self.command(inp),
            op::DATA_OUT => self.data_out(inp),
            op::AUTO_DATA => self.auto_data(),
            op::NOP => self.nop(inp),
            op::TMF => self.tmf(inp),
            op::TEXT => self.text(inp),
            op::LOGOUT => self.logout(inp),
            op::SNACK => self.snack(inp),
            op::RAW => {
                let bytes = inp.blob(16 * 1024);
                let steps = self.d.feed(bytes, &taint);
                self.batches(steps);
            }
            op::TIMEOUT => {
                let (mode, ms) = (inp.u8(), inp.u16());
                let outs = if mode & 1 == 0 {
                    self.d.advance(u64::from(ms))
                } else {
                    self.d.to_next_deadline()
                };
                self.batch(Src::Timer, outs);
            }
            op::COMPLETE => self.complete(inp),
            op::TMF_DONE => {
                let (sel, resp) = (inp.u8(), inp.u8());
                let itt = if !self.tmfs.is_empty() && sel < 0xf0 {
                    self.tmfs.remove(usize::from(sel) % self.tmfs.len())
                } else {
                    0x20 | itt_of(sel)
                };
                self.d.conn.task_mgmt_done(itt, resp);
                let outs = self.d.drain();
                self.batch(Src::Other, outs);
            }
            op::WIRE_ERROR => self.wire_error(inp),
            op::WRONG => self.wrong(inp),
            op::SHARED => {
                let on = inp.u8() & 1 != 0;
                self.d.conn.set_shared_data_in(on);
            }
            op::ABORT => {
                let b = inp.u8();
                if b == 0 {
                    self.d.conn.abort();
                } else {
                    self.d.conn.request_logout(self.d.now, u16::from(b));
                }
                let outs = self.d.drain();
                self.batch(Src::Other, outs);
            }
            _ => self.complete_all(),
        }
    }

    /// The CmdSN to use: the harness's own count, or the target's ExpCmdSN if that is ahead.
    fn base_sn(&self) -> u32 {
        match self.d.check.exp_cmd_sn() {
            Some(exp) if sn_lt(self.next_sn, exp) => exp,
            _ => self.next_sn,
        }
    }

    /// CmdSN by mode: the next one (advancing unless immediate), ahead (held), behind
    /// (dropped), or arbitrary.
    fn cmd_sn(&mut self, mode: u8, immediate: bool, inp: &mut Input) -> u32 {
        let base = self.base_sn();
        let k = u32::from((mode >> 2) & 7);
        match mode & 3 {
            0 => {
                if !immediate {
                    self.next_sn = base.wrapping_add(1);
                }
                base
            }
            1 => base.wrapping_add(1 + k),
            2 => base.wrapping_sub(1 + k),
            _ => inp.u32(),
        }
    }

    /// Send a PDU built by the harness (tainted if the decoder holds part of a raw PDU).
    fn send(&mut self, pdu: Pdu) {
        let fix: &dyn Fn(&mut Pdu) = if self.d.dec.is_idle() {
            &no_fix
        } else {
            &taint
        };
        let steps = self.d.send(&pdu, fix);
        self.batches(steps);
    }

    fn command(&mut self, inp: &mut Input) {
        let (f, g, itt_b) = (inp.u8(), inp.u8(), inp.u8());
        let edtl = match inp.u8() % 6 {
            len_class::ZERO => 0,
            len_class::U8 => u32::from(inp.u8()),
            len_class::U16 => u32::from(inp.u16()),
            len_class::U24 => u32::from(inp.u16()) << 8,
            len_class::U32 => inp.u32(),
            _ => 512 * (1 + u32::from(inp.u8() % 64)),
        };
        let imm_len = usize::from(inp.u16());
        let (c0, c1) = (inp.u8(), inp.u8());
        let itt = itt_of(itt_b);
        let (read, write) = (f & cmd_flag::READ != 0, f & cmd_flag::WRITE != 0);
        let immediate = f & cmd_flag::IMMEDIATE != 0;
        let lun = u64::from(f >> 7);
        let cmd_sn = self.cmd_sn(g & 0x1f, immediate, inp);
        let serial = u32::try_from(self.cmds.len()).unwrap_or(u32::MAX);
        let mut cdb = [0u8; 16];
        cdb[0] = c0;
        cdb[1] = c1;
        cdb[11] = MARK;
        cdb[12..16].copy_from_slice(&serial.to_be_bytes());
        let mut ahs = Vec::new();
        if g & 0x20 != 0 {
            let n = usize::from(inp.u8() % 32);
            ahs.extend_from_slice(&[0, n as u8 + 1, 1, 0]);
            ahs.extend((0..n).map(|i| i as u8));
            ahs.resize(ahs.len().div_ceil(4) * 4, 0);
        }
        let mut bidi = None;
        if g & 0x40 != 0 {
            let v = u32::from(inp.u16());
            bidi = Some(v);
            ahs.extend_from_slice(&[0, 5, 2, 0]);
            ahs.extend_from_slice(&v.to_be_bytes());
        }
        if g & 0x80 != 0 {
            ahs.extend_from_slice(&[0, 9, 1, 0]);
        }
        let read_len = match (read, write) {
            (true, true) => bidi.unwrap_or(0),
            (true, false) => edtl,
            _ => 0,
        };
        let imm = pattern_vec(itt, 0, imm_len.min(65536));
        self.cmds.push(CmdRec {
            itt,
            read_len,
            edtl,
            read,
            write,
            lun,
            cmd_sn,
            executed: false,
        });
        let p = self.d.conn.params();
        let imm32 = u32::try_from(imm.len()).unwrap_or(u32::MAX);
        let unsolicited = f & cmd_flag::FINAL == 0 && !p.initial_r2t;
        if write && edtl > 0 {
            let unsol_end = if unsolicited {
                p.first_burst.min(edtl).max(imm32)
            } else {
                imm32
            };
            let index = self.cmds.len() - 1;
            self.writes.built(index, itt, edtl, imm32, unsol_end);
        }
        if write && unsolicited && edtl > imm32 {
            let limit = p.first_burst.min(edtl).max(imm32);
            self.owed.push(Owed {
                itt,
                ttt: RESERVED,
                offset: imm32,
                len: limit - imm32,
                sent: 0,
                data_sn: 0,
            });
        }
        let cmd = ScsiCommand {
            immediate,
            final_: f & cmd_flag::FINAL != 0,
            read,
            write,
            attr: (f >> 4) & 7,
            lun: lun_from_index(lun),
            itt,
            expected_data_len: edtl,
            cmd_sn,
            exp_stat_sn: 0,
            cdb,
        };
        self.send(Pdu {
            bhs: Bhs::ScsiCommand(cmd),
            ahs,
            data: imm,
        });
    }

    /// One Data-Out for owed data (correct or with one field wrong), or an arbitrary one.
    fn data_out(&mut self, inp: &mut Input) {
        let (sel, f, len) = (inp.u8(), inp.u8(), u32::from(inp.u16()));
        let mrdsl = self.d.conn.params().target_mrdsl.max(512);
        if f & 0x80 != 0 || self.owed.is_empty() {
            let itt = itt_of(sel);
            let d = DataOut {
                final_: f & 1 != 0,
                lun: 0,
                itt,
                ttt: if f & 2 != 0 { inp.u32() } else { RESERVED },
                exp_stat_sn: 0,
                data_sn: u32::from(inp.u8()),
                buffer_offset: inp.u32(),
            };
            let off = usize::try_from(d.buffer_offset).unwrap_or(0);
            let n = len.min(mrdsl).min(self.data_budget);
            self.data_budget -= n;
            let n = usize::try_from(n).unwrap_or(0);
            self.send(Pdu::new(d, pattern_vec(itt, off, n)));
            return;
        }
        let i = usize::from(sel) % self.owed.len();
        let o = self.owed[i].clone();
        let left = o.len - o.sent;
        let mut n = if len == 0 { left } else { len.min(left) }.min(mrdsl);
        if n >= self.data_budget {
            return;
        }
        self.data_budget -= n;
        let mut d = DataOut {
            final_: o.sent + n == o.len,
            lun: 0,
            itt: o.itt,
            ttt: o.ttt,
            exp_stat_sn: 0,
            data_sn: o.data_sn,
            buffer_offset: o.offset + o.sent,
        };
        let bad = f & 0x7e;
        if bad & 0x02 != 0 {
            d.data_sn = d.data_sn.wrapping_add(1);
        }
        if bad & 0x04 != 0 {
            d.buffer_offset = d.buffer_offset.wrapping_add(512);
        }
        if bad & 0x08 != 0 {
            n += 1;
        }
        if bad & 0x10 != 0 {
            d.final_ = !d.final_;
        }
        if bad & 0x20 != 0 {
            d.ttt = if d.ttt == RESERVED { 1 } else { d.ttt ^ 1 };
        }
        if bad & 0x40 != 0 {
            d.itt = d.itt.wrapping_add(1);
        }
        if bad == 0 {
            self.owed[i].sent += n;
            self.owed[i].data_sn += 1;
            if self.owed[i].sent >= o.len {
                self.owed.remove(i);
            }
        } else {
            self.owed.retain(|x| x.itt != o.itt);
        }
        let off = usize::try_from(d.buffer_offset).unwrap_or(0);
        let data = pattern_vec(o.itt, off, usize::try_from(n).unwrap_or(0));
        self.send(Pdu::new(d, data));
    }

    /// Send what is owed, correctly, until nothing is (at most 256 PDUs).
    fn auto_data(&mut self) {
        for _ in 0..256 {
            let Some(o) = self.owed.first().cloned() else {
                return;
            };
            if self.d.check.closed {
                return;
            }
            let mrdsl = self.d.conn.params().target_mrdsl.max(512);
            let n = (o.len - o.sent).min(mrdsl);
            if n > self.data_budget {
                return;
            }
            self.data_budget -= n;
            let d = DataOut {
                final_: o.sent + n == o.len,
                lun: 0,
                itt: o.itt,
                ttt: o.ttt,
                exp_stat_sn: 0,
                data_sn: o.data_sn,
                buffer_offset: o.offset + o.sent,
            };
            self.owed[0].sent += n;
            self.owed[0].data_sn += 1;
            if self.owed[0].sent >= o.len {
                self.owed.remove(0);
            }
            let off = usize::try_from(d.buffer_offset).unwrap_or(0);
            let data = pattern_vec(o.itt, off, usize::try_from(n).unwrap_or(0));
            self.send(Pdu::new(d, data));
        }
    }

    fn nop(&mut self, inp: &mut Input) {
        let (f, itt_b, len) = (inp.u8(), inp.u8(), usize::from(inp.u8()));
        let immediate = f & 2 != 0;
        let (itt, ttt) = if f & 1 == 0 {
            (itt_of(itt_b) | 0x30, RESERVED)
        } else {
            (RESERVED, self.nop_ttt.take().unwrap_or(u32::from(itt_b)))
        };
        let cmd_sn = self.cmd_sn(f >> 2, immediate || itt == RESERVED, inp);
        let n = NopOut {
            immediate,
            lun: 0,
            itt,
            ttt,
            cmd_sn,
            exp_stat_sn: 0,
        };
        let data = if ttt == RESERVED {
            pattern_vec(itt, 0, len)
        } else {
            Vec::new()
        };
        self.send(Pdu::new(n, data));
    }

    fn tmf(&mut self, inp: &mut Input) {
        let (func, ref_b, f, own) = (inp.u8(), inp.u8(), inp.u8(), inp.u8());
        let ref_itt = itt_of(ref_b);
        let base = self.base_sn();
        let ref_cmd_sn = match f & 3 {
            0 => self
                .cmds
                .iter()
                .rev()
                .find(|c| c.itt == ref_itt)
                .map_or(base, |c| c.cmd_sn),
            1 => base,
            2 => inp.u32(),
            _ => base.wrapping_sub(1),
        };
        let immediate = f & 4 == 0;
        let cmd_sn = self.cmd_sn(f >> 3, immediate, inp);
        let req = TaskMgmtRequest {
            immediate,
            function: func % 16,
            lun: lun_from_index(u64::from(f >> 7)),
            itt: 0x20 | itt_of(own),
            ref_task_tag: ref_itt,
            cmd_sn,
            exp_stat_sn: 0,
            ref_cmd_sn,
            exp_data_sn: 0,
        };
        self.send(Pdu::new(req, Vec::new()));
    }

    fn text(&mut self, inp: &mut Input) {
        let (f, kind, itt_b) = (inp.u8(), inp.u8(), inp.u8());
        let mut data = Vec::new();
        match kind % 6 {
            0 => pair(&mut data, "SendTargets", b"All"),
            1 => pair(&mut data, "SendTargets", b""),
            2 => pair(&mut data, "SendTargets", TARGET.as_bytes()),
            3 => pair(&mut data, "SendTargets", TARGET2.as_bytes()),
            4 => {
                pair(&mut data, "MaxRecvDataSegmentLength", b"4096");
                pair(&mut data, "HeaderDigest", b"None");
            }
            _ => {
                let n = usize::from(inp.u8());
                data = inp.bytes(n).to_vec();
            }
        }
        let (mut itt, mut ttt) = (0x40 + u32::from(itt_b % 4), RESERVED);
        if f & 4 != 0 {
            if let Some((i, t)) = self.text_ttt {
                (itt, ttt) = (i, t);
            }
        }
        let immediate = f & 8 != 0;
        let cmd_sn = self.cmd_sn(f >> 4, immediate, inp);
        let req = TextRequest {
            immediate,
            final_: f & 1 == 0,
            cont: f & 2 != 0,
            lun: 0,
            itt,
            ttt,
            cmd_sn,
            exp_stat_sn: 0,
        };
        self.send(Pdu::new(req, data));
    }

    fn logout(&mut self, inp: &mut Input) {
        let (reason, f) = (inp.u8(), inp.u8());
        let immediate = f & 2 != 0;
        let cmd_sn = self.cmd_sn(f >> 2, immediate, inp);
        let req = LogoutRequest {
            immediate,
            reason: if reason & 0x80 != 0 {
                reason & 0x7f
            } else {
                reason % 3
            },
            itt: 0x50,
            cid: if f & 1 != 0 { 9 } else { 1 },
            cmd_sn,
            exp_stat_sn: 0,
        };
        self.send(Pdu::new(req, Vec::new()));
    }

    fn snack(&mut self, inp: &mut Input) {
        let (t, itt_b, run) = (inp.u8(), inp.u8(), inp.u32());
        let req = SnackRequest {
            snack_type: t & 0x0f,
            lun: 0,
            itt: itt_of(itt_b),
            ttt: RESERVED,
            exp_stat_sn: 0,
            beg_run: run >> 16,
            run_length: run & 0xffff,
        };
        self.send(Pdu::new(req, Vec::new()));
    }

    fn wrong(&mut self, inp: &mut Input) {
        let kind = inp.u8();
        let pdu = match kind % 4 {
            0 => login_pdu(1, 3, self.base_sn(), Vec::new()),
            1 => Pdu::new(
                NopIn {
                    itt: RESERVED,
                    ttt: 5,
                    ..NopIn::default()
                },
                Vec::new(),
            ),
            2 => Pdu::new(
                R2t {
                    itt: itt_of(kind >> 2),
                    ttt: 1,
                    desired_len: 512,
                    ..R2t::default()
                },
                Vec::new(),
            ),
            _ => {
                let mut raw = [0u8; 48];
                raw[0] = [0x07, 0x08, 0x0d, 0x1c, 0x1e, 0x3c][usize::from(kind >> 2) % 6];
                raw[1] = 0x80;
                raw[16..20].copy_from_slice(&[0, 0, 0, 0x60]);
                Pdu::new(Bhs::Unknown(RawBhs(raw)), Vec::new())
            }
        };
        self.send(pdu);
    }

    fn wire_error(&mut self, inp: &mut Input) {
        let (kind, sel, v) = (inp.u8(), inp.u8(), inp.u32());
        let itt = match self.owed.get(usize::from(sel) % self.owed.len().max(1)) {
            Some(o) if sel < 0x80 => o.itt,
            _ => itt_of(sel),
        };
        let err = if kind % 4 == 1 {
            let d = DataOut {
                itt,
                ttt: RESERVED,
                ..DataOut::default()
            };
            WireError::DataDigest {
                header: Bhs::DataOut(d).to_raw(v & 0xfff, 0),
                expected: v,
                actual: !v,
            }
        } else {
            crate::login::wire_error(kind, itt, v)
        };
        let itt = err.header().map_or(RESERVED, |h| h.itt());
        let outs = self.d.wire_error(err);
        self.batch(Src::Fed(Fed::Error(itt)), outs);
        if let Some(o) = self.owed.iter().position(|o| o.itt == itt) {
            self.owed.remove(o);
        }
    }

    fn batches(&mut self, steps: Vec<(Fed, Vec<Output>)>) {
        for (fed, outs) in steps {
            match &fed {
                Fed::Pdu(Pdu {
                    bhs: Bhs::TaskMgmtRequest(t),
                    ..
                }) => {
                    self.query_answer(t, &outs);
                    self.epoch += 1;
                    *self.tmf_open.entry(t.itt).or_default() += 1;
                }
                Fed::Pdu(Pdu {
                    bhs: Bhs::ScsiCommand(c),
                    ..
                }) => self.writes.fed(c, self.d.now),
                _ => {}
            }
            self.batch(Src::Fed(fed), outs);
        }
    }

    /// QUERY TASK and QUERY TASK SET are answered at once with FUNCTION COMPLETE (no such
    /// task) or FUNCTION SUCCEEDED; QUERY TASK finds a task that executes untouched by task
    /// management, and no task with a tag never fed.
    fn query_answer(&mut self, t: &TaskMgmtRequest, outs: &[Output]) {
        if !matches!(t.function, 9 | 10) {
            return;
        }
        let Some(resp) = outs.iter().find_map(|o| match o {
            Output::Transmit(p, _) => match &p.bhs {
                Bhs::TaskMgmtResponse(r) if r.itt == t.itt => Some(r.response),
                _ => None,
            },
            _ => None,
        }) else {
            return;
        };
        self.report.queries += 1;
        assert!(matches!(resp, 0 | 7), "QUERY answered {resp}");
        if t.function != 9 {
            return;
        }
        let executing = self.exec.values().any(|e| {
            e.owed_response(self.epoch) && e.rec.as_ref().is_some_and(|c| c.itt == t.ref_task_tag)
        });
        if executing {
            assert_eq!(
                resp, 7,
                "QUERY TASK missed executing task {:#x}",
                t.ref_task_tag
            );
        }
        if !self.writes.ever_fed(t.ref_task_tag) {
            assert_eq!(
                resp, 0,
                "QUERY TASK found {:#x}, never sent",
                t.ref_task_tag
            );
        }
    }

    /// Task management state, for the R2T checks.
    fn tmf_state(&self) -> Tmf {
        Tmf {
            epoch: self.epoch,
            settled: self.tmf_open.is_empty(),
        }
    }

    /// Checks outputs of anything but a completion.
    fn batch(&mut self, src: Src, outs: Vec<Output>) {
        for o in outs {
            match o {
                Output::Execute(task) => self.executed(task),
                Output::Transmit(p, _) | Output::TransmitShared(p, _, _) => {
                    self.target_pdu(&src, &p)
                }
                Output::TaskMgmt(req) => self.tmfs.push(req.itt),
                Output::LoggedIn(_) => panic!("LoggedIn in full feature phase"),
                Output::Close => {}
            }
        }
    }

    fn target_pdu(&mut self, src: &Src, p: &Pdu) {
        match &p.bhs {
            Bhs::DataIn(d) => panic!("Data-In outside a completion: {d:?}"),
            Bhs::ScsiResponse(r) => {
                assert_eq!(r.status, 0x02, "only CHECK CONDITION without a completion");
                assert!(!p.data.is_empty(), "CHECK CONDITION without sense");
                let live = self.exec.values().any(|e| {
                    e.owed_response(self.epoch) && e.rec.as_ref().is_some_and(|c| c.itt == r.itt)
                });
                assert!(!live, "a response for itt {:#x} while it executes", r.itt);
                let now = self.d.now;
                match src {
                    Src::Fed(fed) => {
                        let refused = self.writes.answered(r.itt, fed.itt(), &p.data, now);
                        self.report.refused += usize::from(refused);
                    }
                    Src::Timer => {
                        self.writes.timed_out(r.itt, &p.data, now);
                        self.report.timeouts += 1;
                    }
                    Src::Other => panic!("SCSI response from nowhere: {r:?}"),
                }
                self.owed.retain(|o| o.itt != r.itt);
            }
            Bhs::R2t(r) => self.r2t(r),
            Bhs::NopIn(n) if n.itt == RESERVED => self.nop_ttt = Some(n.ttt),
            Bhs::TaskMgmtResponse(t) => {
                self.report.tmf_responses += 1;
                self.tmf_answered(t.itt);
            }
            Bhs::TextResponse(t) => {
                self.report.text_responses += 1;
                if t.ttt != RESERVED {
                    self.text_ttt = Some((t.itt, t.ttt));
                }
            }
            _ => {}
        }
    }

    /// An R2T, from any call: checked, and owed data from then on.
    fn r2t(&mut self, r: &R2t) {
        self.report.r2ts += 1;
        let tmf = self.tmf_state();
        self.writes.r2t(r, self.d.now, tmf);
        self.owed.push(Owed {
            itt: r.itt,
            ttt: r.ttt,
            offset: r.buffer_offset,
            len: r.desired_len,
            sent: 0,
            data_sn: 0,
        });
    }

    fn executed(&mut self, task: iscsi_proto::Task) {
        self.report.executed += 1;
        assert!(
            self.seen.insert(task.id),
            "task {:?} executed twice",
            task.id
        );
        let edtl = usize::try_from(task.expected_len).unwrap_or(usize::MAX);
        if task.write {
            assert_eq!(
                task.data_out.len(),
                edtl,
                "write data is not the expected length"
            );
        } else {
            assert!(task.data_out.is_empty(), "data for a command without W");
        }
        let serial = (task.cdb.len() >= 16 && task.cdb[11] == MARK)
            .then(|| u32::from_be_bytes([task.cdb[12], task.cdb[13], task.cdb[14], task.cdb[15]]))
            .and_then(|s| usize::try_from(s).ok())
            .filter(|&s| s < self.cmds.len());
        let rec = serial.map(|s| {
            let c = &mut self.cmds[s];
            assert!(!c.executed, "command {s} executed twice");
            c.executed = true;
            assert_eq!(task.expected_len, c.edtl);
            assert_eq!((task.read, task.write, task.lun), (c.read, c.write, c.lun));
            if c.write {
                let bad = task
                    .data_out
                    .iter()
                    .enumerate()
                    .find(|&(i, &b)| b != pattern(c.itt, i));
                assert!(
                    bad.is_none(),
                    "write data differs at {:?}",
                    bad.map(|x| x.0)
                );
            }
            c.clone()
        });
        if let Some(c) = &rec {
            self.owed.retain(|o| o.itt != c.itt);
        }
        let cmd = serial.zip(rec.as_ref().map(|c| c.itt));
        self.writes.executed(cmd, self.d.now);
        self.exec.insert(
            task.id,
            ExecRec {
                rec,
                edtl: task.expected_len,
                read: task.read,
                write: task.write,
                epoch: self.epoch,
                certain: self.tmf_open.is_empty(),
            },
        );
    }

    fn tmf_answered(&mut self, itt: u32) {
        if let Some(n) = self.tmf_open.get_mut(&itt) {
            *n -= 1;
            if *n == 0 {
                self.tmf_open.remove(&itt);
            }
        }
    }

    fn complete(&mut self, inp: &mut Input) {
        let (sel, st, sn, dmode, dlen, wmode) =
            (inp.u8(), inp.u8(), inp.u8(), inp.u8(), inp.u16(), inp.u8());
        let id = if sel < 0xe0 && !self.exec.is_empty() {
            let i = usize::from(sel) % self.exec.len();
            *self.exec.keys().nth(i).expect("index in range")
        } else if sel < 0xf0 && !self.done.is_empty() {
            self.done[usize::from(sel) % self.done.len()]
        } else {
            // Any id: never allocated, finished, or still collecting Data-Out (ignored:
            // fixed finding 2).
            TaskId(inp.u32())
        };
        let e = self.exec.get(&id);
        let read_len = e.and_then(ExecRec::read_len).unwrap_or(4096) as usize;
        let edtl = e.map_or(0, |e| e.edtl);
        let status = match st % 8 {
            7 => inp.u8(),
            i => [0x00, 0x00, 0x02, 0x08, 0x18, 0x28, 0x40][usize::from(i)],
        };
        let sense = match sn % 4 {
            0 => Vec::new(),
            1 => {
                let mut s = vec![0u8; 18];
                s[0] = 0x70;
                s[2] = 0x05;
                s[7] = 10;
                s[12] = 0x24;
                s
            }
            2 => vec![0x72, 0x05, 0x24, 0, 0, 0, 0, 0],
            _ => (0..sn).collect(),
        };
        let dlen = usize::from(dlen);
        let n = match dmode % 6 {
            0 => read_len,
            1 => read_len / 2,
            2 => read_len + 1 + dlen,
            3 => dlen,
            4 => 0,
            _ => read_len.saturating_sub(1),
        }
        .min(4 << 20);
        let result = ScsiResult {
            status,
            sense,
            data_in: (0..n).map(|i| (i as u8).wrapping_mul(7) ^ sel).collect(),
            data_out_wanted: match wmode % 4 {
                0 => edtl,
                1 => 0,
                2 => edtl.saturating_add(dlen as u32),
                _ => inp.u32(),
            },
        };
        self.finish(id, result);
    }

    /// Complete every executed task with GOOD and its expected data (an end-of-input sweep
    /// that checks each gets its response).
    fn complete_all(&mut self) {
        let ids: Vec<TaskId> = self.exec.keys().copied().collect();
        for id in ids {
            let e = &self.exec[&id];
            let n = e.read_len().unwrap_or(512) as usize;
            let result = ScsiResult {
                status: 0,
                sense: Vec::new(),
                data_in: (0..n.min(1 << 20)).map(|i| i as u8).collect(),
                data_out_wanted: e.edtl,
            };
            self.finish(id, result);
        }
    }

    /// `complete` and check what it sent.
    fn finish(&mut self, id: TaskId, r: ScsiResult) {
        let closed = self.d.check.closed;
        self.d.conn.complete(id, r.clone());
        let outs = self.d.drain();
        let e = self.exec.remove(&id);
        self.writes.begin_completion();
        let mut off = 0usize;
        let mut pdus = 0u32;
        let mut statuses = 0;
        for o in &outs {
            let (p, data) = match o {
                Output::Transmit(p, _) => (p, p.data.as_slice()),
                Output::TransmitShared(p, d, _) => (p, d.as_slice()),
                Output::Close => continue,
                // The completion freed write budget: a waiting write with all its data in.
                Output::Execute(task) => {
                    self.executed(task.clone());
                    continue;
                }
                other => panic!("unexpected output of a completion: {other:?}"),
            };
            match &p.bhs {
                Bhs::DataIn(d) => {
                    let e = e
                        .as_ref()
                        .unwrap_or_else(|| panic!("Data-In for {id:?}, not executing"));
                    if let Some(c) = &e.rec {
                        assert_eq!(d.itt, c.itt, "Data-In with another task's tag");
                    }
                    assert_eq!(d.buffer_offset as usize, off, "Data-In offset");
                    assert_eq!(d.data_sn, pdus, "Data-In DataSN");
                    assert_eq!(data, &r.data_in[off..off + data.len()], "Data-In data");
                    off += data.len();
                    pdus += 1;
                    self.report.data_in += 1;
                    if let Some(rl) = e.read_len() {
                        assert!(
                            off <= rl as usize,
                            "Data-In beyond the expected length {rl}"
                        );
                    }
                    if d.status_present {
                        statuses += 1;
                        assert_eq!(d.status, r.status);
                        check_residual(e, r.data_in.len(), d.overflow, d.underflow, d.residual);
                    }
                }
                Bhs::ScsiResponse(s) => {
                    let e = e
                        .as_ref()
                        .unwrap_or_else(|| panic!("response for {id:?}, not executing"));
                    if let Some(c) = &e.rec {
                        assert_eq!(s.itt, c.itt, "response with another task's tag");
                    }
                    statuses += 1;
                    assert_eq!(s.status, r.status);
                    assert_eq!(s.exp_data_sn, pdus, "ExpDataSN");
                    if !r.sense.is_empty() {
                        assert_eq!(&data[2..], &r.sense[..data.len() - 2], "sense data");
                    }
                    if !e.write {
                        check_residual(e, r.data_in.len(), s.overflow, s.underflow, s.residual);
                    }
                }
                Bhs::TaskMgmtResponse(t) => {
                    self.report.tmf_responses += 1;
                    self.tmf_answered(t.itt);
                }
                Bhs::LogoutResponse(_) => {}
                // The completion freed write budget: R2Ts of a write admitted now.
                Bhs::R2t(r) => {
                    self.report.r2ts_on_completion += 1;
                    self.r2t(r);
                }
                other => panic!("unexpected PDU from a completion: {other:?}"),
            }
        }
        self.writes.end_completion();
        assert!(statuses <= 1, "{statuses} responses for one task");
        self.report.completed += statuses;
        if let Some(e) = e {
            if !closed && e.owed_response(self.epoch) {
                assert_eq!(statuses, 1, "task {id:?} completed without a response");
            }
            self.done.push(id);
        }
    }
}

/// Residual of a read-only task: overflow and underflow against the expected read length.
fn check_residual(e: &ExecRec, actual: usize, over: bool, under: bool, residual: u32) {
    let (Some(rl), false) = (e.read_len(), e.write) else {
        return;
    };
    let rl = rl as usize;
    assert_eq!(over, actual > rl, "overflow bit");
    assert_eq!(under, actual < rl, "underflow bit");
    let want = u32::try_from(actual.abs_diff(rl)).unwrap_or(u32::MAX);
    assert_eq!(residual, want, "residual count");
}
