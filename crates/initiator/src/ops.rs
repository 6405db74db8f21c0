//! Text (SendTargets), NOP-Out ping, logout, task management and SCSI helpers.

use iscsi_wire::{
    encode_text, lun_from_index, parse_text, Bhs, LogoutRequest, LogoutResponse, NopIn, NopOut,
    Pdu, TaskMgmtRequest, TaskMgmtResponse, TextRequest, TextResponse,
};

use crate::cdb;
use crate::scsi::{ScsiOutcome, ScsiRequest};
use crate::session::Session;
use crate::{Error, Result};

/// A complete text exchange.
#[derive(Debug, Clone, Default)]
pub struct TextExchange {
    /// The joined and parsed answer.
    pub pairs: Vec<(String, String)>,
    /// Each Text Response header with its data segment length.
    pub responses: Vec<(TextResponse, usize)>,
}

impl Session {
    /// Send `pairs` in a Text Request and collect the whole answer, continuing
    /// (with empty requests echoing the TTT) while the target sets C or clears F.
    pub fn text_exchange(&mut self, pairs: &[(String, String)]) -> Result<TextExchange> {
        let itt = self.alloc_itt();
        let mut ttt = 0xffff_ffff;
        let mut data = encode_text(pairs);
        let mut text = Vec::new();
        let mut ex = TextExchange::default();
        for _ in 0..256 {
            let req = TextRequest {
                immediate: false,
                final_: true,
                cont: false,
                lun: 0,
                itt,
                ttt,
                cmd_sn: self.take_cmd_sn(),
                exp_stat_sn: self.exp_stat_sn,
            };
            self.conn.send(&Pdu::new(req, std::mem::take(&mut data)))?;
            let pdu = self.wait_for("a Text Response", |p| {
                matches!(&p.bhs, Bhs::TextResponse(r) if r.itt == itt)
                    || matches!(&p.bhs, Bhs::Reject(_))
            })?;
            let rsp = match pdu.bhs {
                Bhs::TextResponse(r) => r,
                other => {
                    return Err(Error::Protocol(format!(
                        "text request answered by {other:?}"
                    )))
                }
            };
            text.extend_from_slice(&pdu.data);
            ex.responses.push((rsp.clone(), pdu.data.len()));
            if rsp.final_ && !rsp.cont {
                ex.pairs = parse_text(&text).map_err(|e| Error::Protocol(e.to_string()))?;
                return Ok(ex);
            }
            ttt = rsp.ttt;
        }
        Err(Error::Protocol("text response never ended".into()))
    }

    /// `SendTargets=value`; the (key, value) pairs of the answer.
    pub fn send_targets(&mut self, value: &str) -> Result<Vec<(String, String)>> {
        Ok(self
            .text_exchange(&[("SendTargets".into(), value.into())])?
            .pairs)
    }

    /// NOP-Out ping (immediate) carrying `data`; returns the NOP-In and its data.
    pub fn ping(&mut self, data: &[u8]) -> Result<(NopIn, Vec<u8>)> {
        let itt = self.alloc_itt();
        let nop = NopOut {
            immediate: true,
            lun: 0,
            itt,
            ttt: 0xffff_ffff,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        self.conn.send(&Pdu::new(nop, data.to_vec()))?;
        let pdu = self.wait_for("a NOP-In", |p| p.bhs.itt() == itt)?;
        match pdu.bhs {
            Bhs::NopIn(n) => Ok((n, pdu.data)),
            other => Err(Error::Protocol(format!("ping answered by {other:?}"))),
        }
    }

    /// Logout (reason 0: close the session), sent immediate; returns the response.
    pub fn logout(&mut self) -> Result<LogoutResponse> {
        self.logout_with(0, true)
    }

    /// Logout with this reason code and I bit.
    pub fn logout_with(&mut self, reason: u8, immediate: bool) -> Result<LogoutResponse> {
        let itt = self.alloc_itt();
        let cmd_sn = if immediate {
            self.cmd_sn
        } else {
            self.take_cmd_sn()
        };
        let req = LogoutRequest {
            immediate,
            reason,
            itt,
            cid: 0,
            cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        self.conn.send(&Pdu::new(req, Vec::new()))?;
        let pdu = self.wait_for("a Logout Response", |p| p.bhs.itt() == itt)?;
        match pdu.bhs {
            Bhs::LogoutResponse(r) => Ok(r),
            other => Err(Error::Protocol(format!("logout answered by {other:?}"))),
        }
    }

    /// Task management (immediate): `function` (1 abort task, 5 clear task set,
    /// 6 LUN reset, ...), `lun` number, referenced ITT and CmdSN.
    pub fn task_mgmt(
        &mut self,
        function: u8,
        lun: u64,
        ref_itt: u32,
        ref_cmd_sn: u32,
    ) -> Result<TaskMgmtResponse> {
        let itt = self.alloc_itt();
        let req = TaskMgmtRequest {
            immediate: true,
            function,
            lun: lun_from_index(lun),
            itt,
            ref_task_tag: ref_itt,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            ref_cmd_sn,
            exp_data_sn: 0,
        };
        self.conn.send(&Pdu::new(req, Vec::new()))?;
        let pdu = self.wait_for("a Task Management Response", |p| p.bhs.itt() == itt)?;
        match pdu.bhs {
            Bhs::TaskMgmtResponse(r) => Ok(r),
            other => Err(Error::Protocol(format!(
                "task management answered by {other:?}"
            ))),
        }
    }

    /// TEST UNIT READY.
    pub fn test_unit_ready(&mut self, lun: u64) -> Result<ScsiOutcome> {
        self.scsi(ScsiRequest::none(lun, &cdb::test_unit_ready()))
    }

    /// TEST UNIT READY until GOOD, accepting only UNIT ATTENTION on the way (a new
    /// I_T nexus starts with one, e.g. POWER ON OR RESET OCCURRED).
    pub fn clear_unit_attention(&mut self, lun: u64) -> Result<()> {
        for _ in 0..8 {
            let out = self.test_unit_ready(lun)?;
            if out.good() {
                return Ok(());
            }
            if out.sense.as_ref().map(|s| s.key) != Some(0x06) {
                return Err(Error::Protocol(format!(
                    "TEST UNIT READY: {}",
                    out.describe()
                )));
            }
        }
        Err(Error::Protocol("unit attention never cleared".into()))
    }

    /// Standard INQUIRY with this allocation length.
    pub fn inquiry(&mut self, lun: u64, alloc_len: u16) -> Result<ScsiOutcome> {
        self.scsi(ScsiRequest::read(
            lun,
            &cdb::inquiry(false, 0, alloc_len),
            u32::from(alloc_len),
        ))
    }

    /// READ(16) of `blocks` blocks of `block_size` bytes.
    pub fn read16(
        &mut self,
        lun: u64,
        lba: u64,
        blocks: u32,
        block_size: u32,
    ) -> Result<ScsiOutcome> {
        self.scsi(ScsiRequest::read(
            lun,
            &cdb::read16(lba, blocks),
            blocks * block_size,
        ))
    }

    /// WRITE(16) of `data` (a whole number of `block_size` blocks).
    pub fn write16(
        &mut self,
        lun: u64,
        lba: u64,
        data: &[u8],
        block_size: u32,
    ) -> Result<ScsiOutcome> {
        let blocks = (data.len() / block_size.max(1) as usize) as u32;
        self.scsi(ScsiRequest::write(
            lun,
            &cdb::write16(lba, blocks),
            data.to_vec(),
        ))
    }

    /// READ CAPACITY(16): (last LBA, block size).
    pub fn read_capacity16(&mut self, lun: u64) -> Result<(u64, u32)> {
        let out = self.scsi(ScsiRequest::read(lun, &cdb::read_capacity16(32), 32))?;
        let d = &out.data_in;
        if !out.good() || d.len() < 12 {
            return Err(Error::Protocol(format!(
                "READ CAPACITY(16) failed: {}",
                out.describe()
            )));
        }
        let mut lba = [0u8; 8];
        lba.copy_from_slice(&d[..8]);
        Ok((
            u64::from_be_bytes(lba),
            u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
        ))
    }
}
