//! RBD images served through Debian's unmodified tcmu-runner handler (handler_rbd.so) on a
//! throwaway single-node Ceph cluster (`scripts/ceph-test-cluster`: one monitor, one memstore
//! OSD, no cephx): data written over iSCSI is exactly what `rbd export` finds in the image
//! afterwards, and a fresh server reads it back.
//!
//! Needs Debian's ceph-mon, ceph-osd and ceph-common (`scripts/setup --ceph`) and tcmu-runner;
//! without them the test says it is skipped and passes, unless USTGT_RBD_TEST=1 demands it
//! (USTGT_RBD_TEST=0 skips it). The iscsi-load part also needs gcc, libiscsi-dev and
//! ../shared/bench/iscsi-load.c (or `USTGT_SHARED`). The cluster starts in about 2 s.

#[path = "../../../backstores/tcmu/tests/ceph_cluster/mod.rs"]
mod ceph_cluster;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ceph_cluster::Cluster;
use common::{Server, BIN};
use ustgt_initiator::{LoginOptions, ScsiRequest, Session};

const BS: usize = 512;
/// The image: 64 MiB.
const BLOCKS: u64 = 64 << 11;
/// iscsi-load's range: the first 16 MiB.
const LOAD_RANGE: usize = 16 << 20;

fn serve(cluster: &Cluster, image: &str) -> Server {
    let lun = format!("tcmu:{}", cluster.cfgstring(image));
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

/// UNMAP of one range.
fn unmap(s: &mut Session, lba: u64, blocks: u32) {
    let mut param = vec![0u8; 24];
    param[0..2].copy_from_slice(&22u16.to_be_bytes());
    param[2..4].copy_from_slice(&16u16.to_be_bytes());
    param[8..16].copy_from_slice(&lba.to_be_bytes());
    param[16..20].copy_from_slice(&blocks.to_be_bytes());
    let cdb = [0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0];
    let out = s.scsi(ScsiRequest::write(0, &cdb, param)).expect("UNMAP");
    assert!(out.good(), "UNMAP {lba}+{blocks}: {}", out.describe());
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

/// Runs iscsi-load with `args` on `url`; its JSON report, which must show no mismatch.
fn iscsi_load(load: &Path, args: &[&str], url: &str) -> String {
    let out = Command::new(load)
        .args(args)
        .arg(url)
        .output()
        .expect("iscsi-load");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && report.contains("\"mismatched_blocks\": 0"),
        "iscsi-load {args:?}: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
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
fn verified_writes_land_in_the_rbd_image() {
    let t0 = Instant::now();
    let Some(cluster) = Cluster::start("verified_writes_land_in_the_rbd_image") else {
        return;
    };
    let started = t0.elapsed();
    cluster.create_image("img", "64M");

    // The size comes from the image.
    let srv = serve(&cluster, "img");
    let mut s = login(&srv);
    assert_eq!(s.read_capacity16(0).expect("capacity"), (BLOCKS - 1, 512));

    // Writes by the in-tree initiator, beyond iscsi-load's range, and an UNMAP that is not
    // aligned to librbd's 64 KiB discard granularity.
    let writes: [(u64, usize); 5] = [
        (40_000, 8),
        (50_000, 512),
        (65_535, 1),
        (70_001, 300),
        (BLOCKS - 1, 1),
    ];
    let mut expect = vec![0u8; (BLOCKS as usize) * BS];
    for (i, &(lba, blocks)) in writes.iter().enumerate() {
        let data = pattern(i as u32 + 1, blocks * BS);
        let out = s.write16(0, lba, &data, 512).expect("write");
        assert!(out.good(), "write at {lba}: {}", out.describe());
        let back = s.read16(0, lba, blocks as u32, 512).expect("read");
        assert!(back.good() && back.data_in == data, "read back at {lba}");
        let at = lba as usize * BS;
        expect[at..at + data.len()].copy_from_slice(&data);
    }
    unmap(&mut s, 50_001, 300);
    let at = 50_001 * BS;
    expect[at..at + 300 * BS].fill(0);
    let back = s.read16(0, 50_000, 512, 512).expect("read");
    assert!(
        back.good() && back.data_in[..] == expect[50_000 * BS..50_512 * BS],
        "read after UNMAP"
    );
    let _ = s.logout();

    // Verified random writes and reads with iscsi-load, journaled.
    let dir = cluster.scratch();
    let load = build_iscsi_load(&dir);
    let journal = dir.join("journal");
    let range = LOAD_RANGE.to_string();
    let t_load = Instant::now();
    if let Some(load) = &load {
        let args = [
            "-V", "-w", "70", "-q", "32", "-b", "4096", "-t", "3", "-r", &range, "-J",
        ];
        let mut args: Vec<&str> = args.to_vec();
        let journal_arg = journal.to_string_lossy().into_owned();
        args.push(&journal_arg);
        let report = iscsi_load(load, &args, &srv.urls[0]);
        eprintln!("iscsi-load through handler_rbd.so: {}", report.trim());
    }
    let load_time = t_load.elapsed();
    assert!(srv.stop().success(), "ustgt exit status");

    // `rbd export` shows exactly what was written, and zeroes elsewhere.
    if load.is_some() {
        let written = read_journal(&journal);
        assert!(written.len() > 100, "only {} blocks written", written.len());
        for &(lba, generation) in &written {
            let at = lba as usize * BS;
            assert!(at + BS <= LOAD_RANGE, "journal block {lba} out of range");
            expect[at..at + BS].copy_from_slice(&stamp(lba, generation));
        }
    }
    let image = cluster.export("img");
    assert_eq!(image.len(), expect.len(), "exported image size");
    if let Some(bad) =
        (0..BLOCKS as usize).find(|b| image[b * BS..(b + 1) * BS] != expect[b * BS..(b + 1) * BS])
    {
        panic!("block {bad} of the exported image is not what was written");
    }

    // A fresh server reads it all back.
    let srv = serve(&cluster, "img");
    if let Some(load) = &load {
        let journal_arg = journal.to_string_lossy().into_owned();
        iscsi_load(load, &["-r", &range, "-C", &journal_arg], &srv.urls[0]);
    }
    let mut s = login(&srv);
    for &(lba, blocks) in &writes {
        let out = s.read16(0, lba, blocks as u32, 512).expect("read");
        let at = lba as usize * BS;
        assert!(
            out.good() && out.data_in[..] == expect[at..at + blocks * BS],
            "fresh server, read at {lba}"
        );
    }
    let _ = s.logout();
    assert!(srv.stop().success());

    // A missing image is one line naming the LUN and the reason.
    let lun = format!("tcmu:{}", cluster.cfgstring("missing"));
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", &lun])
        .env("RUST_LOG", "warn")
        .output()
        .expect("ustgt");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(&lun), "{err}");
    assert!(
        lines[0].contains("cannot open the image \"rbd/missing\": No such file or directory"),
        "{err}"
    );
    eprintln!(
        "timings: cluster start {:.1} s, iscsi-load {:.1} s, whole test {:.1} s",
        started.as_secs_f64(),
        load_time.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}
