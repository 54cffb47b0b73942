//! API tokens from the account page: shown once, stored as a hash,
//! revocable, expiring, and killed by deactivation or a password change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use custos::db::models::Role;
use diesel::prelude::*;

use crate::api_support::*;
use crate::backend_tests;
use crate::helpers::*;

const INVALID: &str = r#"{"detail":"Invalid token."}"#;

/// The token inside `id="api-token"`, if the page shows one.
fn shown_token(body: &str) -> Option<String> {
    let start = body.find("id=\"api-token\">")? + "id=\"api-token\">".len();
    let end = body[start..].find('<')? + start;
    Some(body[start..end].trim().to_owned())
}

async fn create_token(app: &TestApp, client: &reqwest::Client) -> String {
    let csrf = app.csrf_from(client, "/account").await;
    let res = client
        .post(app.url("/account/tokens"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("cache-control").unwrap(),
        "no-store, private"
    );
    let body = res.text().await.unwrap();
    shown_token(&body).unwrap_or_else(|| panic!("no token shown:\n{body}"))
}

/// Every text value stored in `api_tokens`, for a plaintext scan.
async fn token_table_text(app: &TestApp) -> Vec<String> {
    app.with_db(|conn| {
        use custos::db::schema::api_tokens;
        api_tokens::table
            .select((api_tokens::token_hash, api_tokens::prefix))
            .load::<(String, String)>(conn)
            .unwrap()
            .into_iter()
            .flat_map(|(a, b)| [a, b])
            .collect()
    })
    .await
}

backend_tests! {
    async fn a_token_is_shown_once_and_only_its_hash_is_stored(backend) {
        let app = spawn_app_with(&backend, GENEROUS).await;
        load_data(&app).await;
        let client = app.signed_in("alice", Role::Staff).await;
        let page = client.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
        assert!(shown_token(&page).is_none());
        assert!(page.contains("You have no active tokens."));

        let token = create_token(&app, &client).await;
        assert_eq!(token.len(), 40);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        // Never again.
        let page = client.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
        assert!(shown_token(&page).is_none());
        assert!(!page.contains(&token));
        assert!(page.contains(&format!("{}…", &token[..8])), "listed by prefix");
        assert!(page.contains("never"), "not used yet");

        // The database holds the SHA-256, not the token.
        let stored = token_table_text(&app).await;
        assert!(stored.iter().all(|v| !v.contains(&token)), "plaintext stored: {stored:?}");
        assert!(stored.contains(&custos::auth::tokens::token_hash(&token)));

        // It works on the API, with the expiry configured (90 days by default).
        let a = api_get(&app, &token, "/api/v1/operators/").await;
        assert_eq!(a.status, 200);
        let expires = app.with_db(|conn| {
            use custos::db::schema::api_tokens;
            api_tokens::table.select(api_tokens::expires_at).first::<Option<chrono::NaiveDateTime>>(conn).unwrap()
        }).await.unwrap();
        let days = (expires - custos::db::now()).num_hours() as f64 / 24.0;
        assert!((89.9..=90.0).contains(&days), "{days}");

        // Audited, without the token.
        let audit = app.with_db(|conn| {
            use custos::db::schema::audit_log;
            audit_log::table.filter(audit_log::kind.eq("token_created")).select(audit_log::detail).load::<String>(conn).unwrap()
        }).await;
        assert_eq!(audit.len(), 1);
        assert!(!audit[0].contains(&token));
    }

    async fn token_forms_refuse_requests_without_csrf(backend) {
        let app = spawn_app_with(&backend, GENEROUS).await;
        let client = app.signed_in("alice", Role::Staff).await;
        let res = client.post(app.url("/account/tokens")).form(&[("csrf_token", "nope")]).send().await.unwrap();
        assert_eq!(res.status(), 400);
        let csrf = app.csrf_from(&client, "/account").await;
        let res = client
            .post(app.url("/account/tokens"))
            .header("origin", "https://evil.example")
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        assert!(token_table_text(&app).await.is_empty());
        // Anonymous: to the login page.
        let res = app.client().post(app.url("/account/tokens")).form(&[("csrf_token", csrf.as_str())]).send().await.unwrap();
        assert_eq!(res.status(), 303);
    }

    async fn a_revoked_token_stops_working(backend) {
        let app = spawn_app_with(&backend, GENEROUS).await;
        let client = app.signed_in("alice", Role::Staff).await;
        let first = create_token(&app, &client).await;
        let second = create_token(&app, &client).await;
        assert_eq!(api_get(&app, &first, "/api/v1/operators/").await.status, 200);
        let id = app.with_db({
            let hash = custos::auth::tokens::token_hash(&first);
            move |conn| {
                use custos::db::schema::api_tokens;
                api_tokens::table.filter(api_tokens::token_hash.eq(hash)).select(api_tokens::id).first::<i64>(conn).unwrap()
            }
        }).await;
        let page = client.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains(&format!("name=\"token_id\" value=\"{id}\"")));
        let csrf = extract_csrf(&page).unwrap();
        let res = client
            .post(app.url("/account/tokens/revoke"))
            .form(&[("csrf_token", csrf.as_str()), ("token_id", &id.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        assert_eq!(location(&res), "/account?revoked=1");
        let a = api_get(&app, &first, "/api/v1/operators/").await;
        assert_eq!((a.status, a.body.as_str()), (401, INVALID));
        assert_eq!(api_get(&app, &second, "/api/v1/operators/").await.status, 200);
        let page = client.get(app.url("/account?revoked=1")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("The token was revoked."));
        assert!(!page.contains(&format!("value=\"{id}\"")));
        // Someone else's token cannot be revoked through this form.
        let other = app.signed_in("bob", Role::Staff).await;
        let bobs = create_token(&app, &other).await;
        let bob_id = app.with_db({
            let hash = custos::auth::tokens::token_hash(&bobs);
            move |conn| {
                use custos::db::schema::api_tokens;
                api_tokens::table.filter(api_tokens::token_hash.eq(hash)).select(api_tokens::id).first::<i64>(conn).unwrap()
            }
        }).await;
        let res = client
            .post(app.url("/account/tokens/revoke"))
            .form(&[("csrf_token", csrf.as_str()), ("token_id", &bob_id.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        assert_eq!(api_get(&app, &bobs, "/api/v1/operators/").await.status, 200);
    }

    async fn tokens_expire_after_the_configured_lifetime(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_TOKEN_LIFETIME_DAYS", "2")]).await;
        let client = app.signed_in("alice", Role::Staff).await;
        let token = create_token(&app, &client).await;
        assert_eq!(api_get(&app, &token, "/api/v1/operators/").await.status, 200);
        // Move the expiry into the past, as two days passing would.
        app.with_db(|conn| {
            use custos::db::schema::api_tokens;
            let expires = api_tokens::table.select(api_tokens::expires_at).first::<Option<chrono::NaiveDateTime>>(conn).unwrap().unwrap();
            let days = (expires - custos::db::now()).num_hours();
            assert!((47..=48).contains(&days), "{days}");
            diesel::update(api_tokens::table)
                .set(api_tokens::expires_at.eq(Some(custos::db::now() - chrono::Duration::seconds(1))))
                .execute(conn)
                .unwrap();
        }).await;
        let a = api_get(&app, &token, "/api/v1/operators/").await;
        assert_eq!((a.status, a.body.as_str()), (401, INVALID));
        let page = client.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("You have no active tokens."));
    }

    async fn deactivating_a_user_kills_their_tokens(backend) {
        let app = spawn_app_with(&backend, GENEROUS).await;
        let (uid, token) = user_with_token(&app, "script").await;
        assert_eq!(api_get(&app, &token, "/api/v1/operators/").await.status, 200);
        app.with_db(move |conn| custos::auth::users::set_active(conn, uid, false).unwrap()).await;
        let a = api_get(&app, &token, "/api/v1/operators/").await;
        assert_eq!((a.status, a.body.as_str()), (401, INVALID));
        // Reactivation does not bring the token back.
        app.with_db(move |conn| custos::auth::users::set_active(conn, uid, true).unwrap()).await;
        assert_eq!(api_get(&app, &token, "/api/v1/operators/").await.status, 401);
    }

    async fn changing_the_password_revokes_tokens_and_ends_other_sessions(backend) {
        let app = spawn_app_with(&backend, GENEROUS).await;
        let client = app.signed_in("alice", Role::Staff).await;
        let other = app.client();
        assert_eq!(app.login(&other, "alice", PASSWORD).await.status(), 303);
        let token = create_token(&app, &client).await;
        assert_eq!(api_get(&app, &token, "/api/v1/operators/").await.status, 200);

        let change = |current: &str, new1: &str, new2: &str| {
            let (client, app) = (&client, &app);
            let (current, new1, new2) = (current.to_owned(), new1.to_owned(), new2.to_owned());
            async move {
                let csrf = app.csrf_from(client, "/account").await;
                client
                    .post(app.url("/account/password"))
                    .form(&[("csrf_token", csrf), ("current_password", current), ("new_password", new1), ("new_password2", new2)])
                    .send()
                    .await
                    .unwrap()
            }
        };
        let res = change("wrong-password-1234", "amber-lantern-57-river", "amber-lantern-57-river").await;
        assert!(res.text().await.unwrap().contains("The current password is not correct."));
        let res = change(PASSWORD, "amber-lantern-57-river", "amber-lantern-57-rivet").await;
        assert!(res.text().await.unwrap().contains("The two new passwords differ."));
        let res = change(PASSWORD, "short", "short").await;
        assert!(res.text().await.unwrap().contains("at least 12 characters"));
        assert_eq!(api_get(&app, &token, "/api/v1/operators/").await.status, 200, "nothing changed yet");

        let res = change(PASSWORD, "amber-lantern-57-river", "amber-lantern-57-river").await;
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("set-cookie").is_some(), "a fresh session id");
        assert!(res.text().await.unwrap().contains("Your password was changed."));
        // This browser stays signed in; the other session has ended.
        assert_eq!(client.get(app.url("/account")).send().await.unwrap().status(), 200);
        let res = other.get(app.url("/account")).send().await.unwrap();
        assert_eq!(res.status(), 303);
        assert!(location(&res).starts_with("/login"));
        // Tokens are revoked.
        let a = api_get(&app, &token, "/api/v1/operators/").await;
        assert_eq!((a.status, a.body.as_str()), (401, INVALID));
        // The new password works, the old one does not.
        assert_eq!(app.login(&app.client(), "alice", "amber-lantern-57-river").await.status(), 303);
        assert_eq!(app.login(&app.client(), "alice", PASSWORD).await.status(), 200);
        let kinds = app.with_db(|conn| {
            use custos::db::schema::audit_log;
            audit_log::table.select(audit_log::kind).load::<String>(conn).unwrap()
        }).await;
        assert!(kinds.iter().any(|k| k == "password_changed"), "{kinds:?}");
    }

    async fn a_required_password_change_is_announced_and_cleared(backend) {
        let app = spawn_app_with(&backend, GENEROUS).await;
        let uid = app.create_user("alice", Role::Staff).await;
        app.with_db(move |conn| {
            use custos::db::schema::users;
            diesel::update(users::table.find(uid)).set(users::must_change_password.eq(true)).execute(conn).unwrap();
        }).await;
        let client = app.client();
        assert_eq!(app.login(&client, "alice", PASSWORD).await.status(), 303);
        let res = client.get(app.url("/")).send().await.unwrap();
        assert_eq!(location(&res), "/account");
        let page = client.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("You must change your password"));
        assert!(!page.contains("Create a new token"));
        let csrf = extract_csrf(&page).unwrap();
        // Tokens cannot be created before the change.
        let res = client.post(app.url("/account/tokens")).form(&[("csrf_token", csrf.as_str())]).send().await.unwrap();
        assert_eq!(location(&res), "/account");
        let res = client
            .post(app.url("/account/password"))
            .form(&[("csrf_token", csrf.as_str()), ("current_password", PASSWORD), ("new_password", "amber-lantern-57-river"), ("new_password2", "amber-lantern-57-river")])
            .send()
            .await
            .unwrap();
        let body = res.text().await.unwrap();
        assert!(body.contains("Your password was changed."));
        assert!(!body.contains("You must change your password"));
        assert_eq!(client.get(app.url("/")).send().await.unwrap().status(), 200);
    }
}
