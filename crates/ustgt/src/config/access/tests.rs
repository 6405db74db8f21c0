use std::os::unix::fs::PermissionsExt;

use super::super::{load, parse, ServerConfig};

/// Every secret of these tests ends with this, so a leak is easy to find.
const MARK: &str = "-Zq9-secret";

fn err(text: &str) -> String {
    let e = parse(text, "c.toml").expect_err("config should be refused");
    assert!(!e.contains(MARK), "secret in error: {e}");
    e
}

fn ok(text: &str) -> ServerConfig {
    let c = parse(text, "c.toml").expect("parse");
    assert!(!format!("{c:?}").contains(MARK), "secret in Debug");
    c
}

/// One target with LUNs 0, 1 and 5, and `extra` lines after the target's keys.
fn target(extra: &str) -> String {
    format!(
        "[[target]]\niqn = \"iqn.2026-11.io.ustgt:t\"\n{extra}\n\
         [[target.lun]]\nstore = \"ram\"\nsize = \"1M\"\n\
         [[target.lun]]\nstore = \"ram\"\nsize = \"1M\"\n\
         [[target.lun]]\nid = 5\nstore = \"ram\"\nsize = \"1M\"\n"
    )
}

fn secret(user: &str) -> String {
    format!("{user}{MARK}")
}

#[test]
fn full_access_configuration() {
    let text = format!(
        "[server]\ndiscovery-chap = \"disc:{}\"\ndiscovery-mutual-chap = {{ user = \"dm\", secret = \"{}\" }}\n{}\
         [[target.acl]]\ninitiator = \"iqn.2026-11.io.x:a\"\nluns = {{ 0 = 5, 1 = 0 }}\n\
         [[target.acl]]\ninitiator = \"iqn.2026-11.io.x:b\"\nchap = {{ user = \"bee\", secret = \"{}\" }}\nluns = [1]\n",
        secret("disc"),
        secret("dm"),
        target(&format!(
            "chap = [\"alice:{}\", {{ user = \"bob\", secret = \"{}\" }}]\nmutual-chap = \"tgt:{}\"",
            secret("alice"),
            secret("bob"),
            secret("tgt")
        )),
        secret("bee"),
    );
    let c = ok(&text);
    assert!(c.auth.secrets_inline);
    assert!(c.auth.warnings.is_empty(), "{:?}", c.auth.warnings);
    assert_eq!(c.auth.discovery.users[0].user, "disc");
    assert_eq!(c.auth.discovery.users[0].secret, secret("disc").as_bytes());
    assert_eq!(
        c.auth.discovery.mutual.as_ref().map(|m| m.user.as_str()),
        Some("dm")
    );
    let a = &c.targets[0].access;
    let users: Vec<&str> = a.chap.users.iter().map(|u| u.user.as_str()).collect();
    assert_eq!(users, ["alice", "bob"]);
    assert_eq!(
        a.chap.mutual.as_ref().map(|m| m.secret.clone()),
        Some(secret("tgt").into_bytes())
    );
    let acl = a.acl.as_ref().expect("acl");
    assert_eq!(acl[0].initiator, "iqn.2026-11.io.x:a");
    assert_eq!(acl[0].chap, None);
    assert_eq!(acl[0].luns, Some(vec![(0, 5), (1, 0)]));
    assert_eq!(
        acl[1].chap.as_ref().map(|c| c[0].user.as_str()),
        Some("bee")
    );
    assert_eq!(acl[1].luns, Some(vec![(1, 1)]));
}

#[test]
fn no_access_keys_means_open() {
    let c = ok(&target(""));
    assert_eq!(c.targets[0].access, Default::default());
    assert!(!c.auth.secrets_inline);
}

#[test]
fn credential_errors_name_the_line() {
    let cases = [
        (
            "chap = []",
            "c.toml:3: target \"iqn.2026-11.io.ustgt:t\": chap is an empty list",
        ),
        (
            "chap = \"nocolon\"",
            "c.toml:3: target \"iqn.2026-11.io.ustgt:t\": chap: expected \"USER:SECRET\"",
        ),
        (
            "chap = 5",
            "c.toml:3: target \"iqn.2026-11.io.ustgt:t\": chap: expected",
        ),
        (
            "chap = \":x-Zq9-secret\"",
            "c.toml:3: target \"iqn.2026-11.io.ustgt:t\": chap: the CHAP user name is empty",
        ),
        ("chap = \"a:\"", "chap: user \"a\": the secret is empty"),
        (
            "chap = { user = \"a\" }",
            "chap: user \"a\": give exactly one of secret and secret-file",
        ),
        (
            "chap = { user = \"a\", secret = \"a-Zq9-secret\", secret-file = \"/x\" }",
            "give exactly one",
        ),
        (
            "chap = { user = \"a\", pasword = \"a-Zq9-secret\" }",
            "unknown key `pasword` in a credential",
        ),
        (
            "chap = { secret = \"a-Zq9-secret\" }",
            "a credential needs a user",
        ),
        (
            "chap = [\"a:a-Zq9-secret\", \"a:b-Zq9-secret\"]",
            "chap: CHAP user \"a\" is listed twice",
        ),
        (
            "chap = \"a:@/nonexistent/ustgt/secret\"",
            "chap: user \"a\": cannot read secret file /nonexistent/ustgt/secret",
        ),
        (
            "mutual-chap = \"t:t-Zq9-secret\"",
            "c.toml:3: target \"iqn.2026-11.io.ustgt:t\": mutual-chap needs chap",
        ),
    ];
    for (line, want) in cases {
        let e = err(&target(line));
        assert!(e.contains(want), "{line}: {e}");
    }
    let e = err(&target(
        "chap = \"a:a-Zq9-secret\"\nmutual-chap = [\"t:t-Zq9-secret\"]",
    ));
    assert!(
        e.starts_with("c.toml:4:") && e.contains("mutual-chap takes one credential"),
        "{e}"
    );
}

#[test]
fn one_secret_may_not_serve_both_directions() {
    let e = err(&target(
        "chap = \"a:same-Zq9-secret\"\nmutual-chap = \"tgt:same-Zq9-secret\"",
    ));
    assert!(
        e.starts_with("c.toml:4:") && e.contains("both directions"),
        "{e}"
    );
    // Across contexts too: a discovery user's secret as a target's mutual secret.
    let text = format!(
        "[server]\ndiscovery-chap = \"d:same-Zq9-secret\"\n{}",
        target("chap = \"a:a-Zq9-secret\"\nmutual-chap = \"tgt:same-Zq9-secret\"")
    );
    assert!(err(&text).contains("\"tgt\" is also an initiator's CHAP secret"));
}

#[test]
fn discovery_keys() {
    let e = err(&format!(
        "[server]\ndiscovery-mutual-chap = \"m:m-Zq9-secret\"\n{}",
        target("")
    ));
    assert!(
        e.starts_with("c.toml:2: discovery-mutual-chap needs discovery-chap"),
        "{e}"
    );
    let e = err(&format!("[server]\ndiscovery-chap = [1]\n{}", target("")));
    assert!(e.starts_with("c.toml:2: discovery: chap: expected"), "{e}");
}

#[test]
fn acl_errors_name_the_line() {
    let acl = |body: &str| {
        format!(
            "{}[[target.acl]]\n{body}\n",
            target("chap = \"a:a-Zq9-secret\"")
        )
    };
    let e = err(&acl("initiator = \"iqn.bad\""));
    assert!(
        e.contains(":15: target \"iqn.2026-11.io.ustgt:t\" acl \"iqn.bad\": invalid iSCSI name"),
        "{e}"
    );
    let e = err(&acl("initiator = \"iqn.2026-11.io.x:a\"\nluns = [7]"));
    assert!(
        e.contains(":16:") && e.contains("the target has no LUN 7"),
        "{e}"
    );
    let e = err(&acl(
        "initiator = \"iqn.2026-11.io.x:a\"\nluns = { 0 = 1, 00 = 5 }",
    ));
    assert!(e.contains("LUN 0 is mapped twice"), "{e}");
    let e = err(&acl(
        "initiator = \"iqn.2026-11.io.x:a\"\nluns = { 0 = 1, 1 = 1 }",
    ));
    assert!(e.contains("the target's LUN 1 is mapped twice"), "{e}");
    let e = err(&acl("initiator = \"iqn.2026-11.io.x:a\"\nluns = { x = 1 }"));
    assert!(e.contains("\"x\" is not a LUN number"), "{e}");
    let e = err(&acl("initiator = \"iqn.2026-11.io.x:a\"\nluns = \"all\""));
    assert!(e.contains("luns must be a list"), "{e}");
    let e = err(&acl("initiator = \"iqn.2026-11.io.x:a\"\nluns = [99999]"));
    assert!(e.contains("LUN 99999 out of range"), "{e}");
    let e = err(&acl("initiator = \"iqn.2026-11.io.x:a\"\ncolour = 1"));
    assert!(e.contains("unknown field `colour`"), "{e}");
    let twice = format!(
        "{}[[target.acl]]\ninitiator = \"iqn.2026-11.io.x:a\"\n[[target.acl]]\ninitiator = \"iqn.2026-11.io.x:a\"\n",
        target("")
    );
    let e = err(&twice);
    assert!(
        e.contains(":17:") && e.contains("listed twice (first at line 15)"),
        "{e}"
    );
    let e = err(&format!(
        "{}[[target.acl]]\ninitiator = \"iqn.2026-11.io.x:a\"\nmutual-chap = \"t:t-Zq9-secret\"\n",
        target("")
    ));
    assert!(
        e.contains(":16:") && e.contains("mutual-chap needs chap (here or for the target)"),
        "{e}"
    );
}

#[test]
fn target_mutual_chap_is_fine_when_every_acl_entry_has_chap() {
    let text = format!(
        "{}[[target.acl]]\ninitiator = \"iqn.2026-11.io.x:a\"\nchap = \"a:a-Zq9-secret\"\n",
        target("mutual-chap = \"t:t-Zq9-secret\"")
    );
    let c = ok(&text);
    assert!(c.targets[0].access.chap.mutual.is_some());
}

#[test]
fn short_secrets_warn_without_showing_them() {
    let c = ok(&target("chap = \"a:tiny\""));
    assert_eq!(c.auth.warnings.len(), 1);
    assert!(
        c.auth.warnings[0].contains("\"a\" is 4 bytes"),
        "{:?}",
        c.auth.warnings
    );
    assert!(!c.auth.warnings[0].contains("tiny"));
}

#[test]
fn readable_config_with_secrets_warns_naming_file_and_mode() {
    let dir = std::env::temp_dir().join(format!("ustgt-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("ustgt.toml");
    let mode = |m: u32| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m));
    std::fs::write(&path, target("chap = \"a:a-Zq9-secret\"")).expect("write");
    mode(0o640).expect("chmod");
    let c = load(&path).expect("load");
    let w = c.auth.warnings.join("\n");
    assert!(
        w.contains(&format!("configuration file {}", path.display())),
        "{w}"
    );
    assert!(w.contains("mode 0640") && w.contains("its group"), "{w}");
    mode(0o600).expect("chmod");
    assert!(load(&path).expect("load").auth.warnings.is_empty());
    // Secrets in a file of their own (relative to the configuration): the file is checked.
    std::fs::write(dir.join("a.secret"), "a-Zq9-secret\n").expect("write");
    std::fs::set_permissions(dir.join("a.secret"), std::fs::Permissions::from_mode(0o604))
        .expect("chmod");
    std::fs::write(&path, target("chap = \"a:@a.secret\"")).expect("write");
    mode(0o644).expect("chmod");
    let c = load(&path).expect("load");
    assert_eq!(c.targets[0].access.chap.users[0].secret, b"a-Zq9-secret");
    let w = c.auth.warnings.join("\n");
    assert!(!w.contains("configuration file"), "{w}");
    assert!(
        w.contains("a.secret") && w.contains("mode 0604") && w.contains("others"),
        "{w}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
