//! Asynchronous store I/O of one event loop: one [`IoQueue`] per device the loop has used
//! (opened lazily), whose completion descriptor the loop watches ([`Watch`]: registered in the
//! epoll loop's poll, or a multishot poll request in the io_uring loop's ring); the commands
//! waiting on them; a backlog for queues that were full.
//!
//! A tag names a command by (connection id, task id). A completion whose connection is gone is
//! dropped; the buffers stay owned by the queue until reaped, so closing a connection never
//! frees memory the kernel still writes into.
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use iscsi_proto::TaskId;
use mio::unix::SourceFd;
use mio::{Interest, Registry as MioRegistry, Token};
use scsi_core::{Device, IoDone, IoOp, IoQueue, PendingIo, Response};

/// Tokens of queues count down from here (the waker is `usize::MAX`).
const FIRST_QUEUE_TOKEN: usize = usize::MAX - 1;

/// Where an event loop watches the completion descriptors of its I/O queues.
pub trait Watch {
    /// Report readiness of `fd`, the completion descriptor of queue `idx`, from now on.
    fn watch(&mut self, fd: RawFd, idx: usize) -> io::Result<()>;
    /// Stop watching `fd` (the queue is about to be dropped).
    fn unwatch(&mut self, fd: RawFd, idx: usize);
}

/// The epoll loop's poll: queue `idx` reports as token `FIRST_QUEUE_TOKEN - idx`.
pub struct MioWatch<'a>(pub &'a MioRegistry);

impl Watch for MioWatch<'_> {
    fn watch(&mut self, fd: RawFd, idx: usize) -> io::Result<()> {
        let token = Token(FIRST_QUEUE_TOKEN - idx);
        self.0
            .register(&mut SourceFd(&fd), token, Interest::READABLE)
    }

    fn unwatch(&mut self, fd: RawFd, _idx: usize) {
        let _ = self.0.deregister(&mut SourceFd(&fd));
    }
}

/// A command a connection started and wants queued.
pub struct QueuedIo {
    pub task: TaskId,
    pub op: IoOp,
    pub pending: PendingIo,
}

/// A finished command to hand back to its connection.
pub struct Finished {
    pub conn: u64,
    pub task: TaskId,
    pub response: Response,
}

struct Queue {
    /// Keeps the device (and so the store) alive while the queue exists.
    _dev: Arc<Device>,
    q: Box<dyn IoQueue>,
    fd: RawFd,
    backlog: VecDeque<(u64, IoOp)>,
    dirty: bool,
}

struct Waiting {
    pending: PendingIo,
}

/// The asynchronous I/O state of one event loop.
#[derive(Default)]
pub struct AsyncIo {
    queues: Vec<Queue>,
    /// Device (by address) -> queue index, or `None` when no queue could be opened.
    by_dev: HashMap<usize, Option<usize>>,
    waiting: HashMap<u64, Waiting>,
}

fn tag_of(conn: u64, task: TaskId) -> u64 {
    (conn << 32) | u64::from(task.0)
}

fn split_tag(tag: u64) -> (u64, TaskId) {
    (tag >> 32, TaskId(tag as u32))
}

impl AsyncIo {
    /// The queue index of a poll token, if it is one of ours.
    pub fn queue_of(&self, token: Token) -> Option<usize> {
        let idx = FIRST_QUEUE_TOKEN.checked_sub(token.0)?;
        (idx < self.queues.len()).then_some(idx)
    }

    /// The completion descriptor of queue `idx`.
    pub fn completion_fd(&self, idx: usize) -> Option<RawFd> {
        self.queues.get(idx).map(|q| q.fd)
    }

    /// The queue for `dev`, opening and registering it on first use.
    fn queue_for(&mut self, dev: &Arc<Device>, poll: &mut dyn Watch) -> Option<usize> {
        let key = Arc::as_ptr(dev) as usize;
        if let Some(found) = self.by_dev.get(&key) {
            return *found;
        }
        let opened = match dev.store().open_queue() {
            Some(Ok(q)) => Some(q),
            Some(Err(e)) => {
                log::warn!(
                    "{}: cannot open an I/O queue ({e}); using synchronous I/O",
                    dev.store().describe()
                );
                None
            }
            None => None,
        };
        let idx = opened.and_then(|q| {
            let idx = self.queues.len();
            let fd = q.completion_fd();
            if let Err(e) = poll.watch(fd, idx) {
                log::warn!("cannot poll an I/O queue ({e}); using synchronous I/O");
                return None;
            }
            log::debug!("opened an I/O queue on {}", dev.store().describe());
            self.queues.push(Queue {
                _dev: dev.clone(),
                q,
                fd,
                backlog: VecDeque::new(),
                dirty: false,
            });
            Some(idx)
        });
        self.by_dev.insert(key, idx);
        idx
    }

    /// Queues a command of connection `conn`; returns its response at once when it had to
    /// run synchronously.
    pub fn submit(&mut self, conn: u64, io: QueuedIo, poll: &mut dyn Watch) -> Option<Finished> {
        let Some(qi) = self.queue_for(io.pending.device(), poll) else {
            let response = io.pending.run_sync(io.op);
            return Some(Finished {
                conn,
                task: io.task,
                response,
            });
        };
        let tag = tag_of(conn, io.task);
        self.waiting.insert(
            tag,
            Waiting {
                pending: io.pending,
            },
        );
        let queue = &mut self.queues[qi];
        if queue.backlog.is_empty() {
            match queue.q.submit(tag, io.op) {
                Ok(()) => queue.dirty = true,
                Err(back) => queue.backlog.push_back(back),
            }
        } else {
            queue.backlog.push_back((tag, io.op));
        }
        None
    }

    /// Starts everything submitted since the last commit, one system call per queue; returns
    /// the number of system calls.
    pub fn commit(&mut self) -> u64 {
        let mut calls = 0;
        for queue in self.queues.iter_mut().filter(|q| q.dirty) {
            calls += 1;
            queue.dirty = false;
            if let Err(e) = queue.q.commit() {
                log::error!("I/O queue submit failed: {e}");
                queue.dirty = true;
            }
        }
        calls
    }

    /// Reaps queue `qi`, moves its backlog in, and returns the finished commands.
    pub fn reap(&mut self, qi: usize, out: &mut Vec<Finished>) {
        let Some(queue) = self.queues.get_mut(qi) else {
            return;
        };
        let mut done: Vec<IoDone> = Vec::new();
        queue.q.reap(&mut done);
        for d in done {
            let Some(w) = self.waiting.remove(&d.tag) else {
                continue;
            };
            let (conn, task) = split_tag(d.tag);
            out.push(Finished {
                conn,
                task,
                response: w.pending.finish(d.result),
            });
        }
        // Refill from the backlog until the queue is full again; the operations in flight
        // will signal again, so nothing waits here.
        while let Some((tag, op)) = queue.backlog.pop_front() {
            match queue.q.submit(tag, op) {
                Ok(()) => queue.dirty = true,
                Err(back) => {
                    queue.backlog.push_front(back);
                    break;
                }
            }
        }
    }

    /// Waits (bounded) for every operation in flight, then unregisters and drops the queues.
    pub fn shutdown(&mut self, poll: &mut dyn Watch, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        self.commit();
        let mut sink = Vec::new();
        while !self.waiting.is_empty() && std::time::Instant::now() < deadline {
            for qi in 0..self.queues.len() {
                self.reap(qi, &mut sink);
            }
            self.commit();
            sink.clear();
            if !self.waiting.is_empty() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        if !self.waiting.is_empty() {
            log::error!(
                "{} I/O operations still in flight at shutdown",
                self.waiting.len()
            );
        }
        for (idx, queue) in self.queues.iter().enumerate() {
            poll.unwatch(queue.fd, idx);
        }
        self.queues.clear();
        self.by_dev.clear();
        self.waiting.clear();
    }
}
