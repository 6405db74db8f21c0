//! SANITIZE (SBC-4 5.30): OVERWRITE, BLOCK ERASE, CRYPTO ERASE and EXIT FAILURE MODE, offered
//! only on logical units configured to allow it.
//!
//! The operation runs to completion before the command's status is returned (with IMMED set
//! too), holding the device's write gate exclusively, and ends with a flush so the sanitized
//! medium is durable. OVERWRITE writes the initialization pattern (inverted on every other pass
//! when INVERT is set) OVERWRITE COUNT times over every block. BLOCK ERASE and CRYPTO ERASE
//! deallocate every block (the store trims; deallocated blocks read as zeroes), so they are only
//! offered on thin-provisioned stores; there is no media encryption key to change, and
//! deallocating leaves no readable trace of the old data, which is what CRYPTO ERASE promises.
//! No sanitize operation can fail part-way into a failure mode, so EXIT FAILURE MODE has nothing
//! to do.

use crate::cdb::{be16, byte};
use crate::opcodes::{op, CmdInfo};
use crate::read_write::take_data_out;
use crate::sense::{CmdError, CmdResult, Sense};
use crate::{Device, Request};

/// Byte offset of the PARAMETER LIST LENGTH field.
const PARAM_LEN_AT: u16 = 7;

/// A validated OVERWRITE parameter list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Overwrite {
    invert: bool,
    count: u8,
    pattern: Vec<u8>,
}

/// Decodes the OVERWRITE parameter list (header plus initialization pattern).
fn parse_overwrite(data: &[u8], block_size: u64) -> Result<Overwrite, Sense> {
    let b0 = byte(data, 0);
    if b0 & 0x60 != 0 {
        return Err(Sense::invalid_param(0, Some(6)));
    }
    let count = b0 & 0x1F;
    if count == 0 {
        return Err(Sense::invalid_param(0, Some(4)));
    }
    if byte(data, 1) != 0 {
        return Err(Sense::invalid_param(1, None));
    }
    let len = usize::from(be16(data, 2));
    if len == 0 || len as u64 > block_size || 4 + len > data.len() {
        return Err(Sense::invalid_param(2, None));
    }
    Ok(Overwrite {
        invert: b0 & 0x80 != 0,
        count,
        pattern: data[4..4 + len].to_vec(),
    })
}

impl Device {
    /// SANITIZE, for the service action in `info`.
    pub(crate) fn sanitize(&self, req: &Request, info: &CmdInfo) -> CmdResult {
        let param_len = u64::from(be16(req.cdb, 7));
        let sa = info.sa.unwrap_or(0);
        let params_ok = match sa {
            op::SA_OVERWRITE => (5..=self.bs() + 4).contains(&param_len),
            _ => param_len == 0,
        };
        if !params_ok {
            return Err(Sense::invalid_cdb(PARAM_LEN_AT, None).into());
        }
        if sa == op::SA_EXIT_FAILURE_MODE {
            return Ok(Vec::new());
        }
        self.check_writable()?;
        let overwrite = if sa == op::SA_OVERWRITE {
            let data = take_data_out(req, param_len)?;
            Some(parse_overwrite(data, self.bs())?)
        } else {
            None
        };
        let _gate = self.exclusive_writes();
        match overwrite {
            Some(o) => self.overwrite_all(&o)?,
            None => self
                .store
                .trim(0, self.geo.size_bytes())
                .map_err(|e| Sense::from_io(&e, true))?,
        }
        self.store.flush().map_err(|e| Sense::from_io(&e, true))?;
        Ok(Vec::new())
    }

    /// Every pass of an OVERWRITE over the whole medium.
    fn overwrite_all(&self, o: &Overwrite) -> Result<(), CmdError> {
        let bs = self.bs() as usize;
        for pass in 0..o.count {
            let flip = if o.invert && pass % 2 == 1 { 0xFF } else { 0 };
            let block: Vec<u8> = o
                .pattern
                .iter()
                .map(|b| b ^ flip)
                .cycle()
                .take(bs)
                .collect();
            if block.iter().all(|b| *b == 0) {
                self.store
                    .write_zeroes(0, self.geo.size_bytes())
                    .map_err(|e| Sense::from_io(&e, true))?;
            } else {
                self.write_pattern(0, self.geo.num_blocks, &block)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn sanitize_cdb(sa: u8, param_len: u16) -> [u8; 10] {
        let mut c = [0x48, sa, 0, 0, 0, 0, 0, 0, 0, 0];
        c[7..9].copy_from_slice(&param_len.to_be_bytes());
        c
    }

    fn overwrite_params(b0: u8, pattern: &[u8]) -> Vec<u8> {
        let mut p = vec![b0, 0];
        p.extend_from_slice(&(pattern.len() as u16).to_be_bytes());
        p.extend_from_slice(pattern);
        p
    }

    fn sanitizing() -> (std::sync::Arc<MemStore>, Device) {
        dev_with(64, 512, |c| c.sanitize = true)
    }

    #[test]
    fn refused_unless_allowed() {
        let (_, d) = dev();
        let p = overwrite_params(1, &[0xAA; 512]);
        assert_sense(&run(&d, &sanitize_cdb(1, 516), &p), 5, 0x2000);
        assert_sense(&run(&d, &sanitize_cdb(2, 0), &[]), 5, 0x2000);
    }

    #[test]
    fn overwrite_writes_the_pattern_everywhere() {
        let (s, d) = sanitizing();
        let p = overwrite_params(0x01, &[1, 2, 3]);
        let r = run(&d, &sanitize_cdb(0x81, p.len() as u16), &p);
        assert_eq!(r.data_out_wanted, 7);
        good(r);
        let m = s.data.lock().unwrap();
        let want: Vec<u8> = [1u8, 2, 3].iter().copied().cycle().take(512).collect();
        assert!(m.chunks(512).all(|blk| blk == &want[..]));
        drop(m);
        assert_eq!(s.calls().last(), Some(&Call::Flush));
        // Three inverted passes end with the pattern inverted twice, i.e. as given.
        good(run(
            &d,
            &sanitize_cdb(1, 5),
            &overwrite_params(0x83, &[0x0F]),
        ));
        assert!(s.data.lock().unwrap().iter().all(|b| *b == 0x0F));
        good(run(
            &d,
            &sanitize_cdb(1, 5),
            &overwrite_params(0x82, &[0x0F]),
        ));
        assert!(s.data.lock().unwrap().iter().all(|b| *b == 0xF0));
        good(run(&d, &sanitize_cdb(1, 5), &overwrite_params(0x01, &[0])));
        assert!(s.data.lock().unwrap().iter().all(|b| *b == 0));
    }

    #[test]
    fn overwrite_parameter_errors() {
        let (_, d) = sanitizing();
        let full = overwrite_params(1, &[0xAA; 512]);
        for len in [0u16, 1, 4, 517] {
            assert_invalid_cdb(&run(&d, &sanitize_cdb(1, len), &full), 7, None);
        }
        let count0 = overwrite_params(0, &[0xAA; 512]);
        assert_sense(&run(&d, &sanitize_cdb(1, 516), &count0), 5, 0x2600);
        let mut no_pattern = full.clone();
        no_pattern[2..4].fill(0);
        assert_sense(&run(&d, &sanitize_cdb(1, 516), &no_pattern), 5, 0x2600);
        let mut long = full.clone();
        long[2..4].copy_from_slice(&516u16.to_be_bytes());
        assert_sense(&run(&d, &sanitize_cdb(1, 516), &long), 5, 0x2600);
        let mut test = full.clone();
        test[0] |= 0x20;
        assert_sense(&run(&d, &sanitize_cdb(1, 516), &test), 5, 0x2600);
        assert_sense(&run(&d, &sanitize_cdb(1, 516), &full[..100]), 5, 0x0E03);
    }

    #[test]
    fn erase_deallocates_everything() {
        for sa in [2u8, 3] {
            let (s, d) = sanitizing();
            s.data.lock().unwrap().fill(7);
            good(run(&d, &sanitize_cdb(sa, 0), &[]));
            assert_eq!(
                s.calls(),
                vec![
                    Call::Trim {
                        offset: 0,
                        len: 64 * 512
                    },
                    Call::Flush
                ]
            );
            assert!(s.data.lock().unwrap().iter().all(|b| *b == 0));
            assert_invalid_cdb(&run(&d, &sanitize_cdb(sa, 8), &[0; 8]), 7, None);
        }
    }

    #[test]
    fn erase_needs_thin_provisioning() {
        let mut store = MemStore::new(64, 512);
        store.caps.trim = false;
        let mut cfg = crate::DeviceConfig::new("t".into());
        cfg.sanitize = true;
        let d = Device::new(std::sync::Arc::new(store), cfg);
        assert_invalid_cdb(&run(&d, &sanitize_cdb(2, 0), &[]), 1, Some(4));
        good(run(&d, &sanitize_cdb(1, 5), &overwrite_params(1, &[1])));
    }

    #[test]
    fn exit_failure_mode_reserved_fields_and_protection() {
        let (s, d) = sanitizing();
        good(run(&d, &sanitize_cdb(0x1F, 0), &[]));
        assert_invalid_cdb(&run(&d, &sanitize_cdb(0x1F, 8), &[0; 8]), 7, None);
        assert!(s.calls().is_empty());
        assert_invalid_cdb(&run(&d, &sanitize_cdb(0x42, 0), &[]), 1, Some(6));
        for at in 2..7 {
            let mut c = sanitize_cdb(2, 0);
            c[at] = at as u8;
            let bit = 7 - (at as u8).leading_zeros() as u8;
            assert_invalid_cdb(&run(&d, &c, &[]), at as u16, Some(bit));
        }
        assert_invalid_cdb(&run(&d, &sanitize_cdb(0x04, 0), &[]), 1, Some(4));
        let (_, ro) = dev_with(64, 512, |c| {
            c.sanitize = true;
            c.read_only = true;
        });
        assert_sense(&run(&ro, &sanitize_cdb(2, 0), &[]), 7, 0x2700);
        let p = overwrite_params(1, &[0xAA; 512]);
        assert_sense(&run(&ro, &sanitize_cdb(1, 516), &p), 7, 0x2700);
    }

    #[test]
    fn reservation_conflict() {
        let (_, d) = sanitizing();
        clear_ua(&d, N2);
        good(run_on(&d, N2, &[0x16, 0, 0, 0, 0, 0], &[]));
        let r = run(&d, &sanitize_cdb(2, 0), &[]);
        assert_eq!(r.status, crate::Status::RESERVATION_CONFLICT);
    }
}
