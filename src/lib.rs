//! Custos: a secure customer-data query tool with a token-protected JSON API.
//!
//! - `config`: typed settings from the environment, validated at start.
//! - `db`: the SQLite/PostgreSQL connection, pool, schema and migrations.
//! - `import`, `seed`: getting customer data in.
//! - `auth`: passwords, sessions, tokens, CSRF, authenticated extractors.
//! - `web`: the HTTP application (pages, API, middleware, errors).
//! - `admin`: the administrator's pages (accounts, audit trail); `audit`: the trail itself.
//! - `server`: binding and running it; `cli`: the `custos` command.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod bounded;
pub mod cli;
pub mod config;
pub mod db;
pub mod import;
pub mod query;
pub mod quota;
pub mod seed;
pub mod server;
pub mod tls;
pub mod web;
