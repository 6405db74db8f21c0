//! CDB path micro-benchmarks: `cargo bench -p scsi-core`.
//!
//! `LunTable::execute` for READ(16) / WRITE(16) of 4 KiB and 512 B on a RAM store (a memfd,
//! so a read is one `pread` on shared memory, the same as a file LUN on /dev/shm), on a null
//! store (the CDB path without store I/O), INQUIRY and TEST UNIT READY; and the store call
//! alone. These are the "SCSI execute" and "store I/O" stages of docs/performance.md.

// One small timing harness shared by every crate's benches.
#[path = "../../iscsi-wire/benches/common/mod.rs"]
mod common;

use std::sync::Arc;

use backstore::BlockStore;
use common::Bench;
use scsi_core::{Device, DeviceConfig, LunTable, NexusId, Request, Status, TaskAttr};
use store_null::NullStore;
use store_ram::RamStore;

const SIZE: u64 = 64 << 20;
const NEXUS: NexusId = NexusId(1);

fn rw16(write: bool, lba: u64, blocks: u32) -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = if write { 0x8a } else { 0x88 };
    cdb[2..10].copy_from_slice(&lba.to_be_bytes());
    cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
    cdb
}

fn req<'a>(cdb: &'a [u8], data_out: &'a [u8], expected_len: u32) -> Request<'a> {
    Request {
        nexus: NEXUS,
        cdb,
        data_out,
        expected_len,
        attr: TaskAttr::Simple,
    }
}

/// A one-LUN table over `store`, with the power-on unit attention already consumed.
fn table(store: Arc<dyn BlockStore>) -> LunTable {
    let dev = Arc::new(Device::new(store, DeviceConfig::new("bench0001".into())));
    let t = LunTable::new(vec![(0, dev)]);
    let tur = [0u8; 6];
    for _ in 0..4 {
        if t.execute(0, &req(&tur, &[], 0)).status == Status::GOOD {
            return t;
        }
    }
    panic!("TEST UNIT READY never returned GOOD");
}

/// A pseudo-random LBA sequence aligned to `align` blocks, inside the store.
struct Lbas {
    s: u64,
    blocks: u64,
    align: u64,
}

impl Lbas {
    fn next(&mut self) -> u64 {
        self.s ^= self.s << 13;
        self.s ^= self.s >> 7;
        self.s ^= self.s << 17;
        (self.s % (self.blocks / self.align)) * self.align
    }
}

fn bench_rw(b: &Bench, kind: &str, store: Arc<dyn BlockStore>) {
    // Touch every page once so that no benchmark pays first-touch page faults.
    let chunk = vec![0x11u8; 1 << 20];
    for off in (0..SIZE).step_by(chunk.len()) {
        store.write(off, &chunk, false).expect("prefill");
    }
    let t = table(store);
    let blocks = SIZE / 512;
    for len in [4096u32, 512] {
        let n = len / 512;
        let mut lbas = Lbas {
            s: 0x9e37_79b9_7f4a_7c15,
            blocks,
            align: u64::from(n),
        };
        b.run(&format!("{kind}/read16-{len}"), u64::from(len), || {
            let cdb = rw16(false, lbas.next(), n);
            let r = t.execute(0, &req(&cdb, &[], len));
            assert_eq!(r.status, Status::GOOD);
            r.data_in.len()
        });
        let data = vec![0x22u8; len as usize];
        b.run(&format!("{kind}/write16-{len}"), u64::from(len), || {
            let cdb = rw16(true, lbas.next(), n);
            let r = t.execute(0, &req(&cdb, &data, len));
            assert_eq!(r.status, Status::GOOD);
            r.data_out_wanted
        });
    }
}

fn bench_small(b: &Bench) {
    let t = table(Arc::new(NullStore::new(SIZE, 512).expect("null store")));
    let inquiry = [0x12, 0, 0, 0, 96, 0];
    b.run("null/inquiry", 0, || {
        t.execute(0, &req(&inquiry, &[], 96)).data_in.len()
    });
    let vpd83 = [0x12, 1, 0x83, 0, 255, 0];
    b.run("null/inquiry-vpd83", 0, || {
        t.execute(0, &req(&vpd83, &[], 255)).data_in.len()
    });
    let tur = [0u8; 6];
    b.run("null/test-unit-ready", 0, || {
        t.execute(0, &req(&tur, &[], 0)).status
    });
    let rc16 = [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
    b.run("null/read-capacity16", 0, || {
        t.execute(0, &req(&rc16, &[], 32)).data_in.len()
    });
}

/// The store call alone (no CDB decoding): the "store I/O" stage.
fn bench_store(b: &Bench, store: &dyn BlockStore) {
    let mut buf = vec![0u8; 4096];
    let mut lbas = Lbas {
        s: 0x1234_5678,
        blocks: SIZE / 512,
        align: 8,
    };
    b.run("ram/store-read-4096", 4096, || {
        let off = lbas.next() * 512;
        store.read(off, &mut buf).map(|_| buf[0]).unwrap_or(0)
    });
    b.run("ram/store-read-4096-into-fresh-vec", 4096, || {
        let mut v = vec![0u8; 4096];
        let off = lbas.next() * 512;
        store.read(off, &mut v).map(|_| v.len()).unwrap_or(0)
    });
}

fn main() {
    let b = Bench::new("scsi-core");
    let ram: Arc<dyn BlockStore> = Arc::new(RamStore::new(SIZE, 512, false).expect("ram store"));
    bench_rw(&b, "ram", ram.clone());
    bench_store(&b, ram.as_ref());
    let null: Arc<dyn BlockStore> = Arc::new(NullStore::new(SIZE, 512).expect("null store"));
    bench_rw(&b, "null", null);
    bench_small(&b);
}
