//! Hand-built PDUs for hostile-input tests: any header bytes, AHS, a declared
//! DataSegmentLength or TotalAHSLength that disagrees with what is sent, chosen padding
//! bytes, and digests computed over exactly what goes on the wire (or deliberately wrong).

use iscsi_wire::{crc32c, DigestConfig, Pdu, BHS_LEN};

use crate::conn::Connection;
use crate::session::Session;
use crate::Result;

/// A PDU as raw bytes, with every length field under the caller's control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPdu {
    /// The 48 header bytes; bytes 4..8 (TotalAHSLength, DataSegmentLength) are filled in by
    /// [`RawPdu::encode`] unless declared with [`RawPdu::declare_ahs_words`] /
    /// [`RawPdu::declare_len`].
    pub bhs: [u8; BHS_LEN],
    /// Additional header segments, zero-padded to a multiple of 4 bytes when encoded.
    pub ahs: Vec<u8>,
    /// The data segment actually sent.
    pub data: Vec<u8>,
    /// Value of the padding bytes after the data (the standard says 0).
    pub pad: u8,
    /// DataSegmentLength to put in the header instead of `data.len()`.
    pub declared_len: Option<u32>,
    /// TotalAHSLength (in 4-byte words) to put in the header instead of the AHS length.
    pub declared_ahs_words: Option<u8>,
    /// Send a header digest that does not match.
    pub bad_header_digest: bool,
    /// Send a data digest that does not match.
    pub bad_data_digest: bool,
}

impl RawPdu {
    /// A header of zeros with this opcode byte (I bit and opcode).
    pub fn new(opcode_byte: u8) -> RawPdu {
        let mut bhs = [0u8; BHS_LEN];
        bhs[0] = opcode_byte;
        RawPdu::from_bhs(bhs)
    }

    /// These exact header bytes (bytes 4..8 are still filled in by `encode` unless declared).
    pub fn from_bhs(bhs: [u8; BHS_LEN]) -> RawPdu {
        RawPdu {
            bhs,
            ahs: Vec::new(),
            data: Vec::new(),
            pad: 0,
            declared_len: None,
            declared_ahs_words: None,
            bad_header_digest: false,
            bad_data_digest: false,
        }
    }

    /// The header, AHS and data of a typed PDU.
    pub fn from_pdu(pdu: &Pdu) -> RawPdu {
        let len = u32::try_from(pdu.data.len()).unwrap_or(u32::MAX);
        let mut raw = RawPdu::from_bhs(pdu.bhs.to_raw(len, 0).0);
        raw.ahs = pdu.ahs.clone();
        raw.data = pdu.data.clone();
        raw
    }

    /// Set header byte `at`.
    pub fn byte(mut self, at: usize, value: u8) -> RawPdu {
        self.bhs[at] = value;
        self
    }

    /// OR `bits` into header byte `at`.
    pub fn or_byte(mut self, at: usize, bits: u8) -> RawPdu {
        self.bhs[at] |= bits;
        self
    }

    /// Set the big-endian 32-bit header field at `at`.
    pub fn u32_at(mut self, at: usize, value: u32) -> RawPdu {
        self.bhs[at..at + 4].copy_from_slice(&value.to_be_bytes());
        self
    }

    /// The data segment.
    pub fn data(mut self, data: Vec<u8>) -> RawPdu {
        self.data = data;
        self
    }

    /// The AHS bytes.
    pub fn ahs(mut self, ahs: Vec<u8>) -> RawPdu {
        self.ahs = ahs;
        self
    }

    /// Padding bytes of this value.
    pub fn pad(mut self, value: u8) -> RawPdu {
        self.pad = value;
        self
    }

    /// Claim this DataSegmentLength whatever data is sent.
    pub fn declare_len(mut self, len: u32) -> RawPdu {
        self.declared_len = Some(len);
        self
    }

    /// Claim this TotalAHSLength (words) whatever AHS is sent.
    pub fn declare_ahs_words(mut self, words: u8) -> RawPdu {
        self.declared_ahs_words = Some(words);
        self
    }

    /// The header as it goes on the wire (with its length fields).
    pub fn header(&self) -> [u8; BHS_LEN] {
        let mut h = self.bhs;
        let words = self
            .declared_ahs_words
            .unwrap_or_else(|| u8::try_from(self.ahs.len().div_ceil(4)).unwrap_or(u8::MAX));
        h[4] = words;
        let len = self
            .declared_len
            .unwrap_or_else(|| u32::try_from(self.data.len()).unwrap_or(u32::MAX));
        h[5..8].copy_from_slice(&len.to_be_bytes()[1..4]);
        h
    }

    /// The wire bytes: header, AHS (padded), header digest, data, padding, data digest.
    pub fn encode(&self, digests: DigestConfig) -> Vec<u8> {
        let mut out = self.header().to_vec();
        out.extend_from_slice(&self.ahs);
        out.resize(out.len() + (4 - self.ahs.len() % 4) % 4, 0);
        if digests.header {
            let crc = crc32c(&out) ^ u32::from(self.bad_header_digest);
            out.extend_from_slice(&crc.to_le_bytes());
        }
        if self.data.is_empty() {
            return out;
        }
        let start = out.len();
        out.extend_from_slice(&self.data);
        out.resize(out.len() + (4 - self.data.len() % 4) % 4, self.pad);
        if digests.data {
            let crc = crc32c(&out[start..]) ^ u32::from(self.bad_data_digest);
            out.extend_from_slice(&crc.to_le_bytes());
        }
        out
    }
}

impl Connection {
    /// Send a hand-built PDU with the connection's digests.
    pub fn send_raw_pdu(&mut self, pdu: &RawPdu) -> Result<()> {
        let bytes = pdu.encode(self.digests());
        self.send_raw(&bytes)
    }
}

impl Session {
    /// Send a hand-built PDU with the negotiated digests.
    pub fn send_raw_pdu(&mut self, pdu: &RawPdu) -> Result<()> {
        self.conn.send_raw_pdu(pdu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iscsi_wire::{Bhs, Decoder, DecoderConfig, NopOut};

    fn both() -> DigestConfig {
        DigestConfig {
            header: true,
            data: true,
        }
    }

    #[test]
    fn encodes_like_the_codec_when_nothing_is_odd() {
        let pdu = Pdu::new(
            NopOut {
                immediate: true,
                itt: 3,
                ttt: 0xffff_ffff,
                ..NopOut::default()
            },
            b"hello".to_vec(),
        );
        for d in [DigestConfig::default(), both()] {
            let mut want = Vec::new();
            iscsi_wire::encode(&pdu, d, &mut want);
            assert_eq!(RawPdu::from_pdu(&pdu).encode(d), want);
        }
    }

    #[test]
    fn padding_and_digests_cover_what_is_sent() {
        let raw = RawPdu::new(0x40).data(vec![1, 2, 3, 4, 5]).pad(0xee);
        let bytes = raw.encode(both());
        assert_eq!(bytes.len(), 48 + 4 + 8 + 4);
        assert_eq!(&bytes[57..60], &[0xee; 3]);
        let mut dec = Decoder::new(DecoderConfig {
            digests: both(),
            max_data_segment: 8192,
        });
        let (n, pdu) = dec.decode(&bytes).expect("digests match");
        assert_eq!(n, bytes.len());
        let pdu = pdu.expect("a PDU");
        assert!(matches!(pdu.bhs, Bhs::NopOut(_)));
        assert_eq!(pdu.data, vec![1, 2, 3, 4, 5]);
        let mut bad = raw.clone();
        bad.bad_data_digest = true;
        let mut dec = Decoder::new(DecoderConfig {
            digests: both(),
            max_data_segment: 8192,
        });
        assert!(dec.decode(&bad.encode(both())).is_err());
    }

    #[test]
    fn declared_lengths_override_the_real_ones() {
        let raw = RawPdu::new(0x40)
            .data(vec![9; 8])
            .declare_len(0x00ff_ffff)
            .ahs(vec![1, 2])
            .declare_ahs_words(255);
        let h = raw.header();
        assert_eq!(h[4], 255);
        assert_eq!(&h[5..8], &[0xff, 0xff, 0xff]);
        let bytes = raw.encode(DigestConfig::default());
        assert_eq!(bytes.len(), 48 + 4 + 8);
        let h = RawPdu::new(0).ahs(vec![1, 2, 3, 4, 5]).header();
        assert_eq!(h[4], 2);
    }
}
