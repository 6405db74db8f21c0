//! The asynchronous execution model (nr_threads == 0, as handler_rbd.so uses it) through a
//! test plugin built from `fake_async_handler.c`: callouts return at once and the plugin
//! completes commands on its own threads through `tcmur_cmd_complete`, some before the
//! callout has returned. The shared store suite, the event-loop queue, and status mapping.
//!
//! Needs gcc to build the plugin; without it each test says so and passes.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use backstore::{testsuite, BlockStore, IoDone, IoOp, IoQueue};
use store_tcmu::{TcmuOptions, TcmuStore};

/// The directory holding handler_fakeasync.so, built once per process.
fn plugin_dir() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ustgt-tcmu-fake-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fake_async_handler.c");
        let out = Command::new("gcc")
            .args([
                "-shared",
                "-fPIC",
                "-O1",
                "-Wall",
                "-Werror",
                "-Wl,-z,now",
                "-o",
            ])
            .arg(dir.join("handler_fakeasync.so"))
            .arg(src)
            .arg("-lpthread")
            .output();
        match out {
            Ok(o) if o.status.success() => Some(dir),
            Ok(o) => panic!(
                "cannot build the test plugin: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => {
                eprintln!("skipped: gcc is needed to build the test plugin ({e})");
                None
            }
        }
    })
    .as_ref()
}

fn options(cfg: &str, size: u64) -> Option<TcmuOptions> {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut o = TcmuOptions::new(cfg);
    o.handler_dir = plugin_dir()?.clone();
    o.size = Some(size);
    Some(o)
}

fn open(cfg: &str, size: u64) -> Option<TcmuStore> {
    let o = options(cfg, size)?;
    Some(TcmuStore::open(&o).unwrap_or_else(|e| panic!("open {cfg}: {e}")))
}

#[test]
fn store_suite_on_an_asynchronous_handler() {
    if open("fakeasync/suite", 1 << 20).is_none() {
        return;
    }
    testsuite::run_all(&|| Box::new(open("fakeasync/suite", 1 << 20).expect("plugin")));
}

#[test]
fn capabilities_follow_the_callouts() {
    let Some(s) = open("fakeasync/caps", 1 << 20) else {
        return;
    };
    assert!(!s.synchronous());
    let caps = s.capabilities();
    assert!(
        caps.trim && caps.fast_zeroes && caps.volatile_cache,
        "{caps:?}"
    );
    assert_eq!(s.geometry().num_blocks, 2048);
}

fn reap_all(q: &mut dyn IoQueue, n: usize) -> Vec<IoDone> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        assert!(Instant::now() < deadline, "completions did not arrive");
        let mut p = libc::pollfd {
            fd: q.completion_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, 100) };
        q.reap(&mut out);
    }
    out
}

#[test]
fn queue_with_completions_on_foreign_threads() {
    let Some(s) = open("fakeasync/queue", 4 << 20) else {
        return;
    };
    let mut q = s.open_queue().expect("a queue").expect("opened");
    for round in 0..4u64 {
        for i in 0..100u64 {
            let off = i * 8192;
            let data = testsuite::pattern((round + i) as u8, off, 8192);
            q.submit(
                i,
                IoOp::Write {
                    offset: off,
                    data,
                    fua: i % 7 == 0,
                },
            )
            .expect("room");
        }
        q.commit().expect("commit");
        let done = reap_all(q.as_mut(), 100);
        assert!(done.iter().all(|d| d.result.is_ok()), "round {round}");
        for i in 0..100u64 {
            q.submit(
                i,
                IoOp::Read {
                    offset: i * 8192,
                    len: 8192,
                },
            )
            .expect("room");
        }
        q.submit(999, IoOp::Flush).expect("room");
        q.commit().expect("commit");
        for d in reap_all(q.as_mut(), 101) {
            let data = d.result.expect("read");
            if d.tag != 999 {
                let want = testsuite::pattern((round + d.tag) as u8, d.tag * 8192, 8192);
                assert!(data == want, "round {round} tag {}", d.tag);
            }
        }
    }
    assert_eq!(q.in_flight(), 0);
    drop(q);
    drop(s); // closes after every completion arrived
}

#[test]
fn handler_statuses_become_errors() {
    let Some(s) = open("fakeasync/failing", 1 << 20) else {
        return;
    };
    let e = s.write(0, &[1u8; 512], false).expect_err("write");
    assert_eq!(
        e.raw_os_error(),
        Some(libc::EIO),
        "WR_ERR from the completion"
    );
    let mut buf = [0u8; 512];
    let e = s.read(0, &mut buf).expect_err("read");
    assert_eq!(
        e.raw_os_error(),
        Some(libc::ENOMEM),
        "NO_RESOURCE from the callout"
    );
    let mut q = s.open_queue().expect("a queue").expect("opened");
    q.submit(
        1,
        IoOp::Read {
            offset: 512,
            len: 512,
        },
    )
    .expect("room");
    q.submit(
        2,
        IoOp::Write {
            offset: 512,
            data: vec![2; 512],
            fua: true,
        },
    )
    .expect("room");
    q.commit().expect("commit");
    let mut done = reap_all(q.as_mut(), 2);
    done.sort_by_key(|d| d.tag);
    let errs: Vec<Option<i32>> = done
        .iter()
        .map(|d| d.result.as_ref().err().and_then(|e| e.raw_os_error()))
        .collect();
    assert_eq!(errs, [Some(libc::ENOMEM), Some(libc::EIO)]);
}

#[test]
fn open_without_a_size_fails_cleanly() {
    let Some(mut o) = options("fakeasync/nosize", 512) else {
        return;
    };
    o.size = None;
    let e = TcmuStore::open(&o).unwrap_err();
    assert!(e.contains("give size= for the fakeasync handler"), "{e}");
}
