//! SNACK Request (opcode 0x10, RFC 7143 11.16).

use crate::bhs::{get_u32, get_u64, off, put_u32, put_u64, BHS_LEN};

/// SNACK Request: asks the target to resend Data-In/R2T/status or acknowledges data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnackRequest {
    /// SNACK type (4 bits): 0 Data/R2T, 1 status, 2 DataACK, 3 R-Data.
    pub snack_type: u8,
    /// Raw LUN field.
    pub lun: u64,
    /// Initiator Task Tag (0xffffffff for a status SNACK).
    pub itt: u32,
    /// Target Transfer Tag (DataACK) or SNACK Tag (R-Data).
    pub ttt: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// BegRun.
    pub beg_run: u32,
    /// RunLength (0 means all from BegRun).
    pub run_length: u32,
}

impl SnackRequest {
    /// Decode the opcode-specific fields.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        Ok(SnackRequest {
            snack_type: raw[off::FLAGS] & 0x0f,
            lun: get_u64(raw, off::LUN),
            itt: get_u32(raw, off::ITT),
            ttt: get_u32(raw, off::TTT),
            exp_stat_sn: get_u32(raw, off::SN2),
            beg_run: get_u32(raw, 40),
            run_length: get_u32(raw, 44),
        })
    }

    /// Encode the opcode-specific fields (F bit set).
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = 0x80 | (self.snack_type & 0x0f);
        put_u64(raw, off::LUN, self.lun);
        put_u32(raw, off::ITT, self.itt);
        put_u32(raw, off::TTT, self.ttt);
        put_u32(raw, off::SN2, self.exp_stat_sn);
        put_u32(raw, 40, self.beg_run);
        put_u32(raw, 44, self.run_length);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{bhs_bytes, check};

    #[test]
    fn data_ack() {
        let s = SnackRequest {
            snack_type: 2,
            lun: 0x0005_0000_0000_0000,
            itt: 0x31,
            ttt: 0x32,
            exp_stat_sn: 0x33,
            beg_run: 0x34,
            run_length: 0,
        };
        let raw = bhs_bytes(&[
            (0, &[0x10, 0x82]),
            (8, &[0, 5, 0, 0, 0, 0, 0, 0]),
            (16, &[0, 0, 0, 0x31, 0, 0, 0, 0x32]),
            (28, &[0, 0, 0, 0x33]),
            (40, &[0, 0, 0, 0x34, 0, 0, 0, 0]),
        ]);
        check(s, raw, 0, 0);
    }
}
