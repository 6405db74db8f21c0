//! Text key negotiation (RFC 7143 chapter 6 and section 13): one typed table of
//! every key and the responder logic the target applies to an initiator's offers.

use std::collections::{HashMap, HashSet};

use crate::config::Limits;

/// Largest value of the 24-bit data length keys.
pub const MAX_DATA_LEN: u64 = 0x00ff_ffff;
/// Longest value of a key that is not a large binary value (RFC 7143 6.1: 255 bytes).
pub const MAX_SIMPLE_VALUE: usize = 255;

/// How a key's value is negotiated (RFC 7143 6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A list of values in order of preference; the responder picks the first it supports.
    /// The slice holds every value the standard defines.
    List(&'static [&'static str]),
    /// Boolean, result is the AND of both sides.
    And,
    /// Boolean, result is the OR of both sides.
    Or,
    /// Numeric, result is the minimum of both sides, valid range inclusive.
    Min {
        /// Smallest valid value.
        min: u64,
        /// Largest valid value.
        max: u64,
    },
    /// Numeric, result is the maximum of both sides, valid range inclusive.
    Max {
        /// Smallest valid value.
        min: u64,
        /// Largest valid value.
        max: u64,
    },
    /// Declarative text (no answer).
    DeclText,
    /// Declarative number in a range (no answer).
    DeclNumber {
        /// Smallest valid value.
        min: u64,
        /// Largest valid value.
        max: u64,
    },
    /// Declarative, one of the given values (no answer).
    DeclEnum(&'static [&'static str]),
    /// Key made obsolete by RFC 7143 13.25; answered with a fixed value.
    Obsolete {
        /// The constant answer.
        answer: &'static str,
    },
    /// Authentication method specific key, handled by the authenticator.
    Auth,
}

/// Whether a key belongs to the session or to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Session-wide (SW).
    Session,
    /// Connection-only (CO).
    Connection,
}

/// When a key may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Only during the login phase (IO; LO keys are also login-only).
    Login,
    /// Only in the security negotiation stage.
    Security,
    /// In the login phase and in full feature phase (ALL).
    Any,
    /// Only in full feature phase (FFP).
    FullFeature,
}

/// Who may originate the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// Initiator only.
    Initiator,
    /// Target only.
    Target,
    /// Both sides.
    Both,
}

/// One row of the key table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDef {
    /// The key name, case-sensitive.
    pub name: &'static str,
    /// Negotiation function / value type.
    pub kind: Kind,
    /// The value that applies when the key is never negotiated ("" = none).
    pub default: &'static str,
    /// Session or connection scope.
    pub scope: Scope,
    /// Phase restriction.
    pub phase: Phase,
    /// LO: may only be negotiated on the leading connection.
    pub leading_only: bool,
    /// Who may send it.
    pub sender: Sender,
    /// False when the key is Irrelevant in discovery sessions.
    pub discovery: bool,
}

const fn key(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    scope: Scope,
    phase: Phase,
    sender: Sender,
    discovery: bool,
) -> KeyDef {
    KeyDef {
        name,
        kind,
        default,
        scope,
        phase,
        leading_only: matches!(scope, Scope::Session) && matches!(phase, Phase::Login),
        sender,
        discovery,
    }
}

const DIGESTS: &[&str] = &["CRC32C", "None"];
const AUTH_METHODS: &[&str] = &["KRB5", "SRP", "CHAP", "None", "SPKM1", "SPKM2"];
const TASK_REPORTING: &[&str] = &["RFC3720", "ResponseFence", "FastAbort"];
const LEN_RANGE: (u64, u64) = (512, MAX_DATA_LEN);

use Phase::{Any, FullFeature, Login, Security};
use Scope::{Connection as Conn, Session as Sess};
use Sender::{Both, Initiator as Ini, Target as Tgt};

/// Every key of RFC 7143 section 13 (plus RFC 7144 iSCSIProtocolLevel and the
/// CHAP keys of section 12.1.3).
pub static KEYS: &[KeyDef] = &[
    key(
        "HeaderDigest",
        Kind::List(DIGESTS),
        "None",
        Conn,
        Login,
        Both,
        true,
    ),
    key(
        "DataDigest",
        Kind::List(DIGESTS),
        "None",
        Conn,
        Login,
        Both,
        true,
    ),
    key(
        "MaxConnections",
        Kind::Min { min: 1, max: 65535 },
        "1",
        Sess,
        Login,
        Both,
        false,
    ),
    key(
        "SendTargets",
        Kind::DeclText,
        "",
        Sess,
        FullFeature,
        Ini,
        true,
    ),
    key("TargetName", Kind::DeclText, "", Sess, Login, Both, true),
    key("InitiatorName", Kind::DeclText, "", Sess, Login, Ini, true),
    key("TargetAlias", Kind::DeclText, "", Sess, Any, Tgt, true),
    key("InitiatorAlias", Kind::DeclText, "", Sess, Any, Ini, true),
    key("TargetAddress", Kind::DeclText, "", Sess, Any, Tgt, true),
    key(
        "TargetPortalGroupTag",
        Kind::DeclNumber { min: 0, max: 65535 },
        "",
        Sess,
        Login,
        Tgt,
        true,
    ),
    key("InitialR2T", Kind::Or, "Yes", Sess, Login, Both, false),
    key("ImmediateData", Kind::And, "Yes", Sess, Login, Both, false),
    key(
        "MaxRecvDataSegmentLength",
        Kind::DeclNumber {
            min: LEN_RANGE.0,
            max: LEN_RANGE.1,
        },
        "8192",
        Conn,
        Any,
        Both,
        true,
    ),
    key(
        "MaxBurstLength",
        Kind::Min {
            min: LEN_RANGE.0,
            max: LEN_RANGE.1,
        },
        "262144",
        Sess,
        Login,
        Both,
        false,
    ),
    key(
        "FirstBurstLength",
        Kind::Min {
            min: LEN_RANGE.0,
            max: LEN_RANGE.1,
        },
        "65536",
        Sess,
        Login,
        Both,
        false,
    ),
    key(
        "DefaultTime2Wait",
        Kind::Max { min: 0, max: 3600 },
        "2",
        Sess,
        Login,
        Both,
        true,
    ),
    key(
        "DefaultTime2Retain",
        Kind::Min { min: 0, max: 3600 },
        "20",
        Sess,
        Login,
        Both,
        true,
    ),
    key(
        "MaxOutstandingR2T",
        Kind::Min { min: 1, max: 65535 },
        "1",
        Sess,
        Login,
        Both,
        false,
    ),
    key("DataPDUInOrder", Kind::Or, "Yes", Sess, Login, Both, false),
    key(
        "DataSequenceInOrder",
        Kind::Or,
        "Yes",
        Sess,
        Login,
        Both,
        false,
    ),
    key(
        "ErrorRecoveryLevel",
        Kind::Min { min: 0, max: 2 },
        "0",
        Sess,
        Login,
        Both,
        true,
    ),
    key(
        "SessionType",
        Kind::DeclEnum(&["Discovery", "Normal"]),
        "Normal",
        Sess,
        Login,
        Ini,
        true,
    ),
    key(
        "AuthMethod",
        Kind::List(AUTH_METHODS),
        "None",
        Conn,
        Security,
        Both,
        true,
    ),
    key(
        "OFMarker",
        Kind::Obsolete { answer: "Reject" },
        "No",
        Conn,
        Login,
        Both,
        true,
    ),
    key(
        "IFMarker",
        Kind::Obsolete { answer: "Reject" },
        "No",
        Conn,
        Login,
        Both,
        true,
    ),
    key(
        "OFMarkInt",
        Kind::Obsolete { answer: "Reject" },
        "2048",
        Conn,
        Login,
        Both,
        true,
    ),
    key(
        "IFMarkInt",
        Kind::Obsolete { answer: "Reject" },
        "2048",
        Conn,
        Login,
        Both,
        true,
    ),
    key(
        "TaskReporting",
        Kind::List(TASK_REPORTING),
        "RFC3720",
        Sess,
        Login,
        Both,
        false,
    ),
    key(
        "iSCSIProtocolLevel",
        Kind::Min { min: 0, max: 31 },
        "0",
        Sess,
        Login,
        Both,
        true,
    ),
    key("CHAP_A", Kind::Auth, "", Conn, Security, Both, true),
    key("CHAP_I", Kind::Auth, "", Conn, Security, Both, true),
    key("CHAP_C", Kind::Auth, "", Conn, Security, Both, true),
    key("CHAP_N", Kind::Auth, "", Conn, Security, Both, true),
    key("CHAP_R", Kind::Auth, "", Conn, Security, Both, true),
];

/// The table row for `name` (exact, case-sensitive match as RFC 7143 6.1 requires).
pub fn lookup(name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.name == name)
}

/// Parse an RFC 7143 6.1 numerical value: decimal or `0x` hexadecimal.
pub fn parse_number(value: &str) -> Option<u64> {
    if let Some(hex) = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        return u64::from_str_radix(hex, 16).ok();
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

fn yes_no(v: bool) -> String {
    if v { "Yes" } else { "No" }.to_string()
}

/// The stage a negotiation happens in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Login, security negotiation stage (CSG 0).
    Security,
    /// Login, operational negotiation stage (CSG 1).
    Operational,
    /// Full feature phase (Text requests).
    FullFeature,
}

/// SessionType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionType {
    /// SessionType=Normal.
    Normal,
    /// SessionType=Discovery.
    Discovery,
}

/// A negotiation failure that ends the login (or rejects the Text request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NegError {
    /// The same key twice in one negotiation (RFC 7143 6.2): initiator error.
    DuplicateKey(String),
    /// SessionType with a value other than Discovery / Normal.
    BadSessionType(String),
}

/// Operational parameters in force (RFC defaults until negotiated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// CRC32C header digests.
    pub header_digest: bool,
    /// CRC32C data digests.
    pub data_digest: bool,
    /// MaxConnections.
    pub max_connections: u32,
    /// InitialR2T.
    pub initial_r2t: bool,
    /// ImmediateData.
    pub immediate_data: bool,
    /// MaxRecvDataSegmentLength declared by the initiator (limit of what we send).
    pub initiator_mrdsl: u32,
    /// MaxRecvDataSegmentLength declared by us (limit of what we accept).
    pub target_mrdsl: u32,
    /// MaxBurstLength.
    pub max_burst: u32,
    /// FirstBurstLength.
    pub first_burst: u32,
    /// DefaultTime2Wait.
    pub default_time2wait: u32,
    /// DefaultTime2Retain.
    pub default_time2retain: u32,
    /// MaxOutstandingR2T.
    pub max_outstanding_r2t: u32,
    /// DataPDUInOrder.
    pub data_pdu_in_order: bool,
    /// DataSequenceInOrder.
    pub data_sequence_in_order: bool,
    /// ErrorRecoveryLevel.
    pub error_recovery_level: u32,
    /// iSCSIProtocolLevel.
    pub protocol_level: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            header_digest: false,
            data_digest: false,
            max_connections: 1,
            initial_r2t: true,
            immediate_data: true,
            initiator_mrdsl: 8192,
            target_mrdsl: 8192,
            max_burst: 262_144,
            first_burst: 65_536,
            default_time2wait: 2,
            default_time2retain: 20,
            max_outstanding_r2t: 1,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            error_recovery_level: 0,
            protocol_level: 0,
        }
    }
}

/// Identity keys gathered during login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// InitiatorName.
    pub initiator_name: Option<String>,
    /// InitiatorAlias.
    pub initiator_alias: Option<String>,
    /// TargetName.
    pub target_name: Option<String>,
    /// SessionType (None until declared; Normal is the default).
    pub session_type: Option<SessionType>,
    /// The chosen AuthMethod.
    pub auth_method: Option<String>,
}

/// Our protocol level: RFC 7143.
pub const OUR_PROTOCOL_LEVEL: u64 = 1;

/// The target's side of a key negotiation.
#[derive(Debug, Clone)]
pub struct Negotiator {
    limits: Limits,
    auth_methods: Vec<String>,
    /// Values in force.
    pub params: Params,
    /// Identity keys.
    pub identity: Identity,
    /// Authentication keys (CHAP_*) of the last request, for the authenticator.
    pub auth_keys: Vec<(String, String)>,
    /// Keys received in this negotiation, with their values.
    seen: HashMap<String, String>,
    offered: Vec<&'static str>,
    mrdsl_declared: bool,
}

impl Negotiator {
    /// A negotiator offering `limits`; `auth_methods` lists the AuthMethod values we accept.
    pub fn new(limits: &Limits, auth_methods: &[&str]) -> Self {
        let limits = limits.sanitized();
        let params = Params {
            target_mrdsl: limits.max_recv_data_segment,
            ..Params::default()
        };
        Negotiator {
            limits,
            auth_methods: auth_methods.iter().map(|s| s.to_string()).collect(),
            params,
            identity: Identity::default(),
            auth_keys: Vec::new(),
            seen: HashMap::new(),
            offered: Vec::new(),
            mrdsl_declared: false,
        }
    }

    /// Replaces the AuthMethod values we accept (before AuthMethod is negotiated).
    pub fn set_auth_methods(&mut self, auth_methods: &[&str]) {
        self.auth_methods = auth_methods.iter().map(|s| s.to_string()).collect();
    }

    /// True for a discovery session.
    pub fn discovery(&self) -> bool {
        self.identity.session_type == Some(SessionType::Discovery)
    }

    /// Forget which keys were seen (a new Text negotiation in full feature phase).
    pub fn begin_exchange(&mut self) {
        self.seen.clear();
        self.offered.clear();
    }

    /// True while we wait for the initiator's answer to a key we offered.
    pub fn awaiting_answers(&self) -> bool {
        !self.offered.is_empty()
    }

    /// Process the initiator's keys and return our response keys.
    pub fn process(
        &mut self,
        pairs: &[(String, String)],
        stage: Stage,
    ) -> Result<Vec<(String, String)>, NegError> {
        self.auth_keys.clear();
        // SessionType decides relevance of other keys: look at it first.
        if let Some((_, v)) = pairs.iter().find(|(k, _)| k == "SessionType") {
            if stage != Stage::FullFeature {
                self.identity.session_type = Some(match v.as_str() {
                    "Discovery" => SessionType::Discovery,
                    "Normal" => SessionType::Normal,
                    other => return Err(NegError::BadSessionType(other.to_string())),
                });
            }
        }
        let mut out = Vec::new();
        let mut this_request = HashSet::new();
        for (k, v) in pairs {
            // A key twice in one request, or again later with another value, is an
            // error (RFC 7143 6.2). Repeating an earlier key with the same value is
            // tolerated: some initiators resend their declarations in every stage.
            if !this_request.insert(k.as_str()) {
                return Err(NegError::DuplicateKey(k.clone()));
            }
            if let Some(old) = self.seen.insert(k.clone(), v.clone()) {
                if old != *v {
                    return Err(NegError::DuplicateKey(k.clone()));
                }
            }
            if let Some(pos) = self.offered.iter().position(|o| *o == k.as_str()) {
                self.offered.remove(pos);
                self.take_answer(k, v);
                continue;
            }
            if let Some(answer) = self.answer(k, v, stage) {
                out.push((k.clone(), answer));
            }
        }
        self.fix_first_burst(&mut out);
        Ok(out)
    }

    /// Keys the target declares on its own: MaxRecvDataSegmentLength once, outside
    /// the security stage (call when building a response).
    pub fn declarations(&mut self, stage: Stage) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.mrdsl_declared && stage != Stage::Security {
            self.mrdsl_declared = true;
            out.push((
                "MaxRecvDataSegmentLength".to_string(),
                self.limits.max_recv_data_segment.to_string(),
            ));
        }
        out
    }

    /// True once our MaxRecvDataSegmentLength was declared.
    pub fn mrdsl_declared(&self) -> bool {
        self.mrdsl_declared
    }

    /// Keys the target must propose before leaving the operational stage: those
    /// the initiator did not negotiate whose default exceeds what we accept.
    fn wanted(&self) -> Vec<(&'static str, String)> {
        if self.discovery() {
            return Vec::new();
        }
        let l = &self.limits;
        let mut want: Vec<(&'static str, String)> = Vec::new();
        if !l.immediate_data {
            want.push(("ImmediateData", "No".into()));
        }
        if l.max_burst < 262_144 {
            want.push(("MaxBurstLength", l.max_burst.to_string()));
        }
        if l.first_burst < 65_536 {
            want.push(("FirstBurstLength", l.first_burst.to_string()));
        }
        want.retain(|(k, _)| !self.seen.contains_key(*k) && !self.offered.contains(k));
        want
    }

    /// True when [`proposals`](Self::proposals) would propose something.
    pub fn has_proposals(&self) -> bool {
        !self.wanted().is_empty()
    }

    /// Make the proposals of [`has_proposals`](Self::has_proposals): the values
    /// take effect at once and the keys await the initiator's answer.
    pub fn proposals(&mut self) -> Vec<(String, String)> {
        let want = self.wanted();
        let mut out = Vec::new();
        for (k, v) in want {
            match k {
                "ImmediateData" => self.params.immediate_data = false,
                "MaxBurstLength" => self.params.max_burst = self.limits.max_burst,
                _ => self.params.first_burst = self.limits.first_burst.min(self.params.max_burst),
            }
            self.offered.push(k);
            out.push((k.to_string(), v));
        }
        out
    }

    /// The initiator answered a key we offered: apply the result.
    fn take_answer(&mut self, k: &str, v: &str) {
        match k {
            "ImmediateData" => {
                if let Some(b) = parse_bool(v) {
                    self.params.immediate_data = b && self.limits.immediate_data;
                }
            }
            "MaxBurstLength" => {
                if let Some(n) = parse_number(v).filter(|n| (512..=MAX_DATA_LEN).contains(n)) {
                    self.params.max_burst = (n as u32).min(self.limits.max_burst);
                }
            }
            "FirstBurstLength" => {
                if let Some(n) = parse_number(v).filter(|n| (512..=MAX_DATA_LEN).contains(n)) {
                    self.params.first_burst = (n as u32).min(self.limits.first_burst);
                }
            }
            _ => {}
        }
        self.params.first_burst = self.params.first_burst.min(self.params.max_burst);
    }

    /// FirstBurstLength must not exceed MaxBurstLength (RFC 7143 13.14).
    fn fix_first_burst(&mut self, out: &mut [(String, String)]) {
        if self.params.first_burst > self.params.max_burst {
            self.params.first_burst = self.params.max_burst;
            for (k, v) in out.iter_mut() {
                if k == "FirstBurstLength" {
                    *v = self.params.first_burst.to_string();
                }
            }
        }
    }

    /// The answer to one offered key; None when no answer is due (declarative keys).
    fn answer(&mut self, k: &str, v: &str, stage: Stage) -> Option<String> {
        let Some(def) = lookup(k) else {
            return Some("NotUnderstood".into());
        };
        if v.len() > MAX_SIMPLE_VALUE && def.kind != Kind::Auth {
            // RFC 7143 6.1: only large binary values (CHAP) may be longer.
            return Some("Reject".into());
        }
        if matches!(v, "NotUnderstood" | "Irrelevant" | "Reject") {
            return Some("Reject".into());
        }
        if def.sender == Sender::Target || !phase_allows(def.phase, stage) {
            return Some("Reject".into());
        }
        if self.discovery() && !def.discovery {
            return Some("Irrelevant".into());
        }
        match def.kind {
            Kind::List(_) => Some(self.answer_list(def.name, v)),
            Kind::And | Kind::Or => Some(self.answer_bool(def, v)),
            Kind::Min { min, max } | Kind::Max { min, max } => {
                Some(self.answer_number(def, v, min, max))
            }
            Kind::DeclText | Kind::DeclNumber { .. } | Kind::DeclEnum(_) => self.declared(def, v),
            Kind::Obsolete { answer } => Some(answer.into()),
            Kind::Auth => {
                self.auth_keys.push((k.to_string(), v.to_string()));
                None
            }
        }
    }

    fn supported_values(&self, key: &str) -> Vec<String> {
        match key {
            "HeaderDigest" | "DataDigest" => vec!["CRC32C".into(), "None".into()],
            "AuthMethod" => self.auth_methods.clone(),
            "TaskReporting" => vec!["RFC3720".into()],
            _ => Vec::new(),
        }
    }

    fn answer_list(&mut self, key: &str, v: &str) -> String {
        let ours = self.supported_values(key);
        let Some(pick) = v.split(',').find(|c| ours.iter().any(|o| o == c)) else {
            return "Reject".into();
        };
        match key {
            "HeaderDigest" => self.params.header_digest = pick == "CRC32C",
            "DataDigest" => self.params.data_digest = pick == "CRC32C",
            "AuthMethod" => self.identity.auth_method = Some(pick.to_string()),
            _ => {}
        }
        pick.to_string()
    }

    fn answer_bool(&mut self, def: &KeyDef, v: &str) -> String {
        let Some(theirs) = parse_bool(v) else {
            return "Reject".into();
        };
        let l = &self.limits;
        let (ours, slot) = match def.name {
            "InitialR2T" => (l.initial_r2t, &mut self.params.initial_r2t),
            "ImmediateData" => (l.immediate_data, &mut self.params.immediate_data),
            "DataPDUInOrder" => (true, &mut self.params.data_pdu_in_order),
            _ => (true, &mut self.params.data_sequence_in_order),
        };
        let result = if def.kind == Kind::And {
            ours && theirs
        } else {
            ours || theirs
        };
        *slot = result;
        yes_no(result)
    }

    fn answer_number(&mut self, def: &KeyDef, v: &str, min: u64, max: u64) -> String {
        let Some(theirs) = parse_number(v).filter(|n| (min..=max).contains(n)) else {
            return "Reject".into();
        };
        let l = &self.limits;
        let ours: u64 = match def.name {
            "MaxConnections" => 1,
            "MaxBurstLength" => l.max_burst.into(),
            "FirstBurstLength" => l.first_burst.into(),
            "DefaultTime2Wait" => l.default_time2wait.into(),
            "DefaultTime2Retain" => l.default_time2retain.into(),
            "MaxOutstandingR2T" => l.max_outstanding_r2t.into(),
            "ErrorRecoveryLevel" => 0,
            _ => OUR_PROTOCOL_LEVEL,
        };
        let result = if matches!(def.kind, Kind::Max { .. }) {
            ours.max(theirs)
        } else {
            ours.min(theirs)
        };
        // Every range above fits in u32.
        let r = u32::try_from(result).unwrap_or(u32::MAX);
        let p = &mut self.params;
        match def.name {
            "MaxConnections" => p.max_connections = r,
            "MaxBurstLength" => p.max_burst = r,
            "FirstBurstLength" => p.first_burst = r,
            "DefaultTime2Wait" => p.default_time2wait = r,
            "DefaultTime2Retain" => p.default_time2retain = r,
            "MaxOutstandingR2T" => p.max_outstanding_r2t = r,
            "ErrorRecoveryLevel" => p.error_recovery_level = r,
            _ => p.protocol_level = r,
        }
        result.to_string()
    }

    /// A declarative key: record it; answer only when the value is invalid.
    fn declared(&mut self, def: &KeyDef, v: &str) -> Option<String> {
        match def.kind {
            Kind::DeclNumber { min, max } => {
                let Some(n) = parse_number(v).filter(|n| (min..=max).contains(n)) else {
                    return Some("Reject".into());
                };
                if def.name == "MaxRecvDataSegmentLength" {
                    self.params.initiator_mrdsl = u32::try_from(n).unwrap_or(u32::MAX);
                }
                None
            }
            Kind::DeclEnum(values) => {
                if values.contains(&v) {
                    None
                } else {
                    Some("Reject".into())
                }
            }
            _ => {
                let id = &mut self.identity;
                match def.name {
                    "InitiatorName" => id.initiator_name = Some(v.to_string()),
                    "InitiatorAlias" => id.initiator_alias = Some(v.to_string()),
                    "TargetName" => id.target_name = Some(v.to_string()),
                    // SendTargets is answered by the text layer.
                    _ => {}
                }
                None
            }
        }
    }
}

fn phase_allows(phase: Phase, stage: Stage) -> bool {
    match phase {
        Phase::Any => true,
        Phase::Login => stage != Stage::FullFeature,
        Phase::Security => stage == Stage::Security,
        Phase::FullFeature => stage == Stage::FullFeature,
    }
}

#[cfg(test)]
mod tests;
