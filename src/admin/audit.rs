//! `/admin/audit`: browsing the audit trail with filters and pages, and
//! `/admin/audit/export.csv`: the filtered trail as CSV, streamed in
//! batches so a large export never sits in memory.
//!
//! Reading the trail is itself recorded (a page view, or an export with
//! its row count).

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use futures_util::StreamExt;
use futures_util::stream;

use super::audit_query::{self, AuditFilter, AuditParams, PAGE_SIZE};
use super::when;
use crate::audit::{self, AuditEvent, AuditKind};
use crate::auth::AdminUser;
use crate::db::DbError;
use crate::db::models::AuditEntry;
use crate::web::error::{PageError, encode_query_value};
use crate::web::pages::Nav;
use crate::web::{AppState, html};

/// One entry as the page shows it.
pub struct EntryView {
    pub at: String,
    pub username: String,
    /// `/admin/audit?user=...` when the entry has an actor.
    pub user_link: Option<String>,
    pub kind: String,
    pub client_addr: String,
    pub path: String,
    pub detail: String,
    pub rows: String,
    pub customers: Vec<String>,
}

impl From<AuditEntry> for EntryView {
    fn from(e: AuditEntry) -> Self {
        EntryView {
            at: when(&e.at),
            user_link: e
                .username
                .as_ref()
                .map(|u| format!("/admin/audit?user={}", encode_query_value(u))),
            username: e.username.unwrap_or_else(|| "—".into()),
            kind: e.kind,
            client_addr: e.client_addr,
            path: e.path,
            detail: e.detail,
            rows: e.row_count.map(|n| n.to_string()).unwrap_or_default(),
            customers: e
                .customer_ids
                .map(|ids| ids.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage<'a> {
    nav: Nav,
    params: &'a AuditParams,
    kinds: Vec<&'static str>,
    entries: Vec<EntryView>,
    total: i64,
    page: i64,
    pages: i64,
    /// The filters as a query string, for links.
    filter_qs: String,
    error: Option<String>,
}

impl AuditPage<'_> {
    fn link(&self, page: i64) -> String {
        if self.filter_qs.is_empty() {
            format!("/admin/audit?page={page}")
        } else {
            format!("/admin/audit?{}&page={page}", self.filter_qs)
        }
    }
    fn export_link(&self) -> String {
        if self.filter_qs.is_empty() {
            "/admin/audit/export.csv".to_owned()
        } else {
            format!("/admin/audit/export.csv?{}", self.filter_qs)
        }
    }
}

/// `GET /admin/audit`.
pub async fn browse(
    admin: AdminUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse, PageError> {
    let params = params.into_inner();
    let kinds = AuditKind::ALL.map(AuditKind::as_str).to_vec();
    let filter = match AuditFilter::parse(&params) {
        Ok(f) => f,
        Err(message) => {
            let page = AuditPage {
                nav: Nav::for_user(&admin, &req),
                params: &params,
                kinds,
                entries: Vec::new(),
                total: 0,
                page: 1,
                pages: 1,
                filter_qs: String::new(),
                error: Some(message),
            };
            let mut res = html(page.render()?);
            *res.status_mut() = actix_web::http::StatusCode::BAD_REQUEST;
            return Ok(res);
        }
    };
    let requested = params.page.trim().parse::<i64>().unwrap_or(1).max(1);
    let query_filter = filter.clone();
    let (total, entries, page_no) = state
        .db
        .run(move |conn| {
            let total = audit_query::count(conn, &query_filter)?;
            let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
            let page_no = requested.min(pages);
            let entries = audit_query::page(conn, &query_filter, page_no)?;
            Ok::<_, DbError>((total, entries, page_no))
        })
        .await?;
    let shown = entries.len() as i64;
    let event = AuditEvent::new(AuditKind::PageView, audit::actor(&admin.user)).rows(shown);
    audit::record(&state, &req, event).await?;
    let page = AuditPage {
        nav: Nav::for_user(&admin, &req),
        params: &params,
        kinds,
        entries: entries.into_iter().map(EntryView::from).collect(),
        total,
        page: page_no,
        pages: ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1),
        filter_qs: filter.query_string(),
        error: None,
    };
    Ok(html(page.render()?))
}

/// `GET /admin/audit/export.csv`: the filtered trail, newest first.
pub async fn export(
    admin: AdminUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse, PageError> {
    let filter = AuditFilter::parse(&params).map_err(PageError::BadRequest)?;
    let count_filter = filter.clone();
    // The export holds the entries that existed when it was asked for;
    // those written while it streams (its own record too) are left out.
    let (total, start) = state
        .db
        .run(move |conn| {
            let start = audit_query::latest_id(conn)?.map_or(0, |id| id.saturating_add(1));
            let total = audit_query::count_before(conn, &count_filter, start)?;
            Ok::<_, DbError>((total, start))
        })
        .await?;
    let detail = match filter.query_string() {
        qs if qs.is_empty() => "audit log export".to_owned(),
        qs => format!("audit log export ({qs})"),
    };
    let event = AuditEvent::new(AuditKind::Export, audit::actor(&admin.user))
        .rows(total)
        .detail(detail);
    audit::record(&state, &req, event).await?;

    let state = state.into_inner();
    let batches = stream::unfold(Some(start), move |cursor| {
        let state = state.clone();
        let filter = filter.clone();
        async move {
            let before = cursor?;
            let result = state
                .db
                .run(move |conn| {
                    audit_query::batch_before(conn, &filter, before).map_err(DbError::from)
                })
                .await;
            match result {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = rows.last().map(|e| e.id);
                    let bytes = web::Bytes::from(audit_query::csv_rows(&rows, false));
                    Some((Ok::<_, actix_web::Error>(bytes), next))
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed part-way");
                    Some((
                        Err(actix_web::error::ErrorInternalServerError("export failed")),
                        None,
                    ))
                }
            }
        }
    });
    let body = stream::once(async {
        Ok::<_, actix_web::Error>(web::Bytes::from(audit_query::csv_header()))
    })
    .chain(batches);
    Ok(crate::web::csv_attachment("custos-audit", body))
}
