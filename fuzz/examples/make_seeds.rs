//! Writes the seed corpora in `fuzz/seeds/<target>/`: real login exchanges, full feature
//! sequences, CDBs and parameter lists, configuration files. Run from anywhere:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
//! ```
//!
//! The files are deterministic; rerun after changing an input format in `src/`.

use std::fs;
use std::path::{Path, PathBuf};

use iscsi_wire::{
    encode, encode_text, lun_from_index, Bhs, DataOut, DigestConfig, LoginRequest, NopOut, Pdu,
    ScsiCommand, TextRequest,
};
use ustgt_fuzz::driver::{INITIATOR, ISID, TARGET, TARGET2};
use ustgt_fuzz::input::Seed;
use ustgt_fuzz::login::{self, chap_flag, flags};
use ustgt_fuzz::session::{self, cmd_flag, len_class};
use ustgt_fuzz::{cdb, toml_config};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let mut n = 0;
    for (target, seeds) in [
        ("decode_pdu", decode_pdu()),
        ("parse_text", parse_text()),
        ("login", login_seeds()),
        ("session", session_seeds()),
        ("cdb", cdb_seeds()),
        ("config", config_seeds()),
    ] {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("create seed directory");
        for (name, bytes) in seeds {
            fs::write(dir.join(name), bytes).expect("write seed");
            n += 1;
        }
    }
    println!("wrote {n} seeds under {}", root.display());
}

type Seeds = Vec<(&'static str, Vec<u8>)>;

fn text(pairs: &[(&str, &str)]) -> Vec<u8> {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    encode_text(&owned)
}

/// The operational keys open-iscsi sends.
const LINUX_KEYS: &[(&str, &str)] = &[
    ("HeaderDigest", "None"),
    ("DataDigest", "None"),
    ("MaxConnections", "1"),
    ("InitialR2T", "No"),
    ("ImmediateData", "Yes"),
    ("MaxRecvDataSegmentLength", "262144"),
    ("MaxBurstLength", "16776192"),
    ("FirstBurstLength", "262144"),
    ("DefaultTime2Wait", "2"),
    ("DefaultTime2Retain", "0"),
    ("MaxOutstandingR2T", "1"),
    ("DataPDUInOrder", "Yes"),
    ("DataSequenceInOrder", "Yes"),
    ("ErrorRecoveryLevel", "0"),
];

fn security(target: Option<&str>, auth: &str) -> Vec<u8> {
    let mut p = vec![("InitiatorName", INITIATOR)];
    match target {
        Some(t) => p.extend([("SessionType", "Normal"), ("TargetName", t)]),
        None => p.push(("SessionType", "Discovery")),
    }
    p.push(("AuthMethod", auth));
    text(&p)
}

fn login_req(f: u8, data: Vec<u8>) -> Pdu {
    let mut r: LoginRequest = login::request(f, 0, 0x1000);
    r.isid = ISID;
    Pdu::new(r, data)
}

fn wire(pdus: &[Pdu], d: DigestConfig) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pdus {
        encode(p, d, &mut out);
    }
    out
}

fn decode_pdu() -> Seeds {
    let linux = [
        login_req(flags(true, false, 0, 1), security(Some(TARGET), "None")),
        login_req(flags(true, false, 1, 3), text(LINUX_KEYS)),
    ];
    let mut read = ScsiCommand {
        final_: true,
        read: true,
        attr: 1,
        itt: 7,
        expected_data_len: 4096,
        cmd_sn: 3,
        ..ScsiCommand::default()
    };
    read.cdb[..16].copy_from_slice(&rw16(0x88, 8, 8));
    let mut write = ScsiCommand {
        write: true,
        attr: 1,
        itt: 8,
        expected_data_len: 8192,
        cmd_sn: 4,
        ..ScsiCommand::default()
    };
    write.cdb[..16].copy_from_slice(&rw16(0x8a, 0, 16));
    let dout = DataOut {
        final_: true,
        itt: 8,
        ttt: 0xffff_ffff,
        buffer_offset: 4096,
        ..DataOut::default()
    };
    let nop = NopOut {
        immediate: true,
        itt: 9,
        ttt: 0xffff_ffff,
        cmd_sn: 5,
        ..NopOut::default()
    };
    let ffp = [
        Pdu::new(read, Vec::new()),
        Pdu::new(write, vec![0x5a; 4096]),
        Pdu::new(dout, vec![0xa5; 4096]),
        Pdu::new(nop, b"ping".to_vec()),
    ];
    let mut ext = Pdu::new(
        ScsiCommand {
            final_: true,
            attr: 1,
            itt: 10,
            ..ScsiCommand::default()
        },
        Vec::new(),
    );
    ext.ahs = vec![0, 5, 1, 0, 0xa1, 0xa2, 0xa3, 0xa4];
    let seed = |head: [u8; 4], bytes: Vec<u8>| {
        let mut s = head.to_vec();
        s.extend(bytes);
        s
    };
    let none = DigestConfig::default();
    let both = DigestConfig {
        header: true,
        data: true,
    };
    vec![
        ("linux-login", seed([0, 0x20, 0, 0xff], wire(&linux, none))),
        ("ffp", seed([0, 0x20, 0, 0x30], wire(&ffp, none))),
        ("ffp-digests", seed([3, 0x20, 0, 0x07], wire(&ffp, both))),
        ("ahs", seed([0, 0x20, 0, 0xff], wire(&[ext], none))),
        ("too-long", seed([0, 0x01, 0, 0xff], wire(&ffp[1..2], none))),
    ]
}

fn parse_text() -> Seeds {
    vec![
        ("security", security(Some(TARGET), "CHAP,None")),
        ("operational", text(LINUX_KEYS)),
        ("sendtargets", b"SendTargets=All\0".to_vec()),
        (
            "chap",
            text(&[
                ("CHAP_N", "alice"),
                ("CHAP_R", "0x0123456789abcdef"),
                ("CHAP_I", "7"),
            ]),
        ),
        ("ext", b"X-com.example.k=v\0X#k=\0unterminated=1".to_vec()),
    ]
}

/// Login op: a request with flags and text.
fn op_login(s: &mut Seed, f: u8, data: &[u8]) {
    s.u8(login::op::LOGIN).u8(f).u8(0).blob(data);
}

fn op_chap(s: &mut Seed, f: u8) {
    s.u8(login::op::CHAP).u8(f).u8(0);
}

fn login_seeds() -> Seeds {
    // Header byte 0: bit 0 selects ChapAuthenticator, the rest the policy (driver::Policy).
    const NOAUTH: u8 = 0;
    let policy = |p: u8| 1 | p << 1;
    let (chap, mutual, restricted, acl_auth) = (policy(1), policy(2), policy(3), policy(5));
    let op_keys = text(LINUX_KEYS);
    let mut out = Vec::new();
    let mut normal = Seed::new();
    normal.u8(NOAUTH).u8(0).u8(0);
    op_login(
        &mut normal,
        flags(true, false, 0, 1),
        &security(Some(TARGET), "None"),
    );
    op_login(&mut normal, flags(true, false, 1, 3), &op_keys);
    out.push(("noauth-normal", normal.0));

    let mut disc = Seed::new();
    disc.u8(NOAUTH).u8(1).u8(0);
    op_login(&mut disc, flags(true, false, 0, 3), &security(None, "None"));
    out.push(("noauth-discovery-direct", disc.0));

    let mut raw = Seed::new();
    raw.u8(NOAUTH).u8(0).u8(0);
    let pdus = [
        login_req(flags(true, false, 0, 1), security(Some(TARGET2), "None")),
        login_req(flags(true, false, 1, 3), op_keys.clone()),
    ];
    raw.u8(login::op::RAW)
        .blob(&wire(&pdus, DigestConfig::default()));
    out.push(("noauth-raw", raw.0));

    let mut cont = Seed::new();
    cont.u8(NOAUTH).u8(0).u8(0);
    let sec = security(Some(TARGET), "None");
    let (a, b) = sec.split_at(sec.len() / 2);
    op_login(&mut cont, flags(false, true, 0, 0), a);
    op_login(&mut cont, flags(true, false, 0, 1), b);
    op_login(&mut cont, flags(true, false, 1, 3), &op_keys);
    out.push(("noauth-continuation", cont.0));

    for (name, auth, alg, f) in [
        (
            "chap-md5",
            chap,
            "5",
            chap_flag::CORRECT | chap_flag::TRANSIT,
        ),
        (
            "chap-sha256-base64",
            chap,
            "7",
            chap_flag::CORRECT | chap_flag::TRANSIT | chap_flag::BASE64,
        ),
        (
            "chap-mutual",
            mutual,
            "8,7,6,5",
            chap_flag::CORRECT | chap_flag::MUTUAL | chap_flag::TRANSIT,
        ),
        (
            "chap-mutual-restricted",
            restricted,
            "8,7,6,5",
            chap_flag::CORRECT | chap_flag::MUTUAL | chap_flag::TRANSIT,
        ),
        (
            "chap-reflect",
            mutual,
            "5",
            chap_flag::CORRECT | chap_flag::MUTUAL | chap_flag::REFLECT,
        ),
        ("chap-wrong-secret", chap, "6", chap_flag::TRANSIT),
        (
            "chap-to-ffp",
            chap,
            "5",
            chap_flag::CORRECT | chap_flag::TRANSIT | chap_flag::TO_FFP,
        ),
    ] {
        let mut s = Seed::new();
        s.u8(auth).u8(0).u8(0x42);
        op_login(
            &mut s,
            flags(false, false, 0, 0),
            &security(Some(TARGET), "CHAP,None"),
        );
        op_login(&mut s, flags(false, false, 0, 0), &text(&[("CHAP_A", alg)]));
        op_chap(&mut s, f);
        op_login(&mut s, flags(true, false, 1, 3), &op_keys);
        out.push((name, s.0));
    }

    let mut acl = Seed::new();
    acl.u8(acl_auth).u8(0).u8(1);
    op_login(&mut acl, flags(true, false, 0, 3), &security(None, "None"));
    out.push(("acl-discovery", acl.0));
    let mut deny = Seed::new();
    deny.u8(acl_auth).u8(0).u8(1);
    let denied = text(&[
        ("InitiatorName", "iqn.1993-08.org.debian:01:deny-me"),
        ("TargetName", TARGET),
        ("AuthMethod", "None"),
    ]);
    op_login(&mut deny, flags(true, false, 0, 1), &denied);
    out.push(("acl-deny", deny.0));

    let mut keys = Seed::new();
    keys.u8(NOAUTH).u8(0).u8(0);
    // KEYS op: InitiatorName=INITIATOR, TargetName=TARGET, AuthMethod=None (table indexes).
    keys.u8(login::op::KEYS).u8(flags(true, false, 0, 1)).u8(0);
    keys.u8(3).bytes(&[0, 0, 1, 1, 3, 6]);
    keys.u8(login::op::MANY)
        .u8(flags(true, false, 1, 3))
        .u8(0)
        .u8(0)
        .u16(600);
    out.push(("keys-and-many", keys.0));

    let mut timeout = Seed::new();
    timeout.u8(NOAUTH).u8(1).u8(0);
    op_login(
        &mut timeout,
        flags(false, false, 0, 0),
        &security(Some(TARGET), "None"),
    );
    timeout.u8(login::op::TIMEOUT).u8(1).u16(0);
    out.push(("timeout", timeout.0));
    out
}

/// Session header: limits byte, keys byte, flags byte, first CmdSN byte (session::setup).
fn session_head(h: [u8; 4]) -> Seed {
    let mut s = Seed::new();
    s.bytes(&h);
    s
}

/// SCSI command op with a length class BLOCKS of `blocks` (1..=64) and immediate data.
fn op_cmd(s: &mut Seed, f: u8, itt: u8, blocks: u8, imm: u16, opcode: u8) {
    s.u8(session::op::CMD).u8(f).u8(0).u8(itt);
    s.u8(len_class::BLOCKS)
        .u8(blocks - 1)
        .u16(imm)
        .u8(opcode)
        .u8(0);
}

fn op_complete(s: &mut Seed) {
    s.u8(session::op::COMPLETE)
        .u8(0)
        .u8(0)
        .u8(0)
        .u8(0)
        .u16(0)
        .u8(0);
}

fn session_seeds() -> Seeds {
    let (r, w, f) = (cmd_flag::READ, cmd_flag::WRITE, cmd_flag::FINAL);
    let mut out = Vec::new();
    // h[1] = 0xfa: MRDSL 8192, MaxBurst 65536, FirstBurst 65536, MaxOutstandingR2T 16.
    let mut read = session_head([0x13, 0xfa, 0, 0]);
    op_cmd(&mut read, r | f, 1, 8, 0, 0x88);
    op_complete(&mut read);
    read.u8(session::op::NOP).u8(0).u8(2).u8(16);
    read.u8(session::op::TEXT).u8(0).u8(0).u8(0);
    read.u8(session::op::LOGOUT).u8(0).u8(0);
    out.push(("read-text-logout", read.0));

    let mut write = session_head([0x13, 0xfa, 0, 0]);
    // 256 KiB (length class U24): 4 KiB immediate, unsolicited up to 64 KiB, then R2Ts.
    write
        .u8(session::op::CMD)
        .u8(w)
        .u8(0)
        .u8(2)
        .u8(len_class::U24)
        .u16(0x400);
    write.u16(4096).u8(0x8a).u8(0);
    write.u8(session::op::AUTO_DATA);
    op_complete(&mut write);
    out.push(("write-immediate-unsolicited-r2t", write.0));

    let mut r2t = session_head([0x93, 0x55, 0x03, 0]);
    op_cmd(&mut r2t, w | f, 3, 32, 0, 0x2a);
    r2t.u8(session::op::DATA_OUT).u8(0).u8(0).u16(1024);
    r2t.u8(session::op::AUTO_DATA);
    op_complete(&mut r2t);
    out.push(("write-initial-r2t", r2t.0));

    let mut tmf = session_head([0x13, 0xfa, 0, 0]);
    op_cmd(&mut tmf, r | f, 4, 1, 0, 0x28);
    op_cmd(&mut tmf, r | f, 5, 1, 0, 0x28);
    tmf.u8(session::op::TMF).u8(1).u8(4).u8(0).u8(0);
    tmf.u8(session::op::TMF).u8(5).u8(5).u8(0).u8(1);
    tmf.u8(session::op::TMF_DONE).u8(0).u8(0);
    tmf.u8(session::op::COMPLETE_ALL);
    tmf.u8(session::op::LOGOUT).u8(0).u8(0);
    out.push(("abort-reset", tmf.0));

    let mut gap = session_head([0x12, 0xfa, 0, 0x85]);
    gap.u8(session::op::CMD)
        .u8(r | f)
        .u8(0x05)
        .u8(6)
        .u8(len_class::U16)
        .u16(512);
    gap.u16(0).u8(0x28).u8(0);
    op_cmd(&mut gap, r | f, 7, 1, 0, 0x28);
    gap.u8(session::op::COMPLETE_ALL);
    out.push(("cmdsn-gap-wrap", gap.0));

    let mut disc = session_head([0x03, 0x00, 0x70, 0]);
    disc.u8(session::op::TEXT).u8(0).u8(0).u8(0);
    disc.u8(session::op::TEXT).u8(0).u8(4).u8(0);
    op_cmd(&mut disc, r | f, 1, 1, 0, 0x28);
    out.push(("discovery", disc.0));

    let mut nop = session_head([0x0b, 0xfa, 0x0c, 0]);
    for _ in 0..2 {
        nop.u8(session::op::TIMEOUT).u8(1).u16(0);
        nop.u8(session::op::NOP).u8(3).u8(0).u8(0);
    }
    nop.u8(session::op::NOP).u8(0).u8(1).u8(40);
    out.push(("nop-ping-digests", nop.0));

    let mut bidi = session_head([0x13, 0xfa, 0x80, 0]);
    bidi.u8(session::op::CMD).u8(r | w | f).u8(0x40).u8(8);
    bidi.u8(len_class::U16)
        .u16(512)
        .u16(512)
        .u8(0x89)
        .u8(0)
        .u16(300);
    bidi.u8(session::op::COMPLETE)
        .u8(0)
        .u8(0)
        .u8(0)
        .u8(2)
        .u16(100)
        .u8(0);
    out.push(("bidi-shared", bidi.0));

    let mut raw = session_head([0x13, 0xfa, 0, 0]);
    let mut c = ScsiCommand {
        final_: true,
        read: true,
        attr: 1,
        itt: 0x77,
        lun: lun_from_index(0),
        expected_data_len: 512,
        ..ScsiCommand::default()
    };
    c.cdb[0] = 0x12;
    let t = TextRequest {
        final_: true,
        immediate: true,
        itt: 0x78,
        ttt: 0xffff_ffff,
        ..TextRequest::default()
    };
    let pdus = [
        Pdu::new(c, Vec::new()),
        Pdu::new(Bhs::TextRequest(t), b"SendTargets=All\0".to_vec()),
    ];
    raw.u8(session::op::RAW)
        .blob(&wire(&pdus, DigestConfig::default()));
    raw.u8(session::op::COMPLETE_ALL);
    out.push(("raw", raw.0));
    out
}

fn rw16(opcode: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = opcode;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// cdb command op: flags, CDB, data, expected-length mode 1 (the data length) or 0.
fn op_cdb(s: &mut Seed, f: u8, cdb: &[u8], data: &[u8]) {
    s.u8(cdb::op::CMD)
        .u8(f)
        .u8(cdb.len() as u8)
        .bytes(cdb)
        .blob(data);
    s.u8(0);
    if f & cdb::flag::START != 0 {
        s.u8(0);
    }
}

fn pr_out(sa: u8, kind: u8) -> [u8; 10] {
    [0x5f, sa, kind, 0, 0, 0, 0, 0, 24, 0]
}

fn pr_params(key: u64, sa_key: u64) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    p[..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p
}

fn cdb_seeds() -> Seeds {
    use cdb::store_flag as sf;
    let mut out = Vec::new();
    let info: &[&[u8]] = &[
        &[0x00, 0, 0, 0, 0, 0],
        &[0x12, 0, 0, 0, 96, 0],
        &[0x12, 1, 0x00, 0, 255, 0],
        &[0x12, 1, 0x80, 0, 255, 0],
        &[0x12, 1, 0x83, 0, 255, 0],
        &[0x12, 1, 0xb0, 0, 64, 0],
        &[0x12, 1, 0xb1, 0, 64, 0],
        &[0x12, 1, 0xb2, 0, 64, 0],
        &[0x03, 0, 0, 0, 252, 0],
        &[0x03, 1, 0, 0, 252, 0],
        &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
        &[0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        &[0x1a, 0, 0x3f, 0, 255, 0],
        &[0x5a, 0, 0x3f, 0xff, 0, 0, 0, 0x10, 0, 0],
        &[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        &[0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0],
        &[0xa3, 0x0c, 0x01, 0x88, 0, 0, 0, 0, 0x20, 0, 0, 0],
        &[0xa3, 0x0d, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0],
        &[0x5e, 0, 0, 0, 0, 0, 0, 0x10, 0, 0],
        &[0x5e, 2, 0, 0, 0, 0, 0, 0x10, 0, 0],
        &[0x5e, 3, 0, 0, 0, 0, 0, 0x10, 0, 0],
    ];
    let mut s = Seed::new();
    s.u8(sf::RAM | sf::LUN1).u8(0).u8(0);
    for c in info {
        op_cdb(&mut s, 0, c, &[]);
    }
    // An unmapped LUN (7): INQUIRY, REPORT LUNS, READ.
    op_cdb(
        &mut s,
        2 << cdb::flag::LUN_SHIFT,
        &[0x12, 0, 0, 0, 96, 0],
        &[],
    );
    op_cdb(
        &mut s,
        2 << cdb::flag::LUN_SHIFT,
        &[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        &[],
    );
    op_cdb(&mut s, 2 << cdb::flag::LUN_SHIFT, &rw16(0x88, 0, 1), &[]);
    out.push(("info-pages", s.0));

    let mut io = Seed::new();
    io.u8(sf::RAM | sf::ASYNC).u8(0).u8(0);
    op_cdb(&mut io, 0, &[0; 6], &[]);
    let block = vec![0xabu8; 512];
    op_cdb(&mut io, cdb::flag::START, &rw16(0x8a, 1, 1), &block);
    op_cdb(&mut io, cdb::flag::START, &rw16(0x88, 1, 1), &[]);
    op_cdb(&mut io, 0, &[0x08, 0, 0, 2, 1, 0], &[]);
    op_cdb(&mut io, 0, &[0x28, 0, 0, 0, 0, 1, 0, 0, 2, 0], &[]);
    op_cdb(&mut io, 0, &[0xa8, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0], &[]);
    op_cdb(&mut io, 0, &[0x2a, 0x08, 0, 0, 0, 2, 0, 0, 1, 0], &block);
    op_cdb(
        &mut io,
        cdb::flag::START,
        &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &[],
    );
    let mut caw = vec![0xab; 512];
    caw.extend(vec![0xcd; 512]);
    op_cdb(
        &mut io,
        0,
        &[0x89, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0],
        &caw,
    );
    op_cdb(&mut io, 0, &[0x2f, 0x02, 0, 0, 0, 1, 0, 0, 1, 0], &block);
    op_cdb(
        &mut io,
        0,
        &[0x93, 0x08, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0],
        &block,
    );
    let mut unmap = vec![0, 22, 0, 16, 0, 0, 0, 0];
    unmap.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 8, 0, 0, 0, 0]);
    op_cdb(&mut io, 0, &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &unmap);
    op_cdb(
        &mut io,
        0,
        &[0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        &[],
    );
    op_cdb(
        &mut io,
        0,
        &[0x9c, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0],
        &block,
    );
    out.push(("read-write-unmap", io.0));

    let mut pr = Seed::new();
    pr.u8(sf::RAM).u8(0).u8(0);
    op_cdb(&mut pr, 0, &[0; 6], &[]);
    op_cdb(&mut pr, cdb::flag::NEXUS2, &[0; 6], &[]);
    op_cdb(&mut pr, 0, &pr_out(0, 0), &pr_params(0, 0x1111));
    op_cdb(
        &mut pr,
        cdb::flag::NEXUS2,
        &pr_out(0, 0),
        &pr_params(0, 0x2222),
    );
    op_cdb(&mut pr, 0, &pr_out(1, 3), &pr_params(0x1111, 0));
    op_cdb(&mut pr, cdb::flag::NEXUS2, &rw16(0x88, 0, 1), &[]);
    op_cdb(&mut pr, 0, &[0x5e, 1, 0, 0, 0, 0, 0, 0x10, 0, 0], &[]);
    op_cdb(
        &mut pr,
        cdb::flag::NEXUS2,
        &pr_out(4, 1),
        &pr_params(0x2222, 0x1111),
    );
    op_cdb(&mut pr, 0, &[0x5e, 3, 0, 0, 0, 0, 0, 0x10, 0, 0], &[]);
    op_cdb(&mut pr, 0, &pr_out(3, 0), &pr_params(0x2222, 0));
    op_cdb(&mut pr, 0, &[0x16, 0, 0, 0, 0, 0], &[]);
    op_cdb(&mut pr, cdb::flag::NEXUS2, &[0x00, 0, 0, 0, 0, 0], &[]);
    op_cdb(&mut pr, 0, &[0x17, 0, 0, 0, 0, 0], &[]);
    out.push(("persistent-reservations", pr.0));

    let mut mode = Seed::new();
    mode.u8(sf::INJECT | sf::WCE_OFF).u8(0x15).u8(0x03);
    op_cdb(&mut mode, 0, &[0; 6], &[]);
    let caching = [
        0, 0, 0, 0, 0x08, 0x12, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    op_cdb(&mut mode, 0, &[0x15, 0x10, 0, 0, 24, 0], &caching);
    let control = [0, 0, 0, 0, 0x0a, 0x0a, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    op_cdb(&mut mode, 0, &[0x15, 0x10, 0, 0, 16, 0], &control);
    op_cdb(&mut mode, 0, &[0x1a, 0, 0x08, 0, 255, 0], &[]);
    op_cdb(&mut mode, 0, &[0x28, 0, 0, 0, 0, 10, 0, 0, 4, 0], &[]);
    op_cdb(&mut mode, 0, &[0x2a, 0, 0, 0, 0, 2, 0, 0, 1, 0], &block);
    op_cdb(&mut mode, 0, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]);
    op_cdb(&mut mode, 0, &[0x1b, 0, 0, 0, 0x02, 0], &[]);
    op_cdb(&mut mode, 0, &[0x1e, 0, 0, 0, 1, 0], &[]);
    op_cdb(&mut mode, 0, &[0x1b, 0, 0, 0, 0x03, 0], &[]);
    op_cdb(
        &mut mode,
        0,
        &[0x48, 0x01, 0, 0, 0, 0, 0, 0, 8, 0],
        &[0x01, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef],
    );
    op_cdb(&mut mode, 0, &[0x03, 0, 0, 0, 252, 0], &[]);
    mode.u8(cdb::op::LUN_RESET).u8(0).u8(1);
    mode.u8(cdb::op::FLUSH);
    out.push(("mode-inject-removable", mode.0));
    out
}

/// The ```toml block that follows `heading` in a Markdown file (or a `//!` doc comment).
fn toml_block(text: &str, heading: &str) -> String {
    let start = text.find(heading).expect("heading present");
    let body = &text[start..];
    let open = body.find("```toml").expect("toml block") + "```toml".len();
    let close = body[open..].find("```").expect("end of block");
    body[open..open + close]
        .lines()
        .map(|l| {
            l.strip_prefix("//! ")
                .or_else(|| l.strip_prefix("//!"))
                .unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn config_seeds() -> Seeds {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = fs::read_to_string(repo.join("README.md")).expect("README.md");
    let config_rs = fs::read_to_string(repo.join("crates/ustgt/src/config.rs")).expect("config.rs");
    let with = |sel: u8, text: &str| {
        let mut v = vec![sel];
        v.extend_from_slice(text.as_bytes());
        v
    };
    use toml_config::sel;
    vec![
        ("readme", with(sel::CONFIG, &toml_block(&readme, "## Configuration file"))),
        ("config-doc", with(sel::CONFIG, &toml_block(&config_rs, "//! ```toml"))),
        (
            "minimal",
            with(sel::CONFIG, "[[target]]\niqn = \"iqn.2026-11.io.ustgt:a\"\n[[target.lun]]\nstore = \"null\"\nsize = 4096\n"),
        ),
        ("lunspec-ram", with(sel::LUNSPEC, "ram:1G,block-size=4096,serial=abc")),
        ("lunspec-file", with(sel::LUNSPEC, "file:/srv/disk.img,size=10G,direct,wce=off")),
        (
            "lunspec-inject",
            with(sel::LUNSPEC, "null:1T,inject-read-error=100-107+every:9,inject-write-errno=enospc,ro"),
        ),
        ("lunspec-aio", with(sel::LUNSPEC, "aio:/dev/vdc,queue-depth=256,physical-block-size=4096")),
        ("size", with(sel::SIZE, "1536KiB")),
        ("portal", with(sel::PORTAL, "[::1]:3260\niqn.2026-11.io.ustgt:disk1")),
    ]
}
