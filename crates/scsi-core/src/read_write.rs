//! READ 6/10/12/16, WRITE 6/10/12/16, WRITE AND VERIFY 10/12/16 and the block I/O helpers
//! shared by every medium-access command.

use crate::cdb::{self, BlockRange};
use crate::sense::{Asc, CmdResult, Sense};
use crate::{Device, Request};

/// FUA bit of byte 1.
pub const FUA: u8 = 0x08;

/// Offset of the TRANSFER LENGTH field of a READ/WRITE-style CDB of `len` bytes.
pub fn length_field(len: usize) -> u16 {
    match len {
        6 => 4,
        10 => 7,
        12 => 6,
        _ => 10,
    }
}

/// Rejects a non-zero RDPROTECT/WRPROTECT/VRPROTECT/ORPROTECT field (no protection
/// information is supported).
pub fn check_protect(flags: u8) -> Result<(), Sense> {
    if flags & 0xE0 != 0 {
        return Err(Sense::invalid_cdb(1, Some(7)));
    }
    Ok(())
}

/// Takes the Data-Out bytes a command needs. Fewer bytes than needed is an error (see the
/// crate documentation); extra bytes are ignored.
pub fn take_data_out<'a>(req: &Request<'a>, needed: u64) -> Result<&'a [u8], Sense> {
    match usize::try_from(needed) {
        Ok(n) if req.data_out.len() >= n => Ok(&req.data_out[..n]),
        _ => Err(Sense::illegal(Asc::INVALID_FIELD_IN_IU)),
    }
}

impl Device {
    /// Block size as u64.
    pub(crate) fn bs(&self) -> u64 {
        u64::from(self.geo.block_size)
    }

    /// LBA range check: `lba + blocks` must not pass the end of the medium.
    pub(crate) fn check_range(&self, lba: u64, blocks: u64) -> Result<(), Sense> {
        match lba.checked_add(blocks) {
            Some(end) if end <= self.geo.num_blocks => Ok(()),
            _ => Err(Sense::lba_out_of_range()),
        }
    }

    /// Transfer size check against the MAXIMUM TRANSFER LENGTH of VPD B0h.
    pub(crate) fn check_transfer(&self, blocks: u64, cdb_len: usize) -> Result<(), Sense> {
        if blocks > u64::from(self.max_transfer_blocks()) {
            return Err(Sense::invalid_cdb(length_field(cdb_len), None));
        }
        Ok(())
    }

    /// MAXIMUM TRANSFER LENGTH in blocks.
    pub(crate) fn max_transfer_blocks(&self) -> u32 {
        (self.cfg.max_transfer_bytes / self.geo.block_size.max(1)).max(1)
    }

    /// DATA PROTECT / WRITE PROTECTED when the LUN is read-only or SWP is set.
    pub(crate) fn check_writable(&self) -> Result<(), Sense> {
        if self.read_only() || self.lock().mode.swp {
            return Err(Sense::write_protected());
        }
        Ok(())
    }

    /// Reads `blocks` blocks at `lba` (range already checked).
    pub(crate) fn read_blocks(&self, lba: u64, blocks: u64) -> Result<Vec<u8>, Sense> {
        let len = usize::try_from(blocks * self.bs())
            .map_err(|_| Sense::illegal(Asc::INVALID_FIELD_IN_CDB))?;
        let mut buf = vec![0u8; len];
        if len > 0 {
            self.store
                .read(lba * self.bs(), &mut buf)
                .map_err(|e| Sense::from_io(&e, false))?;
        }
        Ok(buf)
    }

    /// Writes whole blocks at `lba`. With the write cache disabled every write is FUA.
    pub(crate) fn write_blocks(&self, lba: u64, data: &[u8], fua: bool) -> Result<(), Sense> {
        if data.is_empty() {
            return Ok(());
        }
        let fua = fua || !self.lock().mode.wce;
        self.store
            .write(lba * self.bs(), data, fua)
            .map_err(|e| Sense::from_io(&e, true))
    }

    /// Decodes and validates the common part of a block command: protect field, range and
    /// transfer size.
    pub(crate) fn decode_io(&self, req: &Request, zero_is_256: bool) -> Result<BlockRange, Sense> {
        let r = cdb::block_range(req.cdb, zero_is_256);
        check_protect(r.flags)?;
        Ok(r)
    }

    /// READ 6/10/12/16.
    pub(crate) fn read(&self, req: &Request) -> CmdResult {
        let r = self.decode_io(req, true)?;
        let len = cdb::cdb_len(req.cdb[0]).unwrap_or(16);
        self.check_range(r.lba, r.blocks)?;
        self.check_transfer(r.blocks, len)?;
        Ok(self.read_blocks(r.lba, r.blocks)?)
    }

    /// WRITE 6/10/12/16.
    pub(crate) fn write(&self, req: &Request) -> CmdResult {
        let r = self.decode_io(req, true)?;
        self.write_common(req, r, r.flags & FUA != 0)
    }

    /// WRITE AND VERIFY 10/12/16: the data is written durably (FUA), which is the
    /// verification the medium offers.
    pub(crate) fn write_verify(&self, req: &Request) -> CmdResult {
        let r = self.decode_io(req, false)?;
        if (r.flags >> 1) & 0x03 == 0x02 {
            return Err(Sense::invalid_cdb(1, Some(2)).into());
        }
        self.write_common(req, r, true)
    }

    fn write_common(&self, req: &Request, r: BlockRange, fua: bool) -> CmdResult {
        self.check_writable()?;
        let len = cdb::cdb_len(req.cdb[0]).unwrap_or(16);
        self.check_range(r.lba, r.blocks)?;
        self.check_transfer(r.blocks, len)?;
        // When the initiator sent fewer bytes than the CDB asks for (EDTL < transfer length),
        // only the whole blocks it did send are written; the transport reports the overflow.
        let whole = (req.data_out.len() as u64 / self.bs()).min(r.blocks);
        let data = take_data_out(req, whole * self.bs())?;
        let _gate = self.shared_writes();
        self.write_blocks(r.lba, data, fua)?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;

    #[test]
    fn read10_returns_medium_bytes() {
        let (s, d) = dev();
        s.data.lock().unwrap()[512..1024].fill(0xAB);
        let data = good(run(&d, &cdb10(0x28, 0, 1, 1), &[]));
        assert_eq!(data, vec![0xAB; 512]);
    }

    #[test]
    fn read6_zero_means_256() {
        let (_, d) = dev();
        let data = good(run(&d, &[0x08, 0, 0, 0, 0, 0], &[]));
        assert_eq!(data.len(), 256 * 512);
        let r = run(&d, &[0x08, 0, 0x03, 0x01, 0, 0], &[]);
        assert_sense(&r, 5, 0x2100);
    }

    #[test]
    fn read_zero_blocks_and_range() {
        let (_, d) = dev();
        assert!(good(run(&d, &cdb10(0x28, 0, 0, 0), &[])).is_empty());
        assert!(good(run(&d, &cdb10(0x28, 0, 1024, 0), &[])).is_empty());
        assert_sense(&run(&d, &cdb10(0x28, 0, 1025, 0), &[]), 5, 0x2100);
        assert_sense(&run(&d, &cdb10(0x28, 0, 1023, 2), &[]), 5, 0x2100);
        assert_sense(&run(&d, &cdb16(0x88, 0, u64::MAX, 1), &[]), 5, 0x2100);
        assert_sense(&run(&d, &cdb12(0xA8, 0, 0xFFFF_FFFF, 1), &[]), 5, 0x2100);
    }

    #[test]
    fn read_protect_and_reserved() {
        let (_, d) = dev();
        assert_invalid_cdb(&run(&d, &cdb10(0x28, 0x20, 0, 1), &[]), 1, Some(7));
        assert_invalid_cdb(&run(&d, &cdb10(0x28, 0x01, 0, 1), &[]), 1, Some(0));
        let mut c = cdb10(0x28, 0, 0, 1);
        c[6] = 0x20;
        assert_invalid_cdb(&run(&d, &c, &[]), 6, Some(5));
        c[6] = 0;
        c[9] = 0x04;
        assert_invalid_cdb(&run(&d, &c, &[]), 9, Some(2));
        assert!(!good(run(&d, &cdb10(0x28, 0x18, 0, 1), &[])).is_empty());
    }

    #[test]
    fn transfer_limit() {
        let (_, d) = dev_with(100_000, 512, |c| c.max_transfer_bytes = 4096);
        assert_invalid_cdb(&run(&d, &cdb10(0x28, 0, 0, 9), &[]), 7, None);
        assert_eq!(good(run(&d, &cdb10(0x28, 0, 0, 8), &[])).len(), 4096);
    }

    #[test]
    fn write10_and_fua() {
        let (s, d) = dev();
        let data = vec![0x5A; 1024];
        let r = run(&d, &cdb10(0x2A, 0, 2, 2), &data);
        assert_eq!(r.data_out_wanted, 1024);
        good(r);
        assert_eq!(&s.data.lock().unwrap()[1024..2048], &data[..]);
        good(run(&d, &cdb10(0x2A, 0x08, 2, 1), &data));
        let calls = s.calls();
        assert_eq!(
            calls,
            vec![
                Call::Write {
                    offset: 1024,
                    len: 1024,
                    fua: false
                },
                Call::Write {
                    offset: 1024,
                    len: 512,
                    fua: true
                },
            ]
        );
    }

    #[test]
    fn write_without_cache_is_fua() {
        let (s, d) = dev_with(64, 512, |c| c.write_cache = false);
        good(run(&d, &[0x0A, 0, 0, 1, 1, 0], &[1; 512]));
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
    fn write12_write16_and_verify_forms() {
        let (s, d) = dev();
        good(run(&d, &cdb12(0xAA, 0, 3, 1), &[3; 512]));
        good(run(&d, &cdb16(0x8A, 0, 4, 1), &[4; 512]));
        good(run(&d, &cdb10(0x2E, 0x02, 5, 1), &[5; 512]));
        good(run(&d, &cdb12(0xAE, 0, 6, 1), &[6; 512]));
        good(run(&d, &cdb16(0x8E, 0, 7, 1), &[7; 512]));
        let m = s.data.lock().unwrap();
        for b in 3..8u8 {
            assert!(m[b as usize * 512..(b as usize + 1) * 512]
                .iter()
                .all(|x| *x == b));
        }
        drop(m);
        assert!(s.calls()[2..]
            .iter()
            .all(|c| matches!(c, Call::Write { fua: true, .. })));
    }

    #[test]
    fn write_errors() {
        let (_, d) = dev();
        assert_sense(&run(&d, &cdb10(0x2A, 0, 1024, 1), &[0; 512]), 5, 0x2100);
        assert_invalid_cdb(&run(&d, &cdb10(0x2A, 0x40, 0, 1), &[0; 512]), 1, Some(7));
        assert_invalid_cdb(&run(&d, &cdb10(0x2A, 0x04, 0, 1), &[0; 512]), 1, Some(2));
        let (_, ro) = dev_with(64, 512, |c| c.read_only = true);
        assert_sense(&run(&ro, &cdb10(0x2A, 0, 0, 1), &[0; 512]), 7, 0x2700);
        assert_sense(&run(&ro, &cdb16(0x8E, 0, 0, 1), &[0; 512]), 7, 0x2700);
    }

    #[test]
    fn short_data_out_writes_only_whole_blocks_received() {
        let (s, d) = dev();
        let r = run(&d, &cdb10(0x2A, 0, 0, 2), &[7; 512]);
        assert_eq!(r.data_out_wanted, 1024);
        good(r);
        assert_eq!(
            s.calls(),
            vec![Call::Write {
                offset: 0,
                len: 512,
                fua: false
            }]
        );
        assert_eq!(s.data.lock().unwrap()[511], 7);
        assert_eq!(s.data.lock().unwrap()[512], 0);
        // No whole block received: nothing is written, the command still succeeds.
        good(run(&d, &cdb10(0x2A, 0, 4, 1), &[]));
        good(run(&d, &cdb10(0x2A, 0, 4, 1), &[5; 200]));
        assert_eq!(s.calls().len(), 1);
        assert_eq!(s.data.lock().unwrap()[4 * 512], 0);
        // Extra data is ignored.
        good(run(&d, &cdb10(0x2A, 0, 8, 1), &[9; 2048]));
        assert_eq!(s.data.lock().unwrap()[9 * 512], 0);
    }

    #[test]
    fn store_errors_map_to_sense() {
        let (s, d) = dev();
        clear_ua(&d, N1);
        *s.fail.lock().unwrap() = Some(5);
        assert_sense(&run_on(&d, N1, &cdb10(0x28, 0, 0, 1), &[]), 3, 0x1100);
        assert_sense(&run_on(&d, N1, &cdb10(0x2A, 0, 0, 1), &[0; 512]), 3, 0x0C00);
        *s.fail.lock().unwrap() = Some(28);
        assert_sense(&run_on(&d, N1, &cdb10(0x2A, 0, 0, 1), &[0; 512]), 7, 0x2707);
        *s.fail.lock().unwrap() = Some(22);
        assert_sense(&run_on(&d, N1, &cdb10(0x28, 0, 0, 1), &[]), 4, 0x4400);
    }
}
