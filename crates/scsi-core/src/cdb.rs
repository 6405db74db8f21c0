//! CDB decoding helpers: big-endian fields, reserved-bit checks, block-range decoding and the
//! number of Data-Out bytes each command needs.

use crate::opcodes::op;
use crate::sense::Sense;

/// Reads a big-endian u16 at `at`; missing bytes read as zero.
pub fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([byte(b, at), byte(b, at + 1)])
}

/// Reads a big-endian 24-bit value at `at`.
pub fn be24(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([0, byte(b, at), byte(b, at + 1), byte(b, at + 2)])
}

/// Reads a big-endian u32 at `at`.
pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([
        byte(b, at),
        byte(b, at + 1),
        byte(b, at + 2),
        byte(b, at + 3),
    ])
}

/// Reads a big-endian u64 at `at`.
pub fn be64(b: &[u8], at: usize) -> u64 {
    (u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))
}

/// The byte at `at`, or zero past the end.
pub fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

/// Truncates `data` to `alloc` bytes (the allocation length rule).
pub fn clip(mut data: Vec<u8>, alloc: usize) -> Vec<u8> {
    data.truncate(alloc);
    data
}

/// Checks bits outside `usage` (a CDB usage mask, one byte per CDB byte) are zero; the first
/// set reserved bit is reported as INVALID FIELD IN CDB with its byte and bit. The control byte
/// (the last byte) is checked separately by [`check_control`].
pub fn check_reserved(cdb: &[u8], usage: &[u8]) -> Result<(), Sense> {
    let n = usage.len().saturating_sub(1);
    for (i, (&b, &m)) in cdb.iter().zip(usage).take(n).enumerate().skip(1) {
        let bad = b & !m;
        if bad != 0 {
            let bit = 7 - bad.leading_zeros() as u8;
            return Err(Sense::invalid_cdb(i as u16, Some(bit)));
        }
    }
    Ok(())
}

/// Checks the CONTROL byte: NACA and LINK are not supported, vendor bits are ignored.
pub fn check_control(cdb: &[u8], len: usize) -> Result<(), Sense> {
    let at = len - 1;
    let c = byte(cdb, at);
    if c & 0x04 != 0 {
        return Err(Sense::invalid_cdb(at as u16, Some(2)));
    }
    if c & 0x01 != 0 {
        return Err(Sense::invalid_cdb(at as u16, Some(0)));
    }
    Ok(())
}

/// The CDB length implied by the group code of `opcode`, when it is fixed.
pub fn cdb_len(opcode: u8) -> Option<usize> {
    match opcode >> 5 {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    }
}

/// A decoded block range: starting LBA, number of blocks and the flag byte (byte 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRange {
    pub lba: u64,
    pub blocks: u64,
    pub flags: u8,
}

/// Decodes LBA / TRANSFER LENGTH of the READ/WRITE/VERIFY-style CDB forms (6, 10, 12, 16
/// bytes). For the 6-byte form a length of 0 means 256 blocks when `zero_is_256`.
pub fn block_range(cdb: &[u8], zero_is_256: bool) -> BlockRange {
    let flags = byte(cdb, 1);
    match cdb_len(byte(cdb, 0)) {
        Some(6) => {
            let lba = u64::from(be24(cdb, 1) & 0x1F_FFFF);
            let n = u64::from(byte(cdb, 4));
            let blocks = if n == 0 && zero_is_256 { 256 } else { n };
            BlockRange {
                lba,
                blocks,
                flags: 0,
            }
        }
        Some(10) => BlockRange {
            lba: u64::from(be32(cdb, 2)),
            blocks: u64::from(be16(cdb, 7)),
            flags,
        },
        Some(12) => BlockRange {
            lba: u64::from(be32(cdb, 2)),
            blocks: u64::from(be32(cdb, 6)),
            flags,
        },
        _ => BlockRange {
            lba: be64(cdb, 2),
            blocks: u64::from(be32(cdb, 10)),
            flags,
        },
    }
}

/// Number of Data-Out bytes the command in `cdb` needs, for a device of `block_size`.
/// Commands that transfer no Data-Out return 0.
pub fn data_out_len(cdb: &[u8], block_size: u32) -> u32 {
    let bs = u64::from(block_size);
    let opcode = byte(cdb, 0);
    let bytes: u64 = match opcode {
        op::WRITE_6 => block_range(cdb, true).blocks * bs,
        op::WRITE_10
        | op::WRITE_12
        | op::WRITE_16
        | op::WRITE_VERIFY_10
        | op::WRITE_VERIFY_12
        | op::WRITE_VERIFY_16
        | op::ORWRITE_16 => block_range(cdb, false).blocks * bs,
        op::VERIFY_10 | op::VERIFY_12 | op::VERIFY_16 => {
            let r = block_range(cdb, false);
            match (r.flags >> 1) & 0x03 {
                0x01 => r.blocks * bs,
                0x03 => bs,
                _ => 0,
            }
        }
        op::WRITE_SAME_10 | op::WRITE_SAME_16 => {
            if opcode == op::WRITE_SAME_16 && byte(cdb, 1) & 0x01 != 0 {
                0
            } else {
                bs
            }
        }
        op::COMPARE_AND_WRITE => 2 * u64::from(byte(cdb, 13)) * bs,
        op::WRITE_ATOMIC_16 => u64::from(be16(cdb, 12)) * bs,
        op::SANITIZE => u64::from(be16(cdb, 7)),
        op::MODE_SELECT_6 => u64::from(byte(cdb, 4)),
        op::MODE_SELECT_10 | op::UNMAP => u64::from(be16(cdb, 7)),
        op::PERSISTENT_RESERVE_OUT => u64::from(be32(cdb, 5)),
        op::EXTENDED_COPY => u64::from(be32(cdb, 10)),
        _ => 0,
    };
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_endian_readers() {
        let b = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(be16(&b, 0), 0x0102);
        assert_eq!(be24(&b, 1), 0x020304);
        assert_eq!(be32(&b, 0), 0x01020304);
        assert_eq!(be64(&b, 1), 0x0203040506070809);
        assert_eq!(be16(&b, 8), 0x0900);
    }

    #[test]
    fn reserved_bits_reported_with_pointer() {
        let usage = [0xFF, 0x1F, 0xFF, 0x00];
        assert!(check_reserved(&[0x12, 0x1F, 0xFF, 0xFF], &usage).is_ok());
        let e = check_reserved(&[0x12, 0x40, 0, 0], &usage).unwrap_err();
        assert_eq!(e, Sense::invalid_cdb(1, Some(6)));
    }

    #[test]
    fn control_byte() {
        assert!(check_control(&[0, 0, 0, 0, 0, 0x80], 6).is_ok());
        assert_eq!(
            check_control(&[0, 0, 0, 0, 0, 0x04], 6),
            Err(Sense::invalid_cdb(5, Some(2)))
        );
        assert_eq!(
            check_control(&[0, 0, 0, 0, 0, 0x01], 6),
            Err(Sense::invalid_cdb(5, Some(0)))
        );
    }

    #[test]
    fn ranges() {
        let r = block_range(&[0x08, 0x1F, 0xFF, 0xFE, 0, 0], true);
        assert_eq!((r.lba, r.blocks), (0x1FFFFE, 256));
        let r = block_range(&[0x28, 0x18, 0, 0, 1, 0, 0, 0, 8, 0], false);
        assert_eq!((r.lba, r.blocks, r.flags), (256, 8, 0x18));
        let r = block_range(&[0xA8, 0, 0, 0, 0, 9, 0, 0, 1, 0, 0, 0], false);
        assert_eq!((r.lba, r.blocks), (9, 256));
        let mut c16 = [0u8; 16];
        c16[0] = 0x88;
        c16[2] = 0x80;
        c16[13] = 3;
        let r = block_range(&c16, false);
        assert_eq!((r.lba, r.blocks), (1 << 63, 3));
    }

    #[test]
    fn data_out_lengths() {
        assert_eq!(data_out_len(&[0x0A, 0, 0, 0, 0, 0], 512), 256 * 512);
        assert_eq!(data_out_len(&[0x2A, 0, 0, 0, 0, 0, 0, 0, 2, 0], 512), 1024);
        assert_eq!(data_out_len(&[0x2F, 0, 0, 0, 0, 0, 0, 0, 2, 0], 512), 0);
        assert_eq!(
            data_out_len(&[0x2F, 0x02, 0, 0, 0, 0, 0, 0, 2, 0], 512),
            1024
        );
        assert_eq!(
            data_out_len(&[0x2F, 0x06, 0, 0, 0, 0, 0, 0, 2, 0], 512),
            512
        );
        assert_eq!(data_out_len(&[0x41, 0, 0, 0, 0, 0, 0, 0, 9, 0], 4096), 4096);
        assert_eq!(data_out_len(&[0x15, 0x10, 0, 0, 24, 0], 512), 24);
        assert_eq!(data_out_len(&[0x12, 0, 0, 0, 255, 0], 512), 0);
        let mut wa = [0u8; 16];
        wa[0] = 0x9C;
        wa[10] = 0xFF;
        wa[13] = 3;
        assert_eq!(data_out_len(&wa, 512), 3 * 512);
        assert_eq!(data_out_len(&[0x48, 1, 0, 0, 0, 0, 0, 2, 4, 0], 512), 516);
    }
}
