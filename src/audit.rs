//! The append-only audit trail.
//!
//! Who did what, when, from where: logins, logouts, every query page and
//! API call (with its row count and the customer ids a detail showed),
//! exports, token and admin actions. Never customer data, passwords or
//! tokens. Writes that show data fail closed: if the audit row cannot be
//! written, the data is not shown.

use actix_web::HttpRequest;
use diesel::prelude::*;

use crate::db::models::NewAuditEntry;
use crate::db::schema::audit_log;
use crate::db::{DbConn, DbError, now};
use crate::web::AppState;
use crate::web::middleware::ClientInfo;

/// What happened. The string forms are stored and filtered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    LoginSuccess,
    LoginFailure,
    LoginLocked,
    Logout,
    SessionExpired,
    PasswordChanged,
    PageView,
    ApiCall,
    Export,
    TokenCreated,
    TokenRevoked,
    Admin,
    Setup,
}

impl AuditKind {
    pub const ALL: [AuditKind; 13] = [
        AuditKind::LoginSuccess,
        AuditKind::LoginFailure,
        AuditKind::LoginLocked,
        AuditKind::Logout,
        AuditKind::SessionExpired,
        AuditKind::PasswordChanged,
        AuditKind::PageView,
        AuditKind::ApiCall,
        AuditKind::Export,
        AuditKind::TokenCreated,
        AuditKind::TokenRevoked,
        AuditKind::Admin,
        AuditKind::Setup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LoginSuccess => "login_success",
            AuditKind::LoginFailure => "login_failure",
            AuditKind::LoginLocked => "login_locked",
            AuditKind::Logout => "logout",
            AuditKind::SessionExpired => "session_expired",
            AuditKind::PasswordChanged => "password_changed",
            AuditKind::PageView => "page_view",
            AuditKind::ApiCall => "api_call",
            AuditKind::Export => "export",
            AuditKind::TokenCreated => "token_created",
            AuditKind::TokenRevoked => "token_revoked",
            AuditKind::Admin => "admin",
            AuditKind::Setup => "setup",
        }
    }

    pub fn parse(s: &str) -> Option<AuditKind> {
        AuditKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One event to record. `user` is (id, username) of the actor, if known.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub kind: AuditKind,
    pub user: Option<(i64, String)>,
    pub detail: String,
    pub row_count: Option<i64>,
    pub customer_ids: Vec<i64>,
}

impl AuditEvent {
    pub fn new(kind: AuditKind, user: Option<(i64, String)>) -> Self {
        Self {
            kind,
            user,
            detail: String::new(),
            row_count: None,
            customer_ids: Vec::new(),
        }
    }
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
    pub fn rows(mut self, rows: i64) -> Self {
        self.row_count = Some(rows);
        self
    }
    pub fn customers(mut self, ids: Vec<i64>) -> Self {
        self.customer_ids = ids;
        self
    }
}

/// The row for an event on a request (path with its query, client address,
/// request id).
pub fn entry_for(req: &HttpRequest, event: AuditEvent) -> NewAuditEntry {
    let client = ClientInfo::of(req);
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    NewAuditEntry {
        at: now(),
        user_id: event.user.as_ref().map(|u| u.0),
        username: event.user.map(|u| u.1),
        kind: event.kind.as_str().to_owned(),
        client_addr: client.ip.to_string(),
        path: path.chars().take(2048).collect(),
        detail: event.detail.chars().take(1000).collect(),
        row_count: event.row_count,
        customer_ids: if event.customer_ids.is_empty() {
            None
        } else {
            Some(
                event
                    .customer_ids
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            )
        },
        request_id: client.request_id,
    }
}

/// Rows per multi-row audit insert (11 bound values each, well under
/// either backend's limit on bound values).
const INSERT_CHUNK: usize = 256;

/// Inserts many audit rows: on PostgreSQL one statement per `INSERT_CHUNK`
/// rows (each statement is a round trip), on SQLite row by row.
pub fn insert_many(conn: &mut DbConn, entries: &[NewAuditEntry]) -> QueryResult<usize> {
    let mut written = 0;
    match conn {
        // One prepared statement run per row: a statement of n rows would
        // be compiled anew for each n, and SQLite has no round trips to save.
        DbConn::Sqlite(_) => {
            for entry in entries {
                written += insert(conn, entry)?;
            }
        }
        DbConn::Pg(c) => {
            for chunk in entries.chunks(INSERT_CHUNK) {
                written += match chunk {
                    [one] => diesel::insert_into(audit_log::table)
                        .values(one)
                        .execute(c)?,
                    _ => diesel::insert_into(audit_log::table)
                        .values(chunk)
                        .execute(c)?,
                };
            }
        }
    }
    Ok(written)
}

pub fn insert(conn: &mut DbConn, entry: &NewAuditEntry) -> QueryResult<usize> {
    crate::db::on_backend!(conn, c => diesel::insert_into(audit_log::table)
        .values(entry)
        .execute(c))
}

/// A row for an event that no request carries: the command line
/// (`source` names the command) or the server's own housekeeping.
pub fn system_entry(event: AuditEvent, source: &str) -> NewAuditEntry {
    NewAuditEntry {
        at: now(),
        user_id: event.user.as_ref().map(|u| u.0),
        username: event.user.map(|u| u.1),
        kind: event.kind.as_str().to_owned(),
        client_addr: "-".to_owned(),
        path: source.chars().take(2048).collect(),
        detail: event.detail.chars().take(1000).collect(),
        row_count: event.row_count,
        customer_ids: None,
        request_id: "-".to_owned(),
    }
}

/// The (id, username) actor of an event.
pub fn actor(user: &crate::db::models::User) -> Option<(i64, String)> {
    Some((user.id, user.username.clone()))
}

/// Most entries one pruning step deletes, so that pruning a large backlog
/// never holds the write lock for long.
pub const PRUNE_STEP: i64 = 5_000;

/// Deletes up to `PRUNE_STEP` of the oldest entries older than
/// `retention_days` (run by the server's housekeeping until it deletes
/// fewer; the log is otherwise never changed).
pub fn prune_step(conn: &mut DbConn, retention_days: u32) -> QueryResult<usize> {
    let cutoff = now() - chrono::Duration::days(i64::from(retention_days));
    let ids: Vec<i64> = audit_log::table
        .filter(audit_log::at.lt(cutoff))
        .order(audit_log::at.asc())
        .select(audit_log::id)
        .limit(PRUNE_STEP)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(audit_log::table.filter(audit_log::id.eq_any(ids))).execute(conn)
}

/// Records an event for a request; resolves once the row is committed
/// (group-committed with the other requests' rows, see `db::writer`).
pub async fn record(state: &AppState, req: &HttpRequest, event: AuditEvent) -> Result<(), DbError> {
    state.db.audit(entry_for(req, event)).await
}
