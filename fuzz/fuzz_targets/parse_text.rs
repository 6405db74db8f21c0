//! Arbitrary bytes -> parse_text; what parses must round-trip through encode_text.
#![no_main]

use iscsi_wire::{encode_text, parse_text, MAX_KEY_LEN, MAX_VALUE_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pairs) = parse_text(data) else { return };
    for (k, v) in &pairs {
        assert!(!k.is_empty() && k.len() <= MAX_KEY_LEN);
        assert!(v.len() <= MAX_VALUE_LEN);
        assert!(!k.contains(['=', '\0']) && !v.contains('\0'));
    }
    let encoded = encode_text(&pairs);
    assert_eq!(parse_text(&encoded).as_ref(), Ok(&pairs));
});
