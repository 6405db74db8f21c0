//! NOP-Out (opcode 0x00, RFC 7143 11.18).

use crate::bhs::{get_u32, get_u64, off, put_u32, put_u64, BHS_LEN};

/// NOP-Out: an initiator ping, or the answer to a target NOP-In.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NopOut {
    /// I bit: immediate delivery.
    pub immediate: bool,
    /// Raw LUN field (meaningful only when answering a NOP-In with a TTT).
    pub lun: u64,
    /// Initiator Task Tag; 0xffffffff when answering a target ping.
    pub itt: u32,
    /// Target Transfer Tag; 0xffffffff unless answering a NOP-In.
    pub ttt: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
}

impl NopOut {
    /// Decode the opcode-specific fields. The F bit and reserved fields are not checked.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        Ok(NopOut {
            immediate: raw[0] & 0x40 != 0,
            lun: get_u64(raw, off::LUN),
            itt: get_u32(raw, off::ITT),
            ttt: get_u32(raw, off::TTT),
            cmd_sn: get_u32(raw, off::SN1),
            exp_stat_sn: get_u32(raw, off::SN2),
        })
    }

    /// Encode the opcode-specific fields (F bit set); byte 0 and lengths are set by the codec.
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = 0x80;
        put_u64(raw, off::LUN, self.lun);
        put_u32(raw, off::ITT, self.itt);
        put_u32(raw, off::TTT, self.ttt);
        put_u32(raw, off::SN1, self.cmd_sn);
        put_u32(raw, off::SN2, self.exp_stat_sn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{bhs_bytes, check};
    use crate::{Bhs, RawBhs};

    #[test]
    fn ping_with_data() {
        let nop = NopOut {
            immediate: true,
            lun: 0x0001_0000_0000_0000,
            itt: 0x1234_5678,
            ttt: 0xffff_ffff,
            cmd_sn: 7,
            exp_stat_sn: 9,
        };
        let raw = bhs_bytes(&[
            (0, &[0x40, 0x80, 0, 0, 0, 0, 0, 5]),
            (8, &[0, 1, 0, 0, 0, 0, 0, 0]),
            (16, &[0x12, 0x34, 0x56, 0x78, 0xff, 0xff, 0xff, 0xff]),
            (24, &[0, 0, 0, 7, 0, 0, 0, 9]),
        ]);
        check(nop, raw, 5, 0);
    }

    #[test]
    fn reply_to_target_ping_without_f_bit_is_accepted() {
        let raw = bhs_bytes(&[(0, &[0x40]), (16, &[0xff; 4]), (20, &[0, 0, 0, 3])]);
        let Ok(Bhs::NopOut(nop)) = Bhs::parse(&RawBhs(raw)) else {
            panic!("not a NOP-Out")
        };
        assert_eq!((nop.itt, nop.ttt, nop.immediate), (0xffff_ffff, 3, true));
    }
}
