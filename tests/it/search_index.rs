//! The substring-search indexes (SQLite FTS5 trigram, PostgreSQL pg_trgm)
//! give exactly what a plain substring scan gives: the expectation is
//! computed here in Rust over all rows, for non-ASCII text, terms of one
//! and two characters, LIKE wildcards, FTS5 syntax characters, quoted
//! phrases and several terms; and the index follows inserts, CSV imports,
//! updates and deletes.

use custos::db::models::{Customer, NewCustomer};
use custos::db::schema::customers;
use custos::db::{Database, DbConn};
use custos::query::{CustomerFilter, Params, SearchPlan, search::split_terms};
use diesel::prelude::*;

use crate::backend_tests;
use crate::fixtures::*;
use crate::helpers::*;

const NAMES: &[(&str, &str, &str)] = &[
    ("Zoë Zimmermann", "zoe.z@example.org", "+49 30 1234567"),
    ("ZOË ADAMS", "ZOE.ADAMS@EXAMPLE.ORG", "+1 (555) 010-2030"),
    ("Łukasz Nowak", "lukasz@exämple.pl", "+48 22 555 01 02"),
    ("łukasz żółć", "zolc@example.pl", ""),
    ("Seán O'Brien", "sean.obrien@example.ie", "+353 1 555 0000"),
    ("'O'Brien'", "quote@example.ie", "0"),
    ("Ann Smith", "ANN.SMITH@EXAMPLE.ORG", "555-0100"),
    ("Smithson Ann", "smithson@example.com", "555-0101"),
    ("100% Natural", "percent@example.com", "555-0102"),
    ("Under_Score", "under_score@example.com", "555-0103"),
    ("a_b%c", "a_b%c@x.io", "555-0104"),
    ("ΣΊΣΥΦΟΣ Παπαδόπουλος", "sisyphos@example.gr", "+30 21 0000"),
    ("Straße Meyer", "strasse@example.de", "030/12345"),
    ("İlker Yıldız", "ilker@example.tr", "+90 212 000"),
    ("Quote\"Man", "quote.man@example.com", "555-0105"),
    ("Star*Gazer", "star@example.com", "555-0106"),
    ("Mary-Jane AND Co", "mj@example.com", "555-0107"),
    ("near: (x) OR y", "near@example.com", "555-0108"),
    ("Back\\slash", "back@example.com", "555-0109"),
    ("Ωmega ǅemal", "omega@example.com", "(0) 555.0110"),
];

const SEARCHES: &[&str] = &[
    "zoë",
    "ZOË",
    "zo",
    "ë",
    "Łukasz",
    "łuk",
    "ŁU",
    "ż",
    "o'brien",
    "'o\\'brien'",
    "\"o'b\"",
    "O'",
    "%",
    "_",
    "100%",
    "0%",
    "a_b",
    "_b%",
    "%c",
    "\"ann smith\"",
    "smith ann",
    "smith,example",
    "SMITH, EXAMPLE.ORG",
    "sm",
    "s",
    "@",
    "+49",
    "(555)",
    "straße",
    "STRASSE",
    "ß",
    "σίσυφος",
    "ΣΊΣΥΦΟΣ",
    "ς",
    "i̇lker",
    "İlker",
    "ı",
    "\"",
    "quote\"man",
    "*",
    "star*",
    "-",
    "AND",
    "and co",
    "or",
    "NEAR",
    ":",
    "near:",
    "(x)",
    "sm ith",
    "ith son",
    "\\",
    "back\\slash",
    "ǆemal",
    "ǅ",
    "ω",
    "555",
    "55",
    "5",
    "0110",
    ".",
    "example",
    "exämple",
    "no-such-customer",
    "\"\"",
    "'a b'",
    "anna,ann",
    "zoe zoë",
    "a",
    "aa",
    "aaa",
    "ann smith 555",
];

/// Case-insensitive literal substring of name, e-mail or phone.
fn expected(rows: &[Customer], search: &str) -> Vec<i64> {
    let terms = split_terms(search);
    let mut ids: Vec<i64> = rows
        .iter()
        .filter(|c| {
            terms.iter().all(|t| {
                let t = t.to_lowercase();
                [&c.full_name, &c.email, &c.phone]
                    .iter()
                    .any(|f| f.to_lowercase().contains(&t))
            })
        })
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    ids
}

fn new_customer(id: i64, name: &str, email: &str, phone: &str) -> NewCustomer {
    let mut c = customer(id, 1, name, email, "2024-01-01T00:00:00Z");
    c.phone = phone.to_owned();
    c.search_text = NewCustomer::search_text_for(name, email, phone);
    c
}

/// The hand-made rows plus filler from a small pool of name parts, so that
/// trigrams are shared by many rows.
fn rows() -> Vec<NewCustomer> {
    let mut out = Vec::new();
    let mut id = 1;
    for (name, email, phone) in NAMES {
        out.push(new_customer(id, name, email, phone));
        id += 1;
    }
    let first = [
        "Ann", "Anna", "Zoë", "Łukasz", "Sean", "Mary", "Ola", "Björn",
    ];
    let last = [
        "Smith", "Smithers", "Nowak", "O'Brien", "Schmidt", "Ösi", "Yıldız", "Ng",
    ];
    for i in 0..160usize {
        let name = format!("{} {}", first[i % first.len()], last[(i / 3) % last.len()]);
        let email = format!(
            "{}{i}@Example.org",
            first[(i / 5) % first.len()].to_lowercase()
        );
        let phone = format!("+49 30 {:07}", i * 37);
        out.push(new_customer(id, &name, &email, &phone));
        id += 1;
    }
    out
}

fn all(conn: &mut DbConn) -> Vec<Customer> {
    customers::table
        .select(Customer::as_select())
        .load(conn)
        .unwrap()
}

/// The ids of the whole result read with `plan`, sorted.
fn ids_by(conn: &mut DbConn, f: &CustomerFilter, plan: SearchPlan) -> Vec<i64> {
    let mut ids: Vec<i64> = f
        .page_with(conn, plan, None, 0, 10_000)
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// Every search agrees with the scan, by count and by the rows themselves
/// (also with another filter and a descending order, and in export batches).
fn check_all(conn: &mut DbConn) {
    let rows = all(conn);
    for search in SEARCHES {
        let want = expected(&rows, search);
        let query = format!("search={}", enc(search));
        let f = CustomerFilter::from_params(&Params::parse(&query).unwrap()).unwrap();
        assert_eq!(
            f.count(conn).unwrap(),
            want.len() as i64,
            "count of {search:?}"
        );
        let mut got: Vec<i64> = f
            .page(conn, 0, 10_000)
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect();
        got.sort_unstable();
        assert_eq!(got, want, "rows of {search:?}");
        // Starting from the trigram index or walking in order: same rows.
        for plan in [SearchPlan::FromIndex, SearchPlan::Walk] {
            assert_eq!(
                ids_by(conn, &f, plan),
                want,
                "rows of {search:?} by {plan:?}"
            );
        }

        let query = format!("search={}&status=active&ordering=-created_at", enc(search));
        let f = CustomerFilter::from_params(&Params::parse(&query).unwrap()).unwrap();
        let active: Vec<i64> = want
            .iter()
            .copied()
            .filter(|id| rows.iter().any(|c| c.id == *id && c.status == "active"))
            .collect();
        assert_eq!(
            f.count(conn).unwrap(),
            active.len() as i64,
            "active count of {search:?}"
        );
        for plan in [SearchPlan::FromIndex, SearchPlan::Walk] {
            assert_eq!(
                ids_by(conn, &f, plan),
                active,
                "active rows of {search:?} by {plan:?}"
            );
        }
        let mut batches = Vec::new();
        let mut last: Option<Customer> = None;
        loop {
            let batch = f.batch_after(conn, last.as_ref(), 7).unwrap();
            let Some(end) = batch.last().cloned() else {
                break;
            };
            batches.extend(batch.iter().map(|c| c.id));
            last = Some(end);
        }
        batches.sort_unstable();
        assert_eq!(batches, active, "export batches of {search:?}");
    }
    if let DbConn::Sqlite(c) = conn {
        // The external-content FTS index agrees with the table.
        diesel::sql_query(
            "INSERT INTO customers_search (customers_search) VALUES ('integrity-check')",
        )
        .execute(c)
        .unwrap();
    }
}

fn with_conn<T>(db: &Database, f: impl FnOnce(&mut DbConn) -> T) -> T {
    let mut conn = db.get().unwrap();
    f(&mut conn)
}

backend_tests! {
    async fn the_search_index_returns_exactly_what_a_scan_returns(backend) {
        let test_db = TestDb::new(&backend);
        let db = test_db.database();
        tokio::task::spawn_blocking(move || with_conn(&db, |conn| {
            custos::import::insert_operators(conn, &[operator(1, "Op")]).unwrap();
            custos::import::insert_customers(conn, &rows()).unwrap();
            check_all(conn);

            // An import adds rows: found at once.
            let csv = "id,operator_id,full_name,email,phone,city,country,plan,status,created_at\n\
                       9001,1,Zoë Imported,imp@example.org,555 9001,Köln,DE,pro,active,2024-02-01T00:00:00Z\n\
                       9002,1,100% Imported_Smith,imp2@example.org,,Köln,DE,pro,active,2024-02-02T00:00:00Z\n";
            custos::import::import_customers(conn, csv.as_bytes(), &custos::import::Silent).unwrap();
            check_all(conn);

            // Any other write keeps the index in step too.
            let text = NewCustomer::search_text_for("Renamed Person", "renamed@example.org", "1");
            diesel::update(customers::table.find(7))
                .set((
                    customers::full_name.eq("Renamed Person"),
                    customers::email.eq("renamed@example.org"),
                    customers::phone.eq("1"),
                    customers::search_text.eq(text),
                ))
                .execute(conn)
                .unwrap();
            diesel::delete(customers::table.find(1)).execute(conn).unwrap();
            check_all(conn);
            let f = CustomerFilter::from_params(&Params::parse("search=renamed").unwrap()).unwrap();
            assert_eq!(f.count(conn).unwrap(), 1);
            let f = CustomerFilter::from_params(&Params::parse("search=zimmermann").unwrap()).unwrap();
            assert_eq!(f.count(conn).unwrap(), 0);
        }))
        .await
        .unwrap();
    }
}
