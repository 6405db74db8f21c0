//! The SCSI device model of ustgt (SPC-4 / SBC-3).
//!
//! The transport hands a [`Request`] (CDB plus all Data-Out bytes) to a [`LunTable`], which
//! routes it to a [`Device`] or answers it itself (REPORT LUNS, INQUIRY of an unmapped LUN).
//! A device decodes the CDB, validates every field, turns it into calls on a
//! [`backstore::BlockStore`] and returns a [`Response`]: status, sense and Data-In bytes.
//! No I/O of its own, no clock reads.
//!
//! Data-Out rule: when the transport delivers fewer Data-Out bytes than a WRITE or WRITE AND
//! VERIFY needs (the initiator's expected length is smaller than the CDB's transfer length),
//! only the whole blocks received are written and the command succeeds; the transport reports
//! the overflow residual from [`Response::data_out_wanted`] (this is what libiscsi's residual
//! tests and LIO expect). Commands whose parameter data must be complete (COMPARE AND WRITE,
//! WRITE SAME, UNMAP, MODE SELECT, PERSISTENT RESERVE OUT, EXTENDED COPY, VERIFY with BYTCHK) end
//! with CHECK CONDITION, ILLEGAL REQUEST / INVALID FIELD IN COMMAND INFORMATION UNIT (0Eh/03h)
//! instead.
//! Extra Data-Out bytes beyond what a command needs are ignored (underflow residual).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod alua;
mod async_io;
mod atomic;
mod capacity;
mod cdb;
mod compare_write;
mod copy_results;
mod device;
mod inquiry;
mod lba_status;
mod lun_table;
mod misc;
mod mode;
mod opcodes;
mod passthrough;
mod persistent;
mod pr_out;
mod pr_persist;
mod read_write;
mod removable;
mod report_luns;
mod report_opcodes;
mod reserve;
mod sanitize;
mod sense;
mod sync_cache;
mod unit_attention;
mod unmap;
mod verify;
mod vpd;
mod write_same;
mod xcopy;

#[cfg(test)]
mod testutil;
mod transport_id;

pub use async_io::{PendingIo, Started};
pub use backstore::{IoDone, IoOp, IoQueue};
pub use device::{default_naa, Device, DeviceConfig};
pub use lun_table::LunTable;
pub use passthrough::{CdbHandler, CdbOutcome};
pub use pr_persist::{check_pr_state, PrPersistence, PrSnapshot, PrStore};
pub use report_luns::{decode_lun, encode_lun};
pub use sanitize::Background;
pub use sense::{Asc, Sense, SenseKey};

/// Identifies one I_T nexus (initiator port + target port), chosen by the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NexusId(pub u64);

/// SAM task attribute of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskAttr {
    /// SIMPLE task attribute.
    Simple,
    /// ORDERED task attribute.
    Ordered,
    /// HEAD OF QUEUE task attribute.
    HeadOfQueue,
    /// ACA task attribute.
    Aca,
    /// A reserved attribute code, carried as received.
    Other(u8),
}

/// One SCSI command as handed over by the transport.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The I_T nexus the command came through.
    pub nexus: NexusId,
    /// The CDB (usually 16 bytes; bytes past the command's own length are ignored).
    pub cdb: &'a [u8],
    /// All Data-Out bytes received for the command.
    pub data_out: &'a [u8],
    /// The initiator's expected data transfer length.
    pub expected_len: u32,
    /// Task attribute.
    pub attr: TaskAttr,
}

/// SCSI status byte. Open: any value is representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u8);

impl Status {
    /// GOOD.
    pub const GOOD: Status = Status(0x00);
    /// CHECK CONDITION.
    pub const CHECK_CONDITION: Status = Status(0x02);
    /// BUSY.
    pub const BUSY: Status = Status(0x08);
    /// RESERVATION CONFLICT.
    pub const RESERVATION_CONFLICT: Status = Status(0x18);
    /// TASK SET FULL.
    pub const TASK_SET_FULL: Status = Status(0x28);
    /// TASK ABORTED.
    pub const TASK_ABORTED: Status = Status(0x40);
}

/// The outcome of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// SCSI status.
    pub status: Status,
    /// Sense data (fixed or descriptor format) when status is CHECK CONDITION, else empty.
    /// It does not include the 2-byte SenseLength prefix of iSCSI.
    pub sense: Vec<u8>,
    /// Data-In bytes, already truncated to the CDB's allocation length.
    pub data_in: Vec<u8>,
    /// Number of Data-Out bytes the command needed (0 for commands without Data-Out).
    pub data_out_wanted: u32,
}

impl Response {
    /// GOOD status with `data_in`.
    pub fn good(data_in: Vec<u8>) -> Response {
        Response {
            status: Status::GOOD,
            sense: Vec::new(),
            data_in,
            data_out_wanted: 0,
        }
    }

    /// CHECK CONDITION with encoded `sense`.
    pub fn check(sense: Vec<u8>) -> Response {
        Response {
            status: Status::CHECK_CONDITION,
            sense,
            data_in: Vec::new(),
            data_out_wanted: 0,
        }
    }

    /// A status without sense or data (BUSY, RESERVATION CONFLICT, ...).
    pub fn status(status: Status) -> Response {
        Response {
            status,
            sense: Vec::new(),
            data_in: Vec::new(),
            data_out_wanted: 0,
        }
    }
}
