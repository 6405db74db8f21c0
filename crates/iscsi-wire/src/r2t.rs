//! Ready To Transfer (opcode 0x31, RFC 7143 11.8).

use crate::bhs::{get_u32, get_u64, off, put_u32, put_u64, BHS_LEN};

/// R2T: the target solicits write data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct R2t {
    /// Raw LUN field.
    pub lun: u64,
    /// Initiator Task Tag of the command.
    pub itt: u32,
    /// Target Transfer Tag the Data-Out PDUs must carry.
    pub ttt: u32,
    /// StatSN (the next StatSN; not advanced).
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// R2TSN.
    pub r2t_sn: u32,
    /// Buffer Offset of the requested data.
    pub buffer_offset: u32,
    /// Desired Data Transfer Length.
    pub desired_len: u32,
}

impl R2t {
    /// Decode the opcode-specific fields.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        Ok(R2t {
            lun: get_u64(raw, off::LUN),
            itt: get_u32(raw, off::ITT),
            ttt: get_u32(raw, off::TTT),
            stat_sn: get_u32(raw, off::SN1),
            exp_cmd_sn: get_u32(raw, off::SN2),
            max_cmd_sn: get_u32(raw, off::SN3),
            r2t_sn: get_u32(raw, 36),
            buffer_offset: get_u32(raw, 40),
            desired_len: get_u32(raw, 44),
        })
    }

    /// Encode the opcode-specific fields (F bit set).
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = 0x80;
        put_u64(raw, off::LUN, self.lun);
        put_u32(raw, off::ITT, self.itt);
        put_u32(raw, off::TTT, self.ttt);
        put_u32(raw, off::SN1, self.stat_sn);
        put_u32(raw, off::SN2, self.exp_cmd_sn);
        put_u32(raw, off::SN3, self.max_cmd_sn);
        put_u32(raw, 36, self.r2t_sn);
        put_u32(raw, 40, self.buffer_offset);
        put_u32(raw, 44, self.desired_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{bhs_bytes, check};

    #[test]
    fn second_r2t() {
        let r = R2t {
            lun: 0x0001_0000_0000_0000,
            itt: 0x21,
            ttt: 0x22,
            stat_sn: 0x23,
            exp_cmd_sn: 0x24,
            max_cmd_sn: 0x25,
            r2t_sn: 1,
            buffer_offset: 0x0004_0000,
            desired_len: 0x0004_0000,
        };
        let raw = bhs_bytes(&[
            (0, &[0x31, 0x80]),
            (8, &[0, 1, 0, 0, 0, 0, 0, 0]),
            (16, &[0, 0, 0, 0x21, 0, 0, 0, 0x22]),
            (24, &[0, 0, 0, 0x23, 0, 0, 0, 0x24, 0, 0, 0, 0x25]),
            (36, &[0, 0, 0, 1, 0, 4, 0, 0, 0, 4, 0, 0]),
        ]);
        check(r, raw, 0, 0);
    }
}
