CREATE INDEX customers_status_created_at ON customers (status, created_at, id);
DROP INDEX customers_status_created_at_search;
