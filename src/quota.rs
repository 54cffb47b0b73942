//! API request limits: the per-user quota in the database and the
//! per-address limit on anonymous API traffic in memory.
//!
//! The user quota has Django REST framework's `SimpleRateThrottle` meaning
//! (a rolling window: at most `N` counted requests in any `period`, one
//! `api_requests` row per counted request), but is kept in the database
//! instead of a cache, so it survives restarts, holds across every
//! instance sharing one database, and is exact under concurrency.
//!
//! Each user's `api_quota` row keeps a running count of their requests in
//! the window, so a check costs the same whether the window holds ten
//! requests or a million: only the requests that left the window since the
//! last check are counted (one short index range). Checks run in write
//! transactions that hold the user's row: on SQLite the whole database is
//! held (`BEGIN IMMEDIATE`), on PostgreSQL the row is locked `FOR UPDATE`,
//! always in ascending user order so that batches of several users never
//! deadlock. The writer (`db::writer`) decides all waiting requests of one
//! user in one go (`take_batch`). Throttled requests are not recorded, as
//! in DRF.
//!
//! Timestamps come from the application's clock (UTC), so instances sharing
//! a database need synchronised clocks (NTP), as any cluster does.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Timestamp};

use crate::config::Rate;
use crate::db::schema::{api_quota, api_requests};
use crate::db::{DbConn, now, write_transaction};

/// The outcome of taking one request from a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Counted; `remaining` more requests fit in the window now.
    Allowed { limit: u32, remaining: u32 },
    /// Over the limit; the next request fits in `wait_secs` seconds.
    Throttled { limit: u32, wait_secs: u64 },
}

impl QuotaDecision {
    pub fn limit(&self) -> u32 {
        match self {
            QuotaDecision::Allowed { limit, .. } | QuotaDecision::Throttled { limit, .. } => *limit,
        }
    }
    pub fn remaining(&self) -> u32 {
        match self {
            QuotaDecision::Allowed { remaining, .. } => *remaining,
            QuotaDecision::Throttled { .. } => 0,
        }
    }
    pub fn is_allowed(&self) -> bool {
        matches!(self, QuotaDecision::Allowed { .. })
    }
}

/// Whole seconds (rounded up, at least 1) until `leaves_at`: DRF's
/// `math.ceil(wait)`.
fn ceil_secs(wait: chrono::Duration) -> u64 {
    let micros = wait.num_microseconds().unwrap_or(i64::MAX).max(0);
    let secs = micros / 1_000_000 + i64::from(micros % 1_000_000 != 0);
    u64::try_from(secs).unwrap_or(u64::MAX).max(1)
}

fn period_of(rate: Rate) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(rate.period_secs).unwrap_or(86_400))
}

/// A user's running count: `count` requests with `requested_at` after
/// `counted_after`.
#[derive(Debug, Clone, Copy)]
struct Counter {
    count: i64,
    counted_after: NaiveDateTime,
}

/// Reads the user's counter, holding its row for the rest of the
/// transaction (PostgreSQL: `FOR UPDATE`; SQLite: the transaction already
/// holds the database).
fn read_counter(conn: &mut DbConn, user_id: i64) -> QueryResult<Option<Counter>> {
    let q = api_quota::table
        .find(user_id)
        .select((api_quota::window_count, api_quota::counted_after));
    let row: Option<(i64, NaiveDateTime)> = match conn {
        DbConn::Pg(c) => q.for_update().first(c).optional()?,
        DbConn::Sqlite(c) => q.first(c).optional()?,
    };
    Ok(row.map(|(count, counted_after)| Counter {
        count,
        counted_after,
    }))
}

/// The user's counter, creating the row on the user's first request.
fn lock_counter(conn: &mut DbConn, user_id: i64) -> QueryResult<Counter> {
    if let Some(counter) = read_counter(conn, user_id)? {
        return Ok(counter);
    }
    let row = (
        api_quota::user_id.eq(user_id),
        api_quota::touched_at.eq(now()),
        api_quota::window_count.eq(0),
        api_quota::counted_after.eq(chrono::DateTime::UNIX_EPOCH.naive_utc()),
    );
    // Two instances may race to create the row: the loser's insert does
    // nothing, and its read below waits for the winner's row.
    match conn {
        DbConn::Pg(c) => diesel::insert_into(api_quota::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c)?,
        DbConn::Sqlite(c) => diesel::insert_into(api_quota::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c)?,
    };
    read_counter(conn, user_id)?.ok_or(diesel::result::Error::NotFound)
}

/// The number of the user's requests inside the window that starts at
/// `window_start`, from the counter. Only the requests that left the
/// window since the last check are counted. A window that starts earlier
/// than the counted one (a longer rate after a restart, a clock set back)
/// is counted in full.
fn count_in_window(
    conn: &mut DbConn,
    user_id: i64,
    counter: Counter,
    window_start: NaiveDateTime,
) -> QueryResult<i64> {
    let mine = api_requests::table.filter(api_requests::user_id.eq(user_id));
    if window_start == counter.counted_after {
        Ok(counter.count)
    } else if window_start > counter.counted_after {
        let left: i64 = crate::db::on_backend!(conn, c => mine
            .filter(api_requests::requested_at.gt(counter.counted_after))
            .filter(api_requests::requested_at.le(window_start))
            .count()
            .get_result(c))?;
        Ok(counter.count - left)
    } else {
        crate::db::on_backend!(conn, c => mine
            .filter(api_requests::requested_at.gt(window_start))
            .count()
            .get_result(c))
    }
}

fn store_counter(
    conn: &mut DbConn,
    user_id: i64,
    count: i64,
    counted_after: NaiveDateTime,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    crate::db::on_backend!(conn, c => diesel::update(api_quota::table.find(user_id))
        .set((
            api_quota::window_count.eq(count),
            api_quota::counted_after.eq(counted_after),
            api_quota::touched_at.eq(at),
        ))
        .execute(c))
}

/// Decides `n` concurrent requests of one user against `rate`, in order,
/// inside the caller's write transaction: the first ones that fit are
/// counted (one history row each), the rest are throttled with DRF's wait.
pub fn take_batch(
    conn: &mut DbConn,
    user_id: i64,
    rate: Rate,
    n: usize,
) -> QueryResult<Vec<QuotaDecision>> {
    let limit = i64::from(rate.requests);
    let period = period_of(rate);
    let counter = lock_counter(conn, user_id)?;
    // Read the clock only once the row is held.
    let at = now();
    let window_start = at - period;
    let before = count_in_window(conn, user_id, counter, window_start)?;
    let allowed = usize::try_from((limit - before).max(0))
        .unwrap_or(usize::MAX)
        .min(n);
    // One history row per allowed request: one prepared statement run per
    // row on SQLite (a statement of n rows would be compiled anew for each
    // n); PostgreSQL normally decides whole batches in `take_batches`.
    let row = (
        api_requests::user_id.eq(user_id),
        api_requests::requested_at.eq(at),
    );
    match conn {
        DbConn::Pg(c) if allowed > 0 => {
            diesel::insert_into(api_requests::table)
                .values(&vec![row; allowed])
                .execute(c)?;
        }
        DbConn::Pg(_) => {}
        DbConn::Sqlite(c) => {
            for _ in 0..allowed {
                diesel::insert_into(api_requests::table)
                    .values(row)
                    .execute(c)?;
            }
        }
    }
    let count = before + allowed as i64;
    store_counter(conn, user_id, count, window_start, at)?;
    let leaving = if allowed < n {
        // The request that must leave the window before one more fits:
        // the oldest when the window is exactly full (DRF's wait).
        Some(
            api_requests::table
                .filter(api_requests::user_id.eq(user_id))
                .filter(api_requests::requested_at.gt(window_start))
                .select(api_requests::requested_at)
                .order(api_requests::requested_at.asc())
                .offset((count - limit).max(0))
                .limit(1)
                .first(conn)?,
        )
    } else {
        None
    };
    decisions(rate, n, allowed, count, leaving, at)
}

/// The decisions for `n` requests of which the first `allowed` were
/// counted, leaving `count` in the window; `leaving` is when the request
/// that must leave before one more fits was made (needed when some were
/// refused).
fn decisions(
    rate: Rate,
    n: usize,
    allowed: usize,
    count: i64,
    leaving: Option<NaiveDateTime>,
    at: NaiveDateTime,
) -> QueryResult<Vec<QuotaDecision>> {
    let limit = i64::from(rate.requests);
    let wait_secs = if allowed < n {
        let leaving = leaving.ok_or(diesel::result::Error::NotFound)?;
        ceil_secs(leaving + period_of(rate) - at)
    } else {
        0
    };
    let before = count - allowed as i64;
    Ok((0..n)
        .map(|i| {
            if i < allowed {
                QuotaDecision::Allowed {
                    limit: rate.requests,
                    remaining: u32::try_from(limit - before - i as i64 - 1).unwrap_or(0),
                }
            } else {
                QuotaDecision::Throttled {
                    limit: rate.requests,
                    wait_secs,
                }
            }
        })
        .collect())
}

diesel::define_sql_function! {
    /// Decides the API quota of several users at once on the server
    /// (PostgreSQL; migration `2026-12-24-000001_quota_function`).
    fn custos_take_quotas(
        users: Array<BigInt>,
        limits: Array<BigInt>,
        window_starts: Array<Timestamp>,
        wanted: Array<Integer>,
        at: Timestamp,
    ) -> Record<(BigInt, Integer, BigInt, Nullable<Timestamp>)>;
}

/// Decides the requests of several users, each `(user, rate, n)` as
/// `take_batch` does, inside the caller's write transaction; the decisions
/// per entry, in the order given (ascending user order, the order every
/// batch takes the users' rows in).
///
/// On PostgreSQL this is one round trip (`custos_take_quotas`) instead of
/// four or five per user; on SQLite, where a statement costs no round
/// trip, it is `take_batch` for each.
pub fn take_batches(
    conn: &mut DbConn,
    wanted: &[(i64, Rate, usize)],
) -> QueryResult<Vec<Vec<QuotaDecision>>> {
    // The function decides distinct users; a user that comes twice (two
    // rates in one batch) is decided user by user, in order.
    let distinct = wanted.windows(2).all(|w| w[0].0 < w[1].0);
    let c = match conn {
        DbConn::Pg(c) if distinct && !wanted.is_empty() => c,
        _ => {
            return wanted
                .iter()
                .map(|&(user_id, rate, n)| take_batch(conn, user_id, rate, n))
                .collect();
        }
    };
    let at = now();
    let users: Vec<i64> = wanted.iter().map(|w| w.0).collect();
    let limits: Vec<i64> = wanted.iter().map(|w| i64::from(w.1.requests)).collect();
    let starts: Vec<NaiveDateTime> = wanted.iter().map(|w| at - period_of(w.1)).collect();
    let counts: Vec<i32> = wanted
        .iter()
        .map(|w| i32::try_from(w.2).unwrap_or(i32::MAX))
        .collect();
    let rows: Vec<(i64, i32, i64, Option<NaiveDateTime>)> =
        diesel::select(custos_take_quotas(users, limits, starts, counts, at)).load(c)?;
    if rows.len() != wanted.len() {
        return Err(diesel::result::Error::NotFound);
    }
    wanted
        .iter()
        .zip(rows)
        .map(|(&(user_id, rate, n), (user, allowed, count, leaving))| {
            if user != user_id {
                return Err(diesel::result::Error::NotFound);
            }
            let allowed = usize::try_from(allowed).unwrap_or(0).min(n);
            decisions(rate, n, allowed, count, leaving, at)
        })
        .collect()
}

/// Counts one request of `user_id` against `rate`, in a transaction of its
/// own (for callers outside the writer).
pub fn take(conn: &mut DbConn, user_id: i64, rate: Rate) -> QueryResult<QuotaDecision> {
    write_transaction(conn, |conn| {
        take_batch(conn, user_id, rate, 1)?
            .pop()
            .ok_or(diesel::result::Error::NotFound)
    })
}

/// Most history rows one pruning step deletes, so that pruning a large
/// backlog never holds the write lock for long.
pub const PRUNE_STEP: i64 = 5_000;

/// The users that have a quota row (and so may have history to prune).
pub fn quota_users(conn: &mut DbConn) -> QueryResult<Vec<i64>> {
    api_quota::table
        .select(api_quota::user_id)
        .order(api_quota::user_id.asc())
        .load(conn)
}

/// One step of deleting a user's request history that no window can see
/// any more: at most `PRUNE_STEP` rows, after bringing the user's counter
/// forward past them (under the same hold as a check, so the counter never
/// includes a deleted row). Returns the rows deleted; call again until it
/// answers fewer than `PRUNE_STEP`.
pub fn prune_step(conn: &mut DbConn, rate: Rate, user_id: i64) -> QueryResult<usize> {
    let period = period_of(rate);
    write_transaction(conn, |conn| {
        let counter = lock_counter(conn, user_id)?;
        let at = now();
        let window_start = at - period;
        let count = count_in_window(conn, user_id, counter, window_start)?;
        store_counter(conn, user_id, count, window_start, at)?;
        let doomed = api_requests::table
            .filter(api_requests::user_id.eq(user_id))
            .filter(api_requests::requested_at.le(window_start))
            .select(api_requests::id)
            .order(api_requests::requested_at.asc())
            .limit(PRUNE_STEP);
        let ids: Vec<i64> = doomed.load(conn)?;
        if ids.is_empty() {
            return Ok(0);
        }
        diesel::delete(api_requests::table.filter(api_requests::id.eq_any(ids))).execute(conn)
    })
}

/// Most addresses tracked before stale ones are swept on insert.
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// DRF's `AnonRateThrottle` per client address, in memory (per instance):
/// API requests that end without a valid token.
pub struct AnonThrottle {
    rate: Rate,
    history: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl AnonThrottle {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            history: Mutex::new(HashMap::new()),
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Counts one request from `ip`; `Err(wait_secs)` when over the limit
    /// (then nothing is counted).
    pub fn take(&self, ip: IpAddr) -> Result<u32, u64> {
        let period = self.rate.period();
        let limit = self.rate.requests as usize;
        let at = Instant::now();
        let mut map = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED_ADDRESSES && !map.contains_key(&ip) {
            sweep(&mut map, period, at);
        }
        let history = map.entry(ip).or_default();
        while history
            .front()
            .is_some_and(|t| at.saturating_duration_since(*t) >= period)
        {
            history.pop_front();
        }
        if history.len() >= limit {
            let skip = history.len() - limit;
            let leaving = history.get(skip).copied().unwrap_or(at);
            let wait = period.saturating_sub(at.saturating_duration_since(leaving));
            return Err(ceil_duration(wait));
        }
        history.push_back(at);
        Ok(u32::try_from(limit - history.len()).unwrap_or(0))
    }

    /// Forgets addresses whose history has left the window.
    pub fn prune(&self) {
        let mut map = self.history.lock().unwrap_or_else(|e| e.into_inner());
        sweep(&mut map, self.rate.period(), Instant::now());
        map.shrink_to_fit();
    }

    /// Addresses currently tracked (for tests).
    pub fn tracked(&self) -> usize {
        self.history.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn sweep(map: &mut HashMap<IpAddr, VecDeque<Instant>>, period: Duration, at: Instant) {
    map.retain(|_, h| {
        h.back()
            .is_some_and(|t| at.saturating_duration_since(*t) < period)
    });
}

/// Whole seconds, rounded up, at least 1.
pub fn ceil_duration(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_up_like_drf() {
        assert_eq!(ceil_secs(chrono::Duration::milliseconds(59_001)), 60);
        assert_eq!(ceil_secs(chrono::Duration::seconds(60)), 60);
        assert_eq!(ceil_secs(chrono::Duration::microseconds(1)), 1);
        assert_eq!(ceil_secs(chrono::Duration::zero()), 1);
        assert_eq!(ceil_duration(Duration::from_millis(1500)), 2);
    }

    #[test]
    fn the_anonymous_throttle_forgets_addresses_once_their_window_has_passed() {
        let t = AnonThrottle::new(Rate {
            requests: 3,
            period_secs: 1,
        });
        for i in 0..5000u32 {
            assert!(t.take(IpAddr::from(i.to_be_bytes())).is_ok());
        }
        assert_eq!(t.tracked(), 5000);
        // Within the window nothing is forgotten.
        t.prune();
        assert_eq!(t.tracked(), 5000);
        std::thread::sleep(Duration::from_millis(1100));
        t.prune();
        assert_eq!(t.tracked(), 0, "stale throttle entries were kept");
    }

    #[test]
    fn the_anonymous_throttle_counts_per_address_and_not_refusals() {
        let t = AnonThrottle::new(Rate {
            requests: 2,
            period_secs: 60,
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let b: IpAddr = "10.0.0.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert_eq!(t.take(a), Ok(1));
        assert_eq!(t.take(a), Ok(0));
        let wait = t.take(a).unwrap_err();
        assert!((59..=60).contains(&wait), "{wait}");
        assert!(t.take(a).is_err());
        assert_eq!(t.take(b), Ok(1));
        assert_eq!(t.tracked(), 2);
    }
}
