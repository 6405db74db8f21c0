//! NOP-In (opcode 0x20, RFC 7143 11.19).

use crate::bhs::{get_u32, get_u64, off, put_u32, put_u64, BHS_LEN};

/// NOP-In: the answer to a NOP-Out, or a target ping (TTT != 0xffffffff).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NopIn {
    /// Raw LUN field (echoed from the NOP-Out, or set with a TTT).
    pub lun: u64,
    /// Initiator Task Tag; 0xffffffff for a target-initiated ping.
    pub itt: u32,
    /// Target Transfer Tag; 0xffffffff when no answer is wanted.
    pub ttt: u32,
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
}

impl NopIn {
    /// Decode the opcode-specific fields.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        Ok(NopIn {
            lun: get_u64(raw, off::LUN),
            itt: get_u32(raw, off::ITT),
            ttt: get_u32(raw, off::TTT),
            stat_sn: get_u32(raw, off::SN1),
            exp_cmd_sn: get_u32(raw, off::SN2),
            max_cmd_sn: get_u32(raw, off::SN3),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{bhs_bytes, check};

    #[test]
    fn target_ping() {
        let nop = NopIn {
            lun: 0,
            itt: 0xffff_ffff,
            ttt: 0x0000_0042,
            stat_sn: 0x0102_0304,
            exp_cmd_sn: 0x1112_1314,
            max_cmd_sn: 0x2122_2324,
        };
        let raw = bhs_bytes(&[
            (0, &[0x20, 0x80]),
            (16, &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x42]),
            (
                24,
                &[1, 2, 3, 4, 0x11, 0x12, 0x13, 0x14, 0x21, 0x22, 0x23, 0x24],
            ),
        ]);
        check(nop, raw, 0, 0);
    }
}
