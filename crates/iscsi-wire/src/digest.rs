//! CRC32C (Castagnoli) digests, RFC 7143 13.1.
//!
//! The digest value is the usual reflected CRC32C (initial value and final XOR all ones);
//! on the wire it is sent least-significant byte first, which is what every
//! implementation does (e.g. 32 zero bytes give the value 0x8a9136aa, sent as `aa 36 91 8a`).

/// CRC32C of `data` (hardware accelerated where available).
pub fn crc32c(data: &[u8]) -> u32 {
    ::crc32c::crc32c(data)
}

/// Continue a CRC32C computed over earlier bytes with `data`.
pub(crate) fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    ::crc32c::crc32c_append(crc, data)
}

/// The on-wire bytes of a digest value.
pub(crate) fn to_wire(crc: u32) -> [u8; 4] {
    crc.to_le_bytes()
}

/// The digest value from its on-wire bytes.
pub(crate) fn from_wire(b: [u8; 4]) -> u32 {
    u32::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(data: &[u8]) -> [u8; 4] {
        to_wire(crc32c(data))
    }

    #[test]
    fn rfc3720_b4_vectors() {
        assert_eq!(wire(&[0u8; 32]), [0xaa, 0x36, 0x91, 0x8a]);
        assert_eq!(wire(&[0xffu8; 32]), [0x43, 0xab, 0xa8, 0x62]);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(wire(&inc), [0x4e, 0x79, 0xdd, 0x46]);
        let dec: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(wire(&dec), [0x5c, 0xdb, 0x3f, 0x11]);
    }

    #[test]
    fn rfc3720_b4_iscsi_read_command() {
        let pdu: [u8; 48] = [
            0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14,
            0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(wire(&pdu), [0x56, 0x3a, 0x96, 0xd9]);
    }

    #[test]
    fn append_matches_one_shot_and_wire_order_round_trips() {
        let data: Vec<u8> = (0..=255u8).collect();
        let split = crc32c_append(crc32c(&data[..100]), &data[100..]);
        assert_eq!(split, crc32c(&data));
        assert_eq!(from_wire(to_wire(0x8a91_36aa)), 0x8a91_36aa);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
    }
}
