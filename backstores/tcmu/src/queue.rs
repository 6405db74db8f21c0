//! The [`IoQueue`] an event loop opens on a tcmu store: operations go to the device's worker
//! (`exec.rs`) in one message per commit; results come back into a [`Sink`] from the worker or
//! from a handler's completion thread, and an eventfd wakes the loop. The loop never calls a
//! handler itself, so a slow image or cluster never blocks it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backstore::{IoDone, IoOp, IoQueue};

use crate::exec::{Job, Msg, Op, Reply};

/// How long dropping a queue waits for its operations in flight.
const DROP_WAIT: Duration = Duration::from_secs(30);

/// Finished operations of one queue and the eventfd that announces them.
pub(crate) struct Sink {
    done: Mutex<Vec<IoDone>>,
    efd: OwnedFd,
}

impl Sink {
    /// A sink with a fresh non-blocking eventfd.
    pub fn new() -> io::Result<Sink> {
        // SAFETY: eventfd has no memory preconditions; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor owned by nobody else.
        let efd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Sink {
            done: Mutex::new(Vec::new()),
            efd,
        })
    }

    /// Adds a result; signals the eventfd when the list was empty (the reader clears the
    /// eventfd before draining, so no result is left unannounced).
    pub fn push(&self, d: IoDone) {
        let first = {
            let mut v = self.done.lock().unwrap_or_else(|e| e.into_inner());
            v.push(d);
            v.len() == 1
        };
        if first {
            let one = 1u64.to_ne_bytes();
            // SAFETY: writing 8 bytes from a local buffer to our eventfd.
            let _ = unsafe { libc::write(self.efd.as_raw_fd(), one.as_ptr().cast(), 8) };
        }
    }

    /// Clears the eventfd, then moves every result into `out`; returns how many.
    fn drain(&self, out: &mut Vec<IoDone>) -> usize {
        let mut counter = [0u8; 8];
        // SAFETY: reading 8 bytes into a local buffer from our non-blocking eventfd.
        let _ = unsafe { libc::read(self.efd.as_raw_fd(), counter.as_mut_ptr().cast(), 8) };
        let mut v = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let n = v.len();
        out.append(&mut v);
        n
    }
}

/// One event loop's queue on a tcmu store.
pub struct TcmuQueue {
    tx: Sender<Msg>,
    sink: Arc<Sink>,
    pending: Vec<Job>,
    in_flight: usize,
    depth: usize,
    read_only: bool,
}

impl TcmuQueue {
    pub(crate) fn new(tx: Sender<Msg>, depth: usize, read_only: bool) -> io::Result<TcmuQueue> {
        Ok(TcmuQueue {
            tx,
            sink: Arc::new(Sink::new()?),
            pending: Vec::new(),
            in_flight: 0,
            depth: depth.max(1),
            read_only,
        })
    }

    fn fail(&self, tag: u64, errno: i32) {
        self.sink.push(IoDone {
            tag,
            result: Err(io::Error::from_raw_os_error(errno)),
        });
    }
}

impl IoQueue for TcmuQueue {
    fn submit(&mut self, tag: u64, op: IoOp) -> Result<(), (u64, IoOp)> {
        if self.in_flight >= self.depth {
            return Err((tag, op));
        }
        self.in_flight += 1;
        let op = match op {
            IoOp::Read { offset, len } => Op::Read { offset, len },
            IoOp::Write { .. } if self.read_only => {
                self.fail(tag, libc::EROFS);
                return Ok(());
            }
            IoOp::Write { offset, data, fua } => Op::Write { offset, data, fua },
            IoOp::Flush => Op::Flush,
        };
        let reply = Reply::Queue {
            sink: self.sink.clone(),
            tag,
        };
        self.pending.push(Job { op, reply });
        Ok(())
    }

    fn commit(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let jobs = std::mem::take(&mut self.pending);
        if let Err(e) = self.tx.send(Msg::Jobs(jobs)) {
            // The device is closing: fail what was submitted.
            if let Msg::Jobs(jobs) = e.0 {
                for job in jobs {
                    if let Reply::Queue { tag, .. } = job.reply {
                        self.fail(tag, libc::EIO);
                    }
                }
            }
        }
        Ok(())
    }

    fn completion_fd(&self) -> RawFd {
        self.sink.efd.as_raw_fd()
    }

    fn reap(&mut self, out: &mut Vec<IoDone>) {
        let n = self.sink.drain(out);
        self.in_flight = self.in_flight.saturating_sub(n);
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }
}

impl Drop for TcmuQueue {
    fn drop(&mut self) {
        let _ = self.commit();
        let deadline = Instant::now() + DROP_WAIT;
        let mut sink = Vec::new();
        while self.in_flight > 0 && Instant::now() < deadline {
            self.reap(&mut sink);
            sink.clear();
            if self.in_flight > 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if self.in_flight > 0 {
            log::error!(
                "tcmu: an I/O queue was dropped with {} operations in flight",
                self.in_flight
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_signals_once_per_batch() {
        let sink = Sink::new().expect("eventfd");
        let fd = sink.efd.as_raw_fd();
        let readable = || {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, no wait.
            unsafe { libc::poll(&mut p, 1, 0) == 1 }
        };
        assert!(!readable());
        sink.push(IoDone {
            tag: 1,
            result: Ok(vec![]),
        });
        sink.push(IoDone {
            tag: 2,
            result: Ok(vec![]),
        });
        assert!(readable());
        let mut out = Vec::new();
        assert_eq!(sink.drain(&mut out), 2);
        assert!(!readable(), "drain clears the eventfd");
        sink.push(IoDone {
            tag: 3,
            result: Ok(vec![]),
        });
        assert!(readable(), "a new result after a drain signals again");
        assert_eq!(sink.drain(&mut out), 1);
        assert_eq!(out.iter().map(|d| d.tag).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn queue_fails_when_the_device_is_gone() {
        let (tx, rx) = std::sync::mpsc::channel();
        drop(rx);
        let mut q = TcmuQueue::new(tx, 2, true).expect("queue");
        assert!(q.submit(1, IoOp::Flush).is_ok());
        assert!(q
            .submit(
                2,
                IoOp::Write {
                    offset: 0,
                    data: vec![0; 512],
                    fua: false
                }
            )
            .is_ok());
        assert!(q.submit(3, IoOp::Flush).is_err(), "full at depth 2");
        q.commit().expect("commit");
        let mut out = Vec::new();
        q.reap(&mut out);
        assert_eq!(q.in_flight(), 0);
        let errs: Vec<(u64, Option<i32>)> = out
            .iter()
            .map(|d| {
                (
                    d.tag,
                    d.result.as_ref().err().and_then(|e| e.raw_os_error()),
                )
            })
            .collect();
        assert!(errs.contains(&(2, Some(libc::EROFS))), "{errs:?}");
        assert!(errs.contains(&(1, Some(libc::EIO))), "{errs:?}");
    }
}
