//! CHAP on the initiator side (RFC 7143 12.1.3 over RFC 1994): answer the target's challenge
//! and, for mutual CHAP, challenge the target and check its answer. Set with
//! [`crate::LoginOptions::chap`].

use std::fmt;
use std::io::Read;

use sha2::Digest;

use crate::Error;

/// The CHAP credentials of one login.
#[derive(Clone, PartialEq, Eq)]
pub struct Chap {
    /// The CHAP_N sent to the target.
    pub user: String,
    /// Our secret.
    pub secret: Vec<u8>,
    /// The CHAP_A values offered, in preference order (default: 5, MD5).
    pub algorithms: Vec<u8>,
    /// Mutual CHAP: the name the target must answer with, and its secret.
    pub target: Option<(String, Vec<u8>)>,
}

impl fmt::Debug for Chap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chap")
            .field("user", &self.user)
            .field("algorithms", &self.algorithms)
            .field("target", &self.target.as_ref().map(|(user, _)| user))
            .finish_non_exhaustive()
    }
}

impl Chap {
    /// One-way CHAP as `user` with `secret`, offering MD5.
    pub fn new(user: &str, secret: impl Into<Vec<u8>>) -> Chap {
        Chap {
            user: user.to_string(),
            secret: secret.into(),
            algorithms: vec![5],
            target: None,
        }
    }

    /// Offer these CHAP_A values instead (5 MD5, 6 SHA-1, 7 SHA-256, 8 SHA3-256; others are
    /// sent as given, for testing the target's refusal).
    pub fn algorithms(mut self, codes: &[u8]) -> Chap {
        self.algorithms = codes.to_vec();
        self
    }

    /// Mutual CHAP: require the target to prove it knows `secret` under the name `user`.
    pub fn mutual(mut self, user: &str, secret: impl Into<Vec<u8>>) -> Chap {
        self.target = Some((user.to_string(), secret.into()));
        self
    }
}

/// H(id || secret || challenge) for a CHAP_A code; `None` for an unknown code.
pub fn chap_response(alg: u8, id: u8, secret: &[u8], challenge: &[u8]) -> Option<Vec<u8>> {
    fn run<D: Digest>(id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
        let mut h = D::new();
        h.update([id]);
        h.update(secret);
        h.update(challenge);
        h.finalize().to_vec()
    }
    Some(match alg {
        5 => run::<md5::Md5>(id, secret, challenge),
        6 => run::<sha1::Sha1>(id, secret, challenge),
        7 => run::<sha2::Sha256>(id, secret, challenge),
        8 => run::<sha3::Sha3_256>(id, secret, challenge),
        _ => return None,
    })
}

#[derive(Debug)]
enum State {
    /// AuthMethod=CHAP sent.
    Offered,
    /// CHAP_A sent.
    AlgorithmSent,
    /// CHAP_R sent (with our challenge for mutual CHAP).
    Answered { alg: u8, id: u8, challenge: Vec<u8> },
    /// Nothing more to do.
    Done,
}

/// One CHAP exchange during the security stage.
#[derive(Debug)]
pub(crate) struct Exchange {
    chap: Chap,
    state: State,
}

type Keys = Vec<(String, String)>;

fn protocol(msg: impl Into<String>) -> Error {
    Error::Protocol(msg.into())
}

fn get<'a>(keys: &'a [(String, String)], name: &str) -> Option<&'a str> {
    keys.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl Exchange {
    pub(crate) fn new(chap: Chap) -> Exchange {
        Exchange {
            chap,
            state: State::Offered,
        }
    }

    /// The keys of the next security-stage request, given the keys of the last response and
    /// whether it moved on to the next stage (the target must then have finished with us, and
    /// with mutual CHAP must have proved itself).
    pub(crate) fn next(&mut self, keys: &[(String, String)], transit: bool) -> Result<Keys, Error> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Offered if get(keys, "AuthMethod") == Some("CHAP") && !transit => {
                self.state = State::AlgorithmSent;
                let codes: Vec<String> = self.chap.algorithms.iter().map(u8::to_string).collect();
                Ok(vec![("CHAP_A".into(), codes.join(","))])
            }
            State::Offered => self.unauthenticated(keys),
            State::AlgorithmSent if !transit => self.answer(keys),
            State::Answered { alg, id, challenge } if transit => {
                self.check_target(keys, alg, id, &challenge)
            }
            State::Done if transit => Ok(Vec::new()),
            state => Err(protocol(format!(
                "CHAP: unexpected login response in state {state:?} (transit {transit})"
            ))),
        }
    }

    /// The target did not choose CHAP: fine unless we need it to authenticate itself.
    fn unauthenticated(&self, keys: &[(String, String)]) -> Result<Keys, Error> {
        if self.chap.target.is_some() {
            return Err(protocol(format!(
                "mutual CHAP: the target did not authenticate (AuthMethod={})",
                get(keys, "AuthMethod").unwrap_or("(none)")
            )));
        }
        Ok(Vec::new())
    }

    /// CHAP_N and CHAP_R for the target's challenge, and ours for mutual CHAP.
    fn answer(&mut self, keys: &[(String, String)]) -> Result<Keys, Error> {
        let alg: u8 = get(keys, "CHAP_A")
            .and_then(|a| a.parse().ok())
            .filter(|a| self.chap.algorithms.contains(a))
            .ok_or_else(|| protocol("CHAP: the target chose no offered CHAP_A"))?;
        let id: u8 = get(keys, "CHAP_I")
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| protocol("CHAP: bad or missing CHAP_I"))?;
        let theirs = get(keys, "CHAP_C")
            .and_then(decode_hex)
            .ok_or_else(|| protocol("CHAP: bad or missing CHAP_C"))?;
        let resp = chap_response(alg, id, &self.chap.secret, &theirs)
            .ok_or_else(|| protocol(format!("CHAP: unknown CHAP_A {alg}")))?;
        let mut out = vec![
            ("CHAP_N".to_string(), self.chap.user.clone()),
            ("CHAP_R".to_string(), to_hex(&resp)),
        ];
        if self.chap.target.is_some() {
            let mut random = [0u8; 17];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut random))
                .map_err(Error::Io)?;
            let (id, challenge) = (random[0], random[1..].to_vec());
            out.push(("CHAP_I".to_string(), id.to_string()));
            out.push(("CHAP_C".to_string(), to_hex(&challenge)));
            self.state = State::Answered { alg, id, challenge };
        }
        Ok(out)
    }

    /// Mutual CHAP: the target's CHAP_N and CHAP_R for our challenge.
    fn check_target(
        &self,
        keys: &[(String, String)],
        alg: u8,
        id: u8,
        challenge: &[u8],
    ) -> Result<Keys, Error> {
        let Some((user, secret)) = &self.chap.target else {
            return Ok(Vec::new());
        };
        if get(keys, "CHAP_N") != Some(user.as_str()) {
            return Err(protocol(format!(
                "mutual CHAP: the target answered as {:?}, expected {user:?}",
                get(keys, "CHAP_N")
            )));
        }
        let expected = chap_response(alg, id, secret, challenge);
        let got = get(keys, "CHAP_R").and_then(decode_hex);
        if expected.is_none() || got != expected {
            return Err(protocol(
                "mutual CHAP: the target's CHAP_R is wrong (it does not know the secret)",
            ));
        }
        Ok(Vec::new())
    }
}

fn to_hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{digits}")
}

/// A `0x` hex value with an even number of digits.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let body = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    if body.is_empty() || body.len() % 2 != 0 || !body.is_ascii() {
        return None;
    }
    (0..body.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&body[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(p: &[(&str, &str)]) -> Keys {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn responses_hash_id_secret_and_challenge() {
        // H(0x01 || "secret" || 16 zero bytes), from Python's hashlib.
        let r = chap_response(5, 1, b"secret", &[0; 16]).expect("md5");
        assert_eq!(to_hex(&r), "0x7570c653cdf4755ccffcaa80f29268d1");
        let r = chap_response(8, 1, b"secret", &[0; 16]).expect("sha3");
        assert_eq!(
            to_hex(&r),
            "0x0914d0b32e2faf35eb1f95abdeb490eecedb7b01f0e02665fe069eab23662bc4"
        );
        assert_eq!(chap_response(6, 1, b"s", b"c").map(|r| r.len()), Some(20));
        assert_eq!(chap_response(7, 1, b"s", b"c").map(|r| r.len()), Some(32));
        assert_eq!(chap_response(8, 1, b"s", b"c").map(|r| r.len()), Some(32));
        assert_ne!(
            chap_response(7, 1, b"s", b"c"),
            chap_response(8, 1, b"s", b"c")
        );
        assert!(chap_response(9, 1, b"s", b"c").is_none());
    }

    #[test]
    fn one_way_exchange() {
        let mut x = Exchange::new(Chap::new("alice", "alice-secret-1").algorithms(&[7, 5]));
        let k = x
            .next(&kv(&[("AuthMethod", "CHAP")]), false)
            .expect("offer");
        assert_eq!(k, kv(&[("CHAP_A", "7,5")]));
        let ch = kv(&[("CHAP_A", "7"), ("CHAP_I", "9"), ("CHAP_C", "0x0102")]);
        let k = x.next(&ch, false).expect("answer");
        let want = to_hex(&chap_response(7, 9, b"alice-secret-1", &[1, 2]).expect("sha256"));
        assert_eq!(k, kv(&[("CHAP_N", "alice"), ("CHAP_R", &want)]));
        assert!(x.next(&[], true).expect("done").is_empty());
    }

    #[test]
    fn mutual_exchange_checks_the_target() {
        let chap = Chap::new("alice", "alice-secret-1").mutual("tgt", "target-secret-1");
        for (name, secret, ok) in [
            ("tgt", "target-secret-1", true),
            ("tgt", "wrong-secret-11", false),
            ("other", "target-secret-1", false),
        ] {
            let mut x = Exchange::new(chap.clone());
            x.next(&kv(&[("AuthMethod", "CHAP")]), false)
                .expect("offer");
            let ch = kv(&[("CHAP_A", "5"), ("CHAP_I", "1"), ("CHAP_C", "0xaabb")]);
            let k = x.next(&ch, false).expect("answer");
            let id: u8 = get(&k, "CHAP_I").and_then(|i| i.parse().ok()).expect("id");
            let c = get(&k, "CHAP_C").and_then(decode_hex).expect("challenge");
            let r = to_hex(&chap_response(5, id, secret.as_bytes(), &c).expect("md5"));
            let result = x.next(&kv(&[("CHAP_N", name), ("CHAP_R", &r)]), true);
            assert_eq!(result.is_ok(), ok, "{name} {result:?}");
        }
    }

    #[test]
    fn mutual_refuses_a_target_that_skips_authentication() {
        let chap = Chap::new("alice", "alice-secret-1").mutual("tgt", "target-secret-1");
        let mut x = Exchange::new(chap);
        assert!(x.next(&kv(&[("AuthMethod", "None")]), true).is_err());
        let mut x = Exchange::new(Chap::new("alice", "alice-secret-1"));
        assert!(x.next(&kv(&[("AuthMethod", "None")]), true).is_ok());
    }

    #[test]
    fn debug_hides_secrets() {
        let chap = Chap::new("alice", "alice-secret-1").mutual("tgt", "target-secret-1");
        let d = format!("{chap:?}");
        assert!(d.contains("alice") && d.contains("tgt"));
        assert!(!d.contains("secret-1"), "{d}");
    }
}
