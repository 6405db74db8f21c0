//! The size of an image a handler is told before it opens it. The qcow handler does not
//! report a size: it checks that the "Size" it is given equals the image's virtual size, so
//! the host reads that from the QCOW/QCOW2 header (or takes a raw file's length, which the
//! handler then requires to match exactly).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// "QFI\xfb": the magic of QCOW (v1) and QCOW2 (v2, v3) images.
const QCOW_MAGIC: [u8; 4] = *b"QFI\xfb";

/// The virtual size from a QCOW/QCOW2 header (`size`, big-endian at byte 24 in versions 1 to
/// 3), or `None` when the bytes are not such a header.
pub fn qcow_virtual_size(header: &[u8]) -> Option<u64> {
    if header.len() < 32 || header[..4] != QCOW_MAGIC {
        return None;
    }
    let version = u32::from_be_bytes(header[4..8].try_into().ok()?);
    if !(1..=3).contains(&version) {
        return None;
    }
    Some(u64::from_be_bytes(header[24..32].try_into().ok()?))
}

/// The size the qcow handler must be told for the image at `path`: the virtual size of a
/// QCOW/QCOW2 image, or the length of any other (raw) file.
pub fn qcow_handler_size(path: &Path) -> io::Result<u64> {
    let mut f = File::open(path)?;
    let mut header = [0u8; 32];
    let mut got = 0;
    while got < header.len() {
        match f.read(&mut header[got..])? {
            0 => break,
            n => got += n,
        }
    }
    match qcow_virtual_size(&header[..got]) {
        Some(size) => Ok(size),
        None => Ok(f.metadata()?.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: u32, size: u64) -> Vec<u8> {
        let mut h = vec![0u8; 104];
        h[..4].copy_from_slice(&QCOW_MAGIC);
        h[4..8].copy_from_slice(&version.to_be_bytes());
        h[24..32].copy_from_slice(&size.to_be_bytes());
        h
    }

    #[test]
    fn qcow_headers() {
        assert_eq!(qcow_virtual_size(&header(3, 1 << 30)), Some(1 << 30));
        assert_eq!(qcow_virtual_size(&header(2, 4096)), Some(4096));
        assert_eq!(qcow_virtual_size(&header(1, 512)), Some(512));
        assert_eq!(qcow_virtual_size(&header(4, 512)), None);
        assert_eq!(qcow_virtual_size(&[0u8; 64]), None);
        assert_eq!(qcow_virtual_size(&QCOW_MAGIC), None, "short");
    }

    #[test]
    fn raw_files_use_their_length() {
        let path = std::env::temp_dir().join(format!("tcmu-image-{}.raw", std::process::id()));
        std::fs::write(&path, vec![7u8; 4096]).expect("write");
        assert_eq!(qcow_handler_size(&path).expect("size"), 4096);
        std::fs::write(&path, header(3, 8 << 20)).expect("write");
        assert_eq!(qcow_handler_size(&path).expect("size"), 8 << 20);
        std::fs::remove_file(&path).expect("rm");
        assert!(qcow_handler_size(&path).is_err());
    }
}
