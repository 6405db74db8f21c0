//! UNMAP (SBC-3 5.28).

use crate::cdb::{be16, be32, be64, byte};
use crate::read_write::take_data_out;
use crate::sense::{Asc, CmdResult, Sense};
use crate::{Device, Request};

impl Device {
    /// UNMAP: validates every block descriptor, then trims each range.
    pub(crate) fn unmap(&self, req: &Request) -> CmdResult {
        if byte(req.cdb, 1) & 0x01 != 0 {
            return Err(Sense::invalid_cdb(1, Some(0)).into());
        }
        self.check_writable()?;
        let len = u64::from(be16(req.cdb, 7));
        if len == 0 {
            return Ok(Vec::new());
        }
        if len < 8 {
            return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR).into());
        }
        let data = take_data_out(req, len)?;
        let ranges = self.unmap_ranges(data)?;
        let bs = self.bs();
        let _gate = self.shared_writes();
        for (lba, n) in ranges.into_iter().filter(|r| r.1 > 0) {
            self.store
                .trim(lba * bs, n * bs)
                .map_err(|e| Sense::from_io(&e, true))?;
        }
        self.flush_if_write_through()?;
        Ok(Vec::new())
    }

    /// Decodes and checks the block descriptors of an UNMAP parameter list.
    fn unmap_ranges(&self, data: &[u8]) -> Result<Vec<(u64, u64)>, Sense> {
        // Descriptors claimed past the parameter list are an error, never read.
        let bdl = usize::from(be16(data, 2));
        if bdl > data.len() - 8 {
            return Err(Sense::invalid_param(2, None));
        }
        let count = bdl / 16;
        if count > self.cfg.max_unmap_descriptors as usize {
            return Err(Sense::invalid_param(2, None));
        }
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let at = 8 + i * 16;
            let (lba, n) = (be64(data, at), u64::from(be32(data, at + 8)));
            if n > u64::from(self.cfg.max_unmap_blocks) {
                return Err(Sense::invalid_param((at + 8) as u16, None));
            }
            self.check_range(lba, n)?;
            out.push((lba, n));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;

    fn params(descs: &[(u64, u32)]) -> Vec<u8> {
        let mut p = vec![0u8; 8];
        let bdl = (descs.len() * 16) as u16;
        p[0..2].copy_from_slice(&(bdl + 6).to_be_bytes());
        p[2..4].copy_from_slice(&bdl.to_be_bytes());
        for (lba, n) in descs {
            p.extend_from_slice(&lba.to_be_bytes());
            p.extend_from_slice(&n.to_be_bytes());
            p.extend_from_slice(&[0; 4]);
        }
        p
    }

    fn unmap_cdb(len: u16) -> [u8; 10] {
        cdb10(0x42, 0, 0, len)
    }

    #[test]
    fn unmap_trims_ranges() {
        let (s, d) = dev();
        let p = params(&[(1, 2), (10, 0), (1000, 24)]);
        let r = run(&d, &unmap_cdb(p.len() as u16), &p);
        assert_eq!(r.data_out_wanted, p.len() as u32);
        good(r);
        assert_eq!(
            s.calls(),
            vec![
                Call::Trim {
                    offset: 512,
                    len: 1024
                },
                Call::Trim {
                    offset: 512_000,
                    len: 24 * 512
                }
            ]
        );
        good(run(&d, &unmap_cdb(0), &[]));
        good(run(&d, &unmap_cdb(8), &params(&[])));
    }

    #[test]
    fn unmap_errors() {
        let (s, d) = dev();
        let p = params(&[(0, 1), (1020, 5)]);
        assert_sense(&run(&d, &unmap_cdb(p.len() as u16), &p), 5, 0x2100);
        assert!(s.calls().is_empty());
        assert_sense(&run(&d, &unmap_cdb(4), &[0; 4]), 5, 0x1A00);
        let mut c = unmap_cdb(24);
        c[1] = 1;
        assert_invalid_cdb(&run(&d, &c, &params(&[(0, 1)])), 1, Some(0));
        let (_, small) = dev_with(64, 512, |c| {
            c.max_unmap_descriptors = 1;
            c.max_unmap_blocks = 2;
        });
        let p = params(&[(0, 1), (2, 1)]);
        assert_sense(&run(&small, &unmap_cdb(40), &p), 5, 0x2600);
        let p = params(&[(0, 3)]);
        assert_sense(&run(&small, &unmap_cdb(24), &p), 5, 0x2600);
    }

    #[test]
    fn descriptor_length_past_the_parameter_list_is_refused() {
        let (s, d) = dev();
        let mut p = params(&[(0, 1)]);
        p[2..4].copy_from_slice(&64u16.to_be_bytes());
        assert_sense(&run(&d, &unmap_cdb(p.len() as u16), &p), 5, 0x2600);
        // A PARAMETER LIST LENGTH that cuts the descriptors short.
        let p = params(&[(0, 1), (8, 1)]);
        assert_sense(&run(&d, &unmap_cdb(30), &p), 5, 0x2600);
        assert!(s.calls().is_empty());
    }

    #[test]
    fn unmap_read_only() {
        let (_, ro) = dev_with(64, 512, |c| c.read_only = true);
        assert_sense(&run(&ro, &unmap_cdb(24), &params(&[(0, 1)])), 7, 0x2700);
        let thick = thick_dev();
        assert_sense(&run(&thick, &unmap_cdb(24), &params(&[(0, 1)])), 5, 0x2000);
    }

    #[test]
    fn thin_off_hides_provisioning_on_a_trimming_store() {
        let (s, d) = dev_with(64, 512, |c| c.thin = false);
        assert!(!d.thin());
        assert_sense(&run(&d, &unmap_cdb(24), &params(&[(0, 1)])), 5, 0x2000);
        let rc16 = good(run(&d, &cdb16(0x9E, 0x10, 0, 32), &[]));
        assert_eq!(rc16[14], 0);
        let vpd = |page: u8| good(run(&d, &[0x12, 1, page, 0, 255, 0], &[]));
        assert_eq!(vpd(0xB2), vec![0, 0xB2, 0, 4, 0, 0, 0, 0]);
        assert_eq!(&vpd(0xB0)[20..28], &[0; 8]);
        let mut gls = cdb16(0x9E, 0x12, 0, 24);
        gls[1] = 0x12;
        assert_invalid_cdb(&run(&d, &gls, &[]), 1, Some(4));
        let ws_unmap = cdb16(0x93, 0x08, 0, 1);
        assert_invalid_cdb(&run(&d, &ws_unmap, &[0; 512]), 1, Some(3));
        assert!(s.calls().iter().all(|c| !matches!(c, Call::Trim { .. })));
    }
}
