//! The io_uring network engine end to end, with the in-tree initiator: login, READ/WRITE with
//! data verification (immediate data, R2T chains, multi-PDU Data-In, digests), many commands in
//! flight over an io_uring store, connections dropped mid-I/O (also with sends blocked on a full
//! socket), session reinstatement across loops, protocol timers, and stopping with connections
//! open.
use std::collections::HashMap;
use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scsi_core::{Device, DeviceConfig, LunTable};
use store_aio::{AioOptions, AioStore};
use store_ram::RamStore;
use ustgt_initiator::wire::Bhs;
use ustgt_initiator::{cdb, LoginOptions, ScsiRequest, Session};
use ustgt_target::{ExportedTarget, Limits, NetEngine, Server, Setup, StatsHandle, StopHandle};

const IQN: &str = "iqn.2026-11.io.ustgt:uring-test";
const BS: u32 = 512;
/// Blocks of every LUN (16 MiB).
const BLOCKS: u64 = 32768;

struct Running {
    addr: String,
    stop: StopHandle,
    stats: StatsHandle,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    path: Option<PathBuf>,
}

impl Running {
    /// Stop the server; how long `run` took to return, and what it returned.
    fn stop(&mut self) -> (Duration, std::io::Result<()>) {
        let t = Instant::now();
        self.stop.stop();
        let r = match self.thread.take() {
            Some(h) => h.join().expect("server thread"),
            None => Ok(()),
        };
        (t.elapsed(), r)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop();
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A uring server on an ephemeral port with one 16 MiB LUN: RAM, or an io_uring file store
/// (`aio`) when a name is given.
fn start(aio: Option<&str>, limits: Limits) -> Running {
    let _ = env_logger::builder().is_test(true).try_init();
    let (store, path): (Arc<dyn backstore::BlockStore>, _) = match aio {
        None => (
            Arc::new(RamStore::new(BLOCKS * u64::from(BS), BS, false).expect("ram store")),
            None,
        ),
        Some(name) => {
            let path =
                std::env::temp_dir().join(format!("ustgt-uring-{}-{name}.img", std::process::id()));
            let _ = std::fs::remove_file(&path);
            let opts = AioOptions {
                size: Some(BLOCKS * u64::from(BS)),
                create: true,
                queue_depth: 8,
                ..AioOptions::default()
            };
            let store = AioStore::open(&path, opts).expect("open aio store");
            assert!(store.uring_available(), "io_uring is needed for this test");
            (Arc::new(store), Some(path))
        }
    };
    let dev = Device::new(store, DeviceConfig::new("uring-test".into()));
    let mut server = Server::bind(Setup {
        portals: vec![([127, 0, 0, 1], 0).into()],
        targets: vec![ExportedTarget {
            iqn: IQN.into(),
            alias: None,
            luns: Arc::new(LunTable::new(vec![(0, Arc::new(dev))])),
        }],
        limits,
        workers: 2,
    })
    .expect("bind");
    server.set_net(NetEngine::Uring);
    let addr = server.local_addrs()[0].to_string();
    let stats = server.stats();
    let stop = StopHandle::new();
    let s2 = stop.clone();
    let thread = std::thread::spawn(move || server.run(s2));
    Running {
        addr,
        stop,
        stats,
        thread: Some(thread),
        path,
    }
}

fn login_with(r: &Running, opts: LoginOptions) -> Session {
    let mut s = Session::login(r.addr.as_str(), opts).expect("login");
    s.clear_unit_attention(0).expect("clear UA");
    s
}

fn login(r: &Running) -> Session {
    login_with(r, LoginOptions::normal(IQN))
}

/// Deterministic data for `len` bytes at `lba`, varied by `seed`.
fn pattern(seed: u64, lba: u64, len: usize) -> Vec<u8> {
    let mut x =
        seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ lba.wrapping_mul(0xff51_afd7_ed55_8ccd) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn write_verify(s: &mut Session, seed: u64, lba: u64, blocks: u32) {
    let data = pattern(seed, lba, (blocks * BS) as usize);
    let w = s.write16(0, lba, &data, BS).expect("WRITE(16)");
    assert!(w.good(), "write {blocks} at {lba}: {}", w.describe());
    let r = s.read16(0, lba, blocks, BS).expect("READ(16)");
    assert!(r.good(), "read {blocks} at {lba}: {}", r.describe());
    assert!(
        r.data_in == data,
        "data read back at lba {lba} ({blocks} blocks)"
    );
}

/// Every loop of the server runs the io_uring engine (none fell back to epoll).
fn assert_uring(r: &Running) {
    let st = r.stats.snapshot();
    assert_eq!(st.uring_loops, 2, "loops on io_uring: {st}");
}

#[test]
fn login_write_read_verify() {
    let r = start(None, Limits::default());
    // Small (immediate data), medium, and 1 MiB (R2T chains, Data-In split in many PDUs).
    let mut s = login(&r);
    for (i, blocks) in [1u32, 8, 64, 300, 2048].into_iter().enumerate() {
        write_verify(&mut s, 1, i as u64 * 4096, blocks);
    }
    // 8 MiB in one READ: far more than a socket buffer, so sends complete short and resume.
    let r8 = s.read16(0, 0, 16384, BS).expect("READ(16) 8 MiB");
    assert!(r8.good(), "{}", r8.describe());
    assert_eq!(r8.data_in.len(), 8 << 20);
    assert!(r8.data_in[..BS as usize] == pattern(1, 0, BS as usize)[..]);
    let _ = s.logout();
    // Header and data digests.
    let mut d = login_with(&r, LoginOptions::normal(IQN).digests());
    assert!(d.negotiated.header_digest && d.negotiated.data_digest);
    write_verify(&mut d, 2, 100, 77);
    write_verify(&mut d, 3, 9000, 1024);
    let st = r.stats.snapshot();
    assert!(
        st.commands >= 14 && st.polls > 0 && st.reads > 0 && st.writes > 0,
        "{st}"
    );
    assert_uring(&r);
}

#[test]
fn many_commands_in_flight_over_an_io_uring_store() {
    let r = start(Some("load"), Limits::default());
    let mut s = login(&r);
    // Waves of 96 commands (more than the store queue depth of 8: its backlog is used).
    for wave in 0..3u64 {
        let mut writes = HashMap::new();
        for i in 0..96u64 {
            let (lba, n) = (i * 17 + wave, 1 + (i % 8) as u32);
            let data = pattern(wave, lba, (n * BS) as usize);
            let req = ScsiRequest::write(0, &cdb::write16(lba, n), data);
            writes.insert(s.submit(req).expect("submit"), ());
        }
        while !writes.is_empty() {
            let (itt, out) = s.wait_any().expect("wait");
            let out = out.expect("outcome");
            assert!(out.good(), "write: {}", out.describe());
            writes.remove(&itt);
        }
        let mut reads = HashMap::new();
        for i in 0..96u64 {
            let (lba, n) = (i * 17 + wave, 1 + (i % 8) as u32);
            let req = ScsiRequest::read(0, &cdb::read16(lba, n), n * BS);
            reads.insert(s.submit(req).expect("submit"), (lba, n));
        }
        while !reads.is_empty() {
            let (itt, out) = s.wait_any().expect("wait");
            let out = out.expect("outcome");
            assert!(out.good(), "read: {}", out.describe());
            let (lba, n) = reads.remove(&itt).expect("known itt");
            assert!(
                out.data_in == pattern(wave, lba, (n * BS) as usize),
                "data at lba {lba}"
            );
        }
    }
    let sync = s
        .scsi(ScsiRequest::none(0, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]))
        .expect("sync cache");
    assert!(sync.good(), "{}", sync.describe());
    assert_uring(&r);
}

#[test]
fn connections_dropped_mid_io() {
    let r = start(Some("drop"), Limits::default());
    // Commands in flight in the store and on the socket, then the connection goes away.
    let mut s = login(&r);
    for i in 0..32u64 {
        let req = ScsiRequest::write(0, &cdb::write16(i * 8, 8), vec![i as u8; 4096]);
        s.submit(req).expect("submit");
        let req = ScsiRequest::read(0, &cdb::read16(i * 64, 64), 64 * BS);
        s.submit(req).expect("submit");
    }
    drop(s);
    // Large reads whose replies are never read: the target's sends block on a full socket,
    // then the peer closes with them in flight.
    let mut s = login(&r);
    for _ in 0..24 {
        let req = ScsiRequest::read(0, &cdb::read16(0, 2048), 2048 * BS);
        s.submit(req).expect("submit");
    }
    std::thread::sleep(Duration::from_millis(200));
    drop(s);
    // Half a PDU, then the connection closes.
    let mut raw = TcpStream::connect(r.addr.as_str()).expect("connect");
    std::io::Write::write_all(&mut raw, &[0x43, 0x87, 0, 0, 0, 0, 0, 0, 0, 0]).expect("write");
    drop(raw);
    std::thread::sleep(Duration::from_millis(100));
    // The server keeps serving.
    let mut s = login(&r);
    write_verify(&mut s, 4, 500, 16);
    assert_uring(&r);
}

#[test]
fn stop_with_connections_open_and_sends_blocked() {
    let mut r = start(None, Limits::default());
    let mut idle = login(&r);
    let mut busy = login(&r);
    for _ in 0..24 {
        let req = ScsiRequest::read(0, &cdb::read16(0, 2048), 2048 * BS);
        busy.submit(req).expect("submit");
    }
    std::thread::sleep(Duration::from_millis(200));
    let (took, result) = r.stop();
    result.expect("run returns Ok");
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    idle.wait_closed(Duration::from_secs(3))
        .expect("idle connection closed at stop");
}

#[test]
fn reinstatement_closes_the_old_connection() {
    let r = start(None, Limits::default());
    let mut a = login(&r);
    let t = a.test_unit_ready(0).expect("TUR");
    assert!(t.good(), "{}", t.describe());
    // The second connection lands on the other loop (round robin): the old one is closed
    // through a message to its loop.
    let mut opts = LoginOptions::normal(IQN);
    opts.isid = a.isid;
    let mut b = Session::login(r.addr.as_str(), opts).expect("login");
    a.wait_closed(Duration::from_secs(3))
        .expect("old connection closed");
    b.clear_unit_attention(0).expect("clear UA");
    write_verify(&mut b, 5, 700, 8);
}

#[test]
fn protocol_timers_fire() {
    let limits = Limits {
        login_timeout_ms: 300,
        nop_interval_ms: 200,
        ..Limits::default()
    };
    let r = start(None, limits);
    // A connection that never logs in is closed when the login timer expires.
    let mut raw = TcpStream::connect(r.addr.as_str()).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let n = raw.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected the connection to close");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    // An idle session gets a NOP-In ping.
    let mut s = login(&r);
    let ping = s
        .recv_pdu(Duration::from_secs(3))
        .expect("a PDU while idle");
    assert!(matches!(ping.bhs, Bhs::NopIn(_)), "{:?}", ping.bhs);
}
