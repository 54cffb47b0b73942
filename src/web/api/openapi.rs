//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 description of the API.
//!
//! Built once with serde_json from `ROUTES`, so every served path is
//! described (the trailing-slash-less aliases too). Public: it holds no
//! data, and scripts and tools fetch it before they have a token. It is
//! limited per client address by the anonymous rate.

use std::sync::OnceLock;

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::{Map, Value, json};

use super::{ROUTES, anon_check};
use crate::query::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_SEARCH_LEN};
use crate::web::error::ApiError;

const OPENAPI_ALLOW: &str = "GET, HEAD";

fn error_schema(example: &str) -> Value {
    json!({
        "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"},
            "example": {"detail": example},
        }}
    })
}

fn components() -> Value {
    let q = |name: &str, description: &str, schema: Value| json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema});
    json!({
        "securitySchemes": {
            "tokenAuth": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`Authorization: Token <key>` (keyword case-insensitive). Create a key on the /account page of the query tool; it is shown once."
            },
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "`Authorization: Bearer <key>`, the same key as tokenAuth."
            }
        },
        "parameters": {
            "id": {"name": "id", "in": "path", "required": true, "description": "The object's id.", "schema": {"type": "integer", "format": "int64"}},
            "page": q("page", "A page number (from 1) or `last`.", json!({"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "enum": ["last"]}]})),
            "page_size": q("page_size", &format!("Results per page (default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE}; an invalid value means the default)."), json!({"type": "integer", "minimum": 1, "default": DEFAULT_PAGE_SIZE})),
            "customer_search": q("search", "Terms split on whitespace and commas (quoted phrases stay whole); every term must occur, case-insensitively and literally, in full_name, email or phone.", json!({"type": "string", "maxLength": MAX_SEARCH_LEN})),
            "operator_search": q("search", "Terms split on whitespace and commas (quoted phrases stay whole); every term must occur, case-insensitively and literally, in name or support_email.", json!({"type": "string", "maxLength": MAX_SEARCH_LEN})),
            "status": q("status", "Exact status.", json!({"type": "string", "enum": ["active", "suspended", "closed"]})),
            "plan": q("plan", "Exact plan.", json!({"type": "string", "enum": ["basic", "plus", "pro"]})),
            "country": q("country", "ISO 3166-1 alpha-2 country code.", json!({"type": "string", "pattern": "^[A-Za-z]{2}$"})),
            "operator": q("operator", "Operator id.", json!({"type": "integer", "format": "int64"})),
            "created_after": q("created_after", "Created on or after this date (inclusive).", json!({"type": "string", "format": "date"})),
            "created_before": q("created_before", "Created on or before this date (inclusive).", json!({"type": "string", "format": "date"})),
            "customer_ordering": q("ordering", "Comma-separated fields of id, full_name, created_at; `-` for descending. Unknown fields are ignored; default id.", json!({"type": "string"})),
            "operator_ordering": q("ordering", "Comma-separated fields of id, name, created_at; `-` for descending. Unknown fields are ignored; default id.", json!({"type": "string"}))
        },
        "headers": {
            "X-RateLimit-Limit": {"description": "Requests allowed in the quota window.", "schema": {"type": "integer"}},
            "X-RateLimit-Remaining": {"description": "Requests left in the quota window.", "schema": {"type": "integer"}},
            "Retry-After": {"description": "Seconds until the next request is allowed.", "schema": {"type": "integer"}},
            "WWW-Authenticate": {"description": "Always `Token`.", "schema": {"type": "string"}},
            "Allow": {"description": "The methods of this endpoint.", "schema": {"type": "string"}}
        },
        "schemas": {
            "Customer": {
                "type": "object",
                "required": ["id", "operator", "full_name", "email", "phone", "city", "country", "plan", "status", "created_at"],
                "properties": {
                    "id": {"type": "integer", "format": "int64"},
                    "operator": {"type": "integer", "format": "int64", "description": "The operator's id."},
                    "full_name": {"type": "string"},
                    "email": {"type": "string"},
                    "phone": {"type": "string"},
                    "city": {"type": "string"},
                    "country": {"type": "string", "description": "ISO 3166-1 alpha-2."},
                    "plan": {"type": "string", "enum": ["basic", "plus", "pro"]},
                    "status": {"type": "string", "enum": ["active", "suspended", "closed"]},
                    "created_at": {"type": "string", "format": "date-time"}
                }
            },
            "Operator": {
                "type": "object",
                "required": ["id", "name", "country", "support_email", "created_at"],
                "properties": {
                    "id": {"type": "integer", "format": "int64"},
                    "name": {"type": "string"},
                    "country": {"type": "string"},
                    "support_email": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"}
                }
            },
            "PaginatedCustomerList": paginated("Customer"),
            "PaginatedOperatorList": paginated("Operator"),
            "Error": {
                "type": "object",
                "required": ["detail"],
                "properties": {"detail": {"type": "string"}}
            },
            "ValidationError": {
                "type": "object",
                "description": "Invalid filter values, keyed by parameter name.",
                "additionalProperties": {"type": "array", "items": {"type": "string"}}
            },
            "Metadata": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "renders": {"type": "array", "items": {"type": "string"}},
                    "parses": {"type": "array", "items": {"type": "string"}}
                }
            }
        },
        "responses": {
            "BadRequest": {
                "description": "Invalid filter values.",
                "headers": rate_headers(),
                "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ValidationError"},
                    "example": {"status": ["Select a valid choice. bogus is not one of the available choices."]}
                }}
            },
            "Unauthorized": merge(error_schema("Authentication credentials were not provided."), json!({
                "description": "No valid token: not provided, malformed header, unknown, expired or revoked, or an inactive user.",
                "headers": {"WWW-Authenticate": {"$ref": "#/components/headers/WWW-Authenticate"}}
            })),
            "NotFound": merge(error_schema("Not found."), json!({
                "description": "No such object (`No Customer matches the given query.`), a non-integer id (`Not found.`), or a page that does not exist (`Invalid page.`).",
                "headers": rate_headers()
            })),
            "MethodNotAllowed": merge(error_schema("Method \"POST\" not allowed."), json!({
                "description": "Only GET, HEAD and OPTIONS are allowed.",
                "headers": {"Allow": {"$ref": "#/components/headers/Allow"}}
            })),
            "Throttled": merge(error_schema("Request was throttled. Expected available in 60 seconds."), json!({
                "description": "Over the per-user quota, the anonymous per-address limit, or the burst limit.",
                "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
            }))
        }
    })
}

fn rate_headers() -> Value {
    json!({
        "X-RateLimit-Limit": {"$ref": "#/components/headers/X-RateLimit-Limit"},
        "X-RateLimit-Remaining": {"$ref": "#/components/headers/X-RateLimit-Remaining"}
    })
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn paginated(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["count", "next", "previous", "results"],
        "properties": {
            "count": {"type": "integer"},
            "next": {"type": ["string", "null"], "format": "uri", "description": "Absolute URL of the next page, or null."},
            "previous": {"type": ["string", "null"], "format": "uri", "description": "Absolute URL of the previous page, or null."},
            "results": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}}
        }
    })
}

fn param_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

/// The GET/HEAD/OPTIONS operations of one data path.
fn data_path(path: &str) -> Value {
    let customers = path.contains("/customers");
    let detail = path.contains("{id}");
    let (noun, model) = if customers {
        ("customers", "Customer")
    } else {
        ("operators", "Operator")
    };
    let alias = !path.ends_with('/');
    let id_suffix = if alias { "NoSlash" } else { "" };
    let mut params: Vec<Value> = Vec::new();
    if detail {
        params.push(param_ref("id"));
    }
    if customers {
        params.push(param_ref("customer_search"));
        for p in [
            "status",
            "plan",
            "country",
            "operator",
            "created_after",
            "created_before",
        ] {
            params.push(param_ref(p));
        }
    } else {
        params.push(param_ref("operator_search"));
        params.push(param_ref("country"));
    }
    if !detail {
        params.push(param_ref(if customers {
            "customer_ordering"
        } else {
            "operator_ordering"
        }));
        params.push(param_ref("page"));
        params.push(param_ref("page_size"));
    }
    let ok_schema = if detail {
        format!("#/components/schemas/{model}")
    } else {
        format!("#/components/schemas/Paginated{model}List")
    };
    let summary = match (detail, customers) {
        (false, true) => "List customers (filtered, searched, ordered, paginated)",
        (true, true) => "One customer",
        (false, false) => "List operators (searched, ordered, paginated)",
        (true, false) => "One operator",
    };
    let description = if alias {
        format!("Same as `{path}/` (without the trailing slash).")
    } else {
        "Counts against the caller's quota (also when it answers 400, 404 or 405).".to_owned()
    };
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "OK",
            "headers": rate_headers(),
            "content": {"application/json": {"schema": {"$ref": ok_schema}}}
        }),
    );
    responses.insert(
        "400".into(),
        json!({"$ref": "#/components/responses/BadRequest"}),
    );
    responses.insert(
        "401".into(),
        json!({"$ref": "#/components/responses/Unauthorized"}),
    );
    responses.insert(
        "404".into(),
        json!({"$ref": "#/components/responses/NotFound"}),
    );
    responses.insert(
        "405".into(),
        json!({"$ref": "#/components/responses/MethodNotAllowed"}),
    );
    responses.insert(
        "429".into(),
        json!({"$ref": "#/components/responses/Throttled"}),
    );
    let kind = if detail { "retrieve" } else { "list" };
    let op = |verb: &str, summary: String| {
        json!({
            "operationId": format!("{verb}_{noun}_{kind}{id_suffix}"),
            "summary": summary,
            "description": description,
            "tags": [noun],
            "parameters": params,
            "responses": responses,
        })
    };
    let mut options_responses = responses.clone();
    options_responses.insert(
        "200".into(),
        json!({
            "description": "DRF's metadata for the view.",
            "headers": rate_headers(),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Metadata"}}}
        }),
    );
    json!({
        "get": op("get", summary.to_owned()),
        "head": op("head", format!("{summary} (headers only)")),
        "options": {
            "operationId": format!("options_{noun}_{kind}{id_suffix}"),
            "summary": "The view's metadata",
            "tags": [noun],
            "parameters": if detail { vec![param_ref("id")] } else { Vec::new() },
            "responses": options_responses,
        }
    })
}

fn openapi_path() -> Value {
    let op = |verb: &str| {
        json!({
            "operationId": format!("{verb}_openapi"),
            "summary": "This document",
            "tags": ["schema"],
            "security": [],
            "responses": {
                "200": {"description": "The OpenAPI 3.1 document.", "content": {"application/json": {"schema": {"type": "object"}}}},
                "429": {"$ref": "#/components/responses/Throttled"}
            }
        })
    };
    json!({"get": op("get"), "head": op("head")})
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let item = if route.path.ends_with("openapi.json") {
            openapi_path()
        } else {
            data_path(route.path)
        };
        paths.insert(route.path.to_owned(), item);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Custos API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Read-only access to customers and operators, compatible with the Django REST framework original. Every request needs a token (`Authorization: Token <key>`), counts against a per-user quota and is audited.",
            "license": {"name": "GPL-3.0-or-later", "identifier": "GPL-3.0-or-later"}
        },
        "security": [{"tokenAuth": []}, {"bearerAuth": []}],
        "tags": [
            {"name": "customers"},
            {"name": "operators"},
            {"name": "schema"}
        ],
        "paths": paths,
        "components": components(),
    })
}

fn rendered() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| document().to_string())
}

/// Serves the document (GET and HEAD; public, anonymous-rate limited).
pub async fn serve(req: HttpRequest) -> HttpResponse {
    let result = if req.method() == Method::GET || req.method() == Method::HEAD {
        anon_check(&req).map(|_| {
            HttpResponse::Ok()
                .content_type("application/json")
                .body(rendered())
        })
    } else {
        Err(ApiError::MethodNotAllowed {
            method: req.method().as_str().to_owned(),
            allow: OPENAPI_ALLOW,
        })
    };
    let mut res = result.unwrap_or_else(|e| e.error_response());
    res.headers_mut().insert(
        header::ALLOW,
        header::HeaderValue::from_static(OPENAPI_ALLOW),
    );
    res
}
