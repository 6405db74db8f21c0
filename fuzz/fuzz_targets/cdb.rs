//! cargo-fuzz target `cdb`: see `ustgt_fuzz::cdb::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ustgt_fuzz::cdb::run(data));
