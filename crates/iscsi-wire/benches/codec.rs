//! PDU codec and CRC32C micro-benchmarks: `cargo bench -p iscsi-wire`.
//!
//! The per-PDU costs here are the "decode" and "encode" stages of the latency model in
//! docs/performance.md.

// The timing harness, shared with the benches of iscsi-proto and scsi-core.
mod common;

use common::{black_box, Bench};
use iscsi_wire::{
    crc32c, encode, encode_text, parse_text, DataIn, DataOut, Decoder, DecoderConfig, DigestConfig,
    Pdu, ScsiCommand, ScsiResponse,
};

const NONE: DigestConfig = DigestConfig {
    header: false,
    data: false,
};
const BOTH: DigestConfig = DigestConfig {
    header: true,
    data: true,
};

/// A SCSI Command for READ(16) or WRITE(16) of `len` bytes at LBA 0x1234 (512-byte blocks).
fn rw16(write: bool, itt: u32, len: u32, imm: Vec<u8>) -> Pdu {
    let mut cdb = [0u8; 16];
    cdb[0] = if write { 0x8a } else { 0x88 };
    cdb[2..10].copy_from_slice(&0x1234u64.to_be_bytes());
    cdb[10..14].copy_from_slice(&(len / 512).to_be_bytes());
    let cmd = ScsiCommand {
        final_: true,
        read: !write,
        write,
        attr: 1,
        itt,
        expected_data_len: len,
        cmd_sn: itt,
        exp_stat_sn: 7,
        cdb,
        ..Default::default()
    };
    Pdu::new(cmd, imm)
}

fn data_out(len: usize) -> Pdu {
    let d = DataOut {
        final_: true,
        itt: 9,
        ttt: 0x100,
        exp_stat_sn: 7,
        ..Default::default()
    };
    Pdu::new(d, vec![0xa5; len])
}

fn data_in(len: usize) -> Pdu {
    let d = DataIn {
        final_: true,
        status_present: true,
        itt: 9,
        ttt: 0xffff_ffff,
        stat_sn: 8,
        exp_cmd_sn: 10,
        max_cmd_sn: 137,
        ..Default::default()
    };
    Pdu::new(d, vec![0x5a; len])
}

fn response() -> Pdu {
    let r = ScsiResponse {
        itt: 9,
        stat_sn: 8,
        exp_cmd_sn: 10,
        max_cmd_sn: 137,
        ..Default::default()
    };
    Pdu::new(r, Vec::new())
}

fn wire(pdus: &[Pdu], d: DigestConfig) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pdus {
        encode(p, d, &mut out);
    }
    out
}

fn decoder(d: DigestConfig) -> Decoder {
    Decoder::new(DecoderConfig {
        digests: d,
        max_data_segment: 256 * 1024,
    })
}

/// Decode every PDU in `bytes`; returns how many.
fn decode_all(dec: &mut Decoder, bytes: &[u8]) -> usize {
    let mut off = 0;
    let mut n = 0;
    while off < bytes.len() {
        match dec.decode(&bytes[off..]) {
            Ok((used, pdu)) => {
                off += used;
                n += usize::from(black_box(pdu).is_some());
            }
            Err(e) => panic!("benchmark input must decode: {e}"),
        }
    }
    n
}

fn bench_decode(b: &Bench) {
    for (tag, d) in [("", NONE), ("+digests", BOTH)] {
        let cases = [
            ("read16-cmd", vec![rw16(false, 9, 4096, Vec::new())], 0),
            (
                "write16-cmd+4k-immediate",
                vec![rw16(true, 9, 4096, vec![1; 4096])],
                4096,
            ),
            ("data-out-4k", vec![data_out(4096)], 4096),
            ("data-out-128k", vec![data_out(128 * 1024)], 128 * 1024),
        ];
        for (name, pdus, bytes) in cases {
            let w = wire(&pdus, d);
            let mut dec = decoder(d);
            b.run(&format!("decode/{name}{tag}"), bytes, || {
                decode_all(&mut dec, &w)
            });
        }
    }
    // 32 commands delivered in one read: what the loop sees at QD 32 (time is per batch).
    let batch: Vec<Pdu> = (0..32).map(|i| rw16(false, i, 4096, Vec::new())).collect();
    let w = wire(&batch, NONE);
    let mut dec = decoder(NONE);
    b.run("decode/32x-read16-cmd-one-buffer", 0, || {
        decode_all(&mut dec, &w)
    });
}

fn bench_encode(b: &Bench) {
    let mut out = Vec::with_capacity(256 * 1024);
    for (tag, d) in [("", NONE), ("+digests", BOTH)] {
        for (name, pdu, bytes) in [
            ("data-in-512+status", data_in(512), 512),
            ("data-in-4k+status", data_in(4096), 4096),
            ("data-in-128k", data_in(128 * 1024), 128 * 1024),
            ("scsi-response", response(), 0),
        ] {
            b.run(&format!("encode/{name}{tag}"), bytes, || {
                out.clear();
                encode(&pdu, d, &mut out);
                out.len()
            });
        }
    }
    // Building the PDU too: the Data-In payload copied out of a store buffer.
    let store_buf = vec![0x33u8; 4096];
    b.run("encode/build+encode-data-in-4k", 4096, || {
        let mut p = data_in(0);
        p.data.extend_from_slice(&store_buf);
        out.clear();
        encode(&p, NONE, &mut out);
        out.len()
    });
}

fn bench_crc(b: &Bench) {
    for len in [48usize, 512, 4096, 128 * 1024] {
        let buf: Vec<u8> = (0..len).map(|i| i as u8).collect();
        b.run(&format!("crc32c/{len}B"), len as u64, || {
            crc32c(black_box(&buf))
        });
    }
}

fn bench_text(b: &Bench) {
    let keys: Vec<(String, String)> = [
        ("InitiatorName", "iqn.1993-08.org.debian:01:abcdef"),
        ("SessionType", "Normal"),
        ("TargetName", "iqn.2026-11.io.ustgt:default"),
        ("HeaderDigest", "None,CRC32C"),
        ("DataDigest", "None"),
        ("MaxRecvDataSegmentLength", "262144"),
        ("MaxBurstLength", "16776192"),
        ("FirstBurstLength", "262144"),
        ("ImmediateData", "Yes"),
        ("InitialR2T", "No"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let data = encode_text(&keys);
    b.run("text/parse-login-keys", data.len() as u64, || {
        parse_text(&data).map(|v| v.len()).unwrap_or(0)
    });
}

fn main() {
    let b = Bench::new("iscsi-wire");
    bench_crc(&b);
    bench_decode(&b);
    bench_encode(&b);
    bench_text(&b);
}
