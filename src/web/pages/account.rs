//! `/account`: change one's password and manage one's API tokens.
//!
//! A new token is shown once, in the answer to the POST that created it
//! (inside `id="api-token"`); only its SHA-256 is stored. Changing the
//! password ends every other session and revokes every token; the current
//! session continues under a fresh id.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::NaiveDateTime;
use serde::Deserialize;

use super::Nav;
use crate::audit::{self, AuditEvent, AuditKind};
use crate::auth::AuthUser;
use crate::auth::csrf::CsrfForm;
use crate::auth::{password, tokens, users};
use crate::db::models::ApiToken;
use crate::db::{DbError, now};
use crate::web::error::PageError;
use crate::web::{AppState, html};

/// One token as listed (never the secret).
pub struct TokenRow {
    pub id: i64,
    pub prefix: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
}

fn when(t: Option<NaiveDateTime>, none: &str) -> String {
    t.map_or_else(
        || none.to_owned(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

impl From<&ApiToken> for TokenRow {
    fn from(t: &ApiToken) -> Self {
        TokenRow {
            id: t.id,
            prefix: t.prefix.clone(),
            created: when(Some(t.created_at), ""),
            last_used: when(t.last_used_at, "never"),
            expires: when(t.expires_at, "never"),
        }
    }
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    nav: Nav,
    must_change_password: bool,
    notice: Option<&'a str>,
    error: Option<&'a str>,
    new_token: Option<&'a str>,
    new_token_expires: String,
    tokens: Vec<TokenRow>,
    token_lifetime_days: u64,
}

/// What the page shows besides the lists.
#[derive(Default)]
struct Extra<'a> {
    notice: Option<&'a str>,
    error: Option<&'a str>,
    new_token: Option<(&'a str, NaiveDateTime)>,
    must_change_password: Option<bool>,
}

async fn render(
    user: &AuthUser,
    req: &HttpRequest,
    state: &AppState,
    extra: Extra<'_>,
) -> Result<HttpResponse, PageError> {
    let user_id = user.id();
    let list = state
        .db
        .run(move |conn| tokens::list_tokens(conn, user_id).map_err(DbError::from))
        .await?;
    let page = AccountPage {
        nav: Nav::for_user(user, req),
        must_change_password: extra
            .must_change_password
            .unwrap_or(user.user.must_change_password),
        notice: extra.notice,
        error: extra.error,
        new_token: extra.new_token.map(|t| t.0),
        new_token_expires: when(extra.new_token.map(|t| t.1), "never"),
        tokens: list.iter().map(TokenRow::from).collect(),
        token_lifetime_days: state.settings.token_lifetime.as_secs() / 86_400,
    };
    Ok(html(page.render()?))
}

pub async fn account(
    user: AuthUser,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let revoked = req.query_string() == "revoked=1";
    let extra = Extra {
        notice: revoked.then_some("The token was revoked."),
        ..Extra::default()
    };
    render(&user, &req, &state, extra).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password2: String,
}

pub async fn change_password(
    user: AuthUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    form: CsrfForm<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    let refuse = |msg: String| {
        let user = &user;
        let req = &req;
        let state = &state;
        async move {
            render(
                user,
                req,
                state,
                Extra {
                    error: Some(&msg),
                    ..Extra::default()
                },
            )
            .await
        }
    };
    if form.current_password.is_empty() || form.current_password.len() > 1024 {
        return refuse("Enter your current password.".into()).await;
    }
    let verified = state
        .passwords
        .verify(
            Some(user.user.password_hash.clone()),
            form.current_password.clone(),
        )
        .await;
    if !verified {
        return refuse("The current password is not correct.".into()).await;
    }
    if form.new_password != form.new_password2 {
        return refuse("The two new passwords differ.".into()).await;
    }
    if form.new_password == form.current_password {
        return refuse("The new password must differ from the current one.".into()).await;
    }
    if let Err(reason) = password::check_policy(user.username(), &form.new_password) {
        return refuse(reason).await;
    }
    let Some(hash) = state.passwords.hash(form.new_password.clone()).await else {
        return Err(PageError::Internal("password hashing failed".into()));
    };
    let user_id = user.id();
    state
        .db
        .write(move |conn| {
            users::set_password(conn, user_id, &hash, false, None).map_err(|e| match e {
                users::AccountError::Db(db) => PageError::from(db),
                other => PageError::Internal(other.to_string()),
            })
        })
        .await?;
    // set_password ended every session of the user, this one included; the
    // browser keeps its state under a new session id.
    user.session.renew();
    audit::record(
        &state,
        &req,
        AuditEvent::new(
            AuditKind::PasswordChanged,
            Some((user_id, user.username().to_owned())),
        )
        .detail("own password; other sessions ended, tokens revoked"),
    )
    .await?;
    render(
        &user,
        &req,
        &state,
        Extra {
            notice: Some(
                "Your password was changed. Your other sessions have ended and your API tokens were revoked.",
            ),
            must_change_password: Some(false),
            ..Extra::default()
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn create_token(
    user: AuthUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    _form: CsrfForm<Empty>,
) -> Result<HttpResponse, PageError> {
    let token = tokens::generate_token();
    let lifetime = chrono::Duration::seconds(
        i64::try_from(state.settings.token_lifetime.as_secs()).unwrap_or(90 * 86_400),
    );
    let expires_at = now() + lifetime;
    let user_id = user.id();
    let secret = token.clone();
    let stored = state
        .db
        .write(move |conn| {
            tokens::store_token(conn, user_id, &secret, Some(expires_at)).map_err(DbError::from)
        })
        .await?;
    audit::record(
        &state,
        &req,
        AuditEvent::new(
            AuditKind::TokenCreated,
            Some((user_id, user.username().to_owned())),
        )
        .detail(format!("token {}… (id {})", stored.prefix, stored.id)),
    )
    .await?;
    render(
        &user,
        &req,
        &state,
        Extra {
            notice: Some("A new API token was created."),
            new_token: Some((&token, expires_at)),
            ..Extra::default()
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct RevokeForm {
    token_id: String,
}

pub async fn revoke_token(
    user: AuthUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    form: CsrfForm<RevokeForm>,
) -> Result<HttpResponse, PageError> {
    let token_id: i64 = form
        .token_id
        .trim()
        .parse()
        .map_err(|_| PageError::BadRequest("The token to revoke is not valid.".into()))?;
    let user_id = user.id();
    let revoked = state
        .db
        .write(move |conn| {
            tokens::revoke_token(conn, token_id, Some(user_id)).map_err(DbError::from)
        })
        .await?;
    if revoked == 0 {
        return Err(PageError::NotFound);
    }
    audit::record(
        &state,
        &req,
        AuditEvent::new(
            AuditKind::TokenRevoked,
            Some((user_id, user.username().to_owned())),
        )
        .detail(format!("token id {token_id}")),
    )
    .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/account?revoked=1"))
        .finish())
}
