//! `/customers` (filtered, sorted, paged results) and `/customers/{id}`.
//!
//! The filters are the API's, parsed by the shared query module, so a
//! result page's URL is the bookmark and shows the rows the API returns for
//! the same parameters. Every view is audited before anything is shown.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use diesel::prelude::*;

use super::Nav;
use super::listing::{Choice, Pager, QueryLinks, SortLink, bad_query, choices, sort_link};
use crate::audit::{self, AuditEvent, AuditKind};
use crate::auth::AuthUser;
use crate::db::DbError;
use crate::db::models::{Customer, Operator};
use crate::db::schema::operators;
use crate::import::validate::{PLANS, STATUSES};
use crate::query::{self, CustomerField, CustomerFilter, PageRequest, Params};
use crate::web::error::PageError;
use crate::web::{AppState, html};

/// The parameters a customer result page understands, in link order.
pub const CUSTOMER_KEYS: [&str; 10] = [
    "search",
    "status",
    "plan",
    "country",
    "operator",
    "created_after",
    "created_before",
    "ordering",
    "page_size",
    "page",
];

/// The parameters that narrow the result (everything but order and paging).
const FILTER_KEYS: [&str; 7] = [
    "search",
    "status",
    "plan",
    "country",
    "operator",
    "created_after",
    "created_before",
];

/// Most operators offered in the filter's select.
const OPERATOR_CHOICES: i64 = 500;

/// A customer as a results row shows it.
pub struct CustomerRow {
    pub id: i64,
    pub full_name: String,
    pub email: String,
    pub phone: String,
    pub city: String,
    pub country: String,
    pub plan: String,
    pub status: String,
    pub operator_id: i64,
    pub operator_name: String,
    pub created_at: String,
}

/// How dates and times are shown on pages (always UTC).
pub fn display_time(t: &chrono::NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    // Field by field: a chrono format string is parsed anew on every call.
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute()
    )
}

impl CustomerRow {
    fn new(c: &Customer, names: &HashMap<i64, String>) -> Self {
        Self {
            operator_name: names
                .get(&c.operator_id)
                .cloned()
                .unwrap_or_else(|| format!("#{}", c.operator_id)),
            created_at: display_time(&c.created_at),
            id: c.id,
            full_name: c.full_name.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
            city: c.city.clone(),
            country: c.country.clone(),
            plan: c.plan.clone(),
            status: c.status.clone(),
            operator_id: c.operator_id,
        }
    }
}

#[derive(Template)]
#[template(path = "customers.html")]
struct CustomersPage {
    nav: Nav,
    rows: Vec<CustomerRow>,
    pager: Pager,
    h_id: SortLink,
    h_name: SortLink,
    h_created: SortLink,
    export_href: String,
    clear_href: &'static str,
    filtered: bool,
    search: String,
    country: String,
    created_after: String,
    created_before: String,
    statuses: Vec<Choice>,
    plans: Vec<Choice>,
    operators: Vec<Choice>,
    ordering: String,
    page_size: i64,
}

/// The user as the audit trail names them.
pub fn actor(user: &AuthUser) -> Option<(i64, String)> {
    Some((user.id(), user.username().to_owned()))
}

/// Parses and validates the query string of a customer page (400 with the
/// reason when it cannot be used).
pub fn customer_query(req: &HttpRequest) -> Result<(Params, CustomerFilter), PageError> {
    let params = Params::parse(req.query_string()).map_err(bad_query)?;
    let filter =
        CustomerFilter::from_params(&params).map_err(|e| PageError::BadRequest(e.to_sentence()))?;
    Ok((params, filter))
}

struct Loaded {
    page: query::ResolvedPage,
    rows: std::sync::Arc<[Customer]>,
    names: HashMap<i64, String>,
    operators: Vec<(i64, String)>,
}

fn operator_names(
    conn: &mut crate::db::DbConn,
    ids: Vec<i64>,
) -> QueryResult<HashMap<i64, String>> {
    Ok(operators::table
        .filter(operators::id.eq_any(ids))
        .select((operators::id, operators::name))
        .load::<(i64, String)>(conn)?
        .into_iter()
        .collect())
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
    let (params, filter) = customer_query(req)?;
    let page_request = PageRequest::from_params(&params);
    let f = filter.clone();
    let selected_operator = filter.operator;
    let pager = state.db.pager();
    let loaded = state
        .db
        .run(move |conn| -> Result<Option<Loaded>, DbError> {
            // One read of the data version for the count, the page and
            // the operators' names.
            let version = pager.version(conn)?;
            let version = version.as_deref();
            let count = pager.count(conn, &f, version)?;
            let Some(page) = page_request.resolve(count) else {
                return Ok(None);
            };
            let rows = pager.page(conn, &f, page.offset(), page.page_size, count, version)?;
            let mut ids: Vec<i64> = rows.iter().map(|c| c.operator_id).collect();
            ids.sort_unstable();
            ids.dedup();
            // From the operators kept for this data version, if they are
            // few enough to keep; else read for this page.
            let directory = pager.operator_directory(conn, version)?;
            let (names, mut operators) = match &directory {
                Some(d) => (
                    ids.iter()
                        .filter_map(|id| d.names.get(id).map(|n| (*id, n.clone())))
                        .collect(),
                    d.by_name
                        .iter()
                        .take(usize::try_from(OPERATOR_CHOICES).unwrap_or(usize::MAX))
                        .cloned()
                        .collect::<Vec<_>>(),
                ),
                None => (
                    operator_names(conn, ids)?,
                    operators::table
                        .order((operators::name.asc(), operators::id.asc()))
                        .limit(OPERATOR_CHOICES)
                        .select((operators::id, operators::name))
                        .load(conn)?,
                ),
            };
            if let Some(id) = selected_operator
                && !operators.iter().any(|(o, _)| *o == id)
            {
                let name = match &directory {
                    Some(d) => d.names.get(&id).cloned(),
                    None => operator_names(conn, vec![id])?.remove(&id),
                }
                .unwrap_or_else(|| format!("#{id} (no such operator)"));
                operators.push((id, name));
            }
            Ok(Some(Loaded {
                page,
                rows,
                names,
                operators,
            }))
        })
        .await?;
    let Some(loaded) = loaded else {
        return Err(PageError::NotFound);
    };
    let event = AuditEvent::new(AuditKind::PageView, actor(user))
        .rows(loaded.rows.len() as i64)
        .detail(format!("customers: {} matching", loaded.page.count));
    audit::record(state, req, event).await?;

    let links = QueryLinks::new("/customers", &params, &CUSTOMER_KEYS);
    let sort = |field, name, label| sort_link(&links, &filter.ordering, field, name, label);
    let operator_choices = std::iter::once(Choice::new("", "any", selected_operator.is_none()))
        .chain(
            loaded
                .operators
                .into_iter()
                .map(|(id, name)| Choice::new(id.to_string(), name, Some(id) == selected_operator)),
        )
        .collect();
    let pager = Pager::new(&links, &loaded.page, loaded.rows.len());
    let names = loaded.names;
    let page = CustomersPage {
        nav: Nav::for_user(user, req),
        rows: loaded
            .rows
            .iter()
            .map(|c| CustomerRow::new(c, &names))
            .collect(),
        export_href: links.href_to(
            "/customers/export.csv",
            &[("page", None), ("page_size", None)],
        ),
        clear_href: "/customers",
        filtered: FILTER_KEYS.iter().any(|k| !links.get(k).is_empty()),
        search: links.get("search").to_owned(),
        country: links.get("country").to_owned(),
        created_after: links.get("created_after").to_owned(),
        created_before: links.get("created_before").to_owned(),
        statuses: choices(&STATUSES, filter.status.as_deref().unwrap_or("")),
        plans: choices(&PLANS, filter.plan.as_deref().unwrap_or("")),
        operators: operator_choices,
        ordering: links.get("ordering").to_owned(),
        page_size: pager.page_size,
        pager,
        h_id: sort(CustomerField::Id, "id", "Id"),
        h_name: sort(CustomerField::FullName, "full_name", "Name"),
        h_created: sort(CustomerField::CreatedAt, "created_at", "Created (UTC)"),
    };
    Ok(html(page.render()?))
}

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage {
    nav: Nav,
    customer: CustomerRow,
    created_at_utc: String,
    operator_exists: bool,
}

/// A positive integer id from the path; anything else is a 404.
pub fn path_id(raw: &str) -> Result<i64, PageError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(PageError::NotFound)
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
        .run(
            move |conn| -> Result<Option<(Customer, Option<Operator>)>, DbError> {
                let Some(c) = query::customer_by_id(conn, id)? else {
                    return Ok(None);
                };
                let op = query::operator_by_id(conn, c.operator_id)?;
                Ok(Some((c, op)))
            },
        )
        .await?;
    let Some((customer, operator)) = found else {
        return Err(PageError::NotFound);
    };
    let event = AuditEvent::new(AuditKind::PageView, actor(user))
        .rows(1)
        .customers(vec![customer.id])
        .detail(format!("customer {}", customer.id));
    audit::record(state, req, event).await?;
    let names: HashMap<i64, String> = operator.iter().map(|o| (o.id, o.name.clone())).collect();
    let created_at_utc = crate::import::validate::format_timestamp(&customer.created_at);
    let page = CustomerPage {
        nav: Nav::for_user(user, req),
        created_at_utc,
        operator_exists: operator.is_some(),
        customer: CustomerRow::new(&customer, &names),
    };
    Ok(html(page.render()?))
}
