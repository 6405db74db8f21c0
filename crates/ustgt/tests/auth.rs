//! Authentication and access control against the real `ustgt` binary: libiscsi's tools with
//! CHAP URLs, and the in-tree initiator for exact login statuses, mutual CHAP, every CHAP
//! digest, access lists, per-initiator LUN maps, the policy matrix and secret hygiene.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Server, BIN};
use ustgt_initiator::{cdb, Chap, Error, LoginError, LoginOptions, ScsiRequest, Session};

/// Every secret here contains this marker, so that a leak is easy to find.
const ALICE: &str = "alice-Kx7-secret";
const BOB: &str = "bob-Kx7-secret-2";
const TGT: &str = "target-Kx7-secret";
const DISC: &str = "disc-Kx7-secret";
const MARK: &str = "Kx7";

const INIT_A: &str = "iqn.2026-11.io.example:host-a";
const INIT_B: &str = "iqn.2026-11.io.example:host-b";
const INIT_C: &str = "iqn.2026-11.io.example:host-c";

const AUTH_FAILURE: u16 = 0x0201;
const AUTHORIZATION_FAILURE: u16 = 0x0202;

/// The quick form on a free port with one small RAM LUN and these access flags.
fn quick(flags: &[&str]) -> Server {
    let mut args = vec!["--listen", "127.0.0.1:0"];
    args.extend_from_slice(flags);
    args.push("ram:1M");
    Server::start(&args)
}

/// A scratch directory for secret and configuration files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ustgt-auth-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Runs a libiscsi tool: (success, stdout and stderr).
fn tool(bin: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `iscsi://[USER%SECRET@]HOST:PORT/IQN/0[?QUERY]`.
fn lun_url(s: &Server, cred: Option<(&str, &str)>, query: &str) -> String {
    let user = cred.map_or(String::new(), |(u, p)| format!("{u}%{p}@"));
    format!("iscsi://{user}{}/{}/0{query}", s.addr(), s.iqn())
}

fn inq(s: &Server, initiator: &str, cred: Option<(&str, &str)>, query: &str) -> (bool, String) {
    tool("iscsi-inq", &["-i", initiator, &lun_url(s, cred, query)])
}

fn opts(initiator: &str, target: Option<&str>) -> LoginOptions {
    let mut o = match target {
        Some(t) => LoginOptions::normal(t),
        None => LoginOptions::discovery(),
    };
    o.initiator_name = initiator.to_string();
    o
}

/// The login status (0: logged in); panics on anything but a status.
fn status(r: Result<Session, LoginError>) -> u16 {
    match r {
        Ok(_) => 0,
        Err(LoginError::Status { class, detail, .. }) => u16::from_be_bytes([class, detail]),
        Err(e) => panic!("login: {e} ({e:?})"),
    }
}

fn login(s: &Server, o: LoginOptions) -> Result<Session, LoginError> {
    Session::login(s.addr(), o)
}

#[test]
fn libiscsi_one_way_chap() {
    let s = quick(&[
        "--chap",
        &format!("alice:{ALICE}"),
        "--chap",
        &format!("bob:{BOB}"),
    ]);
    for (user, secret) in [("alice", ALICE), ("bob", BOB)] {
        let (ok, out) = inq(&s, INIT_A, Some((user, secret)), "");
        assert!(ok && out.contains("Vendor:USTGT"), "{user}: {out}");
    }
    for cred in [Some(("alice", BOB)), Some(("carol", ALICE)), None] {
        let (ok, out) = inq(&s, INIT_A, cred, "");
        assert!(!ok, "{cred:?} got in: {out}");
        assert!(out.contains("Authentication failure"), "{cred:?}: {out}");
    }
    // Discovery stays open without --discovery-chap.
    let (ok, out) = tool("iscsi-ls", &["-i", INIT_A, &s.portal()]);
    assert!(ok && out.contains(&s.iqn()), "{out}");
}

#[test]
fn libiscsi_mutual_chap() {
    let s = quick(&[
        "--chap",
        &format!("alice:{ALICE}"),
        "--mutual-chap",
        &format!("tgt:{TGT}"),
    ]);
    let good = format!("?target_user=tgt&target_password={TGT}");
    let (ok, out) = inq(&s, INIT_A, Some(("alice", ALICE)), &good);
    assert!(ok && out.contains("Vendor:USTGT"), "{out}");
    // The initiator refuses a target that does not know the secret it expects.
    let bad = format!("?target_user=tgt&target_password={BOB}");
    let (ok, out) = inq(&s, INIT_A, Some(("alice", ALICE)), &bad);
    assert!(
        !ok && out.contains("Invalid CHAP_R response from the target"),
        "{out}"
    );
    // One-way CHAP still works against a target able to do mutual CHAP.
    let (ok, out) = inq(&s, INIT_A, Some(("alice", ALICE)), "");
    assert!(ok, "{out}");
}

#[test]
fn libiscsi_allow_list_and_discovery() {
    let s = quick(&["--allow", INIT_A, "--allow", INIT_C]);
    let (ok, out) = inq(&s, INIT_A, None, "");
    assert!(ok, "{out}");
    let (ok, out) = inq(&s, INIT_B, None, "");
    assert!(!ok && out.contains("Authorization failure"), "{out}");
    let (ok, out) = tool("iscsi-ls", &["-i", INIT_C, &s.portal()]);
    assert!(ok && out.contains(&s.iqn()), "{out}");
    let (ok, out) = tool("iscsi-ls", &["-i", INIT_B, &s.portal()]);
    assert!(!ok && out.contains("Authorization failure"), "{out}");
}

#[test]
fn secret_from_a_file() {
    let dir = scratch("secret-file");
    let path = dir.join("alice.secret");
    write_mode(&path, &format!("{ALICE}\n"), 0o600);
    let s = quick(&["--chap", &format!("alice:@{}", path.display())]);
    let (ok, out) = inq(&s, INIT_A, Some(("alice", ALICE)), "");
    assert!(ok, "{out}");
    let (ok, _) = inq(&s, INIT_A, Some(("alice", &format!("{ALICE}\n"))), "");
    assert!(!ok, "the trailing newline is not part of the secret");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn exact_login_statuses() {
    let s = quick(&["--chap", &format!("alice:{ALICE}"), "--allow", INIT_A]);
    let t = s.iqn();
    let chap = |user: &str, secret: &str| Chap::new(user, secret);
    assert_eq!(
        status(login(&s, opts(INIT_A, Some(&t)).chap(chap("alice", ALICE)))),
        0
    );
    let wrong = [chap("alice", BOB), chap("bob", ALICE), chap("", ALICE)];
    for c in wrong {
        let r = login(&s, opts(INIT_A, Some(&t)).chap(c.clone()));
        assert_eq!(status(r), AUTH_FAILURE, "{c:?}");
    }
    // No credentials: AuthMethod=None only, or straight to the operational stage.
    assert_eq!(status(login(&s, opts(INIT_A, Some(&t)))), AUTH_FAILURE);
    let skip = opts(INIT_A, Some(&t)).key("AuthMethod", "");
    assert_eq!(status(login(&s, skip)), AUTH_FAILURE);
    // Unlisted: refused before any authentication, for both session types.
    let r = login(&s, opts(INIT_B, Some(&t)).chap(chap("alice", ALICE)));
    assert_eq!(status(r), AUTHORIZATION_FAILURE);
    assert_eq!(status(login(&s, opts(INIT_B, None))), AUTHORIZATION_FAILURE);
    // A listed initiator's discovery session is open (no --discovery-chap).
    let mut d = login(&s, opts(INIT_A, None)).expect("discovery");
    let names = target_names(&mut d);
    assert_eq!(names, vec![t.clone()]);
    // Unknown targets keep their own status.
    let r = login(&s, opts(INIT_A, Some("iqn.2026-11.io.ustgt:nope")));
    assert_eq!(status(r), 0x0203);
}

fn target_names(s: &mut Session) -> Vec<String> {
    s.send_targets("All")
        .expect("SendTargets")
        .into_iter()
        .filter(|(k, _)| k == "TargetName")
        .map(|(_, v)| v)
        .collect()
}

fn protocol_error(r: Result<Session, LoginError>) -> String {
    match r {
        Err(LoginError::Other(Error::Protocol(msg))) => msg,
        Err(e) => panic!("expected the initiator to refuse, got {e:?}"),
        Ok(_) => panic!("expected the initiator to refuse, but it logged in"),
    }
}

#[test]
fn mutual_chap_with_the_in_tree_initiator() {
    let s = quick(&[
        "--chap",
        &format!("alice:{ALICE}"),
        "--mutual-chap",
        &format!("tgt:{TGT}"),
    ]);
    let t = s.iqn();
    let chap = Chap::new("alice", ALICE).mutual("tgt", TGT);
    let mut sess = login(&s, opts(INIT_A, Some(&t)).chap(chap)).expect("mutual login");
    let keys = &sess.negotiated.target_keys;
    assert!(
        keys.iter().any(|(k, v)| k == "CHAP_N" && v == "tgt"),
        "{keys:?}"
    );
    sess.test_unit_ready(0).expect("TEST UNIT READY");
    let wrong = Chap::new("alice", ALICE).mutual("tgt", BOB);
    let msg = protocol_error(login(&s, opts(INIT_A, Some(&t)).chap(wrong)));
    assert!(msg.contains("CHAP_R is wrong"), "{msg}");
    let other_name = Chap::new("alice", ALICE).mutual("someone-else", TGT);
    let msg = protocol_error(login(&s, opts(INIT_A, Some(&t)).chap(other_name)));
    assert!(msg.contains("expected \"someone-else\""), "{msg}");
    // Without --mutual-chap the target cannot prove itself: the login fails.
    let one_way = quick(&["--chap", &format!("alice:{ALICE}")]);
    let chap = Chap::new("alice", ALICE).mutual("tgt", TGT);
    let r = login(&one_way, opts(INIT_A, Some(&one_way.iqn())).chap(chap));
    assert_eq!(status(r), AUTH_FAILURE);
}

#[test]
fn every_chap_digest() {
    let s = quick(&[
        "--chap",
        &format!("alice:{ALICE}"),
        "--mutual-chap",
        &format!("tgt:{TGT}"),
    ]);
    let t = s.iqn();
    for alg in [5u8, 6, 7, 8] {
        for mutual in [false, true] {
            let mut chap = Chap::new("alice", ALICE).algorithms(&[alg]);
            if mutual {
                chap = chap.mutual("tgt", TGT);
            }
            let sess = login(&s, opts(INIT_A, Some(&t)).chap(chap))
                .unwrap_or_else(|e| panic!("CHAP_A={alg} mutual={mutual}: {e:?}"));
            let keys = &sess.negotiated.target_keys;
            let chosen = keys
                .iter()
                .find(|(k, _)| k == "CHAP_A")
                .map(|(_, v)| v.clone());
            assert_eq!(chosen, Some(alg.to_string()), "{keys:?}");
            let challenge = keys
                .iter()
                .find(|(k, _)| k == "CHAP_C")
                .map(|(_, v)| v.len());
            let digest = [16, 20, 32, 32][usize::from(alg - 5)];
            assert_eq!(
                challenge,
                Some(2 + 2 * digest),
                "challenge as long as the digest"
            );
        }
        // A wrong secret fails with every digest.
        let chap = Chap::new("alice", BOB).algorithms(&[alg]);
        assert_eq!(
            status(login(&s, opts(INIT_A, Some(&t)).chap(chap))),
            AUTH_FAILURE
        );
    }
    // The strongest offered first is chosen; an unknown algorithm alone is refused.
    let sess = login(
        &s,
        opts(INIT_A, Some(&t)).chap(Chap::new("alice", ALICE).algorithms(&[8, 5])),
    )
    .expect("login");
    assert!(sess
        .negotiated
        .target_keys
        .contains(&("CHAP_A".into(), "8".into())));
    let chap = Chap::new("alice", ALICE).algorithms(&[9]);
    assert_eq!(
        status(login(&s, opts(INIT_A, Some(&t)).chap(chap))),
        AUTH_FAILURE
    );
}

#[test]
fn challenges_never_repeat() {
    let s = quick(&["--chap", &format!("alice:{ALICE}")]);
    let t = s.iqn();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let sess =
            login(&s, opts(INIT_A, Some(&t)).chap(Chap::new("alice", ALICE))).expect("login");
        let keys = &sess.negotiated.target_keys;
        let c = keys
            .iter()
            .find(|(k, _)| k == "CHAP_C")
            .map(|(_, v)| v.clone());
        assert!(seen.insert(c.expect("CHAP_C")), "a challenge was repeated");
    }
}

const TWO_TARGETS: &str = r#"
[server]
listen = ["127.0.0.1:0"]

[[target]]
iqn = "iqn.2026-11.io.ustgt:one"
[[target.lun]]
store = "ram"
size = "1M"
[[target.acl]]
initiator = "iqn.2026-11.io.example:host-a"

[[target]]
iqn = "iqn.2026-11.io.ustgt:two"
[[target.lun]]
store = "ram"
size = "1M"
[[target.acl]]
initiator = "iqn.2026-11.io.example:host-b"
[[target.acl]]
initiator = "IQN.2026-11.IO.EXAMPLE:HOST-A-UPPER"
"#;

#[test]
fn send_targets_shows_only_usable_targets() {
    let text = TWO_TARGETS.replace(
        "IQN.2026-11.IO.EXAMPLE:HOST-A-UPPER",
        "iqn.2026-11.io.example:host-d",
    );
    let s = Server::with_config("acl-discovery", &text);
    let (one, two) = ("iqn.2026-11.io.ustgt:one", "iqn.2026-11.io.ustgt:two");
    let mut a = login(&s, opts(INIT_A, None)).expect("discovery A");
    assert_eq!(target_names(&mut a), vec![one.to_string()]);
    let named = a.send_targets(two).expect("SendTargets=two");
    assert!(
        named.is_empty(),
        "a hidden target is not revealed by name: {named:?}"
    );
    let mut b = login(&s, opts(INIT_B, None)).expect("discovery B");
    assert_eq!(target_names(&mut b), vec![two.to_string()]);
    assert_eq!(status(login(&s, opts(INIT_C, None))), AUTHORIZATION_FAILURE);
    assert_eq!(
        status(login(&s, opts(INIT_A, Some(two)))),
        AUTHORIZATION_FAILURE
    );
    // Names compare case-insensitively.
    let upper = INIT_A.to_uppercase();
    assert_eq!(status(login(&s, opts(&upper, Some(one)))), 0);
    let (ok, out) = tool("iscsi-ls", &["-i", INIT_B, &s.portal()]);
    assert!(ok && out.contains(two) && !out.contains(one), "{out}");
}

const LUN_MAPS: &str = r#"
[server]
listen = ["127.0.0.1:0"]

[[target]]
iqn = "iqn.2026-11.io.ustgt:mapped"
[[target.lun]]
store = "ram"
size = "1M"
[[target.lun]]
store = "ram"
size = "2M"
[[target.lun]]
store = "ram"
size = "3M"

[[target.acl]]
initiator = "iqn.2026-11.io.example:host-a"
luns = [0]

[[target.acl]]
initiator = "iqn.2026-11.io.example:host-b"
luns = { 0 = 1, 3 = 2 }

[[target.acl]]
initiator = "iqn.2026-11.io.example:host-c"
"#;

/// Logs in to the mapped target and clears the first unit attention of each LUN.
fn mapped(s: &Server, initiator: &str, luns: &[u64]) -> Session {
    let mut sess = login(s, opts(initiator, Some("iqn.2026-11.io.ustgt:mapped"))).expect("login");
    for &l in luns {
        sess.clear_unit_attention(l).expect("TEST UNIT READY");
    }
    sess
}

fn report_luns(s: &mut Session) -> Vec<u64> {
    let out = s
        .scsi(ScsiRequest::read(0, &cdb::report_luns(4096), 4096))
        .expect("REPORT LUNS");
    assert!(out.good(), "{}", out.describe());
    let d = &out.data_in;
    let len = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    d[8..8 + len]
        .chunks(8)
        .map(|e| u64::from(u16::from_be_bytes([e[0], e[1]]) & 0x3fff))
        .collect()
}

fn blocks(s: &mut Session, lun: u64) -> u64 {
    s.read_capacity16(lun).expect("READ CAPACITY(16)").0 + 1
}

/// The NAA designator of a LUN (VPD 83h, its first designator).
fn naa(s: &mut Session, lun: u64) -> [u8; 8] {
    let out = s
        .scsi(ScsiRequest::read(lun, &cdb::inquiry(true, 0x83, 255), 255))
        .expect("INQUIRY VPD 83h");
    assert!(
        out.good() && out.data_in[5] & 0x0f == 3,
        "{}",
        out.describe()
    );
    out.data_in[8..16].try_into().expect("8 bytes")
}

/// An EXTENDED COPY (LID1) of block 7 (512 bytes) from the LU `src` to the LU `dst`.
fn xcopy(s: &mut Session, lun: u64, src: [u8; 8], dst: [u8; 8]) -> ustgt_initiator::ScsiOutcome {
    let cscd = |naa: [u8; 8]| {
        let mut d = vec![0u8; 32];
        d[0] = 0xE4;
        d[4] = 0x01;
        d[5] = 0x03;
        d[7] = 8;
        d[8..16].copy_from_slice(&naa);
        d[29..32].copy_from_slice(&[0, 2, 0]);
        d
    };
    let mut seg = vec![0u8; 28];
    seg[0] = 0x02;
    seg[2..4].copy_from_slice(&24u16.to_be_bytes());
    seg[4..6].copy_from_slice(&0u16.to_be_bytes());
    seg[6..8].copy_from_slice(&1u16.to_be_bytes());
    seg[10..12].copy_from_slice(&1u16.to_be_bytes());
    seg[12..20].copy_from_slice(&7u64.to_be_bytes());
    seg[20..28].copy_from_slice(&7u64.to_be_bytes());
    let mut p = vec![0u8; 16];
    p[2..4].copy_from_slice(&64u16.to_be_bytes());
    p[8..12].copy_from_slice(&28u32.to_be_bytes());
    p.extend(cscd(src));
    p.extend(cscd(dst));
    p.extend(seg);
    let mut c = [0u8; 16];
    c[0] = 0x83;
    c[10..14].copy_from_slice(&(p.len() as u32).to_be_bytes());
    s.scsi(ScsiRequest::write(lun, &c, p))
        .expect("EXTENDED COPY")
}

#[test]
fn per_initiator_lun_maps() {
    let s = Server::with_config("acl-luns", LUN_MAPS);
    let mut a = mapped(&s, INIT_A, &[0]);
    let mut b = mapped(&s, INIT_B, &[0, 3]);
    let mut c = mapped(&s, INIT_C, &[0, 1, 2]);
    assert_eq!(report_luns(&mut a), vec![0]);
    assert_eq!(report_luns(&mut b), vec![0, 3]);
    assert_eq!(report_luns(&mut c), vec![0, 1, 2]);
    // B's LUN 0 is the target's LUN 1 (2 MiB), its LUN 3 the target's LUN 2 (3 MiB).
    assert_eq!(blocks(&mut a, 0), 2048);
    assert_eq!(blocks(&mut b, 0), 4096);
    assert_eq!(blocks(&mut b, 3), 6144);
    // A cannot address B's LUNs: LOGICAL UNIT NOT SUPPORTED.
    for lun in [1, 3] {
        let out = a.test_unit_ready(lun).expect("TEST UNIT READY");
        let sense = out.sense.clone().expect("sense");
        assert_eq!((sense.key, sense.asc), (0x05, 0x25), "{}", out.describe());
    }
    // Data written through B's LUN 0 is the target's LUN 1, and not A's LUN 0.
    let data = vec![0xB5u8; 512];
    assert!(b.write16(0, 7, &data, 512).expect("WRITE").good());
    assert_eq!(c.read16(1, 7, 1, 512).expect("READ").data_in, data);
    assert_ne!(a.read16(0, 7, 1, 512).expect("READ").data_in, data);
    // EXTENDED COPY resolves designators only within the initiator's own LUNs: A cannot
    // copy from B's LU (block 7 holds B's data) into its own.
    let (lu0, lu1) = (naa(&mut c, 0), naa(&mut c, 1));
    assert_eq!(naa(&mut a, 0), lu0);
    assert_eq!(naa(&mut b, 0), lu1);
    let out = xcopy(&mut a, 0, lu1, lu0);
    let sense = out.sense.clone().expect("sense");
    let got = (sense.key, sense.asc, sense.ascq);
    assert_eq!(got, (0x0A, 0x08, 0x04), "{}", out.describe());
    assert_ne!(a.read16(0, 7, 1, 512).expect("READ").data_in, data);
    // C sees both LUs: the same copy works there.
    let out = xcopy(&mut c, 0, lu1, lu0);
    assert!(out.good(), "{}", out.describe());
    assert_eq!(a.read16(0, 7, 1, 512).expect("READ").data_in, data);
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    None,
    OneWay,
    Mutual,
}

const MODES: [Mode; 3] = [Mode::None, Mode::OneWay, Mode::Mutual];

/// A configuration with discovery and the target set to these modes.
fn matrix_config(discovery: Mode, normal: Mode) -> String {
    let mut server = String::from("[server]\nlisten = [\"127.0.0.1:0\"]\n");
    if discovery != Mode::None {
        server += &format!("discovery-chap = \"disc:{DISC}\"\n");
    }
    if discovery == Mode::Mutual {
        server += &format!("discovery-mutual-chap = \"dtgt:{BOB}\"\n");
    }
    let mut target = String::from("[[target]]\niqn = \"iqn.2026-11.io.ustgt:matrix\"\n");
    if normal != Mode::None {
        target += &format!("chap = \"alice:{ALICE}\"\n");
    }
    if normal == Mode::Mutual {
        target += &format!("mutual-chap = \"tgt:{TGT}\"\n");
    }
    format!("{server}{target}[[target.lun]]\nstore = \"ram\"\nsize = \"1M\"\n")
}

/// What an initiator in mode `login` gets from a target in mode `policy`: Ok(()) when it logs
/// in, Err(status) when the target refuses, Err(1) when the initiator refuses the target.
fn expected(policy: Mode, login: Mode) -> Result<(), u16> {
    match (policy, login) {
        (Mode::None, Mode::Mutual) => Err(1),
        (Mode::None, _) | (_, Mode::OneWay) | (Mode::Mutual, Mode::Mutual) => Ok(()),
        _ => Err(AUTH_FAILURE),
    }
}

/// Logs in as a real initiator does: AuthMethod=None without credentials, AuthMethod=CHAP,None
/// with them.
fn matrix_login(s: &Server, discovery: bool, mode: Mode) -> Result<(), u16> {
    let target = (!discovery).then_some("iqn.2026-11.io.ustgt:matrix");
    let o = opts(INIT_A, target);
    let (user, secret, tuser, tsecret) = if discovery {
        ("disc", DISC, "dtgt", BOB)
    } else {
        ("alice", ALICE, "tgt", TGT)
    };
    let o = match mode {
        Mode::None => o,
        Mode::OneWay => o.chap(Chap::new(user, secret)),
        Mode::Mutual => o.chap(Chap::new(user, secret).mutual(tuser, tsecret)),
    };
    let o = match mode {
        Mode::None => o,
        _ => o.key("AuthMethod", "CHAP,None"),
    };
    match login(s, o) {
        Ok(mut sess) if discovery => {
            assert_eq!(target_names(&mut sess), vec!["iqn.2026-11.io.ustgt:matrix"]);
            Ok(())
        }
        Ok(mut sess) => {
            sess.test_unit_ready(0).expect("TEST UNIT READY");
            Ok(())
        }
        Err(LoginError::Status { class, detail, .. }) => Err(u16::from_be_bytes([class, detail])),
        Err(LoginError::Other(Error::Protocol(_))) => Err(1),
        Err(e) => panic!("login: {e:?}"),
    }
}

#[test]
fn policy_matrix() {
    for discovery in MODES {
        for normal in MODES {
            let s = Server::with_config("matrix", &matrix_config(discovery, normal));
            for login in MODES {
                let got = matrix_login(&s, true, login);
                assert_eq!(
                    got,
                    expected(discovery, login),
                    "discovery {discovery:?}, login {login:?}"
                );
                let got = matrix_login(&s, false, login);
                assert_eq!(
                    got,
                    expected(normal, login),
                    "target {normal:?}, login {login:?}"
                );
            }
        }
    }
}

/// Runs `ustgt serve ARGS` with its log (at trace level) in `log`; returns the child and the
/// first URL's HOST:PORT.
fn start_logged(args: &[&str], log: &Path) -> (std::process::Child, String) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("start ustgt");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("URL line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("iscsi://"))
        .expect("URL");
    (child, common::parse_url(url).addr)
}

#[test]
fn secrets_stay_out_of_logs_and_errors() {
    let dir = scratch("hygiene");
    let log = dir.join("ustgt.log");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--chap",
        &format!("alice:{ALICE}"),
        "--mutual-chap",
        &format!("tgt:{TGT}"),
        "--discovery-chap",
        &format!("disc:{DISC}"),
        "--allow",
        INIT_A,
        "ram:1M",
    ];
    let (mut child, addr) = start_logged(&args, &log);
    let t = "iqn.2026-11.io.ustgt:default";
    let attempts = [
        (
            INIT_A,
            Some(t),
            Some(Chap::new("alice", ALICE).mutual("tgt", TGT)),
        ),
        (INIT_A, Some(t), Some(Chap::new("alice", BOB))),
        (
            INIT_A,
            Some(t),
            Some(Chap::new("alice", ALICE).mutual("tgt", BOB)),
        ),
        (INIT_B, Some(t), Some(Chap::new("alice", ALICE))),
        (INIT_A, None, Some(Chap::new("disc", DISC))),
        (INIT_A, None, None),
    ];
    for (initiator, target, chap) in attempts {
        let mut o = opts(initiator, target);
        if let Some(c) = chap {
            o = o.chap(c);
        }
        let _ = Session::login(&addr, o);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).expect("log");
    let failed = format!("CHAP: authentication failed for initiator {INIT_A} (user \"alice\")");
    assert!(text.contains(&failed), "{text}");
    assert!(
        text.contains("initiator iqn.2026-11.io.example:host-b may not use"),
        "{text}"
    );
    assert!(!text.contains(MARK), "a secret reached the log:\n{text}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `ustgt serve ARGS` that must fail at start: its stderr.
fn refused(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("serve")
        .args(args)
        .output()
        .expect("run ustgt");
    assert!(!out.status.success(), "{args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn flag_errors_are_clear_and_never_show_secrets() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["--chap", "alice-Kx7-no-colon"],
            "--chap: expected USER:SECRET or USER:@FILE",
        ),
        (
            &["--chap", ":x-Kx7-secret-1"],
            "--chap: the CHAP user name is empty",
        ),
        (
            &["--chap", "alice:"],
            "--chap: user \"alice\": the secret is empty",
        ),
        (
            &["--chap", "alice:@/nonexistent/Kx7"],
            "cannot read secret file /nonexistent/",
        ),
        (
            &["--mutual-chap", "tgt:target-Kx7-secret"],
            "--mutual-chap needs --chap or --discovery-chap",
        ),
        (&["--allow", "iqn.Bad"], "--allow iqn.Bad:"),
    ];
    for (args, want) in cases {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let err = refused(&all);
        assert!(err.contains(want), "{args:?}: {err}");
        let shown = err.replace("/nonexistent/Kx7", "");
        assert!(!shown.contains(MARK), "{args:?} shows a secret: {err}");
    }
    let same = [
        "--chap",
        "alice:same-Kx7-secret",
        "--mutual-chap",
        "tgt:same-Kx7-secret",
    ];
    let err = refused(&same);
    assert!(
        err.contains("both directions") && !err.contains(MARK),
        "{err}"
    );
    let dir = scratch("conflict");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "").expect("write");
    let err = refused(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "--chap",
        "alice:alice-Kx7-secret",
    ]);
    assert!(
        err.contains("cannot be used with") && !err.contains(MARK),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn start_up_warnings() {
    let dir = scratch("warnings");
    // A short secret on the command line.
    let log = dir.join("short.log");
    let (mut child, _) = start_logged(
        &[
            "--listen",
            "127.0.0.1:0",
            "--chap",
            "alice:Kx7-tiny",
            "ram:1M",
        ],
        &log,
    );
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("the CHAP secret of user \"alice\" is 8 bytes long"),
        "{text}"
    );
    assert!(!text.contains(MARK), "{text}");
    // A configuration file with a secret, readable by others.
    let cfg = dir.join("ustgt.toml");
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[[target]]\niqn = \"iqn.2026-11.io.ustgt:w\"\nchap = \"alice:{ALICE}\"\n[[target.lun]]\nstore = \"ram\"\nsize = \"1M\"\n"
    );
    write_mode(&cfg, &text, 0o644);
    let log = dir.join("mode.log");
    let (mut child, _) = start_logged(&["--config", cfg.to_str().expect("utf8")], &log);
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).expect("log");
    let want = format!("configuration file {} holds CHAP secrets", cfg.display());
    assert!(
        text.contains(&want) && text.contains("(mode 0644)"),
        "{text}"
    );
    assert!(!text.contains(MARK), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sessions_end_cleanly_after_chap() {
    // A CHAP login followed by I/O and a logout leaves the server serving others.
    let s = quick(&["--chap", &format!("alice:{ALICE}")]);
    let t = s.iqn();
    for _ in 0..3 {
        let mut sess =
            login(&s, opts(INIT_A, Some(&t)).chap(Chap::new("alice", ALICE))).expect("login");
        sess.clear_unit_attention(0).expect("TEST UNIT READY");
        assert!(sess.write16(0, 1, &[1u8; 512], 512).expect("WRITE").good());
        sess.logout().expect("logout");
    }
}
