//! Database faults: PostgreSQL going away under load (through a TCP proxy
//! the test cuts and restores, so the shared server keeps running), and a
//! SQLite file that cannot be written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use custos::db::models::Role;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::*;

/// A TCP proxy to PostgreSQL that can be cut (every open connection is
/// dropped and new ones are closed at once) and restored.
struct Proxy {
    port: u16,
    up: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, _) = watch::channel(true);
        let up_rx = up.subscribe();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut rx = up_rx.clone();
                if !*rx.borrow() {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy { port, up }
    }

    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn restore(&self) {
        self.up.send_replace(true);
    }
}

/// `postgres://user@host:port/db` -> (`host:port`, the URL through `port`).
fn through_proxy(url: &str, proxy_port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth_host, path) = rest.split_once('/').unwrap();
    let (user, host) = match auth_host.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), auth_host),
    };
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    (
        host,
        format!("{scheme}://{user}127.0.0.1:{proxy_port}/{path}"),
    )
}

/// What one request got: status, body, and how long it took.
async fn probe(req: reqwest::RequestBuilder) -> (u16, String, Duration) {
    let started = Instant::now();
    let res = req.send().await.expect("the request was answered");
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = res.text().await.unwrap_or_default();
    (status, format!("{ct}\n{body}"), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_going_away_under_load_gives_fast_503s_and_service_comes_back_by_itself() {
    let Some(backend) = Backend::postgres() else {
        eprintln!("skipped: CUSTOS_TEST_POSTGRES_URL is not set");
        return;
    };
    let direct = TestDb::new(&backend);
    // Migrate directly, then run the app through the proxy.
    drop(direct.database());
    let (target, _) = through_proxy(&direct.url, 0);
    let proxy = Proxy::start(target).await;
    let (_, proxied_url) = through_proxy(&direct.url, proxy.port);
    let mut db = direct.shared();
    db.url = proxied_url;
    let app = spawn_app_on(db, &[("CUSTOS_BURST_SIZE", "10000")]).await;
    let client = app.signed_in("alice", Role::Staff).await;
    let user_id = app
        .with_db(|conn| {
            custos::auth::users::find_by_username(conn, "alice")
                .unwrap()
                .unwrap()
                .id
        })
        .await;
    let token = custos::auth::tokens::generate_token();
    let secret = token.clone();
    app.with_db(move |conn| {
        custos::auth::tokens::store_token(conn, user_id, &secret, None).unwrap()
    })
    .await;
    let api = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let api_get = |path: &str| {
        api.get(app.url(path))
            .header("authorization", format!("Token {token}"))
    };
    assert_eq!(probe(api_get("/api/v1/customers/")).await.0, 200);
    assert_eq!(probe(client.get(app.url("/customers"))).await.0, 200);

    proxy.cut();
    // A burst of requests of every kind while the database is away.
    let mut waves = Vec::new();
    for i in 0..24 {
        let req = match i % 4 {
            0 => api_get("/api/v1/customers/?search=a"),
            1 => api_get("/api/v1/operators/1/"),
            2 => client.get(app.url("/customers?status=active")),
            _ => client.get(app.url("/account")),
        };
        waves.push(tokio::spawn(probe(req)));
    }
    waves.push(tokio::spawn(probe(api.get(app.url("/healthz")))));
    // The sign-in form needs no database; signing in does.
    let anonymous = app.client();
    let form = anonymous.get(app.url("/login")).send().await.unwrap();
    assert!(matches!(form.status().as_u16(), 200 | 503));
    if let Some(csrf) = extract_csrf(&form.text().await.unwrap()) {
        let sign_in = anonymous.post(app.url("/login")).form(&[
            ("csrf_token", csrf.as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ]);
        waves.push(tokio::spawn(probe(sign_in)));
    }
    for (i, wave) in waves.into_iter().enumerate() {
        let (status, body, took) = wave.await.unwrap();
        assert_eq!(
            status, 503,
            "request {i} while the database is away:\n{body}"
        );
        // Fail fast: the pool's connection timeout is a few seconds.
        assert!(took < Duration::from_secs(20), "request {i} took {took:?}");
        assert!(
            !body.contains("diesel")
                && !body.contains("postgres")
                && !body.contains("connection to server"),
            "{body}"
        );
        if body.starts_with("application/json") {
            let json: serde_json::Value =
                serde_json::from_str(body.split_once('\n').unwrap().1).unwrap();
            assert!(
                json.get("detail").is_some() || json.get("status").is_some(),
                "{body}"
            );
        } else {
            assert!(
                body.starts_with("text/html") && body.contains("Temporarily unavailable"),
                "{body}"
            );
        }
    }

    proxy.restore();
    // Back by itself, without a restart.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (api_status, _, _) = probe(api_get("/api/v1/customers/")).await;
        let (page_status, _, _) = probe(client.get(app.url("/customers"))).await;
        if api_status == 200 && page_status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not recovered: API {api_status}, page {page_status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every pooled connection works again.
    let many: Vec<_> = (0..20)
        .map(|_| tokio::spawn(probe(api_get("/api/v1/customers/?page_size=1"))))
        .collect();
    for r in many {
        assert_eq!(r.await.unwrap().0, 200);
    }
    let _keep = Arc::new(proxy);
}

/// Runs `custos` as a user who may read but not write the database (as
/// `nobody` through `setpriv` when the tests run as root, who may write
/// anything).
fn custos_read_only(
    env: &std::collections::HashMap<String, String>,
    args: &[&str],
) -> std::process::Output {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut cmd = if root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_custos"));
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_custos"))
    };
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run custos")
}

#[test]
fn a_read_only_sqlite_file_gives_a_clear_error_and_is_not_damaged() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new(&Backend::Sqlite);
    let out = db.custos(&["seed", "--customers", "50", "--operators", "2"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = std::path::Path::new(&db.url).parent().unwrap().to_owned();
    let csv = dir.join("more.csv");
    std::fs::write(
        &csv,
        "id,operator_id,full_name,email,phone,city,country,plan,status,created_at\n\
         9001,1,New Person,new@example.com,,Berlin,DE,basic,active,2024-05-01T12:30:00Z\n",
    )
    .unwrap();
    let mode = |path: &std::path::Path, m: u32| {
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap();
        }
    };
    mode(&csv, 0o444);
    for suffix in ["", "-wal", "-shm"] {
        mode(std::path::Path::new(&format!("{}{suffix}", db.url)), 0o444);
    }
    mode(&dir, 0o555);

    let env = db.env();
    for args in [
        vec!["import", "customers", csv.to_str().unwrap()],
        vec!["migrate"],
        vec!["serve"],
    ] {
        let out = custos_read_only(&env, &args);
        let err = stderr(&out);
        eprintln!("{args:?}: {}", err.trim());
        assert!(
            !out.status.success(),
            "{args:?} succeeded on a read-only database"
        );
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("database") || err.contains("read-only") || err.contains("readonly"),
            "{args:?} did not say what is wrong: {err}"
        );
    }

    mode(&dir, 0o755);
    for suffix in ["", "-wal", "-shm"] {
        mode(std::path::Path::new(&format!("{}{suffix}", db.url)), 0o644);
    }
    assert_eq!(crate::crash::sqlite_integrity(&db.url), "ok");
    let mut conn = db.database().get().unwrap();
    use diesel::prelude::*;
    let count: i64 = custos::db::schema::customers::table
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(count, 50);
}
