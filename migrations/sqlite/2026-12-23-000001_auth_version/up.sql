-- Any change that can decide whether an API token is accepted moves
-- app_state.auth_version: the in-memory token cache (auth::token_cache)
-- trusts an entry only while the version it was read under is current,
-- and the writer rechecks a request's token whenever the version moved
-- since it was looked up. Token last use, last login and failed-login
-- counts do not decide acceptance, so they do not move it.
INSERT INTO app_state (key, value) VALUES ('auth_version', '0');

CREATE TRIGGER users_auth_version_update
AFTER UPDATE OF id, username, password_hash, role, is_active, must_change_password ON users
BEGIN
    UPDATE app_state SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
        WHERE key = 'auth_version';
END;

CREATE TRIGGER users_auth_version_delete AFTER DELETE ON users
BEGIN
    UPDATE app_state SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
        WHERE key = 'auth_version';
END;

CREATE TRIGGER api_tokens_auth_version_update
AFTER UPDATE OF id, user_id, token_hash, expires_at, revoked_at ON api_tokens
BEGIN
    UPDATE app_state SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
        WHERE key = 'auth_version';
END;

CREATE TRIGGER api_tokens_auth_version_delete AFTER DELETE ON api_tokens
BEGIN
    UPDATE app_state SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
        WHERE key = 'auth_version';
END;
