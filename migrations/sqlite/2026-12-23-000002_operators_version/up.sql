-- Operators' names are kept per data version for results pages
-- (query::operator_cache), so any write to operators moves the version
-- as writes to customers do. Imports bump it themselves as well.
CREATE TRIGGER operators_version_insert AFTER INSERT ON operators
BEGIN
    UPDATE app_state SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
        WHERE key = 'data_version';
END;

CREATE TRIGGER operators_version_update AFTER UPDATE ON operators
BEGIN
    UPDATE app_state SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
        WHERE key = 'data_version';
END;

CREATE TRIGGER operators_version_delete AFTER DELETE ON operators
BEGIN
    UPDATE app_state SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
        WHERE key = 'data_version';
END;
