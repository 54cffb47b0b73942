//! Database access: one connection type over SQLite and PostgreSQL, the
//! pool, embedded migrations, and `Database`, which keeps every diesel
//! call off the async executor: reads go to the reading threads (`exec`),
//! writes to the group-commit writer (`writer`).
//!
//! The backend is chosen from the form of `DATABASE_URL` (never by trying
//! each backend in turn, since SQLite accepts any string as a path).

pub mod exec;
pub mod models;
pub mod schema;
pub mod timestamp;
pub mod writer;

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseUrl;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend. Query-builder code is written once
/// against this type; backend-specific SQL matches on the variant.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs `$body` with `$c` bound to the backend's own connection, for the
/// hottest queries: through `DbConn` itself diesel writes a query's SQL
/// text anew on every run to find its cached statement, while on the
/// backend's connection a query of fixed shape finds it by its type.
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Pg($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// Opens connections of the configured backend and prepares each one.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

/// Failure to open or check a connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Connection(#[from] diesel::ConnectionError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// What a connection is for: its settings differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Pooled connections (command line, exports, tests): read and write.
    General,
    /// A reading thread's connection: refuses writes.
    Reader,
    /// The group writer's (and checkpoint thread's) connection: writes,
    /// never checkpoints on commit.
    Writer,
}

impl ConnectionManager {
    pub fn is_sqlite(&self) -> bool {
        matches!(self.url, DatabaseUrl::Sqlite(_))
    }

    /// A connection for a reading thread (`db::exec`).
    pub fn connect_reader(&self) -> Result<DbConn, ConnectError> {
        self.connect_as(Role::Reader)
    }

    /// A connection for the group writer (`db::writer`).
    pub fn connect_writer(&self) -> Result<DbConn, ConnectError> {
        self.connect_as(Role::Writer)
    }

    fn connect_as(&self, role: Role) -> Result<DbConn, ConnectError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                let mut conn = PgConnection::establish(url)?;
                // No JIT compilation: Custos's statements are short, and
                // PostgreSQL compiles again on every run of a cached plan
                // whose estimate passes jit_above_cost (it took the quota
                // function from a tenth of a millisecond to 50 ms).
                conn.batch_execute("SET jit = off")?;
                if role == Role::Reader {
                    conn.batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")?;
                }
                Ok(DbConn::Pg(conn))
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
                // busy_timeout first, so that later statements wait for other
                // connections instead of failing.
                conn.batch_execute("PRAGMA busy_timeout = 10000;")?;
                // Switching a new file to WAL needs a moment alone with it and
                // does not wait on busy_timeout: several processes opening a
                // fresh database together retry for a while.
                let mut attempts = 0;
                loop {
                    match conn.batch_execute(
                        "PRAGMA journal_mode = WAL;
                         PRAGMA synchronous = NORMAL;
                         PRAGMA foreign_keys = ON;
                         PRAGMA temp_store = MEMORY;",
                    ) {
                        Ok(()) => break,
                        Err(e) if attempts < 100 && e.to_string().contains("locked") => {
                            attempts += 1;
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                // Page caches are per connection, and the operating system
                // caches the file for all of them: a few MB each keep the
                // upper levels of the indexes at hand without letting ten
                // connections hold a copy of the database each.
                conn.batch_execute(match role {
                    Role::General => "PRAGMA cache_size = -8000;",
                    Role::Reader => "PRAGMA cache_size = -4000; PRAGMA query_only = 1;",
                    Role::Writer => "PRAGMA cache_size = -8000; PRAGMA wal_autocheckpoint = 0;",
                })?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConn;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConn, ConnectError> {
        self.connect_as(Role::General)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), ConnectError> {
        conn.batch_execute("SELECT 1").map_err(Into::into)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        // After a failed call (see `Database::run`), check that the
        // connection still answers: a connection the server dropped must
        // leave the pool, or it would fail every later request too.
        if FAILED_ON_THIS_THREAD.replace(false) && conn.batch_execute("SELECT 1").is_err() {
            return true;
        }
        match conn {
            DbConn::Pg(c) => {
                matches!(
                    AnsiTransactionManager::transaction_manager_status_mut(c),
                    diesel::connection::TransactionManagerStatus::InError
                )
            }
            DbConn::Sqlite(c) => {
                matches!(
                    AnsiTransactionManager::transaction_manager_status_mut(c),
                    diesel::connection::TransactionManagerStatus::InError
                )
            }
        }
    }
}

thread_local! {
    /// Set by `Database::run` when its closure failed, so that
    /// `has_broken` checks the connection as it goes back to the pool
    /// (on the same thread). Healthy calls pay nothing.
    static FAILED_ON_THIS_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Messages of libpq and SQLite that mean the database went away or
/// cannot be written, rather than a query being wrong.
const UNAVAILABLE_MESSAGES: &[&str] = &[
    "server closed the connection",
    "no connection to the server",
    "could not send data to server",
    "could not receive data from server",
    "terminating connection",
    "connection to server",
    "SSL SYSCALL",
    "database is locked",
    "disk",
    "readonly",
    "read-only",
    // PostgreSQL broke a lock cycle (two instances' group commits taking
    // the same users' quota rows in opposite orders): retrying works.
    "deadlock detected",
];

pub type Pool = r2d2::Pool<ConnectionManager>;

/// Everything that can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("no database connection available: {0}")]
    Pool(#[from] r2d2::PoolError),
    #[error("database connection failed: {0}")]
    Connect(#[from] ConnectError),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("the blocking task was cancelled")]
    Cancelled,
    #[error("a group commit failed: {}", .0.message)]
    Batch(writer::BatchFailure),
}

impl DbError {
    /// True when the database itself is unreachable or overloaded (as
    /// opposed to a bug in a query): such requests answer 503.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Pool(_) | DbError::Connect(_) => true,
            DbError::Query(diesel::result::Error::DatabaseError(kind, info)) => {
                matches!(
                    kind,
                    diesel::result::DatabaseErrorKind::ClosedConnection
                        | diesel::result::DatabaseErrorKind::SerializationFailure
                ) || UNAVAILABLE_MESSAGES
                    .iter()
                    .any(|m| info.message().contains(m))
            }
            DbError::Query(diesel::result::Error::BrokenTransactionManager) => true,
            DbError::Batch(failure) => failure.unavailable,
            _ => false,
        }
    }
}

/// Initialises OpenSSL, which libpq uses, with `OPENSSL_INIT_NO_ATEXIT`.
///
/// Otherwise OpenSSL frees its tables in an exit handler while a pool
/// thread may still be opening a connection, and the process crashes with
/// SIGSEGV as it exits (seen with `custos user list` on PostgreSQL). Must
/// run before the first PostgreSQL connection of the process; idempotent.
pub fn init_tls_library() {
    openssl_sys::init();
}

/// The shared pool plus which backend it speaks.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    is_postgres: bool,
    pager: std::sync::Arc<crate::query::pager::Pager>,
    /// Running CSV exports per user: each holds a pooled connection.
    exports: std::sync::Arc<crate::web::pages::export_limit::ExportSlots>,
    readers: exec::Readers,
    /// The group writer: every request's small writes, batched.
    writer: writer::GroupWriter,
    /// API tokens recently looked up, shared with the writer, which
    /// rechecks a token when the auth version moved (`auth::token_cache`).
    tokens: std::sync::Arc<crate::auth::token_cache::TokenCache>,
}

impl Database {
    /// Opens a pool of `size` connections. Fails fast (with the cause) if
    /// the database cannot be reached at all.
    pub fn connect(url: &DatabaseUrl, size: u32) -> Result<Self, DbError> {
        init_tls_library();
        if let DatabaseUrl::Sqlite(path) = url
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(DbError::Migration(format!(
                "the directory {} for the SQLite database does not exist",
                dir.display()
            )));
        }
        let manager = ConnectionManager { url: url.clone() };
        // Check once directly, so a bad URL reports its real cause.
        manager.connect()?;
        let pool = r2d2::Pool::builder()
            .max_size(size)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(5))
            .test_on_check_out(false)
            .build(manager.clone())?;
        let readers = exec::Readers::new(manager.clone(), size as usize);
        let tokens = std::sync::Arc::<crate::auth::token_cache::TokenCache>::default();
        // One writer on both backends: SQLite allows one at a time, and on
        // PostgreSQL a batch is a fixed handful of round trips whatever its
        // size (the quota of all its users is one call), so one writer
        // makes the batches larger and did more than two or four
        // (BENCHMARKS.md).
        let writer = writer::GroupWriter::start(manager.clone(), tokens.clone())?;
        Ok(Self {
            pool,
            is_postgres: url.is_postgres(),
            pager: std::sync::Arc::default(),
            exports: std::sync::Arc::default(),
            readers,
            writer,
            tokens,
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.is_postgres
    }

    /// The export slots guarding this database's pool.
    pub fn exports(&self) -> &std::sync::Arc<crate::web::pages::export_limit::ExportSlots> {
        &self.exports
    }

    /// Counts and page positions of customer results (`query::pager`).
    pub fn pager(&self) -> std::sync::Arc<crate::query::pager::Pager> {
        self.pager.clone()
    }

    /// The API token cache (`auth::token_cache`).
    pub fn token_cache(&self) -> &std::sync::Arc<crate::auth::token_cache::TokenCache> {
        &self.tokens
    }

    /// The cached counts of customer filters.
    pub fn counts(&self) -> std::sync::Arc<crate::query::count_cache::CountCache> {
        self.pager.counts()
    }

    /// Runs a read `f` on one of the reading threads (`exec`), so diesel's
    /// synchronous calls never stall the async workers. Its connection
    /// refuses writes: use `write` for those.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        self.readers.run(f).await
    }

    /// Runs a write `f` atomically, off the async workers: on SQLite in a
    /// savepoint of the group writer's next batch (the one writer SQLite
    /// allows), on PostgreSQL in a transaction of its own on a pooled
    /// connection. Resolves once it is committed. For short writes only:
    /// on SQLite a long one holds up every request's audit row.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        if !self.is_postgres {
            return self.writer.closure(f).await;
        }
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(DbError::from)?;
            let result = write_transaction(&mut conn, f);
            if result.is_err() {
                FAILED_ON_THIS_THREAD.set(true);
            }
            // Returned to the pool here, on this thread (see `has_broken`).
            drop(conn);
            result
        })
        .await
        .map_err(|_| E::from(DbError::Cancelled))?
    }

    /// Records an audit row in the next group commit.
    pub async fn audit(&self, entry: models::NewAuditEntry) -> Result<(), DbError> {
        self.writer.audit(entry).await
    }

    /// Counts an API call against its user's quota and audits it, in the
    /// next group commit (after checking its token again if the auth
    /// version moved since the lookup).
    pub async fn api_call(&self, call: writer::ApiCall) -> Result<writer::ApiOutcome, DbError> {
        self.writer.api_call(call).await
    }

    /// Moves a live session's expiry forward, in the next group commit.
    pub async fn extend_session(
        &self,
        id_hash: String,
        expires_at: chrono::NaiveDateTime,
    ) -> Result<(), DbError> {
        self.writer.extend_session(id_hash, expires_at).await
    }

    /// A connection for synchronous callers (CLI commands).
    pub fn get(&self) -> Result<r2d2::PooledConnection<ConnectionManager>, DbError> {
        Ok(self.pool.get()?)
    }

    /// Applies pending migrations. On PostgreSQL an advisory lock makes
    /// instances that start together take turns.
    pub fn migrate(&self) -> Result<Vec<String>, DbError> {
        let mut conn = self.get()?;
        run_migrations(&mut conn)
    }
}

/// Key of the PostgreSQL advisory lock held while migrating ("custos").
const MIGRATION_LOCK_KEY: i64 = 0x6375_7374_6f73;

diesel::define_sql_function! {
    fn pg_advisory_lock(key: diesel::sql_types::BigInt);
}
diesel::define_sql_function! {
    fn pg_advisory_unlock(key: diesel::sql_types::BigInt) -> diesel::sql_types::Bool;
}

pub fn run_migrations(conn: &mut DbConn) -> Result<Vec<String>, DbError> {
    let to_strings = |v: Vec<diesel::migration::MigrationVersion>| {
        v.into_iter().map(|m| m.to_string()).collect::<Vec<_>>()
    };
    match conn {
        DbConn::Sqlite(c) => {
            // Hold the write lock while deciding what is pending and applying
            // it, so processes starting together take turns (SQLite's
            // counterpart of the advisory lock below).
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
            let result = c
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(to_strings)
                .map_err(|e| DbError::Migration(e.to_string()));
            match result {
                Ok(applied) => {
                    AnsiTransactionManager::commit_transaction(c)?;
                    Ok(applied)
                }
                Err(e) => {
                    let _ = AnsiTransactionManager::rollback_transaction(c);
                    Err(e)
                }
            }
        }
        DbConn::Pg(c) => {
            diesel::select(pg_advisory_lock(MIGRATION_LOCK_KEY)).execute(c)?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(to_strings)
                .map_err(|e| DbError::Migration(e.to_string()));
            diesel::select(pg_advisory_unlock(MIGRATION_LOCK_KEY)).execute(c)?;
            result
        }
    }
}

/// Whether `conn` is inside a transaction already (then a "transaction"
/// is a savepoint of it, e.g. a write the group writer batches).
pub fn in_transaction(conn: &mut DbConn) -> bool {
    let depth = match conn {
        DbConn::Pg(c) => {
            AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()
        }
        DbConn::Sqlite(c) => {
            AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()
        }
    };
    !matches!(depth, Ok(None))
}

/// Runs `f` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so
/// the write lock is taken up front (waiting on `busy_timeout`) instead of
/// failing when a read later turns into a write. Inside a transaction
/// already (a batch of the group writer), it is a savepoint of it.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    type Manager = <DbConn as Connection>::TransactionManager;
    if in_transaction(conn) {
        Manager::begin_transaction(conn)?;
    } else {
        match conn {
            DbConn::Sqlite(c) => {
                AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
            }
            DbConn::Pg(_) => Manager::begin_transaction(conn)?,
        }
    }
    match f(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            // The original error matters more than a failed rollback.
            let _ = Manager::rollback_transaction(conn);
            Err(e)
        }
    }
}

/// The current UTC time as stored in the database.
pub fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

/// Escapes `\`, `%` and `_` so user text is matched literally by
/// `LIKE ... ESCAPE '\'`.
pub fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for ch in text.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}
