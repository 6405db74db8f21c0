//! START STOP UNIT (SBC-3 5.25), PREVENT ALLOW MEDIUM REMOVAL (SBC-3 5.13) and the medium
//! state of a removable logical unit.
//!
//! A removable LUN's medium is ejected with LOEJ=1 START=0 and loaded with LOEJ=1 START=1.
//! While it is out, every command that needs it ends with NOT READY / MEDIUM NOT PRESENT.
//! Medium removal is prevented while any I_T nexus has PREVENT set; a prevention ends with
//! PREVENT=0 from that nexus, the loss of the nexus (logout, dropped connection) or a logical
//! unit / target reset. While prevented, both eject and load are refused with ILLEGAL REQUEST /
//! MEDIUM REMOVAL PREVENTED. Loading the medium establishes NOT READY TO READY CHANGE, MEDIUM MAY
//! HAVE CHANGED for the other nexuses.

use crate::cdb::byte;
use crate::opcodes::{op, CmdInfo};
use crate::sense::{Asc, CmdResult, Sense, SenseKey};
use crate::{Device, Request};

/// Commands that do not need the medium (SBC-3 4.2.3 and SPC-4 device-independent commands).
fn works_without_medium(opcode: u8) -> bool {
    matches!(
        opcode,
        op::INQUIRY
            | op::REQUEST_SENSE
            | op::REPORT_LUNS
            | op::START_STOP_UNIT
            | op::PREVENT_ALLOW
            | op::MODE_SENSE_6
            | op::MODE_SENSE_10
            | op::MODE_SELECT_6
            | op::MODE_SELECT_10
            | op::RESERVE_6
            | op::RESERVE_10
            | op::RELEASE_6
            | op::RELEASE_10
            | op::PERSISTENT_RESERVE_IN
            | op::PERSISTENT_RESERVE_OUT
            | op::MAINTENANCE_IN
    )
}

/// NOT READY / MEDIUM NOT PRESENT.
fn no_medium() -> Sense {
    Sense::new(SenseKey::NOT_READY, Asc::MEDIUM_NOT_PRESENT)
}

/// ILLEGAL REQUEST / MEDIUM REMOVAL PREVENTED.
fn removal_prevented() -> Sense {
    Sense::illegal(Asc::MEDIUM_REMOVAL_PREVENTED)
}

impl Device {
    /// NOT READY / MEDIUM NOT PRESENT for a command that needs the ejected medium.
    pub(crate) fn check_medium(&self, info: &CmdInfo) -> Result<(), Sense> {
        if !self.cfg.removable || works_without_medium(info.opcode) {
            return Ok(());
        }
        if self.lock().medium_present {
            Ok(())
        } else {
            Err(no_medium())
        }
    }

    /// START STOP UNIT. On a fixed medium LOEJ is refused; stopping flushes the cache unless
    /// NO_FLUSH is set. The logical unit has no power management: every POWER CONDITION value
    /// other than START_VALID is accepted and changes nothing, and LOEJ and START are then
    /// ignored, as SBC-3 says for a non-zero POWER CONDITION (libiscsi's StartStopUnit.PwrCnd
    /// expects all fifteen values to be accepted on a removable medium).
    pub(crate) fn start_stop_unit(&self, req: &Request) -> CmdResult {
        let b4 = byte(req.cdb, 4);
        let power = b4 >> 4;
        let loej = b4 & 0x02 != 0;
        if loej && !self.cfg.removable {
            return Err(Sense::invalid_cdb(4, Some(1)).into());
        }
        let start = b4 & 0x01 != 0;
        let no_flush = b4 & 0x04 != 0;
        if power == 0 && !start && !no_flush && self.lock().medium_present {
            self.store.flush().map_err(|e| Sense::from_io(&e, true))?;
        }
        if power == 0 && loej {
            self.load_or_eject(req, start)?;
        }
        Ok(Vec::new())
    }

    /// Loads (`load`) or ejects the removable medium, unless removal is prevented.
    fn load_or_eject(&self, req: &Request, load: bool) -> Result<(), Sense> {
        let mut st = self.lock();
        if !st.prevent.is_empty() {
            return Err(removal_prevented());
        }
        if load && !st.medium_present {
            st.ua
                .establish_others(req.nexus, Asc::NOT_READY_TO_READY_CHANGE);
        }
        st.medium_present = load;
        Ok(())
    }

    /// PREVENT ALLOW MEDIUM REMOVAL: PREVENT 01b adds the nexus to those preventing removal,
    /// 00b removes it. Without a removable medium the command has no effect.
    pub(crate) fn prevent_allow(&self, req: &Request) -> CmdResult {
        if !self.cfg.removable {
            return Ok(Vec::new());
        }
        let mut st = self.lock();
        match byte(req.cdb, 4) & 0x03 {
            0 => st.prevent.remove(&req.nexus),
            1 => st.prevent.insert(req.nexus),
            _ => return Err(Sense::invalid_cdb(4, Some(1)).into()),
        };
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::Device;

    const TUR: [u8; 6] = [0; 6];
    const EJECT: [u8; 6] = [0x1B, 0, 0, 0, 0x02, 0];
    const LOAD: [u8; 6] = [0x1B, 1, 0, 0, 0x03, 0];
    const PREVENT: [u8; 6] = [0x1E, 0, 0, 0, 1, 0];
    const ALLOW: [u8; 6] = [0x1E, 0, 0, 0, 0, 0];

    fn removable() -> Device {
        let (_, d) = dev_with(64, 512, |c| c.removable = true);
        clear_ua(&d, N1);
        clear_ua(&d, N2);
        d
    }

    #[test]
    fn start_stop_unit_fixed_medium() {
        let (s, d) = dev();
        good(run(&d, &[0x1B, 0, 0, 0, 0x01, 0], &[]));
        assert!(s.calls().is_empty());
        good(run(&d, &[0x1B, 1, 0, 0, 0x00, 0], &[]));
        assert_eq!(s.calls(), vec![Call::Flush]);
        good(run(&d, &[0x1B, 0, 0, 0, 0x04, 0], &[]));
        good(run(&d, &[0x1B, 0, 0, 0, 0x30, 0], &[]));
        good(run(&d, &TUR, &[]));
        assert_invalid_cdb(&run(&d, &EJECT, &[]), 4, Some(1));
        good(run(&d, &[0x1B, 0, 0, 0, 0x50, 0], &[]));
        assert_invalid_cdb(&run(&d, &[0x1B, 0, 0, 0, 0x08, 0], &[]), 4, Some(3));
        // PREVENT is accepted and changes nothing on a fixed medium.
        good(run(&d, &PREVENT, &[]));
        good(run(&d, &ALLOW, &[]));
        assert_invalid_cdb(&run(&d, &[0x1E, 0, 0, 0, 4, 0], &[]), 4, Some(2));
        let inq = good(run(&d, &[0x12, 0, 0, 0, 36, 0], &[]));
        assert_eq!(inq[1], 0);
    }

    #[test]
    fn eject_and_load() {
        let d = removable();
        let inq = good(run_on(&d, N1, &[0x12, 0, 0, 0, 36, 0], &[]));
        assert_eq!(inq[1], 0x80);
        good(run_on(&d, N1, &EJECT, &[]));
        assert_sense(&run_on(&d, N1, &TUR, &[]), 2, 0x3A00);
        assert_sense(&run_on(&d, N2, &cdb10(0x28, 0, 0, 1), &[]), 2, 0x3A00);
        assert_sense(&run_on(&d, N1, &cdb10(0x2A, 0, 0, 1), &[0; 512]), 2, 0x3A00);
        assert_sense(
            &run_on(&d, N1, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]),
            2,
            0x3A00,
        );
        // Commands that do not need the medium still work.
        good(run_on(&d, N1, &[0x12, 0, 0, 0, 36, 0], &[]));
        good(run_on(&d, N1, &[0x1A, 0, 0x3F, 0, 255, 0], &[]));
        good(run_on(&d, N1, &EJECT, &[]));
        good(run_on(&d, N1, &LOAD, &[]));
        good(run_on(&d, N1, &TUR, &[]));
        // The other nexus learns that the medium may have changed.
        assert_sense(&run_on(&d, N2, &TUR, &[]), 6, 0x2800);
        good(run_on(&d, N2, &TUR, &[]));
        good(run_on(&d, N2, &cdb10(0x28, 0, 0, 1), &[]));
    }

    #[test]
    fn prevention_blocks_eject_and_load_from_every_nexus() {
        let d = removable();
        good(run_on(&d, N1, &PREVENT, &[]));
        assert_sense(&run_on(&d, N1, &EJECT, &[]), 5, 0x5302);
        assert_sense(&run_on(&d, N2, &EJECT, &[]), 5, 0x5302);
        good(run_on(&d, N1, &TUR, &[]));
        // ALLOW from another nexus does not end N1's prevention.
        good(run_on(&d, N2, &ALLOW, &[]));
        assert_sense(&run_on(&d, N2, &EJECT, &[]), 5, 0x5302);
        good(run_on(&d, N1, &ALLOW, &[]));
        good(run_on(&d, N2, &EJECT, &[]));
        good(run_on(&d, N1, &PREVENT, &[]));
        assert_sense(&run_on(&d, N1, &LOAD, &[]), 5, 0x5302);
        assert_sense(&run_on(&d, N1, &TUR, &[]), 2, 0x3A00);
        good(run_on(&d, N1, &ALLOW, &[]));
        good(run_on(&d, N1, &LOAD, &[]));
        assert_invalid_cdb(&run_on(&d, N1, &[0x1E, 0, 0, 0, 2, 0], &[]), 4, Some(1));
    }

    #[test]
    fn prevention_ends_with_nexus_loss_and_resets() {
        let d = removable();
        good(run_on(&d, N1, &PREVENT, &[]));
        d.nexus_lost(N1);
        good(run_on(&d, N2, &EJECT, &[]));
        good(run_on(&d, N2, &LOAD, &[]));
        for reset in [Device::lun_reset, Device::target_reset] {
            good(run_on(&d, N2, &PREVENT, &[]));
            reset(&d);
            clear_ua(&d, N2);
            good(run_on(&d, N2, &EJECT, &[]));
            good(run_on(&d, N2, &LOAD, &[]));
        }
    }

    #[test]
    fn power_conditions_ignore_loej() {
        let d = removable();
        for pc in 1..16u8 {
            good(run_on(&d, N1, &[0x1B, 1, 0, 0, (pc << 4) | 0x02, 0], &[]));
            good(run_on(&d, N1, &TUR, &[]));
        }
    }
}
