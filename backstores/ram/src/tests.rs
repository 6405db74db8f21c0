use super::*;
use backstore::testsuite;

#[test]
fn conformance_512() {
    testsuite::run_all(&|| Box::new(RamStore::new(1 << 20, 512, false).expect("ram")));
}

#[test]
fn conformance_4096() {
    testsuite::run_all(&|| Box::new(RamStore::new(1 << 20, 4096, false).expect("ram")));
}

#[test]
fn read_only_store() {
    let s = RamStore::new(64 * 512, 512, true).expect("ram");
    testsuite::check_read_only(&s);
    let err = s.write(0, &[1; 512], false).expect_err("write");
    assert_eq!(err.raw_os_error(), Some(30), "EROFS");
}

#[test]
fn capabilities_and_describe() {
    let s = RamStore::new(1 << 20, 4096, false).expect("ram");
    assert_eq!(
        s.capabilities(),
        Capabilities {
            read_only: false,
            volatile_cache: false,
            trim: true,
            fast_zeroes: true,
            persistent: false,
            rotational: false
        }
    );
    assert_eq!(
        s.geometry(),
        Geometry {
            block_size: 4096,
            num_blocks: 256
        }
    );
    assert_eq!(s.describe(), "ram:256x4096");
}

#[test]
fn large_store_is_lazy() {
    // 64 GiB of address space costs nothing until written.
    let s = RamStore::new(64 << 30, 4096, false).expect("ram");
    s.write((64 << 30) - 4096, &[3; 4096], true)
        .expect("write last block");
    let mut buf = [0u8; 4096];
    s.read((64 << 30) - 4096, &mut buf).expect("read");
    assert_eq!(buf, [3; 4096]);
    s.trim((64 << 30) - 4096, 4096).expect("trim");
    let list = s.extents((64 << 30) - 8192, 8192).expect("extents");
    assert_eq!(
        list,
        vec![Extent {
            offset: (64 << 30) - 8192,
            length: 8192,
            hole: true
        }]
    );
}

#[test]
fn bad_sizes_are_refused() {
    for (size, bs, needle) in [
        (0u64, 512u32, "size 0"),
        (1000, 512, "size 1000"),
        (4096 + 512, 4096, "block size 4096"),
        (4096, 1024, "block size 1024"),
    ] {
        let err = RamStore::new(size, bs, false).expect_err("bad size");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
    }
}

/// A scratch directory removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("store-ram-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn persistent(path: &std::path::Path, size: u64, bs: u32) -> RamStore {
    RamStore::open_file(path, Some(size), bs, false, false).expect("open persistent ram")
}

#[test]
fn conformance_persistent_512_and_4096() {
    let dir = TempDir::new("conf");
    let n = std::sync::atomic::AtomicU32::new(0);
    for bs in [512u32, 4096] {
        testsuite::run_all(&|| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::new(persistent(&dir.path(&format!("p{i}.img")), 1 << 20, bs))
        });
    }
}

#[test]
fn persistent_read_only() {
    let dir = TempDir::new("ro");
    let path = dir.path("ro.img");
    let data = testsuite::pattern(4, 0, 4096);
    persistent(&path, 64 * 512, 512)
        .write(0, &data, true)
        .expect("write");
    let s = RamStore::open_file(&path, None, 512, true, false).expect("open ro");
    testsuite::check_read_only(&s);
    let mut buf = vec![0u8; 4096];
    s.read(0, &mut buf).expect("read");
    assert_eq!(buf, data);
    let e = s.write(0, &[0; 512], false).expect_err("write");
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
}

#[test]
fn restart_on_the_same_file_shows_the_same_data() {
    let dir = TempDir::new("restart");
    let path = dir.path("r.img");
    let a = testsuite::pattern(1, 0, 8192);
    let b = testsuite::pattern(2, 65536, 4096);
    {
        let s = persistent(&path, 1 << 20, 4096);
        s.write(0, &a, true).expect("fua write");
        s.write(65536, &b, false).expect("write");
        s.flush().expect("flush");
    }
    // Reopen without a size: the file's length is the size.
    let s = RamStore::open_file(&path, None, 4096, false, false).expect("reopen");
    assert_eq!(s.geometry().size_bytes(), 1 << 20);
    let mut buf = vec![0u8; 8192];
    s.read(0, &mut buf).expect("read");
    assert_eq!(buf, a);
    let mut buf = vec![0u8; 4096];
    s.read(65536, &mut buf).expect("read");
    assert_eq!(buf, b);
    // The bytes are in the file itself.
    let raw = std::fs::read(&path).expect("read file");
    assert_eq!(raw[..8192], a[..]);
    assert_eq!(raw[65536..69632], b[..]);
    assert_eq!(s.describe(), format!("ram:{}", path.display()));
    assert_eq!(
        s.capabilities(),
        Capabilities {
            read_only: false,
            volatile_cache: true,
            trim: false,
            fast_zeroes: true,
            persistent: true,
            rotational: false
        }
    );
}

#[test]
fn file_is_fully_preallocated_and_grown() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("prealloc");
    let path = dir.path("g.img");
    std::fs::write(&path, vec![7u8; 4096]).expect("write");
    let s = persistent(&path, 1 << 20, 512);
    let meta = std::fs::metadata(&path).expect("meta");
    assert_eq!(meta.len(), 1 << 20);
    // st_blocks counts 512-byte units: the whole file is allocated, no holes.
    assert!(meta.blocks() * 512 >= 1 << 20, "{} blocks", meta.blocks());
    let mut buf = vec![0u8; 4096];
    s.read(0, &mut buf).expect("read");
    assert!(buf.iter().all(|&b| b == 7), "old data kept");
    s.read(8192, &mut buf).expect("read");
    assert!(buf.iter().all(|&b| b == 0), "grown part reads zero");
}

#[test]
fn persistent_size_rules() {
    let dir = TempDir::new("size");
    let absent = dir.path("absent.img");
    let e = RamStore::open_file(&absent, None, 512, false, false).expect_err("no size");
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert!(!absent.exists());
    let big = dir.path("big.img");
    std::fs::write(&big, vec![0u8; 8192]).expect("write");
    let e = RamStore::open_file(&big, Some(4096), 512, false, false).expect_err("smaller");
    assert!(
        e.to_string().contains("larger than the given size 4096"),
        "{e}"
    );
    let e = RamStore::open_file(&big, Some(16384), 512, true, false).expect_err("ro grow");
    assert!(e.to_string().contains("cannot grow read-only"), "{e}");
    let e =
        RamStore::open_file(dir.path("odd.img"), Some(1000), 512, false, false).expect_err("odd");
    assert!(
        e.to_string()
            .contains("not a multiple of the block size 512"),
        "{e}"
    );
    let e = RamStore::open_file(&big, None, 1024, false, false).expect_err("bs");
    assert!(e.to_string().contains("block size 1024"), "{e}");
    let e = RamStore::open_file(&dir.0, None, 512, true, false).expect_err("dir");
    assert!(e.to_string().contains("regular file"), "{e}");
    let empty = dir.path("empty.img");
    std::fs::write(&empty, b"").expect("write");
    let e = RamStore::open_file(&empty, None, 512, false, false).expect_err("empty");
    assert!(e.to_string().contains("empty"), "{e}");
}

#[test]
fn trim_writes_zeroes_and_is_not_advertised() {
    let dir = TempDir::new("trim");
    let s = persistent(&dir.path("t.img"), 64 * 4096, 4096);
    assert!(!s.capabilities().trim);
    s.write(0, &[9u8; 3 * 4096], false).expect("write");
    s.trim(4096, 4096).expect("trim");
    let mut buf = vec![1u8; 3 * 4096];
    s.read(0, &mut buf).expect("read");
    assert!(buf[..4096].iter().all(|&b| b == 9));
    assert!(buf[4096..8192].iter().all(|&b| b == 0));
    assert!(buf[8192..].iter().all(|&b| b == 9));
}

#[test]
fn failed_msync_poisons_the_store() {
    let dir = TempDir::new("poison");
    let path = dir.path("p.img");
    let s = MappedStore::open(
        &path,
        &MapOptions {
            size: Some(64 * 512),
            block_size: 512,
            read_only: false,
            lock: false,
        },
    )
    .expect("open");
    s.write(0, &[3u8; 512], false).expect("write");
    s.fail_next_sync
        .store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        s.flush().expect_err("flush").raw_os_error(),
        Some(libc::EIO)
    );
    assert!(s.is_poisoned());
    assert_eq!(
        s.flush().expect_err("again").raw_os_error(),
        Some(libc::EIO)
    );
    for fua in [false, true] {
        let e = s.write(512, &[4u8; 512], fua).expect_err("write");
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
    }
    assert_eq!(
        s.trim(0, 512).expect_err("trim").raw_os_error(),
        Some(libc::EIO)
    );
    let mut buf = [0u8; 512];
    s.read(0, &mut buf).expect("reads still work");
    assert_eq!(buf, [3u8; 512]);
}

#[test]
fn lock_small_store_or_explain_the_limit() {
    let dir = TempDir::new("lock");
    match RamStore::open_file(dir.path("l.img"), Some(64 * 1024), 4096, false, true) {
        Ok(s) => {
            s.write(0, &[1u8; 4096], true).expect("write locked");
        }
        Err(e) => assert!(e.to_string().contains("RLIMIT_MEMLOCK"), "{e}"),
    }
}

#[test]
fn lock_error_names_the_limit() {
    let e = persistent::lock_error(io::Error::from_raw_os_error(libc::ENOMEM), 1 << 30);
    let msg = e.to_string();
    assert!(msg.contains("cannot lock 1073741824 bytes"), "{msg}");
    assert!(msg.contains("RLIMIT_MEMLOCK"), "{msg}");
    assert!(msg.contains("ulimit -l"), "{msg}");
}
