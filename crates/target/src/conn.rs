//! One iSCSI connection owned by an event loop: socket buffers, the PDU decoder, the protocol
//! engine, and the dispatch of its outputs to the SCSI engine.
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;

use iscsi_proto::{
    tmf_function, tmf_response, Catalog, Connection, ConnectionConfig, Limits, Output, ScsiResult,
    SessionInfo, Task, TaskId, TmfRequest,
};
use iscsi_wire::Decoder;
use mio::net::TcpStream;
use mio::{Interest, Registry as MioRegistry, Token};
use scsi_core::{LunTable, NexusId, Request, Response, Started, TaskAttr};

use crate::aio::QueuedIo;
use crate::clock::now_ms;
use crate::coalesce::{Coalesce, CoalesceMode, Coalescer};
use crate::outq::{Flushed, OutQueue};
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

pub struct Conn {
    id: u64,
    worker: usize,
    sock: TcpStream,
    peer: Option<SocketAddr>,
    proto: Connection,
    decoder: Decoder,
    /// Received bytes: `rbuf[rstart..filled]` is not yet decoded.
    rbuf: Vec<u8>,
    rstart: usize,
    filled: usize,
    out: OutQueue,
    stats: Arc<LoopStats>,
    coalesce: Coalesce,
    coalescer: Coalescer,
    /// The last write found the socket full: write again when it becomes writable.
    blocked: bool,
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
    pub fn new(
        id: u64,
        mut sock: TcpStream,
        poll: &MioRegistry,
        env: &LoopEnv,
    ) -> io::Result<Conn> {
        let local = sock.local_addr()?;
        let peer = sock.peer_addr().ok();
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
        poll.register(
            &mut sock,
            Token(id as usize),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let mut conn = Conn {
            id,
            worker: env.worker,
            sock,
            peer,
            proto,
            decoder,
            rbuf: vec![0; READ_CHUNK],
            rstart: 0,
            filled: 0,
            out: OutQueue::default(),
            stats: env.stats.clone(),
            coalesce: env.coalesce,
            coalescer: Coalescer::default(),
            blocked: false,
            session: None,
            registry: env.registry.clone(),
            eof: false,
            closing: false,
            read_paused: false,
            queued: Vec::new(),
        };
        // Data may already be waiting (edge-triggered readiness was armed after it arrived).
        conn.on_ready(true, false);
        Ok(conn)
    }

    /// Readiness from the event loop. Replies are not written here (unless a backlog is being
    /// drained): the loop calls [`Conn::end_iteration`] once per iteration, so all replies of one
    /// iteration share one vectored write.
    pub fn on_ready(&mut self, readable: bool, writable: bool) {
        if readable && !self.closing {
            self.read_some();
        }
        if (writable && self.blocked) || self.read_paused {
            self.flush();
        }
        // Reading was paused for backlog and the backlog drained: catch up on input.
        while self.read_paused && self.out.pending() < WRITE_BACKLOG_LIMIT / 2 {
            self.read_paused = false;
            self.process_input();
            if !self.closing && !self.eof && !self.read_paused {
                self.read_some();
            }
            self.flush();
        }
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

    /// Close at once (reinstatement or server stop): the engine fails what is in flight.
    pub fn kill(&mut self) {
        self.proto.abort();
        self.drain_outputs();
        self.closing = true;
        self.flush();
    }

    /// True when the connection has nothing more to do and can be dropped.
    pub fn is_done(&self) -> bool {
        self.out.is_empty() && (self.eof || self.closing || self.proto.is_closed())
    }

    /// Unregister and drop the socket, ending the session if this connection held it.
    pub fn close(&mut self, poll: &MioRegistry) {
        let _ = poll.deregister(&mut self.sock);
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
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

    fn read_some(&mut self) {
        loop {
            if self.out.pending() >= WRITE_BACKLOG_LIMIT {
                self.read_paused = true;
                return;
            }
            self.make_room();
            let end = self.rbuf.len();
            let filled = self.filled;
            self.stats.add(Counter::Read, 1);
            match self.sock.read(&mut self.rbuf[filled..end]) {
                Ok(0) => {
                    self.eof = true;
                    self.process_input();
                    return;
                }
                Ok(n) => {
                    self.filled += n;
                    self.process_input();
                    // A short read drained the socket: with edge-triggered readiness, new
                    // data raises a new event, so the read that would find nothing is skipped.
                    if self.closing || n < end - filled {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("connection {}: read: {e}", self.id);
                    self.eof = true;
                    return;
                }
            }
        }
    }

    /// Make space at the end of the receive buffer: compact, or grow when one PDU needs more.
    fn make_room(&mut self) {
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
            let len = self.rbuf.len() * 2;
            self.rbuf.resize(len, 0);
        }
    }

    /// Decode and handle every complete PDU in the receive buffer.
    fn process_input(&mut self) {
        // One clock reading per batch of input (it only feeds protocol timers).
        let now = now_ms();
        while !self.closing && !self.proto.is_closed() {
            if self.out.pending() >= WRITE_BACKLOG_LIMIT {
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

    /// End of an event loop iteration: write the replies it produced, or hold them while the
    /// connection is busy (adaptive coalescing). Returns true when replies are held, so that the
    /// loop polls again at once and writes them as soon as an iteration brings no new command.
    pub fn end_iteration(&mut self) -> bool {
        if self
            .coalescer
            .end_iteration(&self.coalesce, self.out.pending())
        {
            self.stats.add(Counter::Held, 1);
            return true;
        }
        self.flush();
        false
    }

    /// True while adaptive coalescing counts this connection as busy.
    /// Replies the initiator has not yet acknowledged reading (see
    /// [`Connection::unread_statuses`]).
    pub fn unread_statuses(&self) -> u32 {
        self.proto.unread_statuses()
    }

    pub fn is_coalescing(&self) -> bool {
        self.coalesce.mode != CoalesceMode::Off && self.coalescer.busy(&self.coalesce)
    }

    /// Write pending output. The socket is registered for edge-triggered writability, so a
    /// partial write resumes on the next writable event.
    pub fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let mut writes = 0;
        self.blocked = false;
        match self.out.flush(&mut self.sock, &mut writes) {
            Flushed::All => {}
            Flushed::Blocked => self.blocked = true,
            Flushed::Failed => self.eof = true,
        }
        self.stats.add(Counter::Write, writes);
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
