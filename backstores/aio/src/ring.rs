//! One io_uring queue: slots for operations in flight, a pool of registered buffers, and the
//! eventfd the ring signals. Every `unsafe` block here is an SQE push or a buffer
//! registration; each states which buffer the kernel uses and why it outlives the operation.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backstore::{IoDone, IoOp, IoQueue};
use io_uring::{opcode, squeue, types, IoUring};

use crate::buf::AlignedBuf;
use crate::sys::EventFd;
use crate::{errno, Shared};

/// Size of each registered buffer.
const FIXED_BUF_SIZE: usize = 128 * 1024;
/// Most registered buffers per ring.
const MAX_FIXED_BUFS: u32 = 64;
/// How long dropping a queue waits for operations in flight.
const DROP_WAIT: Duration = Duration::from_secs(10);
/// user_data bit marking the fdatasync CQE of a slot.
const SYNC_BIT: u64 = 1;

/// Checks that an io_uring can be set up here.
pub(crate) fn probe() -> io::Result<()> {
    IoUring::new(2).map(drop)
}

/// Where the bytes of an operation live while the kernel uses them.
#[derive(Debug)]
enum Buffer {
    /// Registered buffer `index` of the pool.
    Fixed(usize),
    /// An aligned buffer of its own (O_DIRECT, or no registered buffer free).
    Aligned(AlignedBuf),
    /// The write's own vector, or a read's plain vector.
    Plain(Vec<u8>),
    /// A flush: no data.
    None,
}

/// One operation in flight.
#[derive(Debug)]
struct Slot {
    tag: u64,
    offset: u64,
    len: usize,
    is_read: bool,
    /// A write's data, given back at completion (kept when copied into another buffer).
    data: Vec<u8>,
    buf: Buffer,
    /// The operation includes an fdatasync (FUA write or flush).
    sync: bool,
    /// CQEs still expected.
    waiting: u8,
    main_res: Option<i32>,
    sync_res: Option<i32>,
}

/// An io_uring queue over an [`crate::AioStore`]'s file, owned by one event loop.
pub struct AioQueue {
    // Field order matters: the ring is dropped before the buffers it may reference.
    ring: IoUring,
    shared: Arc<Shared>,
    slots: Vec<Option<Slot>>,
    free_slots: Vec<usize>,
    fixed: Vec<AlignedBuf>,
    free_fixed: Vec<usize>,
    /// Completions decided without the kernel (errors, no-op flushes).
    ready: Vec<IoDone>,
    /// SQEs pushed since the last commit.
    unsubmitted: usize,
    events: EventFd,
}

impl std::fmt::Debug for AioQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AioQueue")
            .field("depth", &self.slots.len())
            .field("in_flight", &self.in_flight())
            .field("fixed_buffers", &self.fixed.len())
            .finish()
    }
}

impl AioQueue {
    pub(crate) fn new(shared: Arc<Shared>) -> io::Result<AioQueue> {
        let depth = shared.queue_depth as usize;
        // Two SQEs per slot at most (a FUA write and its linked fdatasync).
        let ring = IoUring::new((2 * shared.queue_depth).next_power_of_two())?;
        let events = EventFd::new()?;
        ring.submitter().register_eventfd(events.raw())?;
        let mut q = AioQueue {
            ring,
            slots: (0..depth).map(|_| None).collect(),
            free_slots: (0..depth).rev().collect(),
            fixed: Vec::new(),
            free_fixed: Vec::new(),
            ready: Vec::new(),
            unsubmitted: 0,
            events,
            shared,
        };
        q.register_fixed(depth.min(MAX_FIXED_BUFS as usize));
        Ok(q)
    }

    /// Registers a pool of fixed buffers; without them every operation uses plain buffers.
    fn register_fixed(&mut self, count: usize) {
        let mut bufs: Vec<AlignedBuf> = (0..count)
            .map(|_| AlignedBuf::new(FIXED_BUF_SIZE))
            .collect();
        let iovecs: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: each iovec points into an AlignedBuf moved into `self.fixed` below and kept
        // (never resized) until the queue is dropped; the ring, declared first, is dropped (and
        // so unregistered) before them, and Drop waits for every operation in flight.
        let res = unsafe { self.ring.submitter().register_buffers(&iovecs) };
        match res {
            Ok(()) => {
                self.free_fixed = (0..bufs.len()).rev().collect();
                self.fixed = bufs;
            }
            Err(e) => log::debug!("aio: no registered buffers ({e}); using plain ones"),
        }
    }

    /// Completes `tag` without the kernel.
    fn complete_now(&mut self, tag: u64, result: io::Result<Vec<u8>>) {
        self.ready.push(IoDone { tag, result });
        self.events.signal();
    }

    /// Checks an operation before it takes a slot; `Err` is its immediate result.
    fn precheck(&self, op: &IoOp) -> Result<(), io::Error> {
        let size = self.shared.geometry.size_bytes();
        let in_range = |off: u64, len: usize| {
            u32::try_from(len).is_ok() && off.checked_add(len as u64).is_some_and(|e| e <= size)
        };
        match op {
            IoOp::Read { offset, len } if !in_range(*offset, *len) => Err(errno(libc::EINVAL)),
            IoOp::Write { .. } if self.shared.caps.read_only => Err(errno(libc::EROFS)),
            IoOp::Write { offset, data, .. } if !in_range(*offset, data.len()) => {
                Err(errno(libc::EINVAL))
            }
            IoOp::Write { .. } | IoOp::Flush if self.shared.is_poisoned() => Err(errno(libc::EIO)),
            _ => Ok(()),
        }
    }

    /// Picks the buffer of a read or write of `len` bytes; copies a write's data into it.
    fn pick_buffer(&mut self, len: usize, data: &mut Vec<u8>, is_read: bool) -> Buffer {
        if len <= FIXED_BUF_SIZE {
            if let Some(i) = self.free_fixed.pop() {
                if !is_read {
                    self.fixed[i].as_mut_slice()[..len].copy_from_slice(data);
                }
                return Buffer::Fixed(i);
            }
        }
        if self.shared.direct {
            let mut b = AlignedBuf::new(len);
            if !is_read {
                b.as_mut_slice().copy_from_slice(data);
            }
            return Buffer::Aligned(b);
        }
        if is_read {
            Buffer::Plain(vec![0u8; len])
        } else {
            Buffer::Plain(std::mem::take(data))
        }
    }

    /// Builds the SQE of a slot's read or write.
    fn data_sqe(&mut self, idx: usize) -> squeue::Entry {
        let fd = types::Fd(self.shared.ring_file.as_raw_fd());
        let Some(slot) = self.slots[idx].as_mut() else {
            return opcode::Nop::new().build();
        };
        let (off, len, read) = (slot.offset, slot.len as u32, slot.is_read);
        let ud = (idx as u64) << 1;
        let entry = match &mut slot.buf {
            Buffer::Fixed(i) => {
                let ptr = self.fixed[*i].as_mut_ptr();
                let bi = *i as u16;
                if read {
                    opcode::ReadFixed::new(fd, ptr, len, bi).offset(off).build()
                } else {
                    opcode::WriteFixed::new(fd, ptr, len, bi)
                        .offset(off)
                        .build()
                }
            }
            Buffer::Aligned(b) => rw_sqe(fd, b.as_mut_ptr(), len, off, read),
            Buffer::Plain(v) => rw_sqe(fd, v.as_mut_ptr(), len, off, read),
            Buffer::None => opcode::Nop::new().build(),
        };
        entry.user_data(ud)
    }

    fn sync_sqe(&self, idx: usize) -> squeue::Entry {
        let fd = types::Fd(self.shared.ring_file.as_raw_fd());
        opcode::Fsync::new(fd)
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(((idx as u64) << 1) | SYNC_BIT)
    }

    /// Pushes SQEs; the SQ has room for two per slot, so this cannot fail while a slot is free.
    fn push(&mut self, entries: &[squeue::Entry]) -> io::Result<()> {
        // SAFETY: every buffer an entry points to is owned by its slot (or the fixed pool) and
        // stays allocated and unmoved until the slot's CQEs are reaped; Drop waits for them.
        let res = unsafe { self.ring.submission().push_multiple(entries) };
        res.map_err(|_| errno(libc::EBUSY))?;
        self.unsubmitted += entries.len();
        Ok(())
    }

    fn start(&mut self, idx: usize) -> io::Result<()> {
        let Some(slot) = self.slots[idx].as_ref() else {
            return Ok(());
        };
        let (has_data, sync) = (!matches!(slot.buf, Buffer::None), slot.sync);
        match (has_data, sync) {
            (true, true) => {
                let data = self.data_sqe(idx).flags(squeue::Flags::IO_LINK);
                let s = self.sync_sqe(idx);
                self.push(&[data, s])
            }
            (true, false) => {
                let data = self.data_sqe(idx);
                self.push(&[data])
            }
            (false, _) => {
                let s = self.sync_sqe(idx);
                self.push(&[s])
            }
        }
    }

    /// Handles one CQE; returns the finished slot's completion when it was the last one.
    fn on_cqe(&mut self, user_data: u64, res: i32) -> Option<IoDone> {
        let idx = (user_data >> 1) as usize;
        let slot = self.slots.get_mut(idx)?.as_mut()?;
        if user_data & SYNC_BIT != 0 {
            slot.sync_res = Some(res);
        } else {
            slot.main_res = Some(res);
        }
        slot.waiting = slot.waiting.saturating_sub(1);
        if slot.waiting > 0 {
            return None;
        }
        let slot = self.slots[idx].take()?;
        self.free_slots.push(idx);
        Some(self.finish(slot))
    }

    /// Turns a slot whose CQEs are all in into its completion, finishing short transfers.
    fn finish(&mut self, mut slot: Slot) -> IoDone {
        let tag = slot.tag;
        let result = self.settle(&mut slot);
        let data = match slot.buf {
            Buffer::Fixed(i) => {
                self.free_fixed.push(i);
                if slot.is_read {
                    self.fixed[i].as_slice()[..slot.len].to_vec()
                } else {
                    slot.data
                }
            }
            Buffer::Aligned(b) if slot.is_read => b.as_slice().to_vec(),
            Buffer::Plain(v) => v,
            Buffer::Aligned(_) | Buffer::None => slot.data,
        };
        IoDone {
            tag,
            result: result.map(|()| data),
        }
    }

    fn settle(&mut self, slot: &mut Slot) -> io::Result<()> {
        let has_data = !matches!(slot.buf, Buffer::None);
        if has_data {
            let res = slot.main_res.unwrap_or(-libc::EIO);
            if res < 0 {
                return Err(errno(-res));
            }
            let done = res as usize;
            if done < slot.len {
                self.finish_short(slot, done)?;
            }
        }
        if !slot.sync || !self.shared.needs_sync() {
            return Ok(());
        }
        match slot.sync_res.unwrap_or(-libc::ECANCELED) {
            r if r >= 0 => Ok(()),
            // The link was cut by a short transfer finished above: sync here.
            r if r == -libc::ECANCELED && has_data => self
                .shared
                .plain_file
                .sync_data()
                .inspect_err(|_| self.shared.poison()),
            r => {
                self.shared.poison();
                Err(errno(-r))
            }
        }
    }

    /// Completes a short read or write synchronously with pread/pwrite.
    fn finish_short(&mut self, slot: &mut Slot, done: usize) -> io::Result<()> {
        let file = &self.shared.plain_file;
        let off = slot.offset + done as u64;
        let bytes: &mut [u8] = match &mut slot.buf {
            Buffer::Fixed(i) => &mut self.fixed[*i].as_mut_slice()[..slot.len],
            Buffer::Aligned(b) => b.as_mut_slice(),
            Buffer::Plain(v) => v.as_mut_slice(),
            Buffer::None => return Ok(()),
        };
        let rest = &mut bytes[done..];
        if slot.is_read {
            file.read_exact_at(rest, off).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => errno(libc::EIO),
                _ => e,
            })
        } else {
            file.write_all_at(rest, off).map_err(|e| match e.kind() {
                io::ErrorKind::WriteZero => errno(libc::ENOSPC),
                _ => e,
            })
        }
    }

    /// Moves every CQE out of the ring.
    fn drain_cq(&mut self) -> Vec<(u64, i32)> {
        let mut cq = self.ring.completion();
        cq.sync();
        cq.map(|e| (e.user_data(), e.result())).collect()
    }
}

fn rw_sqe(fd: types::Fd, ptr: *mut u8, len: u32, off: u64, read: bool) -> squeue::Entry {
    if read {
        opcode::Read::new(fd, ptr, len).offset(off).build()
    } else {
        opcode::Write::new(fd, ptr, len).offset(off).build()
    }
}

impl IoQueue for AioQueue {
    fn submit(&mut self, tag: u64, op: IoOp) -> Result<(), (u64, IoOp)> {
        if let Err(e) = self.precheck(&op) {
            self.complete_now(tag, Err(e));
            return Ok(());
        }
        if matches!(op, IoOp::Flush) && !self.shared.needs_sync() {
            self.complete_now(tag, Ok(Vec::new()));
            return Ok(());
        }
        let Some(idx) = self.free_slots.pop() else {
            return Err((tag, op));
        };
        let (offset, len, is_read, mut data, fua) = match op {
            IoOp::Read { offset, len } => (offset, len, true, Vec::new(), false),
            IoOp::Write { offset, data, fua } => (offset, data.len(), false, data, fua),
            IoOp::Flush => (0, 0, false, Vec::new(), true),
        };
        let is_flush = len == 0 && !is_read;
        let buf = if is_flush {
            Buffer::None
        } else {
            self.pick_buffer(len, &mut data, is_read)
        };
        let sync = (fua && self.shared.needs_sync()) || is_flush;
        let waiting = u8::from(!is_flush) + u8::from(sync);
        self.slots[idx] = Some(Slot {
            tag,
            offset,
            len,
            is_read,
            data,
            buf,
            sync,
            waiting,
            main_res: None,
            sync_res: None,
        });
        if let Err(e) = self.start(idx) {
            if let Some(slot) = self.slots[idx].take() {
                self.free_slots.push(idx);
                let mut done = self.finish(slot);
                done.result = Err(e);
                self.ready.push(done);
                self.events.signal();
            }
        }
        Ok(())
    }

    fn commit(&mut self) -> io::Result<()> {
        if self.unsubmitted == 0 {
            return Ok(());
        }
        loop {
            match self.ring.submit() {
                Ok(_) => {
                    self.unsubmitted = 0;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn completion_fd(&self) -> RawFd {
        self.events.raw()
    }

    fn reap(&mut self, out: &mut Vec<IoDone>) {
        // Drain the eventfd first: a CQE posted after this point signals it again.
        self.events.drain();
        out.append(&mut self.ready);
        for (ud, res) in self.drain_cq() {
            if let Some(done) = self.on_cqe(ud, res) {
                out.push(done);
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.slots.len() - self.free_slots.len() + self.ready.len()
    }
}

impl Drop for AioQueue {
    /// Waits (bounded) for the kernel to finish with every buffer; on timeout the buffers are
    /// leaked rather than freed under the kernel's feet.
    fn drop(&mut self) {
        let _ = self.commit();
        let deadline = Instant::now() + DROP_WAIT;
        while self.slots.len() > self.free_slots.len() && Instant::now() < deadline {
            let mut sink = Vec::new();
            self.reap(&mut sink);
            if self.slots.len() > self.free_slots.len() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if self.slots.len() > self.free_slots.len() {
            log::error!("aio: I/O still in flight after {DROP_WAIT:?}; leaking its buffers");
            std::mem::forget(std::mem::take(&mut self.slots));
            std::mem::forget(std::mem::take(&mut self.fixed));
        }
    }
}
