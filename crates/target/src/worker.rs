//! The event loops. What both engines share lives here: the messages a loop receives, how
//! other threads reach it, its setup, and the busy-polling policy; this file also holds the
//! epoll (mio) loop: a poll over the connections it owns, the wake-up eventfd, the completion
//! descriptors of its store I/O queues, and the protocol timers of its connections. The
//! io_uring loop is `uring_worker.rs`.
use std::collections::HashMap;
use std::io;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::aio::{AsyncIo, Finished, MioWatch};
use crate::clock::now_ms;
use crate::conn::LoopEnv;
use crate::epoll_conn::EpollConn;
use crate::eventfd::EventFd;
use crate::limits::LoginTicket;
use crate::stats::{ConnGauges, Counter, LoopStats};
use crate::StopHandle;

const WAKER: Token = Token(usize::MAX);
/// How long stopping waits for store I/O in flight.
pub(crate) const SHUTDOWN_IO_WAIT: Duration = Duration::from_secs(10);

/// Messages an event loop receives from other threads.
pub enum Msg {
    /// A freshly accepted connection to adopt, counted against the login limits until its
    /// login completes.
    NewConn(TcpStream, LoginTicket),
    /// Close this connection (its session was reinstated elsewhere).
    Kill(u64),
    /// The session this connection reinstates is gone: it may start.
    Released(u64),
    /// A command that ran in the background (SANITIZE) finished: hand its response to its
    /// connection, if that is still there.
    Finished(Finished),
    /// The server is stopping.
    Stop,
}

/// How other threads reach an event loop: a channel and the eventfd that wakes the loop.
#[derive(Clone)]
pub struct WorkerHandle {
    tx: Sender<Msg>,
    wake: Arc<EventFd>,
}

impl WorkerHandle {
    pub fn send(&self, msg: Msg) {
        if self.tx.send(msg).is_ok() {
            self.wake.signal();
        }
    }
}

/// Everything an event loop of either engine is built from.
pub struct LoopSetup {
    pub idx: usize,
    pub env: LoopEnv,
    pub stop: StopHandle,
    /// How long to poll without sleeping after a low-queue-depth batch (zero: never).
    pub busy_poll: Duration,
    pub rx: Receiver<Msg>,
    pub wake: Arc<EventFd>,
}

impl LoopSetup {
    /// The setup of loop `idx` and the handle other threads reach it by.
    pub fn new(
        idx: usize,
        env: LoopEnv,
        stop: StopHandle,
        busy_poll: Duration,
    ) -> io::Result<(LoopSetup, WorkerHandle)> {
        let wake = Arc::new(EventFd::new()?);
        let (tx, rx) = channel();
        let handle = WorkerHandle {
            tx,
            wake: wake.clone(),
        };
        let setup = LoopSetup {
            idx,
            env,
            stop,
            busy_poll,
            rx,
            wake,
        };
        Ok((setup, handle))
    }
}

/// When a loop polls without sleeping after socket activity.
///
/// Busy polling pays where a thread wake-up is most of the round trip: a request-response
/// pattern at low queue depth, where the initiator waits for each reply before it sends the
/// next command. It does not pay when an iteration brings many commands (the loop is busy
/// anyway), nor when the initiator still has a backlog of replies to read (its ExpStatSN lags
/// the StatSN sent): then the initiator, not the target, is the bottleneck, its next command
/// comes when it has worked through that backlog, and spinning would only burn CPU the rest of
/// the machine could use. A deep queue shows itself only now and then (a busy initiator also
/// has moments where it has read everything), so one sign of depth turns spinning off for the
/// next [`SPIN_COOLOFF`] iterations with socket activity: a queue-depth-1 initiator never
/// shows it and keeps the spin.
pub(crate) struct Spin {
    /// How long to keep polling without sleeping after socket activity (0: never).
    window: Duration,
    /// Poll without sleeping until then: a request arriving meanwhile is picked up without the
    /// thread being woken, which is most of the round trip at queue depth 1.
    until: Option<Instant>,
    /// Iterations with socket activity left before spinning may resume.
    cooloff: u32,
}

/// Iterations with socket activity that a sign of a deep queue disables spinning for.
pub(crate) const SPIN_COOLOFF: u32 = 256;

impl Spin {
    pub fn new(window: Duration) -> Spin {
        Spin {
            window,
            until: None,
            cooloff: 0,
        }
    }

    /// True while the loop should not sleep.
    pub fn active(&self) -> bool {
        self.until.is_some_and(|t| Instant::now() < t)
    }

    /// After an iteration that brought `batch` commands, the least unread replies of a
    /// connection that was read being `min_unread`.
    pub fn update(&mut self, socket_activity: bool, batch: u64, min_unread: u32) {
        const MAX_SPIN_BATCH: u64 = 4;
        const MAX_SPIN_UNREAD: u32 = 4;
        if self.window.is_zero() || !socket_activity {
            return;
        }
        if batch > MAX_SPIN_BATCH || min_unread > MAX_SPIN_UNREAD {
            self.cooloff = SPIN_COOLOFF;
        } else {
            self.cooloff = self.cooloff.saturating_sub(1);
        }
        self.until = (self.cooloff == 0).then(|| Instant::now() + self.window);
    }
}

/// How long to sleep until the earliest of protocol deadlines (milliseconds on [`now_ms`]).
pub(crate) fn sleep_until(deadlines: impl Iterator<Item = u64>) -> Option<Duration> {
    let now = now_ms();
    deadlines
        .min()
        .map(|t| Duration::from_millis(t.saturating_sub(now).max(1)))
}

/// Runs the loop `setup` describes with the io_uring engine when `uring` (falling back to
/// epoll where a ring cannot be set up), else with epoll.
pub(crate) fn run_loop(setup: LoopSetup, uring: bool) {
    use crate::uring_worker::UringWorker;
    if uring {
        match UringWorker::ring_for(&setup) {
            Ok(ring) => return UringWorker::new(setup, ring).run(),
            Err(e) => crate::uring::warn_unavailable(&e),
        }
    }
    let idx = setup.idx;
    match Worker::new(setup) {
        Ok(w) => w.run(),
        Err(e) => log::error!("event loop {idx}: cannot start: {e}"),
    }
}

/// The epoll event loop.
pub struct Worker {
    idx: usize,
    poll: Poll,
    wake: Arc<EventFd>,
    rx: Receiver<Msg>,
    conns: HashMap<u64, EpollConn>,
    env: LoopEnv,
    stop: StopHandle,
    aio: AsyncIo,
    /// Commands whose I/O finished, to hand back to their connections.
    finished: Vec<Finished>,
    stats: Arc<LoopStats>,
    /// Some connection holds replies: poll without sleeping.
    holding: bool,
    spin: Spin,
}

impl Worker {
    pub fn new(setup: LoopSetup) -> io::Result<Self> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut SourceFd(&setup.wake.raw()), WAKER, Interest::READABLE)?;
        Ok(Worker {
            idx: setup.idx,
            poll,
            wake: setup.wake,
            rx: setup.rx,
            conns: HashMap::new(),
            stats: setup.env.stats.clone(),
            env: setup.env,
            stop: setup.stop,
            aio: AsyncIo::default(),
            finished: Vec::new(),
            holding: false,
            spin: Spin::new(setup.busy_poll),
        })
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let timeout = if self.holding || self.spin.active() {
                Some(Duration::ZERO)
            } else {
                self.next_timeout()
            };
            self.stats.add(Counter::Poll, 1);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("event loop {}: poll: {e}", self.idx);
                    break;
                }
            }
            let commands_before = self.stats.commands();
            let mut socket_activity = false;
            let mut min_unread = u32::MAX;
            for ev in events.iter() {
                if ev.token() == WAKER {
                    self.wake.drain();
                    continue;
                }
                if let Some(qi) = self.aio.queue_of(ev.token()) {
                    self.aio.reap(qi, &mut self.finished);
                    continue;
                }
                let id = ev.token().0 as u64;
                if let Some(c) = self.conns.get_mut(&id) {
                    socket_activity |= ev.is_readable();
                    if ev.is_read_closed() {
                        c.peer_closed();
                    }
                    c.on_ready(ev.is_readable() || ev.is_read_closed(), ev.is_writable());
                    if ev.is_readable() {
                        min_unread = min_unread.min(c.core.unread_statuses());
                    }
                }
            }
            self.drain_messages();
            let batch = self.stats.commands() - commands_before;
            self.spin.update(socket_activity, batch, min_unread);
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

    /// Queues the I/O connections started, hands finished commands back (which may start
    /// more), then starts everything queued with one submission per queue.
    fn pump_io(&mut self) {
        loop {
            let mut watch = MioWatch(self.poll.registry());
            for (id, c) in self.conns.iter_mut() {
                for io in c.core.take_queued() {
                    if let Some(f) = self.aio.submit(*id, io, &mut watch) {
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
                    if c.core.is_read_paused() {
                        // Input may have paused on command data at the store.
                        c.on_ready(false, false);
                    }
                }
            }
        }
        let submits = self.aio.commit();
        self.stats.add(Counter::StoreIo, submits);
    }

    /// Write every connection's replies of this iteration, one (vectored) write each, unless
    /// coalescing holds them.
    fn flush_all(&mut self) {
        let mut holding = false;
        let mut busy = 0;
        for c in self.conns.values_mut() {
            holding |= c.end_iteration();
            busy += u64::from(c.core.is_coalescing());
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
                        c.on_ready(true, false);
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
        match EpollConn::new(id, stream, self.poll.registry(), &self.env, ticket) {
            Ok(c) => {
                self.conns.insert(id, c);
            }
            Err(e) => log::warn!("cannot adopt a connection: {e}"),
        }
    }

    /// Close finished connections; publish what the others hold.
    fn reap(&mut self) {
        let registry = self.poll.registry();
        let mut gauges = ConnGauges::default();
        self.conns.retain(|_, c| {
            if c.core.is_done() {
                c.close(registry);
                false
            } else {
                gauges.add(&c.core.gauges());
                true
            }
        });
        self.stats.set_gauges(&gauges);
    }

    /// Stop: fail what is in flight, send what can be sent without waiting, close everything.
    fn shutdown(&mut self) {
        let registry = self.poll.registry();
        for (_, mut c) in self.conns.drain() {
            c.kill();
            c.close(registry);
        }
        self.aio.shutdown(&mut MioWatch(registry), SHUTDOWN_IO_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_stays_on_for_a_request_response_initiator() {
        let mut spin = Spin::new(Duration::from_secs(60));
        for _ in 0..1000 {
            spin.update(true, 1, 1);
            assert!(spin.active());
        }
    }

    #[test]
    fn one_sign_of_a_deep_queue_stops_spinning_for_the_cooloff() {
        let mut spin = Spin::new(Duration::from_secs(60));
        spin.update(true, 1, 1);
        assert!(spin.active());
        spin.update(true, 1, 20);
        assert!(!spin.active());
        for _ in 1..SPIN_COOLOFF {
            spin.update(true, 1, 1);
            assert!(!spin.active());
        }
        // Iterations without socket activity do not count.
        spin.update(false, 0, u32::MAX);
        assert!(!spin.active());
        spin.update(true, 1, 1);
        assert!(spin.active());
        spin.update(true, 5, 0);
        assert!(!spin.active());
    }

    #[test]
    fn a_zero_window_never_spins() {
        let mut spin = Spin::new(Duration::ZERO);
        spin.update(true, 1, 0);
        assert!(!spin.active());
    }
}
