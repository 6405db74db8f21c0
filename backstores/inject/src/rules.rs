//! Fault rules and their text form (the `inject-*` LUN options).

use std::time::Duration;

/// When an operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A read or write touching any block of `first..=last` (reads and writes only).
    Lbas { first: u64, last: u64 },
    /// The Nth, 2Nth, 3Nth... operation of the kind (counted from 1).
    Every(u64),
    /// Only the Nth operation of the kind.
    Once(u64),
    /// Every operation of the kind.
    Always,
}

/// How an operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Fail with this errno, transferring nothing.
    Errno(i32),
    /// A short transfer: a write stores its first half (whole blocks) then fails with ENOSPC,
    /// a read fills the buffer then fails with EIO (as `store-file` maps short transfers).
    Short,
}

/// The faults of one kind of operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// Any trigger firing fails the operation; empty: never fails.
    pub triggers: Vec<Trigger>,
    /// The failure (default EIO).
    pub kind: FaultKind,
}

impl Default for FaultRule {
    fn default() -> FaultRule {
        FaultRule {
            triggers: Vec::new(),
            kind: FaultKind::Errno(libc::EIO),
        }
    }
}

impl FaultRule {
    /// Whether operation number `n` (from 1) over blocks `[lba, lba + blocks)` fails.
    pub fn fires(&self, n: u64, lba: u64, blocks: u64) -> bool {
        self.triggers.iter().any(|t| match *t {
            Trigger::Lbas { first, last } => {
                blocks > 0 && lba <= last && lba.saturating_add(blocks - 1) >= first
            }
            Trigger::Every(k) => k != 0 && n % k == 0,
            Trigger::Once(k) => n == k,
            Trigger::Always => true,
        })
    }
}

/// Every fault of an [`InjectStore`](crate::InjectStore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectRules {
    pub read: FaultRule,
    /// Also applies to trim and write-zeroes.
    pub write: FaultRule,
    pub flush: FaultRule,
    /// Sleep before every operation.
    pub delay: Duration,
    /// After an injected flush failure, fail every later write and flush with EIO, as the real
    /// stores do after a failed fdatasync/msync (default on).
    pub poison: bool,
}

impl Default for InjectRules {
    fn default() -> InjectRules {
        InjectRules {
            read: FaultRule::default(),
            write: FaultRule::default(),
            flush: FaultRule::default(),
            delay: Duration::ZERO,
            poison: true,
        }
    }
}

/// The option names [`InjectRules::apply_option`] knows, for error messages.
pub const OPTION_NAMES: &[&str] = &[
    "inject-read-error",
    "inject-write-error",
    "inject-flush-error",
    "inject-read-errno",
    "inject-write-errno",
    "inject-flush-errno",
    "inject-delay-ms",
    "inject-poison",
];

/// Longest delay accepted, in milliseconds.
pub const MAX_DELAY_MS: u64 = 60_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
    Flush,
}

impl InjectRules {
    /// True when nothing is injected (no trigger, no delay): the wrapper is not needed.
    pub fn is_empty(&self) -> bool {
        self.read.triggers.is_empty()
            && self.write.triggers.is_empty()
            && self.flush.triggers.is_empty()
            && self.delay.is_zero()
    }

    /// Applies one `inject-*` option; `Ok(false)` when `key` is not one. Error triggers add to
    /// the ones already given, so an option may be repeated.
    pub fn apply_option(&mut self, key: &str, value: Option<&str>) -> Result<bool, String> {
        let Some(name) = key.strip_prefix("inject-") else {
            return Ok(false);
        };
        let need = || value.ok_or_else(|| format!("option \"{key}\" needs a value ({key}=...)"));
        let with_key = |e: String| format!("option \"{key}\": {e}");
        match name {
            "read-error" => add_triggers(&mut self.read, Op::Read, need()?).map_err(with_key)?,
            "write-error" => add_triggers(&mut self.write, Op::Write, need()?).map_err(with_key)?,
            "flush-error" => add_triggers(&mut self.flush, Op::Flush, need()?).map_err(with_key)?,
            "read-errno" => self.read.kind = parse_kind(need()?, Op::Read).map_err(with_key)?,
            "write-errno" => self.write.kind = parse_kind(need()?, Op::Write).map_err(with_key)?,
            "flush-errno" => self.flush.kind = parse_kind(need()?, Op::Flush).map_err(with_key)?,
            "delay-ms" => self.delay = parse_delay(need()?).map_err(with_key)?,
            "poison" => self.poison = value.map_or(Ok(true), parse_switch).map_err(with_key)?,
            _ => {
                return Err(format!(
                    "unknown option \"{key}\" (expected one of {})",
                    OPTION_NAMES.join(", ")
                ))
            }
        }
        Ok(true)
    }
}

fn parse_switch(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("invalid value \"{value}\" (expected on or off)")),
    }
}

fn parse_count(text: &str, what: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) | Err(_) => Err(format!(
            "invalid {what} \"{text}\" (expected a number from 1)"
        )),
        Ok(n) => Ok(n),
    }
}

fn parse_lba(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| format!("invalid LBA \"{text}\""))
}

fn parse_trigger(text: &str, op: Op) -> Result<Trigger, String> {
    let t = text.trim();
    if t == "always" {
        return Ok(Trigger::Always);
    }
    if let Some(n) = t.strip_prefix("every:") {
        return parse_count(n, "count").map(Trigger::Every);
    }
    if let Some(n) = t.strip_prefix("once:") {
        return parse_count(n, "count").map(Trigger::Once);
    }
    if op == Op::Flush {
        // A flush has no LBA: a bare number is the flush that fails.
        return parse_count(t, "flush number")
            .map(Trigger::Once)
            .map_err(|e| format!("{e}; flushes take N, once:N, every:N or always"));
    }
    let (first, last) = match t.split_once('-') {
        Some((a, b)) => (parse_lba(a)?, parse_lba(b)?),
        None => {
            let lba = parse_lba(t).map_err(|e| {
                format!("{e} (expected LBA, FIRST-LAST, once:N, every:N or always)")
            })?;
            (lba, lba)
        }
    };
    if first > last {
        return Err(format!("invalid LBA range \"{t}\" (first above last)"));
    }
    Ok(Trigger::Lbas { first, last })
}

fn add_triggers(rule: &mut FaultRule, op: Op, text: &str) -> Result<(), String> {
    for part in text.split('+') {
        rule.triggers.push(parse_trigger(part, op)?);
    }
    Ok(())
}

fn parse_kind(text: &str, op: Op) -> Result<FaultKind, String> {
    let kind = match text.trim().to_ascii_lowercase().as_str() {
        "eio" => FaultKind::Errno(libc::EIO),
        "enospc" => FaultKind::Errno(libc::ENOSPC),
        "erofs" => FaultKind::Errno(libc::EROFS),
        "short" if op == Op::Flush => return Err("\"short\" is only for reads and writes".into()),
        "short" => FaultKind::Short,
        other => match other.parse::<i32>() {
            Ok(n) if (1..4096).contains(&n) => FaultKind::Errno(n),
            _ => {
                return Err(format!(
                    "invalid errno \"{text}\" (expected eio, enospc, erofs, short or 1-4095)"
                ))
            }
        },
    };
    Ok(kind)
}

fn parse_delay(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(ms) if ms <= MAX_DELAY_MS => Ok(Duration::from_millis(ms)),
        _ => Err(format!(
            "invalid delay \"{text}\" (expected 0 to {MAX_DELAY_MS} milliseconds)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(opts: &[(&str, Option<&str>)]) -> Result<InjectRules, String> {
        let mut r = InjectRules::default();
        for (k, v) in opts {
            assert!(r.apply_option(k, *v)?, "{k} not recognised");
        }
        Ok(r)
    }

    #[test]
    fn full_grammar() {
        let r = rules(&[
            ("inject-read-error", Some("100-107")),
            ("inject-read-error", Some("5+every:9")),
            ("inject-write-error", Some("every:5")),
            ("inject-write-errno", Some("enospc")),
            ("inject-flush-error", Some("1")),
            ("inject-flush-error", Some("every:3+always+once:7")),
            ("inject-delay-ms", Some("2")),
            ("inject-poison", Some("off")),
        ])
        .expect("rules");
        assert_eq!(
            r.read.triggers,
            vec![
                Trigger::Lbas {
                    first: 100,
                    last: 107
                },
                Trigger::Lbas { first: 5, last: 5 },
                Trigger::Every(9)
            ]
        );
        assert_eq!(r.read.kind, FaultKind::Errno(libc::EIO));
        assert_eq!(r.write.triggers, vec![Trigger::Every(5)]);
        assert_eq!(r.write.kind, FaultKind::Errno(libc::ENOSPC));
        assert_eq!(
            r.flush.triggers,
            vec![
                Trigger::Once(1),
                Trigger::Every(3),
                Trigger::Always,
                Trigger::Once(7)
            ]
        );
        assert_eq!(r.delay, Duration::from_millis(2));
        assert!(!r.poison);
        assert!(!r.is_empty());
        assert!(InjectRules::default().is_empty());
        assert!(InjectRules::default().poison);
    }

    #[test]
    fn kinds() {
        let r = rules(&[
            ("inject-read-errno", Some("short")),
            ("inject-write-errno", Some("SHORT")),
            ("inject-flush-errno", Some("28")),
        ])
        .expect("rules");
        assert_eq!(r.read.kind, FaultKind::Short);
        assert_eq!(r.write.kind, FaultKind::Short);
        assert_eq!(r.flush.kind, FaultKind::Errno(28));
        assert!(rules(&[("inject-poison", None)]).expect("bare").poison);
    }

    #[test]
    fn errors_name_the_option() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("inject-read-error", Some("7-3"), "first above last"),
            ("inject-read-error", Some("x"), "invalid LBA \"x\""),
            ("inject-read-error", Some("every:0"), "invalid count \"0\""),
            ("inject-write-error", None, "needs a value"),
            ("inject-flush-error", Some("2-3"), "flushes take N"),
            (
                "inject-flush-errno",
                Some("short"),
                "only for reads and writes",
            ),
            (
                "inject-write-errno",
                Some("eagain"),
                "invalid errno \"eagain\"",
            ),
            ("inject-write-errno", Some("0"), "invalid errno"),
            ("inject-delay-ms", Some("60001"), "0 to 60000"),
            ("inject-delay-ms", Some("-1"), "invalid delay"),
            ("inject-poison", Some("maybe"), "expected on or off"),
            ("inject-bogus", Some("1"), "unknown option \"inject-bogus\""),
        ];
        for (k, v, needle) in cases {
            let e = rules(&[(k, *v)]).expect_err(k);
            assert!(e.contains(needle), "{k}={v:?}: {e}");
            if !needle.starts_with("unknown") {
                assert!(e.starts_with(&format!("option \"{k}\"")), "{e}");
            }
        }
        let mut r = InjectRules::default();
        assert_eq!(r.apply_option("size", Some("1")), Ok(false));
    }

    #[test]
    fn triggers_fire() {
        let rule = FaultRule {
            triggers: vec![
                Trigger::Lbas {
                    first: 100,
                    last: 107,
                },
                Trigger::Every(4),
                Trigger::Once(3),
            ],
            kind: FaultKind::Errno(libc::EIO),
        };
        assert!(rule.fires(1, 100, 1));
        assert!(rule.fires(1, 95, 6), "overlaps the first block");
        assert!(rule.fires(1, 107, 10), "overlaps the last block");
        assert!(!rule.fires(1, 95, 5), "ends just before");
        assert!(!rule.fires(1, 108, 1), "starts just after");
        assert!(!rule.fires(1, 100, 0), "empty request");
        assert!(rule.fires(3, 0, 1));
        assert!(rule.fires(4, 0, 1) && rule.fires(8, 0, 1));
        assert!(!rule.fires(5, 0, 1) && !rule.fires(7, 0, 1));
        assert!(!rule.fires(2, u64::MAX, 2), "no overflow near the end");
    }
}
