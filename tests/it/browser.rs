//! A real browser (headless Chromium through chromedriver): after logout,
//! neither Back nor a bookmark shows customer data, and logging in again
//! lands on the bookmarked results.
//!
//! Needs Debian's `chromium` and `chromium-driver` packages (CI installs
//! them). Screenshots go to `test-output/`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use custos::db::models::{Customer, Role};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::backend_tests;
use crate::fixtures::*;
use crate::helpers::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_browser() -> (Driver, Client) {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
        "the browser tests need {CHROMEDRIVER} and {CHROMIUM}: install the Debian packages \
         `chromium` and `chromium-driver` (apt-get install chromium chromium-driver)"
    );
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {CHROMEDRIVER} (Debian package chromium-driver): {e}")
        });
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver {
        child,
        port,
        _profile: profile,
    };
    let webdriver = format!("http://127.0.0.1:{}", driver.port);
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{webdriver}/status")).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--window-size=1280,900",
                format!("--user-data-dir={}", driver._profile.path().display()),
            ],
        }),
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&webdriver)
        .await
        .unwrap_or_else(|e| panic!("cannot open a Chromium session: {e}"));
    (driver, client)
}

fn output_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-output");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until the page's path (and query) satisfies `ok`.
async fn wait_for_url(c: &Client, what: &str, ok: impl Fn(&reqwest::Url) -> bool) -> reqwest::Url {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = c.current_url().await.unwrap();
        if ok(&url) {
            return url;
        }
        if Instant::now() >= deadline {
            let source = c.source().await.unwrap_or_default();
            panic!("waited for {what}, still at {url}:\n{source}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn path_and_query(url: &reqwest::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

async fn sign_in(c: &Client) {
    c.find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    c.find(Locator::Css("form[action='/login'] button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Asserts that no customer's name or e-mail is anywhere on the page.
async fn assert_no_customer_data(c: &Client, customers: &[Customer], when: &str) {
    let source = c.source().await.unwrap();
    for cu in customers {
        assert!(
            !source.contains(&cu.email),
            "{when}: customer {} ({}) is visible:\n{source}",
            cu.id,
            cu.email
        );
    }
    assert!(
        c.find(Locator::Css("table.results")).await.is_err(),
        "{when}: a results table is shown"
    );
}

backend_tests! {
    async fn after_logout_neither_back_nor_the_bookmark_shows_data_in_a_real_browser(backend) {
        let app = spawn_app(&backend).await;
        seed(&app, 300, 6).await;
        app.create_user("alice", Role::Staff).await;
        let customers = all_customers(&app).await;
        let bookmark = "/customers?status=active&ordering=-created_at";
        let mut expected: Vec<&Customer> = customers.iter().filter(|c| c.status == "active").collect();
        expected.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));

        let (_driver, c) = start_browser().await;
        let result = async {
            // Log in.
            c.goto(&app.url("/login")).await.unwrap();
            sign_in(&c).await;
            wait_for_url(&c, "the start page", |u| u.path() == "/").await;

            // Open the bookmarked results.
            c.goto(&app.url(bookmark)).await.unwrap();
            let url = wait_for_url(&c, "the results", |u| u.path() == "/customers").await;
            assert_eq!(path_and_query(&url), bookmark);
            let table = c.find(Locator::Css("table.results")).await.unwrap();
            let text = table.text().await.unwrap();
            assert!(text.contains(&expected[0].email), "the newest active customer is listed first");
            let png = c.screenshot().await.unwrap();
            std::fs::write(output_dir().join("results.png"), png).unwrap();

            // Log out with the button in the navigation.
            c.find(Locator::Css("form[action='/logout'] button")).await.unwrap().click().await.unwrap();
            wait_for_url(&c, "the login page after logout", |u| u.path() == "/login").await;
            assert_no_customer_data(&c, &customers, "after logout").await;

            // Back: the browser must not show the results again.
            c.back().await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let url = c.current_url().await.unwrap();
            assert_no_customer_data(&c, &customers, &format!("after Back (at {url})")).await;
            let png = c.screenshot().await.unwrap();
            std::fs::write(output_dir().join("after-back.png"), png).unwrap();

            // The bookmark again: the login page.
            c.goto(&app.url(bookmark)).await.unwrap();
            let url = wait_for_url(&c, "the login page", |u| u.path() == "/login").await;
            assert_no_customer_data(&c, &customers, "the bookmark while logged out").await;
            assert!(c.find(Locator::Id("password")).await.is_ok(), "a login form at {url}");

            // Log in: exactly the bookmarked results.
            sign_in(&c).await;
            let url = wait_for_url(&c, "the bookmark after login", |u| u.path() == "/customers").await;
            assert_eq!(path_and_query(&url), bookmark);
            let text = c.find(Locator::Css("table.results")).await.unwrap().text().await.unwrap();
            assert!(text.contains(&expected[0].email));

            // More screenshots, for a look at the other pages.
            for (name, path) in [
                ("customer.png", format!("/customers/{}", expected[0].id)),
                ("operators.png", "/operators".to_owned()),
                ("operator.png", "/operators/2".to_owned()),
                ("empty.png", "/customers?search=nobody-here&country=DE".to_owned()),
                ("bad-filter.png", "/customers?status=bogus".to_owned()),
                ("home.png", "/".to_owned()),
            ] {
                c.goto(&app.url(&path)).await.unwrap();
                let png = c.screenshot().await.unwrap();
                std::fs::write(output_dir().join(name), png).unwrap();
            }
        };
        // Close the browser even when an assertion failed.
        let outcome = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(result)).await;
        let _ = c.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}
