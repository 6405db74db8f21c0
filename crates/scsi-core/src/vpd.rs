//! Vital product data pages: 00h, 80h, 83h, 8Fh, B0h, B1h, B2h.

use crate::inquiry::{ascii_field, PERIPHERAL_DISK};
use crate::sense::Sense;
use crate::{Device, NexusId};

/// VPD page codes served.
pub const PAGES: [u8; 7] = [0x00, 0x80, 0x83, 0x8F, 0xB0, 0xB1, 0xB2];

/// Wraps a page body in the 4-byte VPD header.
fn page(code: u8, body: Vec<u8>) -> Vec<u8> {
    let mut d = vec![PERIPHERAL_DISK, code];
    d.extend_from_slice(&(body.len() as u16).to_be_bytes());
    d.extend(body);
    d
}

/// One identification descriptor of VPD 83h.
fn designator(code_set: u8, kind: u8, id: &[u8]) -> Vec<u8> {
    let mut d = vec![code_set, kind, 0, id.len() as u8];
    d.extend_from_slice(id);
    d
}

impl Device {
    /// The VPD page `code` as `nexus` sees it, or INVALID FIELD IN CDB for an unknown page.
    pub(crate) fn vpd_page(&self, code: u8, nexus: NexusId) -> Result<Vec<u8>, Sense> {
        let body = match code {
            0x00 => PAGES.to_vec(),
            0x80 => self
                .cfg
                .serial
                .bytes()
                .filter(|b| (0x20..0x7F).contains(b))
                .collect(),
            0x83 => {
                let mut d = self.device_identification();
                d.extend(self.port_designators(nexus));
                d
            }
            0x8F => self.third_party_copy(),
            0xB0 => self.block_limits(),
            0xB1 => self.block_characteristics(),
            0xB2 => self.provisioning(),
            _ => return Err(Sense::invalid_cdb(2, None)),
        };
        Ok(page(code, body))
    }

    /// The logical unit's designators of VPD 83h: an NAA designator and a T10 vendor ID
    /// designator (the page adds those of the target port the command came through).
    pub(crate) fn device_identification(&self) -> Vec<u8> {
        let mut d = designator(0x01, 0x03, &self.cfg.naa.to_be_bytes());
        let mut t10 = vec![0u8; 8];
        ascii_field(&mut t10, &self.cfg.vendor);
        let serial: Vec<u8> = self
            .cfg
            .serial
            .bytes()
            .filter(|b| (0x21..0x7F).contains(b))
            .collect();
        if serial.is_empty() {
            let mut p = vec![0u8; 16];
            ascii_field(&mut p, &self.cfg.product);
            t10.extend(p);
        } else {
            t10.extend(serial);
        }
        t10.truncate(255 - 4);
        d.extend(designator(0x02, 0x01, &t10));
        d
    }

    /// VPD B0h (page length 3Ch). WSNZ is 0: WRITE SAME with NUMBER OF LOGICAL BLOCKS 0
    /// writes to the end of the medium. The atomic fields describe WRITE ATOMIC (16); atomic
    /// boundaries are not supported.
    fn block_limits(&self) -> Vec<u8> {
        let mut b = vec![0u8; 0x3C];
        b[1] = self.cfg.max_compare_write_blocks;
        let per_physical = self.blocks_per_physical();
        let granularity = u16::try_from(per_physical).unwrap_or(u16::MAX);
        b[2..4].copy_from_slice(&granularity.to_be_bytes());
        let max = self.max_transfer_blocks();
        b[4..8].copy_from_slice(&max.to_be_bytes());
        b[8..12].copy_from_slice(&max.to_be_bytes());
        b[12..16].copy_from_slice(&max.to_be_bytes());
        if self.thin() {
            b[16..20].copy_from_slice(&self.cfg.max_unmap_blocks.to_be_bytes());
            b[20..24].copy_from_slice(&self.cfg.max_unmap_descriptors.to_be_bytes());
            b[24..28].copy_from_slice(&per_physical.to_be_bytes());
        }
        b[32..40].copy_from_slice(&self.max_write_same_blocks().to_be_bytes());
        let unit = self.atomic_unit();
        b[40..44].copy_from_slice(&self.max_atomic_blocks().to_be_bytes());
        b[44..48].copy_from_slice(&unit.to_be_bytes());
        b[48..52].copy_from_slice(&unit.to_be_bytes());
        b
    }

    /// VPD B1h (page length 3Ch): rotation rate 1 (non-rotating) unless the store is
    /// rotational (then not reported). When SANITIZE BLOCK ERASE / CRYPTO ERASE are offered,
    /// WABEREQ and WACEREQ are 01b: reads after them succeed (deallocated blocks read zero).
    fn block_characteristics(&self) -> Vec<u8> {
        let mut b = vec![0u8; 0x3C];
        let rate: u16 = if self.caps.rotational { 0 } else { 1 };
        b[0..2].copy_from_slice(&rate.to_be_bytes());
        if self.cfg.sanitize && self.thin() {
            b[3] = 0x40 | 0x10;
        }
        b
    }

    /// VPD B2h (page length 4): LBPU, LBPWS, LBPWS10, LBPRZ and thin provisioning when the
    /// store can trim.
    fn provisioning(&self) -> Vec<u8> {
        if self.thin() {
            vec![0, 0x80 | 0x40 | 0x20 | 0x04, 0x02, 0]
        } else {
            vec![0; 4]
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;

    fn vpd(d: &crate::Device, code: u8) -> Vec<u8> {
        good(run(d, &[0x12, 1, code, 0x10, 0, 0], &[]))
    }

    #[test]
    fn supported_pages() {
        let (_, d) = dev();
        assert_eq!(
            vpd(&d, 0),
            vec![0, 0, 0, 7, 0, 0x80, 0x83, 0x8F, 0xB0, 0xB1, 0xB2]
        );
    }

    #[test]
    fn serial_page() {
        let (_, d) = dev();
        assert_eq!(vpd(&d, 0x80), b"\x00\x80\x00\x06SN0001".to_vec());
    }

    #[test]
    fn identification_page() {
        let (_, d) = dev_with(8, 512, |c| c.naa = 0x3123_4567_89AB_CDEF);
        let p = vpd(&d, 0x83);
        assert_eq!(&p[..4], &[0, 0x83, 0, 12 + 4 + 14 + 16]);
        assert_eq!(
            &p[4..16],
            &[1, 3, 0, 8, 0x31, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]
        );
        assert_eq!(&p[16..20], &[2, 1, 0, 14]);
        assert_eq!(&p[20..34], b"USTGT   SN0001");
        // The relative target port and the target port group of the nexus's port.
        assert_eq!(
            &p[34..],
            &[0x51, 0x94, 0, 4, 0, 0, 0, 1, 0x51, 0x95, 0, 4, 0, 0, 0, 1]
        );
    }

    #[test]
    fn default_naa_is_stable_and_local() {
        let a = crate::device::default_naa("abc");
        assert_eq!(a, crate::device::default_naa("abc"));
        assert_ne!(a, crate::device::default_naa("abd"));
        assert_eq!(a >> 60, 3);
    }

    #[test]
    fn block_limits_page() {
        let (_, d) = dev();
        let p = vpd(&d, 0xB0);
        assert_eq!(p.len(), 64);
        assert_eq!(&p[..8], &[0, 0xB0, 0, 0x3C, 0, 1, 0, 1]);
        assert_eq!(&p[8..12], &131072u32.to_be_bytes());
        assert_eq!(&p[20..24], &(1u32 << 20).to_be_bytes());
        assert_eq!(&p[24..28], &512u32.to_be_bytes());
        assert_eq!(&p[28..32], &1u32.to_be_bytes());
        // MAXIMUM WRITE SAME LENGTH: no more than the maximum transfer length.
        assert_eq!(&p[36..44], &131072u64.to_be_bytes());
        assert_eq!(&p[44..48], &131072u32.to_be_bytes());
        assert_eq!(&p[48..52], &8u32.to_be_bytes());
        assert_eq!(&p[52..56], &8u32.to_be_bytes());
        assert_eq!(&p[56..64], &[0; 8]);
    }

    #[test]
    fn block_limits_with_physical_blocks() {
        let (_, d) = dev_with(1024, 512, |c| {
            c.physical_block_size = 4096;
            c.max_transfer_bytes = 100 * 512;
        });
        let p = vpd(&d, 0xB0);
        assert_eq!(&p[6..8], &[0, 8]);
        assert_eq!(&p[28..32], &8u32.to_be_bytes());
        assert_eq!(&p[44..48], &96u32.to_be_bytes());
        let (_, d) = dev_with(64, 4096, |_| {});
        let p = vpd(&d, 0xB0);
        assert_eq!(&p[48..56], &[0, 0, 0, 2, 0, 0, 0, 2]);
    }

    #[test]
    fn provisioning_and_characteristics() {
        let (_, d) = dev();
        assert_eq!(vpd(&d, 0xB2), vec![0, 0xB2, 0, 4, 0, 0xE4, 2, 0]);
        let p = vpd(&d, 0xB1);
        assert_eq!(&p[..8], &[0, 0xB1, 0, 0x3C, 0, 1, 0, 0]);
        let (_, s) = dev_with(64, 512, |c| c.sanitize = true);
        assert_eq!(vpd(&s, 0xB1)[7], 0x50);
        let thick = thick_dev();
        assert_eq!(vpd(&thick, 0xB2), vec![0, 0xB2, 0, 4, 0, 0, 0, 0]);
        let p = vpd(&thick, 0xB0);
        assert_eq!(&p[20..28], &[0; 8]);
    }
}
