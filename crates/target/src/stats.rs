//! Datapath counters: system calls, store I/O and commands, per event loop, summed on demand;
//! and gauges of what is alive (connections, logins, sessions, tasks, buffers), so that a leak
//! shows as a gauge that does not return to its baseline.
//!
//! Each loop owns one [`LoopStats`] (its own cache line); only that loop writes it, with relaxed
//! atomic adds, and any thread may read a [`Stats`] snapshot through a [`StatsHandle`]. The
//! gauges of state shared by the loops (logins, sessions) live in one [`Gauges`].
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
    /// Gauges of this loop's connections, refreshed every iteration.
    conns: AtomicU64,
    tasks: AtomicU64,
    write_reserved: AtomicU64,
    buffers: AtomicU64,
    io_in_flight: AtomicU64,
}

/// What the connections of one loop hold right now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnGauges {
    /// Connections.
    pub conns: u64,
    /// SCSI tasks alive in their protocol engines.
    pub tasks: u64,
    /// Write data budget held by admitted writes.
    pub write_reserved: u64,
    /// Receive buffers, unsent output and write data being collected (bytes).
    pub buffers: u64,
    /// Commands at an asynchronous store queue.
    pub io_in_flight: u64,
}

impl ConnGauges {
    /// Add one connection's share.
    pub fn add(&mut self, other: &ConnGauges) {
        self.conns += other.conns;
        self.tasks += other.tasks;
        self.write_reserved += other.write_reserved;
        self.buffers += other.buffers;
        self.io_in_flight += other.io_in_flight;
    }
}

/// Gauges of the state the event loops share: connections in login, sessions, and the count of
/// connections closed at accept by a login limit.
#[derive(Debug, Default)]
pub(crate) struct Gauges {
    logins: AtomicU64,
    sessions: AtomicU64,
    refused: AtomicU64,
}

impl Gauges {
    /// Connections in the login phase now.
    pub fn set_logins(&self, n: u64) {
        self.logins.store(n, Ordering::Relaxed);
    }

    /// Sessions now.
    pub fn set_sessions(&self, n: u64) {
        self.sessions.store(n, Ordering::Relaxed);
    }

    /// One more connection closed at accept.
    pub fn refused_connection(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
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

    /// Publish what this loop's connections hold now.
    pub fn set_gauges(&self, g: &ConnGauges) {
        let r = Ordering::Relaxed;
        self.conns.store(g.conns, r);
        self.tasks.store(g.tasks, r);
        self.write_reserved.store(g.write_reserved, r);
        self.buffers.store(g.buffers, r);
        self.io_in_flight.store(g.io_in_flight, r);
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
            connections: g(&self.conns),
            tasks: g(&self.tasks),
            write_data_reserved: g(&self.write_reserved),
            buffer_bytes: g(&self.buffers),
            store_io_in_flight: g(&self.io_in_flight),
            ..Stats::default()
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
    /// Connections open now (gauge).
    pub connections: u64,
    /// Connections in the login phase now (gauge).
    pub logins: u64,
    /// Sessions now, normal and discovery (gauge).
    pub sessions: u64,
    /// SCSI tasks alive now: collecting Data-Out, executing, or aborted and still executing
    /// (gauge).
    pub tasks: u64,
    /// Write data budget held by admitted writes now, in bytes (gauge).
    pub write_data_reserved: u64,
    /// Bytes held by connections now: receive buffers, unsent output, write data being
    /// collected (gauge).
    pub buffer_bytes: u64,
    /// Commands at asynchronous store queues now (gauge).
    pub store_io_in_flight: u64,
    /// Connections closed at accept because a login limit was reached (counter).
    pub refused_connections: u64,
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
            refused_connections: self
                .refused_connections
                .saturating_sub(earlier.refused_connections),
            ..*self
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
             {} connections coalescing, {} loops on io_uring; {} connections ({} logging in, \
             {} refused at accept), {} sessions, {} tasks, {} bytes of write data reserved, \
             {} bytes of connection buffers, {} store I/O in flight",
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
            self.connections,
            self.logins,
            self.refused_connections,
            self.sessions,
            self.tasks,
            self.write_data_reserved,
            self.buffer_bytes,
            self.store_io_in_flight,
        )
    }
}

/// Reads the counters of a server's event loops from any thread.
#[derive(Clone, Default)]
pub struct StatsHandle {
    loops: Arc<Mutex<Vec<Arc<LoopStats>>>>,
    global: Arc<Gauges>,
}

impl StatsHandle {
    /// The counters summed over every event loop.
    pub fn snapshot(&self) -> Stats {
        let r = Ordering::Relaxed;
        let mut s = Stats {
            logins: self.global.logins.load(r),
            sessions: self.global.sessions.load(r),
            refused_connections: self.global.refused.load(r),
            ..Stats::default()
        };
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
            s.connections += x.connections;
            s.tasks += x.tasks;
            s.write_data_reserved += x.write_data_reserved;
            s.buffer_bytes += x.buffer_bytes;
            s.store_io_in_flight += x.store_io_in_flight;
        }
        s
    }

    /// The gauges of the state the loops share.
    pub(crate) fn gauges(&self) -> Arc<Gauges> {
        self.global.clone()
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
