DROP TRIGGER customers_version_delete;
DROP TRIGGER customers_version_update;
DROP TRIGGER customers_version_insert;
