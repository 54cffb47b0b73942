//! Fuzzes the `Authorization` header parser of the API
//! (`custos::web::api::auth::parse_authorization`).
//!
//! Invariant: never panics; a header whose first word is not `Token` or
//! `Bearer` (any case) presents nothing; a key it extracts is non-empty
//! and holds no whitespace (the header had exactly two words).
#![no_main]

use custos::web::api::auth::{Presented, parse_authorization};
use libfuzzer_sys::fuzz_target;

fn is_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fuzz_target!(|data: &[u8]| {
    let presented = parse_authorization(Some(data));
    let words: Vec<&[u8]> = data.split(is_space).filter(|w| !w.is_empty()).collect();
    let keyword_ok = words
        .first()
        .is_some_and(|k| k.eq_ignore_ascii_case(b"token") || k.eq_ignore_ascii_case(b"bearer"));
    match presented {
        Presented::Nothing => assert!(!keyword_ok, "a Token/Bearer header was ignored"),
        Presented::Malformed(msg) => {
            assert!(keyword_ok);
            assert!(!msg.is_empty());
        }
        Presented::Key(key) => {
            assert!(keyword_ok && words.len() == 2);
            assert!(!key.is_empty());
            assert!(!key.bytes().any(|b| is_space(&b)));
            assert_eq!(key.as_bytes(), words[1]);
        }
    }
    assert!(matches!(parse_authorization(None), Presented::Nothing));
});
