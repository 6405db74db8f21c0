//! The engine-independent part of one iSCSI connection: the receive buffer, the PDU decoder,
//! the protocol engine, the output queue, and the dispatch of protocol outputs to the SCSI
//! engine. It never touches the socket: an event loop engine (`epoll_conn.rs`, `uring_conn.rs`)
//! moves bytes between the socket and this state and tells it what happened ("n bytes arrived
//! at the end of the receive buffer", "the peer closed", "these bytes are being sent").
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use iscsi_proto::{
    tmf_function, tmf_response, Catalog, Connection, ConnectionConfig, Limits, Output, ScsiResult,
    SessionGate, SessionInfo, Task, TaskId, TmfRequest,
};
use iscsi_wire::Decoder;
use scsi_core::{Background, LunTable, NexusId, Request, Response, Started, TaskAttr};

use crate::aio::{Finished, QueuedIo};
use crate::clock::now_ms;
use crate::coalesce::{Coalesce, CoalesceMode, Coalescer};
use crate::limits::LoginTicket;
use crate::outq::OutQueue;
use crate::registry::{hex, Registry, SessionKey};
use crate::rxbuf::RxBuf;
use crate::stats::{ConnGauges, Counter, LoopStats};
use crate::worker::Msg;

/// Above this much unsent output, stop reading new commands until the peer catches up.
const WRITE_BACKLOG_LIMIT: usize = 8 * 1024 * 1024;
/// A closing connection whose peer does not read its last output for this long is dropped
/// with it.
const CLOSE_LINGER_MS: u64 = 2000;

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
    /// The session limit every login is checked against.
    pub sessions: Arc<dyn SessionGate>,
    /// The bound address of every portal, in portal group tag order.
    pub portals: Arc<Vec<SocketAddr>>,
}

/// One connection's protocol state, without its socket.
pub struct Conn {
    id: u64,
    worker: usize,
    peer: Option<SocketAddr>,
    proto: Connection,
    decoder: Decoder,
    /// Received bytes not yet decoded; its free tail may be lent to an asynchronous receive.
    rx: RxBuf,
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
    /// Commands running on a thread of their own (SANITIZE) whose status is still to come.
    background: Vec<TaskId>,
    /// The portal group tag of the portal this connection came in on (its target port).
    tpgt: u16,
    /// The TSIH a session made on this connection gets (counted by the session limit).
    tsih: u16,
    /// Counts this connection against the login limits until login completes.
    login_ticket: Option<LoginTicket>,
    /// Commands at an asynchronous store queue, with their data bytes; the connection is not
    /// dropped (nor its session ended) before they complete.
    at_store: HashMap<TaskId, usize>,
    at_store_bytes: usize,
    /// Input pauses while this much command data is at the store.
    at_store_limit: usize,
    /// This session reinstates one whose connection is not gone yet: nothing is sent or read
    /// until [`Conn::released`].
    awaiting_release: bool,
    /// When the connection was first seen closing, and whether its unsent output was dropped
    /// because the peer did not read it within [`CLOSE_LINGER_MS`].
    closing_since: Option<u64>,
    linger_over: bool,
}

impl Conn {
    /// A fresh connection accepted on `local` from `peer`.
    pub fn new(id: u64, local: SocketAddr, peer: Option<SocketAddr>, env: &LoopEnv) -> Conn {
        let tpgt = crate::portal_group(&env.portals, local);
        let tsih = env.registry.alloc_tsih();
        let cfg = ConnectionConfig {
            catalog: env.catalog.clone(),
            limits: env.limits.clone(),
            portal_group_tag: tpgt,
            local_portal: local.to_string(),
            tsih,
        };
        let now = now_ms();
        let auth = crate::auth::authenticator(env.registry.access());
        let mut proto = Connection::with_authenticator(cfg, now, auth);
        proto.set_shared_data_in(true);
        proto.set_session_gate(env.sessions.clone());
        let decoder = Decoder::new(proto.decoder_config());
        Conn {
            id,
            worker: env.worker,
            peer,
            proto,
            decoder,
            rx: RxBuf::new(now),
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
            background: Vec::new(),
            tpgt,
            tsih,
            login_ticket: None,
            at_store: HashMap::new(),
            at_store_bytes: 0,
            at_store_limit: usize::try_from(env.limits.sanitized().write_budget)
                .unwrap_or(usize::MAX),
            awaiting_release: false,
            closing_since: None,
            linger_over: false,
        }
    }

    /// Count this connection against the login limits until its login completes.
    pub fn hold_login_ticket(&mut self, ticket: LoginTicket) {
        self.login_ticket = Some(ticket);
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The counters of the loop that owns this connection.
    pub fn stats(&self) -> &LoopStats {
        &self.stats
    }

    /// Timers: the protocol engine's, and the linger of a closing connection.
    pub fn on_tick(&mut self, now: u64) {
        if self.proto.next_timeout().is_some_and(|t| t <= now) {
            self.proto.handle_timeout(now);
            self.drain_outputs();
        } else {
            self.proto.set_clock(now);
        }
        self.linger(now);
    }

    pub fn next_timeout(&self) -> Option<u64> {
        let linger = self
            .closing_since
            .filter(|_| !self.linger_over && self.pending_out() > 0)
            .map(|t| t.saturating_add(CLOSE_LINGER_MS));
        match (self.proto.next_timeout(), linger) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A closing connection whose peer leaves its last output unread for [`CLOSE_LINGER_MS`]
    /// drops that output, so the connection can go (a dead peer with a full window would
    /// otherwise hold it, and a reinstatement waiting for it, forever).
    fn linger(&mut self, now: u64) {
        if !(self.closing || self.eof || self.proto.is_closed()) {
            return;
        }
        let since = *self.closing_since.get_or_insert(now);
        if self.linger_over || now.saturating_sub(since) < CLOSE_LINGER_MS {
            return;
        }
        if self.pending_out() > 0 {
            log::debug!(
                "connection {}: {} bytes of output left unread: dropped",
                self.id,
                self.pending_out()
            );
            self.linger_over = true;
            self.out.clear();
        }
    }

    /// The output left unread when closing was dropped: the engine may cancel a send in
    /// flight.
    pub fn linger_over(&self) -> bool {
        self.linger_over
    }

    /// Close at once (reinstatement or server stop): the engine fails what is in flight; the
    /// event loop sends what was produced and closes.
    pub fn kill(&mut self) {
        self.proto.abort();
        self.drain_outputs();
        if self.awaiting_release {
            // The login response held back: never to be sent now.
            self.out.clear();
        }
        self.closing = true;
    }

    /// True when the connection has nothing more to do and can be closed: its output sent (or
    /// dropped after the linger) and no command of it left at a store.
    pub fn is_done(&self) -> bool {
        let sent = self.linger_over || (self.out.is_empty() && self.in_flight == 0);
        sent && self.at_store.is_empty() && (self.eof || self.closing || self.proto.is_closed())
    }

    /// The protocol engine asked to close: read nothing more.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Input is wanted: not closing, not at end of stream, not paused for output backlog or
    /// store I/O, not waiting for the session it reinstates to be gone.
    pub fn input_open(&self) -> bool {
        !self.closing && !self.eof && !self.read_paused && !self.awaiting_release
    }

    /// Output must not be sent yet: a reinstating session waits for the old one to be gone.
    pub fn output_held(&self) -> bool {
        self.awaiting_release
    }

    /// The session this one reinstates is gone: send the final login response and start.
    pub fn released(&mut self) {
        if !self.awaiting_release {
            return;
        }
        self.awaiting_release = false;
        self.name_nexus();
        self.process_input();
    }

    /// What this connection holds right now, for the loop's gauges.
    pub fn gauges(&self) -> ConnGauges {
        ConnGauges {
            conns: 1,
            tasks: self.proto.tasks_in_flight() as u64,
            write_reserved: self.proto.write_data_reserved(),
            buffers: (self.rx.size() + self.pending_out() + self.at_store_bytes) as u64,
            io_in_flight: self.at_store.len() as u64,
        }
    }

    /// End the session this connection held, if any (the socket is the engine's to close), and
    /// release what it counted for: its login ticket, its session slot, and a reinstating
    /// session waiting for it.
    pub fn end_session(&mut self) {
        self.login_ticket = None;
        self.registry.release_session(self.tsih);
        self.end_session_state();
        self.registry.conn_ended(self.id);
    }

    fn end_session_state(&mut self) {
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

    /// Unsent output or command data at the store has reached its limit: read no more
    /// commands until it drains.
    fn over_limits(&self) -> bool {
        self.pending_out() >= WRITE_BACKLOG_LIMIT || self.at_store_bytes >= self.at_store_limit
    }

    /// Before a read: true (and reading pauses) when unsent output or command data at the
    /// store has reached its limit.
    pub fn backlogged(&mut self) -> bool {
        if self.over_limits() {
            self.read_paused = true;
        }
        self.read_paused
    }

    /// The free tail of the receive buffer, for a synchronous read (never while it is lent).
    pub fn recv_space(&mut self) -> &mut [u8] {
        self.rx.space()
    }

    /// Lend the free tail of the receive buffer to an asynchronous receive: its address and
    /// length, or `None` when no more input is wanted now (or it is already lent). The buffer
    /// is neither read, moved nor freed by this connection until [`Conn::received`],
    /// [`Conn::received_eof`] or [`Conn::rx_returned`] ends the loan, or [`Conn::leak_rx`]
    /// gives it up.
    pub fn lend_rx(&mut self) -> Option<(*mut u8, usize)> {
        if self.rx.is_lent() || self.proto.is_closed() || !self.input_open() || self.backlogged() {
            return None;
        }
        self.rx.lend()
    }

    /// An asynchronous receive ended without data (cancelled, interrupted, or the socket
    /// failed when `failed`): the buffer is ours again.
    pub fn rx_returned(&mut self, failed: bool) {
        self.rx.returned();
        self.eof |= failed;
    }

    /// The connection is being dropped while a receive may still write into the buffer:
    /// forget the buffer rather than free it.
    pub fn leak_rx(&mut self) {
        self.rx.leak();
    }

    /// `n` bytes arrived at the start of the free tail: decode and handle every complete PDU.
    pub fn received(&mut self, n: usize) {
        let now = now_ms();
        self.rx.arrived(n, now);
        self.process_input_at(now);
    }

    /// The peer closed its side (a read returned 0): handle what is left.
    pub fn received_eof(&mut self) {
        self.rx.returned();
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
        if !self.read_paused
            || self.pending_out() >= WRITE_BACKLOG_LIMIT / 2
            || self.at_store_bytes >= self.at_store_limit
        {
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

    /// Decode and handle every complete PDU in the receive buffer.
    fn process_input(&mut self) {
        self.process_input_at(now_ms());
    }

    /// [`Conn::process_input`] with the time of this batch of input (it only feeds protocol
    /// timers).
    fn process_input_at(&mut self, now: u64) {
        // The kernel owns the tail of a lent buffer; input is handled when the loan ends.
        if self.rx.is_lent() {
            return;
        }
        while !self.closing && !self.proto.is_closed() && !self.awaiting_release {
            if self.over_limits() {
                self.read_paused = true;
                return;
            }
            self.decoder.set_config(self.proto.decoder_config());
            let result = self.decoder.decode(self.rx.unread());
            let used = self.decoder.last_consumed();
            self.rx.consume(used);
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
        loop {
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
            if self.background.is_empty() || !self.release_aborted() {
                break;
            }
        }
    }

    /// Commands waiting to be queued by the event loop.
    pub fn take_queued(&mut self) -> Vec<QueuedIo> {
        std::mem::take(&mut self.queued)
    }

    /// The response of a command that went through an I/O queue or ran in the background.
    pub fn finish_io(&mut self, task: TaskId, r: Response) {
        self.background.retain(|t| *t != task);
        if let Some(bytes) = self.at_store.remove(&task) {
            self.at_store_bytes = self.at_store_bytes.saturating_sub(bytes);
        }
        self.proto.complete(task, scsi_result(r));
        self.drain_outputs();
    }

    /// Runs a long command (SANITIZE) on a thread of its own, so this loop keeps serving
    /// everything else. With `status_now` (IMMED) that status goes back at once and the job's
    /// own response is dropped; otherwise the job's response comes back to this loop as
    /// [`Msg::Finished`] and completes the task (unless a task management function aborted it
    /// first: see [`Conn::release_aborted`]).
    fn start_background(&mut self, task: TaskId, job: Background, status_now: Option<Response>) {
        let reply = status_now.is_none();
        let (registry, worker, conn) = (self.registry.clone(), self.worker, self.id);
        let spawned = std::thread::Builder::new()
            .name("ustgt-background".into())
            .spawn(move || {
                let response = job.run();
                if reply {
                    let done = Finished {
                        conn,
                        task,
                        response,
                    };
                    registry.send_to(worker, Msg::Finished(done));
                }
            });
        match (spawned, status_now) {
            (Err(e), _) => {
                log::error!(
                    "connection {}: cannot start a background command: {e}",
                    self.id
                );
                self.proto
                    .complete(task, status_only(scsi_core::Status::BUSY));
            }
            (Ok(_), Some(r)) => self.proto.complete(task, scsi_result(r)),
            (Ok(_), None) => self.background.push(task),
        }
    }

    /// Completes the background commands a task management function aborted: their operation
    /// goes on (a sanitize operation is not stopped by task management), their status is
    /// discarded, and the TMF response does not wait for them. True when there were any.
    fn release_aborted(&mut self) -> bool {
        let proto = &self.proto;
        let aborted: Vec<TaskId> = self
            .background
            .iter()
            .copied()
            .filter(|t| proto.task_aborted(*t))
            .collect();
        self.background.retain(|t| !aborted.contains(t));
        for t in &aborted {
            self.proto
                .complete(*t, status_only(scsi_core::Status::TASK_ABORTED));
        }
        !aborted.is_empty()
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
                        let bytes = task.data_out.len().max(task.expected_len as usize);
                        self.at_store.insert(task.id, bytes);
                        self.at_store_bytes += bytes;
                        self.queued.push(QueuedIo {
                            task: task.id,
                            op,
                            pending,
                        });
                        return;
                    }
                    Started::Background { job, status_now } => {
                        self.start_background(task.id, job, status_now);
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
        self.login_ticket = None;
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
                    tpgt: info.portal_group_tag,
                };
                let nexus =
                    self.registry
                        .nexus(&info.initiator_name, &info.isid, target, self.tpgt);
                self.awaiting_release = self.registry.register(key.clone(), self.worker, self.id);
                let luns = self.registry.lun_table(target, &info.initiator_name);
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
        if !self.awaiting_release {
            self.name_nexus();
        }
    }

    /// Name the session's I_T nexus after its initiator port (an iSCSI TransportID), for
    /// persistent reservations (READ FULL STATUS, REGISTER AND MOVE, APTPL). A reinstating
    /// session does so once the old session, which had the same nexus, is gone.
    fn name_nexus(&self) {
        if let Some(Session {
            luns: Some(l),
            nexus,
            info,
            ..
        }) = &self.session
        {
            let port = format!("{},i,0x{}", info.initiator_name, hex(&info.isid));
            l.name_nexus(*nexus, &port);
            l.bind_target_port(*nexus, self.tpgt);
        }
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
                if l.lun_reset(req.lun) {
                    tmf_response::FUNCTION_COMPLETE
                } else {
                    tmf_response::LUN_DOES_NOT_EXIST
                }
            }
            (tmf_function::TARGET_WARM_RESET | tmf_function::TARGET_COLD_RESET, Some(l)) => {
                l.target_reset();
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

/// A status without sense or data.
fn status_only(status: scsi_core::Status) -> ScsiResult {
    scsi_result(Response::status(status))
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
        let registry = Arc::new(Registry::new(Arc::new(Vec::new())));
        let env = LoopEnv {
            worker: 0,
            registry: registry.clone(),
            catalog: Arc::new(Catalog {
                targets: Vec::new(),
            }),
            limits: Limits::default(),
            stats: StatsHandle::default().new_loop(),
            coalesce: Coalesce::default(),
            sessions: Arc::new(crate::limits::SessionSlots { registry }),
            portals: Arc::new(vec![([127, 0, 0, 1], 3260).into()]),
        };
        Conn::new(1, ([127, 0, 0, 1], 3260).into(), None, &env)
    }

    #[test]
    fn receive_buffer_is_lent_once_and_stays_put() {
        let mut c = conn();
        let (p, len) = c.lend_rx().expect("lent");
        assert_eq!(len, crate::rxbuf::MIN_RX);
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
