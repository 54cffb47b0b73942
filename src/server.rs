//! Building and running the HTTP server.
//!
//! `Application::build` binds the listener (port 0 works, for tests) and
//! prepares everything; `run` serves until SIGTERM/SIGINT, then drains.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_session::SessionMiddleware;
use actix_session::config::{BrowserSession, TtlExtensionPolicy};
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::Server;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web};

use crate::auth::password::PasswordWork;
use crate::auth::session_store::DbSessionStore;
use crate::auth::users;
use crate::config::Settings;
use crate::db::{Database, DbError};
use crate::web::error::{ApiError, PageError};
use crate::web::{AppState, configure, middleware};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

/// Name of the session cookie (`__Host-` over HTTPS, which also pins it
/// to this host and path `/`).
pub fn session_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-custos_session"
    } else {
        "custos_session"
    }
}

impl Application {
    /// Opens the database, migrates it, binds the listener.
    pub fn build(settings: Settings) -> Result<Self, StartError> {
        let db = Database::connect(&settings.database_url, settings.db_pool_size)?;
        db.migrate()?;
        let listener = TcpListener::bind(settings.bind).map_err(|source| StartError::Bind {
            addr: settings.bind,
            source,
        })?;
        Self::build_with(settings, db, listener)
    }

    pub fn build_with(
        settings: Settings,
        db: Database,
        listener: TcpListener,
    ) -> Result<Self, StartError> {
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: settings.bind,
                source,
            })?
            .port();
        let user_count = db
            .get()
            .map_err(DbError::from)
            .and_then(|mut c| users::count_users(&mut c).map_err(DbError::from))?;
        let setup_token = (user_count == 0).then(crate::auth::csrf::new_token);
        if let Some(token) = &setup_token {
            let scheme = if settings.serves_https() {
                "https"
            } else {
                "http"
            };
            let host = if settings.bind.ip().is_unspecified() {
                format!("127.0.0.1:{port}")
            } else {
                format!("{}:{port}", settings.bind.ip())
            };
            // Printed on stdout (not only the log) so the operator sees it.
            println!(
                "No account exists yet. Create the first administrator at:\n  {scheme}://{host}/setup?token={token}"
            );
        }
        let settings = Arc::new(settings);
        let state = web::Data::new(AppState {
            db: db.clone(),
            passwords: PasswordWork::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            settings: settings.clone(),
            setup_token: Mutex::new(setup_token),
        });
        // Derived once, shared by every worker: sessions signed by one are
        // valid on all (and on other instances with the same secret).
        let key = Key::derive_from(&settings.secret_key);
        let https_cookies = settings.serves_https() || !settings.trusted_proxies.is_empty();
        let idle = actix_web::cookie::time::Duration::seconds(
            settings.session_idle_timeout.as_secs() as i64,
        );
        let app_state = state.clone();
        let settings_data = web::Data::new(settings.clone());
        let server = HttpServer::new(move || {
            let session = SessionMiddleware::builder(DbSessionStore::new(db.clone()), key.clone())
                .cookie_name(session_cookie_name(https_cookies).to_owned())
                .cookie_secure(https_cookies)
                .cookie_http_only(true)
                .cookie_same_site(SameSite::Lax)
                .cookie_path("/".into())
                .session_lifecycle(
                    BrowserSession::default()
                        .state_ttl(idle)
                        .state_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
                )
                .build();
            App::new()
                .app_data(app_state.clone())
                .app_data(settings_data.clone())
                .app_data(web::PayloadConfig::new(64 * 1024))
                .app_data(web::QueryConfig::default().error_handler(|e, req| {
                    if req.path().starts_with("/api/") {
                        ApiError::BadRequest(format!("Malformed query string: {e}")).into()
                    } else {
                        PageError::BadRequest(format!("The address has a malformed query: {e}"))
                            .into()
                    }
                }))
                .app_data(web::PathConfig::default().error_handler(|_, req| {
                    if req.path().starts_with("/api/") {
                        ApiError::NotFound("Not found.".into()).into()
                    } else {
                        PageError::NotFound.into()
                    }
                }))
                .configure(|cfg| configure(cfg, session))
                .wrap(Compress::default())
                .wrap(from_fn(middleware::security_headers))
                .wrap(from_fn(middleware::request_context))
        })
        .listen(listener)
        .map_err(|source| StartError::Bind {
            addr: settings.bind,
            source,
        })?
        .client_request_timeout(Duration::from_secs(10))
        .client_disconnect_timeout(Duration::from_secs(5))
        .shutdown_timeout(10)
        .run();
        Ok(Self {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The setup token, while no account exists (for tests and the CLI).
    pub fn setup_token(&self) -> Option<String> {
        self.state.setup_token.lock().ok().and_then(|t| t.clone())
    }

    /// Serves until stopped (SIGINT/SIGTERM stop it gracefully).
    pub async fn run(self) -> std::io::Result<()> {
        spawn_housekeeping(self.state.clone());
        self.server.await
    }
}

/// Periodic clean-up: expired sessions, old quota history, login failures
/// too old to count, and audit entries past their retention.
fn spawn_housekeeping(state: web::Data<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            // First, so it can record the idle expiries it prunes.
            admin_housekeeping(&state).await;
            let result = state
                .db
                .run(|conn| crate::auth::session_store::prune_expired(conn).map_err(DbError::from))
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "housekeeping failed");
            }
        }
    });
}

/// The housekeeping of the login guard and the audit trail: records the
/// idle expiry of signed-in sessions as it prunes them, forgets old login
/// failures, and deletes audit entries older than the retention.
pub async fn admin_housekeeping(state: &AppState) {
    use crate::audit::{self, AuditEvent, AuditKind};
    let limits = state.settings.login_limits;
    let retention_days = state.settings.audit_retention_days;
    let result = state
        .db
        .run(move |conn| {
            let ended = crate::auth::session_store::prune_expired_signed_in(conn)?;
            for session in ended {
                let event = AuditEvent::new(
                    AuditKind::SessionExpired,
                    Some((session.user_id, session.username)),
                )
                .detail(format!(
                    "idle timeout: the session expired at {} UTC",
                    session.expired_at.format("%Y-%m-%d %H:%M:%S")
                ));
                audit::insert(conn, &audit::system_entry(event, "housekeeping"))?;
            }
            crate::auth::login_guard::prune(conn, &limits)?;
            let pruned = audit::prune(conn, retention_days)?;
            Ok::<_, DbError>(pruned)
        })
        .await;
    match result {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, retention_days, "old audit entries deleted"),
        Err(e) => tracing::warn!(error = %e, "audit housekeeping failed"),
    }
}
