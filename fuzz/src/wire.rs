//! `decode_pdu` and `parse_text`: the iscsi-wire codec and text-key parser.

use iscsi_wire::{
    encode, encode_text, encoded_len, parse_text, Decoder, DecoderConfig, DigestConfig, Pdu,
    WireError, MAX_KEY_LEN, MAX_VALUE_LEN,
};

/// Arbitrary bytes to a [`Decoder`]: the first 4 bytes choose the digests, the maximum data
/// segment and a fragment size; every decoded PDU must re-encode and re-decode to itself.
pub fn decode_pdu(input: &[u8]) {
    let Some((head, stream)) = input.split_first_chunk::<4>() else {
        return;
    };
    let digests = DigestConfig {
        header: head[0] & 1 != 0,
        data: head[0] & 2 != 0,
    };
    let max_data_segment = u32::from(u16::from_be_bytes([head[1], head[2]]));
    let cfg = DecoderConfig {
        digests,
        max_data_segment,
    };
    let step = usize::from(head[3]).max(1);
    let mut dec = Decoder::new(cfg);
    for chunk in stream.chunks(step) {
        if !feed(&mut dec, chunk, cfg) {
            return;
        }
    }
}

/// Feed one fragment; false once a fatal error ends the stream.
fn feed(dec: &mut Decoder, chunk: &[u8], cfg: DecoderConfig) -> bool {
    let mut pos = 0;
    loop {
        match dec.decode(&chunk[pos..]) {
            Ok((n, Some(pdu))) => {
                assert!(n <= chunk.len() - pos);
                pos += n;
                check_round_trip(&pdu, cfg);
            }
            Ok((n, None)) => {
                assert_eq!(n, chunk.len() - pos, "None must consume all input");
                return true;
            }
            Err(e) => {
                check_error(&e, cfg);
                if e.is_fatal() {
                    return false;
                }
                pos += dec.last_consumed();
                assert!(pos <= chunk.len());
            }
        }
    }
}

fn check_error(e: &WireError, cfg: DecoderConfig) {
    match e {
        WireError::HeaderDigest { expected, actual } => {
            assert!(cfg.digests.header);
            assert_ne!(expected, actual);
        }
        WireError::DataDigest {
            expected, actual, ..
        } => {
            assert!(cfg.digests.data);
            assert_ne!(expected, actual);
        }
        WireError::DataSegmentTooLong { header, len, max } => {
            assert!(len > max);
            assert_eq!(header.data_segment_len(), *len);
        }
        WireError::InvalidField { .. } => {}
    }
    assert_eq!(e.header().is_some(), e.reject_reason().is_some());
}

fn check_round_trip(pdu: &Pdu, cfg: DecoderConfig) {
    assert!(pdu.data.len() <= cfg.max_data_segment as usize);
    assert_eq!(pdu.ahs.len() % 4, 0);
    let mut wire = Vec::new();
    encode(pdu, cfg.digests, &mut wire);
    assert_eq!(wire.len(), encoded_len(pdu, cfg.digests));
    let mut dec = Decoder::new(cfg);
    let (n, again) = dec.decode(&wire).expect("re-encoded PDU must decode");
    assert_eq!(n, wire.len());
    let again = again.expect("re-encoded PDU is complete");
    let mut wire2 = Vec::new();
    encode(&again, cfg.digests, &mut wire2);
    assert_eq!(wire, wire2, "encoding is not stable");
    assert_eq!(&again, pdu, "decode(encode(pdu)) != pdu");
}

/// Arbitrary bytes to `parse_text`; what parses must round-trip through `encode_text`.
pub fn parse_text_target(data: &[u8]) {
    let Ok(pairs) = parse_text(data) else { return };
    for (k, v) in &pairs {
        assert!(!k.is_empty() && k.len() <= MAX_KEY_LEN);
        assert!(v.len() <= MAX_VALUE_LEN);
        assert!(!k.contains(['=', '\0']) && !v.contains('\0'));
    }
    let encoded = encode_text(&pairs);
    assert_eq!(parse_text(&encoded).as_ref(), Ok(&pairs));
}
