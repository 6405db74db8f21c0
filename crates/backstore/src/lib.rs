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
    /// Allocation map of a range. Default: all data.
    fn extents(&self, offset: u64, len: u64) -> io::Result<Vec<Extent>> {
        Ok(vec![Extent {
            offset,
            length: len,
            hole: false,
        }])
    }
}
