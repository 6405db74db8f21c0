//! SANITIZE (SBC-4 5.30): OVERWRITE, BLOCK ERASE, CRYPTO ERASE and EXIT FAILURE MODE, offered
//! only on logical units configured to allow it.
//!
//! A sanitize operation outlives the command loop iteration that received it: once the CDB and
//! parameter list are validated, [`crate::LunTable::start`] hands it back as a [`Background`]
//! job that the transport runs on a thread of its own, so that the event loop keeps serving
//! every other command and task management function meanwhile. With IMMED set the status is
//! returned at once, without it when the operation ends. While it runs, the logical unit
//! terminates every command but INQUIRY, REPORT LUNS and REQUEST SENSE with NOT READY / LOGICAL
//! UNIT NOT READY, SANITIZE IN PROGRESS and a progress indication (REQUEST SENSE reports the
//! same as its sense data). The operation is not stopped by task management functions, resets
//! or the loss of the I_T nexus that started it (SBC-4 4.11.2): aborting the SANITIZE command
//! only discards its status.
//!
//! The medium is processed in steps of 1 MiB, holding the device's write gate exclusively,
//! and the operation ends with a flush so the sanitized medium is durable. OVERWRITE writes the
//! initialization pattern (inverted on every other pass when INVERT is set) OVERWRITE COUNT
//! times over every block. BLOCK ERASE and CRYPTO ERASE deallocate every block (the store trims;
//! deallocated blocks read as zeroes), so they are only offered on thin-provisioned stores;
//! there is no media encryption key to change, and deallocating leaves no readable trace of the
//! old data, which is what CRYPTO ERASE promises. A store error ends the operation and is the
//! command's status; the logical unit does not enter a sanitize failure mode, so EXIT FAILURE
//! MODE has nothing to do.

use std::sync::Arc;

use crate::cdb::{self, be16, byte};
use crate::device::pad_cdb;
use crate::opcodes::{op, CmdInfo};
use crate::read_write::take_data_out;
use crate::sense::{CmdError, CmdResult, Sense};
use crate::{Device, Request, Response, Started};

/// Byte offset of the PARAMETER LIST LENGTH field.
const PARAM_LEN_AT: u16 = 7;
/// The IMMED bit (byte 1).
const IMMED: u8 = 0x80;
/// Bytes processed per step of a sanitize operation (progress is updated after each).
const STEP_BYTES: u64 = 1 << 20;

/// A validated OVERWRITE parameter list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Overwrite {
    invert: bool,
    count: u8,
    pattern: Vec<u8>,
}

/// What a validated SANITIZE asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    Overwrite(Overwrite),
    Erase,
}

/// How far the running sanitize operation is, in blocks processed of all it has to process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    done: u64,
    total: u64,
}

impl Progress {
    /// The PROGRESS INDICATION: the fraction done, in 65536ths.
    fn indication(self) -> u16 {
        let fraction = u128::from(self.done) * 65536 / u128::from(self.total.max(1));
        u16::try_from(fraction).unwrap_or(u16::MAX)
    }
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

/// True for the commands a logical unit processes while a sanitize operation runs.
fn allowed_while_sanitizing(opcode: u8) -> bool {
    matches!(opcode, op::INQUIRY | op::REQUEST_SENSE | op::REPORT_LUNS)
}

/// A sanitize operation that has been validated and marked in progress, or a command of a
/// passthrough device ([`crate::CdbHandler`]), for the transport to run away from its event
/// loop ([`Started::Background`]). Dropping a sanitize job unrun ends the
/// sanitize-in-progress condition without touching the medium.
#[derive(Debug)]
pub struct Background {
    dev: Arc<Device>,
    plan: Option<Plan>,
    wanted: u32,
    passthrough: Option<crate::passthrough::Job>,
}

impl Background {
    /// A passthrough command for the handler of `dev`.
    pub(crate) fn passthrough(dev: Arc<Device>, job: crate::passthrough::Job) -> Background {
        Background {
            dev,
            plan: None,
            wanted: 0,
            passthrough: Some(job),
        }
    }

    /// Runs the operation to its end (this takes as long as the medium takes) and returns the
    /// command's response.
    pub fn run(mut self) -> Response {
        if let Some(job) = self.passthrough.take() {
            return job.run();
        }
        let result = match self.plan.take() {
            Some(plan) => self.dev.run_sanitize(&plan),
            None => Ok(Vec::new()),
        };
        self.dev.respond(result, self.wanted)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.plan.is_some() {
            self.dev.lock().sanitizing = None;
        }
    }
}

impl Device {
    /// SANITIZE, for the service action in `info`, run to completion on the calling thread.
    pub(crate) fn sanitize(&self, req: &Request, info: &CmdInfo) -> CmdResult {
        match self.plan_sanitize(req, info)? {
            Some(plan) => {
                self.begin_sanitize(&plan)?;
                self.run_sanitize(&plan)
            }
            None => Ok(Vec::new()),
        }
    }

    /// Starts a SANITIZE: every check, then the operation as a [`Started::Background`] job
    /// (errors, and EXIT FAILURE MODE, complete at once).
    pub(crate) fn start_sanitize(self: &Arc<Self>, req: &Request) -> Started {
        let mut padded = [0u8; 32];
        let inner = pad_cdb(req, &mut padded);
        let wanted = cdb::data_out_len(inner.cdb, self.geo.block_size);
        let planned = self
            .prepare(&inner, req.cdb.len())
            .and_then(|info| self.plan_sanitize(&inner, info));
        let plan = match planned {
            Ok(Some(plan)) => plan,
            Ok(None) => return Started::Done(self.respond(Ok(Vec::new()), wanted)),
            Err(e) => return Started::Done(self.respond(Err(e), wanted)),
        };
        if let Err(s) = self.begin_sanitize(&plan) {
            return Started::Done(self.respond(Err(s.into()), wanted));
        }
        let status_now = (byte(inner.cdb, 1) & IMMED != 0).then(|| self.respond(Ok(Vec::new()), 0));
        let job = Background {
            dev: self.clone(),
            plan: Some(plan),
            wanted,
            passthrough: None,
        };
        Started::Background { job, status_now }
    }

    /// Validates a SANITIZE; `None` for EXIT FAILURE MODE, which has nothing to do.
    fn plan_sanitize(&self, req: &Request, info: &CmdInfo) -> Result<Option<Plan>, CmdError> {
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
            return Ok(None);
        }
        self.check_writable()?;
        if sa == op::SA_OVERWRITE {
            let data = take_data_out(req, param_len)?;
            return Ok(Some(Plan::Overwrite(parse_overwrite(data, self.bs())?)));
        }
        Ok(Some(Plan::Erase))
    }

    /// Enters the sanitize-in-progress condition (NOT READY when another operation runs).
    fn begin_sanitize(&self, plan: &Plan) -> Result<(), Sense> {
        let passes = match plan {
            Plan::Overwrite(o) => u64::from(o.count),
            Plan::Erase => 1,
        };
        let mut st = self.lock();
        if let Some(p) = st.sanitizing {
            return Err(Sense::sanitize_in_progress(p.indication()));
        }
        st.sanitizing = Some(Progress {
            done: 0,
            total: passes * self.geo.num_blocks,
        });
        Ok(())
    }

    /// Performs a planned operation (after [`Device::begin_sanitize`]) and leaves the
    /// sanitize-in-progress condition.
    fn run_sanitize(&self, plan: &Plan) -> CmdResult {
        let result = {
            let _gate = self.exclusive_writes();
            let done = match plan {
                Plan::Overwrite(o) => self.overwrite_all(o),
                Plan::Erase => self.in_steps(|lba, n| self.erase(lba, n)),
            };
            done.and_then(|()| self.store.flush().map_err(|e| Sense::from_io(&e, true)))
        };
        self.lock().sanitizing = None;
        result.map(|()| Vec::new()).map_err(CmdError::from)
    }

    /// Every pass of an OVERWRITE over the whole medium.
    fn overwrite_all(&self, o: &Overwrite) -> Result<(), Sense> {
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
                self.in_steps(|lba, n| self.zero(lba, n))?;
            } else {
                let step: Vec<u8> = block
                    .iter()
                    .copied()
                    .cycle()
                    .take(self.step_bytes())
                    .collect();
                self.in_steps(|lba, n| self.write_blocks(lba, &step[..n as usize * bs], false))?;
            }
        }
        Ok(())
    }

    /// Bytes per step: [`STEP_BYTES`] rounded down to whole blocks (at least one).
    fn step_bytes(&self) -> usize {
        ((STEP_BYTES / self.bs()).max(1) * self.bs()) as usize
    }

    /// Calls `work(lba, blocks)` over the whole medium a step at a time, advancing the
    /// progress indication after each.
    fn in_steps(&self, mut work: impl FnMut(u64, u64) -> Result<(), Sense>) -> Result<(), Sense> {
        let per_step = self.step_bytes() as u64 / self.bs();
        let mut lba = 0;
        while lba < self.geo.num_blocks {
            let n = per_step.min(self.geo.num_blocks - lba);
            work(lba, n)?;
            lba += n;
            if let Some(p) = self.lock().sanitizing.as_mut() {
                p.done = (p.done + n).min(p.total);
            }
        }
        Ok(())
    }

    fn erase(&self, lba: u64, blocks: u64) -> Result<(), Sense> {
        let bs = self.bs();
        self.store
            .trim(lba * bs, blocks * bs)
            .map_err(|e| Sense::from_io(&e, true))
    }

    fn zero(&self, lba: u64, blocks: u64) -> Result<(), Sense> {
        let bs = self.bs();
        self.store
            .write_zeroes(lba * bs, blocks * bs)
            .map_err(|e| Sense::from_io(&e, true))
    }

    /// NOT READY / SANITIZE IN PROGRESS while a sanitize operation runs, for every command but
    /// those a logical unit processes meanwhile.
    pub(crate) fn check_sanitizing(&self, info: &CmdInfo) -> Result<(), Sense> {
        if allowed_while_sanitizing(info.opcode) {
            return Ok(());
        }
        match self.lock().sanitizing {
            Some(p) => Err(Sense::sanitize_in_progress(p.indication())),
            None => Ok(()),
        }
    }

    /// The sense REQUEST SENSE reports while a sanitize operation runs, if one does.
    pub(crate) fn sanitize_sense(&self) -> Option<Sense> {
        self.lock()
            .sanitizing
            .map(|p| Sense::sanitize_in_progress(p.indication()))
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

    /// Starts a SANITIZE through a LUN table, as the transport does.
    fn start(t: &crate::LunTable, cdb: &[u8], data: &[u8]) -> crate::Started {
        let req = crate::Request {
            nexus: N1,
            cdb,
            data_out: data,
            expected_len: data.len() as u32,
            attr: crate::TaskAttr::Simple,
        };
        t.start(0, &req)
    }

    fn table(d: Device) -> (std::sync::Arc<Device>, crate::LunTable) {
        let d = std::sync::Arc::new(d);
        (d.clone(), crate::LunTable::new(vec![(0, d)]))
    }

    #[test]
    fn runs_in_the_background_and_holds_other_commands_off() {
        let (s, d) = sanitizing();
        clear_ua(&d, N1);
        clear_ua(&d, N2);
        s.data.lock().unwrap().fill(7);
        let (d, t) = table(d);
        let p = overwrite_params(1, &[0x5A]);
        let crate::Started::Background { job, status_now } = start(&t, &sanitize_cdb(1, 5), &p)
        else {
            panic!("a SANITIZE runs in the background");
        };
        assert!(
            status_now.is_none(),
            "IMMED=0: status when the operation ends"
        );
        // Nothing is written until the job runs; meanwhile the unit is not ready.
        assert!(s.data.lock().unwrap().iter().all(|b| *b == 7));
        for n in [N1, N2] {
            let r = run_on(&d, n, &[0, 0, 0, 0, 0, 0], &[]);
            assert_sense(&r, 2, 0x041B);
            assert_eq!(&r.sense[15..18], &[0x80, 0, 0], "progress indication");
            assert_sense(&run_on(&d, n, &cdb10(0x28, 0, 0, 1), &[]), 2, 0x041B);
        }
        assert_sense(&run(&d, &sanitize_cdb(2, 0), &[]), 2, 0x041B);
        good(run(&d, &[0x12, 0, 0, 0, 36, 0], &[]));
        let sense = good(run(&d, &[0x03, 0, 0, 0, 18, 0], &[]));
        assert_eq!(
            (sense[2], sense[12], sense[13], sense[15]),
            (2, 0x04, 0x1B, 0x80)
        );
        // Resets do not stop it.
        d.lun_reset();
        clear_ua(&d, N1);
        assert_sense(&run(&d, &[0, 0, 0, 0, 0, 0], &[]), 2, 0x041B);
        assert_eq!(job.run().status, crate::Status::GOOD);
        assert!(s.data.lock().unwrap().iter().all(|b| *b == 0x5A));
        good(run(&d, &[0, 0, 0, 0, 0, 0], &[]));
        let sense = good(run(&d, &[0x03, 0, 0, 0, 18, 0], &[]));
        assert_eq!((sense[2], sense[12]), (0, 0));
    }

    #[test]
    fn immediate_status_and_unrun_jobs() {
        let (s, d) = sanitizing();
        clear_ua(&d, N1);
        let (d, t) = table(d);
        let crate::Started::Background { job, status_now } = start(&t, &sanitize_cdb(0x82, 0), &[])
        else {
            panic!("a SANITIZE runs in the background");
        };
        assert_eq!(status_now.map(|r| r.status), Some(crate::Status::GOOD));
        // A job dropped without running leaves the medium and the unit as they were.
        drop(job);
        good(run(&d, &[0, 0, 0, 0, 0, 0], &[]));
        assert!(s.calls().is_empty());
        // Errors and EXIT FAILURE MODE complete at once.
        assert!(matches!(
            start(&t, &sanitize_cdb(1, 4), &[]),
            crate::Started::Done(_)
        ));
        assert!(matches!(
            start(&t, &sanitize_cdb(0x1F, 0), &[]),
            crate::Started::Done(_)
        ));
    }

    #[test]
    fn store_errors_end_the_operation() {
        let (s, d) = sanitizing();
        clear_ua(&d, N1);
        *s.fail.lock().unwrap() = Some(5);
        let p = overwrite_params(1, &[1]);
        assert_sense(&run(&d, &sanitize_cdb(1, 5), &p), 3, 0x0C00);
        *s.fail.lock().unwrap() = None;
        good(run(&d, &[0, 0, 0, 0, 0, 0], &[]));
    }

    #[test]
    fn progress_indication_counts_every_pass() {
        let p = Progress { done: 3, total: 4 };
        assert_eq!(p.indication(), 0xC000);
        assert_eq!(Progress { done: 0, total: 0 }.indication(), 0);
        assert_eq!(Progress { done: 4, total: 4 }.indication(), u16::MAX);
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
