//! The Basic Header Segment: common field helpers, [`Opcode`], [`RawBhs`],
//! the [`Bhs`] enum over all PDU types and the [`Pdu`] container.

use crate::{
    AsyncMessage, DataIn, DataOut, LoginRequest, LoginResponse, LogoutRequest, LogoutResponse,
    NopIn, NopOut, R2t, Reject, ScsiCommand, ScsiResponse, SnackRequest, TaskMgmtRequest,
    TaskMgmtResponse, TextRequest, TextResponse,
};

/// Length of the Basic Header Segment in bytes.
pub const BHS_LEN: usize = 48;

/// The 6-bit iSCSI opcode (RFC 7143 11.2.1.2). Open: any value may appear on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Opcode(pub u8);

impl Opcode {
    /// NOP-Out (initiator).
    pub const NOP_OUT: Opcode = Opcode(0x00);
    /// SCSI Command (initiator).
    pub const SCSI_COMMAND: Opcode = Opcode(0x01);
    /// SCSI Task Management Function Request (initiator).
    pub const TASK_MGMT_REQUEST: Opcode = Opcode(0x02);
    /// Login Request (initiator).
    pub const LOGIN_REQUEST: Opcode = Opcode(0x03);
    /// Text Request (initiator).
    pub const TEXT_REQUEST: Opcode = Opcode(0x04);
    /// SCSI Data-Out (initiator).
    pub const DATA_OUT: Opcode = Opcode(0x05);
    /// Logout Request (initiator).
    pub const LOGOUT_REQUEST: Opcode = Opcode(0x06);
    /// SNACK Request (initiator).
    pub const SNACK_REQUEST: Opcode = Opcode(0x10);
    /// NOP-In (target).
    pub const NOP_IN: Opcode = Opcode(0x20);
    /// SCSI Response (target).
    pub const SCSI_RESPONSE: Opcode = Opcode(0x21);
    /// SCSI Task Management Function Response (target).
    pub const TASK_MGMT_RESPONSE: Opcode = Opcode(0x22);
    /// Login Response (target).
    pub const LOGIN_RESPONSE: Opcode = Opcode(0x23);
    /// Text Response (target).
    pub const TEXT_RESPONSE: Opcode = Opcode(0x24);
    /// SCSI Data-In (target).
    pub const DATA_IN: Opcode = Opcode(0x25);
    /// Logout Response (target).
    pub const LOGOUT_RESPONSE: Opcode = Opcode(0x26);
    /// Ready To Transfer (target).
    pub const R2T: Opcode = Opcode(0x31);
    /// Asynchronous Message (target).
    pub const ASYNC_MESSAGE: Opcode = Opcode(0x32);
    /// Reject (target).
    pub const REJECT: Opcode = Opcode(0x3f);

    /// True for opcodes an initiator sends (0x00..=0x1f).
    pub fn is_initiator(self) -> bool {
        self.0 & 0x20 == 0
    }
}

/// A raw 48-byte Basic Header Segment, exactly as on the wire.
///
/// Used for unknown opcodes, for error reports and to quote a header inside a Reject.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawBhs(pub [u8; BHS_LEN]);

impl Default for RawBhs {
    fn default() -> Self {
        RawBhs([0; BHS_LEN])
    }
}

impl std::fmt::Debug for RawBhs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawBhs(")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                write!(f, " ")?;
            }
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl RawBhs {
    /// The opcode (low 6 bits of byte 0).
    pub fn opcode(&self) -> Opcode {
        Opcode(self.0[0] & 0x3f)
    }
    /// The I (immediate delivery) bit of byte 0.
    pub fn immediate(&self) -> bool {
        self.0[0] & 0x40 != 0
    }
    /// TotalAHSLength in 4-byte words (byte 4).
    pub fn total_ahs_len(&self) -> u8 {
        self.0[4]
    }
    /// DataSegmentLength in bytes (bytes 5..8, 24-bit), excluding padding.
    pub fn data_segment_len(&self) -> u32 {
        u32::from_be_bytes([0, self.0[5], self.0[6], self.0[7]])
    }
    /// The Initiator Task Tag (bytes 16..20).
    pub fn itt(&self) -> u32 {
        get_u32(&self.0, 16)
    }
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; BHS_LEN] {
        &self.0
    }
}

/// A complete PDU: header, raw Additional Header Segments and data segment (without padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    /// The decoded Basic Header Segment.
    pub bhs: Bhs,
    /// The AHS bytes, raw (a multiple of 4 bytes on the wire; empty when none).
    pub ahs: Vec<u8>,
    /// The data segment, without padding or digest.
    pub data: Vec<u8>,
}

impl Pdu {
    /// A PDU with no AHS and the given data segment.
    pub fn new(bhs: impl Into<Bhs>, data: Vec<u8>) -> Self {
        Pdu {
            bhs: bhs.into(),
            ahs: Vec::new(),
            data,
        }
    }
}

/// The Basic Header Segment of every PDU type; unknown opcodes stay raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bhs {
    /// NOP-Out (0x00).
    NopOut(NopOut),
    /// SCSI Command (0x01).
    ScsiCommand(ScsiCommand),
    /// Task Management Function Request (0x02).
    TaskMgmtRequest(TaskMgmtRequest),
    /// Login Request (0x03).
    LoginRequest(LoginRequest),
    /// Text Request (0x04).
    TextRequest(TextRequest),
    /// SCSI Data-Out (0x05).
    DataOut(DataOut),
    /// Logout Request (0x06).
    LogoutRequest(LogoutRequest),
    /// SNACK Request (0x10).
    SnackRequest(SnackRequest),
    /// NOP-In (0x20).
    NopIn(NopIn),
    /// SCSI Response (0x21).
    ScsiResponse(ScsiResponse),
    /// Task Management Function Response (0x22).
    TaskMgmtResponse(TaskMgmtResponse),
    /// Login Response (0x23).
    LoginResponse(LoginResponse),
    /// Text Response (0x24).
    TextResponse(TextResponse),
    /// SCSI Data-In (0x25).
    DataIn(DataIn),
    /// Logout Response (0x26).
    LogoutResponse(LogoutResponse),
    /// Ready To Transfer (0x31).
    R2t(R2t),
    /// Asynchronous Message (0x32).
    AsyncMessage(AsyncMessage),
    /// Reject (0x3f).
    Reject(Reject),
    /// Any other opcode, kept raw so the protocol layer can reject it.
    Unknown(RawBhs),
}

macro_rules! bhs_from {
    ($($v:ident),*) => {$(
        impl From<$v> for Bhs {
            fn from(x: $v) -> Bhs { Bhs::$v(x) }
        }
    )*};
}
bhs_from!(
    NopOut,
    ScsiCommand,
    TaskMgmtRequest,
    LoginRequest,
    TextRequest,
    DataOut,
    LogoutRequest,
    SnackRequest,
    NopIn,
    ScsiResponse,
    TaskMgmtResponse,
    LoginResponse,
    TextResponse,
    DataIn,
    LogoutResponse,
    R2t,
    AsyncMessage,
    Reject
);

impl Bhs {
    /// The opcode of this header.
    pub fn opcode(&self) -> Opcode {
        match self {
            Bhs::NopOut(_) => Opcode::NOP_OUT,
            Bhs::ScsiCommand(_) => Opcode::SCSI_COMMAND,
            Bhs::TaskMgmtRequest(_) => Opcode::TASK_MGMT_REQUEST,
            Bhs::LoginRequest(_) => Opcode::LOGIN_REQUEST,
            Bhs::TextRequest(_) => Opcode::TEXT_REQUEST,
            Bhs::DataOut(_) => Opcode::DATA_OUT,
            Bhs::LogoutRequest(_) => Opcode::LOGOUT_REQUEST,
            Bhs::SnackRequest(_) => Opcode::SNACK_REQUEST,
            Bhs::NopIn(_) => Opcode::NOP_IN,
            Bhs::ScsiResponse(_) => Opcode::SCSI_RESPONSE,
            Bhs::TaskMgmtResponse(_) => Opcode::TASK_MGMT_RESPONSE,
            Bhs::LoginResponse(_) => Opcode::LOGIN_RESPONSE,
            Bhs::TextResponse(_) => Opcode::TEXT_RESPONSE,
            Bhs::DataIn(_) => Opcode::DATA_IN,
            Bhs::LogoutResponse(_) => Opcode::LOGOUT_RESPONSE,
            Bhs::R2t(_) => Opcode::R2T,
            Bhs::AsyncMessage(_) => Opcode::ASYNC_MESSAGE,
            Bhs::Reject(_) => Opcode::REJECT,
            Bhs::Unknown(raw) => raw.opcode(),
        }
    }

    /// The Initiator Task Tag (0xffffffff for Async Message and Reject, which carry none).
    pub fn itt(&self) -> u32 {
        match self {
            Bhs::NopOut(x) => x.itt,
            Bhs::ScsiCommand(x) => x.itt,
            Bhs::TaskMgmtRequest(x) => x.itt,
            Bhs::LoginRequest(x) => x.itt,
            Bhs::TextRequest(x) => x.itt,
            Bhs::DataOut(x) => x.itt,
            Bhs::LogoutRequest(x) => x.itt,
            Bhs::SnackRequest(x) => x.itt,
            Bhs::NopIn(x) => x.itt,
            Bhs::ScsiResponse(x) => x.itt,
            Bhs::TaskMgmtResponse(x) => x.itt,
            Bhs::LoginResponse(x) => x.itt,
            Bhs::TextResponse(x) => x.itt,
            Bhs::DataIn(x) => x.itt,
            Bhs::LogoutResponse(x) => x.itt,
            Bhs::R2t(x) => x.itt,
            Bhs::AsyncMessage(_) | Bhs::Reject(_) => 0xffff_ffff,
            Bhs::Unknown(raw) => raw.itt(),
        }
    }

    /// The I (immediate delivery) bit. Always true for a Login Request; false for
    /// PDU types that have no I bit (Data-Out, SNACK and all target PDUs).
    pub fn immediate(&self) -> bool {
        match self {
            Bhs::NopOut(x) => x.immediate,
            Bhs::ScsiCommand(x) => x.immediate,
            Bhs::TaskMgmtRequest(x) => x.immediate,
            Bhs::LoginRequest(_) => true,
            Bhs::TextRequest(x) => x.immediate,
            Bhs::LogoutRequest(x) => x.immediate,
            Bhs::Unknown(raw) => raw.immediate(),
            _ => false,
        }
    }

    /// Build the 48-byte wire header, with the given DataSegmentLength (bytes, excluding
    /// padding; only the low 24 bits fit) and TotalAHSLength (4-byte words).
    ///
    /// For [`Bhs::Unknown`] the raw bytes are kept and only the two length fields are set.
    pub fn to_raw(&self, data_len: u32, ahs_len_words: u8) -> RawBhs {
        let mut raw = [0u8; BHS_LEN];
        match self {
            Bhs::NopOut(x) => x.write(&mut raw),
            Bhs::ScsiCommand(x) => x.write(&mut raw),
            Bhs::TaskMgmtRequest(x) => x.write(&mut raw),
            Bhs::LoginRequest(x) => x.write(&mut raw),
            Bhs::TextRequest(x) => x.write(&mut raw),
            Bhs::DataOut(x) => x.write(&mut raw),
            Bhs::LogoutRequest(x) => x.write(&mut raw),
            Bhs::SnackRequest(x) => x.write(&mut raw),
            Bhs::NopIn(x) => x.write(&mut raw),
            Bhs::ScsiResponse(x) => x.write(&mut raw),
            Bhs::TaskMgmtResponse(x) => x.write(&mut raw),
            Bhs::LoginResponse(x) => x.write(&mut raw),
            Bhs::TextResponse(x) => x.write(&mut raw),
            Bhs::DataIn(x) => x.write(&mut raw),
            Bhs::LogoutResponse(x) => x.write(&mut raw),
            Bhs::R2t(x) => x.write(&mut raw),
            Bhs::AsyncMessage(x) => x.write(&mut raw),
            Bhs::Reject(x) => x.write(&mut raw),
            Bhs::Unknown(r) => raw = r.0,
        }
        if !matches!(self, Bhs::Unknown(_)) {
            let imm = if self.immediate() { 0x40 } else { 0 };
            raw[0] = imm | self.opcode().0;
        }
        raw[4] = ahs_len_words;
        let dl = data_len.to_be_bytes();
        raw[5..8].copy_from_slice(&dl[1..4]);
        RawBhs(raw)
    }

    /// Decode a header by opcode. Unknown opcodes give [`Bhs::Unknown`]; a field that
    /// RFC 7143 forbids gives `Err` with a short description of the field.
    pub fn parse(raw: &RawBhs) -> Result<Bhs, &'static str> {
        let r = &raw.0;
        Ok(match raw.opcode() {
            Opcode::NOP_OUT => Bhs::NopOut(NopOut::parse(r)?),
            Opcode::SCSI_COMMAND => Bhs::ScsiCommand(ScsiCommand::parse(r)?),
            Opcode::TASK_MGMT_REQUEST => Bhs::TaskMgmtRequest(TaskMgmtRequest::parse(r)?),
            Opcode::LOGIN_REQUEST => Bhs::LoginRequest(LoginRequest::parse(r)?),
            Opcode::TEXT_REQUEST => Bhs::TextRequest(TextRequest::parse(r)?),
            Opcode::DATA_OUT => Bhs::DataOut(DataOut::parse(r)?),
            Opcode::LOGOUT_REQUEST => Bhs::LogoutRequest(LogoutRequest::parse(r)?),
            Opcode::SNACK_REQUEST => Bhs::SnackRequest(SnackRequest::parse(r)?),
            Opcode::NOP_IN => Bhs::NopIn(NopIn::parse(r)?),
            Opcode::SCSI_RESPONSE => Bhs::ScsiResponse(ScsiResponse::parse(r)?),
            Opcode::TASK_MGMT_RESPONSE => Bhs::TaskMgmtResponse(TaskMgmtResponse::parse(r)?),
            Opcode::LOGIN_RESPONSE => Bhs::LoginResponse(LoginResponse::parse(r)?),
            Opcode::TEXT_RESPONSE => Bhs::TextResponse(TextResponse::parse(r)?),
            Opcode::DATA_IN => Bhs::DataIn(DataIn::parse(r)?),
            Opcode::LOGOUT_RESPONSE => Bhs::LogoutResponse(LogoutResponse::parse(r)?),
            Opcode::R2T => Bhs::R2t(R2t::parse(r)?),
            Opcode::ASYNC_MESSAGE => Bhs::AsyncMessage(AsyncMessage::parse(r)?),
            Opcode::REJECT => Bhs::Reject(Reject::parse(r)?),
            _ => Bhs::Unknown(*raw),
        })
    }
}

/// Convert a raw 8-byte LUN field (as a big-endian u64) to a LUN index, for SAM
/// peripheral (00b) and flat (01b) single-level addressing. Other address methods
/// are returned unchanged as the full 64-bit value (which never matches an index < 16384).
pub fn lun_to_index(lun: u64) -> u64 {
    let b0 = (lun >> 56) as u8;
    let b1 = (lun >> 48) as u8;
    let rest = lun & 0x0000_ffff_ffff_ffff;
    match b0 >> 6 {
        0b00 if b0 == 0 && rest == 0 => u64::from(b1),
        0b01 if rest == 0 => (u64::from(b0 & 0x3f) << 8) | u64::from(b1),
        _ => lun,
    }
}

/// Convert a LUN index to the raw 8-byte LUN field (big-endian u64): peripheral
/// addressing below 256, flat addressing for 256..16384. Larger values are returned as is.
pub fn lun_from_index(index: u64) -> u64 {
    if index < 256 {
        index << 48
    } else if index < 16384 {
        (0x4000 | index) << 48
    } else {
        index
    }
}

/// Read a big-endian u16 at `off`.
pub(crate) fn get_u16(raw: &[u8; BHS_LEN], off: usize) -> u16 {
    u16::from_be_bytes([raw[off], raw[off + 1]])
}

/// Read a big-endian u32 at `off`.
pub(crate) fn get_u32(raw: &[u8; BHS_LEN], off: usize) -> u32 {
    u32::from_be_bytes([raw[off], raw[off + 1], raw[off + 2], raw[off + 3]])
}

/// Read a big-endian u64 at `off`.
pub(crate) fn get_u64(raw: &[u8; BHS_LEN], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&raw[off..off + 8]);
    u64::from_be_bytes(b)
}

/// Write a big-endian u16 at `off`.
pub(crate) fn put_u16(raw: &mut [u8; BHS_LEN], off: usize, v: u16) {
    raw[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// Write a big-endian u32 at `off`.
pub(crate) fn put_u32(raw: &mut [u8; BHS_LEN], off: usize, v: u32) {
    raw[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// Write a big-endian u64 at `off`.
pub(crate) fn put_u64(raw: &mut [u8; BHS_LEN], off: usize, v: u64) {
    raw[off..off + 8].copy_from_slice(&v.to_be_bytes());
}

/// Common offsets of the BHS.
pub(crate) mod off {
    /// Byte 1: flags.
    pub const FLAGS: usize = 1;
    /// Bytes 8..16: LUN or opcode-specific.
    pub const LUN: usize = 8;
    /// Bytes 16..20: Initiator Task Tag.
    pub const ITT: usize = 16;
    /// Bytes 20..24: Target Transfer Tag or opcode-specific.
    pub const TTT: usize = 20;
    /// Bytes 24..28: CmdSN (initiator) / StatSN (target).
    pub const SN1: usize = 24;
    /// Bytes 28..32: ExpStatSN (initiator) / ExpCmdSN (target).
    pub const SN2: usize = 28;
    /// Bytes 32..36: MaxCmdSN (target) or opcode-specific.
    pub const SN3: usize = 32;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lun_helpers() {
        assert_eq!(lun_from_index(0), 0);
        assert_eq!(lun_from_index(5), 0x0005_0000_0000_0000);
        assert_eq!(lun_from_index(255), 0x00ff_0000_0000_0000);
        assert_eq!(lun_from_index(256), 0x4100_0000_0000_0000);
        assert_eq!(lun_from_index(16383), 0x7fff_0000_0000_0000);
        for i in [0, 1, 255, 256, 300, 16383] {
            assert_eq!(lun_to_index(lun_from_index(i)), i);
        }
        assert_eq!(lun_to_index(0x4005_0000_0000_0000), 5);
        let odd = 0x0001_0000_0000_0001;
        assert_eq!(lun_to_index(odd), odd);
        let hier = 0x8001_0000_0000_0000;
        assert_eq!(lun_to_index(hier), hier);
    }

    #[test]
    fn accessors() {
        let login = Bhs::LoginRequest(LoginRequest {
            itt: 3,
            ..Default::default()
        });
        assert!(login.immediate());
        assert_eq!(login.to_raw(0, 0).0[0], 0x43);
        assert_eq!(login.opcode(), Opcode::LOGIN_REQUEST);
        let rej = Bhs::Reject(Reject::default());
        assert_eq!(rej.itt(), 0xffff_ffff);
        assert!(!rej.immediate());
        assert!(!Opcode::REJECT.is_initiator());
        assert!(Opcode::SNACK_REQUEST.is_initiator());
        assert_eq!(
            Bhs::AsyncMessage(AsyncMessage::default()).itt(),
            0xffff_ffff
        );
    }

    #[test]
    fn unknown_keeps_raw_bytes_and_sets_lengths() {
        let mut raw = [0xeeu8; BHS_LEN];
        raw[0] = 0x7f;
        let out = Bhs::Unknown(RawBhs(raw)).to_raw(0x0102_0304, 3);
        assert_eq!(out.0[0], 0x7f);
        assert_eq!(&out.0[4..8], &[3, 2, 3, 4]);
        assert_eq!(out.0[8..], raw[8..]);
        assert_eq!(out.opcode(), Opcode(0x3f));
        assert!(out.immediate());
        assert_eq!(out.data_segment_len(), 0x0002_0304);
        assert_eq!(out.total_ahs_len(), 3);
        assert_eq!(
            Bhs::parse(&RawBhs(raw)),
            Ok(Bhs::Reject(Reject::parse(&raw).unwrap_or_default()))
        );
    }

    #[test]
    fn every_known_opcode_parses_to_its_variant() {
        for op in [
            0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x10, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25,
            0x26, 0x31, 0x32, 0x3f,
        ] {
            let mut raw = [0u8; BHS_LEN];
            raw[0] = op;
            let bhs = Bhs::parse(&RawBhs(raw)).expect("zeros are valid");
            assert_eq!(bhs.opcode(), Opcode(op));
            assert!(!matches!(bhs, Bhs::Unknown(_)));
        }
        for op in [0x07, 0x0f, 0x11, 0x1c, 0x1f, 0x27, 0x30, 0x33, 0x3c] {
            let mut raw = [0u8; BHS_LEN];
            raw[0] = op;
            assert!(matches!(Bhs::parse(&RawBhs(raw)), Ok(Bhs::Unknown(_))));
        }
    }

    #[test]
    fn raw_debug_is_hex() {
        let s = format!("{:?}", RawBhs::default());
        assert!(s.starts_with("RawBhs(00000000 00000000"));
    }
}
