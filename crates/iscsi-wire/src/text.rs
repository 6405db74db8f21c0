//! Text Request (0x04, RFC 7143 11.10) and Text Response (0x24, 11.11).

use crate::bhs::{get_u32, get_u64, off, put_u32, put_u64, BHS_LEN};

/// Text Request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextRequest {
    /// I bit: immediate delivery.
    pub immediate: bool,
    /// F bit: the last PDU of the request.
    pub final_: bool,
    /// C bit: the text continues in the next PDU.
    pub cont: bool,
    /// Raw LUN field.
    pub lun: u64,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Target Transfer Tag (0xffffffff on a new request).
    pub ttt: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
}

impl TextRequest {
    /// Decode the opcode-specific fields. F and C both set is invalid (RFC 7143 11.10.2).
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        let flags = raw[off::FLAGS];
        let (final_, cont) = (flags & 0x80 != 0, flags & 0x40 != 0);
        if final_ && cont {
            return Err("Text Request with both F and C bits set");
        }
        Ok(TextRequest {
            immediate: raw[0] & 0x40 != 0,
            final_,
            cont,
            lun: get_u64(raw, off::LUN),
            itt: get_u32(raw, off::ITT),
            ttt: get_u32(raw, off::TTT),
            cmd_sn: get_u32(raw, off::SN1),
            exp_stat_sn: get_u32(raw, off::SN2),
        })
    }

    /// Encode the opcode-specific fields.
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = (u8::from(self.final_) << 7) | (u8::from(self.cont) << 6);
        put_u64(raw, off::LUN, self.lun);
        put_u32(raw, off::ITT, self.itt);
        put_u32(raw, off::TTT, self.ttt);
        put_u32(raw, off::SN1, self.cmd_sn);
        put_u32(raw, off::SN2, self.exp_stat_sn);
    }
}

/// Text Response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextResponse {
    /// F bit: the last PDU of the response.
    pub final_: bool,
    /// C bit: the text continues in the next PDU.
    pub cont: bool,
    /// Raw LUN field.
    pub lun: u64,
    /// Initiator Task Tag (echoed).
    pub itt: u32,
    /// Target Transfer Tag (0xffffffff when the exchange is complete).
    pub ttt: u32,
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
}

impl TextResponse {
    /// Decode the opcode-specific fields.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        let flags = raw[off::FLAGS];
        Ok(TextResponse {
            final_: flags & 0x80 != 0,
            cont: flags & 0x40 != 0,
            lun: get_u64(raw, off::LUN),
            itt: get_u32(raw, off::ITT),
            ttt: get_u32(raw, off::TTT),
            stat_sn: get_u32(raw, off::SN1),
            exp_cmd_sn: get_u32(raw, off::SN2),
            max_cmd_sn: get_u32(raw, off::SN3),
        })
    }

    /// Encode the opcode-specific fields.
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = (u8::from(self.final_) << 7) | (u8::from(self.cont) << 6);
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
    fn send_targets_request() {
        let req = TextRequest {
            immediate: true,
            final_: true,
            cont: false,
            lun: 0,
            itt: 0x0102_0304,
            ttt: 0xffff_ffff,
            cmd_sn: 5,
            exp_stat_sn: 6,
        };
        let raw = bhs_bytes(&[
            (0, &[0x44, 0x80, 0, 0, 0, 0, 0, 16]),
            (16, &[1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff]),
            (24, &[0, 0, 0, 5, 0, 0, 0, 6]),
        ]);
        check(req, raw, 16, 0);
    }

    #[test]
    fn continued_request() {
        let req = TextRequest {
            cont: true,
            itt: 9,
            ttt: 0x77,
            ..TextRequest::default()
        };
        let raw = bhs_bytes(&[(0, &[0x04, 0x40]), (16, &[0, 0, 0, 9, 0, 0, 0, 0x77])]);
        check(req, raw, 0, 0);
    }

    #[test]
    fn final_and_continue_is_invalid() {
        let raw = bhs_bytes(&[(0, &[0x04, 0xc0])]);
        assert!(TextRequest::parse(&raw).is_err());
    }

    #[test]
    fn response_with_continue() {
        let rsp = TextResponse {
            final_: false,
            cont: true,
            lun: 0,
            itt: 0x10,
            ttt: 0x20,
            stat_sn: 1,
            exp_cmd_sn: 2,
            max_cmd_sn: 3,
        };
        let raw = bhs_bytes(&[
            (0, &[0x24, 0x40, 0, 0, 0, 0, 0x20, 0]),
            (16, &[0, 0, 0, 0x10, 0, 0, 0, 0x20]),
            (24, &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]),
        ]);
        check(rsp, raw, 0x2000, 0);
    }
}
