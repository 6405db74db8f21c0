//! A connection of the io_uring engine: the shared protocol state ([`Conn`]) plus at most one
//! receive and one send request in flight on its socket.
//!
//! Buffer ownership while a request is in flight:
//! - a receive writes into the free tail of the connection's receive buffer, lent by
//!   [`Conn::lend_rx`]: the connection neither reads, compacts, grows nor frees that buffer
//!   until the completion ends the loan ([`Conn::received`] and friends);
//! - a send reads from `sending`, an output queue taken whole from [`Conn::out`] (new replies
//!   go to the connection's own queue meanwhile), through the gather list and message header in
//!   `msg`, a heap block whose address does not change when the connection moves. Neither is
//!   touched until the send's completion; a short send then resubmits the rest.
//!
//! A connection is only dropped once neither request is in flight ([`UringConn::is_gone`]),
//! after [`UringConn::teardown`] cancelled them; should one still be in flight at drop (the
//! bounded wait at server stop ran out), its buffers are leaked, never freed under the kernel.
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use mio::net::TcpStream;

use crate::conn::{Conn, LoopEnv};
use crate::limits::LoginTicket;
use crate::outq::{OutQueue, MAX_IOV};
use crate::uring::{Op, Ring};

/// The gather list and header of one `sendmsg`.
struct SendMsg {
    iov: [libc::iovec; MAX_IOV],
    hdr: libc::msghdr,
}

impl SendMsg {
    fn boxed() -> Box<SendMsg> {
        // SAFETY: iovec and msghdr are plain C structs of integers and pointers, for which all
        // zero bytes (null pointers, zero lengths) is a valid value.
        Box::new(unsafe { std::mem::zeroed() })
    }
}

pub struct UringConn {
    pub core: Conn,
    sock: TcpStream,
    /// Output being sent: taken from `core.out()`, untouched while `send_armed`.
    sending: OutQueue,
    msg: Box<SendMsg>,
    recv_armed: bool,
    send_armed: bool,
    /// Bytes the receive in flight asked for.
    asked: usize,
    /// The last receive returned less than it asked for: the socket was drained, so the next
    /// receive waits for data before trying.
    drained: bool,
    /// A send failed: the peer is gone, output is dropped instead of sent.
    send_failed: bool,
    /// The session has ended and the socket is shut down; waiting for requests in flight.
    torn_down: bool,
}

impl UringConn {
    pub fn new(
        id: u64,
        sock: TcpStream,
        env: &LoopEnv,
        ticket: LoginTicket,
    ) -> io::Result<UringConn> {
        let local = sock.local_addr()?;
        let peer = sock.peer_addr().ok();
        let mut core = Conn::new(id, local, peer, env);
        core.hold_login_ticket(ticket);
        Ok(UringConn {
            core,
            sock,
            sending: OutQueue::default(),
            msg: SendMsg::boxed(),
            recv_armed: false,
            send_armed: false,
            asked: 0,
            drained: false,
            send_failed: false,
            torn_down: false,
        })
    }

    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Start a receive unless one is in flight or no input is wanted now.
    pub fn arm_recv(&mut self, ring: &mut Ring) {
        if self.recv_armed || self.torn_down {
            return;
        }
        let Some((buf, len)) = self.core.lend_rx() else {
            return;
        };
        let (fd, id) = (self.fd(), self.core.id());
        // SAFETY: `buf[..len]` is the lent tail of the receive buffer, which the connection
        // leaves alone until the loan ends (`on_recv`, after this request's completion);
        // dropping the connection with the receive in flight leaks the buffer (Drop).
        match unsafe { ring.recv(fd, buf, len, id, self.drained) } {
            Ok(()) => {
                self.recv_armed = true;
                self.asked = len;
            }
            Err(e) => {
                log::debug!("connection {id}: cannot queue a receive: {e}");
                self.core.rx_returned(false);
            }
        }
    }

    /// The receive completed with `res`. Returns the bytes received.
    pub fn on_recv(&mut self, res: i32) -> usize {
        self.recv_armed = false;
        if self.torn_down {
            self.core.rx_returned(false);
            return 0;
        }
        match res {
            n if n > 0 => {
                let n = n as usize;
                self.drained = n < self.asked;
                self.core.received(n);
                n
            }
            0 => {
                self.core.received_eof();
                0
            }
            e if e == -libc::EINTR || e == -libc::EAGAIN || e == -libc::ECANCELED => {
                self.drained = false;
                self.core.rx_returned(false);
                0
            }
            e => {
                log::debug!(
                    "connection {}: receive: {}",
                    self.core.id(),
                    io::Error::from_raw_os_error(-e)
                );
                self.core.rx_returned(true);
                0
            }
        }
    }

    /// Start a send of the output waiting, unless one is in flight: the rest of a short send
    /// first, else everything the connection produced since the last send.
    pub fn flush(&mut self, ring: &mut Ring) {
        if self.send_armed || self.torn_down || self.core.output_held() {
            return;
        }
        if self.send_failed {
            // Replies of commands that finished after the peer went away.
            self.core.out().clear();
            return;
        }
        if self.sending.is_empty() {
            if self.core.out().is_empty() {
                return;
            }
            std::mem::swap(&mut self.sending, self.core.out());
            self.core.set_in_flight(self.sending.pending());
        }
        let n = self.sending.fill_iovecs(&mut self.msg.iov);
        self.msg.hdr.msg_iov = self.msg.iov.as_mut_ptr();
        self.msg.hdr.msg_iovlen = n as _;
        let (fd, id) = (self.fd(), self.core.id());
        // SAFETY: the header and gather list live in `self.msg` (a heap block that stays put
        // when the connection moves) and describe buffers owned by `self.sending`; neither is
        // modified until this request's completion (`on_send`), and dropping the connection
        // with the send in flight leaks them (Drop).
        match unsafe { ring.send(fd, &self.msg.hdr, id) } {
            Ok(()) => self.send_armed = true,
            // Retried at the end of a later iteration.
            Err(e) => log::debug!("connection {id}: cannot queue a send: {e}"),
        }
    }

    /// The send completed with `res`: drop what was sent, resubmit the rest of a short send,
    /// resume reading when a backlog drained.
    pub fn on_send(&mut self, res: i32, ring: &mut Ring) {
        self.send_armed = false;
        if self.torn_down {
            self.sending.clear();
            self.core.set_in_flight(0);
            return;
        }
        match res {
            n if n > 0 => {
                self.sending.advance(n as usize);
                self.core.set_in_flight(self.sending.pending());
                if !self.sending.is_empty() {
                    self.flush(ring);
                }
                self.core.resume_input();
            }
            e if e == -libc::EINTR || e == -libc::EAGAIN => self.flush(ring),
            e => {
                if e != 0 {
                    log::debug!(
                        "connection {}: send: {}",
                        self.core.id(),
                        io::Error::from_raw_os_error(-e)
                    );
                }
                self.send_failed = true;
                self.sending.clear();
                self.core.out().clear();
                self.core.set_in_flight(0);
                self.core.failed();
            }
        }
    }

    /// End of a loop iteration: send the replies it produced unless coalescing holds them
    /// (then true: poll again without sleeping).
    pub fn end_iteration(&mut self, ring: &mut Ring) -> bool {
        if self.torn_down {
            return false;
        }
        if self.core.end_iteration() {
            return true;
        }
        self.flush(ring);
        false
    }

    /// Close at once (reinstatement or server stop); what was produced is sent at the end of
    /// the iteration.
    pub fn kill(&mut self) {
        if !self.torn_down {
            self.core.kill();
        }
    }

    /// True when the connection has nothing more to do and can be torn down.
    pub fn is_done(&self) -> bool {
        // After the linger a send stuck on a peer that does not read is cancelled.
        let send_done = !self.send_armed || self.core.linger_over();
        !self.torn_down && send_done && self.core.is_done()
    }

    /// End the session, shut the socket down and cancel the requests in flight; the
    /// connection stays until their completions are reaped ([`UringConn::is_gone`]).
    pub fn teardown(&mut self, ring: &mut Ring) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        self.core.end_session();
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        let id = self.core.id();
        // The shutdown alone completes both; the cancellations make sure of it.
        if self.recv_armed {
            let _ = ring.cancel(Op::Recv(id));
        }
        if self.send_armed {
            let _ = ring.cancel(Op::Send(id));
        }
    }

    /// Torn down and no request in flight: safe to drop.
    pub fn is_gone(&self) -> bool {
        self.torn_down && !self.recv_armed && !self.send_armed
    }

    /// A request is in flight.
    pub fn is_busy(&self) -> bool {
        self.recv_armed || self.send_armed
    }
}

impl Drop for UringConn {
    fn drop(&mut self) {
        if self.recv_armed {
            log::error!(
                "connection {}: receive still in flight; leaking its buffer",
                self.core.id()
            );
            self.core.leak_rx();
        }
        if self.send_armed {
            log::error!(
                "connection {}: send still in flight; leaking its buffers",
                self.core.id()
            );
            std::mem::forget(std::mem::take(&mut self.sending));
            std::mem::forget(std::mem::replace(&mut self.msg, SendMsg::boxed()));
        }
    }
}
