use super::*;
use iscsi_wire::{encode, Decoder, DecoderConfig, DigestConfig, Pdu};

const BS: u32 = 512;

fn params() -> Params {
    Params {
        lun: 0,
        immediate_max: 1024,
        send_segment_max: 1024,
        recv_segment_max: 262_144,
        cmd_sn: 10,
        exp_stat_sn: 100,
        max_cmd_sn: 10 + 63,
    }
}

fn workload(bytes: u64, write_pct: u32, verify: bool) -> Workload {
    Workload::new(BS, bytes, 1024, write_pct, true, false, verify)
}

/// Decode everything the engine queued for sending.
fn sent(e: &mut Engine) -> Vec<Pdu> {
    let bytes = std::mem::take(&mut e.out);
    let mut d = Decoder::new(DecoderConfig {
        digests: DigestConfig::default(),
        max_data_segment: 1 << 20,
    });
    let mut at = 0;
    let mut pdus = Vec::new();
    while at < bytes.len() {
        let (n, pdu) = d.decode(&bytes[at..]).expect("decodes");
        at += n;
        pdus.push(pdu.expect("whole PDUs only"));
    }
    pdus
}

/// Hand `pdus` to the engine in `chunk`-byte reads.
fn feed(e: &mut Engine, pdus: &[Pdu], chunk: usize, wl: &mut Workload, st: &mut Stats) {
    let mut bytes = Vec::new();
    for p in pdus {
        encode(p, DigestConfig::default(), &mut bytes);
    }
    for piece in bytes.chunks(chunk) {
        let space = e.input_space();
        space[..piece.len()].copy_from_slice(piece);
        e.received(piece.len());
        e.process(1_000_000, wl, st).expect("no protocol error");
    }
}

fn commands(pdus: &[Pdu]) -> Vec<ScsiCommand> {
    pdus.iter()
        .filter_map(|p| match &p.bhs {
            Bhs::ScsiCommand(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn data_in(itt: u32, stat_sn: Option<u32>, offset: u32, data: Vec<u8>) -> Pdu {
    Pdu::new(
        DataIn {
            final_: stat_sn.is_some(),
            status_present: stat_sn.is_some(),
            status: GOOD,
            itt,
            ttt: RESERVED,
            stat_sn: stat_sn.unwrap_or(0),
            exp_cmd_sn: 11,
            max_cmd_sn: 80,
            buffer_offset: offset,
            ..DataIn::default()
        },
        data,
    )
}

#[test]
fn issues_within_slots_and_window_and_completes_reads() {
    let mut wl = workload(1024, 0, false);
    let mut st = Stats::default();
    let mut p = params();
    p.max_cmd_sn = 12; // window admits CmdSN 10, 11, 12
    let mut e = Engine::new(p, 4, &[]);
    assert_eq!(e.issue(500, &mut wl, 1), 1);
    assert_eq!(e.issue(500, &mut wl, usize::MAX), 2);
    let cmds = commands(&sent(&mut e));
    assert_eq!(cmds.len(), 3);
    for (i, c) in cmds.iter().enumerate() {
        assert_eq!(c.cmd_sn, 10 + i as u32);
        assert_eq!(c.exp_stat_sn, 100);
        assert!(c.read && !c.write && c.final_);
        assert_eq!(c.expected_data_len, 1024);
        assert_eq!(c.cdb[..14], cdb::read16(2 * i as u64, 2)[..14]);
    }
    // The first completes in two Data-In PDUs (fed a few bytes at a time); the window opens.
    let itt = cmds[0].itt;
    let pdus = [
        data_in(itt, None, 0, vec![1; 512]),
        data_in(itt, Some(100), 512, vec![2; 512]),
    ];
    feed(&mut e, &pdus, 7, &mut wl, &mut st);
    assert_eq!((st.ios, st.errors, st.bytes), (1, 0, 1024));
    assert!((st.hist.percentile(0.5) / 999_500.0 - 1.0).abs() < 0.02);
    assert_eq!(e.in_flight(), 2);
    assert_eq!(
        e.issue(2_000, &mut wl, usize::MAX),
        2,
        "the window opened: both free slots"
    );
    let again = commands(&sent(&mut e));
    assert_eq!(again[0].exp_stat_sn, 101);
    assert_eq!(again[0].itt & 0xffff, itt & 0xffff, "the freed slot");
    assert_ne!(again[0].itt, itt, "with a new tag");
    // A late PDU for the old tag is a protocol error.
    let mut bytes = Vec::new();
    encode(
        &data_in(itt, Some(101), 0, vec![0; 4]),
        DigestConfig::default(),
        &mut bytes,
    );
    e.input_space()[..bytes.len()].copy_from_slice(&bytes);
    e.received(bytes.len());
    assert!(e.process(0, &mut wl, &mut st).is_err());
}

#[test]
fn writes_send_immediate_data_and_answer_r2ts_with_stamped_data_out() {
    let mut wl = workload(4096, 100, true);
    let mut st = Stats::default();
    let mut e = Engine::new(params(), 1, &[]);
    assert_eq!(e.issue(0, &mut wl, usize::MAX), 1);
    let out = sent(&mut e);
    let cmd = &commands(&out)[0];
    assert!(cmd.write && cmd.final_ && !cmd.read);
    assert_eq!(out[0].data.len(), 1024, "immediate data up to the limit");
    let r2t = Pdu::new(
        R2t {
            itt: cmd.itt,
            ttt: 0x77,
            stat_sn: 100,
            exp_cmd_sn: 11,
            max_cmd_sn: 80,
            buffer_offset: 1024,
            desired_len: 3072,
            ..R2t::default()
        },
        Vec::new(),
    );
    feed(&mut e, &[r2t], 1000, &mut wl, &mut st);
    let outs = sent(&mut e);
    assert_eq!(outs.len(), 3);
    let mut whole = out[0].data.clone();
    for (i, p) in outs.iter().enumerate() {
        let Bhs::DataOut(d) = &p.bhs else {
            panic!("not a Data-Out: {:?}", p.bhs)
        };
        assert_eq!((d.itt, d.ttt, d.data_sn), (cmd.itt, 0x77, i as u32));
        assert_eq!(d.buffer_offset, 1024 * (i as u32 + 1));
        assert_eq!(d.final_, i == 2);
        whole.extend_from_slice(&p.data);
    }
    let rsp = Pdu::new(
        ScsiResponse {
            itt: cmd.itt,
            stat_sn: 100,
            exp_cmd_sn: 11,
            max_cmd_sn: 80,
            ..ScsiResponse::default()
        },
        Vec::new(),
    );
    feed(&mut e, &[rsp], 4096, &mut wl, &mut st);
    assert_eq!((st.ios, st.errors), (1, 0));
    // What was sent is what a read of those blocks must return.
    let v = wl.verifier.as_mut().expect("verifying");
    let lba = cmd.cdb[9] as u64;
    v.check(lba, 0, &whole);
    assert_eq!((v.checked, v.mismatched), (8, 0));
}

#[test]
fn failures_pings_and_stat_sn_gaps() {
    let mut wl = workload(512, 0, false);
    let mut st = Stats::default();
    let mut e = Engine::new(params(), 2, &[]);
    e.issue(0, &mut wl, usize::MAX);
    let cmds = commands(&sent(&mut e));
    let mut sense = vec![0, 18, 0x70, 0, 0x05, 0, 0, 0, 0, 10];
    sense.extend_from_slice(&[0, 0, 0, 0, 0x21, 0x00, 0, 0, 0, 0]);
    let check = Pdu::new(
        ScsiResponse {
            status: 0x02,
            itt: cmds[0].itt,
            stat_sn: 100,
            max_cmd_sn: 80,
            exp_cmd_sn: 11,
            ..ScsiResponse::default()
        },
        sense.clone(),
    );
    assert_eq!(describe_sense(&sense), ", sense 5/21/00");
    let ping = Pdu::new(
        NopIn {
            itt: RESERVED,
            ttt: 0x55,
            lun: 1 << 48,
            stat_sn: 101,
            exp_cmd_sn: 12,
            max_cmd_sn: 80,
        },
        b"ping".to_vec(),
    );
    // StatSN 102 skipped to 103: an anomaly, counted.
    let late = data_in(cmds[1].itt, Some(103), 0, vec![0; 512]);
    feed(&mut e, &[check, ping, late], 4096, &mut wl, &mut st);
    assert_eq!((st.ios, st.errors), (1, 2));
    let out = sent(&mut e);
    let Bhs::NopOut(n) = &out[0].bhs else {
        panic!("no NOP-Out: {out:?}")
    };
    assert_eq!(
        (n.itt, n.ttt, n.lun, n.immediate),
        (RESERVED, 0x55, 1 << 48, true)
    );
    assert_eq!(out[0].data, b"ping");
    assert_eq!(e.in_flight(), 0);
    // Logout.
    e.logout();
    assert_eq!(e.issue(0, &mut wl, usize::MAX), 0, "nothing after logout");
    let lo = sent(&mut e);
    assert!(matches!(lo[0].bhs, Bhs::LogoutRequest(ref l) if l.itt == LOGOUT_ITT));
    let rsp = Pdu::new(
        iscsi_wire::LogoutResponse {
            itt: LOGOUT_ITT,
            stat_sn: 104,
            ..Default::default()
        },
        Vec::new(),
    );
    feed(&mut e, &[rsp], 48, &mut wl, &mut st);
    assert!(e.logged_out());
}

#[test]
fn receive_buffer_grows_for_a_large_pdu() {
    let mut wl = workload(512 * 1024, 0, false);
    let mut st = Stats::default();
    let mut p = params();
    p.recv_segment_max = 1 << 20;
    let mut e = Engine::new(p, 1, &[]);
    e.issue(0, &mut wl, usize::MAX);
    let itt = commands(&sent(&mut e))[0].itt;
    feed(
        &mut e,
        &[data_in(itt, Some(100), 0, vec![9; 512 * 1024])],
        100_000,
        &mut wl,
        &mut st,
    );
    assert_eq!((st.ios, st.errors), (1, 0));
}

#[test]
fn offsets_stay_in_range_and_follow_the_mix() {
    // 10 blocks, 3 per command: positions 0, 3, 6 only.
    let mut seq = Workload::new(BS, 3 * 512, 10, 0, true, false, false);
    let lbas: Vec<u64> = (0..4).map(|_| seq.pick().expect("free").0).collect();
    assert_eq!(lbas, [0, 3, 6, 0]);
    let mut rnd = Workload::new(BS, 512, 1000, 30, false, false, false);
    let picks: Vec<(u64, bool)> = (0..10_000).map(|_| rnd.pick().expect("free")).collect();
    assert!(picks.iter().all(|&(lba, _)| lba < 1000));
    let writes = picks.iter().filter(|p| p.1).count();
    assert!(
        (2500..3500).contains(&writes),
        "{writes} writes of 10000 at 30%"
    );
    let all = Workload::new(BS, 512, 8, 100, false, false, false).pick();
    assert!(all.is_some_and(|p| p.1));
}

#[test]
fn verifying_never_overlaps_a_write_in_flight() {
    // One position only: a write in flight blocks every other command.
    let mut wl = Workload::new(BS, 512, 1, 100, false, false, true);
    let mut e = Engine::new(params(), 4, &[]);
    assert_eq!(e.issue(0, &mut wl, usize::MAX), 1);
}
