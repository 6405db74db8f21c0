//! Helpers of the limit tests (`scale.rs`, `storms.rs`): a server whose log is read back, so
//! that its gauges can be asked for (SIGUSR1 logs them), and what the kernel says about its
//! process (open descriptors, resident memory).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ustgt_initiator::{LoginOptions, Session};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ustgt");

/// What the server holds, from its stats line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    pub connections: u64,
    pub logins: u64,
    pub refused: u64,
    pub sessions: u64,
    pub tasks: u64,
    pub write_reserved: u64,
    pub buffers: u64,
    pub io_in_flight: u64,
}

impl Gauges {
    /// Nothing alive: no connection, login, session, task, reservation, buffer or I/O.
    pub fn is_idle(&self) -> bool {
        Gauges {
            refused: 0,
            ..*self
        } == Gauges::default()
    }
}

/// Parses the gauges at the end of a `stats:` line: "...; C connections (L logging in, R
/// refused at accept), S sessions, T tasks, W bytes of write data reserved, B bytes of
/// connection buffers, I store I/O in flight".
pub fn parse_gauges(line: &str) -> Option<Gauges> {
    let tail = line.rsplit("; ").next()?;
    let n: Vec<u64> = tail
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    let [connections, logins, refused, sessions, tasks, write_reserved, buffers, io_in_flight] =
        n.as_slice().try_into().ok()?;
    Some(Gauges {
        connections,
        logins,
        refused,
        sessions,
        tasks,
        write_reserved,
        buffers,
        io_in_flight,
    })
}

/// A running `ustgt serve`, killed when dropped.
pub struct Target {
    child: Child,
    pub addr: String,
    pub iqn: String,
    stats: Mutex<Receiver<String>>,
}

impl Target {
    /// `ustgt serve --listen 127.0.0.1:0 ARGS...` (with `--net` from `USTGT_TEST_NET`), waiting
    /// for its first URL.
    pub fn start(args: &[&str]) -> Target {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        if let Ok(engine) = std::env::var("USTGT_TEST_NET") {
            if !engine.is_empty() {
                cmd.args(["--net", &engine]);
            }
        }
        let mut child = cmd
            .args(args)
            .env("RUST_LOG", "warn,ustgt=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ustgt");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (url_tx, url_rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(u) = line.split_whitespace().find(|w| w.starts_with("iscsi://")) {
                    let _ = url_tx.send(u.to_string());
                }
            }
        });
        let (stats_tx, stats_rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(" stats: ") {
                    let _ = stats_tx.send(line);
                } else if line.contains(" WARN ") || line.contains(" ERROR ") {
                    eprintln!("ustgt: {line}");
                }
            }
        });
        let url = url_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("ustgt printed no iscsi:// URL");
        let rest = url.strip_prefix("iscsi://").expect("iscsi:// URL");
        let mut parts = rest.splitn(3, '/');
        let addr = parts.next().expect("address").to_string();
        let iqn = parts.next().expect("iqn").to_string();
        Target {
            child,
            addr,
            iqn,
            stats: Mutex::new(stats_rx),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors of the server.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// A `/proc/PID/status` field in KiB (VmRSS, RssAnon, RssShmem...).
    pub fn status_kib(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Resident memory of the server in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS")
    }

    /// The server's gauges now (it logs them on SIGUSR1).
    pub fn gauges(&self) -> Gauges {
        let rx = self.stats.lock().expect("stats channel");
        while rx.try_recv().is_ok() {}
        let st = Command::new("kill")
            .args(["-USR1", &self.pid().to_string()])
            .status()
            .expect("kill -USR1");
        assert!(st.success());
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a stats line after SIGUSR1");
        parse_gauges(&line).unwrap_or_else(|| panic!("no gauges in {line:?}"))
    }

    /// Wait (at most `limit`) until nothing is alive in the server and its descriptors are
    /// back to `fds`; returns the last gauges and descriptor count.
    pub fn settle(&self, fds: usize, limit: Duration) -> (Gauges, usize) {
        let deadline = Instant::now() + limit;
        loop {
            let g = self.gauges();
            let n = self.fds();
            if (g.is_idle() && n == fds) || Instant::now() > deadline {
                return (g, n);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The descriptors of the running server with nothing alive, after a session on each of
    /// two event loops did I/O (so that whatever loops open at start or on first use is open).
    pub fn baseline_fds(&self) -> usize {
        for k in 0..2u32 {
            let mut s = self.login(self.normal());
            let out = s.write16(0, 0, &pattern(k, 4096), 512).expect("write");
            assert!(out.good(), "{}", out.describe());
            s.logout().expect("logout");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.gauges().is_idle() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.fds()
    }

    /// Options of a normal session to the target.
    pub fn normal(&self) -> LoginOptions {
        LoginOptions::normal(&self.iqn)
    }

    /// Log in and consume the unit attention every new I_T nexus starts with.
    pub fn login(&self, opts: LoginOptions) -> Session {
        let mut s = Session::login(self.addr.as_str(), opts)
            .unwrap_or_else(|e| panic!("login: {e} ({e:?})"));
        s.clear_unit_attention(0).expect("TEST UNIT READY");
        s
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raise this process's soft open file limit to at least `want` (up to the hard limit) with
/// prlimit(1); returns the soft limit in force afterwards.
pub fn raise_fd_limit(want: u64) -> u64 {
    let soft = fd_limit();
    if soft >= want {
        return soft;
    }
    let pid = std::process::id().to_string();
    let hard = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            let l = t
                .lines()
                .find(|l| l.starts_with("Max open files"))?
                .to_string();
            l.split_whitespace().nth(4).map(str::to_string)
        })
        .unwrap_or_default();
    let _ = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={hard}:")])
        .status();
    fd_limit()
}

/// This process's soft open file limit.
pub fn fd_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            let l = t
                .lines()
                .find(|l| l.starts_with("Max open files"))?
                .to_string();
            l.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Deterministic test data.
pub fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn gauges_parse() {
    let line = "[t INFO  ustgt] stats: 3 commands, 1.00 syscalls/command (reads 0.33), \
                0 loops on io_uring; 5 connections (2 logging in, 7 refused at accept), 3 \
                sessions, 4 tasks, 4096 bytes of write data reserved, 8192 bytes of connection \
                buffers, 1 store I/O in flight";
    let g = parse_gauges(line).expect("gauges");
    assert_eq!(
        g,
        Gauges {
            connections: 5,
            logins: 2,
            refused: 7,
            sessions: 3,
            tasks: 4,
            write_reserved: 4096,
            buffers: 8192,
            io_in_flight: 1,
        }
    );
    assert!(!g.is_idle());
}
