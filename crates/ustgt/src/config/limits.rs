//! The `[limits]` table of the configuration file (README.md "Limits"): the same limits as the
//! `--max-sessions`... flags, which override it.
//!
//! ```toml
//! [limits]
//! max-sessions = 4096            # sessions (normal and discovery) at a time
//! max-logins-per-portal = 256    # connections in login at a time, per portal
//! max-logins-per-host = 64       # ... per source address
//! login-timeout-ms = 15000       # the whole login
//! data-out-timeout-ms = 30000    # a write whose data stops coming (0: never)
//! nop-interval-ms = 30000        # NOP-In ping after this much silence (0: never)
//! nop-timeout-ms = 15000         # ... and close when it is not answered in this time
//! write-budget = "16M"           # write data one connection collects at a time
//! ```

use serde::Deserialize;
use toml::Spanned;

use super::{size_value, Locator, RawSize};

/// Limits given in the configuration file or on the command line; `None` keeps the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimitSettings {
    pub max_sessions: Option<u64>,
    pub max_logins_per_portal: Option<u64>,
    pub max_logins_per_host: Option<u64>,
    pub login_timeout_ms: Option<u64>,
    pub data_out_timeout_ms: Option<u64>,
    pub nop_interval_ms: Option<u64>,
    pub nop_timeout_ms: Option<u64>,
    pub write_budget: Option<u64>,
}

impl LimitSettings {
    /// Each value of `over` that is set replaces the one here.
    pub fn overridden_by(self, over: LimitSettings) -> LimitSettings {
        LimitSettings {
            max_sessions: over.max_sessions.or(self.max_sessions),
            max_logins_per_portal: over.max_logins_per_portal.or(self.max_logins_per_portal),
            max_logins_per_host: over.max_logins_per_host.or(self.max_logins_per_host),
            login_timeout_ms: over.login_timeout_ms.or(self.login_timeout_ms),
            data_out_timeout_ms: over.data_out_timeout_ms.or(self.data_out_timeout_ms),
            nop_interval_ms: over.nop_interval_ms.or(self.nop_interval_ms),
            nop_timeout_ms: over.nop_timeout_ms.or(self.nop_timeout_ms),
            write_budget: over.write_budget.or(self.write_budget),
        }
    }
}

/// The longest timer: one hour.
const MAX_MS: u64 = 3_600_000;
/// The shortest timer: 100 ms.
const MIN_MS: u64 = 100;

/// Checks `value` for the limit `key` (its config key, which is also its flag without the
/// dashes); the error says what range is allowed.
pub fn check(key: &str, value: u64) -> Result<u64, String> {
    let (min, max, zero_ok) = match key {
        "max-sessions" => (1, 65_535, false),
        "max-logins-per-portal" | "max-logins-per-host" => (1, 1_000_000, false),
        "login-timeout-ms" | "nop-timeout-ms" => (MIN_MS, MAX_MS, false),
        "data-out-timeout-ms" | "nop-interval-ms" => (MIN_MS, MAX_MS, true),
        "write-budget" => (64 << 10, u64::from(u32::MAX), false),
        _ => return Err(format!("unknown limit {key}")),
    };
    if (zero_ok && value == 0) || (min..=max).contains(&value) {
        return Ok(value);
    }
    let zero = if zero_ok { "0 (off) or " } else { "" };
    Err(format!("{key} = {value}: must be {zero}{min} to {max}"))
}

/// The `[limits]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawLimits {
    max_sessions: Option<Spanned<i64>>,
    max_logins_per_portal: Option<Spanned<i64>>,
    max_logins_per_host: Option<Spanned<i64>>,
    login_timeout_ms: Option<Spanned<i64>>,
    data_out_timeout_ms: Option<Spanned<i64>>,
    nop_interval_ms: Option<Spanned<i64>>,
    nop_timeout_ms: Option<Spanned<i64>>,
    write_budget: Option<Spanned<RawSize>>,
}

/// One integer key: checked, with the line in the error.
fn number(raw: &Option<Spanned<i64>>, key: &str, loc: &Locator) -> Result<Option<u64>, String> {
    let Some(v) = raw else {
        return Ok(None);
    };
    let n = u64::try_from(*v.get_ref())
        .map_err(|_| loc.at(v, format!("{key} = {}: must not be negative", v.get_ref())))?;
    check(key, n).map(Some).map_err(|e| loc.at(v, e))
}

/// The settings of a `[limits]` table (all default without one).
pub(super) fn build(raw: Option<&RawLimits>, loc: &Locator) -> Result<LimitSettings, String> {
    let Some(raw) = raw else {
        return Ok(LimitSettings::default());
    };
    let write_budget = match &raw.write_budget {
        Some(v) => {
            let n = size_value(v.get_ref()).map_err(|e| loc.at(v, format!("write-budget: {e}")))?;
            Some(check("write-budget", n).map_err(|e| loc.at(v, e))?)
        }
        None => None,
    };
    Ok(LimitSettings {
        max_sessions: number(&raw.max_sessions, "max-sessions", loc)?,
        max_logins_per_portal: number(&raw.max_logins_per_portal, "max-logins-per-portal", loc)?,
        max_logins_per_host: number(&raw.max_logins_per_host, "max-logins-per-host", loc)?,
        login_timeout_ms: number(&raw.login_timeout_ms, "login-timeout-ms", loc)?,
        data_out_timeout_ms: number(&raw.data_out_timeout_ms, "data-out-timeout-ms", loc)?,
        nop_interval_ms: number(&raw.nop_interval_ms, "nop-interval-ms", loc)?,
        nop_timeout_ms: number(&raw.nop_timeout_ms, "nop-timeout-ms", loc)?,
        write_budget,
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    const TARGET: &str = "[[target]]\niqn = \"iqn.2026-11.io.ustgt:a\"\n";

    fn limits(table: &str) -> Result<LimitSettings, String> {
        parse(&format!("{table}\n{TARGET}"), "c.toml").map(|c| c.limits)
    }

    #[test]
    fn every_key() {
        let l = limits(
            "[limits]\nmax-sessions = 10\nmax-logins-per-portal = 20\n\
             max-logins-per-host = 3\nlogin-timeout-ms = 500\ndata-out-timeout-ms = 0\n\
             nop-interval-ms = 1000\nnop-timeout-ms = 700\nwrite-budget = \"1M\"\n",
        )
        .expect("parses");
        assert_eq!(
            l,
            LimitSettings {
                max_sessions: Some(10),
                max_logins_per_portal: Some(20),
                max_logins_per_host: Some(3),
                login_timeout_ms: Some(500),
                data_out_timeout_ms: Some(0),
                nop_interval_ms: Some(1000),
                nop_timeout_ms: Some(700),
                write_budget: Some(1 << 20),
            }
        );
        assert_eq!(limits("").expect("no table"), LimitSettings::default());
    }

    #[test]
    fn errors_name_the_line_and_the_range() {
        let e = limits("[limits]\n\nmax-sessions = 0\n").unwrap_err();
        assert!(
            e.starts_with("c.toml:3: ") && e.contains("1 to 65535"),
            "{e}"
        );
        let e = limits("[limits]\nlogin-timeout-ms = 0\n").unwrap_err();
        assert!(e.starts_with("c.toml:2: ") && e.contains("100 to"), "{e}");
        let e = limits("[limits]\nnop-interval-ms = -5\n").unwrap_err();
        assert!(e.contains("negative"), "{e}");
        let e = limits("[limits]\nwrite-budget = \"1K\"\n").unwrap_err();
        assert!(
            e.starts_with("c.toml:2: ") && e.contains("write-budget"),
            "{e}"
        );
        let e = limits("[limits]\nwrite-budget = \"lots\"\n").unwrap_err();
        assert!(e.contains("write-budget"), "{e}");
        let e = limits("[limits]\nmax-connections = 5\n").unwrap_err();
        assert!(
            e.starts_with("c.toml:2: ") && e.contains("max-connections"),
            "{e}"
        );
    }

    #[test]
    fn zero_means_off_only_where_allowed() {
        assert_eq!(check("data-out-timeout-ms", 0), Ok(0));
        assert_eq!(check("nop-interval-ms", 0), Ok(0));
        assert!(check("nop-timeout-ms", 0).is_err());
        assert!(check("max-logins-per-host", 0).is_err());
    }

    #[test]
    fn flags_override_the_file() {
        let file = LimitSettings {
            max_sessions: Some(5),
            nop_interval_ms: Some(1000),
            ..LimitSettings::default()
        };
        let flags = LimitSettings {
            max_sessions: Some(7),
            ..LimitSettings::default()
        };
        let l = file.overridden_by(flags);
        assert_eq!(l.max_sessions, Some(7));
        assert_eq!(l.nop_interval_ms, Some(1000));
    }
}
