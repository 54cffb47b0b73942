//! Error pages for a signed-in user: the same messages as `PageError`'s
//! pages, inside the full layout with the navigation (who is signed in,
//! the logout button), so a bad filter or a missing page is not a dead end.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use super::Nav;
use crate::auth::AuthUser;
use crate::web::error::PageError;

#[derive(Template)]
#[template(path = "user_error.html")]
struct UserErrorPage<'a> {
    nav: Nav,
    title: &'a str,
    message: &'a str,
}

/// Shows a client error (400, 404, 429) as a page with the navigation;
/// anything else stays an error for `PageError` to answer.
pub fn or_page(
    user: &AuthUser,
    req: &HttpRequest,
    result: Result<HttpResponse, PageError>,
) -> Result<HttpResponse, PageError> {
    let err = match result {
        Ok(res) => return Ok(res),
        Err(err) => err,
    };
    let (title, message) = match &err {
        PageError::BadRequest(reason) => ("Bad request", reason.clone()),
        PageError::NotFound => (
            "Not found",
            "There is nothing at this address: no such record, or no such page of results."
                .to_owned(),
        ),
        PageError::TooManyRequests { retry_after } => (
            "Too many requests",
            format!(
                "You already have the most exports running at once. Wait for one to finish \
                 (or try again in {retry_after} seconds)."
            ),
        ),
        _ => return Err(err),
    };
    let body = UserErrorPage {
        nav: Nav::for_user(user, req),
        title,
        message: &message,
    }
    .render()?;
    let mut res = HttpResponse::build(err.status_code());
    res.content_type("text/html; charset=utf-8");
    if let PageError::TooManyRequests { retry_after } = err {
        res.insert_header((header::RETRY_AFTER, retry_after.to_string()));
    }
    Ok(res.body(body))
}
