//! cargo-fuzz target `session`: see `ustgt_fuzz::session::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ustgt_fuzz::session::run(data));
