//! The one query module behind both the pages and the API, so the same
//! parameters always give the same rows.
//!
//! Parameters follow the DRF original: django-filter fields, DRF's
//! `SearchFilter` and `OrderingFilter`, and `PageNumberPagination`. All SQL
//! is built with diesel's query builder; user text reaches the database
//! only as bound parameters, and LIKE patterns are escaped.

pub mod count_cache;
pub mod keyset;
pub mod operator_cache;
pub mod pager;
pub mod params;
pub mod search;
pub mod search_index;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::{Map, Value};

use crate::db::models::{Customer, Operator, SEARCH_SEPARATOR};
use crate::db::schema::{customers, operators};
use crate::db::{DbConn, escape_like};
use crate::import::validate::{PLANS, STATUSES, is_country_code};
pub use params::Params;

type Backend = <DbConn as diesel::Connection>::Backend;

diesel::define_sql_function! {
    /// SQL `lower()` (ASCII-only on SQLite; operator names are few).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Default and largest page sizes (DRF `PAGE_SIZE` and `max_page_size`).
pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 100;
/// Longest search text and most terms accepted.
pub const MAX_SEARCH_LEN: usize = 500;
pub const MAX_SEARCH_TERMS: usize = 20;

/// Field-keyed validation errors, in declaration order, as django-filter
/// reports them: `{"status": ["Select a valid choice. ..."]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<(String, String)>);

impl FieldErrors {
    fn add(&mut self, field: &str, message: String) {
        self.0.push((field.to_owned(), message));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// DRF's JSON body.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        for (field, message) in &self.0 {
            map.insert(
                field.clone(),
                Value::Array(vec![Value::String(message.clone())]),
            );
        }
        Value::Object(map)
    }
    /// One readable sentence for an HTML error page.
    pub fn to_sentence(&self) -> String {
        self.0
            .iter()
            .map(|(f, m)| format!("{f}: {m}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn choice_error(value: &str) -> String {
    format!("Select a valid choice. {value} is not one of the available choices.")
}

fn parse_choice(
    params: &Params,
    field: &str,
    choices: &[&str],
    errors: &mut FieldErrors,
) -> Option<String> {
    let value = params.get_non_empty(field)?;
    if choices.contains(&value) {
        Some(value.to_owned())
    } else {
        errors.add(field, choice_error(value));
        None
    }
}

fn parse_date(params: &Params, field: &str, errors: &mut FieldErrors) -> Option<NaiveDate> {
    let value = params.get_non_empty(field)?;
    match NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
            errors.add(field, "Enter a valid date.".into());
            None
        }
    }
}

fn parse_search(params: &Params, errors: &mut FieldErrors) -> Vec<String> {
    let Some(raw) = params.get("search") else {
        return Vec::new();
    };
    let length = raw.chars().count();
    if length > MAX_SEARCH_LEN {
        errors.add(
            "search",
            format!("Ensure this value has at most {MAX_SEARCH_LEN} characters (it has {length})."),
        );
        return Vec::new();
    }
    let terms = search::split_terms(raw);
    if terms.len() > MAX_SEARCH_TERMS {
        errors.add(
            "search",
            format!(
                "Use at most {MAX_SEARCH_TERMS} search terms (there are {}).",
                terms.len()
            ),
        );
        return Vec::new();
    }
    terms
}

/// A sort key and direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderBy<F> {
    pub field: F,
    pub descending: bool,
}

/// DRF's `OrderingFilter`: comma-separated fields, `-` for descending,
/// unknown fields ignored; none valid means the default.
fn parse_ordering<F: Copy + PartialEq>(
    params: &Params,
    lookup: impl Fn(&str) -> Option<F>,
) -> Vec<OrderBy<F>> {
    let Some(raw) = params.get_non_empty("ordering") else {
        return Vec::new();
    };
    let mut out: Vec<OrderBy<F>> = Vec::new();
    for term in raw.split(',').map(str::trim) {
        let (descending, name) = match term.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, term),
        };
        if let Some(field) = lookup(name)
            && !out.iter().any(|o| o.field == field)
        {
            out.push(OrderBy { field, descending });
        }
    }
    out
}

/// Fields customers may be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerField {
    Id,
    FullName,
    CreatedAt,
}

impl CustomerField {
    pub fn name(self) -> &'static str {
        match self {
            CustomerField::Id => "id",
            CustomerField::FullName => "full_name",
            CustomerField::CreatedAt => "created_at",
        }
    }
}

/// A validated customer query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerFilter {
    pub search_terms: Vec<String>,
    pub status: Option<String>,
    pub plan: Option<String>,
    pub country: Option<String>,
    pub operator: Option<i64>,
    pub created_after: Option<NaiveDate>,
    pub created_before: Option<NaiveDate>,
    pub ordering: Vec<OrderBy<CustomerField>>,
}

fn parse_country(params: &Params, errors: &mut FieldErrors) -> Option<String> {
    let value = params.get_non_empty("country")?;
    let upper = value.trim().to_ascii_uppercase();
    if is_country_code(&upper) {
        Some(upper)
    } else {
        errors.add("country", choice_error(value));
        None
    }
}

impl CustomerFilter {
    pub fn from_params(params: &Params) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let search_terms = parse_search(params, &mut errors);
        let status = parse_choice(params, "status", &STATUSES, &mut errors);
        let plan = parse_choice(params, "plan", &PLANS, &mut errors);
        let country = parse_country(params, &mut errors);
        let operator = params.get_non_empty("operator").and_then(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| errors.add("operator", "Enter a number.".into()))
                .ok()
        });
        let created_after = parse_date(params, "created_after", &mut errors);
        let created_before = parse_date(params, "created_before", &mut errors);
        let ordering = parse_ordering(params, |name| match name {
            "id" => Some(CustomerField::Id),
            "full_name" => Some(CustomerField::FullName),
            "created_at" => Some(CustomerField::CreatedAt),
            _ => None,
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            search_terms,
            status,
            plan,
            country,
            operator,
            created_after,
            created_before,
            ordering,
        })
    }

    /// The filters as a boxed diesel query (no ordering or paging), for
    /// the backend of `conn`.
    ///
    /// Every search term is matched by `search_text LIKE '%term%'` on the
    /// lower-cased text, which defines the result. On PostgreSQL a pg_trgm
    /// GIN index serves that LIKE directly; on SQLite the FTS5 trigram
    /// index `customers_search` first narrows the rows to those holding
    /// every trigram of the terms of 3+ characters, and the LIKE then
    /// decides exactly (so the index can never change a result).
    ///
    /// `plan` says how SQLite is to find the rows (`SearchPlan`); it never
    /// changes which rows match.
    fn filtered(&self, conn: &DbConn, plan: SearchPlan) -> customers::BoxedQuery<'static, Backend> {
        let sqlite = matches!(conn, DbConn::Sqlite(_));
        // From the trigram index: the other filters must not offer SQLite
        // an index of their own to start from (`status || ''` has none).
        let unindexed = sqlite && plan == SearchPlan::FromIndex;
        let mut q = customers::table.into_boxed::<Backend>();
        let mut fts_phrases: Vec<String> = Vec::new();
        for term in &self.search_terms {
            if term
                .chars()
                .any(|c| c == SEARCH_SEPARATOR || c.is_control())
            {
                // No stored field contains control characters.
                q = q.filter(customers::id.ne(customers::id));
                continue;
            }
            let lower = term.to_lowercase();
            if sqlite
                && plan != SearchPlan::Walk
                && let Some(trigrams) = search_index::fts5_trigrams(&lower)
            {
                fts_phrases.push(trigrams);
            }
            let pattern = format!("%{}%", escape_like(&lower));
            q = q.filter(customers::search_text.like(pattern).escape('\\'));
        }
        if !fts_phrases.is_empty() {
            q = q.filter(search_index::sqlite_match(fts_phrases.join(" AND ")));
        }
        if let Some(s) = &self.status {
            q = if unindexed {
                q.filter(customers::status.concat("").eq(s.clone()))
            } else {
                q.filter(customers::status.eq(s.clone()))
            };
        }
        if let Some(p) = &self.plan {
            q = if unindexed {
                q.filter(customers::plan.concat("").eq(p.clone()))
            } else {
                q.filter(customers::plan.eq(p.clone()))
            };
        }
        if let Some(c) = &self.country {
            q = if unindexed {
                q.filter(customers::country.concat("").eq(c.clone()))
            } else {
                q.filter(customers::country.eq(c.clone()))
            };
        }
        if let Some(op) = self.operator {
            q = if unindexed {
                q.filter((customers::operator_id + 0_i64).eq(op))
            } else {
                q.filter(customers::operator_id.eq(op))
            };
        }
        if let Some(d) = self.created_after {
            q = q.filter(customers::created_at.ge(start_of(d)));
        }
        if let Some(d) = self.created_before
            && let Some(next) = d.succ_opt()
        {
            q = q.filter(customers::created_at.lt(start_of(next)));
        }
        q
    }

    fn ordered(&self, conn: &DbConn, plan: SearchPlan) -> customers::BoxedQuery<'static, Backend> {
        let mut q = self.filtered(conn, plan);
        let mut has_id = false;
        for (i, o) in self.ordering.iter().enumerate() {
            has_id |= o.field == CustomerField::Id;
            q = match (i, o.field, o.descending) {
                (0, CustomerField::Id, false) => q.order_by(customers::id.asc()),
                (0, CustomerField::Id, true) => q.order_by(customers::id.desc()),
                (0, CustomerField::FullName, false) => q.order_by(customers::full_name.asc()),
                (0, CustomerField::FullName, true) => q.order_by(customers::full_name.desc()),
                (0, CustomerField::CreatedAt, false) => q.order_by(customers::created_at.asc()),
                (0, CustomerField::CreatedAt, true) => q.order_by(customers::created_at.desc()),
                (_, CustomerField::Id, false) => q.then_order_by(customers::id.asc()),
                (_, CustomerField::Id, true) => q.then_order_by(customers::id.desc()),
                (_, CustomerField::FullName, false) => q.then_order_by(customers::full_name.asc()),
                (_, CustomerField::FullName, true) => q.then_order_by(customers::full_name.desc()),
                (_, CustomerField::CreatedAt, false) => {
                    q.then_order_by(customers::created_at.asc())
                }
                (_, CustomerField::CreatedAt, true) => {
                    q.then_order_by(customers::created_at.desc())
                }
            };
        }
        // Default ordering by id, and id as the final tie-breaker so pages
        // never overlap.
        if !has_id {
            q = q.then_order_by(customers::id.asc());
        }
        q
    }

    pub fn count(&self, conn: &mut DbConn) -> QueryResult<i64> {
        self.filtered(conn, SearchPlan::Auto)
            .count()
            .get_result(conn)
    }

    /// The rows `offset .. offset + limit` of the ordered result (plain
    /// OFFSET; `pager::Pager::page` is the fast way for deep pages).
    pub fn page(&self, conn: &mut DbConn, offset: i64, limit: i64) -> QueryResult<Vec<Customer>> {
        self.page_with(conn, SearchPlan::Auto, None, offset, limit)
    }

    /// `limit` rows of the ordered result, skipping `offset` rows after
    /// the row `after` (from the start when `None`).
    pub fn page_with(
        &self,
        conn: &mut DbConn,
        plan: SearchPlan,
        after: Option<&Customer>,
        offset: i64,
        limit: i64,
    ) -> QueryResult<Vec<Customer>> {
        if self.is_unfiltered() && keyset::effective_keys(&self.ordering) == ID_ORDER {
            // The commonest query (all customers by id, any page) in a
            // shape fixed at compile time, so its statement stays cached.
            let all = customers::table.order(customers::id.asc());
            return match after {
                Some(row) => crate::db::on_backend!(conn, c => all
                    .filter(customers::id.gt(row.id))
                    .offset(offset)
                    .limit(limit)
                    .select(Customer::as_select())
                    .load(c)),
                None => crate::db::on_backend!(conn, c => all
                    .offset(offset)
                    .limit(limit)
                    .select(Customer::as_select())
                    .load(c)),
            };
        }
        let mut q = self.ordered(conn, plan);
        if let Some(row) = after {
            q = q.filter(keyset::after(&keyset::effective_keys(&self.ordering), row));
        }
        q.offset(offset)
            .limit(limit)
            .select(Customer::as_select())
            .load(conn)
    }

    /// The row `n` rows after the row `after` (`n = 0`: the next one).
    pub fn nth_after(
        &self,
        conn: &mut DbConn,
        plan: SearchPlan,
        after: Option<&Customer>,
        n: i64,
    ) -> QueryResult<Option<Customer>> {
        Ok(self.page_with(conn, plan, after, n, 1)?.pop())
    }

    /// No filter at all (any ordering): the whole table.
    pub fn is_unfiltered(&self) -> bool {
        self.search_terms.is_empty()
            && self.status.is_none()
            && self.plan.is_none()
            && self.country.is_none()
            && self.operator.is_none()
            && self.created_after.is_none()
            && self.created_before.is_none()
    }

    /// Whether a search term can be looked up in the trigram index.
    fn has_indexed_term(&self) -> bool {
        self.search_terms
            .iter()
            .any(|t| search_index::fts5_trigrams(&t.to_lowercase()).is_some())
    }
}

/// The default order: by id, ascending.
const ID_ORDER: [OrderBy<CustomerField>; 1] = [OrderBy {
    field: CustomerField::Id,
    descending: false,
}];

/// How SQLite is to find a customer query's rows (PostgreSQL plans for
/// itself from its statistics; there every plan is the same query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchPlan {
    /// Narrow by the trigram index and let SQLite choose the rest (counts
    /// and exports, which visit every match anyway).
    Auto,
    /// Start from the trigram index's matches, look each up and sort:
    /// cheap when the terms are rare.
    FromIndex,
    /// Walk the index of the requested order and test each row: cheap
    /// when matches are common enough to fill the page soon.
    Walk,
}

impl SearchPlan {
    /// The cheaper plan for the first `rows` rows of `filter`, which
    /// matches `count` of `total` customers. Walking visits about
    /// `rows * total / count` rows; starting from the index looks up and
    /// sorts all `count` matches, each a few times the cost of a visit.
    pub fn choose(filter: &CustomerFilter, rows: i64, count: i64, total: i64) -> Self {
        if !filter.has_indexed_term() {
            return SearchPlan::Walk;
        }
        const LOOKUP_COST: i128 = 3;
        let walked = i128::from(rows.max(1)) * i128::from(total.max(1)) / i128::from(count.max(1));
        if i128::from(count) * LOOKUP_COST < walked {
            SearchPlan::FromIndex
        } else {
            SearchPlan::Walk
        }
    }
}

fn start_of(d: NaiveDate) -> NaiveDateTime {
    d.and_hms_opt(0, 0, 0).unwrap_or_default()
}

pub fn customer_by_id(conn: &mut DbConn, id: i64) -> QueryResult<Option<Customer>> {
    crate::db::on_backend!(conn, c => customers::table
        .find(id)
        .select(Customer::as_select())
        .first(c)
        .optional())
}

/// Fields operators may be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorField {
    Id,
    Name,
    CreatedAt,
}

/// A validated operator query: `search` (name, support_email), `country`,
/// `ordering` (id, name, created_at).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperatorFilter {
    pub search_terms: Vec<String>,
    pub country: Option<String>,
    pub ordering: Vec<OrderBy<OperatorField>>,
}

impl OperatorFilter {
    pub fn from_params(params: &Params) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let search_terms = parse_search(params, &mut errors);
        let country = parse_country(params, &mut errors);
        let ordering = parse_ordering(params, |name| match name {
            "id" => Some(OperatorField::Id),
            "name" => Some(OperatorField::Name),
            "created_at" => Some(OperatorField::CreatedAt),
            _ => None,
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            search_terms,
            country,
            ordering,
        })
    }

    fn filtered(&self) -> operators::BoxedQuery<'static, Backend> {
        let mut q = operators::table.into_boxed::<Backend>();
        for term in &self.search_terms {
            let pattern = format!("%{}%", escape_like(&term.to_lowercase()));
            q = q.filter(
                lower(operators::name)
                    .like(pattern.clone())
                    .escape('\\')
                    .or(lower(operators::support_email).like(pattern).escape('\\')),
            );
        }
        if let Some(c) = &self.country {
            q = q.filter(operators::country.eq(c.clone()));
        }
        q
    }

    pub fn count(&self, conn: &mut DbConn) -> QueryResult<i64> {
        self.filtered().count().get_result(conn)
    }

    pub fn page(&self, conn: &mut DbConn, offset: i64, limit: i64) -> QueryResult<Vec<Operator>> {
        let mut q = self.filtered();
        let mut has_id = false;
        for (i, o) in self.ordering.iter().enumerate() {
            has_id |= o.field == OperatorField::Id;
            q = match (i == 0, o.field, o.descending) {
                (true, OperatorField::Id, false) => q.order_by(operators::id.asc()),
                (true, OperatorField::Id, true) => q.order_by(operators::id.desc()),
                (true, OperatorField::Name, false) => q.order_by(operators::name.asc()),
                (true, OperatorField::Name, true) => q.order_by(operators::name.desc()),
                (true, OperatorField::CreatedAt, false) => q.order_by(operators::created_at.asc()),
                (true, OperatorField::CreatedAt, true) => q.order_by(operators::created_at.desc()),
                (false, OperatorField::Id, false) => q.then_order_by(operators::id.asc()),
                (false, OperatorField::Id, true) => q.then_order_by(operators::id.desc()),
                (false, OperatorField::Name, false) => q.then_order_by(operators::name.asc()),
                (false, OperatorField::Name, true) => q.then_order_by(operators::name.desc()),
                (false, OperatorField::CreatedAt, false) => {
                    q.then_order_by(operators::created_at.asc())
                }
                (false, OperatorField::CreatedAt, true) => {
                    q.then_order_by(operators::created_at.desc())
                }
            };
        }
        if !has_id {
            q = q.then_order_by(operators::id.asc());
        }
        q.offset(offset)
            .limit(limit)
            .select(Operator::as_select())
            .load(conn)
    }
}

pub fn operator_by_id(conn: &mut DbConn, id: i64) -> QueryResult<Option<Operator>> {
    operators::table
        .find(id)
        .select(Operator::as_select())
        .first(conn)
        .optional()
}

/// The requested page, before the count is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageNumber {
    Number(i64),
    Last,
    /// Not an integer (DRF answers 404 "Invalid page.").
    Invalid,
}

/// DRF `PageNumberPagination` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: PageNumber,
    pub page_size: i64,
}

impl PageRequest {
    pub fn from_params(params: &Params) -> Self {
        // `page_size`: a positive integer, clamped to the maximum; anything
        // else means the default (DRF's `_positive_int(strict=True)`).
        let page_size = params
            .get("page_size")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|n| *n > 0)
            .map_or(DEFAULT_PAGE_SIZE, |n| n.min(MAX_PAGE_SIZE));
        let page = match params.get("page") {
            // DRF: `query_params.get("page") or 1`, so an empty value is page 1.
            None | Some("") => PageNumber::Number(1),
            Some("last") => PageNumber::Last,
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map_or(PageNumber::Invalid, PageNumber::Number),
        };
        Self { page, page_size }
    }

    /// Resolves the page against the total count, as Django's `Paginator`
    /// does: `None` means "Invalid page." (404).
    pub fn resolve(&self, count: i64) -> Option<ResolvedPage> {
        let num_pages = if count == 0 {
            1
        } else {
            (count + self.page_size - 1) / self.page_size
        };
        let number = match self.page {
            PageNumber::Last => num_pages,
            PageNumber::Number(n) if n >= 1 && n <= num_pages => n,
            _ => return None,
        };
        Some(ResolvedPage {
            number,
            num_pages,
            page_size: self.page_size,
            count,
        })
    }
}

/// A page that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedPage {
    pub number: i64,
    pub num_pages: i64,
    pub page_size: i64,
    pub count: i64,
}

impl ResolvedPage {
    pub fn offset(&self) -> i64 {
        (self.number - 1) * self.page_size
    }
    pub fn has_next(&self) -> bool {
        self.number < self.num_pages
    }
    pub fn has_previous(&self) -> bool {
        self.number > 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(q).unwrap()
    }

    #[test]
    fn invalid_filter_values_are_reported_per_field() {
        let err = CustomerFilter::from_params(&params(
            "status=bogus&created_after=2024-13-01&operator=x",
        ))
        .unwrap_err();
        assert_eq!(
            err.to_json().to_string(),
            r#"{"status":["Select a valid choice. bogus is not one of the available choices."],"operator":["Enter a number."],"created_after":["Enter a valid date."]}"#
        );
    }

    #[test]
    fn empty_values_and_unknown_parameters_are_ignored() {
        let f =
            CustomerFilter::from_params(&params("status=&plan=&foo=bar&ordering=nope,-created_at"))
                .unwrap();
        assert_eq!(f.status, None);
        assert_eq!(
            f.ordering,
            vec![OrderBy {
                field: CustomerField::CreatedAt,
                descending: true
            }]
        );
    }

    #[test]
    fn page_sizes_follow_drf() {
        assert_eq!(
            PageRequest::from_params(&params("page_size=500")).page_size,
            100
        );
        assert_eq!(
            PageRequest::from_params(&params("page_size=0")).page_size,
            50
        );
        assert_eq!(
            PageRequest::from_params(&params("page_size=-3")).page_size,
            50
        );
        assert_eq!(
            PageRequest::from_params(&params("page_size=x")).page_size,
            50
        );
        assert_eq!(
            PageRequest::from_params(&params("page_size=7")).page_size,
            7
        );
    }

    #[test]
    fn pages_resolve_like_djangos_paginator() {
        let req = |q| PageRequest::from_params(&params(q));
        assert_eq!(req("page=1").resolve(0).map(|p| p.num_pages), Some(1));
        assert_eq!(req("page=2").resolve(0), None);
        assert_eq!(req("page=0").resolve(10), None);
        assert_eq!(req("page=x").resolve(10), None);
        assert_eq!(
            req("page=last&page_size=3").resolve(10).map(|p| p.number),
            Some(4)
        );
        assert_eq!(req("page=5&page_size=3").resolve(10), None);
    }
}
