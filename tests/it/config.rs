//! Configuration: every bad value stops the program with a message naming
//! the variable, and the generated secret is private.

use std::collections::HashMap;

use crate::helpers::*;
use custos::config::Settings;

fn settings(vars: &[(&str, &str)]) -> Result<Settings, custos::config::ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn bad_values_name_the_variable_and_the_expected_form() {
    let key = ("CUSTOS_SECRET_KEY", TEST_SECRET);
    let cases = [
        ("CUSTOS_BIND", "localhost", "IP:PORT"),
        ("CUSTOS_API_USER_RATE", "lots", "N/second|minute|hour|day"),
        ("CUSTOS_API_ANON_RATE", "5/fortnight", "not a period"),
        ("CUSTOS_TRUSTED_PROXIES", "10.0.0.0/99", "invalid prefix"),
        ("CUSTOS_SESSION_IDLE_SECONDS", "-1", "whole number"),
        ("DATABASE_URL", "mysql://x", "unsupported scheme"),
        ("CUSTOS_SECRET_KEY", "short", "too short"),
        ("CUSTOS_TLS_CERT", "/tmp/cert.pem", "CUSTOS_TLS_KEY"),
    ];
    for (var, value, expected) in cases {
        let err = settings(&[key, ("DATABASE_URL", "/tmp/x.db"), (var, value)]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(expected), "{var}={value}: {text}");
    }
    let err = settings(&[("DATABASE_URL", "postgres://u@h/db")]).unwrap_err();
    assert_eq!(err.variable, "CUSTOS_SECRET_KEY");
}

#[test]
fn the_binary_reports_config_errors_without_panicking() {
    let env = HashMap::from([
        ("DATABASE_URL".to_string(), "/tmp/never.db".to_string()),
        ("CUSTOS_SECRET_KEY".to_string(), TEST_SECRET.to_string()),
        (
            "CUSTOS_API_USER_RATE".to_string(),
            "200/fortnight".to_string(),
        ),
    ]);
    let out = run_custos(&env, &["migrate"], None);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("CUSTOS_API_USER_RATE"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn defaults_match_the_brief() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let s = settings(&[("DATABASE_URL", db.to_str().unwrap())]).unwrap();
    assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(s.api_user_rate.to_string(), "200/day");
    assert_eq!(s.api_anon_rate.to_string(), "60/minute");
    assert_eq!(s.session_idle_timeout.as_secs(), 1800);
    assert_eq!(s.session_absolute_timeout.as_secs(), 12 * 3600);
    assert!(!format!("{s:?}").contains(&String::from_utf8_lossy(&s.secret_key).to_string()));
}

#[test]
fn a_generated_secret_is_kept_in_a_private_file_and_reused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let first = settings(&[("DATABASE_URL", db.to_str().unwrap())]).unwrap();
    let file = dir.path().join("custos.secret");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(first.secret_key.len(), 64);
    let second = settings(&[("DATABASE_URL", db.to_str().unwrap())]).unwrap();
    assert_eq!(first.secret_key, second.secret_key);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = settings(&[("DATABASE_URL", db.to_str().unwrap())]).unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn serve_refuses_plain_http_on_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        (
            "DATABASE_URL".to_string(),
            dir.path().join("c.db").to_string_lossy().into_owned(),
        ),
        ("CUSTOS_SECRET_KEY".to_string(), TEST_SECRET.to_string()),
        ("CUSTOS_BIND".to_string(), "0.0.0.0:0".to_string()),
    ]);
    let out = run_custos(&env, &["serve"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--insecure-http"), "{}", stderr(&out));
}
