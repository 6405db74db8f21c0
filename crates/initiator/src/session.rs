//! A logged-in session over one connection: sequence numbers, raw send/receive and the
//! receive pump that routes PDUs to tasks.

use std::collections::{HashMap, VecDeque};
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use iscsi_wire::{Bhs, DigestConfig, LoginResponse, NopOut, Pdu, RawBhs};

use crate::conn::{Connection, Corrupt};
use crate::login::{run_login, LoginError, LoginOptions, Negotiated};
use crate::scsi::{ScsiOutcome, Task};
use crate::sn::{sn_gt, sn_lt};
use crate::{Error, Result};

/// A session with one connection.
#[derive(Debug)]
pub struct Session {
    pub(crate) conn: Connection,
    /// Negotiated operational values.
    pub negotiated: Negotiated,
    /// Every Login Response received, in order (the last one is the final response).
    pub login_responses: Vec<LoginResponse>,
    /// The ISID used.
    pub isid: [u8; 6],
    /// The TSIH the target assigned.
    pub tsih: u16,
    /// Timeout for each wait.
    pub timeout: Duration,
    /// Protocol violations noticed outside any task (StatSN gaps, strays, ...).
    pub anomalies: Vec<String>,
    pub(crate) cmd_sn: u32,
    pub(crate) exp_stat_sn: u32,
    pub(crate) exp_cmd_sn: u32,
    pub(crate) max_cmd_sn: u32,
    next_itt: u32,
    pub(crate) tasks: HashMap<u32, Task>,
    pub(crate) done: HashMap<u32, Result<ScsiOutcome>>,
    /// Order in which tasks completed (for `wait_any`).
    pub(crate) done_order: VecDeque<u32>,
    /// Non-SCSI PDUs received while pumping, not yet claimed.
    pub(crate) inbox: VecDeque<Pdu>,
}

impl Session {
    /// Connect to `addr` and log in.
    pub fn login(addr: impl ToSocketAddrs, opts: LoginOptions) -> Result<Session, LoginError> {
        let conn = Connection::connect(addr, opts.timeout)?;
        Session::login_on(conn, opts)
    }

    /// Log in on an already open connection.
    pub fn login_on(mut conn: Connection, opts: LoginOptions) -> Result<Session, LoginError> {
        let res = run_login(&mut conn, &opts)?;
        let last = res
            .responses
            .last()
            .cloned()
            .ok_or_else(|| Error::Protocol("no login response".into()))?;
        let n = &res.negotiated;
        conn.set_digests(DigestConfig {
            header: n.header_digest,
            data: n.data_digest,
        });
        conn.set_max_recv(n.max_recv_data_segment_length);
        Ok(Session {
            conn,
            negotiated: res.negotiated,
            isid: opts.isid,
            tsih: last.tsih,
            timeout: opts.timeout,
            anomalies: Vec::new(),
            cmd_sn: opts.initial_cmd_sn,
            exp_stat_sn: res.exp_stat_sn,
            exp_cmd_sn: last.exp_cmd_sn,
            max_cmd_sn: last.max_cmd_sn,
            next_itt: 0x10,
            tasks: HashMap::new(),
            done: HashMap::new(),
            done_order: VecDeque::new(),
            inbox: VecDeque::new(),
            login_responses: res.responses,
        })
    }

    /// The final Login Response.
    pub fn login_response(&self) -> Option<&LoginResponse> {
        self.login_responses.last()
    }

    /// The next CmdSN to be used by a non-immediate command.
    pub fn cmd_sn(&self) -> u32 {
        self.cmd_sn
    }

    /// Return the next CmdSN and advance it (for hand-built non-immediate commands).
    pub fn take_cmd_sn(&mut self) -> u32 {
        let sn = self.cmd_sn;
        self.cmd_sn = sn.wrapping_add(1);
        sn
    }

    /// ExpStatSN to put in outgoing PDUs.
    pub fn exp_stat_sn(&self) -> u32 {
        self.exp_stat_sn
    }

    /// The latest ExpCmdSN and MaxCmdSN from the target.
    pub fn cmd_window(&self) -> (u32, u32) {
        (self.exp_cmd_sn, self.max_cmd_sn)
    }

    /// A fresh Initiator Task Tag (never 0xffffffff).
    pub fn alloc_itt(&mut self) -> u32 {
        let itt = self.next_itt;
        self.next_itt = self.next_itt.wrapping_add(1);
        if self.next_itt == 0xffff_ffff {
            self.next_itt = 0x10;
        }
        itt
    }

    /// The connection, for raw use.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// End this object's control of the session and hand over its connection (for example to
    /// drive it without blocking); the sequence numbers must be taken first ([`Session::cmd_sn`],
    /// [`Session::exp_stat_sn`], [`Session::cmd_window`]). Fails with [`Error::Protocol`] while
    /// commands are in flight or received PDUs are unclaimed.
    pub fn into_connection(self) -> Result<Connection> {
        if !self.tasks.is_empty() || !self.inbox.is_empty() {
            return Err(Error::Protocol(format!(
                "{} commands in flight and {} unclaimed PDUs",
                self.tasks.len(),
                self.inbox.len()
            )));
        }
        Ok(self.conn)
    }

    /// Send one PDU as is (with the negotiated digests).
    pub fn send_pdu(&mut self, pdu: &Pdu) -> Result<()> {
        self.conn.send(pdu)
    }

    /// Send one PDU with a damaged digest.
    pub fn send_pdu_corrupted(&mut self, pdu: &Pdu, corrupt: Corrupt) -> Result<()> {
        self.conn.send_corrupted(pdu, corrupt)
    }

    /// Send raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.conn.send_raw(bytes)
    }

    /// The next PDU (unclaimed ones received earlier first), updating sequence numbers.
    /// Does not route it to any task.
    pub fn recv_pdu(&mut self, timeout: Duration) -> Result<Pdu> {
        if let Some(p) = self.inbox.pop_front() {
            return Ok(p);
        }
        let pdu = self.conn.recv(timeout)?;
        self.note_sns(&pdu);
        Ok(pdu)
    }

    /// Wait for the target to close the connection; returns the PDUs received first.
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<Vec<Pdu>> {
        let mut seen: Vec<Pdu> = self.inbox.drain(..).collect();
        seen.extend(self.conn.wait_closed(timeout)?);
        Ok(seen)
    }

    /// Wait (routing PDUs to tasks meanwhile) for a non-SCSI PDU matching `pred`.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Pdu) -> bool) -> Result<Pdu> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(i) = self.inbox.iter().position(&pred) {
                if let Some(p) = self.inbox.remove(i) {
                    return Ok(p);
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(what.to_string()));
            }
            self.pump(deadline).map_err(|e| match e {
                Error::Timeout(_) => Error::Timeout(what.to_string()),
                e => e,
            })?;
        }
    }

    /// Receive and route one PDU (waiting until `deadline`); also answers R2Ts being
    /// collected once their collection time is over.
    pub(crate) fn pump(&mut self, deadline: Instant) -> Result<()> {
        let until = self
            .collect_deadline()
            .map_or(deadline, |c| c.min(deadline));
        let left = until.saturating_duration_since(Instant::now());
        match self.conn.recv(left) {
            Ok(pdu) => {
                self.note_sns(&pdu);
                self.route(pdu)
            }
            Err(Error::Timeout(w)) => {
                if self.answer_collected_r2ts()? {
                    Ok(())
                } else {
                    Err(Error::Timeout(w))
                }
            }
            Err(e) => Err(e),
        }
    }

    fn route(&mut self, pdu: Pdu) -> Result<()> {
        match &pdu.bhs {
            Bhs::DataIn(_) | Bhs::R2t(_) | Bhs::ScsiResponse(_) => self.route_to_task(pdu),
            Bhs::Reject(_) => {
                let quoted = quoted_header(&pdu.data);
                let itt = quoted.as_ref().map(|q| q.itt());
                match itt.filter(|i| self.tasks.contains_key(i)) {
                    Some(_) => self.route_to_task(pdu),
                    None => {
                        self.inbox.push_back(pdu);
                        Ok(())
                    }
                }
            }
            Bhs::NopIn(n) if n.ttt != 0xffff_ffff => {
                let reply = NopOut {
                    immediate: true,
                    lun: n.lun,
                    itt: 0xffff_ffff,
                    ttt: n.ttt,
                    cmd_sn: self.cmd_sn,
                    exp_stat_sn: self.exp_stat_sn,
                };
                self.conn.send(&Pdu::new(reply, pdu.data.clone()))
            }
            _ => {
                self.inbox.push_back(pdu);
                Ok(())
            }
        }
    }

    /// Track StatSN, ExpCmdSN and MaxCmdSN from a received PDU.
    fn note_sns(&mut self, pdu: &Pdu) {
        let Some((stat_sn, exp, max, advances)) = sn_fields(&pdu.bhs) else {
            return;
        };
        if advances {
            if stat_sn != self.exp_stat_sn {
                self.anomalies.push(format!(
                    "StatSN {stat_sn} where {} was expected in {:?}",
                    self.exp_stat_sn, pdu.bhs
                ));
            }
            self.exp_stat_sn = stat_sn.wrapping_add(1);
        }
        // RFC 7143 4.2.2.1: ignore window updates where MaxCmdSN < ExpCmdSN - 1.
        if sn_lt(max, exp.wrapping_sub(1)) {
            return;
        }
        if sn_gt(exp, self.exp_cmd_sn) {
            self.exp_cmd_sn = exp;
        }
        if sn_gt(max, self.max_cmd_sn) {
            self.max_cmd_sn = max;
        }
        if sn_gt(exp, self.cmd_sn) {
            self.anomalies.push(format!(
                "ExpCmdSN {exp} beyond the next CmdSN {} in {:?}",
                self.cmd_sn, pdu.bhs
            ));
        }
    }

    /// Block (routing PDUs) until the command window admits `self.cmd_sn`.
    pub(crate) fn wait_window(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        while sn_gt(self.cmd_sn, self.max_cmd_sn) {
            self.pump(deadline).map_err(|e| match e {
                Error::Timeout(_) => Error::Timeout("the command window to open".into()),
                e => e,
            })?;
        }
        Ok(())
    }
}

/// (StatSN, ExpCmdSN, MaxCmdSN, whether StatSN advances) of a target PDU.
fn sn_fields(bhs: &Bhs) -> Option<(u32, u32, u32, bool)> {
    Some(match bhs {
        Bhs::ScsiResponse(x) => (x.stat_sn, x.exp_cmd_sn, x.max_cmd_sn, true),
        Bhs::DataIn(x) => (x.stat_sn, x.exp_cmd_sn, x.max_cmd_sn, x.status_present),
        Bhs::R2t(x) => (x.stat_sn, x.exp_cmd_sn, x.max_cmd_sn, false),
        Bhs::NopIn(x) => (x.stat_sn, x.exp_cmd_sn, x.max_cmd_sn, x.itt != 0xffff_ffff),
        Bhs::TextResponse(x) => (x.stat_sn, x.exp_cmd_sn, x.max_cmd_sn, true),
        Bhs::LogoutResponse(x) => (x.stat_sn, x.exp_cmd_sn, x.max_cmd_sn, true),
        Bhs::TaskMgmtResponse(x) => (x.stat_sn, x.exp_cmd_sn, x.max_cmd_sn, true),
        Bhs::Reject(x) => (x.stat_sn, x.exp_cmd_sn, x.max_cmd_sn, true),
        Bhs::AsyncMessage(x) => (x.stat_sn, x.exp_cmd_sn, x.max_cmd_sn, true),
        _ => return None,
    })
}

/// The BHS quoted in a Reject's data segment.
pub fn quoted_header(data: &[u8]) -> Option<RawBhs> {
    let bytes: [u8; 48] = data.get(..48)?.try_into().ok()?;
    Some(RawBhs(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use iscsi_wire::{NopIn, R2t, ScsiResponse};

    #[test]
    fn statsn_advances_only_for_status_pdus() {
        let r2t = Bhs::R2t(R2t {
            stat_sn: 5,
            exp_cmd_sn: 2,
            max_cmd_sn: 9,
            ..R2t::default()
        });
        assert_eq!(sn_fields(&r2t), Some((5, 2, 9, false)));
        let nop = Bhs::NopIn(NopIn {
            itt: 0xffff_ffff,
            ..NopIn::default()
        });
        assert_eq!(sn_fields(&nop).map(|f| f.3), Some(false));
        let rsp = Bhs::ScsiResponse(ScsiResponse::default());
        assert_eq!(sn_fields(&rsp).map(|f| f.3), Some(true));
    }

    #[test]
    fn quoted_header_needs_48_bytes() {
        assert!(quoted_header(&[0u8; 47]).is_none());
        let mut q = [0u8; 48];
        q[16..20].copy_from_slice(&[0, 0, 1, 2]);
        assert_eq!(quoted_header(&q).map(|h| h.itt()), Some(0x102));
    }
}
