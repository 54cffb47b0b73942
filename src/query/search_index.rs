//! The substring-search index on SQLite: an FTS5 table with the trigram
//! tokenizer (`customers_search`, external content over
//! `customers.search_text`, kept in step by triggers; see the migration).
//!
//! The index only narrows. A row holding a term as a substring holds every
//! trigram of it, folded the same way on both sides, so the MATCH never
//! drops a true match; the exact `LIKE` predicate stays in the query and
//! decides. Terms under 3 characters have no trigram and are left to LIKE.
//! The FTS5 query text is passed as a bound parameter, never as SQL.

use diesel::dsl::sql;
use diesel::expression::BoxableExpression;
use diesel::sql_types::{Bool, Text};

use super::Backend;
use crate::db::schema::customers;

/// One term as an FTS5 string (a phrase): in double quotes, with any
/// double quote doubled. Inside a string FTS5 gives no other character a
/// meaning, so `%`, `_`, `*`, `-`, `:` and `(` are all literal.
pub fn fts5_phrase(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    out.push('"');
    for c in term.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `customers.id IN (rowids of the index matching fts_query)`.
pub fn sqlite_match(
    fts_query: String,
) -> Box<dyn BoxableExpression<customers::table, Backend, SqlType = Bool>> {
    Box::new(
        sql::<Bool>(
            "customers.id IN (SELECT rowid FROM customers_search WHERE customers_search MATCH ",
        )
        .bind::<Text, _>(fts_query)
        .sql(")"),
    )
}

#[cfg(test)]
mod tests {
    use super::fts5_phrase;

    #[test]
    fn phrases_quote_and_double_quotes() {
        assert_eq!(fts5_phrase("smith"), "\"smith\"");
        assert_eq!(fts5_phrase("a\"b"), "\"a\"\"b\"");
        assert_eq!(fts5_phrase("o'brien"), "\"o'brien\"");
    }
}
