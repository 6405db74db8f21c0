//! Serial number arithmetic (RFC 1982, 32 bits) used for CmdSN, StatSN and friends.

/// `a < b` in 32-bit serial arithmetic.
pub fn sn_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

/// `a > b` in 32-bit serial arithmetic.
pub fn sn_gt(a: u32, b: u32) -> bool {
    sn_lt(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_and_wrap() {
        assert!(sn_lt(1, 2));
        assert!(!sn_lt(2, 2));
        assert!(sn_gt(3, 2));
        assert!(sn_lt(0xffff_fffe, 1));
        assert!(sn_gt(1, 0xffff_fffe));
        assert!(!sn_lt(5, 0x8000_0005));
        assert!(!sn_gt(5, 0x8000_0005));
    }
}
