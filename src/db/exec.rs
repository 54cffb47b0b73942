//! The database's reading threads: every read a request makes runs here,
//! off the async workers, on a connection that only reads.
//!
//! A small, fixed set of threads each keeps one connection of its own and
//! takes jobs from one shared queue. Compared with a blocking-pool task
//! plus a pool checkout per call, a job costs one hand-over to a thread
//! that usually is already awake and one wake-up of the waiting request,
//! and no two threads fight over a pool's lock.
//!
//! The connections refuse to write (`PRAGMA query_only` on SQLite, read-only
//! transactions on PostgreSQL): writes go through `db::writer`, so a write
//! that strayed here fails loudly in the tests instead of competing with
//! the writer for SQLite's one write lock.
//!
//! A connection that failed a job is checked before it is used again and
//! replaced when it no longer answers, so a restarted database server is
//! picked up again without restarting Custos.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::connection::{
    AnsiTransactionManager, SimpleConnection, TransactionManager, TransactionManagerStatus,
};

use super::{ConnectionManager, DbConn, DbError};

/// A job runs with the thread's connection, or with the reason there is
/// none; it answers whether it failed (so the connection gets checked).
type Job = Box<dyn FnOnce(Result<&mut DbConn, DbError>) -> bool + Send>;

struct Shared {
    jobs: crossbeam_channel::Receiver<Job>,
    manager: ConnectionManager,
    /// Threads waiting for a job.
    idle: AtomicUsize,
    /// Threads started so far (at most `max`).
    started: AtomicUsize,
    max: usize,
}

/// The queue in front of the reading threads. Cloning shares it; the
/// threads end once the last clone is gone.
#[derive(Clone)]
pub struct Readers {
    queue: crossbeam_channel::Sender<Job>,
    shared: Arc<Shared>,
}

impl Readers {
    /// Up to `threads` reading threads, started as the load asks for them.
    pub fn new(manager: ConnectionManager, threads: usize) -> Self {
        let (queue, jobs) = crossbeam_channel::unbounded();
        Self {
            queue,
            shared: Arc::new(Shared {
                jobs,
                manager,
                idle: AtomicUsize::new(0),
                started: AtomicUsize::new(0),
                max: threads.max(1),
            }),
        }
    }

    /// Runs `f` on a reading thread; resolves with its result.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Ok(conn) => f(conn),
                Err(e) => Err(E::from(e)),
            };
            let failed = result.is_err();
            // The caller may have gone (client disconnected): nothing to do.
            let _ = reply.send(result);
            failed
        });
        self.queue
            .send(job)
            .map_err(|_| E::from(DbError::Cancelled))?;
        self.start_thread_if_all_busy();
        answer.await.map_err(|_| E::from(DbError::Cancelled))?
    }

    fn start_thread_if_all_busy(&self) {
        let shared = &self.shared;
        if shared.idle.load(Ordering::Acquire) > 0 {
            return;
        }
        let started = shared.started.fetch_add(1, Ordering::AcqRel);
        if started >= shared.max {
            shared.started.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let for_thread = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("custos-db-read".into())
            .spawn(move || reader_loop(&for_thread));
        if let Err(e) = spawned {
            shared.started.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(error = %e, "cannot start a database thread");
        }
    }
}

fn reader_loop(shared: &Shared) {
    let mut conn: Option<DbConn> = None;
    loop {
        shared.idle.fetch_add(1, Ordering::AcqRel);
        let job = shared.jobs.recv();
        shared.idle.fetch_sub(1, Ordering::AcqRel);
        // Every sender is gone: the database is closed.
        let Ok(job) = job else { return };
        if conn.is_none() {
            match shared.manager.connect_reader() {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    job(Err(DbError::Connect(e)));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let outcome = catch_unwind(AssertUnwindSafe(|| job(Ok(&mut *c))));
        let keep = match outcome {
            Ok(false) => true,
            Ok(true) => still_usable(c),
            Err(_) => {
                tracing::error!("a database read panicked; its connection is replaced");
                false
            }
        };
        if !keep {
            conn = None;
        }
    }
}

/// After a failed job: whether the connection still answers and is not
/// stuck in a broken transaction.
pub(super) fn still_usable(conn: &mut DbConn) -> bool {
    let in_error = match conn {
        DbConn::Pg(c) => matches!(
            AnsiTransactionManager::transaction_manager_status_mut(c),
            TransactionManagerStatus::InError
        ),
        DbConn::Sqlite(c) => matches!(
            AnsiTransactionManager::transaction_manager_status_mut(c),
            TransactionManagerStatus::InError
        ),
    };
    !in_error && conn.batch_execute("SELECT 1").is_ok()
}
