//! Verify mode: every written block is stamped with (LBA, generation) in each of its 16-byte
//! words; every read is checked against the last acknowledged write of each block. Reads and
//! writes of a block never overlap in time (a command that would overlap is not issued), so a
//! read has exactly one right answer.

/// A block whose content is unknown (a write to it failed): not checked until written again.
const UNKNOWN: u64 = u64::MAX;

/// Per-block state of the range under load.
#[derive(Debug)]
pub struct Verifier {
    block_size: u64,
    /// Generation of the last acknowledged write; 0: not written in this run.
    acked: Vec<u64>,
    /// Generation of the write in flight; 0: none.
    writing: Vec<u64>,
    /// Reads in flight.
    readers: Vec<u16>,
    next_gen: u64,
    /// Blocks compared with what was written.
    pub checked: u64,
    /// Blocks that did not hold what was written.
    pub mismatched: u64,
    /// The lowest mismatching block.
    pub first_bad: Option<u64>,
}

/// The 16-byte word stamped all over `block` by write generation `gen`.
fn word(block: u64, gen: u64) -> [u8; 16] {
    let mut w = [0u8; 16];
    w[..8].copy_from_slice(&block.to_le_bytes());
    w[8..].copy_from_slice(&gen.to_le_bytes());
    w
}

impl Verifier {
    /// State for `blocks` blocks of `block_size` bytes (a multiple of 16).
    pub fn new(blocks: u64, block_size: u32) -> Verifier {
        let n = blocks as usize;
        Verifier {
            block_size: u64::from(block_size),
            acked: vec![0; n],
            writing: vec![0; n],
            readers: vec![0; n],
            next_gen: 1,
            checked: 0,
            mismatched: 0,
            first_bad: None,
        }
    }

    fn range(lba: u64, n: u64) -> std::ops::Range<usize> {
        lba as usize..(lba + n) as usize
    }

    /// True when a command on blocks `lba..lba+n` overlaps nothing it must not.
    pub fn can_issue(&self, lba: u64, n: u64, write: bool) -> bool {
        let r = Self::range(lba, n);
        self.writing[r.clone()].iter().all(|&g| g == 0)
            && (!write || self.readers[r].iter().all(|&c| c == 0))
    }

    /// A command on those blocks is issued; returns the generation stamped by a write.
    pub fn start(&mut self, lba: u64, n: u64, write: bool) -> u64 {
        let r = Self::range(lba, n);
        if write {
            let gen = self.next_gen;
            self.next_gen += 1;
            self.writing[r].fill(gen);
            gen
        } else {
            self.readers[r]
                .iter_mut()
                .for_each(|c| *c = c.saturating_add(1));
            0
        }
    }

    /// The command ended; a write that failed leaves its blocks unknown.
    pub fn finish(&mut self, lba: u64, n: u64, write: bool, gen: u64, ok: bool) {
        let r = Self::range(lba, n);
        if write {
            self.writing[r.clone()].fill(0);
            self.acked[r].fill(if ok { gen } else { UNKNOWN });
        } else {
            self.readers[r]
                .iter_mut()
                .for_each(|c| *c = c.saturating_sub(1));
        }
    }

    /// Append bytes `offset..offset+len` of the data written by generation `gen` at `lba`.
    pub fn stamp(&self, lba: u64, gen: u64, offset: u64, len: usize, out: &mut Vec<u8>) {
        let mut pos = offset;
        let end = offset + len as u64;
        out.reserve(len);
        while pos < end {
            let w = word(lba + pos / self.block_size, gen);
            let at = (pos % 16) as usize;
            let take = (16 - at).min((end - pos) as usize);
            out.extend_from_slice(&w[at..at + take]);
            pos += take as u64;
        }
    }

    /// Check `data`, bytes `offset..` of a read at `lba`. Only whole 16-byte words are
    /// compared; a block is counted once, where its first word is.
    pub fn check(&mut self, lba: u64, offset: u64, data: &[u8]) {
        let first = offset.div_ceil(16) * 16;
        let mut pos = first;
        let mut bad_block = None;
        while pos + 16 <= offset + data.len() as u64 {
            let block = lba + pos / self.block_size;
            let want = self.acked.get(block as usize).copied().unwrap_or(0);
            let at = (pos - offset) as usize;
            if want != 0 && want != UNKNOWN {
                if pos % self.block_size == 0 {
                    self.checked += 1;
                }
                if data[at..at + 16] != word(block, want) && bad_block != Some(block) {
                    bad_block = Some(block);
                    self.mismatched += 1;
                    self.first_bad = Some(self.first_bad.map_or(block, |b| b.min(block)));
                }
            }
            pos += 16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_check_and_overlaps() {
        let mut v = Verifier::new(8, 512);
        assert!(v.can_issue(0, 2, true));
        let g = v.start(2, 2, true);
        assert!(!v.can_issue(3, 1, false), "read over a write in flight");
        assert!(!v.can_issue(1, 2, true));
        let mut data = Vec::new();
        // In two pieces at an odd split, as R2T-driven Data-Out may ask.
        v.stamp(2, g, 0, 700, &mut data);
        v.stamp(2, g, 700, 324, &mut data);
        assert_eq!(data.len(), 1024);
        assert_eq!(data[512..528], word(3, g));
        v.finish(2, 2, true, g, true);

        assert_eq!(v.start(2, 2, false), 0);
        assert!(!v.can_issue(2, 1, true), "write over a read in flight");
        assert!(v.can_issue(2, 1, false));
        v.check(2, 0, &data[..600]);
        v.check(2, 600, &data[600..]);
        assert_eq!((v.checked, v.mismatched), (2, 0));
        let mut bad = data.clone();
        bad[600] ^= 1;
        bad[601] ^= 1;
        v.check(2, 0, &bad);
        assert_eq!((v.checked, v.mismatched, v.first_bad), (4, 1, Some(3)));
        v.finish(2, 2, false, 0, true);
        assert!(v.can_issue(2, 2, true));

        // Unwritten and unknown blocks are not checked.
        let g = v.start(5, 1, true);
        v.finish(5, 1, true, g, false);
        v.check(5, 0, &[0u8; 512]);
        v.check(6, 0, &[0u8; 512]);
        assert_eq!(v.checked, 4);
    }
}
