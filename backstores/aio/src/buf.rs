//! Page-aligned byte buffers whose address never moves, as io_uring and O_DIRECT need.

/// Alignment of every [`AlignedBuf`]: enough for O_DIRECT on any logical block size we export.
pub(crate) const ALIGN: usize = 4096;

/// A zeroed buffer of `len` bytes starting on an [`ALIGN`] boundary. The storage is a `Vec`
/// allocated once and never resized, so its address is stable for the buffer's life.
#[derive(Debug)]
pub(crate) struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes.
    pub(crate) fn new(len: usize) -> AlignedBuf {
        let raw = vec![0u8; len + ALIGN];
        let addr = raw.as_ptr() as usize;
        let start = (ALIGN - addr % ALIGN) % ALIGN;
        AlignedBuf { raw, start, len }
    }

    /// The buffer's contents.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    /// The buffer's contents, writable.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }

    /// Address of the first byte.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_slice().as_mut_ptr()
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        for len in [1usize, 512, 4096, 65536] {
            let mut b = AlignedBuf::new(len);
            assert_eq!(b.as_mut_ptr() as usize % ALIGN, 0);
            assert_eq!(b.len(), len);
            assert!(b.as_slice().iter().all(|x| *x == 0));
            b.as_mut_slice()[len - 1] = 7;
            assert_eq!(b.as_slice()[len - 1], 7);
        }
    }
}
