DROP TRIGGER api_tokens_auth_version_delete ON api_tokens;
DROP TRIGGER api_tokens_auth_version_update ON api_tokens;
DROP TRIGGER users_auth_version_delete ON users;
DROP TRIGGER users_auth_version_update ON users;
DROP FUNCTION custos_bump_auth_version();
DELETE FROM app_state WHERE key = 'auth_version';
