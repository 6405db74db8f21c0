//! Byte-level round trips: initiator PDUs encoded to bytes, decoded with the
//! connection's decoder configuration, answers encoded with the digests the
//! connection asks for and decoded again as an initiator would.

use iscsi_wire::{encode, Bhs, Decoder, DecoderConfig, DigestConfig, Pdu};

use crate::testutil::*;
use crate::{AuthStep, Authenticator, Connection, Output, ScsiResult};

/// Encode `pdu` as the initiator (with `tx` digests), decode it with the
/// connection's decoder settings and feed it.
fn feed(c: &mut Connection, pdu: &Pdu, tx: DigestConfig) {
    let mut wire = Vec::new();
    encode(pdu, tx, &mut wire);
    let mut dec = Decoder::new(c.decoder_config());
    let (used, got) = dec.decode(&wire).expect("target decodes");
    assert_eq!(used, wire.len());
    c.handle_pdu(got.expect("whole PDU"), 1);
}

/// Encode every transmitted PDU with its digests and decode as the initiator.
fn answers(c: &mut Connection, rx: DigestConfig) -> Vec<Pdu> {
    let mut wire = Vec::new();
    for o in drain(c) {
        if let Output::Transmit(p, d) = o {
            assert_eq!(d, rx, "digests of {:?}", p.bhs.opcode());
            encode(&p, d, &mut wire);
        }
    }
    let mut dec = Decoder::new(DecoderConfig {
        digests: rx,
        max_data_segment: 1 << 24,
    });
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < wire.len() {
        let (used, p) = dec.decode(&wire[pos..]).expect("initiator decodes");
        pos += used;
        out.extend(p);
        if used == 0 {
            break;
        }
    }
    out
}

#[test]
fn digests_switch_on_after_final_login_response() {
    let none = DigestConfig::default();
    let both = DigestConfig {
        header: true,
        data: true,
    };
    let mut c = Connection::new(cfg(), 0);
    let text = kv(&[
        ("InitiatorName", INITIATOR),
        ("TargetName", TARGET),
        ("HeaderDigest", "CRC32C"),
        ("DataDigest", "CRC32C"),
        ("MaxRecvDataSegmentLength", "4096"),
    ]);
    feed(&mut c, &login_pdu(1, 3, true, false, text), none);
    let a = answers(&mut c, none);
    assert!(matches!(&a[0].bhs, Bhs::LoginResponse(r) if r.transit && r.nsg == 3));
    // From now on both directions carry CRC32C digests.
    feed(&mut c, &read_cmd(1, FIRST_CMD_SN, 10_000), both);
    let t = executed(&drain(&mut c)).remove(0);
    c.complete(
        t.id,
        ScsiResult {
            data_in: vec![0x5a; 10_000],
            ..Default::default()
        },
    );
    let a = answers(&mut c, both);
    assert_eq!(a.len(), 3, "4096-byte segments");
    let total: usize = a.iter().map(|p| p.data.len()).sum();
    assert_eq!(total, 10_000);
    // A PDU without digests is now a header digest error for the target.
    let mut wire = Vec::new();
    encode(&tur(2, FIRST_CMD_SN + 1), none, &mut wire);
    wire.extend_from_slice(&[0; 4]);
    let mut dec = Decoder::new(c.decoder_config());
    let err = dec.decode(&wire).unwrap_err();
    c.handle_wire_error(err, 2);
    assert_eq!(drain(&mut c), vec![Output::Close]);
}

/// A CHAP-like authenticator: one challenge round, then checks a fixed answer.
#[derive(Debug, Default)]
struct Challenge {
    asked: bool,
}

impl Authenticator for Challenge {
    fn methods(&self) -> Vec<&'static str> {
        vec!["CHAP"]
    }

    fn step(
        &mut self,
        method: &str,
        initiator_name: &str,
        target_name: Option<&str>,
        keys: &[(String, String)],
    ) -> AuthStep {
        assert_eq!(
            (method, initiator_name, target_name),
            ("CHAP", INITIATOR, Some(TARGET))
        );
        if !self.asked {
            self.asked = true;
            return AuthStep::Continue(vec![
                ("CHAP_A".into(), "5".into()),
                ("CHAP_C".into(), "0x01".into()),
            ]);
        }
        match keys.iter().find(|(k, _)| k == "CHAP_R") {
            Some((_, v)) if v == "0xgood" => AuthStep::Success(Vec::new()),
            _ => AuthStep::Failure,
        }
    }
}

fn chap_login(answer: &str) -> (Connection, Vec<Output>) {
    let mut c = Connection::with_authenticator(cfg(), 0, Box::new(Challenge::default()));
    let first = kv(&[
        ("InitiatorName", INITIATOR),
        ("TargetName", TARGET),
        ("AuthMethod", "CHAP,None"),
    ]);
    c.handle_pdu(login_pdu(0, 1, true, false, first), 1);
    let outs = drain(&mut c);
    let r = login_resp(&sent(&outs)[0]);
    assert!(!r.transit);
    assert_eq!(key(&keys(&sent(&outs)[0].data), "AuthMethod"), Some("CHAP"));
    c.handle_pdu(login_pdu(0, 1, false, false, kv(&[("CHAP_A", "5")])), 2);
    let outs = drain(&mut c);
    let k = keys(&sent(&outs)[0].data);
    assert_eq!(key(&k, "CHAP_C"), Some("0x01"));
    c.handle_pdu(
        login_pdu(
            0,
            1,
            true,
            false,
            kv(&[("CHAP_N", "user"), ("CHAP_R", answer)]),
        ),
        3,
    );
    let outs = drain(&mut c);
    (c, outs)
}

#[test]
fn authenticator_seam_success() {
    let (c, outs) = chap_login("0xgood");
    let r = login_resp(&sent(&outs)[0]);
    assert_eq!((r.transit, r.nsg, r.status_class), (true, 1, 0));
    assert!(!c.is_closed());
}

#[test]
fn authenticator_seam_failure() {
    let (c, outs) = chap_login("0xbad");
    let r = login_resp(&sent(&outs)[0]);
    assert_eq!((r.status_class, r.status_detail), (2, 1));
    assert!(c.is_closed());
}

#[test]
fn authentication_required_cannot_be_skipped() {
    let mut c = Connection::with_authenticator(cfg(), 0, Box::new(Challenge::default()));
    let first = kv(&[("InitiatorName", INITIATOR), ("TargetName", TARGET)]);
    c.handle_pdu(login_pdu(1, 3, true, false, first), 1);
    let r = login_resp(&sent(&drain(&mut c))[0]);
    assert_eq!((r.status_class, r.status_detail), (2, 1));
}
