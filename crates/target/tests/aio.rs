//! The event loops with an io_uring store: many commands in flight, read-after-write, FUA,
//! SYNCHRONIZE CACHE, and libiscsi's tools against the server.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use scsi_core::{Device, DeviceConfig, LunTable};
use store_aio::{AioOptions, AioStore};
use ustgt_initiator::{cdb, LoginOptions, ScsiRequest, Session};
use ustgt_target::{ExportedTarget, Limits, Server, Setup, StopHandle};

const IQN: &str = "iqn.2026-11.io.ustgt:aio-test";
const BS: u32 = 512;

struct Running {
    addr: String,
    stop: StopHandle,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    path: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn start(name: &str, queue_depth: u32) -> Running {
    let path = std::env::temp_dir().join(format!("ustgt-aio-{}-{name}.img", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let opts = AioOptions {
        size: Some(16 << 20),
        create: true,
        queue_depth,
        ..AioOptions::default()
    };
    let store = AioStore::open(&path, opts).expect("open aio store");
    assert!(store.uring_available(), "io_uring is needed for this test");
    let dev = Device::new(Arc::new(store), DeviceConfig::new("aio-test".into()));
    let server = Server::bind(Setup {
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
    let addr = server.local_addrs()[0].to_string();
    let stop = StopHandle::new();
    let s2 = stop.clone();
    let thread = std::thread::spawn(move || server.run(s2));
    Running {
        addr,
        stop,
        thread: Some(thread),
        path,
    }
}

fn login(r: &Running) -> Session {
    let mut s = Session::login(r.addr.as_str(), LoginOptions::normal(IQN)).expect("login");
    s.clear_unit_attention(0).expect("clear UA");
    s
}

fn block(seed: u64, lba: u64) -> Vec<u8> {
    (0..BS as u64)
        .map(|i| (seed.wrapping_mul(131) ^ lba.wrapping_mul(7919) ^ i) as u8)
        .collect()
}

#[test]
fn many_commands_in_flight_verify() {
    let r = start("load", 8);
    let mut s = login(&r);
    // Waves of 48 writes (more than the queue depth of 8: the backlog is used), then reads.
    for wave in 0..4u64 {
        let mut itts = HashMap::new();
        for i in 0..48u64 {
            let lba = i * 9 + wave;
            let n = 1 + (i % 4);
            let data: Vec<u8> = (0..n).flat_map(|b| block(wave, lba + b)).collect();
            let mut c = cdb::write16(lba, n as u32);
            if i % 7 == 0 {
                c[1] |= 0x08; // FUA
            }
            let itt = s.submit(ScsiRequest::write(0, &c, data)).expect("submit");
            itts.insert(itt, ());
        }
        while !itts.is_empty() {
            let (itt, out) = s.wait_any().expect("wait");
            let out = out.expect("outcome");
            assert!(out.good(), "write: {}", out.describe());
            itts.remove(&itt);
        }
        let mut reads = HashMap::new();
        for i in 0..48u64 {
            let lba = i * 9 + wave;
            let n = 1 + (i % 4);
            let req = ScsiRequest::read(0, &cdb::read16(lba, n as u32), n as u32 * BS);
            reads.insert(s.submit(req).expect("submit"), (lba, n));
        }
        while !reads.is_empty() {
            let (itt, out) = s.wait_any().expect("wait");
            let out = out.expect("outcome");
            assert!(out.good(), "read: {}", out.describe());
            let (lba, n) = reads.remove(&itt).expect("known itt");
            let want: Vec<u8> = (0..n).flat_map(|b| block(wave, lba + b)).collect();
            assert_eq!(out.data_in, want, "data at lba {lba}");
        }
    }
    // SYNCHRONIZE CACHE(10) goes through the queue too.
    let sync = s
        .scsi(ScsiRequest::none(0, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]))
        .expect("sync cache");
    assert!(sync.good(), "{}", sync.describe());
    // Out of range: checked before queuing.
    let bad = s
        .scsi(ScsiRequest::read(0, &cdb::read16(16 << 11, 1), BS))
        .expect("read");
    assert_eq!(bad.sense.map(|x| (x.key, x.asc)), Some((5, 0x21)));
    let _ = s.logout();
    // The data is in the file.
    let on_disk = std::fs::read(&r.path).expect("read file");
    assert_eq!(&on_disk[9 * 512..10 * 512], block(0, 9).as_slice());
}

#[test]
fn connection_dropped_with_io_in_flight() {
    let r = start("drop", 4);
    let mut s = login(&r);
    for i in 0..32u64 {
        s.submit(ScsiRequest::write(
            0,
            &cdb::write16(i * 8, 8),
            vec![i as u8; 4096],
        ))
        .expect("submit");
    }
    drop(s);
    std::thread::sleep(Duration::from_millis(100));
    // The server keeps serving.
    let mut s = login(&r);
    let out = s.read16(0, 0, 1, BS).expect("read");
    assert!(out.good(), "{}", out.describe());
}

fn tool(name: &str, url: &str) -> Option<String> {
    let out = std::process::Command::new(name).arg(url).output().ok()?;
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn libiscsi_tools() {
    let r = start("tools", 128);
    let url = format!("iscsi://{}/{IQN}/0", r.addr);
    let Some(inq) = tool("iscsi-inq", &url) else {
        eprintln!("libiscsi tools not installed; skipped");
        return;
    };
    assert!(inq.contains("USTGT"), "{inq}");
    let cap = tool("iscsi-readcapacity16", &url).unwrap_or_default();
    assert!(
        cap.contains("32767") || cap.contains("Returned Logical Block Address:32767"),
        "{cap}"
    );
}
