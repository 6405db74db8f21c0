//! The output queue of one connection: encoded headers and small payloads in one byte buffer,
//! large payloads as references to the buffers the store read into, all written with
//! vectored writes (`writev`), so a Data-In payload reaches the socket without a copy.
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use iscsi_proto::DataRef;
use iscsi_wire::{encode, encode_head, encode_tail, DigestConfig, Pdu};

/// Payloads shorter than this are copied into the byte buffer: a copy this small costs less
/// than one more iovec entry.
pub const COPY_BELOW: usize = 2048;
/// At most this many iovec entries per write.
pub const MAX_IOV: usize = 64;

enum Seg {
    /// The next `n` bytes of the byte buffer.
    Local(usize),
    /// A slice of a shared buffer.
    Shared(DataRef),
}

/// Bytes waiting to be written to one socket, in order.
#[derive(Default)]
pub struct OutQueue {
    buf: Vec<u8>,
    /// Start in `buf` of the first `Local` segment.
    buf_pos: usize,
    segs: VecDeque<Seg>,
    /// Bytes of the first segment already written.
    head_off: usize,
    /// Bytes queued and not yet written.
    pending: usize,
}

/// What a write attempt achieved.
pub enum Flushed {
    /// Everything was written.
    All,
    /// The socket is full; the rest waits for writability.
    Blocked,
    /// The socket failed or was closed; the queue was dropped.
    Failed,
}

impl OutQueue {
    /// Bytes waiting.
    pub fn pending(&self) -> usize {
        self.pending
    }

    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    fn push_local(&mut self, before: usize) {
        let n = self.buf.len() - before;
        if n == 0 {
            return;
        }
        self.pending += n;
        if let Some(Seg::Local(m)) = self.segs.back_mut() {
            *m += n;
        } else {
            self.segs.push_back(Seg::Local(n));
        }
    }

    /// Queue a PDU whose data segment is in `pdu.data`.
    pub fn push_pdu(&mut self, pdu: &Pdu, digests: DigestConfig) {
        let before = self.buf.len();
        encode(pdu, digests, &mut self.buf);
        self.push_local(before);
    }

    /// Queue a PDU whose data segment is `data` (`pdu.data` is ignored): large payloads are
    /// referenced, not copied.
    pub fn push_shared(&mut self, pdu: &Pdu, data: DataRef, digests: DigestConfig) {
        let before = self.buf.len();
        let bytes = data.as_slice();
        if bytes.len() < COPY_BELOW {
            encode_head(pdu, bytes.len(), digests, &mut self.buf);
            self.buf.extend_from_slice(bytes);
            encode_tail(bytes, digests, &mut self.buf);
            self.push_local(before);
            return;
        }
        encode_head(pdu, bytes.len(), digests, &mut self.buf);
        self.push_local(before);
        self.pending += bytes.len();
        let before = self.buf.len();
        encode_tail(bytes, digests, &mut self.buf);
        self.segs.push_back(Seg::Shared(data));
        self.push_local(before);
    }

    /// Calls `f` with the unwritten bytes in order, one slice per segment, at most `max`
    /// slices; returns how many it gave.
    fn slices<'a>(&'a self, max: usize, mut f: impl FnMut(usize, &'a [u8])) -> usize {
        let mut k = 0;
        let mut pos = self.buf_pos;
        for (i, seg) in self.segs.iter().enumerate() {
            if k == max {
                break;
            }
            let skip = if i == 0 { self.head_off } else { 0 };
            match seg {
                Seg::Local(n) => {
                    f(k, &self.buf[pos + skip..pos + n]);
                    pos += n;
                }
                Seg::Shared(d) => f(k, &d.as_slice()[skip..]),
            }
            k += 1;
        }
        k
    }

    /// Describe the unwritten bytes, in order, in up to `iov.len()` entries (an asynchronous
    /// send's gather list); returns the number of entries filled. The entries point into this
    /// queue's buffers: they stay valid until the queue is next changed ([`OutQueue::advance`],
    /// a push, [`OutQueue::clear`]) or dropped.
    pub fn fill_iovecs(&self, iov: &mut [libc::iovec]) -> usize {
        self.slices(iov.len(), |k, s| {
            iov[k] = libc::iovec {
                iov_base: s.as_ptr() as *mut libc::c_void,
                iov_len: s.len(),
            }
        })
    }

    /// Write as much as the socket takes; `writes` counts the system calls made.
    pub fn flush(&mut self, sock: &mut impl Write, writes: &mut u64) -> Flushed {
        while self.pending > 0 {
            let mut iov: [IoSlice<'_>; MAX_IOV] = [IoSlice::new(&[]); MAX_IOV];
            let k = self.slices(MAX_IOV, |k, s| iov[k] = IoSlice::new(s));
            *writes += 1;
            let r = if k == 1 {
                sock.write(&iov[0])
            } else {
                sock.write_vectored(&iov[..k])
            };
            match r {
                Ok(0) => {
                    self.clear();
                    return Flushed::Failed;
                }
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("write: {e}");
                    self.clear();
                    return Flushed::Failed;
                }
            }
        }
        self.clear();
        Flushed::All
    }

    /// Drop `n` written bytes from the front (at most what is pending); once everything is
    /// written the buffers are reset for reuse.
    pub fn advance(&mut self, n: usize) {
        let mut n = n.min(self.pending);
        self.pending -= n;
        if self.pending == 0 {
            self.clear();
            return;
        }
        while n > 0 {
            let Some(seg) = self.segs.front() else {
                break;
            };
            let len = match seg {
                Seg::Local(m) => *m,
                Seg::Shared(d) => d.len(),
            };
            let left = len - self.head_off;
            if n < left {
                self.head_off += n;
                return;
            }
            n -= left;
            self.head_off = 0;
            if let Some(Seg::Local(m)) = self.segs.pop_front() {
                self.buf_pos += m;
            }
        }
    }

    /// Drop everything queued.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.buf_pos = 0;
        self.segs.clear();
        self.head_off = 0;
        self.pending = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iscsi_wire::{DataIn, NopIn};
    use std::sync::Arc;

    /// A socket that takes at most `chunk` bytes per call, refusing after `limit` bytes.
    struct Trickle {
        got: Vec<u8>,
        chunk: usize,
        limit: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(b)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.got.len() >= self.limit {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.chunk - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                if n == self.chunk {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn data_in(len: usize) -> Pdu {
        let d = DataIn {
            itt: 7,
            final_: true,
            ..DataIn::default()
        };
        Pdu::new(d, vec![0; len])
    }

    #[test]
    fn shared_payload_matches_plain_encoding_through_partial_writes() {
        let digests = [
            DigestConfig::default(),
            DigestConfig {
                header: true,
                data: true,
            },
        ];
        for d in digests {
            let payload: Vec<u8> = (0..9001u32).map(|i| i as u8).collect();
            let mut pdu = data_in(0);
            let mut expected = Vec::new();
            pdu.data = payload.clone();
            encode(&pdu, d, &mut expected);
            let nop = Pdu::new(NopIn::default(), Vec::new());
            encode(&nop, d, &mut expected);
            let small = data_in(100);
            encode(&small, d, &mut expected);

            let mut q = OutQueue::default();
            let buf = Arc::new(payload);
            q.push_shared(&data_in(0), DataRef::new(buf.clone(), 0, buf.len()), d);
            q.push_pdu(&nop, d);
            q.push_shared(&data_in(0), DataRef::new(Arc::new(vec![0; 100]), 0, 100), d);
            assert_eq!(q.pending(), expected.len());
            let mut sock = Trickle {
                got: Vec::new(),
                chunk: 1000,
                limit: 5000,
            };
            let mut writes = 0;
            assert!(matches!(q.flush(&mut sock, &mut writes), Flushed::Blocked));
            sock.limit = usize::MAX;
            assert!(matches!(q.flush(&mut sock, &mut writes), Flushed::All));
            assert_eq!(sock.got, expected);
            assert!(q.is_empty());
        }
    }

    #[test]
    fn gather_lists_and_partial_advances_match_plain_encoding() {
        let d = DigestConfig {
            header: true,
            data: false,
        };
        let payload: Vec<u8> = (0..20000u32).map(|i| (i * 7) as u8).collect();
        let mut expected = Vec::new();
        let mut pdu = data_in(0);
        pdu.data = payload.clone();
        encode(&pdu, d, &mut expected);
        let nop = Pdu::new(NopIn::default(), vec![9; 10]);
        encode(&nop, d, &mut expected);
        let mut q = OutQueue::default();
        let buf = Arc::new(payload);
        q.push_shared(&data_in(0), DataRef::new(buf.clone(), 0, buf.len()), d);
        q.push_pdu(&nop, d);
        let mut sent = Vec::new();
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        while !q.is_empty() {
            // At most two entries and 3000 bytes per "send": both limits cut segments.
            let mut iov = [empty; 2];
            let n = q.fill_iovecs(&mut iov);
            assert!(n >= 1);
            let mut took = 0;
            for v in &iov[..n] {
                let want = v.iov_len.min(3000 - took);
                // SAFETY: the entry describes bytes owned by `q`, which is not changed until
                // `advance` below.
                let bytes = unsafe { std::slice::from_raw_parts(v.iov_base as *const u8, want) };
                sent.extend_from_slice(bytes);
                took += want;
            }
            q.advance(took);
        }
        assert_eq!(sent, expected);
        assert_eq!(q.pending(), 0);
    }
}
