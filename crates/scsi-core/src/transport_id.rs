//! iSCSI TransportIDs (SPC-4 7.6.4.6): how PERSISTENT RESERVE names an initiator port.
//!
//! The initiator port name is `NAME,i,0xISID` (lowercase), the form the transport gives to
//! [`crate::LunTable::name_nexus`]. Format 00b carries the iSCSI name only (every port of that
//! initiator), format 01b the whole port name.

use crate::cdb::be16;
use crate::sense::Sense;

/// PROTOCOL IDENTIFIER of iSCSI.
const PROTOCOL_ISCSI: u8 = 0x5;
/// The separator between the iSCSI name and the ISID of an initiator port name.
const SEPARATOR: &str = ",i,0x";

/// A decoded TransportID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TransportId {
    /// Format 00b: every initiator port of this iSCSI name.
    Name(String),
    /// Format 01b: one initiator port, `name,i,0xisid`.
    Port(String),
}

impl TransportId {
    /// Whether initiator port name `port` is one this TransportID designates.
    pub(crate) fn matches(&self, port: &str) -> bool {
        match self {
            TransportId::Port(p) => p == port,
            TransportId::Name(n) => port_name(port) == n,
        }
    }
}

/// The iSCSI name part of an initiator port name.
pub(crate) fn port_name(port: &str) -> &str {
    port.split(SEPARATOR).next().unwrap_or(port)
}

/// Normalizes an initiator port name as the transport gives it (`name,i,0xisid`).
pub(crate) fn normalize(port: &str) -> String {
    port.trim().to_ascii_lowercase()
}

/// Decodes the TransportID in `d` (its whole length); `at` is its offset in the parameter
/// list, for the field pointer of INVALID FIELD IN PARAMETER LIST.
pub(crate) fn decode(d: &[u8], at: usize) -> Result<TransportId, Sense> {
    let invalid = |i: usize| Sense::invalid_param((at + i) as u16, None);
    if d.len() < 24 {
        return Err(invalid(0));
    }
    let format = d[0] >> 6;
    if d[0] & 0x0F != PROTOCOL_ISCSI || format > 1 {
        return Err(invalid(0));
    }
    let len = usize::from(be16(d, 2));
    let field = d.get(4..4 + len).ok_or_else(|| invalid(2))?;
    let end = field
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| invalid(4))?;
    let text = std::str::from_utf8(&field[..end]).map_err(|_| invalid(4))?;
    let text = normalize(text);
    if text.is_empty() || text.chars().any(char::is_whitespace) {
        return Err(invalid(4));
    }
    let has_isid = text.contains(SEPARATOR);
    match format {
        0 if !has_isid => Ok(TransportId::Name(text)),
        1 if has_isid && !text.ends_with(SEPARATOR) => Ok(TransportId::Port(text)),
        _ => Err(invalid(4)),
    }
}

/// Encodes initiator port name `port` as a format 01b iSCSI TransportID.
pub(crate) fn encode(port: &str) -> Vec<u8> {
    let mut name = port.as_bytes().to_vec();
    name.push(0);
    name.resize(name.len().max(20).div_ceil(4) * 4, 0);
    let mut d = vec![0x40 | PROTOCOL_ISCSI, 0];
    d.extend_from_slice(&(name.len() as u16).to_be_bytes());
    d.extend(name);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tid(format: u8, text: &str) -> Vec<u8> {
        let mut name = text.as_bytes().to_vec();
        name.push(0);
        name.resize(name.len().max(20).div_ceil(4) * 4, 0);
        let mut d = vec![(format << 6) | 5, 0];
        d.extend_from_slice(&(name.len() as u16).to_be_bytes());
        d.extend(name);
        d
    }

    #[test]
    fn encode_bytes() {
        let d = encode("iqn.a,i,0x23d000000001");
        assert_eq!(&d[..4], &[0x45, 0, 0, 24]);
        assert_eq!(&d[4..26], b"iqn.a,i,0x23d000000001");
        assert_eq!(&d[26..], &[0, 0]);
        assert_eq!(
            decode(&d, 0),
            Ok(TransportId::Port("iqn.a,i,0x23d000000001".into()))
        );
        assert_eq!(encode("x").len(), 24);
    }

    #[test]
    fn decode_forms_and_errors() {
        let name = decode(&tid(0, "IQN.2000-01.com.Example:host"), 24).unwrap();
        assert_eq!(
            name,
            TransportId::Name("iqn.2000-01.com.example:host".into())
        );
        assert!(name.matches("iqn.2000-01.com.example:host,i,0x1"));
        assert!(!name.matches("iqn.2000-01.com.example:other,i,0x1"));
        let port = decode(&tid(1, "iqn.h,i,0xABC"), 0).unwrap();
        assert!(port.matches("iqn.h,i,0xabc") && !port.matches("iqn.h,i,0xabd"));
        assert_eq!(port_name("iqn.h,i,0xabc"), "iqn.h");
        let bad = Sense::invalid_param(24, None);
        assert_eq!(
            decode(&tid(1, "iqn.h"), 20),
            Err(Sense::invalid_param(24, None))
        );
        assert_eq!(decode(&tid(0, "iqn.h,i,0x1"), 20), Err(bad));
        let mut fc = tid(0, "iqn.h");
        fc[0] = 0x00;
        assert_eq!(decode(&fc, 0), Err(Sense::invalid_param(0, None)));
        let mut long = tid(0, "iqn.h");
        long[3] = 200;
        assert_eq!(decode(&long, 0), Err(Sense::invalid_param(2, None)));
        let unterminated = {
            let mut d = vec![5, 0, 0, 20];
            d.extend([b'a'; 20]);
            d
        };
        assert_eq!(decode(&unterminated, 0), Err(Sense::invalid_param(4, None)));
        assert_eq!(
            decode(&[5, 0, 0, 4, 0, 0, 0, 0], 0),
            Err(Sense::invalid_param(0, None))
        );
    }
}
