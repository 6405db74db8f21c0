//! The engine-independent part of one iSCSI connection: the receive buffer, the PDU decoder,
//! the protocol engine, the output queue, and the dispatch of protocol outputs to the SCSI
//! engine. It never touches the socket: an event loop engine (`epoll_conn.rs`, `uring_conn.rs`)
//! moves bytes between the socket and this state and tells it what happened ("n bytes arrived
//! at the end of the receive buffer", "the peer closed", "these bytes are being sent").
use std::net::SocketAddr;
use std::sync::Arc;

use iscsi_proto::{
    tmf_function, tmf_response, Catalog, Connection, ConnectionConfig, Limits, Output, ScsiResult,
    SessionInfo, Task, TaskId, TmfRequest,
};
use iscsi_wire::Decoder;
use scsi_core::{LunTable, NexusId, Request, Response, Started, TaskAttr};

use crate::aio::QueuedIo;
use crate::clock::now_ms;
use crate::coalesce::{Coalesce, CoalesceMode, Coalescer};
use crate::outq::OutQueue;
use crate::registry::{hex, Registry, SessionKey};
use crate::stats::{Counter, LoopStats};

/// Bytes read from the socket per read call, and the initial receive buffer size.
const READ_CHUNK: usize = 256 * 1024;
/// Above this much unsent output, stop reading new commands until the peer catches up.
const WRITE_BACKLOG_LIMIT: usize = 8 * 1024 * 1024;

/// The session a logged-in connection belongs to.
struct Session {
    key: Option<SessionKey>,
    luns: Option<Arc<LunTable>>,
    nexus: NexusId,
    info: SessionInfo,
}

/// What every connection of one event loop shares.
pub struct LoopEnv {
    /// Index of the event loop.
    pub worker: usize,
    pub registry: Arc<Registry>,
    pub catalog: Arc<Catalog>,
    pub limits: Limits,
    pub stats: Arc<LoopStats>,
    pub coalesce: Coalesce,
}

/// One connection's protocol state, without its socket.
pub struct Conn {
    id: u64,
    worker: usize,
    peer: Option<SocketAddr>,
    proto: Connection,
    decoder: Decoder,
    /// Received bytes: `rbuf[rstart..filled]` is not yet decoded.
    rbuf: Vec<u8>,
    rstart: usize,
    filled: usize,
    /// `rbuf[filled..]` is lent to an asynchronous receive: the buffer must not be touched
    /// (read, compacted, grown or freed) until [`Conn::received`] or [`Conn::rx_returned`].
    rx_lent: bool,
    out: OutQueue,
    /// Bytes taken from `out` by the engine and not yet confirmed sent (asynchronous sends).
    in_flight: usize,
    stats: Arc<LoopStats>,
    coalesce: Coalesce,
    coalescer: Coalescer,
    session: Option<Session>,
    registry: Arc<Registry>,
    /// The peer closed its side or the socket failed: nothing more will be read.
    eof: bool,
    /// The protocol engine asked to close once pending output is sent.
    closing: bool,
    /// Reading stopped because of output backlog; resume after a flush.
    read_paused: bool,
    /// Commands started for asynchronous I/O, for the event loop to queue.
    queued: Vec<QueuedIo>,
}

impl Conn {
    /// A fresh connection accepted on `local` from `peer`.
    pub fn new(id: u64, local: SocketAddr, peer: Option<SocketAddr>, env: &LoopEnv) -> Conn {
        let cfg = ConnectionConfig {
            catalog: env.catalog.clone(),
            limits: env.limits.clone(),
            portal_group_tag: crate::PORTAL_GROUP_TAG,
            local_portal: local.to_string(),
            tsih: env.registry.alloc_tsih(),
        };
        let mut proto = Connection::new(cfg, now_ms());
        proto.set_shared_data_in(true);
        let decoder = Decoder::new(proto.decoder_config());
        Conn {
            id,
            worker: env.worker,
            peer,
            proto,
            decoder,
            rbuf: vec![0; READ_CHUNK],
            rstart: 0,
            filled: 0,
            rx_lent: false,
            out: OutQueue::default(),
            in_flight: 0,
            stats: env.stats.clone(),
            coalesce: env.coalesce,
            coalescer: Coalescer::default(),
            session: None,
            registry: env.registry.clone(),
            eof: false,
            closing: false,
            read_paused: false,
            queued: Vec::new(),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The counters of the loop that owns this connection.
    pub fn stats(&self) -> &LoopStats {
        &self.stats
    }

    pub fn on_tick(&mut self, now: u64) {
        if self.proto.next_timeout().is_some_and(|t| t <= now) {
            self.proto.handle_timeout(now);
            self.drain_outputs();
        }
    }

    pub fn next_timeout(&self) -> Option<u64> {
        self.proto.next_timeout()
    }

    /// Close at once (reinstatement or server stop): the engine fails what is in flight; the
    /// event loop sends what was produced and closes.
    pub fn kill(&mut self) {
        self.proto.abort();
        self.drain_outputs();
        self.closing = true;
    }

    /// True when the connection has nothing more to do and can be closed.
    pub fn is_done(&self) -> bool {
        self.out.is_empty()
            && self.in_flight == 0
            && (self.eof || self.closing || self.proto.is_closed())
    }

    /// The protocol engine asked to close: read nothing more.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Input is wanted: not closing, not at end of stream, not paused for output backlog.
    pub fn input_open(&self) -> bool {
        !self.closing && !self.eof && !self.read_paused
    }

    /// End the session this connection held, if any (the socket is the engine's to close).
    pub fn end_session(&mut self) {
        if let Some(s) = self.session.take() {
            if let Some(key) = &s.key {
                self.registry.unregister(key, self.id);
                if let Some(luns) = &s.luns {
                    luns.nexus_lost(s.nexus);
                }
            }
            log::info!(
                "logout: initiator {} from {} ({})",
                s.info.initiator_name,
                s.info.target_name.as_deref().unwrap_or("discovery"),
                self.peer.map_or_else(|| "?".into(), |p| p.to_string())
            );
        }
    }

    /// Before a read: true (and reading pauses) when unsent output has reached the backlog
    /// limit.
    pub fn backlogged(&mut self) -> bool {
        if self.pending_out() >= WRITE_BACKLOG_LIMIT {
            self.read_paused = true;
        }
        self.read_paused
    }

    /// The free tail of the receive buffer, for a synchronous read (never while it is lent).
    pub fn recv_space(&mut self) -> &mut [u8] {
        debug_assert!(!self.rx_lent, "receive buffer lent to the kernel");
        self.make_room();
        &mut self.rbuf[self.filled..]
    }

    /// Lend the free tail of the receive buffer to an asynchronous receive: its address and
    /// length, or `None` when no more input is wanted now (or it is already lent). The buffer
    /// is neither read, moved nor freed by this connection until [`Conn::received`],
    /// [`Conn::received_eof`] or [`Conn::rx_returned`] ends the loan, or [`Conn::leak_rx`]
    /// gives it up.
    pub fn lend_rx(&mut self) -> Option<(*mut u8, usize)> {
        if self.rx_lent || self.proto.is_closed() || !self.input_open() || self.backlogged() {
            return None;
        }
        self.make_room();
        self.rx_lent = true;
        let spare = &mut self.rbuf[self.filled..];
        Some((spare.as_mut_ptr(), spare.len()))
    }

    /// An asynchronous receive ended without data (cancelled, interrupted, or the socket
    /// failed when `failed`): the buffer is ours again.
    pub fn rx_returned(&mut self, failed: bool) {
        self.rx_lent = false;
        self.eof |= failed;
    }

    /// The connection is being dropped while a receive may still write into the buffer:
    /// forget the buffer rather than free it.
    pub fn leak_rx(&mut self) {
        std::mem::forget(std::mem::take(&mut self.rbuf));
        self.rstart = 0;
        self.filled = 0;
    }

    /// `n` bytes arrived at the start of the free tail: decode and handle every complete PDU.
    pub fn received(&mut self, n: usize) {
        self.rx_lent = false;
        self.filled = (self.filled + n).min(self.rbuf.len());
        self.process_input();
    }

    /// The peer closed its side (a read returned 0): handle what is left.
    pub fn received_eof(&mut self) {
        self.rx_lent = false;
        self.eof = true;
        self.process_input();
    }

    /// The socket failed: nothing more will be read or written.
    pub fn failed(&mut self) {
        self.eof = true;
    }

    /// Reading was paused for backlog and the backlog has drained: unpause and handle the
    /// input already buffered. True when it did (the caller then reads more and flushes).
    pub fn resume_input(&mut self) -> bool {
        if !self.read_paused || self.pending_out() >= WRITE_BACKLOG_LIMIT / 2 {
            return false;
        }
        self.read_paused = false;
        self.process_input();
        true
    }

    /// Reading is paused until output drains.
    pub fn is_read_paused(&self) -> bool {
        self.read_paused
    }

    /// Output produced and not yet sent, including bytes of asynchronous sends in flight.
    pub fn pending_out(&self) -> usize {
        self.out.pending() + self.in_flight
    }

    /// The output queue, for the engine to send from.
    pub fn out(&mut self) -> &mut OutQueue {
        &mut self.out
    }

    /// Bytes an asynchronous send holds (taken from [`Conn::out`] and not yet sent).
    pub fn set_in_flight(&mut self, bytes: usize) {
        self.in_flight = bytes;
    }

    /// Make space at the end of the receive buffer: compact, or grow when one PDU needs more.
    fn make_room(&mut self) {
        if self.rx_lent {
            return;
        }
        if self.rstart == self.filled {
            self.rstart = 0;
            self.filled = 0;
        }
        if self.rbuf.len() - self.filled >= READ_CHUNK / 4 {
            return;
        }
        if self.rstart > 0 {
            self.rbuf.copy_within(self.rstart..self.filled, 0);
            self.filled -= self.rstart;
            self.rstart = 0;
        }
        if self.rbuf.len() - self.filled < READ_CHUNK / 4 {
            let len = self.rbuf.len().max(READ_CHUNK) * 2;
            self.rbuf.resize(len, 0);
        }
    }

    /// Decode and handle every complete PDU in the receive buffer.
    fn process_input(&mut self) {
        // The kernel owns the tail of a lent buffer; input is handled when the loan ends.
        if self.rx_lent {
            return;
        }
        // One clock reading per batch of input (it only feeds protocol timers).
        let now = now_ms();
        while !self.closing && !self.proto.is_closed() {
            if self.pending_out() >= WRITE_BACKLOG_LIMIT {
                self.read_paused = true;
                return;
            }
            self.decoder.set_config(self.proto.decoder_config());
            let result = self.decoder.decode(&self.rbuf[self.rstart..self.filled]);
            let used = self.decoder.last_consumed();
            self.rstart += used;
            match result {
                Ok((_, Some(pdu))) => {
                    self.proto.handle_pdu(pdu, now);
                    self.drain_outputs();
                }
                Ok((_, None)) => {
                    if used == 0 {
                        return;
                    }
                }
                Err(e) => {
                    let fatal = e.is_fatal();
                    log::debug!("connection {}: {e:?}", self.id);
                    self.proto.handle_wire_error(e, now);
                    self.drain_outputs();
                    if fatal {
                        self.closing = true;
                        return;
                    }
                }
            }
        }
    }

    /// Act on everything the protocol engine produced.
    fn drain_outputs(&mut self) {
        while let Some(out) = self.proto.poll() {
            match out {
                Output::Transmit(pdu, digests) => self.out.push_pdu(&pdu, digests),
                Output::TransmitShared(pdu, data, digests) => {
                    self.out.push_shared(&pdu, data, digests)
                }
                Output::Execute(task) => self.execute(task),
                Output::LoggedIn(info) => self.logged_in(info),
                Output::TaskMgmt(req) => self.task_mgmt(req),
                Output::Close => self.closing = true,
            }
        }
    }

    /// Commands waiting to be queued by the event loop.
    pub fn take_queued(&mut self) -> Vec<QueuedIo> {
        std::mem::take(&mut self.queued)
    }

    /// The response of a command that went through an I/O queue.
    pub fn finish_io(&mut self, task: TaskId, r: Response) {
        self.proto.complete(task, scsi_result(r));
        self.drain_outputs();
    }

    /// Start one SCSI command: queued I/O goes to the event loop; everything else runs to
    /// completion on this thread and the result goes back at once.
    fn execute(&mut self, task: Task) {
        self.stats.add(Counter::Command, 1);
        self.coalescer.command();
        let result = match &self.session {
            Some(Session {
                luns: Some(luns),
                nexus,
                ..
            }) => {
                let req = Request {
                    nexus: *nexus,
                    cdb: &task.cdb,
                    data_out: &task.data_out,
                    expected_len: task.expected_len,
                    attr: task_attr(task.attr),
                };
                match luns.start(task.lun, &req) {
                    Started::Done(r) => {
                        if is_read_write(&task.cdb) {
                            self.stats.add(Counter::StoreIo, 1);
                        }
                        scsi_result(r)
                    }
                    Started::Io { op, pending } => {
                        self.queued.push(QueuedIo {
                            task: task.id,
                            op,
                            pending,
                        });
                        return;
                    }
                }
            }
            // A discovery session has no logical units.
            _ => ScsiResult {
                status: scsi_core::Status::CHECK_CONDITION.0,
                // ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED (fixed format).
                sense: vec![
                    0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x25, 0, 0, 0, 0, 0,
                ],
                data_in: Vec::new(),
                data_out_wanted: 0,
            },
        };
        self.proto.complete(task.id, result);
    }

    fn logged_in(&mut self, info: SessionInfo) {
        let peer = self.peer.map_or_else(|| "?".into(), |p| p.to_string());
        log::info!(
            "login: initiator {}{} isid 0x{} tsih {} to {} from {}",
            info.initiator_name,
            info.initiator_alias
                .as_deref()
                .map_or_else(String::new, |a| format!(" ({a})")),
            hex(&info.isid),
            info.tsih,
            info.target_name.as_deref().unwrap_or("discovery"),
            peer
        );
        let (key, luns, nexus) = match &info.target_name {
            Some(target) if !info.discovery => {
                let key = SessionKey {
                    initiator: info.initiator_name.clone(),
                    isid: info.isid,
                    target: target.clone(),
                };
                let nexus = self
                    .registry
                    .nexus(&info.initiator_name, &info.isid, target);
                self.registry.register(key.clone(), self.worker, self.id);
                let luns = self.registry.lun_table(target);
                if let Some(l) = &luns {
                    // The initiator port as an iSCSI TransportID names it, for persistent
                    // reservations (READ FULL STATUS, REGISTER AND MOVE, APTPL).
                    let port = format!("{},i,0x{}", info.initiator_name, hex(&info.isid));
                    l.name_nexus(nexus, &port);
                }
                (Some(key), luns, nexus)
            }
            _ => (None, None, NexusId(0)),
        };
        self.session = Some(Session {
            key,
            luns,
            nexus,
            info,
        });
    }

    /// A task management function the SCSI layer must act on (the protocol engine handles
    /// ABORT TASK and ABORT TASK SET itself: commands run to completion as soon as their data is
    /// in, so only tasks still collecting Data-Out can be aborted, and it owns those).
    fn task_mgmt(&mut self, req: TmfRequest) {
        let luns = self.session.as_ref().and_then(|s| s.luns.clone());
        let nexus = self.session.as_ref().map(|s| s.nexus);
        let response = match (req.function, luns) {
            (_, None) => tmf_response::LUN_DOES_NOT_EXIST,
            (tmf_function::ABORT_TASK_SET | tmf_function::CLEAR_TASK_SET, Some(l)) => {
                if let Some(n) = nexus {
                    l.abort_task_set(req.lun, n);
                }
                tmf_response::FUNCTION_COMPLETE
            }
            (tmf_function::LOGICAL_UNIT_RESET, Some(l)) => {
                if l.lun_reset(req.lun, nexus) {
                    tmf_response::FUNCTION_COMPLETE
                } else {
                    tmf_response::LUN_DOES_NOT_EXIST
                }
            }
            (tmf_function::TARGET_WARM_RESET | tmf_function::TARGET_COLD_RESET, Some(l)) => {
                l.target_reset(nexus);
                tmf_response::FUNCTION_COMPLETE
            }
            _ => tmf_response::NOT_SUPPORTED,
        };
        log::info!(
            "task management function {} on lun {} -> response {}",
            req.function,
            req.lun,
            response
        );
        self.proto.task_mgmt_done(req.itt, response);
        self.drain_outputs();
    }

    /// End of an event loop iteration: true to hold the replies it produced while the
    /// connection is busy (adaptive coalescing), so that the loop polls again at once and
    /// writes them as soon as an iteration brings no new command; false to write them now.
    pub fn end_iteration(&mut self) -> bool {
        let (pending, unread) = (self.pending_out(), self.proto.unread_statuses());
        if self
            .coalescer
            .end_iteration_unread(&self.coalesce, pending, unread)
        {
            self.stats.add(Counter::Held, 1);
            return true;
        }
        false
    }

    /// Replies the initiator has not yet acknowledged reading (see
    /// [`Connection::unread_statuses`]).
    pub fn unread_statuses(&self) -> u32 {
        self.proto.unread_statuses()
    }

    /// True while adaptive coalescing counts this connection as busy.
    pub fn is_coalescing(&self) -> bool {
        self.coalesce.mode != CoalesceMode::Off && self.coalescer.busy(&self.coalesce)
    }
}

/// READ and WRITE (6, 10, 12, 16): the commands that reach the store's data path.
fn is_read_write(cdb: &[u8]) -> bool {
    matches!(
        cdb.first(),
        Some(0x08 | 0x0a | 0x28 | 0x2a | 0x88 | 0x8a | 0xa8 | 0xaa)
    )
}

fn scsi_result(r: Response) -> ScsiResult {
    ScsiResult {
        status: r.status.0,
        sense: r.sense,
        data_in: r.data_in,
        data_out_wanted: r.data_out_wanted,
    }
}

fn task_attr(attr: u8) -> TaskAttr {
    match attr {
        0 | 1 => TaskAttr::Simple,
        2 => TaskAttr::Ordered,
        3 => TaskAttr::HeadOfQueue,
        4 => TaskAttr::Aca,
        other => TaskAttr::Other(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::StatsHandle;

    fn conn() -> Conn {
        let env = LoopEnv {
            worker: 0,
            registry: Arc::new(Registry::new(Arc::new(Vec::new()))),
            catalog: Arc::new(Catalog {
                targets: Vec::new(),
            }),
            limits: Limits::default(),
            stats: StatsHandle::default().new_loop(),
            coalesce: Coalesce::default(),
        };
        Conn::new(1, ([127, 0, 0, 1], 3260).into(), None, &env)
    }

    #[test]
    fn receive_buffer_is_lent_once_and_stays_put() {
        let mut c = conn();
        let (p, len) = c.lend_rx().expect("lent");
        assert!(len >= READ_CHUNK / 4);
        assert!(c.lend_rx().is_none(), "lent twice");
        c.rx_returned(false);
        let (p2, _) = c.lend_rx().expect("lent again");
        assert_eq!(p, p2, "an empty buffer is lent from its start");
        // Half a BHS arrives (the decoder may keep it): the next loan is the free tail.
        c.received(24);
        let (p3, len3) = c.lend_rx().expect("lent after data");
        let off = p3 as usize - p as usize;
        assert!(off == 0 || off == 24, "loan at offset {off}");
        assert_eq!(len3, len - off);
        c.received_eof();
        assert!(c.lend_rx().is_none(), "no receive after end of stream");
        assert!(c.is_done());
    }
}
