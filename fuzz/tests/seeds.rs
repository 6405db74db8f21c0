//! The seed corpora reach what their names promise (so fuzzing starts deep in each state
//! machine), and the harnesses catch what they are meant to catch.

use std::path::PathBuf;

use ustgt_fuzz::{cdb, config_access, login, session, toml_config};

fn seed(target: &str, name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target)
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn login_seeds_log_in_or_fail_as_named() {
    for name in [
        "noauth-normal",
        "noauth-discovery-direct",
        "noauth-raw",
        "noauth-continuation",
        "chap-md5",
        "chap-sha256-base64",
        "chap-mutual",
        "chap-mutual-restricted",
        "acl-discovery",
    ] {
        let r = login::report(&seed("login", name));
        assert!(r.logged_in && !r.closed, "{name}: {r:?}");
    }
    for name in ["chap-mutual", "chap-mutual-restricted"] {
        assert!(
            login::report(&seed("login", name)).mutual_answered,
            "{name}"
        );
    }
    for name in ["chap-wrong-secret", "chap-reflect", "acl-deny", "timeout"] {
        let r = login::report(&seed("login", name));
        assert!(!r.logged_in && r.closed, "{name}: {r:?}");
    }
}

#[test]
fn session_seeds_run_commands() {
    for name in [
        "read-text-logout",
        "write-immediate-unsolicited-r2t",
        "write-initial-r2t",
        "abort-reset",
        "cmdsn-gap-wrap",
        "bidi-shared",
        "raw",
    ] {
        let r = session::report(&seed("session", name));
        assert!(r.logged_in && r.executed > 0, "{name}: {r:?}");
    }
    let r = session::report(&seed("session", "write-initial-r2t"));
    assert!(r.r2ts > 1 && r.completed == 1, "{r:?}");
    let r = session::report(&seed("session", "write-immediate-unsolicited-r2t"));
    assert!(r.r2ts > 0 && r.completed == 1, "{r:?}");
    let r = session::report(&seed("session", "read-text-logout"));
    assert!(r.data_in > 0 && r.text_responses > 0 && r.closed, "{r:?}");
    let r = session::report(&seed("session", "abort-reset"));
    assert!(r.tmf_responses == 2, "{r:?}");
    let r = session::report(&seed("session", "discovery"));
    assert!(
        r.logged_in && r.executed == 0 && r.text_responses == 2,
        "{r:?}"
    );
    let r = session::report(&seed("session", "nop-ping-digests"));
    assert!(r.logged_in && !r.closed, "{r:?}");
}

#[test]
fn session_seeds_reach_the_limits() {
    let r = session::report(&seed("session", "write-budget-wait"));
    assert!(r.r2ts_on_completion > 0 && r.completed == 2, "{r:?}");
    let r = session::report(&seed("session", "dataout-timeout"));
    assert!(r.timeouts == 1 && r.completed == 1, "{r:?}");
    let r = session::report(&seed("session", "write-refused-budget"));
    assert!(r.refused == 2 && r.completed == 1, "{r:?}");
    let r = session::report(&seed("session", "query-task"));
    assert!(r.queries == 3 && r.completed == 1, "{r:?}");
}

#[test]
fn cdb_seeds_mostly_succeed() {
    for name in ["info-pages", "read-write-unmap", "persistent-reservations"] {
        let r = cdb::report(&seed("cdb", name));
        assert!(r.good > r.check, "{name}: {r:?}");
    }
    assert!(cdb::report(&seed("cdb", "read-write-unmap")).queued >= 3);
    assert!(cdb::report(&seed("cdb", "persistent-reservations")).conflict > 0);
    let r = cdb::report(&seed("cdb", "sanitize-background-resets"));
    assert!(
        r.background == 4 && r.background_done == 3 && r.resets_probed == 3,
        "{r:?}"
    );
}

#[test]
fn config_access_seed_is_accepted() {
    let data = seed("config", "access-structured");
    assert_eq!(data[0] % 8, toml_config::sel::ACCESS);
    assert!(config_access::structured(&data[1..]));
}
