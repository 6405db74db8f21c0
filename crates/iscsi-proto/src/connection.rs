//! The [`Connection`] state machine: public API, PDU dispatch by phase,
//! command ordering, output helpers and timers. The per-PDU-family logic
//! lives in sibling modules (`login`, `dataout`, `datain`, `tmf`, `text`,
//! `logout`, `nop`) as further `impl Connection` blocks.

use std::collections::VecDeque;

use iscsi_wire::{Bhs, DecoderConfig, DigestConfig, Pdu, RawBhs, Reject, RejectReason, WireError};

use crate::auth::{Authenticator, NoAuth};
use crate::cmdsn::{CmdWindow, Slot};
use crate::config::ConnectionConfig;
use crate::login::LoginState;
use crate::negotiate::Negotiator;
use crate::session::{TaskPhase, Tasks};
use crate::text::TextState;
use crate::tmf::PendingTmf;
use crate::types::{DataRef, Millis, Output, ScsiResult, SessionInfo, TaskId};

/// The reserved tag value (RFC 7143 11.2.1.8).
pub(crate) const RESERVED_TAG: u32 = 0xffff_ffff;

/// Phase of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Login phase.
    Login,
    /// Full feature phase.
    FullFeature,
    /// A Logout was accepted; waiting for running tasks before answering.
    LoggingOut,
    /// Closed: only already queued outputs remain.
    Closed,
}

/// A Logout waiting for running tasks to finish.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingLogout {
    pub itt: u32,
}

/// Target NOP-In ping state.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NopState {
    /// TTT and deadline of the outstanding ping.
    pub outstanding: Option<(u32, Millis)>,
}

/// One iSCSI connection (and its single-connection session), target side.
#[derive(Debug)]
pub struct Connection {
    pub(crate) cfg: ConnectionConfig,
    pub(crate) phase: Phase,
    pub(crate) login: LoginState,
    pub(crate) neg: Negotiator,
    pub(crate) auth: Box<dyn Authenticator>,
    pub(crate) out: VecDeque<Output>,
    pub(crate) stat_sn: u32,
    pub(crate) tx_digests: DigestConfig,
    pub(crate) rx_digests: DigestConfig,
    pub(crate) window: CmdWindow,
    pub(crate) tasks: Tasks,
    pub(crate) next_ttt: u32,
    pub(crate) text: TextState,
    pub(crate) logout: Option<PendingLogout>,
    pub(crate) tmfs: Vec<PendingTmf>,
    pub(crate) nop: NopState,
    /// Write data budget, Data-Out timer, session gate (`limits.rs`).
    pub(crate) lim: crate::limits::LimitState,
    pub(crate) login_deadline: Option<Millis>,
    /// Close at this time (after an asynchronous logout request).
    pub(crate) logout_deadline: Option<Millis>,
    pub(crate) last_rx: Millis,
    /// The highest ExpStatSN the initiator has sent: every status before it has been read.
    pub(crate) acked_stat_sn: u32,
    pub(crate) session: Option<SessionInfo>,
    /// Emit Data-In payloads as [`Output::TransmitShared`] slices of the result buffer.
    pub(crate) shared_data_in: bool,
}

impl Connection {
    /// A new connection in the login phase, accepting `AuthMethod=None`.
    pub fn new(cfg: ConnectionConfig, now: Millis) -> Self {
        Self::with_authenticator(cfg, now, Box::new(NoAuth))
    }

    /// A new connection whose security stage is decided by `auth`.
    pub fn with_authenticator(
        mut cfg: ConnectionConfig,
        now: Millis,
        auth: Box<dyn Authenticator>,
    ) -> Self {
        cfg.limits = cfg.limits.sanitized();
        let neg = Negotiator::new(&cfg.limits, &auth.methods());
        let window = CmdWindow::new(0, cfg.limits.cmd_window);
        let login_deadline = Some(now.saturating_add(cfg.limits.login_timeout_ms));
        Connection {
            phase: Phase::Login,
            login: LoginState::default(),
            neg,
            auth,
            out: VecDeque::new(),
            stat_sn: 0,
            tx_digests: DigestConfig::default(),
            rx_digests: DigestConfig::default(),
            window,
            tasks: Tasks::default(),
            next_ttt: 1,
            text: TextState::default(),
            logout: None,
            tmfs: Vec::new(),
            nop: NopState::default(),
            lim: crate::limits::LimitState::new(now),
            login_deadline,
            logout_deadline: None,
            last_rx: now,
            acked_stat_sn: 0,
            session: None,
            shared_data_in: false,
            cfg,
        }
    }

    /// What the decoder must use for the next incoming PDU (changes when login completes).
    pub fn decoder_config(&self) -> DecoderConfig {
        match self.phase {
            Phase::Login => DecoderConfig {
                digests: DigestConfig::default(),
                max_data_segment: crate::login::LOGIN_MAX_SEGMENT,
            },
            _ => DecoderConfig {
                digests: self.rx_digests,
                max_data_segment: self.neg.params.target_mrdsl,
            },
        }
    }

    /// Feed one decoded PDU.
    pub fn handle_pdu(&mut self, pdu: Pdu, now: Millis) {
        self.last_rx = now;
        self.set_clock(now);
        match self.phase {
            Phase::Closed => {}
            Phase::Login => self.login_pdu(pdu, now),
            Phase::FullFeature => self.ffp_pdu(pdu),
            Phase::LoggingOut => self.logging_out_pdu(pdu),
        }
        // Tasks may have ended (sequence errors, task management): budget is free again.
        self.admit_waiting();
    }

    /// Feed a decoder error: Reject or close, per the error.
    pub fn handle_wire_error(&mut self, err: WireError, _now: Millis) {
        log::debug!("wire error: {err}");
        if self.phase == Phase::Closed {
            return;
        }
        if self.phase == Phase::Login {
            // An oversized login PDU is rejected as a protocol error (its data is never read);
            // the stream cannot continue either way.
            match &err {
                WireError::DataSegmentTooLong { header, .. } => {
                    let header = *header;
                    self.reject_raw(RejectReason::PROTOCOL_ERROR, header);
                }
                WireError::InvalidField { header, .. } => {
                    let itt = header.itt();
                    self.refuse_during_login(itt);
                }
                _ => {}
            }
            self.close();
            return;
        }
        if let WireError::InvalidField { header, .. } = &err {
            let header = *header;
            self.consume_rejected(&header);
        }
        if let (Some(reason), Some(header)) = (err.reject_reason(), err.header()) {
            let header = *header;
            self.reject_raw(reason, header);
            self.drain_held();
            if let WireError::DataDigest { header, .. } = &err {
                self.data_digest_failed(header);
            }
        }
        if err.is_fatal() {
            self.close();
        }
    }

    /// A non-immediate command PDU rejected before it could be ordered (its header does not
    /// decode) still uses up its CmdSN: the initiator does not send it again, and later
    /// commands must not wait behind it.
    fn consume_rejected(&mut self, header: &RawBhs) {
        use iscsi_wire::Opcode;
        let numbered = [
            Opcode::NOP_OUT,
            Opcode::SCSI_COMMAND,
            Opcode::TASK_MGMT_REQUEST,
            Opcode::TEXT_REQUEST,
            Opcode::LOGOUT_REQUEST,
        ];
        if !numbered.contains(&header.opcode()) || header.0[0] & 0x40 != 0 {
            return;
        }
        let sn = u32::from_be_bytes([header.0[24], header.0[25], header.0[26], header.0[27]]);
        if self.window.contains(sn) {
            self.window.consume(sn);
        }
    }

    /// Let timers fire: login timeout, NOP-In pings.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.set_clock(now);
        match self.phase {
            Phase::Login => {
                if self.login_deadline.is_some_and(|d| now >= d) {
                    log::info!("login timed out");
                    self.close();
                }
            }
            Phase::FullFeature | Phase::LoggingOut => {
                if self.logout_deadline.is_some_and(|d| now >= d) {
                    log::info!("no logout after the target's request: closing");
                    self.close();
                    return;
                }
                self.nop_timer(now);
                self.data_out_timer(now);
                self.admit_waiting();
            }
            Phase::Closed => {}
        }
    }

    /// The earliest time `handle_timeout` has something to do.
    pub fn next_timeout(&self) -> Option<Millis> {
        match self.phase {
            Phase::Login => self.login_deadline,
            Phase::FullFeature | Phase::LoggingOut => [
                self.nop_next_timeout(),
                self.logout_deadline,
                self.data_out_next_timeout(),
            ]
            .into_iter()
            .flatten()
            .min(),
            Phase::Closed => None,
        }
    }

    /// Outputs in order. Drain after every `handle_*` / `complete` call.
    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Result of an [`Output::Execute`] task. A result for a task that was never handed out
    /// (still collecting Data-Out, or unknown) is ignored: the task keeps its state.
    pub fn complete(&mut self, task: TaskId, result: ScsiResult) {
        match self.tasks.get(task).map(|t| t.phase) {
            Some(TaskPhase::Executing) => {}
            Some(TaskPhase::Collecting) => {
                log::debug!("completion for task {task:?} still receiving data: ignored");
                return;
            }
            None => {
                log::debug!("completion for unknown task {task:?}");
                return;
            }
        }
        let Some(state) = self.tasks.remove(task) else {
            return;
        };
        if self.phase == Phase::Closed {
            return;
        }
        if state.aborted {
            self.tmf_task_gone(task);
        } else {
            self.send_result(&state, result);
            self.tmf_task_gone(task);
        }
        self.finish_logout_if_idle();
        self.admit_waiting();
    }

    /// Answer of an [`Output::TaskMgmt`].
    pub fn task_mgmt_done(&mut self, itt: u32, response: u8) {
        self.tmf_scsi_done(itt, response);
    }

    /// Drop this connection: no more outputs but Close.
    pub fn abort(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        self.out.clear();
        self.close();
    }

    /// True once Close was emitted.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Choose how Data-In payloads are emitted: `false` (the default) copies each into the
    /// `data` of an [`Output::Transmit`] PDU; `true` emits [`Output::TransmitShared`], whose
    /// payload is a slice of the buffer the [`ScsiResult`] brought, so the caller can send it
    /// without a copy.
    pub fn set_shared_data_in(&mut self, on: bool) {
        self.shared_data_in = on;
    }

    /// The session facts, once logged in.
    pub fn session_info(&self) -> Option<&SessionInfo> {
        self.session.as_ref()
    }

    /// The negotiated operational parameters.
    pub fn params(&self) -> &crate::negotiate::Params {
        &self.neg.params
    }

    // ----- output helpers -------------------------------------------------

    pub(crate) fn push(&mut self, o: Output) {
        if self.phase != Phase::Closed {
            self.out.push_back(o);
        }
    }

    /// Queue a PDU with the digests currently in force.
    pub(crate) fn send(&mut self, bhs: impl Into<Bhs>, data: Vec<u8>) {
        let d = self.tx_digests;
        self.push(Output::Transmit(Pdu::new(bhs, data), d));
    }

    /// Queue a PDU whose data segment is a slice of a shared buffer.
    pub(crate) fn send_shared(&mut self, bhs: impl Into<Bhs>, data: DataRef) {
        let d = self.tx_digests;
        self.push(Output::TransmitShared(Pdu::new(bhs, Vec::new()), data, d));
    }

    /// Take the next StatSN.
    pub(crate) fn next_stat_sn(&mut self) -> u32 {
        let s = self.stat_sn;
        self.stat_sn = s.wrapping_add(1);
        s
    }

    pub(crate) fn exp_cmd_sn(&self) -> u32 {
        self.window.exp_cmd_sn()
    }

    pub(crate) fn max_cmd_sn(&self) -> u32 {
        self.window.max_cmd_sn()
    }

    /// A fresh target transfer tag (never the reserved value).
    pub(crate) fn new_ttt(&mut self) -> u32 {
        let t = self.next_ttt;
        self.next_ttt = match t.wrapping_add(1) {
            RESERVED_TAG | 0 => 1,
            n => n,
        };
        t
    }

    pub(crate) fn close(&mut self) {
        if self.phase != Phase::Closed {
            self.out.push_back(Output::Close);
            self.phase = Phase::Closed;
        }
    }

    /// Send a Reject quoting `pdu`'s header.
    pub(crate) fn reject(&mut self, reason: RejectReason, pdu: &Pdu) {
        let words = u8::try_from(pdu.ahs.len().div_ceil(4)).unwrap_or(u8::MAX);
        let len = u32::try_from(pdu.data.len()).unwrap_or(u32::MAX);
        let raw = pdu.bhs.to_raw(len, words);
        self.reject_raw(reason, raw);
    }

    /// Send a Reject quoting a raw header.
    pub(crate) fn reject_raw(&mut self, reason: RejectReason, header: RawBhs) {
        log::debug!(
            "reject reason {:#04x} opcode {:#04x}",
            reason.0,
            header.opcode().0
        );
        let r = Reject {
            reason: reason.0,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
            data_sn: 0,
        };
        self.send(r, header.0.to_vec());
    }

    // ----- full feature phase dispatch -----------------------------------

    fn ffp_pdu(&mut self, pdu: Pdu) {
        self.note_exp_stat_sn(&pdu.bhs);
        if !pdu.ahs.is_empty() && !matches!(pdu.bhs, Bhs::ScsiCommand(_) | Bhs::Unknown(_)) {
            // AHS types are defined for SCSI commands only (RFC 7143 11.2.2).
            self.reject(RejectReason::PROTOCOL_ERROR, &pdu);
            return;
        }
        if self.neg.discovery() {
            self.discovery_pdu(pdu);
            return;
        }
        match &pdu.bhs {
            Bhs::NopOut(n) if n.itt == RESERVED_TAG && !n.immediate => {
                // RFC 7143 11.18: a NOP-Out without a task tag must be immediate.
                self.reject(RejectReason::PROTOCOL_ERROR, &pdu);
                self.close();
            }
            Bhs::NopOut(_)
            | Bhs::TextRequest(_)
            | Bhs::LogoutRequest(_)
            | Bhs::ScsiCommand(_)
            | Bhs::TaskMgmtRequest(_) => self.sequence(pdu),
            Bhs::DataOut(_) => self.data_out_pdu(pdu),
            Bhs::SnackRequest(_) => {
                // SNACK needs ErrorRecoveryLevel > 0.
                self.reject(RejectReason::PROTOCOL_ERROR, &pdu)
            }
            Bhs::LoginRequest(_) => self.reject(RejectReason::PROTOCOL_ERROR, &pdu),
            _ => self.reject(RejectReason::COMMAND_NOT_SUPPORTED, &pdu),
        }
    }

    /// A discovery session carries only Text Requests and a Logout closing the session
    /// (RFC 7143 4.3): any other initiator PDU is a protocol error that ends the connection.
    fn discovery_pdu(&mut self, pdu: Pdu) {
        match &pdu.bhs {
            Bhs::TextRequest(_) => self.sequence(pdu),
            Bhs::LogoutRequest(l) if l.reason == 0 => self.sequence(pdu),
            b if b.opcode().is_initiator() && !matches!(b, Bhs::Unknown(_)) => {
                self.reject(RejectReason::PROTOCOL_ERROR, &pdu);
                self.close();
            }
            _ => self.reject(RejectReason::COMMAND_NOT_SUPPORTED, &pdu),
        }
    }

    /// Remembers how far the initiator has read our statuses (serial arithmetic: an old or
    /// out-of-window ExpStatSN never moves it back).
    fn note_exp_stat_sn(&mut self, bhs: &Bhs) {
        let exp = match bhs {
            Bhs::ScsiCommand(x) => x.exp_stat_sn,
            Bhs::DataOut(x) => x.exp_stat_sn,
            Bhs::NopOut(x) => x.exp_stat_sn,
            Bhs::TaskMgmtRequest(x) => x.exp_stat_sn,
            Bhs::TextRequest(x) => x.exp_stat_sn,
            Bhs::LogoutRequest(x) => x.exp_stat_sn,
            _ => return,
        };
        let ahead = exp.wrapping_sub(self.acked_stat_sn);
        let sent = self.stat_sn.wrapping_sub(self.acked_stat_sn);
        if ahead != 0 && ahead <= sent {
            self.acked_stat_sn = exp;
        }
    }

    /// Statuses sent that the initiator has not yet acknowledged reading (StatSN minus its
    /// latest ExpStatSN). Near zero, the initiator is waiting on the target; large, it has a
    /// backlog of replies to process and is in no hurry for the next.
    pub fn unread_statuses(&self) -> u32 {
        self.stat_sn.wrapping_sub(self.acked_stat_sn)
    }

    /// After a Logout was accepted only NOP-Out is still answered; anything
    /// else is rejected with "waiting for logout".
    fn logging_out_pdu(&mut self, pdu: Pdu) {
        match &pdu.bhs {
            Bhs::NopOut(_) => self.nop_out_pdu(pdu),
            Bhs::DataOut(_) => {}
            _ => self.reject(RejectReason::WAITING_FOR_LOGOUT, &pdu),
        }
    }

    /// Order a command-numbered PDU by CmdSN (RFC 7143 4.2.2.1).
    fn sequence(&mut self, pdu: Pdu) {
        let (immediate, cmd_sn) = match &pdu.bhs {
            Bhs::NopOut(x) => (x.immediate, x.cmd_sn),
            Bhs::ScsiCommand(x) => (x.immediate, x.cmd_sn),
            Bhs::TaskMgmtRequest(x) => (x.immediate, x.cmd_sn),
            Bhs::TextRequest(x) => (x.immediate, x.cmd_sn),
            Bhs::LogoutRequest(x) => (x.immediate, x.cmd_sn),
            _ => (true, 0),
        };
        if immediate {
            self.dispatch_ordered(pdu, true);
            return;
        }
        match self.window.classify(cmd_sn) {
            Slot::Now => {
                self.window.advance();
                self.dispatch_ordered(pdu, false);
                self.drain_held();
            }
            Slot::Later => {
                if !self.window.hold(cmd_sn, pdu) {
                    log::debug!("duplicate CmdSN {cmd_sn} dropped");
                }
            }
            Slot::Outside => {
                log::debug!(
                    "CmdSN {cmd_sn} outside window [{}, {}]: dropped",
                    self.exp_cmd_sn(),
                    self.max_cmd_sn()
                );
            }
        }
    }

    pub(crate) fn drain_held(&mut self) {
        while matches!(self.phase, Phase::FullFeature) {
            let Some(pdu) = self.window.take_next() else {
                break;
            };
            self.window.advance();
            self.dispatch_ordered(pdu, false);
        }
    }

    fn dispatch_ordered(&mut self, pdu: Pdu, immediate: bool) {
        if self.phase != Phase::FullFeature {
            return;
        }
        match &pdu.bhs {
            Bhs::NopOut(_) => self.nop_out_pdu(pdu),
            Bhs::ScsiCommand(_) => self.scsi_command_pdu(pdu, immediate),
            Bhs::TaskMgmtRequest(_) => self.tmf_pdu(pdu),
            Bhs::TextRequest(_) => self.text_pdu(pdu),
            Bhs::LogoutRequest(_) => self.logout_pdu(pdu),
            _ => {}
        }
    }
}
