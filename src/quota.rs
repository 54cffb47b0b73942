//! API request limits: the per-user quota in the database and the
//! per-address limit on anonymous API traffic in memory.
//!
//! The user quota has Django REST framework's `SimpleRateThrottle` meaning
//! (a rolling window: at most `N` counted requests in any `period`), but is
//! kept in the database instead of a cache, so it survives restarts, holds
//! across every instance sharing one PostgreSQL database, and is exact under
//! concurrency: each check runs in one write transaction that first locks
//! the user's `api_quota` row (an `UPDATE`, inserting the row if needed; on
//! SQLite the transaction is `BEGIN IMMEDIATE`), then counts the user's
//! `api_requests` inside the window and records the request only if it is
//! under the limit. Throttled requests are not recorded, as in DRF.
//!
//! Timestamps come from the application's clock (UTC), so instances sharing
//! a database need synchronised clocks (NTP), as any cluster does.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::prelude::*;

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
}

/// Whole seconds (rounded up, at least 1) until `leaves_at`: DRF's
/// `math.ceil(wait)`.
fn ceil_secs(wait: chrono::Duration) -> u64 {
    let micros = wait.num_microseconds().unwrap_or(i64::MAX).max(0);
    let secs = micros / 1_000_000 + i64::from(micros % 1_000_000 != 0);
    u64::try_from(secs).unwrap_or(u64::MAX).max(1)
}

/// Locks (creating if needed) the user's `api_quota` row for the rest of
/// the transaction, so concurrent checks of one user run one at a time.
fn lock_user_row(conn: &mut DbConn, user_id: i64, at: NaiveDateTime) -> QueryResult<()> {
    let touch = |conn: &mut DbConn| {
        diesel::update(api_quota::table.find(user_id))
            .set(api_quota::touched_at.eq(at))
            .execute(conn)
    };
    if touch(conn)? > 0 {
        return Ok(());
    }
    let row = (api_quota::user_id.eq(user_id), api_quota::touched_at.eq(at));
    // Two first requests may race to create the row: the loser's insert
    // does nothing, and its UPDATE below then waits for the winner.
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
    touch(conn)?;
    Ok(())
}

/// Counts one request of `user_id` against `rate`, atomically.
pub fn take(conn: &mut DbConn, user_id: i64, rate: Rate) -> QueryResult<QuotaDecision> {
    let limit = rate.requests;
    let period = chrono::Duration::seconds(i64::try_from(rate.period_secs).unwrap_or(86_400));
    write_transaction(conn, |conn| {
        lock_user_row(conn, user_id, now())?;
        // Read the clock only once the lock is held.
        let at = now();
        let window_start = at - period;
        let in_window = api_requests::table
            .filter(api_requests::user_id.eq(user_id))
            .filter(api_requests::requested_at.gt(window_start));
        let count: i64 = in_window.count().get_result(conn)?;
        if count >= i64::from(limit) {
            // The request that must leave the window before one more fits:
            // the oldest when the window is exactly full (DRF's wait).
            let skip = count - i64::from(limit);
            let leaving: NaiveDateTime = in_window
                .select(api_requests::requested_at)
                .order(api_requests::requested_at.asc())
                .offset(skip)
                .limit(1)
                .first(conn)?;
            return Ok(QuotaDecision::Throttled {
                limit,
                wait_secs: ceil_secs(leaving + period - at),
            });
        }
        diesel::insert_into(api_requests::table)
            .values((
                api_requests::user_id.eq(user_id),
                api_requests::requested_at.eq(at),
            ))
            .execute(conn)?;
        let remaining = i64::from(limit) - count - 1;
        Ok(QuotaDecision::Allowed {
            limit,
            remaining: u32::try_from(remaining).unwrap_or(0),
        })
    })
}

/// Deletes request history that no window can see any more.
pub fn prune(conn: &mut DbConn, rate: Rate) -> QueryResult<usize> {
    let period = chrono::Duration::seconds(i64::try_from(rate.period_secs).unwrap_or(86_400));
    diesel::delete(api_requests::table.filter(api_requests::requested_at.le(now() - period)))
        .execute(conn)
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
