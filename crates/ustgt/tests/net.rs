//! `ustgt serve --net`: the io_uring network engine behind the real binary, and the option's
//! validation. (Set `USTGT_TEST_NET=uring` to run every other binary test on that engine.)

mod common;

use std::process::{Command, Stdio};

use common::{Server, BIN};
use ustgt_initiator::{LoginOptions, Session};

const BS: u32 = 512;

#[test]
fn serve_with_the_uring_engine() {
    let srv = Server::start(&["--net", "uring", "--listen", "127.0.0.1:0", "ram:16M"]);
    let mut s = Session::login(srv.addr().as_str(), LoginOptions::normal(&srv.iqn()))
        .unwrap_or_else(|e| panic!("login: {e}"));
    s.clear_unit_attention(0).expect("clear UA");
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let w = s.write16(0, 64, &data, BS).expect("WRITE(16)");
    assert!(w.good(), "{}", w.describe());
    let r = s.read16(0, 64, 2048, BS).expect("READ(16)");
    assert!(r.good(), "{}", r.describe());
    assert!(r.data_in == data, "1 MiB read back");
    // Stopping with the session still open.
    let st = srv.stop();
    assert!(st.success(), "exit status {st}");
}

#[test]
fn unknown_engine_is_refused() {
    let out = Command::new(BIN)
        .args([
            "serve",
            "--net",
            "kqueue",
            "--listen",
            "127.0.0.1:0",
            "ram:1M",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run ustgt");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kqueue") && err.contains("uring"), "{err}");
}
