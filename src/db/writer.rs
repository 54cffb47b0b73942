//! Group commit: the small writes of requests (audit rows, API quota
//! checks, session expiry extensions) share transactions instead of each
//! taking the write lock and committing alone.
//!
//! One writer thread per database takes the queued writes, runs all that
//! are waiting in one write transaction, commits once, and only then tells
//! each caller its result. A caller therefore learns "written" only when
//! its row is durable, exactly as with a transaction of its own: data shown
//! after an audit write is still shown only once the audit row is committed
//! (fail closed).
//!
//! Why: SQLite allows one writer at a time, and a connection that finds the
//! lock taken sleeps in SQLite's busy handler (1, 2, 5, 10 ms ...), so many
//! request threads each writing alone queue up behind sleeps and commits.
//! Here writes that arrive while a batch commits wait for the next one, so
//! the cost of a commit is shared by everything that arrived meanwhile. On
//! PostgreSQL it saves a commit (a WAL flush) per request in the same way.
//!
//! The API calls of a batch are decided per user (`quota::take_batches`:
//! on PostgreSQL all users in one call of a server-side function, on
//! SQLite statement by statement), in ascending user order, so that
//! batches of two instances on one PostgreSQL database take the users'
//! quota rows in the same order and never deadlock. On SQLite any other
//! write of the server also comes here as a closure, run in a savepoint
//! of the batch so that one failing write does not undo the others; on
//! PostgreSQL such writes run in transactions of their own
//! (`Database::write`), which PostgreSQL runs side by side.
//!
//! A batch first runs everything straight in its transaction; only if a
//! statement fails is it undone and run again with each user's calls in
//! a savepoint of their own (savepoints copy every page they touch, which
//! was a tenth of the writer's time when every user had one).
//!
//! Before counting, a batch reads `app_state.auth_version` once and checks
//! again the token of every call that was accepted under an older one
//! (`auth::token_cache`), so a token revoked meanwhile gets no data.
//!
//! On SQLite the writer's connection never checkpoints the write-ahead log
//! itself (that would stall every waiting request behind an fsync): a
//! checkpoint thread does it beside the writer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::connection::{Connection, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use tokio::sync::oneshot;

use super::{ConnectionManager, DbConn, DbError, write_transaction};
use crate::auth::token_cache::{self, TokenCache, TokenProof};
use crate::auth::tokens::{self, TokenCheck};
use crate::config::Rate;
use crate::db::models::NewAuditEntry;
use crate::db::schema::{api_tokens, sessions};
use crate::quota::{self, QuotaDecision};

/// Writes batched into one transaction at most (bounds how long one
/// commit keeps the callers of a batch waiting).
const MAX_BATCH: usize = 512;
/// How often the checkpoint thread copies the write-ahead log back into
/// the database file (SQLite), when anything was committed meanwhile.
/// Small and often: each checkpoint ends with an fsync of the database
/// file, and requests in flight stall behind it in proportion to what it
/// copied (every 250 ms the detail line's p99 was 20 ms, every 20 ms
/// 12 ms, at the same throughput; BENCHMARKS.md).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(20);
/// Write-ahead log frames (pages) after which the checkpoint thread waits
/// for a moment without readers to start the log over (about 64 MB; the
/// file stays at a bounded size of a few times that).
/// Passive checkpoints copy pages back but cannot restart the log while
/// reads overlap without a pause, as they do under steady load, so
/// without this the log file only grows.
const RESTART_AFTER_FRAMES: i64 = 16_384;
/// How long a RESTART checkpoint may hold writes back waiting for readers.
const RESTART_WAIT: Duration = Duration::from_millis(20);

/// What `PRAGMA wal_checkpoint` answers.
#[derive(diesel::QueryableByName)]
struct CheckpointResult {
    /// Frames in the log.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    log: i64,
    /// Frames of it already copied back into the database.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    checkpointed: i64,
}

/// Why a batch did not commit, handed to each of its callers.
#[derive(Debug, Clone)]
pub struct BatchFailure {
    pub message: String,
    /// The database was unreachable or locked (the callers answer 503).
    pub unavailable: bool,
}

impl BatchFailure {
    fn of(e: &DbError) -> Self {
        Self {
            message: e.to_string(),
            unavailable: e.is_unavailable(),
        }
    }
}

/// One API request to count against its user's quota and, if allowed,
/// audit (both in the same transaction).
#[derive(Debug)]
pub struct ApiCall {
    /// The token it was accepted with, checked again in the batch if the
    /// auth version moved since (`auth::token_cache`).
    pub token: TokenProof,
    pub user_id: i64,
    pub rate: Rate,
    /// The audit row, written only when the call is allowed.
    pub audit: Option<NewAuditEntry>,
    /// A token whose last use is to be recorded (at most once a minute).
    pub touch_token: Option<i64>,
}

/// What became of an API call in its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiOutcome {
    /// The token still passed; the quota decided.
    Decided(QuotaDecision),
    /// Checked again, the token no longer passes (revoked, expired,
    /// deleted): nothing was counted or audited.
    TokenInvalid,
    /// Checked again, its user has been deactivated.
    UserInactive,
}

type Reply<T> = oneshot::Sender<Result<T, DbError>>;
/// Tells the caller of a closure how its batch ended.
type Deliver = Box<dyn FnOnce(Result<(), BatchFailure>) + Send>;
/// A queued write: runs in the batch (or, given no connection, does not)
/// and says how to tell its caller the outcome.
type WriteFn = Box<dyn FnOnce(Option<&mut DbConn>) -> Deliver + Send>;

enum Job {
    /// Any write (SQLite only), in a savepoint of the batch.
    /// Given no connection, it is not run and answers the batch's failure.
    Closure(WriteFn),
    Audit(NewAuditEntry, Reply<()>),
    Api(ApiCall, Reply<ApiOutcome>),
    /// Moves a live session's expiry to `expires_at`.
    Session(String, NaiveDateTime, Reply<()>),
}

/// The queue in front of the writer thread. Cloning shares the queue; the
/// thread ends when the last clone is gone.
#[derive(Clone)]
pub struct GroupWriter {
    queue: crossbeam_channel::Sender<Job>,
}

/// What the writer thread keeps besides its connection.
struct Context {
    manager: ConnectionManager,
    tokens: Arc<TokenCache>,
    /// Batches committed so far (the checkpoint thread skips its turn
    /// when none was since the last).
    commits: Arc<AtomicU64>,
}

impl GroupWriter {
    /// Starts the writer thread (and on SQLite its checkpoint thread).
    pub fn start(manager: ConnectionManager, tokens: Arc<TokenCache>) -> Result<Self, DbError> {
        let (queue, jobs) = crossbeam_channel::unbounded::<Job>();
        let commits = Arc::new(AtomicU64::new(0));
        let checkpoints = if manager.is_sqlite() {
            Some(start_checkpoints(manager.clone(), commits.clone())?)
        } else {
            None
        };
        std::thread::Builder::new()
            .name("custos-db-write".into())
            .spawn(move || {
                writer_loop(
                    &Context {
                        manager,
                        tokens,
                        commits,
                    },
                    &jobs,
                );
                // Ends the checkpoint thread.
                drop(checkpoints);
            })
            .map_err(|e| DbError::Migration(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { queue })
    }

    async fn submit<T>(&self, make: impl FnOnce(Reply<T>) -> Job) -> Result<T, DbError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(make(reply))
            .map_err(|_| DbError::Cancelled)?;
        answer.await.map_err(|_| DbError::Cancelled)?
    }

    /// Records an audit row; resolves once it is committed.
    pub async fn audit(&self, entry: NewAuditEntry) -> Result<(), DbError> {
        self.submit(|reply| Job::Audit(entry, reply)).await
    }

    /// Counts an API call and writes its audit row if it is allowed;
    /// resolves with the quota's decision once committed.
    pub async fn api_call(&self, call: ApiCall) -> Result<ApiOutcome, DbError> {
        self.submit(|reply| Job::Api(call, reply)).await
    }

    /// Extends a session that has not ended to `expires_at`.
    pub async fn extend_session(
        &self,
        id_hash: String,
        expires_at: NaiveDateTime,
    ) -> Result<(), DbError> {
        self.submit(|reply| Job::Session(id_hash, expires_at, reply))
            .await
    }

    /// Runs `f` in a savepoint of the next batch (SQLite); resolves once
    /// the batch has committed, or with the error that stopped it.
    pub async fn closure<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, E>>();
        let job = Job::Closure(Box::new(move |conn: Option<&mut DbConn>| {
            let result = conn.map(|conn| in_savepoint(conn, f));
            Box::new(move |committed: Result<(), BatchFailure>| {
                let outcome = match (committed, result) {
                    (Ok(()), Some(result)) => result,
                    (Err(failure), _) => Err(E::from(DbError::Batch(failure))),
                    (Ok(()), None) => Err(E::from(DbError::Cancelled)),
                };
                let _ = reply.send(outcome);
            })
        }));
        self.queue
            .send(job)
            .map_err(|_| E::from(DbError::Cancelled))?;
        answer.await.map_err(|_| E::from(DbError::Cancelled))?
    }
}

/// Runs `f` in a savepoint of the batch's transaction (`write_transaction`
/// nests as one): its writes are undone if it fails (or panics), and the
/// batch goes on.
fn in_savepoint<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<DbError> + From<diesel::result::Error>,
{
    type Manager = <DbConn as Connection>::TransactionManager;
    match catch_unwind(AssertUnwindSafe(|| write_transaction(&mut *conn, f))) {
        Ok(result) => result,
        Err(_) => {
            // The panic left the savepoint open.
            let _ = Manager::rollback_transaction(conn);
            tracing::error!("a queued database write panicked; it was rolled back");
            Err(E::from(DbError::Cancelled))
        }
    }
}

fn writer_loop(context: &Context, jobs: &crossbeam_channel::Receiver<Job>) {
    let mut conn: Option<DbConn> = None;
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if conn.is_none() {
            match context.manager.connect_writer() {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    fail_all(batch, &BatchFailure::of(&DbError::Connect(e)));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let outcome = catch_unwind(AssertUnwindSafe(|| run_batch(c, batch, &context.tokens)));
        // After a failed batch, keep the connection only if it still
        // answers (a restarted server needs a new one).
        let keep = match outcome {
            Ok(true) => {
                context.commits.fetch_add(1, Ordering::Release);
                true
            }
            Ok(false) => super::exec::still_usable(c),
            Err(_) => {
                tracing::error!("a group commit panicked; its connection is replaced");
                false
            }
        };
        if !keep {
            conn = None;
        }
    }
}

/// What a batch owes its callers once it has ended.
#[derive(Default)]
struct Outcomes {
    closures: Vec<Deliver>,
    done: Vec<Reply<()>>,
    decided: Vec<(Reply<ApiOutcome>, Result<ApiOutcome, DbError>)>,
}

impl Outcomes {
    fn deliver(self, committed: Result<(), BatchFailure>) {
        for deliver in self.closures {
            deliver(committed.clone());
        }
        for reply in self.done {
            let _ = reply.send(committed.clone().map_err(DbError::Batch));
        }
        for (reply, result) in self.decided {
            let outcome = match &committed {
                Ok(()) => result,
                Err(failure) => Err(DbError::Batch(failure.clone())),
            };
            let _ = reply.send(outcome);
        }
    }
}

/// Starts the batch's transaction (on SQLite taking the write lock now).
fn begin(conn: &mut DbConn) -> diesel::QueryResult<()> {
    type Manager = <DbConn as Connection>::TransactionManager;
    match conn {
        DbConn::Sqlite(c) => {
            diesel::connection::AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        DbConn::Pg(_) => Manager::begin_transaction(&mut *conn),
    }
}

/// What the batch made of one API call so far (None: not decided yet).
type Verdict = Option<Result<ApiOutcome, DbError>>;

/// Runs one batch in one transaction and answers its callers; false if it
/// did not commit.
fn run_batch(conn: &mut DbConn, batch: Vec<Job>, tokens: &TokenCache) -> bool {
    type Manager = <DbConn as Connection>::TransactionManager;
    let mut outcomes = Outcomes::default();
    let mut closures = Vec::new();
    let mut audits = Vec::new();
    let mut api = Vec::new();
    let mut extensions = Vec::new();
    for job in batch {
        match job {
            Job::Closure(f) => closures.push(f),
            Job::Audit(entry, reply) => {
                audits.push(entry);
                outcomes.done.push(reply);
            }
            Job::Api(call, reply) => api.push((call, reply)),
            Job::Session(id, expires_at, reply) => {
                extensions.push((id, expires_at));
                outcomes.done.push(reply);
            }
        }
    }
    // Users in ascending order (stable: each user's calls keep their order
    // of arrival), so that batches of two instances take rows in one order.
    api.sort_by_key(|(call, _)| call.user_id);
    let (calls, replies): (Vec<ApiCall>, Vec<Reply<ApiOutcome>>) = api.into_iter().unzip();
    let calls: Vec<&ApiCall> = calls.iter().collect();
    extensions.sort();
    let mut verdicts: Vec<Verdict> = (0..calls.len()).map(|_| None).collect();
    let mut pending = closures.into_iter();
    let written = begin(conn).map_err(DbError::from).and_then(|()| {
        recheck_tokens(conn, &calls, tokens, &mut verdicts)?;
        let passing: Vec<usize> = (0..calls.len())
            .filter(|&i| verdicts[i].is_none())
            .collect();
        let passed: Vec<&ApiCall> = passing.iter().map(|&i| calls[i]).collect();
        // Everything straight in the transaction first. Should any of it
        // fail, it is undone and done again with each user's calls in a
        // savepoint of their own, so one user's failure fails only theirs
        // (savepoints cost a copy of every page they touch, so they are
        // kept for that rare case).
        let decisions = match write_together(conn, &passed, &audits, &extensions) {
            Ok(decisions) => decisions.into_iter().map(Ok).collect(),
            // An unreachable database would fail the retry the same way.
            Err(e) if e.is_unavailable() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "a group commit is retried user by user");
                // Should undoing or starting again fail, the first cause
                // is the one worth reporting.
                if Manager::rollback_transaction(conn).is_err() || begin(conn).is_err() {
                    return Err(e);
                }
                let decisions = decide_calls(conn, &passed)?;
                crate::audit::insert_many(conn, &audits)?;
                extend_sessions(conn, &extensions)?;
                decisions
            }
        };
        for (i, decision) in passing.into_iter().zip(decisions) {
            verdicts[i] = Some(decision.map(ApiOutcome::Decided));
        }
        // Other writes last, each in a savepoint: one that fails is undone
        // alone, and nothing after them could need them undone.
        for f in pending.by_ref() {
            outcomes.closures.push(f(Some(&mut *conn)));
        }
        Manager::commit_transaction(conn)?;
        Ok(())
    });
    // Writes not run because the batch stopped first.
    for f in pending {
        outcomes.closures.push(f(None));
    }
    for (reply, verdict) in replies.into_iter().zip(verdicts) {
        outcomes
            .decided
            .push((reply, verdict.unwrap_or(Err(DbError::Cancelled))));
    }
    let committed = written.map_err(|e| {
        let _ = Manager::rollback_transaction(conn);
        tracing::error!(error = %e, "a group commit failed");
        BatchFailure::of(&e)
    });
    let ok = committed.is_ok();
    outcomes.deliver(committed);
    ok
}

/// Checks again the tokens of calls looked up under an auth version that
/// is no longer current (a token or user changed meanwhile): the verdict
/// of a call whose token no longer passes is set here.
fn recheck_tokens(
    conn: &mut DbConn,
    calls: &[&ApiCall],
    tokens: &TokenCache,
    verdicts: &mut [Verdict],
) -> Result<(), DbError> {
    if calls.is_empty() {
        return Ok(());
    }
    let current = token_cache::auth_version(conn)?;
    if let Some(version) = current {
        tokens.observe(version);
    }
    for (call, verdict) in calls.iter().zip(verdicts.iter_mut()) {
        if current.is_some() && call.token.version == current {
            continue;
        }
        let check = tokens::find_by_hash(conn, &call.token.hash)?
            .map(|(token, user)| tokens::judge(token, user, super::now()));
        *verdict = match check {
            Some(TokenCheck::Valid { user, .. }) if user.id == call.user_id => None,
            Some(TokenCheck::Inactive) => Some(Ok(ApiOutcome::UserInactive)),
            _ => Some(Ok(ApiOutcome::TokenInvalid)),
        };
    }
    Ok(())
}

/// The batch's API calls (sorted by user), audit rows and session
/// extensions, all in the transaction itself; the quota decisions in the
/// order of `calls`.
fn write_together(
    conn: &mut DbConn,
    calls: &[&ApiCall],
    audits: &[NewAuditEntry],
    extensions: &[(String, NaiveDateTime)],
) -> Result<Vec<QuotaDecision>, DbError> {
    let mut decisions = Vec::with_capacity(calls.len());
    let mut rows = audits.to_vec();
    let groups: Vec<&[&ApiCall]> = user_groups(calls).collect();
    let wanted: Vec<(i64, Rate, usize)> = groups
        .iter()
        .map(|group| (group[0].user_id, group[0].rate, group.len()))
        .collect();
    let decided = quota::take_batches(conn, &wanted)?;
    for (group, decided) in groups.into_iter().zip(decided) {
        rows.extend(
            group
                .iter()
                .zip(&decided)
                .filter(|(_, decision)| decision.is_allowed())
                .filter_map(|(call, _)| call.audit.clone()),
        );
        decisions.extend(decided);
    }
    crate::audit::insert_many(conn, &rows)?;
    touch_tokens(conn, due_tokens(calls))?;
    extend_sessions(conn, extensions)?;
    Ok(decisions)
}

/// Runs of calls (sorted by user) that share a user and a rate.
fn user_groups<'a>(calls: &'a [&'a ApiCall]) -> impl Iterator<Item = &'a [&'a ApiCall]> {
    calls.chunk_by(|a, b| a.user_id == b.user_id && a.rate == b.rate)
}

/// The calls' tokens whose last use is due to be recorded, in id order.
fn due_tokens(calls: &[&ApiCall]) -> Vec<i64> {
    let mut touched: Vec<i64> = calls.iter().filter_map(|c| c.touch_token).collect();
    touched.sort_unstable();
    touched.dedup();
    touched
}

/// Records the last use of `touched` tokens (after the quota rows, as
/// every batch does, so that batches of two instances take rows in one
/// order).
fn touch_tokens(conn: &mut DbConn, touched: Vec<i64>) -> Result<(), DbError> {
    let at = super::now();
    for token_id in touched {
        super::on_backend!(conn, c => diesel::update(api_tokens::table.find(token_id))
            .set(api_tokens::last_used_at.eq(Some(at)))
            .execute(c))?;
    }
    Ok(())
}

/// Decides the batch's API calls (sorted by user), user by user, each
/// user's calls in a savepoint, so one user's failure fails only theirs;
/// a result per call, in the order of `calls`.
fn decide_calls(
    conn: &mut DbConn,
    calls: &[&ApiCall],
) -> Result<Vec<Result<QuotaDecision, DbError>>, DbError> {
    let mut results = Vec::with_capacity(calls.len());
    for group in user_groups(calls) {
        let (user_id, rate) = (group[0].user_id, group[0].rate);
        let decided = write_transaction(conn, |conn| {
            let decisions = quota::take_batch(conn, user_id, rate, group.len())?;
            let allowed: Vec<NewAuditEntry> = group
                .iter()
                .zip(&decisions)
                .filter(|(_, decision)| decision.is_allowed())
                .filter_map(|(call, _)| call.audit.clone())
                .collect();
            crate::audit::insert_many(conn, &allowed)?;
            Ok::<_, diesel::result::Error>(decisions)
        });
        match decided {
            Ok(decisions) => results.extend(decisions.into_iter().map(Ok)),
            Err(e) => {
                let failure = BatchFailure::of(&DbError::from(e));
                tracing::error!(user_id, error = %failure.message, "an API quota check failed");
                results.extend(group.iter().map(|_| Err(DbError::Batch(failure.clone()))));
            }
        }
    }
    touch_tokens(conn, due_tokens(calls))?;
    Ok(results)
}

/// Moves live sessions' expiries forward (sorted by id: the same lock
/// order on every instance).
fn extend_sessions(
    conn: &mut DbConn,
    extensions: &[(String, NaiveDateTime)],
) -> Result<(), DbError> {
    let at = super::now();
    for (id, expires_at) in extensions {
        super::on_backend!(conn, c => diesel::update(
            sessions::table
                .find(id)
                .filter(sessions::expires_at.gt(at))
                .filter(sessions::expires_at.lt(*expires_at)),
        )
        .set(sessions::expires_at.eq(*expires_at))
        .execute(c))?;
    }
    Ok(())
}

/// Answers every caller of a batch that could not start.
fn fail_all(batch: Vec<Job>, failure: &BatchFailure) {
    tracing::error!(error = %failure.message, writes = batch.len(), "a group commit could not start");
    for job in batch {
        match job {
            Job::Closure(f) => f(None)(Err(failure.clone())),
            Job::Audit(_, reply) | Job::Session(_, _, reply) => {
                let _ = reply.send(Err(DbError::Batch(failure.clone())));
            }
            Job::Api(_, reply) => {
                let _ = reply.send(Err(DbError::Batch(failure.clone())));
            }
        }
    }
}

/// Starts the thread that checkpoints the write-ahead log (SQLite). It
/// ends when the returned sender is dropped.
fn start_checkpoints(
    manager: ConnectionManager,
    commits: Arc<AtomicU64>,
) -> Result<crossbeam_channel::Sender<()>, DbError> {
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    std::thread::Builder::new()
        .name("custos-db-checkpoint".into())
        .spawn(move || {
            let mut conn: Option<DbConn> = None;
            let mut seen = 0;
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                let committed = commits.load(Ordering::Acquire);
                if committed == seen {
                    continue;
                }
                if conn.is_none() {
                    conn = manager.connect_writer().ok().and_then(|mut c| {
                        let wait = format!("PRAGMA busy_timeout = {};", RESTART_WAIT.as_millis());
                        c.batch_execute(&wait).ok().map(|()| c)
                    });
                }
                let Some(c) = conn.as_mut() else { continue };
                // PASSIVE: copies what it can without waiting for, or
                // blocking, the writer and the readers. When the log has
                // grown long, RESTART waits for the readers of older
                // snapshots to finish, holding new writes back meanwhile,
                // so the next write starts the log file over from its
                // beginning (reused, not truncated: freeing and growing a
                // large file again stalled writes); it waits at most
                // RESTART_WAIT for that (else it tries again next time),
                // so writes are never held back longer.
                let passive =
                    diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").load::<CheckpointResult>(c);
                let ok = match passive {
                    // Only once everything is copied back: then the restart
                    // has no pages to write and sync while writes wait.
                    Ok(rows)
                        if rows
                            .iter()
                            .any(|r| r.log >= RESTART_AFTER_FRAMES && r.checkpointed == r.log) =>
                    {
                        c.batch_execute("PRAGMA wal_checkpoint(RESTART)").is_ok()
                    }
                    Ok(rows) => {
                        // Everything copied: nothing to do until the next
                        // commit (else try again next time).
                        if rows.iter().all(|r| r.checkpointed == r.log) {
                            seen = committed;
                        }
                        true
                    }
                    Err(_) => false,
                };
                if !ok {
                    conn = None;
                }
            }
        })
        .map_err(|e| DbError::Migration(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(stop)
}
