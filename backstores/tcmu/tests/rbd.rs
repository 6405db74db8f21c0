//! Debian's unmodified handler_rbd.so against a real single-node Ceph cluster
//! (`scripts/ceph-test-cluster`): the size comes from the image, the shared store suite
//! passes on fresh RBD images, an event loop's queue completes on librbd's threads, and what
//! is written is what `rbd export` finds. Skipped with a message when Ceph is not installed
//! (see `ceph_cluster` for USTGT_RBD_TEST).

mod ceph_cluster;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backstore::{testsuite, BlockStore, IoDone, IoOp, IoQueue};
use ceph_cluster::Cluster;
use store_tcmu::{TcmuOptions, TcmuStore};

fn open(cluster: &Cluster, image: &str) -> TcmuStore {
    let _ = env_logger::builder().is_test(true).try_init();
    let o = TcmuOptions::new(&cluster.cfgstring(image));
    TcmuStore::open(&o).unwrap_or_else(|e| panic!("open {image}: {e}"))
}

fn reap_all(q: &mut dyn IoQueue, n: usize) -> Vec<IoDone> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
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
fn rbd_images_through_handler_rbd() {
    let Some(cluster) = Cluster::start("rbd_images_through_handler_rbd") else {
        return;
    };

    // The store suite, each check on a fresh 16 MiB image.
    static N: AtomicU32 = AtomicU32::new(0);
    testsuite::run_all(&|| {
        let name = format!("suite-{}", N.fetch_add(1, Ordering::SeqCst));
        cluster.create_image(&name, "16M");
        Box::new(open(&cluster, &name))
    });

    // The size is the image's; its errors name the image.
    cluster.create_image("q", "24M");
    let s = open(&cluster, "q");
    assert!(!s.synchronous(), "rbd is an asynchronous handler");
    assert_eq!(s.geometry().size_bytes(), 24 << 20);
    let caps = s.capabilities();
    assert!(caps.trim && !caps.volatile_cache, "{caps:?}");

    // An event loop's queue: writes and reads complete on librbd's threads.
    let mut q = s.open_queue().expect("a queue").expect("opened");
    let (chunk, n) = (64 * 1024u64, 120u64);
    for i in 0..n {
        let data = testsuite::pattern(i as u8, i * chunk, chunk as usize);
        let op = IoOp::Write {
            offset: i * chunk,
            data,
            fua: i % 5 == 0,
        };
        q.submit(i, op).expect("room");
    }
    q.commit().expect("commit");
    let done = reap_all(q.as_mut(), n as usize);
    assert!(done.iter().all(|d| d.result.is_ok()), "a write failed");
    for i in 0..n {
        let op = IoOp::Read {
            offset: i * chunk,
            len: chunk as usize,
        };
        q.submit(i, op).expect("room");
    }
    q.submit(1000, IoOp::Flush).expect("room");
    q.commit().expect("commit");
    for d in reap_all(q.as_mut(), n as usize + 1) {
        let data = d.result.expect("read");
        if d.tag != 1000 {
            let want = testsuite::pattern(d.tag as u8, d.tag * chunk, chunk as usize);
            assert!(data == want, "read back of chunk {}", d.tag);
        }
    }
    drop(q);
    drop(s);
    let image = cluster.export("q");
    assert_eq!(image.len(), 24 << 20);
    for i in 0..n {
        let at = (i * chunk) as usize;
        let want = testsuite::pattern(i as u8, i * chunk, chunk as usize);
        assert!(
            image[at..at + chunk as usize] == want[..],
            "rbd export: chunk {i}"
        );
    }
    assert!(
        image[(n * chunk) as usize..].iter().all(|&b| b == 0),
        "rbd export: beyond the written chunks"
    );

    let mut o = TcmuOptions::new(&cluster.cfgstring("nonexistent"));
    let e = TcmuStore::open(&o).expect_err("missing image");
    assert!(
        e.contains("cannot open the image \"rbd/nonexistent\": No such file"),
        "{e}"
    );
    o.cfgstring = format!("rbd/nopool/q;conf={}", cluster.conf.display());
    let e = TcmuStore::open(&o).expect_err("missing pool");
    assert!(
        e.contains("cannot open the pool \"nopool\": No such file"),
        "{e}"
    );
    o.cfgstring = cluster.cfgstring("q");
    o.size = Some(16 << 20);
    let e = TcmuStore::open(&o).expect_err("wrong size");
    assert!(e.contains("handler_rbd.so could not open"), "{e}");
    assert!(e.contains("Mismatched sizes"), "{e}");
}
