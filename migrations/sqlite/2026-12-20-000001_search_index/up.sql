-- Substring-search index: FTS5 with the trigram tokenizer over
-- customers.search_text (external content, so the text is stored once).
-- It only narrows: queries keep the exact LIKE predicate on search_text, so
-- results are identical to a plain scan. Terms under 3 characters cannot use
-- it and are matched by LIKE alone.
CREATE VIRTUAL TABLE customers_search USING fts5(
    search_text,
    content = 'customers',
    content_rowid = 'id',
    tokenize = 'trigram',
    -- No positions: half the size and build time. Queries ask for each
    -- trigram of a term rather than for phrases (see query/search_index.rs).
    detail = 'none'
);

-- Kept in step with every write to customers (imports, seed, anything else).
CREATE TRIGGER customers_search_insert AFTER INSERT ON customers
BEGIN
    INSERT INTO customers_search (rowid, search_text) VALUES (new.id, new.search_text);
END;

CREATE TRIGGER customers_search_delete AFTER DELETE ON customers
BEGIN
    INSERT INTO customers_search (customers_search, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
END;

CREATE TRIGGER customers_search_update AFTER UPDATE ON customers
BEGIN
    INSERT INTO customers_search (customers_search, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
    INSERT INTO customers_search (rowid, search_text) VALUES (new.id, new.search_text);
END;

-- Index the rows that exist already.
INSERT INTO customers_search (customers_search) VALUES ('rebuild');
