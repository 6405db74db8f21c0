//! SPC-2 RESERVE(6/10) / RELEASE(6/10) and the reservation conflict check applied before
//! every command.

use crate::opcodes::CmdInfo;
use crate::sense::{CmdError, CmdResult};
use crate::{Device, NexusId, Request};

impl Device {
    /// RESERVATION CONFLICT when an SPC-2 reservation of another nexus, or a persistent
    /// reservation, denies `info` to `nexus`.
    pub(crate) fn check_reservations(
        &self,
        nexus: NexusId,
        info: &CmdInfo,
    ) -> Result<(), CmdError> {
        let st = self.lock();
        if let Some(holder) = st.reserved_by {
            if holder != nexus && !info.reserve_exempt {
                return Err(CmdError::Conflict);
            }
        }
        if st.pr.conflicts(nexus, info.access) {
            return Err(CmdError::Conflict);
        }
        Ok(())
    }

    /// RESERVE(6/10): reserves the logical unit for the nexus. Conflicts with another
    /// holder and with any persistent registration.
    pub(crate) fn reserve(&self, req: &Request) -> CmdResult {
        let mut st = self.lock();
        if st.pr.active() {
            return Err(CmdError::Conflict);
        }
        match st.reserved_by {
            Some(h) if h != req.nexus => Err(CmdError::Conflict),
            _ => {
                st.reserved_by = Some(req.nexus);
                Ok(Vec::new())
            }
        }
    }

    /// RELEASE(6/10): releases the nexus's reservation; GOOD without effect otherwise.
    pub(crate) fn release(&self, req: &Request) -> CmdResult {
        let mut st = self.lock();
        if st.pr.active() {
            return Err(CmdError::Conflict);
        }
        if st.reserved_by == Some(req.nexus) {
            st.reserved_by = None;
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::Status;

    const RESERVE6: [u8; 6] = [0x16, 0, 0, 0, 0, 0];
    const RELEASE6: [u8; 6] = [0x17, 0, 0, 0, 0, 0];
    const RESERVE10: [u8; 10] = [0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const RELEASE10: [u8; 10] = [0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    #[test]
    fn reserve_blocks_other_nexus() {
        let (_, d) = dev();
        clear_ua(&d, N1);
        clear_ua(&d, N2);
        good(run_on(&d, N1, &RESERVE6, &[]));
        good(run_on(&d, N1, &RESERVE6, &[]));
        let r = run_on(&d, N2, &cdb10(0x28, 0, 0, 1), &[]);
        assert_eq!(r.status, Status::RESERVATION_CONFLICT);
        assert!(r.sense.is_empty());
        assert_eq!(
            run_on(&d, N2, &RESERVE6, &[]).status,
            Status::RESERVATION_CONFLICT
        );
        assert_eq!(
            run_on(&d, N2, &[0; 6], &[]).status,
            Status::RESERVATION_CONFLICT
        );
        good(run_on(&d, N2, &[0x12, 0, 0, 0, 36, 0], &[]));
        good(run_on(&d, N2, &RELEASE6, &[]));
        assert_eq!(
            run_on(&d, N2, &[0; 6], &[]).status,
            Status::RESERVATION_CONFLICT
        );
        good(run_on(&d, N1, &RELEASE6, &[]));
        good(run_on(&d, N2, &[0; 6], &[]));
    }

    #[test]
    fn reserve10_and_resets_release() {
        let (_, d) = dev();
        clear_ua(&d, N1);
        clear_ua(&d, N2);
        good(run_on(&d, N1, &RESERVE10, &[]));
        assert_eq!(
            run_on(&d, N2, &RESERVE10, &[]).status,
            Status::RESERVATION_CONFLICT
        );
        good(run_on(&d, N1, &RELEASE10, &[]));
        good(run_on(&d, N2, &RESERVE10, &[]));
        d.lun_reset();
        clear_ua(&d, N1);
        good(run_on(&d, N1, &[0; 6], &[]));
        good(run_on(&d, N1, &RESERVE10, &[]));
        d.nexus_lost(N1);
        clear_ua(&d, N2);
        good(run_on(&d, N2, &[0; 6], &[]));
        let mut bad = RESERVE10;
        bad[1] = 0x10;
        assert_invalid_cdb(&run_on(&d, N2, &bad, &[]), 1, Some(4));
    }
}
