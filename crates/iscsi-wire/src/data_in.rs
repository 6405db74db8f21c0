//! SCSI Data-In (opcode 0x25, RFC 7143 11.7).

use crate::bhs::{get_u32, get_u64, off, put_u32, put_u64, BHS_LEN};

/// SCSI Data-In: read data, optionally carrying the command status (S bit).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataIn {
    /// F bit: last PDU of the sequence.
    pub final_: bool,
    /// A bit: the target asks for a DataACK SNACK (ERL > 0).
    pub ack: bool,
    /// O bit: residual overflow (only with `status_present`).
    pub overflow: bool,
    /// U bit: residual underflow (only with `status_present`).
    pub underflow: bool,
    /// S bit: this PDU carries the SCSI status; requires `final_`.
    pub status_present: bool,
    /// SCSI status byte (valid when `status_present`).
    pub status: u8,
    /// Raw LUN field (valid when `ack`; otherwise reserved).
    pub lun: u64,
    /// Initiator Task Tag of the command.
    pub itt: u32,
    /// Target Transfer Tag (0xffffffff unless `ack`).
    pub ttt: u32,
    /// StatSN (valid when `status_present`).
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// DataSN.
    pub data_sn: u32,
    /// Buffer Offset.
    pub buffer_offset: u32,
    /// Residual Count (valid when `status_present`).
    pub residual: u32,
}

impl DataIn {
    /// Decode the opcode-specific fields.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        let flags = raw[off::FLAGS];
        Ok(DataIn {
            final_: flags & 0x80 != 0,
            ack: flags & 0x40 != 0,
            overflow: flags & 0x04 != 0,
            underflow: flags & 0x02 != 0,
            status_present: flags & 0x01 != 0,
            status: raw[3],
            lun: get_u64(raw, off::LUN),
            itt: get_u32(raw, off::ITT),
            ttt: get_u32(raw, off::TTT),
            stat_sn: get_u32(raw, off::SN1),
            exp_cmd_sn: get_u32(raw, off::SN2),
            max_cmd_sn: get_u32(raw, off::SN3),
            data_sn: get_u32(raw, 36),
            buffer_offset: get_u32(raw, 40),
            residual: get_u32(raw, 44),
        })
    }

    /// Encode the opcode-specific fields.
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = (u8::from(self.final_) << 7)
            | (u8::from(self.ack) << 6)
            | (u8::from(self.overflow) << 2)
            | (u8::from(self.underflow) << 1)
            | u8::from(self.status_present);
        raw[3] = self.status;
        put_u64(raw, off::LUN, self.lun);
        put_u32(raw, off::ITT, self.itt);
        put_u32(raw, off::TTT, self.ttt);
        put_u32(raw, off::SN1, self.stat_sn);
        put_u32(raw, off::SN2, self.exp_cmd_sn);
        put_u32(raw, off::SN3, self.max_cmd_sn);
        put_u32(raw, 36, self.data_sn);
        put_u32(raw, 40, self.buffer_offset);
        put_u32(raw, 44, self.residual);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{bhs_bytes, check};

    #[test]
    fn final_with_status_and_underflow() {
        let d = DataIn {
            final_: true,
            ack: false,
            overflow: false,
            underflow: true,
            status_present: true,
            status: 0,
            lun: 0,
            itt: 0x77,
            ttt: 0xffff_ffff,
            stat_sn: 0x0a,
            exp_cmd_sn: 0x0b,
            max_cmd_sn: 0x0c,
            data_sn: 3,
            buffer_offset: 0x3000,
            residual: 0x100,
        };
        let raw = bhs_bytes(&[
            (0, &[0x25, 0x83, 0, 0, 0, 0, 0x0f, 0]),
            (16, &[0, 0, 0, 0x77, 0xff, 0xff, 0xff, 0xff]),
            (24, &[0, 0, 0, 0x0a, 0, 0, 0, 0x0b, 0, 0, 0, 0x0c]),
            (36, &[0, 0, 0, 3, 0, 0, 0x30, 0, 0, 0, 1, 0]),
        ]);
        check(d, raw, 0x0f00, 0);
    }

    #[test]
    fn ack_requested_with_overflow() {
        let d = DataIn {
            ack: true,
            overflow: true,
            status: 0x02,
            lun: 0x0001_0000_0000_0000,
            ttt: 5,
            ..DataIn::default()
        };
        let raw = bhs_bytes(&[
            (0, &[0x25, 0x44, 0, 0x02]),
            (8, &[0, 1, 0, 0, 0, 0, 0, 0]),
            (20, &[0, 0, 0, 5]),
        ]);
        check(d, raw, 0, 0);
    }
}
