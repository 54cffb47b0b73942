//! Checking a username and password.
//!
//! Every failure looks the same to the caller (one generic message) and
//! costs the same time: an unknown username is verified against a dummy
//! argon2id hash. Hashes that need it are upgraded after a success.

use crate::auth::{password, users};
use crate::db::DbError;
use crate::db::models::User;
use crate::web::AppState;

/// The one message shown for every failed login.
pub const GENERIC_FAILURE: &str = "The username or password is incorrect.";

pub enum LoginOutcome {
    Success(User),
    Failure,
}

pub async fn attempt(
    state: &AppState,
    username: &str,
    password_text: &str,
) -> Result<LoginOutcome, DbError> {
    let name = username.to_owned();
    let user = state
        .db
        .run(move |conn| users::find_by_username(conn, &name).map_err(DbError::from))
        .await?;
    // Inactive accounts are verified too, so timing does not tell them apart.
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = state
        .passwords
        .verify(stored.clone(), password_text.to_owned())
        .await;
    match user {
        Some(user) if verified && user.is_active => {
            if stored.as_deref().is_some_and(password::needs_rehash)
                && let Some(new_hash) = state.passwords.hash(password_text.to_owned()).await
            {
                let id = user.id;
                state
                    .db
                    .run(move |conn| {
                        users::upgrade_hash(conn, id, &new_hash).map_err(DbError::from)
                    })
                    .await?;
            }
            Ok(LoginOutcome::Success(user))
        }
        _ => Ok(LoginOutcome::Failure),
    }
}
