//! SCSI commands: submission with immediate and unsolicited data, R2T answers, Data-In
//! reassembly with sequence checks, completion.

use std::time::{Duration, Instant};

use iscsi_wire::{
    lun_from_index, Bhs, DataIn, DataOut, Opcode, Pdu, R2t, RawBhs, ScsiCommand, ScsiResponse,
};

use crate::conn::Corrupt;
use crate::session::{quoted_header, Session};
use crate::{Error, Result};

/// A SCSI command to send.
#[derive(Debug, Clone, Default)]
pub struct ScsiRequest {
    /// LUN number (encoded with SAM single-level addressing).
    pub lun: u64,
    /// CDB, at most 16 bytes.
    pub cdb: Vec<u8>,
    /// R bit.
    pub read: bool,
    /// W bit.
    pub write: bool,
    /// Expected Data Transfer Length.
    pub expected_len: u32,
    /// Data to write; missing bytes up to `expected_len` are sent as zeros.
    pub data_out: Vec<u8>,
    /// Task attribute (0 untagged, 1 simple, 2 ordered, 3 head of queue, 4 ACA).
    pub attr: u8,
    /// Largest data segment to send (further limited by the target's MaxRecvDataSegmentLength).
    pub segment_limit: Option<u32>,
    /// Do not send immediate data even when ImmediateData=Yes.
    pub no_immediate: bool,
    /// Instead of answering each R2T at once, keep receiving this long and answer all
    /// R2Ts collected (in order); shows how many R2Ts the target keeps outstanding.
    pub collect_r2ts: Option<Duration>,
    /// Corrupt the data digest of the Data-Out PDU with this index (0-based, per task).
    pub corrupt_data_out: Option<usize>,
}

impl ScsiRequest {
    /// A command without data.
    pub fn none(lun: u64, cdb: &[u8]) -> ScsiRequest {
        ScsiRequest {
            lun,
            cdb: cdb.to_vec(),
            attr: 1,
            ..ScsiRequest::default()
        }
    }

    /// A read of `len` bytes.
    pub fn read(lun: u64, cdb: &[u8], len: u32) -> ScsiRequest {
        ScsiRequest {
            read: true,
            expected_len: len,
            ..ScsiRequest::none(lun, cdb)
        }
    }

    /// A write of `data` (EDTL = its length).
    pub fn write(lun: u64, cdb: &[u8], data: Vec<u8>) -> ScsiRequest {
        ScsiRequest {
            write: true,
            expected_len: data.len() as u32,
            data_out: data,
            ..ScsiRequest::none(lun, cdb)
        }
    }
}

/// Decoded sense data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sense {
    /// Sense key.
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
    /// The sense bytes (without the 2-byte SenseLength).
    pub raw: Vec<u8>,
}

impl Sense {
    /// Parse the data segment of a SCSI Response (SenseLength + sense data).
    pub fn from_segment(seg: &[u8]) -> Option<Sense> {
        let len = usize::from(u16::from_be_bytes([*seg.first()?, *seg.get(1)?]));
        let raw = seg.get(2..2 + len)?.to_vec();
        let code = *raw.first()? & 0x7f;
        let (key, asc, ascq) = match code {
            0x70 | 0x71 => (*raw.get(2)? & 0x0f, *raw.get(12)?, *raw.get(13)?),
            0x72 | 0x73 => (*raw.get(1)? & 0x0f, *raw.get(2)?, *raw.get(3)?),
            _ => return None,
        };
        Some(Sense {
            key,
            asc,
            ascq,
            raw,
        })
    }
}

/// A PDU seen for a task: its header and data segment length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The header.
    pub bhs: Bhs,
    /// DataSegmentLength.
    pub data_len: usize,
}

/// Everything about one completed command.
#[derive(Debug, Clone, Default)]
pub struct ScsiOutcome {
    /// Initiator Task Tag used.
    pub itt: u32,
    /// CmdSN used.
    pub cmd_sn: u32,
    /// iSCSI response code (0 = completed at target).
    pub response: u8,
    /// SCSI status.
    pub status: u8,
    /// Sense data, when the response carried any.
    pub sense: Option<Sense>,
    /// Data received (reassembled by offset).
    pub data_in: Vec<u8>,
    /// O bit.
    pub overflow: bool,
    /// U bit.
    pub underflow: bool,
    /// Residual Count.
    pub residual: u32,
    /// The status came in the final Data-In (S bit) rather than a SCSI Response.
    pub status_in_data_in: bool,
    /// PDUs received for this task, in order.
    pub received: Vec<Seen>,
    /// PDUs sent for this task, in order.
    pub sent: Vec<Seen>,
    /// R2Ts received.
    pub r2ts: Vec<R2t>,
    /// Most R2Ts received and not yet answered at one time.
    pub max_r2ts_outstanding: usize,
    /// Rejects of this task's PDUs other than the command: (reason, quoted header).
    pub rejects: Vec<(u8, RawBhs)>,
    /// Protocol violations noticed in the target's PDUs for this task.
    pub violations: Vec<String>,
}

impl ScsiOutcome {
    /// True when the command completed with GOOD status.
    pub fn good(&self) -> bool {
        self.response == 0 && self.status == crate::GOOD
    }

    /// A compact description for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "status {:#04x} response {} sense {:?} residual {}{}{} violations {:?} rejects {:?}\n received: {:#?}",
            self.status,
            self.response,
            self.sense.as_ref().map(|s| (s.key, s.asc, s.ascq)),
            self.residual,
            if self.overflow { " O" } else { "" },
            if self.underflow { " U" } else { "" },
            self.violations,
            self.rejects.iter().map(|r| r.0).collect::<Vec<_>>(),
            self.received
        )
    }
}

/// An in-flight command.
#[derive(Debug)]
pub(crate) struct Task {
    req: ScsiRequest,
    lun_raw: u64,
    out: ScsiOutcome,
    next_data_sn: u32,
    next_r2t_sn: u32,
    data_outs_sent: usize,
    collected: Vec<R2t>,
    collect_until: Option<Instant>,
}

impl Session {
    /// Send a command (with its immediate and unsolicited data) and return its ITT.
    pub fn submit(&mut self, req: ScsiRequest) -> Result<u32> {
        if req.cdb.len() > 16 {
            return Err(Error::Protocol("CDBs over 16 bytes need an AHS".into()));
        }
        self.wait_window()?;
        let itt = self.alloc_itt();
        let cmd_sn = self.take_cmd_sn();
        let n = self.negotiated.clone();
        let seg = self.segment_size(&req);
        let edtl = req.expected_len;
        let imm = if req.write && n.immediate_data && !req.no_immediate {
            edtl.min(n.first_burst_length).min(seg)
        } else {
            0
        };
        let unsol_end = if req.write && !n.initial_r2t {
            edtl.min(n.first_burst_length)
        } else {
            imm
        };
        let mut cdb = [0u8; 16];
        cdb[..req.cdb.len()].copy_from_slice(&req.cdb);
        let lun_raw = lun_from_index(req.lun);
        let cmd = ScsiCommand {
            immediate: false,
            final_: unsol_end <= imm,
            read: req.read,
            write: req.write,
            attr: req.attr,
            lun: lun_raw,
            itt,
            expected_data_len: edtl,
            cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            cdb,
        };
        let mut task = Task {
            lun_raw,
            out: ScsiOutcome {
                itt,
                cmd_sn,
                ..ScsiOutcome::default()
            },
            next_data_sn: 0,
            next_r2t_sn: 0,
            data_outs_sent: 0,
            collected: Vec::new(),
            collect_until: None,
            req,
        };
        let pdu = Pdu::new(cmd, task.slice(0, imm));
        task.record_sent(&pdu);
        self.conn.send(&pdu)?;
        if unsol_end > imm {
            self.send_data_outs(&mut task, 0xffff_ffff, imm, unsol_end - imm, seg)?;
        }
        self.tasks.insert(itt, task);
        Ok(itt)
    }

    /// Wait for the command with this ITT to complete.
    pub fn wait(&mut self, itt: u32) -> Result<ScsiOutcome> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(r) = self.done.remove(&itt) {
                self.done_order.retain(|&i| i != itt);
                return r;
            }
            if !self.tasks.contains_key(&itt) {
                return Err(Error::Protocol(format!("no command with ITT {itt:#x}")));
            }
            self.pump(deadline)
                .map_err(|e| self.timeout_detail(e, itt))?;
        }
    }

    /// Wait for any command to complete; returns its ITT and result.
    pub fn wait_any(&mut self) -> Result<(u32, Result<ScsiOutcome>)> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(itt) = self.done_order.pop_front() {
                if let Some(r) = self.done.remove(&itt) {
                    return Ok((itt, r));
                }
                continue;
            }
            if self.tasks.is_empty() {
                return Err(Error::Protocol("no command in flight".into()));
            }
            self.pump(deadline)?;
        }
    }

    /// Send a command and wait for it.
    pub fn scsi(&mut self, req: ScsiRequest) -> Result<ScsiOutcome> {
        let itt = self.submit(req)?;
        self.wait(itt)
    }

    /// Number of commands in flight.
    pub fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// Stop tracking a command (e.g. one aborted by task management).
    pub fn forget(&mut self, itt: u32) -> Option<ScsiOutcome> {
        self.tasks.remove(&itt).map(|t| t.out)
    }

    fn timeout_detail(&self, e: Error, itt: u32) -> Error {
        match e {
            Error::Timeout(_) => Error::Timeout(format!(
                "completion of ITT {itt:#x}; so far: {:#?}",
                self.tasks.get(&itt).map(|t| &t.out.received)
            )),
            e => e,
        }
    }

    fn segment_size(&self, req: &ScsiRequest) -> u32 {
        let t = self.negotiated.target_max_recv_data_segment_length.max(1);
        req.segment_limit.map_or(t, |l| l.clamp(1, t))
    }

    /// Send Data-Out PDUs for `[offset, offset+len)` as one sequence.
    fn send_data_outs(
        &mut self,
        task: &mut Task,
        ttt: u32,
        offset: u32,
        len: u32,
        seg: u32,
    ) -> Result<()> {
        let mut sent = 0;
        let mut data_sn = 0;
        while sent < len {
            let n = seg.min(len - sent);
            let dout = DataOut {
                final_: sent + n == len,
                lun: task.lun_raw,
                itt: task.out.itt,
                ttt,
                exp_stat_sn: self.exp_stat_sn,
                data_sn,
                buffer_offset: offset + sent,
            };
            let pdu = Pdu::new(dout, task.slice(offset + sent, n));
            let corrupt = Corrupt {
                header_digest: false,
                data_digest: task.req.corrupt_data_out == Some(task.data_outs_sent),
            };
            task.data_outs_sent += 1;
            task.record_sent(&pdu);
            self.conn.send_corrupted(&pdu, corrupt)?;
            sent += n;
            data_sn += 1;
        }
        Ok(())
    }

    /// Route a Data-In, R2T, SCSI Response or Reject to its task.
    pub(crate) fn route_to_task(&mut self, pdu: Pdu) -> Result<()> {
        let itt = match &pdu.bhs {
            Bhs::Reject(_) => quoted_header(&pdu.data).map_or(0xffff_ffff, |h| h.itt()),
            b => b.itt(),
        };
        let Some(mut task) = self.tasks.remove(&itt) else {
            self.anomalies
                .push(format!("PDU for unknown ITT {itt:#x}: {:?}", pdu.bhs));
            return Ok(());
        };
        task.out.received.push(Seen {
            bhs: pdu.bhs.clone(),
            data_len: pdu.data.len(),
        });
        let finished = match pdu.bhs {
            Bhs::DataIn(d) => {
                task.data_in(&d, &pdu.data);
                d.status_present
            }
            Bhs::ScsiResponse(r) => {
                task.response(&r, &pdu.data);
                true
            }
            Bhs::R2t(r) => {
                self.r2t(&mut task, r)?;
                false
            }
            Bhs::Reject(r) => {
                let quoted = quoted_header(&pdu.data).unwrap_or_default();
                if quoted.opcode() == Opcode::SCSI_COMMAND {
                    self.finish(
                        itt,
                        Err(Error::Rejected {
                            reason: r.reason,
                            header: pdu.data,
                        }),
                    );
                    return Ok(());
                }
                task.out.rejects.push((r.reason, quoted));
                false
            }
            _ => false,
        };
        if finished {
            task.check_complete();
            self.finish(itt, Ok(task.out));
        } else {
            self.tasks.insert(itt, task);
        }
        Ok(())
    }

    fn finish(&mut self, itt: u32, r: Result<ScsiOutcome>) {
        self.done.insert(itt, r);
        self.done_order.push_back(itt);
    }

    fn r2t(&mut self, task: &mut Task, r: R2t) -> Result<()> {
        task.check_r2t(&r, &self.negotiated);
        task.out.r2ts.push(r.clone());
        task.collected.push(r);
        let pending = task.collected.len();
        task.out.max_r2ts_outstanding = task.out.max_r2ts_outstanding.max(pending);
        match task.req.collect_r2ts {
            Some(d) => {
                task.collect_until.get_or_insert_with(|| Instant::now() + d);
                Ok(())
            }
            None => self.answer_r2ts(task),
        }
    }

    fn answer_r2ts(&mut self, task: &mut Task) -> Result<()> {
        task.collect_until = None;
        let seg = self.segment_size(&task.req);
        for r in std::mem::take(&mut task.collected) {
            self.send_data_outs(task, r.ttt, r.buffer_offset, r.desired_len, seg)?;
        }
        Ok(())
    }

    /// The earliest time a task's R2T collection ends.
    pub(crate) fn collect_deadline(&self) -> Option<Instant> {
        self.tasks.values().filter_map(|t| t.collect_until).min()
    }

    /// Answer R2Ts whose collection time is over; true if any were answered.
    pub(crate) fn answer_collected_r2ts(&mut self) -> Result<bool> {
        let now = Instant::now();
        let due: Vec<u32> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.collect_until.is_some_and(|c| c <= now))
            .map(|(&itt, _)| itt)
            .collect();
        for itt in &due {
            if let Some(mut t) = self.tasks.remove(itt) {
                let r = self.answer_r2ts(&mut t);
                self.tasks.insert(*itt, t);
                r?;
            }
        }
        Ok(!due.is_empty())
    }
}

impl Task {
    /// `len` bytes of the write buffer from `offset`, zero-filled past its end.
    fn slice(&self, offset: u32, len: u32) -> Vec<u8> {
        let (o, l) = (offset as usize, len as usize);
        let mut v = vec![0u8; l];
        let src = &self.req.data_out;
        if o < src.len() {
            let n = l.min(src.len() - o);
            v[..n].copy_from_slice(&src[o..o + n]);
        }
        v
    }

    fn record_sent(&mut self, pdu: &Pdu) {
        self.out.sent.push(Seen {
            bhs: pdu.bhs.clone(),
            data_len: pdu.data.len(),
        });
    }

    fn violation(&mut self, s: String) {
        self.out.violations.push(s);
    }

    fn data_in(&mut self, d: &DataIn, data: &[u8]) {
        if !self.req.read {
            self.violation(format!("Data-In for a command without R bit: {d:?}"));
        }
        if d.data_sn != self.next_data_sn {
            self.violation(format!(
                "DataSN {} where {} was expected",
                d.data_sn, self.next_data_sn
            ));
        }
        self.next_data_sn = d.data_sn.wrapping_add(1);
        let off = d.buffer_offset as usize;
        if off != self.out.data_in.len() {
            self.violation(format!(
                "Data-In offset {off} where {} was expected (DataPDUInOrder)",
                self.out.data_in.len()
            ));
        }
        let end = off + data.len();
        if end > self.req.expected_len as usize {
            self.violation(format!(
                "Data-In up to byte {end} beyond EDTL {}",
                self.req.expected_len
            ));
        }
        if d.status_present && !d.final_ {
            self.violation("Data-In with S bit but without F bit".into());
        }
        if self.out.data_in.len() < end {
            self.out.data_in.resize(end, 0);
        }
        self.out.data_in[off..end].copy_from_slice(data);
        if d.status_present {
            self.out.status_in_data_in = true;
            self.out.status = d.status;
            self.out.overflow = d.overflow;
            self.out.underflow = d.underflow;
            self.out.residual = d.residual;
        }
    }

    fn response(&mut self, r: &ScsiResponse, data: &[u8]) {
        self.out.response = r.response;
        self.out.status = r.status;
        self.out.overflow = r.overflow;
        self.out.underflow = r.underflow;
        self.out.residual = r.residual;
        if !data.is_empty() {
            self.out.sense = Sense::from_segment(data);
            if self.out.sense.is_none() {
                self.violation(format!("undecodable sense segment {data:02x?}"));
            }
        }
        // RFC 7143 11.4.8 counts Data-In PDUs (0 when there were none); RFC 3720 10.4.8
        // counted R2Ts too. Accept either reading.
        let data_ins = self.next_data_sn;
        let with_r2ts = data_ins.wrapping_add(self.next_r2t_sn);
        if self.out.response == 0 && r.exp_data_sn != data_ins && r.exp_data_sn != with_r2ts {
            self.violation(format!(
                "ExpDataSN {} but {data_ins} Data-In and {} R2T PDUs were sent",
                r.exp_data_sn, self.next_r2t_sn
            ));
        }
    }

    fn check_r2t(&mut self, r: &R2t, n: &crate::Negotiated) {
        if !self.req.write {
            self.violation(format!("R2T for a command without W bit: {r:?}"));
        }
        if r.r2t_sn != self.next_r2t_sn {
            self.violation(format!(
                "R2TSN {} where {} was expected",
                r.r2t_sn, self.next_r2t_sn
            ));
        }
        self.next_r2t_sn = r.r2t_sn.wrapping_add(1);
        if r.desired_len == 0 || r.desired_len > n.max_burst_length {
            self.violation(format!(
                "R2T desired length {} not in 1..={}",
                r.desired_len, n.max_burst_length
            ));
        }
        let end = u64::from(r.buffer_offset) + u64::from(r.desired_len);
        if end > u64::from(self.req.expected_len) {
            self.violation(format!(
                "R2T up to byte {end} beyond EDTL {}",
                self.req.expected_len
            ));
        }
        if r.ttt == 0xffff_ffff {
            self.violation("R2T with the reserved TTT 0xffffffff".into());
        }
    }

    /// Checks once the status is in.
    fn check_complete(&mut self) {
        if self.out.overflow && self.out.underflow {
            self.violation("both O and U bits set".into());
        }
        if !self.out.good() || !self.req.read {
            return;
        }
        let (residual, underflow) = (self.out.residual, self.out.underflow);
        let edtl = self.req.expected_len as usize;
        let got = self.out.data_in.len();
        let expect = if underflow {
            edtl.checked_sub(residual as usize)
        } else {
            Some(edtl)
        };
        if expect != Some(got) {
            self.violation(format!(
                "received {got} bytes of EDTL {edtl} with residual {residual} (U={underflow})"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_and_descriptor_sense() {
        let mut fixed = vec![0, 18, 0x70, 0, 0x05, 0, 0, 0, 0, 10];
        fixed.extend_from_slice(&[0, 0, 0, 0, 0x24, 0x00, 0, 0, 0, 0]);
        let s = Sense::from_segment(&fixed).expect("fixed");
        assert_eq!((s.key, s.asc, s.ascq), (0x05, 0x24, 0x00));
        assert_eq!(s.raw.len(), 18);
        let desc = [0, 8, 0x72, 0x0b, 0x47, 0x05, 0, 0, 0, 0];
        let s = Sense::from_segment(&desc).expect("descriptor");
        assert_eq!((s.key, s.asc, s.ascq), (0x0b, 0x47, 0x05));
        assert!(Sense::from_segment(&[0, 30, 0x70]).is_none());
        assert!(Sense::from_segment(&[0]).is_none());
    }

    fn task(read: bool, edtl: u32) -> Task {
        Task {
            req: ScsiRequest {
                read,
                expected_len: edtl,
                data_out: vec![1, 2, 3],
                ..ScsiRequest::default()
            },
            lun_raw: 0,
            out: ScsiOutcome::default(),
            next_data_sn: 0,
            next_r2t_sn: 0,
            data_outs_sent: 0,
            collected: Vec::new(),
            collect_until: None,
        }
    }

    #[test]
    fn slice_zero_fills() {
        let t = task(false, 8);
        assert_eq!(t.slice(1, 4), vec![2, 3, 0, 0]);
        assert_eq!(t.slice(5, 2), vec![0, 0]);
    }

    #[test]
    fn data_in_reassembly_checks_sequence() {
        let mut t = task(true, 8);
        let d0 = DataIn {
            data_sn: 0,
            buffer_offset: 0,
            ..DataIn::default()
        };
        t.data_in(&d0, &[1, 2, 3, 4]);
        let d1 = DataIn {
            data_sn: 2,
            buffer_offset: 4,
            final_: true,
            status_present: true,
            ..DataIn::default()
        };
        t.data_in(&d1, &[5, 6, 7, 8]);
        assert_eq!(t.out.data_in, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(t.out.violations.len(), 1, "{:?}", t.out.violations);
        assert!(t.out.violations[0].contains("DataSN 2"));
        assert!(t.out.status_in_data_in);
        t.check_complete();
        assert_eq!(t.out.violations.len(), 1);
    }

    #[test]
    fn short_read_without_underflow_is_a_violation() {
        let mut t = task(true, 8);
        let d = DataIn {
            final_: true,
            status_present: true,
            ..DataIn::default()
        };
        t.data_in(&d, &[1, 2, 3, 4]);
        t.check_complete();
        assert!(t.out.violations[0].contains("received 4 bytes"));
    }
}
