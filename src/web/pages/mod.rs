//! HTML pages of the query tool.

pub mod account;
pub mod auth;
pub mod customers;
pub mod export;
pub mod export_limit;
pub mod health;
pub mod home;
pub mod listing;
pub mod operators;
pub mod setup;
pub mod user_error;

use actix_web::HttpRequest;

use crate::auth::AuthUser;
use crate::auth::csrf;
use crate::web::error::PageError;

/// What the base layout shows about the signed-in user (name, admin link,
/// and the logout form's CSRF token).
pub struct Nav {
    pub username: String,
    pub is_admin: bool,
    pub csrf_token: String,
}

impl Nav {
    pub fn for_user(user: &AuthUser, req: &HttpRequest) -> Nav {
        Nav {
            username: user.username().to_owned(),
            is_admin: user.is_admin(),
            csrf_token: csrf::token_for(req).0,
        }
    }
}

pub async fn not_found() -> Result<actix_web::HttpResponse, PageError> {
    Err(PageError::NotFound)
}

pub async fn method_not_allowed() -> Result<actix_web::HttpResponse, PageError> {
    Err(PageError::MethodNotAllowed)
}

/// Accepts a `next` target only if it is a path on this site.
///
/// Refuses anything a browser could resolve to another host: `//host`,
/// `/\host`, schemes, control characters, and the same hidden behind
/// percent-encoding.
pub fn safe_next(next: &str) -> Option<&str> {
    fn local(s: &str) -> bool {
        s.starts_with('/')
            && !s.starts_with("//")
            && !s.contains('\\')
            && !s.chars().any(|c| c.is_control() || c.is_whitespace())
    }
    if next.len() > 2048 || !local(next) {
        return None;
    }
    // Decode repeatedly so `%2F%2F`, `%252F`... are judged as the browser
    // might eventually see them.
    let mut current = next.to_owned();
    for _ in 0..3 {
        let decoded = percent_encoding::percent_decode_str(&current)
            .decode_utf8_lossy()
            .into_owned();
        // Only the path decides where the browser goes; a decoded query
        // may hold anything a search term holds (spaces, backslashes).
        let path = decoded.split(['?', '#']).next().unwrap_or_default();
        if !local(path) {
            return None;
        }
        if decoded == current {
            break;
        }
        current = decoded;
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_accepted_as_next() {
        for good in [
            "/",
            "/customers?status=active&page=2",
            "/customers/5",
            "/customers?search=anna%20smith&country=DE",
            "/customers?search=%5C%2F%2Fx%0A",
        ] {
            assert_eq!(safe_next(good), Some(good));
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil.example",
            "/%2F%2Fevil.example",
            "/%2fevil.example",
            "%2F%2Fevil.example",
            "/%5Cevil.example",
            "/%252F%252Fevil.example",
            "/\tevil",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
    }
}
