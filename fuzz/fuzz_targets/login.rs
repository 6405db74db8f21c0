//! cargo-fuzz target `login`: see `ustgt_fuzz::login::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ustgt_fuzz::login::run(data));
