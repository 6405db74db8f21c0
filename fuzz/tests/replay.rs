//! Runs every target's harness over `fuzz/seeds/<target>/` and `fuzz/corpus/<target>/` without
//! libFuzzer (works on stable with no extra tools): `cargo test --manifest-path
//! fuzz/Cargo.toml --release`. `FUZZ_TARGETS=login,cdb` limits the targets; `FUZZ_MUTATE_SECS=N`
//! then spends N seconds per target on random mutations of those inputs (a crude fallback
//! fuzzer for machines where cargo-fuzz cannot be built). Failing inputs are written to
//! `fuzz/artifacts/<target>/replay-*`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ustgt_fuzz::{Harness, TARGETS};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["seeds", "corpus"] {
        let Ok(entries) = std::fs::read_dir(root().join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out
}

fn selected() -> Vec<(&'static str, Harness)> {
    let want = std::env::var("FUZZ_TARGETS").unwrap_or_default();
    TARGETS
        .iter()
        .copied()
        .filter(|(name, _)| want.is_empty() || want.split(',').any(|w| w.trim() == *name))
        .collect()
}

/// The message and location of the last panic.
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// Runs `f` on `data`; on a panic saves the input and returns where, with the panic message.
fn try_one(target: &str, f: Harness, data: &[u8], tag: &str) -> Option<String> {
    if catch_unwind(AssertUnwindSafe(|| f(data))).is_ok() {
        return None;
    }
    let dir = root().join("artifacts").join(target);
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("replay-{tag}"));
    let _ = std::fs::write(&path, data);
    let msg = LAST_PANIC.lock().map(|m| m.clone()).unwrap_or_default();
    Some(format!("saved as {}: {msg}", path.display()))
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = v.len();
        match rng.below(6) {
            0 if len > 0 => v[rng.below(len)] ^= 1 << rng.below(8),
            1 if len > 0 => v[rng.below(len)] = rng.next() as u8,
            2 => v.insert(rng.below(len + 1), rng.next() as u8),
            3 if len > 0 => {
                let at = rng.below(len);
                let n = rng.below(len - at + 1);
                v.drain(at..at + n);
            }
            4 if !other.is_empty() => {
                let at = rng.below(other.len());
                let n = rng.below(other.len() - at + 1).min(64);
                let to = rng.below(len + 1);
                v.splice(to..to, other[at..at + n].iter().copied());
            }
            _ if len > 0 => {
                let at = rng.below(len);
                v[at] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5)];
            }
            _ => v.push(rng.next() as u8),
        }
    }
    v
}

#[test]
fn replay_seeds_and_corpus() {
    // Quiet: the harnesses assert; panics are caught and reported below.
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut m) = LAST_PANIC.lock() {
            *m = info.to_string();
        }
    }));
    let secs: u64 = std::env::var("FUZZ_MUTATE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut failures = Vec::new();
    for (name, f) in selected() {
        let all = inputs(name);
        let mut runs = 0u64;
        for (path, data) in &all {
            runs += 1;
            let tag = path
                .file_name()
                .map_or("x".into(), |n| n.to_string_lossy().into_owned());
            if let Some(saved) = try_one(name, f, data, &tag) {
                failures.push(format!("{name}: {}: {saved}", path.display()));
            }
        }
        if secs > 0 && !all.is_empty() {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ runs);
            let end = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < end {
                let base = &all[rng.below(all.len())].1;
                let other = &all[rng.below(all.len())].1;
                let data = mutate(&mut rng, base, other);
                runs += 1;
                if let Some(saved) = try_one(name, f, &data, &format!("mutant-{runs}")) {
                    failures.push(format!("{name}: mutant {saved}"));
                    break;
                }
            }
        }
        eprintln!("{name}: {runs} runs ({} stored inputs)", all.len());
    }
    let _ = std::panic::take_hook();
    assert!(
        failures.is_empty(),
        "failing inputs:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_target_has_seeds() {
    for (name, _) in TARGETS {
        let dir = root().join("seeds").join(name);
        let n = std::fs::read_dir(&dir).map_or(0, |d| d.count());
        assert!(n > 0, "no seeds in {}", Path::new(&dir).display());
    }
}

/// The reproducers of fixed findings, `fuzz/findings/TARGET-WHAT`, pass their target's checks.
#[test]
fn findings_stay_fixed() {
    let dir = root().join("findings");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.sort();
    assert!(!paths.is_empty(), "no reproducers in {}", dir.display());
    let mut failures = Vec::new();
    for p in &paths {
        let name = p
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let target = name.split('-').next().unwrap_or_default();
        let Some((_, f)) = TARGETS.iter().find(|(t, _)| *t == target) else {
            failures.push(format!(
                "{name}: no target {target:?} (name it TARGET-WHAT)"
            ));
            continue;
        };
        let data = std::fs::read(p).unwrap_or_default();
        if catch_unwind(AssertUnwindSafe(|| f(&data))).is_err() {
            failures.push(format!("{name}: the {target} harness fails"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
