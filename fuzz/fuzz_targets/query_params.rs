//! Fuzzes the query string of list pages and the API: parsing
//! (`custos::query::Params::parse`), the customer and operator filters
//! (search terms, status, plan, country, operator, dates, ordering),
//! paging, and running the resulting queries on an in-memory SQLite
//! database through the query builder.
//!
//! Invariant: never panics; a refused query names at least one field;
//! every `%` of an accepted query starts a two-hex-digit escape; page
//! sizes stay within 1..=100 and resolved pages within the result; and
//! whatever the input, the queries run
//! without a database error (input is only ever a bound parameter, so it
//! can never change the SQL).
#![no_main]

use std::cell::RefCell;

use custos::db::DbConn;
use custos::query::search::split_terms;
use custos::query::{CustomerFilter, OperatorFilter, PageRequest, Params};
use diesel::Connection;
use diesel::sqlite::SqliteConnection;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static DB: RefCell<DbConn> = RefCell::new({
        let conn = SqliteConnection::establish(":memory:").expect("in-memory SQLite");
        let mut conn = DbConn::Sqlite(conn);
        custos::db::run_migrations(&mut conn).expect("migrations");
        conn
    });
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(params) = Params::parse(raw) else {
        return;
    };
    let page = PageRequest::from_params(&params);
    assert!((1..=100).contains(&page.page_size), "{raw:?}: {page:?}");
    for count in [0, 1, 99, 100, 101, 12_345] {
        if let Some(resolved) = page.resolve(count) {
            assert!(resolved.number >= 1 && resolved.number <= resolved.num_pages.max(1));
            assert!(resolved.offset() >= 0 && resolved.offset() <= count.max(0));
        }
    }
    if let Some(search) = params.get("search") {
        // An empty term (from a lone quote) is DRF's behaviour too; it
        // matches everything. Only the split must not panic.
        let _ = split_terms(search);
    }
    // Strict decoding: a `%` is followed by two hex digits.
    let bytes = raw.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let ok = bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
            assert!(ok, "{raw:?} was accepted with a bad escape");
        }
    }
    DB.with(|db| {
        let conn = &mut *db.borrow_mut();
        match CustomerFilter::from_params(&params) {
            Ok(filter) => {
                filter.count(conn).expect("customer count query failed");
                filter
                    .page(conn, 0, page.page_size)
                    .expect("customer page query failed");
            }
            Err(errors) => assert!(!errors.is_empty(), "{raw:?}: refused without a field"),
        }
        match OperatorFilter::from_params(&params) {
            Ok(filter) => {
                filter.count(conn).expect("operator count query failed");
                filter
                    .page(conn, 0, page.page_size)
                    .expect("operator page query failed");
            }
            Err(errors) => assert!(!errors.is_empty(), "{raw:?}: refused without a field"),
        }
    });
});
