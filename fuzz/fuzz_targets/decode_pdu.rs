//! cargo-fuzz target `decode_pdu`: see `ustgt_fuzz::wire::decode_pdu`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ustgt_fuzz::wire::decode_pdu(data));
