-- Any change that can decide whether an API token is accepted moves
-- app_state.auth_version: the in-memory token cache of every instance
-- (auth::token_cache) trusts an entry only while the version it was read
-- under is current, and the writer rechecks a request's token whenever the
-- version moved since it was looked up. Token last use, last login and
-- failed-login counts do not decide acceptance, so they do not move it.
INSERT INTO app_state (key, value) VALUES ('auth_version', '0');

CREATE FUNCTION custos_bump_auth_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE app_state SET value = (value::bigint + 1)::text WHERE key = 'auth_version';
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_auth_version_update
    AFTER UPDATE OF id, username, password_hash, role, is_active, must_change_password ON users
    FOR EACH STATEMENT EXECUTE FUNCTION custos_bump_auth_version();
CREATE TRIGGER users_auth_version_delete
    AFTER DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION custos_bump_auth_version();
CREATE TRIGGER api_tokens_auth_version_update
    AFTER UPDATE OF id, user_id, token_hash, expires_at, revoked_at ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION custos_bump_auth_version();
CREATE TRIGGER api_tokens_auth_version_delete
    AFTER DELETE OR TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION custos_bump_auth_version();
