//! Asynchronous Message (opcode 0x32, RFC 7143 11.9).

use crate::bhs::{get_u16, get_u32, get_u64, off, put_u16, put_u32, put_u64, BHS_LEN};

/// Asynchronous Message (the ITT field is always 0xffffffff).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AsyncMessage {
    /// Raw LUN field (for SCSI async events).
    pub lun: u64,
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// AsyncEvent: 0 SCSI event, 1 logout request, 2 connection drop, 3 session drop,
    /// 4 negotiation request, 5 task termination, 255 vendor specific.
    pub event: u8,
    /// AsyncVCode.
    pub vcode: u8,
    /// Parameter1.
    pub param1: u16,
    /// Parameter2.
    pub param2: u16,
    /// Parameter3.
    pub param3: u16,
}

impl AsyncMessage {
    /// Decode the opcode-specific fields.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        Ok(AsyncMessage {
            lun: get_u64(raw, off::LUN),
            stat_sn: get_u32(raw, off::SN1),
            exp_cmd_sn: get_u32(raw, off::SN2),
            max_cmd_sn: get_u32(raw, off::SN3),
            event: raw[36],
            vcode: raw[37],
            param1: get_u16(raw, 38),
            param2: get_u16(raw, 40),
            param3: get_u16(raw, 42),
        })
    }

    /// Encode the opcode-specific fields (F bit set, ITT 0xffffffff).
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = 0x80;
        put_u64(raw, off::LUN, self.lun);
        put_u32(raw, off::ITT, 0xffff_ffff);
        put_u32(raw, off::SN1, self.stat_sn);
        put_u32(raw, off::SN2, self.exp_cmd_sn);
        put_u32(raw, off::SN3, self.max_cmd_sn);
        raw[36] = self.event;
        raw[37] = self.vcode;
        put_u16(raw, 38, self.param1);
        put_u16(raw, 40, self.param2);
        put_u16(raw, 42, self.param3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{bhs_bytes, check};

    #[test]
    fn logout_requested() {
        let a = AsyncMessage {
            lun: 0,
            stat_sn: 0x40,
            exp_cmd_sn: 0x41,
            max_cmd_sn: 0x42,
            event: 1,
            vcode: 0,
            param1: 0,
            param2: 0,
            param3: 10,
        };
        let raw = bhs_bytes(&[
            (0, &[0x32, 0x80]),
            (16, &[0xff, 0xff, 0xff, 0xff]),
            (24, &[0, 0, 0, 0x40, 0, 0, 0, 0x41, 0, 0, 0, 0x42]),
            (36, &[1, 0, 0, 0, 0, 0, 0, 10]),
        ]);
        check(a, raw, 0, 0);
    }

    #[test]
    fn scsi_event_with_sense() {
        let a = AsyncMessage {
            lun: 0x0002_0000_0000_0000,
            event: 0,
            vcode: 7,
            param1: 0x0102,
            param2: 0x0304,
            ..AsyncMessage::default()
        };
        let raw = bhs_bytes(&[
            (0, &[0x32, 0x80, 0, 0, 0, 0, 0, 18]),
            (8, &[0, 2, 0, 0, 0, 0, 0, 0]),
            (16, &[0xff, 0xff, 0xff, 0xff]),
            (36, &[0, 7, 1, 2, 3, 4]),
        ]);
        check(a, raw, 18, 0);
    }
}
