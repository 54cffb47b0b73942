-- Substring-search index: a pg_trgm GIN index over customers.search_text
-- (already lower-cased), which serves `search_text LIKE '%term%'` directly.
-- PostgreSQL maintains it on every write. pg_trgm is a trusted extension
-- (PostgreSQL 13+), so the database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX customers_search_trgm ON customers USING gin (search_text gin_trgm_ops);
