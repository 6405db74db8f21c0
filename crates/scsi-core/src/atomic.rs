//! WRITE ATOMIC (16) (SBC-4 5.48) and the atomic-write limits of the Block Limits VPD page.
//!
//! An atomic write is all or nothing with respect to every other write to the same blocks: it
//! holds the device's write gate exclusively (like COMPARE AND WRITE) while its blocks go to the
//! store in one write call, and every write the device performs itself (WRITE, WRITE AND
//! VERIFY, WRITE SAME, UNMAP, SANITIZE) holds the gate. The one exception is a WRITE queued to
//! an asynchronous store (`aio`, see [`crate::Started::Io`]): it is in flight after the command
//! returns, outside the gate, so on such a store an atomic write is atomic with respect to the
//! commands above and to other atomic writes, and against a queued WRITE only as far as the
//! store's single write is. Atomic boundaries are not supported (MAXIMUM ATOMIC BOUNDARY SIZE
//! 0), so the ATOMIC BOUNDARY field must be zero.

use crate::cdb::{be16, be64, byte};
use crate::read_write::{check_protect, take_data_out, FUA};
use crate::sense::{CmdResult, Sense};
use crate::{Device, Request};

/// Atomic writes are aligned to, and a multiple of, this many bytes (or two logical blocks,
/// whichever is more), and never less than one physical block.
const ATOMIC_UNIT_BYTES: u32 = 4096;

impl Device {
    /// ATOMIC ALIGNMENT and ATOMIC TRANSFER LENGTH GRANULARITY, in logical blocks.
    pub(crate) fn atomic_unit(&self) -> u32 {
        let bs = self.geo.block_size.max(1);
        (ATOMIC_UNIT_BYTES / bs)
            .max(self.blocks_per_physical())
            .max(2)
    }

    /// MAXIMUM ATOMIC TRANSFER LENGTH: the largest multiple of the atomic unit that fits the
    /// MAXIMUM TRANSFER LENGTH.
    pub(crate) fn max_atomic_blocks(&self) -> u32 {
        let unit = self.atomic_unit();
        self.max_transfer_blocks() / unit * unit
    }

    /// WRITE ATOMIC (16).
    pub(crate) fn write_atomic(&self, req: &Request) -> CmdResult {
        let flags = byte(req.cdb, 1);
        check_protect(flags)?;
        self.check_writable()?;
        let lba = be64(req.cdb, 2);
        let blocks = u64::from(be16(req.cdb, 12));
        self.check_range(lba, blocks)?;
        if be16(req.cdb, 10) != 0 {
            return Err(Sense::invalid_cdb(10, None).into());
        }
        let unit = u64::from(self.atomic_unit());
        if blocks > u64::from(self.max_atomic_blocks()) || !blocks.is_multiple_of(unit) {
            return Err(Sense::invalid_cdb(12, None).into());
        }
        if !lba.is_multiple_of(unit) {
            return Err(Sense::invalid_cdb(2, None).into());
        }
        let data = take_data_out(req, blocks * self.bs())?;
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let _gate = self.exclusive_writes();
        self.write_blocks(lba, data, flags & FUA != 0)?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;

    fn wa(lba: u64, n: u16, flags: u8) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[0] = 0x9C;
        c[1] = flags;
        c[2..10].copy_from_slice(&lba.to_be_bytes());
        c[12..14].copy_from_slice(&n.to_be_bytes());
        c
    }

    #[test]
    fn atomic_write_writes_once_with_fua() {
        let (s, d) = dev();
        let r = run(&d, &wa(8, 16, 0x08), &[0x6A; 16 * 512]);
        assert_eq!(r.data_out_wanted, 16 * 512);
        good(r);
        assert_eq!(
            s.calls(),
            vec![Call::Write {
                offset: 8 * 512,
                len: 16 * 512,
                fua: true
            }]
        );
        assert!(s.data.lock().unwrap()[4096..12288]
            .iter()
            .all(|b| *b == 0x6A));
        good(run(&d, &wa(1016, 8, 0x10), &[1; 4096]));
        good(run(&d, &wa(0, 0, 0), &[]));
        assert_eq!(s.calls().len(), 2);
    }

    #[test]
    fn atomic_write_range_comes_first() {
        let (_, d) = dev();
        assert_sense(&run(&d, &wa(1016, 16, 0), &[0; 8192]), 5, 0x2100);
        assert_sense(&run(&d, &wa(1 << 63, 8, 0), &[0; 4096]), 5, 0x2100);
        assert_sense(&run(&d, &wa(u64::MAX - 7, 8, 0), &[0; 4096]), 5, 0x2100);
        assert_sense(&run(&d, &wa(1032, 0, 0), &[]), 5, 0x2100);
        good(run(&d, &wa(1024, 0, 0), &[]));
    }

    #[test]
    fn atomic_write_alignment_granularity_and_limits() {
        let (_, d) = dev();
        assert_invalid_cdb(&run(&d, &wa(1, 8, 0), &[0; 4096]), 2, None);
        assert_invalid_cdb(&run(&d, &wa(0, 1, 0), &[0; 512]), 12, None);
        assert_invalid_cdb(&run(&d, &wa(0, 12, 0), &[0; 6144]), 12, None);
        let mut c = wa(0, 8, 0);
        c[11] = 1;
        assert_invalid_cdb(&run(&d, &c, &[0; 4096]), 10, None);
        for wrprotect in 1..8u8 {
            assert_invalid_cdb(&run(&d, &wa(0, 1, wrprotect << 5), &[0; 512]), 1, Some(7));
        }
        assert_sense(&run(&d, &wa(0, 8, 0), &[0; 2048]), 5, 0x0E03);
        let (_, small) = dev_with(1024, 512, |c| c.max_transfer_bytes = 8192);
        assert_eq!(small.max_atomic_blocks(), 16);
        assert_invalid_cdb(&run(&small, &wa(0, 24, 0), &[0; 12288]), 12, None);
        let (_, ro) = dev_with(64, 512, |c| c.read_only = true);
        assert_sense(&run(&ro, &wa(0, 8, 0), &[0; 4096]), 7, 0x2700);
    }

    #[test]
    fn atomic_unit_follows_block_sizes() {
        let (_, d) = dev();
        assert_eq!(d.atomic_unit(), 8);
        let (_, big) = dev_with(64, 4096, |_| {});
        assert_eq!(big.atomic_unit(), 2);
        let (_, e) = dev_with(64, 512, |c| c.physical_block_size = 8192);
        assert_eq!(e.atomic_unit(), 16);
    }

    #[test]
    fn atomic_write_waits_for_writes_in_progress() {
        use std::sync::Arc;
        let (s, d) = dev();
        clear_ua(&d, N1);
        let d = Arc::new(d);
        let gate = d.shared_writes();
        let writer = {
            let d = d.clone();
            std::thread::spawn(move || run_on(&d, N1, &wa(0, 8, 0), &[0xEE; 4096]))
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            s.calls().is_empty(),
            "the atomic write went past a write in progress"
        );
        drop(gate);
        good(writer.join().unwrap());
        assert_eq!(s.calls().len(), 1);
    }
}
