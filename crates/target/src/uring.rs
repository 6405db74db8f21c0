//! The io_uring of one event loop: setup (with fallbacks for older kernels), the requests the
//! loop makes (socket receives and sends, multishot polls on eventfds, cancellations), one
//! `io_uring_enter` per loop iteration, and completion reaping.
//!
//! Every request carries an [`Op`] in its user data, naming what it is for. Requests that
//! point into memory (receives and sends) are pushed through `unsafe` functions whose callers
//! guarantee that the memory stays allocated and unmoved until the request's completion has
//! been reaped; everything else references no memory.
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use crate::aio::Watch;
use crate::stats::{Counter, LoopStats};

/// Submission queue entries per ring.
const SQ_ENTRIES: u32 = 256;
/// Completion queue entries per ring (completions beyond this are kept by the kernel).
const CQ_ENTRIES: u32 = 4096;
/// `IORING_RECVSEND_POLL_FIRST`: arm the poll before trying to receive.
const RECV_POLL_FIRST: u16 = 1;

const KIND_SHIFT: u32 = 56;
const ID_MASK: u64 = (1 << KIND_SHIFT) - 1;
/// The largest connection id a request can name.
pub const MAX_CONN_ID: u64 = ID_MASK;

/// What a request is for (its user data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A receive into connection `id`'s receive buffer.
    Recv(u64),
    /// A send of connection `id`'s output.
    Send(u64),
    /// The multishot poll on the loop's wake-up eventfd.
    Wake,
    /// The multishot poll on the completion eventfd of store I/O queue `idx`.
    Aio(usize),
    /// A cancellation or poll removal (its own completion carries nothing).
    Cancel,
}

impl Op {
    fn user_data(self) -> u64 {
        let (kind, id) = match self {
            Op::Recv(id) => (1, id),
            Op::Send(id) => (2, id),
            Op::Wake => (3, 0),
            Op::Aio(idx) => (4, idx as u64),
            Op::Cancel => (5, 0),
        };
        (kind << KIND_SHIFT) | (id & ID_MASK)
    }

    fn from_user_data(ud: u64) -> Option<Op> {
        let id = ud & ID_MASK;
        Some(match ud >> KIND_SHIFT {
            1 => Op::Recv(id),
            2 => Op::Send(id),
            3 => Op::Wake,
            4 => Op::Aio(id as usize),
            5 => Op::Cancel,
            _ => return None,
        })
    }
}

/// One reaped completion.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    pub op: Op,
    /// The result: a byte count, or a negated errno.
    pub res: i32,
    /// True when a multishot request stays armed (more completions will come).
    pub more: bool,
}

/// How [`Ring::enter`] waits.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// Submit without sleeping (busy polling, held replies).
    Poll,
    /// Sleep until a completion arrives, at most this long.
    Block(Option<Duration>),
}

/// The ring of one event loop. Owned and used by that loop's thread only.
pub struct Ring {
    ring: IoUring,
    stats: Arc<LoopStats>,
    /// The kernel flags pending deferred completions in the submission ring
    /// (`IORING_SETUP_TASKRUN_FLAG`): a poll with nothing to submit and nothing flagged needs
    /// no system call.
    taskrun_flag: bool,
}

/// Logs, once per process, that io_uring cannot be used and the epoll engine runs instead.
pub fn warn_unavailable(e: &io::Error) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        log::warn!("io_uring network engine unavailable ({e}); using epoll");
    }
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, format!("kernel lacks {what}"))
}

/// The ring with the cheapest completion signalling this kernel offers: deferred task work
/// (6.1), cooperative task work (5.19), or plain. Returns the ring and whether the kernel flags
/// pending task work.
fn build() -> io::Result<(IoUring, bool)> {
    let mut b = IoUring::builder();
    b.setup_cqsize(CQ_ENTRIES)
        .setup_submit_all()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_taskrun_flag();
    if let Ok(r) = b.build(SQ_ENTRIES) {
        return Ok((r, true));
    }
    let mut b = IoUring::builder();
    b.setup_cqsize(CQ_ENTRIES)
        .setup_submit_all()
        .setup_coop_taskrun()
        .setup_taskrun_flag();
    if let Ok(r) = b.build(SQ_ENTRIES) {
        return Ok((r, true));
    }
    let mut b = IoUring::builder();
    b.setup_cqsize(CQ_ENTRIES);
    Ok((b.build(SQ_ENTRIES)?, false))
}

impl Ring {
    /// A ring for the calling thread, which must be the only one to use it. Fails when
    /// io_uring is unavailable (old kernel, `kernel.io_uring_disabled`, seccomp) or lacks what
    /// the loop needs: wait timeouts (`EXT_ARG`, 5.11), internal polling of sockets
    /// (`FAST_POLL`), no dropped completions (`NODROP`), and the socket opcodes.
    pub fn new(stats: Arc<LoopStats>) -> io::Result<Ring> {
        let (ring, taskrun_flag) = build()?;
        let p = ring.params();
        if !p.is_feature_ext_arg() {
            return Err(unsupported("IORING_FEAT_EXT_ARG"));
        }
        if !p.is_feature_fast_poll() {
            return Err(unsupported("IORING_FEAT_FAST_POLL"));
        }
        if !p.is_feature_nodrop() {
            return Err(unsupported("IORING_FEAT_NODROP"));
        }
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for (code, name) in [
            (opcode::Recv::CODE, "RECV"),
            (opcode::Send::CODE, "SEND"),
            (opcode::SendMsg::CODE, "SENDMSG"),
            (opcode::PollAdd::CODE, "POLL_ADD"),
            (opcode::PollRemove::CODE, "POLL_REMOVE"),
            (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        ] {
            if !probe.is_supported(code) {
                return Err(unsupported(name));
            }
        }
        Ok(Ring {
            ring,
            stats,
            taskrun_flag,
        })
    }

    /// Queue one request, first submitting what is queued when the submission ring is full.
    ///
    /// # Safety
    /// Every buffer `entry` points to must stay allocated, unmoved and otherwise unaccessed
    /// (for a receive) or unmodified (for a send) until its completion has been reaped.
    unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: forwarded from this function's contract.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            // The submission ring is full: hand it to the kernel. Should that fail (EBUSY: the
            // completion ring overflowed), the caller retries in a later iteration, after
            // the completions have been reaped.
            self.stats.add(Counter::Poll, 1);
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Receive into `buf[..len]` from socket `fd` for connection `conn`. `poll_first` skips
    /// the first attempt (the socket was just drained).
    ///
    /// # Safety
    /// `buf[..len]` must stay allocated, unmoved and unaccessed by anything else until the
    /// completion of this request has been reaped.
    pub unsafe fn recv(
        &mut self,
        fd: RawFd,
        buf: *mut u8,
        len: usize,
        conn: u64,
        poll_first: bool,
    ) -> io::Result<()> {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        let entry = opcode::Recv::new(types::Fd(fd), buf, len)
            .ioprio(if poll_first { RECV_POLL_FIRST } else { 0 })
            .build()
            .user_data(Op::Recv(conn).user_data());
        self.stats.add(Counter::Read, 1);
        // SAFETY: forwarded from this function's contract.
        unsafe { self.push(&entry) }
    }

    /// Send the bytes `msg` gathers (`msg.msg_iov[..msg.msg_iovlen]`) on socket `fd` for
    /// connection `conn`; a single entry goes out as a plain send.
    ///
    /// # Safety
    /// `msg`, the iovec array it points to and every buffer those entries describe must stay
    /// allocated, unmoved and unmodified until the completion of this request has been reaped.
    pub unsafe fn send(
        &mut self,
        fd: RawFd,
        msg: *const libc::msghdr,
        conn: u64,
    ) -> io::Result<()> {
        // SAFETY: the caller guarantees `msg` and its iovec array are valid.
        let (iov, n) = unsafe { ((*msg).msg_iov, (*msg).msg_iovlen) };
        let entry = if n == 1 {
            // SAFETY: as above; the one entry is valid.
            let one = unsafe { *iov };
            let len = u32::try_from(one.iov_len).unwrap_or(u32::MAX);
            opcode::Send::new(types::Fd(fd), one.iov_base as *const u8, len)
                .flags(libc::MSG_NOSIGNAL)
                .build()
        } else {
            opcode::SendMsg::new(types::Fd(fd), msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        };
        let entry = entry.user_data(Op::Send(conn).user_data());
        self.stats.add(Counter::Write, 1);
        // SAFETY: forwarded from this function's contract.
        unsafe { self.push(&entry) }
    }

    /// Watch `fd` for readability with a multishot poll completing as `op`.
    pub fn poll(&mut self, fd: RawFd, op: Op) -> io::Result<()> {
        let entry = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(op.user_data());
        // SAFETY: a poll request points to no memory.
        unsafe { self.push(&entry) }
    }

    /// Ask the kernel to cancel the request made for `op` (its completion still comes).
    pub fn cancel(&mut self, op: Op) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(op.user_data())
            .build()
            .user_data(Op::Cancel.user_data());
        // SAFETY: a cancellation points to no memory.
        unsafe { self.push(&entry) }
    }

    /// Submit what is queued and, with [`Wait::Block`], sleep until something completes.
    /// Interruptions and timeouts are not errors.
    pub fn enter(&mut self, wait: Wait) -> io::Result<()> {
        let r = match wait {
            Wait::Poll => {
                let mut sq = self.ring.submission();
                sq.sync();
                let idle = sq.is_empty() && !sq.cq_overflow() && self.taskrun_flag && !sq.taskrun();
                drop(sq);
                if idle {
                    return Ok(());
                }
                self.stats.add(Counter::Poll, 1);
                self.ring.submit()
            }
            Wait::Block(timeout) => {
                self.stats.add(Counter::Poll, 1);
                match timeout.map(types::Timespec::from) {
                    Some(ts) => {
                        let args = types::SubmitArgs::new().timespec(&ts);
                        self.ring.submitter().submit_with_args(1, &args)
                    }
                    None => self.ring.submit_and_wait(1),
                }
            }
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME | libc::EINTR | libc::EAGAIN | libc::EBUSY) => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// Move every completion waiting in the ring to `out`.
    pub fn reap(&mut self, out: &mut Vec<Completion>) {
        for cqe in self.ring.completion() {
            if let Some(op) = Op::from_user_data(cqe.user_data()) {
                out.push(Completion {
                    op,
                    res: cqe.result(),
                    more: cqueue::more(cqe.flags()),
                });
            }
        }
    }
}

/// Store I/O queues report through multishot polls in the ring.
impl Watch for Ring {
    fn watch(&mut self, fd: RawFd, idx: usize) -> io::Result<()> {
        self.poll(fd, Op::Aio(idx))
    }

    fn unwatch(&mut self, _fd: RawFd, idx: usize) {
        let entry = opcode::PollRemove::new(Op::Aio(idx).user_data())
            .build()
            .user_data(Op::Cancel.user_data());
        // SAFETY: a poll removal points to no memory.
        let _ = unsafe { self.push(&entry) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        for op in [
            Op::Recv(1),
            Op::Recv(MAX_CONN_ID),
            Op::Send(42),
            Op::Wake,
            Op::Aio(3),
            Op::Cancel,
        ] {
            assert_eq!(Op::from_user_data(op.user_data()), Some(op));
        }
        assert_eq!(Op::from_user_data(0), None);
        assert_eq!(Op::from_user_data(9 << KIND_SHIFT), None);
    }
}
