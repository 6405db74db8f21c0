//! REPORT LUNS (SPC-4 6.33) and the SAM-5 LUN encodings.

use crate::cdb::{be32, byte, clip};
use crate::sense::Sense;

/// Encodes a LUN number as the 8-byte SAM LUN field: peripheral device addressing (00b)
/// below 256, flat space addressing (01b) for 256..16383. Larger values are taken as an
/// already encoded 8-byte field (see [`decode_lun`]).
pub fn encode_lun(lun: u64) -> [u8; 8] {
    let mut b = [0u8; 8];
    if lun < 256 {
        b[1] = lun as u8;
    } else if lun < 0x4000 {
        b[0] = 0x40 | (lun >> 8) as u8;
        b[1] = lun as u8;
    } else {
        b = lun.to_be_bytes();
    }
    b
}

/// Decodes an 8-byte SAM LUN field into a LUN number. Single-level peripheral (bus 0) and
/// flat LUNs give 0..16383; any other form is returned as the raw big-endian value (at least
/// 16384, so it never matches a mapped LUN), which [`encode_lun`] turns back into the field.
pub fn decode_lun(b: [u8; 8]) -> u64 {
    let single_level = b[2..].iter().all(|x| *x == 0);
    match b[0] >> 6 {
        0b00 if single_level && b[0] == 0 => u64::from(b[1]),
        0b01 if single_level => (u64::from(b[0] & 0x3F) << 8) | u64::from(b[1]),
        _ => u64::from_be_bytes(b).max(0x4000),
    }
}

/// Builds REPORT LUNS parameter data for `luns` after validating the CDB's SELECT REPORT
/// field; the result is clipped to the allocation length.
pub fn report(cdb: &[u8], luns: &[u64]) -> Result<Vec<u8>, Sense> {
    let alloc = be32(cdb, 6) as usize;
    let listed: &[u64] = match byte(cdb, 2) {
        0x00 | 0x02 => luns,
        0x01 => &[],
        _ => return Err(Sense::invalid_cdb(2, None)),
    };
    let mut d = Vec::with_capacity(8 + 8 * listed.len());
    d.extend_from_slice(&((listed.len() * 8) as u32).to_be_bytes());
    d.extend_from_slice(&[0; 4]);
    for l in listed {
        d.extend_from_slice(&encode_lun(*l));
    }
    Ok(clip(d, alloc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lun_encoding_round_trips() {
        assert_eq!(encode_lun(0), [0; 8]);
        assert_eq!(encode_lun(5), [0, 5, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode_lun(255), [0, 255, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode_lun(256), [0x41, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode_lun(16383), [0x7F, 0xFF, 0, 0, 0, 0, 0, 0]);
        for l in [0, 1, 200, 255, 256, 1000, 16383] {
            assert_eq!(decode_lun(encode_lun(l)), l);
        }
        assert_eq!(decode_lun([0x40, 7, 0, 0, 0, 0, 0, 0]), 7);
        let odd = [0x01, 2, 0, 0, 0, 0, 0, 0];
        assert!(decode_lun(odd) >= 0x4000);
        assert_eq!(encode_lun(decode_lun(odd)), odd);
        let two_level = [0, 1, 0, 2, 0, 0, 0, 0];
        assert_eq!(encode_lun(decode_lun(two_level)), two_level);
    }

    #[test]
    fn report_data() {
        let cdb = [0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        let d = report(&cdb, &[0, 3, 300]).unwrap();
        assert_eq!(
            d,
            vec![
                0, 0, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0x41,
                0x2C, 0, 0, 0, 0, 0, 0
            ]
        );
        let mut c = cdb;
        c[2] = 1;
        assert_eq!(report(&c, &[0, 3]).unwrap(), vec![0; 8]);
        c[2] = 2;
        assert_eq!(report(&c, &[0]).unwrap().len(), 16);
        c[2] = 3;
        assert_eq!(report(&c, &[0]), Err(Sense::invalid_cdb(2, None)));
        c[2] = 0;
        c[9] = 4;
        c[8] = 0;
        assert_eq!(report(&c, &[0, 1]).unwrap(), vec![0, 0, 0, 16]);
    }
}
