//! CHAP (RFC 7143 12.1.3 over RFC 1994), one-way and mutual, with the digests Linux initiators
//! offer: MD5 (CHAP_A=5), SHA-1 (6), SHA-256 (7) and SHA3-256 (8).
//!
//! The exchange, target side:
//! 1. the initiator lists CHAP_A; we pick the first of its list we allow and answer CHAP_A,
//!    CHAP_I (one random byte) and CHAP_C (a random challenge as long as the digest);
//! 2. the initiator answers CHAP_N and CHAP_R = H(I || secret || C), and, to authenticate us in
//!    turn (mutual CHAP), its own CHAP_I and CHAP_C; we check CHAP_R and, if asked, answer CHAP_N
//!    and CHAP_R for the initiator's challenge with the mutual secret.
//!
//! Discipline: the random bytes come from the caller (the OS CSPRNG, read by the I/O layer once
//! per connection, so a challenge is never repeated); CHAP_R is length-checked before it is
//! decoded and compared in constant time; an unknown user is checked against a dummy secret so
//! that it costs the same and gets the same answer as a wrong secret; a challenge from the
//! initiator equal to ours (a reflection attack) is refused; secrets never appear in `Debug`
//! output or logs.

use std::fmt;
use std::sync::Arc;

use sha2::Digest;

use crate::auth::{AuthStep, Authenticator};

/// Random bytes one CHAP exchange consumes: one identifier and the longest challenge.
pub const CHAP_RANDOM_BYTES: usize = 1 + 32;
/// The longest challenge accepted from an initiator (RFC 7143 12.1.3: 1024 bytes).
const MAX_INITIATOR_CHALLENGE: usize = 1024;
/// An identifier or name longer than this is refused outright.
const MAX_NAME: usize = 256;

/// A CHAP digest algorithm (the CHAP_A code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChapAlgorithm {
    /// MD5 (5): RFC 1994; the only one RFC 7143 requires.
    Md5,
    /// SHA-1 (6).
    Sha1,
    /// SHA-256 (7).
    Sha256,
    /// SHA3-256 (8).
    Sha3_256,
}

impl ChapAlgorithm {
    /// Every algorithm, strongest first (the default preference).
    pub const ALL: [ChapAlgorithm; 4] = [
        ChapAlgorithm::Sha3_256,
        ChapAlgorithm::Sha256,
        ChapAlgorithm::Sha1,
        ChapAlgorithm::Md5,
    ];

    /// The CHAP_A value.
    pub fn code(self) -> u8 {
        match self {
            ChapAlgorithm::Md5 => 5,
            ChapAlgorithm::Sha1 => 6,
            ChapAlgorithm::Sha256 => 7,
            ChapAlgorithm::Sha3_256 => 8,
        }
    }

    /// The algorithm of a CHAP_A value, if known.
    pub fn from_code(code: &str) -> Option<ChapAlgorithm> {
        ChapAlgorithm::ALL
            .into_iter()
            .find(|a| code.trim() == a.code().to_string())
    }

    /// Length of a response (and of the challenges we send), in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            ChapAlgorithm::Md5 => 16,
            ChapAlgorithm::Sha1 => 20,
            ChapAlgorithm::Sha256 | ChapAlgorithm::Sha3_256 => 32,
        }
    }

    /// H(id || secret || challenge).
    pub fn response(self, id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
        fn run<D: Digest>(id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
            let mut h = D::new();
            h.update([id]);
            h.update(secret);
            h.update(challenge);
            h.finalize().to_vec()
        }
        match self {
            ChapAlgorithm::Md5 => run::<md5::Md5>(id, secret, challenge),
            ChapAlgorithm::Sha1 => run::<sha1::Sha1>(id, secret, challenge),
            ChapAlgorithm::Sha256 => run::<sha2::Sha256>(id, secret, challenge),
            ChapAlgorithm::Sha3_256 => run::<sha3::Sha3_256>(id, secret, challenge),
        }
    }
}

/// A CHAP user name and its secret. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ChapCredential {
    /// The CHAP_N name.
    pub user: String,
    /// The shared secret.
    pub secret: Vec<u8>,
}

impl ChapCredential {
    /// A credential from a user name and a secret.
    pub fn new(user: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        ChapCredential {
            user: user.into(),
            secret: secret.into(),
        }
    }
}

impl fmt::Debug for ChapCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChapCredential")
            .field("user", &self.user)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What one login must satisfy, decided once the initiator and target are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthPolicy {
    /// This initiator may not log in here (login status 0x0202, authorization failure).
    Deny,
    /// No authentication (`AuthMethod=None`).
    Open,
    /// CHAP required.
    Chap {
        /// Accepted initiator credentials.
        users: Vec<ChapCredential>,
        /// What the target answers when the initiator asks it to authenticate (mutual CHAP);
        /// `None`: a request for mutual CHAP fails the login.
        mutual: Option<ChapCredential>,
        /// Allowed algorithms (empty: all of [`ChapAlgorithm::ALL`]).
        algorithms: Vec<ChapAlgorithm>,
    },
}

/// Decides the [`AuthPolicy`] of a login (the server's configuration: targets, ACLs, secrets).
pub trait AccessPolicy: Send + Sync + fmt::Debug {
    /// The policy for `initiator` logging in to `target` (`None`: a discovery session).
    fn decide(&self, initiator: &str, target: Option<&str>) -> AuthPolicy;
}

#[derive(Debug)]
enum State {
    /// Waiting for CHAP_A.
    Start,
    /// Challenge sent; waiting for CHAP_N/CHAP_R.
    Challenged {
        alg: ChapAlgorithm,
        id: u8,
        challenge: Vec<u8>,
    },
    /// Finished (success or failure): any further step fails.
    Done,
}

/// The target's authenticator: `None` or CHAP per the [`AccessPolicy`].
pub struct ChapAuthenticator {
    access: Arc<dyn AccessPolicy>,
    random: [u8; CHAP_RANDOM_BYTES],
    policy: AuthPolicy,
    state: State,
    /// The initiator of this login, for log messages.
    initiator: String,
}

impl fmt::Debug for ChapAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChapAuthenticator")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl ChapAuthenticator {
    /// An authenticator for one connection; `random` must come from a CSPRNG.
    pub fn new(access: Arc<dyn AccessPolicy>, random: [u8; CHAP_RANDOM_BYTES]) -> Self {
        ChapAuthenticator {
            access,
            random,
            policy: AuthPolicy::Deny,
            state: State::Start,
            initiator: String::new(),
        }
    }

    fn challenge(&mut self, keys: &[(String, String)]) -> AuthStep {
        let AuthPolicy::Chap { algorithms, .. } = &self.policy else {
            return AuthStep::Failure;
        };
        let Some(offer) = find(keys, "CHAP_A") else {
            log::info!("CHAP: no CHAP_A offered");
            return AuthStep::Failure;
        };
        let allowed = |a: &ChapAlgorithm| algorithms.is_empty() || algorithms.contains(a);
        let Some(alg) = offer
            .split(',')
            .filter_map(ChapAlgorithm::from_code)
            .find(allowed)
        else {
            log::info!("CHAP: no acceptable algorithm in CHAP_A={offer}");
            return AuthStep::Failure;
        };
        let id = self.random[0];
        let challenge = self.random[1..1 + alg.digest_len()].to_vec();
        let keys = vec![
            ("CHAP_A".to_string(), alg.code().to_string()),
            ("CHAP_I".to_string(), id.to_string()),
            ("CHAP_C".to_string(), to_hex(&challenge)),
        ];
        self.state = State::Challenged { alg, id, challenge };
        AuthStep::Continue(keys)
    }

    fn verify(
        &self,
        alg: ChapAlgorithm,
        id: u8,
        challenge: &[u8],
        keys: &[(String, String)],
    ) -> AuthStep {
        let AuthPolicy::Chap { users, mutual, .. } = &self.policy else {
            return AuthStep::Failure;
        };
        let (Some(name), Some(resp)) = (find(keys, "CHAP_N"), find(keys, "CHAP_R")) else {
            log::info!("CHAP: CHAP_N or CHAP_R missing");
            return AuthStep::Failure;
        };
        let Some(resp) = decode_exact(resp, alg.digest_len()) else {
            log::info!("CHAP: CHAP_R is not a {}-byte value", alg.digest_len());
            return AuthStep::Failure;
        };
        // Unknown users are checked against a dummy secret: same work, same answer.
        let user = users
            .iter()
            .find(|c| c.user == name && name.len() <= MAX_NAME);
        let secret = user.map_or(&self.random[..], |c| &c.secret[..]);
        let expected = alg.response(id, secret, challenge);
        if !(constant_time_eq(&expected, &resp) && user.is_some()) {
            log::info!(
                "CHAP: authentication failed for initiator {} (user {name:?})",
                self.initiator
            );
            return AuthStep::Failure;
        }
        match (find(keys, "CHAP_I"), find(keys, "CHAP_C")) {
            (None, None) => AuthStep::Success(Vec::new()),
            (Some(i), Some(c)) => Self::answer_mutual(alg, mutual.as_ref(), challenge, i, c),
            _ => {
                log::info!("CHAP: mutual request with only one of CHAP_I and CHAP_C");
                AuthStep::Failure
            }
        }
    }

    /// Authenticates the target to the initiator (mutual CHAP).
    fn answer_mutual(
        alg: ChapAlgorithm,
        mutual: Option<&ChapCredential>,
        ours: &[u8],
        id: &str,
        challenge: &str,
    ) -> AuthStep {
        let Some(cred) = mutual else {
            log::info!("CHAP: the initiator asks for mutual CHAP but no target secret is set");
            return AuthStep::Failure;
        };
        let Some(id) = id.parse::<u8>().ok().filter(|_| id.len() <= 3) else {
            log::info!("CHAP: bad CHAP_I from the initiator");
            return AuthStep::Failure;
        };
        let Some(theirs) =
            decode_binary(challenge, MAX_INITIATOR_CHALLENGE).filter(|c| !c.is_empty())
        else {
            log::info!("CHAP: bad CHAP_C from the initiator");
            return AuthStep::Failure;
        };
        if theirs == ours {
            log::warn!("CHAP: the initiator reflected the target's challenge; refused");
            return AuthStep::Failure;
        }
        let resp = alg.response(id, &cred.secret, &theirs);
        AuthStep::Success(vec![
            ("CHAP_N".to_string(), cred.user.clone()),
            ("CHAP_R".to_string(), to_hex(&resp)),
        ])
    }
}

impl Authenticator for ChapAuthenticator {
    fn begin(&mut self, initiator: &str, target: Option<&str>) -> Result<(), u16> {
        self.policy = self.access.decide(initiator, target);
        self.initiator = initiator.to_string();
        match self.policy {
            AuthPolicy::Deny => {
                match target {
                    Some(t) => log::info!("login refused: initiator {initiator} may not use {t}"),
                    None => log::info!(
                        "login refused: initiator {initiator} may not open a discovery session"
                    ),
                }
                Err(crate::login::login_status::AUTHORIZATION_FAILURE)
            }
            _ => Ok(()),
        }
    }

    fn visible(&self, initiator: &str, target: &str) -> bool {
        self.access.decide(initiator, Some(target)) != AuthPolicy::Deny
    }

    fn methods(&self) -> Vec<&'static str> {
        match self.policy {
            AuthPolicy::Open => vec!["None"],
            AuthPolicy::Chap { .. } => vec!["CHAP"],
            AuthPolicy::Deny => Vec::new(),
        }
    }

    fn step(
        &mut self,
        method: &str,
        _initiator_name: &str,
        _target_name: Option<&str>,
        keys: &[(String, String)],
    ) -> AuthStep {
        if method != "CHAP" {
            return if method == "None" && self.policy == AuthPolicy::Open {
                AuthStep::Success(Vec::new())
            } else {
                AuthStep::Failure
            };
        }
        let step = match std::mem::replace(&mut self.state, State::Done) {
            State::Start => self.challenge(keys),
            State::Challenged { alg, id, challenge } => self.verify(alg, id, &challenge, keys),
            State::Done => AuthStep::Failure,
        };
        if matches!(step, AuthStep::Failure) {
            self.state = State::Done;
        }
        step
    }
}

fn find<'a>(keys: &'a [(String, String)], name: &str) -> Option<&'a str> {
    keys.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Compares without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A binary value of exactly `len` bytes, hex (`0x`) or base64 (`0b`); the text length is
/// checked before anything is decoded.
fn decode_exact(text: &str, len: usize) -> Option<Vec<u8>> {
    let body = text.get(2..)?;
    let fits = match &text[..2] {
        "0x" | "0X" => body.len() == 2 * len,
        "0b" | "0B" => body.len() == len.div_ceil(3) * 4,
        _ => false,
    };
    decode_binary(text, len).filter(|v| fits && v.len() == len)
}

/// A binary value (RFC 7143 6.1: `0x` hex, odd digit counts allowed, or `0b` base64) of at most
/// `max` bytes.
fn decode_binary(text: &str, max: usize) -> Option<Vec<u8>> {
    let body = text.get(2..)?;
    match text.get(..2)? {
        "0x" | "0X" if body.len() <= 2 * max => decode_hex(body),
        "0b" | "0B" if body.len() <= max.div_ceil(3) * 4 => decode_base64(body),
        _ => None,
    }
    .filter(|v| v.len() <= max)
}

fn decode_hex(body: &str) -> Option<Vec<u8>> {
    let digits: Option<Vec<u8>> = body
        .chars()
        .map(|c| c.to_digit(16).map(|d| d as u8))
        .collect();
    let digits = digits?;
    if digits.is_empty() {
        return None;
    }
    // An odd count has an implied leading zero.
    let pad = digits.len() % 2;
    let mut out = Vec::with_capacity(digits.len().div_ceil(2));
    let mut it = std::iter::repeat(0).take(pad).chain(digits);
    while let (Some(hi), Some(lo)) = (it.next(), it.next()) {
        out.push(hi << 4 | lo);
    }
    Some(out)
}

fn decode_base64(body: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = body.as_bytes();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.len() / 4;
    for (i, q) in bytes.chunks(4).enumerate() {
        let pads = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pads > 2 || (pads > 0 && i + 1 != chunks) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pads] {
            n = n << 6 | val(c)?;
        }
        n <<= 6 * pads as u32;
        let group = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&group[..3 - pads]);
    }
    Some(out)
}

#[cfg(test)]
mod tests;
