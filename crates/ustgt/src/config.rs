//! The TOML configuration file.
//!
//! ```toml
//! [server]
//! listen = ["127.0.0.1:3260", "[::1]:3260"]   # default: 127.0.0.1:3260
//! log = "info"                                 # optional
//! state-dir = "/var/lib/ustgt"   # persistent reservations (APTPL); default: beside this file
//!
//! [[target]]
//! iqn = "iqn.2026-11.io.ustgt:disk1"
//! alias = "disk1"            # optional
//!
//! [[target.lun]]
//! id = 0                     # optional: the lowest number not used by another LUN
//! store = "ram"              # "ram", "file", "aio", "null" or "tcmu" (config/tcmu.rs)
//! size = "1G"                # ram without path, null: required; others: creates or grows
//! path = "/srv/disk1.img"    # file, aio: required; ram: persistent RAM over this file
//! lock = false               # ram with a path: mlock the mapping
//! direct = false             # file, aio: O_DIRECT
//! mmap = true                 # file: map a file in shared memory (tmpfs)
//! queue-depth = 64           # aio only
//! block-size = 4096          # optional, default 512
//! physical-block-size = 4096 # optional: larger physical blocks (e.g. 512e)
//! readonly = false
//! wce = true
//! removable = false          # removable medium: eject/load, PREVENT ALLOW MEDIUM REMOVAL
//! sanitize = false           # allow SANITIZE (erases the whole LUN)
//! thin = true                # logical block provisioning (UNMAP) where the store can deallocate
//! serial = "..."             # optional
//!
//! [target.lun.inject]        # optional fault injection: the inject-* LUNSPEC options
//! read-error = "100-107"     # without "inject-"; a list adds triggers: ["5", "every:9"]
//! write-error = "every:5"
//! write-errno = "enospc"
//! flush-error = 1
//! delay-ms = 2
//! poison = true
//! ```
//!
//! Access control and CHAP (`config/access.rs`, README.md "Authentication and access
//! control"): `[server] discovery-chap`, `discovery-mutual-chap`; per target `chap`,
//! `mutual-chap` and `[[target.acl]]` entries with `initiator`, `chap`, `mutual-chap`, `luns`.
//!
//! Limits (`config/limits.rs`, README.md "Limits"): a `[limits]` table with `max-sessions`,
//! `max-logins-per-portal`, `max-logins-per-host`, `login-timeout-ms`, `data-out-timeout-ms`,
//! `nop-interval-ms`, `nop-timeout-ms` and `write-budget`.
//!
//! Every error names the file and line: `config.toml:12: target "iqn..." lun 0: ...`.

// An explicit path, so that the fuzz crate, which includes this file by path, finds it too.
#[path = "config/access.rs"]
mod access;
#[path = "config/limits.rs"]
pub mod limits;
#[path = "config/tcmu.rs"]
pub mod tcmu;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use store_inject::OPTION_NAMES;

use crate::lunspec::{
    check_block_size, check_physical_block_size, check_serial, LunSpec, StoreSpec, MAX_QUEUE_DEPTH,
};
use crate::size::parse_size;

/// The iSCSI well-known port.
pub const DEFAULT_PORT: u16 = 3260;

/// LUN numbers must be below this (flat space addressing).
pub const MAX_LUNS: u64 = 16384;

/// The whole server configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerConfig {
    /// Portals to listen on.
    pub listen: Vec<SocketAddr>,
    /// Exported targets, in file order.
    pub targets: Vec<TargetSpec>,
    /// Log filter (env_logger syntax), when given.
    pub log: Option<String>,
    /// Directory of the persistent reservation state files, when given (relative to the
    /// configuration file's directory).
    pub state_dir: Option<PathBuf>,
    /// Discovery CHAP and start-up warnings about secrets.
    pub auth: crate::auth::AuthConfig,
    /// The `[limits]` table.
    pub limits: limits::LimitSettings,
}

/// One target and its LUNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub iqn: String,
    pub alias: Option<String>,
    /// LUNs sorted by number.
    pub luns: Vec<(u64, LunSpec)>,
    /// Who may log in, with which CHAP credentials, seeing which LUNs.
    pub access: crate::auth::TargetAccess,
}

/// The default portal when none is configured.
pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: Option<RawServer>,
    limits: Option<limits::RawLimits>,
    #[serde(default)]
    target: Vec<Spanned<RawTarget>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
struct RawServer {
    listen: Option<Spanned<Vec<Spanned<String>>>>,
    log: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    discovery_chap: Option<Spanned<toml::Value>>,
    discovery_mutual_chap: Option<Spanned<toml::Value>>,
    handler_dir: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    iqn: Spanned<String>,
    alias: Option<Spanned<String>>,
    #[serde(default)]
    lun: Vec<Spanned<RawLun>>,
    chap: Option<Spanned<toml::Value>>,
    #[serde(rename = "mutual-chap")]
    mutual_chap: Option<Spanned<toml::Value>>,
    #[serde(default)]
    acl: Vec<Spanned<access::RawAcl>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLun {
    id: Option<Spanned<i64>>,
    store: Spanned<String>,
    size: Option<Spanned<RawSize>>,
    path: Option<Spanned<String>>,
    block_size: Option<Spanned<i64>>,
    physical_block_size: Option<Spanned<i64>>,
    readonly: Option<Spanned<bool>>,
    wce: Option<Spanned<bool>>,
    removable: Option<Spanned<bool>>,
    sanitize: Option<Spanned<bool>>,
    thin: Option<Spanned<bool>>,
    serial: Option<Spanned<String>>,
    direct: Option<Spanned<bool>>,
    mmap: Option<Spanned<bool>>,
    lock: Option<Spanned<bool>>,
    queue_depth: Option<Spanned<i64>>,
    inject: Option<Spanned<BTreeMap<String, Spanned<RawInject>>>>,
    handler: Option<Spanned<String>>,
    config: Option<Spanned<String>>,
}

/// A value of the `[target.lun.inject]` table.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawInject {
    Switch(bool),
    Number(i64),
    Text(String),
    List(Vec<RawInjectItem>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawInjectItem {
    Number(i64),
    Text(String),
}

impl RawInjectItem {
    fn text(&self) -> String {
        match self {
            RawInjectItem::Number(n) => n.to_string(),
            RawInjectItem::Text(t) => t.clone(),
        }
    }
}

impl RawInject {
    /// The option values this entry stands for (a list gives one per item).
    fn values(&self) -> Vec<String> {
        match self {
            RawInject::Switch(b) => vec![if *b { "on" } else { "off" }.to_string()],
            RawInject::Number(n) => vec![n.to_string()],
            RawInject::Text(t) => vec![t.clone()],
            RawInject::List(items) => items.iter().map(RawInjectItem::text).collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(i64),
    Text(String),
}

/// Turns byte offsets into "name:line: " prefixes.
struct Locator<'a> {
    text: &'a str,
    name: &'a str,
}

impl Locator<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn at<T>(&self, spanned: &Spanned<T>, msg: impl std::fmt::Display) -> String {
        format!("{}:{}: {msg}", self.name, self.line(spanned.span().start))
    }
}

/// Reads and parses a configuration file; errors name the file and line.
pub fn load(path: &Path) -> Result<ServerConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut cfg = parse_in(&text, &path.display().to_string(), &base)?;
    if cfg.auth.secrets_inline {
        if let Some(w) = crate::auth::exposure_warning(path, "configuration file") {
            cfg.auth.warnings.push(w);
        }
    }
    let dir = match &cfg.state_dir {
        Some(d) => base.join(d),
        None => base,
    };
    assign_state_files(&mut cfg, &dir)?;
    Ok(cfg)
}

/// Gives every LUN its persistent reservation state file in `dir`
/// ([`crate::stores::state_file_name`]) and checks the files that exist.
pub fn assign_state_files(cfg: &mut ServerConfig, dir: &Path) -> Result<(), String> {
    for t in &mut cfg.targets {
        for (id, spec) in &mut t.luns {
            let path = dir.join(crate::stores::state_file_name(&t.iqn, *id));
            crate::stores::check_state_file(&path)?;
            spec.pr_state = Some(path);
        }
    }
    Ok(())
}

/// Parses configuration text; `name` (usually the file name) prefixes every error. Relative
/// secret files are relative to the current directory. (The server uses [`load`]; the tests
/// and the fuzz crate use this.)
#[cfg_attr(not(test), allow(dead_code))]
pub fn parse(text: &str, name: &str) -> Result<ServerConfig, String> {
    parse_in(text, name, Path::new(""))
}

/// [`parse`], with relative secret files relative to `base`.
fn parse_in(text: &str, name: &str, base: &Path) -> Result<ServerConfig, String> {
    let loc = Locator { text, name };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| loc.line(s.start));
        format!("{name}:{line}: {}", e.message().trim_end())
    })?;
    let (listen, log) = match &raw.server {
        Some(server) => (server_listen(server, &loc)?, server_log(server, &loc)?),
        None => (vec![default_listen()], None),
    };
    let state_dir = match raw.server.as_ref().and_then(|s| s.state_dir.as_ref()) {
        Some(d) if d.get_ref().trim().is_empty() => {
            return Err(loc.at(d, "state-dir must not be empty"));
        }
        Some(d) => Some(PathBuf::from(d.get_ref())),
        None => None,
    };
    if raw.target.is_empty() {
        return Err(format!(
            "{name}:1: no target defined (add a [[target]] table)"
        ));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut targets = Vec::with_capacity(raw.target.len());
    for t in &raw.target {
        let target = build_target(t.get_ref(), &loc)?;
        let line = loc.line(t.get_ref().iqn.span().start);
        // Names are normalized (lowercase), so two spellings of one name are caught here.
        if let Some(first) = seen.insert(target.iqn.clone(), line) {
            return Err(loc.at(
                &t.get_ref().iqn,
                format!(
                    "duplicate target \"{}\" (first defined at line {first})",
                    target.iqn
                ),
            ));
        }
        targets.push(target);
    }
    tcmu::assign_handler_dir(&mut targets, raw.server.as_ref(), &loc, base)?;
    let auth = access::build(raw.server.as_ref(), &raw.target, &mut targets, &loc, base)?;
    let limit_settings = limits::build(raw.limits.as_ref(), &loc)?;
    Ok(ServerConfig {
        listen,
        targets,
        log,
        state_dir,
        auth,
        limits: limit_settings,
    })
}

fn server_listen(server: &RawServer, loc: &Locator) -> Result<Vec<SocketAddr>, String> {
    let Some(list) = &server.listen else {
        return Ok(vec![default_listen()]);
    };
    if list.get_ref().is_empty() {
        return Err(loc.at(list, "listen is empty (remove it to use 127.0.0.1:3260)"));
    }
    let mut out = Vec::new();
    for item in list.get_ref() {
        let addr = parse_portal(item.get_ref()).map_err(|e| loc.at(item, e))?;
        if out.contains(&addr) {
            return Err(loc.at(item, format!("listen address {addr} given twice")));
        }
        out.push(addr);
    }
    Ok(out)
}

fn server_log(server: &RawServer, loc: &Locator) -> Result<Option<String>, String> {
    match &server.log {
        Some(log) if log.get_ref().trim().is_empty() => Err(loc.at(log, "log is empty")),
        Some(log) => Ok(Some(log.get_ref().trim().to_string())),
        None => Ok(None),
    }
}

/// Parses a portal address: "IP:PORT", "[IPv6]:PORT", or an address alone (port 3260).
pub fn parse_portal(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = t
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(t);
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
        .map_err(|_| format!("invalid listen address \"{text}\" (expected IP:PORT, e.g. 0.0.0.0:3260 or [::]:3260)"))
}

fn build_target(raw: &RawTarget, loc: &Locator) -> Result<TargetSpec, String> {
    let iqn = raw.iqn.get_ref().clone();
    validate_iqn(&iqn).map_err(|e| loc.at(&raw.iqn, format!("target \"{iqn}\": {e}")))?;
    let iqn = normalize_name(&iqn);
    let alias = match &raw.alias {
        Some(a) => Some(
            check_alias(a.get_ref()).map_err(|e| loc.at(a, format!("target \"{iqn}\": {e}")))?,
        ),
        None => None,
    };
    let ids = assign_lun_ids(raw, &iqn, loc)?;
    let mut luns = Vec::with_capacity(raw.lun.len());
    for (lun, &id) in raw.lun.iter().zip(&ids) {
        let ctx = format!("target \"{iqn}\" lun {id}");
        luns.push((id, build_lun(lun, &ctx, loc)?));
    }
    luns.sort_by_key(|&(id, _)| id);
    Ok(TargetSpec {
        iqn,
        alias,
        luns,
        access: Default::default(),
    })
}

/// Validates explicit LUN ids and gives the others the lowest numbers still free.
fn assign_lun_ids(raw: &RawTarget, iqn: &str, loc: &Locator) -> Result<Vec<u64>, String> {
    let mut used: BTreeSet<u64> = BTreeSet::new();
    let mut lines: HashMap<u64, usize> = HashMap::new();
    for lun in &raw.lun {
        let Some(id) = &lun.get_ref().id else {
            continue;
        };
        let n = *id.get_ref();
        if !(0..MAX_LUNS as i64).contains(&n) {
            return Err(loc.at(
                id,
                format!(
                    "target \"{iqn}\": LUN id {n} out of range (0 to {})",
                    MAX_LUNS - 1
                ),
            ));
        }
        let n = n as u64;
        if let Some(first) = lines.insert(n, loc.line(id.span().start)) {
            return Err(loc.at(
                id,
                format!("target \"{iqn}\": duplicate LUN id {n} (first at line {first})"),
            ));
        }
        used.insert(n);
    }
    let mut next = 0u64;
    let mut ids = Vec::with_capacity(raw.lun.len());
    for lun in &raw.lun {
        if let Some(id) = &lun.get_ref().id {
            ids.push(*id.get_ref() as u64);
            continue;
        }
        while used.contains(&next) {
            next += 1;
        }
        if next >= MAX_LUNS {
            return Err(loc.at(lun, format!("target \"{iqn}\": more than {MAX_LUNS} LUNs")));
        }
        used.insert(next);
        ids.push(next);
    }
    Ok(ids)
}

fn build_lun(spanned: &Spanned<RawLun>, ctx: &str, loc: &Locator) -> Result<LunSpec, String> {
    let raw = spanned.get_ref();
    let size = match &raw.size {
        Some(s) => Some(size_value(s.get_ref()).map_err(|e| loc.at(s, format!("{ctx}: {e}")))?),
        None => None,
    };
    let store = build_store(raw, size, ctx, loc)?;
    let mut spec = LunSpec::new(store);
    if let Some(bs) = &raw.block_size {
        let value = u64::try_from(*bs.get_ref()).unwrap_or(u64::MAX);
        spec.block_size = check_block_size(value).map_err(|_| {
            loc.at(
                bs,
                format!(
                    "{ctx}: invalid block size {} (expected 512 or 4096)",
                    bs.get_ref()
                ),
            )
        })?;
    }
    if let Some(pbs) = &raw.physical_block_size {
        let value = u64::try_from(*pbs.get_ref()).unwrap_or(u64::MAX);
        let checked = check_physical_block_size(value).map_err(|_| {
            format!(
                "invalid physical block size {} (expected a power of two from 512 to 65536)",
                pbs.get_ref()
            )
        });
        spec.physical_block_size = Some(checked.map_err(|e| loc.at(pbs, format!("{ctx}: {e}")))?);
    }
    if let Some(ro) = &raw.readonly {
        spec.read_only = *ro.get_ref();
    }
    spec.removable = flag(&raw.removable);
    spec.sanitize = flag(&raw.sanitize);
    if let Some(thin) = &raw.thin {
        spec.thin = *thin.get_ref();
    }
    if let Some(wce) = &raw.wce {
        spec.write_cache = *wce.get_ref();
    }
    if let Some(serial) = &raw.serial {
        spec.serial = Some(
            check_serial(serial.get_ref()).map_err(|e| loc.at(serial, format!("{ctx}: {e}")))?,
        );
    }
    if let Some(table) = &raw.inject {
        apply_inject(&mut spec, table, ctx, loc)?;
    }
    spec.validate()
        .map_err(|e| match (&raw.physical_block_size, &raw.size) {
            (Some(p), _) if e.starts_with("physical") => loc.at(p, format!("{ctx}: {e}")),
            (_, Some(s)) => loc.at(s, format!("{ctx}: {e}")),
            _ => loc.at(spanned, format!("{ctx}: {e}")),
        })?;
    Ok(spec)
}

/// Refuses a key the store kind does not take, at the key's line.
fn refuse<T>(
    value: &Option<Spanned<T>>,
    key: &str,
    kind: &str,
    ctx: &str,
    loc: &Locator,
) -> Result<(), String> {
    match value {
        Some(v) => Err(loc.at(v, format!("{ctx}: {key} does not apply to {kind} stores"))),
        None => Ok(()),
    }
}

fn flag(value: &Option<Spanned<bool>>) -> bool {
    value.as_ref().is_some_and(|v| *v.get_ref())
}

/// The required, non-empty path of a store kind.
fn need_path(raw: &RawLun, kind: &str, ctx: &str, loc: &Locator) -> Result<PathBuf, String> {
    match &raw.path {
        Some(p) if !p.get_ref().is_empty() => Ok(PathBuf::from(p.get_ref())),
        Some(p) => Err(loc.at(p, format!("{ctx}: path is empty"))),
        None => {
            let article = if kind.starts_with('a') { "an" } else { "a" };
            Err(loc.at(
                &raw.store,
                format!("{ctx}: {article} {kind} store needs a path"),
            ))
        }
    }
}

fn queue_depth(raw: &RawLun, ctx: &str, loc: &Locator) -> Result<Option<u32>, String> {
    let Some(q) = &raw.queue_depth else {
        return Ok(None);
    };
    match u32::try_from(*q.get_ref()) {
        Ok(n) if (1..=MAX_QUEUE_DEPTH).contains(&n) => Ok(Some(n)),
        _ => Err(loc.at(
            q,
            format!(
                "{ctx}: invalid queue depth {} (1 to {MAX_QUEUE_DEPTH})",
                q.get_ref()
            ),
        )),
    }
}

/// The store part of a LUN table, refusing keys its kind does not take.
fn build_store(
    raw: &RawLun,
    size: Option<u64>,
    ctx: &str,
    loc: &Locator,
) -> Result<StoreSpec, String> {
    let kind = raw.store.get_ref().as_str();
    let needs_size = |what: &str| {
        size.ok_or_else(|| loc.at(&raw.store, format!("{ctx}: a {what} store needs a size")))
    };
    let store = match kind {
        "ram" => match &raw.path {
            Some(p) if p.get_ref().is_empty() => {
                return Err(loc.at(p, format!("{ctx}: path is empty")))
            }
            Some(p) => StoreSpec::RamFile {
                path: PathBuf::from(p.get_ref()),
                size,
                lock: flag(&raw.lock),
            },
            None => {
                if let Some(l) = &raw.lock {
                    return Err(loc.at(
                        l,
                        format!("{ctx}: lock needs a persistent ram store (give a path)"),
                    ));
                }
                StoreSpec::Ram {
                    size: needs_size("ram")?,
                }
            }
        },
        "file" => StoreSpec::File {
            path: need_path(raw, kind, ctx, loc)?,
            size,
            direct: flag(&raw.direct),
            mmap: raw.mmap.as_ref().map_or(true, |v| *v.get_ref()),
        },
        "aio" => StoreSpec::Aio {
            path: need_path(raw, kind, ctx, loc)?,
            size,
            direct: flag(&raw.direct),
            queue_depth: queue_depth(raw, ctx, loc)?,
        },
        "null" => {
            refuse(&raw.path, "path", kind, ctx, loc)?;
            StoreSpec::Null {
                size: needs_size("null")?,
            }
        }
        "tcmu" => tcmu::build_store(raw, size, queue_depth(raw, ctx, loc)?, ctx, loc)?,
        other => {
            return Err(loc.at(
                &raw.store,
                format!(
                    "{ctx}: unknown store kind \"{other}\" (expected ram, file, aio, null or tcmu)"
                ),
            ))
        }
    };
    if kind != "ram" {
        refuse(&raw.lock, "lock", kind, ctx, loc)?;
    }
    if !matches!(kind, "file" | "aio") {
        refuse(&raw.direct, "direct", kind, ctx, loc)?;
    }
    if kind != "file" {
        refuse(&raw.mmap, "mmap", kind, ctx, loc)?;
    }
    if !matches!(kind, "aio" | "tcmu") {
        refuse(&raw.queue_depth, "queue-depth", kind, ctx, loc)?;
    }
    tcmu::refuse_keys(raw, kind, ctx, loc)?;
    Ok(store)
}

/// Applies the `[target.lun.inject]` table: each key is an `inject-KEY` LUNSPEC option.
fn apply_inject(
    spec: &mut LunSpec,
    table: &Spanned<BTreeMap<String, Spanned<RawInject>>>,
    ctx: &str,
    loc: &Locator,
) -> Result<(), String> {
    for (key, value) in table.get_ref() {
        let option = format!("inject-{key}");
        if !OPTION_NAMES.contains(&option.as_str()) {
            let keys: Vec<&str> = OPTION_NAMES
                .iter()
                .filter_map(|n| n.strip_prefix("inject-"))
                .collect();
            return Err(loc.at(
                value,
                format!(
                    "{ctx}: unknown inject key \"{key}\" (expected {})",
                    keys.join(", ")
                ),
            ));
        }
        for text in value.get_ref().values() {
            spec.inject
                .apply_option(&option, Some(&text))
                .map_err(|e| loc.at(value, format!("{ctx}: inject: {e}")))?;
        }
    }
    Ok(())
}

fn size_value(raw: &RawSize) -> Result<u64, String> {
    match raw {
        RawSize::Bytes(n) => u64::try_from(*n).map_err(|_| format!("invalid size {n}")),
        RawSize::Text(t) => parse_size(t),
    }
}

fn check_alias(alias: &str) -> Result<String, String> {
    if alias.is_empty() || alias.len() > 255 {
        return Err(format!("invalid alias \"{alias}\" (1 to 255 bytes)"));
    }
    if alias.chars().any(char::is_control) {
        return Err(format!("invalid alias {alias:?}: control characters"));
    }
    Ok(alias.to_string())
}

/// Longest iSCSI name, in bytes (RFC 3720 3.2.6.1).
pub const MAX_NAME_LEN: usize = 223;

/// The normalized form of a valid iSCSI name: lowercase (RFC 3722 folds case, so
/// `eui.0123456789ABCDEF` and `eui.0123456789abcdef` are one name). Names are kept and compared
/// only in this form.
pub fn normalize_name(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Checks an iSCSI name (RFC 3720 3.2.6.3): `iqn.YYYY-MM.reversed.domain[:anything]`,
/// `eui.` and 16 hex digits, or `naa.` and 16 or 32 hex digits. `iqn.` names must be in
/// their normalized (lowercase) form; `eui.`/`naa.` hex digits may be in either case and are
/// folded by [`normalize_name`].
pub fn validate_iqn(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty iSCSI name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "iSCSI name is {} bytes long (at most {MAX_NAME_LEN})",
            name.len()
        ));
    }
    if let Some(rest) = name.strip_prefix("iqn.") {
        return check_iqn_body(rest);
    }
    if let Some(hex) = name.strip_prefix("eui.") {
        return check_hex(hex, &[16], "eui.");
    }
    if let Some(hex) = name.strip_prefix("naa.") {
        return check_hex(hex, &[16, 32], "naa.");
    }
    let lower = name.to_lowercase();
    if lower.starts_with("iqn.") || lower.starts_with("eui.") || lower.starts_with("naa.") {
        return Err(format!("invalid iSCSI name \"{name}\": must be lowercase"));
    }
    Err(format!("invalid iSCSI name \"{name}\": expected iqn.YYYY-MM.domain[:id], eui.<16 hex> or naa.<16|32 hex>"))
}

fn check_hex(hex: &str, lens: &[usize], prefix: &str) -> Result<(), String> {
    if !lens.contains(&hex.len()) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let want = lens
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(" or ");
        return Err(format!(
            "invalid iSCSI name \"{prefix}{hex}\": expected {want} hex digits after \"{prefix}\""
        ));
    }
    Ok(())
}

/// Checks what follows "iqn.": the date, the reversed domain name and the optional unique part.
fn check_iqn_body(rest: &str) -> Result<(), String> {
    let full = format!("iqn.{rest}");
    let bad = |why: &str| Err(format!("invalid iSCSI name \"{full}\": {why}"));
    let (date, after) = match rest.split_once('.') {
        Some(pair) => pair,
        None => return bad("expected iqn.YYYY-MM.reversed.domain"),
    };
    let b = date.as_bytes();
    let month_ok = b.len() == 7
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..].iter().all(u8::is_ascii_digit)
        && matches!(
            &date[5..],
            "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12"
        );
    if !month_ok {
        return bad("the date after \"iqn.\" must be YYYY-MM");
    }
    let (domain, unique) = match after.split_once(':') {
        Some((d, u)) => (d, Some(u)),
        None => (after, None),
    };
    if domain.is_empty() || domain.split('.').any(|label| label.is_empty()) {
        return bad("expected a reversed domain name after the date");
    }
    if let Some(c) = domain
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.')))
    {
        return if c.is_ascii_uppercase() {
            bad("must be lowercase")
        } else {
            bad(&format!(
                "character {c:?} is not allowed in the domain part"
            ))
        };
    }
    for c in unique.unwrap_or_default().chars() {
        let ok = c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':');
        if ok || (!c.is_ascii() && !c.is_uppercase() && !c.is_control() && !c.is_whitespace()) {
            continue;
        }
        return if c.is_uppercase() {
            bad("must be lowercase")
        } else {
            bad(&format!("character {c:?} is not allowed"))
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[server]
listen = ["127.0.0.1:3260", "[::1]:3261", "10.0.0.1"]
log = "debug"

[[target]]
iqn = "iqn.2026-11.io.ustgt:disk1"
alias = "disk1"

[[target.lun]]
id = 3
store = "ram"
size = "1G"
block-size = 4096
wce = false
serial = "S3"

[[target.lun]]
store = "file"
path = "/srv/disk1.img"
size = 1048576
readonly = true

[[target.lun]]
store = "ram"
size = "4M"

[[target]]
iqn = "eui.02004567A425678D"
"#;

    fn err(text: &str) -> String {
        parse(text, "c.toml").expect_err("config should be refused")
    }

    /// A minimal config with one target around `lun` lines.
    fn with_lun(lun: &str) -> String {
        format!("[[target]]\niqn = \"iqn.2026-11.io.ustgt:t\"\n[[target.lun]]\n{lun}\n")
    }

    #[test]
    fn full_config() {
        let c = parse(FULL, "c.toml").expect("parse");
        assert_eq!(
            c.listen,
            vec![
                "127.0.0.1:3260".parse::<SocketAddr>().expect("addr"),
                "[::1]:3261".parse().expect("addr"),
                "10.0.0.1:3260".parse().expect("addr"),
            ]
        );
        assert_eq!(c.log.as_deref(), Some("debug"));
        assert_eq!(c.targets.len(), 2);
        let t = &c.targets[0];
        assert_eq!(t.iqn, "iqn.2026-11.io.ustgt:disk1");
        assert_eq!(t.alias.as_deref(), Some("disk1"));
        let ids: Vec<u64> = t.luns.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            ids,
            vec![0, 1, 3],
            "default ids fill the lowest free numbers, sorted"
        );
        let lun3 = &t.luns[2].1;
        assert_eq!(lun3.store, StoreSpec::Ram { size: 1 << 30 });
        assert_eq!(
            (lun3.block_size, lun3.read_only, lun3.write_cache),
            (4096, false, false)
        );
        assert_eq!(lun3.serial.as_deref(), Some("S3"));
        let lun0 = &t.luns[0].1;
        assert_eq!(
            lun0.store,
            StoreSpec::File {
                path: "/srv/disk1.img".into(),
                size: Some(1 << 20),
                direct: false,
                mmap: true
            }
        );
        assert!(lun0.read_only && lun0.write_cache);
        assert_eq!(lun0.block_size, 512);
        assert_eq!(t.luns[1].1.store, StoreSpec::Ram { size: 4 << 20 });
        // Kept in the normalized (lowercase) form.
        assert_eq!(c.targets[1].iqn, "eui.02004567a425678d");
        assert!(
            c.targets[1].luns.is_empty(),
            "a target without LUNs is allowed"
        );
    }

    #[test]
    fn defaults() {
        let c = parse(&with_lun("store = \"ram\"\nsize = \"1M\""), "c.toml").expect("parse");
        assert_eq!(c.listen, vec![default_listen()]);
        assert_eq!(c.log, None);
        let (id, lun) = &c.targets[0].luns[0];
        assert_eq!(*id, 0);
        assert_eq!(*lun, LunSpec::new(StoreSpec::Ram { size: 1 << 20 }));
        let c = parse(
            "[server]\n[[target]]\niqn = \"naa.60014055f1a2b3c4\"\n",
            "c.toml",
        )
        .expect("parse");
        assert_eq!(c.listen, vec![default_listen()]);
    }

    #[test]
    fn syntax_error_has_line() {
        let e = err("[[target]]\niqn = \"iqn.2026-11.io.x:a\"\n\nsize = = 3\n");
        assert!(e.starts_with("c.toml:4: "), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused_with_line() {
        let e = err(&with_lun("store = \"ram\"\nsize = \"1G\"\nbogus = 1"));
        assert!(e.starts_with("c.toml:6: unknown field `bogus`"), "{e}");
        let e = err("[server]\nlisten = []\nport = 1\n");
        assert!(e.starts_with("c.toml:3: unknown field `port`"), "{e}");
        let e = err("[[target]]\niqn = \"iqn.2026-11.io.x\"\nname = \"x\"\n");
        assert!(e.starts_with("c.toml:3: unknown field `name`"), "{e}");
        let e = err("[[targets]]\niqn = \"iqn.2026-11.io.x\"\n");
        assert!(e.starts_with("c.toml:1: unknown field `targets`"), "{e}");
    }

    #[test]
    fn wrong_types_and_missing_fields() {
        let e = err(&with_lun(
            "store = \"ram\"\nsize = \"1G\"\n\nreadonly = \"yes\"",
        ));
        assert!(
            e.starts_with("c.toml:7: invalid type: string \"yes\", expected a boolean"),
            "{e}"
        );
        let e = err(&with_lun("\nsize = \"1G\""));
        assert!(e.starts_with("c.toml:3: missing field `store`"), "{e}");
        let e = err("[[target]]\nalias = \"x\"\n");
        assert!(e.starts_with("c.toml:1: missing field `iqn`"), "{e}");
        let e = err(&with_lun("store = \"ram\"\nsize = true"));
        assert!(e.starts_with("c.toml:5: "), "{e}");
    }

    #[test]
    fn no_targets() {
        assert_eq!(
            err(""),
            "c.toml:1: no target defined (add a [[target]] table)"
        );
        assert!(err("[server]\nlisten = [\"0.0.0.0:3260\"]\n").contains("no target defined"));
    }

    #[test]
    fn unknown_store_kind() {
        let e = err(&with_lun("id = 0\nstore = \"rm\"\nsize = \"1G\""));
        assert_eq!(
            e,
            "c.toml:5: target \"iqn.2026-11.io.ustgt:t\" lun 0: unknown store kind \"rm\" (expected ram, file, aio, null or tcmu)"
        );
    }

    #[test]
    fn store_requirements() {
        let e = err(&with_lun("store = \"ram\""));
        assert!(
            e.starts_with(
                "c.toml:4: target \"iqn.2026-11.io.ustgt:t\" lun 0: a ram store needs a size"
            ),
            "{e}"
        );
        let e = err(&with_lun("store = \"null\"\nsize = \"1M\"\npath = \"/x\""));
        assert!(
            e.starts_with("c.toml:6: ") && e.contains("path does not apply to null stores"),
            "{e}"
        );
        let e = err(&with_lun("store = \"file\""));
        assert!(
            e.starts_with("c.toml:4: ") && e.contains("a file store needs a path"),
            "{e}"
        );
        let e = err(&with_lun("store = \"file\"\npath = \"\""));
        assert!(
            e.starts_with("c.toml:5: ") && e.contains("path is empty"),
            "{e}"
        );
        let c = parse(&with_lun("store = \"file\"\npath = \"/a.img\""), "c.toml")
            .expect("file without size");
        assert_eq!(
            c.targets[0].luns[0].1.store,
            StoreSpec::File {
                path: "/a.img".into(),
                size: None,
                direct: false,
                mmap: true
            }
        );
    }

    #[test]
    fn new_store_kinds() {
        let lun = |text: &str| {
            let c = parse(&with_lun(text), "c.toml").unwrap_or_else(|e| panic!("{text}: {e}"));
            c.targets[0].luns[0].1.clone()
        };
        assert_eq!(
            lun("store = \"ram\"\npath = \"/srv/r.img\"\nsize = \"1G\"\nlock = true").store,
            StoreSpec::RamFile {
                path: "/srv/r.img".into(),
                size: Some(1 << 30),
                lock: true
            }
        );
        assert_eq!(
            lun("store = \"ram\"\npath = \"/srv/r.img\"").store,
            StoreSpec::RamFile {
                path: "/srv/r.img".into(),
                size: None,
                lock: false
            }
        );
        assert_eq!(
            lun("store = \"file\"\npath = \"/dev/sdb\"\ndirect = true").store,
            StoreSpec::File {
                path: "/dev/sdb".into(),
                size: None,
                direct: true,
                mmap: true
            }
        );
        assert_eq!(
            lun("store = \"file\"\npath = \"/dev/shm/x\"\nmmap = false").store,
            StoreSpec::File {
                path: "/dev/shm/x".into(),
                size: None,
                direct: false,
                mmap: false
            }
        );
        assert_eq!(
            lun("store = \"aio\"\npath = \"/a\"\nsize = 4096\ndirect = true\nqueue-depth = 256")
                .store,
            StoreSpec::Aio {
                path: "/a".into(),
                size: Some(4096),
                direct: true,
                queue_depth: Some(256)
            }
        );
        assert_eq!(
            lun("store = \"null\"\nsize = \"1T\"").store,
            StoreSpec::Null { size: 1 << 40 }
        );
    }

    #[test]
    fn new_store_kind_errors_have_lines() {
        let cases = [
            (
                "store = \"null\"",
                "c.toml:4: ",
                "a null store needs a size",
            ),
            (
                "store = \"aio\"\nsize = \"1M\"",
                "c.toml:4: ",
                "an aio store needs a path",
            ),
            (
                "store = \"ram\"\nsize = \"1M\"\nlock = true",
                "c.toml:6: ",
                "lock needs a persistent ram store",
            ),
            (
                "store = \"ram\"\npath = \"\"",
                "c.toml:5: ",
                "path is empty",
            ),
            (
                "store = \"file\"\npath = \"/a\"\nlock = true",
                "c.toml:6: ",
                "lock does not apply to file stores",
            ),
            (
                "store = \"ram\"\nsize = \"1M\"\ndirect = true",
                "c.toml:6: ",
                "direct does not apply to ram stores",
            ),
            (
                "store = \"aio\"\npath = \"/a\"\nmmap = false",
                "c.toml:6: ",
                "mmap does not apply to aio stores",
            ),
            (
                "store = \"file\"\npath = \"/a\"\nqueue-depth = 4",
                "c.toml:6: ",
                "queue-depth does not apply to file stores",
            ),
            (
                "store = \"aio\"\npath = \"/a\"\nqueue-depth = 0",
                "c.toml:6: ",
                "invalid queue depth 0",
            ),
            (
                "store = \"null\"\nsize = \"1M\"\ndirect = 1",
                "c.toml:6: ",
                "invalid type",
            ),
        ];
        for (text, line, needle) in cases {
            let e = err(&with_lun(text));
            assert!(e.starts_with(line) && e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn inject_table() {
        let text = with_lun(
            "store = \"ram\"\nsize = \"16M\"\n[target.lun.inject]\nread-error = [\"100-107\", \"every:9\"]\n\
             write-error = \"every:5\"\nwrite-errno = \"enospc\"\nflush-error = 1\ndelay-ms = 2\npoison = false",
        );
        let c = parse(&text, "c.toml").expect("parse");
        let i = &c.targets[0].luns[0].1.inject;
        assert_eq!(i.read.triggers.len(), 2);
        assert_eq!(i.write.triggers, vec![store_inject::Trigger::Every(5)]);
        assert_eq!(i.write.kind, store_inject::FaultKind::Errno(28));
        assert_eq!(i.flush.triggers, vec![store_inject::Trigger::Once(1)]);
        assert_eq!(i.delay, std::time::Duration::from_millis(2));
        assert!(!i.poison);
        let e = err(&with_lun(
            "store = \"ram\"\nsize = \"16M\"\n[target.lun.inject]\n\nbogus = 1",
        ));
        assert!(
            e.starts_with("c.toml:8: ") && e.contains("unknown inject key \"bogus\""),
            "{e}"
        );
        let e = err(&with_lun(
            "store = \"ram\"\nsize = \"16M\"\n[target.lun.inject]\nread-error = \"9-1\"",
        ));
        assert!(
            e.starts_with("c.toml:7: ") && e.contains("inject: option \"inject-read-error\""),
            "{e}"
        );
    }

    #[test]
    fn bad_sizes() {
        let e = err(&with_lun("store = \"ram\"\nsize = \"1Q\""));
        assert!(
            e.starts_with("c.toml:5: target \"iqn.2026-11.io.ustgt:t\" lun 0: invalid size \"1Q\""),
            "{e}"
        );
        let e = err(&with_lun("store = \"ram\"\nsize = -4096"));
        assert!(
            e.starts_with("c.toml:5: ") && e.contains("invalid size -4096"),
            "{e}"
        );
        let e = err(&with_lun("store = \"ram\"\nsize = 1000"));
        assert!(
            e.starts_with("c.toml:5: ")
                && e.contains("size 1000 is not a multiple of the block size 512"),
            "{e}"
        );
        let e = err(&with_lun("store = \"ram\"\nsize = 0"));
        assert!(e.contains("size must not be zero"), "{e}");
        let e = err(&with_lun(
            "store = \"ram\"\nsize = \"6K\"\nblock-size = 4096",
        ));
        assert!(
            e.starts_with("c.toml:5: ") && e.contains("not a multiple of the block size 4096"),
            "{e}"
        );
    }

    #[test]
    fn bad_block_size_and_serial() {
        let e = err(&with_lun(
            "store = \"ram\"\nsize = \"1M\"\nblock-size = 1024",
        ));
        assert!(
            e.starts_with("c.toml:6: ")
                && e.contains("invalid block size 1024 (expected 512 or 4096)"),
            "{e}"
        );
        let e = err(&with_lun("store = \"ram\"\nsize = \"1M\"\nblock-size = -1"));
        assert!(e.contains("invalid block size -1"), "{e}");
        let e = err(&with_lun(
            "store = \"ram\"\nsize = \"1M\"\nserial = \"has space\"",
        ));
        assert!(
            e.starts_with("c.toml:6: ") && e.contains("not printable ASCII"),
            "{e}"
        );
    }

    #[test]
    fn scsi_options() {
        let c = parse(
            &with_lun(
                "store = \"ram\"\nsize = \"1M\"\nremovable = true\nsanitize = true\n\
                 physical-block-size = 4096",
            ),
            "c.toml",
        )
        .expect("parse");
        let lun = &c.targets[0].luns[0].1;
        assert!(lun.removable && lun.sanitize);
        assert_eq!(lun.physical_block_size, Some(4096));
        let c = parse(
            &with_lun("store = \"ram\"\nsize = \"1M\"\nremovable = false"),
            "c.toml",
        )
        .expect("parse");
        let lun = &c.targets[0].luns[0].1;
        assert!(!lun.removable && !lun.sanitize && lun.physical_block_size.is_none());
        assert!(lun.thin);
        let c = parse(
            &with_lun("store = \"file\"\npath = \"/x\"\nthin = false"),
            "c.toml",
        )
        .expect("parse");
        assert!(!c.targets[0].luns[0].1.thin);
        let e = err(&with_lun("store = \"ram\"\nsize = \"1M\"\nthin = \"no\""));
        assert!(e.starts_with("c.toml:6: "), "{e}");
        let e = err(&with_lun(
            "store = \"ram\"\nsize = \"1M\"\nphysical-block-size = 3000",
        ));
        assert!(
            e.starts_with("c.toml:6: ") && e.contains("invalid physical block size 3000"),
            "{e}"
        );
        let e = err(&with_lun(
            "store = \"ram\"\nsize = \"1M\"\nblock-size = 4096\nphysical-block-size = 512",
        ));
        assert!(
            e.starts_with("c.toml:7: ") && e.contains("smaller than the block size 4096"),
            "{e}"
        );
        let e = err(&with_lun(
            "store = \"ram\"\nsize = \"1M\"\nsanitize = \"yes\"",
        ));
        assert!(e.starts_with("c.toml:6: "), "{e}");
    }

    #[test]
    fn lun_ids() {
        let two = |a: &str, b: &str| {
            format!("[[target]]\niqn = \"iqn.2026-11.io.x\"\n[[target.lun]]\n{a}store = \"ram\"\nsize = \"1M\"\n[[target.lun]]\n{b}store = \"ram\"\nsize = \"1M\"\n")
        };
        let e = err(&two("id = 2\n", "id = 2\n"));
        assert_eq!(
            e,
            "c.toml:8: target \"iqn.2026-11.io.x\": duplicate LUN id 2 (first at line 4)"
        );
        let e = err(&two("id = 16384\n", ""));
        assert_eq!(
            e,
            "c.toml:4: target \"iqn.2026-11.io.x\": LUN id 16384 out of range (0 to 16383)"
        );
        let e = err(&two("", "id = -1\n"));
        assert!(
            e.starts_with("c.toml:7: ") && e.contains("LUN id -1 out of range"),
            "{e}"
        );
        let c = parse(&two("", "id = 0\n"), "c.toml").expect("parse");
        let ids: Vec<u64> = c.targets[0].luns.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            ids,
            vec![0, 1],
            "a later explicit id is not reused by an earlier default"
        );
        let c = parse(&two("id = 16383\n", ""), "c.toml").expect("parse");
        let ids: Vec<u64> = c.targets[0].luns.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![0, 16383]);
    }

    #[test]
    fn target_names_differing_only_in_case_are_duplicates() {
        let text = "[[target]]\niqn = \"eui.0123456789ABCDEF\"\n\n[[target]]\niqn = \"eui.0123456789abcdef\"\n";
        assert_eq!(
            err(text),
            "c.toml:5: duplicate target \"eui.0123456789abcdef\" (first defined at line 2)"
        );
        // The same for initiators of one access list.
        let text = "[[target]]\niqn = \"iqn.2026-11.io.x:a\"\n[[target.acl]]\ninitiator = \"eui.0123456789ABCDEF\"\n[[target.acl]]\ninitiator = \"eui.0123456789abcdef\"\n";
        assert!(err(text).contains("is listed twice"), "{}", err(text));
    }

    #[test]
    fn duplicate_iqn() {
        let text = "[[target]]\niqn = \"iqn.2026-11.io.x:a\"\n\n[[target]]\niqn = \"iqn.2026-11.io.x:a\"\n";
        assert_eq!(
            err(text),
            "c.toml:5: duplicate target \"iqn.2026-11.io.x:a\" (first defined at line 2)"
        );
    }

    #[test]
    fn bad_iqn_and_alias_have_lines() {
        let e = err("[[target]]\n\niqn = \"iqn.2026-11.io.X:a\"\n");
        assert_eq!(e, "c.toml:3: target \"iqn.2026-11.io.X:a\": invalid iSCSI name \"iqn.2026-11.io.X:a\": must be lowercase");
        let e = err("[[target]]\niqn = \"iqn.2026-11.io.x\"\nalias = \"\"\n");
        assert!(
            e.starts_with("c.toml:3: ") && e.contains("invalid alias"),
            "{e}"
        );
        let e = err("[[target]]\niqn = \"iqn.2026-11.io.x\"\nalias = \"a\\nb\"\n");
        assert!(e.contains("control characters"), "{e}");
    }

    #[test]
    fn listen_errors() {
        let t = "\n[[target]]\niqn = \"iqn.2026-11.io.x\"\n";
        let e = err(&format!(
            "[server]\nlisten = [\n  \"127.0.0.1:3260\",\n  \"nonsense\",\n]{t}"
        ));
        assert!(
            e.starts_with("c.toml:4: invalid listen address \"nonsense\""),
            "{e}"
        );
        let e = err(&format!("[server]\nlisten = [\"1.2.3.4:70000\"]{t}"));
        assert!(e.starts_with("c.toml:2: invalid listen address"), "{e}");
        let e = err(&format!("[server]\nlisten = []{t}"));
        assert!(e.starts_with("c.toml:2: listen is empty"), "{e}");
        let e = err(&format!(
            "[server]\nlisten = [\"[::1]:3260\", \"[::1]:3260\"]{t}"
        ));
        assert!(
            e.starts_with("c.toml:2: listen address [::1]:3260 given twice"),
            "{e}"
        );
        let e = err(&format!("[server]\nlisten = \"0.0.0.0:3260\"{t}"));
        assert!(e.starts_with("c.toml:2: invalid type"), "{e}");
        let e = err(&format!("[server]\n\nlog = \" \"{t}"));
        assert!(e.starts_with("c.toml:3: log is empty"), "{e}");
    }

    #[test]
    fn portals() {
        assert_eq!(
            parse_portal("0.0.0.0:3260"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 3260)))
        );
        assert_eq!(
            parse_portal("10.1.2.3"),
            Ok(SocketAddr::from(([10, 1, 2, 3], 3260)))
        );
        assert_eq!(
            parse_portal("[::]"),
            "[::]:3260".parse::<SocketAddr>().map_err(|e| e.to_string())
        );
        assert_eq!(
            parse_portal("::1"),
            "[::1]:3260"
                .parse::<SocketAddr>()
                .map_err(|e| e.to_string())
        );
        assert_eq!(
            parse_portal("[fe80::1]:860"),
            "[fe80::1]:860"
                .parse::<SocketAddr>()
                .map_err(|e| e.to_string())
        );
        assert!(parse_portal("localhost:3260").is_err());
        assert!(parse_portal("").is_err());
    }

    #[test]
    fn iqn_good() {
        for name in [
            "iqn.2026-11.io.ustgt:disk1",
            "iqn.2001-04.com.example",
            "iqn.2001-04.com.example:storage:diskarrays-sn-a8675309",
            "iqn.1992-01.com.example:storage.tape1.sys1.xyz",
            "iqn.2005-03.org.open-iscsi:0123abcd",
            "iqn.2026-01.io.x:caf\u{e9}",
            "eui.02004567A425678D",
            "eui.02004567a425678d",
            "naa.52004567BA64678D",
            "naa.6001405abcdef0123456789abcdef012",
        ] {
            assert_eq!(validate_iqn(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn iqn_bad() {
        let cases = [
            ("", "empty iSCSI name"),
            ("disk1", "expected iqn.YYYY-MM.domain"),
            ("IQN.2001-04.com.example", "must be lowercase"),
            ("iqn.2001-04.com.Example", "must be lowercase"),
            ("iqn.2001-04.com.example:Disk", "must be lowercase"),
            ("iqn.2001-4.com.example", "must be YYYY-MM"),
            ("iqn.2001-13.com.example", "must be YYYY-MM"),
            ("iqn.20010-04.com.example", "must be YYYY-MM"),
            ("iqn.2001-04", "expected iqn.YYYY-MM.reversed.domain"),
            ("iqn.2001-04.", "expected a reversed domain name"),
            (
                "iqn.2001-04.com..example",
                "expected a reversed domain name",
            ),
            ("iqn.2001-04.:x", "expected a reversed domain name"),
            (
                "iqn.2001-04.com_example",
                "'_' is not allowed in the domain part",
            ),
            ("iqn.2001-04.com.example:a b", "' ' is not allowed"),
            ("iqn.2001-04.com.example:a/b", "'/' is not allowed"),
            ("eui.02004567A425678", "expected 16 hex digits"),
            ("eui.02004567A425678G", "expected 16 hex digits"),
            ("naa.52004567BA64678D00", "expected 16 or 32 hex digits"),
            ("EUI.02004567A425678D", "must be lowercase"),
        ];
        for (name, needle) in cases {
            let e = validate_iqn(name).expect_err(name);
            assert!(e.contains(needle), "{name}: {e} lacks {needle}");
        }
        let long = format!("iqn.2001-04.com.example:{}", "a".repeat(200));
        assert!(validate_iqn(&long)
            .expect_err("long")
            .contains("at most 223"));
    }

    #[test]
    fn load_reads_a_file_and_names_it() {
        let dir = std::env::temp_dir().join(format!("ustgt-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("ok.toml");
        std::fs::write(&path, FULL).expect("write");
        assert_eq!(load(&path).expect("load").targets.len(), 2);
        std::fs::write(&path, "[[target]]\niqn = \"bad\"\n").expect("write");
        let e = load(&path).expect_err("bad");
        assert!(e.starts_with(&format!("{}:2: ", path.display())), "{e}");
        let e = load(&dir.join("missing.toml")).expect_err("missing");
        assert!(e.contains("missing.toml: No such file or directory"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn state_files_beside_the_config_or_in_state_dir() {
        let dir = std::env::temp_dir().join(format!("ustgt-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("c.toml");
        let lun = "[[target]]\niqn = \"iqn.2026-11.io.ustgt:a\"\n[[target.lun]]\n\
                   store = \"ram\"\nsize = \"1M\"\n";
        std::fs::write(&path, lun).expect("write");
        let c = load(&path).expect("load");
        let state = dir.join("iqn.2026-11.io.ustgt:a.lun0.pr");
        assert_eq!(
            c.targets[0].luns[0].1.pr_state.as_deref(),
            Some(state.as_path())
        );
        std::fs::write(&path, format!("[server]\nstate-dir = \"st\"\n{lun}")).expect("write");
        let c = load(&path).expect("load");
        assert_eq!(c.state_dir, Some(PathBuf::from("st")));
        let state = dir.join("st").join("iqn.2026-11.io.ustgt:a.lun0.pr");
        assert_eq!(
            c.targets[0].luns[0].1.pr_state.as_deref(),
            Some(state.as_path())
        );
        std::fs::create_dir_all(dir.join("st")).expect("mkdir");
        std::fs::write(&state, "not a state file").expect("write");
        let e = load(&path).expect_err("damaged state");
        assert!(e.contains("lun0.pr: line 1"), "{e}");
        let e = err("[server]\nstate-dir = \"\"\n[[target]]\niqn = \"iqn.2026-11.io.ustgt:a\"");
        assert!(
            e.starts_with("c.toml:2: ") && e.contains("state-dir"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
