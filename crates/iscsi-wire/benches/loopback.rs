//! System-call stage costs over loopback TCP: `cargo bench -p iscsi-wire --bench loopback`.
//!
//! These are the stages of docs/performance.md that the codec does not cover: the cost of one
//! `send` of a 4 KiB Data-In PDU, one `recv` of a 48-byte command that is already waiting, one
//! `recv` that finds nothing (EAGAIN), one `pread` of 4 KiB from a /dev/shm file, and a
//! blocking request/response round trip between two threads (48 B out, 4144 B back): the
//! latency of a target that does nothing but its two system calls and its wake-up.
//! Run it alone (it uses both cores): `flock /tmp/bench.lock cargo bench ...`.

// The timing harness, shared with the benches of iscsi-proto and scsi-core.
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::thread;

use common::Bench;

/// A connected loopback pair with TCP_NODELAY on both ends.
fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let a = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (b, _) = l.accept().expect("accept");
    a.set_nodelay(true).expect("nodelay");
    b.set_nodelay(true).expect("nodelay");
    (a, b)
}

/// A thread that reads everything sent to `s` and throws it away.
fn sink(mut s: TcpStream) {
    thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
}

/// A thread that answers every 48 bytes read with `reply` bytes.
fn echo(mut s: TcpStream, reply: usize) {
    thread::spawn(move || {
        let mut req = [0u8; 48];
        let resp = vec![0u8; reply];
        while s.read_exact(&mut req).is_ok() {
            if s.write_all(&resp).is_err() {
                break;
            }
        }
    });
}

fn bench_send(b: &Bench) {
    let (mut a, s) = pair();
    sink(s);
    let pdu = vec![0x5au8; 48 + 4096];
    b.run("send/4144B", pdu.len() as u64, || {
        a.write(&pdu).unwrap_or(0)
    });
    let hdr = vec![0x5au8; 48];
    b.run("send/48B", 48, || a.write(&hdr).unwrap_or(0));
}

fn bench_recv(b: &Bench) {
    // A reader draining 48-byte commands that a writer thread keeps queued.
    let (mut a, mut s) = pair();
    thread::spawn(move || {
        let chunk = vec![1u8; 48 * 1024];
        while s.write_all(&chunk).is_ok() {}
    });
    let mut buf = [0u8; 48];
    b.run("recv/48B-waiting", 48, || a.read(&mut buf).unwrap_or(0));
    let (c, _keep) = pair();
    c.set_nonblocking(true).expect("nonblocking");
    let mut c = c;
    b.run("recv/empty-EAGAIN", 0, || match c.read(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
        _ => 1,
    });
}

fn bench_pread(b: &Bench) {
    let path = format!("/dev/shm/ustgt-bench-pread-{}", std::process::id());
    let Ok(f) = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
    else {
        println!("pread: cannot create {path}, skipped");
        return;
    };
    let _ = std::fs::remove_file(&path);
    let size = 64u64 << 20;
    let chunk = vec![0x11u8; 1 << 20];
    for off in (0..size).step_by(chunk.len()) {
        f.write_all_at(&chunk, off).expect("prefill");
    }
    let mut buf = vec![0u8; 4096];
    let mut x = 0x9e37_79b9u64;
    b.run("pread/4096B-dev-shm", 4096, || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let off = ((x >> 33) % (size / 4096)) * 4096;
        f.read_at(&mut buf, off).unwrap_or(0)
    });
}

fn bench_rtt(b: &Bench) {
    for reply in [48 + 4096usize, 48 + 512] {
        let (mut a, s) = pair();
        echo(s, reply);
        let req = [0u8; 48];
        let mut resp = vec![0u8; reply];
        b.run(&format!("round-trip/48B-out-{reply}B-back"), 0, || {
            a.write_all(&req)
                .and_then(|_| a.read_exact(&mut resp))
                .map(|_| resp[0])
                .unwrap_or(1)
        });
    }
}

fn main() {
    let b = Bench::new("loopback");
    bench_send(&b);
    bench_recv(&b);
    bench_pread(&b);
    bench_rtt(&b);
}
