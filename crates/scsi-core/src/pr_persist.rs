//! Persistence of persistent reservations across power loss (APTPL, SPC-4 5.14.5).
//!
//! The device model does no I/O itself: the binary hands it a [`PrStore`] that keeps one small
//! blob per logical unit (ustgt writes a file atomically). The blob is text:
//!
//! ```text
//! ustgt-pr 1
//! generation 7
//! aptpl 1
//! reg 0x00000000000000ab iqn.1994-05.com.example:host,i,0x23d000000001
//! reservation 0 1          # index of the holder's reg line (or "all") and the type
//! ```
//!
//! Only registrations of initiator ports with a known name are kept (a registration is
//! matched to an I_T nexus again by that name when the initiator logs in).

use std::fmt;
use std::io;
use std::sync::Arc;

/// Keeps the persistent reservation state of one logical unit.
pub trait PrStore: Send + Sync {
    /// The saved blob, if any.
    fn load(&self) -> io::Result<Option<Vec<u8>>>;
    /// Replaces the saved blob; returns once it is durable.
    fn save(&self, data: &[u8]) -> io::Result<()>;
    /// Where the state is kept, for messages.
    fn describe(&self) -> String;
}

/// A [`PrStore`] in a [`crate::DeviceConfig`]: compared by identity.
#[derive(Clone)]
pub struct PrPersistence(pub Arc<dyn PrStore>);

impl fmt::Debug for PrPersistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrPersistence({})", self.0.describe())
    }
}

impl PartialEq for PrPersistence {
    fn eq(&self, other: &PrPersistence) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PrPersistence {}

/// The saved form of the persistent reservation state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrSnapshot {
    /// PRGENERATION.
    pub generation: u32,
    /// Persist through power loss is activated.
    pub aptpl: bool,
    /// (reservation key, initiator port name) of each registration.
    pub regs: Vec<(u64, String)>,
    /// The reservation: the holder's index in `regs` (None: all registrants) and its type.
    pub reservation: Option<(Option<usize>, u8)>,
}

const MAGIC: &str = "ustgt-pr 1";

impl PrSnapshot {
    /// The text form.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!(
            "{MAGIC}\ngeneration {}\naptpl {}\n",
            self.generation,
            u8::from(self.aptpl)
        );
        for (key, port) in &self.regs {
            s.push_str(&format!("reg 0x{key:016x} {port}\n"));
        }
        if let Some((holder, kind)) = self.reservation {
            let who = holder.map_or_else(|| "all".to_string(), |i| i.to_string());
            s.push_str(&format!("reservation {who} {kind}\n"));
        }
        s.into_bytes()
    }

    /// Parses the text form; the error names the line.
    pub fn decode(data: &[u8]) -> Result<PrSnapshot, String> {
        let text = std::str::from_utf8(data).map_err(|_| "not UTF-8 text".to_string())?;
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, l)) if l.trim() == MAGIC => {}
            _ => return Err(format!("line 1: expected \"{MAGIC}\"")),
        }
        let mut snap = PrSnapshot::default();
        for (i, line) in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            snap.decode_line(&words)
                .map_err(|e| format!("line {}: {e}", i + 1))?;
        }
        if let Some((Some(i), _)) = snap.reservation {
            if i >= snap.regs.len() {
                return Err(format!("reservation holder {i} is not a registration"));
            }
        }
        Ok(snap)
    }

    fn decode_line(&mut self, words: &[&str]) -> Result<(), String> {
        match words {
            [] => {}
            ["generation", n] => self.generation = n.parse().map_err(|_| bad("generation", n))?,
            ["aptpl", v] => {
                self.aptpl = match *v {
                    "0" => false,
                    "1" => true,
                    _ => return Err(bad("aptpl", v)),
                }
            }
            ["reg", key, port] => {
                let hex = key.strip_prefix("0x").ok_or_else(|| bad("key", key))?;
                let key = u64::from_str_radix(hex, 16).map_err(|_| bad("key", key))?;
                self.regs.push((key, port.to_string()));
            }
            ["reservation", who, kind] => {
                let holder = match *who {
                    "all" => None,
                    n => Some(n.parse().map_err(|_| bad("holder", n))?),
                };
                let kind: u8 = kind.parse().map_err(|_| bad("type", kind))?;
                if !crate::persistent::valid_type(kind) {
                    return Err(bad("type", &kind.to_string()));
                }
                self.reservation = Some((holder, kind));
            }
            _ => return Err(format!("unexpected \"{}\"", words.join(" "))),
        }
        Ok(())
    }
}

fn bad(what: &str, value: &str) -> String {
    format!("invalid {what} \"{value}\"")
}

/// Checks a saved state blob (for configuration checks before the LUN is built).
pub fn check_pr_state(data: &[u8]) -> Result<(), String> {
    PrSnapshot::decode(data).map(|_| ())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A [`PrStore`] in memory that can be made to fail.
    #[derive(Default)]
    pub struct MemPrStore {
        pub data: Mutex<Option<Vec<u8>>>,
        pub fail: Mutex<bool>,
        pub saves: Mutex<usize>,
    }

    impl PrStore for MemPrStore {
        fn load(&self) -> io::Result<Option<Vec<u8>>> {
            Ok(self.data.lock().unwrap().clone())
        }
        fn save(&self, data: &[u8]) -> io::Result<()> {
            if *self.fail.lock().unwrap() {
                return Err(io::Error::from_raw_os_error(28));
            }
            *self.saves.lock().unwrap() += 1;
            *self.data.lock().unwrap() = Some(data.to_vec());
            Ok(())
        }
        fn describe(&self) -> String {
            "memory".into()
        }
    }

    #[test]
    fn round_trip() {
        let s = PrSnapshot {
            generation: 9,
            aptpl: true,
            regs: vec![(0xAB, "iqn.a,i,0x1".into()), (7, "iqn.b,i,0x2".into())],
            reservation: Some((Some(1), 3)),
        };
        let text = s.encode();
        assert_eq!(
            String::from_utf8(text.clone()).unwrap(),
            "ustgt-pr 1\ngeneration 9\naptpl 1\nreg 0x00000000000000ab iqn.a,i,0x1\n\
             reg 0x0000000000000007 iqn.b,i,0x2\nreservation 1 3\n"
        );
        assert_eq!(PrSnapshot::decode(&text), Ok(s));
        let all = PrSnapshot {
            reservation: Some((None, 7)),
            ..PrSnapshot::default()
        };
        assert_eq!(PrSnapshot::decode(&all.encode()), Ok(all));
    }

    #[test]
    fn decode_errors_name_the_line() {
        let err = |t: &str| PrSnapshot::decode(t.as_bytes()).unwrap_err();
        assert_eq!(err("nope"), "line 1: expected \"ustgt-pr 1\"");
        assert_eq!(err("ustgt-pr 1\naptpl 2"), "line 2: invalid aptpl \"2\"");
        assert_eq!(err("ustgt-pr 1\nreg 12 x"), "line 2: invalid key \"12\"");
        assert_eq!(
            err("ustgt-pr 1\nreservation 0 1"),
            "reservation holder 0 is not a registration"
        );
        assert_eq!(
            err("ustgt-pr 1\nreservation all 2"),
            "line 2: invalid type \"2\""
        );
        assert!(err("ustgt-pr 1\nfoo").contains("unexpected \"foo\""));
        assert!(check_pr_state(&[0xFF]).is_err());
        assert!(check_pr_state(b"ustgt-pr 1\n").is_ok());
    }
}
