//! A scripted in-process target that checks the initiator's side of login, R2T answers,
//! Data-In reassembly and ping against exact header fields.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use iscsi_wire::*;

use crate::{LoginOptions, ScsiRequest, Session};

struct Peer {
    s: TcpStream,
    dec: Decoder,
    stat_sn: u32,
    pending: Vec<u8>,
}

impl Peer {
    fn recv(&mut self) -> Pdu {
        let mut buf = [0u8; 4096];
        loop {
            if !self.pending.is_empty() {
                let (used, pdu) = self.dec.decode(&self.pending).expect("decode");
                self.pending.drain(..used);
                if let Some(p) = pdu {
                    return p;
                }
            }
            let n = self.s.read(&mut buf).expect("read");
            assert!(n > 0, "initiator closed");
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    fn send(&mut self, bhs: impl Into<Bhs>, data: Vec<u8>) {
        let mut out = Vec::new();
        encode(&Pdu::new(bhs, data), DigestConfig::default(), &mut out);
        self.s.write_all(&out).expect("write");
    }

    fn next_stat(&mut self) -> u32 {
        self.stat_sn += 1;
        self.stat_sn - 1
    }

    fn login(&mut self) {
        let p = self.recv();
        let Bhs::LoginRequest(r) = p.bhs else {
            panic!("{p:?}")
        };
        assert_eq!((r.csg, r.nsg, r.transit, r.cmd_sn), (0, 1, true, 1));
        let text = parse_text(&p.data).expect("text");
        assert!(text.contains(&("SessionType".into(), "Normal".into())));
        let rsp = |r: &LoginRequest, stat_sn, nsg| LoginResponse {
            transit: true,
            csg: r.csg,
            nsg,
            isid: r.isid,
            tsih: 5,
            itt: r.itt,
            stat_sn,
            exp_cmd_sn: 1,
            max_cmd_sn: 64,
            ..LoginResponse::default()
        };
        let s = self.next_stat();
        self.send(rsp(&r, s, 1), Vec::new());
        let p = self.recv();
        let Bhs::LoginRequest(r) = p.bhs else {
            panic!("{p:?}")
        };
        assert_eq!((r.csg, r.nsg, r.exp_stat_sn), (1, 3, 101));
        let keys: Vec<(String, String)> = [
            ("HeaderDigest", "None"),
            ("DataDigest", "None"),
            ("MaxRecvDataSegmentLength", "1024"),
            ("InitialR2T", "Yes"),
            ("ImmediateData", "No"),
            ("MaxBurstLength", "4096"),
            ("FirstBurstLength", "4096"),
            ("MaxOutstandingR2T", "2"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = self.next_stat();
        self.send(rsp(&r, s, 3), encode_text(&keys));
    }

    fn write_with_two_r2ts(&mut self) {
        let p = self.recv();
        let Bhs::ScsiCommand(c) = p.bhs else {
            panic!("{p:?}")
        };
        assert!(c.write && c.final_ && p.data.is_empty());
        assert_eq!(
            (c.cmd_sn, c.exp_stat_sn, c.expected_data_len),
            (1, 102, 8192)
        );
        for (sn, ttt) in [(0u32, 0x100u32), (1, 0x200)] {
            let r2t = R2t {
                itt: c.itt,
                ttt,
                stat_sn: self.stat_sn,
                exp_cmd_sn: 2,
                max_cmd_sn: 64,
                r2t_sn: sn,
                buffer_offset: sn * 4096,
                desired_len: 4096,
                ..R2t::default()
            };
            self.send(r2t, Vec::new());
        }
        let mut got = vec![0u8; 8192];
        for i in 0..8u32 {
            let p = self.recv();
            let Bhs::DataOut(d) = p.bhs else {
                panic!("{p:?}")
            };
            let (seq, k) = (i / 4, i % 4);
            assert_eq!(d.ttt, 0x100 * (seq + 1));
            assert_eq!(
                (d.data_sn, d.buffer_offset, d.final_),
                (k, i * 1024, k == 3)
            );
            assert_eq!(p.data.len(), 1024);
            got[(i * 1024) as usize..][..1024].copy_from_slice(&p.data);
        }
        assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        let s = self.next_stat();
        let rsp = ScsiResponse {
            itt: c.itt,
            stat_sn: s,
            exp_cmd_sn: 2,
            max_cmd_sn: 64,
            exp_data_sn: 2,
            ..ScsiResponse::default()
        };
        self.send(rsp, Vec::new());
    }

    fn read_in_three(&mut self) {
        let p = self.recv();
        let Bhs::ScsiCommand(c) = p.bhs else {
            panic!("{p:?}")
        };
        assert!(c.read && c.final_);
        assert_eq!((c.cmd_sn, c.expected_data_len), (2, 3000));
        for (sn, off, len) in [(0u32, 0u32, 1024u32), (1, 1024, 1024), (2, 2048, 952)] {
            let last = sn == 2;
            let d = DataIn {
                final_: last,
                status_present: last,
                itt: c.itt,
                ttt: 0xffff_ffff,
                stat_sn: if last { self.next_stat() } else { 0 },
                exp_cmd_sn: 3,
                max_cmd_sn: 64,
                data_sn: sn,
                buffer_offset: off,
                ..DataIn::default()
            };
            self.send(d, (off..off + len).map(|i| (i % 7) as u8).collect());
        }
    }

    fn ping(&mut self) {
        let p = self.recv();
        let Bhs::NopOut(n) = p.bhs else {
            panic!("{p:?}")
        };
        assert!(n.immediate && n.ttt == 0xffff_ffff && n.cmd_sn == 3);
        let s = self.next_stat();
        let rsp = NopIn {
            itt: n.itt,
            ttt: 0xffff_ffff,
            stat_sn: s,
            exp_cmd_sn: 3,
            max_cmd_sn: 64,
            ..NopIn::default()
        };
        self.send(rsp, p.data);
    }
}

#[test]
fn scripted_target_session() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let t = thread::spawn(move || {
        let (s, _) = l.accept().expect("accept");
        let mut p = Peer {
            s,
            dec: Decoder::new(DecoderConfig::default()),
            stat_sn: 100,
            pending: Vec::new(),
        };
        p.login();
        p.write_with_two_r2ts();
        p.read_in_three();
        p.ping();
    });
    let mut s = Session::login(addr, LoginOptions::normal("iqn.x:t")).expect("login");
    assert_eq!(s.tsih, 5);
    assert_eq!(s.negotiated.max_outstanding_r2t, 2);
    assert!(!s.negotiated.immediate_data && s.negotiated.initial_r2t);
    let data: Vec<u8> = (0..8192).map(|i| (i % 251) as u8).collect();
    let mut req = ScsiRequest::write(0, &crate::cdb::write16(0, 16), data);
    req.collect_r2ts = Some(Duration::from_millis(50));
    let w = s.scsi(req).expect("write");
    assert!(w.good() && w.violations.is_empty(), "{}", w.describe());
    assert_eq!(w.max_r2ts_outstanding, 2);
    assert_eq!(w.sent.len(), 9);
    let r = s
        .scsi(ScsiRequest::read(0, &crate::cdb::read16(0, 6), 3000))
        .expect("read");
    assert!(r.good() && r.violations.is_empty(), "{}", r.describe());
    assert!(r.status_in_data_in);
    assert_eq!(
        r.data_in,
        (0..3000u32).map(|i| (i % 7) as u8).collect::<Vec<_>>()
    );
    let (nop, echo) = s.ping(b"abc").expect("ping");
    assert_eq!(echo, b"abc");
    assert_eq!(nop.ttt, 0xffff_ffff);
    assert!(s.anomalies.is_empty(), "{:?}", s.anomalies);
    t.join().expect("target thread");
}
