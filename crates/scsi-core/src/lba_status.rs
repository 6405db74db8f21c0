//! GET LBA STATUS (SBC-3 5.5), from the store's allocation map.

use backstore::Extent;

use crate::cdb::{be32, be64, clip};
use crate::sense::{CmdResult, Sense};
use crate::{Device, Request};

/// Most blocks one GET LBA STATUS looks at.
const WINDOW_BLOCKS: u64 = 1 << 24;

/// Turns byte extents into (start block, blocks, deallocated) runs starting at `lba`.
/// Partially deallocated blocks count as mapped.
pub fn runs(extents: &[Extent], lba: u64, end: u64, bs: u64) -> Vec<(u64, u64, bool)> {
    let mut out: Vec<(u64, u64, bool)> = Vec::new();
    let mut cursor = lba;
    for e in extents {
        let stop = if e.hole {
            (e.offset + e.length) / bs
        } else {
            (e.offset + e.length).div_ceil(bs)
        };
        let stop = stop.min(end);
        if stop <= cursor {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.2 == e.hole => last.1 += stop - cursor,
            _ => out.push((cursor, stop - cursor, e.hole)),
        }
        cursor = stop;
    }
    if cursor < end {
        match out.last_mut() {
            Some(last) if !last.2 => last.1 += end - cursor,
            _ => out.push((cursor, end - cursor, false)),
        }
    }
    out
}

impl Device {
    /// GET LBA STATUS: one descriptor per run of mapped / deallocated blocks from the
    /// starting LBA, clipped to the allocation length.
    pub(crate) fn get_lba_status(&self, req: &Request) -> CmdResult {
        let lba = be64(req.cdb, 2);
        let alloc = be32(req.cdb, 10) as usize;
        if lba >= self.geo.num_blocks {
            return Err(Sense::lba_out_of_range().into());
        }
        let bs = self.bs();
        let end = self.geo.num_blocks.min(lba + WINDOW_BLOCKS);
        let extents = self
            .store
            .extents(lba * bs, (end - lba) * bs)
            .map_err(|e| Sense::from_io(&e, false))?;
        let max_descs = alloc.saturating_sub(8) / 16;
        let mut d = vec![0u8; 8];
        for (start, n, hole) in runs(&extents, lba, end, bs)
            .into_iter()
            .take(max_descs.max(1))
        {
            d.extend_from_slice(&start.to_be_bytes());
            d.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
            d.push(u8::from(hole));
            d.extend_from_slice(&[0; 3]);
        }
        let plen = (d.len() - 4) as u32;
        d[0..4].copy_from_slice(&plen.to_be_bytes());
        Ok(clip(d, alloc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn gls(lba: u64, alloc: u32) -> [u8; 16] {
        let mut c = cdb16(0x9E, 0x12, lba, alloc);
        c[1] = 0x12;
        c
    }

    #[test]
    fn run_building() {
        let ex = [
            Extent {
                offset: 0,
                length: 1024,
                hole: false,
            },
            Extent {
                offset: 1024,
                length: 2048,
                hole: true,
            },
            Extent {
                offset: 3072,
                length: 1024,
                hole: false,
            },
        ];
        assert_eq!(
            runs(&ex, 0, 8, 512),
            vec![(0, 2, false), (2, 4, true), (6, 2, false)]
        );
        assert_eq!(runs(&ex, 3, 8, 512), vec![(3, 3, true), (6, 2, false)]);
        let odd = [Extent {
            offset: 0,
            length: 700,
            hole: true,
        }];
        assert_eq!(runs(&odd, 0, 4, 512), vec![(0, 1, true), (1, 3, false)]);
    }

    #[test]
    fn get_lba_status_reports_holes() {
        let (s, d) = dev();
        s.holes.lock().unwrap().push((512 * 4, 512 * 8));
        let data = good(run(&d, &gls(4, 64), &[]));
        assert_eq!(&data[..8], &[0, 0, 0, 36, 0, 0, 0, 0]);
        assert_eq!(
            &data[8..24],
            &[0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 8, 1, 0, 0, 0]
        );
        assert_eq!(
            &data[24..40],
            &[0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0x03, 0xF4, 0, 0, 0, 0]
        );
        let data = good(run(&d, &gls(0, 24), &[]));
        assert_eq!(&data[..4], &[0, 0, 0, 20]);
        assert_eq!(
            &data[8..24],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0]
        );
    }

    #[test]
    fn get_lba_status_errors() {
        let (_, d) = dev();
        assert_sense(&run(&d, &gls(1024, 64), &[]), 5, 0x2100);
        assert_sense(&run(&d, &gls(u64::MAX, 64), &[]), 5, 0x2100);
        assert_eq!(good(run(&d, &gls(1023, 64), &[])).len(), 24);
    }
}
