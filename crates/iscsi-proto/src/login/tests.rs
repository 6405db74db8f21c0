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
            st::INVALID_DURING_LOGIN,
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
    assert_eq!(status(&drain(&mut c)), st::INVALID_DURING_LOGIN);

    let mut c = Connection::new(cfg(), 0);
    c.handle_pdu(login_pdu(0, 0, false, false, first_keys()), 1);
    drain(&mut c);
    let mut p = login_pdu(0, 1, true, false, Vec::new());
    if let Bhs::LoginRequest(r) = &mut p.bhs {
        r.isid[5] = 9;
    }
    c.handle_pdu(p, 2);
    assert_eq!(status(&drain(&mut c)), st::INVALID_DURING_LOGIN);
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
fn non_login_pdu_during_login_closes() {
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
    assert_eq!(drain(&mut c), vec![Output::Close]);
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
