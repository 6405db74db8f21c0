//! `key=value` text (RFC 7143 6.1): the data segment of Login and Text PDUs.

/// Longest key name (RFC 7143 6.1: 63 bytes).
pub const MAX_KEY_LEN: usize = 63;
/// Longest value string accepted here (the 8192-byte limit of large binary values);
/// per-key limits such as 255 bytes are enforced by the protocol layer.
pub const MAX_VALUE_LEN: usize = 8192;

/// Why a text data segment could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextError {
    /// A pair without `=`.
    MissingEquals,
    /// A key that is empty, too long, does not begin with a capital letter or has characters
    /// outside `a-z A-Z 0-9 . - + @ _`.
    BadKey(String),
    /// A value longer than [`MAX_VALUE_LEN`] (the key is given).
    ValueTooLong(String),
    /// Text that is not valid UTF-8.
    NotUtf8,
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextError::MissingEquals => write!(f, "key=value pair without '='"),
            TextError::BadKey(k) => write!(f, "invalid key name {k:?}"),
            TextError::ValueTooLong(k) => write!(f, "value of key {k:?} is too long"),
            TextError::NotUtf8 => write!(f, "text is not valid UTF-8"),
        }
    }
}

impl std::error::Error for TextError {}

/// Parse `key=value\0key=value\0...`. Empty strings between NULs are skipped, and a final
/// pair without its NUL is accepted (joining C-bit continuations is the caller's job).
/// Keys are checked against RFC 7143 6.1; the value is everything after the first `=`.
pub fn parse_text(data: &[u8]) -> Result<Vec<(String, String)>, TextError> {
    data.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(parse_pair)
        .collect()
}

fn parse_pair(pair: &[u8]) -> Result<(String, String), TextError> {
    let eq = pair
        .iter()
        .position(|&b| b == b'=')
        .ok_or(TextError::MissingEquals)?;
    let (key, value) = (&pair[..eq], &pair[eq + 1..]);
    let key = std::str::from_utf8(key).map_err(|_| TextError::NotUtf8)?;
    if !valid_key(key) {
        return Err(TextError::BadKey(key.to_string()));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(TextError::ValueTooLong(key.to_string()));
    }
    let value = std::str::from_utf8(value).map_err(|_| TextError::NotUtf8)?;
    Ok((key.to_string(), value.to_string()))
}

/// RFC 7143 6.1 key-name: 1..=63 of `a-z A-Z 0-9 . - + @ _`, beginning with a capital
/// letter; an `X#` prefix (IANA-registered extension keys) is also allowed.
fn valid_key(key: &str) -> bool {
    let body = key.strip_prefix("X#").unwrap_or(key);
    key.as_bytes().first().is_some_and(u8::is_ascii_uppercase)
        && key.len() <= MAX_KEY_LEN
        && !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'@' | b'_'))
}

/// Encode pairs as `key=value\0...` (no padding).
pub fn encode_text(pairs: &[(String, String)]) -> Vec<u8> {
    let len = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(len);
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn login_text() {
        let data =
            b"InitiatorName=iqn.1994-05.com.redhat:abc\0SessionType=Normal\0AuthMethod=CHAP,None\0";
        let got = parse_text(data).expect("valid");
        assert_eq!(
            got,
            pairs(&[
                ("InitiatorName", "iqn.1994-05.com.redhat:abc"),
                ("SessionType", "Normal"),
                ("AuthMethod", "CHAP,None"),
            ])
        );
        assert_eq!(encode_text(&got), data.to_vec());
    }

    #[test]
    fn empty_values_and_equals_in_values() {
        let got = parse_text(b"TargetAlias=\0X-com.example.k=a=b\0").expect("valid");
        assert_eq!(
            got,
            pairs(&[("TargetAlias", ""), ("X-com.example.k", "a=b")])
        );
    }

    #[test]
    fn empty_input_extra_nuls_and_missing_final_nul() {
        assert_eq!(parse_text(b"").expect("empty"), vec![]);
        assert_eq!(parse_text(b"\0\0").expect("nuls"), vec![]);
        let got = parse_text(b"A=1\0\0B=2").expect("lenient");
        assert_eq!(got, pairs(&[("A", "1"), ("B", "2")]));
    }

    #[test]
    fn missing_equals() {
        assert_eq!(parse_text(b"SendTargets\0"), Err(TextError::MissingEquals));
    }

    #[test]
    fn bad_keys() {
        assert_eq!(parse_text(b"=x\0"), Err(TextError::BadKey(String::new())));
        assert_eq!(
            parse_text(b"Bad Key=x\0"),
            Err(TextError::BadKey("Bad Key".into()))
        );
        assert_eq!(
            parse_text(b"K:ey=x\0"),
            Err(TextError::BadKey("K:ey".into()))
        );
        assert_eq!(parse_text(b"X#=x\0"), Err(TextError::BadKey("X#".into())));
        assert_eq!(
            parse_text(b"sENDtARGETS=aLL\0"),
            Err(TextError::BadKey("sENDtARGETS".into()))
        );
        assert_eq!(
            parse_text(b"1Key=x\0"),
            Err(TextError::BadKey("1Key".into()))
        );
        let long = format!("{}=1\0", "K".repeat(64));
        assert_eq!(
            parse_text(long.as_bytes()),
            Err(TextError::BadKey("K".repeat(64)))
        );
    }

    #[test]
    fn good_key_edge_cases() {
        let max = format!("{}=1\0", "K".repeat(63));
        assert!(parse_text(max.as_bytes()).is_ok());
        let got = parse_text(b"X#org.iana.k+v@x_y-z=1\0").expect("extension key");
        assert_eq!(got[0].0, "X#org.iana.k+v@x_y-z");
    }

    #[test]
    fn value_lengths() {
        let ok = format!("CHAP_C=0x{}\0", "a".repeat(MAX_VALUE_LEN - 2));
        assert!(parse_text(ok.as_bytes()).is_ok());
        let long = format!("CHAP_C=0x{}\0", "a".repeat(MAX_VALUE_LEN - 1));
        assert_eq!(
            parse_text(long.as_bytes()),
            Err(TextError::ValueTooLong("CHAP_C".into()))
        );
    }

    #[test]
    fn utf8() {
        assert_eq!(
            parse_text("TargetAlias=disque é\0".as_bytes()).expect("utf8")[0].1,
            "disque é"
        );
        assert_eq!(parse_text(b"TargetAlias=\xff\0"), Err(TextError::NotUtf8));
        assert_eq!(parse_text(b"K\xc3=1\0"), Err(TextError::NotUtf8));
    }

    #[test]
    fn encode_empty() {
        assert!(encode_text(&[]).is_empty());
        assert_eq!(encode_text(&pairs(&[("A", "")])), b"A=\0".to_vec());
        assert!(TextError::MissingEquals.to_string().contains('='));
    }
}
