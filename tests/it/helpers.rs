//! The test harness: `spawn_app`, test users, and the both-backends macro.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use custos::config::Settings;
use custos::db::models::Role;
use custos::db::{Database, DbConn};
use custos::server::Application;
use diesel::prelude::*;
use rand::RngCore;

pub const TEST_SECRET: &str = "test-secret-key-test-secret-key-test-secret-key-test-secret-key!";
pub const PASSWORD: &str = "violet-kettle-93-drum";

/// Which database a test runs against.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL server URL from `CUSTOS_TEST_POSTGRES_URL`, if given.
    pub fn postgres() -> Option<Backend> {
        std::env::var("CUSTOS_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .map(Backend::Postgres)
    }
}

/// Runs the test body once per available backend: `sqlite` always,
/// `postgres` when `CUSTOS_TEST_POSTGRES_URL` is set.
#[macro_export]
macro_rules! backend_tests {
    ($( $(#[$meta:meta])* async fn $name:ident($backend:ident) $body:block )*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let $backend = $crate::helpers::Backend::Sqlite;
                    $body
                }
                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some($backend) = $crate::helpers::Backend::postgres() else {
                        eprintln!("skipped: CUSTOS_TEST_POSTGRES_URL is not set");
                        return;
                    };
                    $body
                }
            }
        )*
    };
}

fn random_suffix() -> String {
    let mut b = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A fresh, empty database: a temporary SQLite file or a new PostgreSQL
/// database on the test server.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn new(backend: &Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = dir.path().join("custos.db").to_string_lossy().into_owned();
                TestDb {
                    url,
                    backend: backend.clone(),
                    _dir: Some(dir),
                }
            }
            Backend::Postgres(server) => {
                custos::db::init_tls_library();
                let name = format!("custos_test_{}", random_suffix());
                let mut admin =
                    PgConnection::establish(server).expect("connect to test PostgreSQL");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .expect("create test database");
                let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(server);
                TestDb {
                    url: format!("{base}/{name}"),
                    backend: backend.clone(),
                    _dir: None,
                }
            }
        }
    }

    /// The same database for a second app instance (the first keeps
    /// owning any temporary directory).
    pub fn shared(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            backend: self.backend.clone(),
            _dir: None,
        }
    }

    /// Environment for this database (config tests, CLI runs).
    pub fn env(&self) -> HashMap<String, String> {
        HashMap::from([
            ("DATABASE_URL".to_owned(), self.url.clone()),
            ("CUSTOS_SECRET_KEY".to_owned(), TEST_SECRET.to_owned()),
            ("CUSTOS_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ])
    }

    pub fn database(&self) -> Database {
        let settings = settings_from(&self.env());
        let db = Database::connect(&settings.database_url, 4).expect("connect");
        db.migrate().expect("migrate");
        db
    }

    /// Runs `custos` with this database and the given stdin.
    pub fn custos(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_custos(&self.env(), args, stdin)
    }
}

pub fn settings_from(env: &HashMap<String, String>) -> Settings {
    Settings::from_lookup(|k| env.get(k).cloned()).expect("valid test settings")
}

pub fn run_custos(env: &HashMap<String, String>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custos"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run custos");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("custos output")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running server on its own database.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub db: TestDb,
    pub database: Database,
    pub setup_token: Option<String>,
    pub env: HashMap<String, String>,
}

pub async fn spawn_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// Starts a server with extra environment settings.
pub async fn spawn_app_with(backend: &Backend, extra: &[(&str, &str)]) -> TestApp {
    let db = TestDb::new(backend);
    spawn_app_on(db, extra).await
}

/// Starts a server on an existing test database (e.g. a second instance).
pub async fn spawn_app_on(db: TestDb, extra: &[(&str, &str)]) -> TestApp {
    let mut env = db.env();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let settings = settings_from(&env);
    let database =
        Database::connect(&settings.database_url, settings.db_pool_size).expect("connect");
    database.migrate().expect("migrate");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let app = Application::build_with(settings, database.clone(), listener).expect("build app");
    let port = app.port();
    let setup_token = app.setup_token();
    tokio::spawn(app.run());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        db,
        database,
        setup_token,
        env,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A browser-like client: keeps cookies, does not follow redirects.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    /// Runs a closure with a database connection.
    pub async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConn) -> T + Send + 'static,
    ) -> T {
        let db = self.database.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.get().expect("connection");
            f(&mut conn)
        })
        .await
        .expect("db task")
    }

    /// Creates an account with the test password.
    pub async fn create_user(&self, username: &str, role: Role) -> i64 {
        let username = username.to_owned();
        self.with_db(move |conn| {
            let hash = custos::auth::password::hash_password(PASSWORD).expect("hash");
            custos::auth::users::create(conn, &username, &hash, role, false)
                .expect("create user")
                .id
        })
        .await
    }

    /// Fetches a CSRF token from a page's form.
    pub async fn csrf_from(&self, client: &reqwest::Client, path: &str) -> String {
        let body = client
            .get(self.url(path))
            .send()
            .await
            .expect("get form")
            .text()
            .await
            .expect("body");
        extract_csrf(&body).unwrap_or_else(|| panic!("no csrf token on {path}:\n{body}"))
    }

    /// Signs in through the login form; returns the response (a 303 on success).
    pub async fn login(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        self.login_next(client, username, password, "").await
    }

    pub async fn login_next(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
        next: &str,
    ) -> reqwest::Response {
        let token = self.csrf_from(client, "/login").await;
        client
            .post(self.url("/login"))
            .form(&[
                ("csrf_token", token.as_str()),
                ("username", username),
                ("password", password),
                ("next", next),
            ])
            .send()
            .await
            .expect("post login")
    }

    /// A signed-in client for a new account of the given role.
    pub async fn signed_in(&self, username: &str, role: Role) -> reqwest::Client {
        self.create_user(username, role).await;
        let client = self.client();
        let res = self.login(&client, username, PASSWORD).await;
        assert_eq!(res.status(), 303, "login of {username} failed");
        client
    }
}

pub fn extract_csrf(body: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = body.find(marker)? + marker.len();
    let end = body[start..].find('"')? + start;
    Some(body[start..end].to_owned())
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}
