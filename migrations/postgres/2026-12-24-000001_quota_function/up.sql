-- The API quota of a whole group-commit batch in one round trip.
--
-- Before, the writer decided each user of a batch with a chain of
-- statements (lock the counter row, count the requests that left the
-- window, insert the history rows, store the counter, and when over the
-- limit find the request that must leave first): four or five round trips
-- per user, so a batch of twenty users waited on some ninety of them.
-- This function runs the same steps, with the same meaning as
-- quota::take_batch (which stays the SQLite path and the per-user retry
-- path on PostgreSQL), for all users of the batch at once on the server:
-- three statements in all, whatever the number of users (run per user,
-- the steps were most of the writer's time on the server).
--
-- Arguments are parallel arrays, one element per user (distinct users:
-- the caller decides a user that comes twice user by user); the rows are
-- locked in ascending user order, so two instances never deadlock;
-- p_at is the time the requests are counted at. Each user's row answers
-- how many of the wanted requests were allowed, the count in the window
-- afterwards, and, when some were refused, when the request that must
-- leave the window before one more fits was made (DRF's wait).
CREATE FUNCTION custos_take_quotas(
    p_users BIGINT[],
    p_limits BIGINT[],
    p_window_starts TIMESTAMP[],
    p_wanted INTEGER[],
    p_at TIMESTAMP
) RETURNS TABLE (
    quota_user BIGINT,
    quota_allowed INTEGER,
    quota_count BIGINT,
    quota_leaving TIMESTAMP
)
LANGUAGE plpgsql AS $$
BEGIN
    -- A counter row for users without one. Two instances may race to
    -- create it: the loser's insert does nothing.
    INSERT INTO api_quota (user_id, touched_at, window_count, counted_after)
        SELECT u, p_at, 0, '1970-01-01 00:00:00' FROM unnest(p_users) AS u
        WHERE NOT EXISTS (SELECT 1 FROM api_quota q WHERE q.user_id = u)
        ON CONFLICT DO NOTHING;
    -- Hold the counters (in user order) before reading anything: the
    -- statement below then starts from a snapshot that has every other
    -- transaction's requests for these users.
    PERFORM 1 FROM api_quota q WHERE q.user_id = ANY (p_users)
        ORDER BY q.user_id FOR UPDATE;
    RETURN QUERY
    WITH wanted AS (
        SELECT w.*
        FROM unnest(p_users, p_limits, p_window_starts, p_wanted)
            WITH ORDINALITY AS w (user_id, lim, start, n, ord)
    ),
    counted AS (
        SELECT w.*,
            CASE
                WHEN w.start = q.counted_after THEN q.window_count
                -- Only the requests that left the window since the last check.
                WHEN w.start > q.counted_after THEN q.window_count - (
                    SELECT count(*) FROM api_requests r
                    WHERE r.user_id = w.user_id
                      AND r.requested_at > q.counted_after
                      AND r.requested_at <= w.start)
                -- A window that starts earlier than the counted one (a
                -- longer rate, a clock set back) is counted in full.
                ELSE (
                    SELECT count(*) FROM api_requests r
                    WHERE r.user_id = w.user_id AND r.requested_at > w.start)
            END AS before
        FROM wanted w JOIN api_quota q ON q.user_id = w.user_id
    ),
    decided AS (
        SELECT c.*, least(greatest(c.lim - c.before, 0), c.n)::INTEGER AS allowed
        FROM counted c
    ),
    history AS (
        INSERT INTO api_requests (user_id, requested_at)
            SELECT d.user_id, p_at FROM decided d, generate_series(1, d.allowed)
    ),
    counters AS (
        UPDATE api_quota q
            SET window_count = d.before + d.allowed, counted_after = d.start, touched_at = p_at
            FROM decided d WHERE q.user_id = d.user_id
    )
    SELECT d.user_id, d.allowed, d.before + d.allowed,
        -- When some were refused: the request that must leave the window
        -- before one more fits (the oldest when it is exactly full). The
        -- rows inserted above are not in this statement's snapshot; they
        -- come after every earlier one, at p_at.
        CASE
            WHEN d.allowed >= d.n THEN NULL
            WHEN greatest(d.before + d.allowed - d.lim, 0) >= d.before THEN p_at
            ELSE (
                SELECT r.requested_at FROM api_requests r
                WHERE r.user_id = d.user_id AND r.requested_at > d.start
                ORDER BY r.requested_at ASC
                OFFSET greatest(d.before + d.allowed - d.lim, 0) LIMIT 1)
        END
    FROM decided d
    ORDER BY d.ord;
END;
$$;
