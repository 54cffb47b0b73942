//! Fuzzes configuration values (`custos::config::Settings::from_lookup`)
//! with every variable Custos reads.
//!
//! The input is split on NUL bytes into one value per variable, in the
//! order of `VARIABLES` (missing ones are unset). `CUSTOS_SECRET_KEY` is
//! always set (to a fuzzed value when long enough) and the TLS files are
//! never, so the run touches no files. Invariant: never panics; a refusal
//! names the variable at fault; accepted settings are within their
//! documented ranges.
#![no_main]

use std::collections::HashMap;

use custos::config::Settings;
use libfuzzer_sys::fuzz_target;

const VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "CUSTOS_BIND",
    "CUSTOS_HTTP_REDIRECT_BIND",
    "CUSTOS_TRUSTED_PROXIES",
    "CUSTOS_API_USER_RATE",
    "CUSTOS_API_ANON_RATE",
    "CUSTOS_SESSION_IDLE_SECONDS",
    "CUSTOS_SESSION_ABSOLUTE_SECONDS",
    "CUSTOS_TOKEN_LIFETIME_DAYS",
    "CUSTOS_DB_POOL_SIZE",
    "CUSTOS_LOGIN_MAX_FAILURES",
    "CUSTOS_LOGIN_MAX_ADDRESS_FAILURES",
    "CUSTOS_LOGIN_WINDOW_SECONDS",
    "CUSTOS_AUDIT_RETENTION_DAYS",
    "CUSTOS_BURST_PER_SECOND",
    "CUSTOS_BURST_SIZE",
    "CUSTOS_SECRET_KEY",
];

const FALLBACK_SECRET: &str = "fuzz-secret-fuzz-secret-fuzz-secret-fuzz-secret";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut env: HashMap<&str, String> = HashMap::new();
    for (name, value) in VARIABLES.iter().zip(text.split('\0')) {
        env.insert(name, value.to_owned());
    }
    if env
        .get("CUSTOS_SECRET_KEY")
        .is_none_or(|k| k.trim().len() < 32)
    {
        env.insert("CUSTOS_SECRET_KEY", FALLBACK_SECRET.to_owned());
    }
    match Settings::from_lookup(|k| env.get(k).cloned()) {
        Ok(s) => {
            assert!(s.db_pool_size >= 1);
            assert!(s.api_user_rate.requests >= 1 && s.api_anon_rate.requests >= 1);
            assert!(s.burst_per_second >= 1 && s.burst_size >= 1);
            assert!(!s.session_idle_timeout.is_zero() && !s.session_absolute_timeout.is_zero());
            assert!(s.secret_key.len() >= 32);
            assert!(s.tls.is_none());
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                VARIABLES.iter().any(|v| message.contains(v)),
                "the error names no variable: {message}"
            );
        }
    }
});
