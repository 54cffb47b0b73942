//! Cross-site request forgery protection for every state-changing form.
//!
//! A synchronizer token: signed-in users have one in their server-side
//! session; anonymous forms (login, setup) use a random value in an
//! HttpOnly cookie that the form must repeat. Tokens are compared in
//! constant time, and the `Origin` (or `Sec-Fetch-Site`) header must not
//! name another site. Handlers get the form only through `CsrfForm`, so a
//! POST handler cannot skip the check.

use std::future::Future;
use std::pin::Pin;

use actix_session::SessionExt;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use rand::RngCore;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::web::error::PageError;
use crate::web::middleware::ClientInfo;

/// Session key of the signed-in user's token.
pub const SESSION_KEY: &str = "csrf";
/// Form field carrying the token.
pub const FORM_FIELD: &str = "csrf_token";
/// Largest form body accepted (forms here are small).
pub const MAX_FORM_BYTES: usize = 16 * 1024;

pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Name of the anonymous-form cookie (`__Host-` over HTTPS).
pub fn cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-custos_csrf"
    } else {
        "custos_csrf"
    }
}

/// The token a page should put in its forms, creating what is needed.
/// Returns the token and, for anonymous visitors, a cookie to set.
pub fn token_for(req: &HttpRequest) -> (String, Option<Cookie<'static>>) {
    let session = req.get_session();
    if let Ok(Some(token)) = session.get::<String>(SESSION_KEY) {
        return (token, None);
    }
    let https = ClientInfo::of(req).https;
    if let Some(c) = req.cookie(cookie_name(https)) {
        if c.value().len() == 64 {
            return (c.value().to_owned(), None);
        }
    }
    let token = new_token();
    let cookie = Cookie::build(cookie_name(https), token.clone())
        .path("/")
        .http_only(true)
        .secure(https)
        .same_site(SameSite::Strict)
        .finish();
    (token, Some(cookie))
}

/// The token a submitted form must carry.
fn expected_token(req: &HttpRequest) -> Option<String> {
    if let Ok(Some(token)) = req.get_session().get::<String>(SESSION_KEY) {
        return Some(token);
    }
    let https = ClientInfo::of(req).https;
    req.cookie(cookie_name(https)).map(|c| c.value().to_owned())
}

/// Refuses requests that say they come from another origin.
pub fn check_origin(req: &HttpRequest) -> Result<(), PageError> {
    let refuse = || PageError::Forbidden;
    if let Some(origin) = req.headers().get("origin") {
        let origin = origin.to_str().map_err(|_| refuse())?;
        let conn = req.connection_info();
        let expected = format!("{}://{}", ClientInfo::of(req).scheme(), conn.host());
        if !origin.eq_ignore_ascii_case(&expected) {
            return Err(refuse());
        }
    } else if let Some(site) = req.headers().get("sec-fetch-site") {
        if !matches!(site.to_str(), Ok("same-origin") | Ok("none")) {
            return Err(refuse());
        }
    }
    Ok(())
}

/// Checks the origin and the token of a submitted form.
pub fn verify(req: &HttpRequest, submitted: &str) -> Result<(), PageError> {
    check_origin(req)?;
    let Some(expected) = expected_token(req) else {
        return Err(PageError::BadRequest(
            "The form has expired. Go back, reload the page and try again.".into(),
        ));
    };
    if submitted.is_empty() || !bool::from(submitted.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(PageError::BadRequest(
            "The form has expired or did not come from this site. Reload the page and try again."
                .into(),
        ));
    }
    Ok(())
}

/// An urlencoded form whose CSRF token and origin were verified.
pub struct CsrfForm<T>(pub T);

impl<T> std::ops::Deref for CsrfForm<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

#[derive(serde::Deserialize)]
struct TokenOnly {
    #[serde(default)]
    csrf_token: String,
}

impl<T: DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let body = body.await.map_err(|e| {
                if e.to_string().contains("overflow") || e.to_string().contains("too large") {
                    PageError::PayloadTooLarge
                } else {
                    PageError::BadRequest("The form could not be read.".into())
                }
            })?;
            if body.len() > MAX_FORM_BYTES {
                return Err(PageError::PayloadTooLarge);
            }
            let token: TokenOnly = serde_urlencoded::from_bytes(&body)
                .map_err(|_| PageError::BadRequest("The form could not be read.".into()))?;
            verify(&req, &token.csrf_token)?;
            let form: T = serde_urlencoded::from_bytes(&body).map_err(|e| {
                PageError::BadRequest(format!("The form is incomplete or malformed: {e}."))
            })?;
            Ok(CsrfForm(form))
        })
    }
}
