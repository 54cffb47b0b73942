//! All-or-nothing CSV import of operators and customers.
//!
//! Every row is validated before it is written and the whole file goes in
//! one write transaction: the first bad row aborts with
//! `line N: <field>: <reason>` and the database is left exactly as it was.

pub mod bulk;
mod countries;
pub mod django;
pub mod validate;

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::Path;

use diesel::prelude::*;

use crate::db::models::{NewCustomer, Operator};
use crate::db::schema::{app_state, customers, operators};
use crate::db::{DbConn, DbError, write_transaction};

pub const OPERATOR_COLUMNS: [&str; 5] = ["id", "name", "country", "support_email", "created_at"];
pub const CUSTOMER_COLUMNS: [&str; 10] = [
    "id",
    "operator_id",
    "full_name",
    "email",
    "phone",
    "city",
    "country",
    "plan",
    "status",
    "created_at",
];

/// Rows per INSERT statement (well under both backends' bind limits).
const BATCH_ROWS: usize = 1000;

/// Why an import stopped. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A problem with the file's content, at a line.
    #[error("line {line}: {field}: {reason}")]
    Row {
        line: u64,
        field: String,
        reason: String,
    },
    #[error("{0}")]
    File(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ImportError {
    fn from(e: diesel::result::Error) -> Self {
        ImportError::Db(DbError::Query(e))
    }
}

fn row_error(line: u64, field: &str, reason: impl fmt::Display) -> ImportError {
    ImportError::Row {
        line,
        field: field.to_owned(),
        reason: reason.to_string(),
    }
}

/// Reports progress to the user (a bar on a terminal, nothing otherwise).
/// `Sync`: the customer import reads the file on a thread of its own.
pub trait Progress: Sync {
    fn advance(&self, bytes_read: u64);
    fn finish(&self);
}

/// No progress output (tests, seeding).
pub struct Silent;
impl Progress for Silent {
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// The outcome of a successful import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    pub rows: u64,
}

/// Maps header names to column positions, refusing unknown or missing ones.
fn column_positions<const N: usize>(
    headers: &csv::StringRecord,
    expected: &[&str; N],
) -> Result<[usize; N], ImportError> {
    let mut positions = [usize::MAX; N];
    for (pos, name) in headers.iter().enumerate() {
        let name = name.trim();
        match expected.iter().position(|e| *e == name) {
            Some(i) if positions[i] == usize::MAX => positions[i] = pos,
            Some(_) => return Err(row_error(1, name, "column appears twice in the header")),
            None => {
                return Err(row_error(
                    1,
                    "header",
                    format!("unknown column {name:?}; expected {}", expected.join(",")),
                ));
            }
        }
    }
    if let Some(i) = positions.iter().position(|p| *p == usize::MAX) {
        return Err(row_error(
            1,
            "header",
            format!(
                "missing column {:?}; expected {}",
                expected[i],
                expected.join(",")
            ),
        ));
    }
    Ok(positions)
}

fn open_reader<R: Read>(input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input)
}

fn read_error(e: csv::Error) -> ImportError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => row_error(line, "row", "is not valid UTF-8"),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => row_error(
            line,
            "row",
            format!("has {len} fields; the header has {expected_len}"),
        ),
        csv::ErrorKind::Io(io) => ImportError::File(format!("could not read the file: {io}")),
        _ => ImportError::File(format!("could not parse the CSV: {e}")),
    }
}

/// Iterates validated rows, calling `each(line, record)`.
fn for_each_record<R: Read, const N: usize>(
    input: R,
    expected: &[&str; N],
    progress: &dyn Progress,
    mut each: impl FnMut(u64, [&str; N]) -> Result<(), ImportError>,
) -> Result<u64, ImportError> {
    let mut reader = open_reader(input);
    let headers = reader.headers().map_err(read_error)?.clone();
    let positions = column_positions(&headers, expected)?;
    let mut record = csv::StringRecord::new();
    let mut rows = 0u64;
    while reader.read_record(&mut record).map_err(read_error)? {
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let fields: [&str; N] = std::array::from_fn(|i| record.get(positions[i]).unwrap_or(""));
        each(line, fields)?;
        rows += 1;
        if rows.is_multiple_of(4096) {
            progress.advance(reader.position().byte());
        }
    }
    progress.advance(reader.position().byte());
    Ok(rows)
}

/// Imports operators from CSV text. Fails on the first bad row.
pub fn import_operators<R: Read>(
    conn: &mut DbConn,
    input: R,
    progress: &dyn Progress,
) -> Result<Imported, ImportError> {
    let result = write_transaction(conn, |conn| {
        bump_data_version(conn)?;
        let mut seen = HashSet::new();
        let mut batch: Vec<(u64, Operator)> = Vec::with_capacity(BATCH_ROWS);
        let rows = for_each_record(input, &OPERATOR_COLUMNS, progress, |line, f| {
            let [id, name, country, email, created_at] = f;
            let op = Operator {
                id: validate::positive_id(id).map_err(|e| row_error(line, "id", e))?,
                name: validate::text(name, 200, true).map_err(|e| row_error(line, "name", e))?,
                country: validate::country(country).map_err(|e| row_error(line, "country", e))?,
                support_email: validate::email(email)
                    .map_err(|e| row_error(line, "support_email", e))?,
                created_at: validate::timestamp(created_at)
                    .map_err(|e| row_error(line, "created_at", e))?,
            };
            if !seen.insert(op.id) {
                return Err(row_error(
                    line,
                    "id",
                    format!("{} appears twice in the file", op.id),
                ));
            }
            batch.push((line, op));
            if batch.len() == BATCH_ROWS {
                insert_operator_batch(conn, &mut batch)?;
            }
            Ok(())
        })?;
        insert_operator_batch(conn, &mut batch)?;
        Ok(rows)
    });
    progress.finish();
    result.map(|rows| Imported { rows })
}

fn insert_operator_batch(
    conn: &mut DbConn,
    batch: &mut Vec<(u64, Operator)>,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = batch.iter().map(|(_, o)| o.id).collect();
    let existing: Option<i64> = operators::table
        .filter(operators::id.eq_any(&ids))
        .select(operators::id)
        .first(conn)
        .optional()?;
    if let Some(id) = existing {
        let line = batch
            .iter()
            .find(|(_, o)| o.id == id)
            .map_or(0, |(l, _)| *l);
        return Err(row_error(
            line,
            "id",
            format!("operator {id} already exists"),
        ));
    }
    let rows: Vec<Operator> = batch.drain(..).map(|(_, o)| o).collect();
    match conn {
        DbConn::Pg(c) => diesel::insert_into(operators::table)
            .values(&rows)
            .execute(c)?,
        DbConn::Sqlite(c) => diesel::insert_into(operators::table)
            .values(&rows)
            .execute(c)?,
    };
    Ok(())
}

/// Imports customers from CSV text. Fails on the first bad row.
///
/// Reading and validating the file runs on a thread of its own and hands
/// batches to this thread, which writes them: parsing and the database's
/// work overlap. Everything still happens inside one transaction.
pub fn import_customers<R: Read + Send>(
    conn: &mut DbConn,
    input: R,
    progress: &dyn Progress,
) -> Result<Imported, ImportError> {
    let result = write_transaction(conn, |conn| {
        bump_data_version(conn)?;
        let operator_ids: HashSet<i64> = operators::table
            .select(operators::id)
            .load::<i64>(conn)?
            .into_iter()
            .collect();
        let load = bulk::InitialLoad::begin_if_empty(conn)?;
        let batch_rows = if load.is_some() {
            bulk::LOAD_BATCH_ROWS
        } else {
            BATCH_ROWS
        };
        let rows = std::thread::scope(|scope| {
            // Two batches in flight at most: memory stays flat.
            let (to_writer, batches) = std::sync::mpsc::sync_channel(2);
            let reader = scope.spawn(move || {
                read_customers(input, progress, &operator_ids, batch_rows, to_writer)
            });
            let mut written = Ok(());
            for mut batch in batches.iter() {
                written = insert_customer_batch(conn, load.as_ref(), &mut batch);
                if written.is_err() {
                    break;
                }
            }
            // Hanging up stops a reader still waiting to send.
            drop(batches);
            let read = reader
                .join()
                .unwrap_or_else(|_| Err(ImportError::File("the CSV reader failed".into())));
            // A write error belongs to an earlier line than anything the
            // reader reached after it, so it is the one to report.
            written.and(read)
        })?;
        if let Some(load) = load {
            load.finish(conn)?;
        }
        Ok(rows)
    });
    progress.finish();
    result.map(|rows| Imported { rows })
}

/// The reading half of [`import_customers`]: validates every row and sends
/// full batches to the writer.
fn read_customers<R: Read>(
    input: R,
    progress: &dyn Progress,
    operator_ids: &HashSet<i64>,
    batch_rows: usize,
    to_writer: std::sync::mpsc::SyncSender<Vec<(u64, NewCustomer)>>,
) -> Result<u64, ImportError> {
    let mut seen = HashSet::new();
    let mut batch: Vec<(u64, NewCustomer)> = Vec::with_capacity(batch_rows);
    let writer_stopped = || ImportError::File("the import was stopped".into());
    let rows = for_each_record(input, &CUSTOMER_COLUMNS, progress, |line, f| {
        let customer = parse_customer(line, f, operator_ids)?;
        if !seen.insert(customer.id) {
            return Err(row_error(
                line,
                "id",
                format!("{} appears twice in the file", customer.id),
            ));
        }
        batch.push((line, customer));
        if batch.len() == batch_rows {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_rows));
            to_writer.send(full).map_err(|_| writer_stopped())?;
        }
        Ok(())
    })?;
    if !batch.is_empty() {
        to_writer.send(batch).map_err(|_| writer_stopped())?;
    }
    Ok(rows)
}

fn parse_customer(
    line: u64,
    fields: [&str; 10],
    operator_ids: &HashSet<i64>,
) -> Result<NewCustomer, ImportError> {
    let [
        id,
        operator_id,
        full_name,
        email,
        phone,
        city,
        country,
        plan,
        status,
        created_at,
    ] = fields;
    let at = |field: &'static str| move |e: String| row_error(line, field, e);
    let operator_id = validate::positive_id(operator_id).map_err(at("operator_id"))?;
    if !operator_ids.contains(&operator_id) {
        return Err(row_error(
            line,
            "operator_id",
            format!("operator {operator_id} does not exist (import operators first)"),
        ));
    }
    let full_name = validate::text(full_name, 200, true).map_err(at("full_name"))?;
    let email = validate::email(email).map_err(at("email"))?;
    let phone = validate::phone(phone).map_err(at("phone"))?;
    let search_text = NewCustomer::search_text_for(&full_name, &email, &phone);
    Ok(NewCustomer {
        id: validate::positive_id(id).map_err(at("id"))?,
        operator_id,
        full_name,
        email,
        phone,
        city: validate::text(city, 100, false).map_err(at("city"))?,
        country: validate::country(country).map_err(at("country"))?,
        plan: validate::choice(plan, &validate::PLANS).map_err(at("plan"))?,
        status: validate::choice(status, &validate::STATUSES).map_err(at("status"))?,
        created_at: validate::timestamp(created_at).map_err(at("created_at"))?,
        search_text,
    })
}

fn insert_customer_batch(
    conn: &mut DbConn,
    load: Option<&bulk::InitialLoad>,
    batch: &mut Vec<(u64, NewCustomer)>,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    if let Some(load) = load {
        // The table started empty and `seen` rejects repeats in the file.
        let rows: Vec<NewCustomer> = batch.drain(..).map(|(_, c)| c).collect();
        load.insert(conn, &rows)?;
        return Ok(());
    }
    let ids: Vec<i64> = batch.iter().map(|(_, c)| c.id).collect();
    let existing: Option<i64> = customers::table
        .filter(customers::id.eq_any(&ids))
        .select(customers::id)
        .first(conn)
        .optional()?;
    if let Some(id) = existing {
        let line = batch
            .iter()
            .find(|(_, c)| c.id == id)
            .map_or(0, |(l, _)| *l);
        return Err(row_error(
            line,
            "id",
            format!("customer {id} already exists"),
        ));
    }
    let rows: Vec<NewCustomer> = batch.drain(..).map(|(_, c)| c).collect();
    insert_customers(conn, &rows)?;
    Ok(())
}

/// Inserts already validated customers (used by import and seed).
pub fn insert_customers(conn: &mut DbConn, rows: &[NewCustomer]) -> QueryResult<usize> {
    match conn {
        DbConn::Pg(c) => diesel::insert_into(customers::table)
            .values(rows)
            .execute(c),
        DbConn::Sqlite(c) => diesel::insert_into(customers::table)
            .values(rows)
            .execute(c),
    }
}

/// Inserts already validated operators (used by seed).
pub fn insert_operators(conn: &mut DbConn, rows: &[Operator]) -> QueryResult<usize> {
    match conn {
        DbConn::Pg(c) => diesel::insert_into(operators::table)
            .values(rows)
            .execute(c),
        DbConn::Sqlite(c) => diesel::insert_into(operators::table)
            .values(rows)
            .execute(c),
    }
}

/// Marks the customer data as changed, so cached counts are recomputed.
/// Called first in every import transaction (on SQLite this is also the
/// write that takes the lock).
pub fn bump_data_version(conn: &mut DbConn) -> QueryResult<()> {
    let current: String = app_state::table
        .find("data_version")
        .select(app_state::value)
        .first(conn)
        .optional()?
        .unwrap_or_else(|| "0".into());
    let next = current.parse::<i64>().unwrap_or(0) + 1;
    diesel::update(app_state::table.find("data_version"))
        .set(app_state::value.eq(next.to_string()))
        .execute(conn)?;
    Ok(())
}

/// Opens a file for import with a clear error if it cannot be read.
pub fn open_file(path: &Path) -> Result<(std::fs::File, u64), ImportError> {
    let file = std::fs::File::open(path)
        .map_err(|e| ImportError::File(format!("cannot open {}: {e}", path.display())))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((file, len))
}
