use iscsi_wire::{Bhs, DigestConfig, LoginRequest, NopOut, Pdu};

use super::login_status as st;
use crate::testutil::*;
use crate::{Connection, Limits, Output};

fn status(outs: &[Output]) -> u16 {
    let r = login_resp(&sent(outs)[0]);
    u16::from_be_bytes([r.status_class, r.status_detail])
}

fn first_keys() -> Vec<u8> {
    kv(&[
        ("InitiatorName", INITIATOR),
        ("SessionType", "Normal"),
        ("TargetName", TARGET),
        ("AuthMethod", "None,CHAP"),
    ])
}

#[test]
fn full_login_with_digests() {
    let mut c = Connection::new(cfg(), 0);
    assert_eq!(c.decoder_config().digests, DigestConfig::default());
    c.handle_pdu(login_pdu(0, 1, true, false, first_keys()), 1);
    let outs = drain(&mut c);
    assert_eq!(outs.len(), 1);
    let p = &sent(&outs)[0];
    let r = login_resp(p);
    assert_eq!((r.transit, r.csg, r.nsg), (true, 0, 1));
    assert_eq!(r.isid, ISID);
    assert_eq!(r.tsih, 0, "TSIH only in the final response");
    assert_eq!(r.itt, 0x1000);
    assert_eq!(r.stat_sn, 500, "StatSN starts at the initiator's ExpStatSN");
    assert_eq!(r.exp_cmd_sn, LOGIN_CMD_SN);
    assert_eq!(r.max_cmd_sn, LOGIN_CMD_SN + 127);
    let k = keys(&p.data);
    assert_eq!(key(&k, "AuthMethod"), Some("None"));
    assert_eq!(key(&k, "TargetPortalGroupTag"), Some("1"));
    assert_eq!(key(&k, "TargetAlias"), Some("disk one"));

    let op = kv(&[
        ("HeaderDigest", "CRC32C,None"),
        ("DataDigest", "CRC32C,None"),
        ("MaxRecvDataSegmentLength", "65536"),
        ("MaxBurstLength", "262144"),
        ("FirstBurstLength", "65536"),
        ("InitialR2T", "No"),
        ("ImmediateData", "Yes"),
        ("MaxConnections", "1"),
        ("ErrorRecoveryLevel", "0"),
        ("DefaultTime2Wait", "2"),
        ("DefaultTime2Retain", "0"),
        ("MaxOutstandingR2T", "1"),
        ("DataPDUInOrder", "Yes"),
        ("DataSequenceInOrder", "Yes"),
        ("IFMarker", "No"),
        ("OFMarker", "No"),
    ]);
    c.handle_pdu(login_pdu(1, 3, true, false, op), 2);
    let outs = drain(&mut c);
    assert_eq!(outs.len(), 2);
    let Output::Transmit(p, d) = &outs[0] else {
        panic!("{outs:?}")
    };
    assert_eq!(
        *d,
        DigestConfig::default(),
        "final login response without digests"
    );
    let r = login_resp(p);
    assert_eq!((r.transit, r.csg, r.nsg), (true, 1, 3));
    assert_eq!(r.tsih, 7);
    assert_eq!(r.stat_sn, 501);
    let k = keys(&p.data);
    assert_eq!(key(&k, "HeaderDigest"), Some("CRC32C"));
    assert_eq!(key(&k, "DataDigest"), Some("CRC32C"));
    assert_eq!(key(&k, "MaxRecvDataSegmentLength"), Some("262144"));
    assert_eq!(key(&k, "InitialR2T"), Some("No"));
    assert_eq!(key(&k, "ErrorRecoveryLevel"), Some("0"));
    assert_eq!(key(&k, "IFMarker"), Some("Reject"));
    let Output::LoggedIn(info) = &outs[1] else {
        panic!()
    };
    assert_eq!(info.initiator_name, INITIATOR);
    assert_eq!(info.target_name.as_deref(), Some(TARGET));
    assert_eq!((info.tsih, info.isid, info.discovery), (7, ISID, false));
    let dc = c.decoder_config();
    assert!(dc.digests.header && dc.digests.data);
    assert_eq!(dc.max_data_segment, 262144);
    assert_eq!(c.params().initiator_mrdsl, 65536);
    // After login, PDUs go out with digests.
    c.handle_pdu(nop_out(5, 0xffff_ffff, LOGIN_CMD_SN, true, vec![]), 3);
    let outs = drain(&mut c);
    let Output::Transmit(_, d) = &outs[0] else {
        panic!()
    };
    assert!(d.header && d.data);
    assert_eq!(c.next_timeout(), None, "no NOP pings by default");
}

#[test]
fn login_response_bytes() {
    let mut c = Connection::new(cfg(), 0);
    c.handle_pdu(login_pdu(0, 1, true, false, first_keys()), 1);
    let outs = drain(&mut c);
    let p = &sent(&outs)[0];
    let mut wire = Vec::new();
    iscsi_wire::encode(p, DigestConfig::default(), &mut wire);
    assert_eq!(wire[0], 0x23, "Login Response opcode");
    assert_eq!(wire[1], 0x81, "T=1 CSG=0 NSG=1");
    assert_eq!(&wire[8..14], &ISID);
    assert_eq!(&wire[24..28], &500u32.to_be_bytes());
    assert_eq!((wire[36], wire[37]), (0, 0), "status");
    assert_eq!(roundtrip(p, DigestConfig::default()), *p);
}

#[test]
fn security_stage_can_go_straight_to_ffp() {
    let mut c = Connection::new(cfg(), 0);
    c.handle_pdu(login_pdu(0, 3, true, false, first_keys()), 1);
    let outs = drain(&mut c);
    let r = login_resp(&sent(&outs)[0]);
    assert_eq!((r.transit, r.csg, r.nsg, r.tsih), (true, 0, 3, 7));
    assert!(matches!(outs[1], Output::LoggedIn(_)));
}

#[test]
fn operational_stage_first_is_allowed_without_auth() {
    let mut c = Connection::new(cfg(), 0);
    let mut data = kv(&[("InitiatorName", INITIATOR), ("TargetName", TARGET)]);
    data.extend(kv(&[("MaxRecvDataSegmentLength", "8192")]));
    c.handle_pdu(login_pdu(1, 3, true, false, data), 1);
    let outs = drain(&mut c);
    let r = login_resp(&sent(&outs)[0]);
    assert_eq!((r.transit, r.nsg), (true, 3));
    assert!(c.session_info().is_some());
}

#[test]
fn no_transit_until_initiator_asks() {
    let mut c = Connection::new(cfg(), 0);
    c.handle_pdu(login_pdu(0, 0, false, false, first_keys()), 1);
    let r = login_resp(&sent(&drain(&mut c))[0]);
    assert!(!r.transit);
    // Next request is still in the security stage, now with T=1.
    c.handle_pdu(login_pdu(0, 1, true, false, Vec::new()), 2);
    let r = login_resp(&sent(&drain(&mut c))[0]);
    assert_eq!((r.transit, r.csg, r.nsg), (true, 0, 1));
    // Operational stage without T: stays.
    c.handle_pdu(
        login_pdu(1, 0, false, false, kv(&[("MaxBurstLength", "4096")])),
        3,
    );
    let outs = drain(&mut c);
    let r = login_resp(&sent(&outs)[0]);
    assert!(!r.transit);
    assert_eq!(
        key(&keys(&sent(&outs)[0].data), "MaxBurstLength"),
        Some("4096")
    );
    c.handle_pdu(login_pdu(1, 3, true, false, Vec::new()), 4);
    let outs = drain(&mut c);
    assert!(login_resp(&sent(&outs)[0]).transit);
    assert_eq!(c.params().max_burst, 4096);
}

#[test]
fn text_continuation_across_login_pdus() {
    let mut c = Connection::new(cfg(), 0);
    let text = first_keys();
    // Split in the middle of a key=value pair.
    let (a, b) = text.split_at(20);
    c.handle_pdu(login_pdu(0, 0, false, true, a.to_vec()), 1);
    let outs = drain(&mut c);
    let p = &sent(&outs)[0];
    let r = login_resp(p);
    assert!(
        p.data.is_empty(),
        "C-bit request acknowledged with an empty response"
    );
    assert!(!r.transit && !r.cont);
    assert_eq!((r.status_class, r.status_detail), (0, 0));
    c.handle_pdu(login_pdu(0, 1, true, false, b.to_vec()), 2);
    let outs = drain(&mut c);
    let p = &sent(&outs)[0];
    let r = login_resp(p);
    assert!(r.transit);
    assert_eq!(key(&keys(&p.data), "AuthMethod"), Some("None"));
}

#[test]
fn discovery_login() {
    let mut c = Connection::new(cfg(), 0);
    let data = kv(&[
        ("InitiatorName", INITIATOR),
        ("SessionType", "Discovery"),
        ("AuthMethod", "None"),
    ]);
    c.handle_pdu(login_pdu(0, 1, true, false, data), 1);
    let outs = drain(&mut c);
    let k = keys(&sent(&outs)[0].data);
    assert_eq!(key(&k, "TargetPortalGroupTag"), None);
    c.handle_pdu(
        login_pdu(
            1,
            3,
            true,
            false,
            kv(&[("MaxBurstLength", "4096"), ("HeaderDigest", "None")]),
        ),
        2,
    );
    let outs = drain(&mut c);
    let k = keys(&sent(&outs)[0].data);
    assert_eq!(key(&k, "MaxBurstLength"), Some("Irrelevant"));
    assert_eq!(key(&k, "HeaderDigest"), Some("None"));
    let Output::LoggedIn(info) = &outs[1] else {
        panic!()
    };
    assert!(info.discovery);
    assert_eq!(info.target_name, None);
}

#[test]
fn missing_initiator_name() {
    let mut c = Connection::new(cfg(), 0);
    c.handle_pdu(
        login_pdu(0, 1, true, false, kv(&[("TargetName", TARGET)])),
        1,
    );
    let outs = drain(&mut c);
    assert_eq!(status(&outs), st::MISSING_PARAMETER);
    assert_eq!(outs.last(), Some(&Output::Close));
    assert!(c.is_closed());
}

#[test]
fn missing_target_name() {
    let mut c = Connection::new(cfg(), 0);
    c.handle_pdu(
        login_pdu(0, 1, true, false, kv(&[("InitiatorName", INITIATOR)])),
        1,
    );
    assert_eq!(status(&drain(&mut c)), st::MISSING_PARAMETER);
}

#[test]
fn unknown_target_not_found() {
    let mut c = Connection::new(cfg(), 0);
    let data = kv(&[
        ("InitiatorName", INITIATOR),
        ("TargetName", "iqn.2000-01.nope:x"),
    ]);
    c.handle_pdu(login_pdu(0, 1, true, false, data), 1);
    let outs = drain(&mut c);
    let r = login_resp(&sent(&outs)[0]);
    assert_eq!((r.status_class, r.status_detail), (0x02, 0x03));
    assert_eq!(outs.last(), Some(&Output::Close));
}

#[test]
fn unsupported_version() {
    let mut c = Connection::new(cfg(), 0);
    let mut p = login_pdu(0, 1, true, false, first_keys());
    if let Bhs::LoginRequest(r) = &mut p.bhs {
        r.version_min = 1;
        r.version_max = 2;
    }
    c.handle_pdu(p, 1);
    assert_eq!(status(&drain(&mut c)), st::UNSUPPORTED_VERSION);
}

#[test]
fn unknown_tsih_session_does_not_exist() {
    let mut c = Connection::new(cfg(), 0);
    let mut p = login_pdu(0, 1, true, false, first_keys());
    if let Bhs::LoginRequest(r) = &mut p.bhs {
        r.tsih = 0x1234;
    }
    c.handle_pdu(p, 1);
    assert_eq!(status(&drain(&mut c)), st::SESSION_DOES_NOT_EXIST);
}

#[test]
fn invalid_stage_transitions() {
    for (csg, nsg, t, cont) in [
        (0, 0, true, false),
        (1, 1, true, false),
        (0, 2, true, false),
        (0, 1, true, true),
        (3, 0, false, false),
    ] {
        let mut c = Connection::new(cfg(), 0);
        c.handle_pdu(login_pdu(csg, nsg, t, cont, first_keys()), 1);
        assert_eq!(
            status(&drain(&mut c)),
            st::INITIATOR_ERROR,
            "{csg} {nsg} {t} {cont}"
        );
    }
}

#[test]
fn stage_mismatch_and_changed_isid() {
    let mut c = Connection::new(cfg(), 0);
    c.handle_pdu(login_pdu(0, 0, false, false, first_keys()), 1);
    drain(&mut c);
    // Still in security stage: CSG 1 is invalid.
    c.handle_pdu(login_pdu(1, 3, true, false, Vec::new()), 2);
    assert_eq!(status(&drain(&mut c)), st::INITIATOR_ERROR);

    let mut c = Connection::new(cfg(), 0);
    c.handle_pdu(login_pdu(0, 0, false, false, first_keys()), 1);
    drain(&mut c);
    let mut p = login_pdu(0, 1, true, false, Vec::new());
    if let Bhs::LoginRequest(r) = &mut p.bhs {
        r.isid[5] = 9;
    }
    c.handle_pdu(p, 2);
    assert_eq!(status(&drain(&mut c)), st::INITIATOR_ERROR);
}

#[test]
fn duplicate_key_is_initiator_error() {
    let mut c = Connection::new(cfg(), 0);
    c.handle_pdu(login_pdu(0, 1, true, false, first_keys()), 1);
    drain(&mut c);
    let op = kv(&[("MaxBurstLength", "4096"), ("MaxBurstLength", "8192")]);
    c.handle_pdu(login_pdu(1, 3, true, false, op), 2);
    assert_eq!(status(&drain(&mut c)), st::INITIATOR_ERROR);
}

#[test]
fn auth_method_without_common_value_fails() {
    let mut c = Connection::new(cfg(), 0);
    let data = kv(&[
        ("InitiatorName", INITIATOR),
        ("TargetName", TARGET),
        ("AuthMethod", "CHAP"),
    ]);
    c.handle_pdu(login_pdu(0, 1, true, false, data), 1);
    assert_eq!(status(&drain(&mut c)), st::AUTH_FAILURE);
}

#[test]
fn bad_session_type() {
    let mut c = Connection::new(cfg(), 0);
    let data = kv(&[("InitiatorName", INITIATOR), ("SessionType", "Bogus")]);
    c.handle_pdu(login_pdu(0, 1, true, false, data), 1);
    assert_eq!(status(&drain(&mut c)), st::SESSION_TYPE_NOT_SUPPORTED);
}

#[test]
fn malformed_text_is_initiator_error() {
    let mut c = Connection::new(cfg(), 0);
    c.handle_pdu(login_pdu(0, 1, true, false, b"NoEqualsSign\0".to_vec()), 1);
    assert_eq!(status(&drain(&mut c)), st::INITIATOR_ERROR);
}

#[test]
fn non_login_pdu_during_login_is_invalid_during_login_then_close() {
    let mut c = Connection::new(cfg(), 0);
    c.handle_pdu(
        Pdu::new(
            NopOut {
                itt: 1,
                ..Default::default()
            },
            vec![],
        ),
        1,
    );
    let outs = drain(&mut c);
    assert_eq!(outs.len(), 2, "{outs:?}");
    let r = login_resp(&sent(&outs)[0]);
    assert_eq!((r.status_class, r.status_detail, r.itt), (2, 0x0b, 1));
    assert!(!r.transit && !r.cont);
    assert_eq!(outs[1], Output::Close);
}

#[test]
fn login_timeout_closes() {
    let mut c = Connection::new(cfg(), 1000);
    assert_eq!(c.next_timeout(), Some(16_000));
    c.handle_timeout(15_999);
    assert!(drain(&mut c).is_empty());
    c.handle_timeout(16_000);
    assert_eq!(drain(&mut c), vec![Output::Close]);
    assert_eq!(c.next_timeout(), None);
}

#[test]
fn target_proposes_stricter_limits() {
    let limits = Limits {
        immediate_data: false,
        max_burst: 65536,
        first_burst: 16384,
        ..Limits::default()
    };
    let mut c = Connection::new(cfg_with(limits), 0);
    c.handle_pdu(login_pdu(0, 1, true, false, first_keys()), 1);
    drain(&mut c);
    c.handle_pdu(login_pdu(1, 3, true, false, kv(&[("InitialR2T", "No")])), 2);
    let outs = drain(&mut c);
    let p = &sent(&outs)[0];
    let r = login_resp(p);
    assert!(!r.transit, "target has keys to negotiate first");
    let k = keys(&p.data);
    assert_eq!(key(&k, "ImmediateData"), Some("No"));
    assert_eq!(key(&k, "MaxBurstLength"), Some("65536"));
    assert_eq!(key(&k, "FirstBurstLength"), Some("16384"));
    let answers = kv(&[
        ("ImmediateData", "No"),
        ("MaxBurstLength", "65536"),
        ("FirstBurstLength", "16384"),
    ]);
    c.handle_pdu(login_pdu(1, 3, true, false, answers), 3);
    let outs = drain(&mut c);
    let p = &sent(&outs)[0];
    assert!(login_resp(p).transit);
    assert!(keys(&p.data).iter().all(|(k, _)| k != "ImmediateData"));
    assert!(!c.params().immediate_data);
    assert_eq!(c.params().max_burst, 65536);
}

#[test]
fn skip_operational_with_proposals_goes_to_stage_one() {
    let limits = Limits {
        immediate_data: false,
        ..Limits::default()
    };
    let mut c = Connection::new(cfg_with(limits), 0);
    c.handle_pdu(login_pdu(0, 3, true, false, first_keys()), 1);
    let r = login_resp(&sent(&drain(&mut c))[0]);
    assert_eq!((r.transit, r.nsg), (true, 1));
}

#[test]
fn login_request_in_ffp_is_rejected() {
    let mut c = logged_in();
    c.handle_pdu(
        Pdu::new(
            LoginRequest {
                transit: true,
                csg: 1,
                nsg: 3,
                ..Default::default()
            },
            vec![],
        ),
        5,
    );
    let outs = drain(&mut c);
    let Bhs::Reject(r) = &sent(&outs)[0].bhs else {
        panic!("{outs:?}")
    };
    assert_eq!(r.reason, 0x04);
}

mod chap_login {
    use super::*;
    use crate::{
        AccessPolicy, AuthPolicy, ChapAlgorithm, ChapAuthenticator, ChapCredential,
        CHAP_RANDOM_BYTES,
    };
    use std::sync::Arc;

    /// CHAP for TARGET and for discovery; INITIATOR only.
    #[derive(Debug)]
    struct Acl;

    impl AccessPolicy for Acl {
        fn decide(&self, initiator: &str, target: Option<&str>) -> AuthPolicy {
            if initiator != INITIATOR {
                return AuthPolicy::Deny;
            }
            match target {
                Some(TARGET) | None => AuthPolicy::Chap {
                    users: vec![ChapCredential::new("alice", "alice-secret-1")],
                    mutual: None,
                    algorithms: vec![],
                },
                _ => AuthPolicy::Open,
            }
        }
    }

    fn conn() -> Connection {
        let auth = ChapAuthenticator::new(Arc::new(Acl), [3; CHAP_RANDOM_BYTES]);
        Connection::with_authenticator(cfg(), 0, Box::new(auth))
    }

    fn hex(b: &[u8]) -> String {
        let mut s = "0x".to_string();
        for x in b {
            s.push_str(&format!("{x:02x}"));
        }
        s
    }

    /// Logs in through CHAP with `secret`; returns the status of the CHAP_R step.
    fn chap_login(initiator: &str, discovery: bool, secret: &str) -> u16 {
        let mut c = conn();
        let mut first = vec![("InitiatorName", initiator), ("AuthMethod", "CHAP,None")];
        if discovery {
            first.push(("SessionType", "Discovery"));
        } else {
            first.push(("TargetName", TARGET));
        }
        c.handle_pdu(login_pdu(0, 1, false, false, kv(&first)), 1);
        let outs = drain(&mut c);
        if status(&outs) != 0 {
            return status(&outs);
        }
        assert_eq!(key(&keys(&sent(&outs)[0].data), "AuthMethod"), Some("CHAP"));
        c.handle_pdu(login_pdu(0, 1, false, false, kv(&[("CHAP_A", "5")])), 2);
        let outs = drain(&mut c);
        let k = keys(&sent(&outs)[0].data);
        let id: u8 = key(&k, "CHAP_I").unwrap().parse().unwrap();
        let ch = key(&k, "CHAP_C").unwrap();
        let ch: Vec<u8> = (2..ch.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&ch[i..i + 2], 16).unwrap())
            .collect();
        let r = hex(&ChapAlgorithm::Md5.response(id, secret.as_bytes(), &ch));
        let answer = kv(&[("CHAP_N", "alice"), ("CHAP_R", &r)]);
        c.handle_pdu(login_pdu(0, 1, true, false, answer), 3);
        let outs = drain(&mut c);
        let s = status(&outs);
        if s == 0 {
            let r = login_resp(&sent(&outs)[0]);
            assert!(r.transit && r.nsg == 1, "on to the operational stage");
        }
        s
    }

    #[test]
    fn right_secret_gets_in_for_both_session_types() {
        assert_eq!(chap_login(INITIATOR, false, "alice-secret-1"), 0);
        assert_eq!(chap_login(INITIATOR, true, "alice-secret-1"), 0);
    }

    #[test]
    fn wrong_secret_is_authentication_failure() {
        assert_eq!(chap_login(INITIATOR, false, "wrong"), st::AUTH_FAILURE);
        assert_eq!(chap_login(INITIATOR, true, "wrong"), st::AUTH_FAILURE);
    }

    #[test]
    fn unlisted_initiator_is_authorization_failure() {
        let other = "iqn.2000-01.com.example:intruder";
        assert_eq!(
            chap_login(other, false, "alice-secret-1"),
            st::AUTHORIZATION_FAILURE
        );
        assert_eq!(
            chap_login(other, true, "alice-secret-1"),
            st::AUTHORIZATION_FAILURE
        );
    }

    #[test]
    fn skipping_the_security_stage_is_refused_when_chap_is_required() {
        let mut c = conn();
        let data = kv(&[("InitiatorName", INITIATOR), ("TargetName", TARGET)]);
        c.handle_pdu(login_pdu(1, 3, true, false, data), 1);
        assert_eq!(status(&drain(&mut c)), st::AUTH_FAILURE);
        let mut c = conn();
        let data = kv(&[
            ("InitiatorName", INITIATOR),
            ("TargetName", TARGET),
            ("AuthMethod", "None"),
        ]);
        c.handle_pdu(login_pdu(0, 1, true, false, data), 1);
        assert_eq!(status(&drain(&mut c)), st::AUTH_FAILURE);
    }

    #[test]
    fn an_open_target_needs_no_chap_and_unknown_targets_stay_not_found() {
        let mut c = conn();
        let data = kv(&[
            ("InitiatorName", INITIATOR),
            ("TargetName", TARGET2),
            ("AuthMethod", "CHAP,None"),
        ]);
        c.handle_pdu(login_pdu(0, 1, true, false, data), 1);
        let outs = drain(&mut c);
        assert_eq!(status(&outs), 0);
        assert_eq!(key(&keys(&sent(&outs)[0].data), "AuthMethod"), Some("None"));
        let mut c = conn();
        let data = kv(&[("InitiatorName", INITIATOR), ("TargetName", "iqn.nope")]);
        c.handle_pdu(login_pdu(0, 1, true, false, data), 1);
        assert_eq!(status(&drain(&mut c)), st::NOT_FOUND);
    }
}

mod split_response {
    use super::*;

    /// Identity keys plus `n` keys the target does not understand.
    fn many_unknown_keys(n: usize) -> Vec<u8> {
        let mut data = first_keys();
        for i in 0..n {
            data.extend_from_slice(format!("Zk{i:04}=v\0").as_bytes());
        }
        data
    }

    /// Ask for the rest of a partial response with empty requests; returns every response.
    fn collect(c: &mut Connection, csg: u8, first: Vec<Output>) -> Vec<Pdu> {
        let mut got = sent(&first);
        for _ in 0..64 {
            let last = login_resp(got.last().expect("a response"));
            if !last.cont {
                return got;
            }
            c.handle_pdu(login_pdu(csg, 0, false, false, Vec::new()), 3);
            got.extend(sent(&drain(c)));
        }
        panic!("the response never ended");
    }

    #[test]
    fn long_response_is_split_with_the_c_bit() {
        let mut c = Connection::new(cfg(), 0);
        let req = many_unknown_keys(700);
        assert!(req.len() <= 8192);
        c.handle_pdu(login_pdu(0, 1, true, false, req), 1);
        let first = drain(&mut c);
        let parts = collect(&mut c, 0, first);
        assert!(parts.len() >= 2, "{} parts", parts.len());
        let (last, partial) = parts.split_last().expect("parts");
        let mut text = Vec::new();
        for (stat_sn, p) in (500..).zip(partial) {
            let r = login_resp(p);
            assert!(r.cont && !r.transit, "{r:?}");
            assert_eq!((r.status_class, r.tsih, r.stat_sn), (0, 0, stat_sn));
            assert_eq!(p.data.len(), 8192);
            text.extend_from_slice(&p.data);
        }
        let r = login_resp(last);
        assert!(!r.cont && r.transit && r.nsg == 1, "{r:?}");
        assert!(last.data.len() <= 8192);
        text.extend_from_slice(&last.data);
        let k = keys(&text);
        assert_eq!(key(&k, "AuthMethod"), Some("None"));
        assert_eq!(key(&k, "Zk0699"), Some("NotUnderstood"));
        // The login goes on in the operational stage.
        c.handle_pdu(login_pdu(1, 3, true, false, Vec::new()), 4);
        let outs = drain(&mut c);
        assert!(login_resp(&sent(&outs)[0]).transit);
        assert!(matches!(outs.last(), Some(Output::LoggedIn(_))), "{outs:?}");
    }

    #[test]
    fn final_response_is_split_at_the_initiators_smaller_limit() {
        let mut c = Connection::new(cfg(), 0);
        c.handle_pdu(login_pdu(0, 1, true, false, first_keys()), 1);
        drain(&mut c);
        let mut op = kv(&[("MaxRecvDataSegmentLength", "512")]);
        for i in 0..100 {
            op.extend_from_slice(format!("Zk{i:04}=v\0").as_bytes());
        }
        c.handle_pdu(login_pdu(1, 3, true, false, op), 2);
        let first = drain(&mut c);
        assert!(
            !first.iter().any(|o| matches!(o, Output::LoggedIn(_))),
            "not logged in before the last part: {first:?}"
        );
        let parts = collect(&mut c, 1, first);
        assert!(parts.len() >= 4, "{} parts", parts.len());
        assert!(parts.iter().all(|p| p.data.len() <= 512));
        let r = login_resp(parts.last().expect("final"));
        assert!(r.transit && r.nsg == 3 && r.tsih == 7, "{r:?}");
        assert!(c.session_info().is_some(), "logged in after the last part");
    }

    #[test]
    fn data_while_a_response_is_pending_is_initiator_error() {
        let mut c = Connection::new(cfg(), 0);
        c.handle_pdu(login_pdu(0, 1, true, false, many_unknown_keys(700)), 1);
        let first = drain(&mut c);
        assert!(login_resp(&sent(&first)[0]).cont);
        c.handle_pdu(login_pdu(0, 1, true, false, kv(&[("Zz", "1")])), 2);
        let outs = drain(&mut c);
        assert_eq!(status(&outs), st::INITIATOR_ERROR);
        assert_eq!(outs.last(), Some(&Output::Close));
    }

    #[test]
    fn login_pdus_over_8192_bytes_are_refused_by_the_decoder() {
        let c = Connection::new(cfg(), 0);
        assert_eq!(c.decoder_config().max_data_segment, 8192);
        let mut c = Connection::new(cfg(), 0);
        let mut dec = iscsi_wire::Decoder::new(c.decoder_config());
        let mut wire = Vec::new();
        let big = login_pdu(0, 1, true, false, vec![b'a'; 8196]);
        iscsi_wire::encode(&big, DigestConfig::default(), &mut wire);
        let err = dec.decode(&wire).expect_err("too long");
        c.handle_wire_error(err, 1);
        let outs = drain(&mut c);
        let Bhs::Reject(r) = &sent(&outs)[0].bhs else {
            panic!("{outs:?}")
        };
        assert_eq!(r.reason, 0x04);
        assert_eq!(outs.last(), Some(&Output::Close));
    }

    #[test]
    fn ahs_on_a_login_request_is_initiator_error() {
        let mut c = Connection::new(cfg(), 0);
        let mut pdu = login_pdu(0, 1, true, false, first_keys());
        pdu.ahs = vec![0, 1, 1, 0];
        c.handle_pdu(pdu, 1);
        let outs = drain(&mut c);
        assert_eq!(status(&outs), st::INITIATOR_ERROR);
        assert_eq!(outs.last(), Some(&Output::Close));
    }
}

#[test]
fn text_without_its_final_nul_is_initiator_error() {
    let mut c = Connection::new(cfg(), 0);
    let mut data = first_keys();
    data.pop();
    c.handle_pdu(login_pdu(0, 1, true, false, data), 1);
    let outs = drain(&mut c);
    assert_eq!(status(&outs), st::INITIATOR_ERROR);
    assert_eq!(outs.last(), Some(&Output::Close));
}

#[test]
fn undecodable_first_pdu_is_invalid_during_login_then_close() {
    let mut c = Connection::new(cfg(), 0);
    let mut raw = [0u8; 48];
    raw[0] = 0x04; // Text Request with both F and C: no valid header
    raw[1] = 0xc0;
    raw[16..20].copy_from_slice(&7u32.to_be_bytes());
    let header = iscsi_wire::RawBhs(raw);
    c.handle_wire_error(
        iscsi_wire::WireError::InvalidField {
            header,
            what: "F and C",
        },
        1,
    );
    let outs = drain(&mut c);
    let r = login_resp(&sent(&outs)[0]);
    assert_eq!((r.status_class, r.status_detail, r.itt), (2, 0x0b, 7));
    assert_eq!(outs.last(), Some(&Output::Close));
}

/// Hostile CHAP answers through the whole login (docs/hostile-inputs.md rows C1-C7, C11):
/// every one fails with 0x0201 and closes the connection.
mod chap_hostile {
    use super::*;
    use crate::{
        AccessPolicy, AuthPolicy, ChapAlgorithm, ChapAuthenticator, ChapCredential,
        CHAP_RANDOM_BYTES,
    };
    use std::sync::Arc;

    const SECRET: &str = "alice-secret-1";

    /// CHAP with users "alice" and "0x616c" (a name that looks like hex), and a target
    /// credential for mutual CHAP.
    #[derive(Debug)]
    struct Policy;

    impl AccessPolicy for Policy {
        fn decide(&self, _initiator: &str, _target: Option<&str>) -> AuthPolicy {
            AuthPolicy::Chap {
                users: vec![
                    ChapCredential::new("alice", SECRET),
                    ChapCredential::new("0x616c", "hex-looking-name"),
                ],
                mutual: Some(ChapCredential::new("tgt", "target-secret-2")),
                algorithms: vec![],
            }
        }
    }

    fn hex(b: &[u8]) -> String {
        let mut s = "0x".to_string();
        for x in b {
            s.push_str(&format!("{x:02x}"));
        }
        s
    }

    fn unhex(s: &str) -> Vec<u8> {
        (2..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// A connection that has offered CHAP_A=`algs`; returns it with the chosen algorithm,
    /// CHAP_I and CHAP_C, or the failure status.
    fn challenged(algs: &str) -> Result<(Connection, ChapAlgorithm, u8, Vec<u8>), u16> {
        let auth = ChapAuthenticator::new(Arc::new(Policy), [7; CHAP_RANDOM_BYTES]);
        let mut c = Connection::with_authenticator(cfg(), 0, Box::new(auth));
        let first = kv(&[
            ("InitiatorName", INITIATOR),
            ("TargetName", TARGET),
            ("AuthMethod", "CHAP"),
        ]);
        c.handle_pdu(login_pdu(0, 1, true, false, first), 1);
        drain(&mut c);
        c.handle_pdu(login_pdu(0, 1, true, false, kv(&[("CHAP_A", algs)])), 2);
        let outs = drain(&mut c);
        let s = status(&outs);
        if s != 0 {
            assert_eq!(outs.last(), Some(&Output::Close));
            return Err(s);
        }
        let k = keys(&sent(&outs)[0].data);
        let code: u8 = key(&k, "CHAP_A").expect("CHAP_A").parse().expect("code");
        let alg = ChapAlgorithm::from_code(&code.to_string()).expect("known algorithm");
        let id = key(&k, "CHAP_I").expect("CHAP_I").parse().expect("id");
        Ok((c, alg, id, unhex(key(&k, "CHAP_C").expect("CHAP_C"))))
    }

    /// Send the answer keys; the login status (0 on success), checking that a failure closes.
    fn answer(c: &mut Connection, pairs: &[(&str, &str)]) -> u16 {
        c.handle_pdu(login_pdu(0, 1, true, false, kv(pairs)), 3);
        let outs = drain(c);
        let s = status(&outs);
        if s != 0 {
            assert_eq!(outs.last(), Some(&Output::Close), "a failure closes");
        }
        s
    }

    /// The correct CHAP_R as raw bytes.
    fn right(alg: ChapAlgorithm, id: u8, ch: &[u8]) -> Vec<u8> {
        alg.response(id, SECRET.as_bytes(), ch)
    }

    #[test]
    fn c1_hex_chap_r_of_the_wrong_length_or_not_hex() {
        let (mut c, alg, id, ch) = challenged("5").expect("challenge");
        let good = hex(&right(alg, id, &ch));
        let cases = [
            format!("{good}00"),
            good[..good.len() - 2].to_string(),
            good[..good.len() - 1].to_string(),
            format!("0x{}", "zz".repeat(16)),
            format!("0x{}", "g".repeat(32)),
        ];
        for (i, r) in cases.iter().enumerate() {
            if i > 0 {
                c = challenged("5").expect("challenge").0;
            }
            let s = answer(&mut c, &[("CHAP_N", "alice"), ("CHAP_R", r)]);
            assert_eq!(s, st::AUTH_FAILURE, "case {i}: {r}");
        }
        let (mut c, ..) = challenged("5").expect("challenge");
        assert_eq!(answer(&mut c, &[("CHAP_N", "alice"), ("CHAP_R", &good)]), 0);
    }

    #[test]
    fn c2_oversized_base64_chap_r() {
        let (mut c, ..) = challenged("5").expect("challenge");
        let r = format!("0b{}", "A".repeat(127));
        assert_eq!(
            answer(&mut c, &[("CHAP_N", "alice"), ("CHAP_R", &r)]),
            st::AUTH_FAILURE
        );
    }

    #[test]
    fn c3_unsupported_or_missing_chap_a() {
        for algs in ["56", "0", "5x", "", "1,2,3,4"] {
            assert_eq!(
                challenged(algs).err(),
                Some(st::AUTH_FAILURE),
                "CHAP_A={algs}"
            );
        }
        // No CHAP_A at all: straight to CHAP_N and CHAP_R.
        let auth = ChapAuthenticator::new(Arc::new(Policy), [7; CHAP_RANDOM_BYTES]);
        let mut c = Connection::with_authenticator(cfg(), 0, Box::new(auth));
        let first = kv(&[
            ("InitiatorName", INITIATOR),
            ("TargetName", TARGET),
            ("AuthMethod", "CHAP"),
        ]);
        c.handle_pdu(login_pdu(0, 1, true, false, first), 1);
        drain(&mut c);
        let r = format!("0x{}", "00".repeat(16));
        assert_eq!(
            answer(&mut c, &[("CHAP_N", "alice"), ("CHAP_R", &r)]),
            st::AUTH_FAILURE
        );
    }

    #[test]
    fn c4_c5_bad_mutual_identifier_or_challenge() {
        let big = format!("0x{}", "ab".repeat(1025));
        for (i, (ci, cc)) in [
            ("256", "0x0102030405060708"),
            ("-1", "0x0102030405060708"),
            ("one", "0x0102030405060708"),
            ("1", big.as_str()),
        ]
        .into_iter()
        .enumerate()
        {
            let (mut c, alg, id, ch) = challenged("5").expect("challenge");
            let r = hex(&right(alg, id, &ch));
            let s = answer(
                &mut c,
                &[
                    ("CHAP_N", "alice"),
                    ("CHAP_R", &r),
                    ("CHAP_I", ci),
                    ("CHAP_C", cc),
                ],
            );
            assert_eq!(s, st::AUTH_FAILURE, "case {i}");
        }
        // The target's own challenge reflected back.
        let (mut c, alg, id, ch) = challenged("5").expect("challenge");
        let r = hex(&right(alg, id, &ch));
        let reflected = hex(&ch);
        let s = answer(
            &mut c,
            &[
                ("CHAP_N", "alice"),
                ("CHAP_R", &r),
                ("CHAP_I", "9"),
                ("CHAP_C", &reflected),
            ],
        );
        assert_eq!(s, st::AUTH_FAILURE);
    }

    #[test]
    fn c6_chap_n_with_a_hex_prefix_is_a_plain_name() {
        let (mut c, alg, id, ch) = challenged("5").expect("challenge");
        let r = hex(&alg.response(id, b"hex-looking-name", &ch));
        assert_eq!(answer(&mut c, &[("CHAP_N", "0x616c"), ("CHAP_R", &r)]), 0);
        // Not decoded: "0x616c" is not "al", and "0b..." is no base64 name either.
        for name in ["al", "0X616C", "0bYWw="] {
            let (mut c, alg, id, ch) = challenged("5").expect("challenge");
            let r = hex(&alg.response(id, b"hex-looking-name", &ch));
            assert_eq!(
                answer(&mut c, &[("CHAP_N", name), ("CHAP_R", &r)]),
                st::AUTH_FAILURE,
                "{name}"
            );
        }
    }

    #[test]
    fn c7_unknown_user() {
        let (mut c, alg, id, ch) = challenged("5").expect("challenge");
        let r = hex(&right(alg, id, &ch));
        assert_eq!(
            answer(&mut c, &[("CHAP_N", "mallory"), ("CHAP_R", &r)]),
            st::AUTH_FAILURE
        );
        let (mut c, alg, id, ch) = challenged("5").expect("challenge");
        let r = hex(&right(alg, id, &ch));
        let long = "n".repeat(300);
        assert_eq!(
            answer(&mut c, &[("CHAP_N", &long), ("CHAP_R", &r)]),
            st::AUTH_FAILURE
        );
    }
}
