//! RECEIVE COPY RESULTS (SPC-4 6.18): COPY STATUS and OPERATING PARAMETERS of EXTENDED COPY
//! (LID1), the copy status held per I_T nexus, and the Third-party Copy VPD page (8Fh).

use std::collections::HashMap;

use crate::cdb::{be32, byte, clip};
use crate::sense::{CmdResult, Sense};
use crate::xcopy::{
    CopyOutcome, CSCD_IDENTIFICATION, MAX_CSCD_DESCRIPTORS, MAX_DESCRIPTOR_LIST_LENGTH,
    MAX_SEGMENT_DESCRIPTORS, SEGMENT_BLOCK_TO_BLOCK,
};
use crate::{Device, NexusId, Request};

/// RECEIVE COPY RESULTS service actions.
pub(crate) const SA_COPY_STATUS: u8 = 0x00;
/// OPERATING PARAMETERS.
pub(crate) const SA_OPERATING_PARAMETERS: u8 = 0x03;

/// Copy statuses held for one nexus at most; the oldest is dropped past this.
const MAX_HELD: usize = 16;

/// Descriptor type codes the copy manager implements.
const IMPLEMENTED_DESCRIPTORS: [u8; 2] = [SEGMENT_BLOCK_TO_BLOCK, CSCD_IDENTIFICATION];

/// The status of completed EXTENDED COPY commands whose LIST ID USAGE asked for it to be held,
/// by nexus and list identifier. Commands run to completion, so no copy is ever in progress.
#[derive(Debug, Default)]
pub struct CopyResults {
    held: HashMap<NexusId, Vec<(u8, CopyOutcome)>>,
}

impl CopyResults {
    /// Holds the outcome of a copy, replacing an older one with the same list identifier.
    pub(crate) fn record(&mut self, nexus: NexusId, list_id: u8, outcome: CopyOutcome) {
        let list = self.held.entry(nexus).or_default();
        list.retain(|(id, _)| *id != list_id);
        if list.len() == MAX_HELD {
            list.remove(0);
        }
        list.push((list_id, outcome));
    }

    /// Takes the held status of `list_id`: once a completed copy's status has been returned
    /// it is discarded.
    fn take(&mut self, nexus: NexusId, list_id: u8) -> Option<CopyOutcome> {
        let list = self.held.get_mut(&nexus)?;
        let i = list.iter().position(|(id, _)| *id == list_id)?;
        Some(list.remove(i).1)
    }

    /// Drops everything held for a nexus that is gone.
    pub(crate) fn forget(&mut self, nexus: NexusId) {
        self.held.remove(&nexus);
    }

    /// Drops everything (logical unit reset).
    pub(crate) fn clear(&mut self) {
        self.held.clear();
    }
}

/// The COPY STATUS parameter data (12 bytes) of a completed copy.
fn copy_status(o: &CopyOutcome) -> Vec<u8> {
    let mut d = vec![0u8; 12];
    d[3] = 8;
    d[4] = if o.error.is_some() { 0x02 } else { 0x01 };
    d[5..7].copy_from_slice(&o.segments.to_be_bytes());
    // TRANSFER COUNT UNITS: bytes, or the smallest power of 1024 that fits in 32 bits.
    let mut count = o.bytes;
    let mut units = 0u8;
    while count > u64::from(u32::MAX) {
        count >>= 10;
        units += 1;
    }
    d[7] = units;
    d[8..12].copy_from_slice(&(count as u32).to_be_bytes());
    d
}

/// log2 of a power-of-two block size (the granularity fields).
fn log2(n: u32) -> u8 {
    (31 - n.max(1).leading_zeros()) as u8
}

impl Device {
    /// RECEIVE COPY RESULTS.
    pub(crate) fn receive_copy_results(&self, req: &Request) -> CmdResult {
        let alloc = be32(req.cdb, 10) as usize;
        let data = match byte(req.cdb, 1) & 0x1F {
            SA_COPY_STATUS => {
                let list_id = byte(req.cdb, 2);
                let held = self.lock().copies.take(req.nexus, list_id);
                copy_status(&held.ok_or(Sense::invalid_cdb(2, None))?)
            }
            _ => self.operating_parameters(),
        };
        Ok(clip(data, alloc))
    }

    /// The OPERATING PARAMETERS parameter data (SPC-4 6.18.4).
    fn operating_parameters(&self) -> Vec<u8> {
        let mut d = vec![0u8; 44];
        d.extend_from_slice(&IMPLEMENTED_DESCRIPTORS);
        let available = (d.len() - 4) as u32;
        d[0..4].copy_from_slice(&available.to_be_bytes());
        d[4] = 0x01; // SNLID: LIST ID USAGE 11b is supported
        d[8..10].copy_from_slice(&MAX_CSCD_DESCRIPTORS.to_be_bytes());
        d[10..12].copy_from_slice(&MAX_SEGMENT_DESCRIPTORS.to_be_bytes());
        d[12..16].copy_from_slice(&MAX_DESCRIPTOR_LIST_LENGTH.to_be_bytes());
        d[16..20].copy_from_slice(&self.max_segment_bytes().to_be_bytes());
        // MAXIMUM INLINE DATA LENGTH, HELD DATA LIMIT, MAXIMUM STREAM DEVICE TRANSFER SIZE: 0.
        d[34..36].copy_from_slice(&1u16.to_be_bytes()); // TOTAL CONCURRENT COPIES
        d[36] = 1; // MAXIMUM CONCURRENT COPIES
        d[37] = log2(self.geo.block_size); // DATA SEGMENT GRANULARITY
        d[43] = IMPLEMENTED_DESCRIPTORS.len() as u8;
        d
    }

    /// The body of the Third-party Copy VPD page (8Fh): Supported Commands, Parameter Data,
    /// Supported Descriptors and General Copy Operations descriptors.
    pub(crate) fn third_party_copy(&self) -> Vec<u8> {
        let mut d = Vec::new();
        // Supported Commands: EXTENDED COPY (LID1) and RECEIVE COPY RESULTS.
        let commands = [
            0x83,
            1,
            0x00,
            0x84,
            2,
            SA_COPY_STATUS,
            SA_OPERATING_PARAMETERS,
        ];
        let mut body = vec![commands.len() as u8];
        body.extend_from_slice(&commands);
        push_descriptor(&mut d, 0x0001, body);
        // Parameter Data.
        let mut body = vec![0u8; 28];
        body[4..6].copy_from_slice(&MAX_CSCD_DESCRIPTORS.to_be_bytes());
        body[6..8].copy_from_slice(&MAX_SEGMENT_DESCRIPTORS.to_be_bytes());
        body[8..12].copy_from_slice(&MAX_DESCRIPTOR_LIST_LENGTH.to_be_bytes());
        push_descriptor(&mut d, 0x0004, body);
        // Supported Descriptors.
        let mut body = vec![IMPLEMENTED_DESCRIPTORS.len() as u8];
        body.extend_from_slice(&IMPLEMENTED_DESCRIPTORS);
        push_descriptor(&mut d, 0x0008, body);
        // General Copy Operations.
        let mut body = vec![0u8; 28];
        body[0..4].copy_from_slice(&1u32.to_be_bytes());
        body[4..8].copy_from_slice(&1u32.to_be_bytes());
        body[8..12].copy_from_slice(&self.max_segment_bytes().to_be_bytes());
        body[12] = log2(self.geo.block_size);
        push_descriptor(&mut d, 0x0106, body);
        d
    }
}

/// Appends one third-party copy descriptor, padded to a multiple of four bytes.
fn push_descriptor(out: &mut Vec<u8>, kind: u16, mut body: Vec<u8>) {
    body.resize(body.len().div_ceil(4) * 4, 0);
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend(body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::xcopy::tests::{b2b, cscd, params, xcopy_cdb, NAA};

    fn rcr(sa: u8, list_id: u8, alloc: u32) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[0] = 0x84;
        c[1] = sa;
        c[2] = list_id;
        c[10..14].copy_from_slice(&alloc.to_be_bytes());
        c
    }

    #[test]
    fn operating_parameters_bytes() {
        let (_, d) = dev();
        let p = good(run(&d, &rcr(3, 0, 1024), &[]));
        assert_eq!(p.len(), 46);
        assert_eq!(&p[..8], &[0, 0, 0, 42, 1, 0, 0, 0]);
        assert_eq!(&p[8..16], &[0, 8, 0, 16, 0, 0, 4, 0]);
        assert_eq!(&p[16..20], &(16u32 << 20).to_be_bytes());
        assert_eq!(&p[20..34], &[0; 14]);
        assert_eq!(&p[34..38], &[0, 1, 1, 9]);
        assert_eq!(&p[43..], &[2, 0x02, 0xE4]);
        assert_eq!(good(run(&d, &rcr(3, 0, 10), &[])).len(), 10);
    }

    #[test]
    fn copy_status_is_held_once() {
        let (_, d) = dev_with(1024, 512, |c| c.naa = NAA);
        assert_invalid_cdb(&run(&d, &rcr(0, 1, 1024), &[]), 2, None);
        let p = params(1, 0, &[cscd(NAA, 512)], &[b2b(0, 0, 4, 0, 8)]);
        good(run(&d, &xcopy_cdb(p.len() as u32), &p));
        // Another nexus sees nothing.
        clear_ua(&d, N2);
        assert_invalid_cdb(&run_on(&d, N2, &rcr(0, 1, 1024), &[]), 2, None);
        let s = good(run(&d, &rcr(0, 1, 1024), &[]));
        assert_eq!(s, vec![0, 0, 0, 8, 1, 0, 1, 0, 0, 0, 8, 0]);
        assert_invalid_cdb(&run(&d, &rcr(0, 1, 1024), &[]), 2, None);
        // LIST ID USAGE 10b holds nothing; a failed copy is held as failed.
        let p = params(2, 2, &[cscd(NAA, 512)], &[b2b(0, 0, 4, 0, 8)]);
        good(run(&d, &xcopy_cdb(p.len() as u32), &p));
        assert_invalid_cdb(&run(&d, &rcr(0, 2, 1024), &[]), 2, None);
        let p = params(
            3,
            0,
            &[cscd(NAA, 512)],
            &[b2b(0, 0, 4, 0, 8), b2b(0, 1, 1, 0, 0)],
        );
        assert_sense(&run(&d, &xcopy_cdb(p.len() as u32), &p), 0xA, 0x0804);
        let s = good(run(&d, &rcr(0, 3, 1024), &[]));
        assert_eq!(&s[4..12], &[2, 0, 1, 0, 0, 0, 8, 0]);
        // Unknown service actions and nexus loss.
        assert_invalid_cdb(&run(&d, &rcr(1, 0, 1024), &[]), 1, Some(4));
        let p = params(5, 0, &[cscd(NAA, 512)], &[b2b(0, 0, 4, 0, 8)]);
        good(run(&d, &xcopy_cdb(p.len() as u32), &p));
        d.nexus_lost(N1);
        clear_ua(&d, N1);
        assert_invalid_cdb(&run(&d, &rcr(0, 5, 1024), &[]), 2, None);
    }

    #[test]
    fn transfer_count_units() {
        let o = CopyOutcome {
            segments: 3,
            bytes: 5 << 40,
            error: None,
        };
        assert_eq!(copy_status(&o)[7..12], [2, 0, 0x50, 0, 0]);
    }

    #[test]
    fn third_party_copy_page() {
        let (_, d) = dev();
        let p = good(run(&d, &[0x12, 1, 0x8F, 1, 0, 0], &[]));
        assert_eq!(&p[..4], &[0, 0x8F, 0, (p.len() - 4) as u8]);
        assert_eq!(&p[4..16], &[0, 1, 0, 8, 7, 0x83, 1, 0, 0x84, 2, 0, 3]);
        assert_eq!(&p[16..20], &[0, 4, 0, 28]);
        assert_eq!(&p[24..28], &[0, 8, 0, 16]);
        assert_eq!(&p[48..56], &[0, 8, 0, 4, 2, 0x02, 0xE4, 0]);
        assert_eq!(&p[56..60], &[1, 6, 0, 28]);
        assert_eq!(&p[68..72], &(16u32 << 20).to_be_bytes());
        assert_eq!(p[72], 9);
        assert_eq!(p.len(), 88);
    }
}
