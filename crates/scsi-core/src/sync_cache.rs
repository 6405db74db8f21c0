//! SYNCHRONIZE CACHE 10/16 and PRE-FETCH 10/16.

use crate::cdb;
use crate::sense::{CmdResult, Sense};
use crate::{Device, Request};

impl Device {
    /// SYNCHRONIZE CACHE 10/16: range check, then a full store flush (NUMBER OF BLOCKS 0
    /// means "to the end").
    pub(crate) fn synchronize_cache(&self, req: &Request) -> CmdResult {
        let r = cdb::block_range(req.cdb, false);
        self.check_range(r.lba, r.blocks)?;
        self.store.flush().map_err(|e| Sense::from_io(&e, true))?;
        Ok(Vec::new())
    }

    /// PRE-FETCH 10/16: range check only; completes with GOOD (no cache to load).
    pub(crate) fn pre_fetch(&self, req: &Request) -> CmdResult {
        let r = cdb::block_range(req.cdb, false);
        self.check_range(r.lba, r.blocks)?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;

    #[test]
    fn synchronize_cache_flushes() {
        let (s, d) = dev();
        good(run(&d, &cdb10(0x35, 0, 0, 0), &[]));
        good(run(&d, &cdb16(0x91, 0x02, 1000, 24), &[]));
        assert_eq!(s.calls(), vec![Call::Flush, Call::Flush]);
        assert_sense(&run(&d, &cdb10(0x35, 0, 1000, 25), &[]), 5, 0x2100);
        assert_invalid_cdb(&run(&d, &cdb10(0x35, 0x01, 0, 0), &[]), 1, Some(0));
        *s.fail.lock().unwrap() = Some(5);
        assert_sense(&run_on(&d, N1, &cdb10(0x35, 0, 0, 0), &[]), 3, 0x0C00);
    }

    #[test]
    fn pre_fetch() {
        let (s, d) = dev();
        good(run(&d, &cdb10(0x34, 0, 0, 256), &[]));
        good(run(&d, &cdb16(0x90, 0x02, 1023, 1), &[]));
        good(run(&d, &cdb10(0x34, 0, 1024, 0), &[]));
        assert_sense(&run(&d, &cdb16(0x90, 0, 1024, 1), &[]), 5, 0x2100);
        assert_sense(&run(&d, &cdb16(0x90, 0, u64::MAX, 1), &[]), 5, 0x2100);
        assert_invalid_cdb(&run(&d, &cdb10(0x34, 0x04, 0, 1), &[]), 1, Some(2));
        assert!(s.calls().is_empty());
    }
}
