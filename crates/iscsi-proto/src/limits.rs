//! Limits that hold whatever the initiator negotiates or declares (ErrorRecoveryLevel 0):
//!
//! - the write data budget of a connection ([`Limits::write_budget`]): writes are admitted to
//!   R2T solicitation in arrival order while the data they will bring fits, so what a
//!   connection makes the target buffer is bounded by the budget (plus unsolicited data), not
//!   by MaxBurstLength, MaxOutstandingR2T or the expected lengths of the commands; a write
//!   longer than the whole budget is refused (CHECK CONDITION, ILLEGAL REQUEST / INVALID FIELD
//!   IN CDB), after its unsolicited data, which is checked and dropped;
//! - the Data-Out timeout ([`Limits::data_out_timeout_ms`]): a write whose initiator owes data
//!   (unsolicited data announced, or R2Ts unanswered) and sends none for that long ends with
//!   CHECK CONDITION, ABORTED COMMAND / INITIATOR RESPONSE TIMEOUT (SPC-4 4Bh/06h) and its
//!   buffer is freed. At ErrorRecoveryLevel 0 there is no recovery R2T (RFC 7143 7.1.4.1 needs
//!   ErrorRecoveryLevel 1), so the command is ended as a whole, the session stays: the
//!   initiator may retry it. A Data-Out for it arriving later is rejected as for any unknown
//!   task;
//! - the session gate ([`SessionGate`]): consulted just before the final Login Response, so
//!   the target can refuse a session it has no room for with a login status.
//!
//! [`Limits::write_budget`]: crate::Limits::write_budget
//! [`Limits::data_out_timeout_ms`]: crate::Limits::data_out_timeout_ms

use std::sync::Arc;

use iscsi_wire::LoginRequest;

use crate::config::SessionGate;
use crate::connection::{Connection, Phase};
use crate::dataout::ABORTED_COMMAND;
use crate::session::{TaskPhase, TaskState};
use crate::types::{Millis, SessionInfo, TaskId};

/// Sense key ILLEGAL REQUEST.
const ILLEGAL_REQUEST: u8 = 0x05;
/// ASC/ASCQ INVALID FIELD IN CDB.
const INVALID_FIELD_IN_CDB: (u8, u8) = (0x24, 0x00);
/// ASC/ASCQ INITIATOR RESPONSE TIMEOUT: the device server timed out waiting for data.
const INITIATOR_RESPONSE_TIMEOUT: (u8, u8) = (0x4b, 0x06);

/// The state behind the limits of one connection.
#[derive(Debug, Default)]
pub(crate) struct LimitState {
    /// The latest time the engine was given (with a PDU or a timer call).
    pub clock: Millis,
    /// No Data-Out deadline is earlier than this. It may be early (deadlines only move later
    /// and are not tracked one by one): the timer then finds nothing and moves it.
    pub data_out_due: Option<Millis>,
    /// Consulted before a login completes.
    pub gate: Option<Arc<dyn SessionGate>>,
}

impl LimitState {
    /// The state of a connection created at `now`.
    pub fn new(now: Millis) -> Self {
        LimitState {
            clock: now,
            ..LimitState::default()
        }
    }
}

/// When a collecting task times out, if the initiator owes it data.
fn data_out_deadline(t: &TaskState) -> Option<Millis> {
    if t.phase != TaskPhase::Collecting {
        return None;
    }
    t.xfer.as_ref().and_then(|x| x.deadline)
}

impl Connection {
    /// Let `gate` decide whether each login may complete into a session.
    pub fn set_session_gate(&mut self, gate: Arc<dyn SessionGate>) {
        self.lim.gate = Some(gate);
    }

    /// Tell the engine the time without firing any timer, so that deadlines set by the next
    /// [`Connection::complete`] (which takes no time) start from it.
    pub fn set_clock(&mut self, now: Millis) {
        self.lim.clock = self.lim.clock.max(now);
    }

    /// SCSI tasks alive on this connection: collecting data, executing, or aborted and still
    /// executing.
    pub fn tasks_in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// Write data budget (bytes) held by the admitted writes of this connection.
    pub fn write_data_reserved(&self) -> u64 {
        self.tasks.reserved()
    }

    /// A new task: a write is refused when longer than the whole budget, else queued for
    /// admission.
    pub(crate) fn budget_new_task(&mut self, id: TaskId) {
        let budget = self.cfg.limits.write_budget;
        let Some(t) = self.tasks.get_mut(id) else {
            return;
        };
        if t.admitted {
            return;
        }
        if u64::from(t.edtl) > budget {
            log::info!(
                "write of {} bytes (ITT {:#x}) refused: longer than the write budget of {budget}",
                t.edtl,
                t.itt
            );
            t.refused = true;
            t.data = Vec::new();
            return;
        }
        self.tasks.wait_for_budget(id);
        self.admit_waiting();
    }

    /// Admit waiting writes in arrival order while their data fits the budget (one always fits
    /// when none holds any).
    pub(crate) fn admit_waiting(&mut self) {
        if self.phase != Phase::FullFeature {
            return;
        }
        let budget = self.cfg.limits.write_budget;
        while let Some(id) = self.tasks.next_waiting() {
            let need = self.tasks.get(id).map_or(0, |t| u64::from(t.edtl));
            let held = self.tasks.reserved();
            if held > 0 && held.saturating_add(need) > budget {
                return;
            }
            self.tasks.pop_waiting();
            self.tasks.admit(id, need);
            self.progress(id);
        }
    }

    /// After a task got data or was admitted: solicit more, (re)arm its Data-Out timer, hand
    /// it to the SCSI layer once complete; a refused write ends once no unsolicited data may
    /// come any more.
    pub(crate) fn progress(&mut self, id: TaskId) {
        let Some(t) = self.tasks.get(id) else {
            return;
        };
        if t.refused {
            if !t.xfer.as_ref().is_some_and(|x| x.unsol_open) {
                let (asc, ascq) = INVALID_FIELD_IN_CDB;
                self.end_collecting(id, ILLEGAL_REQUEST, asc, ascq);
                return;
            }
        } else {
            self.issue_r2ts(id);
        }
        self.arm_data_out_timer(id);
        self.maybe_execute(id);
    }

    /// Set the task's Data-Out deadline when the initiator owes it data, clear it otherwise.
    fn arm_data_out_timer(&mut self, id: TaskId) {
        let timeout = self.cfg.limits.data_out_timeout_ms;
        let now = self.lim.clock;
        let Some(x) = self.tasks.get_mut(id).and_then(|t| t.xfer.as_mut()) else {
            return;
        };
        if timeout == 0 || !x.awaiting_initiator() {
            x.deadline = None;
            return;
        }
        let d = now.saturating_add(timeout);
        x.deadline = Some(d);
        self.lim.data_out_due = Some(self.lim.data_out_due.map_or(d, |due| due.min(d)));
    }

    /// End every write whose Data-Out deadline passed.
    pub(crate) fn data_out_timer(&mut self, now: Millis) {
        if !self.lim.data_out_due.is_some_and(|due| now >= due) {
            return;
        }
        let expired = self
            .tasks
            .ids_where(|t| data_out_deadline(t).is_some_and(|d| d <= now));
        for id in expired {
            if let Some(t) = self.tasks.get(id) {
                log::info!(
                    "no Data-Out for ITT {:#x} within {} ms: command ended",
                    t.itt,
                    self.cfg.limits.data_out_timeout_ms
                );
            }
            let (asc, ascq) = INITIATOR_RESPONSE_TIMEOUT;
            self.end_collecting(id, ABORTED_COMMAND, asc, ascq);
        }
        self.lim.data_out_due = self.tasks.iter().filter_map(data_out_deadline).min();
    }

    /// The earliest Data-Out deadline (possibly early, see [`LimitState::data_out_due`]).
    pub(crate) fn data_out_next_timeout(&self) -> Option<Millis> {
        self.lim.data_out_due
    }

    /// Ask the session gate whether this login may complete.
    pub(crate) fn admit_session(&self, req: &LoginRequest) -> Result<(), u16> {
        match &self.lim.gate {
            Some(gate) => gate.admit(&self.session_facts(req.isid)),
            None => Ok(()),
        }
    }

    /// The facts of the session this login creates.
    pub(crate) fn session_facts(&self, isid: [u8; 6]) -> SessionInfo {
        let id = &self.neg.identity;
        let discovery = self.neg.discovery();
        SessionInfo {
            initiator_name: id.initiator_name.clone().unwrap_or_default(),
            initiator_alias: id.initiator_alias.clone(),
            target_name: if discovery {
                None
            } else {
                id.target_name
                    .as_deref()
                    .and_then(|n| self.cfg.catalog.find(n))
                    .map(|t| t.name.clone())
            },
            isid,
            tsih: self.cfg.tsih,
            discovery,
            portal_group_tag: self.cfg.portal_group_tag,
        }
    }
}
