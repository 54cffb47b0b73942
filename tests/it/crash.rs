//! Crash safety: the real `custos` binary is killed with SIGKILL in the
//! middle of its work, and nothing acknowledged is lost and nothing half
//! done is left behind.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custos::db::DbConn;
use custos::db::schema::{api_requests, audit_log, customers, login_failures, sessions};
use diesel::prelude::*;

use crate::backend_tests;
use crate::helpers::*;

/// `PRAGMA integrity_check` of a SQLite file (opened after the kill, which
/// also replays the WAL as a restarted server would).
pub fn sqlite_integrity(path: &str) -> String {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        integrity_check: String,
    }
    let mut conn = SqliteConnection::establish(path).expect("open SQLite file");
    let rows: Vec<Row> = diesel::sql_query("PRAGMA integrity_check")
        .load(&mut conn)
        .expect("integrity_check");
    rows.into_iter()
        .map(|r| r.integrity_check)
        .collect::<Vec<_>>()
        .join("\n")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Bytes the process has read through `read(2)` so far (`rchar`).
fn bytes_read(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
}

/// Starts `custos serve` on a free port and waits until it answers.
async fn start_server(env: &HashMap<String, String>) -> (Child, String) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_custos"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .env("CUSTOS_BIND", format!("127.0.0.1:{port}"))
        .env("CUSTOS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start custos serve");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(res) = reqwest::get(format!("{base}/healthz")).await
            && res.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "custos serve did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, base)
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn login(base: &str, client: &reqwest::Client, user: &str, password: &str) -> Option<u16> {
    let page = client.get(format!("{base}/login")).send().await.ok()?;
    let csrf = extract_csrf(&page.text().await.ok()?)?;
    let res = client
        .post(format!("{base}/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("username", user),
            ("password", password),
            ("next", ""),
        ])
        .send()
        .await
        .ok()?;
    Some(res.status().as_u16())
}

async fn new_token(base: &str, client: &reqwest::Client) -> String {
    let page = client.get(format!("{base}/account")).send().await.unwrap();
    let csrf = extract_csrf(&page.text().await.unwrap()).unwrap();
    let body = client
        .post(format!("{base}/account/tokens"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "id=\"api-token\">";
    let start = body.find(marker).unwrap() + marker.len();
    let end = body[start..].find('<').unwrap() + start;
    body[start..end].trim().to_owned()
}

fn count_where_kind(conn: &mut DbConn, kind: &str) -> i64 {
    audit_log::table
        .filter(audit_log::kind.eq(kind))
        .count()
        .get_result(conn)
        .unwrap()
}

fn customer_ids(conn: &mut DbConn) -> Vec<i64> {
    customers::table
        .select(customers::id)
        .order(customers::id)
        .load(conn)
        .unwrap()
}

fn write_csv(path: &std::path::Path, header: &str, rows: impl Iterator<Item = String>) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "{header}").unwrap();
    for row in rows {
        writeln!(f, "{row}").unwrap();
    }
    f.flush().unwrap();
}

fn customer_row(id: u64) -> String {
    format!(
        "{id},{op},Customer {id},c{id}@example.com,+49 30 {id},Berlin,DE,{plan},{status},2024-05-01T12:30:00Z",
        op = id % 3 + 1,
        plan = ["basic", "plus", "pro"][(id % 3) as usize],
        status = ["active", "suspended", "closed"][(id % 3) as usize],
    )
}

backend_tests! {
    async fn an_import_killed_midway_leaves_the_customers_exactly_as_before(backend) {
        const BIG_ROWS: u64 = 200_000;
        let db = TestDb::new(&backend);
        let dir = tempfile::tempdir().unwrap();
        let operators = dir.path().join("operators.csv");
        write_csv(
            &operators,
            "id,name,country,support_email,created_at",
            (1..=3).map(|i| format!("{i},Operator {i},DE,support{i}@example.com,2024-01-01T00:00:00Z")),
        );
        let small = dir.path().join("small.csv");
        let header = "id,operator_id,full_name,email,phone,city,country,plan,status,created_at";
        write_csv(&small, header, (1..=100).map(customer_row));
        let big = dir.path().join("big.csv");
        write_csv(&big, header, (1001..1001 + BIG_ROWS).map(customer_row));
        let big_size = std::fs::metadata(&big).unwrap().len();
        for file in [&operators, &small] {
            let kind = if file == &operators { "operators" } else { "customers" };
            let out = db.custos(&["import", kind, file.to_str().unwrap()], None);
            assert!(out.status.success(), "{}", stderr(&out));
        }
        let database = db.database();
        let before = customer_ids(&mut database.get().unwrap());
        assert_eq!(before.len(), 100);

        // Start the big import and kill it once it has read half the file,
        // which it does inside its one write transaction.
        let mut child = Command::new(env!("CARGO_BIN_EXE_custos"))
            .args(["import", "customers", big.to_str().unwrap()])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(db.env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut killed_at = None;
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if let Some(read) = bytes_read(pid)
                && read > big_size / 2
            {
                killed_at = Some(read);
                child.kill().unwrap();
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let status = child.wait().unwrap();
        let read = killed_at.expect("the import ended before it could be killed midway");
        assert!(!status.success(), "the killed import reported success");
        eprintln!("killed after reading {read} of {big_size} bytes");

        if let Backend::Sqlite = backend {
            assert_eq!(sqlite_integrity(&db.url), "ok");
        }
        let after = customer_ids(&mut database.get().unwrap());
        assert!(
            after == before || after.len() as u64 == 100 + BIG_ROWS,
            "a killed import left {} customers (before: 100)",
            after.len()
        );
        // The database is usable: a small import works after the crash.
        let again = dir.path().join("again.csv");
        write_csv(&again, header, (500..=510).map(customer_row));
        let out = db.custos(&["import", "customers", again.to_str().unwrap()], None);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(customer_ids(&mut database.get().unwrap()).len(), after.len() + 11);
    }

    async fn a_server_killed_under_load_keeps_everything_it_acknowledged(backend) {
        let db = TestDb::new(&backend);
        let mut env = db.env();
        for (k, v) in [
            ("CUSTOS_API_USER_RATE", "1000000/day"),
            ("CUSTOS_LOGIN_MAX_FAILURES", "3"),
            ("CUSTOS_LOGIN_MAX_ADDRESS_FAILURES", "100000"),
            ("CUSTOS_LOGIN_WINDOW_SECONDS", "3600"),
            ("CUSTOS_BURST_PER_SECOND", "100000"),
            ("CUSTOS_BURST_SIZE", "100000"),
        ] {
            env.insert(k.to_owned(), v.to_owned());
        }
        let out = run_custos(&env, &["seed", "--customers", "200", "--operators", "3"], None);
        assert!(out.status.success(), "{}", stderr(&out));
        for user in ["alice", "mallory"] {
            let out = run_custos(&env, &["user", "create", "--username", user, "--password-stdin"], Some(PASSWORD));
            assert!(out.status.success(), "{}", stderr(&out));
        }
        let (mut server, base) = start_server(&env).await;
        let first = browser();
        assert_eq!(login(&base, &first, "alice", PASSWORD).await, Some(303));
        let token = new_token(&base, &first).await;
        assert_eq!(token.len(), 40);

        // Load: API calls with the token, logins right and wrong.
        let stop = Arc::new(AtomicBool::new(false));
        let api_ok = Arc::new(AtomicU64::new(0));
        let wrong_acked = Arc::new(AtomicU64::new(0));
        let sessions_acked: Arc<Mutex<Vec<reqwest::Client>>> = Arc::default();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (stop, api_ok, base, token) = (stop.clone(), api_ok.clone(), base.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let res = client
                        .get(format!("{base}/api/v1/customers/?page_size=5"))
                        .header("authorization", format!("Token {token}"))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == 200 => {
                            // Acknowledged only once the whole answer is in.
                            if r.bytes().await.is_ok() {
                                api_ok.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Ok(r) => panic!("API answered {}", r.status()),
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }));
        }
        {
            let (stop, base, sessions_acked) = (stop.clone(), base.clone(), sessions_acked.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let client = browser();
                    match login(&base, &client, "alice", PASSWORD).await {
                        Some(303) => sessions_acked.lock().unwrap().push(client),
                        Some(s) => panic!("a right login answered {s}"),
                        None => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }));
        }
        {
            let (stop, base, wrong_acked) = (stop.clone(), base.clone(), wrong_acked.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let client = browser();
                    match login(&base, &client, "mallory", "wrong-password-entirely").await {
                        Some(200) => {
                            wrong_acked.fetch_add(1, Ordering::SeqCst);
                        }
                        Some(s) => panic!("a wrong login answered {s}"),
                        None => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(4)).await;
        // Snapshot what was acknowledged, then kill while requests fly.
        let acked_api = api_ok.load(Ordering::SeqCst);
        let acked_sessions: Vec<reqwest::Client> = sessions_acked.lock().unwrap().clone();
        let acked_wrong = wrong_acked.load(Ordering::SeqCst);
        server.kill().unwrap();
        server.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        eprintln!(
            "acknowledged before the kill: {acked_api} API calls, {} logins, {acked_wrong} wrong logins",
            acked_sessions.len()
        );
        assert!(acked_api > 0 && !acked_sessions.is_empty() && acked_wrong >= 3, "too little load");

        if let Backend::Sqlite = backend {
            assert_eq!(sqlite_integrity(&db.url), "ok");
        }
        {
            let database = db.database();
            let mut conn = database.get().unwrap();
            let quota_rows: i64 = api_requests::table.count().get_result(&mut conn).unwrap();
            assert!(quota_rows >= acked_api as i64, "quota count {quota_rows} < {acked_api} answered");
            let api_audit = count_where_kind(&mut conn, "api_call");
            assert!(api_audit >= acked_api as i64, "{api_audit} api_call audit entries < {acked_api}");
            // The first login plus every acknowledged one.
            let login_audit = count_where_kind(&mut conn, "login_success");
            assert!(login_audit > acked_sessions.len() as i64, "{login_audit} login audit entries");
            assert!(count_where_kind(&mut conn, "token_created") >= 1);
            let failures: i64 = login_failures::table
                .filter(login_failures::username.eq("mallory"))
                .count()
                .get_result(&mut conn)
                .unwrap();
            assert!(failures >= 3, "{failures} failures of mallory kept");
            let signed_in: i64 = sessions::table
                .filter(sessions::user_id.is_not_null())
                .count()
                .get_result(&mut conn)
                .unwrap();
            assert!(signed_in > acked_sessions.len() as i64, "{signed_in} sessions kept");
        }

        // After a restart: sessions, the token, the lock all hold.
        let (mut server, base) = start_server(&env).await;
        for client in acked_sessions.iter().chain([&first]) {
            let res = client.get(format!("{base}/account")).send().await.unwrap();
            assert_eq!(res.status(), 200, "a session from before the crash was lost");
        }
        let res = reqwest::Client::new()
            .get(format!("{base}/api/v1/customers/"))
            .header("authorization", format!("Token {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "the token from before the crash was lost");
        let remaining: i64 = res.headers()["x-ratelimit-remaining"].to_str().unwrap().parse().unwrap();
        assert!(1_000_000 - remaining > acked_api as i64, "the quota forgot requests: {remaining} left");
        // mallory is still locked: even the right password is refused.
        assert_eq!(login(&base, &browser(), "mallory", PASSWORD).await, Some(200));
        server.kill().unwrap();
        server.wait().unwrap();
    }
}
