//! Helpers for driving a [`Connection`] in unit tests.

use std::sync::Arc;

use iscsi_wire::{
    encode, encode_text, parse_text, Bhs, DataOut, Decoder, DecoderConfig, DigestConfig,
    LoginRequest, LoginResponse, NopOut, Pdu, ScsiCommand,
};

use crate::{Catalog, Connection, ConnectionConfig, Limits, Output, TargetEntry};

pub const TARGET: &str = "iqn.2024-01.org.ustgt:disk1";
pub const TARGET2: &str = "iqn.2024-01.org.ustgt:disk2";
pub const INITIATOR: &str = "iqn.1993-08.org.debian:01:abcdef";
pub const ISID: [u8; 6] = [0x80, 0, 0x02, 0x3d, 0, 0];
pub const LOGIN_CMD_SN: u32 = 100;

pub fn catalog() -> Catalog {
    Catalog {
        targets: vec![
            TargetEntry {
                name: TARGET.into(),
                alias: Some("disk one".into()),
                portals: vec!["127.0.0.1:3260,1".into(), "[::1]:3260,1".into()],
            },
            TargetEntry {
                name: TARGET2.into(),
                alias: None,
                portals: Vec::new(),
            },
        ],
    }
}

pub fn cfg_with(limits: Limits) -> ConnectionConfig {
    ConnectionConfig {
        catalog: Arc::new(catalog()),
        limits,
        portal_group_tag: 1,
        local_portal: "10.0.0.1:3260".into(),
        tsih: 7,
    }
}

pub fn cfg() -> ConnectionConfig {
    cfg_with(Limits::default())
}

pub fn kv(pairs: &[(&str, &str)]) -> Vec<u8> {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    encode_text(&owned)
}

pub fn keys(data: &[u8]) -> Vec<(String, String)> {
    parse_text(data).expect("valid text")
}

pub fn key<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
}

pub fn login_pdu(csg: u8, nsg: u8, transit: bool, cont: bool, data: Vec<u8>) -> Pdu {
    Pdu::new(
        LoginRequest {
            transit,
            cont,
            csg,
            nsg,
            version_max: 0,
            version_min: 0,
            isid: ISID,
            tsih: 0,
            itt: 0x1000,
            cid: 1,
            cmd_sn: LOGIN_CMD_SN,
            exp_stat_sn: 500,
        },
        data,
    )
}

/// Drain every output.
pub fn drain(c: &mut Connection) -> Vec<Output> {
    std::iter::from_fn(|| c.poll()).collect()
}

/// The transmitted PDUs of `outs`.
pub fn sent(outs: &[Output]) -> Vec<Pdu> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Transmit(p, _) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

pub fn login_resp(p: &Pdu) -> LoginResponse {
    match &p.bhs {
        Bhs::LoginResponse(r) => r.clone(),
        other => panic!("expected login response, got {other:?}"),
    }
}

/// Encode an output PDU with its digests and decode it back, proving the bytes.
pub fn roundtrip(p: &Pdu, d: DigestConfig) -> Pdu {
    let mut wire = Vec::new();
    encode(p, d, &mut wire);
    let mut dec = Decoder::new(DecoderConfig {
        digests: d,
        max_data_segment: 1 << 24,
    });
    let (used, pdu) = dec.decode(&wire).expect("decodes");
    assert_eq!(used, wire.len());
    pdu.expect("complete PDU")
}

/// Log in a normal session with extra operational keys; returns the connection
/// (outputs drained) and the keys of the final response.
pub fn login_with(limits: Limits, op_keys: &[(&str, &str)]) -> (Connection, Vec<(String, String)>) {
    let mut c = Connection::new(cfg_with(limits), 0);
    let first = kv(&[
        ("InitiatorName", INITIATOR),
        ("SessionType", "Normal"),
        ("TargetName", TARGET),
        ("AuthMethod", "None"),
    ]);
    c.handle_pdu(login_pdu(0, 1, true, false, first), 1);
    let outs = drain(&mut c);
    let r = login_resp(&sent(&outs)[0]);
    assert_eq!((r.status_class, r.status_detail), (0, 0));
    assert!(r.transit);
    c.handle_pdu(login_pdu(1, 3, true, false, kv(op_keys)), 2);
    let outs = drain(&mut c);
    let p = &sent(&outs)[0];
    let r = login_resp(p);
    assert!(r.transit && r.nsg == 3, "{r:?}");
    assert!(matches!(outs.last(), Some(Output::LoggedIn(_))));
    (c, keys(&p.data))
}

/// A logged-in normal session with default limits and the usual Linux keys.
pub fn logged_in() -> Connection {
    login_with(
        Limits::default(),
        &[
            ("MaxRecvDataSegmentLength", "8192"),
            ("MaxBurstLength", "262144"),
            ("FirstBurstLength", "65536"),
            ("InitialR2T", "No"),
            ("ImmediateData", "Yes"),
            ("MaxOutstandingR2T", "1"),
        ],
    )
    .0
}

pub fn cmd(itt: u32, cmd_sn: u32) -> ScsiCommand {
    ScsiCommand {
        final_: true,
        attr: 1,
        itt,
        cmd_sn,
        ..Default::default()
    }
}

pub fn read_cmd(itt: u32, cmd_sn: u32, edtl: u32) -> Pdu {
    let mut c = cmd(itt, cmd_sn);
    c.read = true;
    c.expected_data_len = edtl;
    c.cdb[0] = 0x28;
    Pdu::new(c, Vec::new())
}

pub fn write_cmd(itt: u32, cmd_sn: u32, edtl: u32, final_: bool, imm: Vec<u8>) -> Pdu {
    let mut c = cmd(itt, cmd_sn);
    c.write = true;
    c.final_ = final_;
    c.expected_data_len = edtl;
    c.cdb[0] = 0x2a;
    Pdu::new(c, imm)
}

pub fn tur(itt: u32, cmd_sn: u32) -> Pdu {
    Pdu::new(cmd(itt, cmd_sn), Vec::new())
}

pub fn data_out(itt: u32, ttt: u32, data_sn: u32, offset: u32, final_: bool, data: Vec<u8>) -> Pdu {
    Pdu::new(
        DataOut {
            final_,
            lun: 0,
            itt,
            ttt,
            exp_stat_sn: 0,
            data_sn,
            buffer_offset: offset,
        },
        data,
    )
}

pub fn nop_out(itt: u32, ttt: u32, cmd_sn: u32, immediate: bool, data: Vec<u8>) -> Pdu {
    Pdu::new(
        NopOut {
            immediate,
            lun: 0,
            itt,
            ttt,
            cmd_sn,
            exp_stat_sn: 0,
        },
        data,
    )
}

/// Tasks handed out for execution.
pub fn executed(outs: &[Output]) -> Vec<crate::Task> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Execute(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// ExpCmdSN right after `logged_in()`.
pub const FIRST_CMD_SN: u32 = LOGIN_CMD_SN;
