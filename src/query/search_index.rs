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

/// The most trigrams one term contributes to the MATCH: enough to narrow
/// to a handful of rows, few enough to keep the index lookups cheap (the
/// LIKE decides anyway).
const MAX_TRIGRAMS_PER_TERM: usize = 12;

/// One term as the FTS5 query "every trigram of it" (`"smi" AND "mit" AND
/// "ith"`). The index is built with `detail=none` (half the size and build
/// time of a positional index), which answers single-token strings but not
/// phrases, so a term is asked for as its trigrams. Each is an FTS5 string:
/// in double quotes, any double quote doubled; inside a string FTS5 gives
/// no other character a meaning, so `%`, `_`, `*`, `-`, `:` and `(` are
/// literal. `None` for terms under 3 characters, which have no trigram.
pub fn fts5_trigrams(term: &str) -> Option<String> {
    let chars: Vec<char> = term.chars().collect();
    let mut seen: Vec<&[char]> = Vec::new();
    for window in chars.windows(3) {
        if !seen.contains(&window) {
            seen.push(window);
        }
    }
    if seen.is_empty() {
        return None;
    }
    // Spread the kept trigrams over the whole term.
    let step = seen.len().div_ceil(MAX_TRIGRAMS_PER_TERM);
    let parts: Vec<String> = seen
        .iter()
        .step_by(step)
        .map(|trigram| {
            let mut out = String::with_capacity(8);
            out.push('"');
            for &c in trigram.iter() {
                if c == '"' {
                    out.push('"');
                }
                out.push(c);
            }
            out.push('"');
            out
        })
        .collect();
    Some(parts.join(" AND "))
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
    use super::{MAX_TRIGRAMS_PER_TERM, fts5_trigrams};

    #[test]
    fn terms_become_their_quoted_trigrams() {
        assert_eq!(
            fts5_trigrams("smith").unwrap(),
            r#""smi" AND "mit" AND "ith""#
        );
        assert_eq!(fts5_trigrams("a\"bc").unwrap(), r#""a""b" AND """bc""#);
        assert_eq!(fts5_trigrams("zoë").unwrap(), r#""zoë""#);
        assert_eq!(fts5_trigrams("aaaa").unwrap(), r#""aaa""#, "repeats once");
        assert_eq!(fts5_trigrams("ab"), None);
        let long = "x".repeat(10) + &"abcdefghijklmnopqrstuvwxyz".repeat(4);
        let parts = fts5_trigrams(&long).unwrap().matches(" AND ").count() + 1;
        assert!(parts <= MAX_TRIGRAMS_PER_TERM, "{parts}");
    }
}
