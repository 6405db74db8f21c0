//! `config`: the server's TOML configuration parser and the LUN, size and portal grammars it
//! shares with the command line (crates/ustgt/src/{config,lunspec,size}.rs, compiled into this
//! crate because the binary crate has no library target).
//!
//! Input: a selector byte, then UTF-8 text, or (selector [`sel::ACCESS`]) bytes from which a
//! configuration with access lists, CHAP credentials and limits is built. Checks: errors,
//! never panics; a parsed configuration is consistent (at least one portal and target, no
//! duplicate portal, target or LUN number, LUN numbers sorted and below the limit, every LUN
//! passes its own validation, every IQN is valid, and the access and limit checks of
//! [`crate::config_access`]); sizes and portals print back to what they parse from.

use crate::config::{parse, parse_portal, validate_iqn, MAX_LUNS};
use crate::lunspec::parse_lun_spec;
use crate::size::{format_size, parse_size};

/// Selector values (the first byte modulo 8): 0 to 3 parse a configuration file.
pub mod sel {
    /// A configuration file.
    pub const CONFIG: u8 = 0;
    /// Bytes from which a configuration with access lists, CHAP and limits is built.
    pub const ACCESS: u8 = 4;
    /// A LUNSPEC (`ram:1G,block-size=4096`).
    pub const LUNSPEC: u8 = 5;
    /// A size (`512M`).
    pub const SIZE: u8 = 6;
    /// A portal address and an IQN (the text split at the first newline).
    pub const PORTAL: u8 = 7;
}

/// Run one input.
pub fn run(data: &[u8]) {
    let Some((&s, rest)) = data.split_first() else {
        return;
    };
    if s % 8 == sel::ACCESS {
        crate::config_access::structured(rest);
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match s % 8 {
        sel::LUNSPEC => {
            if let Ok(spec) = parse_lun_spec(text) {
                assert_eq!(spec.validate(), Ok(()), "accepted LUNSPEC fails validation");
            }
        }
        sel::SIZE => {
            if let Ok(n) = parse_size(text) {
                assert_eq!(
                    parse_size(&format_size(n)),
                    Ok(n),
                    "size does not round-trip"
                );
            }
        }
        sel::PORTAL => {
            let (portal, iqn) = text.split_once('\n').unwrap_or((text, ""));
            if let Ok(addr) = parse_portal(portal) {
                assert_eq!(parse_portal(&addr.to_string()), Ok(addr));
            }
            let _ = validate_iqn(iqn);
        }
        _ => config(text),
    }
}

fn config(text: &str) {
    let Ok(cfg) = parse(text, "fuzz.toml") else {
        return;
    };
    assert!(!cfg.listen.is_empty(), "no portal");
    for (i, a) in cfg.listen.iter().enumerate() {
        assert!(!cfg.listen[..i].contains(a), "portal {a} twice");
    }
    assert!(!cfg.targets.is_empty(), "no target");
    for (i, t) in cfg.targets.iter().enumerate() {
        assert_eq!(validate_iqn(&t.iqn), Ok(()), "invalid IQN accepted");
        assert!(
            !cfg.targets[..i].iter().any(|o| o.iqn == t.iqn),
            "target {} twice",
            t.iqn
        );
        for w in t.luns.windows(2) {
            assert!(w[0].0 < w[1].0, "LUN numbers not sorted or repeated");
        }
        for (id, spec) in &t.luns {
            assert!(*id < MAX_LUNS, "LUN {id} over the limit");
            assert_eq!(spec.validate(), Ok(()), "accepted LUN fails validation");
        }
    }
    crate::config_access::check(&cfg);
}
