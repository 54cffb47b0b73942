//! The API's token cache: a request whose token was looked up a moment
//! ago skips the database read of its token and user.
//!
//! Nothing is accepted on the cache's word alone:
//! - Every change that can decide whether a token is accepted
//!   (revocation, expiry, deactivation, role, password, deletion) moves
//!   `app_state.auth_version`, by triggers, whichever process or instance
//!   makes it. Token last use and login bookkeeping do not.
//! - An entry remembers the version it was read under (read before the
//!   token, so its rows are at least that new) and is used only while that
//!   is the newest version this process has seen.
//! - The writer reads the version again in the transaction that counts the
//!   request and writes its audit row (`db::writer`). If it moved since
//!   the lookup, the writer checks the token again right there and refuses
//!   the request if it no longer passes. Data leaves only after that commit.
//!
//! So a revoked token is refused by every request committed after the
//! revocation, as without the cache; a revocation that lands between the
//! lookup and the commit refuses the request too.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::db::DbConn;
use crate::db::models::{ApiToken, User};

/// Most tokens kept; past it, entries of older versions go first, then all.
const MAX_ENTRIES: usize = 10_000;

/// A lookup's evidence, handed to the writer with the request: the token
/// (by hash) and the auth version its rows were read under (None: the
/// database has no version, so the writer always checks again).
#[derive(Debug, Clone)]
pub struct TokenProof {
    pub hash: String,
    pub version: Option<i64>,
}

struct Entry {
    version: i64,
    token: ApiToken,
    user: User,
}

/// Token rows by hash, each valid for the auth version it was read under.
pub struct TokenCache {
    /// The newest auth version seen (-1 before any).
    newest: AtomicI64,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self {
            newest: AtomicI64::new(-1),
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl TokenCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // An entry is replaced whole, so a panic elsewhere leaves none torn.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rows stored under `hash`, if they were read under the newest
    /// version seen; with that version.
    pub fn get(&self, hash: &str) -> Option<(i64, ApiToken, User)> {
        let newest = self.newest.load(Ordering::Acquire);
        let entries = self.entries();
        let entry = entries.get(hash).filter(|e| e.version == newest)?;
        Some((entry.version, entry.token.clone(), entry.user.clone()))
    }

    /// Keeps rows read under `version` (ignored if a newer one was seen).
    pub fn put(&self, hash: String, version: i64, token: ApiToken, user: User) {
        self.observe(version);
        let newest = self.newest.load(Ordering::Acquire);
        if version != newest {
            return;
        }
        let mut entries = self.entries();
        crate::bounded::make_room(&mut entries, &hash, MAX_ENTRIES, |e| e.version == newest);
        entries.insert(
            hash,
            Entry {
                version,
                token,
                user,
            },
        );
    }

    /// Notes an auth version read from the database: entries of older
    /// versions stop being used.
    pub fn observe(&self, version: i64) {
        self.newest.fetch_max(version, Ordering::AcqRel);
    }

    /// Notes that the token's use at `at` is being recorded, so the next
    /// requests within the minute do not record it again.
    pub fn note_use(&self, hash: &str, at: NaiveDateTime) {
        if let Some(entry) = self.entries().get_mut(hash) {
            entry.token.last_used_at = Some(at);
        }
    }
}

/// The current `app_state.auth_version` (None if the row is missing).
pub fn auth_version(conn: &mut DbConn) -> QueryResult<Option<i64>> {
    let value = crate::query::count_cache::app_state_value(conn, "auth_version")?;
    Ok(value.and_then(|v| v.parse().ok()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rows(id: i64) -> (ApiToken, User) {
        let at = crate::db::now();
        let token = ApiToken {
            id,
            user_id: 1,
            token_hash: format!("h{id}"),
            prefix: "p".into(),
            created_at: at,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        };
        let user = User {
            id: 1,
            username: "u".into(),
            password_hash: "x".into(),
            role: "staff".into(),
            is_active: true,
            must_change_password: false,
            created_at: at,
            updated_at: at,
            last_login_at: None,
            failed_since_last_login: 0,
        };
        (token, user)
    }

    #[test]
    fn entries_of_an_older_version_are_not_used() {
        let cache = TokenCache::default();
        let (t, u) = rows(1);
        cache.put("a".into(), 3, t, u);
        assert_eq!(cache.get("a").map(|e| e.0), Some(3));
        cache.observe(4);
        assert!(cache.get("a").is_none());
        // Rows read under a version older than the newest are not kept.
        let (t, u) = rows(2);
        cache.put("b".into(), 3, t, u);
        assert!(cache.get("b").is_none());
        // Seeing an older version does not bring old entries back.
        cache.observe(3);
        assert!(cache.get("a").is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = TokenCache::default();
        for i in 0..(MAX_ENTRIES as i64 + 5) {
            let (t, u) = rows(i);
            cache.put(format!("k{i}"), 1, t, u);
        }
        assert!(cache.entries().len() <= MAX_ENTRIES);
        let last = format!("k{}", MAX_ENTRIES + 4);
        assert!(cache.get(&last).is_some());
    }

    #[test]
    fn a_recorded_use_is_remembered() {
        let cache = TokenCache::default();
        let (t, u) = rows(1);
        cache.put("a".into(), 0, t, u);
        let at = crate::db::now();
        cache.note_use("a", at);
        assert_eq!(cache.get("a").unwrap().1.last_used_at, Some(at));
    }
}
