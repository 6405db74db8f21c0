//! The acceptor thread: accepts on every portal and deals connections out to the event loops.
//! A connection beyond the login limits of its portal or source address is closed at once
//! (`limits.rs`).
use std::io;
use std::net::TcpListener as StdListener;
use std::sync::Arc;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::limits::LoginGate;
use crate::worker::{Msg, WorkerHandle};
use crate::StopHandle;

const WAKER: Token = Token(usize::MAX);

pub struct Acceptor {
    poll: Poll,
    waker: Arc<Waker>,
    listeners: Vec<TcpListener>,
    workers: Vec<WorkerHandle>,
    stop: StopHandle,
    gate: Arc<LoginGate>,
}

impl Acceptor {
    pub fn new(
        listeners: Vec<StdListener>,
        workers: Vec<WorkerHandle>,
        stop: StopHandle,
        gate: Arc<LoginGate>,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut mio_listeners = Vec::with_capacity(listeners.len());
        for (i, l) in listeners.into_iter().enumerate() {
            let mut l = TcpListener::from_std(l);
            poll.registry()
                .register(&mut l, Token(i), Interest::READABLE)?;
            mio_listeners.push(l);
        }
        Ok(Acceptor {
            poll,
            waker,
            listeners: mio_listeners,
            workers,
            stop,
            gate,
        })
    }

    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(64);
        let mut next = 0usize;
        while !self.stop.is_stopped() {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in events.iter() {
                let portal = ev.token().0;
                let Some(l) = self.listeners.get(portal) else {
                    continue;
                };
                loop {
                    match l.accept() {
                        Ok((stream, peer)) => {
                            log::debug!("connection from {peer}");
                            // Beyond a login limit the stream is dropped: closed.
                            let Some(ticket) = self.gate.try_enter(portal, peer.ip()) else {
                                continue;
                            };
                            let _ = stream.set_nodelay(true);
                            let w = &self.workers[next % self.workers.len()];
                            next = next.wrapping_add(1);
                            w.send(Msg::NewConn(stream, ticket));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            // EMFILE and friends: log and retry on the next readiness event.
                            log::warn!("accept: {e}");
                            break;
                        }
                    }
                }
            }
        }
        // Stopped: make sure every loop has seen the stop.
        for w in &self.workers {
            w.send(Msg::Stop);
        }
        Ok(())
    }
}
