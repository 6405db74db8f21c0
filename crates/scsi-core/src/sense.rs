//! Sense data: keys, additional sense codes, fixed and descriptor encodings, and the error type
//! every command handler returns.

use std::io;

/// A sense key (SPC-4 table 27). Open: any 4-bit value is representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SenseKey(pub u8);

impl SenseKey {
    /// NO SENSE.
    pub const NO_SENSE: SenseKey = SenseKey(0x0);
    /// RECOVERED ERROR.
    pub const RECOVERED_ERROR: SenseKey = SenseKey(0x1);
    /// NOT READY.
    pub const NOT_READY: SenseKey = SenseKey(0x2);
    /// MEDIUM ERROR.
    pub const MEDIUM_ERROR: SenseKey = SenseKey(0x3);
    /// HARDWARE ERROR.
    pub const HARDWARE_ERROR: SenseKey = SenseKey(0x4);
    /// ILLEGAL REQUEST.
    pub const ILLEGAL_REQUEST: SenseKey = SenseKey(0x5);
    /// UNIT ATTENTION.
    pub const UNIT_ATTENTION: SenseKey = SenseKey(0x6);
    /// DATA PROTECT.
    pub const DATA_PROTECT: SenseKey = SenseKey(0x7);
    /// COPY ABORTED.
    pub const COPY_ABORTED: SenseKey = SenseKey(0xA);
    /// ABORTED COMMAND.
    pub const ABORTED_COMMAND: SenseKey = SenseKey(0xB);
    /// MISCOMPARE.
    pub const MISCOMPARE: SenseKey = SenseKey(0xE);
}

/// An additional sense code and qualifier, as `(ASC << 8) | ASCQ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Asc(pub u16);

impl Asc {
    /// NONE.
    pub const NONE: Asc = Asc(0x0000);
    /// LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS.
    pub const SANITIZE_IN_PROGRESS: Asc = Asc(0x041B);
    /// UNREACHABLE COPY TARGET.
    pub const UNREACHABLE_COPY_TARGET: Asc = Asc(0x0804);
    /// COPY TARGET DEVICE NOT REACHABLE.
    pub const COPY_TARGET_DEVICE_NOT_REACHABLE: Asc = Asc(0x0D02);
    /// INCORRECT COPY TARGET DEVICE TYPE.
    pub const INCORRECT_COPY_TARGET_DEVICE_TYPE: Asc = Asc(0x0D03);
    /// COPY TARGET DEVICE DATA UNDERRUN.
    pub const COPY_TARGET_DEVICE_DATA_UNDERRUN: Asc = Asc(0x0D04);
    /// LUN NOT READY INIT REQUIRED.
    pub const LUN_NOT_READY_INIT_REQUIRED: Asc = Asc(0x0402);
    /// WRITE ERROR.
    pub const WRITE_ERROR: Asc = Asc(0x0C00);
    /// INVALID FIELD IN IU.
    pub const INVALID_FIELD_IN_IU: Asc = Asc(0x0E03);
    /// UNRECOVERED READ ERROR.
    pub const UNRECOVERED_READ_ERROR: Asc = Asc(0x1100);
    /// PARAMETER LIST LENGTH ERROR.
    pub const PARAMETER_LIST_LENGTH_ERROR: Asc = Asc(0x1A00);
    /// MISCOMPARE DURING VERIFY.
    pub const MISCOMPARE_DURING_VERIFY: Asc = Asc(0x1D00);
    /// INVALID OPCODE.
    pub const INVALID_OPCODE: Asc = Asc(0x2000);
    /// LBA OUT OF RANGE.
    pub const LBA_OUT_OF_RANGE: Asc = Asc(0x2100);
    /// INVALID FIELD IN CDB.
    pub const INVALID_FIELD_IN_CDB: Asc = Asc(0x2400);
    /// LUN NOT SUPPORTED.
    pub const LUN_NOT_SUPPORTED: Asc = Asc(0x2500);
    /// INVALID FIELD IN PARAMETER LIST.
    pub const INVALID_FIELD_IN_PARAMETER_LIST: Asc = Asc(0x2600);
    /// TOO MANY TARGET DESCRIPTORS.
    pub const TOO_MANY_TARGET_DESCRIPTORS: Asc = Asc(0x2606);
    /// UNSUPPORTED TARGET DESCRIPTOR TYPE CODE.
    pub const UNSUPPORTED_TARGET_DESCRIPTOR_TYPE: Asc = Asc(0x2607);
    /// TOO MANY SEGMENT DESCRIPTORS.
    pub const TOO_MANY_SEGMENT_DESCRIPTORS: Asc = Asc(0x2608);
    /// UNSUPPORTED SEGMENT DESCRIPTOR TYPE CODE.
    pub const UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE: Asc = Asc(0x2609);
    /// INLINE DATA LENGTH EXCEEDED.
    pub const INLINE_DATA_LENGTH_EXCEEDED: Asc = Asc(0x260B);
    /// INVALID RELEASE OF PR.
    pub const INVALID_RELEASE_OF_PR: Asc = Asc(0x2604);
    /// WRITE PROTECTED.
    pub const WRITE_PROTECTED: Asc = Asc(0x2700);
    /// SPACE ALLOCATION FAILED.
    pub const SPACE_ALLOCATION_FAILED: Asc = Asc(0x2707);
    /// NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED.
    pub const NOT_READY_TO_READY_CHANGE: Asc = Asc(0x2800);
    /// POWER ON RESET.
    pub const POWER_ON_RESET: Asc = Asc(0x2900);
    /// POWER ON OCCURRED.
    pub const POWER_ON_OCCURRED: Asc = Asc(0x2901);
    /// BUS RESET.
    pub const BUS_RESET: Asc = Asc(0x2902);
    /// BUS DEVICE RESET.
    pub const BUS_DEVICE_RESET: Asc = Asc(0x2903);
    /// I T NEXUS LOSS.
    pub const I_T_NEXUS_LOSS: Asc = Asc(0x2907);
    /// MODE PARAMETERS CHANGED.
    pub const MODE_PARAMETERS_CHANGED: Asc = Asc(0x2A01);
    /// RESERVATIONS PREEMPTED.
    pub const RESERVATIONS_PREEMPTED: Asc = Asc(0x2A03);
    /// RESERVATIONS RELEASED.
    pub const RESERVATIONS_RELEASED: Asc = Asc(0x2A04);
    /// REGISTRATIONS PREEMPTED.
    pub const REGISTRATIONS_PREEMPTED: Asc = Asc(0x2A05);
    /// COMMANDS CLEARED BY ANOTHER INITIATOR.
    pub const COMMANDS_CLEARED_BY_ANOTHER_INITIATOR: Asc = Asc(0x2F00);
    /// SAVING PARAMETERS NOT SUPPORTED.
    pub const SAVING_PARAMETERS_NOT_SUPPORTED: Asc = Asc(0x3900);
    /// MEDIUM NOT PRESENT.
    pub const MEDIUM_NOT_PRESENT: Asc = Asc(0x3A00);
    /// REPORTED LUNS DATA CHANGED.
    pub const REPORTED_LUNS_DATA_CHANGED: Asc = Asc(0x3F0E);
    /// INTERNAL TARGET FAILURE.
    pub const INTERNAL_TARGET_FAILURE: Asc = Asc(0x4400);
    /// MEDIUM REMOVAL PREVENTED.
    pub const MEDIUM_REMOVAL_PREVENTED: Asc = Asc(0x5302);
    /// INSUFFICIENT REGISTRATION RESOURCES.
    pub const INSUFFICIENT_REGISTRATION_RESOURCES: Asc = Asc(0x5504);

    /// The additional sense code byte.
    pub fn asc(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// The additional sense code qualifier byte.
    pub fn ascq(self) -> u8 {
        self.0 as u8
    }
}

/// The sense-key-specific field pointer of an INVALID FIELD error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldPointer {
    /// True when the field is in the CDB, false when it is in the parameter list.
    pub in_cdb: bool,
    /// Byte offset of the field.
    pub byte: u16,
    /// Most significant bit of the field, if given.
    pub bit: Option<u8>,
}

impl FieldPointer {
    /// The three SENSE KEY SPECIFIC bytes (SKSV set).
    pub fn to_bytes(self) -> [u8; 3] {
        let mut b0 = 0x80;
        if self.in_cdb {
            b0 |= 0x40;
        }
        if let Some(bit) = self.bit {
            b0 |= 0x08 | (bit & 0x07);
        }
        let [hi, lo] = self.byte.to_be_bytes();
        [b0, hi, lo]
    }
}

/// One sense condition: key, code and optional information / field pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    /// The sense key.
    pub key: SenseKey,
    /// The additional sense code and qualifier.
    pub asc: Asc,
    /// The INFORMATION field (e.g. the miscompare offset), if valid.
    pub info: Option<u64>,
    /// Sense-key-specific field pointer, if any.
    pub field: Option<FieldPointer>,
    /// Sense-key-specific progress indication (how much of an operation in progress is done,
    /// in 65536ths), if any; used instead of `field`.
    pub progress: Option<u16>,
}

impl Sense {
    /// A sense condition without information or field pointer.
    pub const fn new(key: SenseKey, asc: Asc) -> Sense {
        Sense {
            key,
            asc,
            info: None,
            field: None,
            progress: None,
        }
    }

    /// NOT READY / LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS with the progress indication.
    pub const fn sanitize_in_progress(progress: u16) -> Sense {
        Sense {
            progress: Some(progress),
            ..Sense::new(SenseKey::NOT_READY, Asc::SANITIZE_IN_PROGRESS)
        }
    }

    /// ILLEGAL REQUEST / INVALID FIELD IN CDB pointing at `byte` (and `bit`, if given).
    pub fn invalid_cdb(byte: u16, bit: Option<u8>) -> Sense {
        Sense {
            field: Some(FieldPointer {
                in_cdb: true,
                byte,
                bit,
            }),
            ..Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
        }
    }

    /// ILLEGAL REQUEST / INVALID FIELD IN PARAMETER LIST pointing at `byte`/`bit`.
    pub fn invalid_param(byte: u16, bit: Option<u8>) -> Sense {
        Sense {
            field: Some(FieldPointer {
                in_cdb: false,
                byte,
                bit,
            }),
            ..Sense::new(
                SenseKey::ILLEGAL_REQUEST,
                Asc::INVALID_FIELD_IN_PARAMETER_LIST,
            )
        }
    }

    /// ILLEGAL REQUEST with the given code.
    pub const fn illegal(asc: Asc) -> Sense {
        Sense::new(SenseKey::ILLEGAL_REQUEST, asc)
    }

    /// ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE.
    pub const fn lba_out_of_range() -> Sense {
        Sense::illegal(Asc::LBA_OUT_OF_RANGE)
    }

    /// ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE (pointing at byte 0).
    pub fn invalid_opcode() -> Sense {
        Sense {
            field: Some(FieldPointer {
                in_cdb: true,
                byte: 0,
                bit: None,
            }),
            ..Sense::illegal(Asc::INVALID_OPCODE)
        }
    }

    /// COPY ABORTED with the given code (an EXTENDED COPY stopped while processing segments).
    pub const fn copy_aborted(asc: Asc) -> Sense {
        Sense::new(SenseKey::COPY_ABORTED, asc)
    }

    /// DATA PROTECT / WRITE PROTECTED.
    pub const fn write_protected() -> Sense {
        Sense::new(SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED)
    }

    /// Adds an INFORMATION field.
    pub fn with_info(mut self, info: u64) -> Sense {
        self.info = Some(info);
        self
    }

    /// Maps a store error onto sense data. `write` selects the MEDIUM ERROR code.
    pub fn from_io(err: &io::Error, write: bool) -> Sense {
        match err.raw_os_error() {
            Some(libc_eio) if libc_eio == EIO => {
                let asc = if write {
                    Asc::WRITE_ERROR
                } else {
                    Asc::UNRECOVERED_READ_ERROR
                };
                Sense::new(SenseKey::MEDIUM_ERROR, asc)
            }
            Some(e) if e == ENOSPC => {
                Sense::new(SenseKey::DATA_PROTECT, Asc::SPACE_ALLOCATION_FAILED)
            }
            _ => Sense::new(SenseKey::HARDWARE_ERROR, Asc::INTERNAL_TARGET_FAILURE),
        }
    }

    /// Encodes in fixed format (response code 70h), 18 bytes.
    pub fn to_fixed(&self) -> Vec<u8> {
        let mut s = vec![0u8; 18];
        s[0] = 0x70;
        s[2] = self.key.0 & 0x0F;
        if let Some(info) = self.info {
            if let Ok(v) = u32::try_from(info) {
                s[0] |= 0x80;
                s[3..7].copy_from_slice(&v.to_be_bytes());
            }
        }
        s[7] = 10;
        s[12] = self.asc.asc();
        s[13] = self.asc.ascq();
        if let Some(sks) = self.key_specific() {
            s[15..18].copy_from_slice(&sks);
        }
        s
    }

    /// The three SENSE KEY SPECIFIC bytes (SKSV set), if any.
    fn key_specific(&self) -> Option<[u8; 3]> {
        match (self.field, self.progress) {
            (Some(f), _) => Some(f.to_bytes()),
            (None, Some(p)) => {
                let [hi, lo] = p.to_be_bytes();
                Some([0x80, hi, lo])
            }
            (None, None) => None,
        }
    }

    /// Encodes in descriptor format (response code 72h).
    pub fn to_descriptor(&self) -> Vec<u8> {
        let mut s = vec![
            0x72,
            self.key.0 & 0x0F,
            self.asc.asc(),
            self.asc.ascq(),
            0,
            0,
            0,
            0,
        ];
        if let Some(info) = self.info {
            s.extend_from_slice(&[0x00, 0x0A, 0x80, 0x00]);
            s.extend_from_slice(&info.to_be_bytes());
        }
        if let Some(sks) = self.key_specific() {
            s.extend_from_slice(&[0x02, 0x06, 0x00, 0x00]);
            s.extend_from_slice(&sks);
            s.push(0);
        }
        s[7] = (s.len() - 8) as u8;
        s
    }

    /// Encodes in the format chosen by the D_SENSE bit.
    pub fn encode(&self, descriptor: bool) -> Vec<u8> {
        if descriptor {
            self.to_descriptor()
        } else {
            self.to_fixed()
        }
    }
}

/// Linux errno values the store errors are mapped by.
const EIO: i32 = 5;
const ENOSPC: i32 = 28;

/// Why a command did not complete with GOOD status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdError {
    /// CHECK CONDITION with this sense.
    Check(Sense),
    /// RESERVATION CONFLICT status, no sense.
    Conflict,
}

impl From<Sense> for CmdError {
    fn from(s: Sense) -> CmdError {
        CmdError::Check(s)
    }
}

/// What a command handler returns: the Data-In bytes or an error.
pub type CmdResult = Result<Vec<u8>, CmdError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_invalid_cdb_with_pointer() {
        let s = Sense::invalid_cdb(2, Some(5)).to_fixed();
        assert_eq!(
            s,
            vec![0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0xCD, 0, 2]
        );
    }

    #[test]
    fn fixed_miscompare_info() {
        let s = Sense::new(SenseKey::MISCOMPARE, Asc::MISCOMPARE_DURING_VERIFY)
            .with_info(0x1234)
            .to_fixed();
        assert_eq!(&s[..8], &[0xF0, 0, 0x0E, 0, 0, 0x12, 0x34, 10]);
        assert_eq!(&s[12..14], &[0x1D, 0x00]);
    }

    #[test]
    fn descriptor_format() {
        let s = Sense::new(SenseKey::MISCOMPARE, Asc::MISCOMPARE_DURING_VERIFY)
            .with_info(7)
            .to_descriptor();
        assert_eq!(
            s,
            vec![0x72, 0x0E, 0x1D, 0, 0, 0, 0, 12, 0, 0x0A, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 7]
        );
        let s = Sense::invalid_param(3, None).to_descriptor();
        assert_eq!(
            s,
            vec![0x72, 5, 0x26, 0, 0, 0, 0, 8, 2, 6, 0, 0, 0x80, 0, 3, 0]
        );
    }

    #[test]
    fn progress_indication() {
        let s = Sense::sanitize_in_progress(0x4000);
        assert_eq!(
            s.to_fixed(),
            vec![0x70, 0, 2, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x04, 0x1B, 0, 0x80, 0x40, 0]
        );
        assert_eq!(
            s.to_descriptor(),
            vec![0x72, 2, 0x04, 0x1B, 0, 0, 0, 8, 2, 6, 0, 0, 0x80, 0x40, 0, 0]
        );
    }

    #[test]
    fn io_mapping() {
        let eio = io::Error::from_raw_os_error(5);
        assert_eq!(Sense::from_io(&eio, false).asc, Asc::UNRECOVERED_READ_ERROR);
        assert_eq!(Sense::from_io(&eio, true).asc, Asc::WRITE_ERROR);
        assert_eq!(Sense::from_io(&eio, true).key, SenseKey::MEDIUM_ERROR);
        let nospc = io::Error::from_raw_os_error(28);
        let s = Sense::from_io(&nospc, true);
        assert_eq!(
            (s.key, s.asc),
            (SenseKey::DATA_PROTECT, Asc::SPACE_ALLOCATION_FAILED)
        );
        let other = io::Error::other("x");
        let s = Sense::from_io(&other, true);
        assert_eq!(
            (s.key, s.asc),
            (SenseKey::HARDWARE_ERROR, Asc::INTERNAL_TARGET_FAILURE)
        );
    }
}
