//! API tokens: created on the account page, shown once, stored as hashes.
//!
//! A token is 40 random hex characters (160 bits, the same form as DRF's
//! keys, so keys imported from the Django original look like new ones).
//! Being high-entropy, a plain SHA-256 is a sufficient hash; lookup is by
//! hash, so no comparison of secrets happens in application code.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::models::{ApiToken, User};
use crate::db::schema::{api_tokens, users};
use crate::db::{DbConn, now};

/// Characters of the token kept in clear for display ("a1b2c3d4…").
pub const PREFIX_LEN: usize = 8;

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn generate_token() -> String {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Stores the hash of a token for a user; returns the row.
pub fn store_token(
    conn: &mut DbConn,
    user_id: i64,
    token: &str,
    expires_at: Option<NaiveDateTime>,
) -> QueryResult<ApiToken> {
    let hash = token_hash(token);
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::user_id.eq(user_id),
            api_tokens::token_hash.eq(&hash),
            api_tokens::prefix.eq(token.chars().take(PREFIX_LEN).collect::<String>()),
            api_tokens::created_at.eq(now()),
            api_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    api_tokens::table
        .filter(api_tokens::token_hash.eq(hash))
        .select(ApiToken::as_select())
        .first(conn)
}

/// The user's tokens that still work, newest first.
pub fn list_tokens(conn: &mut DbConn, user_id: i64) -> QueryResult<Vec<ApiToken>> {
    api_tokens::table
        .filter(api_tokens::user_id.eq(user_id))
        .filter(api_tokens::revoked_at.is_null())
        .filter(
            api_tokens::expires_at
                .is_null()
                .or(api_tokens::expires_at.gt(now())),
        )
        .order(api_tokens::id.desc())
        .select(ApiToken::as_select())
        .load(conn)
}

/// Revokes one token of a user (or any user's, for admins: `user_id` None).
pub fn revoke_token(conn: &mut DbConn, token_id: i64, user_id: Option<i64>) -> QueryResult<usize> {
    let target = api_tokens::table
        .filter(api_tokens::id.eq(token_id))
        .filter(api_tokens::revoked_at.is_null());
    match user_id {
        Some(uid) => diesel::update(target.filter(api_tokens::user_id.eq(uid)))
            .set(api_tokens::revoked_at.eq(Some(now())))
            .execute(conn),
        None => diesel::update(target)
            .set(api_tokens::revoked_at.eq(Some(now())))
            .execute(conn),
    }
}

/// What a presented token turned out to be.
pub enum TokenCheck {
    Valid {
        user: User,
        token_id: i64,
        /// Its last use was recorded over a minute ago (or never): record
        /// this one (the caller does, with its other writes).
        record_use: bool,
    },
    /// Unknown, revoked or expired.
    Invalid,
    /// The token is fine but its user is deactivated.
    Inactive,
}

/// Looks a presented token up by its hash (a read: nothing is written).
pub fn check_token(conn: &mut DbConn, token: &str) -> QueryResult<TokenCheck> {
    Ok(match find_by_hash(conn, &token_hash(token))? {
        Some((token, user)) => judge(token, user, now()),
        None => TokenCheck::Invalid,
    })
}

/// The token stored under `hash` and its user, whatever their state.
pub fn find_by_hash(conn: &mut DbConn, hash: &str) -> QueryResult<Option<(ApiToken, User)>> {
    crate::db::on_backend!(conn, c => api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_hash.eq(hash))
        .select((ApiToken::as_select(), User::as_select()))
        .first(c)
        .optional())
}

/// Whether a stored token and its user accept a request at `at`: the one
/// rule, for rows fresh from the database and rows from the token cache.
pub fn judge(token: ApiToken, user: User, at: NaiveDateTime) -> TokenCheck {
    if token.revoked_at.is_some() || token.expires_at.is_some_and(|e| e <= at) {
        return TokenCheck::Invalid;
    }
    if !user.is_active {
        return TokenCheck::Inactive;
    }
    // Last use is recorded at most once a minute per token.
    let record_use = token
        .last_used_at
        .is_none_or(|t| at - t > chrono::Duration::seconds(60));
    TokenCheck::Valid {
        user,
        token_id: token.id,
        record_use,
    }
}
