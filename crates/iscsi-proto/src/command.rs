//! SCSI Command intake (RFC 7143 11.3): header and AHS validation, immediate
//! data, task creation and hand-off to the SCSI layer.

use iscsi_wire::{lun_to_index, Bhs, Pdu, RejectReason, ScsiCommand};

use crate::connection::{Connection, RESERVED_TAG};
use crate::dataout::WriteXfer;
use crate::session::{TaskPhase, TaskState};
use crate::types::{Output, Task, TaskId};

/// AHS type: extended CDB.
const AHS_EXTENDED_CDB: u8 = 1;
/// AHS type: bidirectional expected read-data length.
const AHS_BIDI_READ_LEN: u8 = 2;

/// What the AHS of a SCSI command carries.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct CommandAhs {
    /// CDB bytes beyond the first 16.
    pub cdb_ext: Vec<u8>,
    /// Bidirectional Expected Read-Data Length.
    pub bidi_read_len: Option<u32>,
}

/// Parse the Additional Header Segments of a SCSI command (RFC 7143 11.2.2).
pub(crate) fn parse_ahs(ahs: &[u8]) -> Result<CommandAhs, &'static str> {
    let mut out = CommandAhs::default();
    let mut off = 0usize;
    while off < ahs.len() {
        let head = ahs.get(off..off + 3).ok_or("truncated AHS header")?;
        let len = usize::from(u16::from_be_bytes([head[0], head[1]]));
        let ty = head[2];
        let body = ahs
            .get(off + 3..off + 3 + len)
            .ok_or("AHS length beyond AHS")?;
        // The first specific byte is reserved in both defined types.
        let payload = body.get(1..).unwrap_or(&[]);
        match ty {
            AHS_EXTENDED_CDB => out.cdb_ext = payload.to_vec(),
            AHS_BIDI_READ_LEN => {
                let b: [u8; 4] = payload
                    .get(..4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or("short bidirectional read length AHS")?;
                out.bidi_read_len = Some(u32::from_be_bytes(b));
            }
            _ => return Err("unknown AHS type"),
        }
        off += (3 + len).div_ceil(4) * 4;
    }
    Ok(out)
}

impl Connection {
    /// A SCSI Command delivered in CmdSN order (or immediate).
    pub(crate) fn scsi_command_pdu(&mut self, pdu: Pdu, immediate: bool) {
        let Bhs::ScsiCommand(cmd) = &pdu.bhs else {
            return;
        };
        if let Err(reason) = self.check_command(cmd, &pdu, immediate) {
            self.reject(reason, &pdu);
            return;
        }
        let ahs = match parse_ahs(&pdu.ahs) {
            Ok(a) => a,
            Err(what) => {
                // Lengths that do not add up to TotalAHSLength, or unknown types.
                log::debug!("bad AHS: {what}");
                self.reject(RejectReason::PROTOCOL_ERROR, &pdu);
                return;
            }
        };
        if cmd.read && cmd.write && ahs.bidi_read_len.is_none() {
            // RFC 7143 11.3.1.1: a bidirectional command carries its expected read length.
            self.reject(RejectReason::INVALID_PDU_FIELD, &pdu);
            return;
        }
        let cmd = cmd.clone();
        let mut pdu = pdu;
        // The immediate data becomes the task's buffer: moved, not copied.
        let id = self.create_task(&cmd, ahs, std::mem::take(&mut pdu.data));
        self.budget_new_task(id);
        self.progress(id);
    }

    fn check_command(
        &self,
        cmd: &ScsiCommand,
        pdu: &Pdu,
        immediate: bool,
    ) -> Result<(), RejectReason> {
        let window = usize::try_from(self.cfg.limits.cmd_window).unwrap_or(usize::MAX);
        if immediate && self.tasks.len() >= window {
            return Err(RejectReason::IMMEDIATE_COMMAND_REJECT);
        }
        if cmd.itt == RESERVED_TAG {
            return Err(RejectReason::INVALID_PDU_FIELD);
        }
        if self.tasks.itt_in_use(cmd.itt) {
            return Err(RejectReason::TASK_IN_PROGRESS);
        }
        let edtl = cmd.expected_data_len;
        if !cmd.read && !cmd.write && edtl != 0 {
            return Err(RejectReason::INVALID_PDU_FIELD);
        }
        let imm = u32::try_from(pdu.data.len()).unwrap_or(u32::MAX);
        if imm > 0 {
            let p = &self.neg.params;
            let unsolicited_max = p.first_burst.min(edtl);
            if !cmd.write || !p.immediate_data || imm > unsolicited_max {
                return Err(RejectReason::PROTOCOL_ERROR);
            }
        }
        Ok(())
    }

    fn create_task(&mut self, cmd: &ScsiCommand, ahs: CommandAhs, imm: Vec<u8>) -> TaskId {
        let id = self.tasks.alloc_id();
        // W with EDTL 0 stays a write (for residuals) but nothing is solicited.
        let write = cmd.write;
        let mut cdb = cmd.cdb.to_vec();
        cdb.extend_from_slice(&ahs.cdb_ext);
        let xfer = (write && cmd.expected_data_len > 0).then(|| {
            let p = &self.neg.params;
            let imm_len = u32::try_from(imm.len()).unwrap_or(u32::MAX);
            let unsolicited = !p.initial_r2t && !cmd.final_;
            WriteXfer::new(cmd.expected_data_len, imm_len, unsolicited, p.first_burst)
        });
        self.tasks.insert(TaskState {
            id,
            itt: cmd.itt,
            lun_raw: cmd.lun,
            lun: lun_to_index(cmd.lun),
            cdb,
            read: cmd.read,
            write,
            attr: cmd.attr,
            edtl: cmd.expected_data_len,
            bidi_read_len: if cmd.read && write && cmd.expected_data_len > 0 {
                ahs.bidi_read_len
            } else {
                None
            },
            phase: TaskPhase::Collecting,
            data: imm,
            admitted: xfer.is_none(),
            xfer,
            aborted: false,
            reserved: 0,
            refused: false,
        });
        id
    }

    /// Hand a task to the SCSI layer once all its Data-Out arrived.
    pub(crate) fn maybe_execute(&mut self, id: TaskId) {
        let Some(t) = self.tasks.get_mut(id) else {
            return;
        };
        if t.phase != TaskPhase::Collecting || !t.admitted {
            return;
        }
        if t.xfer.as_ref().is_some_and(|x| !x.complete()) {
            return;
        }
        t.phase = TaskPhase::Executing;
        t.xfer = None;
        let mut data_out = std::mem::take(&mut t.data);
        if t.write {
            data_out.resize(usize::try_from(t.edtl).unwrap_or(usize::MAX), 0);
        }
        let task = Task {
            id,
            lun: t.lun,
            cdb: std::mem::take(&mut t.cdb),
            data_out,
            expected_len: t.edtl,
            read: t.read,
            write: t.write,
            attr: t.attr,
        };
        self.push(Output::Execute(task));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ahs_extended_cdb_and_bidi() {
        // Extended CDB AHS: length 5 (reserved + 4 bytes), type 1, padded to 8.
        let mut ahs = vec![0, 5, 1, 0, 0xa1, 0xa2, 0xa3, 0xa4];
        // Bidi read length AHS: length 5, type 2, reserved, 0x00001000.
        ahs.extend_from_slice(&[0, 5, 2, 0, 0, 0, 0x10, 0x00]);
        let a = parse_ahs(&ahs).unwrap();
        assert_eq!(a.cdb_ext, vec![0xa1, 0xa2, 0xa3, 0xa4]);
        assert_eq!(a.bidi_read_len, Some(4096));
    }

    #[test]
    fn ahs_errors() {
        assert!(parse_ahs(&[0, 9, 1, 0]).is_err());
        assert!(parse_ahs(&[0, 1, 7, 0]).is_err());
        assert!(parse_ahs(&[0, 1, 2, 0]).is_err());
        assert_eq!(parse_ahs(&[]), Ok(CommandAhs::default()));
    }
}
