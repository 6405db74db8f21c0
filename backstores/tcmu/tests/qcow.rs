//! The tcmu store through Debian's real handler_qcow.so: the shared store suite on qcow2
//! images made by `qemu-img create`, the queue interface, data that qemu-img reads back, and
//! the errors of handlers that cannot load or open.
//!
//! Needs the `tcmu-runner` and `qemu-utils` packages (scripts/setup installs them); without
//! them each test says so and passes. `USTGT_TCMU_HANDLER_DIR` overrides the handler directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backstore::{testsuite, BlockStore, IoDone, IoOp};
use store_tcmu::{TcmuOptions, TcmuStore, DEFAULT_HANDLER_DIR};

fn handler_dir() -> PathBuf {
    std::env::var_os("USTGT_TCMU_HANDLER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_HANDLER_DIR))
}

/// True when the handler and qemu-img are installed; otherwise says why the test is skipped.
fn available(test: &str) -> bool {
    let _ = env_logger::builder().is_test(true).try_init();
    let so = handler_dir().join("handler_qcow.so");
    let qemu = Command::new("qemu-img").arg("--version").output().is_ok();
    if !so.exists() || !qemu {
        eprintln!(
            "{test}: skipped: needs {} (package tcmu-runner) and qemu-img (package qemu-utils)",
            so.display()
        );
        return false;
    }
    true
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ustgt-tcmu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// A new qcow2 image of `size` bytes.
fn qcow2(size: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let path = scratch_dir().join(format!("img{}.qcow2", N.fetch_add(1, Ordering::SeqCst)));
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&path)
        .arg(size)
        .output()
        .expect("qemu-img");
    assert!(out.status.success(), "qemu-img create: {out:?}");
    path
}

fn options(path: &Path) -> TcmuOptions {
    let mut o = TcmuOptions::new(&format!("qcow/{}", path.display()));
    o.handler_dir = handler_dir();
    o
}

fn open(path: &Path) -> TcmuStore {
    match TcmuStore::open(&options(path)) {
        Ok(s) => s,
        Err(e) => panic!("open {}: {e}", path.display()),
    }
}

#[test]
fn store_suite_on_qcow2() {
    if !available("store_suite_on_qcow2") {
        return;
    }
    testsuite::run_all(&|| Box::new(open(&qcow2("1M"))));
}

#[test]
fn read_only_store() {
    if !available("read_only_store") {
        return;
    }
    let mut o = options(&qcow2("1M"));
    o.read_only = true;
    let s = TcmuStore::open(&o).expect("open");
    testsuite::check_read_only(&s);
}

#[test]
fn geometry_and_capabilities_come_from_the_image() {
    if !available("geometry_and_capabilities_come_from_the_image") {
        return;
    }
    let s = open(&qcow2("3M"));
    assert_eq!(s.geometry().block_size, 512);
    assert_eq!(s.geometry().num_blocks, 3 * 2048);
    let caps = s.capabilities();
    assert!(
        caps.volatile_cache,
        "qcow turns the write cache on and has flush"
    );
    assert!(!caps.trim, "qcow has no unmap");
    assert!(caps.persistent && !caps.read_only);
    assert!(s.synchronous());
    assert!(s.describe().starts_with("tcmu:qcow/"), "{}", s.describe());
    assert!(s.handler_path().ends_with("handler_qcow.so"));
}

/// Waits until `q` has produced `n` completions.
fn reap_all(q: &mut dyn backstore::IoQueue, n: usize) -> Vec<IoDone> {
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
fn queue_completes_through_the_eventfd() {
    if !available("queue_completes_through_the_eventfd") {
        return;
    }
    let s = open(&qcow2("4M"));
    let mut q = s.open_queue().expect("a queue").expect("opened");
    for i in 0..64u64 {
        let data = testsuite::pattern(i as u8, i * 4096, 4096);
        let op = IoOp::Write {
            offset: i * 4096,
            data,
            fua: i % 16 == 0,
        };
        q.submit(i, op).expect("room");
    }
    q.commit().expect("commit");
    let done = reap_all(q.as_mut(), 64);
    assert!(done.iter().all(|d| d.result.is_ok()), "writes failed");
    assert_eq!(q.in_flight(), 0);
    q.submit(1000, IoOp::Flush).expect("room");
    for i in 0..64u64 {
        q.submit(
            i,
            IoOp::Read {
                offset: i * 4096,
                len: 4096,
            },
        )
        .expect("room");
    }
    q.commit().expect("commit");
    let done = reap_all(q.as_mut(), 65);
    for d in done {
        let data = d.result.expect("read");
        if d.tag != 1000 {
            assert_eq!(
                data,
                testsuite::pattern(d.tag as u8, d.tag * 4096, 4096),
                "tag {}",
                d.tag
            );
        }
    }
}

#[test]
fn queue_refuses_beyond_its_depth() {
    if !available("queue_refuses_beyond_its_depth") {
        return;
    }
    let mut o = options(&qcow2("1M"));
    o.queue_depth = 2;
    let s = TcmuStore::open(&o).expect("open");
    let mut q = s.open_queue().expect("a queue").expect("opened");
    q.submit(1, IoOp::Flush).expect("room");
    q.submit(2, IoOp::Flush).expect("room");
    assert!(q.submit(3, IoOp::Flush).is_err(), "full");
    q.commit().expect("commit");
    assert_eq!(reap_all(q.as_mut(), 2).len(), 2);
}

#[test]
fn qemu_img_sees_the_written_data() {
    if !available("qemu_img_sees_the_written_data") {
        return;
    }
    let path = qcow2("2M");
    let data = testsuite::pattern(5, 65536, 8192);
    {
        let s = open(&path);
        s.write(65536, &data, false).expect("write");
        s.flush().expect("flush");
    }
    let raw = path.with_extension("raw");
    let out = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&path)
        .arg(&raw)
        .output()
        .expect("qemu-img convert");
    assert!(out.status.success(), "{out:?}");
    let image = std::fs::read(&raw).expect("raw");
    assert_eq!(image.len(), 2 << 20);
    assert_eq!(&image[65536..65536 + 8192], &data[..]);
    assert!(image[..65536].iter().all(|&b| b == 0));
    assert!(image[65536 + 8192..].iter().all(|&b| b == 0));
}

#[test]
fn open_errors_are_one_clear_line() {
    if !available("open_errors_are_one_clear_line") {
        return;
    }
    let e = TcmuStore::open(&options(Path::new("/nonexistent/dir/x.qcow2"))).unwrap_err();
    assert!(
        e.starts_with("/nonexistent/dir/x.qcow2: No such file"),
        "{e}"
    );
    // A size that is not the image's: the handler's own reason.
    let mut o = options(&qcow2("1M"));
    o.size = Some(2 << 20);
    let e = TcmuStore::open(&o).unwrap_err();
    assert!(
        e.starts_with("handler_qcow.so could not open \"qcow/"),
        "{e}"
    );
    assert!(
        e.contains("size misconfigured, TCMU says 2097152 but image says 1048576"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    let mut o = options(&qcow2("1M"));
    o.block_size = 4096;
    let e = TcmuStore::open(&o).unwrap_err();
    assert!(e.contains("512-byte blocks"), "{e}");
}

#[test]
fn passthrough_handlers_are_refused_for_now() {
    if !available("passthrough_handlers_are_refused_for_now") {
        return;
    }
    if !handler_dir().join("handler_file_zbc.so").exists() {
        return;
    }
    let mut o = TcmuOptions::new("zbc//tmp/zbc.raw");
    o.handler_dir = handler_dir();
    let e = TcmuStore::open(&o).unwrap_err();
    assert!(e.contains("handle_cmd"), "{e}");
    assert!(e.starts_with("handler_file_zbc.so: "), "{e}");
}
