//! Logical units whose SCSI device model is not ustgt's: a [`CdbHandler`] receives every CDB
//! and answers it with its own status, data and sense (tcmu-runner's `handle_cmd` handlers,
//! which emulate a zoned or an optical device themselves).
//!
//! Block stores never see a CDB; such a logical unit is built with [`Device::passthrough`]
//! instead of over a store, and the [`crate::LunTable`] sends it every command except what
//! the target itself owns:
//!
//! - REPORT LUNS (the LUN table answers it, as for every LUN);
//! - unit attentions: the device keeps its own (power on, LUN and target resets, I_T nexus
//!   loss, REPORTED LUNS DATA HAS CHANGED) and reports a pending one instead of forwarding the
//!   command, except for INQUIRY, REQUEST SENSE, REPORT LUNS, GET CONFIGURATION and GET
//!   EVENT STATUS NOTIFICATION, which are forwarded without reporting it (SPC-4 and MMC-6).
//!
//! Everything else, reservations included, is the handler's: its status, Data-In and sense
//! bytes reach the initiator unchanged. Commands run away from the event loop
//! ([`Started::Background`]), since a handler may take as long as its medium does.

use std::io;
use std::sync::Arc;

use backstore::{BlockStore, Capabilities, Geometry};

use crate::opcodes::op;
use crate::sense::Sense;
use crate::{Device, DeviceConfig, Request, Response, Started, Status};

/// GET CONFIGURATION (MMC).
const GET_CONFIGURATION: u8 = 0x46;
/// GET EVENT STATUS NOTIFICATION (MMC).
const GET_EVENT_STATUS: u8 = 0x4A;

/// What a [`CdbHandler`] made of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdbOutcome {
    /// SCSI status.
    pub status: Status,
    /// Data-In bytes (at most the `data_in_len` the handler was given).
    pub data_in: Vec<u8>,
    /// Sense data for CHECK CONDITION, exactly as the handler built it.
    pub sense: Vec<u8>,
}

/// A device model outside ustgt that executes CDBs itself.
pub trait CdbHandler: Send + Sync {
    /// A short description for logs (`tcmu:zbc/...`).
    fn describe(&self) -> String;

    /// Executes one command: `data_out` holds every Data-Out byte received, and at most
    /// `data_in_len` bytes of Data-In may come back. May block for as long as the command
    /// takes (it runs on a thread of its own).
    fn execute(&self, cdb: &[u8], data_out: &[u8], data_in_len: u32) -> CdbOutcome;

    /// Makes written data stable (at shutdown).
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

/// The store of a passthrough device: it holds no blocks; only `flush` reaches the handler.
struct Unbacked(Arc<dyn CdbHandler>);

impl BlockStore for Unbacked {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn geometry(&self) -> Geometry {
        Geometry {
            block_size: 512,
            num_blocks: 0,
        }
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    fn read(&self, _offset: u64, _buf: &mut [u8]) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    fn write(&self, _offset: u64, _buf: &[u8], _fua: bool) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
}

/// One command on its way to the handler.
pub(crate) struct Job {
    handler: Arc<dyn CdbHandler>,
    cdb: Vec<u8>,
    data_out: Vec<u8>,
    data_in_len: u32,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("handler", &self.handler.describe())
            .field("cdb", &self.cdb)
            .field("data_out", &self.data_out.len())
            .field("data_in_len", &self.data_in_len)
            .finish()
    }
}

impl Job {
    /// Runs the command in the handler and builds its response.
    pub(crate) fn run(self) -> Response {
        let out = self
            .handler
            .execute(&self.cdb, &self.data_out, self.data_in_len);
        let mut data_in = out.data_in;
        data_in.truncate(self.data_in_len as usize);
        let sense = if out.status == Status::CHECK_CONDITION {
            out.sense
        } else {
            Vec::new()
        };
        Response {
            status: out.status,
            sense,
            data_in,
            data_out_wanted: u32::try_from(self.data_out.len()).unwrap_or(u32::MAX),
        }
    }
}

/// True for the commands that are forwarded without reporting a pending unit attention.
fn ua_exempt(opcode: u8) -> bool {
    matches!(
        opcode,
        op::INQUIRY | op::REQUEST_SENSE | op::REPORT_LUNS | GET_CONFIGURATION | GET_EVENT_STATUS
    )
}

impl Device {
    /// A logical unit whose every command (but those listed in the module documentation) is
    /// executed by `handler`. `cfg` supplies the largest Data-In buffer handed to it
    /// (`max_transfer_bytes`); the handler answers INQUIRY and the rest itself.
    pub fn passthrough(handler: Arc<dyn CdbHandler>, cfg: DeviceConfig) -> Device {
        let mut dev = Device::new(Arc::new(Unbacked(handler.clone())), cfg);
        dev.cdb_handler = Some(handler);
        dev
    }

    /// True for a logical unit built with [`Device::passthrough`].
    pub fn is_passthrough(&self) -> bool {
        self.cdb_handler.is_some()
    }

    /// The checks the target keeps for a passthrough command: a CDB at all, then the unit
    /// attentions. Returns the job for the handler, or the response that ends the command.
    fn passthrough_job(&self, req: &Request) -> Result<Job, Response> {
        let Some(handler) = self.cdb_handler.clone() else {
            return Err(Response::check(Sense::invalid_opcode().to_fixed()));
        };
        let Some(&opcode) = req.cdb.first() else {
            return Err(Response::check(Sense::invalid_opcode().to_fixed()));
        };
        {
            let mut st = self.lock();
            st.ua.register(req.nexus);
            if !ua_exempt(opcode) {
                if let Some(asc) = st.ua.pop(req.nexus) {
                    let s = Sense::new(crate::SenseKey::UNIT_ATTENTION, asc);
                    return Err(Response::check(s.to_fixed()));
                }
            }
        }
        let data_in_len = if req.data_out.is_empty() {
            req.expected_len.min(self.cfg.max_transfer_bytes)
        } else {
            0
        };
        Ok(Job {
            handler,
            cdb: req.cdb.to_vec(),
            data_out: req.data_out.to_vec(),
            data_in_len,
        })
    }

    /// Executes a command of a passthrough device on the calling thread.
    pub(crate) fn execute_passthrough(&self, req: &Request) -> Response {
        match self.passthrough_job(req) {
            Ok(job) => job.run(),
            Err(r) => r,
        }
    }

    /// Starts a command of a passthrough device: the handler's part as a
    /// [`Started::Background`] job.
    pub(crate) fn start_passthrough(self: &Arc<Self>, req: &Request) -> Started {
        match self.passthrough_job(req) {
            Ok(job) => Started::Background {
                job: crate::Background::passthrough(self.clone(), job),
                status_now: None,
            },
            Err(r) => Started::Done(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::testutil::{N1, N2};
    use crate::{LunTable, NexusId, TaskAttr};

    /// One command as a handler received it: CDB, Data-Out, Data-In length.
    type Received = (Vec<u8>, Vec<u8>, u32);

    /// Records what it receives; answers with a fixed outcome, or echoes Data-Out as
    /// Data-In padded with 0xEE up to the length it may return.
    #[derive(Default)]
    struct Fake {
        seen: Mutex<Vec<Received>>,
        answer: Mutex<Option<CdbOutcome>>,
        flushed: Mutex<u32>,
    }

    impl CdbHandler for Fake {
        fn describe(&self) -> String {
            "fake".into()
        }
        fn execute(&self, cdb: &[u8], data_out: &[u8], data_in_len: u32) -> CdbOutcome {
            self.seen
                .lock()
                .unwrap()
                .push((cdb.to_vec(), data_out.to_vec(), data_in_len));
            if let Some(a) = self.answer.lock().unwrap().clone() {
                return a;
            }
            CdbOutcome {
                status: Status::GOOD,
                data_in: vec![0xEE; data_in_len as usize + 10],
                sense: vec![1, 2, 3],
            }
        }
        fn flush(&self) -> io::Result<()> {
            *self.flushed.lock().unwrap() += 1;
            Ok(())
        }
    }

    fn table() -> (Arc<Fake>, LunTable) {
        let fake = Arc::new(Fake::default());
        let mut cfg = DeviceConfig::new("s".into());
        cfg.max_transfer_bytes = 4096;
        let dev = Device::passthrough(fake.clone(), cfg);
        assert!(dev.is_passthrough());
        (fake, LunTable::new(vec![(0, Arc::new(dev))]))
    }

    fn req<'a>(n: NexusId, cdb: &'a [u8], data_out: &'a [u8], len: u32) -> Request<'a> {
        Request {
            nexus: n,
            cdb,
            data_out,
            expected_len: len,
            attr: TaskAttr::Simple,
        }
    }

    /// Runs a command the way the transport does: start, then the background job if any.
    fn run(t: &LunTable, r: &Request) -> Response {
        match t.start(0, r) {
            Started::Done(resp) => resp,
            Started::Background { job, status_now } => {
                assert!(status_now.is_none());
                job.run()
            }
            Started::Io { .. } => panic!("a passthrough command was queued as block I/O"),
        }
    }

    const INQ: [u8; 6] = [0x12, 0, 0, 0, 36, 0];
    const TUR: [u8; 6] = [0; 6];

    /// Takes the power-on unit attention of `n` and forgets what the handler saw.
    fn clear(fake: &Fake, t: &LunTable, n: NexusId) {
        assert_eq!(
            run(t, &req(n, &TUR, &[], 0)).status,
            Status::CHECK_CONDITION
        );
        assert_eq!(run(t, &req(n, &TUR, &[], 0)).status, Status::GOOD);
        fake.seen.lock().unwrap().clear();
    }

    #[test]
    fn every_command_reaches_the_handler_unchanged() {
        let (fake, t) = table();
        clear(&fake, &t, N1);
        let r = run(&t, &req(N1, &INQ, &[], 36));
        assert_eq!(r.status, Status::GOOD);
        assert_eq!(
            r.data_in,
            vec![0xEE; 36],
            "Data-In clipped to the expected length"
        );
        assert!(r.sense.is_empty(), "no sense with GOOD");
        // An opcode ustgt's block model does not know (MMC READ TOC) is the handler's too.
        let toc = [0x43, 0, 0, 0, 0, 0, 0, 0, 12, 0];
        assert_eq!(run(&t, &req(N1, &toc, &[], 12)).data_in.len(), 12);
        let write = [0x2A, 0, 0, 0, 0, 9, 0, 0, 1, 0];
        let w = run(&t, &req(N1, &write, &[7; 2048], 2048));
        assert_eq!(w.status, Status::GOOD);
        assert!(w.data_in.is_empty(), "no Data-In for a write");
        assert_eq!(w.data_out_wanted, 2048);
        let seen = fake.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0], (INQ.to_vec(), Vec::new(), 36));
        assert_eq!(seen[1].0, toc.to_vec());
        assert_eq!(seen[2], (write.to_vec(), vec![7; 2048], 0));
    }

    #[test]
    fn handler_sense_is_passed_through_verbatim() {
        let (fake, t) = table();
        clear(&fake, &t, N1);
        let sense = vec![0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x21, 0, 0, 0, 0, 0];
        *fake.answer.lock().unwrap() = Some(CdbOutcome {
            status: Status::CHECK_CONDITION,
            data_in: Vec::new(),
            sense: sense.clone(),
        });
        let read = [0x28, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 1, 0];
        let r = run(&t, &req(N1, &INQ, &[], 36));
        assert_eq!(r.status, Status::CHECK_CONDITION);
        let r2 = run(&t, &req(N1, &read, &[], 512));
        assert_eq!((r.sense.clone(), r2.sense), (sense.clone(), sense));
        *fake.answer.lock().unwrap() = Some(CdbOutcome {
            status: Status::BUSY,
            data_in: Vec::new(),
            sense: Vec::new(),
        });
        assert_eq!(run(&t, &req(N1, &TUR, &[], 0)).status, Status::BUSY);
    }

    #[test]
    fn the_target_keeps_report_luns_and_unit_attentions() {
        let (fake, t) = table();
        // INQUIRY goes through with the power-on unit attention pending; TEST UNIT READY
        // reports it instead of reaching the handler, then goes through.
        assert_eq!(run(&t, &req(N2, &INQ, &[], 36)).status, Status::GOOD);
        let r = run(&t, &req(N2, &TUR, &[], 0));
        assert_eq!(
            (r.status, r.sense[2], r.sense[12]),
            (Status::CHECK_CONDITION, 6, 0x29)
        );
        assert_eq!(run(&t, &req(N2, &TUR, &[], 0)).status, Status::GOOD);
        let rl = [0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0];
        let r = run(&t, &req(N2, &rl, &[], 16));
        assert_eq!(&r.data_in[..4], &[0, 0, 0, 8], "the table's one LUN");
        assert!(t.lun_reset(0));
        let r = run(&t, &req(N2, &TUR, &[], 0));
        assert_eq!((r.sense[2], r.sense[12], r.sense[13]), (6, 0x29, 3));
        let cdbs: Vec<u8> = fake.seen.lock().unwrap().iter().map(|s| s.0[0]).collect();
        assert_eq!(
            cdbs,
            vec![0x12, 0x00],
            "REPORT LUNS and unit attentions stayed here"
        );
    }

    #[test]
    fn synchronous_execute_limits_and_flush() {
        let (fake, t) = table();
        clear(&fake, &t, N1);
        let d = t.device(0).unwrap();
        assert_eq!(
            d.execute_passthrough(&req(N1, &INQ, &[], 36)).status,
            Status::GOOD
        );
        // Data-In is never larger than the largest transfer.
        t.execute(
            0,
            &req(N1, &[0x28, 0, 0, 0, 0, 0, 0, 0, 64, 0], &[], 1 << 30),
        );
        assert_eq!(fake.seen.lock().unwrap()[1].2, 4096);
        let r = t.execute(0, &req(N1, &[], &[], 0));
        assert_eq!((r.sense[2], r.sense[12]), (5, 0x20), "an empty CDB");
        assert!(t.flush_all().is_ok());
        assert_eq!(*fake.flushed.lock().unwrap(), 1);
        assert!(!d.is_async());
        assert_eq!(d.store().describe(), "fake");
    }
}
