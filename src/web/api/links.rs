//! Absolute pagination links built exactly as Django REST framework builds
//! them (`replace_query_param` / `remove_query_param`): the query is parsed
//! with `parse_qs(keep_blank_values=True)`, `page` is set or removed, the
//! keys are sorted, and it is encoded again with `urlencode(doseq=True)`,
//! which quotes with `quote_plus`.

use std::fmt::Write;

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::query::Params;
use crate::web::middleware::ClientInfo;

/// Python's `urllib.parse.quote_plus(s, safe='')` over UTF-8.
pub fn quote_plus(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// The query with `page` replaced (`Some`) or removed (`None`), as DRF
/// re-encodes it.
pub fn page_query(params: &Params, page: Option<i64>) -> String {
    // parse_qs: keys in first-seen order, each with all its values.
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in params.pairs() {
        match groups.iter_mut().find(|(key, _)| key == k) {
            Some((_, values)) => values.push(v.clone()),
            None => groups.push((k.clone(), vec![v.clone()])),
        }
    }
    groups.retain(|(k, _)| k != "page");
    if let Some(n) = page {
        groups.push(("page".to_owned(), vec![n.to_string()]));
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let mut pieces = Vec::new();
    for (k, values) in &groups {
        for v in values {
            pieces.push(format!("{}={}", quote_plus(k), quote_plus(v)));
        }
    }
    pieces.join("&")
}

/// `scheme://host` of this request: the scheme as `ClientInfo` resolved it
/// (trusting `X-Forwarded-Proto` only from trusted proxies) and the `Host`
/// header, refusing hosts that are not a plain `name[:port]`.
pub fn origin(req: &HttpRequest) -> Option<String> {
    let host = match req.headers().get(header::HOST) {
        Some(h) => h.to_str().ok()?.to_owned(),
        None => req.uri().authority()?.as_str().to_owned(),
    };
    let valid = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !valid {
        return None;
    }
    Some(format!("{}://{}", ClientInfo::of(req).scheme(), host))
}

/// The link to another page of this request's list.
pub fn page_url(origin: &str, path: &str, params: &Params, page: Option<i64>) -> String {
    let query = page_query(params, page);
    if query.is_empty() {
        format!("{origin}{path}")
    } else {
        format!("{origin}{path}?{query}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn q(raw: &str, page: Option<i64>) -> String {
        page_query(&Params::parse(raw).unwrap_or_default(), page)
    }

    #[test]
    fn queries_are_rebuilt_like_drf() {
        assert_eq!(q("", Some(2)), "page=2");
        assert_eq!(q("page=3", None), "");
        assert_eq!(
            q("search=a+b&status=active&page=1&country=DE", Some(2)),
            "country=DE&page=2&search=a+b&status=active"
        );
        assert_eq!(q("b=2&a=1&b=1&flag", Some(2)), "a=1&b=2&b=1&flag=&page=2");
        assert_eq!(
            q("search=%C3%A9%27%25_~*", None),
            "search=%C3%A9%27%25_~%2A"
        );
        assert_eq!(q("Z=1&a=2", None), "Z=1&a=2");
    }
}
