//! WRITE SAME 10/16 (SBC-3 5.42, 5.43), including UNMAP and NDOB.

use crate::cdb::{self, byte};
use crate::opcodes::op;
use crate::read_write::check_protect;
use crate::sense::{Asc, CmdResult, Sense};
use crate::{Device, Request};

/// Largest buffer built to replicate a non-zero block pattern.
const CHUNK: u64 = 1 << 20;

impl Device {
    /// WRITE SAME 10/16. NUMBER OF LOGICAL BLOCKS 0 means every block from the LBA to the
    /// end of the medium (WSNZ=0), bounded like any other length by the MAXIMUM WRITE SAME
    /// LENGTH. With UNMAP the range is deallocated whatever the block holds (SBC-4 lets the
    /// device server unmap each LBA instead of writing it; deallocated blocks then read as
    /// zeroes, LBPRZ=1); otherwise a zero block is written with `write_zeroes` and anything else
    /// is replicated block by block.
    pub(crate) fn write_same(&self, req: &Request) -> CmdResult {
        let sixteen = req.cdb[0] == op::WRITE_SAME_16;
        let r = cdb::block_range(req.cdb, false);
        let flags = byte(req.cdb, 1);
        check_protect(flags)?;
        self.check_writable()?;
        if flags & 0x10 != 0 {
            return Err(Sense::invalid_cdb(1, Some(4)).into());
        }
        let unmap = flags & 0x08 != 0;
        let ndob = sixteen && flags & 0x01 != 0;
        if unmap && !self.thin() {
            return Err(Sense::invalid_cdb(1, Some(3)).into());
        }
        self.check_range(r.lba, r.blocks)?;
        let blocks = match r.blocks {
            // Zero blocks: to the end of the medium; an LBA past the last one is out of range.
            0 if r.lba >= self.geo.num_blocks => return Err(Sense::lba_out_of_range().into()),
            0 => self.geo.num_blocks - r.lba,
            n => n,
        };
        let len_at = if sixteen { 10 } else { 7 };
        if blocks > self.max_write_same_blocks() {
            return Err(Sense::invalid_cdb(len_at, None).into());
        }
        let bs = self.bs();
        let block: Vec<u8> = if ndob {
            vec![0; bs as usize]
        } else if req.data_out.len() as u64 == bs {
            req.data_out.to_vec()
        } else {
            return Err(Sense::illegal(Asc::INVALID_FIELD_IN_IU).into());
        };
        let (off, len) = (r.lba * bs, blocks * bs);
        let zero = block.iter().all(|b| *b == 0);
        let _gate = self.shared_writes();
        let res = if unmap {
            self.store.trim(off, len)
        } else if zero {
            self.store.write_zeroes(off, len)
        } else {
            return self.write_pattern(r.lba, blocks, &block);
        };
        res.map_err(|e| Sense::from_io(&e, true))?;
        self.flush_if_write_through()?;
        Ok(Vec::new())
    }

    /// MAXIMUM WRITE SAME LENGTH in blocks: the configured limit, but never more than the
    /// MAXIMUM TRANSFER LENGTH. A WRITE SAME runs to completion on the thread that received it,
    /// like a WRITE, so it is bounded the same way; and an initiator that writes or reads back
    /// a WRITE SAME range with one command (as libiscsi's WriteSame tests do) can, whatever the
    /// block size.
    pub(crate) fn max_write_same_blocks(&self) -> u64 {
        self.cfg
            .max_write_same_blocks
            .min(u64::from(self.max_transfer_blocks()))
    }

    /// Writes `block` to every block of the range, a chunk at a time.
    pub(crate) fn write_pattern(&self, lba: u64, blocks: u64, block: &[u8]) -> CmdResult {
        let bs = self.bs();
        let per_chunk = (CHUNK / bs).max(1);
        let buf: Vec<u8> = block
            .iter()
            .copied()
            .cycle()
            .take((per_chunk.min(blocks) * bs) as usize)
            .collect();
        let mut done = 0;
        while done < blocks {
            let n = per_chunk.min(blocks - done);
            self.write_blocks(lba + done, &buf[..(n * bs) as usize], false)?;
            done += n;
        }
        Ok(Vec::new())
    }

    /// With the write cache disabled, makes operations without a FUA form durable.
    pub(crate) fn flush_if_write_through(&self) -> Result<(), Sense> {
        if !self.lock().mode.wce {
            self.store.flush().map_err(|e| Sense::from_io(&e, true))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;

    #[test]
    fn write_same_pattern() {
        let (s, d) = dev();
        let r = run(&d, &cdb10(0x41, 0, 10, 3), &[0x77; 512]);
        assert_eq!(r.data_out_wanted, 512);
        good(r);
        let m = s.data.lock().unwrap();
        assert!(m[10 * 512..13 * 512].iter().all(|b| *b == 0x77));
        assert_eq!(m[13 * 512], 0);
    }

    #[test]
    fn write_same_zero_and_unmap() {
        let (s, d) = dev();
        s.data.lock().unwrap().fill(1);
        good(run(&d, &cdb16(0x93, 0x08, 4, 2), &[0; 512]));
        assert_eq!(
            s.calls(),
            vec![Call::Trim {
                offset: 2048,
                len: 1024
            }]
        );
        let r = run(&d, &cdb16(0x93, 0x09, 8, 1), &[]);
        assert_eq!(r.data_out_wanted, 0);
        good(r);
        good(run(&d, &cdb10(0x41, 0, 0, 1), &[0; 512]));
        let m = s.data.lock().unwrap();
        assert!(m[..512].iter().all(|b| *b == 0));
        assert!(m[2048..3072].iter().all(|b| *b == 0));
        assert!(m[8 * 512..9 * 512].iter().all(|b| *b == 0));
        assert_eq!(m[3072], 1);
    }

    #[test]
    fn write_same_unmap_deallocates_whatever_the_block() {
        let (s, d) = dev();
        s.data.lock().unwrap().fill(1);
        good(run(&d, &cdb10(0x41, 0x08, 0, 2), &[5; 512]));
        assert_eq!(
            s.calls(),
            vec![Call::Trim {
                offset: 0,
                len: 1024
            }]
        );
        assert!(s.data.lock().unwrap()[..1024].iter().all(|b| *b == 0));
        let thick = thick_dev();
        good(run(&thick, &cdb10(0x41, 0, 0, 2), &[5; 512]));
    }

    #[test]
    fn write_same_zero_blocks_runs_to_the_end() {
        let (s, d) = dev();
        good(run(&d, &cdb10(0x41, 0, 1000, 0), &[9; 512]));
        let m = s.data.lock().unwrap();
        assert!(m[1000 * 512..].iter().all(|b| *b == 9));
        assert_eq!(m[999 * 512 + 511], 0);
        drop(m);
        good(run(&d, &cdb16(0x93, 0x08, 0, 0), &[0; 512]));
        assert_eq!(
            s.calls().last(),
            Some(&Call::Trim {
                offset: 0,
                len: 1024 * 512
            })
        );
        let (_, small) = dev_with(64, 512, |c| c.max_write_same_blocks = 8);
        assert_invalid_cdb(&run(&small, &cdb10(0x41, 0, 0, 0), &[0; 512]), 7, None);
        good(run(&small, &cdb16(0x93, 0, 56, 0), &[0; 512]));
    }

    #[test]
    fn write_same_errors() {
        let (_, d) = dev();
        assert_sense(&run(&d, &cdb10(0x41, 0, 1025, 0), &[0; 512]), 5, 0x2100);
        assert_sense(&run(&d, &cdb10(0x41, 0, 1024, 0), &[0; 512]), 5, 0x2100);
        assert_sense(&run(&d, &cdb10(0x41, 0, u32::MAX, 0), &[0; 512]), 5, 0x2100);
        assert_sense(&run(&d, &cdb16(0x93, 0, 1 << 63, 0), &[0; 512]), 5, 0x2100);
        assert_sense(&run(&d, &cdb16(0x93, 0, u64::MAX, 1), &[0; 512]), 5, 0x2100);
        assert_sense(&run(&d, &cdb10(0x41, 0, 1020, 5), &[0; 512]), 5, 0x2100);
        assert_invalid_cdb(&run(&d, &cdb10(0x41, 0x20, 0, 1), &[0; 512]), 1, Some(7));
        assert_invalid_cdb(&run(&d, &cdb10(0x41, 0x10, 0, 1), &[0; 512]), 1, Some(4));
        assert_invalid_cdb(&run(&d, &cdb10(0x41, 0x02, 0, 1), &[0; 512]), 1, Some(1));
        assert_invalid_cdb(&run(&d, &cdb10(0x41, 0x01, 0, 1), &[0; 512]), 1, Some(0));
        assert_sense(&run(&d, &cdb10(0x41, 0x08, 0, 1), &[0; 256]), 5, 0x0E03);
        assert_sense(&run(&d, &cdb10(0x41, 0x08, 0, 1), &[0; 1024]), 5, 0x0E03);
        let (_, big) = dev_with(64, 512, |c| c.max_write_same_blocks = 4);
        assert_invalid_cdb(&run(&big, &cdb16(0x93, 0, 0, 5), &[0; 512]), 10, None);
        // The maximum transfer length bounds it too.
        let (_, narrow) = dev_with(64, 4096, |c| c.max_transfer_bytes = 4 * 4096);
        assert_invalid_cdb(&run(&narrow, &cdb16(0x93, 0, 0, 5), &[0; 4096]), 10, None);
        good(run(&narrow, &cdb16(0x93, 0, 0, 4), &[0; 4096]));
        let (_, ro) = dev_with(64, 512, |c| c.read_only = true);
        assert_sense(&run(&ro, &cdb10(0x41, 0, 0, 1), &[0; 512]), 7, 0x2700);
        assert_sense(&run(&ro, &cdb10(0x41, 0x08, 0, 1), &[0; 512]), 7, 0x2700);
        let thick = thick_dev();
        assert_invalid_cdb(
            &run(&thick, &cdb10(0x41, 0x08, 0, 1), &[0; 512]),
            1,
            Some(3),
        );
        good(run(&thick, &cdb10(0x41, 0, 0, 1), &[0; 512]));
    }
}
