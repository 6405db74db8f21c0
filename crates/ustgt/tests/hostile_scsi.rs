//! Hostile inputs, SCSI / CDB layer (docs/hostile-inputs.md section 2.5, rows D1-D16) and
//! the management plane (section 2.6, rows M1-M2), against the real server. Every test sends
//! the hostile command, checks the status and sense the catalogue calls for, and ends with a
//! fresh session doing a WRITE and READ round trip.
//!
//! Where the Data-Out length disagrees with what the CDB implies (D3, D6, D12) the policy is
//! the one of D3: ILLEGAL REQUEST, INVALID FIELD IN COMMAND INFORMATION UNIT (0Eh/03h) with
//! nothing written, or, for a plain WRITE given less data than its CDB asks for, the whole
//! blocks sent are written and the residual reported.
//!
//! | row | test(s) |
//! | --- | --- |
//! | D1  | `d1_unmapped_lun` (TMF on a LUN that does not exist: hostile_ffp.rs `s15_tmf_on_no_lun_or_unsupported_functions`) |
//! | D2  | `d2_lba_past_the_end_or_wrapping_is_21h_00h` |
//! | D3  | `d3_edtl_disagreeing_with_the_cdb` (READ residuals also protocol.rs `read_residuals_underflow_and_overflow`) |
//! | D4  | `d4_read_flagged_as_a_write_is_answered` |
//! | D5  | `d5_read6_write6_length_0_means_256_blocks` |
//! | D6  | `d6_write_same_ndob_length_and_limit` (NDOB is supported: zeroes, no Data-Out) |
//! | D7  | `d7_extended_copy_to_another_targets_lun_is_copy_aborted` (COPY ABORTED, UNREACHABLE COPY TARGET 08h/04h) |
//! | D8  | `d8_unmap_descriptor_lengths_are_checked_26h_00h` |
//! | D9  | `d9_mode_select_overlong_pages_are_refused` |
//! | D10 | `d10_persistent_reserve_lengths` |
//! | D11 | `d11_inquiry_allocation_length_is_16_bits` |
//! | D12 | `d12_compare_and_write_length_and_miscompare` |
//! | D13 | `d13_transfer_over_the_maximum_is_24h_00h` |
//! | D14 | `d14_synchronize_cache_immed_and_range` (IMMED=1 is accepted and ignored: GOOD only once the flush is done) |
//! | D15 | `d15_dpo_fua_are_accepted_as_advertised` |
//! | D16 | `d16_unknown_opcode_is_20h_00h_and_unknown_service_action_24h_00h` |
//! | M1  | not applicable: there is no control socket (no admin interface exists yet) |
//! | M2  | not applicable: iSNS is not implemented |

mod common;

use common::raw::*;
use common::Server;
use ustgt_initiator::wire::{Bhs, Pdu};
use ustgt_initiator::{cdb, ScsiOutcome, ScsiRequest, Session};

/// A CDB of `len` bytes with this opcode.
fn cdb_of(len: usize, opcode: u8) -> Vec<u8> {
    let mut c = vec![0u8; len];
    c[0] = opcode;
    c
}

/// A 10-byte CDB: opcode, flags, 32-bit LBA, 16-bit length.
fn cdb10(opcode: u8, flags: u8, lba: u32, len: u16) -> Vec<u8> {
    let mut c = cdb_of(10, opcode);
    c[1] = flags;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&len.to_be_bytes());
    c
}

/// A 16-byte CDB: opcode, flags, 64-bit LBA, 32-bit length.
fn cdb16(opcode: u8, flags: u8, lba: u64, len: u32) -> Vec<u8> {
    let mut c = cdb_of(16, opcode);
    c[1] = flags;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&len.to_be_bytes());
    c
}

fn none(s: &mut Session, lun: u64, c: &[u8]) -> ScsiOutcome {
    scsi(s, ScsiRequest::none(lun, c))
}

fn read(s: &mut Session, lun: u64, c: &[u8], len: u32) -> ScsiOutcome {
    scsi(s, ScsiRequest::read(lun, c, len))
}

fn write_req(s: &mut Session, lun: u64, c: &[u8], data: Vec<u8>) -> ScsiOutcome {
    scsi(s, ScsiRequest::write(lun, c, data))
}

/// LUN 0: 16 MiB of RAM; LUN 1: 1 GiB of null store (for lengths past the limits).
fn start_two() -> Server {
    start_with(&["ram:16M", "null:1G"])
}

#[test]
fn d1_unmapped_lun() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let inq = s.inquiry(7, 96).expect("INQUIRY");
    ok(&inq);
    assert_eq!(inq.data_in[0], 0x7f, "peripheral qualifier 011b, type 1Fh");
    for c in [
        cdb::test_unit_ready().to_vec(),
        cdb::read16(0, 1).to_vec(),
        cdb::read_capacity16(32).to_vec(),
    ] {
        let out = read(&mut s, 7, &c, if c[0] == 0 { 0 } else { 512 });
        sense(&out, 0x05, 0x25, 0x00);
    }
    let out = write_req(&mut s, 7, &write16(0, 1), vec![1; 512]);
    sense(&out, 0x05, 0x25, 0x00);
    // REPORT LUNS answers on LUN 0 and on a LUN that does not exist.
    for lun in [0, 7] {
        let out = read(&mut s, lun, &cdb::report_luns(64), 64);
        ok(&out);
        assert_eq!(&out.data_in[..4], &[0, 0, 0, 8], "one LUN listed");
    }
    fresh_round_trip(&mut srv);
}

#[test]
fn d2_lba_past_the_end_or_wrapping_is_21h_00h() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let (last, bs) = s.read_capacity16(0).expect("capacity");
    assert_eq!(bs, BS);
    for (lba, blocks) in [(last + 1, 1), (last, 2), (u64::MAX, 1), (u64::MAX - 3, 8)] {
        let out = read(&mut s, 0, &cdb::read16(lba, blocks), blocks * BS);
        sense(&out, 0x05, 0x21, 0x00);
        let out = write_req(
            &mut s,
            0,
            &write16(lba, blocks),
            vec![7; (blocks * BS) as usize],
        );
        sense(&out, 0x05, 0x21, 0x00);
    }
    // READ(10) past the end.
    let out = read(&mut s, 0, &cdb10(0x28, 0, (last + 1) as u32, 1), BS);
    sense(&out, 0x05, 0x21, 0x00);
    // The last block itself is fine.
    let data = pattern(1, BS as usize);
    write(&mut s, last, &data);
    read_back(&mut s, last, &data);
    fresh_round_trip(&mut srv);
}

#[test]
fn d3_edtl_disagreeing_with_the_cdb() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let old = pattern(2, 4 * BS as usize);
    write(&mut s, 10, &old);
    // READ: min(EDTL, CDB) is sent, with the residual, status GOOD.
    let out = read(&mut s, 0, &cdb::read16(10, 4), 1024);
    ok(&out);
    assert!(out.overflow && out.residual == 1024, "{}", out.describe());
    assert_eq!(out.data_in, old[..1024]);
    // WRITE given 2 of its 4 blocks: those are written, the residual reported.
    let new = pattern(3, 4 * BS as usize);
    let mut req = ScsiRequest::write(0, &write16(10, 4), new[..1024].to_vec());
    req.expected_len = 1024;
    let out = scsi(&mut s, req);
    ok(&out);
    assert!(out.overflow && out.residual == 1024, "{}", out.describe());
    let mut want = new[..1024].to_vec();
    want.extend_from_slice(&old[1024..]);
    read_back(&mut s, 10, &want);
    // WRITE given more than its CDB asks for: the CDB's blocks are written, the rest is
    // residual.
    let out = write_req(&mut s, 0, &write16(10, 1), new.clone());
    ok(&out);
    assert!(
        out.underflow && out.residual == 3 * BS,
        "{}",
        out.describe()
    );
    want[..512].copy_from_slice(&new[..512]);
    read_back(&mut s, 10, &want);
    // WRITE AND VERIFY(10) given half a block: no whole block, nothing written, the
    // residual reported.
    let out = write_req(&mut s, 0, &cdb10(0x2e, 0, 10, 1), vec![9; 256]);
    ok(&out);
    assert!(out.overflow && out.residual == 256, "{}", out.describe());
    read_back(&mut s, 10, &want);
    fresh_round_trip(&mut srv);
}

#[test]
fn d4_read_flagged_as_a_write_is_answered() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let data = pattern(4, 512);
    write(&mut s, 20, &data);
    // READ(10) with W=1 and a Data-Out buffer: an answer, GOOD or CHECK CONDITION.
    let req = ScsiRequest::write(0, &cdb10(0x28, 0, 20, 1), vec![0xee; 512]);
    let out = scsi(&mut s, req);
    assert!(
        out.response == 0 && (out.status == 0 || out.status == 0x02),
        "{}",
        out.describe()
    );
    assert!(out.data_in.is_empty(), "no Data-In for a command without R");
    read_back(&mut s, 20, &data);
    fresh_round_trip(&mut srv);
}

#[test]
fn d5_read6_write6_length_0_means_256_blocks() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let data = pattern(5, 256 * BS as usize);
    let w6 = [0x0a, 0, 0x01, 0x00, 0, 0];
    ok(&write_req(&mut s, 0, &w6, data.clone()));
    let r6 = [0x08, 0, 0x01, 0x00, 0, 0];
    let out = read(&mut s, 0, &r6, 256 * BS);
    ok(&out);
    assert!(
        out.data_in == data,
        "READ(6) of length 0 returns 256 blocks"
    );
    read_back(&mut s, 0x100, &data);
    fresh_round_trip(&mut srv);
}

#[test]
fn d6_write_same_ndob_length_and_limit() {
    let mut srv = start_two();
    let mut s = login(&srv, normal(&srv));
    s.clear_unit_attention(1).expect("TUR on LUN 1");
    let data = pattern(6, 8 * BS as usize);
    write(&mut s, 40, &data);
    // NDOB: zeroes, with no Data-Out.
    ok(&none(&mut s, 0, &cdb16(0x93, 0x01, 40, 4)));
    let mut want = vec![0u8; 4 * BS as usize];
    want.extend_from_slice(&data[4 * BS as usize..]);
    read_back(&mut s, 40, &want);
    // A Data-Out that is not one block: nothing written.
    for len in [BS as usize - 1, 2 * BS as usize] {
        let out = write_req(&mut s, 0, &cdb16(0x93, 0, 44, 4), vec![0x5a; len]);
        sense(&out, 0x05, 0x0e, 0x03);
    }
    read_back(&mut s, 40, &want);
    // More blocks than MAXIMUM WRITE SAME LENGTH (VPD B0h), on a LUN large enough.
    let b0 = read(&mut s, 1, &cdb::inquiry(true, 0xb0, 64), 64);
    ok(&b0);
    let max = u64::from_be_bytes(b0.data_in[36..44].try_into().expect("8 bytes"));
    assert!(
        max > 0 && max < (1 << 21),
        "MAXIMUM WRITE SAME LENGTH {max}"
    );
    let out = write_req(&mut s, 1, &cdb16(0x93, 0, 0, max as u32 + 1), vec![0; 512]);
    sense(&out, 0x05, 0x24, 0x00);
    ok(&write_req(
        &mut s,
        1,
        &cdb16(0x93, 0, 0, max as u32),
        vec![0; 512],
    ));
    fresh_round_trip(&mut srv);
}

/// The NAA logical-unit designation descriptor (header and designator) of VPD page 83h.
fn naa_designator(s: &mut Session) -> Vec<u8> {
    let out = read(s, 0, &cdb::inquiry(true, 0x83, 255), 255);
    ok(&out);
    let page = &out.data_in;
    let len = usize::from(u16::from_be_bytes([page[2], page[3]]));
    let mut at = 4;
    while at + 4 <= (4 + len).min(page.len()) {
        let dlen = usize::from(page[at + 3]);
        let (assoc, kind) = ((page[at + 1] >> 4) & 3, page[at + 1] & 0x0f);
        if assoc == 0 && kind == 3 {
            return page[at..at + 4 + dlen].to_vec();
        }
        at += 4 + dlen;
    }
    panic!("no NAA designator in {page:02x?}");
}

/// An EXTENDED COPY (LID1) parameter list: one identification CSCD descriptor, one
/// block-to-block segment copying `blocks` from `src` to `dst` on it.
fn xcopy_params(designator: &[u8], blocks: u16, src: u64, dst: u64) -> Vec<u8> {
    let mut cscd = vec![0u8; 32];
    cscd[0] = 0xe4;
    cscd[4] = designator[0] & 0x0f;
    cscd[5] = designator[1] & 0x3f;
    cscd[7] = designator[3];
    cscd[8..8 + designator.len() - 4].copy_from_slice(&designator[4..]);
    cscd[29..32].copy_from_slice(&BS.to_be_bytes()[1..]);
    let mut seg = vec![0u8; 28];
    seg[0] = 0x02;
    seg[2..4].copy_from_slice(&24u16.to_be_bytes());
    seg[10..12].copy_from_slice(&blocks.to_be_bytes());
    seg[12..20].copy_from_slice(&src.to_be_bytes());
    seg[20..28].copy_from_slice(&dst.to_be_bytes());
    let mut p = vec![0u8; 16];
    p[1] = 0b11 << 3; // no list identifier
    p[2..4].copy_from_slice(&32u16.to_be_bytes());
    p[8..12].copy_from_slice(&28u32.to_be_bytes());
    p.extend(cscd);
    p.extend(seg);
    p
}

fn xcopy(s: &mut Session, params: Vec<u8>) -> ScsiOutcome {
    let mut c = cdb_of(16, 0x83);
    c[10..14].copy_from_slice(&(params.len() as u32).to_be_bytes());
    write_req(s, 0, &c, params)
}

#[test]
fn d7_extended_copy_to_another_targets_lun_is_copy_aborted() {
    let toml = "[server]\nlisten = [\"127.0.0.1:0\"]\n\
        \n[[target]]\niqn = \"iqn.2026-11.io.ustgt:hostile-a\"\n[[target.lun]]\nstore = \"ram\"\nsize = \"16M\"\n\
        \n[[target]]\niqn = \"iqn.2026-11.io.ustgt:hostile-b\"\n[[target.lun]]\nstore = \"ram\"\nsize = \"16M\"\n";
    let mut srv = Server::with_config("hostile-d7", toml);
    let mut b = login(
        &srv,
        ustgt_initiator::LoginOptions::normal("iqn.2026-11.io.ustgt:hostile-b"),
    );
    let secret = pattern(7, 4 * BS as usize);
    write(&mut b, 0, &secret);
    let b_lun = naa_designator(&mut b);
    let mut a = login(
        &srv,
        ustgt_initiator::LoginOptions::normal("iqn.2026-11.io.ustgt:hostile-a"),
    );
    let a_lun = naa_designator(&mut a);
    assert_ne!(a_lun, b_lun);
    // Copy from target B's LUN into A's, and from A's into B's: both unreachable.
    let out = xcopy(&mut a, xcopy_params(&b_lun, 4, 0, 100));
    sense(&out, 0x0a, 0x08, 0x04);
    read_back(&mut a, 100, &vec![0; 4 * BS as usize]);
    let out = xcopy(&mut a, xcopy_params(&b_lun, 4, 100, 0));
    sense(&out, 0x0a, 0x08, 0x04);
    read_back(&mut b, 0, &secret);
    // A copy within A's own LUN works.
    let mine = pattern(8, 4 * BS as usize);
    write(&mut a, 200, &mine);
    ok(&xcopy(&mut a, xcopy_params(&a_lun, 4, 200, 300)));
    read_back(&mut a, 300, &mine);
    drop((a, b));
    fresh_round_trip(&mut srv);
}

/// An UNMAP parameter list whose UNMAP BLOCK DESCRIPTOR DATA LENGTH says `bdl` while
/// `descriptors` are present.
fn unmap_list(bdl: u16, descriptors: &[(u64, u32)]) -> Vec<u8> {
    let mut p = vec![0u8; 8];
    p[0..2].copy_from_slice(&(bdl + 6).to_be_bytes());
    p[2..4].copy_from_slice(&bdl.to_be_bytes());
    for (lba, n) in descriptors {
        p.extend_from_slice(&lba.to_be_bytes());
        p.extend_from_slice(&n.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
    }
    p
}

fn unmap(s: &mut Session, list: Vec<u8>) -> ScsiOutcome {
    let c = cdb10(0x42, 0, 0, list.len() as u16);
    write_req(s, 0, &c, list)
}

#[test]
fn d8_unmap_descriptor_lengths_are_checked_26h_00h() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let data = pattern(9, 8 * BS as usize);
    write(&mut s, 50, &data);
    // Descriptors claimed past the parameter list: refused, nothing unmapped.
    let out = unmap(&mut s, unmap_list(64, &[(50, 8)]));
    sense(&out, 0x05, 0x26, 0x00);
    read_back(&mut s, 50, &data);
    // More descriptors than the MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT of VPD B0h.
    let b0 = read(&mut s, 0, &cdb::inquiry(true, 0xb0, 64), 64);
    ok(&b0);
    let max = u32::from_be_bytes(b0.data_in[24..28].try_into().expect("4 bytes"));
    assert!(
        max > 0 && max < 4096,
        "MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT {max}"
    );
    let many: Vec<(u64, u32)> = (0..=u64::from(max)).map(|i| (1000 + i, 1)).collect();
    let out = unmap(&mut s, unmap_list((many.len() * 16) as u16, &many));
    sense(&out, 0x05, 0x26, 0x00);
    // A parameter list length under 8 bytes.
    let out = unmap(&mut s, vec![0; 6]);
    sense(&out, 0x05, 0x1a, 0x00);
    read_back(&mut s, 50, &data);
    // A correct one unmaps.
    ok(&unmap(&mut s, unmap_list(16, &[(50, 8)])));
    read_back(&mut s, 50, &vec![0; 8 * BS as usize]);
    fresh_round_trip(&mut srv);
}

#[test]
fn d9_mode_select_overlong_pages_are_refused() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    // MODE SELECT(10), PF=1: header, then a caching page (08h) whose PAGE LENGTH runs past
    // the parameter list, then one nested in another's length.
    let mut overlong = vec![0u8; 8];
    overlong.extend_from_slice(&[0x08, 0xff, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let mut nested = vec![0u8; 8];
    nested.extend_from_slice(&[0x08, 0x12, 0x08, 0x12, 0x08, 0x12]);
    nested.resize(8 + 20, 0x08);
    for (what, list) in [("overlong", overlong), ("nested", nested)] {
        let mut c = cdb_of(10, 0x55);
        c[1] = 0x10;
        c[7..9].copy_from_slice(&(list.len() as u16).to_be_bytes());
        let out = write_req(&mut s, 0, &c, list);
        let sk = out.sense.as_ref().map(|x| (x.key, x.asc, x.ascq));
        assert!(
            matches!(sk, Some((0x05, 0x1a, 0x00)) | Some((0x05, 0x26, 0x00))),
            "{what}: {}",
            out.describe()
        );
    }
    // The mode data is unchanged and readable.
    let out = read(&mut s, 0, &[0x5a, 0, 0x08, 0, 0, 0, 0, 0, 64, 0], 64);
    ok(&out);
    fresh_round_trip(&mut srv);
}

#[test]
fn d10_persistent_reserve_lengths() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    // Register two keys (from one nexus, then a second).
    let register = |s: &mut Session, key: u64| {
        let mut p = vec![0u8; 24];
        p[8..16].copy_from_slice(&key.to_be_bytes());
        let mut c = cdb_of(10, 0x5f);
        c[8] = 24;
        ok(&write_req(s, 0, &c, p));
    };
    register(&mut s, 0x1111);
    let mut t = login(&srv, normal(&srv));
    register(&mut t, 0x2222);
    // READ KEYS with room for the header only: truncated, ADDITIONAL LENGTH still 16.
    let mut c = cdb_of(10, 0x5e);
    c[8] = 8;
    let out = read(&mut s, 0, &c, 8);
    ok(&out);
    assert_eq!(out.data_in.len(), 8);
    assert_eq!(&out.data_in[4..8], &[0, 0, 0, 16], "ADDITIONAL LENGTH");
    // PR OUT with a PARAMETER LIST LENGTH other than 24.
    for len in [0u8, 20, 23] {
        let mut c = cdb_of(10, 0x5f);
        c[8] = len;
        let out = write_req(&mut s, 0, &c, vec![0; len as usize]);
        sense(&out, 0x05, 0x1a, 0x00);
    }
    drop(t);
    fresh_round_trip(&mut srv);
}

#[test]
fn d11_inquiry_allocation_length_is_16_bits() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let full = s.inquiry(0, 1024).expect("INQUIRY");
    ok(&full);
    let n = full.data_in.len();
    assert!(n >= 36, "standard INQUIRY data of {n} bytes");
    let out = s.inquiry(0, 0).expect("INQUIRY");
    ok(&out);
    assert!(
        out.data_in.is_empty(),
        "allocation length 0 is not an error"
    );
    for alloc in [4u16, 255, 256, 511, 512] {
        let out = s.inquiry(0, alloc).expect("INQUIRY");
        ok(&out);
        assert_eq!(
            out.data_in.len(),
            n.min(usize::from(alloc)),
            "allocation length {alloc}"
        );
        assert_eq!(out.data_in[..], full.data_in[..out.data_in.len()]);
    }
    fresh_round_trip(&mut srv);
}

#[test]
fn d12_compare_and_write_length_and_miscompare() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let old = pattern(10, 2 * BS as usize);
    write(&mut s, 60, &old);
    let caw = |blocks: u8| {
        let mut c = cdb_of(16, 0x89);
        c[2..10].copy_from_slice(&60u64.to_be_bytes());
        c[13] = blocks;
        c
    };
    // Data-Out other than 2 x NUMBER OF LOGICAL BLOCKS x block size.
    for len in [BS as usize, 3 * BS as usize, 2 * BS as usize + 1] {
        let out = write_req(&mut s, 0, &caw(1), vec![0; len]);
        sense(&out, 0x05, 0x0e, 0x03);
    }
    // A miscompare at byte 100 (MAXIMUM COMPARE AND WRITE LENGTH may be one block).
    let mut verify = old[..BS as usize].to_vec();
    verify[100] ^= 0xff;
    let mut data = verify;
    data.extend_from_slice(&pattern(11, BS as usize));
    let out = write_req(&mut s, 0, &caw(1), data);
    sense(&out, 0x0e, 0x1d, 0x00);
    let raw = &out.sense.as_ref().expect("sense").raw;
    let info = match raw[0] & 0x7f {
        0x70 | 0x71 => {
            assert!(raw[0] & 0x80 != 0, "VALID bit");
            u64::from(u32::from_be_bytes([raw[3], raw[4], raw[5], raw[6]]))
        }
        _ => {
            let d = raw[8..]
                .iter()
                .position(|&b| b == 0)
                .expect("information descriptor");
            u64::from_be_bytes(raw[8 + d + 4..8 + d + 12].try_into().expect("8 bytes"))
        }
    };
    assert_eq!(info, 100, "INFORMATION: offset of the first difference");
    read_back(&mut s, 60, &old);
    fresh_round_trip(&mut srv);
}

#[test]
fn d13_transfer_over_the_maximum_is_24h_00h() {
    let mut srv = start_two();
    let mut s = login(&srv, normal(&srv));
    s.clear_unit_attention(1).expect("TUR on LUN 1");
    let b0 = read(&mut s, 1, &cdb::inquiry(true, 0xb0, 64), 64);
    ok(&b0);
    let max = u32::from_be_bytes(b0.data_in[8..12].try_into().expect("4 bytes"));
    assert!(max > 0, "MAXIMUM TRANSFER LENGTH");
    // Checked from the CDB alone: no data is asked for or sent.
    let out = read(&mut s, 1, &cdb::read16(0, max + 1), 0);
    sense(&out, 0x05, 0x24, 0x00);
    let mut req = ScsiRequest::write(1, &write16(0, max + 1), Vec::new());
    req.expected_len = 0;
    let out = scsi(&mut s, req);
    sense(&out, 0x05, 0x24, 0x00);
    assert!(out.r2ts.is_empty(), "no data solicited");
    fresh_round_trip(&mut srv);
}

#[test]
fn d14_synchronize_cache_immed_and_range() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    let (last, _) = s.read_capacity16(0).expect("capacity");
    // IMMED=1 is accepted, but GOOD still comes only after the flush.
    ok(&none(&mut s, 0, &cdb10(0x35, 0, 0, 0)));
    ok(&none(&mut s, 0, &cdb10(0x35, 0x02, 0, 0)));
    ok(&none(&mut s, 0, &cdb16(0x91, 0x02, 0, 0)));
    // A reserved bit is not.
    let out = none(&mut s, 0, &cdb10(0x35, 0x01, 0, 0));
    sense(&out, 0x05, 0x24, 0x00);
    let out = none(&mut s, 0, &cdb16(0x91, 0, last, 2));
    sense(&out, 0x05, 0x21, 0x00);
    let out = none(&mut s, 0, &cdb10(0x35, 0, (last + 1) as u32, 1));
    sense(&out, 0x05, 0x21, 0x00);
    fresh_round_trip(&mut srv);
}

#[test]
fn d15_dpo_fua_are_accepted_as_advertised() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    // MODE SENSE(6): the device-specific parameter has DPOFUA.
    let out = read(&mut s, 0, &[0x1a, 0, 0x3f, 0, 255, 0], 255);
    ok(&out);
    assert!(out.data_in[2] & 0x10 != 0, "DPOFUA advertised");
    let data = pattern(12, 2 * BS as usize);
    for op in [0x2au8, 0xaa, 0x8a] {
        let c = match op {
            0x2a => cdb10(op, 0x18, 70, 2),
            0xaa => {
                let mut c = cdb_of(12, op);
                c[1] = 0x18;
                c[2..6].copy_from_slice(&70u32.to_be_bytes());
                c[6..10].copy_from_slice(&2u32.to_be_bytes());
                c
            }
            _ => cdb16(op, 0x18, 70, 2),
        };
        ok(&write_req(&mut s, 0, &c, data.clone()));
    }
    let out = read(&mut s, 0, &cdb10(0x28, 0x18, 70, 2), 2 * BS);
    ok(&out);
    assert_eq!(out.data_in, data);
    fresh_round_trip(&mut srv);
}

#[test]
fn d16_unknown_opcode_is_20h_00h_and_unknown_service_action_24h_00h() {
    let mut srv = start();
    let mut s = login(&srv, normal(&srv));
    for op in [0x02u8, 0x1f, 0xc0, 0xff] {
        let out = none(&mut s, 0, &cdb_of(16, op));
        sense(&out, 0x05, 0x20, 0x00);
    }
    // SERVICE ACTION IN(16) with an unassigned service action.
    let mut c = cdb_of(16, 0x9e);
    c[1] = 0x1f;
    c[13] = 32;
    let out = read(&mut s, 0, &c, 32);
    sense(&out, 0x05, 0x24, 0x00);
    // A raw command with an undefined 16-byte opcode and reserved task attribute.
    let mut cmd = command(&mut s, &cdb_of(16, 0xfe), false, false, 0);
    cmd.attr = 7;
    let itt = cmd.itt;
    s.send_pdu(&Pdu::new(cmd, Vec::new())).expect("send");
    let p = next(&mut s, "the SCSI Response");
    assert!(
        matches!(p.bhs, Bhs::ScsiResponse(ref r) if r.itt == itt && r.status == 0x02),
        "{p:?}"
    );
    fresh_round_trip(&mut srv);
}
