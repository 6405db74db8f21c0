//! SCSI Data-Out (opcode 0x05, RFC 7143 11.7).

use crate::bhs::{get_u32, get_u64, off, put_u32, put_u64, BHS_LEN};

/// SCSI Data-Out: write data, unsolicited or in answer to an R2T.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataOut {
    /// F bit: last PDU of the sequence.
    pub final_: bool,
    /// Raw LUN field.
    pub lun: u64,
    /// Initiator Task Tag of the command.
    pub itt: u32,
    /// Target Transfer Tag (from the R2T; 0xffffffff for unsolicited data).
    pub ttt: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// DataSN within the sequence.
    pub data_sn: u32,
    /// Buffer Offset of this data within the command's buffer.
    pub buffer_offset: u32,
}

impl DataOut {
    /// Decode the opcode-specific fields.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        Ok(DataOut {
            final_: raw[off::FLAGS] & 0x80 != 0,
            lun: get_u64(raw, off::LUN),
            itt: get_u32(raw, off::ITT),
            ttt: get_u32(raw, off::TTT),
            exp_stat_sn: get_u32(raw, off::SN2),
            data_sn: get_u32(raw, 36),
            buffer_offset: get_u32(raw, 40),
        })
    }

    /// Encode the opcode-specific fields.
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = u8::from(self.final_) << 7;
        put_u64(raw, off::LUN, self.lun);
        put_u32(raw, off::ITT, self.itt);
        put_u32(raw, off::TTT, self.ttt);
        put_u32(raw, off::SN2, self.exp_stat_sn);
        put_u32(raw, 36, self.data_sn);
        put_u32(raw, 40, self.buffer_offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{bhs_bytes, check};

    #[test]
    fn solicited_final() {
        let d = DataOut {
            final_: true,
            lun: 0x0001_0000_0000_0000,
            itt: 0x11,
            ttt: 0x22,
            exp_stat_sn: 0x33,
            data_sn: 2,
            buffer_offset: 0x0002_0000,
        };
        let raw = bhs_bytes(&[
            (0, &[0x05, 0x80, 0, 0, 0, 0, 0x02, 0]),
            (8, &[0, 1, 0, 0, 0, 0, 0, 0]),
            (16, &[0, 0, 0, 0x11, 0, 0, 0, 0x22]),
            (28, &[0, 0, 0, 0x33]),
            (36, &[0, 0, 0, 2, 0, 2, 0, 0]),
        ]);
        check(d, raw, 512, 0);
    }

    #[test]
    fn stray_immediate_bit_is_ignored() {
        let raw = bhs_bytes(&[(0, &[0x45, 0x00])]);
        let d = DataOut::parse(&raw).expect("lenient");
        assert!(!d.final_);
    }
}
