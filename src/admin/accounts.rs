//! What the accounts pages show and the changes only they (and the CLI)
//! make: accounts with their live sessions and tokens, ending sessions,
//! revoking one token. Password, activation and role changes live in
//! `auth::users`, which enforces the last-admin rule.

use std::collections::HashMap;

use diesel::dsl::count_star;
use diesel::prelude::*;

use crate::auth::tokens;
use crate::db::models::{ApiToken, User};
use crate::db::schema::{api_tokens, sessions};
use crate::db::{DbConn, now};

/// An account with how many ways in it currently has.
#[derive(Debug, Clone)]
pub struct Account {
    pub user: User,
    /// Sessions that have not expired.
    pub sessions: i64,
    /// Tokens neither revoked nor expired.
    pub tokens: i64,
}

fn session_counts(conn: &mut DbConn) -> QueryResult<HashMap<i64, i64>> {
    let rows: Vec<(Option<i64>, i64)> = sessions::table
        .filter(sessions::expires_at.gt(now()))
        .filter(sessions::user_id.is_not_null())
        .group_by(sessions::user_id)
        .select((sessions::user_id, count_star()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, n)| id.map(|id| (id, n)))
        .collect())
}

fn token_counts(conn: &mut DbConn) -> QueryResult<HashMap<i64, i64>> {
    let rows: Vec<(i64, i64)> = api_tokens::table
        .filter(api_tokens::revoked_at.is_null())
        .filter(
            api_tokens::expires_at
                .is_null()
                .or(api_tokens::expires_at.gt(now())),
        )
        .group_by(api_tokens::user_id)
        .select((api_tokens::user_id, count_star()))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// Every account, by username, with its live sessions and tokens.
pub fn list(conn: &mut DbConn) -> QueryResult<Vec<Account>> {
    let users = crate::auth::users::list(conn)?;
    let sessions = session_counts(conn)?;
    let tokens = token_counts(conn)?;
    Ok(users
        .into_iter()
        .map(|user| Account {
            sessions: sessions.get(&user.id).copied().unwrap_or(0),
            tokens: tokens.get(&user.id).copied().unwrap_or(0),
            user,
        })
        .collect())
}

/// One account with its counts.
pub fn find(conn: &mut DbConn, user_id: i64) -> QueryResult<Option<Account>> {
    let Some(user) = crate::auth::users::find_by_id(conn, user_id)? else {
        return Ok(None);
    };
    let sessions: i64 = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::expires_at.gt(now()))
        .count()
        .get_result(conn)?;
    let tokens = tokens::list_tokens(conn, user_id)?.len() as i64;
    Ok(Some(Account {
        user,
        sessions,
        tokens,
    }))
}

/// The account's tokens that still work, newest first.
pub fn live_tokens(conn: &mut DbConn, user_id: i64) -> QueryResult<Vec<ApiToken>> {
    tokens::list_tokens(conn, user_id)
}

/// Ends every session of a user (its API tokens keep working). Takes
/// effect at once on every instance: the rows are gone.
pub fn end_sessions(conn: &mut DbConn, user_id: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
}

/// A token of `user_id` by its id (revoked or not).
pub fn find_token(conn: &mut DbConn, user_id: i64, token_id: i64) -> QueryResult<Option<ApiToken>> {
    api_tokens::table
        .filter(api_tokens::id.eq(token_id))
        .filter(api_tokens::user_id.eq(user_id))
        .select(ApiToken::as_select())
        .first(conn)
        .optional()
}

/// Revokes one token of `user_id`; false if it was not live.
pub fn revoke_token(conn: &mut DbConn, user_id: i64, token_id: i64) -> QueryResult<bool> {
    Ok(tokens::revoke_token(conn, token_id, Some(user_id))? == 1)
}
