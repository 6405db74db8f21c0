//! qcow2 images served through Debian's unmodified tcmu-runner handler (handler_qcow.so):
//! data written over iSCSI is exactly what `qemu-img convert` finds in the image afterwards,
//! and data put into an image with `qemu-io` is what iSCSI reads.
//!
//! Needs the `tcmu-runner` and `qemu-utils` packages (scripts/setup installs them); the
//! iscsi-load test also needs gcc, libiscsi-dev and ../shared/bench/iscsi-load.c (or
//! `USTGT_SHARED`). A test whose tools are missing says so and passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{Server, BIN};
use ustgt_initiator::{LoginOptions, Session};

const HANDLER: &str = "/usr/lib/x86_64-linux-gnu/tcmu-runner/handler_qcow.so";
const BS: usize = 512;

/// True when handler_qcow.so and qemu-img are installed; otherwise says why `test` is skipped.
fn available(test: &str) -> bool {
    let qemu = Command::new("qemu-img").arg("--version").output().is_ok();
    if !Path::new(HANDLER).exists() || !qemu {
        eprintln!("{test}: skipped: needs {HANDLER} (tcmu-runner) and qemu-img (qemu-utils)");
        return false;
    }
    true
}

fn scratch() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ustgt-tcmu-it-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A new qcow2 image of `size` made by qemu-img.
fn qcow2(dir: &Path, size: &str) -> PathBuf {
    let path = dir.join("disk.qcow2");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&path)
        .arg(size));
    path
}

/// The image's contents as raw bytes, through `qemu-img convert -O raw`.
fn raw_contents(img: &Path) -> Vec<u8> {
    let raw = img.with_extension("raw");
    let _ = std::fs::remove_file(&raw);
    run(Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(img)
        .arg(&raw));
    std::fs::read(&raw).expect("read raw image")
}

fn serve(img: &Path) -> Server {
    let lun = format!("tcmu:qcow/{}", img.display());
    Server::start(&["--listen", "127.0.0.1:0", &lun])
}

fn login(srv: &Server) -> Session {
    let mut s = Session::login(srv.addr(), LoginOptions::normal(&srv.iqn()))
        .unwrap_or_else(|e| panic!("login: {e}"));
    s.clear_unit_attention(0).expect("TEST UNIT READY");
    s
}

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn initiator_writes_land_in_the_image() {
    if !available("initiator_writes_land_in_the_image") {
        return;
    }
    let dir = scratch();
    let img = qcow2(&dir, "8M");
    let srv = serve(&img);
    let mut s = login(&srv);
    assert_eq!(s.read_capacity16(0).expect("capacity"), (8 * 2048 - 1, 512));
    let writes: [(u64, usize); 4] = [(0, 8), (100, 64), (4095, 1), (16383, 1)];
    for (i, &(lba, blocks)) in writes.iter().enumerate() {
        let data = pattern(i as u32 + 1, blocks * BS);
        let out = s.write16(0, lba, &data, 512).expect("write");
        assert!(out.good(), "write at {lba}: {}", out.describe());
        let back = s.read16(0, lba, blocks as u32, 512).expect("read");
        assert!(back.good() && back.data_in == data, "read back at {lba}");
    }
    let _ = s.logout();
    assert!(srv.stop().success(), "ustgt exit status");
    let mut expect = vec![0u8; 8 << 20];
    for (i, &(lba, blocks)) in writes.iter().enumerate() {
        let at = lba as usize * BS;
        expect[at..at + blocks * BS].copy_from_slice(&pattern(i as u32 + 1, blocks * BS));
    }
    let image = raw_contents(&img);
    assert_eq!(image.len(), expect.len());
    assert!(image == expect, "the image differs from what was written");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn qemu_io_data_reads_over_iscsi() {
    if !available("qemu_io_data_reads_over_iscsi") {
        return;
    }
    let dir = scratch();
    let img = qcow2(&dir, "16M");
    run(Command::new("qemu-io")
        .args(["-f", "qcow2"])
        .args(["-c", "write -P 0x5a 0 1M", "-c", "write -P 0xa5 5M 64k"])
        .arg(&img));
    let srv = serve(&img);
    let mut s = login(&srv);
    assert_eq!(
        s.read_capacity16(0).expect("capacity"),
        (16 * 2048 - 1, 512)
    );
    let mut read = |lba: u64, blocks: u32| {
        let out = s.read16(0, lba, blocks, 512).expect("read");
        assert!(out.good(), "read at {lba}: {}", out.describe());
        out.data_in
    };
    for chunk in 0..8u64 {
        let data = read(chunk * 256, 256);
        assert!(data.iter().all(|&b| b == 0x5a), "first MiB, chunk {chunk}");
    }
    assert!(
        read(2048, 256).iter().all(|&b| b == 0),
        "after the first MiB"
    );
    let data = read(5 * 2048 - 8, 136);
    assert!(
        data[..8 * BS].iter().all(|&b| b == 0),
        "before the 64 KiB write"
    );
    assert!(
        data[8 * BS..].iter().all(|&b| b == 0xa5),
        "the 64 KiB write"
    );
    assert!(read(5 * 2048 + 128, 8).iter().all(|&b| b == 0), "after it");
    let _ = s.logout();
    assert!(srv.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Builds ../shared/bench/iscsi-load.c (as scripts/crash-test does), or says why not.
fn build_iscsi_load(dir: &Path) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let source = std::env::var_os("USTGT_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join("../shared")])
        .map(|d| d.join("bench/iscsi-load.c"))
        .find(|p| p.exists());
    let Some(source) = source else {
        eprintln!("iscsi-load: skipped: shared/bench/iscsi-load.c not found (set USTGT_SHARED)");
        return None;
    };
    let out = dir.join("iscsi-load");
    let built = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&source)
        .arg("-liscsi")
        .output();
    match built {
        Ok(o) if o.status.success() => Some(out),
        Ok(o) => {
            eprintln!(
                "iscsi-load: skipped: cannot build it (needs gcc and libiscsi-dev): {}",
                String::from_utf8_lossy(&o.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("iscsi-load: skipped: cannot run gcc: {e}");
            None
        }
    }
}

/// What a block written by iscsi-load holds: (lba, generation) as two little-endian u64s,
/// repeated over the block.
fn stamp(lba: u64, generation: u64) -> Vec<u8> {
    let mut v = lba.to_le_bytes().to_vec();
    v.extend_from_slice(&generation.to_le_bytes());
    v.repeat(BS / 16)
}

/// The journal iscsi-load -J writes: (block, acknowledged generation) of every written block.
fn read_journal(path: &Path) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(path).expect("journal");
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default();
    assert!(head.starts_with("iscsi-load-journal 1 512 "), "{head}");
    lines
        .map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .map(|x| x.parse().expect("number"))
                .collect();
            assert_eq!(f.len(), 3, "{l}");
            assert_eq!(f[2], 0, "a write still in flight after a clean stop: {l}");
            (f[0], f[1])
        })
        .collect()
}

#[test]
fn iscsi_load_verified_writes_land_in_the_image() {
    if !available("iscsi_load_verified_writes_land_in_the_image") {
        return;
    }
    let dir = scratch();
    let Some(load) = build_iscsi_load(&dir) else {
        return;
    };
    let img = qcow2(&dir, "16M");
    let journal = dir.join("journal");
    let srv = serve(&img);
    let url = srv.urls[0].clone();
    let out = run(Command::new(&load)
        .args([
            "-V", "-w", "70", "-q", "32", "-b", "4096", "-t", "2", "-r", "4194304", "-J",
        ])
        .arg(&journal)
        .arg(&url));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("\"mismatched_blocks\": 0"), "{report}");
    assert!(srv.stop().success(), "ustgt exit status");

    let written = read_journal(&journal);
    assert!(written.len() > 100, "only {} blocks written", written.len());
    let image = raw_contents(&img);
    let mut expect = vec![0u8; 16 << 20];
    for &(lba, generation) in &written {
        let at = lba as usize * BS;
        expect[at..at + BS].copy_from_slice(&stamp(lba, generation));
    }
    if let Some(bad) =
        (0..expect.len() / BS).find(|b| image[b * BS..(b + 1) * BS] != expect[b * BS..(b + 1) * BS])
    {
        panic!("block {bad} of the image is not what iscsi-load wrote");
    }

    // Restarted on the same image, iscsi-load's own check agrees.
    let srv = serve(&img);
    let out = run(Command::new(&load)
        .args(["-r", "4194304", "-C"])
        .arg(&journal)
        .arg(&srv.urls[0]));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("\"mismatched_blocks\": 0"), "{report}");
    assert!(srv.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_open_is_one_line_naming_the_image() {
    if !available("a_failed_open_is_one_line_naming_the_image") {
        return;
    }
    let dir = scratch();
    let img = qcow2(&dir, "1M");
    let lun = format!("tcmu:qcow/{},size=2M", img.display());
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", &lun])
        .env("RUST_LOG", "warn")
        .output()
        .expect("ustgt");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains(&format!("tcmu:qcow/{}", img.display())),
        "{err}"
    );
    assert!(lines[0].contains("size misconfigured"), "{err}");
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--handler-dir",
            "/nonexistent",
        ])
        .arg(format!("tcmu:qcow/{}", img.display()))
        .output()
        .expect("ustgt");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no handler for \"qcow\" in /nonexistent"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_file_serves_a_qcow_image() {
    if !available("config_file_serves_a_qcow_image") {
        return;
    }
    let dir = scratch();
    let img = qcow2(&dir, "4M");
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nhandler-dir = \"{}\"\n\
         [[target]]\niqn = \"iqn.2026-11.io.ustgt:tcmu\"\n\
         [[target.lun]]\nstore = \"tcmu\"\nhandler = \"qcow\"\nconfig = \"{}\"\n",
        Path::new(HANDLER).parent().expect("dir").display(),
        img.display()
    );
    let srv = Server::with_config("tcmu-config", &toml);
    let mut s = login(&srv);
    assert_eq!(s.read_capacity16(0).expect("capacity"), (4 * 2048 - 1, 512));
    let _ = s.logout();
    assert!(srv.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}
