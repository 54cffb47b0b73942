//! HTTPS with rustls, the redirect listener, certificate reload, and
//! trusting (only) configured proxies.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::*;
use custos::db::models::Role;
use custos::server::Application;

/// Makes a self-signed certificate for localhost/127.0.0.1 with openssl.
fn make_cert(dir: &Path, name: &str, key_type: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let newkey: Vec<&str> = match key_type {
        "rsa" => vec!["-newkey", "rsa:2048"],
        _ => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
    };
    let status = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "2"])
        .args(&newkey)
        .args([
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ])
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A server certificate, not a CA (webpki refuses CAs as end entities).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl (Debian package openssl) is needed for the TLS tests");
    assert!(status.success());
    (cert, key)
}

fn https_client(cert: &Path) -> reqwest::Client {
    let pem = std::fs::read(cert).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn spawn_tls(
    dir: &Path,
    cert: &Path,
    key: &Path,
    redirect: bool,
) -> (u16, Option<u16>, TestDb) {
    let db = TestDb::new(&Backend::Sqlite);
    let _ = dir;
    let mut env = db.env();
    env.insert("CUSTOS_TLS_CERT".into(), cert.to_string_lossy().into());
    env.insert("CUSTOS_TLS_KEY".into(), key.to_string_lossy().into());
    let settings = settings_from(&env);
    let database = db.database();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let redirect_listener = redirect.then(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let app =
        Application::build_with_redirect(settings, database, listener, redirect_listener).unwrap();
    let (port, rport) = (app.port(), app.redirect_port());
    tokio::spawn(app.run());
    (port, rport, db)
}

/// Runs `openssl s_client` with one protocol version; returns whether the
/// handshake succeeded and what it printed. Runs on the blocking pool: the
/// server under test shares this test's runtime.
async fn handshake(port: u16, version_flag: &'static str) -> (bool, String) {
    tokio::task::spawn_blocking(move || handshake_blocking(port, version_flag))
        .await
        .unwrap()
}

fn handshake_blocking(port: u16, version_flag: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            version_flag,
        ])
        // Let the client offer old versions at all; the server must refuse.
        .args(["-cipher", "DEFAULT:@SECLEVEL=0"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let ok =
        out.status.success() && text.contains("Cipher is") && !text.contains("Cipher is (NONE)");
    (ok, text)
}

#[tokio::test]
async fn https_serves_with_hsts_and_host_prefixed_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "localhost", "ec");
    let (port, _, db) = spawn_tls(dir.path(), &cert, &key, false).await;
    let client = https_client(&cert);
    let base = format!("https://localhost:{port}");
    let res = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );

    // Log in over HTTPS: the session cookie is __Host- prefixed and Secure.
    let database = db.database();
    let mut conn = database.get().unwrap();
    let hash = custos::auth::password::hash_password(PASSWORD).unwrap();
    custos::auth::users::create(&mut conn, "alice", &hash, Role::Staff, false).unwrap();
    let page = client.get(format!("{base}/login")).send().await.unwrap();
    let csrf_cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        csrf_cookie.starts_with("__Host-custos_csrf=") && csrf_cookie.contains("Secure"),
        "{csrf_cookie}"
    );
    let token = extract_csrf(&page.text().await.unwrap()).unwrap();
    let res = client
        .post(format!("{base}/login"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-custos_session="), "{cookie}");
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain"), "{cookie}");
}

#[tokio::test]
async fn only_tls_1_2_and_1_3_handshakes_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "localhost", "rsa");
    let (port, _, _db) = spawn_tls(dir.path(), &cert, &key, false).await;
    for old in ["-tls1", "-tls1_1"] {
        let (ok, text) = handshake(port, old).await;
        assert!(!ok, "{old} must be refused:\n{text}");
    }
    for new in ["-tls1_2", "-tls1_3"] {
        let (ok, text) = handshake(port, new).await;
        assert!(ok, "{new} must succeed:\n{text}");
    }
    // TLS 1.2 uses a forward-secret AEAD suite.
    let (_, text) = handshake(port, "-tls1_2").await;
    assert!(
        text.contains("ECDHE") && (text.contains("GCM") || text.contains("CHACHA20")),
        "{text}"
    );
    // HTTP/2 and HTTP/1.1 are both offered through ALPN.
    for (offer, expected) in [
        ("h2,http/1.1", "ALPN protocol: h2"),
        ("http/1.1", "ALPN protocol: http/1.1"),
    ] {
        let out = tokio::task::spawn_blocking(move || {
            Command::new("openssl")
                .args([
                    "s_client",
                    "-connect",
                    &format!("127.0.0.1:{port}"),
                    "-alpn",
                    offer,
                ])
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(expected), "{offer}: {text}");
    }
}

#[tokio::test]
async fn the_plain_http_listener_only_redirects_to_https() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "localhost", "ec");
    let (port, rport, _db) = spawn_tls(dir.path(), &cert, &key, true).await;
    let rport = rport.unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client
        .get(format!("http://localhost:{rport}/customers?status=active"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(
        location(&res),
        format!("https://localhost:{port}/customers?status=active")
    );
    assert!(res.headers().get("set-cookie").is_none());
}

#[test]
fn unreadable_or_mismatched_certificates_are_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _key) = make_cert(dir.path(), "one", "ec");
    let (_cert2, key2) = make_cert(dir.path(), "two", "ec");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let cases = [
        (
            dir.path().join("missing.crt"),
            key2.clone(),
            "missing.crt: cannot read the certificate",
        ),
        (
            garbage.clone(),
            key2.clone(),
            "garbage.pem: contains no PEM certificate",
        ),
        (
            cert.clone(),
            garbage.clone(),
            "garbage.pem: is not a PEM private key",
        ),
        (
            cert.clone(),
            key2.clone(),
            "two.key: does not match the certificate",
        ),
    ];
    for (c, k, expected) in cases {
        let files = custos::config::TlsFiles { cert: c, key: k };
        let err = custos::tls::load_certified_key(&files)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    }
}

fn served_subject(port: u16) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-showcerts",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.trim_start().starts_with("0 s:"))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_a_bad_file_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a) = make_cert(dir.path(), "first", "ec");
    let (cert_b, key_b) = make_cert(dir.path(), "second", "ec");
    let live_cert = dir.path().join("live.crt");
    let live_key = dir.path().join("live.key");
    std::fs::copy(&cert_a, &live_cert).unwrap();
    std::fs::copy(&key_a, &live_key).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let db = TestDb::new(&Backend::Sqlite);
    let mut env = db.env();
    env.insert("CUSTOS_BIND".into(), format!("127.0.0.1:{port}"));
    env.insert("CUSTOS_TLS_CERT".into(), live_cert.to_string_lossy().into());
    env.insert("CUSTOS_TLS_KEY".into(), live_key.to_string_lossy().into());
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_custos"))
        .arg("serve")
        .env_clear()
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let mut up = false;
    for _ in 0..100 {
        if served_subject(port).contains("first") {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "server did not come up with the first certificate");

    std::fs::copy(&cert_b, &live_cert).unwrap();
    std::fs::copy(&key_b, &live_key).unwrap();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    let mut swapped = false;
    for _ in 0..50 {
        if served_subject(port).contains("second") {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(swapped, "SIGHUP did not swap the certificate");

    std::fs::write(&live_cert, "broken").unwrap();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        served_subject(port).contains("second"),
        "a bad file must keep the old certificate"
    );
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(
        log.contains("certificate reload failed") && log.contains("live.crt"),
        "{log}"
    );
}

#[tokio::test]
async fn forwarded_headers_count_only_from_trusted_proxies() {
    // Trusted: X-Forwarded-Proto https makes the response HTTPS-only.
    let trusted =
        spawn_app_with(&Backend::Sqlite, &[("CUSTOS_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let client = reqwest::Client::new();
    let res = client
        .get(trusted.url("/login"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("strict-transport-security").is_some());
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("__Host-custos_csrf=") && cookie.contains("Secure"),
        "{cookie}"
    );

    // Untrusted: the same headers are ignored.
    let untrusted = spawn_app(&Backend::Sqlite).await;
    let res = client
        .get(untrusted.url("/login"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("strict-transport-security").is_none());
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("custos_csrf=") && !cookie.contains("Secure"),
        "{cookie}"
    );
}

#[test]
fn the_resolved_client_is_the_rightmost_untrusted_hop() {
    use actix_web::test::TestRequest;
    let mut env = TestDb::new(&Backend::Sqlite).env();
    env.insert(
        "CUSTOS_TRUSTED_PROXIES".into(),
        "127.0.0.1,10.0.0.0/8".into(),
    );
    let settings = settings_from(&env);
    let req = TestRequest::default()
        .peer_addr("127.0.0.1:5000".parse().unwrap())
        .insert_header(("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1"))
        .to_srv_request();
    let (ip, _) = custos::web::middleware::resolve_client(&settings, &req);
    assert_eq!(ip.to_string(), "198.51.100.7");
    let untrusted = TestRequest::default()
        .peer_addr("192.0.2.1:5000".parse().unwrap())
        .insert_header(("x-forwarded-for", "6.6.6.6"))
        .to_srv_request();
    let (ip, https) = custos::web::middleware::resolve_client(&settings, &untrusted);
    assert_eq!(ip.to_string(), "192.0.2.1");
    assert!(!https);
}
