//! The I/O layer of ustgt: the only crate that touches sockets and threads.
//!
//! A [`Server`] binds its portals, then [`Server::run`] starts one acceptor thread and one event
//! loop per core ([`worker`]). Accepted connections are handed round-robin to the loops; each
//! loop owns its connections for their whole life, carries every command from socket read
//! through the protocol engine ([`iscsi_proto::Connection`]) and the SCSI engine
//! ([`scsi_core::LunTable`]) to the store and back, and sends all replies a connection produced
//! in one loop iteration together. Nothing on the command path crosses threads.
//!
//! The loops run one of two network engines ([`NetEngine`]): epoll (readiness, then `read` and
//! `writev` per connection) or io_uring (receives and sends as ring requests, one
//! `io_uring_enter` per iteration). Both share the connection state (`conn.rs`).

mod acceptor;
mod aio;
mod alloc;
mod auth;
mod clock;
mod coalesce;
mod conn;
mod epoll_conn;
mod eventfd;
mod limits;
mod outq;
mod registry;
mod rlimit;
mod rxbuf;
mod stats;
mod uring;
mod uring_conn;
mod uring_worker;
mod worker;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use iscsi_proto::Limits;
pub use iscsi_proto::{AccessPolicy, AuthPolicy, ChapAlgorithm, ChapCredential};
use iscsi_proto::{Catalog, TargetEntry};
use scsi_core::LunTable;

pub use coalesce::{Coalesce, CoalesceMode};
pub use limits::ConnLimits;
pub use stats::{Stats, StatsHandle};

/// A target exported by the server: a name and its logical units.
pub struct ExportedTarget {
    pub iqn: String,
    pub alias: Option<String>,
    pub luns: Arc<LunTable>,
}

/// Everything a server needs to run.
pub struct Setup {
    /// Portals to listen on.
    pub portals: Vec<SocketAddr>,
    pub targets: Vec<ExportedTarget>,
    pub limits: Limits,
    /// Event loop threads; 0 means one per available core.
    pub workers: usize,
}

/// The target portal group tag of the first portal. Each portal is a portal group of its own,
/// and so a SCSI target port: portal `i` (counting from 0 in [`Setup::portals`]) has tag
/// `i + 1`, which is also its relative target port identifier and its target port group
/// (REPORT TARGET PORT GROUPS, VPD 83h).
pub const PORTAL_GROUP_TAG: u16 = 1;

/// The portal group tag of the portal a connection to `local` was accepted on, among the
/// bound `portals`: a portal bound to an address matches it exactly, one bound to the
/// unspecified address matches any address on its port; an exact match wins.
pub(crate) fn portal_group(portals: &[SocketAddr], local: SocketAddr) -> u16 {
    let ip = canonical(local.ip());
    let on_port = |p: &&SocketAddr| p.port() == local.port();
    let exact = portals
        .iter()
        .position(|p| on_port(&p) && canonical(p.ip()) == ip);
    let any = || {
        portals
            .iter()
            .position(|p| on_port(&p) && p.ip().is_unspecified())
    };
    exact.or_else(any).map_or(PORTAL_GROUP_TAG, |i| {
        u16::try_from(i + 1).unwrap_or(u16::MAX)
    })
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries.
fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

/// How the event loops do socket I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetEngine {
    /// Readiness from epoll, then a `read` and a `writev` per connection.
    #[default]
    Epoll,
    /// Receives and sends as io_uring requests, one `io_uring_enter` per loop iteration.
    /// Where io_uring cannot be set up, a warning is logged and the loops use epoll.
    Uring,
}

/// Something that wakes a thread blocked in its poll.
#[derive(Clone)]
enum Wake {
    Mio(Arc<mio::Waker>),
    Event(Arc<eventfd::EventFd>),
}

impl Wake {
    fn wake(&self) {
        match self {
            Wake::Mio(w) => {
                let _ = w.wake();
            }
            Wake::Event(e) => e.signal(),
        }
    }
}

/// A request to stop a running server, shareable with signal handlers and other threads.
#[derive(Clone, Default)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
    wakers: Arc<std::sync::Mutex<Vec<Wake>>>,
}

impl StopHandle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the server to stop: it stops accepting, fails what is in flight, flushes and returns.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Ok(wakers) = self.wakers.lock() {
            for w in wakers.iter() {
                w.wake();
            }
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    fn add_waker(&self, waker: Wake) {
        if let Ok(mut wakers) = self.wakers.lock() {
            wakers.push(waker);
        }
    }
}

/// A server with its portals bound, ready to run.
pub struct Server {
    listeners: Vec<TcpListener>,
    /// The bound address of every portal, in portal group tag order.
    portals: Arc<Vec<SocketAddr>>,
    targets: Arc<Vec<ExportedTarget>>,
    catalog: Arc<Catalog>,
    limits: Limits,
    workers: usize,
    stats: StatsHandle,
    coalesce: Coalesce,
    busy_poll: std::time::Duration,
    net: NetEngine,
    access: Option<Arc<dyn AccessPolicy>>,
    initiator_luns: std::collections::HashMap<(String, String), Arc<LunTable>>,
    conn_limits: ConnLimits,
}

impl Server {
    /// Bind every portal. Fails with the address in the message if one cannot be bound.
    pub fn bind(setup: Setup) -> io::Result<Server> {
        let mut listeners = Vec::with_capacity(setup.portals.len());
        for addr in &setup.portals {
            let l = TcpListener::bind(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            l.set_nonblocking(true)?;
            listeners.push(l);
        }
        let mut addrs = Vec::new();
        for l in &listeners {
            addrs.push(l.local_addr()?);
        }
        let portals: Vec<String> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{a},{}", i + 1))
            .collect();
        let port_count = u16::try_from(addrs.len()).unwrap_or(u16::MAX);
        for t in &setup.targets {
            t.luns.set_target_port_count(port_count);
        }
        let catalog = Catalog {
            targets: setup
                .targets
                .iter()
                .map(|t| TargetEntry {
                    name: t.iqn.clone(),
                    alias: t.alias.clone(),
                    portals: portals.clone(),
                })
                .collect(),
        };
        let workers = if setup.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            setup.workers
        };
        Ok(Server {
            listeners,
            portals: Arc::new(addrs),
            targets: Arc::new(setup.targets),
            catalog: Arc::new(catalog),
            limits: setup.limits,
            workers,
            stats: StatsHandle::default(),
            coalesce: Coalesce::default(),
            busy_poll: std::time::Duration::ZERO,
            net: NetEngine::default(),
            access: None,
            initiator_luns: std::collections::HashMap::new(),
            conn_limits: ConnLimits::default(),
        })
    }

    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Keep each event loop polling without sleeping for `window` after socket activity, so that
    /// a request arriving in that window needs no thread wake-up (zero: always sleep). Costs CPU
    /// while a connection is idle between requests; takes effect at [`Server::run`].
    pub fn set_busy_poll(&mut self, window: std::time::Duration) {
        self.busy_poll = window;
    }

    /// Choose the network engine of the event loops; takes effect at [`Server::run`].
    pub fn set_net(&mut self, net: NetEngine) {
        self.net = net;
    }

    /// Check every login against `access`: who may log in to which target (and to discovery
    /// sessions), with or without CHAP (one-way or mutual), and which targets SendTargets shows
    /// each initiator. Each connection gets its CHAP challenge from the kernel's CSPRNG. Without
    /// a policy (the default) every initiator logs in without authentication. Takes effect at
    /// [`Server::run`].
    pub fn set_access(&mut self, access: Arc<dyn AccessPolicy>) {
        self.access = Some(access);
    }

    /// Give `initiator` its own view of `target`: sessions of that initiator to that target use
    /// `luns` instead of the target's table (REPORT LUNS lists only its LUNs, and EXTENDED COPY
    /// resolves designators only among them). Build `luns` from the target's devices
    /// ([`LunTable::device`]) so that both views share state and data. Names compare
    /// case-insensitively. Takes effect at [`Server::run`].
    pub fn set_initiator_luns(&mut self, target: &str, initiator: &str, luns: Arc<LunTable>) {
        let key = (target.to_ascii_lowercase(), initiator.to_ascii_lowercase());
        self.initiator_luns.insert(key, luns);
    }

    /// Set the limits on sessions and on connections in login (see [`ConnLimits`]); takes
    /// effect at [`Server::run`].
    pub fn set_conn_limits(&mut self, limits: ConnLimits) {
        self.conn_limits = limits;
    }

    /// Set adaptive reply coalescing (see [`Coalesce`]); takes effect at [`Server::run`].
    pub fn set_coalesce(&mut self, coalesce: Coalesce) {
        self.coalesce = coalesce;
    }

    /// The datapath counters of this server (system calls, store I/O, commands), readable from
    /// any thread while it runs and after it stopped.
    pub fn stats(&self) -> StatsHandle {
        self.stats.clone()
    }

    /// Serve until `stop` is signalled; then fail in-flight commands, flush every store and return.
    pub fn run(self, stop: StopHandle) -> io::Result<()> {
        alloc::keep_buffers_warm();
        match rlimit::raise_nofile() {
            Ok((before, after)) if after > before => {
                log::info!("open file limit raised from {before} to {after}");
            }
            Ok((_, now)) => log::info!("open file limit {now}"),
            Err(e) => log::warn!("cannot raise the open file limit: {e}"),
        }
        let gauges = self.stats.gauges();
        let registry = Arc::new(
            registry::Registry::new(self.targets.clone())
                .with_access(self.access.clone(), self.initiator_luns.clone())
                .with_limits(self.conn_limits.max_sessions, gauges.clone()),
        );
        let sessions: Arc<dyn iscsi_proto::SessionGate> = Arc::new(limits::SessionSlots {
            registry: registry.clone(),
        });
        let mut handles = Vec::new();
        let mut senders = Vec::new();
        for idx in 0..self.workers {
            let env = conn::LoopEnv {
                worker: idx,
                registry: registry.clone(),
                catalog: self.catalog.clone(),
                limits: self.limits.clone(),
                stats: self.stats.new_loop(),
                coalesce: self.coalesce,
                sessions: sessions.clone(),
                portals: self.portals.clone(),
            };
            let (setup, handle) = worker::LoopSetup::new(idx, env, stop.clone(), self.busy_poll)?;
            stop.add_waker(Wake::Event(setup.wake.clone()));
            senders.push(handle.clone());
            registry.add_worker(handle);
            let uring = self.net == NetEngine::Uring;
            handles.push(
                std::thread::Builder::new()
                    .name(format!("ustgt-loop-{idx}"))
                    .spawn(move || worker::run_loop(setup, uring))?,
            );
        }
        let gate = limits::LoginGate::new(self.conn_limits, self.listeners.len(), gauges);
        let acc = acceptor::Acceptor::new(self.listeners, senders, stop.clone(), gate)?;
        stop.add_waker(Wake::Mio(acc.waker()));
        if stop.is_stopped() {
            stop.stop();
        }
        let acc_result = acc.run();
        for h in handles {
            if h.join().is_err() {
                log::error!("an event loop thread panicked");
            }
        }
        log::info!("stats: {}", self.stats.snapshot());
        let mut flush_result = Ok(());
        for t in self.targets.iter() {
            if let Err(e) = t.luns.flush_all() {
                log::error!("flushing target {}: {e}", t.iqn);
                flush_result = Err(e);
            }
        }
        acc_result.and(flush_result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_portal_is_its_own_portal_group() {
        let a: SocketAddr = "127.0.0.1:3260".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:3260".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:3261".parse().unwrap();
        let v6: SocketAddr = "[::]:3262".parse().unwrap();
        let portals = [a, b, any, v6];
        assert_eq!(portal_group(&portals, a), 1);
        assert_eq!(portal_group(&portals, b), 2);
        assert_eq!(portal_group(&portals, "10.1.2.3:3261".parse().unwrap()), 3);
        assert_eq!(portal_group(&portals, "[::1]:3262".parse().unwrap()), 4);
        // An IPv4 connection to a dual-stack socket shows up as a mapped address.
        let mapped: SocketAddr = "[::ffff:127.0.0.2]:3260".parse().unwrap();
        assert_eq!(portal_group(&portals, mapped), 2);
        assert_eq!(portal_group(&portals, "127.0.0.9:9".parse().unwrap()), 1);
    }
}
