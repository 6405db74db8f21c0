//! The access and limit keys of ustgt's configuration (`config/access.rs`, `config/limits.rs`),
//! the access policy built from them (`acl.rs`) and the limits the server runs with
//! (`limits.rs`), for the `config` target.
//!
//! [`check`] runs on every accepted configuration: credentials well-formed (users unique and
//! at most 255 bytes without control characters, secrets 1 to 255 bytes), no mutual secret
//! that is also an initiator secret, mutual CHAP only with one-way CHAP, access lists with
//! valid and distinct initiators and LUN maps onto the target's LUNs; the access policy
//! decides for every target, initiator and discovery session what the settings say; the
//! limits are in range and the protocol engine runs with them unchanged.
//!
//! [`structured`] builds a configuration with targets, access lists, CHAP credentials and
//! limits from the input, parses it twice with the secrets' letters and digits rotated, and
//! checks that nothing but the secrets themselves changes: no message, warning or `Debug`
//! output shows a secret.

use iscsi_proto::{AccessPolicy, AuthPolicy, ChapCredential};

use crate::acl::Access;
use crate::auth::{AclEntry, ChapSettings, TargetAccess, MAX_SECRET, MAX_USER};
use crate::config::{limits, parse, validate_iqn, ServerConfig, TargetSpec, MAX_LUNS};
use crate::input::Input;

/// Checks an accepted configuration.
pub fn check(cfg: &ServerConfig) {
    let discovery = &cfg.auth.discovery;
    check_chap(discovery);
    assert!(
        discovery.mutual.is_none() || !discovery.users.is_empty(),
        "discovery mutual CHAP without discovery CHAP"
    );
    for t in &cfg.targets {
        check_target_access(t);
    }
    check_not_reused(cfg);
    check_limits(cfg);
    check_names(cfg);
    check_policy(cfg);
}

fn check_credential(c: &ChapCredential) {
    assert!(
        !c.user.is_empty() && c.user.len() <= MAX_USER,
        "CHAP user of {} bytes",
        c.user.len()
    );
    assert!(
        !c.user.chars().any(char::is_control),
        "CHAP user with control characters"
    );
    assert!(
        (1..=MAX_SECRET).contains(&c.secret.len()),
        "CHAP secret of {} bytes",
        c.secret.len()
    );
}

fn check_users(users: &[ChapCredential]) {
    for (i, u) in users.iter().enumerate() {
        check_credential(u);
        assert!(
            !users[..i].iter().any(|o| o.user == u.user),
            "CHAP user {:?} twice in one list",
            u.user
        );
    }
}

fn check_chap(c: &ChapSettings) {
    check_users(&c.users);
    if let Some(m) = &c.mutual {
        check_credential(m);
    }
}

fn check_target_access(t: &TargetSpec) {
    let a = &t.access;
    check_chap(&a.chap);
    let Some(list) = &a.acl else {
        assert!(
            a.chap.mutual.is_none() || !a.chap.users.is_empty(),
            "target {}: mutual CHAP without CHAP",
            t.iqn
        );
        return;
    };
    assert!(!list.is_empty(), "target {}: an empty access list", t.iqn);
    assert!(
        a.chap.mutual.is_none()
            || !a.chap.users.is_empty()
            || list.iter().all(|e| e.chap.is_some()),
        "target {}: mutual CHAP for an initiator without CHAP",
        t.iqn
    );
    for (i, e) in list.iter().enumerate() {
        assert_eq!(validate_iqn(&e.initiator), Ok(()), "invalid initiator");
        assert!(
            !list[..i].iter().any(|o| o.initiator == e.initiator),
            "initiator {} listed twice",
            e.initiator
        );
        check_entry(t, e);
    }
}

fn check_entry(t: &TargetSpec, e: &AclEntry) {
    if let Some(users) = &e.chap {
        assert!(!users.is_empty(), "an empty CHAP list of {}", e.initiator);
        check_users(users);
    }
    if let Some(m) = &e.mutual {
        check_credential(m);
        assert!(
            e.chap.is_some() || !t.access.chap.users.is_empty(),
            "mutual CHAP for {} without CHAP",
            e.initiator
        );
    }
    let Some(map) = &e.luns else { return };
    for (i, &(own, theirs)) in map.iter().enumerate() {
        assert!(own < MAX_LUNS, "initiator LUN {own} over the limit");
        assert!(
            t.luns.iter().any(|(id, _)| *id == theirs),
            "{} mapped to the missing LUN {theirs}",
            e.initiator
        );
        assert!(
            !map[..i].iter().any(|&(o, x)| o == own || x == theirs),
            "a LUN mapped twice for {}",
            e.initiator
        );
    }
    assert!(map.windows(2).all(|w| w[0] < w[1]), "LUN map not sorted");
}

/// Every initiator credential of the file (discovery, targets, access lists).
fn initiator_credentials(cfg: &ServerConfig) -> Vec<&ChapCredential> {
    let mut all: Vec<&ChapCredential> = cfg.auth.discovery.users.iter().collect();
    for t in &cfg.targets {
        all.extend(&t.access.chap.users);
        for e in t.access.acl.iter().flatten() {
            all.extend(e.chap.iter().flatten());
        }
    }
    all
}

/// Every mutual credential of the file.
fn mutual_credentials(cfg: &ServerConfig) -> Vec<&ChapCredential> {
    let mut all: Vec<&ChapCredential> = cfg.auth.discovery.mutual.iter().collect();
    for t in &cfg.targets {
        all.extend(&t.access.chap.mutual);
        for e in t.access.acl.iter().flatten() {
            all.extend(&e.mutual);
        }
    }
    all
}

/// RFC 7143 9.2.1: no secret authenticates both an initiator and the target.
fn check_not_reused(cfg: &ServerConfig) {
    let users = initiator_credentials(cfg);
    for m in mutual_credentials(cfg) {
        assert!(
            !users.iter().any(|u| u.secret == m.secret),
            "the mutual secret of {:?} is also an initiator's",
            m.user
        );
    }
}

/// Limits in their ranges; the protocol engine runs with them as given.
fn check_limits(cfg: &ServerConfig) {
    let s = cfg.limits;
    let keys = [
        ("max-sessions", s.max_sessions),
        ("max-logins-per-portal", s.max_logins_per_portal),
        ("max-logins-per-host", s.max_logins_per_host),
        ("login-timeout-ms", s.login_timeout_ms),
        ("data-out-timeout-ms", s.data_out_timeout_ms),
        ("nop-interval-ms", s.nop_interval_ms),
        ("nop-timeout-ms", s.nop_timeout_ms),
        ("write-budget", s.write_budget),
    ];
    for (key, v) in keys {
        if let Some(v) = v {
            assert_eq!(limits::check(key, v), Ok(v), "{key} = {v} accepted");
        }
    }
    let e = crate::limits::effective(s, &crate::limits::LimitArgs::default())
        .unwrap_or_else(|e| panic!("accepted limits refused: {e}"));
    assert_eq!(
        e.proto.sanitized(),
        e.proto,
        "the engine changes the limits"
    );
    let p = &e.proto;
    let same = [
        (s.login_timeout_ms, p.login_timeout_ms),
        (s.data_out_timeout_ms, p.data_out_timeout_ms),
        (s.nop_interval_ms, p.nop_interval_ms),
        (s.nop_timeout_ms, p.nop_timeout_ms),
        (s.write_budget, p.write_budget),
        (s.max_sessions, e.conns.max_sessions as u64),
    ];
    for (given, used) in same {
        assert!(
            given.is_none() || given == Some(used),
            "{given:?} runs as {used}"
        );
    }
}

/// Names of targets and access list entries are in their normalized (lowercase) form, as
/// `validate_iqn` promises: the server compares them ignoring case.
fn check_names(cfg: &ServerConfig) {
    for t in &cfg.targets {
        assert_eq!(t.iqn, t.iqn.to_lowercase(), "target name not lowercase");
        for e in t.access.acl.iter().flatten() {
            assert_eq!(
                e.initiator,
                e.initiator.to_lowercase(),
                "initiator not lowercase"
            );
        }
    }
}

/// What the settings say for `initiator` logging in to `t`.
fn expected(t: &TargetAccess, initiator: &str) -> AuthPolicy {
    let entry = match &t.acl {
        None => None,
        Some(list) => match list
            .iter()
            .find(|e| e.initiator.eq_ignore_ascii_case(initiator))
        {
            Some(e) => Some(e),
            None => return AuthPolicy::Deny,
        },
    };
    let users = entry
        .and_then(|e| e.chap.as_deref())
        .unwrap_or(&t.chap.users);
    let mutual = entry
        .and_then(|e| e.mutual.as_ref())
        .or(t.chap.mutual.as_ref());
    chap_policy(users, mutual)
}

fn chap_policy(users: &[ChapCredential], mutual: Option<&ChapCredential>) -> AuthPolicy {
    if users.is_empty() {
        return AuthPolicy::Open;
    }
    AuthPolicy::Chap {
        users: users.to_vec(),
        mutual: mutual.cloned(),
        algorithms: Vec::new(),
    }
}

/// The access policy decides what the settings say, for every target (under any case of its
/// name), every listed initiator (any case) and one never listed, and discovery sessions.
fn check_policy(cfg: &ServerConfig) {
    let open = cfg.auth.discovery == ChapSettings::default()
        && cfg
            .targets
            .iter()
            .all(|t| t.access.acl.is_none() && t.access.chap == ChapSettings::default());
    let access = Access::new(&cfg.auth, &cfg.targets);
    assert_eq!(
        access.is_none(),
        open,
        "an access policy without settings, or none"
    );
    let Some(access) = access else { return };
    let mut names = vec!["iqn.2000-01.org.fuzz:nobody".to_string()];
    for t in &cfg.targets {
        for e in t.access.acl.iter().flatten() {
            names.push(e.initiator.clone());
            names.push(e.initiator.to_uppercase());
        }
    }
    for init in &names {
        for t in &cfg.targets {
            let want = expected(&t.access, init);
            for name in [t.iqn.clone(), t.iqn.to_uppercase()] {
                let got = access.decide(init, Some(&name));
                assert_eq!(got, want, "{init} logging in to {name}");
            }
        }
        let admitted = cfg
            .targets
            .iter()
            .any(|t| expected(&t.access, init) != AuthPolicy::Deny);
        let d = &cfg.auth.discovery;
        let want = if admitted {
            chap_policy(&d.users, d.mutual.as_ref())
        } else {
            AuthPolicy::Deny
        };
        assert_eq!(access.decide(init, None), want, "discovery by {init}");
    }
}

/// Target names of the structured configurations (two differ only in case; the last one is
/// invalid).
const TARGETS: &[&str] = &[
    "iqn.2026-11.io.ustgt:a",
    "iqn.2026-11.io.ustgt:b",
    "eui.0123456789abcdef",
    "eui.0123456789ABCDEF",
    "naa.6001405abcdef012",
    "iqn.2026-11.io.ustgt:A",
];
/// Initiator names of their access lists (the last one is invalid).
const INITIATORS: &[&str] = &[
    "iqn.1993-08.org.debian:01:a",
    "iqn.1993-08.org.debian:01:b",
    "eui.aaaabbbbccccdddd",
    "eui.AAAABBBBCCCCDDDD",
    "iqn.2005-03.org.open-iscsi:deny",
    "iqn.1993-08.org.debian:01:A",
];
/// CHAP user names (the last two are invalid).
const USERS: &[&str] = &["alice", "bob", "carol", "", "\\u0001ctl"];
/// Limit keys, and values (the last ones of each list out of range).
const LIMIT_KEYS: &[&str] = &[
    "max-sessions",
    "max-logins-per-portal",
    "max-logins-per-host",
    "login-timeout-ms",
    "data-out-timeout-ms",
    "nop-interval-ms",
    "nop-timeout-ms",
    "write-budget",
];
const LIMIT_VALUES: &[&str] = &[
    "100", "1000", "65535", "0", "1", "3600000", "99", "65536", "3600001", "-1", "\"1K\"",
];
const BUDGET_VALUES: &[&str] = &["\"64K\"", "\"16M\"", "65536", "\"4G\"", "\"63K\"", "1"];

/// Builds the text of a configuration from the input; every secret goes through `secret`.
struct Gen<'a, 'b> {
    inp: Input<'a>,
    text: String,
    secrets: Vec<String>,
    rot: &'b dyn Fn(&str) -> String,
}

impl Gen<'_, '_> {
    /// One of `from`, mostly one of its first `valid`.
    fn pick<'s>(&mut self, from: &[&'s str], valid: usize) -> &'s str {
        let b = usize::from(self.inp.u8());
        let n = if b < 0xf8 { valid } else { from.len() };
        from[b % n]
    }

    /// A secret: letters and digits from the input, or one used before.
    fn secret(&mut self) -> String {
        let b = self.inp.u8();
        if b >= 0xf0 && !self.secrets.is_empty() {
            return self.secrets[usize::from(b) % self.secrets.len()].clone();
        }
        let len = match b % 32 {
            0 => 256,
            1 => 255,
            n => usize::from(n % 8) * 3 + usize::from(self.inp.u8() % 8) + 1,
        };
        const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let seed = self.inp.bytes(len.min(16)).to_vec();
        let s: String = (0..len)
            .map(|i| {
                let b = seed.get(i % seed.len().max(1)).copied().unwrap_or(0);
                char::from(ALNUM[(usize::from(b) + i) % ALNUM.len()])
            })
            .collect();
        self.secrets.push(s.clone());
        s
    }

    /// One credential in one of its forms (a list of one or two for `list`).
    fn credential(&mut self, list: bool) -> String {
        let form = self.inp.u8();
        let user = self.pick(USERS, 3);
        let secret = (self.rot)(&self.secret());
        match form % 16 {
            0..=5 => format!("\"{user}:{secret}\""),
            6..=11 => format!("{{ user = \"{user}\", secret = \"{secret}\" }}"),
            12..=14 if list => {
                let other = self.credential(false);
                format!("[\"{user}:{secret}\", {other}]")
            }
            15 => format!("\"{user}:@/nonexistent/fuzz-secret\""),
            _ => format!("\"{user}:{secret}\""),
        }
    }

    /// `key = credential` lines for the chap keys flagged in `f`: bit 0 one-way, bit 1 mutual
    /// (with one-way CHAP, or without when bits 6 and 7 are set too).
    fn chap_keys(&mut self, f: u8, chap: &str, mutual: &str) {
        if f & 1 != 0 {
            let c = self.credential(true);
            self.text.push_str(&format!("{chap} = {c}\n"));
        }
        if f & 2 != 0 && (f & 1 != 0 || f & 0xc0 == 0xc0) {
            let c = self.credential(false);
            self.text.push_str(&format!("{mutual} = {c}\n"));
        }
    }

    fn server(&mut self) {
        let f = self.inp.u8();
        self.text.push_str("[server]\n");
        self.chap_keys(f, "discovery-chap", "discovery-mutual-chap");
        if f & 4 != 0 {
            self.text.push_str("[limits]\n");
            let keys = self.inp.u8();
            for (i, k) in LIMIT_KEYS.iter().enumerate() {
                if keys & (1 << i) == 0 {
                    continue;
                }
                let v = if *k == "write-budget" {
                    self.pick(BUDGET_VALUES, 3)
                } else {
                    self.pick(LIMIT_VALUES, 3)
                };
                self.text.push_str(&format!("{k} = {v}\n"));
            }
        }
    }

    /// The `i`th target: names follow one another from `start`, or (rarely) any name.
    fn target(&mut self, start: u8, i: u8) {
        let any = self.pick(TARGETS, TARGETS.len());
        let name = if start >= 0xf0 {
            any
        } else {
            TARGETS[usize::from(start.wrapping_add(i)) % 5]
        };
        let f = self.inp.u8();
        self.text
            .push_str(&format!("[[target]]\niqn = \"{name}\"\n"));
        self.chap_keys(f, "chap", "mutual-chap");
        for id in [0, 5].iter().take(1 + usize::from(f >> 7)) {
            self.text.push_str(&format!(
                "[[target.lun]]\nid = {id}\nstore = \"null\"\nsize = 4096\n"
            ));
        }
        for _ in 0..(f >> 2) % 4 {
            self.acl_entry();
        }
    }

    fn acl_entry(&mut self) {
        let (name, f) = (self.pick(INITIATORS, 5), self.inp.u8());
        self.text
            .push_str(&format!("[[target.acl]]\ninitiator = \"{name}\"\n"));
        self.chap_keys(f, "chap", "mutual-chap");
        let luns = match (f >> 2) % 16 {
            0..=2 => "[0]",
            3..=4 => "[0, 5]",
            5..=6 => "{ 3 = 0 }",
            7..=8 => "{ 0 = 5, 1 = 0 }",
            9 => "[7]",
            _ => "",
        };
        if !luns.is_empty() {
            self.text.push_str(&format!("luns = {luns}\n"));
        }
    }
}

/// Rotates letters and digits within their class, a bijection that keeps the length and the
/// equality of secrets.
fn rotate(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='y' | 'A'..='Y' | '0'..='8' => char::from(c as u8 + 1),
            'z' => 'a',
            'Z' => 'A',
            '9' => '0',
            other => other,
        })
        .collect()
}

fn render(data: &[u8], rot: &dyn Fn(&str) -> String) -> (String, Vec<String>) {
    let mut g = Gen {
        inp: Input::new(data),
        text: String::new(),
        secrets: Vec::new(),
        rot,
    };
    g.server();
    let (n, start) = (g.inp.u8(), g.inp.u8());
    for i in 0..1 + n % 3 {
        g.target(start, i);
    }
    (g.text, g.secrets)
}

/// Every credential of a configuration, in a fixed order.
fn all_credentials(cfg: &ServerConfig) -> Vec<&ChapCredential> {
    let mut all = initiator_credentials(cfg);
    all.extend(mutual_credentials(cfg));
    all
}

/// A structured configuration parsed with its secrets as drawn and rotated: the same outcome
/// and messages, secrets carried verbatim. True when the configuration was accepted.
pub fn structured(data: &[u8]) -> bool {
    let (text, _) = render(data, &|s: &str| s.to_string());
    let (rotated, _) = render(data, &rotate);
    let a = parse(&text, "fuzz.toml");
    let b = parse(&rotated, "fuzz.toml");
    match (&a, &b) {
        (Ok(x), Ok(y)) => {
            check(x);
            assert_eq!(format!("{x:?}"), format!("{y:?}"), "a secret shows");
            let (cx, cy) = (all_credentials(x), all_credentials(y));
            assert_eq!(cx.len(), cy.len());
            for (p, q) in cx.iter().zip(&cy) {
                let s = String::from_utf8_lossy(&p.secret);
                assert_eq!(rotate(&s).as_bytes(), &q.secret[..], "secret not verbatim");
            }
        }
        (Err(x), Err(y)) => assert_eq!(x, y, "an error message shows a secret"),
        _ => panic!("rotating the secrets changed the outcome: {a:?} / {b:?}"),
    }
    a.is_ok()
}

/// The text of the structured configuration built from `data` (for reading a failing input).
pub fn structured_text(data: &[u8]) -> String {
    render(data, &|s: &str| s.to_string()).0
}
