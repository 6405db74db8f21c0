//! Stream decoder ([`Decoder`]) and encoder ([`encode`]) for whole PDUs:
//! BHS, AHS, optional header digest, data segment, padding, optional data digest.

use crate::bhs::{Bhs, Pdu, RawBhs, BHS_LEN};
use crate::digest::{crc32c, crc32c_append, from_wire, to_wire};
use crate::reject::RejectReason;

/// Which CRC32C digests are in use on a connection (negotiated HeaderDigest/DataDigest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct DigestConfig {
    /// HeaderDigest=CRC32C: a digest follows BHS+AHS.
    pub header: bool,
    /// DataDigest=CRC32C: a digest follows every non-empty data segment (with its padding).
    pub data: bool,
}

/// Receive-side settings of a [`Decoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecoderConfig {
    /// Digests expected on received PDUs.
    pub digests: DigestConfig,
    /// Largest acceptable DataSegmentLength (our MaxRecvDataSegmentLength; 8192 during login).
    pub max_data_segment: u32,
}

impl Default for DecoderConfig {
    /// No digests, 8192-byte data segments (the login-phase limit, RFC 7143 13.12).
    fn default() -> Self {
        DecoderConfig {
            digests: DigestConfig::default(),
            max_data_segment: 8192,
        }
    }
}

/// A receive error. Each variant says how the connection must react.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Header digest mismatch. Fatal: the stream cannot be trusted; close the connection.
    HeaderDigest {
        /// Digest computed over the received BHS and AHS.
        expected: u32,
        /// Digest received on the wire.
        actual: u32,
    },
    /// Data digest mismatch: send Reject (DATA_DIGEST) quoting `header` and drop the PDU.
    /// The whole PDU has been consumed; the stream is still in sync.
    DataDigest {
        /// The header of the dropped PDU.
        header: RawBhs,
        /// Digest computed over the received data and padding.
        expected: u32,
        /// Digest received on the wire.
        actual: u32,
    },
    /// DataSegmentLength over the limit: send Reject (PROTOCOL_ERROR), then close.
    /// The payload was not read.
    DataSegmentTooLong {
        /// The offending header.
        header: RawBhs,
        /// Its DataSegmentLength.
        len: u32,
        /// The configured maximum.
        max: u32,
    },
    /// A header field RFC 7143 forbids: send Reject (INVALID_PDU_FIELD) quoting `header`.
    /// The whole PDU has been consumed; the stream is still in sync.
    InvalidField {
        /// The offending header.
        header: RawBhs,
        /// Which field is wrong.
        what: &'static str,
    },
}

impl WireError {
    /// The Reject reason to send, if a Reject can be sent at all.
    pub fn reject_reason(&self) -> Option<RejectReason> {
        match self {
            WireError::HeaderDigest { .. } => None,
            WireError::DataDigest { .. } => Some(RejectReason::DATA_DIGEST),
            WireError::DataSegmentTooLong { .. } => Some(RejectReason::PROTOCOL_ERROR),
            WireError::InvalidField { .. } => Some(RejectReason::INVALID_PDU_FIELD),
        }
    }

    /// True when the connection must be closed (after sending any Reject).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            WireError::HeaderDigest { .. } | WireError::DataSegmentTooLong { .. }
        )
    }

    /// The header to quote in a Reject (none for a header digest error).
    pub fn header(&self) -> Option<&RawBhs> {
        match self {
            WireError::HeaderDigest { .. } => None,
            WireError::DataDigest { header, .. }
            | WireError::DataSegmentTooLong { header, .. }
            | WireError::InvalidField { header, .. } => Some(header),
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::HeaderDigest { expected, actual } => {
                write!(
                    f,
                    "header digest mismatch: computed {expected:#010x}, received {actual:#010x}"
                )
            }
            WireError::DataDigest {
                expected, actual, ..
            } => {
                write!(
                    f,
                    "data digest mismatch: computed {expected:#010x}, received {actual:#010x}"
                )
            }
            WireError::DataSegmentTooLong { len, max, .. } => {
                write!(f, "data segment of {len} bytes exceeds the limit of {max}")
            }
            WireError::InvalidField { what, .. } => write!(f, "invalid PDU field: {what}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Where the decoder is within the current PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Bhs,
    Ahs,
    HeaderDigest,
    Data,
    Pad,
    DataDigest,
}

/// Incremental PDU decoder for one connection's receive stream.
///
/// Bytes may be delivered in fragments of any size. Every byte passed to [`Decoder::decode`]
/// that belongs to the current PDU is consumed into the decoder's own state, so when it
/// returns `Ok((n, None))` it has consumed all of the input (`n == input.len()`) and needs
/// more. It never consumes bytes past the end of the PDU it returns. On `Err`,
/// [`Decoder::last_consumed`] tells how many bytes of that input were consumed: for the
/// non-fatal errors, exactly up to the end of the offending PDU, so decoding may resume
/// right after them.
#[derive(Debug)]
pub struct Decoder {
    cfg: DecoderConfig,
    /// Settings captured at the first byte of the current PDU.
    active: DecoderConfig,
    phase: Phase,
    /// Bytes received in the current fixed-size phase (BHS, AHS, padding, digests).
    pos: usize,
    hdr: [u8; BHS_LEN],
    small: [u8; 4],
    ahs: Vec<u8>,
    data: Vec<u8>,
    data_len: usize,
    parsed: Result<Bhs, &'static str>,
    data_crc: u32,
    last_consumed: usize,
    failed: Option<WireError>,
}

impl Decoder {
    /// A decoder with the given settings, positioned at a PDU boundary.
    pub fn new(cfg: DecoderConfig) -> Self {
        Decoder {
            cfg,
            active: cfg,
            phase: Phase::Bhs,
            pos: 0,
            hdr: [0; BHS_LEN],
            small: [0; 4],
            ahs: Vec::new(),
            data: Vec::new(),
            data_len: 0,
            parsed: Err("no header"),
            data_crc: 0,
            last_consumed: 0,
            failed: None,
        }
    }

    /// Change the settings (e.g. after login negotiated digests and MaxRecvDataSegmentLength).
    /// They apply from the next PDU; a PDU already partly received keeps the old ones.
    pub fn set_config(&mut self, cfg: DecoderConfig) {
        self.cfg = cfg;
    }

    /// The current settings.
    pub fn config(&self) -> DecoderConfig {
        self.cfg
    }

    /// Bytes of the input consumed by the last call to [`Decoder::decode`], whatever its result.
    pub fn last_consumed(&self) -> usize {
        self.last_consumed
    }

    /// True when no part of a PDU is buffered (the stream is at a PDU boundary).
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Bhs && self.pos == 0 && self.failed.is_none()
    }

    /// Forget any partial PDU and any fatal error.
    pub fn reset(&mut self) {
        *self = Decoder::new(self.cfg);
    }

    /// Parse at most one PDU from the front of `input`.
    ///
    /// `Ok((consumed, Some(pdu)))` when a PDU completed after `consumed` bytes;
    /// `Ok((input.len(), None))` when all input was buffered and more is needed.
    /// The header (and header digest) is validated and the DataSegmentLength checked
    /// before any payload byte is accepted. After a fatal error every later call returns
    /// the same error until [`Decoder::reset`].
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<Pdu>), WireError> {
        self.last_consumed = 0;
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut used = 0;
        let result = self.run(input, &mut used);
        self.last_consumed = used;
        match result {
            Ok(Some(pdu)) => Ok((used, Some(pdu))),
            Ok(None) => Ok((used, None)),
            Err(e) => {
                if e.is_fatal() {
                    self.failed = Some(e.clone());
                }
                Err(e)
            }
        }
    }

    /// Drive the phases over `input`, counting consumed bytes in `used`.
    fn run(&mut self, input: &[u8], used: &mut usize) -> Result<Option<Pdu>, WireError> {
        if self.phase == Phase::Bhs && self.pos == 0 && !input.is_empty() {
            self.active = self.cfg;
        }
        loop {
            let rest = &input[*used..];
            if rest.is_empty() && !self.phase_complete() {
                return Ok(None);
            }
            match self.phase {
                Phase::Bhs => {
                    *used += fill(&mut self.hdr, &mut self.pos, rest);
                    if self.pos < BHS_LEN {
                        return Ok(None);
                    }
                    self.after_bhs()?;
                }
                Phase::Ahs => {
                    let want = usize::from(self.hdr[4]) * 4;
                    let n = (want - self.ahs.len()).min(rest.len());
                    self.ahs.extend_from_slice(&rest[..n]);
                    *used += n;
                    if self.ahs.len() < want {
                        return Ok(None);
                    }
                    self.after_ahs()?;
                }
                Phase::HeaderDigest => {
                    *used += fill(&mut self.small, &mut self.pos, rest);
                    if self.pos < 4 {
                        return Ok(None);
                    }
                    self.check_header_digest()?;
                    self.after_header()?;
                }
                Phase::Data => {
                    let n = (self.data_len - self.data.len()).min(rest.len());
                    self.data.extend_from_slice(&rest[..n]);
                    *used += n;
                    if self.data.len() < self.data_len {
                        return Ok(None);
                    }
                    self.pos = 0;
                    self.phase = Phase::Pad;
                }
                Phase::Pad => {
                    let pad = pad_len(self.data_len);
                    *used += fill(&mut self.small[..pad], &mut self.pos, rest);
                    if self.pos < pad {
                        return Ok(None);
                    }
                    if !self.active.digests.data {
                        return self.finish().map(Some);
                    }
                    let crc = crc32c_append(crc32c(&self.data), &self.small[..pad]);
                    self.data_crc = crc;
                    self.pos = 0;
                    self.phase = Phase::DataDigest;
                }
                Phase::DataDigest => {
                    *used += fill(&mut self.small, &mut self.pos, rest);
                    if self.pos < 4 {
                        return Ok(None);
                    }
                    return self
                        .check_data_digest()
                        .and_then(|()| self.finish())
                        .map(Some);
                }
            }
        }
    }

    /// Phases that may complete without further input (zero-length padding).
    fn phase_complete(&self) -> bool {
        self.phase == Phase::Pad && pad_len(self.data_len) == self.pos
    }

    fn after_bhs(&mut self) -> Result<(), WireError> {
        self.pos = 0;
        if self.hdr[4] > 0 {
            self.ahs = Vec::with_capacity(usize::from(self.hdr[4]) * 4);
            self.phase = Phase::Ahs;
            Ok(())
        } else {
            self.after_ahs()
        }
    }

    fn after_ahs(&mut self) -> Result<(), WireError> {
        if self.active.digests.header {
            self.pos = 0;
            self.phase = Phase::HeaderDigest;
            Ok(())
        } else {
            self.after_header()
        }
    }

    fn check_header_digest(&mut self) -> Result<(), WireError> {
        let expected = crc32c_append(crc32c(&self.hdr), &self.ahs);
        let actual = from_wire(self.small);
        if expected != actual {
            return Err(WireError::HeaderDigest { expected, actual });
        }
        Ok(())
    }

    /// The header is complete and trusted: check the length, parse, prepare for data.
    fn after_header(&mut self) -> Result<(), WireError> {
        let raw = RawBhs(self.hdr);
        let len = raw.data_segment_len();
        let max = self.active.max_data_segment;
        if len > max {
            return Err(WireError::DataSegmentTooLong {
                header: raw,
                len,
                max,
            });
        }
        self.parsed = Bhs::parse(&raw);
        self.data_len = len as usize;
        self.data = Vec::with_capacity(self.data_len);
        self.pos = 0;
        self.phase = if self.data_len > 0 {
            Phase::Data
        } else {
            Phase::Pad
        };
        if self.data_len == 0 {
            // No data segment: no padding and no data digest.
            self.active.digests.data = false;
        }
        Ok(())
    }

    fn check_data_digest(&mut self) -> Result<(), WireError> {
        let expected = self.data_crc;
        let actual = from_wire(self.small);
        if expected != actual {
            self.start_next();
            return Err(WireError::DataDigest {
                header: RawBhs(self.hdr),
                expected,
                actual,
            });
        }
        Ok(())
    }

    /// Hand out the completed PDU (or its field error) and get ready for the next one.
    fn finish(&mut self) -> Result<Pdu, WireError> {
        let parsed = std::mem::replace(&mut self.parsed, Err("no header"));
        let ahs = std::mem::take(&mut self.ahs);
        let data = std::mem::take(&mut self.data);
        self.start_next();
        match parsed {
            Ok(bhs) => Ok(Pdu { bhs, ahs, data }),
            Err(what) => Err(WireError::InvalidField {
                header: RawBhs(self.hdr),
                what,
            }),
        }
    }

    fn start_next(&mut self) {
        self.phase = Phase::Bhs;
        self.pos = 0;
        self.data_len = 0;
        self.ahs.clear();
        self.data = Vec::new();
        self.parsed = Err("no header");
    }
}

/// Copy from `src` into the unfilled part of `buf` (filled up to `*pos`); returns bytes taken.
fn fill(buf: &mut [u8], pos: &mut usize, src: &[u8]) -> usize {
    let n = (buf.len() - *pos).min(src.len());
    buf[*pos..*pos + n].copy_from_slice(&src[..n]);
    *pos += n;
    n
}

/// Padding after a data segment of `len` bytes.
fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// The AHS length in 4-byte words, rounded up (AHS bytes beyond 1020 are not representable).
fn ahs_words(pdu: &Pdu) -> u8 {
    u8::try_from(pdu.ahs.len().div_ceil(4)).unwrap_or(u8::MAX)
}

/// Size in bytes of the wire form of `pdu` with the given digests.
pub fn encoded_len(pdu: &Pdu, digests: DigestConfig) -> usize {
    let ahs = usize::from(ahs_words(pdu)) * 4;
    let mut n = BHS_LEN + ahs;
    if digests.header {
        n += 4;
    }
    let dl = pdu.data.len();
    if dl > 0 {
        n += dl + pad_len(dl);
        if digests.data {
            n += 4;
        }
    }
    n
}

/// Append the wire form of `pdu` to `out`: BHS, AHS (zero-padded to 4 bytes), header
/// digest, data, zero padding, data digest. The data segment must be shorter than 2^24 bytes.
pub fn encode(pdu: &Pdu, digests: DigestConfig, out: &mut Vec<u8>) {
    out.reserve(encoded_len(pdu, digests));
    encode_head(pdu, pdu.data.len(), digests, out);
    if pdu.data.is_empty() {
        return;
    }
    out.extend_from_slice(&pdu.data);
    encode_tail(&pdu.data, digests, out);
}

/// Append the header part of a PDU whose data segment of `data_len` bytes is sent separately
/// (`pdu.data` is ignored): BHS with that DataSegmentLength, AHS, header digest. Follow it with
/// the data itself, then [`encode_tail`], to get exactly the bytes of [`encode`].
pub fn encode_head(pdu: &Pdu, data_len: usize, digests: DigestConfig, out: &mut Vec<u8>) {
    debug_assert!(data_len < 1 << 24, "data segment too long for the wire");
    let start = out.len();
    let words = ahs_words(pdu);
    let raw = pdu.bhs.to_raw(data_len as u32, words);
    out.extend_from_slice(&raw.0);
    let ahs_bytes = usize::from(words) * 4;
    let ahs = &pdu.ahs[..pdu.ahs.len().min(ahs_bytes)];
    out.extend_from_slice(ahs);
    out.resize(out.len() + (ahs_bytes - ahs.len()), 0);
    if digests.header {
        let crc = crc32c(&out[start..]);
        out.extend_from_slice(&to_wire(crc));
    }
}

/// Append what follows a data segment `data` sent separately: zero padding and, when in use,
/// the data digest (CRC32C over the data and its padding). Nothing for an empty segment.
pub fn encode_tail(data: &[u8], digests: DigestConfig, out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    let pad = [0u8; 3];
    let pad = &pad[..pad_len(data.len())];
    out.extend_from_slice(pad);
    if digests.data {
        let crc = crc32c_append(crc32c(data), pad);
        out.extend_from_slice(&to_wire(crc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    #[test]
    fn head_data_tail_equals_encode() {
        for digests in ALL_DIGESTS {
            for len in [0usize, 1, 3, 4, 5, 513] {
                let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                let pdu = Pdu::new(NopIn::default(), data.clone());
                let mut whole = Vec::new();
                encode(&pdu, digests, &mut whole);
                let mut split = Vec::new();
                encode_head(
                    &Pdu::new(NopIn::default(), Vec::new()),
                    len,
                    digests,
                    &mut split,
                );
                split.extend_from_slice(&data);
                encode_tail(&data, digests, &mut split);
                assert_eq!(split, whole, "len {len} digests {digests:?}");
                assert_eq!(whole.len(), encoded_len(&pdu, digests));
            }
        }
    }

    const NONE: DigestConfig = DigestConfig {
        header: false,
        data: false,
    };
    const BOTH: DigestConfig = DigestConfig {
        header: true,
        data: true,
    };
    const ALL_DIGESTS: [DigestConfig; 4] = [
        NONE,
        DigestConfig {
            header: true,
            data: false,
        },
        DigestConfig {
            header: false,
            data: true,
        },
        BOTH,
    ];

    fn cfg(digests: DigestConfig, max: u32) -> DecoderConfig {
        DecoderConfig {
            digests,
            max_data_segment: max,
        }
    }

    fn enc(pdu: &Pdu, d: DigestConfig) -> Vec<u8> {
        let mut out = Vec::new();
        encode(pdu, d, &mut out);
        assert_eq!(out.len(), encoded_len(pdu, d));
        out
    }

    /// Decode a whole buffer, feeding it in chunks of `step` bytes.
    fn decode_chunked(dec: &mut Decoder, bytes: &[u8], step: usize) -> Vec<Pdu> {
        let mut pdus = Vec::new();
        for chunk in bytes.chunks(step) {
            let mut pos = 0;
            loop {
                let (n, pdu) = dec.decode(&chunk[pos..]).expect("decode");
                pos += n;
                match pdu {
                    Some(p) => pdus.push(p),
                    None => break,
                }
            }
            assert_eq!(pos, chunk.len());
        }
        pdus
    }

    fn sample_pdus() -> Vec<Pdu> {
        let data = |n: usize| (0..n).map(|i| i as u8 ^ 0x5a).collect::<Vec<u8>>();
        vec![
            Pdu::new(
                NopOut {
                    immediate: true,
                    itt: 1,
                    ttt: 0xffff_ffff,
                    ..Default::default()
                },
                data(0),
            ),
            Pdu::new(
                NopOut {
                    itt: 2,
                    ttt: 0xffff_ffff,
                    cmd_sn: 1,
                    ..Default::default()
                },
                data(1),
            ),
            Pdu::new(
                ScsiCommand {
                    final_: true,
                    write: true,
                    itt: 3,
                    ..Default::default()
                },
                data(2),
            ),
            Pdu::new(
                TextRequest {
                    final_: true,
                    itt: 4,
                    ..Default::default()
                },
                data(3),
            ),
            Pdu::new(
                DataOut {
                    final_: true,
                    itt: 5,
                    buffer_offset: 8,
                    ..Default::default()
                },
                data(4),
            ),
            Pdu::new(
                LoginResponse {
                    transit: true,
                    csg: 1,
                    nsg: 3,
                    ..Default::default()
                },
                data(5),
            ),
            Pdu::new(
                DataIn {
                    final_: true,
                    status_present: true,
                    itt: 6,
                    ..Default::default()
                },
                data(513),
            ),
            Pdu::new(
                Reject {
                    reason: 9,
                    ..Default::default()
                },
                vec![0x01; 48],
            ),
            Pdu {
                bhs: Bhs::ScsiCommand(ScsiCommand {
                    itt: 7,
                    ..Default::default()
                }),
                ahs: vec![0, 5, 1, 0, 1, 2, 3, 4],
                data: data(7),
            },
        ]
    }

    #[test]
    fn rfc3720_read_command_with_header_digest() {
        let mut cdb = [0u8; 16];
        cdb[0] = 0x28;
        cdb[8] = 2;
        let cmd = ScsiCommand {
            final_: true,
            read: true,
            itt: 0x1400_0000,
            expected_data_len: 0x400,
            cmd_sn: 0x14,
            exp_stat_sn: 0x18,
            cdb,
            ..Default::default()
        };
        let wire = enc(
            &Pdu::new(cmd.clone(), Vec::new()),
            DigestConfig {
                header: true,
                data: true,
            },
        );
        assert_eq!(wire.len(), 52);
        assert_eq!(&wire[0..4], &[0x01, 0xc0, 0, 0]);
        assert_eq!(&wire[48..], &[0x56, 0x3a, 0x96, 0xd9]);
        let mut dec = Decoder::new(cfg(BOTH, 8192));
        let (n, pdu) = dec.decode(&wire).expect("valid");
        assert_eq!(n, 52);
        assert_eq!(pdu.map(|p| p.bhs), Some(Bhs::ScsiCommand(cmd)));
    }

    #[test]
    fn padding_and_data_digest_layout() {
        let pdu = Pdu::new(
            NopIn {
                itt: 1,
                ttt: 0xffff_ffff,
                ..Default::default()
            },
            vec![1, 2, 3, 4, 5],
        );
        let wire = enc(
            &pdu,
            DigestConfig {
                header: false,
                data: true,
            },
        );
        assert_eq!(wire.len(), 48 + 8 + 4);
        assert_eq!(&wire[5..8], &[0, 0, 5]);
        assert_eq!(&wire[48..56], &[1, 2, 3, 4, 5, 0, 0, 0]);
        assert_eq!(
            &wire[56..],
            &crc32c(&[1, 2, 3, 4, 5, 0, 0, 0]).to_le_bytes()
        );
    }

    #[test]
    fn empty_data_segment_has_no_data_digest_or_padding() {
        let pdu = Pdu::new(NopIn::default(), Vec::new());
        assert_eq!(enc(&pdu, BOTH).len(), 52);
        assert_eq!(
            enc(
                &pdu,
                DigestConfig {
                    header: false,
                    data: true
                }
            )
            .len(),
            48
        );
    }

    #[test]
    fn ahs_is_padded_counted_in_words_and_covered_by_header_digest() {
        let pdu = Pdu {
            bhs: Bhs::ScsiCommand(ScsiCommand::default()),
            ahs: vec![0, 2, 1, 0, 0xaa],
            data: Vec::new(),
        };
        let wire = enc(&pdu, BOTH);
        assert_eq!(wire[4], 2);
        assert_eq!(wire.len(), 48 + 8 + 4);
        assert_eq!(&wire[48..56], &[0, 2, 1, 0, 0xaa, 0, 0, 0]);
        assert_eq!(&wire[56..], &crc32c(&wire[..56]).to_le_bytes());
        let mut dec = Decoder::new(cfg(BOTH, 0));
        let (_, got) = dec.decode(&wire).expect("valid");
        assert_eq!(got.map(|p| p.ahs), Some(vec![0, 2, 1, 0, 0xaa, 0, 0, 0]));
    }

    #[test]
    fn round_trip_all_digest_modes_whole_and_byte_by_byte() {
        let pdus = sample_pdus();
        for d in ALL_DIGESTS {
            let stream: Vec<u8> = pdus.iter().flat_map(|p| enc(p, d)).collect();
            for step in [stream.len(), 1, 3, 7, 49, 53] {
                let mut dec = Decoder::new(cfg(d, 1024));
                let got = decode_chunked(&mut dec, &stream, step);
                assert_eq!(got.len(), pdus.len(), "digests {d:?} step {step}");
                for (g, p) in got.iter().zip(&pdus) {
                    let mut want = p.clone();
                    want.ahs.resize(want.ahs.len().div_ceil(4) * 4, 0);
                    assert_eq!(g, &want);
                }
                assert!(dec.is_idle());
            }
        }
    }

    #[test]
    fn one_pdu_per_call_and_exact_consumption() {
        let a = enc(
            &Pdu::new(
                NopOut {
                    itt: 1,
                    ..Default::default()
                },
                vec![9; 6],
            ),
            NONE,
        );
        let b = enc(
            &Pdu::new(
                NopOut {
                    itt: 2,
                    ..Default::default()
                },
                vec![],
            ),
            NONE,
        );
        let stream = [a.clone(), b.clone()].concat();
        let mut dec = Decoder::new(DecoderConfig::default());
        let (n, p) = dec.decode(&stream).expect("first");
        assert_eq!((n, p.map(|p| p.bhs.itt())), (a.len(), Some(1)));
        let (n, p) = dec.decode(&stream[a.len()..]).expect("second");
        assert_eq!((n, p.map(|p| p.bhs.itt())), (b.len(), Some(2)));
        assert_eq!(dec.decode(&[]).expect("empty"), (0, None));
    }

    #[test]
    fn partial_input_is_buffered() {
        let wire = enc(
            &Pdu::new(
                NopOut {
                    itt: 3,
                    ..Default::default()
                },
                vec![1; 10],
            ),
            BOTH,
        );
        let mut dec = Decoder::new(cfg(BOTH, 8192));
        assert_eq!(dec.decode(&wire[..30]).expect("part"), (30, None));
        assert!(!dec.is_idle());
        assert_eq!(dec.decode(&wire[30..55]).expect("part"), (25, None));
        let (n, p) = dec.decode(&wire[55..]).expect("rest");
        assert_eq!(n, wire.len() - 55);
        assert_eq!(p.map(|p| p.data), Some(vec![1; 10]));
    }

    #[test]
    fn unknown_opcode_is_not_an_error() {
        let mut raw = [0u8; 48];
        raw[0] = 0x1c;
        raw[16..20].copy_from_slice(&[0, 0, 0, 0x33]);
        let pdu = Pdu::new(Bhs::Unknown(RawBhs(raw)), vec![1, 2, 3]);
        let wire = enc(&pdu, NONE);
        assert_eq!(&wire[4..8], &[0, 0, 0, 3]);
        let mut dec = Decoder::new(DecoderConfig::default());
        let (_, got) = dec.decode(&wire).expect("decodes");
        let got = got.expect("complete");
        assert_eq!(got.bhs.opcode(), Opcode(0x1c));
        assert_eq!(got.bhs.itt(), 0x33);
        assert_eq!(got.data, vec![1, 2, 3]);
    }

    #[test]
    fn header_digest_error_is_fatal_and_sticky() {
        let mut wire = enc(&Pdu::new(NopOut::default(), vec![0; 4]), BOTH);
        wire[20] ^= 1;
        let mut dec = Decoder::new(cfg(BOTH, 8192));
        let err = dec.decode(&wire).expect_err("corrupt header");
        let WireError::HeaderDigest { expected, actual } = err.clone() else {
            panic!("{err:?}")
        };
        assert_ne!(expected, actual);
        assert_eq!(dec.last_consumed(), 52, "payload not read");
        assert!(err.is_fatal());
        assert_eq!(err.reject_reason(), None);
        assert_eq!(err.header(), None);
        assert_eq!(dec.decode(&wire[52..]), Err(err));
        assert_eq!(dec.last_consumed(), 0);
        dec.reset();
        assert!(dec.is_idle());
    }

    #[test]
    fn data_digest_error_drops_pdu_and_keeps_sync() {
        let bad = Pdu::new(
            ScsiCommand {
                itt: 5,
                write: true,
                ..Default::default()
            },
            vec![7; 9],
        );
        let mut stream = enc(&bad, BOTH);
        let bad_len = stream.len();
        stream[52 + 3] ^= 0x80;
        stream.extend(enc(
            &Pdu::new(
                NopOut {
                    itt: 6,
                    ..Default::default()
                },
                vec![],
            ),
            BOTH,
        ));
        let mut dec = Decoder::new(cfg(BOTH, 8192));
        let err = dec.decode(&stream).expect_err("bad data");
        assert!(matches!(err, WireError::DataDigest { .. }));
        assert_eq!(dec.last_consumed(), bad_len);
        assert!(!err.is_fatal());
        assert_eq!(err.reject_reason(), Some(RejectReason::DATA_DIGEST));
        assert_eq!(err.header().map(|h| h.itt()), Some(5));
        let (_, next) = dec.decode(&stream[bad_len..]).expect("in sync");
        assert_eq!(next.map(|p| p.bhs.itt()), Some(6));
    }

    #[test]
    fn data_digest_error_byte_by_byte() {
        let mut wire = enc(
            &Pdu::new(
                DataOut {
                    itt: 8,
                    ..Default::default()
                },
                vec![3; 3],
            ),
            BOTH,
        );
        let last = wire.len() - 1;
        wire[last] ^= 0xff;
        let mut dec = Decoder::new(cfg(BOTH, 8192));
        for b in &wire[..last] {
            assert_eq!(
                dec.decode(std::slice::from_ref(b)).expect("partial"),
                (1, None)
            );
        }
        assert!(matches!(
            dec.decode(&wire[last..]),
            Err(WireError::DataDigest { .. })
        ));
        assert_eq!(dec.last_consumed(), 1);
        assert!(dec.is_idle());
    }

    #[test]
    fn too_long_data_segment_rejected_before_payload() {
        let wire = enc(
            &Pdu::new(
                DataOut {
                    itt: 4,
                    ..Default::default()
                },
                vec![0; 4100],
            ),
            NONE,
        );
        let mut dec = Decoder::new(cfg(NONE, 4096));
        let err = dec.decode(&wire).expect_err("too long");
        assert_eq!(dec.last_consumed(), 48);
        let WireError::DataSegmentTooLong { header, len, max } = &err else {
            panic!("{err:?}")
        };
        assert_eq!((header.itt(), *len, *max), (4, 4100, 4096));
        assert!(err.is_fatal());
        assert_eq!(err.reject_reason(), Some(RejectReason::PROTOCOL_ERROR));
        assert_eq!(dec.decode(&wire[48..]), Err(err));
    }

    #[test]
    fn too_long_checked_after_header_digest() {
        let mut wire = enc(&Pdu::new(NopOut::default(), vec![0; 100]), BOTH);
        wire[7] = 0xff;
        let mut dec = Decoder::new(cfg(BOTH, 64));
        assert!(matches!(
            dec.decode(&wire),
            Err(WireError::HeaderDigest { .. })
        ));
    }

    #[test]
    fn invalid_field_consumes_payload_and_keeps_sync() {
        let bad = Pdu::new(
            TextRequest {
                final_: true,
                itt: 9,
                ..Default::default()
            },
            vec![b'a'; 6],
        );
        let mut stream = enc(&bad, NONE);
        stream[1] = 0xc0;
        let bad_len = stream.len();
        stream.extend(enc(
            &Pdu::new(
                NopOut {
                    itt: 10,
                    ..Default::default()
                },
                vec![],
            ),
            NONE,
        ));
        let mut dec = Decoder::new(DecoderConfig::default());
        let err = dec.decode(&stream).expect_err("F and C");
        let WireError::InvalidField { header, what } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(header.itt(), 9);
        assert!(what.contains("F and C"));
        assert_eq!(dec.last_consumed(), bad_len);
        assert_eq!(err.reject_reason(), Some(RejectReason::INVALID_PDU_FIELD));
        assert!(!err.is_fatal());
        let (_, next) = dec.decode(&stream[bad_len..]).expect("in sync");
        assert_eq!(next.map(|p| p.bhs.itt()), Some(10));
    }

    #[test]
    fn new_config_applies_from_next_pdu() {
        let login = enc(
            &Pdu::new(
                LoginRequest {
                    itt: 1,
                    ..Default::default()
                },
                vec![1; 8],
            ),
            NONE,
        );
        let nop = enc(
            &Pdu::new(
                NopOut {
                    itt: 2,
                    ..Default::default()
                },
                vec![2; 8],
            ),
            BOTH,
        );
        let mut dec = Decoder::new(DecoderConfig::default());
        assert_eq!(dec.decode(&login[..10]).expect("part"), (10, None));
        dec.set_config(cfg(BOTH, 8192));
        let (_, p) = dec.decode(&login[10..]).expect("old config");
        assert_eq!(p.map(|p| p.bhs.itt()), Some(1));
        let (n, p) = dec.decode(&nop).expect("new config");
        assert_eq!((n, p.map(|p| p.bhs.itt())), (nop.len(), Some(2)));
        assert_eq!(dec.config(), cfg(BOTH, 8192));
    }

    #[test]
    fn error_properties() {
        let h = RawBhs::default();
        let e = WireError::InvalidField {
            header: h,
            what: "x",
        };
        assert_eq!(e.header(), Some(&h));
        assert!(e.to_string().contains("invalid PDU field"));
        let e = WireError::DataSegmentTooLong {
            header: h,
            len: 9,
            max: 8,
        };
        assert!(e.to_string().contains("9"));
    }
}
