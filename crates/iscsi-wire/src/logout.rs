//! Logout Request (0x06, RFC 7143 11.14) and Logout Response (0x26, 11.15).

use crate::bhs::{get_u16, get_u32, off, put_u16, put_u32, BHS_LEN};

/// Logout Request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogoutRequest {
    /// I bit: immediate delivery.
    pub immediate: bool,
    /// Reason code (7 bits): 0 close session, 1 close connection, 2 remove connection for recovery.
    pub reason: u8,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Connection ID to close (reasons 1 and 2).
    pub cid: u16,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
}

impl LogoutRequest {
    /// Decode the opcode-specific fields; the reason code is checked by the protocol layer.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        Ok(LogoutRequest {
            immediate: raw[0] & 0x40 != 0,
            reason: raw[off::FLAGS] & 0x7f,
            itt: get_u32(raw, off::ITT),
            cid: get_u16(raw, 20),
            cmd_sn: get_u32(raw, off::SN1),
            exp_stat_sn: get_u32(raw, off::SN2),
        })
    }

    /// Encode the opcode-specific fields (F bit set).
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = 0x80 | (self.reason & 0x7f);
        put_u32(raw, off::ITT, self.itt);
        put_u16(raw, 20, self.cid);
        put_u32(raw, off::SN1, self.cmd_sn);
        put_u32(raw, off::SN2, self.exp_stat_sn);
    }
}

/// Logout Response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogoutResponse {
    /// Response: 0 closed successfully, 1 CID not found, 2 recovery not supported, 3 cleanup failed.
    pub response: u8,
    /// Initiator Task Tag (echoed).
    pub itt: u32,
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// Time2Wait in seconds.
    pub time2wait: u16,
    /// Time2Retain in seconds.
    pub time2retain: u16,
}

impl LogoutResponse {
    /// Decode the opcode-specific fields.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        Ok(LogoutResponse {
            response: raw[2],
            itt: get_u32(raw, off::ITT),
            stat_sn: get_u32(raw, off::SN1),
            exp_cmd_sn: get_u32(raw, off::SN2),
            max_cmd_sn: get_u32(raw, off::SN3),
            time2wait: get_u16(raw, 40),
            time2retain: get_u16(raw, 42),
        })
    }

    /// Encode the opcode-specific fields (F bit set).
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = 0x80;
        raw[2] = self.response;
        put_u32(raw, off::ITT, self.itt);
        put_u32(raw, off::SN1, self.stat_sn);
        put_u32(raw, off::SN2, self.exp_cmd_sn);
        put_u32(raw, off::SN3, self.max_cmd_sn);
        put_u16(raw, 40, self.time2wait);
        put_u16(raw, 42, self.time2retain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{bhs_bytes, check};

    #[test]
    fn close_connection_request() {
        let req = LogoutRequest {
            immediate: true,
            reason: 1,
            itt: 0xaa,
            cid: 0x0102,
            cmd_sn: 0x0c,
            exp_stat_sn: 0x0d,
        };
        let raw = bhs_bytes(&[
            (0, &[0x46, 0x81]),
            (16, &[0, 0, 0, 0xaa, 1, 2, 0, 0]),
            (24, &[0, 0, 0, 0x0c, 0, 0, 0, 0x0d]),
        ]);
        check(req, raw, 0, 0);
    }

    #[test]
    fn response() {
        let rsp = LogoutResponse {
            response: 0,
            itt: 0xaa,
            stat_sn: 1,
            exp_cmd_sn: 2,
            max_cmd_sn: 3,
            time2wait: 2,
            time2retain: 20,
        };
        let raw = bhs_bytes(&[
            (0, &[0x26, 0x80]),
            (16, &[0, 0, 0, 0xaa]),
            (24, &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]),
            (40, &[0, 2, 0, 20]),
        ]);
        check(rsp, raw, 0, 0);
    }
}
