//! The two error surfaces: HTML pages and DRF-style JSON.
//!
//! Internal causes are logged with the request id and never sent to the
//! client; the client sees a short message and, for a 500, the request id
//! to quote when reporting it.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use serde_json::json;

use crate::db::DbError;
use crate::web::middleware::current_request_id;

/// An error answered with an HTML page (or a redirect to the login page).
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not signed in: 303 to `/login?next=...`, no data in the body.
    #[error("login required")]
    LoginRequired { next: String },
    #[error("forbidden")]
    Forbidden,
    /// The password was reset by an administrator: 303 to `/account`.
    #[error("password change required")]
    PasswordChangeRequired,
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("too many requests")]
    TooManyRequests { retry_after: u64 },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DbError> for PageError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            PageError::Unavailable(e.to_string())
        } else {
            PageError::Internal(e.to_string())
        }
    }
}

impl From<diesel::result::Error> for PageError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::from(e).into()
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::Internal(format!("template: {e}"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    request_id: Option<&'a str>,
}

/// Percent-encodes a value for a query string (`next=` targets).
pub fn encode_query_value(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string()
}

const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::LoginRequired { .. } | PageError::PasswordChangeRequired => {
                StatusCode::SEE_OTHER
            }
            PageError::Forbidden => StatusCode::FORBIDDEN,
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            PageError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            PageError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            PageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let PageError::LoginRequired { next } = self {
            let location = if next.is_empty() || next == "/" {
                "/login".to_owned()
            } else {
                format!("/login?next={}", encode_query_value(next))
            };
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, location))
                .insert_header((header::CACHE_CONTROL, "no-store, private"))
                .finish();
        }
        if let PageError::PasswordChangeRequired = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/account"))
                .finish();
        }
        let request_id = current_request_id();
        let (title, message): (&str, String) = match self {
            PageError::Forbidden => (
                "Forbidden",
                "Your account is not allowed to open this page.".into(),
            ),
            PageError::NotFound => ("Not found", "There is nothing at this address.".into()),
            PageError::BadRequest(reason) => ("Bad request", reason.clone()),
            PageError::MethodNotAllowed => (
                "Method not allowed",
                "This address does not accept that kind of request.".into(),
            ),
            PageError::PayloadTooLarge => (
                "Request too large",
                "The form sent more data than this page accepts.".into(),
            ),
            PageError::TooManyRequests { retry_after } => (
                "Too many requests",
                format!("Please wait {retry_after} seconds and try again."),
            ),
            PageError::Unavailable(cause) => {
                tracing::error!(request_id = %request_id.as_deref().unwrap_or("-"), %cause, "service unavailable");
                (
                    "Temporarily unavailable",
                    "The database cannot be reached right now. Please try again in a moment."
                        .into(),
                )
            }
            PageError::Internal(cause) => {
                tracing::error!(request_id = %request_id.as_deref().unwrap_or("-"), %cause, "internal error");
                (
                    "Something went wrong",
                    "An unexpected error occurred. It has been logged; quote the request id below when you report it."
                        .into(),
                )
            }
            PageError::LoginRequired { .. } | PageError::PasswordChangeRequired => {
                ("", String::new())
            }
        };
        let show_id = matches!(self, PageError::Internal(_) | PageError::Unavailable(_));
        let page = ErrorPage {
            title,
            message: &message,
            request_id: if show_id { request_id.as_deref() } else { None },
        };
        let body = page
            .render()
            .unwrap_or_else(|_| format!("{title}: {message}"));
        let mut builder = HttpResponse::build(self.status_code());
        builder.content_type("text/html; charset=utf-8");
        if let PageError::TooManyRequests { retry_after } = self {
            builder.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        builder.body(body)
    }
}

/// An error answered as `{"detail": ...}` (or a field-keyed body), the way
/// Django REST framework answers.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("not authenticated")]
    NotAuthenticated,
    #[error("authentication failed: {0}")]
    AuthenticationFailed(&'static str),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error("invalid filter values")]
    Validation(serde_json::Value),
    #[error("throttled")]
    Throttled { wait_secs: u64 },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::from(e).into()
    }
}

/// DRF's wording for a throttle wait (`1 second.` is singular).
pub fn throttle_message(wait_secs: u64) -> String {
    let unit = if wait_secs == 1 { "second" } else { "seconds" };
    format!("Request was throttled. Expected available in {wait_secs} {unit}.")
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotAuthenticated | ApiError::AuthenticationFailed(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Validation(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let request_id = current_request_id();
        let body = match self {
            ApiError::NotAuthenticated => {
                json!({"detail": "Authentication credentials were not provided."})
            }
            ApiError::AuthenticationFailed(msg) => json!({ "detail": msg }),
            ApiError::NotFound(msg) => json!({ "detail": msg }),
            ApiError::MethodNotAllowed { method, .. } => {
                json!({ "detail": format!("Method \"{method}\" not allowed.") })
            }
            ApiError::Validation(fields) => fields.clone(),
            ApiError::Throttled { wait_secs } => json!({ "detail": throttle_message(*wait_secs) }),
            ApiError::BadRequest(msg) => json!({ "detail": msg }),
            ApiError::Unavailable(cause) => {
                tracing::error!(request_id = %request_id.as_deref().unwrap_or("-"), %cause, "service unavailable");
                json!({"detail": "Service temporarily unavailable, try again later."})
            }
            ApiError::Internal(cause) => {
                tracing::error!(request_id = %request_id.as_deref().unwrap_or("-"), %cause, "internal error");
                json!({
                    "detail": "A server error occurred.",
                    "request_id": request_id.as_deref().unwrap_or("-"),
                })
            }
        };
        let mut builder = HttpResponse::build(self.status_code());
        builder.content_type("application/json");
        match self {
            ApiError::NotAuthenticated | ApiError::AuthenticationFailed(_) => {
                builder.insert_header((header::WWW_AUTHENTICATE, "Token"));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                builder.insert_header((header::ALLOW, *allow));
            }
            ApiError::Throttled { wait_secs } => {
                builder.insert_header((header::RETRY_AFTER, wait_secs.to_string()));
            }
            _ => {}
        }
        builder.body(body.to_string())
    }
}
