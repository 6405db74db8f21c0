//! The allocation map of a file range, from SEEK_DATA/SEEK_HOLE.

use std::fs::File;
use std::io;

use backstore::Extent;

use crate::sys;

/// Appends `[offset, offset + length)` to `list`, merging with the previous extent when it has
/// the same state.
fn push(list: &mut Vec<Extent>, offset: u64, length: u64, hole: bool) {
    if length == 0 {
        return;
    }
    if let Some(last) = list.last_mut() {
        if last.hole == hole && last.offset + last.length == offset {
            last.length += length;
            return;
        }
    }
    list.push(Extent {
        offset,
        length,
        hole,
    });
}

/// Records a hole `[start, end)`, shrunk inwards to block boundaries; the slivers cut off count
/// as data, so a block is only reported as a hole when all of it is one.
fn push_hole(list: &mut Vec<Extent>, start: u64, end: u64, block: u64) {
    let inner_start = start.div_ceil(block) * block;
    let inner_end = end / block * block;
    if inner_start >= inner_end {
        push(list, start, end - start, false);
        return;
    }
    push(list, start, inner_start - start, false);
    push(list, inner_start, inner_end - inner_start, true);
    push(list, inner_end, end - inner_end, false);
}

/// Maps `[offset, offset + len)` of `file` into alternating data and hole extents covering the
/// whole range, each a multiple of `block` when `offset` and `len` are.
pub(crate) fn map(file: &File, offset: u64, len: u64, block: u64) -> io::Result<Vec<Extent>> {
    let end = offset + len;
    let mut list = Vec::new();
    let mut pos = offset;
    while pos < end {
        let data = sys::seek_data(file, pos)?.unwrap_or(end).min(end);
        push_hole(&mut list, pos, data, block);
        if data >= end {
            break;
        }
        let hole = sys::seek_hole(file, data)?.unwrap_or(end).min(end);
        // A file system must make progress; guard against one that does not.
        let hole = if hole <= data { end } else { hole };
        push(&mut list, data, hole - data, false);
        pos = hole;
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(offset: u64, length: u64, hole: bool) -> Extent {
        Extent {
            offset,
            length,
            hole,
        }
    }

    #[test]
    fn push_merges_same_state() {
        let mut l = Vec::new();
        push(&mut l, 0, 512, false);
        push(&mut l, 512, 512, false);
        push(&mut l, 1024, 0, true);
        push(&mut l, 1024, 512, true);
        assert_eq!(l, vec![e(0, 1024, false), e(1024, 512, true)]);
    }

    #[test]
    fn hole_shrinks_to_blocks() {
        let mut l = Vec::new();
        push_hole(&mut l, 100, 5000, 512);
        assert_eq!(
            l,
            vec![e(100, 412, false), e(512, 4096, true), e(4608, 392, false)]
        );
        let mut l = Vec::new();
        push_hole(&mut l, 100, 400, 512);
        assert_eq!(l, vec![e(100, 300, false)]);
        let mut l = Vec::new();
        push_hole(&mut l, 0, 4096, 4096);
        assert_eq!(l, vec![e(0, 4096, true)]);
    }
}
