//! An SQL-injection scan of the customer list with sqlmap (Debian package
//! `sqlmap`, installed by CI): every query parameter, with a valid token,
//! bounded in time. It must find nothing injectable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::api_support::*;
use crate::backend_tests;
use crate::helpers::*;

const SQLMAP: &str = "/usr/bin/sqlmap";
/// Hard limit on one scan.
const SCAN_LIMIT: Duration = Duration::from_secs(180);
const TARGET: &str = "/api/v1/customers/?search=a&status=active&ordering=id&country=DE&page=1";

/// Runs sqlmap against `url`; returns its combined output.
fn scan(url: &str, token: &str, work: &Path) -> String {
    assert!(
        Path::new(SQLMAP).exists(),
        "sqlmap is not installed at {SQLMAP}: install the Debian package `sqlmap` \
         (CI's .ci/run does) to run the SQL-injection scan"
    );
    let log = work.join("sqlmap.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(SQLMAP)
        .args([
            "-u",
            url,
            &format!("--headers=Authorization: Token {token}"),
            "--batch",
            "--level",
            "2",
            "--risk",
            "1",
            "--time-sec",
            "2",
            "--timeout",
            "5",
            "--retries",
            "1",
            "--smart",
            "--disable-coloring",
            "--flush-session",
            "--output-dir",
        ])
        .arg(work.join("out"))
        .env("HOME", work)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start sqlmap");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                status.success() || output.contains("do not appear to be injectable"),
                "sqlmap failed ({status}):\n{output}"
            );
            return output;
        }
        if started.elapsed() > SCAN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("sqlmap did not finish within {SCAN_LIMIT:?}:\n{output}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

backend_tests! {
    async fn sqlmap_finds_no_injectable_parameter_in_the_customer_list(backend) {
        let app = spawn_app_with(&backend, GENEROUS).await;
        load_data(&app).await;
        let (_, token) = user_with_token(&app, "scanner").await;
        // The scan needs a working starting point.
        assert_eq!(api_get(&app, &token, TARGET).await.status, 200);
        let url = app.url(TARGET);
        let work = tempfile::tempdir().unwrap();
        let work_path = work.path().to_owned();
        let output = tokio::task::spawn_blocking(move || scan(&url, &token, &work_path))
            .await
            .unwrap();
        eprintln!("{output}");
        let lower = output.to_lowercase();
        assert!(!lower.contains("identified the following injection point"), "{output}");
        assert!(!lower.contains("is vulnerable"), "{output}");
        assert!(!lower.contains("appears to be injectable"), "{output}");
        assert!(lower.contains("do not appear to be injectable"), "no verdict from sqlmap:\n{output}");
        for param in ["search", "status", "ordering", "country", "page"] {
            assert!(
                output.contains(&format!("parameter '{param}'")),
                "sqlmap did not test {param}:\n{output}"
            );
        }
        // Nothing the scan sent caused a server error.
        assert!(!output.contains("500 (Internal Server Error)"), "{output}");
        let audited = app
            .with_db(|conn| {
                use custos::db::schema::audit_log;
                use diesel::prelude::*;
                audit_log::table
                    .filter(audit_log::kind.eq("api_call"))
                    .count()
                    .get_result::<i64>(conn)
                    .unwrap()
            })
            .await;
        assert!(audited > 10, "the scan reached the API ({audited} audited calls)");
    }
}
