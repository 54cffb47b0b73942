//! `/operators` (searchable, sorted, paged) and `/operators/{id}` with its
//! customers counted by status.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use diesel::prelude::*;

use super::Nav;
use super::customers::{actor, display_time, path_id};
use super::listing::{Pager, QueryLinks, SortLink, bad_query, sort_link};
use crate::audit::{self, AuditEvent, AuditKind};
use crate::auth::AuthUser;
use crate::db::DbError;
use crate::db::models::Operator;
use crate::db::schema::customers;
use crate::import::validate::STATUSES;
use crate::query::{self, OperatorField, OperatorFilter, PageRequest, Params, ResolvedPage};
use crate::web::error::{PageError, encode_query_value};
use crate::web::{AppState, html};

/// The parameters an operator result page understands, in link order.
pub const OPERATOR_KEYS: [&str; 5] = ["search", "country", "ordering", "page_size", "page"];

/// An operator as the pages show it.
pub struct OperatorRow {
    pub id: i64,
    pub name: String,
    pub country: String,
    pub support_email: String,
    pub created_at: String,
}

impl From<Operator> for OperatorRow {
    fn from(o: Operator) -> Self {
        Self {
            created_at: display_time(&o.created_at),
            id: o.id,
            name: o.name,
            country: o.country,
            support_email: o.support_email,
        }
    }
}

#[derive(Template)]
#[template(path = "operators.html")]
struct OperatorsPage {
    nav: Nav,
    rows: Vec<OperatorRow>,
    pager: Pager,
    h_id: SortLink,
    h_name: SortLink,
    h_created: SortLink,
    filtered: bool,
    search: String,
    country: String,
    ordering: String,
    page_size: i64,
}

pub async fn list(
    user: AuthUser,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let result = list_page(&user, &req, &state).await;
    super::user_error::or_page(&user, &req, result)
}

async fn list_page(
    user: &AuthUser,
    req: &HttpRequest,
    state: &AppState,
) -> Result<HttpResponse, PageError> {
    let params = Params::parse(req.query_string()).map_err(bad_query)?;
    let filter =
        OperatorFilter::from_params(&params).map_err(|e| PageError::BadRequest(e.to_sentence()))?;
    let page_request = PageRequest::from_params(&params);
    let f = filter.clone();
    let loaded = state
        .db
        .run(
            move |conn| -> Result<Option<(ResolvedPage, Vec<Operator>)>, DbError> {
                let count = f.count(conn)?;
                let Some(page) = page_request.resolve(count) else {
                    return Ok(None);
                };
                let rows = f.page(conn, page.offset(), page.page_size)?;
                Ok(Some((page, rows)))
            },
        )
        .await?;
    let Some((resolved, rows)) = loaded else {
        return Err(PageError::NotFound);
    };
    let event = AuditEvent::new(AuditKind::PageView, actor(user))
        .rows(rows.len() as i64)
        .detail(format!("operators: {} matching", resolved.count));
    audit::record(state, req, event).await?;

    let links = QueryLinks::new("/operators", &params, &OPERATOR_KEYS);
    let sort = |field, name, label| sort_link(&links, &filter.ordering, field, name, label);
    let pager = Pager::new(&links, &resolved, rows.len());
    let page = OperatorsPage {
        nav: Nav::for_user(user, req),
        rows: rows.into_iter().map(OperatorRow::from).collect(),
        h_id: sort(OperatorField::Id, "id", "Id"),
        h_name: sort(OperatorField::Name, "name", "Name"),
        h_created: sort(OperatorField::CreatedAt, "created_at", "Created (UTC)"),
        filtered: !links.get("search").is_empty() || !links.get("country").is_empty(),
        search: links.get("search").to_owned(),
        country: links.get("country").to_owned(),
        ordering: links.get("ordering").to_owned(),
        page_size: pager.page_size,
        pager,
    };
    Ok(html(page.render()?))
}

/// Customers of an operator in one status, linking to them.
pub struct StatusCount {
    pub status: &'static str,
    pub count: i64,
    pub href: String,
}

/// An operator and its customer counts per status, as loaded.
type OperatorWithCounts = (Operator, Vec<(String, i64)>);

#[derive(Template)]
#[template(path = "operator.html")]
struct OperatorPage {
    nav: Nav,
    operator: OperatorRow,
    counts: Vec<StatusCount>,
    total: i64,
    all_href: String,
}

pub async fn detail(
    user: AuthUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let result = detail_page(&user, &req, &state, &path).await;
    super::user_error::or_page(&user, &req, result)
}

async fn detail_page(
    user: &AuthUser,
    req: &HttpRequest,
    state: &AppState,
    path: &str,
) -> Result<HttpResponse, PageError> {
    let id = path_id(path)?;
    let found = state
        .db
        .run(move |conn| -> Result<Option<OperatorWithCounts>, DbError> {
            let Some(op) = query::operator_by_id(conn, id)? else {
                return Ok(None);
            };
            let counts = customers::table
                .filter(customers::operator_id.eq(id))
                .group_by(customers::status)
                .select((customers::status, diesel::dsl::count_star()))
                .load::<(String, i64)>(conn)?;
            Ok(Some((op, counts)))
        })
        .await?;
    let Some((operator, counted)) = found else {
        return Err(PageError::NotFound);
    };
    let total: i64 = counted.iter().map(|(_, n)| n).sum();
    let event = AuditEvent::new(AuditKind::PageView, actor(user))
        .rows(1)
        .detail(format!("operator {} ({total} customers)", operator.id));
    audit::record(state, req, event).await?;
    let counts = STATUSES
        .iter()
        .map(|s| StatusCount {
            status: s,
            count: counted
                .iter()
                .find(|(status, _)| status == s)
                .map_or(0, |(_, n)| *n),
            href: format!(
                "/customers?operator={}&status={}",
                operator.id,
                encode_query_value(s)
            ),
        })
        .collect();
    let page = OperatorPage {
        nav: Nav::for_user(user, req),
        all_href: format!("/customers?operator={}", operator.id),
        operator: operator.into(),
        counts,
        total,
    };
    Ok(html(page.render()?))
}
