//! One connection's command engine, without I/O: command slots and sequence numbers, the
//! encoding of commands, Data-Out and NOP-Out into one output buffer, and the in-place decoding
//! of everything the target sends (no copy of received payloads, no allocation per command).

use iscsi_wire::{
    Bhs, DataIn, DataOut, LogoutRequest, NopIn, NopOut, Opcode, R2t, RawBhs, ScsiCommand,
    ScsiResponse, BHS_LEN,
};
use ustgt_initiator::{cdb, sn_gt, sn_lt, GOOD};

use crate::hist::Histogram;
use crate::verify::Verifier;

/// The reserved tag (no task, no answer wanted).
const RESERVED: u32 = 0xffff_ffff;
/// The ITT of the Logout Request: slot tags never have 0xffff in their low half.
const LOGOUT_ITT: u32 = 0x0000_ffff;
/// Keep at least this much free space in the receive buffer before reading.
const MIN_READ_SPACE: usize = 64 * 1024;
/// The receive buffer's initial size.
pub const READ_BUFFER: usize = 256 * 1024;
/// Errors reported on stderr (all are counted).
const ERRORS_SHOWN: u32 = 5;

/// What every connection issues: sizes, offsets, mix, and the verification state.
#[derive(Debug)]
pub struct Workload {
    block_size: u32,
    blocks_per_cmd: u64,
    /// Possible command positions (range / blocks per command).
    positions: u64,
    write_pct: u32,
    sequential: bool,
    fua: bool,
    next_seq: u64,
    rng: u64,
    /// Payload of writes when not verifying.
    pattern: Vec<u8>,
    /// Stamps and checks, with `-V`.
    pub verifier: Option<Verifier>,
}

impl Workload {
    /// Commands of `bytes` (a multiple of `block_size`) within the first `range_blocks`.
    pub fn new(
        block_size: u32,
        bytes: u64,
        range_blocks: u64,
        write_pct: u32,
        sequential: bool,
        fua: bool,
        verify: bool,
    ) -> Workload {
        let blocks_per_cmd = (bytes / u64::from(block_size.max(1))).max(1);
        Workload {
            block_size,
            blocks_per_cmd,
            positions: (range_blocks / blocks_per_cmd).max(1),
            write_pct,
            sequential,
            fua,
            next_seq: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            pattern: if verify {
                Vec::new()
            } else {
                vec![0xA5; bytes as usize]
            },
            verifier: verify.then(|| Verifier::new(range_blocks, block_size)),
        }
    }

    /// Bytes per command.
    pub fn bytes(&self) -> u64 {
        self.blocks_per_cmd * u64::from(self.block_size)
    }

    fn rand(&mut self) -> u64 {
        let mut s = self.rng;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.rng = s;
        s
    }

    /// The next command: (LBA, write). `None` when, verifying, every try overlapped a command
    /// in flight that it must not overlap.
    fn pick(&mut self) -> Option<(u64, bool)> {
        for _ in 0..64 {
            let pos = if self.sequential {
                self.next_seq = self.next_seq.wrapping_add(1);
                (self.next_seq - 1) % self.positions
            } else {
                self.rand() % self.positions
            };
            let write = match self.write_pct {
                0 => false,
                pct if pct >= 100 => true,
                pct => self.rand() % 100 < u64::from(pct),
            };
            let lba = pos * self.blocks_per_cmd;
            let free = self
                .verifier
                .as_ref()
                .map_or(true, |v| v.can_issue(lba, self.blocks_per_cmd, write));
            if free {
                return Some((lba, write));
            }
        }
        None
    }

    /// Append bytes `offset..offset+len` of the data of a write at `lba`.
    fn payload(&self, lba: u64, gen: u64, offset: u64, len: usize, out: &mut Vec<u8>) {
        match &self.verifier {
            Some(v) => v.stamp(lba, gen, offset, len, out),
            None => out.extend_from_slice(&self.pattern[offset as usize..offset as usize + len]),
        }
    }
}

/// Results of all connections.
#[derive(Debug, Default)]
pub struct Stats {
    /// Commands that ended GOOD.
    pub ios: u64,
    /// Bytes they moved.
    pub bytes: u64,
    /// Commands that failed, and protocol anomalies.
    pub errors: u64,
    /// Latency of the GOOD commands, in nanoseconds.
    pub hist: Histogram,
    shown: u32,
}

impl Stats {
    /// Count an error; describe the first few on stderr.
    pub fn error(&mut self, what: impl FnOnce() -> String) {
        self.errors += 1;
        if self.shown < ERRORS_SHOWN {
            self.shown += 1;
            eprintln!("ustgt-load: {}", what());
        }
    }
}

/// What login negotiated, as the engine needs it.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// The raw LUN field.
    pub lun: u64,
    /// Largest immediate data per write (0: no immediate data).
    pub immediate_max: u32,
    /// Largest data segment we may send (the target's MaxRecvDataSegmentLength).
    pub send_segment_max: u32,
    /// Largest data segment the target may send (ours).
    pub recv_segment_max: u32,
    /// CmdSN of the next command.
    pub cmd_sn: u32,
    /// ExpStatSN to send.
    pub exp_stat_sn: u32,
    /// MaxCmdSN from the target.
    pub max_cmd_sn: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    busy: bool,
    write: bool,
    /// Bumped at every completion: the high half of the ITT.
    seq: u16,
    lba: u64,
    /// Generation a verified write stamps.
    gen: u64,
    /// Issue time, ns.
    start: u64,
    /// Data-In bytes received.
    got: u64,
}

/// A fatal protocol error: the connection cannot go on.
pub type Fatal = String;

/// The state of one connection.
#[derive(Debug)]
pub struct Engine {
    p: Params,
    cmd_sn: u32,
    exp_stat_sn: u32,
    max_cmd_sn: u32,
    slots: Vec<Slot>,
    free: Vec<u16>,
    in_flight: usize,
    /// Encoded PDUs not yet written.
    pub out: Vec<u8>,
    rx: Vec<u8>,
    rstart: usize,
    filled: usize,
    /// Size of the PDU at the front of the receive buffer when it is incomplete.
    want: usize,
    logout_sent: bool,
    logged_out: bool,
}

impl Engine {
    /// An engine for `qd` commands in flight, after login; `received` are bytes that arrived
    /// after the login exchange and were not decoded yet.
    pub fn new(p: Params, qd: u32, received: &[u8]) -> Engine {
        let mut rx = vec![0; READ_BUFFER.max(received.len())];
        rx[..received.len()].copy_from_slice(received);
        Engine {
            p,
            cmd_sn: p.cmd_sn,
            exp_stat_sn: p.exp_stat_sn,
            max_cmd_sn: p.max_cmd_sn,
            slots: vec![Slot::default(); qd as usize],
            free: (0..qd as u16).rev().collect(),
            in_flight: 0,
            out: Vec::with_capacity(64 * 1024),
            rx,
            rstart: 0,
            filled: received.len(),
            want: 0,
            logout_sent: false,
            logged_out: false,
        }
    }

    /// Commands in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// True once the Logout Response arrived.
    pub fn logged_out(&self) -> bool {
        self.logged_out
    }

    /// Free space at the end of the receive buffer, for the next read.
    pub fn input_space(&mut self) -> &mut [u8] {
        if self.rstart == self.filled {
            self.rstart = 0;
            self.filled = 0;
        }
        let need = MIN_READ_SPACE.max(self.want.saturating_sub(self.filled - self.rstart));
        if self.rx.len() - self.filled < need {
            self.rx.copy_within(self.rstart..self.filled, 0);
            self.filled -= self.rstart;
            self.rstart = 0;
            if self.rx.len() - self.filled < need {
                self.rx.resize(self.filled + need, 0);
            }
        }
        &mut self.rx[self.filled..]
    }

    /// `n` bytes were read into [`Engine::input_space`].
    pub fn received(&mut self, n: usize) {
        self.filled += n;
    }

    /// Issue at most `max` commands while slots are free and the command window is open;
    /// `now` in ns.
    pub fn issue(&mut self, now: u64, wl: &mut Workload, max: usize) -> usize {
        let mut issued = 0;
        while let Some(&idx) = self.free.last() {
            if issued == max || self.logout_sent || sn_gt(self.cmd_sn, self.max_cmd_sn) {
                break;
            }
            let Some((lba, write)) = wl.pick() else {
                break;
            };
            self.free.pop();
            let n = wl.blocks_per_cmd;
            let gen = match wl.verifier.as_mut() {
                Some(v) => v.start(lba, n, write),
                None => 0,
            };
            let slot = &mut self.slots[usize::from(idx)];
            *slot = Slot {
                busy: true,
                write,
                seq: slot.seq,
                lba,
                gen,
                start: now,
                got: 0,
            };
            let itt = (u32::from(slot.seq) << 16) | u32::from(idx);
            self.encode_command(itt, lba, write, gen, wl);
            self.in_flight += 1;
            issued += 1;
        }
        issued
    }

    fn encode_command(&mut self, itt: u32, lba: u64, write: bool, gen: u64, wl: &Workload) {
        let len = wl.bytes() as u32;
        let blocks = wl.blocks_per_cmd as u32;
        let mut c = if write {
            cdb::write16(lba, blocks)
        } else {
            cdb::read16(lba, blocks)
        };
        if write && wl.fua {
            c[1] |= 0x08;
        }
        let immediate = if write {
            len.min(self.p.immediate_max)
        } else {
            0
        };
        let cmd = ScsiCommand {
            immediate: false,
            final_: true,
            read: !write,
            write,
            attr: 1,
            lun: self.p.lun,
            itt,
            expected_data_len: len,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            cdb: c,
        };
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        self.out
            .extend_from_slice(&Bhs::ScsiCommand(cmd).to_raw(immediate, 0).0);
        if immediate > 0 {
            wl.payload(lba, gen, 0, immediate as usize, &mut self.out);
            pad(&mut self.out, immediate as usize);
        }
    }

    /// Queue a Logout Request (close the session); no command is issued after it.
    pub fn logout(&mut self) {
        let req = LogoutRequest {
            immediate: true,
            reason: 0,
            itt: LOGOUT_ITT,
            cid: 0,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        self.out
            .extend_from_slice(&Bhs::LogoutRequest(req).to_raw(0, 0).0);
        self.logout_sent = true;
    }

    /// Handle every complete PDU in the receive buffer; `now` in ns.
    pub fn process(&mut self, now: u64, wl: &mut Workload, st: &mut Stats) -> Result<(), Fatal> {
        let rx = std::mem::take(&mut self.rx);
        let r = self.decode_all(&rx, now, wl, st);
        self.rx = rx;
        r
    }

    fn decode_all(
        &mut self,
        rx: &[u8],
        now: u64,
        wl: &mut Workload,
        st: &mut Stats,
    ) -> Result<(), Fatal> {
        loop {
            let avail = &rx[self.rstart..self.filled];
            let Some(hdr) = avail.get(..BHS_LEN) else {
                self.want = BHS_LEN;
                return Ok(());
            };
            let mut raw = RawBhs([0; BHS_LEN]);
            raw.0.copy_from_slice(hdr);
            let dlen = raw.data_segment_len() as usize;
            if dlen > self.p.recv_segment_max as usize {
                return Err(format!(
                    "the target sent a {dlen}-byte data segment, over our limit of {}",
                    self.p.recv_segment_max
                ));
            }
            let dstart = BHS_LEN + usize::from(raw.total_ahs_len()) * 4;
            let total = dstart + dlen + (4 - dlen % 4) % 4;
            if avail.len() < total {
                self.want = total;
                return Ok(());
            }
            let bhs = Bhs::parse(&raw)
                .map_err(|e| format!("undecodable PDU (opcode {:#04x}): {e}", raw.opcode().0))?;
            let data = &avail[dstart..dstart + dlen];
            self.rstart += total;
            self.handle(bhs, data, now, wl, st)?;
        }
    }

    fn handle(
        &mut self,
        bhs: Bhs,
        data: &[u8],
        now: u64,
        wl: &mut Workload,
        st: &mut Stats,
    ) -> Result<(), Fatal> {
        match bhs {
            Bhs::DataIn(d) => self.data_in(&d, data, now, wl, st),
            Bhs::ScsiResponse(r) => self.response(&r, data, now, wl, st),
            Bhs::R2t(r) => self.r2t(&r, wl),
            Bhs::NopIn(n) => {
                self.nop_in(&n, data, st);
                Ok(())
            }
            Bhs::Reject(r) => {
                self.window(r.exp_cmd_sn, r.max_cmd_sn);
                self.status_sn(r.stat_sn, st);
                self.reject(r.reason, data, wl, st)
            }
            Bhs::AsyncMessage(a) => {
                self.window(a.exp_cmd_sn, a.max_cmd_sn);
                self.status_sn(a.stat_sn, st);
                eprintln!("ustgt-load: asynchronous message, event {}", a.event);
                Ok(())
            }
            Bhs::LogoutResponse(l) if self.logout_sent && l.itt == LOGOUT_ITT => {
                self.status_sn(l.stat_sn, st);
                self.logged_out = true;
                Ok(())
            }
            other => Err(format!(
                "unexpected PDU from the target: opcode {:#04x}",
                other.opcode().0
            )),
        }
    }

    /// Track the command window (RFC 7143 4.2.2.1: ignore MaxCmdSN < ExpCmdSN - 1).
    fn window(&mut self, exp: u32, max: u32) {
        if !sn_lt(max, exp.wrapping_sub(1)) && sn_gt(max, self.max_cmd_sn) {
            self.max_cmd_sn = max;
        }
    }

    /// A PDU carrying a status advances ExpStatSN; a gap or a repeat is an anomaly.
    fn status_sn(&mut self, stat_sn: u32, st: &mut Stats) {
        if stat_sn != self.exp_stat_sn {
            let want = self.exp_stat_sn;
            st.error(|| format!("StatSN {stat_sn} where {want} was expected"));
        }
        if !sn_lt(stat_sn, self.exp_stat_sn) {
            self.exp_stat_sn = stat_sn.wrapping_add(1);
        }
    }

    fn slot_of(&self, itt: u32) -> Result<usize, Fatal> {
        let idx = (itt & 0xffff) as usize;
        match self.slots.get(idx) {
            Some(s) if s.busy && u32::from(s.seq) == itt >> 16 => Ok(idx),
            _ => Err(format!("PDU for a task not in flight (ITT {itt:#x})")),
        }
    }

    fn data_in(
        &mut self,
        d: &DataIn,
        data: &[u8],
        now: u64,
        wl: &mut Workload,
        st: &mut Stats,
    ) -> Result<(), Fatal> {
        self.window(d.exp_cmd_sn, d.max_cmd_sn);
        let idx = self.slot_of(d.itt)?;
        let s = self.slots[idx];
        let end = u64::from(d.buffer_offset) + data.len() as u64;
        if s.write || end > wl.bytes() {
            return Err(format!(
                "Data-In for bytes up to {end} of a {} of {} bytes",
                if s.write { "write" } else { "read" },
                wl.bytes()
            ));
        }
        if let Some(v) = wl.verifier.as_mut() {
            v.check(s.lba, u64::from(d.buffer_offset), data);
        }
        self.slots[idx].got += data.len() as u64;
        if d.status_present {
            self.status_sn(d.stat_sn, st);
            let (got, len) = (self.slots[idx].got, wl.bytes());
            let ok = d.status == GOOD && !d.underflow && !d.overflow && got == len;
            self.complete(idx, ok, now, wl, st, || {
                format!(
                    "read at lba {}: status {:#04x}, {got} of {len} bytes, residual {}",
                    s.lba, d.status, d.residual
                )
            });
        }
        Ok(())
    }

    fn response(
        &mut self,
        r: &ScsiResponse,
        data: &[u8],
        now: u64,
        wl: &mut Workload,
        st: &mut Stats,
    ) -> Result<(), Fatal> {
        self.window(r.exp_cmd_sn, r.max_cmd_sn);
        self.status_sn(r.stat_sn, st);
        let idx = self.slot_of(r.itt)?;
        let s = self.slots[idx];
        let ok = r.response == 0
            && r.status == GOOD
            && !r.underflow
            && !r.overflow
            && (s.write || s.got == wl.bytes());
        self.complete(idx, ok, now, wl, st, || {
            format!(
                "{} at lba {}: response {}, status {:#04x}{}",
                if s.write { "write" } else { "read" },
                s.lba,
                r.response,
                r.status,
                describe_sense(data)
            )
        });
        Ok(())
    }

    fn complete(
        &mut self,
        idx: usize,
        ok: bool,
        now: u64,
        wl: &mut Workload,
        st: &mut Stats,
        what: impl FnOnce() -> String,
    ) {
        let s = &mut self.slots[idx];
        s.busy = false;
        s.seq = s.seq.wrapping_add(1);
        self.free.push(idx as u16);
        self.in_flight -= 1;
        if let Some(v) = wl.verifier.as_mut() {
            v.finish(s.lba, wl.blocks_per_cmd, s.write, s.gen, ok);
        }
        if ok {
            st.ios += 1;
            st.bytes += wl.bytes();
            st.hist.record(now.saturating_sub(s.start));
        } else {
            st.error(what);
        }
    }

    /// Answer an R2T with Data-Out PDUs of at most the target's segment size.
    fn r2t(&mut self, r: &R2t, wl: &Workload) -> Result<(), Fatal> {
        self.window(r.exp_cmd_sn, r.max_cmd_sn);
        let idx = self.slot_of(r.itt)?;
        let s = self.slots[idx];
        let (offset, len) = (u64::from(r.buffer_offset), u64::from(r.desired_len));
        if !s.write || len == 0 || offset + len > wl.bytes() {
            return Err(format!(
                "R2T for bytes {offset}..{} of a {} of {} bytes",
                offset + len,
                if s.write { "write" } else { "read" },
                wl.bytes()
            ));
        }
        let seg = u64::from(self.p.send_segment_max.max(512));
        let mut at = offset;
        let mut data_sn = 0;
        while at < offset + len {
            let n = seg.min(offset + len - at);
            let pdu = DataOut {
                final_: at + n == offset + len,
                lun: self.p.lun,
                itt: r.itt,
                ttt: r.ttt,
                exp_stat_sn: self.exp_stat_sn,
                data_sn,
                buffer_offset: at as u32,
            };
            self.out
                .extend_from_slice(&Bhs::DataOut(pdu).to_raw(n as u32, 0).0);
            wl.payload(s.lba, s.gen, at, n as usize, &mut self.out);
            pad(&mut self.out, n as usize);
            at += n;
            data_sn += 1;
        }
        Ok(())
    }

    /// A NOP-In: a ping from the target (a TTT) is answered with its data.
    fn nop_in(&mut self, n: &NopIn, data: &[u8], st: &mut Stats) {
        self.window(n.exp_cmd_sn, n.max_cmd_sn);
        if n.itt != RESERVED {
            self.status_sn(n.stat_sn, st);
        }
        if n.ttt == RESERVED {
            return;
        }
        let reply = NopOut {
            immediate: true,
            lun: n.lun,
            itt: RESERVED,
            ttt: n.ttt,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        self.out
            .extend_from_slice(&Bhs::NopOut(reply).to_raw(data.len() as u32, 0).0);
        self.out.extend_from_slice(data);
        pad(&mut self.out, data.len());
    }

    /// A Reject: a rejected command fails; anything else is counted.
    fn reject(
        &mut self,
        reason: u8,
        quoted: &[u8],
        wl: &mut Workload,
        st: &mut Stats,
    ) -> Result<(), Fatal> {
        let Some(q) = quoted.get(..BHS_LEN) else {
            return Err(format!("Reject (reason {reason:#04x}) quoting no header"));
        };
        let mut raw = RawBhs([0; BHS_LEN]);
        raw.0.copy_from_slice(q);
        let what = move || format!("Reject reason {reason:#04x} of {:?}", raw.opcode());
        match self.slot_of(raw.itt()) {
            Ok(idx) if raw.opcode() == Opcode::SCSI_COMMAND => {
                self.complete(idx, false, 0, wl, st, what);
            }
            _ => st.error(what),
        }
        Ok(())
    }
}

/// Zero padding after a data segment of `len` bytes.
fn pad(out: &mut Vec<u8>, len: usize) {
    out.resize(out.len() + (4 - len % 4) % 4, 0);
}

/// ", sense KEY/ASC/ASCQ" from a SCSI Response data segment (2-byte length, fixed sense).
fn describe_sense(data: &[u8]) -> String {
    let Some(len) = data
        .get(..2)
        .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
    else {
        return String::new();
    };
    match data.get(2..2 + len) {
        Some(s) if s.len() >= 14 => {
            format!(", sense {:x}/{:02x}/{:02x}", s[2] & 0x0f, s[12], s[13])
        }
        _ => String::new(),
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
