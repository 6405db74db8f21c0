//! Shared helpers for integration tests: start the real `ustgt` binary on an ephemeral
//! loopback port and find out where it serves.
#![allow(dead_code)]

pub mod raw;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ustgt");

/// A running server, killed when dropped.
pub struct Server {
    pub child: Child,
    /// Every `iscsi://HOST:PORT/IQN/LUN` URL it printed.
    pub urls: Vec<String>,
    /// A scratch directory removed on drop (for config files).
    dir: Option<PathBuf>,
}

/// The parts of an `iscsi://HOST:PORT/IQN/LUN` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub addr: String,
    pub iqn: String,
    pub lun: u64,
}

pub fn parse_url(u: &str) -> Url {
    let rest = u.strip_prefix("iscsi://").expect("iscsi:// URL");
    let mut parts = rest.splitn(3, '/');
    let addr = parts.next().expect("host:port").to_string();
    let iqn = parts.next().expect("iqn").to_string();
    let lun = parts
        .next()
        .and_then(|l| l.parse().ok())
        .expect("lun number");
    Url { addr, iqn, lun }
}

impl Server {
    /// `ustgt serve ARGS...`, waiting for its URLs. With `USTGT_TEST_NET` set (`epoll` or
    /// `uring`) and no `--net` in ARGS, the server runs that network engine, so the whole
    /// suite can be run against either.
    pub fn start(args: &[&str]) -> Server {
        let net: Vec<String> = match std::env::var("USTGT_TEST_NET") {
            Ok(engine) if !engine.is_empty() && !args.contains(&"--net") => {
                vec!["--net".into(), engine]
            }
            _ => Vec::new(),
        };
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(&net)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ustgt");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(u) = line.split_whitespace().find(|w| w.starts_with("iscsi://")) {
                    if tx.send(u.to_string()).is_err() {
                        return;
                    }
                }
            }
        });
        let mut urls = Vec::new();
        if let Ok(u) = rx.recv_timeout(Duration::from_secs(10)) {
            urls.push(u);
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Ok(u) = rx.recv_timeout(Duration::from_millis(300)) {
                urls.push(u);
                if Instant::now() > deadline {
                    break;
                }
            }
        }
        assert!(!urls.is_empty(), "ustgt printed no iscsi:// URL");
        Server {
            child,
            urls,
            dir: None,
        }
    }

    /// `ustgt serve --config FILE` with this TOML text.
    pub fn with_config(name: &str, toml: &str) -> Server {
        let dir = std::env::temp_dir().join(format!("ustgt-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("ustgt.toml");
        std::fs::write(&path, toml).expect("write config");
        let mut s = Server::start(&["--config", path.to_str().expect("utf8 path")]);
        s.dir = Some(dir);
        s
    }

    /// The first URL, parsed.
    pub fn url(&self) -> Url {
        parse_url(&self.urls[0])
    }

    /// HOST:PORT of the first portal.
    pub fn addr(&self) -> String {
        self.url().addr
    }

    /// IQN of the first target.
    pub fn iqn(&self) -> String {
        self.url().iqn
    }

    /// iscsi://HOST:PORT without target and LUN.
    pub fn portal(&self) -> String {
        format!("iscsi://{}", self.addr())
    }

    /// SIGTERM and wait (at most 20 s) for the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "ustgt did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
