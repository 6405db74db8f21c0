//! cargo-fuzz target `config`: see `ustgt_fuzz::toml_config::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ustgt_fuzz::toml_config::run(data));
