//! Initial loads: filling an empty `customers` table fast.
//!
//! A million rows inserted one by one into seven secondary B-tree indexes
//! and a trigram index (kept by per-row triggers on SQLite) means millions
//! of random page writes. When an import (or `custos seed`)
//! starts on an empty table, it instead drops those indexes inside its own
//! transaction, loads the rows (with PostgreSQL's binary `COPY`), and builds
//! each index once, by sorting, before it commits. DDL is transactional on
//! both backends, so a failed load leaves the indexes exactly as they were,
//! and readers keep their own snapshot meanwhile (on PostgreSQL the dropped
//! indexes lock the still-empty table until the load commits).
//!
//! The statements are constants of this file, never built from input. An
//! index a later migration adds and this list does not know simply stays
//! in place during the load: slower, never wrong.

use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::models::NewCustomer;
use crate::db::schema::customers;

/// Secondary indexes of `customers` as the initial migrations create them:
/// (drop, create). The same SQL on both backends.
const CUSTOMER_INDEXES: &[(&str, &str)] = &[
    (
        "DROP INDEX customers_operator",
        "CREATE INDEX customers_operator ON customers (operator_id, id)",
    ),
    (
        "DROP INDEX customers_status",
        "CREATE INDEX customers_status ON customers (status, id)",
    ),
    (
        "DROP INDEX customers_plan",
        "CREATE INDEX customers_plan ON customers (plan, id)",
    ),
    (
        "DROP INDEX customers_country",
        "CREATE INDEX customers_country ON customers (country, id)",
    ),
    (
        "DROP INDEX customers_created_at",
        "CREATE INDEX customers_created_at ON customers (created_at, id)",
    ),
    (
        "DROP INDEX customers_full_name",
        "CREATE INDEX customers_full_name ON customers (full_name, id)",
    ),
];

/// The index for "one status, newest first": on SQLite it also holds
/// `search_text` (migration 2026-12-22-000001), so a search walking it
/// tests each row's text without reading the row.
const PG_STATUS_CREATED_AT: (&str, &str) = (
    "DROP INDEX customers_status_created_at",
    "CREATE INDEX customers_status_created_at ON customers (status, created_at, id)",
);
const SQLITE_STATUS_CREATED_AT: (&str, &str) = (
    "DROP INDEX customers_status_created_at_search",
    "CREATE INDEX customers_status_created_at_search \
     ON customers (status, created_at, id, search_text)",
);

/// On SQLite: the covering status index, and the per-row triggers of
/// `customers` (from the search-index and data-version migrations): an
/// initial load drops them, and after the rows are in, builds the trigram
/// index in one pass and puts them back. (The load bumps the data version
/// itself.)
const SQLITE_EXTRAS: &[(&str, &str)] = &[
    SQLITE_STATUS_CREATED_AT,
    (
        "DROP TRIGGER customers_search_insert",
        "CREATE TRIGGER customers_search_insert AFTER INSERT ON customers
BEGIN
    INSERT INTO customers_search (rowid, search_text) VALUES (new.id, new.search_text);
END",
    ),
    (
        "DROP TRIGGER customers_version_insert",
        "CREATE TRIGGER customers_version_insert AFTER INSERT ON customers
BEGIN
    UPDATE app_state SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
        WHERE key = 'data_version';
END",
    ),
];
const SQLITE_REBUILD_SEARCH: &str =
    "INSERT INTO customers_search (customers_search) VALUES ('rebuild')";

/// On PostgreSQL: the operator foreign key (checked per row by a trigger
/// during a load, but in one join when added back; the import has already
/// checked every operator_id) and the trigram index (from the search-index
/// migration).
const PG_EXTRAS: &[(&str, &str)] = &[
    PG_STATUS_CREATED_AT,
    (
        "ALTER TABLE customers DROP CONSTRAINT customers_operator_id_fkey",
        "ALTER TABLE customers ADD CONSTRAINT customers_operator_id_fkey \
         FOREIGN KEY (operator_id) REFERENCES operators (id)",
    ),
    (
        "DROP INDEX customers_search_trgm",
        "CREATE INDEX customers_search_trgm ON customers USING gin (search_text gin_trgm_ops)",
    ),
];

/// SQLite page cache while loading (256 MiB; negative means KiB), and the
/// connection's normal value afterwards (as set in `db::mod`).
const SQLITE_LOAD_CACHE: &str = "PRAGMA cache_size = -262144";
const SQLITE_NORMAL_CACHE: &str = "PRAGMA cache_size = -32000";
/// Memory for PostgreSQL's index builds in this transaction only.
const PG_LOAD_MEMORY: &str = "SET LOCAL maintenance_work_mem = '256MB'";

/// Rows per `COPY`/`INSERT` during an initial load.
pub const LOAD_BATCH_ROWS: usize = 10_000;

fn backend_extras(conn: &DbConn) -> &'static [(&'static str, &'static str)] {
    match conn {
        DbConn::Pg(_) => PG_EXTRAS,
        DbConn::Sqlite(_) => SQLITE_EXTRAS,
    }
}

fn run(conn: &mut DbConn, statement: &'static str) -> QueryResult<()> {
    match conn {
        DbConn::Pg(c) => diesel::sql_query(statement).execute(c).map(drop),
        DbConn::Sqlite(c) => diesel::sql_query(statement).execute(c).map(drop),
    }
}

/// An initial load in progress, inside the caller's write transaction.
/// Call [`InitialLoad::finish`] before committing.
#[derive(Debug)]
#[must_use = "finish() rebuilds the indexes"]
pub struct InitialLoad(());

impl InitialLoad {
    /// Starts an initial load if `customers` is empty; `None` otherwise
    /// (rows then go in with ordinary inserts and index maintenance).
    pub fn begin_if_empty(conn: &mut DbConn) -> QueryResult<Option<Self>> {
        let any: Option<i64> = customers::table
            .select(customers::id)
            .first(conn)
            .optional()?;
        if any.is_some() {
            return Ok(None);
        }
        match conn {
            DbConn::Sqlite(_) => run(conn, SQLITE_LOAD_CACHE)?,
            DbConn::Pg(_) => run(conn, PG_LOAD_MEMORY)?,
        }
        for (drop, _) in CUSTOMER_INDEXES.iter().chain(backend_extras(conn)) {
            run(conn, drop)?;
        }
        Ok(Some(InitialLoad(())))
    }

    /// Appends validated rows (the table started empty, so there are no
    /// existing ids to collide with).
    pub fn insert(&self, conn: &mut DbConn, rows: &[NewCustomer]) -> QueryResult<usize> {
        match conn {
            DbConn::Pg(c) => diesel::copy_from(customers::table)
                .from_insertable(rows)
                .execute(c),
            DbConn::Sqlite(_) => {
                // Keep each statement within SQLite's bind-parameter limit.
                let mut n = 0;
                for chunk in rows.chunks(1000) {
                    n += super::insert_customers(conn, chunk)?;
                }
                Ok(n)
            }
        }
    }

    /// Builds the indexes back, each in one pass.
    pub fn finish(self, conn: &mut DbConn) -> QueryResult<()> {
        for (_, create) in CUSTOMER_INDEXES.iter().chain(backend_extras(conn)) {
            run(conn, create)?;
        }
        if let DbConn::Sqlite(_) = conn {
            run(conn, SQLITE_REBUILD_SEARCH)?;
            run(conn, SQLITE_NORMAL_CACHE)?;
        }
        Ok(())
    }
}
