//! Authenticated-user extractors for pages.
//!
//! A page handler that shows data takes `AuthUser` (or `AdminUser`), so a
//! handler that forgot the check would not compile against the data it
//! needs. The extractor resolves the session before the handler runs: an
//! anonymous, expired, ended or deactivated session becomes a 303 to the
//! login page carrying the original path as `next`. Sessions that ended
//! by the absolute limit or by idle timeout are recorded in the audit
//! trail when a request first shows it.

use std::future::Future;
use std::pin::Pin;

use actix_session::{Session, SessionExt};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use actix_web::cookie::{CookieJar, Key};

use crate::audit::{self, AuditEvent, AuditKind};
use crate::auth::session_store::{self, USER_ID_KEY};
use crate::auth::users;
use crate::db::DbError;
use crate::db::models::{Role, User};
use crate::server::session_cookie_name;
use crate::web::AppState;
use crate::web::error::PageError;

/// Session key: when the user signed in (unix seconds), for the absolute
/// session limit.
pub const LOGIN_AT_KEY: &str = "auth_login_at";

/// A signed-in, active user.
pub struct AuthUser {
    pub user: User,
    pub session: Session,
}

impl AuthUser {
    pub fn id(&self) -> i64 {
        self.user.id
    }
    pub fn username(&self) -> &str {
        &self.user.username
    }
    pub fn is_admin(&self) -> bool {
        self.user.is_admin()
    }
    pub fn role(&self) -> Role {
        Role::parse(&self.user.role).unwrap_or(Role::Staff)
    }
}

/// The path and query of the request, as the `next` target of a redirect
/// to the login page (only for GET/HEAD: a POST cannot be replayed).
pub fn login_next(req: &HttpRequest) -> String {
    if req.method() == actix_web::http::Method::GET || req.method() == actix_web::http::Method::HEAD
    {
        let uri = req.uri();
        uri.path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into())
    } else {
        String::new()
    }
}

/// Paths a user who must change their password may still open.
const PASSWORD_CHANGE_PATHS: [&str; 3] = ["/account", "/account/password", "/logout"];

async fn authenticate(req: HttpRequest) -> Result<AuthUser, PageError> {
    let next = login_next(&req);
    let login_required = || PageError::LoginRequired { next: next.clone() };
    let session = req.get_session();
    let user_id = session.get::<i64>(USER_ID_KEY).ok().flatten();
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| PageError::Internal("application state missing".into()))?;
    let Some(user_id) = user_id else {
        if session.entries().is_empty() {
            note_idle_expiry(&req, state).await;
        }
        return Err(login_required());
    };
    let login_at = session.get::<i64>(LOGIN_AT_KEY).ok().flatten().unwrap_or(0);
    let age = chrono::Utc::now().timestamp() - login_at;
    if age < 0 || age as u64 > state.settings.session_absolute_timeout.as_secs() {
        session.purge();
        note_absolute_expiry(&req, state, user_id).await;
        return Err(login_required());
    }
    let user = state
        .db
        .run(move |conn| users::find_by_id(conn, user_id).map_err(crate::db::DbError::from))
        .await
        .map_err(PageError::from)?;
    match user {
        Some(user) if user.is_active => {
            if user.must_change_password && !PASSWORD_CHANGE_PATHS.contains(&req.path()) {
                return Err(PageError::PasswordChangeRequired);
            }
            Ok(AuthUser { user, session })
        }
        _ => {
            session.purge();
            Err(login_required())
        }
    }
}

/// The session key inside the request's session cookie, if it carries a
/// genuine one (the cookie is encrypted with the server's key).
fn session_key_of(req: &HttpRequest, state: &AppState) -> Option<String> {
    let key = Key::derive_from(&state.settings.secret_key);
    [session_cookie_name(true), session_cookie_name(false)]
        .into_iter()
        .filter_map(|name| req.cookie(name))
        .find_map(|cookie| {
            let name = cookie.name().to_owned();
            let mut jar = CookieJar::new();
            jar.add_original(cookie);
            jar.private(&key)
                .get(&name)
                .or_else(|| jar.signed(&key).get(&name))
                .map(|c| c.value().to_owned())
        })
}

/// A request carried a session cookie whose session is gone. If the row
/// is still there, expired, this request is the first to notice the idle
/// timeout: record it (once; housekeeping records the rest when it prunes).
async fn note_idle_expiry(req: &HttpRequest, state: &AppState) {
    let Some(key) = session_key_of(req, state) else {
        return;
    };
    let claimed = state
        .db
        .write(move |conn| session_store::claim_expired(conn, &key).map_err(DbError::from))
        .await;
    match claimed {
        Ok(Some(expired)) => {
            let event = AuditEvent::new(
                AuditKind::SessionExpired,
                Some((expired.user_id, expired.username)),
            )
            .detail(format!(
                "idle timeout: the session expired at {} UTC",
                expired.expired_at.format("%Y-%m-%d %H:%M:%S")
            ));
            if let Err(e) = audit::record(state, req, event).await {
                tracing::warn!(error = %e, "could not record a session expiry");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not check an expired session"),
    }
}

/// The session outlived the absolute limit and was just ended.
async fn note_absolute_expiry(req: &HttpRequest, state: &AppState, user_id: i64) {
    let user = state
        .db
        .run(move |conn| users::find_by_id(conn, user_id).map_err(DbError::from))
        .await;
    let username = match user {
        Ok(Some(u)) => u.username,
        _ => format!("#{user_id}"),
    };
    let event =
        AuditEvent::new(AuditKind::SessionExpired, Some((user_id, username))).detail(format!(
            "absolute limit: signed in more than {} s ago",
            state.settings.session_absolute_timeout.as_secs()
        ));
    if let Err(e) = audit::record(state, req, event).await {
        tracing::warn!(error = %e, "could not record a session expiry");
    }
}

impl FromRequest for AuthUser {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

/// A signed-in administrator; staff get 403.
pub struct AdminUser(pub AuthUser);

impl std::ops::Deref for AdminUser {
    type Target = AuthUser;
    fn deref(&self) -> &AuthUser {
        &self.0
    }
}

impl FromRequest for AdminUser {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = authenticate(req).await?;
            if user.is_admin() {
                Ok(AdminUser(user))
            } else {
                Err(PageError::Forbidden)
            }
        })
    }
}
