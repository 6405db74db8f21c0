//! The command-line LUN grammar.
//!
//! ```text
//! ram:SIZE[,OPT...]
//! file:PATH[,size=SIZE][,OPT...]
//! OPT := block-size=512|4096 | readonly[=on|off] | wce=on|off | serial=STR
//! ```
//!
//! Parts are separated by commas, so a path cannot contain one. New store kinds add a variant to
//! [`StoreSpec`] and an arm to [`parse_store`]; new options add an arm to
//! [`LunSpec::apply_common`] (all kinds) or to their kind's parser.

use std::path::PathBuf;

use crate::size::parse_size;

/// Which store backs a LUN, and its kind-specific settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// Anonymous memory of `size` bytes.
    Ram { size: u64 },
    /// A regular file or block device; `size` creates or grows a file.
    File { path: PathBuf, size: Option<u64> },
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
    /// Unit serial number (VPD page 80h); generated when absent.
    pub serial: Option<String>,
}

/// Default logical block size.
pub const DEFAULT_BLOCK_SIZE: u32 = 512;

/// Longest serial number accepted.
pub const MAX_SERIAL_LEN: usize = 64;

impl LunSpec {
    /// A LUN over `store` with default options.
    pub fn new(store: StoreSpec) -> LunSpec {
        LunSpec {
            store,
            block_size: DEFAULT_BLOCK_SIZE,
            read_only: false,
            write_cache: true,
            serial: None,
        }
    }

    /// Checks settings that depend on each other: sizes must be non-zero multiples of the
    /// block size.
    pub fn validate(&self) -> Result<(), String> {
        let size = match self.store {
            StoreSpec::Ram { size } => Some(size),
            StoreSpec::File { size, .. } => size,
        };
        match size {
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
            "serial" => self.serial = Some(check_serial(required(key, value)?)?),
            _ => return Ok(false),
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

/// Builds the store part from the kind, its argument and the options; kind-specific options are
/// removed from `options`, the rest are left for [`LunSpec::apply_common`].
fn parse_store<'a>(
    kind: &str,
    arg: &'a str,
    options: &mut Vec<(&'a str, Option<&'a str>)>,
) -> Result<StoreSpec, String> {
    let mut size_opt = None;
    let mut i = 0;
    while i < options.len() {
        if options[i].0 == "size" {
            let (key, value) = options.remove(i);
            if size_opt.is_some() {
                return Err("option \"size\" given twice".into());
            }
            size_opt = Some(
                parse_size(required(key, value)?).map_err(|e| format!("option \"size\": {e}"))?,
            );
        } else {
            i += 1;
        }
    }
    match kind {
        "ram" => {
            let size = match (arg.trim(), size_opt) {
                ("", Some(size)) => size,
                ("", None) => return Err("ram: a size is required (e.g. ram:1G)".into()),
                (_, Some(_)) => return Err("ram: size given twice".into()),
                (text, None) => parse_size(text).map_err(|e| format!("ram: {e}"))?,
            };
            Ok(StoreSpec::Ram { size })
        }
        "file" => {
            if arg.is_empty() {
                return Err("file: a path is required (e.g. file:/srv/disk.img,size=1G)".into());
            }
            Ok(StoreSpec::File {
                path: PathBuf::from(arg),
                size: size_opt,
            })
        }
        other => Err(format!(
            "unknown store kind \"{other}\" (expected ram or file)"
        )),
    }
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
                "invalid LUN \"{text}\": unknown option \"{key}\" (expected size, block-size, readonly, wce or serial)"
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
                size: None
            }
        );
        let s = ok("file:/srv/b.img,size=10G,readonly");
        assert_eq!(
            s.store,
            StoreSpec::File {
                path: "/srv/b.img".into(),
                size: Some(10 << 30)
            }
        );
        assert!(s.read_only);
        assert_eq!(
            ok("file:rel/c:d.img").store,
            StoreSpec::File {
                path: "rel/c:d.img".into(),
                size: None
            }
        );
    }

    #[test]
    fn kind_errors() {
        assert!(err("rm:1G").contains("unknown store kind \"rm\" (expected ram or file)"));
        assert!(err("1G").contains("expected KIND:ARG"));
        assert!(err("").contains("expected KIND:ARG"));
        assert!(err("ram:").contains("ram: a size is required"));
        assert!(err("ram:1G,size=2G").contains("size given twice"));
        assert!(err("file:").contains("a path is required"));
        assert!(err("file:/a,size=1G,size=2G").contains("\"size\" given twice"));
    }

    #[test]
    fn value_errors_name_the_part() {
        assert!(err("ram:1Q").contains("unknown unit \"Q\""));
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
    fn from_str_works() {
        let s: LunSpec = "ram:1M".parse().expect("parse");
        assert_eq!(s.store, StoreSpec::Ram { size: 1 << 20 });
    }
}
