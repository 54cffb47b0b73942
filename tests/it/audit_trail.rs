//! The audit trail: what each kind of event leaves behind (and that no
//! secret does), session expiry, retention, and `/admin/audit`.

use std::time::Duration;

use crate::admin_users::{page, post, post_and_follow, token_for, user};
use crate::backend_tests;
use crate::helpers::*;
use crate::login_guard::audit_entries;
use custos::audit;
use custos::db::models::{AuditEntry, NewAuditEntry, Role};

fn text_of(e: &AuditEntry) -> String {
    format!(
        "{} {:?} {} {} {} {} {:?} {}",
        e.at, e.username, e.kind, e.client_addr, e.path, e.detail, e.customer_ids, e.request_id
    )
}

fn at(y: i32, m: u32, d: u32) -> chrono::NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .expect("date")
}

fn entry(
    when: chrono::NaiveDateTime,
    user: &str,
    kind: &str,
    path: &str,
    detail: &str,
    customers: Option<&str>,
) -> NewAuditEntry {
    NewAuditEntry {
        at: when,
        user_id: None,
        username: Some(user.to_owned()),
        kind: kind.to_owned(),
        client_addr: "10.0.0.9".to_owned(),
        path: path.to_owned(),
        detail: detail.to_owned(),
        row_count: Some(1),
        customer_ids: customers.map(str::to_owned),
        request_id: "test".to_owned(),
    }
}

async fn insert_all(app: &TestApp, entries: Vec<NewAuditEntry>) {
    app.with_db(move |conn| {
        for e in &entries {
            audit::insert(conn, e).expect("insert audit entry");
        }
    })
    .await;
}

/// Waits (up to 10 s) until `check` holds on the audit trail.
async fn eventually(app: &TestApp, check: impl Fn(&[AuditEntry]) -> bool) -> Vec<AuditEntry> {
    for _ in 0..100 {
        let entries = audit_entries(app).await;
        if check(&entries) {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    audit_entries(app).await
}

async fn csv_ids(app: &TestApp, client: &reqwest::Client, query: &str) -> Vec<String> {
    let res = page(app, client, &format!("/admin/audit/export.csv?{query}")).await;
    assert_eq!(res.status(), 200, "{query}");
    let body = res.text().await.unwrap();
    let mut lines = body.lines();
    assert_eq!(
        lines.next(),
        Some(
            "id,at,username,user_id,kind,client_addr,path,detail,row_count,customer_ids,request_id"
        )
    );
    lines
        .map(|l| l.split(',').next().unwrap_or_default().to_owned())
        .collect()
}

backend_tests! {
    async fn every_kind_of_event_is_recorded_with_who_did_what_to_whom_and_no_secret(backend) {
        let app = spawn_app(&backend).await;
        let setup_token = app.setup_token.clone().expect("setup token");
        let root = app.client();
        let csrf = app.csrf_from(&root, &format!("/setup?token={setup_token}")).await;
        let res = root.post(app.url("/setup")).form(&[("csrf_token", csrf.as_str()), ("token", setup_token.as_str()), ("username", "root"), ("password", PASSWORD), ("password2", PASSWORD)]).send().await.unwrap();
        assert_eq!(res.status(), 303);

        let bob_password = "kettle-secret-passphrase-1";
        let text = post_and_follow(&app, &root, "/admin/users", &[("username", "bob"), ("password", bob_password), ("password2", bob_password), ("role", "staff")]).await;
        assert!(text.contains("Created the staff account"));
        let bob_id = user(&app, "bob").await.id;

        let guesser = app.client();
        app.login(&guesser, "bob", "bobs-wrong-guess-123").await;
        app.login(&guesser, "ghost", "ghost-password-123").await;
        let bob = app.client();
        assert_eq!(app.login(&bob, "bob", bob_password).await.status(), 303);
        let (key, token_id) = token_for(&app, bob_id).await;

        let temporary = "temporary-pass-4711";
        post_and_follow(&app, &root, &format!("/admin/users/{bob_id}/end-sessions"), &[]).await;
        post_and_follow(&app, &root, &format!("/admin/users/{bob_id}/tokens/{token_id}/revoke"), &[]).await;
        post_and_follow(&app, &root, &format!("/admin/users/{bob_id}/password"), &[("password", temporary), ("password2", temporary)]).await;
        post_and_follow(&app, &root, &format!("/admin/users/{bob_id}/role"), &[("role", "admin")]).await;
        post_and_follow(&app, &root, &format!("/admin/users/{bob_id}/deactivate"), &[]).await;
        post_and_follow(&app, &root, &format!("/admin/users/{bob_id}/activate"), &[]).await;
        let res = post(&app, &root, "/logout", &[]).await;
        assert_eq!(res.status(), 303);

        let entries = audit_entries(&app).await;
        let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
        for kind in ["setup", "admin", "token_revoked", "login_failure", "login_success", "logout"] {
            assert!(kinds.contains(&kind), "no {kind} entry in {kinds:?}");
        }
        let setup = entries.iter().find(|e| e.kind == "setup").unwrap();
        assert_eq!(setup.username.as_deref(), Some("root"));
        let failures: Vec<_> = entries.iter().filter(|e| e.kind == "login_failure").collect();
        assert_eq!(failures.len(), 2);
        assert_eq!(failures[0].username.as_deref(), Some("bob"));
        assert_eq!(failures[0].detail, "wrong password");
        assert_eq!(failures[1].username, None, "an unknown name is not stored (it may be a mistyped password)");
        assert_eq!(failures[1].detail, "unknown username");
        assert_eq!(failures[1].client_addr, "127.0.0.1");
        let admin_actions: Vec<&AuditEntry> = entries.iter().filter(|e| e.kind == "admin" || e.kind == "token_revoked").collect();
        assert_eq!(admin_actions.len(), 7, "{admin_actions:?}");
        for e in &admin_actions {
            assert_eq!(e.username.as_deref(), Some("root"), "who: {e:?}");
            assert!(e.detail.contains("\"bob\""), "whom: {e:?}");
            assert!(e.path.starts_with("/admin/users"), "{e:?}");
        }
        for wanted in ["Created the staff account", "Revoked the API token", "Reset the password", "is now an administrator", "Ended 1 session", "Deactivated", "Reactivated"] {
            assert!(admin_actions.iter().any(|e| e.detail.contains(wanted)), "{wanted}");
        }
        let logout = entries.iter().find(|e| e.kind == "logout").unwrap();
        assert_eq!(logout.username.as_deref(), Some("root"));

        for e in &entries {
            let all = text_of(e);
            for secret in [PASSWORD, bob_password, "bobs-wrong-guess-123", "ghost-password-123", temporary, key.as_str(), setup_token.as_str()] {
                assert!(!all.contains(secret), "a secret in the audit log: {all}");
            }
            assert!(!e.request_id.is_empty());
        }
    }

    async fn an_absolute_session_limit_is_recorded_when_it_ends_a_session(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_SESSION_ABSOLUTE_SECONDS", "1")]).await;
        let alice = app.signed_in("alice", Role::Staff).await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let res = page(&app, &alice, "/").await;
        assert_eq!(res.status(), 303);
        let entries = audit_entries(&app).await;
        let expired: Vec<_> = entries.iter().filter(|e| e.kind == "session_expired").collect();
        assert_eq!(expired.len(), 1, "{entries:?}");
        assert_eq!(expired[0].username.as_deref(), Some("alice"));
        assert!(expired[0].detail.starts_with("absolute limit"), "{:?}", expired[0]);
    }

    async fn an_idle_timeout_is_recorded_once_by_the_request_or_by_housekeeping(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_SESSION_IDLE_SECONDS", "1")]).await;
        let alice = app.signed_in("alice", Role::Staff).await;
        let _bob = app.signed_in("bob", Role::Staff).await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        // Alice comes back with her stale cookie: the request notices.
        assert_eq!(page(&app, &alice, "/").await.status(), 303);
        assert_eq!(page(&app, &alice, "/").await.status(), 303);
        let entries = audit_entries(&app).await;
        let alice_expired: Vec<_> = entries.iter().filter(|e| e.kind == "session_expired" && e.username.as_deref() == Some("alice")).collect();
        assert_eq!(alice_expired.len(), 1, "recorded once: {entries:?}");
        assert!(alice_expired[0].detail.starts_with("idle timeout"));
        assert_eq!(alice_expired[0].path, "/");
        // Bob never comes back: housekeeping (here: of a second instance,
        // which runs it as it starts) records his expiry as it prunes.
        let _second = spawn_app_on(app.db.shared(), &[("CUSTOS_SESSION_IDLE_SECONDS", "1")]).await;
        let entries = eventually(&app, |es| es.iter().any(|e| e.kind == "session_expired" && e.username.as_deref() == Some("bob"))).await;
        let bob_expired: Vec<_> = entries.iter().filter(|e| e.kind == "session_expired" && e.username.as_deref() == Some("bob")).collect();
        assert_eq!(bob_expired.len(), 1, "{entries:?}");
        assert_eq!(bob_expired[0].path, "housekeeping");
        assert_eq!(entries.iter().filter(|e| e.kind == "session_expired" && e.username.as_deref() == Some("alice")).count(), 1);
    }

    async fn entries_older_than_the_retention_are_pruned_by_the_server(backend) {
        let db = TestDb::new(&backend);
        let database = db.database();
        let now = chrono::Utc::now().naive_utc();
        {
            let mut conn = database.get().unwrap();
            for days in [400, 31, 29, 0] {
                let e = entry(now - chrono::Duration::days(days), "alice", "page_view", &format!("/age/{days}"), "", None);
                audit::insert(&mut conn, &e).unwrap();
            }
        }
        let app = spawn_app_on(db, &[("CUSTOS_AUDIT_RETENTION_DAYS", "30")]).await;
        let entries = eventually(&app, |es| es.len() == 2).await;
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/age/29", "/age/0"]);
        // The trail itself stays append-only.
        let refused = app.with_db(|conn| {
            use custos::db::schema::audit_log;
            use diesel::prelude::*;
            diesel::update(audit_log::table).set(audit_log::detail.eq("rewritten")).execute(conn)
        }).await;
        assert!(refused.is_err(), "updates are refused by the trigger");
    }

    async fn the_audit_log_is_filtered_paged_and_exported_as_csv(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_AUDIT_RETENTION_DAYS", "36500")]).await;
        let root = app.signed_in("root", Role::Admin).await;
        let mut rows = vec![
            entry(at(2024, 11, 5), "alice", "page_view", "/customers/123", "", Some("123")),
            entry(at(2024, 11, 20), "bob", "page_view", "/customers?search=smith", "", Some("5,123,7")),
            entry(at(2024, 11, 10), "carol", "api_call", "/api/v1/customers/1234/", "", Some("1234")),
            entry(at(2024, 11, 11), "alice", "export", "/customers/export.csv", "", Some("12,31230")),
            entry(at(2024, 10, 15), "dave", "page_view", "/customers/123", "", Some("123")),
            entry(at(2024, 11, 30), "erin", "page_view", "/customers/123", "", Some("7,123")),
            entry(at(2024, 12, 1), "frank", "page_view", "/customers/123", "", Some("123")),
            entry(at(2024, 9, 1), "alice", "admin", "/admin/users/2/role", "50% off", None),
            entry(at(2024, 9, 2), "alice", "admin", "/admin/users/2/role", "500 off", None),
            entry(at(2024, 9, 3), "=cmd", "admin", "/admin/users", "=HYPERLINK(\"http://evil\")", None),
        ];
        for i in 0..60 {
            rows.push(entry(at(2024, 8, 1) + chrono::Duration::minutes(i), "script", "api_call", &format!("/api/v1/customers/?page={i}"), "", None));
        }
        insert_all(&app, rows).await;

        // Who looked at customer 123 in November 2024?
        let html = page(&app, &root, "/admin/audit?customer=123&from=2024-11-01&to=2024-11-30").await.text().await.unwrap();
        assert!(html.contains("3 entries"), "{html}");
        for name in ["alice", "bob", "erin"] {
            assert!(html.contains(&format!(">{name}</a>")), "{name}");
        }
        for name in ["carol", "dave", "frank"] {
            assert!(!html.contains(&format!(">{name}</a>")), "{name}");
        }
        let ids = csv_ids(&app, &root, "customer=123&from=2024-11-01&to=2024-11-30").await;
        assert_eq!(ids.len(), 3, "{ids:?}");

        let html = page(&app, &root, "/admin/audit?user=script").await.text().await.unwrap();
        assert!(html.contains("60 entries") && html.contains("page 1 of 2"), "{html}");
        assert_eq!(html.matches("/api/v1/customers/?page=").count(), 50);
        assert!(html.contains("/admin/audit?user=script&#38;page=2") || html.contains("/admin/audit?user=script&amp;page=2"), "a link to the next page keeps the filter");
        let html = page(&app, &root, "/admin/audit?user=script&page=2").await.text().await.unwrap();
        assert!(html.contains("page 2 of 2"));
        assert_eq!(html.matches("/api/v1/customers/?page=").count(), 10);
        let html = page(&app, &root, "/admin/audit?user=script&page=99").await.text().await.unwrap();
        assert!(html.contains("page 2 of 2"), "a page past the end shows the last");

        let html = page(&app, &root, "/admin/audit?kind=export&to=2024-12-31").await.text().await.unwrap();
        assert!(html.contains("1 entry "), "{html}");
        // Free text is literal: % is not a wildcard.
        assert_eq!(csv_ids(&app, &root, "q=50%25").await.len(), 1);
        assert_eq!(csv_ids(&app, &root, "q=0%25+OFF").await.len(), 1, "case-insensitive");
        assert_eq!(csv_ids(&app, &root, "q=role&from=2024-09-02&to=2024-09-02").await.len(), 1);

        for (query, field) in [("customer=abc", "customer:"), ("kind=bogus", "kind:"), ("from=2024-13-01", "from:"), ("from=2024-11-02&to=2024-11-01", "to:")] {
            let res = page(&app, &root, &format!("/admin/audit?{query}")).await;
            assert_eq!(res.status(), 400, "{query}");
            assert!(res.text().await.unwrap().contains(field), "{query}");
            assert_eq!(page(&app, &root, &format!("/admin/audit/export.csv?{query}")).await.status(), 400);
        }

        // The export: every matching entry, newest first, formulas defused.
        let res = page(&app, &root, "/admin/audit/export.csv?to=2024-12-31").await;
        assert!(res.headers().get("content-type").unwrap().to_str().unwrap().starts_with("text/csv"));
        assert!(res.headers().get("content-disposition").unwrap().to_str().unwrap().starts_with("attachment"));
        let body = res.text().await.unwrap();
        let mut reader = csv::Reader::from_reader(body.as_bytes());
        let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        assert_eq!(records.len(), 70);
        let ids: Vec<i64> = records.iter().map(|r| r[0].parse().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest (last written) first");
        let evil = records.iter().find(|r| r[7].contains("HYPERLINK")).unwrap();
        assert!(evil[7].starts_with("'="), "{evil:?}");
        assert_eq!(&evil[2], "'=cmd");
        let bob_row = records.iter().find(|r| &r[2] == "bob").unwrap();
        assert_eq!(&bob_row[9], "5,123,7");
        assert_eq!(&bob_row[1], "2024-11-20T12:00:00Z");

        // Reading the trail is on the trail.
        let entries = audit_entries(&app).await;
        let export = entries.iter().rev().find(|e| e.kind == "export" && e.username.as_deref() == Some("root")).unwrap();
        assert_eq!(export.row_count, Some(70));
        assert!(export.detail.contains("to=2024-12-31"), "{export:?}");
        assert!(entries.iter().any(|e| e.kind == "page_view" && e.path.starts_with("/admin/audit?customer=123")));
    }
}
