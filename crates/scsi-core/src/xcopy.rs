//! EXTENDED COPY (LID1) (SPC-4 6.4): block-to-block copies between logical units of one
//! target, done by the copy manager in bounded chunks.
//!
//! Copy targets (CSCD descriptors) are named by identification descriptors (E4h) carrying a
//! logical-unit designator of VPD 83h. A designator is resolved only among the logical units
//! of the LUN table the command came through, i.e. the LUNs visible to the requesting I_T
//! nexus; any other designator is an unreachable copy target. Errors found in the parameter
//! list before any segment is processed are ILLEGAL REQUEST; errors met while processing a
//! segment are COPY ABORTED (SPC-4 6.4.3.3).

use std::sync::Arc;

use crate::cdb::{be16, be24, be32, be64};
use crate::opcodes::Access;
use crate::read_write::take_data_out;
use crate::sense::{Asc, CmdError, CmdResult, Sense};
use crate::{Device, NexusId, Request};

/// MAXIMUM CSCD DESCRIPTOR COUNT.
pub(crate) const MAX_CSCD_DESCRIPTORS: u16 = 8;
/// MAXIMUM SEGMENT DESCRIPTOR COUNT.
pub(crate) const MAX_SEGMENT_DESCRIPTORS: u16 = 16;
/// MAXIMUM DESCRIPTOR LIST LENGTH: CSCD plus segment descriptor bytes.
pub(crate) const MAX_DESCRIPTOR_LIST_LENGTH: u32 = 1024;
/// Upper bound of MAXIMUM SEGMENT LENGTH (also limited by the maximum transfer length).
const MAX_SEGMENT_BYTES: u32 = 16 << 20;
/// Bytes read and written per step of a segment.
const CHUNK_BYTES: u64 = 1 << 20;

/// The parameter list header.
const HEADER_LEN: usize = 16;
/// An identification descriptor CSCD descriptor.
const CSCD_LEN: usize = 32;
/// A block device to block device segment descriptor.
const B2B_LEN: usize = 28;
/// CSCD descriptor type code: identification descriptor.
pub(crate) const CSCD_IDENTIFICATION: u8 = 0xE4;
/// Segment descriptor type code: block device to block device.
pub(crate) const SEGMENT_BLOCK_TO_BLOCK: u8 = 0x02;

/// LIST ID USAGE: hold copy status for RECEIVE COPY RESULTS.
pub(crate) const USAGE_HOLD: u8 = 0b00;
/// LIST ID USAGE: no list identifier.
const USAGE_NO_LIST_ID: u8 = 0b11;

/// A logical-unit designator as carried by an identification descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Designation {
    /// CODE SET (low nibble of byte 0 of the designation descriptor).
    pub code_set: u8,
    /// ASSOCIATION and DESIGNATOR TYPE (byte 1 without PIV).
    pub kind: u8,
    /// The designator bytes.
    pub id: Vec<u8>,
}

/// One CSCD descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cscd {
    designation: Designation,
    /// DISK BLOCK LENGTH (0: not given).
    block_len: u32,
}

/// One block-to-block segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    src: u16,
    dst: u16,
    /// DC: NUMBER OF BLOCKS counts destination blocks.
    dc: bool,
    blocks: u16,
    src_lba: u64,
    dst_lba: u64,
}

/// A decoded EXTENDED COPY parameter list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyList {
    pub list_id: u8,
    pub usage: u8,
    cscds: Vec<Cscd>,
    segments: Vec<Segment>,
}

/// The outcome of processing the segments of a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CopyOutcome {
    /// Segments completely processed.
    pub segments: u16,
    /// Bytes written to copy destinations.
    pub bytes: u64,
    /// The error that stopped the copy, if any.
    pub error: Option<CmdError>,
}

fn length_error() -> Sense {
    Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR)
}

/// Decodes and validates a whole parameter list (`data` is exactly PARAMETER LIST LENGTH
/// bytes).
pub(crate) fn parse(data: &[u8], max_segment_bytes: u64) -> Result<CopyList, Sense> {
    if data.len() < HEADER_LEN {
        return Err(length_error());
    }
    let list_id = data[0];
    let flags = data[1];
    if flags & 0xC0 != 0 {
        return Err(Sense::invalid_param(
            1,
            Some(7 - (flags & 0xC0).leading_zeros() as u8),
        ));
    }
    let usage = (flags >> 3) & 0x03;
    if usage == 0b01 {
        return Err(Sense::invalid_param(1, Some(4)));
    }
    if usage == USAGE_NO_LIST_ID && list_id != 0 {
        return Err(Sense::invalid_param(0, None));
    }
    let cscd_len = usize::from(be16(data, 2));
    let seg_len = be32(data, 8) as usize;
    let inline_len = be32(data, 12);
    if cscd_len as u64 + seg_len as u64 > u64::from(MAX_DESCRIPTOR_LIST_LENGTH) {
        return Err(length_error());
    }
    if inline_len != 0 {
        return Err(Sense::illegal(Asc::INLINE_DATA_LENGTH_EXCEEDED));
    }
    if HEADER_LEN + cscd_len + seg_len > data.len() {
        return Err(length_error());
    }
    let cscds = parse_cscds(&data[HEADER_LEN..HEADER_LEN + cscd_len])?;
    let seg_at = HEADER_LEN + cscd_len;
    let segments = parse_segments(&data[seg_at..seg_at + seg_len], seg_at)?;
    check_segment_lengths(&cscds, &segments, seg_at, max_segment_bytes)?;
    Ok(CopyList {
        list_id,
        usage,
        cscds,
        segments,
    })
}

/// The CSCD descriptor list: identification descriptors only.
fn parse_cscds(list: &[u8]) -> Result<Vec<Cscd>, Sense> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < list.len() {
        if out.len() == usize::from(MAX_CSCD_DESCRIPTORS) {
            return Err(Sense::illegal(Asc::TOO_MANY_TARGET_DESCRIPTORS));
        }
        let off = HEADER_LEN + at;
        if list[at] != CSCD_IDENTIFICATION {
            return Err(Sense::illegal(Asc::UNSUPPORTED_TARGET_DESCRIPTOR_TYPE));
        }
        let Some(d) = list.get(at..at + CSCD_LEN) else {
            return Err(length_error());
        };
        out.push(parse_identification(d, off)?);
        at += CSCD_LEN;
    }
    Ok(out)
}

/// One identification descriptor CSCD descriptor (SPC-4 6.4.5.5) at parameter offset `off`.
/// LU ID TYPE and NUL are ignored (SPC-4 makes them reserved and obsolete).
fn parse_identification(d: &[u8], off: usize) -> Result<Cscd, Sense> {
    let at = |i: usize| (off + i) as u16;
    if d[1] & 0x1F != 0 {
        // PERIPHERAL DEVICE TYPE: only block devices are copy targets.
        return Err(Sense::invalid_param(at(1), Some(4)));
    }
    let len = usize::from(d[7]);
    if len > 16 {
        return Err(Sense::invalid_param(at(7), None));
    }
    let designation = Designation {
        code_set: d[4] & 0x0F,
        kind: d[5] & 0x3F,
        id: d[8..8 + len].to_vec(),
    };
    Ok(Cscd {
        designation,
        block_len: be24(d, 29),
    })
}

/// The segment descriptor list: block-to-block segments only.
fn parse_segments(list: &[u8], base: usize) -> Result<Vec<Segment>, Sense> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < list.len() {
        if out.len() == usize::from(MAX_SEGMENT_DESCRIPTORS) {
            return Err(Sense::illegal(Asc::TOO_MANY_SEGMENT_DESCRIPTORS));
        }
        if list[at] != SEGMENT_BLOCK_TO_BLOCK {
            return Err(Sense::illegal(Asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE));
        }
        let Some(d) = list.get(at..at + B2B_LEN) else {
            return Err(length_error());
        };
        if usize::from(be16(d, 2)) != B2B_LEN - 4 {
            return Err(Sense::invalid_param((base + at + 2) as u16, None));
        }
        out.push(Segment {
            src: be16(d, 4),
            dst: be16(d, 6),
            dc: d[1] & 0x02 != 0,
            blocks: be16(d, 10),
            src_lba: be64(d, 12),
            dst_lba: be64(d, 20),
        });
        at += B2B_LEN;
    }
    Ok(out)
}

/// MAXIMUM SEGMENT LENGTH, checked with the block lengths the CSCD descriptors give (a
/// segment naming a missing descriptor fails later, while it is processed).
fn check_segment_lengths(
    cscds: &[Cscd],
    segments: &[Segment],
    base: usize,
    max: u64,
) -> Result<(), Sense> {
    for (i, s) in segments.iter().enumerate() {
        let unit = if s.dc { s.dst } else { s.src };
        let Some(c) = cscds.get(usize::from(unit)) else {
            continue;
        };
        if u64::from(s.blocks) * u64::from(c.block_len) > max {
            return Err(Sense::invalid_param((base + i * B2B_LEN + 10) as u16, None));
        }
    }
    Ok(())
}

/// Finds the logical unit a designation names among those visible to the requester.
pub(crate) type Resolver<'a> = &'a dyn Fn(&Designation) -> Option<Arc<Device>>;

/// A resolved copy target: the copy manager's own logical unit or another one of the table.
enum Target {
    This,
    Other(Arc<Device>),
}

impl Device {
    /// MAXIMUM SEGMENT LENGTH in bytes: at most 16 MiB and the maximum transfer length.
    pub(crate) fn max_segment_bytes(&self) -> u32 {
        let bs = self.geo.block_size.max(1);
        let max = MAX_SEGMENT_BYTES.min(self.cfg.max_transfer_bytes);
        (max / bs * bs).max(bs)
    }

    /// Whether VPD 83h of this logical unit lists the logical-unit designator `d`.
    pub(crate) fn designates(&self, d: &Designation) -> bool {
        let page = self.device_identification();
        let mut at = 0;
        while at + 4 <= page.len() {
            let len = usize::from(page[at + 3]);
            let id = page.get(at + 4..at + 4 + len).unwrap_or(&[]);
            let assoc = (page[at + 1] >> 4) & 0x03;
            if assoc == 0
                && page[at] & 0x0F == d.code_set
                && page[at + 1] & 0x3F == d.kind
                && id == d.id.as_slice()
            {
                return true;
            }
            at += 4 + len;
        }
        false
    }

    /// EXTENDED COPY (LID1). `resolve` finds the other logical units of the requester's LUN
    /// table; the copy manager's own logical unit is always found.
    pub(crate) fn extended_copy(&self, req: &Request, resolve: Resolver) -> CmdResult {
        let len = be32(req.cdb, 10);
        if len == 0 {
            return Ok(Vec::new());
        }
        let data = take_data_out(req, u64::from(len))?;
        let list = parse(data, u64::from(self.max_segment_bytes()))?;
        let outcome = self.run_segments(req.nexus, &list, resolve);
        if list.usage == USAGE_HOLD {
            self.lock().copies.record(req.nexus, list.list_id, outcome);
        }
        match outcome.error {
            Some(e) => Err(e),
            None => Ok(Vec::new()),
        }
    }

    /// Processes the segments in order; stops at the first error.
    fn run_segments(&self, nexus: NexusId, list: &CopyList, resolve: Resolver) -> CopyOutcome {
        let mut outcome = CopyOutcome {
            segments: 0,
            bytes: 0,
            error: None,
        };
        for s in &list.segments {
            match self.run_segment(nexus, list, s, resolve) {
                Ok(bytes) => {
                    outcome.segments += 1;
                    outcome.bytes += bytes;
                }
                Err(e) => {
                    outcome.error = Some(e);
                    break;
                }
            }
        }
        outcome
    }

    /// The copy target of CSCD descriptor `index`, or UNREACHABLE COPY TARGET.
    fn target(&self, list: &CopyList, index: u16, resolve: Resolver) -> Result<Target, Sense> {
        let unreachable = Sense::copy_aborted(Asc::UNREACHABLE_COPY_TARGET);
        let c = list.cscds.get(usize::from(index)).ok_or(unreachable)?;
        let target = if self.designates(&c.designation) {
            Target::This
        } else {
            Target::Other(resolve(&c.designation).ok_or(unreachable)?)
        };
        let dev = match &target {
            Target::This => self,
            Target::Other(d) => d,
        };
        if c.block_len != 0 && c.block_len != dev.geo.block_size {
            return Err(Sense::copy_aborted(Asc::INCORRECT_COPY_TARGET_DEVICE_TYPE));
        }
        Ok(target)
    }

    /// One block-to-block segment; returns the bytes copied.
    fn run_segment(
        &self,
        nexus: NexusId,
        list: &CopyList,
        s: &Segment,
        resolve: Resolver,
    ) -> Result<u64, CmdError> {
        let src_t = self.target(list, s.src, resolve)?;
        let dst_t = self.target(list, s.dst, resolve)?;
        let src = match &src_t {
            Target::This => self,
            Target::Other(d) => d,
        };
        let dst = match &dst_t {
            Target::This => self,
            Target::Other(d) => d,
        };
        let unit = if s.dc { dst.bs() } else { src.bs() };
        let bytes = u64::from(s.blocks) * unit;
        if bytes % src.bs() != 0 || bytes % dst.bs() != 0 {
            return Err(Sense::copy_aborted(Asc::COPY_TARGET_DEVICE_DATA_UNDERRUN).into());
        }
        if bytes > u64::from(self.max_segment_bytes()) {
            return Err(Sense::copy_aborted(Asc::INVALID_FIELD_IN_PARAMETER_LIST).into());
        }
        let not_reachable = |_| Sense::copy_aborted(Asc::COPY_TARGET_DEVICE_NOT_REACHABLE);
        src.check_range(s.src_lba, bytes / src.bs())
            .map_err(not_reachable)?;
        dst.check_range(s.dst_lba, bytes / dst.bs())
            .map_err(not_reachable)?;
        src.copy_access(nexus, Access::Read)?;
        dst.copy_access(nexus, Access::Write)?;
        let range = CopyRange {
            src_off: s.src_lba * src.bs(),
            dst_off: s.dst_lba * dst.bs(),
            bytes,
        };
        copy_range(src, dst, range)?;
        Ok(bytes)
    }

    /// Whether the copy manager may read (`Access::Read`) or write this logical unit for
    /// `nexus`: reservations, medium, write protection. Sense becomes COPY ABORTED.
    fn copy_access(&self, nexus: NexusId, access: Access) -> Result<(), CmdError> {
        {
            let st = self.lock();
            let reserved = st.reserved_by.is_some_and(|h| h != nexus);
            if reserved || st.pr.conflicts(nexus, access) {
                return Err(CmdError::Conflict);
            }
            if self.cfg.removable && !st.medium_present {
                return Err(Sense::copy_aborted(Asc::MEDIUM_NOT_PRESENT).into());
            }
        }
        if access == Access::Write {
            self.check_writable()
                .map_err(|s| Sense::copy_aborted(s.asc))?;
        }
        Ok(())
    }
}

/// A copy of `bytes` bytes between byte offsets.
#[derive(Debug, Clone, Copy)]
struct CopyRange {
    src_off: u64,
    dst_off: u64,
    bytes: u64,
}

/// Copies in chunks of at most [`CHUNK_BYTES`] (rounded to both block sizes). Within one
/// logical unit, a destination that overlaps the source from above is copied backwards so the
/// result is that of reading everything first.
fn copy_range(src: &Device, dst: &Device, r: CopyRange) -> Result<(), Sense> {
    let unit = src.bs().max(dst.bs());
    let chunk = (CHUNK_BYTES / unit * unit).max(unit);
    let backwards =
        std::ptr::eq(src, dst) && r.dst_off > r.src_off && r.dst_off < r.src_off + r.bytes;
    let mut buf = vec![0u8; chunk.min(r.bytes) as usize];
    let mut done = 0;
    while done < r.bytes {
        let n = chunk.min(r.bytes - done);
        let at = if backwards { r.bytes - done - n } else { done };
        let part = &mut buf[..n as usize];
        src.store
            .read(r.src_off + at, part)
            .map_err(|e| Sense::copy_aborted(Sense::from_io(&e, false).asc))?;
        let _gate = dst.shared_writes();
        dst.write_blocks((r.dst_off + at) / dst.bs(), part, false)
            .map_err(|s| Sense::copy_aborted(s.asc))?;
        done += n;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::{LunTable, Status};

    /// An identification CSCD descriptor naming the NAA designator `naa`.
    pub fn cscd(naa: u64, block_len: u32) -> Vec<u8> {
        let mut d = vec![0u8; 32];
        d[0] = 0xE4;
        d[4] = 0x01;
        d[5] = 0x03;
        d[7] = 8;
        d[8..16].copy_from_slice(&naa.to_be_bytes());
        d[29..32].copy_from_slice(&block_len.to_be_bytes()[1..]);
        d
    }

    /// A block-to-block segment descriptor.
    pub fn b2b(src: u16, dst: u16, blocks: u16, src_lba: u64, dst_lba: u64) -> Vec<u8> {
        let mut d = vec![0u8; 28];
        d[0] = 0x02;
        d[2..4].copy_from_slice(&24u16.to_be_bytes());
        d[4..6].copy_from_slice(&src.to_be_bytes());
        d[6..8].copy_from_slice(&dst.to_be_bytes());
        d[10..12].copy_from_slice(&blocks.to_be_bytes());
        d[12..20].copy_from_slice(&src_lba.to_be_bytes());
        d[20..28].copy_from_slice(&dst_lba.to_be_bytes());
        d
    }

    /// A parameter list with a header for `list_id`/`usage`.
    pub fn params(list_id: u8, usage: u8, cscds: &[Vec<u8>], segs: &[Vec<u8>]) -> Vec<u8> {
        let c: Vec<u8> = cscds.concat();
        let s: Vec<u8> = segs.concat();
        let mut p = vec![0u8; 16];
        p[0] = list_id;
        p[1] = usage << 3;
        p[2..4].copy_from_slice(&(c.len() as u16).to_be_bytes());
        p[8..12].copy_from_slice(&(s.len() as u32).to_be_bytes());
        p.extend(c);
        p.extend(s);
        p
    }

    pub fn xcopy_cdb(len: u32) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[0] = 0x83;
        c[10..14].copy_from_slice(&len.to_be_bytes());
        c
    }

    pub const NAA: u64 = 0x3000_0000_0000_0001;

    fn naa_dev(naa: u64) -> (Arc<MemStore>, Device) {
        dev_with(1024, 512, |c| c.naa = naa)
    }

    fn xcopy(d: &Device, p: &[u8]) -> crate::Response {
        run(d, &xcopy_cdb(p.len() as u32), p)
    }

    #[test]
    fn copies_within_one_lun() {
        let (s, d) = naa_dev(NAA);
        s.data.lock().unwrap()[..2048].fill(b'A');
        let p = params(1, 2, &[cscd(NAA, 512)], &[b2b(0, 0, 4, 0, 1000)]);
        good(xcopy(&d, &p));
        let data = s.data.lock().unwrap();
        assert_eq!(&data[1000 * 512..1004 * 512], &[b'A'; 2048][..]);
        assert_eq!(&data[1004 * 512..1005 * 512], &[0; 512][..]);
    }

    #[test]
    fn overlapping_copy_reads_before_writing() {
        let (s, d) = dev_with(8192, 512, |c| c.naa = NAA);
        {
            let mut data = s.data.lock().unwrap();
            for (i, b) in data[..3 << 20].chunks_mut(512).enumerate() {
                b.fill(i as u8);
            }
        }
        // 4096 blocks (2 MiB, two chunks) moved up by one block.
        let p = params(0, 3, &[cscd(NAA, 512)], &[b2b(0, 0, 4096, 0, 1)]);
        good(xcopy(&d, &p));
        let data = s.data.lock().unwrap();
        for i in [0usize, 1, 2, 2047, 2048, 2049, 4096] {
            let want = if i == 0 { 0 } else { (i - 1) as u8 };
            assert_eq!(data[i * 512], want, "block {i}");
        }
    }

    #[test]
    fn zero_length_and_header_errors() {
        let (_, d) = naa_dev(NAA);
        good(run(&d, &xcopy_cdb(0), &[]));
        assert_sense(&xcopy(&d, &[0; 15]), 5, 0x1A00);
        let full = params(1, 0, &[cscd(NAA, 512)], &[b2b(0, 0, 1, 0, 8)]);
        assert_sense(&xcopy(&d, &full[..47]), 5, 0x1A00);
        assert_sense(&xcopy(&d, &full[..75]), 5, 0x1A00);
        let mut reserved_usage = full.clone();
        reserved_usage[1] = 0x08;
        assert_sense(&xcopy(&d, &reserved_usage), 5, 0x2600);
        let mut no_id = full.clone();
        no_id[1] = 0x18;
        assert_sense(&xcopy(&d, &no_id), 5, 0x2600);
        let mut inline = full.clone();
        inline[15] = 4;
        inline.extend([0; 4]);
        assert_sense(&xcopy(&d, &inline), 5, 0x260B);
        // Fewer Data-Out bytes than the parameter list length.
        let r = run(&d, &xcopy_cdb(full.len() as u32 + 4), &full);
        assert_sense(&r, 5, 0x0E03);
    }

    #[test]
    fn descriptor_limits_and_types() {
        let (_, d) = naa_dev(NAA);
        let seg = b2b(0, 0, 1, 0, 8);
        let nine = vec![cscd(NAA, 512); 9];
        assert_sense(
            &xcopy(&d, &params(1, 0, &nine, std::slice::from_ref(&seg))),
            5,
            0x2606,
        );
        let segs = vec![seg.clone(); 17];
        assert_sense(
            &xcopy(&d, &params(1, 0, &[cscd(NAA, 512)], &segs)),
            5,
            0x2608,
        );
        let segs = vec![seg.clone(); 27];
        assert_sense(&xcopy(&d, &params(1, 0, &nine, &segs)), 5, 0x1A00);
        let mut fc = cscd(NAA, 512);
        fc[0] = 0xE0;
        assert_sense(
            &xcopy(&d, &params(1, 0, &[fc], std::slice::from_ref(&seg))),
            5,
            0x2607,
        );
        let mut s2s = vec![0u8; 24];
        s2s[0] = 0x03;
        s2s[3] = 20;
        assert_sense(
            &xcopy(&d, &params(1, 0, &[cscd(NAA, 512)], &[s2s])),
            5,
            0x2609,
        );
        let mut tape = cscd(NAA, 512);
        tape[1] = 0x01;
        assert_sense(
            &xcopy(&d, &params(1, 0, &[tape], std::slice::from_ref(&seg))),
            5,
            0x2600,
        );
        let mut bad_len = seg.clone();
        bad_len[3] = 20;
        assert_sense(
            &xcopy(&d, &params(1, 0, &[cscd(NAA, 512)], &[bad_len])),
            5,
            0x2600,
        );
        // A segment longer than MAXIMUM SEGMENT LENGTH (16 MiB).
        let big = b2b(0, 0, 40000, 0, 0);
        let r = xcopy(&d, &params(1, 0, &[cscd(NAA, 512)], &[big]));
        assert_sense(&r, 5, 0x2600);
        assert_eq!(&r.sense[15..18], &[0x80, 0, 16 + 32 + 10]);
    }

    #[test]
    fn lu_id_type_and_nul_are_ignored() {
        let (_, d) = naa_dev(NAA);
        let mut c = cscd(NAA, 512);
        c[1] = 0xE0;
        good(xcopy(&d, &params(1, 0, &[c], &[b2b(0, 0, 1, 0, 8)])));
    }

    #[test]
    fn segment_errors_abort_the_copy() {
        let (_, d) = naa_dev(NAA);
        let c = || vec![cscd(NAA, 512)];
        assert_sense(
            &xcopy(&d, &params(1, 0, &c(), &[b2b(0, 1, 8, 0, 0)])),
            0xA,
            0x0804,
        );
        let r = xcopy(&d, &params(1, 0, &c(), &[b2b(0, 0, 8, 0, 1023)]));
        assert_sense(&r, 0xA, 0x0D02);
        let other = vec![cscd(0x3999, 512)];
        assert_sense(
            &xcopy(&d, &params(1, 0, &other, &[b2b(0, 0, 1, 0, 0)])),
            0xA,
            0x0804,
        );
        let wrong_bs = vec![cscd(NAA, 4096)];
        let r = xcopy(&d, &params(1, 0, &wrong_bs, &[b2b(0, 0, 1, 0, 0)]));
        assert_sense(&r, 0xA, 0x0D03);
    }

    #[test]
    fn write_protect_and_reservations() {
        let (_, d) = naa_dev(NAA);
        let p = params(1, 0, &[cscd(NAA, 512)], &[b2b(0, 0, 1, 0, 8)]);
        // A write exclusive reservation of another nexus conflicts (EXTENDED COPY writes).
        clear_ua(&d, N2);
        let reg = [0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0];
        let mut key = vec![0u8; 24];
        key[15] = 9;
        good(run_on(&d, N2, &reg, &key));
        let mut res = vec![0u8; 24];
        res[7] = 9;
        good(run_on(&d, N2, &[0x5F, 1, 1, 0, 0, 0, 0, 0, 24, 0], &res));
        assert_eq!(xcopy(&d, &p).status, Status::RESERVATION_CONFLICT);
        let (_, ro) = dev_with(64, 512, |c| {
            c.naa = NAA;
            c.read_only = true;
        });
        assert_sense(&xcopy(&ro, &p), 0xA, 0x2700);
    }

    /// A table with LUN 0 (NAA) and LUN 1 (NAA + 1).
    fn table() -> (Arc<MemStore>, Arc<MemStore>, LunTable) {
        let (s0, d0) = naa_dev(NAA);
        let (s1, d1) = naa_dev(NAA + 1);
        let t = LunTable::new(vec![(0, Arc::new(d0)), (1, Arc::new(d1))]);
        (s0, s1, t)
    }

    fn table_xcopy(t: &LunTable, lun: u64, p: &[u8]) -> crate::Response {
        let cdb = xcopy_cdb(p.len() as u32);
        let req = Request {
            nexus: N1,
            cdb: &cdb,
            data_out: p,
            expected_len: p.len() as u32,
            attr: crate::TaskAttr::Simple,
        };
        let tur = Request {
            cdb: &[0; 6],
            data_out: &[],
            ..req
        };
        t.execute(lun, &tur);
        t.execute(lun, &req)
    }

    #[test]
    fn copies_between_luns_of_the_table() {
        let (s0, s1, t) = table();
        s0.data.lock().unwrap()[..512].fill(7);
        let p = params(
            1,
            0,
            &[cscd(NAA, 512), cscd(NAA + 1, 512)],
            &[b2b(0, 1, 1, 0, 5)],
        );
        // Sent to LUN 1: the source is another LUN of the same table.
        good(table_xcopy(&t, 1, &p));
        assert_eq!(&s1.data.lock().unwrap()[5 * 512..6 * 512], &[7; 512][..]);
    }

    #[test]
    fn luns_outside_the_nexus_table_are_unreachable() {
        let (_, _, t) = table();
        // A device of another target (another LUN table) with its own designator.
        let (outside_store, outside) = naa_dev(NAA + 2);
        let other = LunTable::new(vec![(0, Arc::new(outside))]);
        outside_store.data.lock().unwrap()[..512].fill(0x55);
        let p = params(
            1,
            0,
            &[cscd(NAA + 2, 512), cscd(NAA, 512)],
            &[b2b(0, 1, 1, 0, 0)],
        );
        assert_sense(&table_xcopy(&t, 0, &p), 0xA, 0x0804);
        let p = params(
            1,
            0,
            &[cscd(NAA, 512), cscd(NAA + 2, 512)],
            &[b2b(0, 1, 1, 0, 0)],
        );
        assert_sense(&table_xcopy(&t, 0, &p), 0xA, 0x0804);
        assert_eq!(outside_store.data.lock().unwrap()[0], 0x55);
        assert_eq!(other.luns(), vec![0]);
    }

    #[test]
    fn parse_keeps_descriptor_fields() {
        let p = params(7, 0, &[cscd(NAA, 512)], &[b2b(0, 0, 3, 10, 20)]);
        let l = parse(&p, 1 << 20).unwrap();
        assert_eq!((l.list_id, l.usage), (7, 0));
        assert_eq!(l.cscds[0].designation.id, NAA.to_be_bytes().to_vec());
        assert_eq!(l.cscds[0].designation.kind, 0x03);
        assert_eq!(l.cscds[0].block_len, 512);
        assert_eq!(
            l.segments[0],
            Segment {
                src: 0,
                dst: 0,
                dc: false,
                blocks: 3,
                src_lba: 10,
                dst_lba: 20
            }
        );
    }
}
