//! The login phase (RFC 7143 6.3, 11.12, 11.13): stages CSG/NSG, T and C
//! bits, text continuation, identity checks, security stage, transition to
//! full feature phase.

use iscsi_wire::{parse_text, Bhs, DigestConfig, LoginRequest, LoginResponse, Pdu};

use crate::auth::AuthStep;
use crate::cmdsn::CmdWindow;
use crate::connection::{Connection, Phase};
use crate::negotiate::{NegError, SessionType, Stage};
use crate::types::{Millis, Output};

/// Login response status (class << 8 | detail), RFC 7143 11.13.5.
pub mod login_status {
    /// Success.
    pub const SUCCESS: u16 = 0x0000;
    /// Initiator error (miscellaneous).
    pub const INITIATOR_ERROR: u16 = 0x0200;
    /// Authentication failure.
    pub const AUTH_FAILURE: u16 = 0x0201;
    /// Authorization failure.
    pub const AUTHORIZATION_FAILURE: u16 = 0x0202;
    /// Not found: the requested target does not exist.
    pub const NOT_FOUND: u16 = 0x0203;
    /// Target removed.
    pub const TARGET_REMOVED: u16 = 0x0204;
    /// Unsupported version.
    pub const UNSUPPORTED_VERSION: u16 = 0x0205;
    /// Too many connections.
    pub const TOO_MANY_CONNECTIONS: u16 = 0x0206;
    /// Missing parameter (InitiatorName, TargetName).
    pub const MISSING_PARAMETER: u16 = 0x0207;
    /// Cannot include the connection in the session.
    pub const CANT_INCLUDE_IN_SESSION: u16 = 0x0208;
    /// Session type not supported.
    pub const SESSION_TYPE_NOT_SUPPORTED: u16 = 0x0209;
    /// Session does not exist.
    pub const SESSION_DOES_NOT_EXIST: u16 = 0x020a;
    /// Invalid request during login.
    pub const INVALID_DURING_LOGIN: u16 = 0x020b;
    /// Target error (miscellaneous).
    pub const TARGET_ERROR: u16 = 0x0300;
    /// Service unavailable.
    pub const SERVICE_UNAVAILABLE: u16 = 0x0301;
    /// Out of resources.
    pub const OUT_OF_RESOURCES: u16 = 0x0302;
}

use login_status as st;

/// Largest login text accepted across C-bit continuations.
const MAX_LOGIN_TEXT: usize = 64 * 1024;

/// Largest data segment of a Login PDU (RFC 7143 13.12: MaxRecvDataSegmentLength keeps its
/// default, 8192, until login completes).
pub(crate) const LOGIN_MAX_SEGMENT: u32 = 8192;

/// The part of a Login Response that did not fit in one PDU: sent piece by piece, one per
/// empty Login Request (RFC 7143 6.2, 11.13.3: C bit).
#[derive(Debug)]
struct PendingResponse {
    rest: Vec<u8>,
    transit: bool,
    nsg: u8,
}

/// Progress of the login exchange.
#[derive(Debug, Default)]
pub(crate) struct LoginState {
    started: bool,
    isid: [u8; 6],
    tsih: u16,
    cid: u16,
    /// The stage the next request must be in (0 security, 1 operational).
    stage: u8,
    /// Text of C-bit requests not yet complete.
    rx_text: Vec<u8>,
    identity_checked: bool,
    auth_done: bool,
    sent_first_response: bool,
    /// Response text still to send after a partial (C=1) Login Response.
    tx_rest: Option<PendingResponse>,
}

impl Connection {
    /// The CID of this connection (from its login).
    pub(crate) fn login_cid(&self) -> u16 {
        self.login.cid
    }

    /// A PDU during the login phase.
    pub(crate) fn login_pdu(&mut self, pdu: Pdu, _now: Millis) {
        let Bhs::LoginRequest(req) = pdu.bhs else {
            log::info!("non-login PDU during login: closing");
            self.refuse_non_login(&pdu.bhs);
            return;
        };
        if !pdu.ahs.is_empty() {
            // No AHS is defined for Login Requests.
            self.login_fail(&req, st::INITIATOR_ERROR);
            return;
        }
        if let Err(status) = self.login_step(&req, pdu.data) {
            self.login_fail(&req, status);
        }
    }

    fn login_step(&mut self, req: &LoginRequest, data: Vec<u8>) -> Result<(), u16> {
        self.check_login_header(req)?;
        if let Some(pending) = self.login.tx_rest.take() {
            // Only an empty request may ask for the rest of a partial response.
            if req.cont || !data.is_empty() {
                return Err(st::INITIATOR_ERROR);
            }
            self.send_response_text(req, pending);
            return Ok(());
        }
        if self.login.rx_text.len() + data.len() > MAX_LOGIN_TEXT {
            return Err(st::INITIATOR_ERROR);
        }
        self.login.rx_text.extend_from_slice(&data);
        if req.cont {
            // Partial text: acknowledge with an empty response.
            self.send_login_response(req, false, 0, Vec::new());
            return Ok(());
        }
        let text = std::mem::take(&mut self.login.rx_text);
        if !crate::text::nul_terminated(&text) {
            log::info!("login text without its final NUL");
            return Err(st::INITIATOR_ERROR);
        }
        let pairs = parse_text(&text).map_err(|e| {
            log::info!("bad login text: {e}");
            st::INITIATOR_ERROR
        })?;
        let stage = if req.csg == 0 {
            Stage::Security
        } else {
            Stage::Operational
        };
        if !self.login.identity_checked {
            self.begin_auth(&pairs)?;
        }
        let mut resp = self.neg.process(&pairs, stage).map_err(|e| match e {
            NegError::DuplicateKey(_) => st::INITIATOR_ERROR,
            NegError::BadSessionType(_) => st::SESSION_TYPE_NOT_SUPPORTED,
        })?;
        if !self.login.identity_checked {
            self.check_identity()?;
            self.login.identity_checked = true;
        }
        if stage == Stage::Security {
            let keys = self.security_step(req, &resp)?;
            resp.extend(keys);
        } else if !self.login.auth_done {
            // Operational stage without a security stage: only without authentication.
            if !self.auth.methods().contains(&"None") {
                return Err(st::AUTH_FAILURE);
            }
            self.login.auth_done = true;
        }
        if !self.login.sent_first_response {
            resp.splice(0..0, self.first_response_keys());
        }
        let (transit, nsg) = self.transit_decision(req, &mut resp);
        if stage == Stage::Operational {
            resp.extend(self.neg.declarations(stage));
        }
        if transit && nsg == 3 {
            // The target's session limit (crate::limits): refused with a login status.
            self.admit_session(req)?;
        }
        self.send_login_response(req, transit, nsg, resp);
        Ok(())
    }

    /// The stage change a final (C=0) Login Response announced.
    fn after_final_response(&mut self, req: &LoginRequest, transit: bool, nsg: u8) {
        if transit && nsg == 3 {
            self.enter_full_feature(req);
        } else if transit {
            self.login.stage = nsg;
        }
    }

    /// Flags, stages and identity must stay consistent over the login (RFC 7143 6.3,
    /// 11.12): anything else is an initiator error (0x0200).
    fn check_login_header(&mut self, req: &LoginRequest) -> Result<(), u16> {
        if !self.login.started {
            self.login.started = true;
            self.login.isid = req.isid;
            self.login.tsih = req.tsih;
            self.login.cid = req.cid;
            self.login.stage = req.csg;
            self.stat_sn = req.exp_stat_sn;
            self.acked_stat_sn = req.exp_stat_sn;
            self.window = CmdWindow::new(req.cmd_sn, self.cfg.limits.cmd_window);
            if req.version_min > 0 {
                return Err(st::UNSUPPORTED_VERSION);
            }
            if req.tsih != 0 {
                // One connection per session: no existing session can be joined.
                return Err(st::SESSION_DOES_NOT_EXIST);
            }
            if req.csg > 1 {
                return Err(st::INITIATOR_ERROR);
            }
        } else {
            let l = &self.login;
            if req.isid != l.isid || req.tsih != l.tsih || req.cid != l.cid {
                return Err(st::INITIATOR_ERROR);
            }
            if req.csg != l.stage {
                return Err(st::INITIATOR_ERROR);
            }
        }
        if req.transit && req.cont {
            return Err(st::INITIATOR_ERROR);
        }
        if req.transit && (req.nsg <= req.csg || req.nsg == 2) {
            return Err(st::INITIATOR_ERROR);
        }
        Ok(())
    }

    /// Lets the authenticator decide this login's policy from the identity keys of the first
    /// request, before AuthMethod is negotiated. Requests that name no initiator or an unknown
    /// target are left to [`Self::check_identity`], so they get their own status.
    fn begin_auth(&mut self, pairs: &[(String, String)]) -> Result<(), u16> {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let Some(initiator) = get("InitiatorName").filter(|n| !n.is_empty()) else {
            return Ok(());
        };
        let target = match get("SessionType") {
            Some("Discovery") => None,
            _ => match get("TargetName") {
                Some(t) if self.cfg.catalog.find(t).is_some() => Some(t),
                _ => return Ok(()),
            },
        };
        self.auth.begin(initiator, target)?;
        let methods = self.auth.methods();
        self.neg.set_auth_methods(&methods);
        Ok(())
    }

    /// InitiatorName always, TargetName for normal sessions (RFC 7143 13.4, 13.5).
    fn check_identity(&self) -> Result<(), u16> {
        let id = &self.neg.identity;
        if id.initiator_name.as_deref().map_or(true, str::is_empty) {
            return Err(st::MISSING_PARAMETER);
        }
        if id.session_type == Some(SessionType::Discovery) {
            return Ok(());
        }
        let Some(name) = id.target_name.as_deref() else {
            return Err(st::MISSING_PARAMETER);
        };
        if self.cfg.catalog.find(name).is_none() {
            log::info!("login to unknown target {name:?}");
            return Err(st::NOT_FOUND);
        }
        Ok(())
    }

    /// The security stage: AuthMethod outcome and the authenticator's steps.
    fn security_step(
        &mut self,
        req: &LoginRequest,
        replies: &[(String, String)],
    ) -> Result<Vec<(String, String)>, u16> {
        if replies
            .iter()
            .any(|(k, v)| k == "AuthMethod" && v == "Reject")
        {
            return Err(st::AUTH_FAILURE);
        }
        if self.login.auth_done {
            return Ok(Vec::new());
        }
        let Some(method) = self.neg.identity.auth_method.clone() else {
            if req.transit {
                if !self.auth.methods().contains(&"None") {
                    return Err(st::AUTH_FAILURE);
                }
                self.login.auth_done = true;
            }
            return Ok(Vec::new());
        };
        if method == "None" {
            self.login.auth_done = true;
            return Ok(Vec::new());
        }
        if self.neg.auth_keys.is_empty() {
            return Ok(Vec::new());
        }
        let initiator = self.neg.identity.initiator_name.clone().unwrap_or_default();
        let target = self.neg.identity.target_name.clone();
        let keys = std::mem::take(&mut self.neg.auth_keys);
        match self
            .auth
            .step(&method, &initiator, target.as_deref(), &keys)
        {
            AuthStep::Continue(k) => Ok(k),
            AuthStep::Success(k) => {
                self.login.auth_done = true;
                Ok(k)
            }
            AuthStep::Failure => Err(st::AUTH_FAILURE),
        }
    }

    /// TargetPortalGroupTag and TargetAlias, declared in the first response of a
    /// normal session.
    fn first_response_keys(&mut self) -> Vec<(String, String)> {
        self.login.sent_first_response = true;
        if self.neg.discovery() {
            return Vec::new();
        }
        let mut keys = vec![(
            "TargetPortalGroupTag".to_string(),
            self.cfg.portal_group_tag.to_string(),
        )];
        let alias = self
            .neg
            .identity
            .target_name
            .as_deref()
            .and_then(|n| self.cfg.catalog.find(n))
            .and_then(|t| t.alias.clone());
        if let Some(a) = alias {
            keys.push(("TargetAlias".to_string(), a));
        }
        keys
    }

    /// Whether to answer T=1, and the NSG; proposals are appended to `resp`.
    fn transit_decision(
        &mut self,
        req: &LoginRequest,
        resp: &mut Vec<(String, String)>,
    ) -> (bool, u8) {
        if !req.transit {
            return (false, 0);
        }
        match req.csg {
            0 if !self.login.auth_done => (false, 0),
            0 if req.nsg == 3 && self.neg.has_proposals() => (true, 1),
            0 => (true, req.nsg),
            _ => {
                if self.neg.awaiting_answers() {
                    return (false, 0);
                }
                let p = self.neg.proposals();
                if p.is_empty() {
                    (true, 3)
                } else {
                    resp.extend(p);
                    (false, 0)
                }
            }
        }
    }

    fn send_login_response(
        &mut self,
        req: &LoginRequest,
        transit: bool,
        nsg: u8,
        keys: Vec<(String, String)>,
    ) {
        let pending = PendingResponse {
            rest: iscsi_wire::encode_text(&keys),
            transit,
            nsg,
        };
        self.send_response_text(req, pending);
    }

    /// The largest Login Response data segment: 8192 bytes, or less when the initiator
    /// declared a smaller MaxRecvDataSegmentLength.
    fn login_segment_limit(&self) -> usize {
        let n = self
            .neg
            .params
            .initiator_mrdsl
            .clamp(512, LOGIN_MAX_SEGMENT);
        usize::try_from(n).unwrap_or(512)
    }

    /// Send the next piece of a response's text: with C=1 (and T=0) while more remains,
    /// else as the final response, followed by the stage change it announces.
    fn send_response_text(&mut self, req: &LoginRequest, mut p: PendingResponse) {
        let limit = self.login_segment_limit();
        if p.rest.len() > limit {
            let rest = p.rest.split_off(limit);
            let piece = std::mem::replace(&mut p.rest, rest);
            self.send_response_pdu(req, false, true, 0, piece);
            self.login.tx_rest = Some(p);
            return;
        }
        self.send_response_pdu(req, p.transit, false, p.nsg, p.rest);
        self.after_final_response(req, p.transit, p.nsg);
    }

    fn send_response_pdu(
        &mut self,
        req: &LoginRequest,
        transit: bool,
        cont: bool,
        nsg: u8,
        data: Vec<u8>,
    ) {
        let final_ = transit && nsg == 3;
        let resp = LoginResponse {
            transit,
            cont,
            csg: req.csg,
            nsg: if transit { nsg } else { 0 },
            version_max: 0,
            version_active: 0,
            isid: req.isid,
            tsih: if final_ { self.cfg.tsih } else { 0 },
            itt: req.itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
            status_class: 0,
            status_detail: 0,
        };
        self.send(resp, data);
    }

    /// Any other PDU in the login phase: a Login Response "invalid request during login"
    /// for its task tag (RFC 7143 11.13.5), then close.
    fn refuse_non_login(&mut self, bhs: &Bhs) {
        self.refuse_during_login(bhs.itt());
    }

    /// Login reject "invalid request during login" for the PDU with this task tag, then
    /// close.
    pub(crate) fn refuse_during_login(&mut self, itt: u32) {
        let req = LoginRequest {
            itt,
            isid: self.login.isid,
            csg: self.login.stage,
            ..LoginRequest::default()
        };
        self.login_fail(&req, st::INVALID_DURING_LOGIN);
    }

    /// Answer with a login failure status and close.
    fn login_fail(&mut self, req: &LoginRequest, status: u16) {
        log::info!("login failed with status {status:#06x}");
        let [class, detail] = status.to_be_bytes();
        let resp = LoginResponse {
            transit: false,
            cont: false,
            csg: req.csg & 0x03,
            nsg: 0,
            version_max: 0,
            version_active: 0,
            isid: req.isid,
            tsih: 0,
            itt: req.itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
            status_class: class,
            status_detail: detail,
        };
        self.send(resp, Vec::new());
        self.close();
    }

    fn enter_full_feature(&mut self, req: &LoginRequest) {
        let p = &self.neg.params;
        let digests = DigestConfig {
            header: p.header_digest,
            data: p.data_digest,
        };
        self.tx_digests = digests;
        self.rx_digests = digests;
        self.phase = Phase::FullFeature;
        self.login_deadline = None;
        let info = self.session_facts(req.isid);
        log::debug!(
            "login complete: {} -> {:?} (tsih {})",
            info.initiator_name,
            info.target_name,
            info.tsih
        );
        self.session = Some(info.clone());
        self.push(Output::LoggedIn(info));
    }
}

#[cfg(test)]
mod tests;
