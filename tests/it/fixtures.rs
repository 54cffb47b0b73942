//! Test data for the page tests: seeded or hand-made customers, all rows
//! read back plainly, and small readers for what the pages show.

#![allow(dead_code)]

use chrono::NaiveDateTime;
use custos::db::models::{Customer, NewCustomer, Operator};
use custos::db::schema::{customers, operators};
use custos::import::Silent;
use custos::seed::SeedPlan;
use diesel::prelude::*;

use crate::helpers::TestApp;

/// Fills the database with deterministic demo data.
pub async fn seed(app: &TestApp, customers: u64, operators: u64) {
    app.with_db(move |conn| {
        custos::seed::seed(
            conn,
            SeedPlan {
                customers,
                operators,
                seed: 42,
            },
            &Silent,
        )
        .expect("seed")
    })
    .await;
}

/// Every customer, read without the query module.
pub async fn all_customers(app: &TestApp) -> Vec<Customer> {
    app.with_db(|conn| {
        customers::table
            .select(Customer::as_select())
            .load(conn)
            .expect("customers")
    })
    .await
}

pub async fn all_operators(app: &TestApp) -> Vec<Operator> {
    app.with_db(|conn| {
        operators::table
            .select(Operator::as_select())
            .load(conn)
            .expect("operators")
    })
    .await
}

pub fn at(s: &str) -> NaiveDateTime {
    custos::import::validate::timestamp(s).expect("timestamp")
}

/// An operator row for hand-made data.
pub fn operator(id: i64, name: &str) -> Operator {
    Operator {
        id,
        name: name.to_owned(),
        country: "DE".into(),
        support_email: format!("support{id}@example.com"),
        created_at: at("2023-01-01T00:00:00Z"),
    }
}

/// A customer row for hand-made data.
pub fn customer(
    id: i64,
    operator_id: i64,
    full_name: &str,
    email: &str,
    created_at: &str,
) -> NewCustomer {
    let phone = format!("+49 30 {id:07}");
    NewCustomer {
        id,
        operator_id,
        search_text: NewCustomer::search_text_for(full_name, email, &phone),
        full_name: full_name.to_owned(),
        email: email.to_owned(),
        phone,
        city: "Berlin".into(),
        country: "DE".into(),
        plan: ["basic", "plus", "pro"][(id % 3) as usize].into(),
        status: ["active", "suspended", "closed"][(id % 3) as usize].into(),
        created_at: at(created_at),
    }
}

pub async fn insert(app: &TestApp, ops: Vec<Operator>, rows: Vec<NewCustomer>) {
    app.with_db(move |conn| {
        custos::import::insert_operators(conn, &ops).expect("insert operators");
        custos::import::insert_customers(conn, &rows).expect("insert customers");
    })
    .await;
}

/// The customer ids of a results table, in the order shown.
pub fn ids_on_page(html: &str) -> Vec<i64> {
    let Some(start) = html.find("<tbody>") else {
        return Vec::new();
    };
    let end = html[start..]
        .find("</tbody>")
        .map_or(html.len(), |e| start + e);
    let body = &html[start..end];
    let marker = "<td><a href=\"/customers/";
    body.match_indices(marker)
        .filter_map(|(i, _)| {
            let rest = &body[i + marker.len()..];
            rest[..rest.find('"')?].parse().ok()
        })
        .collect()
}

/// The operator ids of an operators results table, in order.
pub fn operator_ids_on_page(html: &str) -> Vec<i64> {
    let Some(start) = html.find("<tbody>") else {
        return Vec::new();
    };
    let body = &html[start..];
    let marker = "<td><a href=\"/operators/";
    body.match_indices(marker)
        .filter_map(|(i, _)| {
            let rest = &body[i + marker.len()..];
            rest[..rest.find('"')?].parse().ok()
        })
        .collect()
}

/// The total shown above the results ("<strong>N</strong> customers match").
pub fn count_on_page(html: &str) -> i64 {
    let marker = "<p class=\"count\" role=\"status\"><strong>";
    let start = html.find(marker).expect("a count on the page") + marker.len();
    let end = html[start..].find('<').expect("end of count") + start;
    html[start..end].parse().expect("numeric count")
}

/// Undoes the HTML escaping askama applies (numeric and named entities).
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "quot" => Some('"'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    custos::web::error::encode_query_value(s)
}
