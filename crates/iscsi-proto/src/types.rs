//! Values exchanged between a [`Connection`](crate::Connection) and its caller.

use std::sync::Arc;

use iscsi_wire::{DigestConfig, Pdu};

/// A monotonic clock reading in milliseconds supplied by the caller.
pub type Millis = u64;

/// Identifies one SCSI task handed out by [`Output::Execute`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub u32);

/// Something the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Encode with these digests and send, in order.
    Transmit(Pdu, DigestConfig),
    /// Encode the PDU (its own `data` is empty) with this data segment and these digests, and
    /// send, in order. Only after
    /// [`Connection::set_shared_data_in`](crate::Connection::set_shared_data_in)`(true)`.
    TransmitShared(Pdu, DataRef, DigestConfig),
    /// Execute a SCSI command (in CmdSN order, all Data-Out already collected),
    /// then report with [`Connection::complete`](crate::Connection::complete).
    Execute(Task),
    /// Login completed (leading connection of a new session).
    LoggedIn(SessionInfo),
    /// A task management function the SCSI layer must act on; answer with
    /// [`Connection::task_mgmt_done`](crate::Connection::task_mgmt_done).
    TaskMgmt(TmfRequest),
    /// Close the socket after flushing the earlier transmits.
    Close,
}

/// A slice of a shared buffer: a Data-In payload left in the buffer the command's data was
/// read into, so that it reaches the socket without a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRef {
    buf: Arc<Vec<u8>>,
    off: usize,
    len: usize,
}

impl DataRef {
    /// `buf[off..off + len]`, clamped to the buffer.
    pub fn new(buf: Arc<Vec<u8>>, off: usize, len: usize) -> Self {
        let off = off.min(buf.len());
        let len = len.min(buf.len() - off);
        DataRef { buf, off, len }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.off..self.off + self.len]
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Give the whole buffer back when this is its last reference (for reuse).
    pub fn into_buffer(self) -> Option<Vec<u8>> {
        Arc::try_unwrap(self.buf).ok()
    }
}

/// A SCSI command ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Handle for [`Connection::complete`](crate::Connection::complete).
    pub id: TaskId,
    /// LUN index, decoded from the 8-byte LUN field.
    pub lun: u64,
    /// The CDB, including the extended CDB AHS bytes when present.
    pub cdb: Vec<u8>,
    /// Data sent by the initiator (immediate + unsolicited + solicited).
    pub data_out: Vec<u8>,
    /// Expected Data Transfer Length from the command header.
    pub expected_len: u32,
    /// R bit.
    pub read: bool,
    /// W bit.
    pub write: bool,
    /// Task attribute (0 untagged, 1 simple, 2 ordered, 3 head of queue, 4 ACA).
    pub attr: u8,
}

/// The outcome of a [`Task`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScsiResult {
    /// SCSI status byte.
    pub status: u8,
    /// Raw sense bytes (the 2-byte SenseLength prefix is added by this crate).
    pub sense: Vec<u8>,
    /// Data for the initiator (may be longer or shorter than the expected length).
    pub data_in: Vec<u8>,
    /// How many Data-Out bytes the command wanted (for write residuals).
    pub data_out_wanted: u32,
}

/// Facts about a session once the login completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// InitiatorName.
    pub initiator_name: String,
    /// InitiatorAlias, when declared.
    pub initiator_alias: Option<String>,
    /// TargetName (None for discovery sessions).
    pub target_name: Option<String>,
    /// The initiator session ID.
    pub isid: [u8; 6],
    /// The target session identifying handle.
    pub tsih: u16,
    /// True for discovery sessions.
    pub discovery: bool,
    /// The target portal group the session was made through: with the initiator name, the
    /// ISID and the target, it identifies the session (RFC 7143 §4.4.3).
    pub portal_group_tag: u16,
}

/// A task management request the SCSI layer must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmfRequest {
    /// ITT of the TMF request (pass back to `task_mgmt_done`).
    pub itt: u32,
    /// Function code (RFC 7143 11.5.1).
    pub function: u8,
    /// LUN index.
    pub lun: u64,
    /// Referenced task tag.
    pub ref_task_tag: u32,
}

/// Task management function codes (RFC 7143 11.5.1).
pub mod tmf_function {
    /// ABORT TASK.
    pub const ABORT_TASK: u8 = 1;
    /// ABORT TASK SET.
    pub const ABORT_TASK_SET: u8 = 2;
    /// CLEAR ACA.
    pub const CLEAR_ACA: u8 = 3;
    /// CLEAR TASK SET.
    pub const CLEAR_TASK_SET: u8 = 4;
    /// LOGICAL UNIT RESET.
    pub const LOGICAL_UNIT_RESET: u8 = 5;
    /// TARGET WARM RESET.
    pub const TARGET_WARM_RESET: u8 = 6;
    /// TARGET COLD RESET.
    pub const TARGET_COLD_RESET: u8 = 7;
    /// TASK REASSIGN.
    pub const TASK_REASSIGN: u8 = 8;
    /// QUERY TASK (RFC 7144).
    pub const QUERY_TASK: u8 = 9;
    /// QUERY TASK SET (RFC 7144).
    pub const QUERY_TASK_SET: u8 = 10;
    /// I_T NEXUS RESET (RFC 7144).
    pub const I_T_NEXUS_RESET: u8 = 11;
    /// QUERY ASYNCHRONOUS EVENT (RFC 7144).
    pub const QUERY_ASYNC_EVENT: u8 = 12;
}

/// Task management response codes (RFC 7143 11.6.1).
pub mod tmf_response {
    /// Function complete.
    pub const FUNCTION_COMPLETE: u8 = 0;
    /// Task does not exist.
    pub const TASK_DOES_NOT_EXIST: u8 = 1;
    /// LUN does not exist.
    pub const LUN_DOES_NOT_EXIST: u8 = 2;
    /// Task still allegiant.
    pub const TASK_STILL_ALLEGIANT: u8 = 3;
    /// Task allegiance reassignment not supported.
    pub const REASSIGN_NOT_SUPPORTED: u8 = 4;
    /// Task management function not supported.
    pub const NOT_SUPPORTED: u8 = 5;
    /// Function authorization failed.
    pub const AUTHORIZATION_FAILED: u8 = 6;
    /// Function succeeded (RFC 7144: QUERY TASK / QUERY TASK SET found a task).
    pub const FUNCTION_SUCCEEDED: u8 = 7;
    /// Function rejected.
    pub const REJECTED: u8 = 255;
}
