-- Operators' names are kept per data version for results pages
-- (query::operator_cache), so any write to operators moves the version
-- as writes to customers do. Imports bump it themselves as well.
CREATE TRIGGER operators_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON operators
    FOR EACH STATEMENT EXECUTE FUNCTION custos_bump_data_version();
