//! actix-session storage in the database (both backends).
//!
//! A cookie store could not end a session before it expires; this one can
//! (logout, deactivation, password change), and every instance sharing the
//! database sees the same sessions. Only a SHA-256 of the session key is
//! stored, so a copy of the table does not let anyone sign in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};

use crate::db::schema::sessions;
use crate::db::{Database, DbError, now};

/// Session-state key holding the signed-in user's id.
pub const USER_ID_KEY: &str = "user_id";

/// Hex SHA-256 of a session key: the `sessions.id` column.
pub fn session_id_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[derive(Clone)]
pub struct DbSessionStore {
    db: Database,
    /// Expiries read by `load`, by session row id, for the `update_ttl` of
    /// the same request: most requests then need no write at all.
    loaded_expiry: Arc<Mutex<HashMap<String, NaiveDateTime>>>,
}

/// Most remembered expiries (requests in flight); beyond, they are dropped
/// and the next extension simply writes.
const MAX_REMEMBERED_EXPIRIES: usize = 10_000;

impl DbSessionStore {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            loaded_expiry: Arc::default(),
        }
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<String, NaiveDateTime>> {
        // Entries are plain values: a poisoned map is still consistent.
        self.loaded_expiry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember(&self, id: String, expires_at: NaiveDateTime) {
        let mut map = self.remembered();
        if map.len() >= MAX_REMEMBERED_EXPIRIES {
            map.clear();
        }
        map.insert(id, expires_at);
    }

    fn forget(&self, id: &str) -> Option<NaiveDateTime> {
        self.remembered().remove(id)
    }
}

fn expiry(ttl: &Duration) -> NaiveDateTime {
    now() + chrono::Duration::seconds(ttl.whole_seconds().max(1))
}

fn user_id_of(state: &HashMap<String, String>) -> Option<i64> {
    state.get(USER_ID_KEY).and_then(|v| v.parse().ok())
}

fn new_key() -> String {
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, 64)
}

impl SessionStore for DbSessionStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<HashMap<String, String>>, LoadError> {
        let id = session_id_hash(key.as_ref());
        let row_id = id.clone();
        let row: Option<(String, NaiveDateTime)> = self
            .db
            .run(move |conn| {
                crate::db::on_backend!(conn, c => sessions::table
                    .find(row_id)
                    .filter(sessions::expires_at.gt(now()))
                    .select((sessions::state, sessions::expires_at))
                    .first(c)
                    .optional())
                .map_err(DbError::from)
            })
            .await
            .map_err(|e| LoadError::Other(e.into()))?;
        let state = row.map(|(state, expires_at)| {
            self.remember(id, expires_at);
            state
        });
        state
            .map(|s| serde_json::from_str(&s).map_err(|e| LoadError::Deserialization(e.into())))
            .transpose()
    }

    async fn save(
        &self,
        state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, SaveError> {
        let key = new_key();
        let json = serde_json::to_string(&state).map_err(|e| SaveError::Serialization(e.into()))?;
        let row_id = session_id_hash(&key);
        let expires_at = expiry(ttl);
        let user_id = user_id_of(&state);
        self.db
            .write(move |conn| {
                diesel::insert_into(sessions::table)
                    .values((
                        sessions::id.eq(row_id),
                        sessions::user_id.eq(user_id),
                        sessions::state.eq(json),
                        sessions::created_at.eq(now()),
                        sessions::expires_at.eq(expires_at),
                    ))
                    .execute(conn)
                    .map_err(DbError::from)
            })
            .await
            .map_err(|e| SaveError::Other(e.into()))?;
        SessionKey::try_from(key).map_err(|e| SaveError::Other(e.into()))
    }

    async fn update(
        &self,
        key: SessionKey,
        state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let json =
            serde_json::to_string(&state).map_err(|e| UpdateError::Serialization(e.into()))?;
        let row_id = session_id_hash(key.as_ref());
        let expires_at = expiry(ttl);
        let user_id = user_id_of(&state);
        self.forget(&row_id);
        let updated = self
            .db
            .write(move |conn| {
                diesel::update(
                    sessions::table
                        .find(row_id)
                        .filter(sessions::expires_at.gt(now())),
                )
                .set((
                    sessions::user_id.eq(user_id),
                    sessions::state.eq(json),
                    sessions::expires_at.eq(expires_at),
                ))
                .execute(conn)
                .map_err(DbError::from)
            })
            .await
            .map_err(|e| UpdateError::Other(e.into()))?;
        if updated == 1 {
            return Ok(key);
        }
        // The session ended meanwhile (logout elsewhere, deactivation):
        // never resurrect it. Start an anonymous one instead.
        let anonymous: HashMap<String, String> = state
            .into_iter()
            .filter(|(k, _)| k != USER_ID_KEY && !k.starts_with("auth_"))
            .collect();
        self.save(anonymous, ttl)
            .await
            .map_err(|e| UpdateError::Other(e.into()))
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        let row_id = session_id_hash(key.as_ref());
        let expires_at = expiry(ttl);
        // Skip the write when the expiry would move less than a minute (or
        // a tenth of a short timeout), so a burst of page views costs one
        // write, not one each, yet activity always extends the session.
        let slack = chrono::Duration::seconds((ttl.whole_seconds() / 10).clamp(0, 60));
        if self
            .forget(&row_id)
            .is_some_and(|known| known >= expires_at - slack)
        {
            return Ok(());
        }
        self.db.extend_session(row_id, expires_at).await?;
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        let row_id = session_id_hash(key.as_ref());
        self.forget(&row_id);
        self.db
            .write(move |conn| {
                diesel::delete(sessions::table.find(row_id))
                    .execute(conn)
                    .map_err(DbError::from)
            })
            .await?;
        Ok(())
    }
}

/// Deletes expired sessions (run periodically by the server).
pub fn prune_expired(conn: &mut crate::db::DbConn) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at.le(now()))).execute(conn)
}

/// A signed-in session that ended by its idle timeout.
#[derive(Debug, Clone)]
pub struct ExpiredSession {
    pub user_id: i64,
    pub username: String,
    pub expired_at: NaiveDateTime,
}

/// Deletes one expired session row if it is still there; returns whose it
/// was. Exactly one caller (request or housekeeping, on any instance) gets
/// `Some` for a given session, so its expiry is recorded once.
fn claim_expired_row(
    conn: &mut crate::db::DbConn,
    row_id: &str,
) -> QueryResult<Option<ExpiredSession>> {
    use crate::db::schema::users;
    let found: Option<(i64, String, NaiveDateTime)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(row_id))
        .filter(sessions::expires_at.le(now()))
        .select((users::id, users::username, sessions::expires_at))
        .first(conn)
        .optional()?;
    let Some((user_id, username, expired_at)) = found else {
        return Ok(None);
    };
    let deleted = diesel::delete(
        sessions::table
            .filter(sessions::id.eq(row_id))
            .filter(sessions::expires_at.le(now())),
    )
    .execute(conn)?;
    Ok((deleted == 1).then_some(ExpiredSession {
        user_id,
        username,
        expired_at,
    }))
}

/// Claims the expired session of a session key a request still carries
/// (see [`claim_expired_row`]).
pub fn claim_expired(
    conn: &mut crate::db::DbConn,
    key: &str,
) -> QueryResult<Option<ExpiredSession>> {
    claim_expired_row(conn, &session_id_hash(key))
}

/// Deletes every expired session; returns the signed-in ones this call
/// removed, for the audit trail.
pub fn prune_expired_signed_in(conn: &mut crate::db::DbConn) -> QueryResult<Vec<ExpiredSession>> {
    let mut ended = Vec::new();
    loop {
        let batch: Vec<String> = sessions::table
            .filter(sessions::expires_at.le(now()))
            .filter(sessions::user_id.is_not_null())
            .select(sessions::id)
            .limit(500)
            .load(conn)?;
        if batch.is_empty() {
            break;
        }
        let mut claimed_any = false;
        for row_id in &batch {
            if let Some(session) = claim_expired_row(conn, row_id)? {
                ended.push(session);
                claimed_any = true;
            }
        }
        if !claimed_any && batch.len() < 500 {
            break;
        }
        if !claimed_any {
            // Another instance is pruning the same rows; leave it to it.
            break;
        }
    }
    prune_expired(conn)?;
    Ok(ended)
}
