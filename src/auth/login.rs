//! Checking a username and password.
//!
//! Every failure looks the same to the caller (one generic message) and
//! costs the same time: an unknown username, and any attempt refused by
//! the login guard, is verified against a dummy argon2id hash. Hashes
//! that need it (Django's, or weaker argon2 parameters) are upgraded after
//! a success.

use crate::auth::login_guard::{self, Admission, LockInfo};
use crate::auth::{password, users};
use crate::db::DbError;
use crate::db::models::User;
use crate::web::AppState;

/// The one message shown for every failed login.
pub const GENERIC_FAILURE: &str = "The username or password is incorrect.";

/// What became of an attempt. Only `Success` may be told apart by the
/// client; the rest are for the audit trail.
pub enum LoginOutcome {
    Success {
        user: User,
        /// The stored hash was replaced by a fresh argon2id one.
        upgraded_hash: bool,
    },
    /// Wrong password, unknown username or deactivated account. `lock` is
    /// set when this failure (re)started a lock.
    Failure {
        user: Option<User>,
        lock: Option<LockInfo>,
    },
    /// Refused by the login guard; the password was not checked.
    Locked { user: Option<User>, lock: LockInfo },
}

/// Checks `username` and `password_text` from `client_addr`.
pub async fn attempt(
    state: &AppState,
    client_addr: &str,
    username: &str,
    password_text: &str,
) -> Result<LoginOutcome, DbError> {
    let limits = state.settings.login_limits;
    let (name, addr) = (username.to_owned(), client_addr.to_owned());
    let (user, admission) = state
        .db
        .write(move |conn| {
            let user = users::find_by_username(conn, &name)?;
            let admission = login_guard::admit(conn, &limits, &name, &addr)?;
            Ok::<_, DbError>((user, admission))
        })
        .await?;

    if let Admission::Locked(lock) = admission {
        // Spend the time a real check would take, then refuse.
        state.passwords.verify(None, password_text.to_owned()).await;
        if user.is_some() {
            let name = username.to_owned();
            state
                .db
                .write(move |conn| {
                    login_guard::count_on_account(conn, &name).map_err(DbError::from)
                })
                .await?;
        }
        return Ok(LoginOutcome::Locked { user, lock });
    }

    // Inactive accounts are verified too, so timing does not tell them apart.
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = state
        .passwords
        .verify(stored.clone(), password_text.to_owned())
        .await;
    match user {
        Some(user) if verified && user.is_active => {
            let name = username.to_owned();
            state
                .db
                .write(move |conn| login_guard::succeeded(conn, &name).map_err(DbError::from))
                .await?;
            let mut upgraded_hash = false;
            if stored.as_deref().is_some_and(password::needs_rehash)
                && let Some(new_hash) = state.passwords.hash(password_text.to_owned()).await
            {
                let id = user.id;
                state
                    .db
                    .write(move |conn| {
                        users::upgrade_hash(conn, id, &new_hash).map_err(DbError::from)
                    })
                    .await?;
                upgraded_hash = true;
            }
            Ok(LoginOutcome::Success {
                user,
                upgraded_hash,
            })
        }
        user => {
            let (name, addr) = (username.to_owned(), client_addr.to_owned());
            let lock = state
                .db
                .write(move |conn| {
                    login_guard::failed(conn, &limits, &name, &addr).map_err(DbError::from)
                })
                .await?;
            Ok(LoginOutcome::Failure { user, lock })
        }
    }
}
