//! READ CAPACITY 10 and READ CAPACITY 16 (SBC-3 5.15, 5.16).

use crate::cdb::{be32, be64, byte, clip};
use crate::sense::{CmdResult, Sense};
use crate::{Device, Request};

impl Device {
    /// LOGICAL BLOCKS PER PHYSICAL BLOCK (a power of two; 1 unless a larger physical block
    /// size is configured).
    pub(crate) fn blocks_per_physical(&self) -> u32 {
        let bs = self.geo.block_size.max(1);
        let pbs = self.cfg.physical_block_size;
        if pbs > bs && pbs.is_multiple_of(bs) && (pbs / bs).is_power_of_two() {
            pbs / bs
        } else {
            1
        }
    }

    /// Data of READ CAPACITY 10: last LBA (FFFFFFFFh when it does not fit) and block length.
    pub(crate) fn read_capacity_10(&self, req: &Request) -> CmdResult {
        let pmi = byte(req.cdb, 8) & 0x01 != 0;
        if !pmi && be32(req.cdb, 2) != 0 {
            return Err(Sense::invalid_cdb(2, None).into());
        }
        let last = self.geo.num_blocks.saturating_sub(1);
        let last = u32::try_from(last).unwrap_or(u32::MAX);
        let mut d = Vec::with_capacity(8);
        d.extend_from_slice(&last.to_be_bytes());
        d.extend_from_slice(&self.geo.block_size.to_be_bytes());
        Ok(d)
    }

    /// Data of READ CAPACITY 16 (32 bytes, clipped to the allocation length).
    pub(crate) fn read_capacity_16(&self, req: &Request) -> CmdResult {
        let pmi = byte(req.cdb, 14) & 0x01 != 0;
        if !pmi && be64(req.cdb, 2) != 0 {
            return Err(Sense::invalid_cdb(2, None).into());
        }
        let alloc = be32(req.cdb, 10) as usize;
        let mut d = vec![0u8; 32];
        let last = self.geo.num_blocks.saturating_sub(1);
        d[0..8].copy_from_slice(&last.to_be_bytes());
        d[8..12].copy_from_slice(&self.geo.block_size.to_be_bytes());
        d[13] = self.blocks_per_physical().trailing_zeros() as u8;
        if self.thin() {
            d[14] = 0x80 | 0x40; // LBPME, LBPRZ
        }
        Ok(clip(d, alloc))
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;

    #[test]
    fn read_capacity_10() {
        let (_, d) = dev();
        let data = good(run(&d, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]));
        assert_eq!(data, vec![0, 0, 0x03, 0xFF, 0, 0, 2, 0]);
        assert_invalid_cdb(&run(&d, &[0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0], &[]), 2, None);
        good(run(&d, &[0x25, 0, 0, 0, 0, 1, 0, 0, 1, 0], &[]));
        assert_invalid_cdb(
            &run(&d, &[0x25, 1, 0, 0, 0, 0, 0, 0, 0, 0], &[]),
            1,
            Some(0),
        );
    }

    #[test]
    fn read_capacity_10_too_large() {
        let (_, d) = dev_with(16, 512, |_| {});
        let mut g = d.geo;
        g.num_blocks = 1 << 33;
        let d2 = crate::Device { geo: g, ..d };
        let data = good(run(&d2, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]));
        assert_eq!(&data[..4], &[0xFF; 4]);
        let mut c = [0u8; 16];
        c[0] = 0x9E;
        c[1] = 0x10;
        c[13] = 32;
        let data = good(run(&d2, &c, &[]));
        assert_eq!(&data[..8], &((1u64 << 33) - 1).to_be_bytes());
    }

    #[test]
    fn read_capacity_16() {
        let (_, d) = dev();
        let mut c = [0u8; 16];
        c[0] = 0x9E;
        c[1] = 0x10;
        c[13] = 32;
        let data = good(run(&d, &c, &[]));
        let mut want = vec![0u8; 32];
        want[6] = 0x03;
        want[7] = 0xFF;
        want[10] = 0x02;
        want[14] = 0xC0;
        assert_eq!(data, want);
        c[13] = 12;
        assert_eq!(good(run(&d, &c, &[])).len(), 12);
        c[1] = 0x11;
        assert_invalid_cdb(&run(&d, &c, &[]), 1, Some(4));
        c[1] = 0x10;
        c[9] = 1;
        assert_invalid_cdb(&run(&d, &c, &[]), 2, None);
    }

    #[test]
    fn read_capacity_16_physical_blocks() {
        let mut c = [0u8; 16];
        c[0] = 0x9E;
        c[1] = 0x10;
        c[13] = 32;
        let (_, d) = dev_with(64, 512, |c| c.physical_block_size = 4096);
        let data = good(run(&d, &c, &[]));
        assert_eq!(&data[8..16], &[0, 0, 2, 0, 0, 3, 0xC0, 0]);
        // A physical size that is not a power-of-two multiple is ignored.
        let (_, d) = dev_with(64, 4096, |c| c.physical_block_size = 512);
        assert_eq!(good(run(&d, &c, &[]))[13], 0);
        let (_, d) = dev_with(64, 512, |c| c.physical_block_size = 1536);
        assert_eq!(good(run(&d, &c, &[]))[13], 0);
    }
}
