ALTER TABLE api_quota DROP COLUMN counted_after;
ALTER TABLE api_quota DROP COLUMN window_count;
