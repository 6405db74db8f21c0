//! INQUIRY: standard data (SPC-4 6.6.2) and the dispatch to VPD pages.

use crate::cdb::{be16, byte, clip};
use crate::sense::{CmdResult, Sense};
use crate::{Device, DeviceConfig, Request};

/// Peripheral qualifier/type byte of a connected direct-access block device.
pub const PERIPHERAL_DISK: u8 = 0x00;
/// Peripheral qualifier 011b, device type 1Fh: no logical unit at this LUN.
pub const PERIPHERAL_NONE: u8 = 0x7F;

/// Version descriptors claimed: SAM-5, iSCSI, SPC-4, SBC-3.
const VERSION_DESCRIPTORS: [u16; 4] = [0x00A0, 0x0960, 0x0460, 0x04C0];

/// Copies `s` into `out`, space padded, keeping only printable ASCII.
pub fn ascii_field(out: &mut [u8], s: &str) {
    out.fill(b' ');
    let printable = s.bytes().filter(|b| (0x20..0x7F).contains(b));
    for (o, b) in out.iter_mut().zip(printable) {
        *o = b;
    }
}

/// Standard INQUIRY data (96 bytes) with the given peripheral byte.
pub fn standard_data(cfg: &DeviceConfig, peripheral: u8) -> Vec<u8> {
    let mut d = vec![0u8; 96];
    d[0] = peripheral;
    if cfg.removable {
        d[1] = 0x80; // RMB
    }
    d[2] = 0x06; // SPC-4
    d[3] = 0x10 | 0x02; // HISUP, response data format 2
    d[4] = (d.len() - 5) as u8;
    if peripheral == PERIPHERAL_DISK {
        d[5] = 0x10 | 0x08; // TPGS 01b (implicit ALUA), 3PC (EXTENDED COPY)
    }
    d[7] = 0x02; // CMDQUE
    ascii_field(&mut d[8..16], &cfg.vendor);
    ascii_field(&mut d[16..32], &cfg.product);
    ascii_field(&mut d[32..36], &cfg.revision);
    for (i, v) in VERSION_DESCRIPTORS.iter().enumerate() {
        d[58 + 2 * i..60 + 2 * i].copy_from_slice(&v.to_be_bytes());
    }
    d
}

/// Validates an INQUIRY CDB; returns (EVPD, page code, allocation length).
pub fn decode(cdb: &[u8]) -> Result<(bool, u8, usize), Sense> {
    let evpd = byte(cdb, 1) & 0x01 != 0;
    let page = byte(cdb, 2);
    if !evpd && page != 0 {
        return Err(Sense::invalid_cdb(2, None));
    }
    Ok((evpd, page, usize::from(be16(cdb, 3))))
}

impl Device {
    /// INQUIRY.
    pub(crate) fn inquiry(&self, req: &Request) -> CmdResult {
        let (evpd, page, alloc) = decode(req.cdb)?;
        let data = if evpd {
            self.vpd_page(page, req.nexus)?
        } else {
            standard_data(&self.cfg, PERIPHERAL_DISK)
        };
        Ok(clip(data, alloc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn standard_inquiry_bytes() {
        let (_, d) = dev();
        let data = good(run(&d, &[0x12, 0, 0, 0, 255, 0], &[]));
        assert_eq!(data.len(), 96);
        assert_eq!(&data[..8], &[0, 0, 6, 0x12, 91, 0x18, 0, 2]);
        assert_eq!(&data[8..16], b"USTGT   ");
        assert_eq!(&data[16..32], b"ustgt           ");
        assert_eq!(&data[32..36], b"0001");
        assert_eq!(
            &data[58..66],
            &[0x00, 0xA0, 0x09, 0x60, 0x04, 0x60, 0x04, 0xC0]
        );
    }

    #[test]
    fn inquiry_allocation_length() {
        let (_, d) = dev();
        assert_eq!(good(run(&d, &[0x12, 0, 0, 0, 36, 0], &[])).len(), 36);
        assert!(good(run(&d, &[0x12, 0, 0, 0, 0, 0], &[])).is_empty());
        assert_eq!(good(run(&d, &[0x12, 0, 0, 0x01, 0x04, 0], &[])).len(), 96);
    }

    #[test]
    fn inquiry_bad_fields() {
        let (_, d) = dev();
        assert_invalid_cdb(&run(&d, &[0x12, 0, 0x80, 0, 255, 0], &[]), 2, None);
        assert_invalid_cdb(&run(&d, &[0x12, 0x02, 0, 0, 255, 0], &[]), 1, Some(1));
        assert_invalid_cdb(&run(&d, &[0x12, 1, 0x55, 0, 255, 0], &[]), 2, None);
        assert_invalid_cdb(&run(&d, &[0x12, 0, 0, 0, 255, 0x04], &[]), 5, Some(2));
    }

    #[test]
    fn inquiry_does_not_consume_ua() {
        let (_, d) = dev();
        good(run_on(&d, N2, &[0x12, 0, 0, 0, 36, 0], &[]));
        assert_sense(&run_on(&d, N2, &[0, 0, 0, 0, 0, 0], &[]), 6, 0x2900);
        good(run_on(&d, N2, &[0, 0, 0, 0, 0, 0], &[]));
    }

    #[test]
    fn ascii_padding_filters() {
        let mut f = [0u8; 8];
        ascii_field(&mut f, "ab\u{e9}cdefghijk");
        assert_eq!(&f, b"abcdefgh");
        ascii_field(&mut f, "x");
        assert_eq!(&f, b"x       ");
    }
}
