-- Custos schema for SQLite. Timestamps are UTC, stored by diesel as text
-- 'YYYY-MM-DD HH:MM:SS[.ffffff]', which sorts correctly.

CREATE TABLE operators (
    id BIGINT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    country TEXT NOT NULL,
    support_email TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX operators_name ON operators (name);

CREATE TABLE customers (
    id BIGINT PRIMARY KEY NOT NULL,
    operator_id BIGINT NOT NULL REFERENCES operators (id),
    full_name TEXT NOT NULL,
    email TEXT NOT NULL,
    phone TEXT NOT NULL,
    city TEXT NOT NULL,
    country TEXT NOT NULL,
    plan TEXT NOT NULL CHECK (plan IN ('basic', 'plus', 'pro')),
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'closed')),
    created_at TIMESTAMP NOT NULL,
    -- Lower-cased full_name, email and phone joined by U+001F, for search.
    search_text TEXT NOT NULL
);
CREATE INDEX customers_operator ON customers (operator_id, id);
CREATE INDEX customers_status ON customers (status, id);
CREATE INDEX customers_plan ON customers (plan, id);
CREATE INDEX customers_country ON customers (country, id);
CREATE INDEX customers_created_at ON customers (created_at, id);
CREATE INDEX customers_full_name ON customers (full_name, id);
CREATE INDEX customers_status_created_at ON customers (status, created_at, id);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'staff')),
    is_active BOOLEAN NOT NULL DEFAULT 1,
    must_change_password BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP,
    -- Failed logins since the last successful one, shown after next login.
    failed_since_last_login INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE sessions (
    -- SHA-256 of the session key held in the cookie; the key itself is never stored.
    id TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the token (hex); the token itself is never stored.
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- One row per user: locked (updated) first in every quota transaction, so
-- concurrent requests of one user are serialised and the count is exact.
CREATE TABLE api_quota (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    touched_at TIMESTAMP NOT NULL
);
-- DRF's throttle history: one row per counted request.
CREATE TABLE api_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    requested_at TIMESTAMP NOT NULL
);
CREATE INDEX api_requests_user_time ON api_requests (user_id, requested_at);

CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    username TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    failed_at TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_username ON login_failures (username, failed_at);
CREATE INDEX login_failures_addr ON login_failures (client_addr, failed_at);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    at TIMESTAMP NOT NULL,
    user_id BIGINT,
    username TEXT,
    kind TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    path TEXT NOT NULL,
    detail TEXT NOT NULL,
    row_count BIGINT,
    customer_ids TEXT,
    request_id TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_user_at ON audit_log (user_id, at);
CREATE INDEX audit_log_kind_at ON audit_log (kind, at);

-- The audit log is append-only: rows are never changed.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

-- Small key/value facts about the data, e.g. the data version that count
-- caches follow.
CREATE TABLE app_state (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
INSERT INTO app_state (key, value) VALUES ('data_version', '0');
