//! Hostile inputs, login and text negotiation (docs/hostile-inputs.md section 2.2, rows
//! L1-L14) and CHAP (section 2.3, rows C1-C11), against the real server. Every test sends the hostile input, checks the answer
//! the catalogue calls for, and ends with a fresh session doing a WRITE and READ round trip.
//!
//! | row | test(s) |
//! | --- | --- |
//! | L1  | `l1_text_without_equals_nul_or_key_is_login_reject_0x0200`, `l1_malformed_text_request_is_rejected_0x04` |
//! | L2  | `l2_key_over_63_chars_or_not_capitalised_is_login_reject_0x0200` |
//! | L3  | `l3_value_over_255_bytes_is_answered_reject` |
//! | L4  | `l4_key_declared_twice_is_login_reject_0x0200` |
//! | L5  | `l5_numbers_out_of_range_are_rejected_or_clamped` |
//! | L6  | `l6_send_targets_answer_is_split_at_a_512_byte_mrdsl` (also protocol.rs `send_targets_answer_spans_several_text_pdus`) |
//! | L7  | `l7_huge_lengths_are_negotiated_down_and_memory_stays_bounded` |
//! | L8  | `l8_text_c_and_f_together_is_rejected_0x09`, `l8_itt_change_inside_a_text_sequence_is_rejected_0x04`, `l8_empty_text_with_c_is_accepted` |
//! | L9  | `l9_bad_send_targets_variants_fail_and_send_targets_all_still_works` |
//! | L10 | `l10_bad_flags_stages_and_version_are_login_rejects` |
//! | L11 | `l11_tsih_of_no_session_is_login_reject_0x020a` |
//! | L12 | `l12_reinstatement_fences_old_writes_and_reports_nexus_loss` (also protocol.rs `session_reinstatement_closes_the_old_connection`) |
//! | L13 | `l13_non_text_pdus_on_a_discovery_session_are_rejected_0x04_then_closed` |
//! | L14 | `l14_a_flood_of_half_open_logins_is_capped_and_harms_no_session` (per-host cap: hostile_framing.rs `f2_half_open_logins_are_capped_per_host_and_timed_out`) |
//! | C1  | `c1_chap_r_of_the_wrong_length_odd_or_not_hex_is_0x0201`; iscsi-proto login tests `chap_hostile::c1_*` |
//! | C2  | `c2_oversized_base64_chap_r_is_0x0201`; `chap_hostile::c2_*` |
//! | C3  | `c3_unsupported_odd_or_missing_chap_a_is_0x0201`; `chap_hostile::c3_*` |
//! | C4  | `c4_bad_chap_i_is_0x0201`; `chap_hostile::c4_c5_*` |
//! | C5  | `c5_oversized_or_reflected_chap_c_is_0x0201_then_closed`; `chap_hostile::c4_c5_*` |
//! | C6  | `c6_chap_n_with_a_prefix_is_a_plain_string`; `chap_hostile::c6_*` |
//! | C7  | `c7_unknown_chap_n_is_0x0201`; `chap_hostile::c7_*` |
//! | C8  | `c8_challenges_never_repeat_and_a_replayed_answer_fails` (also auth.rs `challenges_never_repeat`) |
//! | C9  | `c9_discovery_without_credentials_and_mutual_mismatch_are_refused` (the whole none / one-way / mutual matrix: auth.rs `policy_matrix`) |
//! | C10 | not timed: a network round trip hides a byte compare; chap.rs compares with `constant_time_eq` and checks unknown users against a dummy secret (C7 shows the same answer) |
//! | C11 | `c11_skipping_the_security_stage_or_auth_none_is_0x0201`; iscsi-proto login test `chap_login::skipping_the_security_stage_is_refused_when_chap_is_required` |

mod common;

use std::time::Duration;

use common::raw::*;
use common::Server;
use ustgt_initiator::wire::{Bhs, LogoutRequest, NopOut, Pdu, ScsiCommand, TextRequest};
use ustgt_initiator::{chap_response, Chap, LoginOptions, RawPdu, ScsiRequest, Session};

/// A new ISID.
fn fresh_isid() -> [u8; 6] {
    LoginOptions::normal("x").isid
}

/// Log in on a raw connection with `first` as the whole text of the only security request,
/// expecting a login reject with this status.
fn first_request_fails(srv: &Server, first: Vec<u8>, class: u8, detail: u8) {
    let mut c = connect(srv);
    expect_login_reject(
        &mut c,
        login_req(fresh_isid(), 0, 1, true, false),
        first,
        class,
        detail,
    );
}

/// A Text Request (non-immediate, taking the next CmdSN).
fn text_req(s: &mut Session, itt: u32, ttt: u32, final_: bool, cont: bool) -> TextRequest {
    TextRequest {
        immediate: false,
        final_,
        cont,
        lun: 0,
        itt,
        ttt,
        cmd_sn: s.take_cmd_sn(),
        exp_stat_sn: s.exp_stat_sn(),
    }
}

/// The Text Response to `itt`.
fn text_response(s: &mut Session, itt: u32) -> (ustgt_initiator::wire::TextResponse, Vec<u8>) {
    let pdu = next(s, "a Text Response");
    match pdu.bhs {
        Bhs::TextResponse(r) if r.itt == itt => (r, pdu.data),
        other => panic!("expected the Text Response to {itt:#x}, got {other:?}"),
    }
}

#[test]
fn l1_text_without_equals_nul_or_key_is_login_reject_0x0200() {
    let mut srv = start();
    let iqn = srv.iqn();
    let mut no_equals = identity(&iqn);
    no_equals.extend_from_slice(b"HeaderDigest\0");
    let mut no_nul = identity(&iqn);
    no_nul.pop();
    let mut empty_key = identity(&iqn);
    empty_key.extend_from_slice(b"=None\0");
    for bad in [no_equals, no_nul, empty_key] {
        first_request_fails(&srv, bad, 0x02, 0x00);
    }
    fresh_round_trip(&mut srv);
}

#[test]
fn l1_malformed_text_request_is_rejected_0x04() {
    let mut srv = start();
    let mut s = login(&srv, LoginOptions::discovery());
    for bad in [&b"SendTargets\0"[..], b"SendTargets=All", b"=All\0"] {
        let itt = s.alloc_itt();
        let req = text_req(&mut s, itt, 0xffff_ffff, true, false);
        s.send_pdu(&Pdu::new(req, bad.to_vec())).expect("send");
        let quoted = expect_reject(&mut s, 0x04);
        assert_eq!(quoted.itt(), itt);
    }
    let pairs = s.send_targets("All").expect("SendTargets=All");
    assert!(pairs
        .iter()
        .any(|(k, v)| k == "TargetName" && *v == srv.iqn()));
    fresh_round_trip(&mut srv);
}

#[test]
fn l2_key_over_63_chars_or_not_capitalised_is_login_reject_0x0200() {
    let mut srv = start();
    let iqn = srv.iqn();
    let mut long = identity(&iqn);
    long.extend_from_slice(format!("{}=1\0", "K".repeat(64)).as_bytes());
    let mut lower = identity(&iqn);
    lower.extend_from_slice(b"headerDigest=None\0");
    let mut digit = identity(&iqn);
    digit.extend_from_slice(b"1Key=x\0");
    for bad in [long, lower, digit] {
        first_request_fails(&srv, bad, 0x02, 0x00);
    }
    // 63 characters is a valid (unknown) key.
    let mut s = login(&srv, normal(&srv).key(&"K".repeat(63), "1"));
    let answer = s
        .negotiated
        .target_keys
        .iter()
        .find(|(k, _)| k.len() == 63)
        .cloned();
    assert_eq!(answer.map(|(_, v)| v), Some("NotUnderstood".to_string()));
    ok(&s.test_unit_ready(0).expect("TUR"));
    fresh_round_trip(&mut srv);
}

#[test]
fn l3_value_over_255_bytes_is_answered_reject() {
    let mut srv = start();
    let alias = "a".repeat(300);
    let digits = "9".repeat(300);
    let opts = normal(&srv)
        .key("InitiatorAlias", &alias)
        .key("MaxBurstLength", &digits);
    let mut s = login(&srv, opts);
    let answered = |k: &str| {
        s.negotiated
            .target_keys
            .iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(answered("InitiatorAlias").as_deref(), Some("Reject"));
    assert_eq!(answered("MaxBurstLength").as_deref(), Some("Reject"));
    let data = pattern(3, 4096);
    write(&mut s, 40, &data);
    read_back(&mut s, 40, &data);
    // An InitiatorName longer than any iSCSI name is refused with it, so none is given.
    let long_name = format!("iqn.2026-11.io.ustgt:{}", "n".repeat(300));
    let mut opts = normal(&srv);
    opts.initiator_name = long_name;
    let res = Session::login(srv.addr().as_str(), opts);
    expect_login_status(res, 0x02, 0x07);
    fresh_round_trip(&mut srv);
}

#[test]
fn l4_key_declared_twice_is_login_reject_0x0200() {
    let mut srv = start();
    let iqn = srv.iqn();
    let mut twice = identity(&iqn);
    twice.extend_from_slice(&text(&[("InitiatorName", "iqn.2026-11.io.ustgt:other")]));
    first_request_fails(&srv, twice, 0x02, 0x00);
    let mut same = identity(&iqn);
    same.extend_from_slice(&text(&[("SessionType", "Normal")]));
    first_request_fails(&srv, same, 0x02, 0x00);
    // An operational key twice in one request.
    let mut c = connect(&srv);
    let isid = fresh_isid();
    let (r, _) = login_exchange(&mut c, login_req(isid, 0, 1, true, false), identity(&iqn));
    assert!(r.transit && r.status_class == 0, "{r:?}");
    let op = text(&[("MaxBurstLength", "8192"), ("MaxBurstLength", "16384")]);
    let mut req = login_req(isid, 1, 3, true, false);
    req.exp_stat_sn = r.stat_sn.wrapping_add(1);
    expect_login_reject(&mut c, req, op, 0x02, 0x00);
    fresh_round_trip(&mut srv);
}

#[test]
fn l5_numbers_out_of_range_are_rejected_or_clamped() {
    let mut srv = start();
    for mrdsl in ["0", "511", "16777216", "99999999999999999999"] {
        let opts = normal(&srv).key("MaxRecvDataSegmentLength", mrdsl);
        let mut s = Session::login(srv.addr().as_str(), opts).expect("login");
        // Our decoder would take the refused value; the target keeps the default (8192).
        s.connection().set_max_recv(1 << 20);
        s.clear_unit_attention(0).expect("TUR");
        // Besides its own declaration, the target answers ours with Reject.
        assert!(
            s.negotiated
                .target_keys
                .iter()
                .any(|(k, v)| k == "MaxRecvDataSegmentLength" && v == "Reject"),
            "MaxRecvDataSegmentLength={mrdsl}: {:?}",
            s.negotiated.target_keys
        );
        // The default (8192) stays in force: Data-In segments are at most 8192 bytes.
        let data = pattern(5, 32 * 1024);
        write(&mut s, 64, &data);
        let out = s.read16(0, 64, 64, BS).expect("READ");
        ok(&out);
        assert_eq!(out.data_in, data);
        for p in &out.received {
            assert!(p.data_len <= 8192, "segment of {} bytes", p.data_len);
        }
    }
    // FirstBurstLength above MaxBurstLength is clamped to it.
    let opts = normal(&srv)
        .key("MaxBurstLength", "4096")
        .key("FirstBurstLength", "65536")
        .key("InitialR2T", "No");
    let mut s = login(&srv, opts);
    assert_eq!(s.negotiated.max_burst_length, 4096);
    assert_eq!(
        s.negotiated.first_burst_length, 4096,
        "{:?}",
        s.negotiated.target_keys
    );
    let data = pattern(6, 32 * 1024);
    write(&mut s, 128, &data);
    read_back(&mut s, 128, &data);
    fresh_round_trip(&mut srv);
}

#[test]
fn l6_send_targets_answer_is_split_at_a_512_byte_mrdsl() {
    let names: Vec<String> = (0..10)
        .map(|i| format!("iqn.2026-11.io.ustgt:hostile-discovery-target-with-a-long-name-{i:02}"))
        .collect();
    let mut toml = String::from("[server]\nlisten = [\"127.0.0.1:0\"]\n");
    for n in &names {
        toml += &format!(
            "\n[[target]]\niqn = \"{n}\"\n[[target.lun]]\nstore = \"ram\"\nsize = \"16M\"\n"
        );
    }
    let mut srv = Server::with_config("hostile-l6", &toml);
    let mut s = login(
        &srv,
        LoginOptions::discovery().key("MaxRecvDataSegmentLength", "512"),
    );
    let ex = s
        .text_exchange(&[("SendTargets".into(), "All".into())])
        .expect("SendTargets");
    assert!(ex.responses.len() >= 2, "{:#?}", ex.responses);
    for (r, len) in &ex.responses {
        assert!(*len <= 512, "{len} bytes in one Text Response: {r:?}");
    }
    for n in &names {
        assert!(
            ex.pairs.iter().any(|(k, v)| k == "TargetName" && v == n),
            "{n} missing"
        );
    }
    fresh_round_trip(&mut srv);
}

#[test]
fn l7_huge_lengths_are_negotiated_down_and_memory_stays_bounded() {
    let mut srv = start();
    let huge = "16777215";
    let opts = normal(&srv)
        .key("MaxRecvDataSegmentLength", huge)
        .key("MaxBurstLength", huge)
        .key("FirstBurstLength", huge)
        .key("InitialR2T", "No");
    let mut s = login(&srv, opts);
    let n = s.negotiated.clone();
    assert!(
        n.max_burst_length <= 1 << 20,
        "MaxBurstLength {}",
        n.max_burst_length
    );
    assert!(
        n.first_burst_length <= 64 << 10,
        "FirstBurstLength {}",
        n.first_burst_length
    );
    let data = pattern(7, 2 << 20);
    write(&mut s, 2048, &data);
    read_back(&mut s, 2048, &data);
    // A write claiming almost 4 GiB, whose data never comes: nothing is allocated for it.
    let before = rss_kib(&srv);
    let mut cmd = command(&mut s, &write16(0, 0x007f_ffff), false, true, 0xffff_fe00);
    cmd.final_ = true;
    s.send_pdu(&Pdu::new(cmd, Vec::new())).expect("send");
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kib(&srv);
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    drop(s);
    fresh_round_trip(&mut srv);
}

#[test]
fn l8_text_c_and_f_together_is_rejected_0x09() {
    let mut srv = start();
    let mut s = login(&srv, LoginOptions::discovery());
    let itt = s.alloc_itt();
    let req = text_req(&mut s, itt, 0xffff_ffff, true, false);
    let raw = RawPdu::from_pdu(&Pdu::new(req, text(&[("SendTargets", "All")]))).or_byte(1, 0x40);
    s.send_raw_pdu(&raw).expect("send");
    let quoted = expect_reject(&mut s, 0x09);
    assert_eq!(quoted.0, raw.header());
    assert!(!s.send_targets("All").expect("SendTargets").is_empty());
    fresh_round_trip(&mut srv);
}

#[test]
fn l8_itt_change_inside_a_text_sequence_is_rejected_0x04() {
    let mut srv = start();
    let mut s = login(&srv, LoginOptions::discovery());
    let all = text(&[("SendTargets", "All")]);
    let (a, b) = all.split_at(6);
    let itt = s.alloc_itt();
    let req = text_req(&mut s, itt, 0xffff_ffff, false, true);
    s.send_pdu(&Pdu::new(req, a.to_vec())).expect("send");
    let (r, data) = text_response(&mut s, itt);
    assert!(
        data.is_empty() && !r.final_ && r.ttt != 0xffff_ffff,
        "{r:?}"
    );
    let other = s.alloc_itt();
    let req = text_req(&mut s, other, r.ttt, true, false);
    s.send_pdu(&Pdu::new(req, b.to_vec())).expect("send");
    let quoted = expect_reject(&mut s, 0x04);
    assert_eq!(quoted.itt(), other);
    assert!(!s.send_targets("All").expect("SendTargets").is_empty());
    fresh_round_trip(&mut srv);
}

#[test]
fn l8_empty_text_with_c_is_accepted() {
    let mut srv = start();
    let mut s = login(&srv, LoginOptions::discovery());
    let itt = s.alloc_itt();
    let req = text_req(&mut s, itt, 0xffff_ffff, false, true);
    s.send_pdu(&Pdu::new(req, Vec::new())).expect("send");
    let (r, data) = text_response(&mut s, itt);
    assert!(
        data.is_empty() && !r.final_ && r.ttt != 0xffff_ffff,
        "{r:?}"
    );
    let req = text_req(&mut s, itt, r.ttt, true, false);
    s.send_pdu(&Pdu::new(req, text(&[("SendTargets", "All")])))
        .expect("send");
    let (r, data) = text_response(&mut s, itt);
    assert!(r.final_ && !r.cont, "{r:?}");
    let pairs = ustgt_initiator::wire::parse_text(&data).expect("text");
    assert!(pairs
        .iter()
        .any(|(k, v)| k == "TargetName" && *v == srv.iqn()));
    fresh_round_trip(&mut srv);
}

#[test]
fn l9_bad_send_targets_variants_fail_and_send_targets_all_still_works() {
    let mut srv = start();
    let mut s = login(&srv, LoginOptions::discovery());
    let ex = s
        .text_exchange(&[("SendTargetsPlease".into(), "All".into())])
        .expect("text");
    assert_eq!(
        ex.pairs,
        vec![("SendTargetsPlease".to_string(), "NotUnderstood".to_string())]
    );
    let ex = s
        .text_exchange(&[("SendTargets".into(), "Alle".into())])
        .expect("text");
    assert!(
        ex.pairs.is_empty(),
        "no target is named Alle: {:?}",
        ex.pairs
    );
    let itt = s.alloc_itt();
    let req = text_req(&mut s, itt, 0xffff_ffff, true, false);
    s.send_pdu(&Pdu::new(req, b"sENDtARGETS=aLL\0".to_vec()))
        .expect("send");
    expect_reject(&mut s, 0x04);
    let pairs = s.send_targets("All").expect("SendTargets=All");
    assert!(pairs
        .iter()
        .any(|(k, v)| k == "TargetName" && *v == srv.iqn()));
    fresh_round_trip(&mut srv);
}

#[test]
fn l10_bad_flags_stages_and_version_are_login_rejects() {
    let mut srv = start();
    let iqn = srv.iqn();
    let isid = fresh_isid();
    // C=1 with T=1.
    let mut c = connect(&srv);
    let mut req = login_req(isid, 0, 1, true, false);
    req.cont = true;
    expect_login_reject(&mut c, req, identity(&iqn), 0x02, 0x00);
    // NSG 2 (reserved).
    let mut c = connect(&srv);
    expect_login_reject(
        &mut c,
        login_req(isid, 0, 2, true, false),
        identity(&iqn),
        0x02,
        0x00,
    );
    // Version-min above what the target supports.
    let mut c = connect(&srv);
    let mut req = login_req(isid, 0, 1, true, false);
    req.version_min = 1;
    req.version_max = 1;
    expect_login_reject(&mut c, req, identity(&iqn), 0x02, 0x05);
    // Back from the operational stage to the security stage.
    let mut c = connect(&srv);
    let (r, _) = login_exchange(&mut c, login_req(isid, 0, 1, true, false), identity(&iqn));
    assert!(r.transit && r.nsg == 1, "{r:?}");
    let mut req = login_req(isid, 0, 1, true, false);
    req.exp_stat_sn = r.stat_sn.wrapping_add(1);
    expect_login_reject(&mut c, req, Vec::new(), 0x02, 0x00);
    fresh_round_trip(&mut srv);
}

#[test]
fn l11_tsih_of_no_session_is_login_reject_0x020a() {
    let mut srv = start();
    let mut opts = normal(&srv);
    opts.tsih = 0x4242;
    let res = Session::login(srv.addr().as_str(), opts);
    expect_login_status(res, 0x02, 0x0a);
    fresh_round_trip(&mut srv);
}

#[test]
fn l12_reinstatement_fences_old_writes_and_reports_nexus_loss() {
    let mut srv = start_with(&["--workers", "2", "ram:16M,inject-delay-ms=300"]);
    let lba = 500;
    let mut a = login(&srv, normal(&srv));
    // Three writes queue behind each other in the old session's store; the last one writes
    // the LBA the new session will write.
    let stale = pattern(12, 4096);
    for (i, l) in [(0u32, 600u64), (1, 700), (2, lba)] {
        let data = if l == lba {
            stale.clone()
        } else {
            pattern(20 + i, 4096)
        };
        a.submit(ScsiRequest::write(0, &write16(l, 8), data))
            .expect("submit");
    }
    std::thread::sleep(Duration::from_millis(50));
    let mut opts = normal(&srv);
    opts.isid = a.isid;
    let mut b = Session::login(srv.addr().as_str(), opts).expect("reinstatement login");
    b.timeout = Duration::from_secs(10);
    let first = b.test_unit_ready(0).expect("TUR");
    sense(&first, 0x06, 0x29, 0x07);
    ok(&b.test_unit_ready(0).expect("TUR"));
    let fresh = pattern(13, 4096);
    write(&mut b, lba, &fresh);
    read_back(&mut b, lba, &fresh);
    let _ = a.wait_closed(Duration::from_secs(5));
    // Long after every old write could have landed, the new data is still there.
    std::thread::sleep(Duration::from_millis(1500));
    read_back(&mut b, lba, &fresh);
    drop(b);
    fresh_round_trip(&mut srv);
}

#[test]
fn l13_non_text_pdus_on_a_discovery_session_are_rejected_0x04_then_closed() {
    let mut srv = start();
    for kind in [
        "SCSI Command",
        "NOP-Out",
        "TMF",
        "Data-Out",
        "Logout reason 1",
    ] {
        let mut s = login(&srv, LoginOptions::discovery());
        let itt = s.alloc_itt();
        let (cmd_sn, exp) = (s.cmd_sn(), s.exp_stat_sn());
        let bhs: Bhs = match kind {
            "SCSI Command" => ScsiCommand {
                final_: true,
                attr: 1,
                itt,
                cmd_sn,
                exp_stat_sn: exp,
                ..ScsiCommand::default()
            }
            .into(),
            "NOP-Out" => NopOut {
                immediate: true,
                itt,
                ttt: 0xffff_ffff,
                cmd_sn,
                exp_stat_sn: exp,
                ..NopOut::default()
            }
            .into(),
            "TMF" => ustgt_initiator::wire::TaskMgmtRequest {
                immediate: true,
                function: 6,
                itt,
                ref_task_tag: 0xffff_ffff,
                cmd_sn,
                exp_stat_sn: exp,
                ..Default::default()
            }
            .into(),
            "Data-Out" => ustgt_initiator::wire::DataOut {
                final_: true,
                itt,
                ttt: 0xffff_ffff,
                exp_stat_sn: exp,
                ..Default::default()
            }
            .into(),
            _ => LogoutRequest {
                immediate: true,
                reason: 1,
                itt,
                cid: 0,
                cmd_sn,
                exp_stat_sn: exp,
            }
            .into(),
        };
        s.send_pdu(&Pdu::new(bhs, Vec::new())).expect("send");
        let seen = expect_closed(&mut s);
        assert_eq!(seen.len(), 1, "{kind}: one Reject, then close: {seen:?}");
        let quoted = reject_of(&seen[0], 0x04);
        assert_eq!(quoted.itt(), itt, "{kind}");
    }
    fresh_round_trip(&mut srv);
}

// ----- CHAP (section 2.3, rows C1-C11) ----------------------------------------------------

const SECRET: &str = "hostile-secret-123";
const TARGET_SECRET: &str = "target-secret-4567";

/// A server whose target wants CHAP as "alice" (and "0x616c", a name that looks like hex),
/// with a target credential for mutual CHAP.
fn start_chap() -> Server {
    start_with(&[
        "--chap",
        &format!("alice:{SECRET}"),
        "--chap",
        "0x616c:hex-looking-name-1",
        "--mutual-chap",
        &format!("tgt:{TARGET_SECRET}"),
        "ram:16M",
    ])
}

fn chap_opts(srv: &Server) -> LoginOptions {
    normal(srv).chap(Chap::new("alice", SECRET))
}

/// A raw login that offered CHAP and CHAP_A and got a challenge.
struct Challenged {
    c: ustgt_initiator::Connection,
    isid: [u8; 6],
    exp_stat_sn: u32,
    alg: u8,
    id: u8,
    challenge: Vec<u8>,
}

fn key_of<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(kk, _)| kk == k)
        .map(|(_, v)| v.as_str())
}

fn unhex(s: &str) -> Vec<u8> {
    (2..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    let mut s = "0x".to_string();
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// Log in up to the target's challenge; `Err` with the login status when CHAP_A is refused.
fn challenge(srv: &Server, chap_a: Option<&str>) -> Result<Challenged, (u8, u8)> {
    let mut c = connect(srv);
    let isid = fresh_isid();
    let (r, data) = login_exchange(
        &mut c,
        login_req(isid, 0, 1, true, false),
        identity_with(&srv.iqn(), "CHAP"),
    );
    let keys = ustgt_initiator::wire::parse_text(&data).expect("text");
    assert_eq!((r.status_class, r.transit), (0, false), "{r:?}");
    assert_eq!(key_of(&keys, "AuthMethod"), Some("CHAP"));
    let mut ch = Challenged {
        c,
        isid,
        exp_stat_sn: r.stat_sn.wrapping_add(1),
        alg: 0,
        id: 0,
        challenge: Vec::new(),
    };
    let Some(algs) = chap_a else {
        return Ok(ch);
    };
    let mut req = login_req(isid, 0, 1, true, false);
    req.exp_stat_sn = ch.exp_stat_sn;
    let (r, data) = login_exchange(&mut ch.c, req, text(&[("CHAP_A", algs)]));
    if r.status_class != 0 {
        assert!(data.is_empty());
        let after = expect_conn_closed(&mut ch.c, WAIT);
        assert!(after.is_empty(), "{after:?}");
        return Err((r.status_class, r.status_detail));
    }
    let keys = ustgt_initiator::wire::parse_text(&data).expect("text");
    ch.exp_stat_sn = r.stat_sn.wrapping_add(1);
    ch.alg = key_of(&keys, "CHAP_A")
        .expect("CHAP_A")
        .parse()
        .expect("code");
    ch.id = key_of(&keys, "CHAP_I")
        .expect("CHAP_I")
        .parse()
        .expect("id");
    ch.challenge = unhex(key_of(&keys, "CHAP_C").expect("CHAP_C"));
    Ok(ch)
}

impl Challenged {
    /// The right CHAP_R for `secret`.
    fn response(&self, secret: &str) -> String {
        let r = chap_response(self.alg, self.id, secret.as_bytes(), &self.challenge);
        hex(&r.expect("known algorithm"))
    }

    /// Answer with these keys: the login must fail with 0x0201 and close.
    fn refused(mut self, pairs: &[(&str, &str)]) {
        let mut req = login_req(self.isid, 0, 1, true, false);
        req.exp_stat_sn = self.exp_stat_sn;
        expect_login_reject(&mut self.c, req, text(pairs), 0x02, 0x01);
    }

    /// Answer with these keys: the security stage must succeed.
    fn accepted(mut self, pairs: &[(&str, &str)]) {
        let mut req = login_req(self.isid, 0, 1, true, false);
        req.exp_stat_sn = self.exp_stat_sn;
        let (r, _) = login_exchange(&mut self.c, req, text(pairs));
        assert!(r.status_class == 0 && r.transit && r.nsg == 1, "{r:?}");
    }
}

#[test]
fn c1_chap_r_of_the_wrong_length_odd_or_not_hex_is_0x0201() {
    let mut srv = start_chap();
    let good = challenge(&srv, Some("5")).expect("challenge");
    let right = good.response(SECRET);
    good.accepted(&[("CHAP_N", "alice"), ("CHAP_R", &right)]);
    let variants: [fn(&str) -> String; 5] = [
        |r| format!("{r}00"),
        |r| r[..r.len() - 2].to_string(),
        |r| r[..r.len() - 1].to_string(),
        |r| format!("0x{}", "zz".repeat((r.len() - 2) / 2)),
        |r| format!("0x{}", &r[3..]),
    ];
    for make in variants {
        let ch = challenge(&srv, Some("5")).expect("challenge");
        let bad = make(&ch.response(SECRET));
        ch.refused(&[("CHAP_N", "alice"), ("CHAP_R", &bad)]);
    }
    let opts = chap_opts(&srv);
    fresh_round_trip_as(&mut srv, opts);
}

#[test]
fn c2_oversized_base64_chap_r_is_0x0201() {
    let mut srv = start_chap();
    let ch = challenge(&srv, Some("5")).expect("challenge");
    let r = format!("0b{}", "A".repeat(127));
    ch.refused(&[("CHAP_N", "alice"), ("CHAP_R", &r)]);
    let opts = chap_opts(&srv);
    fresh_round_trip_as(&mut srv, opts);
}

#[test]
fn c3_unsupported_odd_or_missing_chap_a_is_0x0201() {
    let mut srv = start_chap();
    for algs in ["56", "0", "5x", "1,2,3,4,9"] {
        assert_eq!(
            challenge(&srv, Some(algs)).err(),
            Some((2, 1)),
            "CHAP_A={algs}"
        );
    }
    let ch = challenge(&srv, None).expect("AuthMethod=CHAP");
    let r = format!("0x{}", "00".repeat(16));
    ch.refused(&[("CHAP_N", "alice"), ("CHAP_R", &r)]);
    let opts = chap_opts(&srv);
    fresh_round_trip_as(&mut srv, opts);
}

#[test]
fn c4_bad_chap_i_is_0x0201() {
    let mut srv = start_chap();
    for id in ["256", "-1", "one", ""] {
        let ch = challenge(&srv, Some("5")).expect("challenge");
        let r = ch.response(SECRET);
        ch.refused(&[
            ("CHAP_N", "alice"),
            ("CHAP_R", &r),
            ("CHAP_I", id),
            ("CHAP_C", "0x0102030405060708090a0b0c0d0e0f10"),
        ]);
    }
    let opts = normal(&srv).chap(Chap::new("alice", SECRET).mutual("tgt", TARGET_SECRET));
    fresh_round_trip_as(&mut srv, opts);
}

#[test]
fn c5_oversized_or_reflected_chap_c_is_0x0201_then_closed() {
    let mut srv = start_chap();
    let big = format!("0x{}", "ab".repeat(1025));
    let ch = challenge(&srv, Some("5")).expect("challenge");
    let r = ch.response(SECRET);
    ch.refused(&[
        ("CHAP_N", "alice"),
        ("CHAP_R", &r),
        ("CHAP_I", "1"),
        ("CHAP_C", &big),
    ]);
    let ch = challenge(&srv, Some("5")).expect("challenge");
    let r = ch.response(SECRET);
    let reflected = hex(&ch.challenge);
    ch.refused(&[
        ("CHAP_N", "alice"),
        ("CHAP_R", &r),
        ("CHAP_I", "7"),
        ("CHAP_C", &reflected),
    ]);
    let opts = chap_opts(&srv);
    fresh_round_trip_as(&mut srv, opts);
}

#[test]
fn c6_chap_n_with_a_prefix_is_a_plain_string() {
    let mut srv = start_chap();
    let opts = normal(&srv).chap(Chap::new("0x616c", "hex-looking-name-1"));
    fresh_round_trip_as(&mut srv, opts);
    for name in ["al", "0X616C", "0bYWw="] {
        let ch = challenge(&srv, Some("5")).expect("challenge");
        let r = ch.response("hex-looking-name-1");
        ch.refused(&[("CHAP_N", name), ("CHAP_R", &r)]);
    }
    let opts = chap_opts(&srv);
    fresh_round_trip_as(&mut srv, opts);
}

#[test]
fn c7_unknown_chap_n_is_0x0201() {
    let mut srv = start_chap();
    for name in ["mallory", "", &"n".repeat(255)] {
        let ch = challenge(&srv, Some("5")).expect("challenge");
        let r = ch.response(SECRET);
        ch.refused(&[("CHAP_N", name), ("CHAP_R", &r)]);
    }
    let opts = chap_opts(&srv);
    fresh_round_trip_as(&mut srv, opts);
}

#[test]
fn c8_challenges_never_repeat_and_a_replayed_answer_fails() {
    let mut seen = std::collections::HashSet::new();
    let mut recorded: Option<String> = None;
    for restart in 0..2 {
        let srv = start_chap();
        for _ in 0..8 {
            let ch = challenge(&srv, Some("5")).expect("challenge");
            assert!(
                seen.insert(ch.challenge.clone()),
                "a challenge repeated (restart {restart})"
            );
            match &recorded {
                // An answer recorded on an earlier exchange (also before a restart).
                Some(r) => ch.refused(&[("CHAP_N", "alice"), ("CHAP_R", r)]),
                None => {
                    let r = ch.response(SECRET);
                    recorded = Some(r.clone());
                    ch.accepted(&[("CHAP_N", "alice"), ("CHAP_R", &r)]);
                }
            }
        }
        drop(srv);
    }
    let mut srv = start_chap();
    let opts = chap_opts(&srv);
    fresh_round_trip_as(&mut srv, opts);
}

#[test]
fn c9_discovery_without_credentials_and_mutual_mismatch_are_refused() {
    let mut srv = start_with(&[
        "--chap",
        &format!("alice:{SECRET}"),
        "--discovery-chap",
        &format!("disc:{SECRET}"),
        "ram:16M",
    ]);
    let res = Session::login(srv.addr().as_str(), LoginOptions::discovery());
    expect_login_status(res, 0x02, 0x01);
    let mut d = login(
        &srv,
        LoginOptions::discovery().chap(Chap::new("disc", SECRET)),
    );
    assert!(!d.send_targets("All").expect("SendTargets").is_empty());
    // The initiator asks the target to prove itself; the target has no credential for it.
    let mutual = normal(&srv).chap(Chap::new("alice", SECRET).mutual("tgt", TARGET_SECRET));
    let res = Session::login(srv.addr().as_str(), mutual);
    expect_login_status(res, 0x02, 0x01);
    let opts = chap_opts(&srv);
    fresh_round_trip_as(&mut srv, opts);
}

#[test]
fn c11_skipping_the_security_stage_or_auth_none_is_0x0201() {
    let mut srv = start_chap();
    let iqn = srv.iqn();
    // Straight to the operational stage.
    let mut c = connect(&srv);
    let keys = text(&[
        ("InitiatorName", "iqn.2026-11.io.ustgt:hostile"),
        ("SessionType", "Normal"),
        ("TargetName", &iqn),
    ]);
    expect_login_reject(
        &mut c,
        login_req(fresh_isid(), 1, 3, true, false),
        keys,
        0x02,
        0x01,
    );
    // AuthMethod=None only.
    let mut c = connect(&srv);
    expect_login_reject(
        &mut c,
        login_req(fresh_isid(), 0, 1, true, false),
        identity_with(&iqn, "None"),
        0x02,
        0x01,
    );
    let opts = chap_opts(&srv);
    fresh_round_trip_as(&mut srv, opts);
}

#[test]
fn l14_a_flood_of_half_open_logins_is_capped_and_harms_no_session() {
    let mut srv = start_with(&[
        "--max-logins-per-portal",
        "16",
        "--login-timeout-ms",
        "1500",
        "ram:16M",
    ]);
    // A session logged in before the flood keeps working through it.
    let mut s = login(&srv, normal(&srv));
    let mut flood = Vec::new();
    for _ in 0..300 {
        match ustgt_initiator::Connection::connect(srv.addr().as_str(), WAIT) {
            Ok(c) => flood.push(c),
            Err(e) => panic!("connect: {e}"),
        }
    }
    let data = pattern(14, 4096);
    write(&mut s, 900, &data);
    read_back(&mut s, 900, &data);
    // At most the cap stays open; every other connection is closed at once.
    let mut open = 0;
    for c in &mut flood {
        match c.recv(Duration::from_millis(20)) {
            Err(e) if e.is_timeout() => open += 1,
            Err(e) if e.is_closed() => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(open <= 16, "{open} connections in login kept open");
    // The login timeout closes the rest; then logins work again.
    for c in &mut flood {
        let _ = c.wait_closed(Duration::from_secs(5));
    }
    fresh_round_trip(&mut srv);
    read_back(&mut s, 900, &data);
}
