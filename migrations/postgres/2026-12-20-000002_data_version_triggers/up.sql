-- Any write to customers moves app_state.data_version, which the cached
-- result counts of every instance follow. Imports and seed bump it
-- themselves as well; this covers every other writer (a hand-made fix in
-- psql, a future feature). Once per statement, so bulk inserts pay once.
CREATE FUNCTION custos_bump_data_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE app_state SET value = (value::bigint + 1)::text WHERE key = 'data_version';
    RETURN NULL;
END;
$$;

CREATE TRIGGER customers_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON customers
    FOR EACH STATEMENT EXECUTE FUNCTION custos_bump_data_version();
