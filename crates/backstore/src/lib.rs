//! The block-store interface of ustgt.
//!
//! A store is a flat array of bytes addressed by offset, like an nbdkit plugin: it never sees a
//! SCSI CDB. The SCSI engine (`scsi-core`) validates every request against [`Geometry`] before a
//! store is called, so offsets and lengths a store receives are always in range and multiples of
//! the logical block size. Capabilities are data ([`Capabilities`]), not probing by trial.
//!
//! Errors are plain [`std::io::Error`]s: the SCSI engine maps their `raw_os_error()` onto sense
//! data (EIO -> MEDIUM ERROR, ENOSPC -> SPACE ALLOCATION FAILED, ...).
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

pub mod testsuite;

/// Size and addressing of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Logical block size in bytes: 512 or 4096.
    pub block_size: u32,
    /// Number of logical blocks.
    pub num_blocks: u64,
}

impl Geometry {
    /// Size of the store in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.num_blocks * u64::from(self.block_size)
    }
}

/// What a store can do, as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Writes are refused (the LUN is exported write-protected).
    pub read_only: bool,
    /// `flush` makes earlier writes durable (there is a volatile cache to flush).
    pub volatile_cache: bool,
    /// `trim` deallocates (UNMAP is advertised).
    pub trim: bool,
    /// `write_zeroes` is cheaper than writing zero buffers.
    pub fast_zeroes: bool,
    /// Storage survives the process (file, device), as opposed to RAM.
    pub persistent: bool,
    /// The medium is rotational (reported in VPD B1h).
    pub rotational: bool,
}

/// A run of blocks with one allocation state, as returned by [`BlockStore::extents`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub length: u64,
    /// True when the range is deallocated and reads as zeroes.
    pub hole: bool,
}

/// A synchronous block store. Every method may be called from several threads at once.
pub trait BlockStore: Send + Sync {
    /// A short name for logs, e.g. "ram" or "file:/srv/lun0.img".
    fn describe(&self) -> String;
    fn geometry(&self) -> Geometry;
    fn capabilities(&self) -> Capabilities;
    /// Fill `buf` from `offset`.
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Write `buf` at `offset`. With `fua`, the data is durable when this returns.
    fn write(&self, offset: u64, buf: &[u8], fua: bool) -> io::Result<()>;
    /// Make every completed write durable.
    fn flush(&self) -> io::Result<()>;
    /// Deallocate a range; later reads return zeroes. Default: write zeroes.
    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.write_zeroes(offset, len)
    }
    /// Make a range read as zeroes. Default: write zero buffers.
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        const CHUNK: u64 = 1 << 20;
        let zeroes = vec![0u8; CHUNK.min(len) as usize];
        let mut done = 0;
        while done < len {
            let n = CHUNK.min(len - done);
            self.write(offset + done, &zeroes[..n as usize], false)?;
            done += n;
        }
        Ok(())
    }
    /// Opens a queue for asynchronous I/O on this store, one per event loop. `None` means the
    /// store is synchronous only (the default); `Some(Err(_))` means it could not be opened now.
    fn open_queue(&self) -> Option<io::Result<Box<dyn IoQueue>>> {
        None
    }
    /// Allocation map of a range. Default: all data.
    fn extents(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        Ok(vec![Extent {
            offset,
            length: len,
            hole: false,
        }])
    }
}

/// One asynchronous operation on a store. Ranges are validated by the SCSI engine, as for the
/// synchronous methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoOp {
    /// Read `len` bytes at `offset`.
    Read { offset: u64, len: usize },
    /// Write `data` at `offset`; with `fua` the data is durable when the completion arrives.
    Write {
        offset: u64,
        data: Vec<u8>,
        fua: bool,
    },
    /// Make every completed write durable.
    Flush,
}

/// The completion of one [`IoOp`].
#[derive(Debug)]
pub struct IoDone {
    /// The tag given to [`IoQueue::submit`].
    pub tag: u64,
    /// The data read, or the write's buffer given back (empty for a flush), or the error.
    pub result: io::Result<Vec<u8>>,
}

/// A queue of asynchronous operations on one store, owned by one event loop. The queue owns
/// every buffer of an operation until its completion is reaped; dropping the queue waits for
/// the operations still in flight.
pub trait IoQueue: Send {
    /// Queues an operation. When the queue is full the operation is handed back and the caller
    /// retries after reaping completions.
    fn submit(&mut self, tag: u64, op: IoOp) -> Result<(), (u64, IoOp)>;
    /// Starts everything submitted since the last commit (one system call).
    fn commit(&mut self) -> io::Result<()>;
    /// A descriptor that becomes readable when completions are ready (an eventfd).
    fn completion_fd(&self) -> RawFd;
    /// Appends every ready completion to `out` (never blocks).
    fn reap(&mut self, out: &mut Vec<IoDone>);
    /// Operations submitted and not yet reaped.
    fn in_flight(&self) -> usize;
}
