//! Login Request (0x03, RFC 7143 11.12) and Login Response (0x23, 11.13).
//!
//! Field problems in a Login Request (T and C both set, reserved stage numbers, version
//! ranges) are answered with a Login Response status rather than a Reject, so they are
//! not checked here: the protocol layer decides.

use crate::bhs::{get_u16, get_u32, off, put_u16, put_u32, BHS_LEN};

/// Decoded byte 1 of a Login PDU: (T, C, CSG, NSG).
fn stage_flags(b: u8) -> (bool, bool, u8, u8) {
    (b & 0x80 != 0, b & 0x40 != 0, (b >> 2) & 0x03, b & 0x03)
}

/// Encoded byte 1 of a Login PDU.
fn stage_byte(transit: bool, cont: bool, csg: u8, nsg: u8) -> u8 {
    (u8::from(transit) << 7) | (u8::from(cont) << 6) | ((csg & 0x03) << 2) | (nsg & 0x03)
}

fn get_isid(raw: &[u8; BHS_LEN]) -> [u8; 6] {
    let mut isid = [0u8; 6];
    isid.copy_from_slice(&raw[8..14]);
    isid
}

/// Login Request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoginRequest {
    /// T bit: the initiator is ready to move to `nsg`.
    pub transit: bool,
    /// C bit: the text in this PDU continues in the next one.
    pub cont: bool,
    /// Current stage: 0 security negotiation, 1 operational negotiation, 3 full feature.
    pub csg: u8,
    /// Next stage (meaningful only when `transit`).
    pub nsg: u8,
    /// Version-max.
    pub version_max: u8,
    /// Version-min.
    pub version_min: u8,
    /// Initiator Session ID.
    pub isid: [u8; 6],
    /// Target Session Identifying Handle (0 for a new session).
    pub tsih: u16,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Connection ID.
    pub cid: u16,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
}

impl LoginRequest {
    /// Decode the opcode-specific fields (no field is rejected here).
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        let (transit, cont, csg, nsg) = stage_flags(raw[off::FLAGS]);
        Ok(LoginRequest {
            transit,
            cont,
            csg,
            nsg,
            version_max: raw[2],
            version_min: raw[3],
            isid: get_isid(raw),
            tsih: get_u16(raw, 14),
            itt: get_u32(raw, off::ITT),
            cid: get_u16(raw, 20),
            cmd_sn: get_u32(raw, off::SN1),
            exp_stat_sn: get_u32(raw, off::SN2),
        })
    }

    /// Encode the opcode-specific fields (the codec sets the I bit, always 1 for a Login).
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = stage_byte(self.transit, self.cont, self.csg, self.nsg);
        raw[2] = self.version_max;
        raw[3] = self.version_min;
        raw[8..14].copy_from_slice(&self.isid);
        put_u16(raw, 14, self.tsih);
        put_u32(raw, off::ITT, self.itt);
        put_u16(raw, 20, self.cid);
        put_u32(raw, off::SN1, self.cmd_sn);
        put_u32(raw, off::SN2, self.exp_stat_sn);
    }
}

/// Login Response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoginResponse {
    /// T bit: the target agrees to move to `nsg`.
    pub transit: bool,
    /// C bit: the text in this PDU continues in the next one.
    pub cont: bool,
    /// Current stage.
    pub csg: u8,
    /// Next stage (meaningful only when `transit`).
    pub nsg: u8,
    /// Version-max.
    pub version_max: u8,
    /// Version-active.
    pub version_active: u8,
    /// Initiator Session ID (echoed).
    pub isid: [u8; 6],
    /// Target Session Identifying Handle.
    pub tsih: u16,
    /// Initiator Task Tag (echoed).
    pub itt: u32,
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// Status-Class: 0 success, 1 redirection, 2 initiator error, 3 target error.
    pub status_class: u8,
    /// Status-Detail.
    pub status_detail: u8,
}

impl LoginResponse {
    /// Decode the opcode-specific fields.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        let (transit, cont, csg, nsg) = stage_flags(raw[off::FLAGS]);
        Ok(LoginResponse {
            transit,
            cont,
            csg,
            nsg,
            version_max: raw[2],
            version_active: raw[3],
            isid: get_isid(raw),
            tsih: get_u16(raw, 14),
            itt: get_u32(raw, off::ITT),
            stat_sn: get_u32(raw, off::SN1),
            exp_cmd_sn: get_u32(raw, off::SN2),
            max_cmd_sn: get_u32(raw, off::SN3),
            status_class: raw[36],
            status_detail: raw[37],
        })
    }

    /// Encode the opcode-specific fields.
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = stage_byte(self.transit, self.cont, self.csg, self.nsg);
        raw[2] = self.version_max;
        raw[3] = self.version_active;
        raw[8..14].copy_from_slice(&self.isid);
        put_u16(raw, 14, self.tsih);
        put_u32(raw, off::ITT, self.itt);
        put_u32(raw, off::SN1, self.stat_sn);
        put_u32(raw, off::SN2, self.exp_cmd_sn);
        put_u32(raw, off::SN3, self.max_cmd_sn);
        raw[36] = self.status_class;
        raw[37] = self.status_detail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{bhs_bytes, check};

    #[test]
    fn security_to_operational_request() {
        let req = LoginRequest {
            transit: true,
            cont: false,
            csg: 0,
            nsg: 1,
            version_max: 0,
            version_min: 0,
            isid: [0x80, 0x12, 0x34, 0x56, 0x78, 0x9a],
            tsih: 0,
            itt: 0x0000_0001,
            cid: 0x0007,
            cmd_sn: 0x0000_1000,
            exp_stat_sn: 0,
        };
        let raw = bhs_bytes(&[
            (0, &[0x43, 0x81, 0, 0, 0, 0, 0x01, 0x2c]),
            (8, &[0x80, 0x12, 0x34, 0x56, 0x78, 0x9a, 0, 0]),
            (16, &[0, 0, 0, 1, 0, 7, 0, 0]),
            (24, &[0, 0, 0x10, 0]),
        ]);
        check(req, raw, 300, 0);
    }

    #[test]
    fn t_and_c_together_is_left_to_the_protocol_layer() {
        let raw = bhs_bytes(&[(0, &[0x43, 0xc7])]);
        let req = LoginRequest::parse(&raw).expect("lenient");
        assert!(req.transit && req.cont);
        assert_eq!((req.csg, req.nsg), (1, 3));
    }

    #[test]
    fn full_feature_response_with_error_status() {
        let rsp = LoginResponse {
            transit: true,
            cont: false,
            csg: 1,
            nsg: 3,
            version_max: 0,
            version_active: 0,
            isid: [0x40, 0, 0, 0x01, 0x37, 0],
            tsih: 0x0102,
            itt: 0x0304_0506,
            stat_sn: 0x11,
            exp_cmd_sn: 0x22,
            max_cmd_sn: 0x33,
            status_class: 2,
            status_detail: 1,
        };
        let raw = bhs_bytes(&[
            (0, &[0x23, 0x87, 0, 0, 0, 0, 0, 0x10]),
            (8, &[0x40, 0, 0, 0x01, 0x37, 0, 0x01, 0x02]),
            (16, &[3, 4, 5, 6]),
            (24, &[0, 0, 0, 0x11, 0, 0, 0, 0x22, 0, 0, 0, 0x33]),
            (36, &[2, 1]),
        ]);
        check(rsp, raw, 16, 0);
    }
}
