//! Two portals of one target against the real `ustgt` binary: each portal is a portal group of
//! its own (a SCSI target port), with its tag in SendTargets and at login, and the logical
//! unit reports implicit ALUA with one active/optimized target port group per port.

mod common;

use common::{parse_url, Server};
use ustgt_initiator::{cdb, LoginOptions, ScsiOutcome, ScsiRequest, Session};

/// A server on two loopback portals; returns it with the HOST:PORT of each.
fn two_portals() -> (Server, String, String) {
    let srv = Server::start(&[
        "--listen",
        "127.0.0.1:0",
        "--listen",
        "127.0.0.2:0",
        "ram:16M",
    ]);
    assert_eq!(srv.urls.len(), 2, "one URL per portal: {:?}", srv.urls);
    let a = parse_url(&srv.urls[0]).addr;
    let b = parse_url(&srv.urls[1]).addr;
    (srv, a, b)
}

fn login(addr: &str, iqn: &str) -> Session {
    let mut s = Session::login(addr, LoginOptions::normal(iqn)).expect("login");
    s.clear_unit_attention(0).expect("TEST UNIT READY");
    s
}

fn good(out: ScsiOutcome) -> Vec<u8> {
    assert!(out.good(), "command failed: {}", out.describe());
    out.data_in
}

/// The designators of a VPD 83h page: (byte 0, byte 1, designator).
fn designators(page: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 4;
    while at + 4 <= page.len() {
        let len = usize::from(page[at + 3]);
        out.push((page[at], page[at + 1], page[at + 4..at + 4 + len].to_vec()));
        at += 4 + len;
    }
    out
}

#[test]
fn each_portal_is_its_own_portal_group() {
    let (srv, a, b) = two_portals();
    let mut d = Session::login(&a, LoginOptions::discovery()).expect("discovery");
    let addresses: Vec<String> = d
        .send_targets("All")
        .expect("SendTargets")
        .into_iter()
        .filter(|(k, _)| k == "TargetAddress")
        .map(|(_, v)| v)
        .collect();
    assert!(addresses.contains(&format!("{a},1")), "{addresses:?}");
    assert!(addresses.contains(&format!("{b},2")), "{addresses:?}");
    for (addr, tag) in [(&a, "1"), (&b, "2")] {
        let s = login(addr, &srv.iqn());
        let keys = &s.negotiated.target_keys;
        assert!(
            keys.iter()
                .any(|(k, v)| k == "TargetPortalGroupTag" && v == tag),
            "{addr}: {keys:?}"
        );
    }
}

#[test]
fn the_logical_unit_reports_its_target_ports() {
    let (srv, a, b) = two_portals();
    for (addr, port) in [(&a, 1u8), (&b, 2u8)] {
        let mut s = login(addr, &srv.iqn());
        let standard = good(s.inquiry(0, 96).expect("INQUIRY"));
        assert_eq!(standard[5] & 0x30, 0x10, "TPGS: implicit ALUA");
        let c = cdb::inquiry(true, 0x83, 255);
        let page = good(s.scsi(ScsiRequest::read(0, &c, 255)).expect("VPD 83h"));
        let ids = designators(&page);
        // Relative target port (type 4h) and target port group (type 5h) of this port, with
        // the iSCSI protocol identifier and the target port association.
        for kind in [0x94u8, 0x95] {
            let found = ids.iter().find(|(_, b1, _)| *b1 == kind);
            assert_eq!(
                found,
                Some(&(0x51, kind, vec![0, 0, 0, port])),
                "{addr}: {ids:?}"
            );
        }
        let rtpg = [0xA3, 0x2A, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        let data = good(s.scsi(ScsiRequest::read(0, &rtpg, 256)).expect("RTPG"));
        assert_eq!(&data[..8], &[0, 0, 0, 28, 0x10, 0, 0, 0]);
        for (i, group) in data[8..].chunks(12).enumerate() {
            let n = i as u8 + 1;
            assert_eq!(group, &[0, 1, 0, n, 0, 0, 0, 1, 0, 0, 0, n], "group {n}");
        }
    }
}

#[test]
fn a_unit_attention_reaches_both_paths() {
    let (srv, a, b) = two_portals();
    let mut one = login(&a, &srv.iqn());
    let mut two = login(&b, &srv.iqn());
    let reset = one
        .task_mgmt(5, 0, 0xffff_ffff, one.cmd_sn())
        .expect("LUN RESET");
    assert_eq!(reset.response, 0);
    for s in [&mut one, &mut two] {
        let out = s.test_unit_ready(0).expect("TUR");
        let sense = out.sense.clone().expect("a unit attention");
        assert_eq!((sense.key, sense.asc, sense.ascq), (6, 0x29, 0x03));
        assert!(s.test_unit_ready(0).expect("TUR").good());
    }
}
