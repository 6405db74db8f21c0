//! NOP-Out / NOP-In (RFC 7143 11.18, 11.19): initiator pings answered with
//! an echo, target pings after an idle interval with a reply deadline.

use iscsi_wire::{Bhs, NopIn, Pdu, RejectReason};

use crate::connection::{Connection, RESERVED_TAG};
use crate::types::Millis;

impl Connection {
    /// A NOP-Out delivered in CmdSN order (or immediate).
    pub(crate) fn nop_out_pdu(&mut self, pdu: Pdu) {
        let Bhs::NopOut(n) = &pdu.bhs else {
            return;
        };
        if n.ttt != RESERVED_TAG {
            // A reply to our NOP-In must carry its TTT (RFC 7143 11.18.3).
            if !self.nop.outstanding.is_some_and(|(ttt, _)| ttt == n.ttt) {
                log::debug!("NOP-Out answers unknown TTT {:#x}", n.ttt);
                self.reject(RejectReason::INVALID_PDU_FIELD, &pdu);
                return;
            }
            self.nop.outstanding = None;
        }
        if n.itt == RESERVED_TAG {
            // No answer: either a reply to our NOP-In or a bare ExpStatSN update.
            return;
        }
        let max = usize::try_from(self.neg.params.initiator_mrdsl).unwrap_or(usize::MAX);
        let mut data = pdu.data;
        data.truncate(max);
        let reply = NopIn {
            lun: n.lun,
            itt: n.itt,
            ttt: RESERVED_TAG,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
        };
        self.send(reply, data);
    }

    /// Ping timer: send a NOP-In after `nop_interval_ms` without traffic, close
    /// when it stays unanswered for `nop_timeout_ms`.
    pub(crate) fn nop_timer(&mut self, now: Millis) {
        if let Some((_, deadline)) = self.nop.outstanding {
            if now >= deadline {
                log::info!("NOP-In ping unanswered: closing");
                self.close();
            }
            return;
        }
        let interval = self.cfg.limits.nop_interval_ms;
        if interval == 0 || self.neg.discovery() || now < self.last_rx.saturating_add(interval) {
            return;
        }
        let ttt = self.new_ttt();
        let ping = NopIn {
            lun: 0,
            itt: RESERVED_TAG,
            ttt,
            // Unsolicited NOP-In: StatSN is not advanced.
            stat_sn: self.stat_sn,
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
        };
        self.send(ping, Vec::new());
        let timeout = self.cfg.limits.nop_timeout_ms;
        self.nop.outstanding = Some((ttt, now.saturating_add(timeout)));
    }

    pub(crate) fn nop_next_timeout(&self) -> Option<Millis> {
        if let Some((_, deadline)) = self.nop.outstanding {
            return Some(deadline);
        }
        // Discovery sessions are not pinged: NOP-Out is not allowed in them.
        let interval = self.cfg.limits.nop_interval_ms;
        (interval > 0 && !self.neg.discovery()).then(|| self.last_rx.saturating_add(interval))
    }
}
