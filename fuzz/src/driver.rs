//! Drives one iscsi-proto [`Connection`] the way the event loop does, with every output checked
//! by [`Checker`], and the identities and configuration shared by the login and session
//! harnesses.

use std::sync::Arc;

use iscsi_proto::{
    AccessPolicy, AuthPolicy, Authenticator, Catalog, ChapAlgorithm, ChapCredential, Connection,
    ConnectionConfig, Limits, Millis, Output, TargetEntry,
};
use iscsi_wire::{Bhs, Decoder, Pdu, WireError};

use crate::outputs::Checker;

/// The initiator name the harnesses log in with.
pub const INITIATOR: &str = "iqn.1993-08.org.debian:01:fuzz";
/// The first exported target (has an alias and two portals).
pub const TARGET: &str = "iqn.2024-01.org.ustgt:disk1";
/// The second exported target (no alias, no portals).
pub const TARGET2: &str = "iqn.2024-01.org.ustgt:disk2";
/// The CHAP user accepted by the CHAP policies.
pub const CHAP_USER: &str = "alice";
/// Its secret.
pub const CHAP_SECRET: &[u8] = b"alice-secret-12";
/// The target's name and secret for mutual CHAP.
pub const TARGET_USER: &str = "ustgt";
/// The target's mutual CHAP secret.
pub const TARGET_SECRET: &[u8] = b"target-secret-34";
/// ISID of the harness's logins.
pub const ISID: [u8; 6] = [0x80, 0, 0x02, 0x3d, 0, 0];
/// TSIH the target gives a new session.
pub const TSIH: u16 = 7;

/// The catalog every harness connection exports.
pub fn catalog() -> Catalog {
    Catalog {
        targets: vec![
            TargetEntry {
                name: TARGET.into(),
                alias: Some("disk one".into()),
                portals: vec!["127.0.0.1:3260,1".into(), "[::1]:3260,1".into()],
            },
            TargetEntry {
                name: TARGET2.into(),
                alias: None,
                portals: Vec::new(),
            },
        ],
    }
}

/// A connection configuration with `limits`.
pub fn config(limits: Limits) -> ConnectionConfig {
    ConnectionConfig {
        catalog: Arc::new(catalog()),
        limits,
        portal_group_tag: 1,
        local_portal: "10.0.0.1:3260".into(),
        tsih: TSIH,
    }
}

/// Access policies for [`iscsi_proto::ChapAuthenticator`], chosen by the fuzz input.
#[derive(Debug, Clone, Copy)]
pub enum Policy {
    /// No authentication.
    Open,
    /// One-way CHAP, any algorithm.
    Chap,
    /// CHAP with a target secret (mutual allowed), any algorithm.
    Mutual,
    /// Mutual CHAP, MD5 and SHA-256 only.
    Restricted,
    /// Everyone refused.
    Deny,
    /// Per initiator and target, like a real ACL: initiators whose name contains "deny" are
    /// refused, discovery is open, the second target needs one-way CHAP, the first mutual.
    Acl,
}

impl Policy {
    /// The policy for selector `b`.
    pub fn from_byte(b: u8) -> Policy {
        match b % 6 {
            0 => Policy::Open,
            1 => Policy::Chap,
            2 => Policy::Mutual,
            3 => Policy::Restricted,
            4 => Policy::Deny,
            _ => Policy::Acl,
        }
    }
}

fn chap(mutual: bool, algorithms: Vec<ChapAlgorithm>) -> AuthPolicy {
    AuthPolicy::Chap {
        users: vec![
            ChapCredential::new(CHAP_USER, CHAP_SECRET),
            ChapCredential::new("bob", "bob-secret-56789"),
        ],
        mutual: mutual.then(|| ChapCredential::new(TARGET_USER, TARGET_SECRET)),
        algorithms,
    }
}

impl AccessPolicy for Policy {
    fn decide(&self, initiator: &str, target: Option<&str>) -> AuthPolicy {
        match self {
            Policy::Open => AuthPolicy::Open,
            Policy::Chap => chap(false, Vec::new()),
            Policy::Mutual => chap(true, Vec::new()),
            Policy::Restricted => chap(true, vec![ChapAlgorithm::Md5, ChapAlgorithm::Sha256]),
            Policy::Deny => AuthPolicy::Deny,
            Policy::Acl => match target {
                _ if initiator.contains("deny") => AuthPolicy::Deny,
                None => AuthPolicy::Open,
                Some(t) if t.eq_ignore_ascii_case(TARGET2) => chap(false, Vec::new()),
                Some(_) => chap(true, Vec::new()),
            },
        }
    }
}

/// One connection, its clock, its decoder and its output checker.
#[derive(Debug)]
pub struct Driver {
    /// The connection under test.
    pub conn: Connection,
    /// The current time in milliseconds.
    pub now: Millis,
    /// The decoder raw bytes go through.
    pub dec: Decoder,
    /// Checks every output.
    pub check: Checker,
    /// The decoder hit a fatal error: raw input is ignored from then on.
    pub dec_failed: bool,
}

impl Driver {
    /// A driver for `conn`, whose CmdSN window has `cmd_window` slots.
    pub fn new(conn: Connection, now: Millis, cmd_window: u32) -> Self {
        let dec = Decoder::new(conn.decoder_config());
        Driver {
            conn,
            now,
            dec,
            check: Checker::new(cmd_window),
            dec_failed: false,
        }
    }

    /// A connection with `auth` (None: [`Connection::new`], i.e. `NoAuth`).
    pub fn connect(limits: Limits, auth: Option<Box<dyn Authenticator>>) -> Self {
        let window = limits.sanitized().cmd_window;
        let cfg = config(limits);
        let now = 1_000;
        let conn = match auth {
            None => Connection::new(cfg, now),
            Some(a) => Connection::with_authenticator(cfg, now, a),
        };
        Driver::new(conn, now, window)
    }

    /// Every output queued so far, each checked.
    pub fn drain(&mut self) -> Vec<Output> {
        let mut outs = Vec::new();
        while let Some(o) = self.conn.poll() {
            self.check.check(&o, &self.conn);
            outs.push(o);
        }
        self.check.end_of_batch();
        if self.conn.is_closed() {
            assert!(
                self.check.closed,
                "the connection closed without emitting Close"
            );
        }
        outs
    }

    /// Feed one PDU and drain.
    pub fn pdu(&mut self, pdu: Pdu) -> Vec<Output> {
        self.conn.handle_pdu(pdu, self.now);
        self.drain()
    }

    /// Feed a decoder error and drain.
    pub fn wire_error(&mut self, err: WireError) -> Vec<Output> {
        self.conn.handle_wire_error(err, self.now);
        self.drain()
    }

    /// Advance the clock by `ms`, let timers fire and drain.
    pub fn advance(&mut self, ms: Millis) -> Vec<Output> {
        self.now = self.now.saturating_add(ms);
        self.timers()
    }

    /// Jump to the connection's next deadline (if any), let timers fire and drain.
    pub fn to_next_deadline(&mut self) -> Vec<Output> {
        if let Some(t) = self.conn.next_timeout() {
            self.now = self.now.max(t);
        }
        self.timers()
    }

    fn timers(&mut self) -> Vec<Output> {
        if crate::outputs::trace() {
            eprintln!("-> timers at {} ms", self.now);
        }
        self.conn.handle_timeout(self.now);
        self.drain()
    }

    /// Encode `pdu` with the digests the connection expects and feed the bytes through the
    /// decoder, so that the connection only ever sees what could arrive on a socket. `fix` is
    /// applied to every PDU decoded (see [`Driver::raw_step`]).
    pub fn send(&mut self, pdu: &Pdu, fix: &dyn Fn(&mut Pdu)) -> Vec<(Fed, Vec<Output>)> {
        let mut wire = Vec::new();
        iscsi_wire::encode(pdu, self.conn.decoder_config().digests, &mut wire);
        self.feed(&wire, fix)
    }

    /// Feed bytes through the decoder until they are used up.
    pub fn feed(&mut self, bytes: &[u8], fix: &dyn Fn(&mut Pdu)) -> Vec<(Fed, Vec<Output>)> {
        let mut pos = 0;
        std::iter::from_fn(|| self.raw_step(bytes, &mut pos, fix)).collect()
    }

    /// Feed raw bytes through the decoder as the event loop does, one PDU (or decoder error)
    /// per call, from `*pos` on; `fix` may rewrite each decoded PDU first. Returns what was
    /// fed (the PDU, or the ITT of the header a decoder error quotes) and the outputs, or
    /// `None` when the bytes are used up (or the stream is dead).
    pub fn raw_step(
        &mut self,
        bytes: &[u8],
        pos: &mut usize,
        fix: &dyn Fn(&mut Pdu),
    ) -> Option<(Fed, Vec<Output>)> {
        if self.dec_failed || self.conn.is_closed() {
            return None;
        }
        self.dec.set_config(self.conn.decoder_config());
        let result = self.dec.decode(&bytes[*pos..]);
        let used = self.dec.last_consumed();
        assert!(
            used <= bytes.len() - *pos,
            "decoder consumed more than it got"
        );
        *pos += used;
        match result {
            Ok((_, Some(mut pdu))) => {
                fix(&mut pdu);
                if crate::outputs::trace() {
                    eprintln!("-> {pdu:?}");
                }
                let fed = Fed::Pdu(pdu.clone());
                Some((fed, self.pdu(pdu)))
            }
            Ok((_, None)) => None,
            Err(e) => {
                if crate::outputs::trace() {
                    eprintln!("-> {e:?}");
                }
                let itt = e.header().map_or(crate::outputs::RESERVED, |h| h.itt());
                self.dec_failed = e.is_fatal();
                Some((Fed::Error(itt), self.wire_error(e)))
            }
        }
    }
}

/// What one [`Driver::raw_step`] fed to the connection.
#[derive(Debug, Clone)]
pub enum Fed {
    /// A decoded PDU.
    Pdu(Pdu),
    /// A decoder error quoting a header with this ITT (reserved when it quotes none).
    Error(u32),
}

impl Fed {
    /// The ITT of what was fed.
    pub fn itt(&self) -> u32 {
        match self {
            Fed::Pdu(p) => p.bhs.itt(),
            Fed::Error(itt) => *itt,
        }
    }
}

/// The login request PDU type, for building requests.
pub fn login_request(bhs: iscsi_wire::LoginRequest, data: Vec<u8>) -> Pdu {
    Pdu::new(Bhs::LoginRequest(bhs), data)
}
