//! A throwaway single-node Ceph cluster for the rbd tests, started and stopped with
//! `scripts/ceph-test-cluster` (one monitor, one memstore OSD, no cephx, pool `rbd` of size 1;
//! about 2 s to start on the development machine, 4 s to stop).
//!
//! `USTGT_RBD_TEST` decides what happens when Ceph is not installed: unset, the test says it
//! is skipped and passes; `1`, it fails; `0` skips the rbd tests even when Ceph is there.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// The script that starts and stops the cluster.
pub const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scripts/ceph-test-cluster"
);

/// The rbd handler of Debian's tcmu-runner package.
pub const RBD_HANDLER: &str = "/usr/lib/x86_64-linux-gnu/tcmu-runner/handler_rbd.so";

/// A running cluster; stopped (and its directory removed) when dropped.
pub struct Cluster {
    dir: PathBuf,
    /// The configuration file clients use (`conf=` of the rbd handler).
    pub conf: PathBuf,
}

fn found(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

impl Cluster {
    /// Starts a cluster for `test`, or says why the test is skipped and returns `None`.
    pub fn start(test: &str) -> Option<Cluster> {
        let demand = std::env::var("USTGT_RBD_TEST").unwrap_or_default();
        if demand == "0" {
            eprintln!("{test}: skipped: USTGT_RBD_TEST=0");
            return None;
        }
        let missing: Vec<&str> = ["ceph-mon", "ceph-osd", "ceph", "rbd", "python3"]
            .into_iter()
            .filter(|c| !found(c))
            .chain((!Path::new(RBD_HANDLER).exists()).then_some(RBD_HANDLER))
            .collect();
        if !missing.is_empty() {
            let why = format!(
                "needs {} (install them with `scripts/setup --ceph`; tcmu-runner for the handler)",
                missing.join(", ")
            );
            assert!(demand != "1", "{test}: USTGT_RBD_TEST=1 but the test {why}");
            eprintln!("{test}: skipped: {why}");
            return None;
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ustgt-ceph-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let t0 = Instant::now();
        let out = Command::new(SCRIPT)
            .arg("start")
            .arg(&dir)
            .output()
            .unwrap_or_else(|e| panic!("{SCRIPT}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let cluster = Cluster {
            conf: PathBuf::from(stdout.trim()),
            dir,
        };
        assert!(
            out.status.success(),
            "{test}: the Ceph test cluster did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "{test}: Ceph test cluster ready in {:.1} s ({})",
            t0.elapsed().as_secs_f64(),
            cluster.conf.display()
        );
        Some(cluster)
    }

    /// `rbd --conf CONF ARGS...`, which must succeed.
    pub fn rbd(&self, args: &[&str]) -> Output {
        let out = Command::new("rbd")
            .arg("--conf")
            .arg(&self.conf)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("rbd: {e}"));
        assert!(
            out.status.success(),
            "rbd {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Creates the image `rbd/NAME` of `size` (an rbd size such as `64M`).
    pub fn create_image(&self, name: &str, size: &str) {
        self.rbd(&["create", "--size", size, &format!("rbd/{name}")]);
    }

    /// The whole contents of `rbd/NAME`, through `rbd export`.
    pub fn export(&self, name: &str) -> Vec<u8> {
        let path = self.dir.join(format!("{name}.raw"));
        let _ = std::fs::remove_file(&path);
        let shown = path.to_string_lossy().into_owned();
        self.rbd(&["export", "--no-progress", &format!("rbd/{name}"), &shown]);
        let data = std::fs::read(&path).expect("read the exported image");
        let _ = std::fs::remove_file(&path);
        data
    }

    /// The handler configuration string of `rbd/NAME` on this cluster.
    pub fn cfgstring(&self, name: &str) -> String {
        format!("rbd/rbd/{name};conf={}", self.conf.display())
    }

    /// A scratch directory inside the cluster's directory.
    pub fn scratch(&self) -> PathBuf {
        self.dir.clone()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let stopped = Command::new(SCRIPT)
            .arg("stop")
            .arg(&self.dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if stopped {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "the Ceph test cluster in {} may still be running",
                self.dir.display()
            );
        }
    }
}
