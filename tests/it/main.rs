//! The integration tests: one binary, each test against its own fresh
//! database and a real server on port 0.
//!
//! Database tests run on SQLite always, and on PostgreSQL too when
//! `CUSTOS_TEST_POSTGRES_URL` names a server the tests may create
//! databases on (CI sets it).

// Tests may panic on purpose: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;
mod helpers;

mod access;
mod admin_users;
mod api;
mod api_support;
mod audit_trail;
mod bad_input;
mod browser;
mod django;
mod login_guard;
mod quota;
mod sqlmap;
mod token_cache;
mod tokens;

mod cli;
mod config;
mod count_cache;
mod crash;
mod db_faults;
mod export;
mod hardening;
mod limits;
mod pager;
mod results;
mod scale_out;
mod search_index;
mod session;
mod soak;
mod tls;
