-- Any write to customers moves app_state.data_version, which the cached
-- result counts follow. Imports and seed bump it themselves as well; these
-- triggers cover every other writer (a hand-made fix in the sqlite3 shell,
-- a future feature), so a cached count can never outlive the data.
CREATE TRIGGER customers_version_insert AFTER INSERT ON customers
BEGIN
    UPDATE app_state SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
        WHERE key = 'data_version';
END;

CREATE TRIGGER customers_version_update AFTER UPDATE ON customers
BEGIN
    UPDATE app_state SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
        WHERE key = 'data_version';
END;

CREATE TRIGGER customers_version_delete AFTER DELETE ON customers
BEGIN
    UPDATE app_state SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
        WHERE key = 'data_version';
END;
