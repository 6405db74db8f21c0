//! Fuzz harnesses of ustgt, one function per cargo-fuzz target (`fuzz_targets/*.rs` are
//! one-line wrappers), so that the same code can also replay inputs without libFuzzer
//! (`tests/replay.rs`).
//!
//! | target | harness | what it drives |
//! | --- | --- | --- |
//! | `decode_pdu` | [`wire::decode_pdu`] | iscsi-wire `Decoder` on fragmented bytes |
//! | `parse_text` | [`wire::parse_text_target`] | iscsi-wire `key=value` parser |
//! | `login` | [`login::run`] | iscsi-proto login with `NoAuth` or CHAP |
//! | `session` | [`session::run`] | iscsi-proto full feature phase |
//! | `cdb` | [`cdb::run`] | scsi-core `LunTable` with RAM / null stores |
//! | `config` | [`toml_config::run`] | ustgt's TOML config, LUNSPEC, size, portal |

pub mod cdb;
pub mod config_access;
pub mod driver;
pub mod input;
pub mod login;
pub mod outputs;
pub mod session;
pub mod session_writes;
pub mod toml_config;
pub mod wire;

// The configuration modules of the ustgt binary, compiled here as they are (they refer to
// each other as `crate::acl`, `crate::auth`, `crate::config`, `crate::limits`,
// `crate::lunspec`, `crate::size` and `crate::stores`).
#[allow(dead_code, clippy::all)]
#[path = "../../crates/ustgt/src/acl.rs"]
mod acl;
#[allow(dead_code, clippy::all)]
#[path = "../../crates/ustgt/src/auth.rs"]
mod auth;
#[allow(dead_code, clippy::all)]
#[path = "../../crates/ustgt/src/config.rs"]
mod config;
#[allow(dead_code, clippy::all)]
#[path = "../../crates/ustgt/src/limits.rs"]
mod limits;
#[allow(dead_code, clippy::all)]
#[path = "../../crates/ustgt/src/lunspec.rs"]
mod lunspec;
#[allow(dead_code, clippy::all)]
#[path = "../../crates/ustgt/src/size.rs"]
mod size;
#[allow(dead_code, clippy::all)]
#[path = "../../crates/ustgt/src/stores.rs"]
mod stores;

/// A harness: runs one input, panics on a failed check.
pub type Harness = fn(&[u8]);

/// Every target, by name, as `fuzz_targets/<name>.rs` runs it.
pub const TARGETS: &[(&str, Harness)] = &[
    ("decode_pdu", wire::decode_pdu),
    ("parse_text", wire::parse_text_target),
    ("login", login::run),
    ("session", session::run),
    ("cdb", cdb::run),
    ("config", toml_config::run),
];
