DROP TRIGGER operators_version ON operators;
