-- "One status, newest first" with a search: the index also holds the
-- lower-cased search text, so walking it in order tests each row's text
-- without reading the row (see query/pager.rs, the Walk plan). It has the
-- old index's columns as its prefix, so it serves everything that did.
CREATE INDEX customers_status_created_at_search ON customers (status, created_at, id, search_text);
DROP INDEX customers_status_created_at;
