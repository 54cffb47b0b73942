//! Fuzzes the post-login redirect check (`custos::web::pages::safe_next`).
//!
//! Invariant: never panics, and never accepts a non-local target: an
//! accepted `next` is returned unchanged, and resolved against
//! `https://custos.example/login` by a WHATWG URL parser, as it is or
//! after up to three rounds of percent-decoding (what a browser or a
//! proxy might do), it stays on `https://custos.example`.
#![no_main]

use custos::web::pages::safe_next;
use libfuzzer_sys::fuzz_target;
use url::Url;

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1..i + 3].iter().all(u8::is_ascii_hexdigit)
        {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let Ok(next) = std::str::from_utf8(data) else {
        return;
    };
    let Some(accepted) = safe_next(next) else {
        return;
    };
    assert_eq!(accepted, next, "safe_next must not rewrite its input");
    assert!(next.starts_with('/') && !next.starts_with("//"), "{next:?}");
    let base = Url::parse("https://custos.example/login").expect("base URL");
    let mut current = next.to_owned();
    for _ in 0..4 {
        if let Ok(target) = base.join(&current) {
            assert_eq!(target.scheme(), "https", "{next:?} -> {target}");
            assert_eq!(
                target.host_str(),
                Some("custos.example"),
                "{next:?} -> {target}"
            );
            assert_eq!(target.port(), None, "{next:?} -> {target}");
            assert!(
                target.username().is_empty() && target.password().is_none(),
                "{next:?}"
            );
        }
        let decoded = percent_decode(&current);
        if decoded == current {
            break;
        }
        current = decoded;
    }
});
