//! Building and running the HTTP server.
//!
//! `Application::build` binds the listener (port 0 works, for tests) and
//! prepares everything; `run` serves until SIGTERM/SIGINT, then drains.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_governor::Governor;
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
use crate::quota::AnonThrottle;
use crate::tls::{self, ReloadableCert};
use crate::web::burst::{self, BurstConfig};
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
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// Time a client has to send a complete request head (from the moment
/// the connection is accepted, or the previous response was sent). A
/// slow-loris client dribbling one header byte a second is cut off here,
/// so it cannot hold a connection for long. Headers themselves are
/// bounded by actix-http: at most 96 header lines and a 128 KiB head
/// (over that the request is refused with 431).
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a closing connection gets to finish its shutdown.
pub const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle keep-alive connection stays open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Open connections per worker thread; over it, new connections wait in
/// the listen backlog. High enough that holding connections open (each
/// cut off after `CLIENT_REQUEST_TIMEOUT` if idle) cannot fill it before
/// the timeout frees them.
pub const MAX_CONNECTIONS_PER_WORKER: usize = 10_000;
/// TLS handshakes in progress per worker (they cost CPU).
pub const MAX_TLS_HANDSHAKES_PER_WORKER: usize = 256;

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    tls: Option<Arc<ReloadableCert>>,
    redirect: Option<(u16, Server)>,
    burst: BurstConfig,
    anon: web::Data<AnonThrottle>,
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
        let redirect = match settings.http_redirect_bind {
            Some(addr) => {
                Some(TcpListener::bind(addr).map_err(|source| StartError::Bind { addr, source })?)
            }
            None => None,
        };
        Self::build_with_redirect(settings, db, listener, redirect)
    }

    pub fn build_with(
        settings: Settings,
        db: Database,
        listener: TcpListener,
    ) -> Result<Self, StartError> {
        Self::build_with_redirect(settings, db, listener, None)
    }

    /// Builds on given listeners: the main one, and optionally a plain-HTTP
    /// one that only redirects to HTTPS.
    pub fn build_with_redirect(
        settings: Settings,
        db: Database,
        listener: TcpListener,
        redirect_listener: Option<TcpListener>,
    ) -> Result<Self, StartError> {
        let tls = match &settings.tls {
            Some(files) => {
                tls::install_provider();
                Some(Arc::new(ReloadableCert::load(files)?))
            }
            None => None,
        };
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: settings.bind,
                source,
            })?
            .port();
        let user_count = db
            .get()
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
        // Built once, outside the worker factory: one limiter for all workers.
        let burst = burst::config(&settings).ok_or_else(|| {
            StartError::Refused("the burst limit needs a positive rate and size".into())
        })?;
        let burst_wrap = burst.clone();
        let anon = web::Data::new(AnonThrottle::new(settings.api_anon_rate));
        let anon_data = anon.clone();
        let server_builder = HttpServer::new(move || {
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
                .app_data(anon_data.clone())
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
                // Innermost of the wraps below, so request_context (outermost)
                // has resolved the client address the limiter keys on.
                .wrap(Governor::new(&burst_wrap))
                .wrap(Compress::default())
                .wrap(from_fn(middleware::security_headers))
                .wrap(from_fn(middleware::request_context))
        })
        .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
        .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
        .keep_alive(KEEP_ALIVE)
        .max_connections(MAX_CONNECTIONS_PER_WORKER)
        .max_connection_rate(MAX_TLS_HANDSHAKES_PER_WORKER)
        .shutdown_timeout(10);
        let bind_error = |source| StartError::Bind {
            addr: settings.bind,
            source,
        };
        let server = match &tls {
            Some(resolver) => server_builder
                .listen_rustls_0_23(listener, tls::server_config(resolver.clone())?)
                .map_err(bind_error)?,
            None => server_builder.listen(listener).map_err(bind_error)?,
        }
        .run();
        let redirect = match redirect_listener {
            Some(l) => Some(redirect_server(l, port)?),
            None => None,
        };
        Ok(Self {
            port,
            server,
            state,
            tls,
            redirect,
            burst,
            anon,
        })
    }

    /// The port of the plain-HTTP redirect listener, if any.
    pub fn redirect_port(&self) -> Option<u16> {
        self.redirect.as_ref().map(|(p, _)| *p)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The setup token, while no account exists (for tests and the CLI).
    pub fn setup_token(&self) -> Option<String> {
        self.state.setup_token.lock().ok().and_then(|t| t.clone())
    }

    /// A handle to stop the server (tests restart instances with it).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGINT/SIGTERM stop it gracefully).
    pub async fn run(self) -> std::io::Result<()> {
        spawn_housekeeping(self.state.clone(), self.anon.clone());
        burst::spawn_cleanup(&self.burst);
        if let Some(resolver) = self.tls.clone() {
            spawn_reload_on_sighup(resolver);
        }
        match self.redirect {
            Some((_, redirect)) => {
                let (main, _) = tokio::join!(self.server, redirect);
                main
            }
            None => self.server.await,
        }
    }
}

/// Reloads the certificate and key when the process gets SIGHUP; a bad
/// file keeps the old certificate and logs why.
fn spawn_reload_on_sighup(resolver: Arc<ReloadableCert>) {
    use tokio::signal::unix::{SignalKind, signal};
    tokio::spawn(async move {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; certificate reload disabled");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match resolver.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: certificate reload failed; keeping the old certificate")
                }
            }
        }
    });
}

/// A plain-HTTP server that answers every request with a redirect to the
/// same path on HTTPS.
fn redirect_server(listener: TcpListener, https_port: u16) -> Result<(u16, Server), StartError> {
    let addr = listener
        .local_addr()
        .map_err(|source| StartError::Refused(format!("redirect listener: {source}")))?;
    let server = HttpServer::new(move || {
        App::new().default_service(web::to(move |req: actix_web::HttpRequest| async move {
            redirect_to_https(&req, https_port)
        }))
    })
    .workers(1)
    .listen(listener)
    .map_err(|source| StartError::Bind { addr, source })?
    .client_request_timeout(Duration::from_secs(10))
    .shutdown_timeout(5)
    .run();
    Ok((addr.port(), server))
}

fn redirect_to_https(req: &actix_web::HttpRequest, https_port: u16) -> actix_web::HttpResponse {
    let conn = req.connection_info();
    let host_header = conn.host();
    // Strip a port (keeping IPv6 brackets), refuse anything odd.
    let host = match host_header.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host_header,
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    if !valid {
        return actix_web::HttpResponse::BadRequest().body("bad Host header");
    }
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    actix_web::HttpResponse::PermanentRedirect()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("https://{host}{port}{path}"),
        ))
        .finish()
}

/// Periodic clean-up: expired sessions, old quota history, login failures
/// too old to count, and audit entries past their retention.
fn spawn_housekeeping(state: web::Data<AppState>, anon: web::Data<AnonThrottle>) {
    tokio::spawn(async move {
        // The first tick is immediate: a restarted server prunes (and
        // audits idle expiries) at once rather than five minutes later.
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            // First, so it can record the idle expiries it prunes.
            admin_housekeeping(&state).await;
            let result = state
                .db
                .write(|conn| {
                    crate::auth::session_store::prune_expired(conn).map_err(DbError::from)
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "housekeeping failed");
            }
            if let Err(e) = prune_api_history(&state).await {
                tracing::warn!(error = %e, "pruning the API request history failed");
            }
            anon.prune();
        }
    });
}

/// Deletes API request history no window can see any more, a step at a
/// time (each its own short write, so requests' writes go in between).
async fn prune_api_history(state: &AppState) -> Result<(), DbError> {
    let rate = state.settings.api_user_rate;
    let users = state
        .db
        .run(|conn| crate::quota::quota_users(conn).map_err(DbError::from))
        .await?;
    for user_id in users {
        delete_in_steps(state, crate::quota::PRUNE_STEP, move |conn| {
            crate::quota::prune_step(conn, rate, user_id)
        })
        .await?;
    }
    Ok(())
}

/// Deletes audit entries past their retention, a step at a time; returns
/// how many.
async fn prune_audit_log(state: &AppState, retention_days: u32) -> Result<usize, DbError> {
    delete_in_steps(state, crate::audit::PRUNE_STEP, move |conn| {
        crate::audit::prune_step(conn, retention_days)
    })
    .await
}

/// Runs the deletion `step` (at most `step_rows` rows each, its own short
/// write) until a step deletes fewer; returns the rows deleted.
async fn delete_in_steps(
    state: &AppState,
    step_rows: i64,
    step: impl Fn(&mut crate::db::DbConn) -> diesel::QueryResult<usize> + Clone + Send + 'static,
) -> Result<usize, DbError> {
    let mut deleted = 0;
    loop {
        let step = step.clone();
        let now = state
            .db
            .write(move |conn| step(conn).map_err(DbError::from))
            .await?;
        deleted += now;
        if i64::try_from(now).unwrap_or(i64::MAX) < step_rows {
            return Ok(deleted);
        }
    }
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
        .write(move |conn| {
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
            Ok::<_, DbError>(())
        })
        .await;
    let result = match result {
        Ok(()) => prune_audit_log(state, retention_days).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, retention_days, "old audit entries deleted"),
        Err(e) => tracing::warn!(error = %e, "audit housekeeping failed"),
    }
}
