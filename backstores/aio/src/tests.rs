use super::*;
use backstore::{testsuite, IoDone, IoOp};
use std::collections::HashMap;
use std::sync::atomic::AtomicU32;

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("store-aio-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn opts(size: u64) -> AioOptions {
    AioOptions {
        size: Some(size),
        create: true,
        ..AioOptions::default()
    }
}

fn store(dir: &TempDir, name: &str, o: AioOptions) -> AioStore {
    AioStore::open(dir.path(name), o).expect("open aio store")
}

/// Waits for completions until `n` have arrived (bounded).
fn wait_for(q: &mut dyn IoQueue, n: usize) -> HashMap<u64, io::Result<Vec<u8>>> {
    let mut got = HashMap::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut out: Vec<IoDone> = Vec::new();
    while got.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "completions timed out"
        );
        q.reap(&mut out);
        for d in out.drain(..) {
            assert!(got.insert(d.tag, d.result).is_none(), "tag completed twice");
        }
        if got.len() < n {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    got
}

fn queue(s: &AioStore) -> Box<dyn IoQueue> {
    s.open_queue()
        .expect("io_uring available")
        .expect("open queue")
}

#[test]
fn conformance_sync_path() {
    let dir = TempDir::new();
    let n = AtomicU32::new(0);
    testsuite::run_all(&|| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        Box::new(store(&dir, &format!("c{i}"), opts(1 << 20)))
    });
}

#[test]
fn read_only_sync_path() {
    let dir = TempDir::new();
    drop(store(&dir, "ro", opts(1 << 20)));
    let ro = AioStore::open(
        dir.path("ro"),
        AioOptions {
            read_only: true,
            ..AioOptions::default()
        },
    )
    .expect("open read-only");
    testsuite::check_read_only(&ro);
    let mut q = queue(&ro);
    q.submit(
        1,
        IoOp::Write {
            offset: 0,
            data: vec![1; 512],
            fua: false,
        },
    )
    .expect("submit");
    let got = wait_for(q.as_mut(), 1);
    assert_eq!(
        got[&1].as_ref().unwrap_err().raw_os_error(),
        Some(libc::EROFS)
    );
}

#[test]
fn many_in_flight_read_after_write() {
    let dir = TempDir::new();
    let s = store(&dir, "a", opts(32 << 20));
    let mut q = queue(&s);
    // 64 writes of various sizes at once, some larger than a registered buffer.
    let mut expect = Vec::new();
    for i in 0..64u64 {
        let len = if i % 8 == 0 { 256 * 1024 } else { 4096 };
        let off = i * 384 * 1024 + (i % 2) * 512;
        let data = testsuite::pattern(i as u8, off, len);
        q.submit(
            i,
            IoOp::Write {
                offset: off,
                data: data.clone(),
                fua: i % 5 == 0,
            },
        )
        .expect("queue has room");
        expect.push((off, data));
    }
    assert_eq!(q.in_flight(), 64);
    q.commit().expect("commit");
    let got = wait_for(q.as_mut(), 64);
    for (i, (_, data)) in expect.iter().enumerate() {
        // The write's buffer comes back.
        assert_eq!(got[&(i as u64)].as_ref().expect("write ok"), data);
    }
    assert_eq!(q.in_flight(), 0);
    for (i, (off, data)) in expect.iter().enumerate() {
        q.submit(
            100 + i as u64,
            IoOp::Read {
                offset: *off,
                len: data.len(),
            },
        )
        .expect("room");
    }
    q.commit().expect("commit");
    let got = wait_for(q.as_mut(), 64);
    for (i, (off, data)) in expect.iter().enumerate() {
        assert_eq!(
            got[&(100 + i as u64)].as_ref().expect("read ok"),
            data,
            "at {off}"
        );
        // The sync path sees the same bytes.
        let mut b = vec![0u8; data.len()];
        s.read(*off, &mut b).expect("sync read");
        assert_eq!(&b, data);
    }
}

#[test]
fn fua_and_flush_complete() {
    let dir = TempDir::new();
    let s = store(&dir, "f", opts(1 << 20));
    let mut q = queue(&s);
    q.submit(
        1,
        IoOp::Write {
            offset: 4096,
            data: vec![0xAB; 8192],
            fua: true,
        },
    )
    .expect("room");
    q.submit(2, IoOp::Flush).expect("room");
    q.commit().expect("commit");
    let got = wait_for(q.as_mut(), 2);
    assert_eq!(got[&1].as_ref().expect("fua").len(), 8192);
    assert!(got[&2].as_ref().expect("flush").is_empty());
    let mut b = vec![0u8; 8192];
    std::fs::File::open(dir.path("f"))
        .and_then(|f| std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, 4096))
        .expect("read back");
    assert!(b.iter().all(|x| *x == 0xAB));
}

#[test]
fn queue_full_hands_the_op_back() {
    let dir = TempDir::new();
    let s = store(
        &dir,
        "q",
        AioOptions {
            queue_depth: 4,
            ..opts(1 << 20)
        },
    );
    let mut q = queue(&s);
    for t in 0..4 {
        q.submit(
            t,
            IoOp::Read {
                offset: t * 512,
                len: 512,
            },
        )
        .expect("room");
    }
    let back = q.submit(
        9,
        IoOp::Read {
            offset: 0,
            len: 512,
        },
    );
    assert_eq!(
        back,
        Err((
            9,
            IoOp::Read {
                offset: 0,
                len: 512
            }
        ))
    );
    q.commit().expect("commit");
    let got = wait_for(q.as_mut(), 4);
    assert!(got
        .values()
        .all(|r| r.as_ref().is_ok_and(|d| d == &vec![0u8; 512])));
    q.submit(
        9,
        IoOp::Read {
            offset: 0,
            len: 512,
        },
    )
    .expect("room again");
    q.commit().expect("commit");
    assert!(wait_for(q.as_mut(), 1)[&9].is_ok());
}

#[test]
fn errors_complete_without_the_kernel() {
    let dir = TempDir::new();
    let s = store(&dir, "e", opts(1 << 20));
    let mut q = queue(&s);
    q.submit(
        1,
        IoOp::Read {
            offset: 1 << 20,
            len: 512,
        },
    )
    .expect("room");
    q.submit(
        2,
        IoOp::Write {
            offset: (1 << 20) - 512,
            data: vec![0; 1024],
            fua: false,
        },
    )
    .expect("room");
    s.shared.poison();
    q.submit(
        3,
        IoOp::Write {
            offset: 0,
            data: vec![0; 512],
            fua: false,
        },
    )
    .expect("room");
    q.submit(4, IoOp::Flush).expect("room");
    q.submit(
        5,
        IoOp::Read {
            offset: 0,
            len: 512,
        },
    )
    .expect("room");
    q.commit().expect("commit");
    let got = wait_for(q.as_mut(), 5);
    let code = |t: u64| got[&t].as_ref().err().and_then(|e| e.raw_os_error());
    assert_eq!(code(1), Some(libc::EINVAL));
    assert_eq!(code(2), Some(libc::EINVAL));
    assert_eq!(code(3), Some(libc::EIO));
    assert_eq!(code(4), Some(libc::EIO));
    assert!(got[&5].is_ok(), "reads still work on a poisoned store");
    // The sync path is poisoned too.
    assert_eq!(
        s.write(0, &[0; 512], false).unwrap_err().raw_os_error(),
        Some(libc::EIO)
    );
    assert_eq!(s.flush().unwrap_err().raw_os_error(), Some(libc::EIO));
}

#[test]
fn completion_fd_becomes_readable() {
    let dir = TempDir::new();
    let s = store(&dir, "p", opts(1 << 20));
    let mut q = queue(&s);
    q.submit(
        7,
        IoOp::Read {
            offset: 0,
            len: 4096,
        },
    )
    .expect("room");
    q.commit().expect("commit");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if eventfd_count(q.completion_fd()) > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "eventfd never signalled"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(wait_for(q.as_mut(), 1)[&7].is_ok());
}

/// The counter of an eventfd, from /proc/self/fdinfo.
fn eventfd_count(fd: std::os::fd::RawFd) -> u64 {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("eventfd-count:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

#[test]
fn direct_io_round_trip() {
    let dir = TempDir::new();
    let o = AioOptions {
        direct: true,
        block_size: 4096,
        ..opts(4 << 20)
    };
    let s = match AioStore::open(dir.path("d"), o) {
        Ok(s) => s,
        // tmpfs has no O_DIRECT.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) || e.to_string().contains("O_DIRECT") => {
            return
        }
        Err(e) => panic!("open: {e}"),
    };
    let mut q = queue(&s);
    let data = testsuite::pattern(3, 8192, 512 * 1024);
    q.submit(
        1,
        IoOp::Write {
            offset: 8192,
            data: data.clone(),
            fua: true,
        },
    )
    .expect("room");
    q.commit().expect("commit");
    assert!(wait_for(q.as_mut(), 1)[&1].is_ok());
    q.submit(
        2,
        IoOp::Read {
            offset: 8192,
            len: data.len(),
        },
    )
    .expect("room");
    q.commit().expect("commit");
    assert_eq!(wait_for(q.as_mut(), 1)[&2].as_ref().expect("read"), &data);
}

#[test]
fn drop_waits_for_in_flight_io() {
    let dir = TempDir::new();
    let s = store(&dir, "w", opts(4 << 20));
    let mut q = queue(&s);
    for t in 0..32u64 {
        q.submit(
            t,
            IoOp::Write {
                offset: t * 65536,
                data: vec![t as u8 + 1; 65536],
                fua: false,
            },
        )
        .expect("room");
    }
    q.commit().expect("commit");
    drop(q);
    let mut b = vec![0u8; 65536];
    s.read(31 * 65536, &mut b).expect("read");
    assert!(b.iter().all(|x| *x == 32));
}

#[test]
fn fallback_without_uring() {
    let dir = TempDir::new();
    let mut s = store(&dir, "n", opts(1 << 20));
    assert!(s.uring_available());
    s.disable_uring();
    assert!(s.open_queue().is_none());
    assert!(!s.uring_available());
    s.write(0, &[5; 512], true).expect("sync write");
    let mut b = [0u8; 512];
    s.read(0, &mut b).expect("sync read");
    assert_eq!(b, [5; 512]);
}

#[test]
fn bad_queue_depth_and_missing_size() {
    let dir = TempDir::new();
    let e = AioStore::open(
        dir.path("x"),
        AioOptions {
            queue_depth: 0,
            ..opts(1 << 20)
        },
    );
    assert_eq!(e.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    let e = AioStore::open(
        dir.path("y"),
        AioOptions {
            create: true,
            ..AioOptions::default()
        },
    );
    assert_eq!(e.unwrap_err().kind(), io::ErrorKind::NotFound);
}
