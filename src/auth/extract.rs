//! Authenticated-user extractors for pages.
//!
//! A page handler that shows data takes `AuthUser` (or `AdminUser`), so a
//! handler that forgot the check would not compile against the data it
//! needs. The extractor resolves the session before the handler runs: an
//! anonymous, expired, ended or deactivated session becomes a 303 to the
//! login page carrying the original path as `next`.

use std::future::Future;
use std::pin::Pin;

use actix_session::{Session, SessionExt};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::auth::session_store::USER_ID_KEY;
use crate::auth::users;
use crate::db::models::{Role, User};
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
    let Some(user_id) = user_id else {
        return Err(login_required());
    };
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| PageError::Internal("application state missing".into()))?;
    let login_at = session.get::<i64>(LOGIN_AT_KEY).ok().flatten().unwrap_or(0);
    let age = chrono::Utc::now().timestamp() - login_at;
    if age < 0 || age as u64 > state.settings.session_absolute_timeout.as_secs() {
        session.purge();
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
