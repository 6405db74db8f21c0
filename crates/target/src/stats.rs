//! Datapath counters: system calls, store I/O and commands, per event loop, summed on demand.
//!
//! Each loop owns one [`LoopStats`] (its own cache line); only that loop writes it, with relaxed
//! atomic adds, and any thread may read a [`Stats`] snapshot through a [`StatsHandle`].
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters of one event loop.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct LoopStats {
    reads: AtomicU64,
    writes: AtomicU64,
    polls: AtomicU64,
    store_io: AtomicU64,
    commands: AtomicU64,
    iterations: AtomicU64,
    held: AtomicU64,
    coalescing_conns: AtomicU64,
    /// 1 while this loop runs the io_uring network engine.
    uring: AtomicU64,
}

/// Which counter to bump.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Counter {
    /// A `read`/`recv` on a socket.
    Read,
    /// A `write`/`writev` on a socket.
    Write,
    /// An `epoll_wait`.
    Poll,
    /// A store read/write done inline, or one I/O queue submission.
    StoreIo,
    /// A SCSI command executed.
    Command,
    /// One pass of the event loop.
    Iteration,
    /// A send deferred by reply coalescing.
    Held,
}

impl LoopStats {
    /// Add `n` to a counter.
    pub fn add(&self, c: Counter, n: u64) {
        let a = match c {
            Counter::Read => &self.reads,
            Counter::Write => &self.writes,
            Counter::Poll => &self.polls,
            Counter::StoreIo => &self.store_io,
            Counter::Command => &self.commands,
            Counter::Iteration => &self.iterations,
            Counter::Held => &self.held,
        };
        a.fetch_add(n, Ordering::Relaxed);
    }

    /// Commands executed by this loop so far.
    pub fn commands(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    /// Record that this loop runs the io_uring network engine.
    pub fn set_uring(&self) {
        self.uring.store(1, Ordering::Relaxed);
    }

    /// Record how many connections of this loop are currently coalescing replies.
    pub fn set_coalescing(&self, n: u64) {
        self.coalescing_conns.store(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Stats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            reads: g(&self.reads),
            writes: g(&self.writes),
            polls: g(&self.polls),
            store_io: g(&self.store_io),
            commands: g(&self.commands),
            iterations: g(&self.iterations),
            held_sends: g(&self.held),
            coalescing_connections: g(&self.coalescing_conns),
            uring_loops: g(&self.uring),
        }
    }
}

/// A snapshot of the datapath counters, summed over every event loop since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Socket reads (`recvfrom`), including those that found nothing; with the io_uring engine,
    /// receive requests submitted.
    pub reads: u64,
    /// Socket writes (`sendto`/`writev`), including partial ones; with the io_uring engine, send
    /// requests submitted.
    pub writes: u64,
    /// `epoll_wait` calls; with the io_uring engine, `io_uring_enter` calls.
    pub polls: u64,
    /// Store I/O system calls: reads and writes done inline on the loop, plus I/O queue submissions.
    pub store_io: u64,
    /// SCSI commands executed.
    pub commands: u64,
    /// Event loop iterations.
    pub iterations: u64,
    /// Sends deferred by adaptive reply coalescing.
    pub held_sends: u64,
    /// Connections coalescing replies right now.
    pub coalescing_connections: u64,
    /// Event loops running the io_uring network engine (the others run epoll).
    pub uring_loops: u64,
}

impl Stats {
    /// Every counted system call: socket reads and writes, polls, store I/O.
    pub fn syscalls(&self) -> u64 {
        self.reads + self.writes + self.polls + self.store_io
    }

    /// System calls per SCSI command (0 before the first command).
    pub fn syscalls_per_command(&self) -> f64 {
        ratio(self.syscalls(), self.commands)
    }

    /// Commands handled per event loop iteration.
    pub fn commands_per_iteration(&self) -> f64 {
        ratio(self.commands, self.iterations)
    }

    /// The counters accumulated since `earlier` (gauges keep their current value).
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            reads: self.reads.saturating_sub(earlier.reads),
            writes: self.writes.saturating_sub(earlier.writes),
            polls: self.polls.saturating_sub(earlier.polls),
            store_io: self.store_io.saturating_sub(earlier.store_io),
            commands: self.commands.saturating_sub(earlier.commands),
            iterations: self.iterations.saturating_sub(earlier.iterations),
            held_sends: self.held_sends.saturating_sub(earlier.held_sends),
            coalescing_connections: self.coalescing_connections,
            uring_loops: self.uring_loops,
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = |n: u64| ratio(n, self.commands);
        write!(
            f,
            "{} commands, {:.2} syscalls/command (reads {:.2}, writes {:.2}, polls {:.2}, \
             store I/O {:.2}), {:.2} commands/loop iteration, {} sends held by coalescing, \
             {} connections coalescing, {} loops on io_uring",
            self.commands,
            self.syscalls_per_command(),
            per(self.reads),
            per(self.writes),
            per(self.polls),
            per(self.store_io),
            self.commands_per_iteration(),
            self.held_sends,
            self.coalescing_connections,
            self.uring_loops,
        )
    }
}

/// Reads the counters of a server's event loops from any thread.
#[derive(Clone, Default)]
pub struct StatsHandle {
    loops: Arc<Mutex<Vec<Arc<LoopStats>>>>,
}

impl StatsHandle {
    /// The counters summed over every event loop.
    pub fn snapshot(&self) -> Stats {
        let mut s = Stats::default();
        let Ok(loops) = self.loops.lock() else {
            return s;
        };
        for l in loops.iter() {
            let x = l.snapshot();
            s.reads += x.reads;
            s.writes += x.writes;
            s.polls += x.polls;
            s.store_io += x.store_io;
            s.commands += x.commands;
            s.iterations += x.iterations;
            s.held_sends += x.held_sends;
            s.coalescing_connections += x.coalescing_connections;
            s.uring_loops += x.uring_loops;
        }
        s
    }

    /// A fresh counter set for a new event loop.
    pub(crate) fn new_loop(&self) -> Arc<LoopStats> {
        let l = Arc::new(LoopStats::default());
        if let Ok(mut loops) = self.loops.lock() {
            loops.push(l.clone());
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_loops_and_divides_by_commands() {
        let h = StatsHandle::default();
        let a = h.new_loop();
        let b = h.new_loop();
        a.add(Counter::Read, 3);
        a.add(Counter::Write, 2);
        b.add(Counter::Poll, 1);
        b.add(Counter::StoreIo, 2);
        a.add(Counter::Command, 2);
        b.add(Counter::Iteration, 4);
        let s = h.snapshot();
        assert_eq!(s.syscalls(), 8);
        assert_eq!(s.syscalls_per_command(), 4.0);
        assert_eq!(s.commands_per_iteration(), 0.5);
        assert!(s.to_string().contains("4.00 syscalls/command"));
        let later = h.snapshot();
        assert_eq!(later.since(&s).syscalls(), 0);
    }

    #[test]
    fn no_commands_no_division_by_zero() {
        assert_eq!(Stats::default().syscalls_per_command(), 0.0);
    }
}
