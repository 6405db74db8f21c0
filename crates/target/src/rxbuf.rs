//! The receive buffer of one connection, sized by what actually arrives.
//!
//! The PDU decoder takes every byte it is given (it keeps partial headers and payloads
//! itself), so this buffer is only where a socket read lands: it needs to be large while data
//! streams in (one read per 256 KiB) and can be small otherwise. It starts at 8 KiB, doubles
//! (up to 256 KiB) after a read that filled all the space it offered, and goes back to 8 KiB
//! after a read that followed a second of silence without filling it. It is resized only when
//! empty, so nothing is copied, and never while lent to an asynchronous receive. No length a
//! peer declares sizes it.

/// The smallest (and initial) size.
pub const MIN_RX: usize = 8 * 1024;
/// The largest size it grows to for streaming (bytes read per read call at most).
pub const MAX_RX: usize = 256 * 1024;
/// A read after this much silence that does not fill the buffer shrinks it back.
const IDLE_MS: u64 = 1000;

pub struct RxBuf {
    /// `buf[start..filled]` is not yet decoded.
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    /// `buf[filled..]` is lent to an asynchronous receive: the buffer must not be touched
    /// (read, compacted, grown or freed) until the loan ends.
    lent: bool,
    /// Space offered to the last read.
    offered: usize,
    /// Grow, or shrink, once empty.
    grow: bool,
    shrink: bool,
    /// When data last arrived (milliseconds on the loop's clock).
    last_input: u64,
}

impl RxBuf {
    /// An empty buffer of [`MIN_RX`] bytes.
    pub fn new(now: u64) -> RxBuf {
        RxBuf {
            buf: vec![0; MIN_RX],
            start: 0,
            filled: 0,
            lent: false,
            offered: 0,
            grow: false,
            shrink: false,
            last_input: now,
        }
    }

    /// Bytes allocated.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// The free tail is lent to an asynchronous receive.
    pub fn is_lent(&self) -> bool {
        self.lent
    }

    /// The free tail, for a synchronous read (never while it is lent).
    pub fn space(&mut self) -> &mut [u8] {
        debug_assert!(!self.lent, "receive buffer lent to the kernel");
        self.make_room();
        self.offered = self.buf.len() - self.filled;
        &mut self.buf[self.filled..]
    }

    /// Lend the free tail to an asynchronous receive: its address and length, or `None` when
    /// it is lent already.
    pub fn lend(&mut self) -> Option<(*mut u8, usize)> {
        if self.lent {
            return None;
        }
        self.make_room();
        self.lent = true;
        let spare = &mut self.buf[self.filled..];
        self.offered = spare.len();
        Some((spare.as_mut_ptr(), spare.len()))
    }

    /// The loan ended without data.
    pub fn returned(&mut self) {
        self.lent = false;
    }

    /// `n` bytes arrived at the start of the free tail at `now` (ends a loan).
    pub fn arrived(&mut self, n: usize, now: u64) {
        self.lent = false;
        self.filled = (self.filled + n).min(self.buf.len());
        let full = n >= self.offered;
        let after_silence = now.saturating_sub(self.last_input) >= IDLE_MS;
        self.grow |= full;
        self.shrink = after_silence && !full;
        self.last_input = now;
    }

    /// The bytes not yet decoded (none while lent: the kernel owns the tail).
    pub fn unread(&self) -> &[u8] {
        if self.lent {
            return &[];
        }
        &self.buf[self.start..self.filled]
    }

    /// `n` bytes of [`RxBuf::unread`] were decoded.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.filled);
    }

    /// The connection is dropped while a receive may still write into the buffer: forget the
    /// buffer rather than free it.
    pub fn leak(&mut self) {
        std::mem::forget(std::mem::take(&mut self.buf));
        self.start = 0;
        self.filled = 0;
    }

    /// Make space at the end: resize when empty, else compact, or grow when what is not yet
    /// decoded (input held back while output drains) fills most of it.
    fn make_room(&mut self) {
        if self.lent {
            return;
        }
        if self.start == self.filled {
            self.start = 0;
            self.filled = 0;
            self.resize_empty();
        }
        let quarter = self.buf.len() / 4;
        if self.buf.len() - self.filled >= quarter {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.filled < quarter {
            let len = self.buf.len() * 2;
            self.buf.resize(len, 0);
        }
    }

    /// Apply a pending grow or shrink to the empty buffer.
    fn resize_empty(&mut self) {
        let want = if self.grow {
            (self.buf.len() * 2).clamp(MIN_RX, MAX_RX)
        } else if self.shrink {
            MIN_RX
        } else {
            return;
        };
        self.grow = false;
        self.shrink = false;
        if want != self.buf.len() {
            self.buf = vec![0; want];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fill the offered space completely `times` times (a stream), decoding everything.
    fn stream(b: &mut RxBuf, times: usize, now: u64) {
        for _ in 0..times {
            let n = b.space().len();
            b.arrived(n, now);
            let all = b.unread().len();
            b.consume(all);
        }
    }

    #[test]
    fn grows_while_reads_fill_it_up_to_the_maximum() {
        let mut b = RxBuf::new(0);
        assert_eq!(b.size(), MIN_RX);
        stream(&mut b, 3, 10);
        assert_eq!(b.space().len(), MIN_RX * 8);
        stream(&mut b, 20, 20);
        assert_eq!(b.size(), MAX_RX);
    }

    #[test]
    fn small_reads_keep_it_small_and_silence_shrinks_it() {
        let mut b = RxBuf::new(0);
        for t in 0..10 {
            let _ = b.space();
            b.arrived(48, t);
            b.consume(48);
        }
        assert_eq!(b.space().len(), MIN_RX, "small reads never grow it");
        stream(&mut b, 5, 20);
        assert!(b.size() > MIN_RX);
        // A NOP after a long silence: back to the minimum once decoded.
        let _ = b.space();
        b.arrived(48, 5000);
        assert_eq!(b.unread().len(), 48);
        b.consume(48);
        assert_eq!(b.space().len(), MIN_RX);
    }

    #[test]
    fn data_not_yet_decoded_is_kept_and_compacted() {
        let mut b = RxBuf::new(0);
        let space = b.space();
        let n = space.len();
        space[n - 4..].copy_from_slice(b"abcd");
        b.arrived(n, 1);
        b.consume(n - 4);
        // Compacted, not resized: the 4 bytes move to the front.
        let free = b.space().len();
        assert_eq!(free, b.size() - 4);
        assert_eq!(b.unread(), b"abcd");
    }

    #[test]
    fn a_lent_buffer_is_not_resized_or_read() {
        let mut b = RxBuf::new(0);
        let (p, len) = b.lend().expect("lent");
        assert!(b.lend().is_none(), "lent twice");
        assert!(b.unread().is_empty());
        b.arrived(len, 10);
        b.consume(len);
        let (p2, len2) = b.lend().expect("lent again");
        assert_ne!((p, len), (p2, len2), "grown once the loan ended");
        b.returned();
        assert!(!b.is_lent());
    }
}
