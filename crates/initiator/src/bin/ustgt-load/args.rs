//! Command line and target URL.

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// Commands in flight per connection.
    pub qd: u32,
    /// Connections (sessions), all driven by the one thread.
    pub conns: u32,
    /// Bytes per command.
    pub bytes: u64,
    /// Load duration.
    pub seconds: f64,
    /// Percentage of writes.
    pub write_pct: u32,
    /// Sequential offsets instead of random ones.
    pub sequential: bool,
    /// Limit offsets to the first this many bytes of the LUN (0: the whole LUN).
    pub range_bytes: u64,
    /// Stamp written blocks and check every read against the last acknowledged write.
    pub verify: bool,
    /// Set FUA on writes.
    pub fua: bool,
    /// Most commands per write (0: every command that can be issued goes in one write).
    pub batch: u32,
    /// InitiatorName.
    pub initiator: String,
    /// Where to connect.
    pub url: Url,
}

/// `iscsi://HOST[:PORT]/IQN/LUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `HOST:PORT`, ready for `ToSocketAddrs`.
    pub addr: String,
    /// Target name.
    pub iqn: String,
    /// LUN index.
    pub lun: u64,
}

/// Largest accepted queue depth per connection (ITTs keep the slot in 16 bits).
pub const MAX_QD: u32 = 4096;
/// Largest accepted number of connections.
pub const MAX_CONNS: u32 = 64;

pub const USAGE: &str = "\
usage: ustgt-load [-q QD] [-j CONNS] [-b BYTES] [-t SECONDS] [-w WRITE_PCT] [-S] [-r BYTES]
                  [-V] [-F] [-B N] [-i INITIATOR_IQN] iscsi://HOST[:PORT]/TARGET_IQN/LUN
  -q QD        commands in flight per connection        (default 32)
  -j CONNS     connections (sessions), one thread        (default 1)
  -b BYTES     transfer size per command                 (default 4096)
  -t SECONDS   run time                                  (default 10)
  -w PCT       percentage of writes, 0..100              (default 0)
  -S           sequential instead of random offsets
  -r BYTES     limit offsets to the first BYTES of the LUN
  -V           verify: stamp written blocks with (lba, generation), check every read
  -F           set FUA on writes
  -B N         at most N commands per write (default: all that can be issued in one write);
               -B 1 sends each command on its own, as a kernel initiator does
  -i IQN       initiator name
Prints one JSON line; exit status 0 when every command ended GOOD (and, with -V, every
checked block matched), 1 otherwise, 2 for a usage or login error.";

impl Args {
    /// Parse getopt style: `-q 64` or `-q64`, flags may be grouped (`-SV`).
    pub fn parse(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut a = Args {
            qd: 32,
            conns: 1,
            bytes: 4096,
            seconds: 10.0,
            write_pct: 0,
            sequential: false,
            range_bytes: 0,
            verify: false,
            fua: false,
            batch: 0,
            initiator: "iqn.2026-11.io.ustgt:ustgt-load".into(),
            url: Url {
                addr: String::new(),
                iqn: String::new(),
                lun: 0,
            },
        };
        let mut url = None;
        let mut it = argv.into_iter();
        while let Some(arg) = it.next() {
            let Some(opts) = arg.strip_prefix('-').filter(|o| !o.is_empty()) else {
                if url.replace(arg).is_some() {
                    return Err("more than one URL".into());
                }
                continue;
            };
            for (i, c) in opts.char_indices() {
                match c {
                    'S' => a.sequential = true,
                    'V' => a.verify = true,
                    'F' => a.fua = true,
                    'h' => return Err(String::new()),
                    'q' | 'j' | 'b' | 't' | 'w' | 'r' | 'i' | 'B' => {
                        let rest = &opts[i + c.len_utf8()..];
                        let val = if rest.is_empty() {
                            it.next().ok_or(format!("-{c} needs a value"))?
                        } else {
                            rest.to_string()
                        };
                        a.set(c, &val)?;
                        break;
                    }
                    other => return Err(format!("unknown option -{other}")),
                }
            }
        }
        a.url = Url::parse(&url.ok_or("no URL")?)?;
        a.check()?;
        Ok(a)
    }

    fn set(&mut self, opt: char, val: &str) -> Result<(), String> {
        let bad = || format!("bad value for -{opt}: {val}");
        match opt {
            'q' => self.qd = val.parse().map_err(|_| bad())?,
            'j' => self.conns = val.parse().map_err(|_| bad())?,
            'b' => self.bytes = parse_size(val).ok_or_else(bad)?,
            't' => self.seconds = val.parse().map_err(|_| bad())?,
            'w' => self.write_pct = val.parse().map_err(|_| bad())?,
            'r' => self.range_bytes = parse_size(val).ok_or_else(bad)?,
            'B' => self.batch = val.parse().map_err(|_| bad())?,
            _ => self.initiator = val.to_string(),
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        if !(1..=MAX_QD).contains(&self.qd) {
            return Err(format!("-q must be 1..={MAX_QD}"));
        }
        if !(1..=MAX_CONNS).contains(&self.conns) {
            return Err(format!("-j must be 1..={MAX_CONNS}"));
        }
        if self.write_pct > 100 {
            return Err("-w must be 0..=100".into());
        }
        if self.bytes == 0 || self.bytes > 16 << 20 {
            return Err("-b must be 1 byte..16 MiB".into());
        }
        if !self.seconds.is_finite() || self.seconds <= 0.0 {
            return Err("-t must be positive".into());
        }
        Ok(())
    }
}

/// A byte count with an optional k/m/g suffix (powers of 1024) or a 0x prefix.
fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n = match num.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => num.parse().ok()?,
    };
    n.checked_mul(mult)
}

impl Url {
    /// Parse `iscsi://HOST[:PORT]/IQN/LUN` (HOST may be a bracketed IPv6 address).
    pub fn parse(s: &str) -> Result<Url, String> {
        let bad = |why: &str| format!("bad URL {s:?}: {why} (want iscsi://HOST[:PORT]/IQN/LUN)");
        let rest = s
            .strip_prefix("iscsi://")
            .ok_or_else(|| bad("no iscsi://"))?;
        let mut parts = rest.splitn(3, '/');
        let host = parts.next().unwrap_or_default();
        let iqn = parts.next().unwrap_or_default();
        let lun = parts.next().ok_or_else(|| bad("no LUN"))?;
        if host.is_empty() || iqn.is_empty() {
            return Err(bad("empty host or target name"));
        }
        let lun = lun.parse().map_err(|_| bad("LUN is not a number"))?;
        let has_port = match host.rfind(']') {
            Some(close) => host[close..].contains(':'),
            None => host.contains(':'),
        };
        let addr = if has_port {
            host.to_string()
        } else {
            format!("{host}:3260")
        };
        Ok(Url {
            addr,
            iqn: iqn.to_string(),
            lun,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args, String> {
        Args::parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn options_like_iscsi_load() {
        let a =
            parse("-q 64 -b512 -w 30 -t 2.5 -SV -j2 -r 1m -B 4 iscsi://127.0.0.1:3291/iqn.x:t/1")
                .expect("parse");
        assert_eq!((a.qd, a.bytes, a.write_pct, a.conns), (64, 512, 30, 2));
        assert_eq!(a.batch, 4);
        assert_eq!(a.seconds, 2.5);
        assert!(a.sequential && a.verify && !a.fua);
        assert_eq!(a.range_bytes, 1 << 20);
        assert_eq!(
            a.url,
            Url {
                addr: "127.0.0.1:3291".into(),
                iqn: "iqn.x:t".into(),
                lun: 1
            }
        );
    }

    #[test]
    fn defaults_and_errors() {
        let a = parse("iscsi://[::1]/iqn.x:t/0").expect("parse");
        assert_eq!((a.qd, a.bytes, a.conns, a.write_pct), (32, 4096, 1, 0));
        assert_eq!(a.url.addr, "[::1]:3260");
        assert_eq!(
            Url::parse("iscsi://[::1]:99/i/0").map(|u| u.addr),
            Ok("[::1]:99".to_string())
        );
        for bad in [
            "",
            "-q 0 iscsi://h/i/0",
            "-w 101 iscsi://h/i/0",
            "-x iscsi://h/i/0",
            "-q",
            "iscsi://h/i",
            "iscsi://h//0",
            "http://h/i/0",
            "iscsi://h/i/x",
            "-t -1 iscsi://h/i/0",
            "iscsi://h/i/0 iscsi://h/i/1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4k"), Some(4096));
        assert_eq!(parse_size("0x200"), Some(512));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("k"), None);
        assert_eq!(parse_size("x"), None);
    }
}
