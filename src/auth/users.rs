//! Account records: creation, password changes, deactivation, listing.
//!
//! Synchronous diesel functions shared by the CLI, the setup page, the
//! account page and the admin pages. Anything that should end a user's
//! access (new password, deactivation) deletes their sessions and revokes
//! their tokens in the same transaction, so it takes effect at once on
//! every instance.

use diesel::prelude::*;

use crate::db::models::{NewUser, Role, User};
use crate::db::schema::{api_tokens, sessions, users};
use crate::db::{DbConn, now, write_transaction};

/// Why an account change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("there is no account named {0:?}")]
    NotFound(String),
    #[error("an account named {0:?} already exists")]
    Exists(String),
    #[error("{0}")]
    LastAdmin(String),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

impl From<diesel::result::Error> for AccountError {
    fn from(e: diesel::result::Error) -> Self {
        AccountError::Db(e.into())
    }
}

/// Django's username rule: 1–150 of letters, digits and `@ . + - _`.
pub fn check_username(username: &str) -> Result<(), AccountError> {
    let ok = !username.is_empty()
        && username.chars().count() <= 150
        && username
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '@' | '.' | '+' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::Invalid(
            "A username is 1–150 letters, digits and @ . + - _ only.".into(),
        ))
    }
}

pub fn count_users(conn: &mut DbConn) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

pub fn find_by_username(conn: &mut DbConn, username: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::username.eq(username))
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_id(conn: &mut DbConn, id: i64) -> QueryResult<Option<User>> {
    crate::db::on_backend!(conn, c => users::table
        .find(id)
        .select(User::as_select())
        .first(c)
        .optional())
}

pub fn list(conn: &mut DbConn) -> QueryResult<Vec<User>> {
    users::table
        .order(users::username.asc())
        .select(User::as_select())
        .load(conn)
}

/// Creates an account from an already computed hash.
pub fn create(
    conn: &mut DbConn,
    username: &str,
    password_hash: &str,
    role: Role,
    must_change_password: bool,
) -> Result<User, AccountError> {
    check_username(username)?;
    write_transaction(conn, |conn| {
        if find_by_username(conn, username)?.is_some() {
            return Err(AccountError::Exists(username.to_owned()));
        }
        let at = now();
        diesel::insert_into(users::table)
            .values(NewUser {
                username,
                password_hash,
                role: role.as_str(),
                is_active: true,
                must_change_password,
                created_at: at,
                updated_at: at,
            })
            .execute(conn)?;
        find_by_username(conn, username)?.ok_or_else(|| AccountError::NotFound(username.into()))
    })
}

/// Creates the first account, only if there is none yet (atomically, so
/// two setup requests cannot both succeed).
pub fn create_first_admin(
    conn: &mut DbConn,
    username: &str,
    password_hash: &str,
) -> Result<Option<User>, AccountError> {
    check_username(username)?;
    write_transaction(conn, |conn| {
        if count_users(conn)? > 0 {
            return Ok(None);
        }
        let at = now();
        diesel::insert_into(users::table)
            .values(NewUser {
                username,
                password_hash,
                role: Role::Admin.as_str(),
                is_active: true,
                must_change_password: false,
                created_at: at,
                updated_at: at,
            })
            .execute(conn)?;
        Ok(find_by_username(conn, username)?)
    })
}

/// Ends every session and revokes every token of a user.
pub fn end_access(conn: &mut DbConn, user_id: i64) -> QueryResult<(usize, usize)> {
    let sessions =
        diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)?;
    let tokens = diesel::update(
        api_tokens::table
            .filter(api_tokens::user_id.eq(user_id))
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set(api_tokens::revoked_at.eq(Some(now())))
    .execute(conn)?;
    Ok((sessions, tokens))
}

/// Ends all sessions of a user except `keep` (the session id hash).
pub fn end_other_sessions(conn: &mut DbConn, user_id: i64, keep: &str) -> QueryResult<usize> {
    diesel::delete(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::id.ne(keep)),
    )
    .execute(conn)
}

/// Stores a new password hash; all sessions (but `keep_session`) end and
/// all tokens are revoked.
pub fn set_password(
    conn: &mut DbConn,
    user_id: i64,
    password_hash: &str,
    must_change_password: bool,
    keep_session: Option<&str>,
) -> Result<(), AccountError> {
    write_transaction(conn, |conn| {
        let updated = diesel::update(users::table.find(user_id))
            .set((
                users::password_hash.eq(password_hash),
                users::must_change_password.eq(must_change_password),
                users::updated_at.eq(now()),
            ))
            .execute(conn)?;
        if updated == 0 {
            return Err(AccountError::NotFound(format!("#{user_id}")));
        }
        diesel::update(
            api_tokens::table
                .filter(api_tokens::user_id.eq(user_id))
                .filter(api_tokens::revoked_at.is_null()),
        )
        .set(api_tokens::revoked_at.eq(Some(now())))
        .execute(conn)?;
        match keep_session {
            Some(keep) => end_other_sessions(conn, user_id, keep)?,
            None => diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id)))
                .execute(conn)?,
        };
        Ok(())
    })
}

/// Replaces a hash after a successful login (rehash-on-login), without
/// ending any session.
pub fn upgrade_hash(conn: &mut DbConn, user_id: i64, password_hash: &str) -> QueryResult<usize> {
    diesel::update(users::table.find(user_id))
        .set(users::password_hash.eq(password_hash))
        .execute(conn)
}

fn active_admins(conn: &mut DbConn) -> QueryResult<i64> {
    users::table
        .filter(users::role.eq(Role::Admin.as_str()))
        .filter(users::is_active.eq(true))
        .count()
        .get_result(conn)
}

/// Activates or deactivates an account. Deactivation ends its sessions
/// and tokens; the last active admin cannot be deactivated.
pub fn set_active(conn: &mut DbConn, user_id: i64, active: bool) -> Result<User, AccountError> {
    write_transaction(conn, |conn| {
        let user = find_by_id(conn, user_id)?
            .ok_or_else(|| AccountError::NotFound(format!("#{user_id}")))?;
        if !active && user.is_admin() && user.is_active && active_admins(conn)? <= 1 {
            return Err(AccountError::LastAdmin(
                "The last active administrator cannot be deactivated.".into(),
            ));
        }
        diesel::update(users::table.find(user_id))
            .set((users::is_active.eq(active), users::updated_at.eq(now())))
            .execute(conn)?;
        if !active {
            end_access(conn, user_id)?;
        }
        find_by_id(conn, user_id)?.ok_or_else(|| AccountError::NotFound(format!("#{user_id}")))
    })
}

/// Changes an account's role; the last active admin cannot be demoted.
pub fn set_role(conn: &mut DbConn, user_id: i64, role: Role) -> Result<User, AccountError> {
    write_transaction(conn, |conn| {
        let user = find_by_id(conn, user_id)?
            .ok_or_else(|| AccountError::NotFound(format!("#{user_id}")))?;
        if role == Role::Staff && user.is_admin() && user.is_active && active_admins(conn)? <= 1 {
            return Err(AccountError::LastAdmin(
                "The last active administrator cannot be demoted.".into(),
            ));
        }
        diesel::update(users::table.find(user_id))
            .set((users::role.eq(role.as_str()), users::updated_at.eq(now())))
            .execute(conn)?;
        find_by_id(conn, user_id)?.ok_or_else(|| AccountError::NotFound(format!("#{user_id}")))
    })
}
