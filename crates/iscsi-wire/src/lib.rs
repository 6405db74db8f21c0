//! iSCSI (RFC 7143) wire format: bytes <-> PDUs, CRC32C digests and
//! `key=value` text parsing. This crate performs no I/O.
//!
//! * [`Decoder`] turns a byte stream (delivered in arbitrary fragments) into [`Pdu`]s.
//! * [`encode`] appends the wire form of a [`Pdu`] to a buffer.
//! * [`parse_text`] / [`encode_text`] handle the data segment of Login and Text PDUs.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod async_msg;
mod bhs;
mod codec;
mod data_in;
mod data_out;
mod digest;
mod keys;
mod login;
mod logout;
mod nop_in;
mod nop_out;
mod r2t;
mod reject;
mod scsi_command;
mod scsi_response;
mod snack;
mod task_mgmt;
mod text;

pub use async_msg::AsyncMessage;
pub use bhs::{lun_from_index, lun_to_index, Bhs, Opcode, Pdu, RawBhs, BHS_LEN};
pub use codec::{
    encode, encode_head, encode_tail, encoded_len, Decoder, DecoderConfig, DigestConfig, WireError,
};
pub use data_in::DataIn;
pub use data_out::DataOut;
pub use digest::crc32c;
pub use keys::{encode_text, parse_text, TextError, MAX_KEY_LEN, MAX_VALUE_LEN};
pub use login::{LoginRequest, LoginResponse};
pub use logout::{LogoutRequest, LogoutResponse};
pub use nop_in::NopIn;
pub use nop_out::NopOut;
pub use r2t::R2t;
pub use reject::{Reject, RejectReason};
pub use scsi_command::ScsiCommand;
pub use scsi_response::ScsiResponse;
pub use snack::SnackRequest;
pub use task_mgmt::{TaskMgmtRequest, TaskMgmtResponse};
pub use text::{TextRequest, TextResponse};

#[cfg(test)]
pub(crate) mod testutil {
    //! Helpers for byte-vector tests.
    use crate::{Bhs, RawBhs, BHS_LEN};

    /// A 48-byte header with the given byte runs placed at their offsets, the rest zero.
    pub fn bhs_bytes(runs: &[(usize, &[u8])]) -> [u8; BHS_LEN] {
        let mut raw = [0u8; BHS_LEN];
        for (off, bytes) in runs {
            raw[*off..*off + bytes.len()].copy_from_slice(bytes);
        }
        raw
    }

    /// Assert that `bhs` encodes to exactly `expected` and that `expected` parses back to `bhs`.
    pub fn check(bhs: impl Into<Bhs>, expected: [u8; BHS_LEN], data_len: u32, ahs_words: u8) {
        let bhs = bhs.into();
        let raw = bhs.to_raw(data_len, ahs_words);
        assert_eq!(raw, RawBhs(expected), "encoding of {bhs:?}");
        assert_eq!(Bhs::parse(&RawBhs(expected)), Ok(bhs));
    }
}
