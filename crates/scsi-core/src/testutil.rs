//! Test helpers: an in-memory store and shortcuts to run CDBs.

use std::io;
use std::sync::{Arc, Mutex};

use backstore::{BlockStore, Capabilities, Extent, Geometry};

use crate::{Device, DeviceConfig, NexusId, Request, Response, Status, TaskAttr};

/// One recorded store call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Write { offset: u64, len: usize, fua: bool },
    Flush,
    Trim { offset: u64, len: u64 },
}

/// A `Mutex<Vec<u8>>` store that records writes, flushes and trims and can inject errors.
pub struct MemStore {
    pub data: Mutex<Vec<u8>>,
    pub bs: u32,
    pub caps: Capabilities,
    pub calls: Mutex<Vec<Call>>,
    /// When set, every read/write/flush fails with this errno.
    pub fail: Mutex<Option<i32>>,
    /// Trimmed (hole) ranges, for `extents`.
    pub holes: Mutex<Vec<(u64, u64)>>,
}

impl MemStore {
    pub fn new(blocks: u64, bs: u32) -> MemStore {
        MemStore {
            data: Mutex::new(vec![0; (blocks * u64::from(bs)) as usize]),
            bs,
            caps: Capabilities {
                volatile_cache: true,
                trim: true,
                ..Capabilities::default()
            },
            calls: Mutex::new(Vec::new()),
            fail: Mutex::new(None),
            holes: Mutex::new(Vec::new()),
        }
    }

    fn check(&self) -> io::Result<()> {
        match *self.fail.lock().unwrap() {
            Some(e) => Err(io::Error::from_raw_os_error(e)),
            None => Ok(()),
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl BlockStore for MemStore {
    fn describe(&self) -> String {
        "mem".into()
    }
    fn geometry(&self) -> Geometry {
        Geometry {
            block_size: self.bs,
            num_blocks: self.data.lock().unwrap().len() as u64 / u64::from(self.bs),
        }
    }
    fn capabilities(&self) -> Capabilities {
        self.caps
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check()?;
        let d = self.data.lock().unwrap();
        let o = offset as usize;
        buf.copy_from_slice(&d[o..o + buf.len()]);
        Ok(())
    }
    fn write(&self, offset: u64, buf: &[u8], fua: bool) -> io::Result<()> {
        self.check()?;
        let o = offset as usize;
        self.data.lock().unwrap()[o..o + buf.len()].copy_from_slice(buf);
        self.calls.lock().unwrap().push(Call::Write {
            offset,
            len: buf.len(),
            fua,
        });
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        self.check()?;
        self.calls.lock().unwrap().push(Call::Flush);
        Ok(())
    }
    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check()?;
        let o = offset as usize;
        self.data.lock().unwrap()[o..o + len as usize].fill(0);
        self.calls.lock().unwrap().push(Call::Trim { offset, len });
        self.holes.lock().unwrap().push((offset, len));
        Ok(())
    }
    fn extents(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        self.check()?;
        let mut holes = self.holes.lock().unwrap().clone();
        holes.sort();
        let end = offset + len;
        let mut out = Vec::new();
        let mut cursor = offset;
        for (o, l) in holes {
            if o + l <= cursor {
                continue;
            }
            if o >= end {
                break;
            }
            if o > cursor {
                out.push(Extent {
                    offset: cursor,
                    length: o - cursor,
                    hole: false,
                });
            }
            let stop = (o + l).min(end);
            let start = o.max(cursor);
            out.push(Extent {
                offset: start,
                length: stop - start,
                hole: true,
            });
            cursor = stop;
        }
        if cursor < end {
            out.push(Extent {
                offset: cursor,
                length: end - cursor,
                hole: false,
            });
        }
        Ok(out)
    }
}

/// A device of 1024 blocks of 512 bytes, with its store.
pub fn dev() -> (Arc<MemStore>, Device) {
    dev_with(1024, 512, |_| {})
}

/// A device with the given geometry and configuration tweaks.
pub fn dev_with(
    blocks: u64,
    bs: u32,
    f: impl FnOnce(&mut DeviceConfig),
) -> (Arc<MemStore>, Device) {
    let store = Arc::new(MemStore::new(blocks, bs));
    let mut cfg = DeviceConfig::new("SN0001".into());
    f(&mut cfg);
    let d = Device::new(store.clone(), cfg);
    (store, d)
}

/// A 64-block device whose store cannot trim (no thin provisioning).
pub fn thick_dev() -> Device {
    let mut store = MemStore::new(64, 512);
    store.caps.trim = false;
    Device::new(Arc::new(store), DeviceConfig::new("thick".into()))
}

pub const N1: NexusId = NexusId(1);
pub const N2: NexusId = NexusId(2);

/// Runs `cdb` with `data` on nexus `n`.
pub fn run_on(d: &Device, n: NexusId, cdb: &[u8], data: &[u8]) -> Response {
    let req = Request {
        nexus: n,
        cdb,
        data_out: data,
        expected_len: data.len() as u32,
        attr: TaskAttr::Simple,
    };
    d.execute(&req)
}

/// Runs `cdb` on nexus 1, after clearing the power-on unit attention.
pub fn run(d: &Device, cdb: &[u8], data: &[u8]) -> Response {
    clear_ua(d, N1);
    run_on(d, N1, cdb, data)
}

/// Consumes every pending unit attention of `n`.
pub fn clear_ua(d: &Device, n: NexusId) {
    for _ in 0..16 {
        let r = run_on(d, n, &[0, 0, 0, 0, 0, 0], &[]);
        if r.status == Status::GOOD || sense_key(&r) != 6 {
            return;
        }
    }
}

/// Sense key of a fixed-format CHECK CONDITION.
pub fn sense_key(r: &Response) -> u8 {
    match r.sense.first() {
        Some(0x72) | Some(0x73) => r.sense[1] & 0x0F,
        Some(_) => r.sense[2] & 0x0F,
        None => 0xFF,
    }
}

/// Asserts CHECK CONDITION with key and (ASC << 8 | ASCQ).
#[track_caller]
pub fn assert_sense(r: &Response, key: u8, asc: u16) {
    assert_eq!(r.status, Status::CHECK_CONDITION, "response {r:?}");
    let (k, a, q) = match r.sense[0] {
        0x72 | 0x73 => (r.sense[1] & 0x0F, r.sense[2], r.sense[3]),
        _ => (r.sense[2] & 0x0F, r.sense[12], r.sense[13]),
    };
    assert_eq!(
        (k, u16::from(a) << 8 | u16::from(q)),
        (key, asc),
        "sense {:02x?}",
        r.sense
    );
}

/// Asserts INVALID FIELD IN CDB with the given field pointer bytes (fixed format).
#[track_caller]
pub fn assert_invalid_cdb(r: &Response, byte: u16, bit: Option<u8>) {
    assert_sense(r, 5, 0x2400);
    let f = crate::sense::FieldPointer {
        in_cdb: true,
        byte,
        bit,
    };
    assert_eq!(&r.sense[15..18], &f.to_bytes(), "sense {:02x?}", r.sense);
}

/// Asserts GOOD status and returns Data-In.
#[track_caller]
pub fn good(r: Response) -> Vec<u8> {
    assert_eq!(r.status, Status::GOOD, "response {r:?}");
    r.data_in
}

/// A 10-byte CDB with LBA (bytes 2-5) and length (bytes 7-8).
pub fn cdb10(opcode: u8, flags: u8, lba: u32, len: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = opcode;
    c[1] = flags;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&len.to_be_bytes());
    c
}

/// A 12-byte CDB with LBA (bytes 2-5) and length (bytes 6-9).
pub fn cdb12(opcode: u8, flags: u8, lba: u32, len: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = opcode;
    c[1] = flags;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[6..10].copy_from_slice(&len.to_be_bytes());
    c
}

/// A 16-byte CDB with LBA (bytes 2-9) and length (bytes 10-13).
pub fn cdb16(opcode: u8, flags: u8, lba: u64, len: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = opcode;
    c[1] = flags;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&len.to_be_bytes());
    c
}
