//! Checks every [`Output`] of an iscsi-proto [`Connection`] is well-formed, whatever the input:
//! PDUs are target PDUs that survive encode/decode with their digests, data segments respect
//! the initiator's MaxRecvDataSegmentLength, StatSN advances by one per status and ExpCmdSN
//! never goes back, login and text responses carry valid `key=value` text, a failed login is
//! followed by Close, and nothing at all follows Close.

use std::collections::HashMap;

use iscsi_wire::{encode, parse_text, Bhs, Decoder, DecoderConfig, DigestConfig, Pdu};

use iscsi_proto::{Connection, Output};

/// The reserved tag value.
pub const RESERVED: u32 = 0xffff_ffff;

/// The data segment limit of login PDUs (RFC 7143 6.1: 8192 bytes until login completes).
pub const LOGIN_MRDSL: usize = 8192;

/// Checks for known, reported and not yet fixed findings (see fuzz/README.md) are skipped so
/// that fuzzing can go on past them; `USTGT_FUZZ_STRICT=1` turns them on.
pub fn strict() -> bool {
    static STRICT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("USTGT_FUZZ_STRICT").is_some_and(|v| v == "1"))
}

/// `USTGT_FUZZ_TRACE=1` prints every output (for reading a crash input).
pub fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("USTGT_FUZZ_TRACE").is_some_and(|v| v == "1"))
}

/// Tracks one connection's outputs across calls.
#[derive(Debug)]
pub struct Checker {
    /// Close was emitted.
    pub closed: bool,
    /// `LoggedIn` was emitted.
    pub logged_in: bool,
    /// A login response with a non-zero status class was sent: Close must follow.
    close_due: bool,
    next_stat_sn: Option<u32>,
    last_exp_cmd_sn: Option<u32>,
    cmd_window: u32,
    /// Text response data of a C=1 sequence, per ITT.
    text_parts: HashMap<u32, Vec<u8>>,
    /// Login response data of a C=1 sequence.
    login_text: Vec<u8>,
    /// Login responses sent.
    pub login_responses: usize,
    /// Outputs checked.
    pub outputs: usize,
}

impl Checker {
    /// A checker for a connection whose CmdSN window has `cmd_window` slots (after
    /// sanitizing).
    pub fn new(cmd_window: u32) -> Self {
        Checker {
            closed: false,
            logged_in: false,
            close_due: false,
            next_stat_sn: None,
            last_exp_cmd_sn: None,
            cmd_window,
            text_parts: HashMap::new(),
            login_text: Vec::new(),
            login_responses: 0,
            outputs: 0,
        }
    }

    /// Check one output; `conn` is the connection that produced it.
    pub fn check(&mut self, out: &Output, conn: &Connection) {
        if trace() {
            eprintln!("<- {out:?}");
        }
        assert!(!self.closed, "output after Close: {out:?}");
        self.outputs += 1;
        match out {
            Output::Close => {
                self.closed = true;
                self.close_due = false;
                assert!(conn.is_closed(), "Close emitted but the connection is open");
            }
            Output::Transmit(pdu, digests) => self.check_pdu(pdu, &pdu.data, *digests, conn),
            Output::TransmitShared(pdu, data, digests) => {
                assert!(pdu.data.is_empty(), "shared PDU with its own data");
                assert!(
                    matches!(pdu.bhs, Bhs::DataIn(_)),
                    "only Data-In is shared: {:?}",
                    pdu.bhs
                );
                self.check_pdu(pdu, data.as_slice(), *digests, conn);
            }
            Output::LoggedIn(info) => {
                assert!(!self.logged_in, "LoggedIn twice");
                self.logged_in = true;
                assert_ne!(info.tsih, 0, "session with TSIH 0");
                assert_eq!(conn.session_info(), Some(info));
                assert_eq!(info.discovery, info.target_name.is_none());
            }
            Output::Execute(_) | Output::TaskMgmt(_) => {
                assert!(self.logged_in, "SCSI work before login: {out:?}");
                let discovery = conn.session_info().is_some_and(|s| s.discovery);
                assert!(!discovery, "SCSI work in a discovery session: {out:?}");
            }
        }
        assert!(
            !self.close_due || matches!(out, Output::Transmit(..)),
            "a failed login must be followed by Close, got {out:?}"
        );
    }

    /// After draining every output of one call: a login failure has been closed.
    pub fn end_of_batch(&self) {
        assert!(!self.close_due, "login failure without Close");
    }

    fn check_pdu(&mut self, pdu: &Pdu, data: &[u8], digests: DigestConfig, conn: &Connection) {
        assert!(pdu.ahs.is_empty(), "target PDU with AHS");
        round_trip(pdu, data, digests);
        let limit = if matches!(pdu.bhs, Bhs::LoginResponse(_)) {
            // Long login responses are split with the C bit (fixed finding 1), at 8192 bytes
            // or the smaller MaxRecvDataSegmentLength the initiator declared.
            let declared = conn.params().initiator_mrdsl.max(512);
            usize::try_from(declared).map_or(LOGIN_MRDSL, |d| d.min(LOGIN_MRDSL))
        } else {
            let mrdsl = conn.params().initiator_mrdsl.max(512);
            usize::try_from(mrdsl).unwrap_or(usize::MAX)
        };
        assert!(
            data.len() <= limit,
            "data segment of {} bytes over the limit {limit}: {:?}",
            data.len(),
            pdu.bhs
        );
        self.check_numbers(&pdu.bhs);
        if conn.session_info().is_some_and(|s| s.discovery) {
            // Discovery sessions carry Text, Logout and their refusals only (no pings either).
            assert!(
                matches!(
                    pdu.bhs,
                    Bhs::TextResponse(_)
                        | Bhs::LogoutResponse(_)
                        | Bhs::Reject(_)
                        | Bhs::AsyncMessage(_)
                        | Bhs::LoginResponse(_)
                ),
                "a discovery session sent {:?}",
                pdu.bhs
            );
        }
        match &pdu.bhs {
            Bhs::LoginResponse(r) => {
                self.login_responses += 1;
                assert!(!self.logged_in, "login response in full feature phase");
                // A long response comes in C=1 parts; the text parses once it ends.
                self.login_text.extend_from_slice(data);
                let keys = if r.cont {
                    assert_eq!(r.status_class, 0, "a failed login response with C");
                    Vec::new()
                } else {
                    // A failure ends an unfinished response: only its own data counts.
                    let all = std::mem::take(&mut self.login_text);
                    let text = if r.status_class == 0 { &all[..] } else { data };
                    parse_text(text).expect("login response text parses")
                };
                assert!(
                    r.status_class == 0 || keys.is_empty(),
                    "keys in a failed login response"
                );
                assert!(!(r.transit && r.cont), "login response with T and C");
                if r.status_class != 0 {
                    self.close_due = true;
                }
            }
            Bhs::TextResponse(r) => {
                let part = self.text_parts.entry(r.itt).or_default();
                part.extend_from_slice(data);
                if !r.cont {
                    let all = self.text_parts.remove(&r.itt).unwrap_or_default();
                    parse_text(&all).expect("text response parses");
                }
                assert!(!(r.final_ && r.cont), "text response with F and C");
                assert!(!r.cont || r.ttt != RESERVED, "C=1 without a TTT");
                assert!(!r.final_ || r.ttt == RESERVED, "F=1 with a TTT");
            }
            Bhs::Reject(_) => assert_eq!(data.len(), 48, "Reject must quote one BHS"),
            Bhs::NopIn(n) => {
                assert!(
                    n.itt != RESERVED || n.ttt != RESERVED,
                    "NOP-In with both tags reserved"
                );
            }
            Bhs::R2t(r) => {
                assert!(r.desired_len > 0, "R2T for nothing");
                assert!(
                    r.desired_len <= conn.params().max_burst,
                    "R2T over MaxBurstLength"
                );
                assert_ne!(r.ttt, RESERVED, "R2T with the reserved TTT");
            }
            Bhs::DataIn(d) => {
                assert!(!d.status_present || d.final_, "S bit without F bit");
                assert!(!(d.overflow && d.underflow), "overflow and underflow");
            }
            Bhs::ScsiResponse(r) => {
                assert!(!(r.overflow && r.underflow), "overflow and underflow");
                if !data.is_empty() {
                    let n = usize::from(u16::from_be_bytes([data[0], data[1]]));
                    assert_eq!(n + 2, data.len(), "SenseLength disagrees with the data");
                }
            }
            Bhs::TaskMgmtResponse(_) | Bhs::LogoutResponse(_) | Bhs::AsyncMessage(_) => {}
            other => panic!("the target sent an initiator PDU: {other:?}"),
        }
    }

    /// StatSN: one per status, consecutive; PDUs without a status carry the next one.
    /// ExpCmdSN never goes back and the window never exceeds its configured size.
    fn check_numbers(&mut self, bhs: &Bhs) {
        if let Some((sn, consumes)) = stat_sn(bhs) {
            if let Some(next) = self.next_stat_sn {
                assert_eq!(sn, next, "StatSN out of sequence in {bhs:?}");
            }
            self.next_stat_sn = Some(if consumes { sn.wrapping_add(1) } else { sn });
        }
        if let Some((exp, max)) = cmd_sns(bhs) {
            let slots = max.wrapping_sub(exp).wrapping_add(1);
            assert!(
                slots <= self.cmd_window,
                "window [{exp}, {max}] larger than {} in {bhs:?}",
                self.cmd_window
            );
            if let Some(last) = self.last_exp_cmd_sn {
                assert!(
                    (exp.wrapping_sub(last) as i32) >= 0,
                    "ExpCmdSN went back from {last} to {exp}"
                );
            }
            self.last_exp_cmd_sn = Some(exp);
        }
    }

    /// The latest ExpCmdSN sent.
    pub fn exp_cmd_sn(&self) -> Option<u32> {
        self.last_exp_cmd_sn
    }
}

/// The StatSN of a PDU and whether it uses one up.
fn stat_sn(bhs: &Bhs) -> Option<(u32, bool)> {
    Some(match bhs {
        Bhs::LoginResponse(x) => (x.stat_sn, true),
        Bhs::ScsiResponse(x) => (x.stat_sn, true),
        Bhs::TaskMgmtResponse(x) => (x.stat_sn, true),
        Bhs::TextResponse(x) => (x.stat_sn, true),
        Bhs::LogoutResponse(x) => (x.stat_sn, true),
        Bhs::Reject(x) => (x.stat_sn, true),
        Bhs::AsyncMessage(x) => (x.stat_sn, true),
        Bhs::NopIn(x) => (x.stat_sn, x.itt != RESERVED),
        Bhs::R2t(x) => (x.stat_sn, false),
        Bhs::DataIn(x) if x.status_present => (x.stat_sn, true),
        _ => return None,
    })
}

/// ExpCmdSN and MaxCmdSN of a target PDU.
fn cmd_sns(bhs: &Bhs) -> Option<(u32, u32)> {
    Some(match bhs {
        Bhs::LoginResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Bhs::ScsiResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Bhs::TaskMgmtResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Bhs::TextResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Bhs::LogoutResponse(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Bhs::Reject(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Bhs::AsyncMessage(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Bhs::NopIn(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Bhs::R2t(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        Bhs::DataIn(x) => (x.exp_cmd_sn, x.max_cmd_sn),
        _ => return None,
    })
}

/// The PDU with `data` as its data segment must encode and decode back to itself.
fn round_trip(pdu: &Pdu, data: &[u8], digests: DigestConfig) {
    let whole = Pdu {
        bhs: pdu.bhs.clone(),
        ahs: pdu.ahs.clone(),
        data: data.to_vec(),
    };
    let mut wire = Vec::new();
    encode(&whole, digests, &mut wire);
    let mut dec = Decoder::new(DecoderConfig {
        digests,
        max_data_segment: 1 << 24,
    });
    let (used, back) = dec.decode(&wire).expect("an output PDU decodes");
    assert_eq!(used, wire.len(), "the decoder left bytes of an output PDU");
    assert_eq!(
        back.as_ref(),
        Some(&whole),
        "output PDU does not round-trip"
    );
}
