//! A small blocking iSCSI initiator, built on `iscsi-wire`, for testing targets.
//!
//! It gives full control over what goes on the wire:
//! * [`Session::login`] runs the security and operational login stages with any key overrides
//!   and exposes the negotiated values ([`Negotiated`]) and login status ([`LoginError`]).
//! * Raw access: [`Session::send_pdu`], [`Session::send_pdu_corrupted`], [`Session::send_raw`],
//!   [`Session::recv_pdu`] and the underlying [`Connection`].
//! * SCSI: [`Session::scsi`] (and [`Session::submit`] / [`Session::wait`] for pipelining)
//!   handles immediate data, unsolicited Data-Out, R2Ts and Data-In reassembly, recording every
//!   PDU seen and every protocol violation in a [`ScsiOutcome`].
//! * Text (SendTargets), NOP-Out ping, logout and task management.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cdb;
mod chap;
mod conn;
mod login;
mod ops;
mod raw;
mod scsi;
mod session;
mod sn;

#[cfg(test)]
mod fake_target;

/// The PDU codec this initiator is built on, for hand-built PDUs.
pub use iscsi_wire as wire;

pub use chap::{chap_response, Chap};
pub use conn::{Connection, Corrupt};
pub use login::{LoginError, LoginOptions, Negotiated};
pub use ops::TextExchange;
pub use raw::RawPdu;
pub use scsi::{ScsiOutcome, ScsiRequest, Seen, Sense};
pub use session::Session;
pub use sn::{sn_gt, sn_lt};

/// SCSI status GOOD.
pub const GOOD: u8 = 0x00;
/// SCSI status CHECK CONDITION.
pub const CHECK_CONDITION: u8 = 0x02;

/// An error while talking to the target.
#[derive(Debug)]
pub enum Error {
    /// A socket error other than a timeout or a close.
    Io(std::io::Error),
    /// Nothing (or not the expected PDU) arrived in time; says what was awaited.
    Timeout(String),
    /// The target closed the connection (EOF or reset).
    Closed,
    /// The target sent bytes that do not decode (bad digest, oversized segment, bad field).
    Wire(iscsi_wire::WireError),
    /// The target broke the protocol in a way the initiator cannot continue from.
    Protocol(String),
    /// The target rejected a command PDU with this reason; `header` is the quoted BHS.
    Rejected {
        /// Reject reason code.
        reason: u8,
        /// The rejected header as quoted by the target.
        header: Vec<u8>,
    },
}

impl Error {
    /// True for [`Error::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed)
    }

    /// True for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "i/o error: {e}"),
            Error::Timeout(what) => write!(f, "timed out waiting for {what}"),
            Error::Closed => write!(f, "connection closed by the target"),
            Error::Wire(e) => write!(f, "undecodable PDU from the target: {e}"),
            Error::Protocol(s) => write!(f, "protocol error: {s}"),
            Error::Rejected { reason, .. } => write!(f, "command rejected, reason {reason:#04x}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        match e.kind() {
            WouldBlock | TimedOut => Error::Timeout("socket".into()),
            UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => Error::Closed,
            _ => Error::Io(e),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
