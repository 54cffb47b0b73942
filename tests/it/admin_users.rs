//! `/admin/users`: who may open it, each action and its confirmation,
//! the last-admin rule, and how soon a deactivation bites.

use crate::backend_tests;
use crate::helpers::*;
use custos::auth::tokens::{self, TokenCheck};
use custos::db::models::Role;

/// Posts a form with the client's CSRF token (taken from `/`).
pub async fn post(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = app.csrf_from(client, "/").await;
    let mut form: Vec<(&str, &str)> = vec![("csrf_token", token.as_str())];
    form.extend_from_slice(fields);
    client
        .post(app.url(path))
        .form(&form)
        .send()
        .await
        .expect("post")
}

/// Posts, expects a 303, and returns the page it leads to.
pub async fn post_and_follow(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
) -> String {
    let res = post(app, client, path, fields).await;
    assert_eq!(res.status(), 303, "POST {path}");
    let to = location(&res);
    let page = client.get(app.url(&to)).send().await.expect("get");
    assert_eq!(page.status(), 200, "GET {to}");
    page.text().await.expect("body")
}

pub async fn page(app: &TestApp, client: &reqwest::Client, path: &str) -> reqwest::Response {
    client.get(app.url(path)).send().await.expect("get")
}

/// A live token for a user, as the account page would make it.
pub async fn token_for(app: &TestApp, user_id: i64) -> (String, i64) {
    app.with_db(move |conn| {
        let key = tokens::generate_token();
        let row = tokens::store_token(conn, user_id, &key, None).expect("store token");
        (key, row.id)
    })
    .await
}

pub async fn token_works(app: &TestApp, key: &str) -> bool {
    let key = key.to_owned();
    app.with_db(move |conn| {
        matches!(
            tokens::check_token(conn, &key).expect("check token"),
            TokenCheck::Valid { .. }
        )
    })
    .await
}

pub async fn user(app: &TestApp, name: &str) -> custos::db::models::User {
    let name = name.to_owned();
    app.with_db(move |conn| {
        custos::auth::users::find_by_username(conn, &name)
            .expect("query")
            .expect("user exists")
    })
    .await
}

backend_tests! {
    async fn admin_pages_refuse_staff_and_redirect_anonymous_visitors(backend) {
        let app = spawn_app(&backend).await;
        let root_id = app.create_user("root", Role::Admin).await;
        let staff = app.signed_in("sam", Role::Staff).await;
        for path in ["/admin", "/admin/users", &format!("/admin/users/{root_id}"), "/admin/audit", "/admin/audit/export.csv"] {
            let res = page(&app, &staff, path).await;
            assert_eq!(res.status(), 403, "staff on {path}");
            let body = res.text().await.unwrap();
            assert!(!body.contains("root"), "{path} leaked an account name to staff");
            let res = page(&app, &app.client(), path).await;
            assert_eq!(res.status(), 303, "anonymous on {path}");
            assert!(location(&res).starts_with("/login?next="), "{path}: {}", location(&res));
        }
        for action in ["deactivate", "activate", "end-sessions", "role", "password"] {
            let res = post(&app, &staff, &format!("/admin/users/{root_id}/{action}"), &[("role", "staff")]).await;
            assert_eq!(res.status(), 403, "staff POST {action}");
        }
        let res = post(&app, &staff, "/admin/users", &[("username", "evil"), ("password", PASSWORD), ("password2", PASSWORD), ("role", "admin")]).await;
        assert_eq!(res.status(), 403);
        let root = user(&app, "root").await;
        assert!(root.is_active && root.is_admin());
        assert!(app.with_db(|conn| custos::auth::users::find_by_username(conn, "evil").unwrap()).await.is_none());
        // A POST without the CSRF token is refused even for an admin.
        let admin = app.client();
        assert_eq!(app.login(&admin, "root", PASSWORD).await.status(), 303);
        let res = admin.post(app.url(&format!("/admin/users/{root_id}/end-sessions"))).form(&[("x", "y")]).send().await.unwrap();
        assert_eq!(res.status(), 400);
    }

    async fn an_admin_creates_accounts_and_sees_each_change_confirmed(backend) {
        let app = spawn_app(&backend).await;
        let admin = app.signed_in("root", Role::Admin).await;
        let list = page(&app, &admin, "/admin/users").await.text().await.unwrap();
        assert!(list.contains("Create an account") && list.contains("root"));

        let weak = post(&app, &admin, "/admin/users", &[("username", "bob"), ("password", "short"), ("password2", "short"), ("role", "staff")]).await;
        assert_eq!(weak.status(), 422);
        let body = weak.text().await.unwrap();
        assert!(body.contains("at least 12 characters"), "{body}");
        assert!(body.contains("value=\"bob\""), "the username is kept");

        let differ = post(&app, &admin, "/admin/users", &[("username", "bob"), ("password", PASSWORD), ("password2", "violet-kettle-93-drums"), ("role", "staff")]).await;
        assert!(differ.text().await.unwrap().contains("The two passwords differ."));
        let bad_name = post(&app, &admin, "/admin/users", &[("username", "bob smith"), ("password", PASSWORD), ("password2", PASSWORD), ("role", "staff")]).await;
        assert_eq!(bad_name.status(), 422);
        let bad_role = post(&app, &admin, "/admin/users", &[("username", "bob"), ("password", PASSWORD), ("password2", PASSWORD), ("role", "owner")]).await;
        assert!(bad_role.text().await.unwrap().contains("Choose a role"));

        let page_text = post_and_follow(&app, &admin, "/admin/users", &[("username", "bob"), ("password", PASSWORD), ("password2", PASSWORD), ("role", "staff"), ("must_change", "1")]).await;
        assert!(page_text.contains("Created the staff account"), "{page_text}");
        assert!(page_text.contains("must choose a new password"));
        let bob = user(&app, "bob").await;
        assert!(bob.is_active && !bob.is_admin() && bob.must_change_password);
        // The confirmation is shown once.
        let again = page(&app, &admin, &format!("/admin/users/{}", bob.id)).await.text().await.unwrap();
        assert!(!again.contains("Created the staff account"));

        let dup = post(&app, &admin, "/admin/users", &[("username", "bob"), ("password", PASSWORD), ("password2", PASSWORD), ("role", "staff")]).await;
        assert_eq!(dup.status(), 422);
        assert!(dup.text().await.unwrap().contains("already exists"));

        let created = post_and_follow(&app, &admin, "/admin/users", &[("username", "ada"), ("password", PASSWORD), ("password2", PASSWORD), ("role", "admin")]).await;
        assert!(created.contains("Created the admin account"), "{created}");
        let ada = user(&app, "ada").await;
        assert!(ada.is_admin() && !ada.must_change_password);

        // Bob must choose a new password before anything else.
        let bob_client = app.client();
        assert_eq!(app.login(&bob_client, "bob", PASSWORD).await.status(), 303);
        let home = page(&app, &bob_client, "/").await;
        assert_eq!(home.status(), 303);
        assert_eq!(location(&home), "/account");

        let role = post_and_follow(&app, &admin, &format!("/admin/users/{}/role", bob.id), &[("role", "admin")]).await;
        assert!(role.contains("is now an administrator"), "{role}");
        assert!(user(&app, "bob").await.is_admin());
        let role = post_and_follow(&app, &admin, &format!("/admin/users/{}/role", bob.id), &[("role", "staff")]).await;
        assert!(role.contains("is now staff"), "{role}");
        let bad = post_and_follow(&app, &admin, &format!("/admin/users/{}/role", bob.id), &[("role", "root")]).await;
        assert!(bad.contains("Choose a role"));

        let list = page(&app, &admin, "/admin/users").await.text().await.unwrap();
        for name in ["root", "bob", "ada"] {
            assert!(list.contains(&format!(">{name}</a>")), "{name} listed");
        }
        assert_eq!(page(&app, &admin, "/admin/users/99999").await.status(), 404);
        assert_eq!(page(&app, &admin, "/admin/users/x").await.status(), 404);
    }

    async fn the_last_active_admin_cannot_be_deactivated_or_demoted(backend) {
        let app = spawn_app(&backend).await;
        let admin = app.signed_in("root", Role::Admin).await;
        let root = user(&app, "root").await;
        let page_text = post_and_follow(&app, &admin, &format!("/admin/users/{}/deactivate", root.id), &[]).await;
        assert!(page_text.contains("The last active administrator cannot be deactivated."), "{page_text}");
        let page_text = post_and_follow(&app, &admin, &format!("/admin/users/{}/role", root.id), &[("role", "staff")]).await;
        assert!(page_text.contains("The last active administrator cannot be demoted."), "{page_text}");
        let root = user(&app, "root").await;
        assert!(root.is_active && root.is_admin());

        // An inactive admin does not count.
        let other = app.create_user("ada", Role::Admin).await;
        let page_text = post_and_follow(&app, &admin, &format!("/admin/users/{other}/deactivate"), &[]).await;
        assert!(page_text.contains("Deactivated"), "{page_text}");
        let page_text = post_and_follow(&app, &admin, &format!("/admin/users/{}/role", root.id), &[("role", "staff")]).await;
        assert!(page_text.contains("cannot be demoted"));

        // With a second active admin, root may step down.
        let page_text = post_and_follow(&app, &admin, &format!("/admin/users/{other}/activate"), &[]).await;
        assert!(page_text.contains("Reactivated"), "{page_text}");
        let res = post(&app, &admin, &format!("/admin/users/{}/role", root.id), &[("role", "staff")]).await;
        assert_eq!(res.status(), 303);
        assert!(!user(&app, "root").await.is_admin());
        // ...and is no longer an admin on the very next request.
        assert_eq!(page(&app, &admin, "/admin/users").await.status(), 403);
    }

    async fn deactivation_ends_sessions_and_tokens_at_once(backend) {
        let app = spawn_app(&backend).await;
        let admin = app.signed_in("root", Role::Admin).await;
        let carol = app.signed_in("carol", Role::Staff).await;
        let carol_id = user(&app, "carol").await.id;
        let (key, _) = token_for(&app, carol_id).await;
        assert_eq!(page(&app, &carol, "/").await.status(), 200);
        assert!(token_works(&app, &key).await);
        let list = page(&app, &admin, "/admin/users").await.text().await.unwrap();
        assert!(list.matches("<td>1</td>").count() >= 3, "carol's session and token are counted");

        let text = post_and_follow(&app, &admin, &format!("/admin/users/{carol_id}/deactivate"), &[]).await;
        assert!(text.contains("Deactivated") && text.contains("sessions and API tokens have ended"), "{text}");
        let res = page(&app, &carol, "/").await;
        assert_eq!(res.status(), 303);
        assert_eq!(location(&res), "/login");
        assert!(!token_works(&app, &key).await);
        let revoked = app.with_db(move |conn| tokens::list_tokens(conn, carol_id).unwrap().len()).await;
        assert_eq!(revoked, 0, "the token row is revoked");
        // A deactivated account cannot sign in, with the usual message.
        let res = app.login(&app.client(), "carol", PASSWORD).await;
        assert!(res.text().await.unwrap().contains(custos::auth::login::GENERIC_FAILURE));

        let text = post_and_follow(&app, &admin, &format!("/admin/users/{carol_id}/activate"), &[]).await;
        assert!(text.contains("Reactivated"), "{text}");
        assert!(!token_works(&app, &key).await, "old tokens stay revoked");
        assert_eq!(app.login(&app.client(), "carol", PASSWORD).await.status(), 303);
    }

    async fn deactivation_on_one_instance_takes_effect_on_another(backend) {
        let first = spawn_app(&backend).await;
        let second = spawn_app_on(first.db.shared(), &[]).await;
        let admin = first.signed_in("root", Role::Admin).await;
        second.create_user("dave", Role::Staff).await;
        let dave = second.client();
        assert_eq!(second.login(&dave, "dave", PASSWORD).await.status(), 303);
        assert_eq!(page(&second, &dave, "/").await.status(), 200);
        let dave_id = user(&second, "dave").await.id;
        let (key, _) = token_for(&second, dave_id).await;
        assert!(token_works(&second, &key).await);

        let text = post_and_follow(&first, &admin, &format!("/admin/users/{dave_id}/deactivate"), &[]).await;
        assert!(text.contains("Deactivated"));
        let res = page(&second, &dave, "/").await;
        assert_eq!(res.status(), 303, "the session on the other instance ended");
        assert!(!token_works(&second, &key).await, "the token is dead on the other instance");
    }

    async fn a_password_reset_forces_a_change_at_next_sign_in(backend) {
        let app = spawn_app(&backend).await;
        let admin = app.signed_in("root", Role::Admin).await;
        let bob = app.signed_in("bob", Role::Staff).await;
        let bob_id = user(&app, "bob").await.id;
        let (key, _) = token_for(&app, bob_id).await;

        let text = post_and_follow(&app, &admin, &format!("/admin/users/{bob_id}/password"), &[("password", "short"), ("password2", "short")]).await;
        assert!(text.contains("The password was not changed") && text.contains("at least 12"), "{text}");
        let text = post_and_follow(&app, &admin, &format!("/admin/users/{bob_id}/password"), &[("password", "temporary-pass-4711"), ("password2", "temporary-pass-4712")]).await;
        assert!(text.contains("The two passwords differ."));
        assert_eq!(page(&app, &bob, "/").await.status(), 200, "nothing changed yet");

        let text = post_and_follow(&app, &admin, &format!("/admin/users/{bob_id}/password"), &[("password", "temporary-pass-4711"), ("password2", "temporary-pass-4711")]).await;
        assert!(text.contains("Reset the password of") && text.contains("must choose a new one"), "{text}");
        assert!(user(&app, "bob").await.must_change_password);
        assert_eq!(page(&app, &bob, "/").await.status(), 303, "bob's session ended");
        assert!(!token_works(&app, &key).await, "bob's token ended");

        let fresh = app.client();
        let res = app.login(&fresh, "bob", PASSWORD).await;
        assert!(res.text().await.unwrap().contains(custos::auth::login::GENERIC_FAILURE), "the old password is gone");
        assert_eq!(app.login(&fresh, "bob", "temporary-pass-4711").await.status(), 303);
        let res = page(&app, &fresh, "/").await;
        assert_eq!(res.status(), 303);
        assert_eq!(location(&res), "/account", "bob must change the password first");
    }

    async fn ending_sessions_and_revoking_a_token_are_confirmed(backend) {
        let app = spawn_app(&backend).await;
        let admin = app.signed_in("root", Role::Admin).await;
        let bob = app.signed_in("bob", Role::Staff).await;
        let bob_id = user(&app, "bob").await.id;
        let (key, token_id) = token_for(&app, bob_id).await;
        let (other_key, _) = token_for(&app, bob_id).await;

        let detail = page(&app, &admin, &format!("/admin/users/{bob_id}")).await.text().await.unwrap();
        assert!(detail.contains(&format!("{}…", &key[..8])), "the token prefix is listed");
        assert!(!detail.contains(&key), "never the whole token");

        let text = post_and_follow(&app, &admin, &format!("/admin/users/{bob_id}/end-sessions"), &[]).await;
        assert!(text.contains("Ended 1 session of"), "{text}");
        assert_eq!(page(&app, &bob, "/").await.status(), 303);
        assert!(token_works(&app, &key).await, "ending sessions keeps tokens");

        let text = post_and_follow(&app, &admin, &format!("/admin/users/{bob_id}/tokens/{token_id}/revoke"), &[]).await;
        assert!(text.contains("Revoked the API token"), "{text}");
        assert!(!token_works(&app, &key).await);
        assert!(token_works(&app, &other_key).await, "only that token");
        let text = post_and_follow(&app, &admin, &format!("/admin/users/{bob_id}/tokens/{token_id}/revoke"), &[]).await;
        assert!(text.contains("already revoked"), "{text}");
        // A token id of another user is not found through this user.
        let root_id = user(&app, "root").await.id;
        let res = post(&app, &admin, &format!("/admin/users/{root_id}/tokens/{token_id}/revoke"), &[]).await;
        assert_eq!(res.status(), 404);
    }

    async fn user_commands_from_the_shell_end_sessions_list_and_revoke_tokens_and_are_audited(backend) {
        let app = spawn_app(&backend).await;
        let out = app.db.custos(&["user", "create", "--username", "newbie", "--must-change", "--password-stdin"], Some("a-first-long-passphrase-1\n"));
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(user(&app, "newbie").await.must_change_password, "--must-change is kept");
        let out = app.db.custos(&["user", "create", "--username", "plain", "--password-stdin"], Some("a-first-long-passphrase-2\n"));
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!user(&app, "plain").await.must_change_password);

        let bob = app.signed_in("bob", Role::Staff).await;
        let bob_id = user(&app, "bob").await.id;
        let (key, token_id) = token_for(&app, bob_id).await;
        let (other_key, _) = token_for(&app, bob_id).await;

        let out = app.db.custos(&["user", "end-sessions", "--username", "bob", "--sessions-only"], None);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("Ended 1 session of \"bob\""), "{}", stdout(&out));
        assert_eq!(page(&app, &bob, "/").await.status(), 303, "the session has ended");
        assert!(token_works(&app, &key).await && token_works(&app, &other_key).await, "--sessions-only keeps tokens");

        let listed = stdout(&app.db.custos(&["user", "tokens", "--username", "bob"], None));
        assert!(listed.contains(&format!("{}…", &key[..8])), "{listed}");
        assert!(listed.contains(&token_id.to_string()), "{listed}");
        assert!(!listed.contains(&key) && !listed.contains(&other_key), "never a whole token: {listed}");

        let id = token_id.to_string();
        let out = app.db.custos(&["user", "revoke-token", "--username", "bob", "--id", &id], None);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!token_works(&app, &key).await, "revoked");
        assert!(token_works(&app, &other_key).await, "only that token");
        let again = app.db.custos(&["user", "revoke-token", "--username", "bob", "--id", &id], None);
        assert!(!again.status.success());
        assert!(stderr(&again).contains("already revoked"), "{}", stderr(&again));
        let foreign = app.db.custos(&["user", "revoke-token", "--username", "plain", "--id", &id], None);
        assert!(stderr(&foreign).contains("has no API token with id"), "{}", stderr(&foreign));

        let out = app.db.custos(&["user", "end-sessions", "--username", "bob"], None);
        assert!(stdout(&out).contains("revoked 1 API token of"), "{}", stdout(&out));
        assert!(!token_works(&app, &other_key).await, "without --sessions-only tokens end too");
        assert!(stdout(&app.db.custos(&["user", "tokens", "--username", "bob"], None)).contains("no live API tokens"));

        let entries = crate::login_guard::audit_entries(&app).await;
        for (path, detail) in [
            ("custos user create", "Created the staff account \"newbie\""),
            ("custos user end-sessions", "Ended 1 session of \"bob\""),
            ("custos user revoke-token", &format!("Revoked the API token {}…", &key[..8])),
            ("custos user end-sessions", "revoked 1 API token of \"bob\""),
        ] {
            assert!(entries.iter().any(|e| e.kind == "admin" && e.path == path && e.detail.contains(detail)), "{path}: {detail} in {entries:?}");
        }
        for e in &entries {
            assert!(!e.detail.contains(&key) && !e.detail.contains(&other_key));
            assert!(!e.detail.contains("a-first-long-passphrase"));
        }
    }
}
