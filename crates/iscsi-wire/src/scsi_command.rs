//! SCSI Command (opcode 0x01, RFC 7143 11.3).

use crate::bhs::{get_u32, get_u64, off, put_u32, put_u64, BHS_LEN};

/// SCSI Command request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScsiCommand {
    /// I bit: immediate delivery.
    pub immediate: bool,
    /// F bit: no unsolicited Data-Out PDUs follow.
    pub final_: bool,
    /// R bit: data is expected from the target.
    pub read: bool,
    /// W bit: data is expected from the initiator.
    pub write: bool,
    /// Task attribute (ATTR, 3 bits): 0 untagged, 1 simple, 2 ordered, 3 head of queue, 4 ACA.
    pub attr: u8,
    /// Raw LUN field.
    pub lun: u64,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Expected Data Transfer Length.
    pub expected_data_len: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// The CDB (first 16 bytes; longer CDBs continue in an extended-CDB AHS).
    pub cdb: [u8; 16],
}

impl ScsiCommand {
    /// Decode the opcode-specific fields. Flag combinations (e.g. data length with
    /// neither R nor W) are left to the protocol layer.
    pub fn parse(raw: &[u8; BHS_LEN]) -> Result<Self, &'static str> {
        let flags = raw[off::FLAGS];
        let mut cdb = [0u8; 16];
        cdb.copy_from_slice(&raw[32..48]);
        Ok(ScsiCommand {
            immediate: raw[0] & 0x40 != 0,
            final_: flags & 0x80 != 0,
            read: flags & 0x40 != 0,
            write: flags & 0x20 != 0,
            attr: flags & 0x07,
            lun: get_u64(raw, off::LUN),
            itt: get_u32(raw, off::ITT),
            expected_data_len: get_u32(raw, off::TTT),
            cmd_sn: get_u32(raw, off::SN1),
            exp_stat_sn: get_u32(raw, off::SN2),
            cdb,
        })
    }

    /// Encode the opcode-specific fields.
    pub fn write(&self, raw: &mut [u8; BHS_LEN]) {
        raw[off::FLAGS] = (u8::from(self.final_) << 7)
            | (u8::from(self.read) << 6)
            | (u8::from(self.write) << 5)
            | (self.attr & 0x07);
        put_u64(raw, off::LUN, self.lun);
        put_u32(raw, off::ITT, self.itt);
        put_u32(raw, off::TTT, self.expected_data_len);
        put_u32(raw, off::SN1, self.cmd_sn);
        put_u32(raw, off::SN2, self.exp_stat_sn);
        raw[32..48].copy_from_slice(&self.cdb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{bhs_bytes, check};

    #[test]
    fn read10() {
        let mut cdb = [0u8; 16];
        cdb[..10].copy_from_slice(&[0x28, 0, 0, 0, 0x10, 0, 0, 0, 8, 0]);
        let cmd = ScsiCommand {
            immediate: false,
            final_: true,
            read: true,
            write: false,
            attr: 1,
            lun: 0x0003_0000_0000_0000,
            itt: 0x0a0b_0c0d,
            expected_data_len: 4096,
            cmd_sn: 0x10,
            exp_stat_sn: 0x20,
            cdb,
        };
        let raw = bhs_bytes(&[
            (0, &[0x01, 0xc1, 0, 0]),
            (8, &[0, 3, 0, 0, 0, 0, 0, 0]),
            (16, &[0x0a, 0x0b, 0x0c, 0x0d, 0, 0, 0x10, 0]),
            (24, &[0, 0, 0, 0x10, 0, 0, 0, 0x20]),
            (32, &[0x28, 0, 0, 0, 0x10, 0, 0, 0, 8, 0]),
        ]);
        check(cmd, raw, 0, 0);
    }

    #[test]
    fn immediate_write_with_unsolicited_data_and_ahs() {
        let cmd = ScsiCommand {
            immediate: true,
            final_: false,
            read: false,
            write: true,
            attr: 2,
            lun: 0,
            itt: 1,
            expected_data_len: 0x0001_0000,
            cmd_sn: 1,
            exp_stat_sn: 1,
            cdb: [0x2a; 16],
        };
        let raw = bhs_bytes(&[
            (0, &[0x41, 0x22, 0, 0, 2, 0, 0x20, 0]),
            (16, &[0, 0, 0, 1, 0, 1, 0, 0]),
            (24, &[0, 0, 0, 1, 0, 0, 0, 1]),
            (32, &[0x2a; 16]),
        ]);
        check(cmd, raw, 0x2000, 2);
    }

    #[test]
    fn reserved_bits_are_ignored() {
        let raw = bhs_bytes(&[(0, &[0x01, 0x98, 0xff, 0xff])]);
        let cmd = ScsiCommand::parse(&raw).expect("lenient");
        assert!(cmd.final_ && !cmd.read && !cmd.write);
        assert_eq!(cmd.attr, 0);
    }
}
