//! VERIFY 10/12/16 (SBC-3 5.29-5.31).

use crate::cdb;
use crate::read_write::take_data_out;
use crate::sense::{Asc, CmdResult, Sense, SenseKey};
use crate::{Device, Request};

/// MISCOMPARE / MISCOMPARE DURING VERIFY OPERATION with the byte offset of the first
/// difference in the INFORMATION field.
pub fn miscompare(offset: u64) -> Sense {
    Sense::new(SenseKey::MISCOMPARE, Asc::MISCOMPARE_DURING_VERIFY).with_info(offset)
}

/// Offset of the first byte where `a` and `b` differ.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

impl Device {
    /// VERIFY 10/12/16. BYTCHK 00b checks the range only, 01b compares the Data-Out
    /// blocks with the medium, 11b compares one Data-Out block with every block.
    pub(crate) fn verify(&self, req: &Request) -> CmdResult {
        let r = self.decode_io(req, false)?;
        let bytchk = (r.flags >> 1) & 0x03;
        if bytchk == 0x02 {
            return Err(Sense::invalid_cdb(1, Some(2)).into());
        }
        self.check_range(r.lba, r.blocks)?;
        let len = cdb::cdb_len(req.cdb[0]).unwrap_or(16);
        self.check_transfer(r.blocks, len)?;
        if bytchk == 0 || r.blocks == 0 {
            return Ok(Vec::new());
        }
        let bs = self.bs();
        let needed = if bytchk == 0x01 { r.blocks * bs } else { bs };
        let data = take_data_out(req, needed)?;
        let medium = self.read_blocks(r.lba, r.blocks)?;
        let bad = if bytchk == 0x01 {
            first_difference(&medium, data)
        } else {
            medium
                .chunks(data.len())
                .enumerate()
                .find_map(|(i, blk)| first_difference(blk, data).map(|o| i * data.len() + o))
        };
        match bad {
            Some(off) => Err(miscompare(off as u64).into()),
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;

    #[test]
    fn verify_range_only() {
        let (_, d) = dev();
        let r = run(&d, &cdb10(0x2F, 0, 0, 8), &[]);
        assert_eq!(r.data_out_wanted, 0);
        good(r);
        assert_sense(&run(&d, &cdb10(0x2F, 0, 1020, 8), &[]), 5, 0x2100);
        good(run(&d, &cdb16(0x8F, 0, 1024, 0), &[]));
        assert_sense(&run(&d, &cdb12(0xAF, 0, 1025, 0), &[]), 5, 0x2100);
    }

    #[test]
    fn verify_bytchk_match_and_mismatch() {
        let (s, d) = dev();
        s.data.lock().unwrap()[512..1536].fill(0x11);
        let mut data = vec![0x11; 1024];
        let r = run(&d, &cdb10(0x2F, 0x02, 1, 2), &data);
        assert_eq!(r.data_out_wanted, 1024);
        good(r);
        data[700] = 0;
        let r = run(&d, &cdb16(0x8F, 0x02, 1, 2), &data);
        assert_sense(&r, 0x0E, 0x1D00);
        assert_eq!(r.sense[0], 0xF0);
        assert_eq!(&r.sense[3..7], &700u32.to_be_bytes());
    }

    #[test]
    fn verify_bytchk_single_block() {
        let (s, d) = dev();
        s.data.lock().unwrap()[0..1024].fill(0x22);
        let r = run(&d, &cdb12(0xAF, 0x06, 0, 2), &[0x22; 512]);
        assert_eq!(r.data_out_wanted, 512);
        good(r);
        s.data.lock().unwrap()[600] = 1;
        let r = run(&d, &cdb12(0xAF, 0x06, 0, 2), &[0x22; 512]);
        assert_sense(&r, 0x0E, 0x1D00);
        assert_eq!(&r.sense[3..7], &600u32.to_be_bytes());
    }

    #[test]
    fn verify_bad_fields() {
        let (_, d) = dev();
        assert_invalid_cdb(&run(&d, &cdb10(0x2F, 0x04, 0, 1), &[]), 1, Some(2));
        assert_invalid_cdb(&run(&d, &cdb10(0x2F, 0x20, 0, 1), &[]), 1, Some(7));
        assert_invalid_cdb(&run(&d, &cdb10(0x2F, 0x08, 0, 1), &[]), 1, Some(3));
        assert_sense(&run(&d, &cdb10(0x2F, 0x02, 0, 2), &[0; 512]), 5, 0x0E03);
        good(run(&d, &cdb10(0x2F, 0x10, 0, 1), &[]));
    }
}
