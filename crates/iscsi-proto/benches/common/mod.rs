//! A small std-only benchmark harness (no external crates, so `cargo bench` builds fast).
//!
//! Each benchmark runs a short warm-up, sizes a batch to about 2 ms, then times batches
//! until the measurement time is spent and reports the median, minimum and maximum
//! nanoseconds per iteration over the batches (and bytes/s where a byte count is given).
//!
//! Arguments (after `cargo bench -p CRATE --bench NAME --`): a substring filter.
//! Environment: `BENCH_TIME_MS` (measurement time per benchmark, default 250),
//! `BENCH_CSV` (append `group,name,median_ns,min_ns,max_ns,bytes` rows to this file).
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

pub use std::hint::black_box;

/// The result of one benchmark.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Median nanoseconds per iteration over the batches.
    pub median_ns: f64,
    /// Fastest batch, nanoseconds per iteration.
    pub min_ns: f64,
    /// Slowest batch, nanoseconds per iteration.
    pub max_ns: f64,
}

/// A named group of benchmarks sharing the command-line filter and settings.
pub struct Bench {
    group: &'static str,
    filter: Option<String>,
    time: Duration,
    csv: Option<String>,
}

impl Bench {
    /// A group reading its filter from the command line and settings from the environment.
    pub fn new(group: &'static str) -> Bench {
        let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
        let ms = std::env::var("BENCH_TIME_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(250);
        println!(
            "{:<44} {:>12} {:>12} {:>12} {:>12}",
            format!("[{group}]"),
            "median",
            "min",
            "max",
            "throughput"
        );
        Bench {
            group,
            filter,
            time: Duration::from_millis(ms.max(10)),
            csv: std::env::var("BENCH_CSV").ok(),
        }
    }

    /// Times `f`; `bytes` is the payload one iteration processes (0: no throughput column).
    pub fn run<R>(&self, name: &str, bytes: u64, mut f: impl FnMut() -> R) -> Option<Stats> {
        if let Some(flt) = &self.filter {
            if !format!("{}/{}", self.group, name).contains(flt.as_str()) {
                return None;
            }
        }
        let batch = calibrate(&mut f);
        let warm_end = Instant::now() + self.time / 10;
        while Instant::now() < warm_end {
            time_batch(&mut f, batch);
        }
        let mut samples = Vec::new();
        let end = Instant::now() + self.time;
        while Instant::now() < end || samples.len() < 5 {
            samples.push(time_batch(&mut f, batch) / batch as f64);
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        let stats = Stats {
            median_ns: samples[samples.len() / 2],
            min_ns: samples[0],
            max_ns: samples[samples.len() - 1],
        };
        self.report(name, bytes, stats);
        Some(stats)
    }

    fn report(&self, name: &str, bytes: u64, s: Stats) {
        let tput = if bytes > 0 {
            let bps = bytes as f64 / (s.median_ns * 1e-9);
            format!("{:.2} GB/s", bps / 1e9)
        } else {
            format!("{:.2} M/s", 1e3 / s.median_ns)
        };
        println!(
            "{:<44} {:>12} {:>12} {:>12} {:>12}",
            name,
            fmt_ns(s.median_ns),
            fmt_ns(s.min_ns),
            fmt_ns(s.max_ns),
            tput
        );
        if let Some(path) = &self.csv {
            if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(
                    f,
                    "{},{},{:.1},{:.1},{:.1},{}",
                    self.group, name, s.median_ns, s.min_ns, s.max_ns, bytes
                );
            }
        }
    }
}

/// Iterations per batch so that one batch takes about 2 ms.
fn calibrate<R>(f: &mut impl FnMut() -> R) -> u64 {
    let mut n = 1u64;
    loop {
        let ns = time_batch(f, n);
        if ns > 2e6 || n >= 1 << 30 {
            return n;
        }
        n = if ns < 1e4 {
            n * 10
        } else {
            (n as f64 * 2.5e6 / ns).ceil() as u64
        };
    }
}

/// Nanoseconds taken by `n` calls of `f`.
fn time_batch<R>(f: &mut impl FnMut() -> R, n: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        black_box(f());
    }
    t.elapsed().as_nanos() as f64
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}
