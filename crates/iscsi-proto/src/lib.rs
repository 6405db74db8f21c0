//! Sans-IO iSCSI target protocol engine (RFC 7143, ErrorRecoveryLevel 0, one
//! connection per session).
//!
//! A [`Connection`] consumes decoded PDUs ([`Connection::handle_pdu`]), clock
//! readings and SCSI results, and produces [`Output`]s through
//! [`Connection::poll`]: PDUs to transmit, SCSI tasks to execute, task
//! management requests and the order to close. It performs no I/O and reads
//! no clock.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod chap;
pub mod cmdsn;
mod command;
mod config;
mod connection;
mod datain;
mod dataout;
mod limits;
mod login;
mod logout;
pub mod negotiate;
mod nop;
mod session;
mod text;
mod tmf;
mod types;

pub use auth::{AuthStep, Authenticator, NoAuth};
pub use chap::{
    AccessPolicy, AuthPolicy, ChapAlgorithm, ChapAuthenticator, ChapCredential, CHAP_RANDOM_BYTES,
};
pub use config::{
    Catalog, ConnectionConfig, Limits, SessionGate, TargetEntry, DEFAULT_WRITE_BUDGET,
    MAX_WRITE_BUDGET, MIN_WRITE_BUDGET,
};
pub use connection::Connection;
pub use login::login_status;
pub use logout::logout_response;
pub use types::{
    tmf_function, tmf_response, DataRef, Millis, Output, ScsiResult, SessionInfo, Task, TaskId,
    TmfRequest,
};

#[cfg(test)]
mod ffp_tests;
#[cfg(test)]
mod testutil;
