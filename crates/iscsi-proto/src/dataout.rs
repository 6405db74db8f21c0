//! Write data collection (RFC 7143 4.2.5.2, 11.7, 11.8): immediate data,
//! unsolicited Data-Out up to FirstBurstLength, R2T sequences of at most
//! MaxBurstLength with up to MaxOutstandingR2T outstanding, and the DataSN /
//! buffer offset / length checks of every Data-Out PDU.

use iscsi_wire::{Bhs, DataOut, Pdu, R2t, RawBhs, RejectReason};

use crate::connection::{Connection, RESERVED_TAG};
use crate::datain::sense;
use crate::session::TaskPhase;
use crate::types::{Millis, TaskId};

/// One outstanding R2T.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct R2tRec {
    pub ttt: u32,
    pub offset: u32,
    pub len: u32,
    pub received: u32,
    pub data_sn: u32,
}

/// Transfer state of a write command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WriteXfer {
    pub edtl: u32,
    /// Bytes received so far (all sources).
    pub received: u32,
    /// Unsolicited Data-Out may still arrive.
    pub unsol_open: bool,
    /// End offset of the unsolicited region.
    pub unsol_limit: u32,
    /// Next expected unsolicited offset and DataSN.
    pub unsol_next: u32,
    pub unsol_data_sn: u32,
    pub r2ts: Vec<R2tRec>,
    /// Next offset to solicit.
    pub next_offset: u32,
    pub r2t_sn: u32,
    /// While the initiator owes data (unsolicited still open or R2Ts outstanding): when the
    /// task times out without progress.
    pub deadline: Option<Millis>,
}

impl WriteXfer {
    /// Transfer of `edtl` bytes of which `imm` came as immediate data.
    pub fn new(edtl: u32, imm: u32, unsolicited: bool, first_burst: u32) -> Self {
        let unsol_limit = if unsolicited {
            first_burst.min(edtl).max(imm)
        } else {
            imm
        };
        let unsol_open = unsolicited && imm < unsol_limit;
        WriteXfer {
            edtl,
            received: imm,
            unsol_open,
            unsol_limit,
            unsol_next: imm,
            unsol_data_sn: 0,
            r2ts: Vec::new(),
            next_offset: imm,
            r2t_sn: 0,
            deadline: None,
        }
    }

    /// All data arrived.
    pub fn complete(&self) -> bool {
        self.received >= self.edtl
    }

    /// The initiator owes data: unsolicited data may still come or R2Ts are unanswered.
    pub fn awaiting_initiator(&self) -> bool {
        !self.complete() && (self.unsol_open || !self.r2ts.is_empty())
    }
}

/// Why a Data-Out PDU was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataOutError {
    /// TTT matches no outstanding R2T: Reject (invalid PDU field), task continues.
    UnknownTtt,
    /// Data-Out for a task that takes none any more: Reject (protocol error).
    Stray,
    /// Sequence error (DataSN, F bit, unsolicited data not allowed): Reject (protocol error)
    /// and terminate the task with CHECK CONDITION carrying this ASC/ASCQ.
    Sequence(u8, u8),
    /// Data at the wrong offset, overlapping, or beyond the R2T, the first burst or the
    /// expected length: Reject (protocol error) and close the connection.
    Offset,
}

/// ASC/ASCQ DATA PHASE ERROR.
const DATA_PHASE_ERROR: (u8, u8) = (0x4b, 0x00);
/// ASC/ASCQ PROTOCOL SERVICE CRC ERROR.
const CRC_ERROR: (u8, u8) = (0x47, 0x05);
/// SCSI status CHECK CONDITION.
pub(crate) const CHECK_CONDITION: u8 = 0x02;
/// Sense key ABORTED COMMAND.
pub(crate) const ABORTED_COMMAND: u8 = 0x0b;

fn seq(e: (u8, u8)) -> DataOutError {
    DataOutError::Sequence(e.0, e.1)
}

/// Check one Data-Out against the transfer state and record it.
/// Returns the byte range to copy into the task buffer.
fn accept(x: &mut WriteXfer, d: &DataOut, len: u32) -> Result<(usize, usize), DataOutError> {
    let end = d
        .buffer_offset
        .checked_add(len)
        .ok_or(DataOutError::Offset)?;
    if end > x.edtl {
        return Err(DataOutError::Offset);
    }
    if d.ttt == RESERVED_TAG {
        if !x.unsol_open {
            return Err(seq(DATA_PHASE_ERROR));
        }
        if d.data_sn != x.unsol_data_sn {
            return Err(seq(DATA_PHASE_ERROR));
        }
        if d.buffer_offset != x.unsol_next {
            return Err(DataOutError::Offset);
        }
        if end > x.unsol_limit {
            return Err(DataOutError::Offset);
        }
        x.unsol_next = end;
        x.unsol_data_sn = x.unsol_data_sn.wrapping_add(1);
        x.received += len;
        if d.final_ || end == x.unsol_limit {
            x.unsol_open = false;
            x.next_offset = x.next_offset.max(x.unsol_next);
        }
    } else {
        let pos = x
            .r2ts
            .iter()
            .position(|r| r.ttt == d.ttt)
            .ok_or(DataOutError::UnknownTtt)?;
        let r = &mut x.r2ts[pos];
        if d.data_sn != r.data_sn {
            return Err(seq(DATA_PHASE_ERROR));
        }
        if d.buffer_offset != r.offset + r.received {
            return Err(DataOutError::Offset);
        }
        if end > r.offset + r.len {
            return Err(DataOutError::Offset);
        }
        r.received += len;
        r.data_sn = r.data_sn.wrapping_add(1);
        x.received += len;
        if r.received == r.len {
            x.r2ts.remove(pos);
        } else if d.final_ {
            return Err(seq(DATA_PHASE_ERROR));
        }
    }
    let start = usize::try_from(d.buffer_offset).unwrap_or(usize::MAX);
    let end = usize::try_from(end).unwrap_or(usize::MAX);
    Ok((start, end))
}

impl Connection {
    /// A Data-Out PDU (not CmdSN-ordered).
    pub(crate) fn data_out_pdu(&mut self, mut pdu: Pdu) {
        let Bhs::DataOut(d) = &pdu.bhs else {
            return;
        };
        let d = d.clone();
        let Some(id) = self.tasks.id_of_itt(d.itt) else {
            log::debug!("Data-Out for unknown ITT {:#x}", d.itt);
            self.reject(RejectReason::INVALID_PDU_FIELD, &pdu);
            return;
        };
        match self.store_data_out(id, &d, &mut pdu.data) {
            Ok(()) => self.progress(id),
            Err(DataOutError::UnknownTtt) => self.reject(RejectReason::INVALID_PDU_FIELD, &pdu),
            Err(DataOutError::Stray) => self.reject(RejectReason::PROTOCOL_ERROR, &pdu),
            Err(DataOutError::Sequence(asc, ascq)) => {
                self.reject(RejectReason::PROTOCOL_ERROR, &pdu);
                self.fail_task(id, asc, ascq);
            }
            Err(DataOutError::Offset) => {
                // The data cannot be placed: the stream is not trusted any more.
                log::info!("Data-Out offset or length error: closing");
                self.reject(RejectReason::PROTOCOL_ERROR, &pdu);
                self.close();
            }
        }
    }

    /// Check a Data-Out and put its payload at its offset in the task's buffer (taken over
    /// without a copy when it is the first data of the task). `data` is left as it was when the
    /// PDU is refused, so that a Reject quotes the right header.
    fn store_data_out(
        &mut self,
        id: TaskId,
        d: &DataOut,
        data: &mut Vec<u8>,
    ) -> Result<(), DataOutError> {
        let t = self.tasks.get_mut(id).ok_or(DataOutError::Stray)?;
        if t.phase != TaskPhase::Collecting {
            return Err(DataOutError::Stray);
        }
        let x = t.xfer.as_mut().ok_or(DataOutError::Stray)?;
        let len = u32::try_from(data.len()).map_err(|_| DataOutError::Offset)?;
        let (start, end) = accept(x, d, len)?;
        if t.refused {
            // Checked for the sequence, then dropped: the command ends with CHECK CONDITION.
            return Ok(());
        }
        if start == 0 && t.data.is_empty() {
            t.data = std::mem::take(data);
            return Ok(());
        }
        if t.data.capacity() < end {
            // Grow by doubling, at most to the end of what the target itself solicited: never
            // from the expected length alone, which is only the initiator's word.
            let solicited = usize::try_from(x.next_offset.max(x.unsol_limit)).unwrap_or(0);
            let want = end.max(t.data.capacity() * 2).min(solicited.max(end));
            t.data.reserve_exact(want - t.data.len());
        }
        if t.data.len() < end {
            t.data.resize(end, 0);
        }
        t.data[start..end].copy_from_slice(data);
        Ok(())
    }

    /// Send R2Ts until MaxOutstandingR2T are outstanding or all data is solicited.
    pub(crate) fn issue_r2ts(&mut self, id: TaskId) {
        let max_out = usize::try_from(self.neg.params.max_outstanding_r2t.max(1)).unwrap_or(1);
        let burst = self.neg.params.max_burst.max(512);
        loop {
            let ttt = self.next_ttt;
            let Some(t) = self.tasks.get_mut(id) else {
                return;
            };
            let (itt, lun) = (t.itt, t.lun_raw);
            if !t.admitted || t.refused {
                return;
            }
            let Some(x) = t.xfer.as_mut() else { return };
            if x.unsol_open || x.r2ts.len() >= max_out || x.next_offset >= x.edtl {
                return;
            }
            let offset = x.next_offset;
            let len = burst.min(x.edtl - offset);
            let r2t_sn = x.r2t_sn;
            x.r2ts.push(R2tRec {
                ttt,
                offset,
                len,
                received: 0,
                data_sn: 0,
            });
            x.next_offset = offset + len;
            x.r2t_sn = r2t_sn.wrapping_add(1);
            let ttt = self.new_ttt();
            let r2t = R2t {
                lun,
                itt,
                ttt,
                stat_sn: self.stat_sn,
                exp_cmd_sn: self.exp_cmd_sn(),
                max_cmd_sn: self.max_cmd_sn(),
                r2t_sn,
                buffer_offset: offset,
                desired_len: len,
            };
            self.send(r2t, Vec::new());
        }
    }

    /// Terminate a task still collecting data with CHECK CONDITION / ABORTED COMMAND.
    pub(crate) fn fail_task(&mut self, id: TaskId, asc: u8, ascq: u8) {
        self.end_collecting(id, ABORTED_COMMAND, asc, ascq);
    }

    /// Terminate a task still collecting data with CHECK CONDITION and this sense.
    pub(crate) fn end_collecting(&mut self, id: TaskId, key: u8, asc: u8, ascq: u8) {
        let Some(t) = self.tasks.get(id) else { return };
        if t.phase != TaskPhase::Collecting {
            return;
        }
        let Some(t) = self.tasks.remove(id) else {
            return;
        };
        let result = crate::types::ScsiResult {
            status: CHECK_CONDITION,
            sense: sense(key, asc, ascq),
            data_in: Vec::new(),
            data_out_wanted: t.edtl,
        };
        self.send_result(&t, result);
        self.tmf_task_gone(id);
        self.finish_logout_if_idle();
    }

    /// A PDU was dropped for a data digest error (RFC 7143 7.8): a Data-Out's
    /// task is terminated with "protocol service CRC error".
    pub(crate) fn data_digest_failed(&mut self, header: &RawBhs) {
        if header.opcode() != iscsi_wire::Opcode::DATA_OUT {
            return;
        }
        if let Some(id) = self.tasks.id_of_itt(header.itt()) {
            self.fail_task(id, CRC_ERROR.0, CRC_ERROR.1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dout(ttt: u32, data_sn: u32, offset: u32, final_: bool) -> DataOut {
        DataOut {
            final_,
            ttt,
            data_sn,
            buffer_offset: offset,
            ..Default::default()
        }
    }

    #[test]
    fn unsolicited_region_and_limits() {
        let mut x = WriteXfer::new(10_000, 1000, true, 4096);
        assert!(x.unsol_open);
        assert_eq!(x.unsol_limit, 4096);
        assert_eq!(
            accept(&mut x, &dout(RESERVED_TAG, 0, 1000, false), 1000),
            Ok((1000, 2000))
        );
        assert_eq!(
            accept(&mut x, &dout(RESERVED_TAG, 0, 2000, false), 100),
            Err(DataOutError::Sequence(0x4b, 0x00)),
            "DataSN must advance"
        );
        assert_eq!(
            accept(&mut x, &dout(RESERVED_TAG, 1, 2100, false), 100),
            Err(DataOutError::Offset),
            "offset must be contiguous"
        );
        assert_eq!(
            accept(&mut x, &dout(RESERVED_TAG, 1, 2000, false), 3000),
            Err(DataOutError::Offset),
            "beyond FirstBurstLength"
        );
        assert_eq!(
            accept(&mut x, &dout(RESERVED_TAG, 1, 2000, true), 2096),
            Ok((2000, 4096))
        );
        assert!(!x.unsol_open);
        assert_eq!(x.next_offset, 4096);
        assert_eq!(x.received, 4096);
    }

    #[test]
    fn no_unsolicited_when_not_allowed() {
        let mut x = WriteXfer::new(4096, 0, false, 65536);
        assert!(!x.unsol_open);
        assert_eq!(
            accept(&mut x, &dout(RESERVED_TAG, 0, 0, true), 512),
            Err(DataOutError::Sequence(0x4b, 0x00))
        );
    }

    #[test]
    fn solicited_checks() {
        let mut x = WriteXfer::new(8192, 0, false, 65536);
        x.r2ts.push(R2tRec {
            ttt: 7,
            offset: 0,
            len: 8192,
            received: 0,
            data_sn: 0,
        });
        assert_eq!(
            accept(&mut x, &dout(9, 0, 0, false), 10),
            Err(DataOutError::UnknownTtt)
        );
        assert_eq!(accept(&mut x, &dout(7, 0, 0, false), 4096), Ok((0, 4096)));
        assert_eq!(
            accept(&mut x, &dout(7, 1, 4096, false), 8192),
            Err(DataOutError::Offset)
        );
        assert_eq!(
            accept(&mut x, &dout(7, 1, 4000, false), 10),
            Err(DataOutError::Offset)
        );
        assert_eq!(
            accept(&mut x, &dout(7, 1, 4096, true), 4096),
            Ok((4096, 8192))
        );
        assert!(x.r2ts.is_empty());
        assert!(x.complete());
    }

    #[test]
    fn early_final_is_an_error() {
        let mut x = WriteXfer::new(8192, 0, false, 65536);
        x.r2ts.push(R2tRec {
            ttt: 7,
            offset: 0,
            len: 8192,
            received: 0,
            data_sn: 0,
        });
        assert_eq!(
            accept(&mut x, &dout(7, 0, 0, true), 4096),
            Err(DataOutError::Sequence(0x4b, 0x00))
        );
    }
}
