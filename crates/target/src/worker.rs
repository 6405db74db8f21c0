//! One event loop: a mio poll over the connections it owns, a waker for messages from the
//! acceptor and from other loops, and the protocol timers of its connections.
use std::collections::HashMap;
use std::io;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iscsi_proto::{Catalog, Limits};
use mio::net::TcpStream;
use mio::{Events, Poll, Token, Waker};

use crate::aio::{AsyncIo, Finished};
use crate::clock::now_ms;
use crate::coalesce::Coalesce;
use crate::conn::{Conn, LoopEnv};
use crate::registry::Registry;
use crate::stats::{Counter, LoopStats};
use crate::StopHandle;

const WAKER: Token = Token(usize::MAX);
/// How long stopping waits for store I/O in flight.
const SHUTDOWN_IO_WAIT: Duration = Duration::from_secs(10);

/// Latency and batching settings of an event loop.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    pub coalesce: Coalesce,
    /// How long to poll without sleeping after a low-queue-depth batch (zero: never).
    pub busy_poll: Duration,
}

/// Messages an event loop receives from other threads.
pub enum Msg {
    /// A freshly accepted connection to adopt.
    NewConn(TcpStream),
    /// Close this connection (its session was reinstated elsewhere).
    Kill(u64),
    /// The server is stopping.
    Stop,
}

/// How other threads reach an event loop.
#[derive(Clone)]
pub struct WorkerHandle {
    tx: Sender<Msg>,
    waker: Arc<Waker>,
}

impl WorkerHandle {
    pub fn send(&self, msg: Msg) {
        if self.tx.send(msg).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

pub struct Worker {
    idx: usize,
    poll: Poll,
    waker: Arc<Waker>,
    rx: Receiver<Msg>,
    tx: Sender<Msg>,
    conns: HashMap<u64, Conn>,
    env: LoopEnv,
    stop: StopHandle,
    aio: AsyncIo,
    /// Commands whose I/O finished, to hand back to their connections.
    finished: Vec<Finished>,
    stats: Arc<LoopStats>,
    /// Some connection holds replies: poll without sleeping.
    holding: bool,
    /// How long to keep polling without sleeping after socket activity (0: never).
    busy_poll: Duration,
    /// Poll without sleeping until then: a request arriving meanwhile is picked up without the
    /// thread being woken, which is most of the round trip at queue depth 1.
    spin_until: Option<Instant>,
}

impl Worker {
    pub fn new(
        idx: usize,
        registry: Arc<Registry>,
        catalog: Arc<Catalog>,
        limits: Limits,
        stop: StopHandle,
        stats: Arc<LoopStats>,
        tuning: Tuning,
    ) -> io::Result<Self> {
        let Tuning {
            coalesce,
            busy_poll,
        } = tuning;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = channel();
        Ok(Worker {
            idx,
            poll,
            waker,
            rx,
            tx,
            conns: HashMap::new(),
            env: LoopEnv {
                worker: idx,
                registry,
                catalog,
                limits,
                stats: stats.clone(),
                coalesce,
            },
            stop,
            aio: AsyncIo::default(),
            finished: Vec::new(),
            stats,
            holding: false,
            busy_poll,
            spin_until: None,
        })
    }

    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    pub fn sender(&self) -> WorkerHandle {
        WorkerHandle {
            tx: self.tx.clone(),
            waker: self.waker.clone(),
        }
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let spinning = self.spin_until.is_some_and(|t| Instant::now() < t);
            let timeout = if self.holding || spinning {
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
                    continue;
                }
                if let Some(qi) = self.aio.queue_of(ev.token()) {
                    self.aio.reap(qi, &mut self.finished);
                    continue;
                }
                let id = ev.token().0 as u64;
                if let Some(c) = self.conns.get_mut(&id) {
                    socket_activity |= ev.is_readable();
                    c.on_ready(ev.is_readable() || ev.is_read_closed(), ev.is_writable());
                    if ev.is_readable() {
                        min_unread = min_unread.min(c.unread_statuses());
                    }
                }
            }
            self.drain_messages();
            let batch = self.stats.commands() - commands_before;
            self.update_spin(socket_activity, batch, min_unread);
            let now = now_ms();
            for c in self.conns.values_mut() {
                c.on_tick(now);
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
            let registry = self.poll.registry();
            for (id, c) in self.conns.iter_mut() {
                for io in c.take_queued() {
                    if let Some(f) = self.aio.submit(*id, io, registry) {
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
                    c.finish_io(f.task, f.response);
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
            busy += u64::from(c.is_coalescing());
        }
        self.holding = holding;
        self.stats.set_coalescing(busy);
    }

    /// Busy polling pays where a thread wake-up is most of the round trip: a request-response
    /// pattern at low queue depth, where the initiator waits for each reply before it sends
    /// the next command. It does not pay when an iteration brings many commands (the loop is
    /// busy anyway), nor when the initiator still has a backlog of replies to read (its
    /// ExpStatSN lags the StatSN sent): then the initiator, not the target, is the bottleneck,
    /// its next command comes when it has worked through that backlog, and spinning would only
    /// burn CPU the rest of the machine could use.
    fn update_spin(&mut self, socket_activity: bool, batch: u64, min_unread: u32) {
        const MAX_SPIN_BATCH: u64 = 4;
        const MAX_SPIN_UNREAD: u32 = 4;
        if self.busy_poll.is_zero() || !socket_activity {
            return;
        }
        self.spin_until = if batch <= MAX_SPIN_BATCH && min_unread <= MAX_SPIN_UNREAD {
            Some(Instant::now() + self.busy_poll)
        } else {
            None
        };
    }

    fn next_timeout(&self) -> Option<Duration> {
        let now = now_ms();
        self.conns
            .values()
            .filter_map(|c| c.next_timeout())
            .min()
            .map(|t| Duration::from_millis(t.saturating_sub(now).max(1)))
    }

    fn drain_messages(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::NewConn(stream) => self.adopt(stream),
                Msg::Kill(id) => {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.kill();
                    }
                }
                Msg::Stop => {}
            }
        }
    }

    fn adopt(&mut self, stream: TcpStream) {
        if self.stop.is_stopped() {
            return;
        }
        let id = self.env.registry.alloc_conn_id();
        match Conn::new(id, stream, self.poll.registry(), &self.env) {
            Ok(c) => {
                self.conns.insert(id, c);
            }
            Err(e) => log::warn!("cannot adopt a connection: {e}"),
        }
    }

    fn reap(&mut self) {
        let registry = self.poll.registry();
        self.conns.retain(|_, c| {
            if c.is_done() {
                c.close(registry);
                false
            } else {
                true
            }
        });
    }

    /// Stop: fail what is in flight, send what can be sent without waiting, close everything.
    fn shutdown(&mut self) {
        let registry = self.poll.registry();
        for (_, mut c) in self.conns.drain() {
            c.kill();
            c.close(registry);
        }
        self.aio.shutdown(registry, SHUTDOWN_IO_WAIT);
    }
}
