//! Protocol-level integration tests: the real `ustgt` binary driven by the test initiator
//! (crates/initiator), which controls every PDU on the wire.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use ustgt_initiator::wire::{
    lun_from_index, Bhs, LogoutRequest, NopOut, Pdu, RawBhs, ScsiCommand, BHS_LEN,
};
use ustgt_initiator::{
    cdb, Corrupt, LoginError, LoginOptions, ScsiOutcome, ScsiRequest, Session, CHECK_CONDITION,
};

const BS: u32 = 512;
const SHORT: Duration = Duration::from_millis(600);

fn start() -> Server {
    Server::start(&["--listen", "127.0.0.1:0", "ram:16M"])
}

fn login(s: &Server, opts: LoginOptions) -> Session {
    login_at(&s.addr(), opts)
}

/// Log in and consume the unit attention every new I_T nexus starts with.
fn login_at(addr: &str, opts: LoginOptions) -> Session {
    let normal = opts.target_name.is_some();
    let mut s = Session::login(addr, opts).unwrap_or_else(|e| panic!("login: {e} ({e:?})"));
    if normal {
        s.clear_unit_attention(0)
            .expect("TEST UNIT READY after login");
    }
    s
}

fn normal(s: &Server) -> LoginOptions {
    LoginOptions::normal(&s.iqn())
}

/// Deterministic test data.
fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Assert GOOD status and no protocol violations.
fn ok(out: &ScsiOutcome) {
    assert!(out.good(), "command failed: {}", out.describe());
    assert!(
        out.violations.is_empty(),
        "protocol violations: {}",
        out.describe()
    );
}

fn write(s: &mut Session, lba: u64, data: &[u8]) -> ScsiOutcome {
    let out = s.write16(0, lba, data, BS).expect("WRITE(16)");
    ok(&out);
    out
}

fn read_back(s: &mut Session, lba: u64, expect: &[u8]) -> ScsiOutcome {
    let out = s
        .read16(0, lba, expect.len() as u32 / BS, BS)
        .expect("READ(16)");
    ok(&out);
    assert!(out.data_in == expect, "read back differs at LBA {lba}");
    out
}

fn no_anomalies(s: &Session) {
    assert!(
        s.anomalies.is_empty(),
        "session anomalies: {:#?}",
        s.anomalies
    );
}

/// A hand-built WRITE(16) command header for raw tests.
fn write_cmd(s: &mut Session, lba: u64, len: u32, final_: bool) -> ScsiCommand {
    let mut c = [0u8; 16];
    c.copy_from_slice(&cdb::write16(lba, len / BS));
    ScsiCommand {
        immediate: false,
        final_,
        read: false,
        write: true,
        attr: 1,
        lun: lun_from_index(0),
        itt: s.alloc_itt(),
        expected_data_len: len,
        cmd_sn: s.take_cmd_sn(),
        exp_stat_sn: s.exp_stat_sn(),
        cdb: c,
    }
}

/// The next PDU, skipping nothing; panics with context on failure.
fn next(s: &mut Session, what: &str) -> Pdu {
    s.recv_pdu(Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}"))
}

#[test]
fn login_without_digests_then_write_and_read_back() {
    let srv = start();
    let mut s = login(&srv, normal(&srv));
    let n = &s.negotiated;
    assert!(!n.header_digest && !n.data_digest, "{n:?}");
    let last = s.login_response().expect("final login response").clone();
    assert_eq!((last.status_class, last.status_detail), (0, 0));
    assert!(last.transit && last.nsg == 3 && last.tsih != 0, "{last:?}");
    let data = pattern(1, 64 * 1024);
    write(&mut s, 100, &data);
    read_back(&mut s, 100, &data);
    ok(&s.test_unit_ready(0).expect("TUR"));
    assert_eq!(s.logout().expect("logout").response, 0);
    no_anomalies(&s);
}

#[test]
fn login_with_header_and_data_digests_then_write_and_read_back() {
    let srv = start();
    let mut s = login(&srv, normal(&srv).digests());
    let n = s.negotiated.clone();
    assert!(
        n.header_digest && n.data_digest,
        "digests not negotiated: {:?}",
        n.target_keys
    );
    let data = pattern(2, 256 * 1024 + 4096);
    write(&mut s, 7, &data);
    read_back(&mut s, 7, &data);
    // odd data lengths exercise padding under the data digest
    let (_, echo) = s.ping(b"odd length!").expect("ping");
    assert_eq!(echo, b"odd length!");
    let inq = s.inquiry(0, 37).expect("INQUIRY");
    ok(&inq);
    assert_eq!(inq.data_in.len(), 37);
    no_anomalies(&s);
}

#[test]
fn write_larger_than_max_burst_is_solicited_by_several_r2ts() {
    let srv = start();
    let opts = normal(&srv)
        .key("ImmediateData", "No")
        .key("InitialR2T", "Yes")
        .key("MaxBurstLength", "8192")
        .key("FirstBurstLength", "4096")
        .key("MaxOutstandingR2T", "4");
    let mut s = login(&srv, opts);
    let n = s.negotiated.clone();
    assert!(!n.immediate_data && n.initial_r2t, "{:?}", n.target_keys);
    assert_eq!(n.max_burst_length, 8192, "{:?}", n.target_keys);
    assert_eq!(n.max_outstanding_r2t, 4, "{:?}", n.target_keys);
    let data = pattern(3, 64 * 1024);
    let mut req = ScsiRequest::write(0, &cdb::write16(40, 128), data.clone());
    req.segment_limit = Some(2048);
    req.collect_r2ts = Some(Duration::from_millis(150));
    let out = s.scsi(req).expect("write");
    ok(&out);
    assert_eq!(out.sent[0].data_len, 0, "no immediate data was allowed");
    assert!(matches!(&out.sent[0].bhs, Bhs::ScsiCommand(c) if c.final_));
    let mut covered = 0u32;
    for (i, r) in out.r2ts.iter().enumerate() {
        assert_eq!(r.r2t_sn, i as u32, "R2TSN sequence: {:#?}", out.r2ts);
        assert_eq!(r.buffer_offset, covered, "R2T offsets: {:#?}", out.r2ts);
        assert!(r.desired_len > 0 && r.desired_len <= 8192, "{r:?}");
        covered += r.desired_len;
    }
    assert_eq!(covered, 64 * 1024, "R2Ts must solicit the whole transfer");
    assert!(out.r2ts.len() >= 8);
    assert!(
        (2..=4).contains(&out.max_r2ts_outstanding),
        "with MaxOutstandingR2T=4 the target kept {} R2Ts outstanding (expected 2..=4): {:#?}",
        out.max_r2ts_outstanding,
        out.r2ts
    );
    let mut ttts: Vec<u32> = out.r2ts.iter().map(|r| r.ttt).collect();
    ttts.truncate(out.max_r2ts_outstanding);
    ttts.sort_unstable();
    ttts.dedup();
    assert_eq!(
        ttts.len(),
        out.max_r2ts_outstanding,
        "outstanding R2Ts share a TTT"
    );
    read_back(&mut s, 40, &data);
    no_anomalies(&s);
}

#[test]
fn unsolicited_data_up_to_first_burst_length() {
    let srv = start();
    for immediate in ["Yes", "No"] {
        let opts = normal(&srv)
            .key("ImmediateData", immediate)
            .key("InitialR2T", "No")
            .key("FirstBurstLength", "8192")
            .key("MaxBurstLength", "16384");
        let mut s = login(&srv, opts);
        let n = s.negotiated.clone();
        assert!(!n.initial_r2t, "InitialR2T=No refused: {:?}", n.target_keys);
        assert_eq!(n.first_burst_length, 8192, "{:?}", n.target_keys);
        let data = pattern(4, 32 * 1024);
        let mut req = ScsiRequest::write(0, &cdb::write16(0, 64), data.clone());
        req.segment_limit = Some(2048);
        let out = s.scsi(req).expect("write");
        ok(&out);
        let imm = out.sent[0].data_len as u32;
        assert_eq!(imm, if immediate == "Yes" { 2048 } else { 0 });
        let unsolicited: u32 = out
            .sent
            .iter()
            .filter(|p| matches!(&p.bhs, Bhs::DataOut(d) if d.ttt == 0xffff_ffff))
            .map(|p| p.data_len as u32)
            .sum();
        assert_eq!(imm + unsolicited, 8192, "first burst sent unsolicited");
        let first = out
            .r2ts
            .first()
            .unwrap_or_else(|| panic!("no R2T: {}", out.describe()));
        assert_eq!(
            first.buffer_offset, 8192,
            "the first R2T must start after the first burst"
        );
        let covered: u32 = out.r2ts.iter().map(|r| r.desired_len).sum();
        assert_eq!(covered, 32 * 1024 - 8192, "R2Ts: {:#?}", out.r2ts);
        // a write that fits in the first burst needs no R2T at all
        let small = pattern(5, 4096);
        let out = write(&mut s, 200, &small);
        assert!(
            out.r2ts.is_empty(),
            "R2T for a write within FirstBurstLength: {:#?}",
            out.r2ts
        );
        read_back(&mut s, 0, &data);
        read_back(&mut s, 200, &small);
        no_anomalies(&s);
    }
}

#[test]
fn read_with_small_max_recv_data_segment_length_is_split() {
    let srv = start();
    let data = pattern(6, 8192);
    {
        let mut s = login(&srv, normal(&srv));
        write(&mut s, 300, &data);
    }
    let mut s = login(&srv, normal(&srv).key("MaxRecvDataSegmentLength", "512"));
    let out = read_back(&mut s, 300, &data);
    let data_ins: Vec<_> = out
        .received
        .iter()
        .filter_map(|p| match &p.bhs {
            Bhs::DataIn(d) => Some((d.clone(), p.data_len)),
            _ => None,
        })
        .collect();
    assert_eq!(data_ins.len(), 16, "{}", out.describe());
    for (i, (d, len)) in data_ins.iter().enumerate() {
        assert_eq!(*len, 512, "Data-In {i} length");
        assert_eq!(d.data_sn, i as u32, "DataSN");
        assert_eq!(d.buffer_offset, i as u32 * 512, "offset");
        assert_eq!(
            d.final_,
            i == 15,
            "F bit only on the last PDU of the sequence"
        );
    }
    assert!(
        out.status_in_data_in && data_ins[15].0.status_present,
        "status expected in the last Data-In: {}",
        out.describe()
    );
    assert_eq!(out.received.len(), 16, "no separate SCSI Response expected");
    no_anomalies(&s);
}

#[test]
fn read_residuals_underflow_and_overflow() {
    let srv = start();
    let mut s = login(&srv, normal(&srv));
    let data = pattern(7, 4096);
    write(&mut s, 0, &data);
    // READ of 8 blocks (4096 bytes) with EDTL 2048: overflow by 2048
    let out = s
        .scsi(ScsiRequest::read(0, &cdb::read16(0, 8), 2048))
        .expect("read overflow");
    ok(&out);
    assert!(out.overflow && !out.underflow, "{}", out.describe());
    assert_eq!(out.residual, 2048, "{}", out.describe());
    assert_eq!(out.data_in, data[..2048]);
    // READ of 4 blocks (2048 bytes) with EDTL 4096: underflow by 2048
    let out = s
        .scsi(ScsiRequest::read(0, &cdb::read16(0, 4), 4096))
        .expect("read underflow");
    ok(&out);
    assert!(out.underflow && !out.overflow, "{}", out.describe());
    assert_eq!(out.residual, 2048, "{}", out.describe());
    assert_eq!(out.data_in, data[..2048]);
    // exact: no residual
    let out = s
        .scsi(ScsiRequest::read(0, &cdb::read16(0, 8), 4096))
        .expect("read exact");
    ok(&out);
    assert!(
        !out.underflow && !out.overflow && out.residual == 0,
        "{}",
        out.describe()
    );
    no_anomalies(&s);
}

#[test]
fn send_targets_answer_spans_several_text_pdus() {
    let names: Vec<String> = (0..12)
        .map(|i| format!("iqn.2026-11.io.ustgt:a-rather-long-target-name-for-discovery-{i:02}"))
        .collect();
    let mut toml = String::from("[server]\nlisten = [\"127.0.0.1:0\"]\n");
    for n in &names {
        toml += &format!(
            "\n[[target]]\niqn = \"{n}\"\n[[target.lun]]\nstore = \"ram\"\nsize = \"1M\"\n"
        );
    }
    let srv = Server::with_config("sendtargets", &toml);
    let mut s = login(
        &srv,
        LoginOptions::discovery().key("MaxRecvDataSegmentLength", "512"),
    );
    let ex = s
        .text_exchange(&[("SendTargets".into(), "All".into())])
        .expect("SendTargets");
    assert!(
        ex.responses.len() >= 2,
        "answer should not fit in 512 bytes: {:#?}",
        ex.responses
    );
    let (last, rest) = ex.responses.split_last().expect("responses");
    for (r, len) in rest {
        assert!(
            *len <= 512,
            "segment of {len} bytes over MaxRecvDataSegmentLength"
        );
        assert!(
            r.cont && !r.final_,
            "intermediate Text Response needs C=1, F=0: {r:?}"
        );
        assert_ne!(
            r.ttt, 0xffff_ffff,
            "intermediate Text Response needs a TTT: {r:?}"
        );
    }
    assert!(last.1 <= 512);
    assert!(last.0.final_ && !last.0.cont, "{:?}", last.0);
    assert_eq!(last.0.ttt, 0xffff_ffff, "final Text Response TTT");
    let port = srv.addr().rsplit(':').next().expect("port").to_string();
    for n in &names {
        let i = ex
            .pairs
            .iter()
            .position(|(k, v)| k == "TargetName" && v == n)
            .unwrap_or_else(|| panic!("{n} missing from {:#?}", ex.pairs));
        let addr = ex.pairs.get(i + 1).expect("TargetAddress after TargetName");
        assert_eq!(addr.0, "TargetAddress");
        assert!(addr.1.contains(&format!(":{port},")), "{addr:?}");
    }
    no_anomalies(&s);
}

#[test]
fn cmd_sn_outside_the_window_is_ignored() {
    let srv = start();
    let mut s = login(&srv, normal(&srv));
    ok(&s.test_unit_ready(0).expect("TUR"));
    let (exp, max) = s.cmd_window();
    assert_eq!(exp, s.cmd_sn());
    let mut c = [0u8; 16];
    c[..6].copy_from_slice(&cdb::test_unit_ready());
    for bad_sn in [
        max.wrapping_add(3),
        exp.wrapping_sub(1),
        exp.wrapping_add(0x4000_0000),
    ] {
        let cmd = ScsiCommand {
            final_: true,
            attr: 1,
            itt: s.alloc_itt(),
            cmd_sn: bad_sn,
            exp_stat_sn: s.exp_stat_sn(),
            cdb: c,
            ..ScsiCommand::default()
        };
        s.send_pdu(&Pdu::new(cmd, Vec::new())).expect("send");
    }
    match s.recv_pdu(SHORT) {
        Err(e) if e.is_timeout() => {}
        other => panic!("commands outside the CmdSN window must be ignored, got {other:?}"),
    }
    ok(&s.test_unit_ready(0).expect("TUR after ignored commands"));
    let data = pattern(8, 4096);
    write(&mut s, 10, &data);
    read_back(&mut s, 10, &data);
    no_anomalies(&s);
}

#[test]
fn unknown_opcode_is_rejected_quoting_the_header() {
    let srv = start();
    let mut s = login(&srv, normal(&srv));
    let mut raw = [0u8; BHS_LEN];
    raw[0] = 0x40 | 0x0e; // immediate, reserved initiator opcode
    raw[1] = 0x80;
    raw[16..20].copy_from_slice(&s.alloc_itt().to_be_bytes());
    raw[24..28].copy_from_slice(&s.cmd_sn().to_be_bytes());
    raw[28..32].copy_from_slice(&s.exp_stat_sn().to_be_bytes());
    s.send_pdu(&Pdu::new(Bhs::Unknown(RawBhs(raw)), Vec::new()))
        .expect("send");
    let pdu = next(&mut s, "a Reject");
    match &pdu.bhs {
        Bhs::Reject(r) => assert_eq!(r.reason, 0x05, "reason: {r:?}"),
        other => panic!("expected Reject, got {other:?}"),
    }
    assert_eq!(
        pdu.data.len(),
        BHS_LEN,
        "the Reject carries the rejected header"
    );
    assert_eq!(pdu.data, raw.to_vec(), "quoted header");
    ok(&s.test_unit_ready(0).expect("TUR after reject"));
    no_anomalies(&s);
}

#[test]
fn data_digest_error_on_immediate_data_is_rejected_and_the_session_continues() {
    let srv = start();
    let mut s = login(&srv, normal(&srv).digests().key("ImmediateData", "Yes"));
    assert!(s.negotiated.data_digest && s.negotiated.immediate_data);
    let data = pattern(9, 4096);
    let cmd = write_cmd(&mut s, 20, 4096, true);
    let pdu = Pdu::new(cmd.clone(), data.clone());
    let corrupt = Corrupt {
        header_digest: false,
        data_digest: true,
    };
    s.send_pdu_corrupted(&pdu, corrupt).expect("send");
    let rej = next(&mut s, "a Reject for the corrupted immediate data");
    let Bhs::Reject(r) = &rej.bhs else {
        panic!("expected Reject, got {rej:?}")
    };
    assert_eq!(r.reason, 0x02, "reason: {r:?}");
    assert_eq!(
        rej.data,
        pdu.bhs.to_raw(4096, 0).0.to_vec(),
        "quoted header"
    );
    // RFC 7143 7.8: the command is discarded (its CmdSN not consumed) and recovered by
    // retrying it with the same ITT and CmdSN.
    assert_eq!(
        r.exp_cmd_sn, cmd.cmd_sn,
        "the discarded command's CmdSN must not be acknowledged: {r:?}"
    );
    s.send_pdu(&pdu).expect("retry");
    let rsp = next(&mut s, "the SCSI Response of the retried command");
    match &rsp.bhs {
        Bhs::ScsiResponse(r) => assert_eq!((r.itt, r.response, r.status), (cmd.itt, 0, 0), "{r:?}"),
        other => panic!("expected SCSI Response, got {other:?}"),
    }
    read_back(&mut s, 20, &data);
    no_anomalies(&s);
}

#[test]
fn data_digest_error_on_data_out_is_rejected_and_the_session_continues() {
    let srv = start();
    let opts = normal(&srv)
        .digests()
        .key("ImmediateData", "No")
        .key("InitialR2T", "Yes");
    let mut s = login(&srv, opts);
    s.timeout = Duration::from_secs(3);
    let old = pattern(10, 8192);
    write(&mut s, 50, &old);
    let mut req = ScsiRequest::write(0, &cdb::write16(50, 16), pattern(11, 8192));
    req.segment_limit = Some(4096);
    req.corrupt_data_out = Some(0);
    let out = s.scsi(req).expect("write with a corrupted Data-Out");
    let sent_bad = out
        .sent
        .iter()
        .find(|p| matches!(p.bhs, Bhs::DataOut(_)))
        .expect("a Data-Out was sent");
    assert_eq!(out.rejects.len(), 1, "{}", out.describe());
    assert_eq!(out.rejects[0].0, 0x02, "{}", out.describe());
    assert_eq!(
        out.rejects[0].1,
        sent_bad.bhs.to_raw(sent_bad.data_len as u32, 0),
        "quoted header"
    );
    // ERL 0: the target cannot ask for the data again, so it ends the task with
    // CHECK CONDITION, ABORTED COMMAND / PROTOCOL SERVICE CRC ERROR (RFC 7143 7.8).
    assert_eq!(out.status, CHECK_CONDITION, "{}", out.describe());
    let sense = out.sense.clone().unwrap_or_default();
    assert_eq!(
        (sense.key, sense.asc, sense.ascq),
        (0x0b, 0x47, 0x05),
        "{}",
        out.describe()
    );
    let data = pattern(12, 8192);
    write(&mut s, 60, &data);
    read_back(&mut s, 60, &data);
    no_anomalies(&s);
}

#[test]
fn header_digest_error_closes_the_connection() {
    let srv = start();
    let mut s = login(&srv, normal(&srv).digests());
    ok(&s.test_unit_ready(0).expect("TUR"));
    let nop = NopOut {
        immediate: true,
        itt: s.alloc_itt(),
        ttt: 0xffff_ffff,
        cmd_sn: s.cmd_sn(),
        exp_stat_sn: s.exp_stat_sn(),
        ..NopOut::default()
    };
    let corrupt = Corrupt {
        header_digest: true,
        data_digest: false,
    };
    s.send_pdu_corrupted(&Pdu::new(nop, b"ping".to_vec()), corrupt)
        .expect("send");
    let seen = s
        .wait_closed(Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("connection not closed after a header digest error: {e}"));
    assert!(
        seen.is_empty(),
        "no PDU may answer a corrupt header: {seen:?}"
    );
    // the server still serves new sessions
    let mut s2 = login(&srv, normal(&srv));
    ok(&s2.test_unit_ready(0).expect("TUR"));
}

#[test]
fn nop_out_ping_echoes_data() {
    let srv = start();
    let mut s = login(&srv, normal(&srv));
    let payload = pattern(13, 1000);
    let (nop, echo) = s.ping(&payload).expect("ping");
    assert_eq!(echo, payload);
    assert_eq!(nop.ttt, 0xffff_ffff);
    let (_, echo) = s.ping(&[]).expect("empty ping");
    assert!(echo.is_empty());
    // CmdSN is not consumed by immediate pings
    ok(&s.test_unit_ready(0).expect("TUR"));
    no_anomalies(&s);
}

#[test]
fn logout_with_a_write_waiting_for_data_out() {
    let srv = start();
    let opts = normal(&srv)
        .key("ImmediateData", "No")
        .key("InitialR2T", "Yes");
    let mut s = login(&srv, opts);
    let cmd = write_cmd(&mut s, 70, 8192, true);
    s.send_pdu(&Pdu::new(cmd.clone(), Vec::new()))
        .expect("send");
    let r2t = next(&mut s, "an R2T");
    assert!(
        matches!(&r2t.bhs, Bhs::R2t(r) if r.itt == cmd.itt),
        "{r2t:?}"
    );
    let logout = LogoutRequest {
        immediate: true,
        reason: 0,
        itt: s.alloc_itt(),
        cid: 0,
        cmd_sn: s.cmd_sn(),
        exp_stat_sn: s.exp_stat_sn(),
    };
    s.send_pdu(&Pdu::new(logout.clone(), Vec::new()))
        .expect("send logout");
    let mut others = Vec::new();
    let rsp = loop {
        let p = next(&mut s, "the Logout Response");
        match p.bhs {
            Bhs::LogoutResponse(r) => break r,
            other => others.push(other),
        }
    };
    assert_eq!(
        (rsp.itt, rsp.response),
        (logout.itt, 0),
        "{rsp:?}; before it: {others:?}"
    );
    let after = s
        .wait_closed(Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("connection not closed after logout: {e}"));
    assert!(
        after.is_empty(),
        "PDUs after the Logout Response: {after:?}"
    );
    let mut s2 = login(&srv, normal(&srv));
    let data = pattern(14, 8192);
    write(&mut s2, 70, &data);
    read_back(&mut s2, 70, &data);
}

#[test]
fn session_reinstatement_closes_the_old_connection() {
    let srv = start();
    let mut a = login(&srv, normal(&srv));
    ok(&a.test_unit_ready(0).expect("TUR"));
    let mut opts = normal(&srv);
    opts.isid = a.isid;
    let mut b = login(&srv, opts);
    a.wait_closed(Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("old connection of the reinstated session stays open: {e}"));
    let data = pattern(15, 4096);
    write(&mut b, 80, &data);
    read_back(&mut b, 80, &data);
    no_anomalies(&b);
}

#[test]
fn login_to_an_unknown_target_fails_with_2_3() {
    let srv = start();
    let addr = srv.addr();
    let opts = LoginOptions::normal("iqn.2026-11.io.ustgt:no-such-target");
    match Session::login(addr.as_str(), opts) {
        Err(LoginError::Status { class, detail, .. }) => assert_eq!((class, detail), (2, 3)),
        Err(e) => panic!("expected a login status, got {e}"),
        Ok(_) => panic!("login to an unknown target succeeded"),
    }
}

#[test]
fn non_login_pdu_before_login_closes_the_connection() {
    let srv = start();
    let addr = srv.addr();
    let mut c = ustgt_initiator::Connection::connect(addr.as_str(), Duration::from_secs(3))
        .expect("connect");
    let nop = NopOut {
        immediate: true,
        itt: 1,
        ttt: 0xffff_ffff,
        ..NopOut::default()
    };
    c.send(&Pdu::new(nop, Vec::new())).expect("send");
    let seen = c
        .wait_closed(Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("connection not closed: {e}"));
    assert!(
        seen.iter()
            .all(|p| matches!(p.bhs, Bhs::LoginResponse(_) | Bhs::Reject(_))),
        "{seen:?}"
    );
    eprintln!("before closing, the target sent: {seen:?}");
}

#[test]
fn cmd_sn_wraps_around() {
    let srv = start();
    let mut opts = normal(&srv);
    opts.initial_cmd_sn = 0xffff_fff8;
    let mut s = login(&srv, opts);
    for i in 0..20u32 {
        let data = pattern(100 + i, 1024);
        write(&mut s, 400 + 2 * u64::from(i), &data);
        read_back(&mut s, 400 + 2 * u64::from(i), &data);
    }
    assert!(s.cmd_sn() < 0x100);
    no_anomalies(&s);
}

#[test]
fn lun_reset_completes() {
    let srv = start();
    let mut s = login(&srv, normal(&srv));
    let rsp = s
        .task_mgmt(5, 0, 0xffff_ffff, s.cmd_sn())
        .expect("LOGICAL UNIT RESET");
    assert_eq!(rsp.response, 0, "{rsp:?}");
    // the reset raises a unit attention; the first command may report it
    let first = s.test_unit_ready(0).expect("TUR");
    if !first.good() {
        let sense = first.sense.clone().unwrap_or_default();
        assert_eq!(sense.key, 0x06, "{}", first.describe());
    }
    ok(&s.test_unit_ready(0).expect("TUR"));
    no_anomalies(&s);
}

#[test]
fn sixteen_concurrent_sessions_write_and_verify_their_own_regions() {
    let srv = start();
    let addr = srv.addr();
    let iqn = srv.iqn();
    let threads: Vec<_> = (0..16u32)
        .map(|i| {
            let (addr, iqn) = (addr.clone(), iqn.clone());
            std::thread::spawn(move || {
                let mut s = login_at(&addr, LoginOptions::normal(&iqn));
                let lba = 1000 + u64::from(i) * 256;
                let data = pattern(200 + i, 128 * 1024);
                write(&mut s, lba, &data);
                read_back(&mut s, lba, &data);
                assert_eq!(s.logout().expect("logout").response, 0);
                no_anomalies(&s);
                (lba, data)
            })
        })
        .collect();
    let written: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("session thread"))
        .collect();
    let mut s = login(&srv, normal(&srv));
    for (lba, data) in written {
        read_back(&mut s, lba, &data);
    }
}

mod load {
    use super::*;

    const REGION: u64 = 2048;
    const QD: usize = 16;

    /// The content of block `lba` after its write with generation `gen` (0: never written).
    fn stamp(session: u64, lba: u64, gen: u64) -> Vec<u8> {
        if gen == 0 {
            return vec![0; BS as usize];
        }
        let mut b: Vec<u8> = (0..BS as u64)
            .map(|i| (lba * 31 + gen * 17 + i) as u8)
            .collect();
        b[..8].copy_from_slice(&session.to_be_bytes());
        b[8..16].copy_from_slice(&lba.to_be_bytes());
        b[16..24].copy_from_slice(&gen.to_be_bytes());
        b
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[derive(Default, Debug)]
    pub struct Report {
        pub ops: u64,
        pub writes: u64,
        pub mismatches: u64,
        pub errors: Vec<String>,
    }

    struct Op {
        write: bool,
        lba: u64,
        n: u64,
        gen: u64,
    }

    struct Worker {
        id: u64,
        s: Session,
        gen: Vec<u64>,
        busy_w: Vec<u32>,
        busy_r: Vec<u32>,
        next_gen: u64,
        ops: std::collections::HashMap<u32, Op>,
        rng: Rng,
        rep: Report,
    }

    impl Worker {
        fn base(&self) -> u64 {
            self.id * REGION
        }

        fn try_submit(&mut self) -> bool {
            for _ in 0..8 {
                let write = self.rng.next(100) < 30;
                let n = 1 + self.rng.next(8);
                let lba = self.rng.next(REGION - n);
                let r = lba as usize..(lba + n) as usize;
                let clash = self.busy_w[r.clone()].iter().any(|&c| c > 0)
                    || (write && self.busy_r[r.clone()].iter().any(|&c| c > 0));
                if clash {
                    continue;
                }
                let abs = self.base() + lba;
                let itt = if write {
                    self.next_gen += 1;
                    let gen = self.next_gen;
                    let data: Vec<u8> = (0..n).flat_map(|b| stamp(self.id, abs + b, gen)).collect();
                    let req = ScsiRequest::write(0, &cdb::write16(abs, n as u32), data);
                    r.clone().for_each(|b| self.busy_w[b] += 1);
                    (self.s.submit(req), gen)
                } else {
                    let req = ScsiRequest::read(0, &cdb::read16(abs, n as u32), n as u32 * BS);
                    r.clone().for_each(|b| self.busy_r[b] += 1);
                    (self.s.submit(req), 0)
                };
                match itt {
                    (Ok(itt), gen) => {
                        self.ops.insert(itt, Op { write, lba, n, gen });
                    }
                    (Err(e), _) => {
                        self.rep.errors.push(format!("submit: {e}"));
                        return false;
                    }
                }
                return true;
            }
            false
        }

        fn complete_one(&mut self) -> bool {
            let (itt, res) = match self.s.wait_any() {
                Ok(x) => x,
                Err(e) => {
                    self.rep.errors.push(format!("wait: {e}"));
                    return false;
                }
            };
            let Some(op) = self.ops.remove(&itt) else {
                self.rep
                    .errors
                    .push(format!("completion for unknown ITT {itt:#x}"));
                return true;
            };
            let r = op.lba as usize..(op.lba + op.n) as usize;
            self.rep.ops += 1;
            match res {
                Ok(out) if out.good() && out.violations.is_empty() => {
                    if op.write {
                        self.rep.writes += 1;
                        r.clone().for_each(|b| self.gen[b] = op.gen);
                    } else {
                        self.verify(op.lba, &out.data_in);
                    }
                }
                Ok(out) => self.rep.errors.push(out.describe()),
                Err(e) => self.rep.errors.push(format!("command: {e}")),
            }
            let busy = if op.write {
                &mut self.busy_w
            } else {
                &mut self.busy_r
            };
            r.for_each(|b| busy[b] -= 1);
            true
        }

        fn verify(&mut self, lba: u64, data: &[u8]) {
            for (i, block) in data.chunks(BS as usize).enumerate() {
                let rel = lba + i as u64;
                let want = stamp(self.id, self.base() + rel, self.gen[rel as usize]);
                if block != want.as_slice() {
                    self.rep.mismatches += 1;
                }
            }
        }
    }

    pub fn run(addr: String, iqn: String, id: u64, secs: u64) -> Report {
        let s = login_at(&addr, LoginOptions::normal(&iqn));
        let mut w = Worker {
            id,
            s,
            gen: vec![0; REGION as usize],
            busy_w: vec![0; REGION as usize],
            busy_r: vec![0; REGION as usize],
            next_gen: 0,
            ops: Default::default(),
            rng: Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1)),
            rep: Report::default(),
        };
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline && w.rep.errors.is_empty() {
            while w.s.in_flight() < QD && w.try_submit() {}
            if !w.complete_one() {
                break;
            }
        }
        while w.rep.errors.is_empty() && w.s.in_flight() > 0 && w.complete_one() {}
        if !w.rep.errors.is_empty() {
            return w.rep;
        }
        // final sweep: every block of the region holds its last acknowledged write
        for start in (0..REGION).step_by(128) {
            let abs = w.base() + start;
            match w.s.read16(0, abs, 128, BS) {
                Ok(out) if out.good() => w.verify(start, &out.data_in),
                Ok(out) => w.rep.errors.push(out.describe()),
                Err(e) => w.rep.errors.push(format!("final read: {e}")),
            }
        }
        w.rep.errors.extend(w.s.anomalies.iter().cloned());
        w.rep
    }
}

#[test]
fn verify_load_four_sessions_queue_depth_sixteen() {
    let srv = Server::start(&["--listen", "127.0.0.1:0", "ram:64M"]);
    let (addr, iqn) = (srv.addr(), srv.iqn());
    let threads: Vec<_> = (0..4u64)
        .map(|id| {
            let (addr, iqn) = (addr.clone(), iqn.clone());
            std::thread::spawn(move || load::run(addr, iqn, id, 5))
        })
        .collect();
    let reports: Vec<load::Report> = threads
        .into_iter()
        .map(|t| t.join().expect("load thread"))
        .collect();
    let ops: u64 = reports.iter().map(|r| r.ops).sum();
    let writes: u64 = reports.iter().map(|r| r.writes).sum();
    let mismatches: u64 = reports.iter().map(|r| r.mismatches).sum();
    eprintln!("verify load: {ops} commands ({writes} writes), {mismatches} mismatches");
    for r in &reports {
        assert!(r.errors.is_empty(), "errors: {:#?}", r.errors);
    }
    assert_eq!(mismatches, 0, "data mismatches under load");
    assert!(ops > 400, "only {ops} commands completed in 5 s");
    assert!(writes > 0);
}
