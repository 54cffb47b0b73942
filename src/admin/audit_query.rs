//! Filtering the audit trail: the parameters of `/admin/audit`, the
//! query they make, and the CSV form of entries.
//!
//! Every value is bound by the query builder; free text is matched as a
//! literal (LIKE with `\` as the escape character). The customer filter
//! matches one id inside the comma-separated `customer_ids` column, so
//! "who looked at customer 123 last month?" is `customer=123` plus dates.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::Deserialize;

use crate::audit::AuditKind;
use crate::db::models::AuditEntry;
use crate::db::schema::audit_log;
use crate::db::{DbConn, escape_like};

type Backend = <DbConn as diesel::Connection>::Backend;

diesel::define_sql_function! {
    /// SQL `lower()` (ASCII-only on SQLite).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Entries per page of `/admin/audit`.
pub const PAGE_SIZE: i64 = 50;
/// Entries per batch of the CSV export.
pub const EXPORT_BATCH: i64 = 1000;
/// Longest free-text filter accepted.
pub const MAX_TEXT: usize = 200;

/// The query string of `/admin/audit` and its export, as sent. Empty
/// values mean "no filter" (that is what an untouched form field sends).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditParams {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub customer: String,
    #[serde(default)]
    pub page: String,
}

/// Validated filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// The actor's username, exactly.
    pub user: Option<String>,
    pub kind: Option<AuditKind>,
    /// First day included (UTC).
    pub from: Option<NaiveDate>,
    /// Last day included (UTC).
    pub to: Option<NaiveDate>,
    /// Case-insensitive literal text in the path or the detail.
    pub text: Option<String>,
    /// A customer id the entry showed.
    pub customer: Option<i64>,
}

fn non_empty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

fn date(field: &str, raw: &str) -> Result<Option<NaiveDate>, String> {
    non_empty(raw)
        .map(|s| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| format!("{field}: {s:?} is not a date in the form YYYY-MM-DD."))
        })
        .transpose()
}

impl AuditFilter {
    /// Validates the parameters; the error names the field.
    pub fn parse(p: &AuditParams) -> Result<Self, String> {
        let user = non_empty(&p.user).map(str::to_owned);
        if user.as_ref().is_some_and(|u| u.chars().count() > 150) {
            return Err("user: a username has at most 150 characters.".into());
        }
        let kind = non_empty(&p.kind)
            .map(|k| {
                AuditKind::parse(k).ok_or_else(|| {
                    format!(
                        "kind: {k:?} is not a kind of event; use one of {}.",
                        AuditKind::ALL.map(AuditKind::as_str).join(", ")
                    )
                })
            })
            .transpose()?;
        let from = date("from", &p.from)?;
        let to = date("to", &p.to)?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err("to: the last day is before the first day.".into());
        }
        let text = non_empty(&p.q).map(str::to_owned);
        if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
            return Err(format!("q: the text has more than {MAX_TEXT} characters."));
        }
        let customer = non_empty(&p.customer)
            .map(|c| match c.parse::<i64>() {
                Ok(id) if id > 0 => Ok(id),
                _ => Err(format!("customer: {c:?} is not a customer id.")),
            })
            .transpose()?;
        Ok(AuditFilter {
            user,
            kind,
            from,
            to,
            text,
            customer,
        })
    }

    /// The filters as a query string (for pagination and export links).
    pub fn query_string(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(u) = &self.user {
            pairs.push(("user", u.clone()));
        }
        if let Some(k) = self.kind {
            pairs.push(("kind", k.as_str().to_owned()));
        }
        if let Some(d) = self.from {
            pairs.push(("from", d.to_string()));
        }
        if let Some(d) = self.to {
            pairs.push(("to", d.to_string()));
        }
        if let Some(t) = &self.text {
            pairs.push(("q", t.clone()));
        }
        if let Some(c) = self.customer {
            pairs.push(("customer", c.to_string()));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    /// The filtered query, not yet ordered or limited.
    pub fn query(&self) -> audit_log::BoxedQuery<'static, Backend> {
        let mut q = audit_log::table.into_boxed();
        if let Some(u) = &self.user {
            q = q.filter(audit_log::username.eq(u.clone()));
        }
        if let Some(k) = self.kind {
            q = q.filter(audit_log::kind.eq(k.as_str()));
        }
        if let Some(d) = self.from {
            q = q.filter(audit_log::at.ge(start_of(d)));
        }
        if let Some(next) = self.to.and_then(|d| d.succ_opt()) {
            q = q.filter(audit_log::at.lt(start_of(next)));
        }
        if let Some(t) = &self.text {
            let pattern = format!("%{}%", escape_like(&t.to_lowercase()));
            q = q.filter(
                lower(audit_log::path)
                    .like(pattern.clone())
                    .escape('\\')
                    .or(lower(audit_log::detail).like(pattern).escape('\\')),
            );
        }
        if let Some(c) = self.customer {
            let id = c.to_string();
            q = q.filter(
                audit_log::customer_ids
                    .eq(id.clone())
                    .or(audit_log::customer_ids.like(format!("{id},%")))
                    .or(audit_log::customer_ids.like(format!("%,{id}")))
                    .or(audit_log::customer_ids.like(format!("%,{id},%"))),
            );
        }
        q
    }
}

fn start_of(d: NaiveDate) -> NaiveDateTime {
    d.and_time(chrono::NaiveTime::MIN)
}

/// The id of the newest entry, if any.
pub fn latest_id(conn: &mut DbConn) -> QueryResult<Option<i64>> {
    audit_log::table
        .select(diesel::dsl::max(audit_log::id))
        .first(conn)
}

/// How many entries match.
pub fn count(conn: &mut DbConn, filter: &AuditFilter) -> QueryResult<i64> {
    filter.query().count().get_result(conn)
}

/// How many matching entries are older than `before_id`.
pub fn count_before(conn: &mut DbConn, filter: &AuditFilter, before_id: i64) -> QueryResult<i64> {
    filter
        .query()
        .filter(audit_log::id.lt(before_id))
        .count()
        .get_result(conn)
}

/// One page of matching entries, newest first (`page` from 1).
pub fn page(conn: &mut DbConn, filter: &AuditFilter, page: i64) -> QueryResult<Vec<AuditEntry>> {
    filter
        .query()
        .order(audit_log::id.desc())
        .offset((page.max(1) - 1).saturating_mul(PAGE_SIZE))
        .limit(PAGE_SIZE)
        .select(AuditEntry::as_select())
        .load(conn)
}

/// The next batch of matching entries older than `before_id`, newest
/// first (keyset pagination, so a long export costs the same per batch).
pub fn batch_before(
    conn: &mut DbConn,
    filter: &AuditFilter,
    before_id: i64,
) -> QueryResult<Vec<AuditEntry>> {
    filter
        .query()
        .filter(audit_log::id.lt(before_id))
        .order(audit_log::id.desc())
        .limit(EXPORT_BATCH)
        .select(AuditEntry::as_select())
        .load(conn)
}

/// Columns of the CSV export.
pub const CSV_COLUMNS: [&str; 11] = [
    "id",
    "at",
    "username",
    "user_id",
    "kind",
    "client_addr",
    "path",
    "detail",
    "row_count",
    "customer_ids",
    "request_id",
];

/// Keeps a spreadsheet from reading a cell as a formula.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// The header row of the export.
pub fn csv_header() -> Vec<u8> {
    csv_rows(&[], true)
}

/// Entries as CSV rows (with the header row first if asked).
pub fn csv_rows(entries: &[AuditEntry], header: bool) -> Vec<u8> {
    let mut out = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(entries.len() * 160 + 128));
    if header {
        // Writing to a Vec cannot fail.
        let _ = out.write_record(CSV_COLUMNS);
    }
    for e in entries {
        let _ = out.write_record([
            e.id.to_string(),
            e.at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            cell(e.username.as_deref().unwrap_or("")),
            e.user_id.map(|i| i.to_string()).unwrap_or_default(),
            e.kind.clone(),
            cell(&e.client_addr),
            cell(&e.path),
            cell(&e.detail),
            e.row_count.map(|n| n.to_string()).unwrap_or_default(),
            e.customer_ids.clone().unwrap_or_default(),
            cell(&e.request_id),
        ]);
    }
    out.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> AuditParams {
        let qs = serde_urlencoded::to_string(pairs).unwrap_or_default();
        serde_urlencoded::from_str(&qs).unwrap_or_default()
    }

    #[test]
    fn filters_are_validated_and_name_the_field() {
        let ok = AuditFilter::parse(&params(&[
            ("user", "alice"),
            ("kind", "page_view"),
            ("from", "2026-11-01"),
            ("to", "2026-11-30"),
            ("customer", "123"),
            ("q", " 50%_off "),
        ]));
        let ok = ok.unwrap_or_default();
        assert_eq!(ok.user.as_deref(), Some("alice"));
        assert_eq!(ok.kind, Some(AuditKind::PageView));
        assert_eq!(ok.customer, Some(123));
        assert_eq!(ok.text.as_deref(), Some("50%_off"));
        for (field, value) in [
            ("kind", "nope"),
            ("from", "yesterday"),
            ("to", "2026-13-01"),
            ("customer", "-4"),
            ("customer", "12a"),
        ] {
            let err = AuditFilter::parse(&params(&[(field, value)])).err();
            assert!(
                err.as_deref().is_some_and(|e| e.starts_with(field)),
                "{field}={value}: {err:?}"
            );
        }
        let empty = AuditFilter::parse(&params(&[("user", ""), ("kind", "")]));
        assert_eq!(empty, Ok(AuditFilter::default()));
    }

    #[test]
    fn the_query_string_round_trips() {
        let f = AuditFilter::parse(&params(&[("user", "a+b@x"), ("q", "a&b")])).unwrap_or_default();
        let back: AuditParams = serde_urlencoded::from_str(&f.query_string()).unwrap_or_default();
        assert_eq!(AuditFilter::parse(&back), Ok(f));
    }

    #[test]
    fn csv_cells_cannot_become_formulas() {
        assert_eq!(cell("=cmd()"), "'=cmd()");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("/customers?x=1"), "/customers?x=1");
    }
}
