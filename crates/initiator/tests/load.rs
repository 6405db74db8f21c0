//! `ustgt-load` against a real ustgt server (in process, on an ephemeral loopback port):
//! seconds of mixed, verified load must end with no error and no mismatching block.
use std::process::Command;
use std::sync::Arc;

use scsi_core::{Device, DeviceConfig, LunTable};
use store_ram::RamStore;
use ustgt_target::{Coalesce, CoalesceMode, ExportedTarget, Limits, Server, Setup, StopHandle};

const IQN: &str = "iqn.2026-11.io.ustgt:load-test";
const BIN: &str = env!("CARGO_BIN_EXE_ustgt-load");

struct Running {
    url: String,
    stop: StopHandle,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(block_size: u32, coalesce: CoalesceMode) -> Running {
    let store = RamStore::new(64 << 20, block_size, false).expect("ram store");
    let dev = Device::new(Arc::new(store), DeviceConfig::new("load-test".into()));
    let mut server = Server::bind(Setup {
        portals: vec![([127, 0, 0, 1], 0).into()],
        targets: vec![ExportedTarget {
            iqn: IQN.into(),
            alias: None,
            luns: Arc::new(LunTable::new(vec![(0, Arc::new(dev))])),
        }],
        limits: Limits::default(),
        workers: 2,
    })
    .expect("bind");
    server.set_coalesce(Coalesce {
        mode: coalesce,
        ..Coalesce::default()
    });
    let url = format!("iscsi://{}/{IQN}/0", server.local_addrs()[0]);
    let stop = StopHandle::new();
    let s2 = stop.clone();
    let thread = std::thread::spawn(move || server.run(s2));
    Running {
        url,
        stop,
        thread: Some(thread),
    }
}

/// Run the tool; returns its exit code and the JSON line's numeric fields.
fn load(args: &[&str], url: &str) -> (i32, Vec<(String, f64)>, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg(url)
        .output()
        .expect("run ustgt-load");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let fields = stdout
        .trim()
        .trim_matches(|c| c == '{' || c == '}')
        .split(", ")
        .filter_map(|kv| {
            let (k, v) = kv.split_once(": ")?;
            Some((k.trim_matches('"').to_string(), v.parse().ok()?))
        })
        .collect();
    (out.status.code().unwrap_or(-1), fields, stdout + &stderr)
}

fn field(fields: &[(String, f64)], name: &str) -> f64 {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {name} in {fields:?}"))
}

#[test]
fn mixed_verified_load_over_two_connections_with_coalescing() {
    let r = start(512, CoalesceMode::On);
    let args = [
        "-t", "2", "-q", "16", "-j", "2", "-b", "4096", "-w", "30", "-V",
    ];
    let (code, f, out) = load(&args, &r.url);
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&f, "errors"), 0.0, "{out}");
    assert_eq!(field(&f, "mismatched_blocks"), 0.0, "{out}");
    assert!(field(&f, "checked_blocks") > 1000.0, "{out}");
    assert!(field(&f, "ios") > 1000.0, "{out}");
    assert!(field(&f, "client_cpu_us_per_io") > 0.0, "{out}");
}

#[test]
fn large_writes_through_r2t_and_sequential_small_ones() {
    let r = start(4096, CoalesceMode::Off);
    // 192 KiB: 64 KiB of immediate data, the rest solicited by R2T in Data-Out PDUs.
    let args = [
        "-t", "1", "-q", "4", "-b", "192k", "-w", "50", "-V", "-r", "8m",
    ];
    let (code, f, out) = load(&args, &r.url);
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&f, "errors"), 0.0, "{out}");
    assert_eq!(field(&f, "mismatched_blocks"), 0.0, "{out}");
    assert!(field(&f, "checked_blocks") > 0.0, "{out}");
    let args = ["-t", "1", "-q", "64", "-b", "4096", "-w", "100", "-S", "-F"];
    let (code, f, out) = load(&args, &r.url);
    assert_eq!(code, 0, "{out}");
    assert_eq!(field(&f, "write_pct"), 100.0);
    assert_eq!(field(&f, "qd"), 64.0);
}

#[test]
fn usage_and_login_errors_exit_2() {
    let r = start(512, CoalesceMode::Off);
    let (code, _, out) = load(&["-q", "0"], &r.url);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("usage"), "{out}");
    let (code, _, out) = load(&["-t", "1"], &r.url.replace("/0", "/7"));
    assert_eq!(code, 2, "LUN 7 does not exist: {out}");
    let wrong = r.url.replace(IQN, "iqn.2026-11.io.ustgt:nobody");
    let (code, _, out) = load(&["-t", "1"], &wrong);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("login"), "{out}");
    let (code, _, out) = load(&["-t", "1", "-b", "1000"], &r.url);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("multiple of the block size"), "{out}");
}
