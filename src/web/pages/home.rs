//! `/`: the query forms.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::Nav;
use crate::auth::AuthUser;
use crate::db::models::Operator;
use crate::db::schema::operators;
use crate::import::validate::{PLANS, STATUSES};
use crate::web::error::PageError;
use crate::web::{AppState, html};
use diesel::prelude::*;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    nav: Nav,
    operators: Vec<Operator>,
    statuses: &'static [&'static str],
    plans: &'static [&'static str],
    failed_logins: i32,
}

pub async fn home(
    user: AuthUser,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let operators: Vec<Operator> = state
        .db
        .run(|conn| {
            operators::table
                .order(operators::name.asc())
                .limit(500)
                .select(Operator::as_select())
                .load(conn)
                .map_err(crate::db::DbError::from)
        })
        .await?;
    let failed_logins = user
        .session
        .remove_as::<i32>("failed_logins_notice")
        .and_then(Result::ok)
        .unwrap_or(0);
    let page = HomePage {
        nav: Nav::for_user(&user, &req),
        operators,
        statuses: &STATUSES,
        plans: &PLANS,
        failed_logins,
    };
    Ok(html(page.render()?))
}
