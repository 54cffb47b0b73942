DROP TRIGGER operators_version_delete;
DROP TRIGGER operators_version_update;
DROP TRIGGER operators_version_insert;
