-- The quota keeps a running count of each user's requests in the window,
-- so a check no longer counts the whole window's history: `window_count`
-- is the number of the user's `api_requests` rows with
-- `requested_at > counted_after`. Rows already there are counted once here.
ALTER TABLE api_quota ADD COLUMN window_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_quota ADD COLUMN counted_after TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
UPDATE api_quota SET window_count = (
    SELECT count(*) FROM api_requests r WHERE r.user_id = api_quota.user_id
);
