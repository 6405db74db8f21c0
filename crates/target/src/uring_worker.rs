//! The io_uring event loop: one ring per loop carries a receive per connection (re-armed after
//! each completion), one send per connection per iteration with the gather list of its output
//! queue, a multishot poll on the loop's wake-up eventfd and one on each store I/O queue's
//! completion eventfd. Each iteration is one `io_uring_enter`: it submits the sends and
//! receives the previous iteration queued and waits for the next completion (or, while busy
//! polling or holding replies, submits without waiting), with the earliest protocol timer as
//! its timeout. Commands run to completion on this thread exactly as in the epoll loop
//! (`worker.rs`), through the same connection state (`conn.rs`).
use std::collections::HashMap;
use std::io;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use crate::aio::{AsyncIo, Finished};
use crate::clock::now_ms;
use crate::conn::LoopEnv;
use crate::eventfd::EventFd;
use crate::limits::LoginTicket;
use crate::stats::{ConnGauges, Counter, LoopStats};
use crate::uring::{Completion, Op, Ring, Wait, MAX_CONN_ID};
use crate::uring_conn::UringConn;
use crate::worker::{sleep_until, LoopSetup, Msg, Spin, SHUTDOWN_IO_WAIT};
use crate::StopHandle;

/// How long one wait of the stopping loop for cancelled requests lasts.
const SHUTDOWN_POLL: Duration = Duration::from_millis(10);

pub struct UringWorker {
    idx: usize,
    // Declared before the ring: dropped first. A connection is only dropped with no request in
    // flight, or else leaks its buffers (see uring_conn.rs), so the order is not load-bearing.
    conns: HashMap<u64, UringConn>,
    ring: Ring,
    wake: Arc<EventFd>,
    rx: Receiver<Msg>,
    env: LoopEnv,
    stop: StopHandle,
    aio: AsyncIo,
    /// Commands whose I/O finished, to hand back to their connections.
    finished: Vec<Finished>,
    stats: Arc<LoopStats>,
    /// Some connection holds replies: poll without sleeping.
    holding: bool,
    spin: Spin,
    /// Completions reaped in this iteration.
    cqes: Vec<Completion>,
}

/// What the completions of one iteration brought.
struct Activity {
    socket: bool,
    min_unread: u32,
}

impl UringWorker {
    /// A ring for the loop `setup` describes, created on the calling thread (the loop's: the
    /// ring is set up for a single submitter), already watching the loop's wake-up eventfd.
    /// Fails where io_uring cannot be used.
    pub fn ring_for(setup: &LoopSetup) -> io::Result<Ring> {
        let mut ring = Ring::new(setup.env.stats.clone())?;
        ring.poll(setup.wake.raw(), Op::Wake)?;
        Ok(ring)
    }

    /// The loop `setup` describes, on `ring` (from [`UringWorker::ring_for`]).
    pub fn new(setup: LoopSetup, ring: Ring) -> UringWorker {
        log::debug!("event loop {}: io_uring network engine", setup.idx);
        setup.env.stats.set_uring();
        UringWorker {
            idx: setup.idx,
            conns: HashMap::new(),
            ring,
            wake: setup.wake,
            rx: setup.rx,
            stats: setup.env.stats.clone(),
            env: setup.env,
            stop: setup.stop,
            aio: AsyncIo::default(),
            finished: Vec::new(),
            holding: false,
            spin: Spin::new(setup.busy_poll),
            cqes: Vec::with_capacity(256),
        }
    }

    pub fn run(mut self) {
        loop {
            let wait = if self.holding || self.spin.active() {
                Wait::Poll
            } else {
                Wait::Block(self.next_timeout())
            };
            if let Err(e) = self.ring.enter(wait) {
                log::error!("event loop {}: io_uring_enter: {e}", self.idx);
                break;
            }
            let commands_before = self.stats.commands();
            let activity = self.dispatch();
            self.drain_messages();
            let batch = self.stats.commands() - commands_before;
            self.spin
                .update(activity.socket, batch, activity.min_unread);
            let now = now_ms();
            for c in self.conns.values_mut() {
                c.core.on_tick(now);
            }
            self.pump_io();
            self.flush_all();
            self.reap();
            self.stats.add(Counter::Iteration, 1);
            if self.stop.is_stopped() {
                break;
            }
        }
        self.shutdown();
    }

    /// Handle every completion waiting in the ring.
    fn dispatch(&mut self) -> Activity {
        let mut activity = Activity {
            socket: false,
            min_unread: u32::MAX,
        };
        let mut cqes = std::mem::take(&mut self.cqes);
        self.ring.reap(&mut cqes);
        for c in cqes.drain(..) {
            match c.op {
                Op::Recv(id) => {
                    if let Some(conn) = self.conns.get_mut(&id) {
                        if conn.on_recv(c.res) > 0 {
                            activity.socket = true;
                            activity.min_unread =
                                activity.min_unread.min(conn.core.unread_statuses());
                        }
                    }
                }
                Op::Send(id) => {
                    if let Some(conn) = self.conns.get_mut(&id) {
                        conn.on_send(c.res, &mut self.ring);
                    }
                }
                Op::Wake => {
                    self.wake.drain();
                    if !c.more {
                        self.rearm(self.wake.raw(), Op::Wake);
                    }
                }
                Op::Aio(qi) => {
                    self.aio.reap(qi, &mut self.finished);
                    if !c.more {
                        if let Some(fd) = self.aio.completion_fd(qi) {
                            self.rearm(fd, Op::Aio(qi));
                        }
                    }
                }
                Op::Cancel => {}
            }
        }
        self.cqes = cqes;
        activity
    }

    /// A multishot poll ended (the kernel may end one, e.g. when its completions overflowed):
    /// start it again.
    fn rearm(&mut self, fd: std::os::fd::RawFd, op: Op) {
        if let Err(e) = self.ring.poll(fd, op) {
            log::error!("event loop {}: cannot poll {op:?}: {e}", self.idx);
        }
    }

    /// Queues the I/O connections started, hands finished commands back (which may start
    /// more), then starts everything queued with one submission per queue.
    fn pump_io(&mut self) {
        loop {
            for (id, c) in self.conns.iter_mut() {
                for io in c.core.take_queued() {
                    if let Some(f) = self.aio.submit(*id, io, &mut self.ring) {
                        self.finished.push(f);
                    }
                }
            }
            if self.finished.is_empty() {
                break;
            }
            for f in std::mem::take(&mut self.finished) {
                // The connection may be gone: its result is dropped.
                if let Some(c) = self.conns.get_mut(&f.conn) {
                    c.core.finish_io(f.task, f.response);
                    // Input may have paused on command data at the store.
                    c.core.resume_input();
                }
            }
        }
        let submits = self.aio.commit();
        self.stats.add(Counter::StoreIo, submits);
    }

    /// Queue every connection's send of this iteration's replies (unless coalescing holds
    /// them) and its next receive.
    fn flush_all(&mut self) {
        let mut holding = false;
        let mut busy = 0;
        for c in self.conns.values_mut() {
            holding |= c.end_iteration(&mut self.ring);
            busy += u64::from(c.core.is_coalescing());
            c.arm_recv(&mut self.ring);
        }
        self.holding = holding;
        self.stats.set_coalescing(busy);
    }

    fn next_timeout(&self) -> Option<Duration> {
        sleep_until(self.conns.values().filter_map(|c| c.core.next_timeout()))
    }

    fn drain_messages(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::NewConn(stream, ticket) => self.adopt(stream, ticket),
                Msg::Released(id) => {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.core.released();
                    }
                }
                Msg::Kill(id) => {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.kill();
                    }
                }
                Msg::Finished(f) => self.finished.push(f),
                Msg::Stop => {}
            }
        }
    }

    fn adopt(&mut self, stream: TcpStream, ticket: LoginTicket) {
        if self.stop.is_stopped() {
            return;
        }
        let id = self.env.registry.alloc_conn_id();
        if id > MAX_CONN_ID {
            log::warn!("cannot adopt a connection: connection ids exhausted");
            return;
        }
        match UringConn::new(id, stream, &self.env, ticket) {
            // Its first receive is queued at the end of this iteration.
            Ok(c) => {
                self.conns.insert(id, c);
            }
            Err(e) => log::warn!("cannot adopt a connection: {e}"),
        }
    }

    /// Tear down finished connections; drop those whose requests have all completed; publish
    /// what the others hold.
    fn reap(&mut self) {
        for c in self.conns.values_mut() {
            if c.is_done() {
                c.teardown(&mut self.ring);
            }
        }
        let mut gauges = ConnGauges::default();
        self.conns.retain(|_, c| {
            let keep = !c.is_gone();
            if keep {
                gauges.add(&c.core.gauges());
            }
            keep
        });
        self.stats.set_gauges(&gauges);
    }

    /// Stop: fail what is in flight, send what can be sent without waiting, cancel every
    /// request and wait (bounded) for the kernel to let go of every buffer, then close.
    fn shutdown(&mut self) {
        for c in self.conns.values_mut() {
            c.kill();
            c.flush(&mut self.ring);
        }
        // Submit the last sends; they go out now or not at all.
        let _ = self.ring.enter(Wait::Poll);
        self.dispatch();
        for c in self.conns.values_mut() {
            c.teardown(&mut self.ring);
        }
        let deadline = Instant::now() + SHUTDOWN_IO_WAIT;
        while self.conns.values().any(UringConn::is_busy) && Instant::now() < deadline {
            if let Err(e) = self.ring.enter(Wait::Block(Some(SHUTDOWN_POLL))) {
                log::error!("event loop {}: io_uring_enter: {e}", self.idx);
                break;
            }
            self.dispatch();
        }
        self.conns.retain(|_, c| !c.is_gone());
        if !self.conns.is_empty() {
            log::error!(
                "event loop {}: {} connections with socket requests still in flight at stop",
                self.idx,
                self.conns.len()
            );
        }
        self.conns.clear();
        self.aio.shutdown(&mut self.ring, SHUTDOWN_IO_WAIT);
        let _ = self.ring.enter(Wait::Poll);
    }
}
