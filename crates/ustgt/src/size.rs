//! Human-readable byte sizes: "4096", "10K", "512M", "1G", "2T", "1GiB", "1gb".
//!
//! Suffixes K, M, G, T, P are binary (powers of 1024) and case-insensitive; an optional trailing
//! "B" or "iB" is accepted ("1G" = "1GB" = "1GiB"). A bare "B" means bytes.

/// Parses a size in bytes, checking for overflow.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty size".into());
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "invalid size \"{text}\": expected a number, e.g. 512M or 1G"
        ));
    }
    let shift = unit_shift(unit.trim_start()).ok_or_else(|| {
        format!("invalid size \"{text}\": unknown unit \"{unit}\" (use K, M, G, T or P)")
    })?;
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size \"{text}\": number too large"))?;
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("invalid size \"{text}\": too large"))
}

/// The power of two a unit stands for, or `None` when the unit is unknown.
fn unit_shift(unit: &str) -> Option<u32> {
    let lower = unit.to_ascii_lowercase();
    let prefix = lower
        .strip_suffix("ib")
        .filter(|p| !p.is_empty())
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    match prefix {
        "" => Some(0),
        "k" => Some(10),
        "m" => Some(20),
        "g" => Some(30),
        "t" => Some(40),
        "p" => Some(50),
        _ => None,
    }
}

/// Formats a size with the largest binary unit that divides it exactly ("1G", "1536K", "4097").
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u32, &str); 5] = [(50, "P"), (40, "T"), (30, "G"), (20, "M"), (10, "K")];
    for (shift, name) in UNITS {
        if bytes != 0 && bytes % (1u64 << shift) == 0 {
            return format!("{}{name}", bytes >> shift);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_bytes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size(" 512 "), Ok(512));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("512b"), Ok(512));
    }

    #[test]
    fn binary_suffixes_any_case() {
        assert_eq!(parse_size("10K"), Ok(10 * 1024));
        assert_eq!(parse_size("10k"), Ok(10 * 1024));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert_eq!(parse_size("1P"), Ok(1 << 50));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("4 MiB"), Ok(4 << 20));
        assert_eq!(parse_size("3KB"), Ok(3072));
    }

    #[test]
    fn bad_units() {
        for bad in ["1X", "1Gi", "1iB", "1GBB", "1.5G", "1 G B", "1KK", "1e3"] {
            let err = parse_size(bad).expect_err(bad);
            assert!(err.contains(&format!("\"{bad}\"")), "{err}");
        }
        assert!(parse_size("1X").unwrap_err().contains("unknown unit \"X\""));
    }

    #[test]
    fn missing_number() {
        assert_eq!(parse_size(""), Err("empty size".into()));
        assert!(parse_size("G").unwrap_err().contains("expected a number"));
        assert!(parse_size("-1G").unwrap_err().contains("expected a number"));
        assert!(parse_size("+1").unwrap_err().contains("expected a number"));
    }

    #[test]
    fn overflow_is_checked() {
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_size("18446744073709551616")
            .unwrap_err()
            .contains("number too large"));
        assert!(parse_size("16384P").unwrap_err().contains("too large"));
        assert_eq!(parse_size("16383P"), Ok(16383 << 50));
        assert!(parse_size("17179869184G")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn format_round_trips() {
        assert_eq!(format_size(1 << 30), "1G");
        assert_eq!(format_size(1536 << 10), "1536K");
        assert_eq!(format_size(4097), "4097");
        assert_eq!(format_size(0), "0");
        for n in [512u64, 1 << 20, 3 << 40, 12345] {
            assert_eq!(parse_size(&format_size(n)), Ok(n));
        }
    }
}
