//! Sessions and responses behind the login: fixation, idle and absolute
//! expiry, logout replay, CSRF refusals, and the headers that keep data
//! out of caches and frames.

use std::time::Duration;

use crate::backend_tests;
use crate::fixtures::*;
use crate::helpers::*;
use custos::db::models::Role;

/// The `name=value` of the session cookie a response sets, if any.
fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("custos_session=") || c.starts_with("__Host-custos_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

/// A client that sends exactly this cookie and follows no redirects.
async fn status_with_cookie(app: &TestApp, cookie: &str, path: &str) -> (u16, String, String) {
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let loc = location(&res);
    (status, loc, res.text().await.unwrap())
}

async fn page_csrf(app: &TestApp, client: &reqwest::Client) -> String {
    let page = client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    extract_csrf(&page).expect("a csrf token in the nav")
}

backend_tests! {
    async fn the_session_id_changes_at_login_and_the_old_one_is_dead(backend) {
        let app = spawn_app(&backend).await;
        seed(&app, 10, 2).await;
        app.create_user("alice", Role::Staff).await;
        let client = app.client();
        let first = app.login(&client, "alice", PASSWORD).await;
        assert_eq!(first.status(), 303);
        let before = session_cookie(&first).expect("a session cookie at login");
        // Signing in again on the same browser (e.g. a session id an
        // attacker planted) must hand out a new id.
        let csrf = page_csrf(&app, &client).await;
        let again = client
            .post(app.url("/login"))
            .form(&[("csrf_token", csrf.as_str()), ("username", "alice"), ("password", PASSWORD), ("next", "/customers")])
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 303);
        let after = session_cookie(&again).expect("a new session cookie at the second login");
        assert_ne!(before, after, "the session id must change at login");
        let (status, loc, _) = status_with_cookie(&app, &before, "/customers").await;
        assert_eq!((status, loc.as_str()), (303, "/login?next=/customers"));
        let (status, _, _) = status_with_cookie(&app, &after, "/customers").await;
        assert_eq!(status, 200);
    }

    async fn an_idle_session_expires(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_SESSION_IDLE_SECONDS", "2")]).await;
        let client = app.signed_in("alice", Role::Staff).await;
        // Activity keeps it alive...
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(800)).await;
            assert_eq!(client.get(app.url("/customers")).send().await.unwrap().status(), 200);
        }
        // ...idleness ends it.
        tokio::time::sleep(Duration::from_millis(3200)).await;
        let res = client.get(app.url("/customers?status=active")).send().await.unwrap();
        assert_eq!(res.status(), 303);
        assert_eq!(location(&res), "/login?next=/customers%3Fstatus%3Dactive");
    }

    async fn a_session_ends_at_the_absolute_limit_even_when_active(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_SESSION_ABSOLUTE_SECONDS", "3")]).await;
        let client = app.signed_in("alice", Role::Staff).await;
        assert_eq!(client.get(app.url("/customers")).send().await.unwrap().status(), 200);
        let mut refused = false;
        for _ in 0..12 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let res = client.get(app.url("/customers")).send().await.unwrap();
            if res.status() == 303 {
                assert_eq!(location(&res), "/login?next=/customers");
                refused = true;
                break;
            }
            assert_eq!(res.status(), 200);
        }
        assert!(refused, "the session outlived its absolute limit");
    }

    async fn a_logged_out_cookie_replayed_shows_no_data(backend) {
        let app = spawn_app(&backend).await;
        seed(&app, 20, 2).await;
        let customers = all_customers(&app).await;
        app.create_user("alice", Role::Staff).await;
        let client = app.client();
        let res = app.login(&client, "alice", PASSWORD).await;
        let cookie = session_cookie(&res).unwrap();
        let (status, _, body) = status_with_cookie(&app, &cookie, "/customers").await;
        assert_eq!(status, 200);
        assert!(customers.iter().any(|c| body.contains(&format!("/customers/{}\"", c.id))));
        let csrf = page_csrf(&app, &client).await;
        let res = client.post(app.url("/logout")).form(&[("csrf_token", csrf)]).send().await.unwrap();
        assert_eq!(res.status(), 303);
        for path in ["/customers", "/customers/1", "/customers/export.csv", "/operators/1"] {
            let (status, loc, body) = status_with_cookie(&app, &cookie, path).await;
            assert_eq!(status, 303, "{path}");
            assert!(loc.starts_with("/login?next="), "{path}: {loc}");
            assert!(customers.iter().all(|c| !body.contains(&c.email)), "{path} leaked data");
        }
    }

    async fn state_changing_forms_refuse_missing_wrong_or_foreign_tokens(backend) {
        let app = spawn_app(&backend).await;
        let client = app.signed_in("alice", Role::Staff).await;
        let csrf = page_csrf(&app, &client).await;
        let still_signed_in = || async { client.get(app.url("/")).send().await.unwrap().status() == 200 };

        let res = client.post(app.url("/logout")).form(&[("x", "1")]).send().await.unwrap();
        assert_eq!(res.status(), 400, "missing token");
        assert!(still_signed_in().await);

        let wrong = "0".repeat(64);
        let res = client.post(app.url("/logout")).form(&[("csrf_token", wrong.as_str())]).send().await.unwrap();
        assert_eq!(res.status(), 400, "wrong token");
        assert!(still_signed_in().await);

        let res = client
            .post(app.url("/logout"))
            .header("origin", "https://evil.example")
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "foreign origin");
        assert!(still_signed_in().await);

        let res = client
            .post(app.url("/logout"))
            .header("sec-fetch-site", "cross-site")
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "cross-site fetch");
        assert!(still_signed_in().await);

        // `Origin: null` (sent under no-referrer) from a cross-site context.
        let res = client
            .post(app.url("/logout"))
            .header("origin", "null")
            .header("sec-fetch-site", "cross-site")
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "null origin, cross-site");
        assert!(still_signed_in().await);

        // The same token from this site works, also with the `Origin: null`
        // a browser sends under `Referrer-Policy: no-referrer`.
        let anon = app.client();
        app.create_user("bob", Role::Staff).await;
        let token = app.csrf_from(&anon, "/login").await;
        let res = anon
            .post(app.url("/login"))
            .header("origin", "null")
            .header("sec-fetch-site", "same-origin")
            .form(&[("csrf_token", token.as_str()), ("username", "bob"), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "same-origin form with Origin: null");
        let res = client
            .post(app.url("/logout"))
            .header("origin", app.address.clone())
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        assert!(!still_signed_in().await);

        // Login itself is protected too.
        let anon = app.client();
        let token = app.csrf_from(&anon, "/login").await;
        let res = anon
            .post(app.url("/login"))
            .header("origin", "https://evil.example")
            .form(&[("csrf_token", token.as_str()), ("username", "alice"), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        let res = anon
            .post(app.url("/login"))
            .form(&[("username", "alice"), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        assert!(session_cookie(&res).is_none(), "no session without a token");
    }

    async fn protected_pages_are_never_cached_or_framed(backend) {
        let app = spawn_app(&backend).await;
        seed(&app, 10, 2).await;
        let client = app.signed_in("alice", Role::Staff).await;
        let anon = app.client();
        let responses = vec![
            ("/", client.get(app.url("/")).send().await.unwrap()),
            ("/customers", client.get(app.url("/customers?status=active")).send().await.unwrap()),
            ("/customers/1", client.get(app.url("/customers/1")).send().await.unwrap()),
            ("/customers/export.csv", client.get(app.url("/customers/export.csv")).send().await.unwrap()),
            ("/operators", client.get(app.url("/operators")).send().await.unwrap()),
            ("/operators/1", client.get(app.url("/operators/1")).send().await.unwrap()),
            ("bad filter", client.get(app.url("/customers?status=nope")).send().await.unwrap()),
            ("anonymous", anon.get(app.url("/customers")).send().await.unwrap()),
        ];
        for (what, res) in responses {
            let h = res.headers();
            let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            assert!(get("cache-control").contains("no-store"), "{what}: {:?}", get("cache-control"));
            assert!(get("cache-control").contains("private"), "{what}");
            let csp = get("content-security-policy");
            assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
            assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
            assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
            assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
            assert_eq!(get("cross-origin-opener-policy"), "same-origin", "{what}");
        }
    }

    async fn pages_have_no_inline_script_or_style(backend) {
        let app = spawn_app(&backend).await;
        seed(&app, 10, 2).await;
        let client = app.signed_in("alice", Role::Staff).await;
        for path in ["/", "/customers", "/customers?search=zzzz", "/customers/1", "/operators", "/operators/1", "/customers?status=bogus"] {
            let html = client.get(app.url(path)).send().await.unwrap().text().await.unwrap();
            assert!(!html.contains("<script>") && !html.contains("<style") && !html.contains(" style=") && !html.contains(" onclick="), "{path}");
            assert!(html.contains("Signed in as <strong>alice</strong>"), "{path} shows who is signed in");
            assert!(html.contains("action=\"/logout\""), "{path} has a logout button");
        }
    }
}
