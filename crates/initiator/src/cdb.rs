//! CDB builders for the commands the helpers use.

/// TEST UNIT READY.
pub fn test_unit_ready() -> [u8; 6] {
    [0; 6]
}

/// INQUIRY (standard data, or the VPD `page` when `evpd`).
pub fn inquiry(evpd: bool, page: u8, alloc_len: u16) -> [u8; 6] {
    let a = alloc_len.to_be_bytes();
    [0x12, u8::from(evpd), page, a[0], a[1], 0]
}

/// READ(16).
pub fn read16(lba: u64, blocks: u32) -> [u8; 16] {
    rw16(0x88, lba, blocks)
}

/// WRITE(16).
pub fn write16(lba: u64, blocks: u32) -> [u8; 16] {
    rw16(0x8a, lba, blocks)
}

fn rw16(op: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// READ CAPACITY(16) (SERVICE ACTION IN(16), service action 0x10).
pub fn read_capacity16(alloc_len: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x9e;
    c[1] = 0x10;
    c[10..14].copy_from_slice(&alloc_len.to_be_bytes());
    c
}

/// REPORT LUNS.
pub fn report_luns(alloc_len: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = 0xa0;
    c[6..10].copy_from_slice(&alloc_len.to_be_bytes());
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdb_bytes() {
        assert_eq!(
            read16(0x0102_0304_0506_0708, 0x10),
            [0x88, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0x10, 0, 0]
        );
        assert_eq!(write16(1, 2)[..2], [0x8a, 0]);
        assert_eq!(inquiry(true, 0x80, 0x100), [0x12, 1, 0x80, 1, 0, 0]);
        assert_eq!(read_capacity16(32)[..2], [0x9e, 0x10]);
        assert_eq!(read_capacity16(32)[13], 32);
        assert_eq!(report_luns(0x1000)[6..10], [0, 0, 0x10, 0]);
    }
}
