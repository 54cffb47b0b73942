//! `/admin/users`: listing, creating and changing accounts.
//!
//! Each change is a POST with a CSRF token to `/admin/users/{id}/...`,
//! answered with a 303 back to the account's page, which shows the
//! confirmation (or why the change was refused, e.g. the last active
//! administrator). Changes that end access (deactivation, a new password,
//! ending sessions, revoking a token) delete or revoke the rows in the
//! database, so they take effect at once on every instance.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Flash, accounts, see_other, set_flash, take_flash, when};
use crate::audit::{self, AuditEvent, AuditKind};
use crate::auth::csrf::CsrfForm;
use crate::auth::users::{self, AccountError};
use crate::auth::{AdminUser, password};
use crate::db::models::{ApiToken, Role};
use crate::db::{DbConn, DbError};
use crate::web::error::{PageError, encode_query_value};
use crate::web::pages::Nav;
use crate::web::{AppState, html};

/// An account as the pages show it.
pub struct AccountView {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub is_admin: bool,
    pub active: bool,
    pub must_change_password: bool,
    pub created: String,
    pub last_login: String,
    pub failed_since_last_login: i32,
    pub sessions: i64,
    pub tokens: i64,
    /// `/admin/audit?user=...` for this account.
    pub audit_link: String,
}

impl From<accounts::Account> for AccountView {
    fn from(a: accounts::Account) -> Self {
        let u = a.user;
        AccountView {
            id: u.id,
            audit_link: format!("/admin/audit?user={}", encode_query_value(&u.username)),
            is_admin: u.is_admin(),
            role: u.role,
            active: u.is_active,
            must_change_password: u.must_change_password,
            created: when(&u.created_at),
            last_login: u
                .last_login_at
                .as_ref()
                .map(when)
                .unwrap_or_else(|| "never".into()),
            failed_since_last_login: u.failed_since_last_login,
            sessions: a.sessions,
            tokens: a.tokens,
            username: u.username,
        }
    }
}

/// A live API token as the account page shows it.
pub struct TokenView {
    pub id: i64,
    pub prefix: String,
    pub created: String,
    pub expires: String,
    pub last_used: String,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        TokenView {
            id: t.id,
            prefix: t.prefix,
            created: when(&t.created_at),
            expires: t
                .expires_at
                .as_ref()
                .map(when)
                .unwrap_or_else(|| "never".into()),
            last_used: t
                .last_used_at
                .as_ref()
                .map(when)
                .unwrap_or_else(|| "never".into()),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage<'a> {
    nav: Nav,
    accounts: Vec<AccountView>,
    notice: Option<String>,
    error: Option<String>,
    username: &'a str,
    role: &'a str,
    must_change: bool,
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage {
    nav: Nav,
    account: AccountView,
    tokens: Vec<TokenView>,
    notice: Option<String>,
    error: Option<String>,
    is_self: bool,
}

async fn render_list(
    admin: &AdminUser,
    req: &HttpRequest,
    state: &AppState,
    form: Option<(&str, &str, bool)>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let list = state
        .db
        .run(|conn| accounts::list(conn).map_err(DbError::from))
        .await?;
    let (notice, flash_error) = take_flash(&admin.session);
    let (username, role, must_change) = form.unwrap_or(("", "staff", true));
    let failed = error.is_some();
    let page = UsersPage {
        nav: Nav::for_user(admin, req),
        accounts: list.into_iter().map(AccountView::from).collect(),
        notice,
        error: error.or(flash_error),
        username,
        role,
        must_change,
    };
    let mut res = html(page.render()?);
    if failed {
        *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(res)
}

/// `GET /admin/users`: every account, and the form to create one.
pub async fn list(
    admin: AdminUser,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    render_list(&admin, &req, &state, None, None).await
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password2: String,
    #[serde(default)]
    role: String,
    /// Checkbox: present when ticked.
    #[serde(default)]
    must_change: Option<String>,
}

/// `POST /admin/users`: creates a staff or admin account.
pub async fn create(
    admin: AdminUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    form: CsrfForm<CreateForm>,
) -> Result<HttpResponse, PageError> {
    let username = form.username.trim().to_owned();
    let must_change = form.must_change.is_some();
    let role_text = form.role.as_str();
    let refuse = |message: String| {
        let sticky = (username.as_str(), role_text, must_change);
        render_list(&admin, &req, &state, Some(sticky), Some(message))
    };
    let Some(role) = Role::parse(role_text) else {
        return refuse("Choose a role: staff or admin.".into()).await;
    };
    if let Err(e) = users::check_username(&username) {
        return refuse(e.to_string()).await;
    }
    if let Err(reason) = password::check_new_password(&username, &form.password, &form.password2) {
        return refuse(reason).await;
    }
    let hash = state
        .passwords
        .hash(form.password.clone())
        .await
        .ok_or_else(|| PageError::Internal("password hashing failed".into()))?;
    let name = username.clone();
    let created = state
        .db
        .write(
            move |conn| match users::create(conn, &name, &hash, role, must_change) {
                Ok(user) => Ok(Ok(user)),
                Err(AccountError::Db(e)) => Err(e),
                Err(other) => Ok(Err(other)),
            },
        )
        .await?;
    let user = match created {
        Ok(user) => user,
        Err(e) => return refuse(e.to_string()).await,
    };
    let mut message = format!("Created the {} account {:?}.", role.as_str(), user.username);
    if must_change {
        message.push_str(" They must choose a new password when they first sign in.");
    }
    confirm(&admin, &req, &state, AuditKind::Admin, message).await?;
    Ok(see_other(&format!("/admin/users/{}", user.id)))
}

/// Records an admin action and shows its confirmation on the next page.
async fn confirm(
    admin: &AdminUser,
    req: &HttpRequest,
    state: &AppState,
    kind: AuditKind,
    message: String,
) -> Result<(), PageError> {
    let event = AuditEvent::new(kind, audit::actor(&admin.user)).detail(&message);
    audit::record(state, req, event).await?;
    set_flash(&admin.session, Flash::Notice(message))
}

/// `GET /admin/users/{id}`: one account, its tokens, and every action.
pub async fn detail(
    admin: AdminUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    let found = state
        .db
        .run(move |conn| {
            let Some(account) = accounts::find(conn, id)? else {
                return Ok(None);
            };
            let tokens = accounts::live_tokens(conn, id)?;
            Ok::<_, DbError>(Some((account, tokens)))
        })
        .await?;
    let Some((account, tokens)) = found else {
        return Err(PageError::NotFound);
    };
    let (notice, error) = take_flash(&admin.session);
    let page = UserPage {
        nav: Nav::for_user(&admin, &req),
        is_self: account.user.id == admin.id(),
        account: account.into(),
        tokens: tokens.into_iter().map(TokenView::from).collect(),
        notice,
        error,
    };
    Ok(html(page.render()?))
}

/// Runs an account change on the blocking pool, then confirms it (or
/// shows why it was refused) on the account's page.
async fn change<F>(
    admin: &AdminUser,
    req: &HttpRequest,
    state: &AppState,
    id: i64,
    kind: AuditKind,
    f: F,
) -> Result<HttpResponse, PageError>
where
    F: FnOnce(&mut DbConn, &str) -> Result<String, AccountError> + Send + 'static,
{
    let outcome = state
        .db
        .write(move |conn| {
            let Some(target) = users::find_by_id(conn, id)? else {
                return Ok(Err(AccountError::NotFound(format!("#{id}"))));
            };
            match f(conn, &target.username) {
                Err(AccountError::Db(e)) => Err(e),
                other => Ok(other),
            }
        })
        .await?;
    match outcome {
        Ok(message) => confirm(admin, req, state, kind, message).await?,
        Err(AccountError::NotFound(_)) => return Err(PageError::NotFound),
        Err(e) => set_flash(&admin.session, Flash::Error(e.to_string()))?,
    }
    Ok(see_other(&format!("/admin/users/{id}")))
}

#[derive(Deserialize)]
pub struct Empty {}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    password2: String,
}

/// `POST /admin/users/{id}/password`: sets a temporary password the user
/// must change at their next sign-in; their sessions and tokens end.
pub async fn reset_password(
    admin: AdminUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    form: CsrfForm<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    let target = state
        .db
        .run(move |conn| users::find_by_id(conn, id).map_err(DbError::from))
        .await?
        .ok_or(PageError::NotFound)?;
    if let Err(reason) =
        password::check_new_password(&target.username, &form.password, &form.password2)
    {
        set_flash(
            &admin.session,
            Flash::Error(format!("The password was not changed: {reason}")),
        )?;
        return Ok(see_other(&format!("/admin/users/{id}")));
    }
    let hash = state
        .passwords
        .hash(form.password.clone())
        .await
        .ok_or_else(|| PageError::Internal("password hashing failed".into()))?;
    change(&admin, &req, &state, id, AuditKind::Admin, move |conn, name| {
        users::set_password(conn, id, &hash, true, None)?;
        Ok(format!(
            "Reset the password of {name:?}. They must choose a new one when they next sign in; \
             their sessions and API tokens have ended."
        ))
    })
    .await
}

/// `POST /admin/users/{id}/deactivate`: ends the account's sessions and
/// tokens at once (refused for the last active administrator).
pub async fn deactivate(
    admin: AdminUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    _form: CsrfForm<Empty>,
) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    change(
        &admin,
        &req,
        &state,
        id,
        AuditKind::Admin,
        move |conn, name| {
            users::set_active(conn, id, false)?;
            Ok(format!(
                "Deactivated {name:?}. Their sessions and API tokens have ended."
            ))
        },
    )
    .await
}

/// `POST /admin/users/{id}/activate`.
pub async fn activate(
    admin: AdminUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    _form: CsrfForm<Empty>,
) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    change(
        &admin,
        &req,
        &state,
        id,
        AuditKind::Admin,
        move |conn, name| {
            users::set_active(conn, id, true)?;
            Ok(format!(
                "Reactivated {name:?}. They can sign in again; earlier API tokens stay revoked."
            ))
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

/// `POST /admin/users/{id}/role` (refused for the last active
/// administrator's demotion).
pub async fn set_role(
    admin: AdminUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    form: CsrfForm<RoleForm>,
) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    let Some(role) = Role::parse(&form.role) else {
        set_flash(
            &admin.session,
            Flash::Error("Choose a role: staff or admin.".into()),
        )?;
        return Ok(see_other(&format!("/admin/users/{id}")));
    };
    change(
        &admin,
        &req,
        &state,
        id,
        AuditKind::Admin,
        move |conn, name| {
            users::set_role(conn, id, role)?;
            Ok(format!("{name:?} is now {}.", role_name(role)))
        },
    )
    .await
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "an administrator",
        Role::Staff => "staff",
    }
}

/// `POST /admin/users/{id}/end-sessions`: signs the user out everywhere
/// (API tokens keep working; revoke them one by one).
pub async fn end_sessions(
    admin: AdminUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    _form: CsrfForm<Empty>,
) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    change(
        &admin,
        &req,
        &state,
        id,
        AuditKind::Admin,
        move |conn, name| {
            let ended = accounts::end_sessions(conn, id)?;
            Ok(format!(
                "Ended {ended} session{} of {name:?}.",
                if ended == 1 { "" } else { "s" }
            ))
        },
    )
    .await
}

/// `POST /admin/users/{id}/tokens/{token_id}/revoke`.
pub async fn revoke_token(
    admin: AdminUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(i64, i64)>,
    _form: CsrfForm<Empty>,
) -> Result<HttpResponse, PageError> {
    let (id, token_id) = path.into_inner();
    change(
        &admin,
        &req,
        &state,
        id,
        AuditKind::TokenRevoked,
        move |conn, name| {
            let Some(token) = accounts::find_token(conn, id, token_id)? else {
                return Err(AccountError::NotFound(format!("token #{token_id}")));
            };
            if !accounts::revoke_token(conn, id, token_id)? {
                return Err(AccountError::Invalid(format!(
                    "The token {}… of {name:?} was already revoked or expired.",
                    token.prefix
                )));
            }
            Ok(format!(
                "Revoked the API token {}… (#{token_id}) of {name:?}.",
                token.prefix
            ))
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::role_name;
    use crate::db::models::Role;

    #[test]
    fn roles_read_as_english() {
        assert_eq!(role_name(Role::Admin), "an administrator");
        assert_eq!(role_name(Role::Staff), "staff");
    }
}
