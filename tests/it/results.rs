//! What the result pages show matches an expectation computed here, in
//! plain Rust from all rows, for several filter combinations; searches with
//! LIKE wildcards, quotes and non-ASCII text are literal.

use std::cmp::Ordering;

use chrono::NaiveDate;
use custos::db::models::{Customer, Role};

use crate::backend_tests;
use crate::fixtures::*;
use crate::helpers::*;

/// kind, path, row_count, customer_ids, username of an audit entry.
type AuditRow = (String, String, Option<i64>, Option<String>, Option<String>);

/// Case-insensitive literal substring of name, e-mail or phone.
fn matches_term(c: &Customer, term: &str) -> bool {
    let t = term.to_lowercase();
    [&c.full_name, &c.email, &c.phone]
        .iter()
        .any(|f| f.to_lowercase().contains(&t))
}

fn by_id(a: &Customer, b: &Customer) -> Ordering {
    a.id.cmp(&b.id)
}

/// The ids of page `page` (from 1) of `rows` after sorting.
fn page_of(
    mut rows: Vec<&Customer>,
    cmp: impl Fn(&Customer, &Customer) -> Ordering,
    page: usize,
    size: usize,
) -> Vec<i64> {
    rows.sort_by(|a, b| cmp(a, b));
    rows.iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|c| c.id)
        .collect()
}

async fn shown(client: &reqwest::Client, app: &TestApp, path: &str) -> (i64, Vec<i64>) {
    let res = client.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), 200, "{path}");
    let html = res.text().await.unwrap();
    (count_on_page(&html), ids_on_page(&html))
}

backend_tests! {
    async fn customer_results_match_an_independent_computation(backend) {
        let app = spawn_app(&backend).await;
        seed(&app, 400, 6).await;
        let all = all_customers(&app).await;
        let client = app.signed_in("alice", Role::Staff).await;
        let date = |c: &Customer| c.created_at.date();

        // 1. One status, default order and page size.
        let rows: Vec<&Customer> = all.iter().filter(|c| c.status == "active").collect();
        let (count, ids) = shown(&client, &app, "/customers?status=active").await;
        assert_eq!(count, rows.len() as i64);
        assert_eq!(ids, page_of(rows, by_id, 1, 50));

        // 2. Plan and (lower-case) country, newest first, second page of 3.
        let mut per_country = std::collections::BTreeMap::<&str, usize>::new();
        for c in all.iter().filter(|c| c.plan == "pro") {
            *per_country.entry(c.country.as_str()).or_default() += 1;
        }
        let country = per_country.iter().max_by_key(|(_, n)| **n).map(|(c, _)| c.to_string()).unwrap();
        let rows: Vec<&Customer> = all.iter().filter(|c| c.plan == "pro" && c.country == country).collect();
        assert!(rows.len() > 3, "two pages of {country}");
        let path = format!("/customers?plan=pro&country={}&ordering=-created_at&page_size=3&page=2", country.to_lowercase());
        let (count, ids) = shown(&client, &app, &path).await;
        assert_eq!(count, rows.len() as i64);
        assert_eq!(ids, page_of(rows, |a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)), 2, 3));

        // 3. Operator and status, by name then id descending.
        let rows: Vec<&Customer> = all.iter().filter(|c| c.operator_id == 2 && c.status == "suspended").collect();
        let (count, ids) = shown(&client, &app, "/customers?operator=2&status=suspended&ordering=full_name,-id&page_size=100").await;
        assert_eq!(count, rows.len() as i64);
        assert_eq!(ids, page_of(rows, |a, b| a.full_name.cmp(&b.full_name).then(b.id.cmp(&a.id)), 1, 100));

        // 4. A date range, inclusive at both ends.
        let mut dates: Vec<NaiveDate> = all.iter().map(date).collect();
        dates.sort();
        let (from, to) = (dates[dates.len() / 3], dates[dates.len() / 2]);
        let rows: Vec<&Customer> = all.iter().filter(|c| date(c) >= from && date(c) <= to).collect();
        assert!(rows.iter().any(|c| date(c) == from) && rows.iter().any(|c| date(c) == to));
        let path = format!("/customers?created_after={from}&created_before={to}&ordering=created_at&page_size=100");
        let (count, ids) = shown(&client, &app, &path).await;
        assert_eq!(count, rows.len() as i64);
        assert_eq!(ids, page_of(rows, |a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)), 1, 100));

        // 5. Two search terms (both must match), one upper-case; unknown
        //    parameters and an unknown ordering field are ignored.
        let rows: Vec<&Customer> = all.iter().filter(|c| matches_term(c, "SMITH") && matches_term(c, "example.org")).collect();
        assert!(!rows.is_empty(), "the seed has such customers");
        let (count, ids) = shown(&client, &app, "/customers?search=SMITH,+example.org&ordering=nonsense,-full_name&page_size=100&foo=bar").await;
        assert_eq!(count, rows.len() as i64);
        assert_eq!(ids, page_of(rows, |a, b| b.full_name.cmp(&a.full_name).then(a.id.cmp(&b.id)), 1, 100));

        // 6. The last page.
        let rows: Vec<&Customer> = all.iter().filter(|c| c.status == "closed").collect();
        let pages = rows.len().div_ceil(30);
        let (count, ids) = shown(&client, &app, "/customers?status=closed&page_size=30&page=last").await;
        assert_eq!(count, rows.len() as i64);
        assert_eq!(ids, page_of(rows, by_id, pages, 30));

        // 7. Nothing matches: the empty state.
        let html = client.get(app.url("/customers?search=no-such-customer-anywhere")).send().await.unwrap().text().await.unwrap();
        assert_eq!(count_on_page(&html), 0);
        assert!(html.contains("No customers match these filters"));
        assert!(html.contains("clear all filters"));
    }

    async fn an_operator_renamed_in_the_database_shows_its_new_name_on_the_next_page(backend) {
        use custos::db::schema::operators;
        use diesel::prelude::*;
        let app = spawn_app(&backend).await;
        seed(&app, 60, 3).await;
        let client = app.signed_in("alice", Role::Staff).await;
        let old: String = app
            .with_db(|conn| operators::table.find(1i64).select(operators::name).first(conn).unwrap())
            .await;
        let page = |path: &'static str| {
            let client = client.clone();
            let url = app.url(path);
            async move { unescape(&client.get(url).send().await.unwrap().text().await.unwrap()) }
        };
        let before = page("/customers?operator=1").await;
        assert!(before.contains(&old), "{before}");
        // By hand, not by import: the trigger moves the data version.
        app.with_db(|conn| {
            diesel::update(operators::table.find(1i64))
                .set(operators::name.eq("Renamed Operator Ltd"))
                .execute(conn)
                .unwrap();
        })
        .await;
        let after = page("/customers?operator=1").await;
        assert!(after.contains("Renamed Operator Ltd"), "{after}");
        assert!(!after.contains(&old), "the old name is gone: {after}");
    }

    async fn result_pages_link_to_each_other_keeping_the_filters(backend) {
        let app = spawn_app(&backend).await;
        seed(&app, 120, 3).await;
        let client = app.signed_in("alice", Role::Staff).await;
        let html = client.get(app.url("/customers?status=active&search=a&page_size=10&page=2&junk=1")).send().await.unwrap().text().await.unwrap();
        let html = unescape(&html);
        // Page navigation keeps the filters and drops unknown parameters.
        assert!(html.contains("href=\"/customers?search=a&status=active&page_size=10\" rel=\"first\""), "{html}");
        assert!(html.contains("href=\"/customers?search=a&status=active&page_size=10&page=3\" rel=\"next\""));
        // Sort headers toggle, keep the filters and go back to page 1.
        assert!(html.contains("href=\"/customers?search=a&status=active&page_size=10&ordering=full_name\""));
        let sorted = unescape(&client.get(app.url("/customers?status=active&ordering=full_name")).send().await.unwrap().text().await.unwrap());
        assert!(sorted.contains("href=\"/customers?status=active&ordering=-full_name\""));
        assert!(sorted.contains("aria-sort=\"ascending\""));
        // The export link carries the same filters, without paging.
        assert!(html.contains("href=\"/customers/export.csv?search=a&status=active\""));
        // The form shows the current values.
        assert!(html.contains("<option value=\"active\" selected>"));
        assert!(html.contains("name=\"search\" type=\"search\" value=\"a\""));
    }

    async fn searches_with_wildcards_quotes_and_accents_are_literal(backend) {
        let app = spawn_app(&backend).await;
        let names = [
            (1, "100% Real", "pct@example.com"),
            (2, "100 Real", "hundred@example.com"),
            (3, "a_b Co", "under_score@example.com"),
            (4, "axb Co", "axb@example.com"),
            (5, "Seán O'Brien", "sean@example.ie"),
            (6, "Sean OBrien", "obrien@example.ie"),
            (7, "Zoë Ünal", "zoe@example.de"),
            (8, "ZOE UNAL", "zoe2@example.de"),
            (9, "Łukasz Żółw", "lukasz@example.pl"),
            (10, "Back\\Slash", "bs@example.com"),
            (11, "Smith, \"Jr\"", "jr@example.com"),
        ];
        let rows = names.iter().map(|(id, n, e)| customer(*id, 1, n, e, "2024-05-01T12:30:00Z")).collect();
        insert(&app, vec![operator(1, "Acme")], rows).await;
        let all = all_customers(&app).await;
        let client = app.signed_in("alice", Role::Staff).await;
        for term in ["%", "_", "100%", "a_b", "o'brien", "ünal", "ZOË", "żółw", "\\", "\"jr\"", "x%y", "'"] {
            let mut expected: Vec<i64> = if term == "'" {
                // A lone quote is an empty quoted phrase to DRF: no filter.
                all.iter().map(|c| c.id).collect()
            } else {
                let t = term.trim_matches('"');
                all.iter().filter(|c| matches_term(c, t)).map(|c| c.id).collect()
            };
            expected.sort();
            let (count, ids) = shown(&client, &app, &format!("/customers?search={}", enc(term))).await;
            assert_eq!(ids, expected, "search {term:?}");
            assert_eq!(count, expected.len() as i64, "search {term:?}");
        }
        // Names are shown escaped, never as markup.
        let html = client.get(app.url("/customers/5")).send().await.unwrap().text().await.unwrap();
        assert!(html.contains("Seán O&#39;Brien"), "{html}");
    }

    async fn operator_results_and_details_match_the_data(backend) {
        let app = spawn_app(&backend).await;
        seed(&app, 150, 12).await;
        let all = all_customers(&app).await;
        let ops = all_operators(&app).await;
        let client = app.signed_in("alice", Role::Staff).await;
        // List: a search on name or support e-mail, by name descending.
        let term = ops[0].name.split_whitespace().next().unwrap().to_lowercase();
        let mut expected: Vec<_> = ops
            .iter()
            .filter(|o| o.name.to_lowercase().contains(&term) || o.support_email.to_lowercase().contains(&term))
            .collect();
        expected.sort_by(|a, b| b.name.cmp(&a.name).then(a.id.cmp(&b.id)));
        let html = client.get(app.url(&format!("/operators?search={}&ordering=-name", enc(&term)))).send().await.unwrap().text().await.unwrap();
        assert_eq!(count_on_page(&html), expected.len() as i64);
        assert_eq!(operator_ids_on_page(&html), expected.iter().map(|o| o.id).collect::<Vec<_>>());
        // Detail: counts by status, each linking to the matching results.
        let op = &ops[1];
        let html = unescape(&client.get(app.url(&format!("/operators/{}", op.id))).send().await.unwrap().text().await.unwrap());
        for status in ["active", "suspended", "closed"] {
            let n = all.iter().filter(|c| c.operator_id == op.id && c.status == status).count();
            let link = format!("<a href=\"/customers?operator={}&status={status}\">{n}</a>", op.id);
            assert!(html.contains(&link), "missing {link}");
            let (count, _) = shown(&client, &app, &format!("/customers?operator={}&status={status}", op.id)).await;
            assert_eq!(count, n as i64);
        }
        assert!(html.contains(&format!("href=\"/customers?operator={}\"", op.id)));
        // A customer links to its operator.
        let c = all.iter().find(|c| c.operator_id == op.id).unwrap();
        let html = unescape(&client.get(app.url(&format!("/customers/{}", c.id))).send().await.unwrap().text().await.unwrap());
        assert!(html.contains(&format!("<a href=\"/operators/{}\">{}</a>", op.id, op.name)));
        assert!(html.contains(&c.email) && html.contains(&c.phone));
    }

    async fn every_view_is_audited_with_its_rows(backend) {
        use custos::db::schema::audit_log;
        use diesel::prelude::*;
        let app = spawn_app(&backend).await;
        seed(&app, 30, 2).await;
        let client = app.signed_in("alice", Role::Staff).await;
        assert_eq!(client.get(app.url("/customers?page_size=10")).send().await.unwrap().status(), 200);
        assert_eq!(client.get(app.url("/customers/7")).send().await.unwrap().status(), 200);
        assert_eq!(client.get(app.url("/operators")).send().await.unwrap().status(), 200);
        let export = client.get(app.url("/customers/export.csv?status=active")).send().await.unwrap();
        assert_eq!(export.status(), 200);
        let _ = export.text().await.unwrap();
        let active = all_customers(&app).await.iter().filter(|c| c.status == "active").count() as i64;
        let entries: Vec<AuditRow> = app
            .with_db(|conn| {
                audit_log::table
                    .order(audit_log::id.asc())
                    .select((audit_log::kind, audit_log::path, audit_log::row_count, audit_log::customer_ids, audit_log::username))
                    .load(conn)
                    .unwrap()
            })
            .await;
        let find = |path: &str| entries.iter().find(|e| e.1 == path).unwrap_or_else(|| panic!("no audit entry for {path}: {entries:?}"));
        let list = find("/customers?page_size=10");
        assert_eq!((list.0.as_str(), list.2), ("page_view", Some(10)));
        assert_eq!(list.4.as_deref(), Some("alice"));
        let detail = find("/customers/7");
        assert_eq!((detail.0.as_str(), detail.3.as_deref()), ("page_view", Some("7")));
        let ops = find("/operators");
        assert_eq!((ops.0.as_str(), ops.2), ("page_view", Some(2)));
        let exp = find("/customers/export.csv?status=active");
        assert_eq!((exp.0.as_str(), exp.2), ("export", Some(active)));
    }

    async fn no_data_is_shown_when_the_view_cannot_be_audited(backend) {
        use diesel::prelude::*;
        let app = spawn_app(&backend).await;
        seed(&app, 20, 2).await;
        let all = all_customers(&app).await;
        let client = app.signed_in("alice", Role::Staff).await;
        app.with_db(|conn| diesel::sql_query("DROP TABLE audit_log").execute(conn).unwrap()).await;
        for path in ["/customers", "/customers/3", "/customers/export.csv", "/operators", "/operators/1"] {
            let res = client.get(app.url(path)).send().await.unwrap();
            assert_eq!(res.status(), 500, "{path}");
            let body = res.text().await.unwrap();
            assert!(all.iter().all(|c| !body.contains(&c.email) && !body.contains(&c.full_name)), "{path} showed data");
            assert!(body.contains("Request id"), "{path}: the error page names the request id");
        }
    }
}
