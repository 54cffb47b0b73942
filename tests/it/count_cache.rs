//! Cached result counts are exact: right on the very next request after
//! an import, after any other write to customers, and on a second instance
//! sharing the PostgreSQL database.

use custos::db::models::NewCustomer;
use custos::db::schema::customers;
use diesel::prelude::*;

use crate::api_support::{api_get, user_with_token};
use crate::backend_tests;
use crate::fixtures::*;
use crate::helpers::*;

async fn count(app: &TestApp, token: &str, query: &str) -> i64 {
    let answer = api_get(app, token, &format!("/api/v1/customers/?{query}")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["count"].as_i64().unwrap()
}

fn rows(ids: std::ops::Range<i64>) -> Vec<NewCustomer> {
    ids.map(|id| {
        customer(
            id,
            1,
            &format!("Ann Smith {id}"),
            &format!("a{id}@example.org"),
            "2024-01-01T00:00:00Z",
        )
    })
    .collect()
}

backend_tests! {
    async fn cached_counts_follow_every_change(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_API_USER_RATE", "1000/minute")]).await;
        let (_, token) = user_with_token(&app, "counter").await;
        insert(&app, vec![operator(1, "Op")], rows(1..31)).await;
        for _ in 0..2 {
            assert_eq!(count(&app, &token, "").await, 30);
            assert_eq!(count(&app, &token, "search=smith&status=active").await, 10);
        }

        // An import: right on the next request.
        let csv = "id,operator_id,full_name,email,phone,city,country,plan,status,created_at\n\
                   101,1,Zoë Smith,z@example.org,,Köln,DE,pro,active,2024-02-01T00:00:00Z\n";
        let app_db = app.database.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = app_db.get().unwrap();
            custos::import::import_customers(&mut conn, csv.as_bytes(), &custos::import::Silent).unwrap();
        }).await.unwrap();
        assert_eq!(count(&app, &token, "").await, 31);
        assert_eq!(count(&app, &token, "search=smith&status=active").await, 11);

        // Writes that are not imports (the triggers move the version).
        insert(&app, vec![], rows(200..205)).await;
        assert_eq!(count(&app, &token, "").await, 36);
        app.with_db(|conn| {
            diesel::update(customers::table.filter(customers::id.eq(101)))
                .set(customers::status.eq("closed"))
                .execute(conn)
                .unwrap();
        }).await;
        // 11, plus 201 and 204 (active), less 101.
        assert_eq!(count(&app, &token, "search=smith&status=active").await, 12);
        app.with_db(|conn| {
            diesel::delete(customers::table.filter(customers::id.ge(200))).execute(conn).unwrap();
        }).await;
        assert_eq!(count(&app, &token, "").await, 31);

        // A second instance on the same database sees the first's changes.
        if matches!(backend, Backend::Postgres(_)) {
            let second = spawn_app_on(app.db.shared(), &[("CUSTOS_API_USER_RATE", "1000/minute")]).await;
            assert_eq!(count(&second, &token, "").await, 31);
            insert(&app, vec![], rows(300..302)).await;
            assert_eq!(count(&second, &token, "").await, 33);
            assert_eq!(count(&app, &token, "").await, 33);
        }
    }
}
