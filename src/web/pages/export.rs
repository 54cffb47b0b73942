//! `/customers/export.csv`: the full filtered, ordered result in the
//! import format, streamed.
//!
//! The rows are read on the blocking pool in keyset batches and sent in
//! chunks through a small bounded channel, so memory stays constant however
//! many rows match and a slow client slows the reader instead of filling
//! memory. At most two exports run per user at a time.

use std::io;

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::customers::{actor, customer_query};
use super::export_limit::ExportSlot;
use crate::audit::{self, AuditEvent, AuditKind};
use crate::auth::AuthUser;
use crate::db::models::Customer;
use crate::db::{Database, DbError};
use crate::import::CUSTOMER_COLUMNS;
use crate::import::validate::format_timestamp;
use crate::query::CustomerFilter;
use crate::web::AppState;
use crate::web::error::PageError;
use crate::web::middleware::ClientInfo;

/// Rows read by the first query (so the download starts at once) and by
/// each later one. Large batches keep the number of queries low: with a
/// filter on another column the database may sort the matching rows again
/// for every batch. 5 000 rows are about 2 MB as rows and 0.5 MB as CSV, so
/// an export's memory stays well under the 20 MB it is allowed to grow.
const FIRST_BATCH_ROWS: i64 = 1000;
const BATCH_ROWS: i64 = 5_000;
/// Chunks waiting to be sent (each about one batch of CSV).
const CHANNEL_CHUNKS: usize = 2;
/// Suggested wait when the export limit is reached.
const RETRY_AFTER_SECS: u64 = 30;

type Chunk = Result<Bytes, io::Error>;

/// Why the export stopped early.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error("the client went away")]
    ClientGone,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    #[error("csv: {0}")]
    Io(#[from] io::Error),
}

impl From<diesel::result::Error> for Stop {
    fn from(e: diesel::result::Error) -> Self {
        Stop::Db(DbError::from(e))
    }
}

/// One customer in the import format's column order.
fn record(c: &Customer) -> [String; 10] {
    [
        c.id.to_string(),
        c.operator_id.to_string(),
        c.full_name.clone(),
        c.email.clone(),
        c.phone.clone(),
        c.city.clone(),
        c.country.clone(),
        c.plan.clone(),
        c.status.clone(),
        format_timestamp(&c.created_at),
    ]
}

/// CSV text for some records, quoted as needed.
fn to_csv<I, R>(records: I) -> Result<Vec<u8>, Stop>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator,
    R::Item: AsRef<[u8]>,
{
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(128 * 1024));
    for r in records {
        writer.write_record(r)?;
    }
    writer
        .into_inner()
        .map_err(|e| Stop::Io(io::Error::other(e.to_string())))
}

/// Hands a chunk to the response; fails when the client is gone.
fn send(bytes: Vec<u8>, tx: &mpsc::Sender<Chunk>) -> Result<(), Stop> {
    tx.blocking_send(Ok(Bytes::from(bytes)))
        .map_err(|_| Stop::ClientGone)
}

/// Writes the whole export into the channel (on a blocking thread).
fn produce(db: &Database, filter: &CustomerFilter, tx: &mpsc::Sender<Chunk>) -> Result<u64, Stop> {
    send(to_csv([CUSTOMER_COLUMNS])?, tx)?;
    let mut last: Option<Customer> = None;
    let mut rows = 0u64;
    loop {
        let batch = {
            let mut conn = db.get()?;
            let limit = if last.is_none() {
                FIRST_BATCH_ROWS
            } else {
                BATCH_ROWS
            };
            filter.batch_after(&mut conn, last.as_ref(), limit)?
        };
        let Some(tail) = batch.last().cloned() else {
            break;
        };
        rows += batch.len() as u64;
        send(to_csv(batch.iter().map(record))?, tx)?;
        last = Some(tail);
    }
    Ok(rows)
}

fn run_export(
    db: Database,
    filter: CustomerFilter,
    tx: mpsc::Sender<Chunk>,
    slot: ExportSlot,
    request_id: String,
) {
    match produce(&db, &filter, &tx) {
        Ok(rows) => tracing::info!(%request_id, rows, "export finished"),
        Err(Stop::ClientGone) => tracing::info!(%request_id, "export abandoned by the client"),
        Err(e) => {
            tracing::error!(%request_id, error = %e, "export failed");
            // Abort the response so the client sees a failed download, not
            // a silently truncated file.
            let _ = tx.blocking_send(Err(io::Error::other("export failed")));
        }
    }
    drop(slot);
}

pub async fn export_csv(
    user: AuthUser,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let result = export_csv_page(&user, &req, &state).await;
    super::user_error::or_page(&user, &req, result)
}

async fn export_csv_page(
    user: &AuthUser,
    req: &HttpRequest,
    state: &AppState,
) -> Result<HttpResponse, PageError> {
    let (_, filter) = customer_query(req)?;
    let slot = state
        .db
        .exports()
        .try_acquire(user.id())
        .ok_or(PageError::TooManyRequests {
            retry_after: RETRY_AFTER_SECS,
        })?;
    let f = filter.clone();
    let counts = state.db.counts();
    let expected = state
        .db
        .run(move |conn| counts.count(conn, &f).map_err(DbError::from))
        .await?;
    let event = AuditEvent::new(AuditKind::Export, actor(user))
        .rows(expected)
        .detail(format!("customers CSV export, {expected} rows"));
    audit::record(state, req, event).await?;

    let (tx, rx) = mpsc::channel::<Chunk>(CHANNEL_CHUNKS);
    let db = state.db.clone();
    let request_id = ClientInfo::of(req).request_id;
    tokio::task::spawn_blocking(move || run_export(db, filter, tx, slot, request_id));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Ok(crate::web::csv_attachment("customers", body))
}
