//! Several `custos serve` instances on one database behave as one system:
//! sessions, logouts, login-failure counts and first starts. (The shared
//! API quota and deactivation across instances are proven in `quota` and
//! `admin_users`.) Run on both backends; PostgreSQL is the one deployments
//! scale out on.

use crate::backend_tests;
use crate::helpers::*;
use custos::auth::login::GENERIC_FAILURE;
use custos::db::models::Role;

/// The session cookie as a `Cookie` header value, taken from a login answer.
fn session_cookie(res: &reqwest::Response) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.contains("custos_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

/// A client without a cookie jar: each request carries exactly the cookie
/// given, so a request to the other instance cannot borrow state.
fn bare() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

backend_tests! {
    async fn a_session_made_on_one_instance_works_on_another(backend) {
        let first = spawn_app(&backend).await;
        let second = spawn_app_on(first.db.shared(), &[]).await;
        first.create_user("alice", Role::Staff).await;
        let res = first.login(&first.client(), "alice", PASSWORD).await;
        assert_eq!(res.status(), 303);
        let cookie = session_cookie(&res);

        let res = bare().get(second.url("/")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(res.status(), 200, "the other instance knows the session");
        assert!(res.text().await.unwrap().contains("alice"));
    }

    async fn logout_on_one_instance_ends_the_session_on_every_instance(backend) {
        let first = spawn_app(&backend).await;
        let second = spawn_app_on(first.db.shared(), &[]).await;
        first.create_user("alice", Role::Staff).await;
        let res = first.login(&first.client(), "alice", PASSWORD).await;
        let cookie = session_cookie(&res);
        assert_eq!(bare().get(second.url("/")).header("cookie", &cookie).send().await.unwrap().status(), 200);

        // Log out on the second instance...
        let page = bare().get(second.url("/")).header("cookie", &cookie).send().await.unwrap();
        let csrf = extract_csrf(&page.text().await.unwrap()).unwrap();
        let res = bare()
            .post(second.url("/logout"))
            .header("cookie", &cookie)
            .form(&[("csrf_token", csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        // ...and the first instance refuses the same cookie at once.
        for app in [&first, &second] {
            let res = bare().get(app.url("/customers")).header("cookie", &cookie).send().await.unwrap();
            assert_eq!(res.status(), 303, "{}", app.address);
            assert!(location(&res).starts_with("/login"));
        }
    }

    async fn login_failures_are_counted_across_instances(backend) {
        let settings = [("CUSTOS_LOGIN_MAX_FAILURES", "4"), ("CUSTOS_LOGIN_WINDOW_SECONDS", "600")];
        let first = spawn_app_with(&backend, &settings).await;
        let second = spawn_app_on(first.db.shared(), &settings).await;
        first.create_user("alice", Role::Staff).await;
        // Two wrong guesses on each instance: four in all, the threshold.
        for app in [&first, &second, &first, &second] {
            let res = app.login(&app.client(), "alice", "wrong-password-99").await;
            assert_eq!(res.status(), 200);
        }
        // Now the account is locked everywhere, even for the right password.
        for app in [&first, &second] {
            let res = app.login(&app.client(), "alice", PASSWORD).await;
            assert_eq!(res.status(), 200, "{} let a locked account in", app.address);
            assert!(res.text().await.unwrap().contains(GENERIC_FAILURE));
        }
    }

    async fn instances_starting_together_on_a_fresh_database_migrate_once(backend) {
        let db = TestDb::new(&backend);
        let env = db.env();
        // Four processes race to migrate the same empty database.
        let runs: Vec<_> = (0..4)
            .map(|_| {
                let env = env.clone();
                std::thread::spawn(move || run_custos(&env, &["migrate"], None))
            })
            .collect();
        for run in runs {
            let out = run.join().unwrap();
            assert!(out.status.success(), "a concurrent migrate failed: {}", stderr(&out));
        }
        // Every migration is recorded exactly once, and the schema works.
        let database = db.database();
        let (applied, distinct) = tokio::task::spawn_blocking(move || {
            use diesel::prelude::*;
            let mut conn = database.get().unwrap();
            diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
                .load::<MigrationRow>(&mut *conn)
                .map(|rows| {
                    let all = rows.len();
                    let mut versions: Vec<_> = rows.into_iter().map(|r| r.version).collect();
                    versions.sort();
                    versions.dedup();
                    (all, versions.len())
                })
                .unwrap()
        })
        .await
        .unwrap();
        assert!(applied >= 1);
        assert_eq!(applied, distinct, "no migration ran twice");
        // Two servers then start together on it and both serve.
        let (a, b) = tokio::join!(spawn_app_on(db.shared(), &[]), spawn_app_on(db.shared(), &[]));
        for app in [&a, &b] {
            assert_eq!(bare().get(app.url("/healthz")).send().await.unwrap().status(), 200);
        }
    }
}

#[derive(diesel::QueryableByName)]
struct MigrationRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}
