//! Operation codes, and the table of supported commands: CDB usage masks (used both for the
//! reserved-bit check and REPORT SUPPORTED OPERATION CODES) and per-command properties.

/// Operation code values.
pub mod op {
    pub const TEST_UNIT_READY: u8 = 0x00;
    pub const REQUEST_SENSE: u8 = 0x03;
    pub const READ_6: u8 = 0x08;
    pub const WRITE_6: u8 = 0x0A;
    pub const INQUIRY: u8 = 0x12;
    pub const MODE_SELECT_6: u8 = 0x15;
    pub const RESERVE_6: u8 = 0x16;
    pub const RELEASE_6: u8 = 0x17;
    pub const MODE_SENSE_6: u8 = 0x1A;
    pub const START_STOP_UNIT: u8 = 0x1B;
    pub const PREVENT_ALLOW: u8 = 0x1E;
    pub const READ_CAPACITY_10: u8 = 0x25;
    pub const READ_10: u8 = 0x28;
    pub const WRITE_10: u8 = 0x2A;
    pub const WRITE_VERIFY_10: u8 = 0x2E;
    pub const VERIFY_10: u8 = 0x2F;
    pub const PRE_FETCH_10: u8 = 0x34;
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    pub const READ_DEFECT_DATA_10: u8 = 0x37;
    pub const WRITE_SAME_10: u8 = 0x41;
    pub const SANITIZE: u8 = 0x48;
    pub const UNMAP: u8 = 0x42;
    pub const MODE_SELECT_10: u8 = 0x55;
    pub const RESERVE_10: u8 = 0x56;
    pub const RELEASE_10: u8 = 0x57;
    pub const MODE_SENSE_10: u8 = 0x5A;
    pub const PERSISTENT_RESERVE_IN: u8 = 0x5E;
    pub const PERSISTENT_RESERVE_OUT: u8 = 0x5F;
    pub const EXTENDED_COPY: u8 = 0x83;
    pub const RECEIVE_COPY_RESULTS: u8 = 0x84;
    pub const READ_16: u8 = 0x88;
    pub const COMPARE_AND_WRITE: u8 = 0x89;
    pub const WRITE_16: u8 = 0x8A;
    pub const ORWRITE_16: u8 = 0x8B;
    pub const WRITE_VERIFY_16: u8 = 0x8E;
    pub const VERIFY_16: u8 = 0x8F;
    pub const PRE_FETCH_16: u8 = 0x90;
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    pub const WRITE_SAME_16: u8 = 0x93;
    pub const WRITE_ATOMIC_16: u8 = 0x9C;
    pub const SERVICE_ACTION_IN_16: u8 = 0x9E;
    pub const REPORT_LUNS: u8 = 0xA0;
    pub const MAINTENANCE_IN: u8 = 0xA3;
    pub const READ_12: u8 = 0xA8;
    pub const WRITE_12: u8 = 0xAA;
    pub const WRITE_VERIFY_12: u8 = 0xAE;
    pub const VERIFY_12: u8 = 0xAF;
    pub const READ_DEFECT_DATA_12: u8 = 0xB7;

    /// SERVICE ACTION IN(16) service actions.
    pub const SA_READ_CAPACITY_16: u8 = 0x10;
    pub const SA_GET_LBA_STATUS: u8 = 0x12;
    /// MAINTENANCE IN service action REPORT TARGET PORT GROUPS.
    pub const SA_REPORT_TARGET_PORT_GROUPS: u8 = 0x0A;
    /// MAINTENANCE IN service action REPORT SUPPORTED OPERATION CODES.
    pub const SA_REPORT_SUPPORTED_OPCODES: u8 = 0x0C;
    /// MAINTENANCE IN service action REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS.
    pub const SA_REPORT_SUPPORTED_TMFS: u8 = 0x0D;
    /// SANITIZE service actions.
    pub const SA_OVERWRITE: u8 = 0x01;
    pub const SA_BLOCK_ERASE: u8 = 0x02;
    pub const SA_CRYPTO_ERASE: u8 = 0x03;
    pub const SA_EXIT_FAILURE_MODE: u8 = 0x1F;
}

/// Optional command sets a logical unit offers; commands outside them are unsupported
/// (INVALID COMMAND OPERATION CODE) and not reported by REPORT SUPPORTED OPERATION CODES.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Thin provisioning: the store can trim (UNMAP, GET LBA STATUS).
    pub trim: bool,
    /// SANITIZE is allowed on the logical unit.
    pub sanitize: bool,
}

impl Features {
    /// Every optional command set (used to validate CDBs answered outside a device).
    pub const ALL: Features = Features {
        trim: true,
        sanitize: true,
    };

    /// Whether command `c` is offered.
    pub fn offers(self, c: &CmdInfo) -> bool {
        let erase = c.opcode == op::SANITIZE
            && matches!(c.sa, Some(op::SA_BLOCK_ERASE | op::SA_CRYPTO_ERASE));
        (self.trim || !(c.needs_trim || erase)) && (self.sanitize || c.opcode != op::SANITIZE)
    }
}

/// How a command is treated by reservations (SPC-4 table 66 / SBC-3 table 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Never conflicts (INQUIRY, REPORT LUNS, PR IN/OUT, ...).
    Allowed,
    /// Reads the medium: conflicts with exclusive-access reservations.
    Read,
    /// Changes the medium or device state: conflicts with every reservation type.
    Write,
}

/// One supported command.
#[derive(Debug)]
pub struct CmdInfo {
    pub opcode: u8,
    /// Service action (low 5 bits of byte 1), for opcodes that have one.
    pub sa: Option<u8>,
    /// CDB USAGE DATA: byte 0 is the opcode, every other byte a mask of the bits evaluated.
    pub usage: &'static [u8],
    /// Reported by REQUEST SENSE / INQUIRY / REPORT LUNS without consuming a unit attention.
    pub ua_exempt: bool,
    /// Access class for persistent reservations.
    pub access: Access,
    /// Allowed from a non-holder while an SPC-2 RESERVE is held.
    pub reserve_exempt: bool,
    /// Needs thin provisioning (the store can trim).
    pub needs_trim: bool,
}

const fn cmd(opcode: u8, usage: &'static [u8], access: Access) -> CmdInfo {
    CmdInfo {
        opcode,
        sa: None,
        usage,
        ua_exempt: false,
        access,
        reserve_exempt: false,
        needs_trim: false,
    }
}

const fn exempt(mut c: CmdInfo) -> CmdInfo {
    c.ua_exempt = true;
    c.reserve_exempt = true;
    c
}

const fn with_sa(mut c: CmdInfo, sa: u8) -> CmdInfo {
    c.sa = Some(sa);
    c
}

const fn trim(mut c: CmdInfo) -> CmdInfo {
    c.needs_trim = true;
    c
}

const fn res_exempt(mut c: CmdInfo) -> CmdInfo {
    c.reserve_exempt = true;
    c
}

use op::*;
use Access::{Allowed, Read, Write};

const F8: u8 = 0xFF;

/// Every supported command, in opcode order.
pub static COMMANDS: &[CmdInfo] = &[
    cmd(TEST_UNIT_READY, &[0x00, 0, 0, 0, 0, 0x07], Allowed),
    exempt(cmd(REQUEST_SENSE, &[0x03, 0x01, 0, 0, F8, 0x07], Allowed)),
    cmd(READ_6, &[0x08, 0x1F, F8, F8, F8, 0x07], Read),
    cmd(WRITE_6, &[0x0A, 0x1F, F8, F8, F8, 0x07], Write),
    exempt(cmd(INQUIRY, &[0x12, 0x01, F8, F8, F8, 0x07], Allowed)),
    cmd(MODE_SELECT_6, &[0x15, 0x11, 0, 0, F8, 0x07], Write),
    cmd(RESERVE_6, &[0x16, 0, 0, 0, 0, 0x07], Write),
    res_exempt(cmd(RELEASE_6, &[0x17, 0, 0, 0, 0, 0x07], Write)),
    cmd(MODE_SENSE_6, &[0x1A, 0x08, F8, F8, F8, 0x07], Allowed),
    cmd(START_STOP_UNIT, &[0x1B, 0x01, 0, 0x0F, 0xF7, 0x07], Write),
    cmd(PREVENT_ALLOW, &[0x1E, 0, 0, 0, 0x03, 0x07], Write),
    cmd(
        READ_CAPACITY_10,
        &[0x25, 0, F8, F8, F8, F8, 0, 0, 0x01, 0x07],
        Allowed,
    ),
    cmd(
        READ_10,
        &[0x28, 0xFE, F8, F8, F8, F8, 0x1F, F8, F8, 0x07],
        Read,
    ),
    cmd(
        WRITE_10,
        &[0x2A, 0xFA, F8, F8, F8, F8, 0x1F, F8, F8, 0x07],
        Write,
    ),
    cmd(
        WRITE_VERIFY_10,
        &[0x2E, 0xF6, F8, F8, F8, F8, 0x1F, F8, F8, 0x07],
        Write,
    ),
    cmd(
        VERIFY_10,
        &[0x2F, 0xF6, F8, F8, F8, F8, 0x1F, F8, F8, 0x07],
        Read,
    ),
    cmd(
        PRE_FETCH_10,
        &[0x34, 0x02, F8, F8, F8, F8, 0x1F, F8, F8, 0x07],
        Read,
    ),
    cmd(
        SYNCHRONIZE_CACHE_10,
        &[0x35, 0x06, F8, F8, F8, F8, 0x1F, F8, F8, 0x07],
        Read,
    ),
    cmd(
        READ_DEFECT_DATA_10,
        &[0x37, 0, 0x1F, 0, 0, 0, 0, F8, F8, 0x07],
        Read,
    ),
    cmd(
        WRITE_SAME_10,
        &[0x41, 0xF8, F8, F8, F8, F8, 0x1F, F8, F8, 0x07],
        Write,
    ),
    with_sa(
        cmd(SANITIZE, &[0x48, 0xA1, 0, 0, 0, 0, 0, F8, F8, 0x07], Write),
        SA_OVERWRITE,
    ),
    with_sa(
        cmd(SANITIZE, &[0x48, 0xA2, 0, 0, 0, 0, 0, F8, F8, 0x07], Write),
        SA_BLOCK_ERASE,
    ),
    with_sa(
        cmd(SANITIZE, &[0x48, 0xA3, 0, 0, 0, 0, 0, F8, F8, 0x07], Write),
        SA_CRYPTO_ERASE,
    ),
    with_sa(
        cmd(SANITIZE, &[0x48, 0xBF, 0, 0, 0, 0, 0, F8, F8, 0x07], Write),
        SA_EXIT_FAILURE_MODE,
    ),
    trim(cmd(
        UNMAP,
        &[0x42, 0x01, 0, 0, 0, 0, 0x1F, F8, F8, 0x07],
        Write,
    )),
    cmd(
        MODE_SELECT_10,
        &[0x55, 0x11, 0, 0, 0, 0, 0, F8, F8, 0x07],
        Write,
    ),
    cmd(RESERVE_10, &[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0x07], Write),
    res_exempt(cmd(
        RELEASE_10,
        &[0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0x07],
        Write,
    )),
    cmd(
        MODE_SENSE_10,
        &[0x5A, 0x18, F8, F8, 0, 0, 0, F8, F8, 0x07],
        Allowed,
    ),
    with_sa(
        cmd(
            PERSISTENT_RESERVE_IN,
            &[0x5E, 0x00, 0, 0, 0, 0, 0, F8, F8, 0x07],
            Allowed,
        ),
        0x00,
    ),
    with_sa(
        cmd(
            PERSISTENT_RESERVE_IN,
            &[0x5E, 0x01, 0, 0, 0, 0, 0, F8, F8, 0x07],
            Allowed,
        ),
        0x01,
    ),
    with_sa(
        cmd(
            PERSISTENT_RESERVE_IN,
            &[0x5E, 0x02, 0, 0, 0, 0, 0, F8, F8, 0x07],
            Allowed,
        ),
        0x02,
    ),
    with_sa(
        cmd(
            PERSISTENT_RESERVE_IN,
            &[0x5E, 0x03, 0, 0, 0, 0, 0, F8, F8, 0x07],
            Allowed,
        ),
        0x03,
    ),
    with_sa(
        cmd(
            PERSISTENT_RESERVE_OUT,
            &[0x5F, 0x00, F8, 0, 0, F8, F8, F8, F8, 0x07],
            Allowed,
        ),
        0x00,
    ),
    with_sa(
        cmd(
            PERSISTENT_RESERVE_OUT,
            &[0x5F, 0x01, F8, 0, 0, F8, F8, F8, F8, 0x07],
            Allowed,
        ),
        0x01,
    ),
    with_sa(
        cmd(
            PERSISTENT_RESERVE_OUT,
            &[0x5F, 0x02, F8, 0, 0, F8, F8, F8, F8, 0x07],
            Allowed,
        ),
        0x02,
    ),
    with_sa(
        cmd(
            PERSISTENT_RESERVE_OUT,
            &[0x5F, 0x03, F8, 0, 0, F8, F8, F8, F8, 0x07],
            Allowed,
        ),
        0x03,
    ),
    with_sa(
        cmd(
            PERSISTENT_RESERVE_OUT,
            &[0x5F, 0x04, F8, 0, 0, F8, F8, F8, F8, 0x07],
            Allowed,
        ),
        0x04,
    ),
    with_sa(
        cmd(
            PERSISTENT_RESERVE_OUT,
            &[0x5F, 0x05, F8, 0, 0, F8, F8, F8, F8, 0x07],
            Allowed,
        ),
        0x05,
    ),
    with_sa(
        cmd(
            PERSISTENT_RESERVE_OUT,
            &[0x5F, 0x06, F8, 0, 0, F8, F8, F8, F8, 0x07],
            Allowed,
        ),
        0x06,
    ),
    with_sa(
        cmd(
            PERSISTENT_RESERVE_OUT,
            &[0x5F, 0x07, F8, 0, 0, F8, F8, F8, F8, 0x07],
            Allowed,
        ),
        0x07,
    ),
    with_sa(
        cmd(
            EXTENDED_COPY,
            &[0x83, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, F8, F8, F8, F8, 0, 0x07],
            Write,
        ),
        0x00,
    ),
    with_sa(
        cmd(
            RECEIVE_COPY_RESULTS,
            &[0x84, 0x00, F8, 0, 0, 0, 0, 0, 0, 0, F8, F8, F8, F8, 0, 0x07],
            Read,
        ),
        0x00,
    ),
    with_sa(
        cmd(
            RECEIVE_COPY_RESULTS,
            &[0x84, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, F8, F8, F8, F8, 0, 0x07],
            Read,
        ),
        0x03,
    ),
    cmd(
        READ_16,
        &[
            0x88, 0xFE, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, 0x3F, 0x07,
        ],
        Read,
    ),
    cmd(
        COMPARE_AND_WRITE,
        &[
            0x89, 0xFA, F8, F8, F8, F8, F8, F8, F8, F8, 0, 0, 0, F8, 0x3F, 0x07,
        ],
        Write,
    ),
    cmd(
        WRITE_16,
        &[
            0x8A, 0xFA, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, 0x3F, 0x07,
        ],
        Write,
    ),
    cmd(
        ORWRITE_16,
        &[
            0x8B, 0xFA, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, 0x3F, 0x07,
        ],
        Write,
    ),
    cmd(
        WRITE_VERIFY_16,
        &[
            0x8E, 0xF6, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, 0x3F, 0x07,
        ],
        Write,
    ),
    cmd(
        VERIFY_16,
        &[
            0x8F, 0xF6, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, 0x3F, 0x07,
        ],
        Read,
    ),
    cmd(
        PRE_FETCH_16,
        &[
            0x90, 0x02, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, 0x3F, 0x07,
        ],
        Read,
    ),
    cmd(
        SYNCHRONIZE_CACHE_16,
        &[
            0x91, 0x06, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, 0x3F, 0x07,
        ],
        Read,
    ),
    cmd(
        WRITE_SAME_16,
        &[
            0x93, 0xF9, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, 0x3F, 0x07,
        ],
        Write,
    ),
    cmd(
        WRITE_ATOMIC_16,
        &[
            0x9C, 0xF8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, 0x3F, 0x07,
        ],
        Write,
    ),
    with_sa(
        cmd(
            SERVICE_ACTION_IN_16,
            &[
                0x9E, 0x10, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, 0x01, 0x07,
            ],
            Allowed,
        ),
        SA_READ_CAPACITY_16,
    ),
    trim(with_sa(
        cmd(
            SERVICE_ACTION_IN_16,
            &[
                0x9E, 0x12, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, F8, 0, 0x07,
            ],
            Read,
        ),
        SA_GET_LBA_STATUS,
    )),
    exempt(cmd(
        REPORT_LUNS,
        &[0xA0, 0, F8, 0, 0, 0, F8, F8, F8, F8, 0, 0x07],
        Allowed,
    )),
    res_exempt(with_sa(
        cmd(
            MAINTENANCE_IN,
            &[0xA3, 0xEA, 0, 0, 0, 0, F8, F8, F8, F8, 0, 0x07],
            Allowed,
        ),
        SA_REPORT_TARGET_PORT_GROUPS,
    )),
    with_sa(
        cmd(
            MAINTENANCE_IN,
            &[0xA3, 0x0C, 0x87, F8, F8, F8, F8, F8, F8, F8, 0, 0x07],
            Allowed,
        ),
        SA_REPORT_SUPPORTED_OPCODES,
    ),
    with_sa(
        cmd(
            MAINTENANCE_IN,
            &[0xA3, 0x0D, 0x80, 0, 0, 0, F8, F8, F8, F8, 0, 0x07],
            Allowed,
        ),
        SA_REPORT_SUPPORTED_TMFS,
    ),
    cmd(
        READ_12,
        &[0xA8, 0xFE, F8, F8, F8, F8, F8, F8, F8, F8, 0x1F, 0x07],
        Read,
    ),
    cmd(
        WRITE_12,
        &[0xAA, 0xFA, F8, F8, F8, F8, F8, F8, F8, F8, 0x1F, 0x07],
        Write,
    ),
    cmd(
        WRITE_VERIFY_12,
        &[0xAE, 0xF6, F8, F8, F8, F8, F8, F8, F8, F8, 0x1F, 0x07],
        Write,
    ),
    cmd(
        VERIFY_12,
        &[0xAF, 0xF6, F8, F8, F8, F8, F8, F8, F8, F8, 0x1F, 0x07],
        Read,
    ),
    cmd(
        READ_DEFECT_DATA_12,
        &[0xB7, 0x1F, 0, 0, 0, 0, F8, F8, F8, F8, 0, 0x07],
        Read,
    ),
];

/// Why an opcode / service action was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupError {
    /// No command with this opcode.
    Opcode,
    /// The opcode exists but not with this service action.
    ServiceAction,
}

/// Whether `opcode` carries a service action in byte 1.
pub fn has_service_action(opcode: u8) -> bool {
    COMMANDS
        .iter()
        .any(|c| c.opcode == opcode && c.sa.is_some())
}

/// Finds the command for `cdb` among those `features` offers.
pub fn lookup(cdb: &[u8], features: Features) -> Result<&'static CmdInfo, LookupError> {
    let opcode = cdb.first().copied().unwrap_or(0xFF);
    let sa = cdb.get(1).copied().unwrap_or(0) & 0x1F;
    find(opcode, sa, features)
}

/// Finds the command with `opcode` (and `sa`, when the opcode has service actions).
pub fn find(opcode: u8, sa: u8, features: Features) -> Result<&'static CmdInfo, LookupError> {
    let mut seen = false;
    for c in COMMANDS
        .iter()
        .filter(|c| c.opcode == opcode && features.offers(c))
    {
        seen = true;
        if c.sa.is_none_or(|s| s == sa) {
            return Ok(c);
        }
    }
    if seen {
        Err(LookupError::ServiceAction)
    } else {
        Err(LookupError::Opcode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for c in COMMANDS {
            assert_eq!(c.usage[0], c.opcode, "opcode {:02x}", c.opcode);
            if let Some(n) = crate::cdb::cdb_len(c.opcode) {
                assert_eq!(c.usage.len(), n, "opcode {:02x}", c.opcode);
            }
            if let Some(sa) = c.sa {
                assert_eq!(c.usage[1] & 0x1F, sa);
            }
        }
    }

    const THICK: Features = Features {
        trim: false,
        sanitize: false,
    };

    #[test]
    fn lookups() {
        let all = Features::ALL;
        assert_eq!(lookup(&[0x28], all).map(|c| c.opcode), Ok(0x28));
        assert_eq!(lookup(&[0xC0], all).err(), Some(LookupError::Opcode));
        assert_eq!(lookup(&[0x9E, 0x10], all).map(|c| c.sa), Ok(Some(0x10)));
        assert_eq!(
            lookup(&[0x9E, 0x11], all).err(),
            Some(LookupError::ServiceAction)
        );
        assert_eq!(lookup(&[0x42], THICK).err(), Some(LookupError::Opcode));
        assert_eq!(
            lookup(&[0x9E, 0x12], THICK).err(),
            Some(LookupError::ServiceAction)
        );
        assert_eq!(
            lookup(&[0x48, 0x01], THICK).err(),
            Some(LookupError::Opcode)
        );
        assert_eq!(lookup(&[0x48, 0x01], all).map(|c| c.sa), Ok(Some(0x01)));
        assert_eq!(
            lookup(&[0x48, 0x04], all).err(),
            Some(LookupError::ServiceAction)
        );
        let no_trim = Features {
            trim: false,
            sanitize: true,
        };
        assert!(lookup(&[0x48, 0x01], no_trim).is_ok());
        assert_eq!(
            lookup(&[0x48, 0x02], no_trim).err(),
            Some(LookupError::ServiceAction)
        );
        assert_eq!(lookup(&[0x9C], THICK).map(|c| c.opcode), Ok(0x9C));
        assert!(has_service_action(0x5E));
        assert!(!has_service_action(0x28));
    }
}
