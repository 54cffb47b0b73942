//! Login protection: timed locks per account and per address, their
//! expiry, identical answers, and the failed-attempts notice.

use crate::backend_tests;
use crate::helpers::*;
use custos::auth::login::GENERIC_FAILURE;
use custos::db::models::{AuditEntry, Role};
use custos::db::schema::{audit_log, login_failures, users};
use diesel::prelude::*;

pub async fn audit_entries(app: &TestApp) -> Vec<AuditEntry> {
    app.with_db(|conn| {
        audit_log::table
            .order(audit_log::id.asc())
            .select(AuditEntry::as_select())
            .load(conn)
            .expect("audit rows")
    })
    .await
}

/// The login answer with what legitimately differs (the CSRF token and
/// the echoed username) blanked out.
async fn normalised(res: reqwest::Response, username: &str) -> (u16, String) {
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    let token = extract_csrf(&body).unwrap_or_default();
    (
        status,
        body.replace(&token, "TOKEN")
            .replace(&format!("value=\"{username}\""), "value=\"USER\""),
    )
}

async fn failures_of(app: &TestApp, name: &str) -> i64 {
    let name = name.to_owned();
    app.with_db(move |conn| {
        login_failures::table
            .filter(login_failures::username.eq(name))
            .count()
            .get_result::<i64>(conn)
            .unwrap()
    })
    .await
}

backend_tests! {
    async fn an_account_is_locked_after_the_threshold_and_unlocks_when_the_window_passes(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_LOGIN_MAX_FAILURES", "3"), ("CUSTOS_LOGIN_WINDOW_SECONDS", "2")]).await;
        app.create_user("alice", Role::Staff).await;
        let client = app.client();
        for _ in 0..3 {
            let res = app.login(&client, "alice", "not-her-password-1").await;
            assert_eq!(res.status(), 200);
            assert!(res.text().await.unwrap().contains(GENERIC_FAILURE));
        }
        // Locked: even the right password is refused, with the same words.
        let res = app.login(&client, "alice", PASSWORD).await;
        assert_eq!(res.status(), 200);
        assert!(res.text().await.unwrap().contains(GENERIC_FAILURE));
        // Another client (say, the real user elsewhere) is locked out too...
        let res = app.login(&app.client(), "alice", PASSWORD).await;
        assert_eq!(res.status(), 200);
        // ...but only for a while.
        tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
        let res = app.login(&client, "alice", PASSWORD).await;
        assert_eq!(res.status(), 303, "the lock expired with the window");
        assert_eq!(failures_of(&app, "alice").await, 0, "a success clears the account's failures");

        let entries = audit_entries(&app).await;
        let locked: Vec<_> = entries.iter().filter(|e| e.kind == "login_locked").collect();
        assert!(locked.iter().any(|e| e.detail.contains("account locked for 2 s after 3 failed attempts")), "{locked:?}");
        assert_eq!(locked.iter().filter(|e| e.detail.starts_with("attempt refused")).count(), 2, "{locked:?}");
        assert!(locked.iter().all(|e| e.username.as_deref() == Some("alice")));
    }

    async fn an_address_failing_across_many_accounts_is_locked_for_a_while(backend) {
        let app = spawn_app_with(&backend, &[
            ("CUSTOS_LOGIN_MAX_FAILURES", "100"),
            ("CUSTOS_LOGIN_MAX_ADDRESS_FAILURES", "4"),
            ("CUSTOS_LOGIN_WINDOW_SECONDS", "2"),
        ]).await;
        app.create_user("alice", Role::Staff).await;
        let client = app.client();
        for name in ["root", "admin", "bob", "carol"] {
            let res = app.login(&client, name, "guess-guess-guess").await;
            assert!(res.text().await.unwrap().contains(GENERIC_FAILURE));
        }
        let res = app.login(&client, "alice", PASSWORD).await;
        assert_eq!(res.status(), 200, "the address is locked");
        assert!(res.text().await.unwrap().contains(GENERIC_FAILURE));
        let entries = audit_entries(&app).await;
        assert!(entries.iter().any(|e| e.kind == "login_locked" && e.detail.contains("client address 127.0.0.1 locked")), "{entries:?}");
        tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
        assert_eq!(app.login(&client, "alice", PASSWORD).await.status(), 303);
    }

    async fn unknown_users_wrong_passwords_and_locked_accounts_get_identical_answers(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_LOGIN_MAX_FAILURES", "2"), ("CUSTOS_LOGIN_WINDOW_SECONDS", "60")]).await;
        app.create_user("alice", Role::Staff).await;
        app.create_user("bob", Role::Staff).await;
        app.with_db(|conn| {
            diesel::update(users::table.filter(users::username.eq("bob")))
                .set(users::is_active.eq(false))
                .execute(conn)
                .unwrap()
        }).await;
        let client = app.client();
        let wrong = normalised(app.login(&client, "alice", "wrong-password-99").await, "alice").await;
        let unknown = normalised(app.login(&client, "nobody", "wrong-password-99").await, "nobody").await;
        let inactive = normalised(app.login(&client, "bob", PASSWORD).await, "bob").await;
        // The second failure locks alice; the third attempt is refused unchecked.
        let _ = app.login(&client, "alice", "wrong-password-98").await;
        let locked = normalised(app.login(&client, "alice", PASSWORD).await, "alice").await;
        assert_eq!(wrong.0, 200);
        assert!(wrong.1.contains(GENERIC_FAILURE));
        assert_eq!(wrong, unknown, "unknown user vs wrong password");
        assert_eq!(wrong, inactive, "deactivated account vs wrong password");
        assert_eq!(wrong, locked, "locked account vs wrong password");
        let kinds: Vec<String> = audit_entries(&app).await.into_iter().map(|e| e.kind).collect();
        assert!(kinds.contains(&"login_locked".to_owned()), "{kinds:?}");
    }

    async fn failed_attempts_are_shown_after_the_next_successful_login(backend) {
        let app = spawn_app(&backend).await;
        app.create_user("alice", Role::Staff).await;
        let attacker = app.client();
        for _ in 0..2 {
            app.login(&attacker, "alice", "wrong-password-99").await;
        }
        let client = app.client();
        assert_eq!(app.login(&client, "alice", PASSWORD).await.status(), 303);
        let home = client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
        assert!(home.contains("There were 2 failed sign-in attempts on your account since you last signed in."), "{home}");
        // Shown once, and the count starts again.
        let home = client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
        assert!(!home.contains("failed sign-in attempt"));
        let count = app.with_db(|conn| users::table.filter(users::username.eq("alice")).select(users::failed_since_last_login).first::<i32>(conn).unwrap()).await;
        assert_eq!(count, 0);
        let success = audit_entries(&app).await.into_iter().find(|e| e.kind == "login_success").unwrap();
        assert!(success.detail.contains("2 failed attempts since the previous sign-in"), "{success:?}");
    }

    async fn a_burst_of_parallel_guesses_cannot_get_past_the_threshold(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_LOGIN_MAX_FAILURES", "3"), ("CUSTOS_LOGIN_WINDOW_SECONDS", "600")]).await;
        app.create_user("alice", Role::Staff).await;
        let client = app.client();
        let token = app.csrf_from(&client, "/login").await;
        let mut tasks = Vec::new();
        for i in 0..10 {
            let client = client.clone();
            let url = app.url("/login");
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                let password = format!("parallel-guess-{i:02}");
                let res = client.post(url).form(&[("csrf_token", token.as_str()), ("username", "alice"), ("password", password.as_str()), ("next", "")]).send().await.unwrap();
                res.text().await.unwrap().contains(GENERIC_FAILURE)
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(failures_of(&app, "alice").await, 3, "only the first 3 guesses were checked");
        let entries = audit_entries(&app).await;
        assert_eq!(entries.iter().filter(|e| e.kind == "login_failure").count(), 3);
        assert_eq!(entries.iter().filter(|e| e.kind == "login_locked" && e.detail.starts_with("attempt refused")).count(), 7);
        let count = app.with_db(|conn| users::table.filter(users::username.eq("alice")).select(users::failed_since_last_login).first::<i32>(conn).unwrap()).await;
        assert_eq!(count, 10, "every refused attempt is reported to alice");
    }
}
