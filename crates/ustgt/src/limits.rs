//! The limit flags of `ustgt serve` (README.md "Limits") and the limits the server runs with:
//! the defaults, overridden by a configuration file's `[limits]` table, overridden by the flags.

use ustgt_target::{ConnLimits, Limits};

use crate::config::limits::{check as check_limit, LimitSettings};
use crate::size::parse_size;

/// The server pings idle connections (the protocol engine's own default is never).
pub const DEFAULT_NOP_INTERVAL_MS: u64 = 30_000;

/// Limits on connections, sessions, timers and buffers; each overrides the configuration
/// file's `[limits]` key of the same name.
#[derive(clap::Args, Debug, Default)]
pub struct LimitArgs {
    /// Most sessions (normal and discovery) at a time; a login beyond is refused with login
    /// status 0x0302, out of resources [default: 4096].
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<u64>,
    /// Most connections in login at a time on one portal; more are closed at accept
    /// [default: 256].
    #[arg(long, value_name = "N")]
    pub max_logins_per_portal: Option<u64>,
    /// Most connections in login at a time from one source address; more are closed at
    /// accept [default: 64].
    #[arg(long, value_name = "N")]
    pub max_logins_per_host: Option<u64>,
    /// A connection that has not completed its login in this time is closed [default: 15000].
    #[arg(long, value_name = "MS")]
    pub login_timeout_ms: Option<u64>,
    /// A write whose Data-Out stops coming for this long ends with CHECK CONDITION, ABORTED
    /// COMMAND / INITIATOR RESPONSE TIMEOUT; 0: never [default: 30000].
    #[arg(long, value_name = "MS")]
    pub data_out_timeout_ms: Option<u64>,
    /// Ping a connection with NOP-In after this much silence; 0: never [default: 30000].
    #[arg(long, value_name = "MS")]
    pub nop_interval_ms: Option<u64>,
    /// Close a connection whose peer does not answer a NOP-In ping in this time
    /// [default: 15000].
    #[arg(long, value_name = "MS")]
    pub nop_timeout_ms: Option<u64>,
    /// Write data one connection collects at a time (R2Ts solicit within it; also the
    /// MAXIMUM TRANSFER LENGTH every LUN reports), e.g. 16M [default: 16M].
    #[arg(long, value_name = "SIZE")]
    pub write_budget: Option<String>,
}

impl LimitArgs {
    /// The flags given, checked.
    fn settings(&self) -> Result<LimitSettings, String> {
        let flag = |key: &str, v: Option<u64>| -> Result<Option<u64>, String> {
            v.map(|n| check_limit(key, n).map_err(|e| format!("--{e}")))
                .transpose()
        };
        let budget = match &self.write_budget {
            Some(text) => {
                let n = parse_size(text).map_err(|e| format!("--write-budget: {e}"))?;
                Some(n)
            }
            None => None,
        };
        Ok(LimitSettings {
            max_sessions: flag("max-sessions", self.max_sessions)?,
            max_logins_per_portal: flag("max-logins-per-portal", self.max_logins_per_portal)?,
            max_logins_per_host: flag("max-logins-per-host", self.max_logins_per_host)?,
            login_timeout_ms: flag("login-timeout-ms", self.login_timeout_ms)?,
            data_out_timeout_ms: flag("data-out-timeout-ms", self.data_out_timeout_ms)?,
            nop_interval_ms: flag("nop-interval-ms", self.nop_interval_ms)?,
            nop_timeout_ms: flag("nop-timeout-ms", self.nop_timeout_ms)?,
            write_budget: flag("write-budget", budget)?,
        })
    }
}

/// The limits a server runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// Timers and the write budget, per connection.
    pub proto: Limits,
    /// Sessions and connections in login.
    pub conns: ConnLimits,
}

impl Effective {
    /// The largest transfer a LUN may announce: the write budget (a longer write could never
    /// be collected).
    pub fn max_transfer_bytes(&self) -> u32 {
        u32::try_from(self.proto.write_budget).unwrap_or(u32::MAX)
    }

    /// One line for the log.
    pub fn describe(&self) -> String {
        let p = &self.proto;
        let c = &self.conns;
        format!(
            "{} sessions, {} logins per portal, {} per host; login timeout {} ms, Data-Out \
             timeout {} ms, NOP-In after {} ms idle (answer within {} ms); write budget {} \
             bytes per connection",
            c.max_sessions,
            c.max_logins_per_portal,
            c.max_logins_per_host,
            p.login_timeout_ms,
            p.data_out_timeout_ms,
            p.nop_interval_ms,
            p.nop_timeout_ms,
            p.write_budget
        )
    }
}

fn count(v: Option<u64>, default: usize) -> usize {
    v.map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// The defaults, overridden by the file's settings, overridden by the flags.
pub fn effective(file: LimitSettings, args: &LimitArgs) -> Result<Effective, String> {
    let s = file.overridden_by(args.settings()?);
    let d = Limits::default();
    let c = ConnLimits::default();
    Ok(Effective {
        proto: Limits {
            login_timeout_ms: s.login_timeout_ms.unwrap_or(d.login_timeout_ms),
            data_out_timeout_ms: s.data_out_timeout_ms.unwrap_or(d.data_out_timeout_ms),
            nop_interval_ms: s.nop_interval_ms.unwrap_or(DEFAULT_NOP_INTERVAL_MS),
            nop_timeout_ms: s.nop_timeout_ms.unwrap_or(d.nop_timeout_ms),
            write_budget: s.write_budget.unwrap_or(d.write_budget),
            ..d
        },
        conns: ConnLimits {
            max_sessions: count(s.max_sessions, c.max_sessions),
            max_logins_per_portal: count(s.max_logins_per_portal, c.max_logins_per_portal),
            max_logins_per_host: count(s.max_logins_per_host, c.max_logins_per_host),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let e = effective(LimitSettings::default(), &LimitArgs::default()).expect("defaults");
        assert_eq!(e.conns, ConnLimits::default());
        assert_eq!(e.proto.nop_interval_ms, DEFAULT_NOP_INTERVAL_MS);
        assert_eq!(e.proto.login_timeout_ms, 15_000);
        assert_eq!(e.proto.data_out_timeout_ms, 30_000);
        assert_eq!(e.max_transfer_bytes(), 16 << 20);
        assert!(e.describe().contains("4096 sessions"), "{}", e.describe());
    }

    #[test]
    fn flags_override_the_file() {
        let file = LimitSettings {
            max_sessions: Some(10),
            nop_interval_ms: Some(0),
            write_budget: Some(1 << 20),
            ..LimitSettings::default()
        };
        let args = LimitArgs {
            max_sessions: Some(20),
            write_budget: Some("4M".into()),
            ..LimitArgs::default()
        };
        let e = effective(file, &args).expect("valid");
        assert_eq!(e.conns.max_sessions, 20);
        assert_eq!(e.proto.nop_interval_ms, 0);
        assert_eq!(e.proto.write_budget, 4 << 20);
        assert_eq!(e.max_transfer_bytes(), 4 << 20);
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let args = LimitArgs {
            login_timeout_ms: Some(5),
            ..LimitArgs::default()
        };
        let e = effective(LimitSettings::default(), &args).unwrap_err();
        assert!(e.starts_with("--login-timeout-ms = 5"), "{e}");
        let args = LimitArgs {
            write_budget: Some("huge".into()),
            ..LimitArgs::default()
        };
        let e = effective(LimitSettings::default(), &args).unwrap_err();
        assert!(e.starts_with("--write-budget"), "{e}");
    }
}
