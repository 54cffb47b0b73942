//! The token-protected JSON API, compatible with the Django REST framework
//! original.
//!
//! Every data endpoint runs DRF's sequence: authenticate (`ApiUser`, 401s
//! are never counted), take one request from the user's quota (429 when
//! over; authenticated 404/405/400 answers are counted, as in DRF), then
//! dispatch on the method (GET/HEAD/OPTIONS, else 405), then filter and
//! paginate through the same `query` module as the pages. Every answer
//! carries DRF's `Allow` and `Vary: Accept` headers, and after the quota
//! check `X-RateLimit-Limit`/`X-RateLimit-Remaining`. Data is shown only
//! after its audit row is written (fail closed).
//!
//! `/api/v1/openapi.json` is public (it describes the API, no data) and is
//! limited per client address by the anonymous rate.

pub mod auth;
pub mod links;
pub mod openapi;

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::NaiveDateTime;
use serde_json::{Value, json};

use super::{Access, RouteInfo};
use crate::audit::{self, AuditEvent, AuditKind};
use crate::db::models::{Customer, NewAuditEntry, NewCustomer, Operator};
use crate::db::writer::{ApiCall, ApiOutcome};
use crate::query::{self, CustomerFilter, OperatorFilter, PageRequest, Params};
use crate::quota::{AnonThrottle, QuotaDecision};
use crate::web::AppState;
use crate::web::error::ApiError;
pub use auth::ApiUser;

/// Methods every data endpoint answers (DRF's `Allow` for a read-only
/// viewset).
pub const ALLOW: &str = "GET, HEAD, OPTIONS";
const DATA_METHODS: &[&str] = &["GET", "HEAD", "OPTIONS"];

/// Every API route, as served (both with and without the trailing slash).
pub const ROUTES: &[RouteInfo] = &[
    route("/api/v1/customers/"),
    route("/api/v1/customers"),
    route("/api/v1/customers/{id}/"),
    route("/api/v1/customers/{id}"),
    route("/api/v1/operators/"),
    route("/api/v1/operators"),
    route("/api/v1/operators/{id}/"),
    route("/api/v1/operators/{id}"),
    RouteInfo {
        path: "/api/v1/openapi.json",
        methods: &["GET", "HEAD"],
        access: Access::Public,
    },
];

const fn route(path: &'static str) -> RouteInfo {
    RouteInfo {
        path,
        methods: DATA_METHODS,
        access: Access::Token,
    }
}

/// Which resource a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    CustomerList,
    CustomerDetail,
    OperatorList,
    OperatorDetail,
}

impl Endpoint {
    /// DRF's view name (`CustomerViewSet` + suffix).
    fn view_name(self) -> &'static str {
        match self {
            Endpoint::CustomerList => "Customer List",
            Endpoint::CustomerDetail => "Customer Instance",
            Endpoint::OperatorList => "Operator List",
            Endpoint::OperatorDetail => "Operator Instance",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Endpoint::CustomerList => "customers list",
            Endpoint::CustomerDetail => "customer detail",
            Endpoint::OperatorList => "operators list",
            Endpoint::OperatorDetail => "operator detail",
        }
    }
}

/// Registers the routes (paths relative to the `/api` scope).
pub fn register(cfg: &mut web::ServiceConfig) {
    for route in ROUTES {
        let Some(path) = route.path.strip_prefix("/api") else {
            continue;
        };
        let resource = web::resource(path);
        let resource = match path {
            "/v1/openapi.json" => resource.route(web::route().to(openapi::serve)),
            p if p.starts_with("/v1/customers/{id}") => {
                resource.route(web::route().to(customer_detail))
            }
            p if p.starts_with("/v1/customers") => resource.route(web::route().to(customer_list)),
            p if p.starts_with("/v1/operators/{id}") => {
                resource.route(web::route().to(operator_detail))
            }
            _ => resource.route(web::route().to(operator_list)),
        };
        cfg.service(resource);
    }
}

/// Unknown API paths answer DRF's JSON 404.
pub async fn not_found(_req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("Not found.".into()))
}

type Caller = Result<ApiUser, ApiError>;

pub async fn customer_list(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: Caller,
) -> HttpResponse {
    serve(req, state, user, Endpoint::CustomerList).await
}
pub async fn customer_detail(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: Caller,
) -> HttpResponse {
    serve(req, state, user, Endpoint::CustomerDetail).await
}
pub async fn operator_list(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: Caller,
) -> HttpResponse {
    serve(req, state, user, Endpoint::OperatorList).await
}
pub async fn operator_detail(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: Caller,
) -> HttpResponse {
    serve(req, state, user, Endpoint::OperatorDetail).await
}

/// DRF's headers on every answer of a view.
fn finish(mut res: HttpResponse, quota: Option<QuotaDecision>) -> HttpResponse {
    let h = res.headers_mut();
    h.insert(header::ALLOW, header::HeaderValue::from_static(ALLOW));
    h.insert(header::VARY, header::HeaderValue::from_static("Accept"));
    if let Some(q) = quota {
        h.insert(
            header::HeaderName::from_static("x-ratelimit-limit"),
            header::HeaderValue::from(q.limit()),
        );
        h.insert(
            header::HeaderName::from_static("x-ratelimit-remaining"),
            header::HeaderValue::from(q.remaining()),
        );
    }
    res
}

async fn serve(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: Caller,
    endpoint: Endpoint,
) -> HttpResponse {
    let user = match user {
        Ok(user) => user,
        Err(e) => return finish(e.error_response(), None),
    };
    // Read first, then take the quota and write the audit row together in
    // one group-committed write: one trip to the writer per request. What
    // was read is shown only once that write committed and the quota
    // allowed it (a throttled caller gets 429 and the read is dropped).
    let method = req.method().clone();
    let read = if method == Method::GET || method == Method::HEAD {
        get(&req, &state, &user, endpoint)
            .await
            .map(|(res, entry)| (res, Some(entry)))
    } else if method == Method::OPTIONS {
        Ok((options(endpoint), None))
    } else {
        Err(ApiError::MethodNotAllowed {
            method: method.as_str().to_owned(),
            allow: ALLOW,
        })
    };
    let (read, entry) = match read {
        Ok((res, entry)) => (Ok(res), entry),
        // Refusals are audited too (not failures of the server itself).
        Err(e) => {
            let entry =
                (!matches!(e, ApiError::Internal(_) | ApiError::Unavailable(_))).then(|| {
                    let event = AuditEvent::new(
                        AuditKind::ApiCall,
                        Some((user.id(), user.username().to_owned())),
                    )
                    .detail(format!(
                        "{} {}: {}",
                        method,
                        endpoint.label(),
                        e.status_code().as_u16()
                    ));
                    audit::entry_for(&req, event)
                });
            (Err(e), entry)
        }
    };
    let written = state
        .db
        .api_call(ApiCall {
            token: user.proof.clone(),
            user_id: user.id(),
            rate: state.settings.api_user_rate,
            audit: entry,
            touch_token: user.record_use.then_some(user.token_id),
        })
        .await;
    let decision = match written {
        Ok(ApiOutcome::Decided(decision)) => decision,
        // The token stopped passing between its lookup and this commit.
        Ok(ApiOutcome::TokenInvalid) => {
            let refused = ApiError::AuthenticationFailed(auth::INVALID_TOKEN);
            return finish(auth::refuse(&req, refused).error_response(), None);
        }
        Ok(ApiOutcome::UserInactive) => {
            let refused = ApiError::AuthenticationFailed(auth::INACTIVE_USER);
            return finish(auth::refuse(&req, refused).error_response(), None);
        }
        Err(e) => return finish(ApiError::from(e).error_response(), None),
    };
    if let QuotaDecision::Throttled { wait_secs, .. } = decision {
        tracing::info!(user = %user.username(), wait_secs, "API quota exhausted");
        return finish(
            ApiError::Throttled { wait_secs }.error_response(),
            Some(decision),
        );
    }
    let res = read.unwrap_or_else(|e| e.error_response());
    finish(res, Some(decision))
}

fn json_response(body: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.to_string())
}

/// DRF's `SimpleMetadata` answer to OPTIONS (read-only: no `actions`).
fn options(endpoint: Endpoint) -> HttpResponse {
    json_response(&json!({
        "name": endpoint.view_name(),
        "description": "",
        "renders": ["application/json"],
        "parses": ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"],
    }))
}

/// A timestamp as DRF's `DateTimeField` renders a UTC value
/// (`2024-05-01T12:30:00Z`, with `.ffffff` when there are microseconds).
pub fn drf_datetime(t: NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    // Written field by field: chrono's format strings are parsed anew on
    // every call, and a results page renders fifty of these.
    let mut out = String::with_capacity(27);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let micros = t.and_utc().timestamp_subsec_micros();
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
    out.push('Z');
    out
}

/// A customer as the API shows it (DRF's serializer, fields in its order).
#[derive(Debug, serde::Serialize)]
pub struct CustomerJson<'a> {
    id: i64,
    operator: i64,
    full_name: &'a str,
    email: &'a str,
    phone: &'a str,
    city: &'a str,
    country: &'a str,
    plan: &'a str,
    status: &'a str,
    created_at: String,
}

impl<'a> From<&'a Customer> for CustomerJson<'a> {
    fn from(c: &'a Customer) -> Self {
        Self {
            id: c.id,
            operator: c.operator_id,
            full_name: &c.full_name,
            email: &c.email,
            phone: &c.phone,
            city: &c.city,
            country: &c.country,
            plan: &c.plan,
            status: &c.status,
            created_at: drf_datetime(c.created_at),
        }
    }
}

/// An operator as the API shows it.
#[derive(Debug, serde::Serialize)]
pub struct OperatorJson<'a> {
    id: i64,
    name: &'a str,
    country: &'a str,
    support_email: &'a str,
    created_at: String,
}

impl<'a> From<&'a Operator> for OperatorJson<'a> {
    fn from(o: &'a Operator) -> Self {
        Self {
            id: o.id,
            name: &o.name,
            country: &o.country,
            support_email: &o.support_email,
            created_at: drf_datetime(o.created_at),
        }
    }
}

/// A 200 answer with `body` serialized as JSON.
fn json_ok<T: serde::Serialize>(body: &T) -> Result<HttpResponse, ApiError> {
    let text = serde_json::to_string(body)
        .map_err(|e| ApiError::Internal(format!("serializing the answer: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(text))
}

/// Whether a customer passes a filter (DRF filters the detail view's
/// queryset too, so a filtered-out object is "not found").
fn customer_matches(f: &CustomerFilter, c: &Customer) -> bool {
    let text = NewCustomer::search_text_for(&c.full_name, &c.email, &c.phone);
    let day = c.created_at.date();
    f.search_terms.iter().all(|t| {
        let t = t.to_lowercase();
        text.split(crate::db::models::SEARCH_SEPARATOR)
            .any(|field| field.contains(&t))
    }) && f.status.as_ref().is_none_or(|s| *s == c.status)
        && f.plan.as_ref().is_none_or(|p| *p == c.plan)
        && f.country.as_ref().is_none_or(|k| *k == c.country)
        && f.operator.is_none_or(|o| o == c.operator_id)
        && f.created_after.is_none_or(|d| day >= d)
        && f.created_before.is_none_or(|d| day <= d)
}

fn operator_matches(f: &OperatorFilter, o: &Operator) -> bool {
    let name = o.name.to_lowercase();
    let email = o.support_email.to_lowercase();
    f.search_terms.iter().all(|t| {
        let t = t.to_lowercase();
        name.contains(&t) || email.contains(&t)
    }) && f.country.as_ref().is_none_or(|k| *k == o.country)
}

fn parse_params(req: &HttpRequest) -> Result<Params, ApiError> {
    Params::parse(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("Malformed query string: {e}.")))
}

/// The `{id}` of a detail route; a non-integer is DRF's plain 404.
fn object_id(req: &HttpRequest) -> Result<i64, ApiError> {
    req.match_info()
        .get("id")
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| ApiError::NotFound("Not found.".into()))
}

/// Reads what a GET asks for; returns the answer and the audit row to
/// write before it may be sent.
async fn get(
    req: &HttpRequest,
    state: &AppState,
    user: &ApiUser,
    endpoint: Endpoint,
) -> Result<(HttpResponse, NewAuditEntry), ApiError> {
    let params = parse_params(req)?;
    let actor = Some((user.id(), user.username().to_owned()));
    let mut entry = audit::entry_for(
        req,
        AuditEvent::new(AuditKind::ApiCall, actor).detail(format!(
            "{} {}",
            req.method(),
            endpoint.label()
        )),
    );
    match endpoint {
        Endpoint::CustomerList | Endpoint::OperatorList => {
            let page = PageRequest::from_params(&params);
            let origin = links::origin(req)
                .ok_or_else(|| ApiError::BadRequest("Invalid HTTP_HOST header.".into()))?;
            // The route's own spelling (as Django's escaped `request.path`),
            // not the raw request path with whatever encoding it came in.
            let noun = if endpoint == Endpoint::CustomerList {
                "customers"
            } else {
                "operators"
            };
            let slash = if req.path().ends_with('/') { "/" } else { "" };
            let path = format!("/api/v1/{noun}{slash}");
            let list = if endpoint == Endpoint::CustomerList {
                let filter = CustomerFilter::from_params(&params)
                    .map_err(|e| ApiError::Validation(e.to_json()))?;
                let pager = state.db.pager();
                state
                    .db
                    .run(move |conn| {
                        // One read of the data version for both caches.
                        let version = pager.version(conn)?;
                        let version = version.as_deref();
                        let count = pager.count(conn, &filter, version)?;
                        let Some(resolved) = page.resolve(count) else {
                            return Ok(None);
                        };
                        let rows = pager.page(
                            conn,
                            &filter,
                            resolved.offset(),
                            resolved.page_size,
                            count,
                            version,
                        )?;
                        let results = rows.iter().map(CustomerJson::from).collect::<Vec<_>>();
                        let results = serde_json::to_string(&results).map_err(|e| {
                            ApiError::Internal(format!("serializing the answer: {e}"))
                        })?;
                        entry.row_count = Some(rows.len() as i64);
                        entry.detail = format!("{}; count {count}", entry.detail);
                        Ok::<_, ApiError>(Some((resolved, results, entry)))
                    })
                    .await?
            } else {
                let filter = OperatorFilter::from_params(&params)
                    .map_err(|e| ApiError::Validation(e.to_json()))?;
                state
                    .db
                    .run(move |conn| {
                        let count = filter.count(conn)?;
                        let Some(resolved) = page.resolve(count) else {
                            return Ok(None);
                        };
                        let rows = filter.page(conn, resolved.offset(), resolved.page_size)?;
                        let results = rows.iter().map(OperatorJson::from).collect::<Vec<_>>();
                        let results = serde_json::to_string(&results).map_err(|e| {
                            ApiError::Internal(format!("serializing the answer: {e}"))
                        })?;
                        entry.row_count = Some(rows.len() as i64);
                        entry.detail = format!("{}; count {count}", entry.detail);
                        Ok::<_, ApiError>(Some((resolved, results, entry)))
                    })
                    .await?
            };
            let Some((resolved, results, entry)) = list else {
                return Err(ApiError::NotFound("Invalid page.".into()));
            };
            let next = resolved
                .has_next()
                .then(|| links::page_url(&origin, &path, &params, Some(resolved.number + 1)));
            let previous = resolved.has_previous().then(|| {
                let n = resolved.number - 1;
                links::page_url(&origin, &path, &params, (n > 1).then_some(n))
            });
            // DRF's paginated body, around the already serialized results.
            let mut body = String::with_capacity(results.len() + 256);
            body.push_str("{\"count\":");
            body.push_str(&resolved.count.to_string());
            for (name, link) in [("next", &next), ("previous", &previous)] {
                body.push_str(",\"");
                body.push_str(name);
                body.push_str("\":");
                body.push_str(&json!(link).to_string());
            }
            body.push_str(",\"results\":");
            body.push_str(&results);
            body.push('}');
            Ok((
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(body),
                entry,
            ))
        }
        Endpoint::CustomerDetail => {
            let filter = CustomerFilter::from_params(&params)
                .map_err(|e| ApiError::Validation(e.to_json()))?;
            let id = object_id(req)?;
            let found = state
                .db
                .run(move |conn| {
                    let Some(c) = query::customer_by_id(conn, id)? else {
                        return Ok(None);
                    };
                    if !customer_matches(&filter, &c) {
                        return Ok(None);
                    }
                    entry.row_count = Some(1);
                    entry.customer_ids = Some(c.id.to_string());
                    Ok::<_, ApiError>(Some((c, entry)))
                })
                .await?;
            let (c, entry) = found
                .ok_or_else(|| ApiError::NotFound("No Customer matches the given query.".into()))?;
            Ok((json_ok(&CustomerJson::from(&c))?, entry))
        }
        Endpoint::OperatorDetail => {
            let filter = OperatorFilter::from_params(&params)
                .map_err(|e| ApiError::Validation(e.to_json()))?;
            let id = object_id(req)?;
            let found = state
                .db
                .run(move |conn| {
                    let Some(o) = query::operator_by_id(conn, id)? else {
                        return Ok(None);
                    };
                    if !operator_matches(&filter, &o) {
                        return Ok(None);
                    }
                    entry.row_count = Some(1);
                    Ok::<_, ApiError>(Some((o, entry)))
                })
                .await?;
            let (o, entry) = found
                .ok_or_else(|| ApiError::NotFound("No Operator matches the given query.".into()))?;
            Ok((json_ok(&OperatorJson::from(&o))?, entry))
        }
    }
}

/// The anonymous per-address limit, for public API routes.
pub fn anon_check(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(anon) = req.app_data::<web::Data<AnonThrottle>>() else {
        return Ok(());
    };
    anon.take(crate::web::middleware::ClientInfo::of(req).ip)
        .map(|_| ())
        .map_err(|wait_secs| ApiError::Throttled { wait_secs })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_render_like_drf() {
        let t = chrono::NaiveDate::from_ymd_opt(2024, 5, 1)
            .and_then(|d| d.and_hms_micro_opt(12, 30, 0, 0))
            .unwrap_or_default();
        assert_eq!(drf_datetime(t), "2024-05-01T12:30:00Z");
        let t = t + chrono::Duration::microseconds(1500);
        assert_eq!(drf_datetime(t), "2024-05-01T12:30:00.001500Z");
    }
}
