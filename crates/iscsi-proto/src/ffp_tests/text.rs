use std::sync::Arc;

use iscsi_wire::{Bhs, Pdu, TextRequest, TextResponse};

use crate::testutil::*;
use crate::{Catalog, Connection, TargetEntry};

fn discovery(catalog: Catalog, mrdsl: &str) -> Connection {
    let mut cfg = cfg();
    cfg.catalog = Arc::new(catalog);
    let mut c = Connection::new(cfg, 0);
    let data = kv(&[
        ("InitiatorName", INITIATOR),
        ("SessionType", "Discovery"),
        ("MaxRecvDataSegmentLength", mrdsl),
    ]);
    c.handle_pdu(login_pdu(1, 3, true, false, data), 1);
    drain(&mut c);
    c
}

fn text_req(itt: u32, ttt: u32, cmd_sn: u32, cont: bool, data: Vec<u8>) -> Pdu {
    Pdu::new(
        TextRequest {
            immediate: false,
            final_: !cont,
            cont,
            lun: 0,
            itt,
            ttt,
            cmd_sn,
            exp_stat_sn: 0,
        },
        data,
    )
}

fn text_resp(c: &mut Connection) -> (TextResponse, Vec<u8>) {
    let outs = drain(c);
    assert_eq!(outs.len(), 1, "{outs:?}");
    match &sent(&outs)[0] {
        Pdu {
            bhs: Bhs::TextResponse(r),
            data,
            ..
        } => (r.clone(), data.clone()),
        other => panic!("expected Text Response, got {other:?}"),
    }
}

#[test]
fn send_targets_all_in_discovery() {
    let mut c = discovery(catalog(), "8192");
    c.handle_pdu(
        text_req(
            1,
            0xffff_ffff,
            FIRST_CMD_SN,
            false,
            kv(&[("SendTargets", "All")]),
        ),
        10,
    );
    let (r, data) = text_resp(&mut c);
    assert!(r.final_ && !r.cont);
    assert_eq!(r.ttt, 0xffff_ffff);
    assert_eq!(r.itt, 1);
    assert_eq!(r.exp_cmd_sn, FIRST_CMD_SN + 1);
    let expected = kv(&[
        ("TargetName", TARGET),
        ("TargetAddress", "127.0.0.1:3260,1"),
        ("TargetAddress", "[::1]:3260,1"),
        ("TargetName", TARGET2),
        ("TargetAddress", "10.0.0.1:3260,1"),
    ]);
    assert_eq!(data, expected);
}

#[test]
fn send_targets_across_several_pdus() {
    let targets = (0..40)
        .map(|i| TargetEntry {
            name: format!("iqn.2024-01.org.ustgt:volume-number-{i:04}"),
            alias: None,
            portals: vec![format!("192.168.100.{i}:3260,1")],
        })
        .collect();
    let mut c = discovery(Catalog { targets }, "512");
    c.handle_pdu(
        text_req(
            7,
            0xffff_ffff,
            FIRST_CMD_SN,
            false,
            kv(&[("SendTargets", "All")]),
        ),
        10,
    );
    let mut all = Vec::new();
    let mut sn = FIRST_CMD_SN + 1;
    let mut pdus = 0;
    loop {
        let (r, data) = text_resp(&mut c);
        pdus += 1;
        assert!(data.len() <= 512);
        all.extend(data);
        if r.final_ {
            assert!(!r.cont);
            assert_eq!(r.ttt, 0xffff_ffff);
            break;
        }
        assert!(r.cont);
        assert_ne!(r.ttt, 0xffff_ffff);
        c.handle_pdu(text_req(7, r.ttt, sn, false, Vec::new()), 11);
        sn += 1;
    }
    assert!(pdus > 3, "{pdus}");
    let k = keys(&all);
    assert_eq!(k.len(), 80);
    assert_eq!(
        k[79],
        (
            "TargetAddress".to_string(),
            "192.168.100.39:3260,1".to_string()
        )
    );
}

#[test]
fn send_targets_named_and_unknown() {
    let mut c = discovery(catalog(), "8192");
    c.handle_pdu(
        text_req(
            1,
            0xffff_ffff,
            FIRST_CMD_SN,
            false,
            kv(&[("SendTargets", TARGET2)]),
        ),
        10,
    );
    let (_, data) = text_resp(&mut c);
    assert_eq!(
        data,
        kv(&[
            ("TargetName", TARGET2),
            ("TargetAddress", "10.0.0.1:3260,1")
        ])
    );
    c.handle_pdu(
        text_req(
            2,
            0xffff_ffff,
            FIRST_CMD_SN + 1,
            false,
            kv(&[("SendTargets", "iqn.x:none")]),
        ),
        10,
    );
    let (r, data) = text_resp(&mut c);
    assert!(r.final_);
    assert!(data.is_empty());
}

#[test]
fn send_targets_in_normal_session_is_the_session_target() {
    let mut c = logged_in();
    for (i, v) in ["", "All"].iter().enumerate() {
        c.handle_pdu(
            text_req(
                1 + i as u32,
                0xffff_ffff,
                FIRST_CMD_SN + i as u32,
                false,
                kv(&[("SendTargets", v)]),
            ),
            10,
        );
        let (_, data) = text_resp(&mut c);
        let k = keys(&data);
        assert_eq!(key(&k, "TargetName"), Some(TARGET));
        assert_eq!(k.iter().filter(|(k, _)| k == "TargetName").count(), 1);
    }
}

#[test]
fn initiator_text_continuation() {
    let mut c = discovery(catalog(), "8192");
    let req = kv(&[("SendTargets", "All")]);
    let (a, b) = req.split_at(5);
    c.handle_pdu(text_req(3, 0xffff_ffff, FIRST_CMD_SN, true, a.to_vec()), 10);
    let (r, data) = text_resp(&mut c);
    assert!(data.is_empty() && !r.final_);
    assert_ne!(r.ttt, 0xffff_ffff);
    c.handle_pdu(text_req(3, r.ttt, FIRST_CMD_SN + 1, false, b.to_vec()), 10);
    let (r, data) = text_resp(&mut c);
    assert!(r.final_);
    assert_eq!(key(&keys(&data), "TargetName"), Some(TARGET));
}

#[test]
fn ffp_negotiation_keys() {
    let mut c = logged_in();
    let data = kv(&[
        ("MaxRecvDataSegmentLength", "16384"),
        ("MaxBurstLength", "4096"),
        ("X-vendor.Key", "1"),
    ]);
    c.handle_pdu(text_req(1, 0xffff_ffff, FIRST_CMD_SN, false, data), 10);
    let (_, data) = text_resp(&mut c);
    let k = keys(&data);
    assert_eq!(
        key(&k, "MaxRecvDataSegmentLength"),
        None,
        "declarative: no answer"
    );
    assert_eq!(key(&k, "MaxBurstLength"), Some("Reject"), "login-only key");
    assert_eq!(key(&k, "X-vendor.Key"), Some("NotUnderstood"));
    assert_eq!(c.params().initiator_mrdsl, 16384);
}

#[test]
fn bad_text_ttt_rejected() {
    let mut c = discovery(catalog(), "8192");
    c.handle_pdu(text_req(3, 0x1234, FIRST_CMD_SN, false, Vec::new()), 10);
    let outs = drain(&mut c);
    let Bhs::Reject(r) = &sent(&outs)[0].bhs else {
        panic!("{outs:?}")
    };
    assert_eq!(r.reason, 0x09);
}

#[test]
fn discovery_rejects_scsi_commands() {
    let mut c = discovery(catalog(), "8192");
    c.handle_pdu(tur(1, FIRST_CMD_SN), 10);
    let outs = drain(&mut c);
    let Bhs::Reject(r) = &sent(&outs)[0].bhs else {
        panic!("{outs:?}")
    };
    assert_eq!(r.reason, 0x04);
}

/// Discovery through an access policy: TARGET is open to INITIATOR, TARGET2 denied.
#[derive(Debug)]
struct OnlyFirst;

impl crate::AccessPolicy for OnlyFirst {
    fn decide(&self, _initiator: &str, target: Option<&str>) -> crate::AuthPolicy {
        match target {
            Some(TARGET2) => crate::AuthPolicy::Deny,
            _ => crate::AuthPolicy::Open,
        }
    }
}

#[test]
fn send_targets_lists_only_targets_the_initiator_may_use() {
    let mut cfg = cfg();
    cfg.catalog = Arc::new(catalog());
    let auth = crate::ChapAuthenticator::new(Arc::new(OnlyFirst), [0; crate::CHAP_RANDOM_BYTES]);
    let mut c = Connection::with_authenticator(cfg, 0, Box::new(auth));
    let data = kv(&[("InitiatorName", INITIATOR), ("SessionType", "Discovery")]);
    c.handle_pdu(login_pdu(1, 3, true, false, data), 1);
    drain(&mut c);
    let all = kv(&[("SendTargets", "All")]);
    c.handle_pdu(text_req(1, 0xffff_ffff, FIRST_CMD_SN, false, all), 10);
    let (_, data) = text_resp(&mut c);
    let names: Vec<String> = keys(&data)
        .into_iter()
        .filter(|(k, _)| k == "TargetName")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(names, vec![TARGET.to_string()]);
    let named = kv(&[("SendTargets", TARGET2)]);
    c.handle_pdu(text_req(2, 0xffff_ffff, FIRST_CMD_SN + 1, false, named), 11);
    let (_, data) = text_resp(&mut c);
    assert!(
        data.is_empty(),
        "a denied target is not revealed by name either"
    );
}

#[test]
fn discovery_allows_only_text_and_logout() {
    for pdu in [
        nop_out(1, 0xffff_ffff, FIRST_CMD_SN, true, vec![]),
        data_out(1, 0xffff_ffff, 0, 0, true, vec![0; 4]),
        Pdu::new(
            iscsi_wire::LogoutRequest {
                immediate: true,
                reason: 1,
                itt: 1,
                cmd_sn: FIRST_CMD_SN,
                ..Default::default()
            },
            vec![],
        ),
    ] {
        let mut c = discovery(catalog(), "8192");
        c.handle_pdu(pdu, 10);
        let outs = drain(&mut c);
        let Bhs::Reject(r) = &sent(&outs)[0].bhs else {
            panic!("{outs:?}")
        };
        assert_eq!(r.reason, 0x04);
        assert_eq!(outs.last(), Some(&crate::Output::Close));
    }
}

#[test]
fn itt_change_inside_a_text_sequence_is_a_protocol_error() {
    let mut c = discovery(catalog(), "8192");
    let req = kv(&[("SendTargets", "All")]);
    let (a, b) = req.split_at(5);
    c.handle_pdu(text_req(3, 0xffff_ffff, FIRST_CMD_SN, true, a.to_vec()), 10);
    let (r, _) = text_resp(&mut c);
    c.handle_pdu(text_req(4, r.ttt, FIRST_CMD_SN + 1, false, b.to_vec()), 10);
    let outs = drain(&mut c);
    let Bhs::Reject(rj) = &sent(&outs)[0].bhs else {
        panic!("{outs:?}")
    };
    assert_eq!(rj.reason, 0x04);
    // A fresh exchange still works.
    c.handle_pdu(text_req(5, 0xffff_ffff, FIRST_CMD_SN + 2, false, req), 10);
    let (r, data) = text_resp(&mut c);
    assert!(r.final_);
    assert_eq!(key(&keys(&data), "TargetName"), Some(TARGET));
}

#[test]
fn text_without_its_final_nul_is_rejected() {
    let mut c = discovery(catalog(), "8192");
    let data = b"SendTargets=All".to_vec();
    c.handle_pdu(text_req(3, 0xffff_ffff, FIRST_CMD_SN, false, data), 10);
    let outs = drain(&mut c);
    let Bhs::Reject(rj) = &sent(&outs)[0].bhs else {
        panic!("{outs:?}")
    };
    assert_eq!(rj.reason, 0x04);
    assert!(!c.is_closed());
}
