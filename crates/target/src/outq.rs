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
const MAX_IOV: usize = 64;

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

    /// Write as much as the socket takes; `writes` counts the system calls made.
    pub fn flush(&mut self, sock: &mut impl Write, writes: &mut u64) -> Flushed {
        while self.pending > 0 {
            let mut iov: [IoSlice<'_>; MAX_IOV] = [IoSlice::new(&[]); MAX_IOV];
            let mut k = 0;
            let mut pos = self.buf_pos;
            for (i, seg) in self.segs.iter().enumerate() {
                if k == MAX_IOV {
                    break;
                }
                let skip = if i == 0 { self.head_off } else { 0 };
                match seg {
                    Seg::Local(n) => {
                        iov[k] = IoSlice::new(&self.buf[pos + skip..pos + n]);
                        pos += n;
                    }
                    Seg::Shared(d) => iov[k] = IoSlice::new(&d.as_slice()[skip..]),
                }
                k += 1;
            }
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

    /// Drop `n` written bytes from the front.
    fn advance(&mut self, mut n: usize) {
        self.pending -= n;
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

    fn clear(&mut self) {
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
}
