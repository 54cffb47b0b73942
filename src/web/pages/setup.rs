//! `/setup`: creates the first administrator, only while no account exists
//! and only with the one-time token that `custos serve` prints.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::auth::csrf::{self, CsrfForm};
use crate::auth::{password, users};
use crate::db::DbError;
use crate::web::AppState;
use crate::web::error::PageError;

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage<'a> {
    csrf_token: &'a str,
    token: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// 404 once an account exists; 403 without the right token.
async fn check_open(state: &AppState, token: &str) -> Result<(), PageError> {
    let count = state
        .db
        .run(|conn| users::count_users(conn).map_err(DbError::from))
        .await?;
    if count > 0 {
        return Err(PageError::NotFound);
    }
    let expected = state
        .setup_token
        .lock()
        .map_err(|_| PageError::Internal("setup token lock poisoned".into()))?
        .clone();
    match expected {
        Some(expected) if bool::from(expected.as_bytes().ct_eq(token.as_bytes())) => Ok(()),
        _ => Err(PageError::BadRequest(
            "This setup link is not valid. Use the exact link that `custos serve` printed when it started."
                .into(),
        )),
    }
}

fn render(
    req: &HttpRequest,
    token: &str,
    username: &str,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let (csrf_token, cookie) = csrf::token_for(req);
    let body = SetupPage {
        csrf_token: &csrf_token,
        token,
        username,
        error,
    }
    .render()?;
    let mut res = HttpResponse::Ok();
    res.content_type("text/html; charset=utf-8");
    if let Some(c) = cookie {
        res.cookie(c);
    }
    Ok(res.body(body))
}

pub async fn setup_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, PageError> {
    check_open(&state, &query.token).await?;
    render(&req, &query.token, "", None)
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password2: String,
}

pub async fn setup_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: CsrfForm<SetupForm>,
) -> Result<HttpResponse, PageError> {
    check_open(&state, &form.token).await?;
    let username = form.username.trim().to_owned();
    if let Err(e) = users::check_username(&username) {
        return render(&req, &form.token, &username, Some(&e.to_string()));
    }
    if let Err(reason) = password::check_new_password(&username, &form.password, &form.password2) {
        return render(&req, &form.token, &username, Some(&reason));
    }
    let hash = state
        .passwords
        .hash(form.password.clone())
        .await
        .ok_or_else(|| PageError::Internal("password hashing failed".into()))?;
    let name = username.clone();
    let created = state
        .db
        .write(move |conn| users::create_first_admin(conn, &name, &hash))
        .await
        .map_err(|e| match e {
            users::AccountError::Db(db) => PageError::from(db),
            other => PageError::BadRequest(other.to_string()),
        })?;
    let Some(user) = created else {
        return Err(PageError::NotFound);
    };
    if let Ok(mut token) = state.setup_token.lock() {
        *token = None;
    }
    tracing::info!(username = %user.username, "first administrator created through /setup");
    super::auth::start_session(&req, &state, &user).await?;
    let event =
        crate::audit::AuditEvent::new(crate::audit::AuditKind::Setup, crate::audit::actor(&user))
            .detail(format!(
                "first administrator {:?} created through /setup",
                user.username
            ));
    crate::audit::record(&state, &req, event).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, "/"))
        .finish())
}
