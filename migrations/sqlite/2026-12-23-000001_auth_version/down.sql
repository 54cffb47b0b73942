DROP TRIGGER api_tokens_auth_version_delete;
DROP TRIGGER api_tokens_auth_version_update;
DROP TRIGGER users_auth_version_delete;
DROP TRIGGER users_auth_version_update;
DELETE FROM app_state WHERE key = 'auth_version';
