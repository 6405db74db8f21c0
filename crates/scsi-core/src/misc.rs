//! REQUEST SENSE and READ DEFECT DATA 10/12.

use crate::cdb::{be16, be32, byte, clip};
use crate::opcodes::op;
use crate::sense::{Asc, CmdResult, Sense, SenseKey};
use crate::{Device, Request};

impl Device {
    /// REQUEST SENSE: reports (and clears) a pending unit attention of the nexus, else the
    /// progress of a sanitize operation in progress, else NO SENSE. DESC selects descriptor
    /// format.
    pub(crate) fn request_sense(&self, req: &Request) -> CmdResult {
        let desc = byte(req.cdb, 1) & 0x01 != 0;
        let alloc = usize::from(byte(req.cdb, 4));
        let pending = self.lock().ua.pop(req.nexus);
        let sense = match pending {
            Some(asc) => Sense::new(SenseKey::UNIT_ATTENTION, asc),
            None => self
                .sanitize_sense()
                .unwrap_or(Sense::new(SenseKey::NO_SENSE, Asc::NONE)),
        };
        Ok(clip(sense.encode(desc), alloc))
    }

    /// READ DEFECT DATA 10/12: an empty defect list in the requested format.
    pub(crate) fn read_defect_data(&self, req: &Request) -> CmdResult {
        if req.cdb[0] == op::READ_DEFECT_DATA_10 {
            let alloc = usize::from(be16(req.cdb, 7));
            Ok(clip(vec![0, byte(req.cdb, 2) & 0x1F, 0, 0], alloc))
        } else {
            let alloc = be32(req.cdb, 6) as usize;
            Ok(clip(
                vec![0, byte(req.cdb, 1) & 0x1F, 0, 0, 0, 0, 0, 0],
                alloc,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;

    #[test]
    fn request_sense_reports_and_clears_ua() {
        let (_, d) = dev();
        let data = good(run_on(&d, N1, &[0x03, 0, 0, 0, 252, 0], &[]));
        assert_eq!(data.len(), 18);
        assert_eq!((data[0], data[2], data[12], data[13]), (0x70, 6, 0x29, 0));
        let data = good(run_on(&d, N1, &[0x03, 0, 0, 0, 252, 0], &[]));
        assert_eq!((data[2], data[12]), (0, 0));
        good(run_on(&d, N1, &[0, 0, 0, 0, 0, 0], &[]));
    }

    #[test]
    fn request_sense_descriptor_and_alloc() {
        let (_, d) = dev();
        let data = good(run_on(&d, N1, &[0x03, 1, 0, 0, 252, 0], &[]));
        assert_eq!(data, vec![0x72, 6, 0x29, 0, 0, 0, 0, 0]);
        let data = good(run_on(&d, N1, &[0x03, 0, 0, 0, 8, 0], &[]));
        assert_eq!(data.len(), 8);
        assert_invalid_cdb(&run_on(&d, N1, &[0x03, 2, 0, 0, 8, 0], &[]), 1, Some(1));
    }

    #[test]
    fn read_defect_data() {
        let (_, d) = dev();
        let data = good(run(&d, &[0x37, 0, 0x1D, 0, 0, 0, 0, 0, 4, 0], &[]));
        assert_eq!(data, vec![0, 0x1D, 0, 0]);
        let data = good(run(&d, &[0xB7, 0x0C, 0, 0, 0, 0, 0, 0, 0, 255, 0, 0], &[]));
        assert_eq!(data, vec![0, 0x0C, 0, 0, 0, 0, 0, 0]);
    }
}
