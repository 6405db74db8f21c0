//! Building block stores from LUN specs.

use std::io;
use std::sync::Arc;

use backstore::BlockStore;
use store_file::{FileOptions, FileStore};
use store_ram::RamStore;

use crate::lunspec::{LunSpec, StoreSpec};
use crate::size::format_size;

/// Opens (or creates) the store a LUN spec describes. Errors name the store and the OS error,
/// e.g. `file:/x/y: No such file or directory (os error 2) (give size= to create it)`.
pub fn open_store(spec: &LunSpec) -> Result<Arc<dyn BlockStore>, String> {
    match &spec.store {
        StoreSpec::Ram { size } => {
            let store = RamStore::new(*size, spec.block_size, spec.read_only)
                .map_err(|e| format!("ram:{}: {e}", format_size(*size)))?;
            Ok(Arc::new(store))
        }
        StoreSpec::File { path, size } => {
            let opts = FileOptions {
                size: *size,
                block_size: spec.block_size,
                read_only: spec.read_only,
                create: true,
            };
            let store = FileStore::open(path, opts).map_err(|e| {
                let hint = match e.kind() {
                    io::ErrorKind::NotFound if size.is_none() => " (give size= to create it)",
                    _ => "",
                };
                format!("file:{}: {e}{hint}", path.display())
            })?;
            Ok(Arc::new(store))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lunspec::parse_lun_spec;

    fn open(text: &str) -> Result<Arc<dyn BlockStore>, String> {
        open_store(&parse_lun_spec(text).expect("spec"))
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ustgt-stores-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir.join(name)
    }

    #[test]
    fn ram_store_from_spec() {
        let s = open("ram:1M,block-size=4096").expect("ram");
        assert_eq!(s.geometry().num_blocks, 256);
        assert_eq!(s.geometry().block_size, 4096);
        assert!(!s.capabilities().persistent);
        let ro = open("ram:1M,readonly").expect("ram ro");
        assert!(ro.capabilities().read_only);
        assert!(ro.write(0, &[0; 512], false).is_err());
    }

    #[test]
    fn ram_store_error_names_it() {
        let mut spec = parse_lun_spec("ram:1M").expect("spec");
        spec.block_size = 1024;
        let err = open_store(&spec).err().expect("error");
        assert!(err.starts_with("ram:1M: block size 1024"), "{err}");
    }

    #[test]
    fn file_store_created_then_reopened() {
        let path = scratch("created.img");
        let _ = std::fs::remove_file(&path);
        let s = open(&format!("file:{},size=64K", path.display())).expect("create");
        assert_eq!(s.geometry().size_bytes(), 64 << 10);
        s.write(512, &[9; 512], true).expect("write");
        drop(s);
        let s = open(&format!("file:{},readonly", path.display())).expect("reopen");
        let mut buf = [0u8; 512];
        s.read(512, &mut buf).expect("read");
        assert_eq!(buf, [9; 512]);
        assert!(s.capabilities().read_only);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn missing_file_hints_at_size() {
        let path = scratch("missing.img");
        let _ = std::fs::remove_file(&path);
        let err = open(&format!("file:{}", path.display()))
            .err()
            .expect("error");
        assert_eq!(
            err,
            format!(
                "file:{}: No such file or directory (os error 2) (give size= to create it)",
                path.display()
            )
        );
    }

    #[test]
    fn missing_directory_does_not_hint() {
        let err = open("file:/nonexistent-ustgt-dir/x.img,size=1M")
            .err()
            .expect("error");
        assert_eq!(
            err,
            "file:/nonexistent-ustgt-dir/x.img: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn wrong_size_names_the_path() {
        let path = scratch("sized.img");
        std::fs::write(&path, vec![0u8; 8192]).expect("write");
        let err = open(&format!("file:{},size=4K", path.display()))
            .err()
            .expect("error");
        assert!(
            err.starts_with(&format!("file:{}: the file is 8192 bytes", path.display())),
            "{err}"
        );
        let _ = std::fs::remove_file(&path);
    }
}
