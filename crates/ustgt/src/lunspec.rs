//! The command-line LUN grammar.
//!
//! ```text
//! ram:SIZE[,OPT...]                               anonymous memory
//! ram:PATH[,size=SIZE][,lock][,OPT...]            persistent: a preallocated mapping of PATH
//! file:PATH[,size=SIZE][,direct][,mmap=off][,OPT...]   regular file or block device
//! aio:PATH[,size=SIZE][,direct][,queue-depth=N][,OPT...]   io_uring (file or device)
//! null:SIZE[,OPT...]                              discards writes, reads zeroes
//! tcmu:SUBTYPE/CONFIG[,size=SIZE][,queue-depth=N][,OPT...]   a tcmu-runner handler plugin
//! OPT := block-size=512|4096 | physical-block-size=N | readonly[=on|off] | wce=on|off
//!        | removable[=on|off] | sanitize[=on|off] | thin[=on|off] | serial=STR | inject-...
//! ```
//!
//! `physical-block-size` (a power of two from the logical block size to 64K, e.g. 4096 over
//! 512-byte blocks for a "512e" disk) is reported as LOGICAL BLOCKS PER PHYSICAL BLOCK.
//! `removable` exports a removable medium (RMB): START STOP UNIT ejects and loads it and PREVENT
//! ALLOW MEDIUM REMOVAL locks it in. `sanitize` allows SANITIZE, which erases the whole LUN.
//! `thin` (on by default) offers logical block provisioning (LBPME, UNMAP, WRITE SAME with
//! UNMAP, GET LBA STATUS) when the store can deallocate; `thin=off` reports the LUN fully
//! provisioned and refuses UNMAP. It changes nothing on a store that cannot deallocate.
//!
//! `ram:` tells a size from a path this way: an argument containing `/` is a path, otherwise
//! one that parses as a size is a size and anything else is a path (so `ram:1G` is 1 GiB of
//! anonymous memory, `ram:./1G` and `ram:/srv/ram.img` are files, `ram:disk.img` is a file).
//! The `inject-*` options (any kind) wrap the store in the fault-injection store; see
//! `store_inject` for their grammar.
//!
//! `tcmu:` serves an unmodified tcmu-runner handler (`handler_SUBTYPE.so` from `--handler-dir`)
//! with the configuration string `SUBTYPE/CONFIG` exactly as tcmu-runner passes it, e.g.
//! `tcmu:qcow//var/lib/images/vm.qcow2` (an absolute path after `qcow/`). The size comes from
//! the image where the handler needs it told (qcow); `size=` gives it otherwise.
//!
//! Parts are separated by commas, so a path cannot contain one. New store kinds add a variant to
//! [`StoreSpec`] and an arm to [`parse_store`]; new options add an arm to
//! [`LunSpec::apply_common`] (all kinds) or to their kind's parser.

use std::path::PathBuf;

use store_inject::InjectRules;

use crate::size::parse_size;

/// Which store backs a LUN, and its kind-specific settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// Anonymous memory of `size` bytes.
    Ram { size: u64 },
    /// Persistent memory: a preallocated shared mapping of `path`; `size` creates or grows the
    /// file; `lock` mlocks it.
    RamFile {
        path: PathBuf,
        size: Option<u64>,
        lock: bool,
    },
    /// A regular file or block device; `size` creates or grows a file; `direct` is O_DIRECT;
    /// `mmap` lets a file in shared memory be accessed through a mapping.
    File {
        path: PathBuf,
        size: Option<u64>,
        direct: bool,
        mmap: bool,
    },
    /// An io_uring store over a file or device; `queue_depth` is the ring size (store default
    /// when absent).
    Aio {
        path: PathBuf,
        size: Option<u64>,
        direct: bool,
        queue_depth: Option<u32>,
    },
    /// Discards writes and reads zeroes; `size` bytes.
    Null { size: u64 },
    /// A tcmu-runner handler plugin: `cfgstring` is `SUBTYPE/CONFIG`; `size` overrides the
    /// image's; `handler_dir` is where the plugins are (the server's `--handler-dir` or
    /// `handler-dir`, else [`DEFAULT_HANDLER_DIR`]); `queue_depth` per event loop.
    Tcmu {
        cfgstring: String,
        size: Option<u64>,
        handler_dir: Option<PathBuf>,
        queue_depth: Option<u32>,
    },
}

impl StoreSpec {
    /// The size given for the store, if any.
    pub fn size(&self) -> Option<u64> {
        match self {
            StoreSpec::Ram { size } | StoreSpec::Null { size } => Some(*size),
            StoreSpec::RamFile { size, .. }
            | StoreSpec::File { size, .. }
            | StoreSpec::Aio { size, .. }
            | StoreSpec::Tcmu { size, .. } => *size,
        }
    }
}

/// Largest accepted aio queue depth.
pub const MAX_QUEUE_DEPTH: u32 = 32768;

/// Where tcmu-runner handler plugins are unless `--handler-dir` or `handler-dir` says
/// otherwise (Debian's `tcmu-runner` package).
pub const DEFAULT_HANDLER_DIR: &str = "/usr/lib/x86_64-linux-gnu/tcmu-runner";

/// Checks a tcmu configuration string: `SUBTYPE/CONFIG` with a subtype of letters, digits,
/// `_` or `-`.
pub fn check_tcmu_cfgstring(text: &str) -> Result<String, String> {
    let Some((sub, cfg)) = text.split_once('/') else {
        return Err(format!(
            "invalid handler configuration \"{text}\" (expected SUBTYPE/CONFIG, e.g. \
             tcmu:qcow//var/lib/images/vm.qcow2)"
        ));
    };
    let sub_ok = !sub.is_empty()
        && sub
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !sub_ok {
        return Err(format!("invalid handler subtype \"{sub}\" in \"{text}\""));
    }
    if cfg.is_empty() {
        return Err(format!(
            "the {sub} handler needs a configuration after \"{sub}/\" (e.g. a path)"
        ));
    }
    Ok(text.to_string())
}

/// Everything needed to build one LUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunSpec {
    pub store: StoreSpec,
    /// Logical block size: 512 (default) or 4096.
    pub block_size: u32,
    /// Export write-protected.
    pub read_only: bool,
    /// The write cache is enabled (WCE bit of the caching mode page); default on.
    pub write_cache: bool,
    /// Physical block size in bytes, when larger than the logical block.
    pub physical_block_size: Option<u32>,
    /// The medium is removable (eject, load, prevent removal).
    pub removable: bool,
    /// SANITIZE is allowed.
    pub sanitize: bool,
    /// Logical block provisioning is offered when the store can deallocate (default on).
    pub thin: bool,
    /// Unit serial number (VPD page 80h); generated when absent.
    pub serial: Option<String>,
    /// Fault injection (empty: none).
    pub inject: InjectRules,
    /// Where persistent reservations are kept when an initiator asks for APTPL (none: APTPL
    /// is not supported). Set from the state directory, not from the LUN grammar.
    pub pr_state: Option<PathBuf>,
}

/// Default logical block size.
pub const DEFAULT_BLOCK_SIZE: u32 = 512;

/// Longest serial number accepted.
pub const MAX_SERIAL_LEN: usize = 64;

/// Largest physical block size accepted.
pub const MAX_PHYSICAL_BLOCK_SIZE: u64 = 64 << 10;

impl LunSpec {
    /// A LUN over `store` with default options.
    pub fn new(store: StoreSpec) -> LunSpec {
        LunSpec {
            store,
            block_size: DEFAULT_BLOCK_SIZE,
            read_only: false,
            write_cache: true,
            physical_block_size: None,
            removable: false,
            sanitize: false,
            thin: true,
            serial: None,
            inject: InjectRules::default(),
            pr_state: None,
        }
    }

    /// Copies the LUN's SCSI options (read-only, write cache, removable medium, SANITIZE,
    /// thin provisioning, physical block size, persistent reservation state file) into the
    /// device configuration.
    pub fn apply_to(&self, cfg: &mut scsi_core::DeviceConfig) {
        cfg.read_only = self.read_only;
        cfg.write_cache = self.write_cache;
        cfg.removable = self.removable;
        cfg.sanitize = self.sanitize;
        cfg.thin = self.thin;
        cfg.pr_store = self.pr_state.as_ref().map(|path| {
            scsi_core::PrPersistence(std::sync::Arc::new(crate::stores::StateFile::new(
                path.clone(),
            )))
        });
        cfg.physical_block_size = self.physical_block_size.unwrap_or(0);
    }

    /// Checks settings that depend on each other: sizes must be non-zero multiples of the
    /// block size, and a physical block holds a whole number of logical blocks.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = self.physical_block_size {
            if p < self.block_size {
                return Err(format!(
                    "physical block size {p} is smaller than the block size {}",
                    self.block_size
                ));
            }
        }
        match self.store.size() {
            Some(0) => Err("size must not be zero".into()),
            Some(n) if n % u64::from(self.block_size) != 0 => Err(format!(
                "size {n} is not a multiple of the block size {}",
                self.block_size
            )),
            _ => Ok(()),
        }
    }

    /// Applies one option shared by every store kind; `Ok(false)` when `key` is not one of them.
    fn apply_common(&mut self, key: &str, value: Option<&str>) -> Result<bool, String> {
        match key {
            "block-size" => self.block_size = check_block_size_text(required(key, value)?)?,
            "readonly" | "ro" => {
                self.read_only = value.map_or(Ok(true), |v| parse_switch(key, v))?
            }
            "wce" => self.write_cache = parse_switch(key, required(key, value)?)?,
            "physical-block-size" => {
                self.physical_block_size =
                    Some(check_physical_block_size_text(required(key, value)?)?)
            }
            "removable" => self.removable = value.map_or(Ok(true), |v| parse_switch(key, v))?,
            "sanitize" => self.sanitize = value.map_or(Ok(true), |v| parse_switch(key, v))?,
            "thin" => self.thin = value.map_or(Ok(true), |v| parse_switch(key, v))?,
            "serial" => self.serial = Some(check_serial(required(key, value)?)?),
            _ => return self.inject.apply_option(key, value),
        }
        Ok(true)
    }
}

impl std::str::FromStr for LunSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<LunSpec, String> {
        parse_lun_spec(s)
    }
}

fn required<'a>(key: &str, value: Option<&'a str>) -> Result<&'a str, String> {
    value.ok_or_else(|| format!("option \"{key}\" needs a value ({key}=...)"))
}

/// Parses an on/off switch value.
pub fn parse_switch(key: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!(
            "option \"{key}\": invalid value \"{value}\" (expected on or off)"
        )),
    }
}

/// Checks a block size: 512 or 4096.
pub fn check_block_size(value: u64) -> Result<u32, String> {
    match value {
        512 => Ok(512),
        4096 => Ok(4096),
        _ => Err(format!("invalid block size {value} (expected 512 or 4096)")),
    }
}

/// Checks a physical block size: a power of two from 512 to [`MAX_PHYSICAL_BLOCK_SIZE`].
pub fn check_physical_block_size(value: u64) -> Result<u32, String> {
    if value.is_power_of_two() && (512..=MAX_PHYSICAL_BLOCK_SIZE).contains(&value) {
        return Ok(value as u32);
    }
    Err(format!(
        "invalid physical block size {value} (expected a power of two from 512 to 65536)"
    ))
}

fn check_physical_block_size_text(value: &str) -> Result<u32, String> {
    let n = value.parse::<u64>().map_err(|_| {
        format!(
            "invalid physical block size \"{value}\" (expected a power of two from 512 to 65536)"
        )
    })?;
    check_physical_block_size(n)
}

fn check_block_size_text(value: &str) -> Result<u32, String> {
    let n = value
        .parse::<u64>()
        .map_err(|_| format!("invalid block size \"{value}\" (expected 512 or 4096)"))?;
    check_block_size(n)
}

/// Checks a unit serial number: 1 to [`MAX_SERIAL_LEN`] printable ASCII characters, no spaces.
pub fn check_serial(value: &str) -> Result<String, String> {
    if value.is_empty() || value.len() > MAX_SERIAL_LEN {
        return Err(format!(
            "invalid serial \"{value}\" (1 to {MAX_SERIAL_LEN} characters)"
        ));
    }
    if let Some(c) = value.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "invalid serial \"{value}\": character {c:?} is not printable ASCII"
        ));
    }
    Ok(value.to_string())
}

/// Splits "key=value" or "key".
fn split_option(part: &str) -> (&str, Option<&str>) {
    match part.split_once('=') {
        Some((k, v)) => (k.trim(), Some(v.trim())),
        None => (part.trim(), None),
    }
}

/// Removes every `key` option from `options`, returning the values in order.
fn take_all<'a>(options: &mut Vec<(&'a str, Option<&'a str>)>, key: &str) -> Vec<Option<&'a str>> {
    let mut out = Vec::new();
    options.retain(|&(k, v)| {
        if k == key {
            out.push(v);
            false
        } else {
            true
        }
    });
    out
}

/// Removes the option `key` (at most once) from `options` and parses its value with `parse`.
fn take_value<'a, T>(
    options: &mut Vec<(&'a str, Option<&'a str>)>,
    key: &str,
    parse: impl Fn(&'a str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    let values = take_all(options, key);
    match values.as_slice() {
        [] => Ok(None),
        [v] => parse(required(key, *v)?)
            .map(Some)
            .map_err(|e| format!("option \"{key}\": {e}")),
        _ => Err(format!("option \"{key}\" given twice")),
    }
}

/// Removes the switch `key` (bare, or `=on|off`) from `options`.
fn take_switch<'a>(
    options: &mut Vec<(&'a str, Option<&'a str>)>,
    key: &str,
) -> Result<bool, String> {
    let values = take_all(options, key);
    match values.as_slice() {
        [] => Ok(false),
        [None] => Ok(true),
        [Some(v)] => parse_switch(key, v),
        _ => Err(format!("option \"{key}\" given twice")),
    }
}

/// A switch that is on (or off) unless given.
fn take_switch_or<'a>(
    options: &mut Vec<(&'a str, Option<&'a str>)>,
    key: &str,
    default: bool,
) -> Result<bool, String> {
    let given = options.iter().any(|&(k, _)| k == key);
    let value = take_switch(options, key)?;
    Ok(if given { value } else { default })
}

/// Refuses an option the store kind does not take.
fn refuse(options: &[(&str, Option<&str>)], key: &str, kind: &str) -> Result<(), String> {
    if options.iter().any(|&(k, _)| k == key) {
        return Err(format!("option \"{key}\" does not apply to {kind} stores"));
    }
    Ok(())
}

fn parse_queue_depth(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if (1..=MAX_QUEUE_DEPTH).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid queue depth \"{text}\" (1 to {MAX_QUEUE_DEPTH})"
        )),
    }
}

/// True when a `ram:` argument names a file rather than a size (see the module docs).
pub fn ram_arg_is_path(arg: &str) -> bool {
    arg.contains('/') || parse_size(arg).is_err()
}

fn need_path(kind: &str, arg: &str) -> Result<PathBuf, String> {
    if arg.is_empty() {
        return Err(format!(
            "{kind}: a path is required (e.g. {kind}:/srv/disk.img,size=1G)"
        ));
    }
    Ok(PathBuf::from(arg))
}

/// The size of a kind that takes it as the argument (`ram:SIZE`, `null:SIZE`) or as `size=`.
fn inline_size(kind: &str, arg: &str, size_opt: Option<u64>) -> Result<u64, String> {
    match (arg.trim(), size_opt) {
        ("", Some(size)) => Ok(size),
        ("", None) => Err(format!("{kind}: a size is required (e.g. {kind}:1G)")),
        (_, Some(_)) => Err(format!("{kind}: size given twice")),
        (text, None) => parse_size(text).map_err(|e| format!("{kind}: {e}")),
    }
}

/// Builds the store part from the kind, its argument and the options; kind-specific options are
/// removed from `options`, the rest are left for [`LunSpec::apply_common`].
fn parse_store<'a>(
    kind: &str,
    arg: &'a str,
    options: &mut Vec<(&'a str, Option<&'a str>)>,
) -> Result<StoreSpec, String> {
    let size_opt = take_value(options, "size", parse_size)?;
    let store = match kind {
        "ram" if !arg.trim().is_empty() && ram_arg_is_path(arg) => StoreSpec::RamFile {
            path: PathBuf::from(arg),
            size: size_opt,
            lock: take_switch(options, "lock")?,
        },
        "ram" => {
            if options.iter().any(|&(k, _)| k == "lock") {
                return Err("option \"lock\" needs a persistent ram store (ram:PATH)".into());
            }
            StoreSpec::Ram {
                size: inline_size(kind, arg, size_opt)?,
            }
        }
        "null" => StoreSpec::Null {
            size: inline_size(kind, arg, size_opt)?,
        },
        "file" => StoreSpec::File {
            path: need_path(kind, arg)?,
            size: size_opt,
            direct: take_switch(options, "direct")?,
            mmap: take_switch_or(options, "mmap", true)?,
        },
        "aio" => StoreSpec::Aio {
            path: need_path(kind, arg)?,
            size: size_opt,
            direct: take_switch(options, "direct")?,
            queue_depth: take_value(options, "queue-depth", parse_queue_depth)?,
        },
        "tcmu" => StoreSpec::Tcmu {
            cfgstring: check_tcmu_cfgstring(arg)?,
            size: size_opt,
            handler_dir: None,
            queue_depth: take_value(options, "queue-depth", parse_queue_depth)?,
        },
        other => {
            return Err(format!(
                "unknown store kind \"{other}\" (expected ram, file, aio, null or tcmu)"
            ))
        }
    };
    for key in ["lock", "direct", "queue-depth", "mmap"] {
        refuse(options, key, kind)?;
    }
    Ok(store)
}

/// Parses a LUN spec such as `ram:1G,block-size=4096` or `file:/srv/a.img,size=10G,readonly`.
pub fn parse_lun_spec(text: &str) -> Result<LunSpec, String> {
    let mut parts = text.split(',');
    let head = parts.next().unwrap_or_default();
    let Some((kind, arg)) = head.split_once(':') else {
        return Err(format!(
            "invalid LUN \"{text}\": expected KIND:ARG, e.g. ram:1G or file:/path"
        ));
    };
    let mut options: Vec<(&str, Option<&str>)> = Vec::new();
    for part in parts {
        if part.trim().is_empty() {
            return Err(format!("invalid LUN \"{text}\": empty option"));
        }
        options.push(split_option(part));
    }
    let store = parse_store(kind.trim(), arg, &mut options)
        .map_err(|e| format!("invalid LUN \"{text}\": {e}"))?;
    let mut spec = LunSpec::new(store);
    for (key, value) in options {
        let known = spec
            .apply_common(key, value)
            .map_err(|e| format!("invalid LUN \"{text}\": {e}"))?;
        if !known {
            return Err(format!(
                "invalid LUN \"{text}\": unknown option \"{key}\" (expected size, block-size, physical-block-size, readonly, wce, removable, sanitize, thin, serial, lock, direct, mmap, queue-depth or inject-...)"
            ));
        }
    }
    spec.validate()
        .map_err(|e| format!("invalid LUN \"{text}\": {e}"))?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> LunSpec {
        match parse_lun_spec(text) {
            Ok(s) => s,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn err(text: &str) -> String {
        parse_lun_spec(text).expect_err(text)
    }

    #[test]
    fn ram_defaults() {
        assert_eq!(ok("ram:1G"), LunSpec::new(StoreSpec::Ram { size: 1 << 30 }));
        let s = ok("ram:1G");
        assert_eq!(
            (s.block_size, s.read_only, s.write_cache, s.serial),
            (512, false, true, None)
        );
        assert_eq!(ok("ram:,size=4M").store, StoreSpec::Ram { size: 4 << 20 });
    }

    #[test]
    fn ram_with_options() {
        let s = ok("ram:512M,block-size=4096,readonly,wce=off,serial=ABC-123");
        assert_eq!(s.store, StoreSpec::Ram { size: 512 << 20 });
        assert_eq!(s.block_size, 4096);
        assert!(s.read_only);
        assert!(!s.write_cache);
        assert_eq!(s.serial.as_deref(), Some("ABC-123"));
        assert!(!ok("ram:1M,readonly=off").read_only);
        assert!(ok("ram:1M,readonly=on").read_only);
        assert!(ok("ram:1M,ro").read_only);
        assert!(ok("ram:1M,wce=on").write_cache);
    }

    #[test]
    fn file_with_and_without_size() {
        assert_eq!(
            ok("file:/srv/a.img").store,
            StoreSpec::File {
                path: "/srv/a.img".into(),
                size: None,
                direct: false,
                mmap: true
            }
        );
        let s = ok("file:/srv/b.img,size=10G,readonly");
        assert_eq!(
            s.store,
            StoreSpec::File {
                path: "/srv/b.img".into(),
                size: Some(10 << 30),
                direct: false,
                mmap: true
            }
        );
        assert!(s.read_only);
        assert_eq!(
            ok("file:rel/c:d.img").store,
            StoreSpec::File {
                path: "rel/c:d.img".into(),
                size: None,
                direct: false,
                mmap: true
            }
        );
    }

    #[test]
    fn kind_errors() {
        assert!(err("rm:1G")
            .contains("unknown store kind \"rm\" (expected ram, file, aio, null or tcmu)"));
        assert!(err("1G").contains("expected KIND:ARG"));
        assert!(err("").contains("expected KIND:ARG"));
        assert!(err("ram:").contains("ram: a size is required"));
        assert!(err("ram:1G,size=2G").contains("size given twice"));
        assert!(err("file:").contains("a path is required"));
        assert!(err("file:/a,size=1G,size=2G").contains("\"size\" given twice"));
    }

    #[test]
    fn value_errors_name_the_part() {
        assert!(err("null:1Q").contains("unknown unit \"Q\""));
        assert!(err("file:/a,size=lots").contains("option \"size\": invalid size \"lots\""));
        assert!(err("file:/a,size").contains("option \"size\" needs a value"));
        assert!(err("ram:1G,block-size=1024").contains("invalid block size 1024"));
        assert!(err("ram:1G,block-size=big").contains("invalid block size \"big\""));
        assert!(err("ram:1G,block-size").contains("\"block-size\" needs a value"));
        assert!(
            err("ram:1G,readonly=maybe").contains("option \"readonly\": invalid value \"maybe\"")
        );
        assert!(err("ram:1G,wce").contains("\"wce\" needs a value"));
        assert!(err("ram:1G,serial=").contains("invalid serial \"\""));
        assert!(err("ram:1G,serial=a b").contains("not printable ASCII"));
        assert!(err(&format!("ram:1G,serial={}", "x".repeat(65))).contains("1 to 64"));
        assert!(err("ram:1G,,readonly").contains("empty option"));
    }

    #[test]
    fn sizes_must_fit_the_block_size() {
        assert!(err("ram:0").contains("size must not be zero"));
        assert!(err("ram:1000").contains("size 1000 is not a multiple of the block size 512"));
        assert!(err("ram:6K,block-size=4096")
            .contains("size 6144 is not a multiple of the block size 4096"));
        assert!(err("file:/a,size=100").contains("size 100 is not a multiple"));
        assert_eq!(ok("ram:8K,block-size=4096").block_size, 4096);
    }

    #[test]
    fn unknown_option_is_named() {
        let e = err("ram:1G,fast=yes");
        assert!(e.contains("unknown option \"fast\""), "{e}");
        assert!(e.starts_with("invalid LUN \"ram:1G,fast=yes\""), "{e}");
    }

    #[test]
    fn ram_size_or_path() {
        assert_eq!(ok("ram:4M").store, StoreSpec::Ram { size: 4 << 20 });
        assert_eq!(
            ok("ram:/srv/ram.img,size=1G,lock").store,
            StoreSpec::RamFile {
                path: "/srv/ram.img".into(),
                size: Some(1 << 30),
                lock: true
            }
        );
        // No '/' but not a size: a path too (relative); "./1G" forces a path.
        for (arg, path) in [("disk.img", "disk.img"), ("1Q", "1Q"), ("./1G", "./1G")] {
            assert_eq!(
                ok(&format!("ram:{arg}")).store,
                StoreSpec::RamFile {
                    path: path.into(),
                    size: None,
                    lock: false
                },
                "{arg}"
            );
        }
        assert!(!ok("ram:/a,lock=off").store.eq(&StoreSpec::Ram { size: 0 }));
        assert!(ram_arg_is_path("a/b") && ram_arg_is_path("x") && !ram_arg_is_path("10K"));
        assert!(err("ram:1G,lock").contains("\"lock\" needs a persistent ram store"));
        assert!(err("ram:/a,lock,lock").contains("\"lock\" given twice"));
        assert!(err("ram:/a,direct").contains("\"direct\" does not apply to ram stores"));
        assert_eq!(
            ok("ram:/a,size=8K,block-size=4096").store.size(),
            Some(8192)
        );
        assert!(err("ram:/a,size=6K,block-size=4096").contains("not a multiple"));
    }

    #[test]
    fn file_direct_and_aio() {
        assert_eq!(
            ok("file:/dev/sdb,direct").store,
            StoreSpec::File {
                path: "/dev/sdb".into(),
                size: None,
                direct: true,
                mmap: true
            }
        );
        assert_eq!(
            ok("file:/a,direct=off,size=1M").store,
            StoreSpec::File {
                path: "/a".into(),
                size: Some(1 << 20),
                direct: false,
                mmap: true
            }
        );
        assert_eq!(
            ok("aio:/srv/a.img,size=1G,direct,queue-depth=128").store,
            StoreSpec::Aio {
                path: "/srv/a.img".into(),
                size: Some(1 << 30),
                direct: true,
                queue_depth: Some(128)
            }
        );
        assert_eq!(
            ok("aio:/dev/nvme0n1").store,
            StoreSpec::Aio {
                path: "/dev/nvme0n1".into(),
                size: None,
                direct: false,
                queue_depth: None
            }
        );
        assert_eq!(
            ok("file:/dev/shm/a,mmap=off").store,
            StoreSpec::File {
                path: "/dev/shm/a".into(),
                size: None,
                direct: false,
                mmap: false
            }
        );
        assert!(err("ram:1G,mmap=off").contains("\"mmap\" does not apply to ram stores"));
        assert!(err("aio:").contains("aio: a path is required"));
        assert!(err("aio:/a,queue-depth=0").contains("invalid queue depth \"0\""));
        assert!(err("aio:/a,queue-depth=99999").contains("1 to 32768"));
        assert!(err("aio:/a,queue-depth").contains("needs a value"));
        assert!(err("file:/a,queue-depth=4").contains("does not apply to file stores"));
        assert!(err("file:/a,lock").contains("\"lock\" does not apply to file stores"));
        assert!(err("file:/a,direct=sometimes").contains("invalid value \"sometimes\""));
    }

    #[test]
    fn null_store() {
        assert_eq!(ok("null:1T").store, StoreSpec::Null { size: 1 << 40 });
        assert_eq!(ok("null:,size=1M").store, StoreSpec::Null { size: 1 << 20 });
        assert!(err("null:").contains("null: a size is required"));
        assert!(err("null:1G,direct").contains("does not apply to null stores"));
        assert!(err("null:1000").contains("not a multiple"));
    }

    #[test]
    fn inject_options_on_any_kind() {
        let s = ok(
            "ram:16M,inject-read-error=100-107,inject-write-error=every:5,\
                    inject-write-errno=enospc,inject-flush-error=1,inject-delay-ms=2",
        );
        assert_eq!(s.store, StoreSpec::Ram { size: 16 << 20 });
        assert_eq!(s.inject.read.triggers.len(), 1);
        assert_eq!(s.inject.write.triggers.len(), 1);
        assert_eq!(s.inject.flush.triggers.len(), 1);
        assert_eq!(s.inject.delay, std::time::Duration::from_millis(2));
        assert!(!s.inject.is_empty());
        assert!(ok("ram:1M").inject.is_empty());
        for spec in [
            "file:/a,inject-read-error=always",
            "null:1M,inject-delay-ms=1",
            "aio:/a,inject-flush-error=every:2",
            "ram:/a,size=1M,inject-write-errno=short,inject-write-error=3",
        ] {
            assert!(
                !ok(spec).inject.is_empty() || spec.contains("errno"),
                "{spec}"
            );
        }
        let e = err("ram:1M,inject-read-error=9-1");
        assert!(
            e.starts_with(
                "invalid LUN \"ram:1M,inject-read-error=9-1\": option \"inject-read-error\""
            ),
            "{e}"
        );
        assert!(err("ram:1M,inject-foo=1").contains("unknown option \"inject-foo\""));
    }

    #[test]
    fn scsi_options() {
        let s = ok("ram:1G,removable,sanitize,physical-block-size=4096");
        assert!(s.removable && s.sanitize);
        assert_eq!(s.physical_block_size, Some(4096));
        let d = ok("ram:1G");
        assert!(!d.removable && !d.sanitize && d.physical_block_size.is_none());
        assert!(!ok("ram:1M,removable=off").removable);
        assert!(ok("ram:1M").thin && ok("file:/a,thin").thin);
        assert!(!ok("ram:1M,thin=off").thin && !ok("aio:/a,thin=no").thin);
        let mut cfg = scsi_core::DeviceConfig::new("s".into());
        ok("ram:1M,thin=off").apply_to(&mut cfg);
        assert!(!cfg.thin);
        assert!(err("ram:1M,thin=sometimes").contains("option \"thin\": invalid value"));
        assert!(ok("ram:1M,sanitize=on").sanitize);
        assert!(ok("file:/a,removable").removable);
        let big = ok("ram:1M,block-size=4096,physical-block-size=16384");
        assert_eq!(big.physical_block_size, Some(16384));
        let mut cfg = scsi_core::DeviceConfig::new("x".into());
        ok("ram:1M,readonly,wce=off,removable,sanitize,physical-block-size=4096")
            .apply_to(&mut cfg);
        assert!(cfg.read_only && !cfg.write_cache && cfg.removable && cfg.sanitize);
        assert_eq!(cfg.physical_block_size, 4096);
        let mut cfg = scsi_core::DeviceConfig::new("y".into());
        ok("ram:1M").apply_to(&mut cfg);
        assert!(!cfg.read_only && cfg.write_cache && !cfg.removable && !cfg.sanitize);
        assert_eq!(cfg.physical_block_size, 0);
    }

    #[test]
    fn scsi_option_errors() {
        assert!(err("ram:1M,physical-block-size=1000").contains("invalid physical block size 1000"));
        assert!(err("ram:1M,physical-block-size=256").contains("from 512 to 65536"));
        assert!(err("ram:1M,physical-block-size=131072").contains("invalid physical block size"));
        assert!(err("ram:1M,physical-block-size=big").contains("\"big\""));
        assert!(err("ram:1M,physical-block-size").contains("needs a value"));
        assert!(err("ram:1M,block-size=4096,physical-block-size=512")
            .contains("physical block size 512 is smaller than the block size 4096"));
        assert!(err("ram:1M,removable=maybe").contains("option \"removable\": invalid value"));
        assert!(err("ram:1M,sanitize=2").contains("option \"sanitize\": invalid value"));
    }

    #[test]
    fn from_str_works() {
        let s: LunSpec = "ram:1M".parse().expect("parse");
        assert_eq!(s.store, StoreSpec::Ram { size: 1 << 20 });
    }

    #[test]
    fn tcmu_store() {
        assert_eq!(
            ok("tcmu:qcow//var/lib/images/vm.qcow2").store,
            StoreSpec::Tcmu {
                cfgstring: "qcow//var/lib/images/vm.qcow2".into(),
                size: None,
                handler_dir: None,
                queue_depth: None
            }
        );
        let s = ok("tcmu:rbd/pool/image;osd_op_timeout=30,size=1G,queue-depth=64,readonly");
        assert_eq!(
            s.store,
            StoreSpec::Tcmu {
                cfgstring: "rbd/pool/image;osd_op_timeout=30".into(),
                size: Some(1 << 30),
                handler_dir: None,
                queue_depth: Some(64)
            }
        );
        assert!(s.read_only);
        assert!(err("tcmu:qcow").contains("expected SUBTYPE/CONFIG"));
        assert!(err("tcmu:").contains("expected SUBTYPE/CONFIG"));
        assert!(err("tcmu:qcow/").contains("the qcow handler needs a configuration"));
        assert!(err("tcmu:../x/y").contains("invalid handler subtype \"..\""));
        assert!(err("tcmu:qcow//a,direct").contains("\"direct\" does not apply to tcmu stores"));
        assert!(err("tcmu:qcow//a,size=1000").contains("not a multiple"));
    }
}
