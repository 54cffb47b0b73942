//! The API token cache never lets a token through that the database would
//! refuse: a change made behind the server's back (another process, a
//! hand-made fix) refuses the very next request, refused requests are
//! neither counted nor audited, and the bookkeeping of every request does
//! not empty the cache. Also: one user's failing quota write fails only
//! that user's requests, even when they share a group commit with others.

use custos::auth::token_cache::auth_version;
use custos::auth::tokens::token_hash;
use custos::db::DbConn;
use custos::db::models::Role;
use custos::db::schema::{api_requests, api_tokens, audit_log, users};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::api_support::*;
use crate::backend_tests;
use crate::helpers::*;

const INVALID: &str = r#"{"detail":"Invalid token."}"#;
const INACTIVE: &str = r#"{"detail":"User inactive or deleted."}"#;

async fn version(app: &TestApp) -> Option<i64> {
    app.with_db(|conn| auth_version(conn).unwrap()).await
}

/// (API audit rows, quota history rows) of a user.
async fn traces(app: &TestApp, uid: i64) -> (i64, i64) {
    app.with_db(move |conn| {
        let audited = audit_log::table
            .filter(audit_log::user_id.eq(uid))
            .filter(audit_log::kind.eq("api_call"))
            .count()
            .get_result(conn)
            .unwrap();
        let counted = api_requests::table
            .filter(api_requests::user_id.eq(uid))
            .count()
            .get_result(conn)
            .unwrap();
        (audited, counted)
    })
    .await
}

backend_tests! {
    async fn a_token_revoked_behind_the_servers_back_is_refused_by_the_next_request(backend) {
        let app = spawn_app_with(&backend, GENEROUS).await;
        load_data(&app).await;
        let (uid, token) = user_with_token(&app, "script").await;
        assert_eq!(api_get(&app, &token, "/api/v1/customers/1/").await.status, 200);
        let before = traces(&app, uid).await;
        assert_eq!(before, (1, 1));
        // As another process would: straight in the database.
        let hash = token_hash(&token);
        let h = hash.clone();
        app.with_db(move |conn| {
            diesel::update(api_tokens::table.filter(api_tokens::token_hash.eq(h)))
                .set(api_tokens::revoked_at.eq(Some(custos::db::now())))
                .execute(conn)
                .unwrap();
        })
        .await;
        // The server has not looked since, so its cache still vouches for
        // the token: the refusal below comes from the check in the commit.
        assert!(app.database.token_cache().get(&hash).is_some());
        let a = api_get(&app, &token, "/api/v1/customers/1/").await;
        assert_eq!((a.status, a.body.as_str()), (401, INVALID));
        assert!(!a.body.contains("full_name"));
        assert_eq!(traces(&app, uid).await, before, "nothing counted or audited");
        // And from then on without reaching the writer.
        assert!(app.database.token_cache().get(&hash).is_none());
        let a = api_get(&app, &token, "/api/v1/customers/").await;
        assert_eq!((a.status, a.body.as_str()), (401, INVALID));
        assert_eq!(traces(&app, uid).await, before);
    }

    async fn a_user_deactivated_behind_the_servers_back_is_refused_by_the_next_request(backend) {
        let app = spawn_app_with(&backend, GENEROUS).await;
        load_data(&app).await;
        let (uid, token) = user_with_token(&app, "script").await;
        assert_eq!(api_get(&app, &token, "/api/v1/operators/").await.status, 200);
        app.with_db(move |conn| {
            diesel::update(users::table.find(uid))
                .set(users::is_active.eq(false))
                .execute(conn)
                .unwrap();
        })
        .await;
        let a = api_get(&app, &token, "/api/v1/operators/").await;
        assert_eq!((a.status, a.body.as_str()), (401, INACTIVE));
        app.with_db(move |conn| {
            diesel::update(users::table.find(uid))
                .set(users::is_active.eq(true))
                .execute(conn)
                .unwrap();
        })
        .await;
        assert_eq!(api_get(&app, &token, "/api/v1/operators/").await.status, 200);
        // A deleted user's token is unknown at once.
        app.with_db(move |conn| {
            diesel::delete(users::table.find(uid)).execute(conn).unwrap();
        })
        .await;
        let a = api_get(&app, &token, "/api/v1/operators/").await;
        assert_eq!((a.status, a.body.as_str()), (401, INVALID));
    }

    async fn every_change_that_decides_a_token_moves_the_auth_version_and_bookkeeping_does_not(backend) {
        let app = spawn_app_with(&backend, GENEROUS).await;
        load_data(&app).await;
        let (uid, token) = user_with_token(&app, "script").await;
        let start = version(&app).await.expect("the version row exists");
        // Requests (which record the token's last use) and sign-ins (last
        // login, failed attempts) leave it alone, so the cache stays warm.
        for _ in 0..3 {
            assert_eq!(api_get(&app, &token, "/api/v1/operators/").await.status, 200);
        }
        let used: Option<chrono::NaiveDateTime> = app
            .with_db(move |conn| {
                api_tokens::table
                    .filter(api_tokens::user_id.eq(uid))
                    .select(api_tokens::last_used_at)
                    .first(conn)
                    .unwrap()
            })
            .await;
        assert!(used.is_some(), "the last use was recorded");
        let _client = app.signed_in("alice", Role::Staff).await;
        assert_eq!(version(&app).await, Some(start));
        let hash = token_hash(&token);
        assert!(app.database.token_cache().get(&hash).is_some());

        type Change = Box<dyn FnOnce(&mut DbConn) + Send>;
        let changes: Vec<(&str, Change)> = vec![
            ("expiry", Box::new(move |c: &mut DbConn| {
                diesel::update(api_tokens::table.filter(api_tokens::user_id.eq(uid)))
                    .set(api_tokens::expires_at.eq(None::<chrono::NaiveDateTime>))
                    .execute(c)
                    .unwrap();
            })),
            ("role", Box::new(move |c: &mut DbConn| {
                diesel::update(users::table.find(uid)).set(users::role.eq("admin")).execute(c).unwrap();
            })),
            ("password", Box::new(move |c: &mut DbConn| {
                diesel::update(users::table.find(uid)).set(users::password_hash.eq("x")).execute(c).unwrap();
            })),
            ("username", Box::new(move |c: &mut DbConn| {
                diesel::update(users::table.find(uid)).set(users::username.eq("script2")).execute(c).unwrap();
            })),
            ("revocation", Box::new(move |c: &mut DbConn| {
                diesel::update(api_tokens::table.filter(api_tokens::user_id.eq(uid)))
                    .set(api_tokens::revoked_at.eq(Some(custos::db::now())))
                    .execute(c)
                    .unwrap();
            })),
            ("token deletion", Box::new(move |c: &mut DbConn| {
                diesel::delete(api_tokens::table.filter(api_tokens::user_id.eq(uid))).execute(c).unwrap();
            })),
            ("user deletion", Box::new(move |c: &mut DbConn| {
                diesel::delete(users::table.find(uid)).execute(c).unwrap();
            })),
        ];
        let mut last = start;
        for (what, change) in changes {
            app.with_db(change).await;
            let now = version(&app).await.unwrap();
            assert!(now > last, "{what} moves the auth version");
            last = now;
        }
    }

    async fn one_users_failing_quota_write_fails_only_that_users_requests(backend) {
        let app = spawn_app_with(&backend, GENEROUS).await;
        load_data(&app).await;
        let (bad, bad_token) = user_with_token(&app, "doomed").await;
        let (good, good_token) = user_with_token(&app, "fine").await;
        // Every quota history row of `bad` now fails to insert.
        let postgres = app.database.is_postgres();
        app.with_db(move |conn| {
            let sql = if postgres {
                format!(
                    "CREATE FUNCTION test_refuse_history() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN IF NEW.user_id = {bad} THEN RAISE EXCEPTION 'refused for the test'; END IF;
                     RETURN NEW; END $$;
                     CREATE TRIGGER test_refuse_history BEFORE INSERT ON api_requests
                     FOR EACH ROW EXECUTE FUNCTION test_refuse_history();"
                )
            } else {
                format!(
                    "CREATE TRIGGER test_refuse_history BEFORE INSERT ON api_requests
                     WHEN NEW.user_id = {bad}
                     BEGIN SELECT RAISE(ABORT, 'refused for the test'); END;"
                )
            };
            conn.batch_execute(&sql).unwrap();
        })
        .await;
        // Both users at once, so that their calls share group commits.
        let mut calls = Vec::new();
        for i in 0..40 {
            let (token, path) = if i % 2 == 0 {
                (good_token.clone(), format!("/api/v1/customers/{}/", 1 + i % 5))
            } else {
                (bad_token.clone(), "/api/v1/operators/".to_owned())
            };
            let app_url = app.url(&path);
            calls.push(tokio::spawn(async move {
                let res = plain_client()
                    .get(app_url)
                    .header("authorization", format!("Token {token}"))
                    .send()
                    .await
                    .unwrap();
                (i % 2 == 0, read(res).await)
            }));
        }
        for call in calls {
            let (is_good, answer) = call.await.unwrap();
            if is_good {
                assert_eq!(answer.status, 200, "{}", answer.body);
                assert!(answer.body.contains("full_name"));
            } else {
                assert_eq!(answer.status, 500, "{}", answer.body);
                assert!(!answer.body.contains("refused for the test"), "no internals: {}", answer.body);
            }
        }
        assert_eq!(traces(&app, good).await, (20, 20));
        assert_eq!(traces(&app, bad).await, (0, 0));
    }
}
