//! MODE SENSE 6/10 and MODE SELECT 6/10 with the read-write error recovery (01h), caching
//! (08h) and control (0Ah) pages (SPC-4 6.11-6.14, 7.5; SBC-3 6.4).

use crate::cdb::{be16, byte, clip};
use crate::opcodes::op;
use crate::read_write::take_data_out;
use crate::sense::{Asc, CmdResult, Sense};
use crate::{Device, Request};

/// Current values of the changeable mode parameters (shared by all I_T nexuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeState {
    /// Caching page WCE: the write cache is enabled.
    pub wce: bool,
    /// Control page D_SENSE: sense data in descriptor format.
    pub d_sense: bool,
    /// Control page SWP: software write protect.
    pub swp: bool,
}

impl ModeState {
    /// Power-on values.
    pub fn new(wce: bool) -> ModeState {
        ModeState {
            wce,
            d_sense: false,
            swp: false,
        }
    }

    /// Back to power-on values (after a reset).
    pub fn reset(&mut self, wce: bool) {
        *self = ModeState::new(wce);
    }
}

/// Page control field of MODE SENSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageControl {
    Current,
    Changeable,
    Default,
}

/// Mode pages served, in the order of a 3Fh (all pages) request.
pub const PAGES: [u8; 3] = [0x01, 0x08, 0x0A];

/// The bytes of page `code` for `pc` given the current state and the default WCE.
pub fn page_bytes(code: u8, pc: PageControl, st: &ModeState, default_wce: bool) -> Option<Vec<u8>> {
    let vals = match pc {
        PageControl::Current => *st,
        PageControl::Default => ModeState::new(default_wce),
        PageControl::Changeable => ModeState {
            wce: true,
            d_sense: true,
            swp: true,
        },
    };
    let fixed = pc != PageControl::Changeable;
    let p = match code {
        0x01 => {
            let mut p = vec![0u8; 12];
            p[2] = if fixed { 0xC0 } else { 0 }; // AWRE, ARRE
            p
        }
        0x08 => {
            let mut p = vec![0u8; 20];
            p[2] = if vals.wce { 0x04 } else { 0 };
            p
        }
        0x0A => {
            let mut p = vec![0u8; 12];
            p[2] = if vals.d_sense { 0x04 } else { 0 };
            p[3] = if fixed { 0x10 } else { 0 }; // QUEUE ALGORITHM MODIFIER 1
            p[4] = if vals.swp { 0x08 } else { 0 };
            p
        }
        _ => return None,
    };
    let mut p = p;
    p[0] = code;
    p[1] = (p.len() - 2) as u8;
    Some(p)
}

impl Device {
    /// MODE SENSE 6 and 10.
    pub(crate) fn mode_sense(&self, req: &Request) -> CmdResult {
        let ten = req.cdb[0] == op::MODE_SENSE_10;
        let dbd = byte(req.cdb, 1) & 0x08 != 0;
        let llbaa = ten && byte(req.cdb, 1) & 0x10 != 0;
        let pc = match byte(req.cdb, 2) >> 6 {
            0 => PageControl::Current,
            1 => PageControl::Changeable,
            2 => PageControl::Default,
            _ => return Err(Sense::illegal(Asc::SAVING_PARAMETERS_NOT_SUPPORTED).into()),
        };
        let code = byte(req.cdb, 2) & 0x3F;
        let sub = byte(req.cdb, 3);
        if sub != 0 && sub != 0xFF {
            return Err(Sense::invalid_cdb(3, None).into());
        }
        let alloc = if ten {
            usize::from(be16(req.cdb, 7))
        } else {
            usize::from(byte(req.cdb, 4))
        };
        let st = self.lock().mode;
        let mut pages = Vec::new();
        let codes: &[u8] = if code == 0x3F {
            &PAGES
        } else {
            std::slice::from_ref(&code)
        };
        for c in codes {
            let p = page_bytes(*c, pc, &st, self.cfg.write_cache)
                .ok_or_else(|| Sense::invalid_cdb(2, Some(5)))?;
            pages.extend(p);
        }
        let desc = if dbd {
            Vec::new()
        } else {
            self.block_descriptor(llbaa)
        };
        let wp = if self.read_only() || st.swp { 0x80 } else { 0 };
        let dev_specific = wp | 0x10; // DPOFUA
        let mut d = if ten {
            let mut h = vec![0, 0, 0, dev_specific, u8::from(llbaa && !dbd), 0, 0, 0];
            h[6..8].copy_from_slice(&(desc.len() as u16).to_be_bytes());
            h
        } else {
            vec![0, 0, dev_specific, desc.len() as u8]
        };
        d.extend(desc);
        d.extend(pages);
        if ten {
            let n = (d.len() - 2) as u16;
            d[0..2].copy_from_slice(&n.to_be_bytes());
        } else {
            d[0] = (d.len() - 1).min(255) as u8;
        }
        Ok(clip(d, alloc))
    }

    /// Short (8-byte) or long (16-byte) LBA mode parameter block descriptor.
    fn block_descriptor(&self, long: bool) -> Vec<u8> {
        let bs = self.geo.block_size;
        if long {
            let mut d = self.geo.num_blocks.to_be_bytes().to_vec();
            d.extend_from_slice(&[0; 4]);
            d.extend_from_slice(&bs.to_be_bytes());
            d
        } else {
            let n = u32::try_from(self.geo.num_blocks).unwrap_or(u32::MAX);
            let mut d = n.to_be_bytes().to_vec();
            d.extend_from_slice(&bs.to_be_bytes());
            d[4] = 0;
            d
        }
    }

    /// MODE SELECT 6 and 10. Only the changeable bits (WCE, D_SENSE, SWP) may differ from
    /// the current values; a change establishes MODE PARAMETERS CHANGED for the other
    /// nexuses.
    pub(crate) fn mode_select(&self, req: &Request) -> CmdResult {
        let ten = req.cdb[0] == op::MODE_SELECT_10;
        if byte(req.cdb, 1) & 0x01 != 0 {
            return Err(Sense::invalid_cdb(1, Some(0)).into());
        }
        let len = if ten {
            usize::from(be16(req.cdb, 7))
        } else {
            usize::from(byte(req.cdb, 4))
        };
        if len == 0 {
            return Ok(Vec::new());
        }
        let data = take_data_out(req, len as u64)?;
        let (hlen, bdl, long) = if ten {
            (8, usize::from(be16(data, 6)), byte(data, 4) & 0x01 != 0)
        } else {
            (4, usize::from(byte(data, 3)), false)
        };
        if data.len() < hlen + bdl {
            return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR).into());
        }
        self.check_block_descriptors(&data[hlen..hlen + bdl], hlen, long)?;
        let mut st = self.lock();
        let old = st.mode;
        let new = self.parse_pages(data, hlen + bdl, old)?;
        if new != old {
            st.mode = new;
            st.ua
                .establish_others(req.nexus, Asc::MODE_PARAMETERS_CHANGED);
        }
        drop(st);
        if old.wce && !new.wce {
            self.store.flush().map_err(|e| Sense::from_io(&e, true))?;
        }
        Ok(Vec::new())
    }

    /// Block descriptors may only restate the block length.
    fn check_block_descriptors(&self, descs: &[u8], base: usize, long: bool) -> Result<(), Sense> {
        let size = if long { 16 } else { 8 };
        if !descs.len().is_multiple_of(size) {
            return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
        }
        for (i, d) in descs.chunks(size).enumerate() {
            let at = if long { 12 } else { 5 };
            let bl = if long {
                crate::cdb::be32(d, 12)
            } else {
                crate::cdb::be24(d, 5)
            };
            if bl != 0 && bl != self.geo.block_size {
                return Err(Sense::invalid_param((base + i * size + at) as u16, None));
            }
        }
        Ok(())
    }

    /// Validates every page of a MODE SELECT parameter list and returns the new state.
    fn parse_pages(&self, data: &[u8], mut at: usize, cur: ModeState) -> Result<ModeState, Sense> {
        let mut new = cur;
        while at < data.len() {
            if data.len() - at < 2 {
                return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
            }
            if data[at] & 0x40 != 0 {
                return Err(Sense::invalid_param(at as u16, Some(6)));
            }
            let code = data[at] & 0x3F;
            let current = page_bytes(code, PageControl::Current, &new, self.cfg.write_cache)
                .ok_or_else(|| Sense::invalid_param(at as u16, Some(5)))?;
            let mask = page_bytes(code, PageControl::Changeable, &new, self.cfg.write_cache)
                .ok_or_else(|| Sense::invalid_param(at as u16, Some(5)))?;
            if usize::from(data[at + 1]) != current.len() - 2 {
                return Err(Sense::invalid_param((at + 1) as u16, None));
            }
            let page = data
                .get(at..at + current.len())
                .ok_or_else(|| Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR))?;
            for i in 2..current.len() {
                let bad = (page[i] ^ current[i]) & !mask[i];
                if bad != 0 {
                    let bit = 7 - bad.leading_zeros() as u8;
                    return Err(Sense::invalid_param((at + i) as u16, Some(bit)));
                }
            }
            match code {
                0x08 => new.wce = page[2] & 0x04 != 0,
                0x0A => {
                    new.d_sense = page[2] & 0x04 != 0;
                    new.swp = page[4] & 0x08 != 0;
                }
                _ => {}
            }
            at += current.len();
        }
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn sense6(d: &Device, pc_page: u8, sub: u8, alloc: u8) -> Vec<u8> {
        good(run(d, &[0x1A, 0, pc_page, sub, alloc, 0], &[]))
    }

    #[test]
    fn mode_sense6_all_pages() {
        let (_, d) = dev();
        let data = sense6(&d, 0x3F, 0, 255);
        assert_eq!(data.len(), 4 + 8 + 12 + 20 + 12);
        assert_eq!(&data[..4], &[55, 0, 0x10, 8]);
        assert_eq!(&data[4..12], &[0, 0, 4, 0, 0, 0, 2, 0]);
        assert_eq!(&data[12..16], &[0x01, 0x0A, 0xC0, 0]);
        assert_eq!(&data[24..27], &[0x08, 0x12, 0x04]);
        assert_eq!(&data[44..49], &[0x0A, 0x0A, 0, 0x10, 0]);
        assert_eq!(sense6(&d, 0x3F, 0xFF, 255), data);
    }

    #[test]
    fn mode_sense6_truncates_but_keeps_length() {
        let (_, d) = dev();
        assert_eq!(sense6(&d, 0x3F, 0, 4), vec![55, 0, 0x10, 8]);
    }

    #[test]
    fn mode_sense_dbd_changeable_default() {
        let (_, d) = dev_with(64, 4096, |c| c.write_cache = false);
        let data = good(run(&d, &[0x1A, 0x08, 0x48, 0, 255, 0], &[]));
        assert_eq!(
            data,
            vec![
                23, 0, 0x10, 0, 0x08, 0x12, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ]
        );
        let data = good(run(&d, &[0x1A, 0x08, 0x4A, 0, 255, 0], &[]));
        assert_eq!(&data[4..9], &[0x0A, 0x0A, 0x04, 0, 0x08]);
        let data = good(run(&d, &[0x1A, 0x08, 0x88, 0, 255, 0], &[]));
        assert_eq!(data[6], 0);
        let data = sense6(&d, 0x08, 0, 255);
        assert_eq!(&data[4..12], &[0, 0, 0, 64, 0, 0, 0x10, 0]);
    }

    #[test]
    fn mode_sense10_long_lba() {
        let (_, d) = dev();
        let data = good(run(&d, &[0x5A, 0x10, 0x0A, 0, 0, 0, 0, 0, 255, 0], &[]));
        assert_eq!(&data[..8], &[0, 34, 0, 0x10, 1, 0, 0, 16]);
        assert_eq!(
            &data[8..24],
            &[0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 2, 0]
        );
        assert_eq!(&data[24..26], &[0x0A, 0x0A]);
        let data = good(run(&d, &[0x5A, 0, 0x0A, 0, 0, 0, 0, 0, 255, 0], &[]));
        assert_eq!(&data[..8], &[0, 26, 0, 0x10, 0, 0, 0, 8]);
    }

    #[test]
    fn mode_sense_errors() {
        let (_, d) = dev();
        assert_sense(&run(&d, &[0x1A, 0, 0xC8, 0, 255, 0], &[]), 5, 0x3900);
        assert_invalid_cdb(&run(&d, &[0x1A, 0, 0x1C, 0, 255, 0], &[]), 2, Some(5));
        assert_invalid_cdb(&run(&d, &[0x1A, 0, 0x08, 1, 255, 0], &[]), 3, None);
        assert_invalid_cdb(&run(&d, &[0x1A, 0x10, 0x08, 0, 255, 0], &[]), 1, Some(4));
    }

    #[test]
    fn wp_bit_for_read_only() {
        let (_, d) = dev_with(8, 512, |c| c.read_only = true);
        assert_eq!(sense6(&d, 0x08, 0, 255)[2], 0x90);
    }

    fn caching_page(wce: bool) -> Vec<u8> {
        let mut p = vec![0u8; 24];
        p[4] = 0x08;
        p[5] = 0x12;
        p[6] = if wce { 0x04 } else { 0 };
        p
    }

    #[test]
    fn mode_select_wce_changes_writes_and_raises_ua() {
        let (s, d) = dev();
        clear_ua(&d, N2);
        let page = caching_page(false);
        let r = run(&d, &[0x15, 0x10, 0, 0, page.len() as u8, 0], &page);
        assert_eq!(r.data_out_wanted, 24);
        good(r);
        assert_eq!(s.calls(), vec![Call::Flush]);
        assert_eq!(sense6(&d, 0x08, 0, 255)[14], 0);
        good(run(&d, &cdb10(0x2A, 0, 0, 1), &[1; 512]));
        assert_eq!(
            s.calls()[1],
            Call::Write {
                offset: 0,
                len: 512,
                fua: true
            }
        );
        assert_sense(&run_on(&d, N2, &[0, 0, 0, 0, 0, 0], &[]), 6, 0x2A01);
        good(run_on(&d, N1, &[0, 0, 0, 0, 0, 0], &[]));
    }

    #[test]
    fn mode_select_d_sense_switches_format() {
        let (_, d) = dev();
        let mut p = vec![0, 0, 0, 0, 0x0A, 0x0A, 0x04, 0x10, 0, 0, 0, 0, 0, 0, 0, 0];
        good(run(&d, &[0x15, 0x10, 0, 0, 16, 0], &p));
        let r = run(&d, &cdb10(0x28, 0, 5000, 1), &[]);
        assert_eq!(&r.sense[..4], &[0x72, 5, 0x21, 0]);
        p[6] = 0;
        let mut ten = vec![0u8; 4];
        ten.extend(&p);
        good(run(&d, &[0x55, 0x10, 0, 0, 0, 0, 0, 0, 20, 0], &ten));
        let r = run(&d, &cdb10(0x28, 0, 5000, 1), &[]);
        assert_eq!(r.sense[0], 0x70);
    }

    #[test]
    fn mode_select_swp_write_protects() {
        let (_, d) = dev();
        let p = vec![0, 0, 0, 0, 0x0A, 0x0A, 0, 0x10, 0x08, 0, 0, 0, 0, 0, 0, 0];
        good(run(&d, &[0x15, 0x10, 0, 0, 16, 0], &p));
        assert_sense(&run(&d, &cdb10(0x2A, 0, 0, 1), &[0; 512]), 7, 0x2700);
        assert_eq!(sense6(&d, 0x0A, 0, 255)[2], 0x90);
    }

    #[test]
    fn mode_select_errors() {
        let (_, d) = dev();
        let page = caching_page(true);
        assert_invalid_cdb(&run(&d, &[0x15, 0x11, 0, 0, 24, 0], &page), 1, Some(0));
        let mut bad = page.clone();
        bad[6] |= 0x01; // RCD is not changeable
        let r = run(&d, &[0x15, 0x10, 0, 0, 24, 0], &bad);
        assert_sense(&r, 5, 0x2600);
        assert_eq!(&r.sense[15..18], &[0x88, 0, 6]);
        let mut bad = page.clone();
        bad[5] = 0x10;
        assert_sense(&run(&d, &[0x15, 0x10, 0, 0, 24, 0], &bad), 5, 0x2600);
        let mut bad = page.clone();
        bad[4] = 0x1C;
        assert_sense(&run(&d, &[0x15, 0x10, 0, 0, 24, 0], &bad), 5, 0x2600);
        assert_sense(&run(&d, &[0x15, 0x10, 0, 0, 3, 0], &page[..3]), 5, 0x1A00);
        assert_sense(&run(&d, &[0x15, 0x10, 0, 0, 10, 0], &page[..10]), 5, 0x1A00);
        assert_sense(&run(&d, &[0x15, 0x10, 0, 0, 24, 0], &page[..8]), 5, 0x0E03);
        let mut bd = vec![0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 4, 0];
        assert_sense(&run(&d, &[0x15, 0x10, 0, 0, 12, 0], &bd), 5, 0x2600);
        bd[10] = 2;
        good(run(&d, &[0x15, 0x10, 0, 0, 12, 0], &bd));
        good(run(&d, &[0x15, 0x10, 0, 0, 0, 0], &[]));
    }
}
