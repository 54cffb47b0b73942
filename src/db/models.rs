//! Row types for the tables in `schema`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::{api_tokens, audit_log, customers, operators, users};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = operators)]
pub struct Operator {
    pub id: i64,
    pub name: String,
    pub country: String,
    pub support_email: String,
    #[diesel(deserialize_as = crate::db::timestamp::Timestamp)]
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = customers)]
pub struct Customer {
    pub id: i64,
    pub operator_id: i64,
    pub full_name: String,
    pub email: String,
    pub phone: String,
    pub city: String,
    pub country: String,
    pub plan: String,
    pub status: String,
    #[diesel(deserialize_as = crate::db::timestamp::Timestamp)]
    pub created_at: NaiveDateTime,
}

/// A customer row as inserted, with its derived search text.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = customers)]
// Plain values (no defaults), which PostgreSQL's binary COPY needs.
#[diesel(treat_none_as_default_value = false)]
pub struct NewCustomer {
    pub id: i64,
    pub operator_id: i64,
    pub full_name: String,
    pub email: String,
    pub phone: String,
    pub city: String,
    pub country: String,
    pub plan: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub search_text: String,
}

/// Separator between fields in `customers.search_text`. Names, e-mails and
/// phones are validated to contain no control characters, so a search term
/// can never match across two fields.
pub const SEARCH_SEPARATOR: char = '\u{1f}';

impl NewCustomer {
    pub fn search_text_for(full_name: &str, email: &str, phone: &str) -> String {
        let mut s = String::with_capacity(full_name.len() + email.len() + phone.len() + 2);
        s.push_str(&full_name.to_lowercase());
        s.push(SEARCH_SEPARATOR);
        s.push_str(&email.to_lowercase());
        s.push(SEARCH_SEPARATOR);
        s.push_str(&phone.to_lowercase());
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Staff,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Staff => "staff",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "staff" => Some(Role::Staff),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub is_active: bool,
    pub must_change_password: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub last_login_at: Option<NaiveDateTime>,
    pub failed_since_last_login: i32,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin.as_str()
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
    pub is_active: bool,
    pub must_change_password: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub token_hash: String,
    pub prefix: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub id: i64,
    pub at: NaiveDateTime,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub kind: String,
    pub client_addr: String,
    pub path: String,
    pub detail: String,
    pub row_count: Option<i64>,
    pub customer_ids: Option<String>,
    pub request_id: String,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit_log)]
// NULL for None (not DEFAULT), so the INSERT's text is always the same and
// its prepared statement is reused.
#[diesel(treat_none_as_default_value = false)]
pub struct NewAuditEntry {
    pub at: NaiveDateTime,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub kind: String,
    pub client_addr: String,
    pub path: String,
    pub detail: String,
    pub row_count: Option<i64>,
    pub customer_ids: Option<String>,
    pub request_id: String,
}
