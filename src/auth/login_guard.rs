//! Login protection: timed, escalating locks per account and per client
//! address, counted in the database so every instance sees the same
//! numbers.
//!
//! Each attempt is registered as a failure *before* the password is
//! checked (and the account's rows are removed again after a success), so
//! a burst of parallel guesses cannot all slip past the count. The check
//! and the registration run in one write transaction; on PostgreSQL an
//! advisory transaction lock makes them atomic across instances, on
//! SQLite `BEGIN IMMEDIATE` does.
//!
//! A lock is never permanent: after `account_failures` failures inside the
//! window an account is locked for [`BASE_LOCK_SECS`] (or the window, if
//! shorter), doubling with each further failure and capped at the window.
//! Attempts refused during a lock are not counted, so an attacker gains
//! one guess per lock period and cannot extend a lock without waiting it
//! out. The same rule, with `address_failures`, applies to a client
//! address across all usernames. A refused attempt looks exactly like a
//! wrong password to the client.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::dsl::{count_star, max};
use diesel::prelude::*;

use crate::config::LoginLimits;
use crate::db::schema::{login_failures, users};
use crate::db::{DbConn, now, write_transaction};

/// First lock duration, in seconds (shortened to the window if that is
/// shorter).
pub const BASE_LOCK_SECS: u64 = 30;

/// Key of the PostgreSQL advisory lock that serialises check-and-count
/// ("custos-login").
const GUARD_LOCK_KEY: i64 = 0x6c6f_6769_6e67;

diesel::define_sql_function! {
    fn pg_advisory_xact_lock(key: diesel::sql_types::BigInt);
}

/// What a lock applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockScope {
    Account,
    Address,
}

impl LockScope {
    pub fn as_str(self) -> &'static str {
        match self {
            LockScope::Account => "account",
            LockScope::Address => "client address",
        }
    }
}

/// A lock in force (or just started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockInfo {
    pub scope: LockScope,
    /// Failures counted inside the window.
    pub failures: i64,
    /// When the lock ends (UTC).
    pub until: NaiveDateTime,
    /// How long this lock lasts from the last failure.
    pub seconds: u64,
}

/// Whether an attempt may go on to the password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The attempt is registered as a failure until it succeeds.
    Admitted,
    /// Refused without checking the password.
    Locked(LockInfo),
}

/// How long a lock lasts after `failures` failures with the given
/// threshold, or `None` below it: the base, doubled for each failure past
/// the threshold, never longer than the window.
pub fn lock_seconds(failures: i64, threshold: u32, window: Duration) -> Option<u64> {
    if failures < i64::from(threshold) {
        return None;
    }
    let window = window.as_secs().max(1);
    let base = BASE_LOCK_SECS.min(window);
    let steps = u32::try_from(failures - i64::from(threshold))
        .unwrap_or(u32::MAX)
        .min(30);
    Some(base.saturating_mul(1u64 << steps).min(window))
}

fn window_start(limits: &LoginLimits, at: NaiveDateTime) -> NaiveDateTime {
    let secs = i64::try_from(limits.window.as_secs()).unwrap_or(i64::MAX / 2);
    at - chrono::Duration::seconds(secs)
}

/// The lock in force for one scope at `at`, if any.
fn lock_for(
    scope: LockScope,
    counted: (i64, Option<NaiveDateTime>),
    threshold: u32,
    limits: &LoginLimits,
    at: NaiveDateTime,
) -> Option<LockInfo> {
    let (failures, last) = counted;
    let last = last?;
    let seconds = lock_seconds(failures, threshold, limits.window)?;
    let until = last + chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 2));
    (until > at).then_some(LockInfo {
        scope,
        failures,
        until,
        seconds,
    })
}

fn count_account(
    conn: &mut DbConn,
    username: &str,
    since: NaiveDateTime,
) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    login_failures::table
        .filter(login_failures::username.eq(username))
        .filter(login_failures::failed_at.gt(since))
        .select((count_star(), max(login_failures::failed_at)))
        .first(conn)
}

fn count_address(
    conn: &mut DbConn,
    addr: &str,
    since: NaiveDateTime,
) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    login_failures::table
        .filter(login_failures::client_addr.eq(addr))
        .filter(login_failures::failed_at.gt(since))
        .select((count_star(), max(login_failures::failed_at)))
        .first(conn)
}

/// The lock currently in force for this username or address (account
/// first), without registering anything.
pub fn current_lock(
    conn: &mut DbConn,
    limits: &LoginLimits,
    username: &str,
    addr: &str,
) -> QueryResult<Option<LockInfo>> {
    let at = now();
    let since = window_start(limits, at);
    let account = count_account(conn, username, since)?;
    if let Some(lock) = lock_for(
        LockScope::Account,
        account,
        limits.account_failures,
        limits,
        at,
    ) {
        return Ok(Some(lock));
    }
    let address = count_address(conn, addr, since)?;
    Ok(lock_for(
        LockScope::Address,
        address,
        limits.address_failures,
        limits,
        at,
    ))
}

/// Checks for a lock and, if there is none, registers this attempt as a
/// failure (removed again by [`succeeded`]).
pub fn admit(
    conn: &mut DbConn,
    limits: &LoginLimits,
    username: &str,
    addr: &str,
) -> QueryResult<Admission> {
    write_transaction(conn, |conn| {
        if let DbConn::Pg(pg) = conn {
            diesel::select(pg_advisory_xact_lock(GUARD_LOCK_KEY)).execute(pg)?;
        }
        if let Some(lock) = current_lock(conn, limits, username, addr)? {
            return Ok(Admission::Locked(lock));
        }
        diesel::insert_into(login_failures::table)
            .values((
                login_failures::username.eq(username),
                login_failures::client_addr.eq(addr),
                login_failures::failed_at.eq(now()),
            ))
            .execute(conn)?;
        Ok(Admission::Admitted)
    })
}

/// After a wrong password: counts it on the account (for the notice at
/// its next login) and tells whether the account or address is now
/// locked. The failure row itself was written by [`admit`].
pub fn failed(
    conn: &mut DbConn,
    limits: &LoginLimits,
    username: &str,
    addr: &str,
) -> QueryResult<Option<LockInfo>> {
    count_on_account(conn, username)?;
    current_lock(conn, limits, username, addr)
}

/// Counts a failed or refused attempt on an existing account, for the
/// notice shown after its next successful login.
pub fn count_on_account(conn: &mut DbConn, username: &str) -> QueryResult<usize> {
    diesel::update(users::table.filter(users::username.eq(username)))
        .set(users::failed_since_last_login.eq(users::failed_since_last_login + 1))
        .execute(conn)
}

/// After a successful login: the account's failures no longer count.
pub fn succeeded(conn: &mut DbConn, username: &str) -> QueryResult<usize> {
    diesel::delete(login_failures::table.filter(login_failures::username.eq(username)))
        .execute(conn)
}

/// Deletes failures too old to count (housekeeping).
pub fn prune(conn: &mut DbConn, limits: &LoginLimits) -> QueryResult<usize> {
    let since = window_start(limits, now());
    diesel::delete(login_failures::table.filter(login_failures::failed_at.le(since))).execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_start_at_the_threshold_double_and_stop_at_the_window() {
        let window = Duration::from_secs(900);
        assert_eq!(lock_seconds(4, 5, window), None);
        assert_eq!(lock_seconds(5, 5, window), Some(30));
        assert_eq!(lock_seconds(6, 5, window), Some(60));
        assert_eq!(lock_seconds(8, 5, window), Some(240));
        assert_eq!(lock_seconds(10, 5, window), Some(900));
        assert_eq!(lock_seconds(500, 5, window), Some(900));
        assert_eq!(lock_seconds(3, 3, Duration::from_secs(2)), Some(2));
    }
}
