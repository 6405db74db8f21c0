use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use backstore::{BlockStore, Capabilities, Extent, Geometry, IoDone, IoOp, IoQueue};

use crate::testutil::*;
use crate::{Device, DeviceConfig, LunTable, Request, Started, Status, TaskAttr};

/// A MemStore with a queue that runs operations on `take`.
struct AsyncMem(Arc<MemStore>);

struct FakeQueue {
    store: Arc<MemStore>,
    done: VecDeque<IoDone>,
}

impl IoQueue for FakeQueue {
    fn submit(&mut self, tag: u64, op: IoOp) -> Result<(), (u64, IoOp)> {
        let result = match op {
            IoOp::Read { offset, len } => {
                let mut b = vec![0; len];
                self.store.read(offset, &mut b).map(|()| b)
            }
            IoOp::Write { offset, data, fua } => {
                self.store.write(offset, &data, fua).map(|()| data)
            }
            IoOp::Flush => self.store.flush().map(|()| Vec::new()),
        };
        self.done.push_back(IoDone { tag, result });
        Ok(())
    }
    fn commit(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn completion_fd(&self) -> RawFd {
        -1
    }
    fn reap(&mut self, out: &mut Vec<IoDone>) {
        out.extend(self.done.drain(..));
    }
    fn in_flight(&self) -> usize {
        self.done.len()
    }
}

impl BlockStore for AsyncMem {
    fn describe(&self) -> String {
        "async-mem".into()
    }
    fn geometry(&self) -> Geometry {
        self.0.geometry()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.read(offset, buf)
    }
    fn write(&self, offset: u64, buf: &[u8], fua: bool) -> io::Result<()> {
        self.0.write(offset, buf, fua)
    }
    fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
    fn extents(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        self.0.extents(offset, len)
    }
    fn open_queue(&self) -> Option<io::Result<Box<dyn IoQueue>>> {
        Some(Ok(Box::new(FakeQueue {
            store: self.0.clone(),
            done: VecDeque::new(),
        })))
    }
}

fn table(write_cache: bool) -> (Arc<MemStore>, LunTable) {
    let mem = Arc::new(MemStore::new(1024, 512));
    let mut cfg = DeviceConfig::new("s".into());
    cfg.write_cache = write_cache;
    let dev = Device::new(Arc::new(AsyncMem(mem.clone())), cfg);
    (mem, LunTable::new(vec![(0, Arc::new(dev))]))
}

fn req<'a>(cdb: &'a [u8], data: &'a [u8]) -> Request<'a> {
    Request {
        nexus: N1,
        cdb,
        data_out: data,
        expected_len: data.len() as u32,
        attr: TaskAttr::Simple,
    }
}

fn io(s: Started) -> (IoOp, crate::PendingIo) {
    match s {
        Started::Io { op, pending } => (op, pending),
        other => panic!("expected queued I/O, got {other:?}"),
    }
}

fn done(s: Started) -> crate::Response {
    match s {
        Started::Done(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// Clears the power-on unit attention through the async path.
fn clear(t: &LunTable) {
    let r = done(t.start(0, &req(&cdb10(0x28, 0, 0, 1), &[])));
    assert_sense(&r, 6, 0x2900);
}

#[test]
fn read_write_flush_are_queued() {
    let (mem, t) = table(true);
    clear(&t);
    mem.data.lock().unwrap()[512..1024].fill(0x11);
    let (op, p) = io(t.start(0, &req(&cdb10(0x28, 0, 1, 1), &[])));
    assert_eq!(
        op,
        IoOp::Read {
            offset: 512,
            len: 512
        }
    );
    let r = p.finish(Ok(vec![0x11; 512]));
    assert_eq!((r.status, r.data_in.len()), (Status::GOOD, 512));

    let data = vec![0x22; 1024];
    let (op, p) = io(t.start(0, &req(&cdb10(0x2A, 0x08, 4, 2), &data)));
    assert_eq!(
        op,
        IoOp::Write {
            offset: 2048,
            data: data.clone(),
            fua: true
        }
    );
    let r = p.run_sync(op);
    assert_eq!((r.status, r.data_out_wanted), (Status::GOOD, 1024));
    assert_eq!(&mem.data.lock().unwrap()[2048..3072], &data[..]);

    let (op, p) = io(t.start(0, &req(&cdb16(0x91, 0, 0, 0), &[])));
    assert_eq!(op, IoOp::Flush);
    assert_eq!(p.finish(Ok(Vec::new())).status, Status::GOOD);
}

#[test]
fn wce_off_makes_writes_fua() {
    let (_, t) = table(false);
    clear(&t);
    let (op, _) = io(t.start(0, &req(&[0x0A, 0, 0, 1, 1, 0], &[1; 512])));
    assert!(matches!(
        op,
        IoOp::Write {
            fua: true,
            offset: 512,
            ..
        }
    ));
}

#[test]
fn checks_complete_at_once() {
    let (mem, t) = table(true);
    // Unit attention first, then range, protect, reserved bits, zero length.
    clear(&t);
    assert_sense(
        &done(t.start(0, &req(&cdb10(0x28, 0, 1024, 1), &[]))),
        5,
        0x2100,
    );
    assert_invalid_cdb(
        &done(t.start(0, &req(&cdb10(0x28, 0x20, 0, 1), &[]))),
        1,
        Some(7),
    );
    assert_sense(
        &done(t.start(0, &req(&cdb10(0x35, 0, 1000, 25), &[]))),
        5,
        0x2100,
    );
    assert!(done(t.start(0, &req(&cdb10(0x28, 0, 0, 0), &[])))
        .data_in
        .is_empty());
    // Short Data-Out with no whole block: GOOD without I/O.
    let r = done(t.start(0, &req(&cdb10(0x2A, 0, 0, 1), &[0; 100])));
    assert_eq!((r.status, r.data_out_wanted), (Status::GOOD, 512));
    // Other commands run synchronously.
    assert_eq!(done(t.start(0, &req(&[0; 6], &[]))).status, Status::GOOD);
    // Unmapped LUN.
    assert_sense(
        &done(t.start(7, &req(&cdb10(0x28, 0, 0, 1), &[]))),
        5,
        0x2500,
    );
    assert!(mem.calls().is_empty());
}

#[test]
fn errors_map_like_the_sync_path() {
    let (_, t) = table(true);
    clear(&t);
    let e = |n| Err(io::Error::from_raw_os_error(n));
    let (_, p) = io(t.start(0, &req(&cdb10(0x28, 0, 0, 1), &[])));
    assert_sense(&p.finish(e(5)), 3, 0x1100);
    let (_, p) = io(t.start(0, &req(&cdb10(0x28, 0, 0, 1), &[])));
    assert_sense(&p.finish(Ok(vec![0; 100])), 3, 0x1100);
    let (_, p) = io(t.start(0, &req(&cdb10(0x2A, 0, 0, 1), &[0; 512])));
    assert_sense(&p.finish(e(5)), 3, 0x0C00);
    let (_, p) = io(t.start(0, &req(&cdb10(0x2A, 0, 0, 1), &[0; 512])));
    let r = p.finish(e(28));
    assert_sense(&r, 7, 0x2707);
    assert_eq!(r.data_out_wanted, 512);
    let (_, p) = io(t.start(0, &req(&cdb10(0x35, 0, 0, 0), &[])));
    assert_sense(&p.finish(e(5)), 3, 0x0C00);
    let (_, p) = io(t.start(0, &req(&cdb10(0x28, 0, 0, 1), &[])));
    assert_sense(&p.finish(e(22)), 4, 0x4400);
}

#[test]
fn sync_store_never_queues() {
    let (_, d) = dev();
    let t = LunTable::new(vec![(0, Arc::new(d))]);
    assert!(matches!(
        t.start(0, &req(&cdb10(0x28, 0, 0, 1), &[])),
        Started::Done(_)
    ));
}
