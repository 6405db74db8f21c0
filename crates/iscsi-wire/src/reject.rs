//! Reject (opcode 0x3f, RFC 7143 11.17) and the reject reason codes.

use crate::bhs::{get_u32, off, put_u32, BHS_LEN};

/// A Reject reason code (RFC 7143 11.17.1). Open: any value may appear on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RejectReason(pub u8);

impl RejectReason {
    /// Data (payload) digest error.
    pub const DATA_DIGEST: RejectReason = RejectReason(0x02);
    /// SNACK reject.
    pub const SNACK_REJECT: RejectReason = RejectReason(0x03);
    /// Protocol error (e.g. SNACK request for a status that was already acknowledged).
    pub const PROTOCOL_ERROR: RejectReason = RejectReason(0x04);
    /// Command not supported.
    pub const COMMAND_NOT_SUPPORTED: RejectReason = RejectReason(0x05);
    /// Immediate command rejected: too many immediate commands.
    pub const IMMEDIATE_COMMAND_REJECT: RejectReason = RejectReason(0x06);
    /// Task in progress.
    pub const TASK_IN_PROGRESS: RejectReason = RejectReason(0x07);
    /// Invalid data ack.
    pub const INVALID_DATA_ACK: RejectReason = RejectReason(0x08);
    /// Invalid PDU field.
    pub const INVALID_PDU_FIELD: RejectReason = RejectReason(0x09);
    /// Long operation reject: out of resources to generate a target transfer tag.
    pub const LONG_OP_REJECT: RejectReason = RejectReason(0x0a);
    /// Waiting for logout.
    pub const WAITING_FOR_LOGOUT: RejectReason = RejectReason(0x0c);
}

/// Reject; the PDU's data segment is the rejected 48-byte BHS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reject {
    /// Reason code (see [`RejectReason`]).
    pub reason: u8,
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// DataSN/R2TSN (for a rejected SNACK; otherwise 0).
    pub data_sn: u32,
}

impl Reject {
    /// Decode the opcode-specific fields.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        Ok(Reject {
            reason: raw[2],
            stat_sn: get_u32(raw, off::SN1),
            exp_cmd_sn: get_u32(raw, off::SN2),
            max_cmd_sn: get_u32(raw, off::SN3),
            data_sn: get_u32(raw, 36),
        })
    }

    /// Encode the opcode-specific fields (F bit set, ITT 0xffffffff).
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = 0x80;
        raw[2] = self.reason;
        put_u32(raw, off::ITT, 0xffff_ffff);
        put_u32(raw, off::SN1, self.stat_sn);
        put_u32(raw, off::SN2, self.exp_cmd_sn);
        put_u32(raw, off::SN3, self.max_cmd_sn);
        put_u32(raw, 36, self.data_sn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{bhs_bytes, check};

    #[test]
    fn invalid_pdu_field() {
        let r = Reject {
            reason: RejectReason::INVALID_PDU_FIELD.0,
            stat_sn: 0x1000,
            exp_cmd_sn: 0x2000,
            max_cmd_sn: 0x2040,
            data_sn: 0,
        };
        let raw = bhs_bytes(&[
            (0, &[0x3f, 0x80, 0x09, 0, 0, 0, 0, 48]),
            (16, &[0xff, 0xff, 0xff, 0xff]),
            (24, &[0, 0, 0x10, 0, 0, 0, 0x20, 0, 0, 0, 0x20, 0x40]),
        ]);
        check(r, raw, 48, 0);
    }

    #[test]
    fn reason_codes() {
        assert_eq!(RejectReason::DATA_DIGEST.0, 2);
        assert_eq!(RejectReason::WAITING_FOR_LOGOUT.0, 0x0c);
    }
}
