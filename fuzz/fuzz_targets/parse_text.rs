//! cargo-fuzz target `parse_text`: see `ustgt_fuzz::wire::parse_text_target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ustgt_fuzz::wire::parse_text_target(data));
