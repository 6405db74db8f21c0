//! Logout (RFC 7143 11.14, 11.15): close the session or the connection, with
//! tasks in flight; connection recovery is not supported at ERL 0.

use iscsi_wire::{AsyncMessage, Bhs, LogoutResponse, Pdu, RejectReason};

use crate::connection::{Connection, PendingLogout, Phase};
use crate::session::TaskPhase;
use crate::types::Millis;

/// AsyncEvent: the target requests a logout.
const ASYNC_LOGOUT_REQUEST: u8 = 1;

/// Logout reason: close the session.
const CLOSE_SESSION: u8 = 0;
/// Logout reason: close the connection.
const CLOSE_CONNECTION: u8 = 1;
/// Logout reason: remove the connection for recovery.
const RECOVERY: u8 = 2;

/// Logout response codes (RFC 7143 11.15.1).
pub mod logout_response {
    /// Connection or session closed successfully.
    pub const CLOSED: u8 = 0;
    /// CID not found.
    pub const CID_NOT_FOUND: u8 = 1;
    /// Connection recovery is not supported.
    pub const RECOVERY_NOT_SUPPORTED: u8 = 2;
    /// Cleanup failed for various reasons.
    pub const CLEANUP_FAILED: u8 = 3;
}

impl Connection {
    /// A Logout Request delivered in CmdSN order (or immediate).
    pub(crate) fn logout_pdu(&mut self, pdu: Pdu) {
        let Bhs::LogoutRequest(req) = &pdu.bhs else {
            return;
        };
        match req.reason {
            CLOSE_SESSION | CLOSE_CONNECTION => {
                if req.reason == CLOSE_CONNECTION && req.cid != self.login_cid() {
                    self.send_logout_response(req.itt, logout_response::CID_NOT_FOUND);
                    return;
                }
                self.begin_logout(req.itt);
            }
            RECOVERY => self.send_logout_response(req.itt, logout_response::RECOVERY_NOT_SUPPORTED),
            _ => self.reject(RejectReason::INVALID_PDU_FIELD, &pdu),
        }
    }

    /// Drop what has not started, then answer once running tasks finished.
    fn begin_logout(&mut self, itt: u32) {
        self.window.clear_held();
        for id in self.tasks.ids_where(|t| t.phase == TaskPhase::Collecting) {
            self.tasks.remove(id);
        }
        self.logout = Some(PendingLogout { itt });
        self.phase = Phase::LoggingOut;
        self.finish_logout_if_idle();
    }

    /// Send the pending Logout Response and close once no task executes.
    pub(crate) fn finish_logout_if_idle(&mut self) {
        if self.phase != Phase::LoggingOut || self.tasks.any_executing() {
            return;
        }
        if let Some(p) = self.logout.take() {
            self.send_logout_response(p.itt, logout_response::CLOSED);
            self.close();
        }
    }

    fn send_logout_response(&mut self, itt: u32, response: u8) {
        let resp = LogoutResponse {
            response,
            itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
            // ErrorRecoveryLevel 0: no connection recovery, so no waiting times.
            time2wait: 0,
            time2retain: 0,
        };
        self.send(resp, Vec::new());
    }
}

impl Connection {
    /// Ask the initiator to log out (Asynchronous Message, AsyncEvent 1) within
    /// `within_secs` seconds; the connection closes at that deadline if it has not
    /// logged out by then. Only in full feature phase; otherwise the connection
    /// simply closes.
    pub fn request_logout(&mut self, now: Millis, within_secs: u16) {
        if self.phase != Phase::FullFeature {
            if self.phase == Phase::Login {
                self.close();
            }
            return;
        }
        let msg = AsyncMessage {
            lun: 0,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
            event: ASYNC_LOGOUT_REQUEST,
            vcode: 0,
            param1: 0,
            param2: 0,
            param3: within_secs,
        };
        self.send(msg, Vec::new());
        let deadline = now.saturating_add(u64::from(within_secs) * 1000);
        self.logout_deadline = Some(self.logout_deadline.map_or(deadline, |d| d.min(deadline)));
    }
}
