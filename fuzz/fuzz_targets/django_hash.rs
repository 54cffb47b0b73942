//! Fuzzes Django password-hash strings: the import check
//! (`custos::import::django::check_django_hash`) and verification
//! (`custos::auth::password::verify_password`, which takes the pbkdf2
//! path for Django hashes).
//!
//! Invariant: never panics; a string the import check refuses never
//! verifies; an accepted one has Django's four-part form. And for a hash
//! built from fuzzed salt and password (cheap iteration counts), the
//! password verifies and any other password does not.
#![no_main]

use base64::Engine;
use custos::auth::password::{verify_django_pbkdf2, verify_password};
use custos::import::django::check_django_hash;
use libfuzzer_sys::fuzz_target;

fn django_hash(password: &str, salt: &str, iterations: u32) -> String {
    let mut derived = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
        password.as_bytes(),
        salt.as_bytes(),
        iterations,
        &mut derived,
    );
    let hash = base64::engine::general_purpose::STANDARD.encode(derived);
    format!("pbkdf2_sha256${iterations}${salt}${hash}")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Split "stored\npassword" (a missing password is empty).
    let (stored, password) = text.split_once('\n').unwrap_or((text, ""));
    // Cheap to verify only: an accepted hash may ask for 10 million rounds.
    let iterations: Option<u32> = stored.split('$').nth(1).and_then(|n| n.parse().ok());
    let cheap = iterations.is_none_or(|n| n <= 2_000);
    match check_django_hash(stored) {
        Ok(()) => {
            if !stored.starts_with('!') {
                let parts: Vec<&str> = stored.split('$').collect();
                assert_eq!(parts.len(), 4, "{stored:?}");
                assert_eq!(parts[0], "pbkdf2_sha256");
            } else {
                // Unusable passwords never verify.
                assert!(!verify_password(stored, password));
            }
        }
        Err(reason) => {
            assert!(!reason.is_empty());
            if cheap {
                assert!(
                    !verify_django_pbkdf2(stored, password),
                    "{stored:?} refused yet verified"
                );
            }
        }
    }
    if cheap && stored.starts_with("pbkdf2_sha256$") {
        let _ = verify_password(stored, password);
    }
    // Round trip with a real hash of fuzzed parts.
    let salt: String = stored.chars().filter(|c| *c != '$').take(32).collect();
    if !salt.is_empty() {
        let rounds = 1 + u32::from(data[0] % 16);
        let built = django_hash(password, &salt, rounds);
        assert_eq!(check_django_hash(&built), Ok(()), "{built:?}");
        assert!(verify_password(&built, password), "{built:?}");
        let other = format!("{password}x");
        assert!(!verify_password(&built, &other));
    }
});
