//! Token authentication for the API, exactly as Django REST framework's
//! `TokenAuthentication` parses the `Authorization` header.
//!
//! The API never looks at the session cookie: a browser session gives no
//! API access, so a cross-site request cannot ride on it. Requests that end
//! without a valid token are counted against the per-address anonymous
//! limit (`quota::AnonThrottle`); over it they get 429 instead of 401.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::auth::token_cache::{self, TokenProof};
use crate::auth::tokens::{self, TokenCheck};
use crate::db::DbError;
use crate::db::models::User;
use crate::quota::AnonThrottle;
use crate::web::AppState;
use crate::web::error::ApiError;
use crate::web::middleware::ClientInfo;

pub const NO_CREDENTIALS: &str = "Invalid token header. No credentials provided.";
pub const HAS_SPACES: &str = "Invalid token header. Token string should not contain spaces.";
pub const INVALID_CHARACTERS: &str =
    "Invalid token header. Token string should not contain invalid characters.";
pub const INVALID_TOKEN: &str = "Invalid token.";
pub const INACTIVE_USER: &str = "User inactive or deleted.";

/// A caller holding a valid token of an active user.
#[derive(Debug, Clone)]
pub struct ApiUser {
    pub user: User,
    pub token_id: i64,
    /// What the token was accepted on, for the writer to check again.
    pub proof: TokenProof,
    /// The token's use is due to be recorded (at most once a minute).
    pub record_use: bool,
}

impl ApiUser {
    pub fn id(&self) -> i64 {
        self.user.id
    }
    pub fn username(&self) -> &str {
        &self.user.username
    }
}

/// What the `Authorization` header holds, before any lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// No header, or another scheme (DRF: not provided).
    Nothing,
    /// A malformed `Token`/`Bearer` header, with DRF's message.
    Malformed(&'static str),
    /// A key to look up.
    Key(String),
}

/// DRF's `get_authorization_header(request).split()` and the checks of
/// `TokenAuthentication.authenticate`; `Bearer` is accepted as well.
pub fn parse_authorization(raw: Option<&[u8]>) -> Presented {
    let Some(raw) = raw else {
        return Presented::Nothing;
    };
    // Python's bytes.split(): runs of ASCII whitespace.
    let parts: Vec<&[u8]> = raw
        .split(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .filter(|p| !p.is_empty())
        .collect();
    let Some(keyword) = parts.first() else {
        return Presented::Nothing;
    };
    if !keyword.eq_ignore_ascii_case(b"token") && !keyword.eq_ignore_ascii_case(b"bearer") {
        return Presented::Nothing;
    }
    match parts.len() {
        1 => Presented::Malformed(NO_CREDENTIALS),
        2 => match std::str::from_utf8(parts[1]) {
            Ok(key) => Presented::Key(key.to_owned()),
            Err(_) => Presented::Malformed(INVALID_CHARACTERS),
        },
        _ => Presented::Malformed(HAS_SPACES),
    }
}

/// Keys are 40 hex characters; anything else cannot match a stored hash.
fn plausible_key(key: &str) -> bool {
    key.len() == 40 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Counts a request that ends unauthenticated against the anonymous limit.
pub fn refuse(req: &HttpRequest, error: ApiError) -> ApiError {
    let Some(anon) = req.app_data::<web::Data<AnonThrottle>>() else {
        return error;
    };
    match anon.take(ClientInfo::of(req).ip) {
        Ok(_) => error,
        Err(wait_secs) => ApiError::Throttled { wait_secs },
    }
}

async fn authenticate(req: HttpRequest) -> Result<ApiUser, ApiError> {
    let presented = parse_authorization(
        req.headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
    );
    let key = match presented {
        Presented::Nothing => return Err(refuse(&req, ApiError::NotAuthenticated)),
        Presented::Malformed(msg) => {
            return Err(refuse(&req, ApiError::AuthenticationFailed(msg)));
        }
        Presented::Key(key) => key,
    };
    if !plausible_key(&key) {
        return Err(refuse(&req, ApiError::AuthenticationFailed(INVALID_TOKEN)));
    }
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    let hash = tokens::token_hash(&key);
    let cache = state.db.token_cache().clone();
    let at = crate::db::now();
    let (checked, version) = match cache.get(&hash) {
        Some((version, token, user)) => (tokens::judge(token, user, at), Some(version)),
        None => {
            let hash = hash.clone();
            state
                .db
                .run(move |conn| {
                    // The version first: the rows read after it are at
                    // least as new as it says.
                    let version = token_cache::auth_version(conn)?;
                    let found = tokens::find_by_hash(conn, &hash)?;
                    let Some((token, user)) = found else {
                        return Ok((TokenCheck::Invalid, version));
                    };
                    if let Some(v) = version {
                        cache.put(hash, v, token.clone(), user.clone());
                    }
                    Ok::<_, DbError>((tokens::judge(token, user, at), version))
                })
                .await?
        }
    };
    match checked {
        TokenCheck::Valid {
            user,
            token_id,
            record_use,
        } => {
            if record_use {
                state.db.token_cache().note_use(&hash, at);
            }
            Ok(ApiUser {
                user,
                token_id,
                proof: TokenProof { hash, version },
                record_use,
            })
        }
        TokenCheck::Invalid => Err(refuse(&req, ApiError::AuthenticationFailed(INVALID_TOKEN))),
        TokenCheck::Inactive => Err(refuse(&req, ApiError::AuthenticationFailed(INACTIVE_USER))),
    }
}

impl FromRequest for ApiUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(raw: &[u8]) -> Presented {
        parse_authorization(Some(raw))
    }

    #[test]
    fn headers_are_parsed_like_drf() {
        assert_eq!(parse_authorization(None), Presented::Nothing);
        assert_eq!(p(b""), Presented::Nothing);
        assert_eq!(p(b"Basic abc"), Presented::Nothing);
        assert_eq!(p(b"Tokens abc"), Presented::Nothing);
        assert_eq!(p(b"Token"), Presented::Malformed(NO_CREDENTIALS));
        assert_eq!(p(b"  token  "), Presented::Malformed(NO_CREDENTIALS));
        assert_eq!(p(b"Token a b"), Presented::Malformed(HAS_SPACES));
        assert_eq!(p(b"TOKEN abc"), Presented::Key("abc".into()));
        assert_eq!(p(b"bearer\tabc"), Presented::Key("abc".into()));
        assert_eq!(
            p(b"Token \xff\xfe"),
            Presented::Malformed(INVALID_CHARACTERS)
        );
        assert_eq!(p("Token é".as_bytes()), Presented::Key("é".into()));
    }
}
