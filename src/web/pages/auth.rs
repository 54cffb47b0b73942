//! `/login` and `/logout`.

use actix_session::SessionExt;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use diesel::prelude::*;
use serde::Deserialize;

use super::safe_next;
use crate::audit::{self, AuditEvent, AuditKind};
use crate::auth::AuthUser;
use crate::auth::csrf::{self, CsrfForm};
use crate::auth::extract::LOGIN_AT_KEY;
use crate::auth::login::{self, LoginOutcome};
use crate::auth::login_guard::LockScope;
use crate::auth::session_store::USER_ID_KEY;
use crate::db::models::User;
use crate::db::schema::users;
use crate::db::{DbError, now};
use crate::web::AppState;
use crate::web::error::PageError;
use crate::web::middleware::ClientInfo;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf_token: &'a str,
    next: &'a str,
    username: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    #[serde(default)]
    logged_out: Option<String>,
}

fn render_login(
    req: &HttpRequest,
    next: &str,
    username: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let (token, cookie) = csrf::token_for(req);
    let body = LoginPage {
        csrf_token: &token,
        next,
        username,
        error,
        notice,
    }
    .render()?;
    let mut res = HttpResponse::Ok();
    res.content_type("text/html; charset=utf-8");
    if let Some(c) = cookie {
        res.cookie(c);
    }
    Ok(res.body(body))
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

pub async fn login_form(
    req: HttpRequest,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, PageError> {
    let next = query.next.as_deref().and_then(safe_next).unwrap_or("/");
    if req
        .get_session()
        .get::<i64>(USER_ID_KEY)
        .ok()
        .flatten()
        .is_some()
    {
        return Ok(redirect(next));
    }
    let notice = query
        .logged_out
        .as_ref()
        .map(|_| "You have been signed out.");
    render_login(&req, next, "", None, notice)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn login_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: CsrfForm<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(&form.next).unwrap_or("/").to_owned();
    let username = form.username.trim();
    if username.is_empty()
        || form.password.is_empty()
        || username.len() > 150
        || form.password.len() > 1024
    {
        return render_login(&req, &next, username, Some(login::GENERIC_FAILURE), None);
    }
    let client_addr = ClientInfo::of(&req).ip.to_string();
    let outcome = login::attempt(&state, &client_addr, username, &form.password).await?;
    match outcome {
        LoginOutcome::Success {
            user,
            upgraded_hash,
        } => {
            start_session(&req, &state, &user).await?;
            let mut detail = String::new();
            if user.failed_since_last_login > 0 {
                detail = format!(
                    "{} failed attempts since the previous sign-in",
                    user.failed_since_last_login
                );
            }
            if upgraded_hash {
                if !detail.is_empty() {
                    detail.push_str("; ");
                }
                detail.push_str("password hash upgraded to argon2id");
            }
            let event =
                AuditEvent::new(AuditKind::LoginSuccess, audit::actor(&user)).detail(detail);
            audit::record(&state, &req, event).await?;
            Ok(redirect(&next))
        }
        LoginOutcome::Failure { user, lock } => {
            let reason = match &user {
                None => "unknown username",
                Some(u) if !u.is_active => "account deactivated",
                Some(_) => "wrong password",
            };
            let actor = user.as_ref().and_then(audit::actor);
            let event = AuditEvent::new(AuditKind::LoginFailure, actor.clone()).detail(reason);
            audit::record(&state, &req, event).await?;
            if let Some(lock) = lock {
                let scope = match lock.scope {
                    LockScope::Account => "account".to_owned(),
                    LockScope::Address => format!("client address {client_addr}"),
                };
                let event = AuditEvent::new(AuditKind::LoginLocked, actor).detail(format!(
                    "{scope} locked for {} s after {} failed attempts within {} s",
                    lock.seconds,
                    lock.failures,
                    state.settings.login_limits.window.as_secs()
                ));
                audit::record(&state, &req, event).await?;
            }
            render_login(&req, &next, username, Some(login::GENERIC_FAILURE), None)
        }
        LoginOutcome::Locked { user, lock } => {
            let actor = user.as_ref().and_then(audit::actor);
            let event = AuditEvent::new(AuditKind::LoginLocked, actor).detail(format!(
                "attempt refused without checking the password: {} locked until {} UTC",
                lock.scope.as_str(),
                lock.until.format("%Y-%m-%d %H:%M:%S")
            ));
            audit::record(&state, &req, event).await?;
            render_login(&req, &next, username, Some(login::GENERIC_FAILURE), None)
        }
    }
}

/// Signs `user` in on this request: a new session id (against fixation),
/// a fresh CSRF token, and the login time for the absolute limit.
pub async fn start_session(
    req: &HttpRequest,
    state: &AppState,
    user: &User,
) -> Result<(), PageError> {
    let session = req.get_session();
    session.renew();
    session.clear();
    let insert_failed = |e: actix_session::SessionInsertError| PageError::Internal(e.to_string());
    session
        .insert(USER_ID_KEY, user.id)
        .map_err(insert_failed)?;
    session
        .insert(LOGIN_AT_KEY, chrono::Utc::now().timestamp())
        .map_err(insert_failed)?;
    session
        .insert(csrf::SESSION_KEY, csrf::new_token())
        .map_err(insert_failed)?;
    if user.failed_since_last_login > 0 {
        session
            .insert("failed_logins_notice", user.failed_since_last_login)
            .map_err(insert_failed)?;
    }
    let id = user.id;
    state
        .db
        .write(move |conn| {
            diesel::update(users::table.find(id))
                .set((
                    users::last_login_at.eq(Some(now())),
                    users::failed_since_last_login.eq(0),
                ))
                .execute(conn)
                .map_err(DbError::from)
        })
        .await?;
    Ok(())
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn logout(
    user: AuthUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    _form: CsrfForm<Empty>,
) -> Result<HttpResponse, PageError> {
    let event = AuditEvent::new(AuditKind::Logout, audit::actor(&user.user));
    audit::record(&state, &req, event).await?;
    // purge() deletes the server-side session, so the old cookie is dead
    // even if someone kept a copy.
    user.session.purge();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login?logged_out=1"))
        .insert_header(("Clear-Site-Data", "\"cache\", \"cookies\", \"storage\""))
        .finish())
}
