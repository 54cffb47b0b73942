//! Cross-cutting request handling: request ids, the client's address and
//! scheme, access logging, and the security headers every response carries.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest};
use rand::RngCore;

use crate::config::{Settings, canonical_ip};
use crate::web::error::PageError;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, for error pages and logs.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Who sent the request, as far as it can be trusted.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The socket peer, or the right-most untrusted `X-Forwarded-For` hop
    /// when the peer is a trusted proxy.
    pub ip: IpAddr,
    /// Whether the client reached us over HTTPS (directly or via a trusted
    /// proxy's `X-Forwarded-Proto`).
    pub https: bool,
    pub request_id: String,
}

impl ClientInfo {
    pub fn of(req: &HttpRequest) -> ClientInfo {
        req.extensions()
            .get::<ClientInfo>()
            .cloned()
            .unwrap_or_else(|| ClientInfo {
                ip: IpAddr::from([0, 0, 0, 0]),
                https: false,
                request_id: "-".into(),
            })
    }

    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

fn new_request_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Works out the client address and scheme from the socket peer and,
/// only for trusted proxies, the forwarding headers.
pub fn resolve_client(settings: &Settings, req: &ServiceRequest) -> (IpAddr, bool) {
    let peer = req
        .peer_addr()
        .map(|a| canonical_ip(a.ip()))
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let direct_https = settings.serves_https();
    if !settings.is_trusted_proxy(peer) {
        return (peer, direct_https);
    }
    // Walk X-Forwarded-For from the right, skipping trusted hops.
    let mut client = peer;
    let hops: Vec<String> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_owned()))
        .collect();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical_ip(ip);
                if !settings.is_trusted_proxy(client) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let https = match req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some(proto) => proto
            .split(',')
            .next()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https")),
        None => direct_https,
    };
    (client, https)
}

/// Outermost middleware: assigns the request id, resolves the client,
/// logs one line per request, and tags the response with `X-Request-Id`.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    let started = Instant::now();
    let request_id = new_request_id();
    let settings = req
        .app_data::<actix_web::web::Data<Arc<Settings>>>()
        .map(|s| s.get_ref().clone());
    let (ip, https) = match &settings {
        Some(s) => resolve_client(s, &req),
        None => (IpAddr::from([127, 0, 0, 1]), false),
    };
    req.extensions_mut().insert(ClientInfo {
        ip,
        https,
        request_id: request_id.clone(),
    });
    let method = req.method().clone();
    let path = req.path().to_owned();
    let result = REQUEST_ID.scope(request_id.clone(), next.call(req)).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(mut res) => {
            let status = res.status().as_u16();
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                res.headers_mut()
                    .insert(HeaderName::from_static("x-request-id"), v);
            }
            if status >= 500 {
                let cause = res.response().error().map(|e| e.to_string());
                tracing::error!(%request_id, %method, %path, status, client = %ip, elapsed_ms, cause = cause.as_deref().unwrap_or("-"), "request failed");
            } else {
                tracing::info!(%request_id, %method, %path, status, client = %ip, elapsed_ms, "request");
            }
            Ok(res)
        }
        Err(e) => {
            tracing::error!(%request_id, %method, %path, client = %ip, error = %e, "request error");
            Err(e)
        }
    }
}

/// The Content-Security-Policy: nothing inline, nothing from elsewhere.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Adds the security headers to every response. Everything but static
/// assets is `no-store`, so no page with data can come back from cache.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    let is_static = req.path().starts_with("/static/");
    let https = req
        .extensions()
        .get::<ClientInfo>()
        .is_some_and(|c| c.https);
    let mut res = next.call(req).await?;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    );
    if https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if is_static {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
    } else {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store, private"),
        );
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    Ok(res)
}

/// Wraps the session middleware. When the session store fails (the
/// database is away), actix-session gives up with a bare 500; this turns
/// any error it returns into the "temporarily unavailable" page (503),
/// with the cause logged and not shown. (The request cannot be kept to
/// build a response here: actix needs it unshared further in.)
pub async fn session_store_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    next.call(req)
        .await
        .map_err(|e| PageError::Unavailable(format!("session store: {e:?}")).into())
}
