use super::*;
use backstore::testsuite;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("store-file-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn create_opts(size: u64, block_size: u32) -> FileOptions {
    FileOptions {
        size: Some(size),
        block_size,
        read_only: false,
        create: true,
        direct: false,
        map: true,
    }
}

/// Opens a direct-I/O store, or `None` (with the reason printed) when the file system of the
/// temporary directory refuses `O_DIRECT`.
fn open_direct(path: &Path, size: u64, block_size: u32) -> Option<FileStore> {
    let opts = FileOptions {
        direct: true,
        ..create_opts(size, block_size)
    };
    match FileStore::open(path, opts) {
        Ok(s) => Some(s),
        Err(e) if e.to_string().contains("O_DIRECT") => {
            eprintln!("skipping direct-I/O test: {e}");
            None
        }
        Err(e) => panic!("open direct {}: {e}", path.display()),
    }
}

#[test]
fn conformance_512() {
    let dir = TempDir::new();
    let n = AtomicU32::new(0);
    testsuite::run_all(&|| {
        let path = dir.path(&format!("c512-{}.img", n.fetch_add(1, Ordering::Relaxed)));
        Box::new(FileStore::open(&path, create_opts(1 << 20, 512)).expect("open"))
    });
}

#[test]
fn conformance_4096() {
    let dir = TempDir::new();
    let n = AtomicU32::new(0);
    testsuite::run_all(&|| {
        let path = dir.path(&format!("c4k-{}.img", n.fetch_add(1, Ordering::Relaxed)));
        Box::new(FileStore::open(&path, create_opts(1 << 20, 4096)).expect("open"))
    });
}

#[test]
fn conformance_memfd_without_cache() {
    testsuite::run_all(&|| {
        let f = anonymous_file("test").expect("memfd");
        f.set_len(256 * 1024).expect("set_len");
        let store = FileStore::from_file(f, "memfd", 512, false).expect("from_file");
        let caps = Capabilities {
            volatile_cache: false,
            persistent: false,
            ..store.capabilities()
        };
        Box::new(store.with_capabilities(caps))
    });
}

#[test]
fn conformance_direct_512_and_4096() {
    let dir = TempDir::new();
    let n = AtomicU32::new(0);
    for bs in [512u32, 4096] {
        let probe = dir.path(&format!("probe-{bs}.img"));
        if open_direct(&probe, 1 << 20, bs).is_none() {
            return;
        }
        testsuite::run_all(&|| {
            let path = dir.path(&format!("d{bs}-{}.img", n.fetch_add(1, Ordering::Relaxed)));
            let store = open_direct(&path, 1 << 20, bs).expect("direct was supported above");
            assert!(store.is_direct());
            Box::new(store)
        });
    }
}

#[test]
fn direct_io_with_unaligned_buffers_bounces() {
    let dir = TempDir::new();
    let Some(s) = open_direct(&dir.path("bounce.img"), 64 * 4096, 512) else {
        return;
    };
    // A buffer that starts one byte past an alignment boundary.
    let mut backing = vec![0u8; 8 * 512 + 1];
    let skew = usize::from(sys::is_aligned(&backing));
    let data = testsuite::pattern(5, 512, 8 * 512);
    backing[skew..skew + 8 * 512].copy_from_slice(&data);
    assert!(!sys::is_aligned(&backing[skew..]));
    s.write(512, &backing[skew..skew + 8 * 512], true)
        .expect("unaligned write");
    let mut out = vec![0u8; 8 * 512 + 3];
    s.read(512, &mut out[3..]).expect("unaligned read");
    assert_eq!(out[3..], data[..]);
    // The data reached the file itself, not only a cache of ours.
    let on_disk = std::fs::read(dir.path("bounce.img")).expect("read file");
    assert_eq!(on_disk[512..512 + 8 * 512], data[..]);
}

#[test]
fn direct_probe_on_tmpfs_is_clear() {
    // /dev/shm is tmpfs: newer kernels accept O_DIRECT there, older ones refuse with EINVAL.
    let path = PathBuf::from(format!("/dev/shm/store-file-direct-{}", std::process::id()));
    if !Path::new("/dev/shm").is_dir() {
        return;
    }
    let opts = FileOptions {
        direct: true,
        ..create_opts(64 * 1024, 512)
    };
    match FileStore::open(&path, opts) {
        Ok(s) => {
            s.write(0, &[1u8; 512], true).expect("write on tmpfs");
        }
        Err(e) => {
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
            assert!(e.to_string().contains("O_DIRECT"), "{e}");
        }
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn direct_open_error_is_explained() {
    let opts = FileOptions {
        direct: true,
        ..FileOptions::default()
    };
    let e = direct_open_error(io::Error::from_raw_os_error(libc::EINVAL), &opts);
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("does not support O_DIRECT"), "{e}");
    let other = direct_open_error(io::Error::from_raw_os_error(libc::ENOENT), &opts);
    assert_eq!(other.raw_os_error(), Some(libc::ENOENT));
    let plain = direct_open_error(
        io::Error::from_raw_os_error(libc::EINVAL),
        &FileOptions::default(),
    );
    assert_eq!(plain.raw_os_error(), Some(libc::EINVAL));
}

#[test]
fn failed_sync_poisons_writes_and_flushes() {
    let dir = TempDir::new();
    let s = FileStore::open(dir.path("p.img"), create_opts(64 * 512, 512)).expect("open");
    let data = testsuite::pattern(8, 0, 1024);
    s.write(0, &data, false).expect("write");
    s.fail_next_sync.store(true, Ordering::Relaxed);
    assert_eq!(
        s.flush().expect_err("flush").raw_os_error(),
        Some(libc::EIO)
    );
    assert!(s.is_poisoned());
    // A retry would succeed at the OS level; the store must not claim durability again.
    assert_eq!(
        s.flush().expect_err("flush again").raw_os_error(),
        Some(libc::EIO)
    );
    for fua in [false, true] {
        let e = s.write(1024, &[7u8; 512], fua).expect_err("write");
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "fua={fua}");
    }
    assert_eq!(
        s.trim(0, 512).expect_err("trim").raw_os_error(),
        Some(libc::EIO)
    );
    assert_eq!(
        s.write_zeroes(0, 512).expect_err("zeroes").raw_os_error(),
        Some(libc::EIO)
    );
    // Reads keep working and see what was written before.
    let mut buf = vec![0u8; 1024];
    s.read(0, &mut buf).expect("read");
    assert_eq!(buf, data);
    // Range errors still win over poisoning.
    assert_eq!(
        s.write(64 * 512, &[0; 512], false)
            .expect_err("range")
            .raw_os_error(),
        Some(libc::EINVAL)
    );
}

#[test]
fn failed_fua_sync_poisons_too() {
    let dir = TempDir::new();
    let s = FileStore::open(dir.path("f.img"), create_opts(64 * 512, 512)).expect("open");
    s.fail_next_sync.store(true, Ordering::Relaxed);
    let e = s.write(0, &[1u8; 512], true).expect_err("fua write");
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    assert!(s.is_poisoned());
    assert!(s.write(512, &[1u8; 512], false).is_err());
}

#[test]
fn store_without_cache_never_syncs_so_never_poisons() {
    let f = anonymous_file("nopoison").expect("memfd");
    f.set_len(64 * 512).expect("set_len");
    let s = FileStore::from_file(f, "memfd", 512, false).expect("store");
    let caps = Capabilities {
        volatile_cache: false,
        ..s.capabilities()
    };
    let s = s.with_capabilities(caps);
    s.fail_next_sync.store(true, Ordering::Relaxed);
    s.flush().expect("flush without a cache");
    assert!(!s.is_poisoned());
}

#[test]
fn unaligned_requests_are_einval() {
    let dir = TempDir::new();
    let s = FileStore::open(dir.path("u.img"), create_opts(4096, 512)).expect("open");
    let mut buf = [0u8; 512];
    assert_eq!(
        s.read(100, &mut buf).expect_err("read").raw_os_error(),
        Some(libc::EINVAL)
    );
    assert_eq!(
        s.write(0, &[0; 100], false)
            .expect_err("write")
            .raw_os_error(),
        Some(libc::EINVAL)
    );
    assert_eq!(
        s.trim(512, 100).expect_err("trim").raw_os_error(),
        Some(libc::EINVAL)
    );
}

#[test]
fn read_only_refuses_writes_with_erofs() {
    let dir = TempDir::new();
    let path = dir.path("ro.img");
    let pattern = testsuite::pattern(3, 0, 4096);
    {
        let s = FileStore::open(&path, create_opts(64 * 512, 512)).expect("create");
        s.write(0, &pattern, true).expect("write");
    }
    let opts = FileOptions {
        read_only: true,
        ..FileOptions::default()
    };
    let s = FileStore::open(&path, opts).expect("open ro");
    testsuite::check_read_only(&s);
    let err = s.write(0, &[0; 512], false).expect_err("write");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let mut buf = vec![0; 4096];
    s.read(0, &mut buf).expect("read");
    assert_eq!(buf, pattern);
}

#[test]
fn existing_file_keeps_data_and_size() {
    let dir = TempDir::new();
    let path = dir.path("keep.img");
    std::fs::write(&path, vec![7u8; 8192]).expect("write file");
    let s = FileStore::open(
        &path,
        FileOptions {
            block_size: 4096,
            ..FileOptions::default()
        },
    )
    .expect("open");
    assert_eq!(
        s.geometry(),
        Geometry {
            block_size: 4096,
            num_blocks: 2
        }
    );
    let mut buf = [0u8; 4096];
    s.read(4096, &mut buf).expect("read");
    assert!(buf.iter().all(|&b| b == 7));
    assert_eq!(s.describe(), format!("file:{}", path.display()));
    assert_eq!(
        s.capabilities(),
        Capabilities {
            read_only: false,
            volatile_cache: true,
            trim: true,
            fast_zeroes: true,
            persistent: true,
            rotational: false
        }
    );
}

#[test]
fn given_size_equal_or_larger_grows() {
    let dir = TempDir::new();
    let path = dir.path("grow.img");
    std::fs::write(&path, vec![1u8; 4096]).expect("write file");
    let s = FileStore::open(
        &path,
        FileOptions {
            size: Some(4096),
            ..FileOptions::default()
        },
    )
    .expect("equal");
    assert_eq!(s.geometry().num_blocks, 8);
    drop(s);
    let s = FileStore::open(
        &path,
        FileOptions {
            size: Some(16384),
            ..FileOptions::default()
        },
    )
    .expect("grow");
    assert_eq!(s.geometry().num_blocks, 32);
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), 16384);
    let mut buf = [9u8; 512];
    s.read(8192, &mut buf).expect("read grown part");
    assert_eq!(buf, [0u8; 512]);
}

#[test]
fn given_size_smaller_than_file_is_an_error() {
    let dir = TempDir::new();
    let path = dir.path("small.img");
    std::fs::write(&path, vec![1u8; 8192]).expect("write file");
    let err = FileStore::open(
        &path,
        FileOptions {
            size: Some(4096),
            ..FileOptions::default()
        },
    )
    .expect_err("smaller");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("larger than the given size 4096"),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(&path).expect("meta").len(),
        8192,
        "file was truncated"
    );
}

#[test]
fn read_only_cannot_grow() {
    let dir = TempDir::new();
    let path = dir.path("rogrow.img");
    std::fs::write(&path, vec![1u8; 4096]).expect("write file");
    let opts = FileOptions {
        size: Some(8192),
        read_only: true,
        ..FileOptions::default()
    };
    let err = FileStore::open(&path, opts).expect_err("grow ro");
    assert!(err.to_string().contains("read-only"), "{err}");
}

#[test]
fn missing_file_without_size_keeps_enoent() {
    let dir = TempDir::new();
    let path = dir.path("absent.img");
    let opts = FileOptions {
        create: true,
        ..FileOptions::default()
    };
    let err = FileStore::open(&path, opts).expect_err("no size");
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    assert!(!path.exists());
    // Without `create`, a size does not create the file either.
    let opts = FileOptions {
        size: Some(4096),
        ..FileOptions::default()
    };
    let err = FileStore::open(&path, opts).expect_err("no create");
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    assert!(!path.exists());
}

#[test]
fn bad_block_size_is_refused() {
    let dir = TempDir::new();
    let path = dir.path("bs.img");
    for bs in [0, 513, 1024, 8192] {
        let err = FileStore::open(&path, create_opts(1 << 20, bs)).expect_err("block size");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(
            err.to_string().contains(&format!("block size {bs}")),
            "{err}"
        );
    }
    assert!(
        !path.exists(),
        "a file was created for a refused block size"
    );
}

#[test]
fn size_not_multiple_of_block_size_is_refused() {
    let dir = TempDir::new();
    let err = FileStore::open(dir.path("a.img"), create_opts(1000, 512)).expect_err("create");
    assert!(
        err.to_string()
            .contains("not a multiple of the block size 512"),
        "{err}"
    );
    assert!(!dir.path("a.img").exists());
    std::fs::write(dir.path("b.img"), vec![0u8; 6144]).expect("write");
    let opts = FileOptions {
        block_size: 4096,
        ..FileOptions::default()
    };
    let err = FileStore::open(dir.path("b.img"), opts).expect_err("existing");
    assert!(
        err.to_string()
            .contains("size 6144 is not a multiple of the block size 4096"),
        "{err}"
    );
}

#[test]
fn zero_size_and_empty_file_are_refused() {
    let dir = TempDir::new();
    let err = FileStore::open(dir.path("z.img"), create_opts(0, 512)).expect_err("zero");
    assert!(err.to_string().contains("size is zero"), "{err}");
    std::fs::write(dir.path("e.img"), b"").expect("write");
    let err = FileStore::open(dir.path("e.img"), FileOptions::default()).expect_err("empty");
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn directory_is_refused() {
    let dir = TempDir::new();
    let opts = FileOptions {
        read_only: true,
        ..FileOptions::default()
    };
    let err = FileStore::open(&dir.0, opts).expect_err("dir");
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn out_of_range_io_is_einval() {
    let dir = TempDir::new();
    let s = FileStore::open(dir.path("r.img"), create_opts(4096, 512)).expect("open");
    let mut buf = [0u8; 512];
    assert_eq!(
        s.read(4096, &mut buf).expect_err("read").raw_os_error(),
        Some(libc::EINVAL)
    );
    assert_eq!(
        s.write(3584, &[0; 1024], false)
            .expect_err("write")
            .raw_os_error(),
        Some(libc::EINVAL)
    );
    assert_eq!(
        s.trim(u64::MAX, 512).expect_err("trim").raw_os_error(),
        Some(libc::EINVAL)
    );
}

#[test]
fn truncated_file_reads_as_eio() {
    let dir = TempDir::new();
    let path = dir.path("t.img");
    let s = FileStore::open(&path, create_opts(8192, 512)).expect("open");
    OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("reopen")
        .set_len(1024)
        .expect("truncate");
    let mut buf = [0u8; 512];
    assert_eq!(
        s.read(4096, &mut buf).expect_err("read").raw_os_error(),
        Some(libc::EIO)
    );
}

#[test]
fn trim_frees_space_in_extents() {
    let dir = TempDir::new();
    let s = FileStore::open(dir.path("x.img"), create_opts(1 << 20, 4096)).expect("open");
    s.write(0, &vec![5u8; 1 << 20], false).expect("fill");
    s.trim(256 * 1024, 512 * 1024).expect("trim");
    let list = s.extents(0, 1 << 20).expect("extents");
    // File systems without hole support report everything as data, which is also correct.
    if list.len() > 1 {
        assert_eq!(
            list,
            vec![
                Extent {
                    offset: 0,
                    length: 256 * 1024,
                    hole: false
                },
                Extent {
                    offset: 256 * 1024,
                    length: 512 * 1024,
                    hole: true
                },
                Extent {
                    offset: 768 * 1024,
                    length: 256 * 1024,
                    hole: false
                },
            ]
        );
    }
}

#[test]
fn memfd_extents_track_writes() {
    let f = anonymous_file("extents").expect("memfd");
    f.set_len(1 << 20).expect("set_len");
    let s = FileStore::from_file(f, "memfd", 4096, false).expect("store");
    assert_eq!(
        s.extents(0, 1 << 20).expect("extents"),
        vec![Extent {
            offset: 0,
            length: 1 << 20,
            hole: true
        }]
    );
    s.write(8192, &[1u8; 4096], false).expect("write");
    let list = s.extents(4096, 12288).expect("extents");
    assert_eq!(
        list,
        vec![
            Extent {
                offset: 4096,
                length: 4096,
                hole: true
            },
            Extent {
                offset: 8192,
                length: 4096,
                hole: false
            },
            Extent {
                offset: 12288,
                length: 4096,
                hole: true
            },
        ]
    );
}

#[test]
fn memfd_name_with_nul_is_refused() {
    assert_eq!(
        anonymous_file("a\0b").expect_err("nul").kind(),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn block_device_read_only_when_available() {
    // Needs permission to open a disk; silently skipped elsewhere.
    let opts = FileOptions {
        read_only: true,
        ..FileOptions::default()
    };
    let Some(store) = ["/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda"]
        .iter()
        .find_map(|p| FileStore::open(p, opts).ok())
    else {
        return;
    };
    let caps = store.capabilities();
    assert!(caps.read_only && caps.persistent && !caps.trim);
    assert!(store.geometry().num_blocks > 0);
    let mut buf = [0u8; 512];
    store.read(0, &mut buf).expect("read first block");
    let wrong = FileOptions {
        size: Some(store.geometry().size_bytes() + 512),
        ..opts
    };
    let path = store.describe().trim_start_matches("file:").to_string();
    let err = FileStore::open(&path, wrong).expect_err("wrong size");
    assert!(err.to_string().contains("the device is"), "{err}");
}

/// A directory in shared memory, when the machine has one.
fn shm_dir() -> Option<TempDir> {
    let base = Path::new("/dev/shm");
    if !base.is_dir() {
        eprintln!("skipping: no /dev/shm");
        return None;
    }
    let dir = base.join(format!("store-file-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    Some(TempDir(dir))
}

#[test]
fn conformance_in_shared_memory_is_mapped() {
    let Some(dir) = shm_dir() else { return };
    let n = AtomicU32::new(0);
    for bs in [512u32, 4096] {
        testsuite::run_all(&|| {
            let path = dir.path(&format!("m{bs}-{}.img", n.fetch_add(1, Ordering::Relaxed)));
            let store = FileStore::open(&path, create_opts(1 << 20, bs)).expect("open");
            assert!(store.is_mapped(), "a file in /dev/shm is mapped");
            Box::new(store)
        });
    }
}

#[test]
fn mmap_off_and_direct_keep_positional_io() {
    let Some(dir) = shm_dir() else { return };
    let opts = FileOptions {
        map: false,
        ..create_opts(1 << 20, 512)
    };
    let s = FileStore::open(dir.path("nomap.img"), opts).expect("open");
    assert!(!s.is_mapped());
    let memfd = anonymous_file("mapped").expect("memfd");
    memfd.set_len(1 << 20).expect("set_len");
    let s = FileStore::from_file(memfd, "memfd", 512, false).expect("from_file");
    assert!(s.is_mapped(), "a memfd is shared memory");
}

#[test]
fn shared_memory_writes_over_trimmed_and_fresh_pages() {
    let Some(dir) = shm_dir() else { return };
    let path = dir.path("trim.img");
    let s = FileStore::open(&path, create_opts(1 << 20, 512)).expect("open");
    let data = testsuite::pattern(4, 0, 64 * 1024);
    s.write(0, &data, false).expect("first write (positional)");
    s.write(0, &data, false).expect("second write (mapped)");
    s.trim(4096, 8192).expect("trim");
    let mut back = vec![0u8; 64 * 1024];
    s.read(0, &mut back).expect("read");
    assert_eq!(&back[..4096], &data[..4096]);
    assert!(
        back[4096..12288].iter().all(|&b| b == 0),
        "trimmed range reads zero"
    );
    assert_eq!(&back[12288..], &data[12288..]);
    s.write(4096, &data[..512], false)
        .expect("write into the hole");
    let on_disk = std::fs::read(&path).expect("read file");
    assert_eq!(
        &on_disk[4096..4608],
        &data[..512],
        "the file holds what was written"
    );
}

/// A tmpfs smaller than the store: writes past its capacity must fail with ENOSPC (never
/// SIGBUS through the mapping), and what was written stays readable. Needs root to mount.
#[test]
fn full_tmpfs_is_enospc_not_a_crash() {
    let dir = TempDir::new();
    let mnt = dir.path("mnt");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("skipping: cannot mount a tmpfs here (needs root)");
        return;
    }
    let result = std::panic::catch_unwind(|| {
        let s = FileStore::open(mnt.join("big.img"), create_opts(4 << 20, 4096)).expect("open");
        assert!(s.is_mapped());
        let block = vec![0x5au8; 4096];
        let mut written = 0u64;
        let err = loop {
            match s.write(written, &block, false) {
                Ok(()) => written += 4096,
                Err(e) => break e,
            }
            assert!(written < 4 << 20, "a 256 KiB tmpfs took 4 MiB");
        };
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        assert!(written > 0);
        // Rewriting allocated pages (through the mapping) still works, as do reads.
        s.write(0, &block, false).expect("rewrite");
        let mut back = vec![0u8; 4096];
        s.read(0, &mut back).expect("read");
        assert_eq!(back, block);
        s.read(written, &mut back).expect("read a hole");
        assert!(back.iter().all(|&b| b == 0));
    });
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}
