//! Hostile inputs, framing and BHS (docs/hostile-inputs.md section 2.1, rows F1-F12),
//! against the real server. Every test sends the hostile bytes, checks the answer the
//! catalogue calls for, and ends with a fresh session doing a WRITE and READ round trip.
//!
//! | row | test(s) |
//! | --- | --- |
//! | F1  | `f1_first_pdu_not_a_login_is_login_reject_0x020b_then_close`, `f1_undecodable_first_pdu_is_login_reject_0x020b_then_close` |
//! | F2  | `f2_truncated_bhs_then_silence_is_closed_by_the_login_timeout`, `f2_half_open_logins_are_capped_per_host_and_timed_out` (global cap: hostile_login.rs `l14_*`) |
//! | F3  | `f3_login_pdu_cut_short_is_closed_without_answer` |
//! | F4  | `f4_ahs_lengths_not_adding_up_are_rejected_0x04`, `f4_largest_ahs_of_unknown_type_is_rejected_0x04`, `f4_ahs_on_a_nop_out_is_rejected_0x04` |
//! | F5  | `f5_data_segment_over_mrdsl_is_rejected_0x04_then_closed` |
//! | F6  | `f6_login_pdu_over_8_kib_is_rejected_0x04_then_closed`, `f6_login_text_over_64_kib_is_login_reject_0x0200` |
//! | F7  | `f7_odd_lengths_and_nonzero_padding_are_consumed_and_ignored` |
//! | F8  | `f8_header_digest_error_closes_without_executing` (also protocol.rs `header_digest_error_closes_the_connection`) |
//! | F9  | `f9_data_digest_error_on_a_ping_is_rejected_0x02` (also protocol.rs `data_digest_error_on_immediate_data_is_rejected_and_the_session_continues`, `data_digest_error_on_data_out_is_rejected_and_the_session_continues`) |
//! | F10 | `f10_unassigned_opcodes_are_rejected_0x05` (also protocol.rs `unknown_opcode_is_rejected_quoting_the_header`) |
//! | F11 | `f11_reserved_bits_and_i_bit_on_data_out_are_ignored` (policy: reserved bits are ignored everywhere) |
//! | F12 | `f12_random_headers_with_valid_opcodes_never_hurt_the_server` |

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use common::raw::*;
use ustgt_initiator::wire::{Bhs, DataOut, DigestConfig, NopOut, Pdu, TextRequest, BHS_LEN};
use ustgt_initiator::{RawPdu, Session};

/// A NOP-Out ping header (immediate) with this ITT.
fn ping(s: &mut Session, itt: u32) -> NopOut {
    NopOut {
        immediate: true,
        lun: 0,
        itt,
        ttt: 0xffff_ffff,
        cmd_sn: s.cmd_sn(),
        exp_stat_sn: s.exp_stat_sn(),
    }
}

/// The session still answers a ping.
fn still_answers(s: &mut Session) {
    let (_, echo) = s.ping(b"alive").expect("ping after the hostile input");
    assert_eq!(echo, b"alive");
}

#[test]
fn f1_first_pdu_not_a_login_is_login_reject_0x020b_then_close() {
    let mut srv = start();
    let mut garbage = [0u8; BHS_LEN];
    for (i, b) in garbage.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
    garbage[0] = 0x1c; // unassigned opcode
    garbage[4..8].copy_from_slice(&[0; 4]);
    let firsts = [
        RawPdu::new(0x01).byte(1, 0x80).u32_at(16, 0x11),
        RawPdu::new(0x04)
            .byte(1, 0x80)
            .u32_at(16, 0x12)
            .u32_at(20, 0xffff_ffff),
        RawPdu::new(0x40)
            .byte(1, 0x80)
            .u32_at(16, 0x13)
            .u32_at(20, 0xffff_ffff),
        RawPdu::from_bhs(garbage),
    ];
    for first in firsts {
        let itt = u32::from_be_bytes([first.bhs[16], first.bhs[17], first.bhs[18], first.bhs[19]]);
        let mut c = connect(&srv);
        c.send_raw_pdu(&first).expect("send");
        let seen = expect_conn_closed(&mut c, WAIT);
        assert_eq!(seen.len(), 1, "one Login Response, then close: {seen:?}");
        let Bhs::LoginResponse(r) = &seen[0].bhs else {
            panic!("expected a Login Response, got {seen:?}")
        };
        assert_eq!((r.status_class, r.status_detail), (0x02, 0x0b), "{r:?}");
        assert_eq!(r.itt, itt, "the response carries the PDU's task tag");
        assert!(seen[0].data.is_empty());
    }
    fresh_round_trip(&mut srv);
}

#[test]
fn f1_undecodable_first_pdu_is_login_reject_0x020b_then_close() {
    let mut srv = start();
    let mut c = connect(&srv);
    // A Text Request with both F and C set has no valid reading.
    let bad = RawPdu::new(0x04)
        .byte(1, 0xc0)
        .u32_at(16, 0x21)
        .u32_at(20, 0xffff_ffff)
        .data(b"SendTargets=All\0".to_vec());
    c.send_raw_pdu(&bad).expect("send");
    let seen = expect_conn_closed(&mut c, WAIT);
    assert_eq!(seen.len(), 1, "{seen:?}");
    let Bhs::LoginResponse(r) = &seen[0].bhs else {
        panic!("expected a Login Response, got {seen:?}")
    };
    assert_eq!((r.status_class, r.status_detail, r.itt), (0x02, 0x0b, 0x21));
    fresh_round_trip(&mut srv);
}

#[test]
fn f2_truncated_bhs_then_silence_is_closed_by_the_login_timeout() {
    let mut srv = start();
    let mut c = connect(&srv);
    let login = RawPdu::from_pdu(&Pdu::new(
        login_req([0x80, 0, 0, 0, 0, 0x42], 0, 1, true, false),
        identity(&srv.iqn()),
    ));
    c.send_raw(&login.encode(DigestConfig::default())[..20])
        .expect("send 20 bytes");
    // Meanwhile the server serves others.
    fresh_round_trip(&mut srv);
    // The default login timeout is 15 s.
    let seen = expect_conn_closed(&mut c, Duration::from_secs(25));
    assert!(seen.is_empty(), "nothing answers half a header: {seen:?}");
    fresh_round_trip(&mut srv);
}

#[test]
fn f3_login_pdu_cut_short_is_closed_without_answer() {
    let mut srv = start();
    let req = login_req([0x80, 0, 0, 0, 0, 0x43], 0, 1, true, false);
    let cases = [
        // DataSegmentLength 1000, 100 bytes sent.
        RawPdu::from_pdu(&Pdu::new(req.clone(), vec![b'A'; 100])).declare_len(1000),
        // TotalAHSLength 255 words (1020 bytes), 20 bytes sent.
        RawPdu::from_pdu(&Pdu::new(req.clone(), Vec::new()))
            .ahs(vec![0; 20])
            .declare_ahs_words(255),
        // A header of 47 bytes.
        RawPdu::from_pdu(&Pdu::new(req, Vec::new())),
    ];
    for (i, case) in cases.iter().enumerate() {
        let c = connect(&srv);
        let mut bytes = case.encode(DigestConfig::default());
        if i == 2 {
            bytes.truncate(47);
        }
        let (mut stream, _) = c.into_stream().expect("raw stream");
        stream.write_all(&bytes).expect("send");
        stream.shutdown(Shutdown::Write).expect("half close");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        let mut got = Vec::new();
        stream
            .read_to_end(&mut got)
            .unwrap_or_else(|e| panic!("case {i}: the server did not close: {e}"));
        assert!(
            got.is_empty(),
            "case {i}: answer to a truncated PDU: {got:02x?}"
        );
    }
    fresh_round_trip(&mut srv);
}

#[test]
fn f4_ahs_lengths_not_adding_up_are_rejected_0x04() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    // One AHS word whose AHSLength claims 100 bytes.
    let cmd = command(&mut s, &[0; 6], false, false, 0);
    let raw = RawPdu::from_pdu(&Pdu::new(cmd.clone(), Vec::new())).ahs(vec![0, 100, 1, 0]);
    s.send_raw_pdu(&raw).expect("send");
    let quoted = expect_reject(&mut s, 0x04);
    assert_eq!(quoted.0, raw.header(), "the Reject quotes the header");
    ok(&s.test_unit_ready(0).expect("TUR after the Reject"));
    fresh_round_trip(&mut srv);
}

#[test]
fn f4_largest_ahs_of_unknown_type_is_rejected_0x04() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let cmd = command(&mut s, &[0; 6], false, false, 0);
    let mut ahs = vec![0u8; 1020];
    ahs[..3].copy_from_slice(&[0x03, 0xf9, 0x3f]); // 1017 bytes of type 0x3f
    let raw = RawPdu::from_pdu(&Pdu::new(cmd, Vec::new())).ahs(ahs);
    assert_eq!(raw.header()[4], 255);
    s.send_raw_pdu(&raw).expect("send");
    expect_reject(&mut s, 0x04);
    ok(&s.test_unit_ready(0).expect("TUR after the Reject"));
    fresh_round_trip(&mut srv);
}

#[test]
fn f4_ahs_on_a_nop_out_is_rejected_0x04() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let itt = s.alloc_itt();
    let nop = ping(&mut s, itt);
    let raw = RawPdu::from_pdu(&Pdu::new(nop, b"data".to_vec())).ahs(vec![0, 1, 1, 0]);
    s.send_raw_pdu(&raw).expect("send");
    let quoted = expect_reject(&mut s, 0x04);
    assert_eq!(quoted.itt(), itt);
    still_answers(&mut s);
    fresh_round_trip(&mut srv);
}

#[test]
fn f5_data_segment_over_mrdsl_is_rejected_0x04_then_closed() {
    let mut srv = start();
    for opcode in ["NOP-Out", "SCSI Command", "Text Request", "Data-Out"] {
        let mut s = login(&srv, normal(&srv));
        let limit = s.negotiated.target_max_recv_data_segment_length;
        let itt = s.alloc_itt();
        let (cmd_sn, exp) = (s.cmd_sn(), s.exp_stat_sn());
        let bhs: Bhs = match opcode {
            "NOP-Out" => ping(&mut s, itt).into(),
            "SCSI Command" => command(&mut s, &write16(0, 1024), false, true, 1 << 20).into(),
            "Text Request" => TextRequest {
                immediate: true,
                final_: true,
                cont: false,
                lun: 0,
                itt,
                ttt: 0xffff_ffff,
                cmd_sn,
                exp_stat_sn: exp,
            }
            .into(),
            _ => DataOut {
                final_: true,
                lun: 0,
                itt,
                ttt: 0xffff_ffff,
                exp_stat_sn: exp,
                data_sn: 0,
                buffer_offset: 0,
            }
            .into(),
        };
        // Only the header: the data segment is never read.
        let raw = RawPdu::from_bhs(bhs.to_raw(0, 0).0).declare_len(limit + 1);
        s.send_raw_pdu(&raw).expect("send");
        let seen = expect_closed(&mut s);
        assert_eq!(seen.len(), 1, "{opcode}: one Reject, then close: {seen:?}");
        let quoted = reject_of(&seen[0], 0x04);
        assert_eq!(quoted.0, raw.header(), "{opcode}: quoted header");
    }
    fresh_round_trip(&mut srv);
}

#[test]
fn f6_login_pdu_over_8_kib_is_rejected_0x04_then_closed() {
    let mut srv = start();
    for len in [8193u32, 0x00ff_ffff] {
        let mut c = connect(&srv);
        let req = login_req([0x80, 0, 0, 0, 0, 0x44], 0, 1, true, false);
        let raw = RawPdu::from_pdu(&Pdu::new(req, Vec::new())).declare_len(len);
        c.send_raw_pdu(&raw).expect("send");
        let seen = expect_conn_closed(&mut c, WAIT);
        assert_eq!(seen.len(), 1, "length {len}: {seen:?}");
        let quoted = reject_of(&seen[0], 0x04);
        assert_eq!(quoted.data_segment_len(), len);
    }
    fresh_round_trip(&mut srv);
}

#[test]
fn f6_login_text_over_64_kib_is_login_reject_0x0200() {
    let mut srv = start();
    let mut c = connect(&srv);
    let isid = [0x80, 0, 0, 0, 0, 0x45];
    let mut first = identity(&srv.iqn());
    let mut i = 0;
    while first.len() < 8192 - 16 {
        first.extend_from_slice(format!("Zk{i:05}=v\0").as_bytes());
        i += 1;
    }
    let filler: Vec<u8> = (0..8192)
        .map(|j| if j % 16 == 15 { 0 } else { b'Z' })
        .collect();
    let (r, data) = login_exchange(&mut c, login_req(isid, 0, 1, false, true), first);
    assert!(r.status_class == 0 && data.is_empty(), "{r:?}");
    // 8 KiB per request: the 8th continuation passes 64 KiB.
    for n in 1..8 {
        let (r, _) = login_exchange(&mut c, login_req(isid, 0, 1, false, true), filler.clone());
        assert_eq!(r.status_class, 0, "continuation {n}: {r:?}");
    }
    expect_login_reject(
        &mut c,
        login_req(isid, 0, 1, false, true),
        filler,
        0x02,
        0x00,
    );
    fresh_round_trip(&mut srv);
}

#[test]
fn f7_odd_lengths_and_nonzero_padding_are_consumed_and_ignored() {
    let mut srv = start();
    for digests in [false, true] {
        let mut opts = normal(&srv)
            .key("InitialR2T", "No")
            .key("ImmediateData", "Yes");
        if digests {
            opts = opts.digests();
        }
        let mut s = login(&srv, opts);
        let itt = s.alloc_itt();
        let nop = ping(&mut s, itt);
        let raw = RawPdu::from_pdu(&Pdu::new(nop, b"12345".to_vec())).pad(0xff);
        s.send_raw_pdu(&raw).expect("send");
        let echo = next(&mut s, "the NOP-In");
        assert!(
            matches!(echo.bhs, Bhs::NopIn(ref n) if n.itt == itt),
            "{echo:?}"
        );
        assert_eq!(echo.data, b"12345", "the padding is not data");
        // A 512-byte write in two odd pieces, each with non-zero padding.
        let data = pattern(if digests { 71 } else { 70 }, 512);
        let lba = 100 + u64::from(digests);
        let mut cmd = command(&mut s, &write16(lba, 1), false, true, 512);
        cmd.final_ = false;
        let imm = RawPdu::from_pdu(&Pdu::new(cmd.clone(), data[..509].to_vec())).pad(0xaa);
        let dout = DataOut {
            final_: true,
            lun: cmd.lun,
            itt: cmd.itt,
            ttt: 0xffff_ffff,
            exp_stat_sn: s.exp_stat_sn(),
            data_sn: 0,
            buffer_offset: 509,
        };
        let rest = RawPdu::from_pdu(&Pdu::new(dout, data[509..].to_vec())).pad(0xbb);
        s.send_raw_pdu(&imm).expect("send command");
        s.send_raw_pdu(&rest).expect("send Data-Out");
        let rsp = next(&mut s, "the SCSI Response");
        match &rsp.bhs {
            Bhs::ScsiResponse(r) => assert_eq!((r.itt, r.response, r.status), (cmd.itt, 0, 0)),
            other => panic!("expected a SCSI Response, got {other:?}"),
        }
        read_back(&mut s, lba, &data);
    }
    fresh_round_trip(&mut srv);
}

#[test]
fn f8_header_digest_error_closes_without_executing() {
    let mut srv = start();
    let old = pattern(80, 4096);
    {
        let mut s = login(&srv, normal(&srv));
        write(&mut s, 200, &old);
    }
    let mut s = login(&srv, normal(&srv).digests());
    assert!(s.negotiated.header_digest);
    let cmd = command(&mut s, &write16(200, 8), false, true, 4096);
    let mut raw = RawPdu::from_pdu(&Pdu::new(cmd, pattern(81, 4096)));
    raw.bad_header_digest = true;
    s.send_raw_pdu(&raw).expect("send");
    let seen = expect_closed(&mut s);
    assert!(
        seen.is_empty(),
        "nothing may answer a corrupt header: {seen:?}"
    );
    let mut s = login(&srv, normal(&srv));
    read_back(&mut s, 200, &old);
    fresh_round_trip(&mut srv);
}

#[test]
fn f9_data_digest_error_on_a_ping_is_rejected_0x02() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv).digests());
    assert!(s.negotiated.data_digest);
    let itt = s.alloc_itt();
    let nop = ping(&mut s, itt);
    let mut raw = RawPdu::from_pdu(&Pdu::new(nop, b"ping data".to_vec()));
    raw.bad_data_digest = true;
    s.send_raw_pdu(&raw).expect("send");
    let quoted = expect_reject(&mut s, 0x02);
    assert_eq!(quoted.0, raw.header(), "quoted header");
    still_answers(&mut s);
    fresh_round_trip(&mut srv);
}

#[test]
fn f10_unassigned_opcodes_are_rejected_0x05() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    for (opcode, data) in [
        (0x1cu8, Vec::new()),
        (0x40 | 0x1c, vec![1, 2, 3]),
        (0x2f, Vec::new()),
        (0x3c, vec![0; 10]),
        (0x0e, Vec::new()),
    ] {
        let itt = s.alloc_itt();
        let raw = RawPdu::new(opcode)
            .byte(1, 0x80)
            .u32_at(16, itt)
            .u32_at(24, s.cmd_sn())
            .u32_at(28, s.exp_stat_sn())
            .data(data);
        s.send_raw_pdu(&raw).expect("send");
        let quoted = expect_reject(&mut s, 0x05);
        assert_eq!(
            quoted.0,
            raw.header(),
            "opcode {opcode:#04x}: quoted header"
        );
    }
    still_answers(&mut s);
    ok(&s.test_unit_ready(0).expect("TUR"));
    fresh_round_trip(&mut srv);
}

#[test]
fn f11_reserved_bits_and_i_bit_on_data_out_are_ignored() {
    let mut srv = start();
    let opts = normal(&srv)
        .key("InitialR2T", "Yes")
        .key("ImmediateData", "No");
    let mut s = login(&srv, opts);
    // Data-Out with the I bit set, answering an R2T.
    let data = pattern(110, 1024);
    let cmd = command(&mut s, &write16(300, 2), false, true, 1024);
    s.send_pdu(&Pdu::new(cmd.clone(), Vec::new()))
        .expect("send");
    let r2t = match next(&mut s, "an R2T").bhs {
        Bhs::R2t(r) => r,
        other => panic!("expected an R2T, got {other:?}"),
    };
    let dout = DataOut {
        final_: true,
        lun: cmd.lun,
        itt: cmd.itt,
        ttt: r2t.ttt,
        exp_stat_sn: s.exp_stat_sn(),
        data_sn: 0,
        buffer_offset: 0,
    };
    let raw = RawPdu::from_pdu(&Pdu::new(dout, data.clone()))
        .or_byte(0, 0x40)
        .or_byte(2, 0xff)
        .u32_at(44, 0xdead_beef);
    s.send_raw_pdu(&raw).expect("send");
    match next(&mut s, "the SCSI Response").bhs {
        Bhs::ScsiResponse(r) => assert_eq!((r.itt, r.status), (cmd.itt, 0), "{r:?}"),
        other => panic!("expected a SCSI Response, got {other:?}"),
    }
    read_back(&mut s, 300, &data);
    // TEST UNIT READY with reserved bits set in byte 1 and bytes 2-3.
    let tur = command(&mut s, &[0; 6], false, false, 0);
    let raw = RawPdu::from_pdu(&Pdu::new(tur.clone(), Vec::new()))
        .or_byte(1, 0x18)
        .byte(2, 0xff)
        .byte(3, 0xff);
    s.send_raw_pdu(&raw).expect("send");
    match next(&mut s, "the SCSI Response").bhs {
        Bhs::ScsiResponse(r) => assert_eq!((r.itt, r.status), (tur.itt, 0), "{r:?}"),
        other => panic!("expected a SCSI Response, got {other:?}"),
    }
    // A NOP-Out ping with F clear and reserved bytes set.
    let itt = s.alloc_itt();
    let nop = ping(&mut s, itt);
    let raw = RawPdu::from_pdu(&Pdu::new(nop, Vec::new()))
        .byte(1, 0x00)
        .byte(2, 0x12)
        .u32_at(36, 0x0102_0304);
    s.send_raw_pdu(&raw).expect("send");
    let echo = next(&mut s, "the NOP-In");
    assert!(
        matches!(echo.bhs, Bhs::NopIn(ref n) if n.itt == itt),
        "{echo:?}"
    );
    fresh_round_trip(&mut srv);
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A random header with an initiator opcode, no AHS and no data; SCSI commands get R=W=0.
fn random_bhs(rng: &mut Rng) -> RawPdu {
    const OPCODES: [u8; 8] = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x10];
    let mut h = [0u8; BHS_LEN];
    for chunk in h.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_le_bytes());
    }
    h[0] = (h[0] & 0x40) | OPCODES[(rng.next() % 8) as usize];
    if h[0] & 0x3f == 0x01 {
        h[1] &= !0x60;
    }
    if h[0] & 0x3f == 0x04 && h[1] & 0xc0 == 0xc0 {
        h[1] &= !0x40; // F and C together do not decode; covered by F1 and L8
    }
    RawPdu::from_bhs(h)
}

#[test]
fn f12_random_headers_with_valid_opcodes_never_hurt_the_server() {
    let mut srv = start();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut sent = 0;
    for round in 0..6 {
        let mut s = login(&srv, normal(&srv));
        for _ in 0..300 {
            if s.send_raw_pdu(&random_bhs(&mut rng)).is_err() {
                break;
            }
            sent += 1;
        }
        // Read whatever comes until the target goes quiet or closes.
        let mut answers = 0;
        loop {
            match s.recv_pdu(QUIET) {
                Ok(_) => answers += 1,
                Err(e) if e.is_timeout() || e.is_closed() => break,
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        eprintln!("round {round}: {answers} answers");
        assert_alive(&mut srv);
    }
    assert!(sent >= 300);
    fresh_round_trip(&mut srv);
}

#[test]
fn f2_half_open_logins_are_capped_per_host_and_timed_out() {
    let mut srv = start_with(&[
        "--max-logins-per-host",
        "4",
        "--login-timeout-ms",
        "1500",
        "ram:16M",
    ]);
    let half = RawPdu::from_pdu(&Pdu::new(
        login_req([0x80, 0, 0, 0, 0, 0x46], 0, 1, true, false),
        identity(&srv.iqn()),
    ))
    .encode(DigestConfig::default());
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = connect(&srv);
        c.send_raw(&half[..20]).expect("send");
        held.push(c);
    }
    // The fifth from the same address is closed at once, before any byte is read.
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = connect(&srv);
    let seen = expect_conn_closed(&mut extra, Duration::from_secs(1));
    assert!(seen.is_empty(), "{seen:?}");
    // The login timeout frees the slots.
    for c in &mut held {
        let seen = expect_conn_closed(c, Duration::from_secs(5));
        assert!(seen.is_empty(), "{seen:?}");
    }
    fresh_round_trip(&mut srv);
}
