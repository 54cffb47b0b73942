//! The CSV export: the full filtered, ordered result in the import format,
//! re-importable into a fresh database, at most two at a time per user.

use custos::db::models::{Customer, Role};
use custos::import::validate::format_timestamp;
use custos::import::{Silent, import_customers, import_operators};

use crate::backend_tests;
use crate::fixtures::*;
use crate::helpers::*;

const HEADER: &str = "id,operator_id,full_name,email,phone,city,country,plan,status,created_at";

fn import_fields(c: &Customer) -> Vec<String> {
    vec![
        c.id.to_string(),
        c.operator_id.to_string(),
        c.full_name.clone(),
        c.email.clone(),
        c.phone.clone(),
        c.city.clone(),
        c.country.clone(),
        c.plan.clone(),
        c.status.clone(),
        format_timestamp(&c.created_at),
    ]
}

async fn export(client: &reqwest::Client, app: &TestApp, query: &str) -> String {
    let res = client
        .get(app.url(&format!("/customers/export.csv{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{query}");
    let h = res.headers();
    assert_eq!(h.get("content-type").unwrap(), "text/csv; charset=utf-8");
    let disposition = h
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let name = disposition
        .strip_prefix("attachment; filename=\"customers-")
        .and_then(|r| r.strip_suffix(".csv\""))
        .unwrap_or_else(|| panic!("unexpected {disposition}"));
    assert!(
        name.len() == 15
            && name.as_bytes()[8] == b'-'
            && name.chars().filter(char::is_ascii_digit).count() == 14,
        "{disposition}"
    );
    res.text().await.unwrap()
}

fn parse(csv_text: &str) -> Vec<Vec<String>> {
    assert!(
        csv_text.starts_with(&format!("{HEADER}\n")),
        "header: {:?}",
        &csv_text[..csv_text.len().min(120)]
    );
    csv::Reader::from_reader(csv_text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

backend_tests! {
    async fn the_export_holds_every_matching_row_in_order_across_batches(backend) {
        let app = spawn_app(&backend).await;
        seed(&app, 2600, 5).await;
        let all = all_customers(&app).await;
        let client = app.signed_in("alice", Role::Staff).await;

        // By name: many equal names, so ties must be broken by id across
        // the batch boundaries.
        // An empty filter value means "any".
        let text = export(&client, &app, "?ordering=full_name&status=").await;
        let rows = parse(&text);
        let mut expected: Vec<&Customer> = all.iter().collect();
        expected.sort_by(|a, b| a.full_name.cmp(&b.full_name).then(a.id.cmp(&b.id)));
        assert!(expected.len() > 2000, "more rows than two batches");
        assert_eq!(rows.len(), expected.len());
        assert_eq!(rows, expected.iter().map(|c| import_fields(c)).collect::<Vec<_>>());

        // Newest first, filtered, ignoring page and page_size.
        let text = export(&client, &app, "?status=active&ordering=-created_at&page=3&page_size=10").await;
        let mut expected: Vec<&Customer> = all.iter().filter(|c| c.status == "active").collect();
        expected.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        assert_eq!(parse(&text), expected.iter().map(|c| import_fields(c)).collect::<Vec<_>>());

        // Descending ids, two orderings.
        let text = export(&client, &app, "?plan=basic&ordering=-id,full_name").await;
        let mut expected: Vec<&Customer> = all.iter().filter(|c| c.plan == "basic").collect();
        expected.sort_by_key(|c| std::cmp::Reverse(c.id));
        assert_eq!(parse(&text), expected.iter().map(|c| import_fields(c)).collect::<Vec<_>>());

        // Nothing matches: just the header.
        let text = export(&client, &app, "?search=no-such-customer").await;
        assert_eq!(text, format!("{HEADER}\n"));
    }

    async fn an_export_can_be_imported_into_a_fresh_database(backend) {
        let app = spawn_app(&backend).await;
        let people = [
            (1, "Smith, \"Jr\"", "jr@example.com"),
            (2, "Seán O'Brien", "sean@example.ie"),
            (3, "Zoë Ünal", "zoe@example.de"),
            (4, "100% a_b", "pct@example.com"),
            (5, "Line\u{2028}Separator", "ls@example.com"),
        ];
        let mut rows: Vec<_> = people.iter().map(|(id, n, e)| customer(*id, 1 + id % 2, n, e, "2024-02-29T23:59:59Z")).collect();
        rows[0].city = "Köln, \"Altstadt\"".into();
        insert(&app, vec![operator(1, "Acme"), operator(2, "Beta, Inc.")], rows).await;
        let client = app.signed_in("alice", Role::Staff).await;
        let text = export(&client, &app, "?ordering=-id").await;
        assert!(text.contains("\"Smith, \"\"Jr\"\"\""), "quoted: {text}");

        let fresh = TestDb::new(&backend);
        let database = fresh.database();
        let ops = all_operators(&app).await;
        let mut ops_csv = String::from("id,name,country,support_email,created_at\n");
        {
            let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
            for o in &ops {
                w.write_record([o.id.to_string(), o.name.clone(), o.country.clone(), o.support_email.clone(), format_timestamp(&o.created_at)]).unwrap();
            }
            ops_csv.push_str(&String::from_utf8(w.into_inner().unwrap()).unwrap());
        }
        let original = all_customers(&app).await;
        let imported = tokio::task::spawn_blocking(move || {
            let mut conn = database.get().unwrap();
            import_operators(&mut conn, ops_csv.as_bytes(), &Silent).unwrap();
            let n = import_customers(&mut conn, text.as_bytes(), &Silent).unwrap();
            use diesel::prelude::*;
            let back: Vec<Customer> = custos::db::schema::customers::table
                .order(custos::db::schema::customers::id.asc())
                .select(Customer::as_select())
                .load(&mut conn)
                .unwrap();
            (n.rows, back)
        })
        .await
        .unwrap();
        assert_eq!(imported.0, original.len() as u64);
        let mut original = original;
        original.sort_by_key(|c| c.id);
        assert_eq!(imported.1, original);
    }

    async fn a_third_concurrent_export_is_refused(backend) {
        let app = spawn_app(&backend).await;
        seed(&app, 20, 2).await;
        let user_id = app.create_user("alice", Role::Staff).await;
        let client = app.client();
        assert_eq!(app.login(&client, "alice", PASSWORD).await.status(), 303);
        // The server runs in this process: hold two of its export slots for alice.
        let first = app.database.exports().try_acquire(user_id).unwrap();
        let second = app.database.exports().try_acquire(user_id).unwrap();
        let res = client.get(app.url("/customers/export.csv")).send().await.unwrap();
        assert_eq!(res.status(), 429);
        assert!(res.headers().get("retry-after").is_some());
        let html = res.text().await.unwrap();
        assert!(html.contains("exports running") && html.contains("Signed in as <strong>alice</strong>"));
        drop(first);
        let text = export(&client, &app, "").await;
        assert_eq!(parse(&text).len(), 20);
        drop(second);
        // The finished export gave its slot back.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(app.database.exports().running(user_id), 0);
    }

    async fn an_export_gives_its_slot_back_when_the_client_stops_reading(backend) {
        let app = spawn_app(&backend).await;
        seed(&app, 3000, 3).await;
        let user_id = app.create_user("alice", Role::Staff).await;
        let client = app.client();
        assert_eq!(app.login(&client, "alice", PASSWORD).await.status(), 303);
        let mut res = client.get(app.url("/customers/export.csv")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let _first_chunk = res.chunk().await.unwrap();
        drop(res);
        drop(client);
        let mut freed = false;
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if app.database.exports().running(user_id) == 0 {
                freed = true;
                break;
            }
        }
        assert!(freed, "the slot of an abandoned export was not freed");
    }
}
