//! CHAP credentials and access settings: who may log in to a target or open a discovery
//! session, with which CHAP secrets (one-way or mutual), and which LUNs each listed initiator
//! sees. The configuration file (`config/access.rs`) and the quick form's flags
//! ([`quick`]) both build these; `acl.rs` turns them into the server's access policy.
//!
//! Secrets are read from the command line, the configuration file or a file of their own
//! (`USER:@FILE`, `secret-file`), are checked (not empty, at most 255 bytes, a warning under
//! 12 bytes, RFC 7143 9.2.1), and never appear in a message, a log line or `Debug` output.

use std::path::Path;

use iscsi_proto::ChapCredential;

/// Secrets shorter than this get a warning (RFC 7143 9.2.1: less than 96 random bits needs
/// IPsec).
pub const MIN_SECRET: usize = 12;
/// Longest secret accepted, in bytes.
pub const MAX_SECRET: usize = 255;
/// Longest CHAP user name accepted, in bytes.
pub const MAX_USER: usize = 255;

/// The CHAP settings of one kind of login: the initiator credentials accepted (empty: no
/// CHAP) and what the target answers when the initiator asks it to authenticate itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChapSettings {
    /// Accepted initiator credentials; empty: no authentication.
    pub users: Vec<ChapCredential>,
    /// The target's own credential for mutual CHAP.
    pub mutual: Option<ChapCredential>,
}

/// One initiator of a target's access list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclEntry {
    /// The initiator's iSCSI name.
    pub initiator: String,
    /// Its own CHAP credentials, instead of the target's; `None`: the target's.
    pub chap: Option<Vec<ChapCredential>>,
    /// Its own mutual credential, instead of the target's; `None`: the target's.
    pub mutual: Option<ChapCredential>,
    /// The LUNs it sees, as (its LUN number, the target's LUN number); `None`: all of them
    /// under their own numbers.
    pub luns: Option<Vec<(u64, u64)>>,
}

/// Who may log in to one target, and how.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetAccess {
    /// CHAP for every initiator without credentials of its own.
    pub chap: ChapSettings,
    /// The initiators allowed; `None`: every initiator.
    pub acl: Option<Vec<AclEntry>>,
}

/// Server-wide authentication settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthConfig {
    /// CHAP for discovery sessions.
    pub discovery: ChapSettings,
    /// Advice to log at start (short secrets, secrets readable by others).
    pub warnings: Vec<String>,
    /// The configuration file itself holds secrets (so it should not be readable by others).
    pub secrets_inline: bool,
}

/// Where a secret comes from.
#[derive(Debug, Clone, Copy)]
pub enum SecretSource<'a> {
    /// Given inline (command line or configuration file).
    Inline(&'a str),
    /// The contents of a file, without one trailing newline.
    File(&'a Path),
}

/// Splits a `USER:SECRET` or `USER:@FILE` argument. The error never quotes the argument.
pub fn split_user_secret(arg: &str) -> Result<(&str, SecretSource<'_>), String> {
    let Some((user, secret)) = arg.split_once(':') else {
        return Err("expected USER:SECRET or USER:@FILE".into());
    };
    let source = match secret.strip_prefix('@') {
        Some("") => return Err(format!("user \"{user}\": empty file name after @")),
        Some(path) => SecretSource::File(Path::new(path)),
        None => SecretSource::Inline(secret),
    };
    Ok((user, source))
}

/// A checked credential. Errors say what is wrong without the secret; advice (a short secret,
/// a secret file readable by others) goes to `warnings`.
pub fn credential(
    user: &str,
    source: SecretSource,
    warnings: &mut Vec<String>,
) -> Result<ChapCredential, String> {
    check_user(user)?;
    let secret = match source {
        SecretSource::Inline(s) => s.as_bytes().to_vec(),
        SecretSource::File(path) => read_secret_file(user, path, warnings)?,
    };
    if secret.is_empty() {
        return Err(format!("user \"{user}\": the secret is empty"));
    }
    if secret.len() > MAX_SECRET {
        return Err(format!(
            "user \"{user}\": the secret is {} bytes long (at most {MAX_SECRET})",
            secret.len()
        ));
    }
    if secret.len() < MIN_SECRET {
        warnings.push(format!(
            "the CHAP secret of user \"{user}\" is {} bytes long; RFC 7143 asks for at least \
             {MIN_SECRET} random bytes (96 bits) unless the network is encrypted",
            secret.len()
        ));
    }
    Ok(ChapCredential::new(user, secret))
}

fn check_user(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("the CHAP user name is empty".into());
    }
    if user.len() > MAX_USER {
        return Err(format!(
            "the CHAP user name is {} bytes long (at most {MAX_USER})",
            user.len()
        ));
    }
    if user.chars().any(char::is_control) {
        return Err(format!("CHAP user name {user:?}: control characters"));
    }
    Ok(())
}

/// A secret file's contents without one trailing newline; warns when others may read it.
fn read_secret_file(
    user: &str,
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<u8>, String> {
    let mut bytes = std::fs::read(path).map_err(|e| {
        format!(
            "user \"{user}\": cannot read secret file {}: {e}",
            path.display()
        )
    })?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if let Some(w) = exposure_warning(path, "secret file") {
        warnings.push(w);
    }
    Ok(bytes)
}

/// A warning when `path` (holding secrets) is readable by its group or by others.
pub fn exposure_warning(path: &Path, what: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o044 != 0).then(|| {
        format!(
            "{what} {} holds CHAP secrets and is readable by {} (mode {mode:04o}); \
             chmod 600 it",
            path.display(),
            if mode & 0o004 != 0 {
                "others"
            } else {
                "its group"
            }
        )
    })
}

/// RFC 7143 9.2.1: a secret that authenticates initiators must not authenticate a target.
/// The error names the mutual user only.
pub fn check_not_reused(mutual: &ChapCredential, users: &[&ChapCredential]) -> Result<(), String> {
    if users.iter().any(|u| u.secret == mutual.secret) {
        return Err(format!(
            "the mutual CHAP secret of \"{}\" is also an initiator's CHAP secret; RFC 7143 \
             forbids using one secret in both directions",
            mutual.user
        ));
    }
    Ok(())
}

/// Credentials of a list, refusing a user listed twice.
pub fn check_unique_users(users: &[ChapCredential]) -> Result<(), String> {
    for (i, u) in users.iter().enumerate() {
        if users[..i].iter().any(|o| o.user == u.user) {
            return Err(format!("CHAP user \"{}\" is listed twice", u.user));
        }
    }
    Ok(())
}

/// The quick form's access flags.
#[derive(Debug, Default)]
pub struct QuickFlags<'a> {
    /// `--chap USER:SECRET`, repeatable.
    pub chap: &'a [String],
    /// `--mutual-chap USER:SECRET`.
    pub mutual: Option<&'a str>,
    /// `--discovery-chap USER:SECRET`, repeatable.
    pub discovery: &'a [String],
    /// `--allow IQN`, repeatable.
    pub allow: &'a [String],
}

/// The server-wide settings and the one target's access of the quick form.
pub fn quick(flags: &QuickFlags) -> Result<(AuthConfig, TargetAccess), String> {
    let mut warnings = Vec::new();
    let users = flag_credentials("--chap", flags.chap, &mut warnings)?;
    let discovery = flag_credentials("--discovery-chap", flags.discovery, &mut warnings)?;
    let mutual = match flags.mutual {
        Some(arg) => Some(flag_credential("--mutual-chap", arg, &mut warnings)?),
        None => None,
    };
    if let Some(m) = &mutual {
        if users.is_empty() && discovery.is_empty() {
            return Err(
                "--mutual-chap needs --chap or --discovery-chap: the target proves \
                        itself only to initiators that authenticate with CHAP"
                    .into(),
            );
        }
        let all: Vec<&ChapCredential> = users.iter().chain(&discovery).collect();
        check_not_reused(m, &all).map_err(|e| format!("--mutual-chap: {e}"))?;
    }
    let acl = allow_list(flags.allow)?;
    let side = |users: Vec<ChapCredential>| ChapSettings {
        mutual: mutual.clone().filter(|_| !users.is_empty()),
        users,
    };
    let auth = AuthConfig {
        discovery: side(discovery),
        warnings,
        secrets_inline: false,
    };
    Ok((
        auth,
        TargetAccess {
            chap: side(users),
            acl,
        },
    ))
}

fn flag_credential(
    flag: &str,
    arg: &str,
    warnings: &mut Vec<String>,
) -> Result<ChapCredential, String> {
    let (user, source) = split_user_secret(arg).map_err(|e| format!("{flag}: {e}"))?;
    credential(user, source, warnings).map_err(|e| format!("{flag}: {e}"))
}

fn flag_credentials(
    flag: &str,
    args: &[String],
    warnings: &mut Vec<String>,
) -> Result<Vec<ChapCredential>, String> {
    let users = args
        .iter()
        .map(|a| flag_credential(flag, a, warnings))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique_users(&users).map_err(|e| format!("{flag}: {e}"))?;
    Ok(users)
}

fn allow_list(allow: &[String]) -> Result<Option<Vec<AclEntry>>, String> {
    if allow.is_empty() {
        return Ok(None);
    }
    let mut entries: Vec<AclEntry> = Vec::with_capacity(allow.len());
    for name in allow {
        crate::config::validate_iqn(name).map_err(|e| format!("--allow {name}: {e}"))?;
        let name = &crate::config::normalize_name(name);
        if entries.iter().any(|e| e.initiator == *name) {
            return Err(format!("--allow {name}: given twice"));
        }
        entries.push(AclEntry {
            initiator: name.clone(),
            chap: None,
            mutual: None,
            luns: None,
        });
    }
    Ok(Some(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "Sup3r-Secret-Value";

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ustgt-auth-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    #[test]
    fn user_secret_arguments() {
        let (u, s) = split_user_secret("alice:pw:with:colons").expect("split");
        assert_eq!(u, "alice");
        assert!(matches!(s, SecretSource::Inline("pw:with:colons")));
        let (_, s) = split_user_secret("bob:@/etc/x").expect("split");
        assert!(matches!(s, SecretSource::File(p) if p == Path::new("/etc/x")));
        let e = split_user_secret(SECRET).expect_err("no colon");
        assert!(!e.contains(SECRET), "{e}");
        assert!(split_user_secret("bob:@").is_err());
    }

    #[test]
    fn secrets_are_checked_without_being_shown() {
        let mut w = Vec::new();
        let e = credential("", SecretSource::Inline(SECRET), &mut w).expect_err("no user");
        assert!(
            e.contains("user name is empty") && !e.contains(SECRET),
            "{e}"
        );
        let e = credential("alice", SecretSource::Inline(""), &mut w).expect_err("empty");
        assert!(e.contains("secret is empty"), "{e}");
        let long = "x".repeat(MAX_SECRET + 1);
        let e = credential("alice", SecretSource::Inline(&long), &mut w).expect_err("long");
        assert!(e.contains("256 bytes") && !e.contains(&long), "{e}");
        assert!(w.is_empty());
        let c = credential("alice", SecretSource::Inline("short-pw"), &mut w).expect("short");
        assert_eq!(c.secret, b"short-pw");
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("8 bytes") && !w[0].contains("short-pw"),
            "{w:?}"
        );
        credential("alice", SecretSource::Inline(SECRET), &mut w).expect("ok");
        assert_eq!(w.len(), 1, "12 bytes and more: no warning");
    }

    #[test]
    fn secret_files_lose_one_newline_and_warn_when_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("files");
        let path = dir.join("alice.secret");
        std::fs::write(&path, format!("{SECRET}\r\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let mut w = Vec::new();
        let c = credential("alice", SecretSource::File(&path), &mut w).expect("read");
        assert_eq!(c.secret, SECRET.as_bytes());
        assert!(w.is_empty(), "{w:?}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        credential("alice", SecretSource::File(&path), &mut w).expect("read");
        assert!(
            w[0].contains("mode 0644") && w[0].contains("alice.secret"),
            "{w:?}"
        );
        let missing = dir.join("missing");
        let e = credential("alice", SecretSource::File(&missing), &mut w).expect_err("missing");
        assert!(
            e.contains("cannot read secret file") && e.contains("missing"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn quick_flags_build_one_target() {
        let chap = strings(&["alice:alice-secret-1", "bob:bob-secret-123"]);
        let disc = strings(&["disc:disc-secret-12"]);
        let allow = strings(&["iqn.2026-11.io.x:a"]);
        let flags = QuickFlags {
            chap: &chap,
            mutual: Some("tgt:target-secret1"),
            discovery: &disc,
            allow: &allow,
        };
        let (auth, t) = quick(&flags).expect("quick");
        assert_eq!(t.chap.users.len(), 2);
        assert_eq!(t.chap.mutual.as_ref().map(|m| m.user.as_str()), Some("tgt"));
        assert_eq!(auth.discovery.users[0].user, "disc");
        assert!(auth.discovery.mutual.is_some());
        assert_eq!(t.acl.expect("acl")[0].initiator, "iqn.2026-11.io.x:a");
        let dbg = format!("{auth:?}");
        assert!(!dbg.contains("disc-secret-12"), "{dbg}");
    }

    #[test]
    fn quick_flag_errors() {
        let none: Vec<String> = Vec::new();
        let err = |chap: &[&str], mutual: Option<&str>, allow: &[&str]| {
            let (chap, allow) = (strings(chap), strings(allow));
            let flags = QuickFlags {
                chap: &chap,
                mutual,
                discovery: &none,
                allow: &allow,
            };
            quick(&flags).expect_err("refused")
        };
        let e = err(&[], Some("tgt:target-secret1"), &[]);
        assert!(e.starts_with("--mutual-chap needs --chap"), "{e}");
        let e = err(&["a:same-secret-12"], Some("tgt:same-secret-12"), &[]);
        assert!(
            e.contains("both directions") && !e.contains("same-secret"),
            "{e}"
        );
        let e = err(&["a:secret-number-1", "a:secret-number-2"], None, &[]);
        assert!(e.contains("listed twice"), "{e}");
        let e = err(&["nocolon"], None, &[]);
        assert!(e.starts_with("--chap: expected USER:SECRET"), "{e}");
        let e = err(&[], None, &["iqn.bad"]);
        assert!(e.starts_with("--allow iqn.bad:"), "{e}");
        let e = err(&[], None, &["iqn.2026-11.io.x:a", "iqn.2026-11.io.x:a"]);
        assert!(e.contains("given twice"), "{e}");
    }
}
