//! Running block operations through a handler's callouts.
//!
//! Each device has one worker thread, the only thread that calls its read, write, flush,
//! unmap and writesame callouts, so there are never two callouts at once on one device (qcow
//! and zbc have no locks of their own). Both execution models end in [`finish`]:
//!
//! - synchronous handlers (nr_threads > 0, qcow): the callout's return value is final;
//! - asynchronous handlers (nr_threads == 0, rbd): a callout that returns OK has queued the
//!   operation, which completes later through `tcmur_cmd_complete` ([`complete_from_handler`])
//!   on a thread of the handler's, possibly before the callout has returned; any other return
//!   value is final.
//!
//! A finished operation goes back to whoever asked: a synchronous caller waiting on a
//! channel, or an event loop's queue (`queue.rs`) that is woken through its eventfd. A FUA
//! write is a write followed by a flush (when the handler caches writes).
//!
//! Every command is a boxed [`Cmd`] whose first field is the `struct tcmur_cmd` handlers
//! receive, so the pointer a handler passes back to `tcmur_cmd_complete` is the box. The
//! iovec handed to a callout is a fresh copy for each call (handlers consume it).

use std::ffi::{c_int, c_void};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use backstore::IoDone;

use crate::abi::{sts, CmdPtr, Iovec, TcmulibCmd, TcmurCmd, SENSE_BUFFERSIZE};
use crate::device::HostDevice;
use crate::loader::Handler;
use crate::queue::Sink;
use crate::status;

/// Marks a live [`Cmd`].
const CMD_MAGIC: u64 = 0x7463_6d75_2d63_6d64;

/// One block operation, in bytes.
#[derive(Debug)]
pub(crate) enum Op {
    Read {
        offset: u64,
        len: usize,
    },
    Write {
        offset: u64,
        data: Vec<u8>,
        fua: bool,
    },
    Flush,
    Unmap {
        offset: u64,
        len: u64,
    },
    WriteSame {
        offset: u64,
        len: u64,
        block: Vec<u8>,
    },
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Read { .. } => "read",
            Op::Write { .. } => "write",
            Op::Flush => "flush",
            Op::Unmap { .. } => "unmap",
            Op::WriteSame { .. } => "write same",
        }
    }
}

/// Where the result of an operation goes.
pub(crate) enum Reply {
    /// A synchronous caller waiting for the result.
    Wait(SyncSender<io::Result<Vec<u8>>>),
    /// An event loop's queue.
    Queue { sink: Arc<Sink>, tag: u64 },
}

/// An operation and its reply.
pub(crate) struct Job {
    pub op: Op,
    pub reply: Reply,
}

/// A message to a device's worker.
pub(crate) enum Msg {
    /// Start these operations, in order.
    Jobs(Vec<Job>),
    /// Continue a command after its handler completed a stage (the flush of a FUA write).
    Resume(CmdBox),
    /// Run one CDB through a `handle_cmd` handler (`passthrough.rs`).
    Cdb(crate::passthrough::CdbJob),
    /// Finish: nothing more will be started.
    Stop,
}

/// A command moving between threads.
pub(crate) struct CmdBox(Box<Cmd>);

// SAFETY: a command is owned by exactly one thread at a time: the worker while a callout
// runs, then either the worker (final status) or the handler's completion thread; the raw
// pointers inside point into the box itself.
unsafe impl Send for CmdBox {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Main,
    FuaFlush,
}

/// A command as handlers see it (`tcmur_cmd` first), with its buffers and its reply.
#[repr(C)]
pub(crate) struct Cmd {
    runner: TcmurCmd,
    lib: TcmulibCmd,
    magic: u64,
    cdb: [u8; 16],
    iov: Iovec,
    stage: Stage,
    op: Op,
    /// The buffer of a read.
    buf: Vec<u8>,
    reply: Option<Reply>,
    dev: Arc<HostDevice>,
    handler: Arc<Handler>,
}

impl Drop for Cmd {
    fn drop(&mut self) {
        self.magic = 0;
    }
}

impl Cmd {
    fn new(job: Job, dev: &Arc<HostDevice>, handler: &Arc<Handler>) -> Box<Cmd> {
        let buf = match &job.op {
            Op::Read { len, .. } => vec![0u8; *len],
            _ => Vec::new(),
        };
        Box::new(Cmd {
            runner: TcmurCmd::empty(),
            lib: TcmulibCmd::empty(),
            magic: CMD_MAGIC,
            cdb: [0; 16],
            iov: Iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            stage: Stage::Main,
            op: job.op,
            buf,
            reply: Some(job.reply),
            dev: dev.clone(),
            handler: handler.clone(),
        })
    }

    /// Points the command's internal pointers at itself, writes a matching 16-byte CDB and
    /// makes a fresh iovec over the stage's buffer.
    fn wire(&mut self) {
        let bs = u64::from(self.dev.block_size.load(Ordering::Acquire).max(1));
        let (opcode, offset, len, base): (u8, u64, u64, *mut u8) = match (&mut self.op, self.stage)
        {
            (_, Stage::FuaFlush) | (Op::Flush, _) => (0x91, 0, 0, std::ptr::null_mut()),
            (Op::Read { offset, len }, _) => (0x88, *offset, *len as u64, self.buf.as_mut_ptr()),
            (Op::Write { offset, data, .. }, _) => {
                (0x8A, *offset, data.len() as u64, data.as_mut_ptr())
            }
            (Op::Unmap { offset, len }, _) => (0x42, *offset, *len, std::ptr::null_mut()),
            (Op::WriteSame { offset, len, block }, _) => (0x93, *offset, *len, block.as_mut_ptr()),
        };
        self.cdb = [0; 16];
        self.cdb[0] = opcode;
        if opcode != 0x42 {
            self.cdb[2..10].copy_from_slice(&(offset / bs).to_be_bytes());
            let blocks = u32::try_from(len / bs).unwrap_or(u32::MAX);
            self.cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
        }
        let iov_len = match &self.op {
            Op::Read { len, .. } => *len,
            Op::Write { data, .. } => data.len(),
            Op::WriteSame { block, .. } => block.len(),
            _ => 0,
        };
        self.iov = Iovec {
            iov_base: base.cast(),
            iov_len: if base.is_null() { 0 } else { iov_len },
        };
        self.lib.cdb = self.cdb.as_mut_ptr();
        self.lib.iovec = &mut self.iov;
        self.lib.iov_cnt = usize::from(!base.is_null());
        self.lib.sense_buf = [0; SENSE_BUFFERSIZE];
        self.runner.lib_cmd = &mut self.lib;
    }

    /// The flush that must follow this stage before the command is done, if any.
    fn needs_fua_flush(&self) -> bool {
        matches!(self.op, Op::Write { fua: true, .. })
            && self.stage == Stage::Main
            && self.handler.table().flush.is_some()
            && self.dev.write_cache.load(Ordering::Acquire)
    }

    /// The data handed back with a successful result.
    fn take_data(&mut self) -> Vec<u8> {
        match &mut self.op {
            Op::Read { .. } => std::mem::take(&mut self.buf),
            Op::Write { data, .. } => std::mem::take(data),
            _ => Vec::new(),
        }
    }
}

/// What calling a stage did.
enum Called {
    /// The handler's callout ran and returned this status.
    Handler(c_int),
    /// There is no callout for it; this is the final status.
    Host(c_int),
}

/// Calls the callout of the command's current stage.
///
/// # Safety
/// `raw` must be a command from `Box::into_raw`, owned by the caller. When the handler is
/// asynchronous and the result is `Called::Handler(OK)`, ownership has passed to the handler's
/// completion and the caller must not touch `raw` again.
unsafe fn call(raw: *mut Cmd) -> Called {
    // SAFETY: owned by the caller until the callout runs; the borrow ends before it.
    let cmd = unsafe { &mut *raw };
    cmd.wire();
    let t = cmd.handler.table();
    let dev = cmd.dev.as_ptr();
    let iov: *mut Iovec = &mut cmd.iov;
    let cnt = cmd.lib.iov_cnt;
    let c: CmdPtr = raw.cast::<TcmurCmd>();
    let off = |o: u64| libc::off_t::try_from(o).unwrap_or(libc::off_t::MAX);
    // Copies of the callout and its arguments: the command may be freed by a completion on
    // another thread as soon as an asynchronous callout starts.
    // SAFETY (all calls below): the callouts of a registered 1.5.4 handler with the
    // arguments the daemon passes: the host's device, a command whose tcmur_cmd, lib_cmd,
    // CDB, iovec and buffers stay valid until the command completes, byte offsets in range.
    match (cmd.stage, &cmd.op) {
        (Stage::FuaFlush, _) | (_, Op::Flush) => match t.flush {
            Some(f) => Called::Handler(unsafe { f(dev, c) }),
            None => Called::Host(sts::OK),
        },
        (_, Op::Read { offset, len }) => match t.read {
            Some(f) => Called::Handler(unsafe { f(dev, c, iov, cnt, *len, off(*offset)) }),
            None => Called::Host(sts::INVALID_CMD),
        },
        (_, Op::Write { offset, data, .. }) => match t.write {
            Some(f) => Called::Handler(unsafe { f(dev, c, iov, cnt, data.len(), off(*offset)) }),
            None => Called::Host(sts::INVALID_CMD),
        },
        (_, Op::Unmap { offset, len }) => match t.unmap {
            Some(f) => Called::Handler(unsafe { f(dev, c, *offset, *len) }),
            None => Called::Host(sts::INVALID_CMD),
        },
        (_, Op::WriteSame { offset, len, .. }) => match t.writesame {
            Some(f) => Called::Handler(unsafe { f(dev, c, *offset, *len, iov, cnt) }),
            None => Called::Host(sts::INVALID_CMD),
        },
    }
}

/// Runs a command's stages on the worker until it is finished or handed to the handler.
fn start(cmd: Box<Cmd>) {
    let synchronous = cmd.handler.synchronous();
    let dev = cmd.dev.clone();
    let raw = Box::into_raw(cmd);
    loop {
        if !synchronous {
            dev.in_flight.fetch_add(1, Ordering::AcqRel);
        }
        // SAFETY: `raw` came from Box::into_raw and is owned here.
        let called = unsafe { call(raw) };
        let status = match called {
            Called::Handler(sts::OK) if !synchronous => return, // the completion owns it now
            Called::Handler(s) | Called::Host(s) => s,
        };
        if !synchronous {
            dev.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        // SAFETY: the status is final, so nothing else refers to the command.
        let cmd = unsafe { &mut *raw };
        if status == sts::OK && cmd.needs_fua_flush() {
            cmd.stage = Stage::FuaFlush;
            continue;
        }
        // SAFETY: as above; the box is reclaimed exactly once.
        finish(unsafe { Box::from_raw(raw) }, status);
        return;
    }
}

/// A stage completed through `tcmur_cmd_complete`: continue (FUA flush) or finish.
fn advance(mut cmd: Box<Cmd>, status: c_int) {
    if status == sts::OK && cmd.needs_fua_flush() {
        cmd.stage = Stage::FuaFlush;
        let sender = cmd
            .dev
            .worker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let back = match sender {
            Some(tx) => match tx.send(Msg::Resume(CmdBox(cmd))) {
                Ok(()) => return,
                Err(e) => e.0,
            },
            None => Msg::Resume(CmdBox(cmd)),
        };
        if let Msg::Resume(CmdBox(cmd)) = back {
            finish(cmd, sts::HW_ERR);
        }
        return;
    }
    finish(cmd, status);
}

/// Hands the result to whoever asked.
fn finish(mut cmd: Box<Cmd>, status: c_int) {
    let result = if status == sts::OK {
        Ok(cmd.take_data())
    } else {
        log::warn!(
            "tcmu {}: {} failed in {}: status {} ({})",
            cmd.dev.name(),
            cmd.op.name(),
            cmd.handler.file_name(),
            status,
            status::name(status)
        );
        Err(status::to_io_error(status))
    };
    match cmd.reply.take() {
        Some(Reply::Wait(tx)) => {
            let _ = tx.send(result);
        }
        Some(Reply::Queue { sink, tag }) => sink.push(IoDone { tag, result }),
        None => {}
    }
}

/// `tcmur_cmd_complete` of an asynchronous handler.
pub(crate) fn complete_from_handler(dev: &HostDevice, ptr: *mut c_void, status: c_int) {
    if dev.params.synchronous {
        log::warn!(
            "tcmu {}: a synchronous handler called tcmur_cmd_complete; ignored",
            dev.name()
        );
        return;
    }
    let raw = ptr.cast::<Cmd>();
    // SAFETY: handlers pass back the tcmur_cmd pointer they were given, which is the start
    // of a live boxed Cmd (repr(C), tcmur_cmd first); the magic guards against anything else.
    if raw.is_null() || unsafe { std::ptr::addr_of!((*raw).magic).read() } != CMD_MAGIC {
        log::error!(
            "tcmu {}: completion of an unknown command; ignored",
            dev.name()
        );
        return;
    }
    // SAFETY: a live command handed to the handler by `start`; reclaimed exactly once here.
    let cmd = unsafe { Box::from_raw(raw) };
    dev.in_flight.fetch_sub(1, Ordering::AcqRel);
    advance(cmd, status);
}

/// The worker of one device: starts every operation it receives, in order, until `Stop`.
pub(crate) fn worker(rx: Receiver<Msg>, dev: Arc<HostDevice>, handler: Arc<Handler>) {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Jobs(jobs) => {
                for job in jobs {
                    start(Cmd::new(job, &dev, &handler));
                }
            }
            Msg::Resume(CmdBox(cmd)) => start(cmd),
            Msg::Cdb(job) => crate::passthrough::run(job, &dev, &handler),
            Msg::Stop => break,
        }
    }
}
