//! SCSI Response (opcode 0x21, RFC 7143 11.4).

use crate::bhs::{get_u32, off, put_u32, BHS_LEN};

/// SCSI Response: command completion status (sense data goes in the data segment).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScsiResponse {
    /// o bit: bidirectional read residual overflow.
    pub bidi_overflow: bool,
    /// u bit: bidirectional read residual underflow.
    pub bidi_underflow: bool,
    /// O bit: residual overflow.
    pub overflow: bool,
    /// U bit: residual underflow.
    pub underflow: bool,
    /// Response: 0 command completed at target, 1 target failure.
    pub response: u8,
    /// SCSI status byte (valid when `response` is 0).
    pub status: u8,
    /// Initiator Task Tag of the command.
    pub itt: u32,
    /// SNACK Tag.
    pub snack_tag: u32,
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// ExpDataSN (number of Data-In/R2T PDUs sent for the command).
    pub exp_data_sn: u32,
    /// Bidirectional Read Residual Count.
    pub bidi_residual: u32,
    /// Residual Count.
    pub residual: u32,
}

impl ScsiResponse {
    /// Decode the opcode-specific fields.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        let flags = raw[off::FLAGS];
        Ok(ScsiResponse {
            bidi_overflow: flags & 0x10 != 0,
            bidi_underflow: flags & 0x08 != 0,
            overflow: flags & 0x04 != 0,
            underflow: flags & 0x02 != 0,
            response: raw[2],
            status: raw[3],
            itt: get_u32(raw, off::ITT),
            snack_tag: get_u32(raw, off::TTT),
            stat_sn: get_u32(raw, off::SN1),
            exp_cmd_sn: get_u32(raw, off::SN2),
            max_cmd_sn: get_u32(raw, off::SN3),
            exp_data_sn: get_u32(raw, 36),
            bidi_residual: get_u32(raw, 40),
            residual: get_u32(raw, 44),
        })
    }

    /// Encode the opcode-specific fields (F bit set).
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = 0x80
            | (u8::from(self.bidi_overflow) << 4)
            | (u8::from(self.bidi_underflow) << 3)
            | (u8::from(self.overflow) << 2)
            | (u8::from(self.underflow) << 1);
        raw[2] = self.response;
        raw[3] = self.status;
        put_u32(raw, off::ITT, self.itt);
        put_u32(raw, off::TTT, self.snack_tag);
        put_u32(raw, off::SN1, self.stat_sn);
        put_u32(raw, off::SN2, self.exp_cmd_sn);
        put_u32(raw, off::SN3, self.max_cmd_sn);
        put_u32(raw, 36, self.exp_data_sn);
        put_u32(raw, 40, self.bidi_residual);
        put_u32(raw, 44, self.residual);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{bhs_bytes, check};

    #[test]
    fn check_condition_with_underflow() {
        let r = ScsiResponse {
            bidi_overflow: false,
            bidi_underflow: false,
            overflow: false,
            underflow: true,
            response: 0,
            status: 0x02,
            itt: 0x0102_0304,
            snack_tag: 0,
            stat_sn: 0x10,
            exp_cmd_sn: 0x11,
            max_cmd_sn: 0x50,
            exp_data_sn: 1,
            bidi_residual: 0,
            residual: 0x200,
        };
        let raw = bhs_bytes(&[
            (0, &[0x21, 0x82, 0x00, 0x02, 0, 0, 0, 20]),
            (16, &[1, 2, 3, 4]),
            (24, &[0, 0, 0, 0x10, 0, 0, 0, 0x11, 0, 0, 0, 0x50]),
            (36, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, 0]),
        ]);
        check(r, raw, 20, 0);
    }

    #[test]
    fn all_residual_flags() {
        let r = ScsiResponse {
            bidi_overflow: true,
            bidi_underflow: true,
            overflow: true,
            underflow: true,
            response: 1,
            snack_tag: 0xdead_beef,
            bidi_residual: 7,
            ..ScsiResponse::default()
        };
        let raw = bhs_bytes(&[
            (0, &[0x21, 0x9e, 0x01, 0x00]),
            (20, &[0xde, 0xad, 0xbe, 0xef]),
            (40, &[0, 0, 0, 7]),
        ]);
        check(r, raw, 0, 0);
    }
}
