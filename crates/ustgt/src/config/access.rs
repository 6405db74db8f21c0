//! The access keys of the configuration file: `[server] discovery-chap` and
//! `discovery-mutual-chap`, a target's `chap` and `mutual-chap`, and its `[[target.acl]]`
//! entries (`initiator`, `chap`, `mutual-chap`, `luns`).
//!
//! A credential is `"USER:SECRET"`, `"USER:@FILE"`, `{ user = "...", secret = "..." }` or
//! `{ user = "...", secret-file = "..." }` (a relative FILE is relative to the configuration
//! file's directory); `chap` also takes a list of them. `luns` is a list of the target's LUN
//! numbers (seen under the same numbers) or a table `{ INITIATOR-LUN = TARGET-LUN, ... }`.
//! Every error names the line and never shows a secret.

use std::path::Path;

use iscsi_proto::ChapCredential;
use serde::Deserialize;
use toml::{Spanned, Value};

use super::{Locator, RawServer, RawTarget, TargetSpec, MAX_LUNS};
use crate::auth::{self, AclEntry, AuthConfig, ChapSettings, SecretSource, TargetAccess};

/// One `[[target.acl]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawAcl {
    initiator: Spanned<String>,
    chap: Option<Spanned<Value>>,
    mutual_chap: Option<Spanned<Value>>,
    luns: Option<Spanned<Value>>,
}

/// What building the access settings collects along the way.
struct Ctx<'a> {
    loc: &'a Locator<'a>,
    base: &'a Path,
    warnings: Vec<String>,
    /// A secret is written in the file itself.
    inline: bool,
    /// Every initiator credential, and every mutual one with its line, for the reuse check.
    users: Vec<ChapCredential>,
    mutuals: Vec<(ChapCredential, usize)>,
}

/// Reads the access keys of the whole file into `targets` (parsed from `raw`, in order) and
/// the server-wide settings it returns.
pub(super) fn build(
    server: Option<&RawServer>,
    raw: &[Spanned<RawTarget>],
    targets: &mut [TargetSpec],
    loc: &Locator,
    base: &Path,
) -> Result<AuthConfig, String> {
    let mut ctx = Ctx {
        loc,
        base,
        warnings: Vec::new(),
        inline: false,
        users: Vec::new(),
        mutuals: Vec::new(),
    };
    let discovery = match server {
        Some(s) => discovery_settings(s, &mut ctx)?,
        None => ChapSettings::default(),
    };
    for (raw, spec) in raw.iter().zip(targets.iter_mut()) {
        spec.access = target_access(raw.get_ref(), spec, &mut ctx)?;
    }
    let users: Vec<&ChapCredential> = ctx.users.iter().collect();
    for (mutual, line) in &ctx.mutuals {
        auth::check_not_reused(mutual, &users).map_err(|e| format!("{}:{line}: {e}", loc.name))?;
    }
    Ok(AuthConfig {
        discovery,
        warnings: ctx.warnings,
        secrets_inline: ctx.inline,
    })
}

/// `discovery-chap` and `discovery-mutual-chap`; mutual CHAP needs one-way CHAP.
fn discovery_settings(server: &RawServer, ctx: &mut Ctx) -> Result<ChapSettings, String> {
    let users = match &server.discovery_chap {
        Some(v) => credentials(v, "discovery", ctx)?,
        None => Vec::new(),
    };
    let mutual = match &server.discovery_mutual_chap {
        Some(v) if users.is_empty() => {
            return Err(ctx.loc.at(
                v,
                "discovery-mutual-chap needs discovery-chap: the target proves itself only to \
                 initiators that authenticate with CHAP",
            ));
        }
        Some(v) => Some(mutual_credential(v, "discovery", ctx)?),
        None => None,
    };
    Ok(ChapSettings { users, mutual })
}

fn target_access(
    raw: &RawTarget,
    spec: &TargetSpec,
    ctx: &mut Ctx,
) -> Result<TargetAccess, String> {
    let what = format!("target \"{}\"", spec.iqn);
    let users = match &raw.chap {
        Some(v) => credentials(v, &what, ctx)?,
        None => Vec::new(),
    };
    let mutual = match &raw.mutual_chap {
        Some(v) => Some(mutual_credential(v, &what, ctx)?),
        None => None,
    };
    let acl = if raw.acl.is_empty() {
        None
    } else {
        let mut entries: Vec<AclEntry> = Vec::with_capacity(raw.acl.len());
        for e in &raw.acl {
            let entry = acl_entry(e.get_ref(), spec, &users, ctx)?;
            if let Some(first) = entries.iter().position(|o| o.initiator == entry.initiator) {
                let line = ctx
                    .loc
                    .line(raw.acl[first].get_ref().initiator.span().start);
                return Err(ctx.loc.at(
                    &e.get_ref().initiator,
                    format!(
                        "{what}: initiator \"{}\" is listed twice (first at line {line})",
                        entry.initiator
                    ),
                ));
            }
            entries.push(entry);
        }
        Some(entries)
    };
    if let Some(v) = &raw.mutual_chap {
        let unauthenticated = users.is_empty()
            && acl
                .as_ref()
                .map_or(true, |l| l.iter().any(|e| e.chap.is_none()));
        if unauthenticated {
            return Err(ctx.loc.at(
                v,
                format!(
                    "{what}: mutual-chap needs chap (for the target, or for every initiator of \
                     its acl): the target proves itself only to initiators that authenticate \
                     with CHAP"
                ),
            ));
        }
    }
    Ok(TargetAccess {
        chap: ChapSettings { users, mutual },
        acl,
    })
}

fn acl_entry(
    raw: &RawAcl,
    spec: &TargetSpec,
    target_users: &[ChapCredential],
    ctx: &mut Ctx,
) -> Result<AclEntry, String> {
    let name = raw.initiator.get_ref();
    let what = format!("target \"{}\" acl \"{name}\"", spec.iqn);
    super::validate_iqn(name).map_err(|e| ctx.loc.at(&raw.initiator, format!("{what}: {e}")))?;
    let name = &super::normalize_name(name);
    let chap = match &raw.chap {
        Some(v) => Some(credentials(v, &what, ctx)?),
        None => None,
    };
    let mutual = match &raw.mutual_chap {
        Some(v) if chap.is_none() && target_users.is_empty() => {
            return Err(ctx.loc.at(
                v,
                format!("{what}: mutual-chap needs chap (here or for the target)"),
            ));
        }
        Some(v) => Some(mutual_credential(v, &what, ctx)?),
        None => None,
    };
    let luns = match &raw.luns {
        Some(v) => Some(lun_map(v, spec).map_err(|e| ctx.loc.at(v, format!("{what}: {e}")))?),
        None => None,
    };
    Ok(AclEntry {
        initiator: name.clone(),
        chap,
        mutual,
        luns,
    })
}

/// A `chap` value: one credential or a non-empty list of them, users unique.
fn credentials(
    v: &Spanned<Value>,
    what: &str,
    ctx: &mut Ctx,
) -> Result<Vec<ChapCredential>, String> {
    let items: Vec<&Value> = match v.get_ref() {
        Value::Array(a) if a.is_empty() => {
            return Err(ctx.loc.at(v, format!("{what}: chap is an empty list")));
        }
        Value::Array(a) => a.iter().collect(),
        one => vec![one],
    };
    let mut users = Vec::with_capacity(items.len());
    for item in items {
        let c = credential(item, ctx).map_err(|e| ctx.loc.at(v, format!("{what}: chap: {e}")))?;
        users.push(c);
    }
    auth::check_unique_users(&users).map_err(|e| ctx.loc.at(v, format!("{what}: chap: {e}")))?;
    ctx.users.extend(users.iter().cloned());
    Ok(users)
}

/// A `mutual-chap` value: exactly one credential.
fn mutual_credential(
    v: &Spanned<Value>,
    what: &str,
    ctx: &mut Ctx,
) -> Result<ChapCredential, String> {
    let key = if what == "discovery" {
        "discovery-mutual-chap"
    } else {
        "mutual-chap"
    };
    if matches!(v.get_ref(), Value::Array(_)) {
        return Err(ctx
            .loc
            .at(v, format!("{what}: {key} takes one credential, not a list")));
    }
    let c =
        credential(v.get_ref(), ctx).map_err(|e| ctx.loc.at(v, format!("{what}: {key}: {e}")))?;
    let line = ctx.loc.line(v.span().start);
    ctx.mutuals.push((c.clone(), line));
    Ok(c)
}

const CREDENTIAL_FORMS: &str = "expected \"USER:SECRET\", \"USER:@FILE\", \
     { user = \"...\", secret = \"...\" } or { user = \"...\", secret-file = \"...\" }";

/// One credential in any of its forms.
fn credential(v: &Value, ctx: &mut Ctx) -> Result<ChapCredential, String> {
    let (user, source) = match v {
        Value::String(s) => auth::split_user_secret(s).map_err(|_| CREDENTIAL_FORMS.to_string())?,
        Value::Table(t) => credential_table(t)?,
        _ => return Err(CREDENTIAL_FORMS.into()),
    };
    let source = match source {
        SecretSource::Inline(s) => {
            ctx.inline = true;
            SecretSource::Inline(s)
        }
        SecretSource::File(p) => {
            let full = ctx.base.join(p);
            return auth::credential(user, SecretSource::File(&full), &mut ctx.warnings);
        }
    };
    auth::credential(user, source, &mut ctx.warnings)
}

fn credential_table(t: &toml::Table) -> Result<(&str, SecretSource<'_>), String> {
    if let Some(k) = t
        .keys()
        .find(|k| !matches!(k.as_str(), "user" | "secret" | "secret-file"))
    {
        return Err(format!(
            "unknown key `{k}` in a credential (expected user and secret or secret-file)"
        ));
    }
    let text = |key: &str| match t.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(format!("{key} must be a string")),
    };
    let user = text("user")?.ok_or("a credential needs a user")?;
    match (text("secret")?, text("secret-file")?) {
        (Some(s), None) => Ok((user, SecretSource::Inline(s))),
        (None, Some(f)) if !f.is_empty() => Ok((user, SecretSource::File(Path::new(f)))),
        (None, Some(_)) => Err(format!("user \"{user}\": secret-file is empty")),
        _ => Err(format!(
            "user \"{user}\": give exactly one of secret and secret-file"
        )),
    }
}

/// An ACL's `luns`: (initiator LUN, target LUN) pairs, sorted, each number used once.
fn lun_map(v: &Spanned<Value>, spec: &TargetSpec) -> Result<Vec<(u64, u64)>, String> {
    let pairs: Vec<(u64, u64)> = match v.get_ref() {
        Value::Array(a) => a
            .iter()
            .map(|x| lun_number(x).map(|n| (n, n)))
            .collect::<Result<_, _>>()?,
        Value::Table(t) => t
            .iter()
            .map(|(k, x)| Ok((own_lun(k)?, lun_number(x)?)))
            .collect::<Result<_, String>>()?,
        _ => {
            return Err(
                "luns must be a list of LUN numbers or a table { INITIATOR-LUN = TARGET-LUN }"
                    .into(),
            )
        }
    };
    let mut pairs = pairs;
    pairs.sort_unstable();
    for (i, &(own, theirs)) in pairs.iter().enumerate() {
        if !spec.luns.iter().any(|(id, _)| *id == theirs) {
            return Err(format!("the target has no LUN {theirs}"));
        }
        if pairs[..i].iter().any(|&(o, _)| o == own) {
            return Err(format!("LUN {own} is mapped twice"));
        }
        if pairs[..i].iter().any(|&(_, t)| t == theirs) {
            return Err(format!("the target's LUN {theirs} is mapped twice"));
        }
    }
    Ok(pairs)
}

fn lun_number(v: &Value) -> Result<u64, String> {
    match v {
        Value::Integer(n) if (0..MAX_LUNS as i64).contains(n) => Ok(*n as u64),
        Value::Integer(n) => Err(format!("LUN {n} out of range (0 to {})", MAX_LUNS - 1)),
        _ => Err("a LUN number must be an integer".into()),
    }
}

fn own_lun(key: &str) -> Result<u64, String> {
    match key.parse::<u64>() {
        Ok(n) if n < MAX_LUNS => Ok(n),
        _ => Err(format!(
            "\"{key}\" is not a LUN number (0 to {})",
            MAX_LUNS - 1
        )),
    }
}

#[cfg(test)]
#[path = "access/tests.rs"]
mod tests;
