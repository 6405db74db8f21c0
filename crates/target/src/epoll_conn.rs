//! A connection of the epoll (mio) engine: the shared protocol state ([`Conn`]) plus a
//! non-blocking socket registered for edge-triggered readiness, read with `read` and written
//! with `writev`.
use std::io::{self, Read};

use mio::net::TcpStream;
use mio::{Interest, Registry as MioRegistry, Token};

use crate::conn::{Conn, LoopEnv};
use crate::limits::LoginTicket;
use crate::outq::Flushed;
use crate::stats::Counter;

pub struct EpollConn {
    pub core: Conn,
    sock: TcpStream,
    /// The last write found the socket full: write again when it becomes writable.
    blocked: bool,
    /// The peer shut its side: read until the end of stream, which brings no new event.
    peer_closed: bool,
}

impl EpollConn {
    pub fn new(
        id: u64,
        mut sock: TcpStream,
        poll: &MioRegistry,
        env: &LoopEnv,
        ticket: LoginTicket,
    ) -> io::Result<EpollConn> {
        let local = sock.local_addr()?;
        let peer = sock.peer_addr().ok();
        poll.register(
            &mut sock,
            Token(id as usize),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let mut core = Conn::new(id, local, peer, env);
        core.hold_login_ticket(ticket);
        let mut conn = EpollConn {
            core,
            sock,
            blocked: false,
            peer_closed: false,
        };
        // Data may already be waiting (edge-triggered readiness was armed after it arrived).
        conn.on_ready(true, false);
        Ok(conn)
    }

    /// Readiness from the event loop. Replies are not written here (unless a backlog is being
    /// drained): the loop calls [`EpollConn::end_iteration`] once per iteration, so all replies
    /// of one iteration share one vectored write.
    pub fn on_ready(&mut self, readable: bool, writable: bool) {
        if readable && !self.core.is_closing() {
            self.read_some();
        }
        if (writable && self.blocked) || self.core.is_read_paused() {
            self.flush();
        }
        // Reading was paused for backlog and the backlog drained: catch up on input.
        while self.core.resume_input() {
            if self.core.input_open() {
                self.read_some();
            }
            self.flush();
        }
    }

    /// The event said the peer closed its side (EPOLLRDHUP): a short read no longer means
    /// the socket is drained, since the end of stream still has to be read.
    pub fn peer_closed(&mut self) {
        self.peer_closed = true;
    }

    fn read_some(&mut self) {
        loop {
            if self.core.backlogged() {
                return;
            }
            self.core.stats().add(Counter::Read, 1);
            let buf = self.core.recv_space();
            let want = buf.len();
            match self.sock.read(buf) {
                Ok(0) => {
                    self.core.received_eof();
                    return;
                }
                Ok(n) => {
                    self.core.received(n);
                    // A short read drained the socket: with edge-triggered readiness, new
                    // data raises a new event, so the read that would find nothing is skipped.
                    if self.core.is_closing() || (n < want && !self.peer_closed) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("connection {}: read: {e}", self.core.id());
                    self.core.failed();
                    return;
                }
            }
        }
    }

    /// Close at once (reinstatement or server stop), sending what can be sent.
    pub fn kill(&mut self) {
        self.core.kill();
        self.flush();
    }

    /// End of a loop iteration: write the replies it produced unless coalescing holds them
    /// (then true: poll again without sleeping).
    pub fn end_iteration(&mut self) -> bool {
        if self.core.end_iteration() {
            return true;
        }
        self.flush();
        false
    }

    /// Unregister and drop the socket, ending the session if this connection held it.
    pub fn close(&mut self, poll: &MioRegistry) {
        let _ = poll.deregister(&mut self.sock);
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        self.core.end_session();
    }

    /// Write pending output. The socket is registered for edge-triggered writability, so a
    /// partial write resumes on the next writable event.
    pub fn flush(&mut self) {
        if self.core.out().is_empty() || self.core.output_held() {
            return;
        }
        let mut writes = 0;
        self.blocked = false;
        match self.core.out().flush(&mut self.sock, &mut writes) {
            Flushed::All => {}
            Flushed::Blocked => self.blocked = true,
            Flushed::Failed => self.core.failed(),
        }
        self.core.stats().add(Counter::Write, writes);
    }
}
