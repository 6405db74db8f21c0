//! Text requests in full feature phase (RFC 7143 11.10, 11.11): SendTargets
//! (discovery and normal sessions), other keys per the negotiation table,
//! C-bit continuation in both directions with TTT bookkeeping.

use iscsi_wire::{encode_text, parse_text, Bhs, Pdu, RejectReason, TextRequest, TextResponse};

use crate::config::TargetEntry;
use crate::connection::{Connection, RESERVED_TAG};
use crate::negotiate::Stage;

/// Largest text accepted across C-bit continuations.
const MAX_TEXT: usize = 64 * 1024;

/// An unfinished text exchange.
#[derive(Debug, Default)]
pub(crate) struct TextState {
    /// ITT and TTT of the exchange in progress.
    pending: Option<(u32, u32)>,
    /// Request text received with C=1.
    rx: Vec<u8>,
    /// Response text not yet sent.
    tx: Vec<u8>,
}

/// RFC 7143 6.1: every pair, the last one too, ends with a NUL (empty text is fine).
pub(crate) fn nul_terminated(text: &[u8]) -> bool {
    text.last().map_or(true, |&b| b == 0)
}

impl Connection {
    /// A Text Request delivered in CmdSN order (or immediate).
    pub(crate) fn text_pdu(&mut self, pdu: Pdu) {
        let Bhs::TextRequest(req) = &pdu.bhs else {
            return;
        };
        if req.ttt != RESERVED_TAG {
            match self.text.pending {
                Some((itt, ttt)) if (itt, ttt) == (req.itt, req.ttt) => {}
                Some((_, ttt)) if ttt == req.ttt => {
                    // The exchange's TTT under another ITT: the ITT changed mid-sequence.
                    self.text = TextState::default();
                    self.reject(RejectReason::PROTOCOL_ERROR, &pdu);
                    return;
                }
                _ => {
                    self.reject(RejectReason::INVALID_PDU_FIELD, &pdu);
                    return;
                }
            }
            if !self.text.tx.is_empty() {
                // The initiator asks for the rest of our response.
                self.send_text_chunk(req);
                return;
            }
        } else {
            // A new exchange resets any previous one.
            self.text = TextState::default();
            self.neg.begin_exchange();
        }
        if self.text.rx.len() + pdu.data.len() > MAX_TEXT {
            self.text = TextState::default();
            self.reject(RejectReason::PROTOCOL_ERROR, &pdu);
            return;
        }
        self.text.rx.extend_from_slice(&pdu.data);
        if req.cont {
            let ttt = self.new_ttt();
            self.text.pending = Some((req.itt, ttt));
            self.send_text_response(req, ttt, false, false, Vec::new());
            return;
        }
        let text = std::mem::take(&mut self.text.rx);
        let Some(answer) = self.answer_text(&text) else {
            self.text = TextState::default();
            self.reject(RejectReason::PROTOCOL_ERROR, &pdu);
            return;
        };
        self.text.tx = answer;
        self.send_text_chunk(req);
    }

    /// Response keys for a complete request; None when it is malformed.
    fn answer_text(&mut self, text: &[u8]) -> Option<Vec<u8>> {
        if !nul_terminated(text) {
            return None;
        }
        let pairs = parse_text(text).ok()?;
        let (st, rest): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(k, _)| k == "SendTargets");
        if st.len() > 1 {
            return None;
        }
        let mut out = Vec::new();
        if let Some((_, value)) = st.first() {
            out.extend(self.send_targets(value));
        }
        let replies = self.neg.process(&rest, Stage::FullFeature).ok()?;
        out.extend(encode_text(&replies));
        Some(out)
    }

    /// SendTargets=All / =<name> / empty (the session's target).
    fn send_targets(&self, value: &str) -> Vec<u8> {
        let catalog = &self.cfg.catalog;
        let session_target = self.session.as_ref().and_then(|s| s.target_name.clone());
        let chosen: Vec<&TargetEntry> = match value {
            "All" if self.neg.discovery() => catalog.targets.iter().collect(),
            "All" | "" => session_target
                .as_deref()
                .and_then(|n| catalog.find(n))
                .into_iter()
                .collect(),
            name => catalog.find(name).into_iter().collect(),
        };
        let initiator = self.neg.identity.initiator_name.as_deref().unwrap_or("");
        let mut pairs = Vec::new();
        for t in chosen {
            if !self.auth.visible(initiator, &t.name) {
                continue;
            }
            pairs.push(("TargetName".to_string(), t.name.clone()));
            if t.portals.is_empty() {
                let addr = format!("{},{}", self.cfg.local_portal, self.cfg.portal_group_tag);
                pairs.push(("TargetAddress".to_string(), addr));
            }
            for p in &t.portals {
                pairs.push(("TargetAddress".to_string(), p.clone()));
            }
        }
        encode_text(&pairs)
    }

    /// Send the next piece of the pending response, at most the initiator's
    /// MaxRecvDataSegmentLength; C=1 and a TTT while more remains.
    fn send_text_chunk(&mut self, req: &TextRequest) {
        let max = usize::try_from(self.neg.params.initiator_mrdsl.max(512)).unwrap_or(8192);
        let n = self.text.tx.len().min(max);
        let chunk: Vec<u8> = self.text.tx.drain(..n).collect();
        if self.text.tx.is_empty() {
            self.text = TextState::default();
            self.send_text_response(req, RESERVED_TAG, true, false, chunk);
        } else {
            let ttt = self.new_ttt();
            self.text.pending = Some((req.itt, ttt));
            self.send_text_response(req, ttt, false, true, chunk);
        }
    }

    fn send_text_response(
        &mut self,
        req: &TextRequest,
        ttt: u32,
        final_: bool,
        cont: bool,
        data: Vec<u8>,
    ) {
        let resp = TextResponse {
            final_,
            cont,
            lun: req.lun,
            itt: req.itt,
            ttt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
        };
        self.send(resp, data);
    }
}
