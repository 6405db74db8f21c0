//! Integration tests: start the real `ustgt` binary on ephemeral loopback ports and drive it with
//! libiscsi's command-line tools (Debian package libiscsi-bin; `scripts/setup` installs it).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, BIN};

fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (install libiscsi-bin: scripts/setup)"));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn discovery_lists_the_target() {
    let s = Server::start(&[
        "--listen",
        "127.0.0.1:0",
        "--iqn",
        "iqn.2026-11.io.ustgt:t1",
        "ram:64M",
    ]);
    let out = run("iscsi-ls", &["-s", &s.portal()]);
    assert!(out.contains("iqn.2026-11.io.ustgt:t1"), "{out}");
    assert!(out.contains("Lun:0"), "{out}");
}

#[test]
fn inquiry_and_capacity_answer() {
    let s = Server::start(&[
        "--listen",
        "127.0.0.1:0",
        "ram:64M",
        "ram:1M,block-size=4096",
    ]);
    assert_eq!(s.urls.len(), 2);
    let inq = run("iscsi-inq", &[&s.urls[0]]);
    assert!(inq.contains("USTGT"), "{inq}");
    let cap = run("iscsi-readcapacity16", &[&s.urls[0]]);
    assert!(cap.contains("LOGICAL BLOCK LENGTH IN BYTES:512"), "{cap}");
    assert!(
        cap.contains("RETURNED LOGICAL BLOCK ADDRESS:131071"),
        "{cap}"
    );
    let cap = run("iscsi-readcapacity16", &[&s.urls[1]]);
    assert!(cap.contains("LOGICAL BLOCK LENGTH IN BYTES:4096"), "{cap}");
    assert!(cap.contains("RETURNED LOGICAL BLOCK ADDRESS:255"), "{cap}");
    let vpd = run("iscsi-inq", &["-e", "1", "-c", "0x80", &s.urls[0]]);
    assert!(vpd.to_lowercase().contains("serial"), "{vpd}");
}

#[test]
fn sigterm_exits_zero() {
    let s = Server::start(&["--listen", "127.0.0.1:0", "ram:16M"]);
    run("iscsi-inq", &[&s.urls[0]]);
    let st = s.stop();
    assert!(st.success(), "exit status {st}");
}

/// Run the binary expecting failure; return its stderr.
fn fails(args: &[&str]) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ustgt");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ustgt {args:?} kept running; expected it to fail");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read");
    assert!(!status.success(), "ustgt {args:?} succeeded");
    err
}

#[test]
fn port_in_use_is_one_clear_line() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let err = fails(&["serve", "--listen", &addr, "ram:1M"]);
    assert!(err.contains(&addr), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn missing_file_without_size_is_refused() {
    let err = fails(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "file:/nonexistent/dir/x.img",
    ]);
    assert!(err.contains("/nonexistent/dir/x.img"), "{err}");
}

#[test]
fn bad_lunspec_names_the_part() {
    let err = fails(&["serve", "--listen", "127.0.0.1:0", "ram:1M,block-size=1000"]);
    assert!(err.contains("block-size"), "{err}");
}

#[test]
fn config_error_names_the_line() {
    let dir = std::env::temp_dir().join(format!("ustgt-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[[target]]\niqn = \"iqn.2026-11.io.ustgt:x\"\n[[target.lun]]\nstore = \"rm\"\nsize = \"1M\"\n",
    )
    .expect("write");
    let err = fails(&["serve", "--config", path.to_str().expect("utf8")]);
    assert!(err.contains(":7"), "expected line 7 in: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_file_serves_several_targets() {
    let dir = std::env::temp_dir().join(format!("ustgt-test-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let img = dir.join("lun.img");
    let path = dir.join("good.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[[target]]\niqn = \"iqn.2026-11.io.ustgt:a\"\n[[target.lun]]\nstore = \"ram\"\nsize = \"8M\"\n\n[[target]]\niqn = \"iqn.2026-11.io.ustgt:b\"\n[[target.lun]]\nid = 3\nstore = \"file\"\npath = \"{}\"\nsize = \"4M\"\nblock-size = 4096\n",
            img.display()
        ),
    )
    .expect("write");
    let s = Server::start(&["--config", path.to_str().expect("utf8")]);
    let out = run("iscsi-ls", &["-s", &s.portal()]);
    assert!(
        out.contains("iqn.2026-11.io.ustgt:a") && out.contains("iqn.2026-11.io.ustgt:b"),
        "{out}"
    );
    let b = s
        .urls
        .iter()
        .find(|u| u.contains(":b/3"))
        .expect("url of target b lun 3");
    let cap = run("iscsi-readcapacity16", &[b]);
    assert!(cap.contains("LOGICAL BLOCK LENGTH IN BYTES:4096"), "{cap}");
    assert_eq!(
        std::fs::metadata(&img).expect("image created").len(),
        4 << 20
    );
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
