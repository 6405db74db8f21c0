//! COMPARE AND WRITE (SBC-3 5.2) and ORWRITE 16 (SBC-3 5.8): read-modify-write commands that
//! hold the device's write gate exclusively, so no other write interleaves with them.

use crate::cdb::{self, be64, byte};
use crate::read_write::{check_protect, take_data_out, FUA};
use crate::sense::{Asc, CmdResult, Sense};
use crate::verify::{first_difference, miscompare};
use crate::{Device, Request};

impl Device {
    /// COMPARE AND WRITE: compares the first half of the Data-Out with the medium and, if
    /// equal, writes the second half. A miscompare reports the offset of the first differing
    /// byte.
    pub(crate) fn compare_and_write(&self, req: &Request) -> CmdResult {
        let flags = byte(req.cdb, 1);
        check_protect(flags)?;
        let lba = be64(req.cdb, 2);
        let blocks = u64::from(byte(req.cdb, 13));
        if blocks > u64::from(self.cfg.max_compare_write_blocks) {
            return Err(Sense::invalid_cdb(13, None).into());
        }
        self.check_writable()?;
        self.check_range(lba, blocks)?;
        if blocks == 0 {
            // Zero blocks compare and write nothing; Data-Out sent anyway means the CDB's
            // NUMBER OF LOGICAL BLOCKS is not what the initiator meant (e.g. 256 truncated).
            if !req.data_out.is_empty() {
                return Err(Sense::invalid_cdb(13, None).into());
            }
            return Ok(Vec::new());
        }
        let half = blocks * self.bs();
        if req.data_out.len() as u64 != 2 * half {
            return Err(Sense::illegal(Asc::INVALID_FIELD_IN_IU).into());
        }
        let (verify, write) = req.data_out.split_at(half as usize);
        let _guard = self.exclusive_writes();
        let medium = self.read_blocks(lba, blocks)?;
        if let Some(off) = first_difference(&medium, verify) {
            return Err(miscompare(off as u64).into());
        }
        self.write_blocks(lba, write, flags & FUA != 0)?;
        Ok(Vec::new())
    }

    /// ORWRITE 16: medium = medium OR Data-Out.
    pub(crate) fn orwrite(&self, req: &Request) -> CmdResult {
        let r = cdb::block_range(req.cdb, false);
        check_protect(r.flags)?;
        self.check_writable()?;
        self.check_range(r.lba, r.blocks)?;
        self.check_transfer(r.blocks, 16)?;
        let data = take_data_out(req, r.blocks * self.bs())?;
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let _guard = self.exclusive_writes();
        let mut medium = self.read_blocks(r.lba, r.blocks)?;
        for (m, d) in medium.iter_mut().zip(data) {
            *m |= d;
        }
        self.write_blocks(r.lba, &medium, r.flags & FUA != 0)?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;

    fn caw(lba: u64, n: u8, flags: u8) -> [u8; 16] {
        let mut c = cdb16(0x89, flags, lba, 0);
        c[13] = n;
        c
    }

    #[test]
    fn compare_and_write_success() {
        let (s, d) = dev();
        s.data.lock().unwrap()[512..1024].fill(3);
        let mut data = vec![3u8; 512];
        data.extend(vec![4u8; 512]);
        let r = run(&d, &caw(1, 1, 0x08), &data);
        assert_eq!(r.data_out_wanted, 1024);
        good(r);
        assert!(s.data.lock().unwrap()[512..1024].iter().all(|b| *b == 4));
        assert_eq!(
            s.calls(),
            vec![Call::Write {
                offset: 512,
                len: 512,
                fua: true
            }]
        );
    }

    #[test]
    fn compare_and_write_miscompare() {
        let (s, d) = dev();
        let mut data = vec![0u8; 1024];
        data[100] = 9;
        let r = run(&d, &caw(0, 1, 0), &data);
        assert_sense(&r, 0x0E, 0x1D00);
        assert_eq!(&r.sense[3..7], &100u32.to_be_bytes());
        assert!(s.calls().is_empty());
    }

    #[test]
    fn compare_and_write_errors() {
        let (_, d) = dev();
        assert_invalid_cdb(&run(&d, &caw(0, 2, 0), &[0; 2048]), 13, None);
        assert_sense(&run(&d, &caw(1024, 1, 0), &[0; 1024]), 5, 0x2100);
        assert_sense(&run(&d, &caw(0, 1, 0), &[0; 512]), 5, 0x0E03);
        assert_sense(&run(&d, &caw(0, 1, 0), &[0; 2048]), 5, 0x0E03);
        assert_invalid_cdb(&run(&d, &caw(0, 1, 0x20), &[0; 1024]), 1, Some(7));
        good(run(&d, &caw(0, 0, 0), &[]));
        let (_, ro) = dev_with(64, 512, |c| c.read_only = true);
        assert_sense(&run(&ro, &caw(0, 1, 0), &[0; 1024]), 7, 0x2700);
    }

    #[test]
    fn orwrite_ors() {
        let (s, d) = dev();
        s.data.lock().unwrap()[0..512].fill(0x0F);
        let r = run(&d, &cdb16(0x8B, 0, 0, 1), &[0xF0; 512]);
        assert_eq!(r.data_out_wanted, 512);
        good(r);
        assert!(s.data.lock().unwrap()[0..512].iter().all(|b| *b == 0xFF));
        assert_sense(&run(&d, &cdb16(0x8B, 0, 1024, 1), &[0; 512]), 5, 0x2100);
        assert_invalid_cdb(&run(&d, &cdb16(0x8B, 0x40, 0, 1), &[0; 512]), 1, Some(7));
        good(run(&d, &cdb16(0x8B, 0, 0, 0), &[]));
        let (_, ro) = dev_with(64, 512, |c| c.read_only = true);
        assert_sense(&run(&ro, &cdb16(0x8B, 0, 0, 1), &[0; 512]), 7, 0x2700);
    }
}
