//! Shared fixtures of the API tests: a known data set, tokens, and a small
//! client that returns status, headers and body together.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use chrono::{NaiveDate, NaiveDateTime};
use custos::db::models::{NewCustomer, Operator, Role};
use reqwest::header::HeaderMap;

use crate::helpers::*;

/// Settings that keep the limits out of the way of functional tests.
pub const GENEROUS: &[(&str, &str)] = &[
    ("CUSTOS_API_USER_RATE", "100000/day"),
    ("CUSTOS_API_ANON_RATE", "100000/day"),
    ("CUSTOS_BURST_PER_SECOND", "100000"),
    ("CUSTOS_BURST_SIZE", "100000"),
];

/// Rows whose names exercise search: LIKE wildcards, quotes, non-ASCII.
pub const SPECIAL_NAMES: &[&str] = &[
    "Anna Smith",
    "Smith, Anna",
    "100% Pure Ltd",
    "1000 Pure",
    "under_score",
    "underXscore",
    "Seán O'Brien",
    "O Brien",
    "Zoë Ærøskøbing",
    "ZOË ÆRØSKØBING",
    "Łukasz Żółć",
    "back\\slash",
    "Say \"Hi\" There",
    "İstanbul Person",
    "München Müller",
];

pub fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, min, 0)
        .unwrap()
}

pub fn operators() -> Vec<Operator> {
    vec![
        Operator {
            id: 1,
            name: "Nordwind Telecom".into(),
            country: "DE".into(),
            support_email: "help@nordwind.example".into(),
            created_at: at(2020, 1, 2, 3, 4),
        },
        Operator {
            id: 2,
            name: "Helios_Energy 100%".into(),
            country: "FR".into(),
            support_email: "support@helios.example".into(),
            created_at: at(2021, 6, 7, 8, 9),
        },
        Operator {
            id: 3,
            name: "Øster Mobile".into(),
            country: "DK".into(),
            support_email: "kontakt@oster.example".into(),
            created_at: at(2022, 11, 12, 13, 14),
        },
    ]
}

/// The customers: generated rows plus the special names.
pub fn customers() -> Vec<NewCustomer> {
    let statuses = ["active", "suspended", "closed"];
    let plans = ["basic", "plus", "pro"];
    let countries = ["DE", "FR", "DK", "GB"];
    let first = ["Anna", "Ben", "Chloé", "David", "Elif", "Zoë", "Liam"];
    let last = ["Smith", "Müller", "Rossi", "Nowak", "Smithson"];
    let mut rows = Vec::new();
    let mut id = 1i64;
    let mut push = |full_name: String, i: usize, rows: &mut Vec<NewCustomer>| {
        let email = format!(
            "{}.{id}@example.com",
            full_name.to_lowercase().replace([' ', '"', '\\', ','], ".")
        );
        let phone = format!("+49 30 {:07}", id * 7919 % 10_000_000);
        // Two rows share each created_at minute, to exercise tie-breaking.
        let minute = (i / 2) as i64;
        let created_at = at(2023, 1, 1, 0, 0) + chrono::Duration::minutes(minute * 4111);
        rows.push(NewCustomer {
            id,
            operator_id: (i % 3) as i64 + 1,
            search_text: NewCustomer::search_text_for(&full_name, &email, &phone),
            full_name,
            email,
            phone,
            city: "Berlin".into(),
            country: countries[i % 4].into(),
            plan: plans[(i / 3) % 3].into(),
            status: statuses[(i / 2) % 3].into(),
            created_at,
        });
        id += 1;
    };
    for i in 0..105 {
        let name = format!("{} {}", first[i % first.len()], last[(i / 2) % last.len()]);
        push(name, i, &mut rows);
    }
    for (j, name) in SPECIAL_NAMES.iter().enumerate() {
        push((*name).to_owned(), 105 + j, &mut rows);
    }
    rows
}

/// Loads operators and customers into the app's database.
pub async fn load_data(app: &TestApp) {
    app.with_db(|conn| {
        custos::import::insert_operators(conn, &operators()).unwrap();
        custos::import::insert_customers(conn, &customers()).unwrap();
    })
    .await;
}

/// Creates a user with a valid API token; returns (user id, token).
pub async fn user_with_token(app: &TestApp, username: &str) -> (i64, String) {
    let uid = app.create_user(username, Role::Staff).await;
    let token = custos::auth::tokens::generate_token();
    let secret = token.clone();
    app.with_db(move |conn| {
        let expires = custos::db::now() + chrono::Duration::days(30);
        custos::auth::tokens::store_token(conn, uid, &secret, Some(expires)).unwrap();
    })
    .await;
    (uid, token)
}

/// One answer, read completely.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub async fn read(res: reqwest::Response) -> Answer {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.text().await.unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A request with `Authorization: Token <token>`.
pub async fn api_get(app: &TestApp, token: &str, path_and_query: &str) -> Answer {
    let res = plain_client()
        .get(app.url(path_and_query))
        .header("authorization", format!("Token {token}"))
        .send()
        .await
        .unwrap();
    read(res).await
}

pub async fn api_request(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    authorization: Option<&[u8]>,
) -> Answer {
    let mut req = plain_client().request(method, app.url(path));
    if let Some(value) = authorization {
        req = req.header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    read(req.send().await.unwrap()).await
}

/// DRF's rendering of a customer, computed independently of the server.
pub fn expected_customer(c: &NewCustomer) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "operator": c.operator_id,
        "full_name": c.full_name,
        "email": c.email,
        "phone": c.phone,
        "city": c.city,
        "country": c.country,
        "plan": c.plan,
        "status": c.status,
        "created_at": c.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    })
}

pub fn ids_of(body: &serde_json::Value) -> Vec<i64> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}
