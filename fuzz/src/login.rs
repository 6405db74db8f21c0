//! `login`: the login state machine of iscsi-proto with `NoAuth` or a `ChapAuthenticator`.
//!
//! Input: three header bytes (authenticator and access policy, limits, CHAP random bytes), then
//! operations: raw bytes through the decoder, Login Requests built from flags and text, text
//! built from a table of real keys and values, a CHAP answer computed from the target's last
//! challenge (correct or not, one-way or mutual), timeouts, decoder errors, abort.
//!
//! Besides the checks of [`crate::outputs`]: a login only completes after a correct CHAP
//! response when the policy wants CHAP, never when it denies; the target's CHAP challenge and
//! its mutual answer are correct; only an offered (and allowed) algorithm is chosen.

use std::sync::Arc;

use iscsi_proto::{ChapAlgorithm, ChapAuthenticator, Limits, Output, CHAP_RANDOM_BYTES};
use iscsi_wire::{parse_text, Bhs, LoginRequest, Pdu, RawBhs, WireError};

use crate::driver::{
    Driver, Fed, Policy, CHAP_SECRET, CHAP_USER, ISID, TARGET_SECRET, TARGET_USER,
};
use crate::input::Input;

/// Operation tags (the tag byte modulo 8).
pub mod op {
    /// Raw bytes through the decoder: blob.
    pub const RAW: u8 = 0;
    /// A login request: flags, header variant, text blob.
    pub const LOGIN: u8 = 1;
    /// A login request with text from the key table: flags, header variant, count, pairs.
    pub const KEYS: u8 = 2;
    /// The answer to the last CHAP challenge: flags, mutual challenge (u8 length + bytes).
    pub const CHAP: u8 = 3;
    /// Timers: mode, milliseconds (u16).
    pub const TIMEOUT: u8 = 4;
    /// A decoder error: kind, two u32.
    pub const WIRE_ERROR: u8 = 5;
    /// A request with many keys: flags, header variant, kind, count (u16).
    pub const MANY: u8 = 6;
    /// 0: abort; otherwise an asynchronous logout request within that many seconds.
    pub const ABORT: u8 = 7;
}

/// Login request flags byte: T, C, CSG, NSG.
pub fn flags(transit: bool, cont: bool, csg: u8, nsg: u8) -> u8 {
    u8::from(transit) | u8::from(cont) << 1 | (csg & 3) << 2 | (nsg & 3) << 4
}

/// CHAP answer flags.
pub mod chap_flag {
    /// Use the right secret.
    pub const CORRECT: u8 = 1;
    /// Answer as an unknown user.
    pub const WRONG_USER: u8 = 2;
    /// Ask the target to authenticate itself (mutual CHAP).
    pub const MUTUAL: u8 = 4;
    /// Send the target's own challenge back (a reflection attack).
    pub const REFLECT: u8 = 8;
    /// CHAP_R in base64 instead of hex.
    pub const BASE64: u8 = 16;
    /// T=1 towards the operational stage.
    pub const TRANSIT: u8 = 32;
    /// With TRANSIT: straight to full feature phase.
    pub const TO_FFP: u8 = 64;
    /// Drop the last byte of CHAP_R.
    pub const SHORT: u8 = 128;
}

/// Keys of the [`op::KEYS`] table.
pub const KEYS: &[&str] = &[
    "InitiatorName",
    "TargetName",
    "SessionType",
    "AuthMethod",
    "HeaderDigest",
    "DataDigest",
    "MaxRecvDataSegmentLength",
    "MaxBurstLength",
    "FirstBurstLength",
    "InitialR2T",
    "ImmediateData",
    "MaxOutstandingR2T",
    "MaxConnections",
    "DefaultTime2Wait",
    "DefaultTime2Retain",
    "DataPDUInOrder",
    "DataSequenceInOrder",
    "ErrorRecoveryLevel",
    "InitiatorAlias",
    "TargetAlias",
    "TargetPortalGroupTag",
    "TargetAddress",
    "OFMarker",
    "IFMarker",
    "OFMarkInt",
    "IFMarkInt",
    "CHAP_A",
    "CHAP_N",
    "CHAP_R",
    "CHAP_I",
    "CHAP_C",
    "iSCSIProtocolLevel",
    "X-com.example.opt",
    "X#ext",
    "SendTargets",
    "TaskReporting",
    "MaxCmdSN",
];

/// Values of the [`op::KEYS`] table (a value byte of 0xf0 or more is a literal instead).
pub const VALUES: &[&str] = &[
    crate::driver::INITIATOR,
    crate::driver::TARGET,
    crate::driver::TARGET2,
    "iqn.2024-01.org.ustgt:nope",
    "Normal",
    "Discovery",
    "None",
    "CHAP",
    "CHAP,None",
    "None,CHAP",
    "CRC32C",
    "None,CRC32C",
    "CRC32C,None",
    "Yes",
    "No",
    "0",
    "1",
    "2",
    "512",
    "8192",
    "262144",
    "16777215",
    "16777216",
    "65536",
    "4294967296",
    "",
    "Reject",
    "Irrelevant",
    "NotUnderstood",
    "5",
    "7,5",
    "8,7,6,5",
    "0x00",
    "alice",
    "iqn.1993-08.org.debian:01:deny-me",
    "Yes,No",
    "1~5",
    "0b",
    "a,b,c",
    "20",
    "3600",
    "65535",
];

/// The last CHAP challenge the target sent.
#[derive(Debug, Clone)]
struct Challenge {
    alg: ChapAlgorithm,
    id: u8,
    challenge: Vec<u8>,
}

/// Harness state beyond the driver.
#[derive(Debug)]
struct Login {
    d: Driver,
    policy: Option<Policy>,
    /// CHAP random bytes handed to the authenticator.
    random: [u8; CHAP_RANDOM_BYTES],
    challenge: Option<Challenge>,
    /// Text of login requests with C=1 not yet complete.
    tx_text: Vec<u8>,
    /// CHAP_A values offered in the last complete request.
    offered: Vec<String>,
    /// Our mutual challenge (id, bytes) in the last complete request.
    mutual: Option<(u8, Vec<u8>)>,
    /// A correct CHAP response was sent.
    authenticated: bool,
    /// Keys of the last login response.
    last_keys: Vec<(String, String)>,
    itt: u32,
    mutual_answered: bool,
}

/// What one input reached (for tests of the seeds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    /// The login completed.
    pub logged_in: bool,
    /// The connection closed.
    pub closed: bool,
    /// Login responses sent.
    pub login_responses: usize,
    /// A correct CHAP response was sent.
    pub authenticated: bool,
    /// The target answered a mutual CHAP challenge.
    pub mutual_answered: bool,
}

/// Run one input.
pub fn run(data: &[u8]) {
    report(data);
}

/// Run one input and say what it reached.
pub fn report(data: &[u8]) -> Report {
    let mut inp = Input::new(data);
    let (auth, lim, rnd) = (inp.u8(), inp.u8(), inp.u8());
    let random: [u8; CHAP_RANDOM_BYTES] =
        std::array::from_fn(|i| rnd.wrapping_mul(31).wrapping_add(i as u8 * 7) ^ 0x5a);
    let policy = (auth & 1 == 1).then(|| Policy::from_byte(auth >> 1));
    let authenticator = policy.map(|p| {
        Box::new(ChapAuthenticator::new(Arc::new(p), random)) as Box<dyn iscsi_proto::Authenticator>
    });
    let mut h = Login {
        d: Driver::connect(limits(lim), authenticator),
        policy,
        random,
        challenge: None,
        tx_text: Vec::new(),
        offered: Vec::new(),
        mutual: None,
        authenticated: false,
        last_keys: Vec::new(),
        itt: 0x1000,
        mutual_answered: false,
    };
    let mut ops = 0;
    while let Some(tag) = inp.op() {
        ops += 1;
        if ops > 256 {
            break;
        }
        h.step(tag, &mut inp);
    }
    Report {
        logged_in: h.d.check.logged_in,
        closed: h.d.check.closed,
        login_responses: h.d.check.login_responses,
        authenticated: h.authenticated,
        mutual_answered: h.mutual_answered,
    }
}

/// Limits chosen by the second header byte.
pub fn limits(b: u8) -> Limits {
    let d = Limits::default();
    match b % 4 {
        0 => d,
        1 => Limits {
            max_recv_data_segment: 512,
            max_burst: 512,
            first_burst: 512,
            max_outstanding_r2t: 1,
            cmd_window: 1,
            immediate_data: false,
            initial_r2t: true,
            login_timeout_ms: 200,
            nop_interval_ms: 100,
            nop_timeout_ms: 50,
            ..d
        },
        2 => Limits {
            max_recv_data_segment: u32::MAX,
            max_burst: u32::MAX,
            first_burst: u32::MAX,
            max_outstanding_r2t: u32::MAX,
            cmd_window: u32::MAX,
            default_time2wait: u16::MAX,
            default_time2retain: u16::MAX,
            login_timeout_ms: u64::MAX,
            nop_interval_ms: u64::MAX,
            nop_timeout_ms: u64::MAX,
            ..d
        },
        _ => Limits {
            max_recv_data_segment: 0,
            max_burst: 0,
            first_burst: 0,
            max_outstanding_r2t: 0,
            cmd_window: 0,
            login_timeout_ms: 0,
            nop_interval_ms: 1,
            nop_timeout_ms: 0,
            ..d
        },
    }
}

/// The login request header for `flags` (see [`flags`]) and header variant `hdr`.
pub fn request(flags: u8, hdr: u8, itt: u32) -> LoginRequest {
    let mut isid = ISID;
    if hdr & 1 != 0 {
        isid[5] = 1;
    }
    LoginRequest {
        transit: flags & 1 != 0,
        cont: flags & 2 != 0,
        csg: (flags >> 2) & 3,
        nsg: (flags >> 4) & 3,
        version_max: u8::from(hdr & 0x10 != 0),
        version_min: u8::from(hdr & 0x30 == 0x30),
        isid,
        tsih: if hdr & 2 != 0 { crate::driver::TSIH } else { 0 },
        itt: if hdr & 8 != 0 {
            itt.wrapping_add(1)
        } else {
            itt
        },
        cid: if hdr & 4 != 0 { 2 } else { 1 },
        cmd_sn: if hdr & 0x40 != 0 { 0xffff_fffe } else { 0x100 },
        exp_stat_sn: if hdr & 0x80 != 0 { 0xffff_ffff } else { 500 },
    }
}

/// `key=value\0`.
pub fn pair(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(0);
}

impl Login {
    fn step(&mut self, tag: u8, inp: &mut Input) {
        match tag % 8 {
            op::RAW => {
                let bytes = inp.blob(16 * 1024);
                let mut pos = 0;
                while let Some((fed, outs)) = self.d.raw_step(bytes, &mut pos, &|_| {}) {
                    if let Fed::Pdu(p) = &fed {
                        self.note_request(p);
                    }
                    self.after(&outs);
                }
            }
            op::LOGIN => {
                let (f, hdr) = (inp.u8(), inp.u8());
                let text = inp.blob(16 * 1024).to_vec();
                self.send(f, hdr, text);
            }
            op::KEYS => {
                let (f, hdr) = (inp.u8(), inp.u8());
                let text = keys_text(inp);
                self.send(f, hdr, text);
            }
            op::CHAP => self.chap_answer(inp),
            op::TIMEOUT => {
                let (mode, ms) = (inp.u8(), inp.u16());
                let outs = if mode & 1 == 0 {
                    self.d.advance(u64::from(ms))
                } else {
                    self.d.to_next_deadline()
                };
                self.after(&outs);
            }
            op::WIRE_ERROR => {
                let (kind, a, b) = (inp.u8(), inp.u32(), inp.u32());
                let outs = self.d.wire_error(wire_error(kind, a, b));
                self.after(&outs);
            }
            op::MANY => {
                let (f, hdr, kind, n) = (inp.u8(), inp.u8(), inp.u8(), inp.u16());
                self.send(f, hdr, many_keys(kind, n));
            }
            _ => {
                let b = inp.u8();
                if b == 0 {
                    self.d.conn.abort();
                } else {
                    self.d.conn.request_logout(self.d.now, u16::from(b));
                }
                let outs = self.d.drain();
                self.after(&outs);
            }
        }
    }

    fn send(&mut self, f: u8, hdr: u8, text: Vec<u8>) {
        let pdu = Pdu::new(Bhs::LoginRequest(request(f, hdr, self.itt)), text);
        for (fed, outs) in self.d.send(&pdu, &|_| {}) {
            if let Fed::Pdu(p) = &fed {
                self.note_request(p);
            }
            self.after(&outs);
        }
    }

    /// Track what a login request says about CHAP.
    fn note_request(&mut self, pdu: &Pdu) {
        let Bhs::LoginRequest(req) = &pdu.bhs else {
            return;
        };
        self.tx_text.extend_from_slice(&pdu.data);
        if req.cont {
            return;
        }
        let text = std::mem::take(&mut self.tx_text);
        let Ok(keys) = parse_text(&text) else {
            return;
        };
        let get = |k: &str| {
            keys.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        if let Some(a) = get("CHAP_A") {
            self.offered = a.split(',').map(|s| s.trim().to_string()).collect();
        }
        self.mutual = match (get("CHAP_I"), get("CHAP_C")) {
            (Some(i), Some(c)) => i.parse::<u8>().ok().zip(decode_binary(&c)),
            _ => None,
        };
        if let (Some(n), Some(r), Some(ch)) = (get("CHAP_N"), get("CHAP_R"), &self.challenge) {
            let secret: &[u8] = match n.as_str() {
                CHAP_USER => CHAP_SECRET,
                "bob" => b"bob-secret-56789",
                _ => return,
            };
            let want = ch.alg.response(ch.id, secret, &ch.challenge);
            if decode_binary(&r).as_deref() == Some(&want[..]) {
                self.authenticated = true;
            }
        }
    }

    /// Checks specific to login on one batch of outputs.
    fn after(&mut self, outs: &[Output]) {
        for o in outs {
            match o {
                Output::Transmit(p, _) => {
                    if let Bhs::LoginResponse(r) = &p.bhs {
                        let keys = parse_text(&p.data).unwrap_or_default();
                        if r.status_class == 0 {
                            self.check_chap_keys(&keys);
                            self.last_keys = keys;
                        }
                    }
                }
                Output::LoggedIn(info) => self.check_logged_in(info),
                _ => {}
            }
        }
    }

    fn check_chap_keys(&mut self, keys: &[(String, String)]) {
        let get = |k: &str| {
            keys.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        if let (Some(a), Some(i), Some(c)) = (get("CHAP_A"), get("CHAP_I"), get("CHAP_C")) {
            let alg = ChapAlgorithm::from_code(a).expect("the target chose a known CHAP_A");
            assert!(
                self.offered.iter().any(|o| o == a),
                "CHAP_A={a} was not offered ({:?})",
                self.offered
            );
            if matches!(self.policy, Some(Policy::Restricted)) {
                assert!(matches!(alg, ChapAlgorithm::Md5 | ChapAlgorithm::Sha256));
            }
            let id: u8 = i.parse().expect("CHAP_I is a byte");
            let challenge = decode_binary(c).expect("CHAP_C decodes");
            assert_eq!(challenge.len(), alg.digest_len(), "challenge length");
            assert_eq!(id, self.random[0]);
            assert_eq!(challenge, self.random[1..=alg.digest_len()]);
            self.challenge = Some(Challenge { alg, id, challenge });
        }
        if let (Some(n), Some(r)) = (get("CHAP_N"), get("CHAP_R")) {
            // The target authenticates itself to our mutual challenge.
            assert_eq!(n, TARGET_USER);
            let (Some((id, ours)), Some(ch)) = (&self.mutual, &self.challenge) else {
                panic!("mutual answer without a mutual challenge");
            };
            assert_ne!(ours, &ch.challenge, "answered a reflected challenge");
            let want = ch.alg.response(*id, TARGET_SECRET, ours);
            assert_eq!(
                decode_binary(r).as_deref(),
                Some(&want[..]),
                "wrong mutual CHAP_R"
            );
            assert!(
                self.authenticated,
                "target authenticated itself to an unauthenticated peer"
            );
            self.mutual_answered = true;
        }
    }

    fn check_logged_in(&self, info: &iscsi_proto::SessionInfo) {
        let needs_chap = match self.policy {
            None | Some(Policy::Open) => false,
            Some(Policy::Deny) => panic!("login completed under a deny-all policy"),
            Some(Policy::Chap | Policy::Mutual | Policy::Restricted) => true,
            Some(Policy::Acl) => {
                assert!(
                    !info.initiator_name.contains("deny"),
                    "denied initiator logged in"
                );
                !info.discovery
            }
        };
        assert!(
            !needs_chap || self.authenticated,
            "login completed without CHAP: {info:?}"
        );
    }

    /// Answer the target's last challenge as chosen by the flags.
    fn chap_answer(&mut self, inp: &mut Input) {
        let f = inp.u8();
        let n = usize::from(inp.u8());
        let extra = inp.bytes(n).to_vec();
        let ch = self.challenge.clone().unwrap_or(Challenge {
            alg: ChapAlgorithm::Md5,
            id: 0,
            challenge: Vec::new(),
        });
        let user = if f & chap_flag::WRONG_USER != 0 {
            "mallory"
        } else {
            CHAP_USER
        };
        let secret: &[u8] = if f & chap_flag::CORRECT != 0 {
            CHAP_SECRET
        } else {
            b"guess"
        };
        let mut resp = ch.alg.response(ch.id, secret, &ch.challenge);
        if f & chap_flag::SHORT != 0 {
            resp.pop();
        }
        let mut text = Vec::new();
        pair(&mut text, "CHAP_N", user.as_bytes());
        let r = if f & chap_flag::BASE64 != 0 {
            to_base64(&resp)
        } else {
            to_hex(&resp)
        };
        pair(&mut text, "CHAP_R", r.as_bytes());
        if f & chap_flag::MUTUAL != 0 {
            let c = if f & chap_flag::REFLECT != 0 {
                ch.challenge.clone()
            } else if extra.is_empty() {
                (1..=16).collect()
            } else {
                extra
            };
            pair(&mut text, "CHAP_I", b"77");
            pair(&mut text, "CHAP_C", to_hex(&c).as_bytes());
        }
        let transit = f & chap_flag::TRANSIT != 0;
        let nsg = if f & chap_flag::TO_FFP != 0 { 3 } else { 1 };
        self.send(flags(transit, false, 0, nsg), 0, text);
    }
}

/// Text from the key and value tables: count, then (key, value) bytes per pair.
fn keys_text(inp: &mut Input) -> Vec<u8> {
    let n = inp.u8() % 33;
    let mut text = Vec::new();
    for _ in 0..n {
        let key = KEYS[usize::from(inp.u8()) % KEYS.len()];
        let v = inp.u8();
        if v >= 0xf0 {
            let len = usize::from(inp.u8());
            let lit = inp.bytes(len).to_vec();
            pair(&mut text, key, &lit);
        } else {
            pair(
                &mut text,
                key,
                VALUES[usize::from(v) % VALUES.len()].as_bytes(),
            );
        }
    }
    text
}

/// `n` keys of one kind: unknown, private (X-), IANA extension (X#), or repeated real keys.
fn many_keys(kind: u8, n: u16) -> Vec<u8> {
    let mut text = Vec::new();
    for i in 0..n.min(2048) {
        let key = match kind % 4 {
            0 => format!("Unknown{i}"),
            1 => format!("X-com.example.k{i}"),
            2 => format!("X#k{i}"),
            _ => KEYS[usize::from(i) % KEYS.len()].to_string(),
        };
        pair(&mut text, &key, format!("v{i}").as_bytes());
    }
    text
}

/// A decoder error of kind `k`.
pub fn wire_error(k: u8, a: u32, b: u32) -> WireError {
    let mut raw = [0u8; 48];
    raw[0] = [0x03, 0x05, 0x01, 0x00][usize::from(k >> 2) % 4];
    raw[16..20].copy_from_slice(&a.to_be_bytes());
    let header = RawBhs(raw);
    match k % 4 {
        0 => WireError::HeaderDigest {
            expected: a,
            actual: b,
        },
        1 => WireError::DataDigest {
            header,
            expected: a,
            actual: b,
        },
        2 => WireError::DataSegmentTooLong {
            header,
            len: b,
            max: 8192,
        },
        _ => WireError::InvalidField {
            header,
            what: "fuzz",
        },
    }
}

/// `0x` hex.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::from("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// `0b` base64.
pub fn to_base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::from("0b");
    for c in bytes.chunks(3) {
        let n = c.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b)) << (8 * (3 - c.len()));
        for i in 0..4 {
            if i <= c.len() {
                s.push(char::from(A[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// A `0x` or `0b` binary value.
pub fn decode_binary(text: &str) -> Option<Vec<u8>> {
    let body = text.get(2..)?;
    match text.get(..2)? {
        "0x" | "0X" => {
            let digits: Vec<u8> = body
                .chars()
                .map(|c| c.to_digit(16).map(|d| d as u8))
                .collect::<Option<_>>()?;
            if digits.is_empty() {
                return None;
            }
            let pad = digits.len() % 2;
            let all: Vec<u8> = (0..pad).map(|_| 0).chain(digits).collect();
            Some(all.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
        }
        "0b" | "0B" => {
            let val = |c: u8| -> Option<u32> {
                Some(match c {
                    b'A'..=b'Z' => c - b'A',
                    b'a'..=b'z' => c - b'a' + 26,
                    b'0'..=b'9' => c - b'0' + 52,
                    b'+' => 62,
                    b'/' => 63,
                    _ => return None,
                } as u32)
            };
            let b = body.as_bytes();
            if b.is_empty() || b.len() % 4 != 0 {
                return None;
            }
            let mut out = Vec::new();
            for q in b.chunks(4) {
                let pads = q.iter().rev().take_while(|&&c| c == b'=').count();
                let mut n = 0u32;
                for &c in &q[..4 - pads] {
                    n = n << 6 | val(c)?;
                }
                n <<= 6 * pads as u32;
                out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8][..3 - pads]);
            }
            Some(out)
        }
        _ => None,
    }
}
