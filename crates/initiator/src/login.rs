//! Login options, the login exchange (security then operational stage) and the
//! negotiated values.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use iscsi_wire::{encode_text, parse_text, Bhs, LoginRequest, LoginResponse, Pdu};

use crate::conn::Connection;
use crate::Error;

/// What to log in with.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// InitiatorName.
    pub initiator_name: String,
    /// TargetName; `None` logs in a discovery session.
    pub target_name: Option<String>,
    /// The ISID (6 bytes).
    pub isid: [u8; 6],
    /// TSIH: 0 for a new session.
    pub tsih: u16,
    /// CID of the connection.
    pub cid: u16,
    /// The CmdSN of the login request (the first command then uses it too).
    pub initial_cmd_sn: u32,
    /// Key overrides, applied in order over the defaults: a key already present gets the
    /// new value, another key is appended, and an empty value removes the key.
    /// InitiatorName/TargetName/SessionType/AuthMethod/InitiatorAlias go to the security
    /// stage; everything else to the operational stage.
    pub keys: Vec<(String, String)>,
    /// Connect and per-PDU receive timeout.
    pub timeout: Duration,
    /// CHAP credentials: authenticate with CHAP in the security stage (see [`Self::chap`]).
    pub chap: Option<crate::Chap>,
}

const SECURITY_KEYS: [&str; 5] = [
    "InitiatorName",
    "TargetName",
    "SessionType",
    "AuthMethod",
    "InitiatorAlias",
];

impl LoginOptions {
    /// A normal session to `target`.
    pub fn normal(target: &str) -> LoginOptions {
        LoginOptions {
            initiator_name: "iqn.2026-11.io.ustgt:test-initiator".into(),
            target_name: Some(target.to_string()),
            isid: fresh_isid(),
            tsih: 0,
            cid: 0,
            initial_cmd_sn: 1,
            keys: Vec::new(),
            timeout: Duration::from_secs(5),
            chap: None,
        }
    }

    /// A discovery session.
    pub fn discovery() -> LoginOptions {
        LoginOptions {
            target_name: None,
            ..LoginOptions::normal("")
        }
    }

    /// Add a key override (builder style).
    pub fn key(mut self, key: &str, value: &str) -> LoginOptions {
        self.keys.push((key.to_string(), value.to_string()));
        self
    }

    /// Authenticate with CHAP (offers `AuthMethod=CHAP`; a later `AuthMethod` override wins).
    pub fn chap(mut self, chap: crate::Chap) -> LoginOptions {
        self.chap = Some(chap);
        self.key("AuthMethod", "CHAP")
    }

    /// Both digests set to CRC32C.
    pub fn digests(self) -> LoginOptions {
        self.key("HeaderDigest", "CRC32C")
            .key("DataDigest", "CRC32C")
    }

    fn security_keys(&self) -> Vec<(String, String)> {
        let mut keys = vec![("InitiatorName".to_string(), self.initiator_name.clone())];
        match &self.target_name {
            Some(t) => {
                keys.push(("SessionType".into(), "Normal".into()));
                keys.push(("TargetName".into(), t.clone()));
            }
            None => keys.push(("SessionType".into(), "Discovery".into())),
        }
        keys.push(("AuthMethod".into(), "None".into()));
        let overrides = self
            .keys
            .iter()
            .filter(|(k, _)| SECURITY_KEYS.contains(&k.as_str()));
        apply(keys, overrides)
    }

    /// The operational-stage keys offered: the defaults with the overrides applied.
    pub fn operational_keys(&self) -> Vec<(String, String)> {
        let mut keys: Vec<(String, String)> = [
            ("HeaderDigest", "None"),
            ("DataDigest", "None"),
            ("MaxRecvDataSegmentLength", "262144"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if self.target_name.is_some() {
            keys.extend(
                [
                    ("DefaultTime2Wait", "2"),
                    ("DefaultTime2Retain", "0"),
                    ("ErrorRecoveryLevel", "0"),
                    ("InitialR2T", "No"),
                    ("ImmediateData", "Yes"),
                    ("MaxBurstLength", "262144"),
                    ("FirstBurstLength", "65536"),
                    ("MaxOutstandingR2T", "1"),
                    ("MaxConnections", "1"),
                    ("DataPDUInOrder", "Yes"),
                    ("DataSequenceInOrder", "Yes"),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
            );
        }
        let overrides = self
            .keys
            .iter()
            .filter(|(k, _)| !SECURITY_KEYS.contains(&k.as_str()));
        apply(keys, overrides)
    }
}

fn apply<'a>(
    mut keys: Vec<(String, String)>,
    overrides: impl Iterator<Item = &'a (String, String)>,
) -> Vec<(String, String)> {
    for (k, v) in overrides {
        match keys.iter().position(|(kk, _)| kk == k) {
            Some(i) if v.is_empty() => {
                keys.remove(i);
            }
            Some(i) => keys[i].1 = v.clone(),
            None if v.is_empty() => {}
            None => keys.push((k.clone(), v.clone())),
        }
    }
    keys
}

/// A new random-format ISID (type 10b), unique within this process.
pub fn fresh_isid() -> [u8; 6] {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    let pid = (std::process::id() as u16).to_be_bytes();
    [0x80, pid[0], pid[1], n[1], n[2], n[3]]
}

/// Why a login failed.
#[derive(Debug)]
pub enum LoginError {
    /// The target answered with a non-zero status class.
    Status {
        /// Status-Class (1 redirect, 2 initiator error, 3 target error).
        class: u8,
        /// Status-Detail.
        detail: u8,
        /// The failing Login Response.
        response: LoginResponse,
        /// Keys in the failing response.
        keys: Vec<(String, String)>,
    },
    /// Anything else (socket, timeout, close, undecodable or unexpected PDU).
    Other(Error),
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginError::Status { class, detail, .. } => {
                write!(f, "login failed: status class {class} detail {detail}")
            }
            LoginError::Other(e) => write!(f, "login failed: {e}"),
        }
    }
}

impl std::error::Error for LoginError {}

impl From<Error> for LoginError {
    fn from(e: Error) -> Self {
        LoginError::Other(e)
    }
}

/// The outcome of operational negotiation, as it applies to this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// HeaderDigest=CRC32C.
    pub header_digest: bool,
    /// DataDigest=CRC32C.
    pub data_digest: bool,
    /// Our declared MaxRecvDataSegmentLength (limit of what the target may send us).
    pub max_recv_data_segment_length: u32,
    /// The target's declared MaxRecvDataSegmentLength (limit of what we send).
    pub target_max_recv_data_segment_length: u32,
    /// MaxBurstLength.
    pub max_burst_length: u32,
    /// FirstBurstLength.
    pub first_burst_length: u32,
    /// MaxOutstandingR2T.
    pub max_outstanding_r2t: u32,
    /// InitialR2T.
    pub initial_r2t: bool,
    /// ImmediateData.
    pub immediate_data: bool,
    /// DataPDUInOrder.
    pub data_pdu_in_order: bool,
    /// DataSequenceInOrder.
    pub data_sequence_in_order: bool,
    /// ErrorRecoveryLevel.
    pub error_recovery_level: u32,
    /// What we offered in the operational stage.
    pub offered: Vec<(String, String)>,
    /// Every key the target sent during login, all stages, in order.
    pub target_keys: Vec<(String, String)>,
}

impl Negotiated {
    /// Compute the negotiated values from what was offered and answered.
    pub fn from_exchange(
        offered: &[(String, String)],
        answered: &[(String, String)],
    ) -> Negotiated {
        let get = |k: &str| {
            answered
                .iter()
                .rev()
                .chain(offered.iter().rev())
                .find(|(kk, _)| kk == k)
                .map(|(_, v)| v.as_str())
        };
        let num = |k: &str, d: u32| get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        let boolean = |k: &str, d: bool| match get(k) {
            Some("Yes") => true,
            Some("No") => false,
            _ => d,
        };
        let target_mrdsl = answered
            .iter()
            .rev()
            .find(|(k, _)| k == "MaxRecvDataSegmentLength")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(8192);
        let ours = offered
            .iter()
            .find(|(k, _)| k == "MaxRecvDataSegmentLength")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(8192);
        Negotiated {
            header_digest: get("HeaderDigest") == Some("CRC32C"),
            data_digest: get("DataDigest") == Some("CRC32C"),
            max_recv_data_segment_length: ours,
            target_max_recv_data_segment_length: target_mrdsl,
            max_burst_length: num("MaxBurstLength", 262144),
            first_burst_length: num("FirstBurstLength", 65536),
            max_outstanding_r2t: num("MaxOutstandingR2T", 1),
            initial_r2t: boolean("InitialR2T", true),
            immediate_data: boolean("ImmediateData", true),
            data_pdu_in_order: boolean("DataPDUInOrder", true),
            data_sequence_in_order: boolean("DataSequenceInOrder", true),
            error_recovery_level: num("ErrorRecoveryLevel", 0),
            offered: offered.to_vec(),
            target_keys: answered.to_vec(),
        }
    }
}

/// Sequence numbers and results at the end of a successful login.
#[derive(Debug)]
pub(crate) struct LoginResult {
    pub negotiated: Negotiated,
    pub responses: Vec<LoginResponse>,
    pub exp_stat_sn: u32,
}

/// Drive the login exchange on `conn`.
pub(crate) fn run_login(
    conn: &mut Connection,
    opts: &LoginOptions,
) -> Result<LoginResult, LoginError> {
    let mut lg = Login {
        conn,
        opts,
        exp_stat_sn: 0,
        responses: Vec::new(),
        answered: Vec::new(),
    };
    let sec = opts.security_keys();
    let mut csg = 0u8;
    let mut chap = opts.chap.clone().map(crate::chap::Exchange::new);
    let mut seen = 0;
    let mut rsp = lg.exchange(0, 1, &sec)?;
    for _ in 0..8 {
        let next = match &mut chap {
            Some(c) => c.next(&lg.answered[seen..], rsp.transit)?,
            None => Vec::new(),
        };
        seen = lg.answered.len();
        if rsp.transit && rsp.nsg == 1 {
            csg = 1;
            break;
        }
        if rsp.transit && rsp.nsg == 3 {
            csg = 3;
            break;
        }
        rsp = lg.exchange(0, 1, &next)?;
    }
    let offered = opts.operational_keys();
    if csg == 1 {
        let mut rsp = lg.exchange(1, 3, &offered)?;
        let mut rounds = 0;
        while !(rsp.transit && rsp.nsg == 3) {
            rounds += 1;
            if rounds > 8 {
                return Err(Error::Protocol("operational stage never ended".into()).into());
            }
            let answers = lg.answers_to_target(&offered);
            rsp = lg.exchange(1, 3, &answers)?;
        }
    } else if csg == 0 {
        return Err(Error::Protocol("security stage never ended".into()).into());
    }
    Ok(LoginResult {
        negotiated: Negotiated::from_exchange(&offered, &lg.answered),
        responses: lg.responses,
        exp_stat_sn: lg.exp_stat_sn,
    })
}

struct Login<'a> {
    conn: &'a mut Connection,
    opts: &'a LoginOptions,
    exp_stat_sn: u32,
    responses: Vec<LoginResponse>,
    /// Keys received in the current stage so far, and in earlier ones.
    answered: Vec<(String, String)>,
}

impl Login<'_> {
    /// Send one request (with T set) and return the response, following C-bit continuations.
    fn exchange(
        &mut self,
        csg: u8,
        nsg: u8,
        keys: &[(String, String)],
    ) -> Result<LoginResponse, LoginError> {
        self.send(csg, nsg, true, encode_text(keys))?;
        let mut text = Vec::new();
        for _ in 0..64 {
            let (rsp, part) = self.receive()?;
            text.extend_from_slice(&part);
            if !rsp.cont {
                let pairs = parse_text(&text)
                    .map_err(|e| Error::Protocol(format!("login response text: {e}")))?;
                self.answered.extend(pairs);
                return Ok(rsp);
            }
            // More text follows: ask for it with an empty request, T clear.
            self.send(csg, nsg, false, Vec::new())?;
        }
        Err(Error::Protocol("login response text never ended".into()).into())
    }

    fn send(&mut self, csg: u8, nsg: u8, transit: bool, data: Vec<u8>) -> Result<(), Error> {
        let req = LoginRequest {
            transit,
            cont: false,
            csg,
            nsg: if transit { nsg } else { 0 },
            version_max: 0,
            version_min: 0,
            isid: self.opts.isid,
            tsih: self.opts.tsih,
            itt: 0x4c00_0000 | u32::from(self.opts.cid),
            cid: self.opts.cid,
            cmd_sn: self.opts.initial_cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        self.conn.send(&Pdu::new(req, data))
    }

    fn receive(&mut self) -> Result<(LoginResponse, Vec<u8>), LoginError> {
        let pdu = self.conn.recv(self.opts.timeout)?;
        let rsp = match pdu.bhs {
            Bhs::LoginResponse(r) => r,
            other => {
                return Err(Error::Protocol(format!(
                    "expected a Login Response during login, got {other:?}"
                ))
                .into())
            }
        };
        self.exp_stat_sn = rsp.stat_sn.wrapping_add(1);
        self.responses.push(rsp.clone());
        if rsp.status_class != 0 {
            let keys = parse_text(&pdu.data).unwrap_or_default();
            return Err(LoginError::Status {
                class: rsp.status_class,
                detail: rsp.status_detail,
                response: rsp,
                keys,
            });
        }
        Ok((rsp, pdu.data))
    }

    /// Keys the target offered that we did not: accept its value (declarations need no answer).
    fn answers_to_target(&self, offered: &[(String, String)]) -> Vec<(String, String)> {
        const DECLARATIVE: [&str; 4] = [
            "TargetAlias",
            "TargetPortalGroupTag",
            "TargetAddress",
            "MaxRecvDataSegmentLength",
        ];
        self.answered
            .iter()
            .filter(|(k, _)| !DECLARATIVE.contains(&k.as_str()))
            .filter(|(k, _)| !offered.iter().any(|(o, _)| o == k))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn overrides_replace_append_and_remove() {
        let o = LoginOptions::normal("iqn.x:t")
            .key("HeaderDigest", "CRC32C")
            .key("MaxRecvDataSegmentLength", "512")
            .key("X-vendor.k", "1")
            .key("MaxConnections", "");
        let keys = o.operational_keys();
        assert_eq!(keys[0], ("HeaderDigest".into(), "CRC32C".into()));
        assert_eq!(keys[2], ("MaxRecvDataSegmentLength".into(), "512".into()));
        assert!(!keys.iter().any(|(k, _)| k == "MaxConnections"));
        assert_eq!(
            keys.last(),
            Some(&("X-vendor.k".to_string(), "1".to_string()))
        );
        let sec = o.security_keys();
        assert_eq!(
            sec,
            kv(&[
                ("InitiatorName", "iqn.2026-11.io.ustgt:test-initiator"),
                ("SessionType", "Normal"),
                ("TargetName", "iqn.x:t"),
                ("AuthMethod", "None"),
            ])
        );
    }

    #[test]
    fn discovery_offers_only_connection_keys() {
        let keys = LoginOptions::discovery().operational_keys();
        assert_eq!(keys.len(), 3);
        assert_eq!(LoginOptions::discovery().security_keys()[1].1, "Discovery");
    }

    #[test]
    fn negotiated_values_prefer_answers() {
        let offered = LoginOptions::normal("t").digests().operational_keys();
        let answered = kv(&[
            ("TargetPortalGroupTag", "1"),
            ("HeaderDigest", "CRC32C"),
            ("DataDigest", "None"),
            ("MaxBurstLength", "8192"),
            ("InitialR2T", "Yes"),
            ("MaxRecvDataSegmentLength", "65536"),
        ]);
        let n = Negotiated::from_exchange(&offered, &answered);
        assert!(n.header_digest && !n.data_digest);
        assert_eq!(n.max_burst_length, 8192);
        assert_eq!(n.first_burst_length, 65536);
        assert!(n.initial_r2t && n.immediate_data);
        assert_eq!(n.max_recv_data_segment_length, 262144);
        assert_eq!(n.target_max_recv_data_segment_length, 65536);
    }

    #[test]
    fn isids_are_unique_random_type() {
        let a = fresh_isid();
        let b = fresh_isid();
        assert_ne!(a, b);
        assert_eq!(a[0] >> 6, 0b10);
    }
}
