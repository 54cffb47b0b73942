//! The administrator's pages: accounts (`/admin/users`) and the audit
//! trail (`/admin/audit`).
//!
//! Every handler takes [`AdminUser`](crate::auth::AdminUser), so staff get
//! 403 and anonymous visitors a redirect to the login page; every form is
//! a `CsrfForm`. A change is confirmed by a message carried to the next
//! page in the session (post/redirect/get), and recorded in the audit
//! trail with who did it and to whom.

pub mod accounts;
pub mod audit;
pub mod audit_query;
pub mod users;

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::http::header;

use crate::web::error::PageError;

/// Session key of a confirmation waiting to be shown.
const NOTICE_KEY: &str = "admin_notice";
/// Session key of a refusal waiting to be shown.
const ERROR_KEY: &str = "admin_error";

/// A message for the next admin page.
pub enum Flash {
    Notice(String),
    Error(String),
}

/// Stores a message for the next page.
pub fn set_flash(session: &Session, flash: Flash) -> Result<(), PageError> {
    let (key, text) = match flash {
        Flash::Notice(t) => (NOTICE_KEY, t),
        Flash::Error(t) => (ERROR_KEY, t),
    };
    session
        .insert(key, text)
        .map_err(|e| PageError::Internal(e.to_string()))
}

/// Takes the waiting messages (notice, error), if any.
pub fn take_flash(session: &Session) -> (Option<String>, Option<String>) {
    let take = |key: &str| session.remove_as::<String>(key).and_then(Result::ok);
    (take(NOTICE_KEY), take(ERROR_KEY))
}

/// A 303 to `to` (post/redirect/get).
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

/// Formats a stored UTC time for display.
pub fn when(at: &chrono::NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `/admin`: the accounts page is the start page of administration.
pub async fn index(_admin: crate::auth::AdminUser) -> HttpResponse {
    see_other("/admin/users")
}
