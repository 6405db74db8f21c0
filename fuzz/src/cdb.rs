//! `cdb`: scsi-core's `LunTable` with arbitrary CDBs and Data-Out buffers.
//!
//! Input: three header bytes (store kind and block size, read-only, an asynchronous-queue
//! wrapper so that `LunTable::start` hands out store operations, fault injection, write cache,
//! a second LUN, small limits, removable medium, SANITIZE, physical block size, two target
//! ports), then operations: commands (CDB of 0 to 32 bytes, Data-Out bytes, expected length,
//! I_T nexus, LUN, task attribute, `execute` or `start` and how the queued operation ends or
//! whether a background operation runs at once), LUN and target resets (optionally probed),
//! nexus loss, REPORTED LUNS DATA HAS CHANGED, running or dropping background operations,
//! mapping and unmapping a LUN, flushes. Several commands run against one table, so
//! reservations, mode pages, unit attentions and a sanitize in progress carry over between
//! them.
//!
//! Checks: no panic; the status is GOOD, CHECK CONDITION or RESERVATION CONFLICT; CHECK
//! CONDITION comes with well-formed sense (fixed or descriptor, lengths consistent, a field
//! pointer inside the CDB) and no data; other statuses without sense; Data-In never longer than
//! the allocation length or transfer length of the CDB; an unmapped LUN only answers INQUIRY,
//! REQUEST SENSE and REPORT LUNS; queued store operations are block aligned, inside the store,
//! within the maximum transfer, and a read's result is exactly what the store returned. A
//! `Started::Background` is a SANITIZE of a unit that allows it, one at a time per unit, with
//! a GOOD status at once only under IMMED; while it is in flight the unit reports the sanitize
//! in progress and runs nothing but INQUIRY, REQUEST SENSE and REPORT LUNS; every job is run
//! (or dropped) exactly once and the unit is then no longer sanitizing. After a LUN or target
//! reset every nexus, the requester included, gets a reset unit attention.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use backstore::{BlockStore, Capabilities, Extent, Geometry, IoDone, IoOp, IoQueue};
use scsi_core::{
    Background, Device, DeviceConfig, LunTable, NexusId, Request, Response, Started, TaskAttr,
};
use store_inject::{FaultKind, FaultRule, InjectRules, InjectStore, Trigger};
use store_null::NullStore;
use store_ram::RamStore;

use crate::input::Input;

/// Operation tags (the tag byte modulo 8): 0 to 3 are commands.
pub mod op {
    /// A command: flags, CDB (u8 length + bytes), Data-Out (u16 length + bytes), expected
    /// length mode (+ u32), and with `start` the completion mode.
    pub const CMD: u8 = 0;
    /// LOGICAL UNIT RESET: LUN selector, probe flag (bit 0: check the unit attentions).
    pub const LUN_RESET: u8 = 4;
    /// A kind byte (modulo 8, see [`target`]): target reset, nexus loss, REPORTED LUNS DATA
    /// HAS CHANGED, ABORT TASK SET, background operations.
    pub const TARGET: u8 = 5;
    /// Map or unmap LUN 1: flag.
    pub const MAP: u8 = 6;
    /// Flush every LUN.
    pub const FLUSH: u8 = 7;
}

/// Kinds of the [`op::TARGET`] operation.
pub mod target {
    /// Target reset, then check the unit attentions of every LUN.
    pub const RESET_PROBED: u8 = 0;
    /// Target reset.
    pub const RESET: u8 = 1;
    /// Nexus 2 is lost.
    pub const NEXUS_LOST: u8 = 2;
    /// REPORTED LUNS DATA HAS CHANGED.
    pub const LUNS_CHANGED: u8 = 3;
    /// ABORT TASK SET of LUN 0 by nexus 1.
    pub const ABORT_TASK_SET: u8 = 4;
    /// Run the oldest background operation in flight.
    pub const RUN_JOB: u8 = 5;
    /// Drop the newest background operation in flight unrun.
    pub const DROP_JOB: u8 = 6;
    /// Run every background operation in flight.
    pub const RUN_ALL: u8 = 7;
}

/// Command flags.
pub mod flag {
    /// Nexus 2 instead of 1.
    pub const NEXUS2: u8 = 1;
    /// LUN selector: two bits (LUN 0, 1, 7, 300).
    pub const LUN_SHIFT: u8 = 1;
    /// Task attribute selector: three bits.
    pub const ATTR_SHIFT: u8 = 3;
    /// Run through `LunTable::start` (queued I/O when the store has queues, background work
    /// for SANITIZE); a completion mode byte follows the command.
    pub const START: u8 = 0x40;
}

/// Header byte 0: store and device options.
pub mod store_flag {
    /// RAM store (else null).
    pub const RAM: u8 = 1;
    /// 4096-byte blocks (else 512).
    pub const BS4K: u8 = 2;
    /// Device configured read-only.
    pub const READ_ONLY: u8 = 4;
    /// The store offers asynchronous queues.
    pub const ASYNC: u8 = 8;
    /// Wrap in the fault-injection store (rules from header byte 1).
    pub const INJECT: u8 = 16;
    /// Write cache off.
    pub const WCE_OFF: u8 = 32;
    /// Map a second LUN (1).
    pub const LUN1: u8 = 64;
    /// Small transfer, unmap and write same limits.
    pub const SMALL: u8 = 128;
}

const RAM_BLOCKS: u64 = 256;
const NULL_BYTES: u64 = 1 << 30;
const LUNS: [u64; 4] = [0, 1, 7, 300];
/// The nexus of the harness's own probes (never used by the input's commands).
const PROBE: NexusId = NexusId(3);

/// Forwards to a store and offers an (unused) asynchronous queue, so that `start` splits
/// READ, WRITE and SYNCHRONIZE CACHE into a store operation and a completion.
struct Queued(Arc<dyn BlockStore>);

struct NoQueue;

impl IoQueue for NoQueue {
    fn submit(&mut self, tag: u64, op: IoOp) -> Result<(), (u64, IoOp)> {
        Err((tag, op))
    }
    fn commit(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn completion_fd(&self) -> RawFd {
        -1
    }
    fn reap(&mut self, _out: &mut Vec<IoDone>) {}
    fn in_flight(&self) -> usize {
        0
    }
}

impl BlockStore for Queued {
    fn describe(&self) -> String {
        format!("queued:{}", self.0.describe())
    }
    fn geometry(&self) -> Geometry {
        self.0.geometry()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.read(offset, buf)
    }
    fn write(&self, offset: u64, buf: &[u8], fua: bool) -> io::Result<()> {
        self.0.write(offset, buf, fua)
    }
    fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.0.trim(offset, len)
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.0.write_zeroes(offset, len)
    }
    fn open_queue(&self) -> Option<io::Result<Box<dyn IoQueue>>> {
        Some(Ok(Box::new(NoQueue)))
    }
    fn extents(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        self.0.extents(offset, len)
    }
}

fn rule(triggers: Vec<Trigger>, kind: FaultKind) -> FaultRule {
    FaultRule { triggers, kind }
}

/// Fault injection rules from header byte 1.
fn inject_rules(b: u8) -> InjectRules {
    let errno = if b & 0x40 != 0 { 28 } else { 5 };
    let read = match b & 3 {
        0 => vec![],
        1 => vec![Trigger::Every(3)],
        2 => vec![Trigger::Once(2)],
        _ => vec![Trigger::Lbas {
            first: 10,
            last: 20,
        }],
    };
    let (write, wkind) = match (b >> 2) & 3 {
        0 => (vec![], FaultKind::Errno(errno)),
        1 => (vec![Trigger::Every(2)], FaultKind::Errno(errno)),
        2 => (vec![Trigger::Always], FaultKind::Errno(errno)),
        _ => (vec![Trigger::Every(2)], FaultKind::Short),
    };
    let flush = match (b >> 4) & 3 {
        0 => vec![],
        1 => vec![Trigger::Once(1)],
        _ => vec![Trigger::Always],
    };
    InjectRules {
        read: rule(read, FaultKind::Errno(errno)),
        write: rule(write, wkind),
        flush: rule(flush, FaultKind::Errno(5)),
        poison: b & 0x80 == 0,
        ..InjectRules::default()
    }
}

/// The store of one LUN.
fn store(h: [u8; 3]) -> Arc<dyn BlockStore> {
    let bs = if h[0] & store_flag::BS4K != 0 {
        4096
    } else {
        512
    };
    let store_ro = h[2] & 0x10 != 0;
    let base: Arc<dyn BlockStore> = if h[0] & store_flag::RAM != 0 {
        Arc::new(RamStore::new(RAM_BLOCKS * u64::from(bs), bs, store_ro).expect("ram store"))
    } else {
        Arc::new(
            NullStore::new(NULL_BYTES, bs)
                .expect("null store")
                .read_only(store_ro),
        )
    };
    let base: Arc<dyn BlockStore> = if h[0] & store_flag::INJECT != 0 {
        Arc::new(InjectStore::new(base, inject_rules(h[1])))
    } else {
        base
    };
    if h[0] & store_flag::ASYNC != 0 {
        Arc::new(Queued(base))
    } else {
        base
    }
}

fn device(h: [u8; 3], serial: &str) -> Arc<Device> {
    let mut cfg = DeviceConfig::new(serial.to_string());
    cfg.read_only = h[0] & store_flag::READ_ONLY != 0;
    cfg.write_cache = h[0] & store_flag::WCE_OFF == 0;
    if h[0] & store_flag::SMALL != 0 {
        cfg.max_transfer_bytes = 64 << 10;
        cfg.max_unmap_blocks = 64;
        cfg.max_unmap_descriptors = 4;
        cfg.max_write_same_blocks = 128;
    }
    cfg.removable = h[2] & 1 != 0;
    cfg.sanitize = h[2] & 2 != 0;
    if h[2] & 4 != 0 && h[0] & store_flag::BS4K == 0 {
        cfg.physical_block_size = 4096;
    }
    if h[2] & 8 != 0 {
        cfg.max_compare_write_blocks = 8;
    }
    Arc::new(Device::new(store(h), cfg))
}

/// What one input reached (for tests of the seeds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    /// Commands with GOOD status.
    pub good: usize,
    /// Commands with CHECK CONDITION.
    pub check: usize,
    /// Commands with RESERVATION CONFLICT.
    pub conflict: usize,
    /// Store operations handed out by `start`.
    pub queued: usize,
    /// Operations handed out as `Started::Background`.
    pub background: usize,
    /// Background operations run to their end.
    pub background_done: usize,
    /// Resets checked for the unit attention of every nexus.
    pub resets_probed: usize,
}

/// A SANITIZE handed out as `Started::Background` and not run yet.
struct Job {
    job: Background,
    dev: Arc<Device>,
    cdb: Vec<u8>,
    /// Its status went back at once (IMMED): the job's own response is dropped.
    answered: bool,
}

/// One input's LUN table, with the background operations it started.
struct Run {
    table: LunTable,
    h: [u8; 3],
    rep: Report,
    jobs: Vec<Job>,
}

/// Run one input.
pub fn run(data: &[u8]) {
    report(data);
}

/// Run one input and say what it reached.
pub fn report(data: &[u8]) -> Report {
    let mut inp = Input::new(data);
    let h = [inp.u8(), inp.u8(), inp.u8()];
    let mut luns = vec![(0, device(h, "fuzz0000"))];
    if h[0] & store_flag::LUN1 != 0 {
        luns.push((1, device(h, "fuzz0001")));
    }
    let table = LunTable::new(luns);
    if h[2] & 0x20 != 0 {
        // Two target ports (ALUA target port groups), one per nexus.
        table.set_target_port_count(2);
        table.bind_target_port(NexusId(1), 1);
        table.bind_target_port(NexusId(2), 2);
    }
    let mut r = Run {
        table,
        h,
        rep: Report::default(),
        jobs: Vec::new(),
    };
    let mut ops = 0;
    while let Some(tag) = inp.op() {
        ops += 1;
        if ops > 64 {
            break;
        }
        r.step(tag, &mut inp);
    }
    // Every background operation ends: the transport always runs what it was handed.
    while !r.jobs.is_empty() {
        r.run_job(0);
    }
    r.rep
}

impl Run {
    fn step(&mut self, tag: u8, inp: &mut Input) {
        match tag % 8 {
            0..=3 => self.command(inp),
            op::LUN_RESET => {
                let (l, probe) = (inp.u8(), inp.u8() & 1 != 0);
                let lun = LUNS[usize::from(l % 4)];
                let mapped = self.table.device(lun).is_some();
                assert_eq!(self.table.lun_reset(lun), mapped, "LUN RESET of LUN {lun}");
                if probe && mapped {
                    self.probe_reset(lun);
                }
            }
            op::TARGET => self.target_op(inp.u8()),
            op::MAP => {
                if inp.u8() & 1 == 0 {
                    self.table.map(1, device(self.h, "fuzz0001"));
                } else {
                    self.table.unmap(1);
                }
            }
            _ => {
                let _ = self.table.flush_all();
            }
        }
    }

    fn target_op(&mut self, kind: u8) {
        match kind % 8 {
            target::RESET_PROBED => {
                self.table.target_reset();
                for lun in self.table.luns() {
                    self.probe_reset(lun);
                }
            }
            target::RESET => self.table.target_reset(),
            target::NEXUS_LOST => self.table.nexus_lost(NexusId(2)),
            target::LUNS_CHANGED => self.table.report_luns_changed(),
            target::ABORT_TASK_SET => self.table.abort_task_set(0, NexusId(1)),
            target::RUN_JOB if !self.jobs.is_empty() => self.run_job(0),
            target::DROP_JOB => {
                // The transport could not start it (no thread): the job is dropped unrun and
                // the command answered by the transport.
                if let Some(j) = self.jobs.pop() {
                    let dev = j.dev.clone();
                    drop(j);
                    assert!(!sanitizing(&dev), "a dropped job left the unit sanitizing");
                }
            }
            _ => {
                while !self.jobs.is_empty() {
                    self.run_job(0);
                }
            }
        }
    }

    /// After a reset, every nexus, the one that asked for it included, reports a reset unit
    /// attention (29h) on its next command.
    fn probe_reset(&mut self, lun: u64) {
        self.rep.resets_probed += 1;
        for n in [NexusId(1), NexusId(2)] {
            let r = self.table.execute(lun, &plain(n, &[0; 6]));
            assert_eq!(r.status.0, 0x02, "no unit attention after a reset ({n:?})");
            let (key, asc, _) = sense_fields(&r.sense);
            assert_eq!(
                (key, asc),
                (0x06, 0x29),
                "not a reset unit attention ({n:?})"
            );
        }
    }

    /// Run background job `i` to its end and check the command's response, if it is one.
    fn run_job(&mut self, i: usize) {
        let j = self.jobs.remove(i);
        let resp = j.job.run();
        self.rep.background_done += 1;
        check_response(&j.cdb, &resp, 0, true);
        if !j.answered {
            self.count(&resp);
        }
        assert!(
            !sanitizing(&j.dev),
            "the unit is still sanitizing after its job"
        );
    }

    fn count(&mut self, resp: &Response) {
        match resp.status.0 {
            0 => self.rep.good += 1,
            2 => self.rep.check += 1,
            _ => self.rep.conflict += 1,
        }
    }

    /// The device `dev` has a background operation in flight.
    fn busy(&self, dev: &Arc<Device>) -> bool {
        self.jobs.iter().any(|j| Arc::ptr_eq(&j.dev, dev))
    }

    fn command(&mut self, inp: &mut Input) {
        let f = inp.u8();
        let n = usize::from(inp.u8() % 33);
        let cdb = inp.bytes(n).to_vec();
        let data = inp.blob(65535).to_vec();
        let lun = LUNS[usize::from((f >> flag::LUN_SHIFT) & 3)];
        let dev = self.table.device(lun);
        let bs = dev.as_ref().map_or(512, |d| d.geometry().block_size);
        let limit = data_in_limit(&cdb, bs);
        let expected_len = match inp.u8() % 4 {
            0 if !data.is_empty() => data.len() as u32,
            0 => u32::try_from(limit.min(u64::from(u32::MAX))).unwrap_or(u32::MAX),
            1 => data.len() as u32,
            2 => inp.u32(),
            _ => 0,
        };
        let req = Request {
            nexus: NexusId(1 + u64::from(f & flag::NEXUS2)),
            cdb: &cdb,
            data_out: &data,
            expected_len,
            attr: attr(f),
        };
        let busy = dev.as_ref().is_some_and(|d| self.busy(d));
        let resp = if f & flag::START != 0 {
            let mode = inp.u8();
            match self.table.start(lun, &req) {
                Started::Done(r) => r,
                Started::Io { op, pending } => {
                    self.rep.queued += 1;
                    let dev = dev.as_ref().expect("queued I/O on a mapped LUN");
                    queued(op, pending, mode, dev, &cdb, data.len())
                }
                Started::Background { job, status_now } => {
                    let dev = dev.clone().expect("background work on a mapped LUN");
                    let Some(r) = self.background(job, status_now, dev, &cdb, mode) else {
                        return;
                    };
                    r
                }
            }
        } else {
            self.table.execute(lun, &req)
        };
        check_response(&cdb, &resp, limit, dev.is_some());
        if busy && resp.status.0 == 0 {
            let opcode = byte(&cdb, 0);
            assert!(
                matches!(opcode, 0x03 | 0x12 | 0xa0),
                "opcode {opcode:#04x} ran while the unit was sanitizing"
            );
        }
        self.count(&resp);
        if let Some(d) = &dev {
            if is_read(byte(&cdb, 0)) {
                let max = u64::from(d.config().max_transfer_bytes);
                assert!(
                    resp.data_in.len() as u64 <= max,
                    "read beyond the maximum transfer"
                );
            }
        }
    }

    /// A command handed out as a background operation: its status now (IMMED), or none yet.
    /// Mode bit 0 runs the job at once, else it stays in flight while other commands run.
    fn background(
        &mut self,
        job: Background,
        status_now: Option<Response>,
        dev: Arc<Device>,
        cdb: &[u8],
        mode: u8,
    ) -> Option<Response> {
        self.rep.background += 1;
        assert_eq!(
            byte(cdb, 0),
            0x48,
            "background work for a command but SANITIZE"
        );
        assert!(
            dev.config().sanitize,
            "SANITIZE started on a unit without it"
        );
        assert!(!dev.read_only(), "SANITIZE started on a read-only unit");
        assert!(
            !self.busy(&dev),
            "two sanitize operations at once on one unit"
        );
        assert!(
            sanitizing(&dev),
            "a background SANITIZE without the unit sanitizing"
        );
        if let Some(r) = &status_now {
            assert_eq!(byte(cdb, 1) & 0x80, 0x80, "status at once without IMMED");
            assert_eq!(r.status.0, 0, "status at once that is not GOOD");
        }
        self.jobs.push(Job {
            job,
            dev,
            cdb: cdb.to_vec(),
            answered: status_now.is_some(),
        });
        if mode & 1 != 0 {
            self.run_job(self.jobs.len() - 1);
        }
        status_now
    }
}

/// A SIMPLE command without data from nexus `n`.
fn plain(n: NexusId, cdb: &[u8]) -> Request<'_> {
    Request {
        nexus: n,
        cdb,
        data_out: &[],
        expected_len: 0,
        attr: TaskAttr::Simple,
    }
}

fn attr(f: u8) -> TaskAttr {
    match (f >> flag::ATTR_SHIFT) & 7 {
        0 | 1 => TaskAttr::Simple,
        2 => TaskAttr::Ordered,
        3 => TaskAttr::HeadOfQueue,
        4 => TaskAttr::Aca,
        x => TaskAttr::Other(x),
    }
}

/// Whether the unit reports a sanitize operation in progress (REQUEST SENSE from a nexus of
/// its own, after its unit attentions).
fn sanitizing(dev: &Device) -> bool {
    let cdb = [0x03, 0, 0, 0, 252, 0];
    for _ in 0..16 {
        let r = dev.execute(&plain(PROBE, &cdb));
        assert_eq!(r.status.0, 0, "REQUEST SENSE failed");
        match sense_fields(&r.data_in) {
            (0x06, ..) => continue,
            (key, asc, ascq) => return (key, asc, ascq) == (0x02, 0x04, 0x1b),
        }
    }
    panic!("unit attentions without end");
}

/// A queued operation: checked, ended as `mode` says, and its response.
fn queued(
    op: IoOp,
    pending: scsi_core::PendingIo,
    mode: u8,
    dev: &Device,
    cdb: &[u8],
    data_len: usize,
) -> Response {
    check_io(&op, dev, cdb, data_len);
    let want = match &op {
        IoOp::Read { len, .. } => Some(*len),
        _ => None,
    };
    let r = finish_io(op, pending, mode);
    if let (Some(len), 0) = (want, r.status.0) {
        assert_eq!(r.data_in.len(), len, "read data is not what the store read");
    }
    r
}

/// End a queued operation: run it, or fail it, or return short data.
fn finish_io(op: IoOp, pending: scsi_core::PendingIo, mode: u8) -> Response {
    match mode % 6 {
        0 | 1 => pending.run_sync(op),
        2 => pending.finish(Err(io::Error::from_raw_os_error(5))),
        3 => pending.finish(Err(io::Error::from_raw_os_error(28))),
        4 => pending.finish(Err(io::Error::from_raw_os_error(22))),
        _ => {
            let short = match op {
                IoOp::Read { len, .. } => vec![0; len / 2],
                IoOp::Write { data, .. } => data,
                IoOp::Flush => Vec::new(),
            };
            pending.finish(Ok(short))
        }
    }
}

/// A queued operation is aligned, inside the store and within the limits.
fn check_io(op: &IoOp, dev: &Device, cdb: &[u8], data_len: usize) {
    let geo = dev.geometry();
    let bs = u64::from(geo.block_size);
    let size = geo.size_bytes();
    let max = u64::from(dev.config().max_transfer_bytes);
    let opcode = byte(cdb, 0);
    let range = |offset: u64, len: u64| {
        assert_eq!(offset % bs, 0, "unaligned offset {offset}");
        assert_eq!(len % bs, 0, "unaligned length {len}");
        assert!(len > 0, "empty operation");
        assert!(
            offset.checked_add(len).is_some_and(|e| e <= size),
            "beyond the store"
        );
        assert!(len <= max, "over the maximum transfer");
    };
    match op {
        IoOp::Read { offset, len } => {
            assert!(is_read(opcode), "read queued for opcode {opcode:#04x}");
            range(*offset, *len as u64);
        }
        IoOp::Write { offset, data, .. } => {
            assert!(
                matches!(opcode, 0x0a | 0x2a | 0xaa | 0x8a),
                "write for {opcode:#04x}"
            );
            assert!(!dev.read_only(), "write queued on a read-only LUN");
            assert!(data.len() <= data_len, "more written than received");
            range(*offset, data.len() as u64);
        }
        IoOp::Flush => assert!(matches!(opcode, 0x35 | 0x91), "flush for {opcode:#04x}"),
    }
}

fn byte(cdb: &[u8], i: usize) -> u8 {
    cdb.get(i).copied().unwrap_or(0)
}

fn be(cdb: &[u8], at: usize, n: usize) -> u64 {
    (at..at + n).fold(0, |acc, i| acc << 8 | u64::from(byte(cdb, i)))
}

fn is_read(opcode: u8) -> bool {
    matches!(opcode, 0x08 | 0x28 | 0xa8 | 0x88)
}

/// The most Data-In a CDB allows: its allocation length, or its transfer length in blocks;
/// zero for commands that transfer no data to the initiator. Bytes past the end of a short CDB
/// count as zero (the device pads the CDB the same way).
pub fn data_in_limit(cdb: &[u8], bs: u32) -> u64 {
    let bs = u64::from(bs);
    match byte(cdb, 0) {
        0x03 | 0x1a => u64::from(byte(cdb, 4)),
        0x12 | 0x1c => be(cdb, 3, 2),
        0x25 => 8,
        0x37 | 0x46 | 0x4a | 0x4d | 0x5a | 0x5e => be(cdb, 7, 2),
        0x3c => be(cdb, 6, 3),
        0x9e => be(cdb, 10, 4),
        0xa0 | 0xa3 | 0xb7 => be(cdb, 6, 4),
        0x08 => match byte(cdb, 4) {
            0 => 256 * bs,
            n => u64::from(n) * bs,
        },
        0x28 => be(cdb, 7, 2) * bs,
        0xa8 => be(cdb, 6, 4) * bs,
        0x88 => be(cdb, 10, 4) * bs,
        _ => 0,
    }
}

/// Status, sense and Data-In of one response.
fn check_response(cdb: &[u8], r: &Response, limit: u64, mapped: bool) {
    let opcode = byte(cdb, 0);
    match r.status.0 {
        0x00 | 0x18 => assert!(r.sense.is_empty(), "sense with status {:#04x}", r.status.0),
        0x02 => {
            check_sense(&r.sense, cdb.len());
            assert!(r.data_in.is_empty(), "data with CHECK CONDITION");
        }
        s => panic!("unexpected status {s:#04x} for opcode {opcode:#04x}"),
    }
    assert!(
        r.data_in.len() as u64 <= limit,
        "{} bytes of Data-In for opcode {opcode:#04x}, allowed {limit}",
        r.data_in.len()
    );
    if !mapped {
        assert_eq!(r.data_out_wanted, 0, "unmapped LUN wants data");
        if !matches!(opcode, 0x12 | 0x03 | 0xa0) {
            assert_eq!(r.status.0, 0x02, "unmapped LUN ran opcode {opcode:#04x}");
            assert_eq!(
                sense_asc(&r.sense),
                0x25,
                "unmapped LUN without LUN NOT SUPPORTED"
            );
        }
    }
    if opcode == 0x03 && r.status.0 == 0 && !r.data_in.is_empty() {
        let code = r.data_in[0] & 0x7f;
        assert!(
            (0x70..=0x73).contains(&code),
            "REQUEST SENSE response code {code:#04x}"
        );
    }
}

fn sense_asc(s: &[u8]) -> u8 {
    sense_fields(s).1
}

/// Sense key, ASC and ASCQ of fixed or descriptor sense data.
fn sense_fields(s: &[u8]) -> (u8, u8, u8) {
    match s.first().map(|b| b & 0x7f) {
        Some(0x70 | 0x71) => (byte(s, 2) & 0x0f, byte(s, 12), byte(s, 13)),
        _ => (byte(s, 1) & 0x0f, byte(s, 2), byte(s, 3)),
    }
}

/// Fixed or descriptor sense data with consistent lengths, a sense key other than NO SENSE
/// and any CDB field pointer inside the (padded) CDB.
pub fn check_sense(s: &[u8], cdb_len: usize) {
    assert!(s.len() >= 8, "sense of {} bytes", s.len());
    assert_eq!(s.len(), 8 + usize::from(s[7]), "ADDITIONAL SENSE LENGTH");
    let cdb_max = cdb_len.max(16) as u64;
    let (key, sks) = match s[0] & 0x7f {
        0x70 | 0x71 => {
            assert!(s.len() >= 18, "fixed sense of {} bytes", s.len());
            (s[2] & 0x0f, Some(&s[15..18]))
        }
        0x72 | 0x73 => {
            assert_eq!(s[0] & 0x80, 0, "descriptor sense with bit 7 set");
            let mut sks = None;
            let mut i = 8;
            while i < s.len() {
                assert!(i + 2 <= s.len(), "truncated sense descriptor");
                let end = i + 2 + usize::from(s[i + 1]);
                assert!(end <= s.len(), "sense descriptor beyond the sense data");
                if s[i] == 0x02 {
                    assert!(end - i >= 7, "short sense key specific descriptor");
                    sks = Some(&s[i + 4..i + 7]);
                }
                i = end;
            }
            (s[1] & 0x0f, sks)
        }
        c => panic!("sense response code {c:#04x}"),
    };
    assert_ne!(key, 0, "CHECK CONDITION with NO SENSE");
    if let Some(f) = sks {
        let sksv = f[0] & 0x80 != 0;
        if sksv && key == 0x05 && f[0] & 0x40 != 0 {
            let ptr = be(f, 1, 2);
            assert!(ptr < cdb_max, "field pointer {ptr} outside the CDB");
        }
    }
}
