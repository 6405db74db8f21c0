//! The asynchronous split of READ, WRITE and SYNCHRONIZE CACHE: [`crate::LunTable::start`]
//! runs every check of the command and hands back the store operation to queue
//! ([`Started::Io`]) with a [`PendingIo`] that turns the operation's result into the
//! [`Response`] the synchronous path would have produced.

use std::io;
use std::sync::Arc;

use backstore::IoOp;

use crate::cdb;
use crate::device::pad_cdb;
use crate::opcodes::op;
use crate::read_write::{take_data_out, FUA};
use crate::sense::{Asc, CmdResult, Sense};
use crate::{Device, Request, Response};

/// What [`crate::LunTable::start`] did with a command.
#[derive(Debug)]
pub enum Started {
    /// The command is complete (every command but queued I/O, and every error).
    Done(Response),
    /// A long operation (SANITIZE): run `job` away from the event loop, on a thread of its
    /// own. With `status_now` (IMMED), send that status at once and drop the job's response;
    /// otherwise the job's response is the command's.
    Background {
        /// The operation.
        job: crate::Background,
        /// The command's status when it is returned before the operation ends.
        status_now: Option<Response>,
    },
    /// Queue `op` on the device's store; finish with [`PendingIo::finish`].
    Io {
        /// The store operation.
        op: IoOp,
        /// What is needed to build the response.
        pending: PendingIo,
    },
}

/// Which command family an operation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read { len: usize },
    Write,
    Flush,
}

/// A queued command waiting for its store operation.
#[derive(Debug)]
pub struct PendingIo {
    dev: Arc<Device>,
    kind: Kind,
    wanted: u32,
}

/// True for the opcodes that may be queued.
pub(crate) fn is_queued_opcode(opcode: u8) -> bool {
    matches!(
        opcode,
        op::READ_6
            | op::READ_10
            | op::READ_12
            | op::READ_16
            | op::WRITE_6
            | op::WRITE_10
            | op::WRITE_12
            | op::WRITE_16
            | op::SYNCHRONIZE_CACHE_10
            | op::SYNCHRONIZE_CACHE_16
    )
}

impl PendingIo {
    /// The device the operation belongs to.
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    /// The response for the operation's result (read data, or the write's buffer back, or an
    /// error mapped to sense exactly like the synchronous path).
    pub fn finish(self, result: io::Result<Vec<u8>>) -> Response {
        let outcome: CmdResult = match (self.kind, result) {
            (Kind::Read { len }, Ok(data)) if data.len() == len => Ok(data),
            (Kind::Read { .. }, Ok(_)) => Err(Sense::from_io(&eio(), false).into()),
            (Kind::Read { .. }, Err(e)) => Err(Sense::from_io(&e, false).into()),
            (_, Ok(_)) => Ok(Vec::new()),
            (_, Err(e)) => Err(Sense::from_io(&e, true).into()),
        };
        self.dev.respond(outcome, self.wanted)
    }

    /// Runs `op` with the store's synchronous methods and finishes (for a transport that
    /// could not queue it).
    pub fn run_sync(self, op: IoOp) -> Response {
        let store = self.dev.store().clone();
        let result = match op {
            IoOp::Read { offset, len } => {
                let mut buf = vec![0u8; len];
                store.read(offset, &mut buf).map(|()| buf)
            }
            IoOp::Write { offset, data, fua } => store.write(offset, &data, fua).map(|()| data),
            IoOp::Flush => store.flush().map(|()| Vec::new()),
        };
        self.finish(result)
    }
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

impl Device {
    /// Checks a READ, WRITE or SYNCHRONIZE CACHE and returns the store operation to queue;
    /// any other command (and any error) completes at once, as [`Device::execute`] would.
    pub fn start(self: &Arc<Self>, req: &Request) -> Started {
        let mut padded = [0u8; 32];
        let inner = pad_cdb(req, &mut padded);
        let wanted = cdb::data_out_len(inner.cdb, self.geo.block_size);
        let info = match self.prepare(&inner, req.cdb.len()) {
            Ok(info) => info,
            Err(e) => return Started::Done(self.respond(Err(e), wanted)),
        };
        let planned = match info.opcode {
            op::READ_6 | op::READ_10 | op::READ_12 | op::READ_16 => self.plan_read(&inner),
            op::WRITE_6 | op::WRITE_10 | op::WRITE_12 | op::WRITE_16 => self.plan_write(&inner),
            op::SYNCHRONIZE_CACHE_10 | op::SYNCHRONIZE_CACHE_16 => self.plan_flush(&inner),
            _ => return Started::Done(self.respond(self.dispatch(&inner, info), wanted)),
        };
        match planned {
            Ok(Some((op, kind))) => Started::Io {
                op,
                pending: PendingIo {
                    dev: self.clone(),
                    kind,
                    wanted,
                },
            },
            Ok(None) => Started::Done(self.respond(Ok(Vec::new()), wanted)),
            Err(s) => Started::Done(self.respond(Err(s.into()), wanted)),
        }
    }

    /// READ: the same checks as [`Device::read`]; `None` for a zero-length transfer.
    fn plan_read(&self, req: &Request) -> Result<Option<(IoOp, Kind)>, Sense> {
        let r = self.decode_io(req, true)?;
        let len = cdb::cdb_len(req.cdb[0]).unwrap_or(16);
        self.check_range(r.lba, r.blocks)?;
        self.check_transfer(r.blocks, len)?;
        if r.blocks == 0 {
            return Ok(None);
        }
        let bytes = usize::try_from(r.blocks * self.bs())
            .map_err(|_| Sense::illegal(Asc::INVALID_FIELD_IN_CDB))?;
        let op = IoOp::Read {
            offset: r.lba * self.bs(),
            len: bytes,
        };
        Ok(Some((op, Kind::Read { len: bytes })))
    }

    /// WRITE: the same checks as [`Device::write`], whole blocks received only, FUA when the
    /// CDB asks or the write cache is off.
    fn plan_write(&self, req: &Request) -> Result<Option<(IoOp, Kind)>, Sense> {
        let r = self.decode_io(req, true)?;
        self.check_writable()?;
        let len = cdb::cdb_len(req.cdb[0]).unwrap_or(16);
        self.check_range(r.lba, r.blocks)?;
        self.check_transfer(r.blocks, len)?;
        let whole = (req.data_out.len() as u64 / self.bs()).min(r.blocks);
        let data = take_data_out(req, whole * self.bs())?;
        if data.is_empty() {
            return Ok(None);
        }
        let fua = r.flags & FUA != 0 || !self.lock().mode.wce;
        let op = IoOp::Write {
            offset: r.lba * self.bs(),
            data: data.to_vec(),
            fua,
        };
        Ok(Some((op, Kind::Write)))
    }

    /// SYNCHRONIZE CACHE: range check, then a whole-store flush.
    fn plan_flush(&self, req: &Request) -> Result<Option<(IoOp, Kind)>, Sense> {
        let r = cdb::block_range(req.cdb, false);
        self.check_range(r.lba, r.blocks)?;
        Ok(Some((IoOp::Flush, Kind::Flush)))
    }
}

#[cfg(test)]
mod tests;
