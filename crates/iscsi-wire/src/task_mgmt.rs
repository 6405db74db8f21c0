//! Task Management Function Request (0x02, RFC 7143 11.5) and Response (0x22, 11.6).

use crate::bhs::{get_u32, get_u64, off, put_u32, put_u64, BHS_LEN};

/// Task Management Function Request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskMgmtRequest {
    /// I bit: immediate delivery.
    pub immediate: bool,
    /// Function code (7 bits): 1 ABORT TASK, 2 ABORT TASK SET, 3 CLEAR ACA, 4 CLEAR TASK SET,
    /// 5 LOGICAL UNIT RESET, 6 TARGET WARM RESET, 7 TARGET COLD RESET, 8 TASK REASSIGN.
    pub function: u8,
    /// Raw LUN field.
    pub lun: u64,
    /// Initiator Task Tag of this request.
    pub itt: u32,
    /// Referenced Task Tag (ITT of the task to abort).
    pub ref_task_tag: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// RefCmdSN.
    pub ref_cmd_sn: u32,
    /// ExpDataSN.
    pub exp_data_sn: u32,
}

impl TaskMgmtRequest {
    /// Decode the opcode-specific fields; the function code is checked by the protocol layer.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        Ok(TaskMgmtRequest {
            immediate: raw[0] & 0x40 != 0,
            function: raw[off::FLAGS] & 0x7f,
            lun: get_u64(raw, off::LUN),
            itt: get_u32(raw, off::ITT),
            ref_task_tag: get_u32(raw, off::TTT),
            cmd_sn: get_u32(raw, off::SN1),
            exp_stat_sn: get_u32(raw, off::SN2),
            ref_cmd_sn: get_u32(raw, 32),
            exp_data_sn: get_u32(raw, 36),
        })
    }

    /// Encode the opcode-specific fields (F bit set).
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = 0x80 | (self.function & 0x7f);
        put_u64(raw, off::LUN, self.lun);
        put_u32(raw, off::ITT, self.itt);
        put_u32(raw, off::TTT, self.ref_task_tag);
        put_u32(raw, off::SN1, self.cmd_sn);
        put_u32(raw, off::SN2, self.exp_stat_sn);
        put_u32(raw, 32, self.ref_cmd_sn);
        put_u32(raw, 36, self.exp_data_sn);
    }
}

/// Task Management Function Response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskMgmtResponse {
    /// Response: 0 complete, 1 task does not exist, 2 LUN does not exist, 3 task still
    /// allegiant, 4 reassignment not supported, 5 not supported, 6 authorization failed,
    /// 255 rejected.
    pub response: u8,
    /// Initiator Task Tag of the request.
    pub itt: u32,
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
}

impl TaskMgmtResponse {
    /// Decode the opcode-specific fields.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        Ok(TaskMgmtResponse {
            response: raw[2],
            itt: get_u32(raw, off::ITT),
            stat_sn: get_u32(raw, off::SN1),
            exp_cmd_sn: get_u32(raw, off::SN2),
            max_cmd_sn: get_u32(raw, off::SN3),
        })
    }

    /// Encode the opcode-specific fields (F bit set).
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = 0x80;
        raw[2] = self.response;
        put_u32(raw, off::ITT, self.itt);
        put_u32(raw, off::SN1, self.stat_sn);
        put_u32(raw, off::SN2, self.exp_cmd_sn);
        put_u32(raw, off::SN3, self.max_cmd_sn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{bhs_bytes, check};

    #[test]
    fn abort_task() {
        let tmf = TaskMgmtRequest {
            immediate: true,
            function: 1,
            lun: 0x0002_0000_0000_0000,
            itt: 0x55,
            ref_task_tag: 0x44,
            cmd_sn: 0x100,
            exp_stat_sn: 0x200,
            ref_cmd_sn: 0xfe,
            exp_data_sn: 0,
        };
        let raw = bhs_bytes(&[
            (0, &[0x42, 0x81]),
            (8, &[0, 2, 0, 0, 0, 0, 0, 0]),
            (16, &[0, 0, 0, 0x55, 0, 0, 0, 0x44]),
            (24, &[0, 0, 1, 0, 0, 0, 2, 0]),
            (32, &[0, 0, 0, 0xfe, 0, 0, 0, 0]),
        ]);
        check(tmf, raw, 0, 0);
    }

    #[test]
    fn lun_reset_response() {
        let rsp = TaskMgmtResponse {
            response: 5,
            itt: 0x99,
            stat_sn: 3,
            exp_cmd_sn: 4,
            max_cmd_sn: 36,
        };
        let raw = bhs_bytes(&[
            (0, &[0x22, 0x80, 5, 0]),
            (16, &[0, 0, 0, 0x99]),
            (24, &[0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 36]),
        ]);
        check(rsp, raw, 0, 0);
    }
}
