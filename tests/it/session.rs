//! Setup, login and logout.

use crate::backend_tests;
use crate::helpers::*;
use custos::db::models::Role;

backend_tests! {
    async fn healthz_answers_without_login_and_shows_no_data(backend) {
        let app = spawn_app(&backend).await;
        let res = reqwest::get(app.url("/healthz")).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), r#"{"status":"ok"}"#);
    }

    async fn setup_creates_the_first_admin_once_with_the_printed_token(backend) {
        let app = spawn_app(&backend).await;
        let token = app.setup_token.clone().expect("a setup token on an empty database");
        let client = app.client();
        let res = client.get(app.url("/setup?token=wrong")).send().await.unwrap();
        assert_eq!(res.status(), 400);
        let csrf = app.csrf_from(&client, &format!("/setup?token={token}")).await;
        let form = |u: &'static str, p1: &'static str, p2: &'static str, t: String| {
            vec![("csrf_token", csrf.clone()), ("token", t), ("username", u.into()), ("password", p1.into()), ("password2", p2.into())]
        };
        let res = client.post(app.url("/setup")).form(&form("root", "violet-kettle-93-drum", "different-passphrase-1", token.clone())).send().await.unwrap();
        assert!(res.text().await.unwrap().contains("The two passwords differ."));
        let res = client.post(app.url("/setup")).form(&form("root", "passwordpassword", "passwordpassword", token.clone())).send().await.unwrap();
        assert!(res.text().await.unwrap().contains("too common"));
        let res = client.post(app.url("/setup")).form(&form("root", "violet-kettle-93-drum", "violet-kettle-93-drum", "bad".into())).send().await.unwrap();
        assert_eq!(res.status(), 400);
        let res = client.post(app.url("/setup")).form(&form("root", "violet-kettle-93-drum", "violet-kettle-93-drum", token.clone())).send().await.unwrap();
        assert_eq!(res.status(), 303);
        // Signed in as the new admin.
        let home = client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
        assert!(home.contains("Signed in as <strong>root</strong>"));
        // And the page is gone.
        let res = app.client().get(app.url(&format!("/setup?token={token}"))).send().await.unwrap();
        assert_eq!(res.status(), 404);
    }

    async fn login_renews_the_session_and_logout_kills_it(backend) {
        let app = spawn_app(&backend).await;
        app.create_user("alice", Role::Staff).await;
        let client = app.client();
        let res = app.login(&client, "alice", "wrong-password-123").await;
        assert_eq!(res.status(), 200);
        assert!(res.text().await.unwrap().contains("The username or password is incorrect."));
        let res = app.login(&client, "nobody", PASSWORD).await;
        assert!(res.text().await.unwrap().contains("The username or password is incorrect."));
        let res = app.login(&client, "alice", PASSWORD).await;
        assert_eq!(res.status(), 303);
        let cookie = res.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
        let session_cookie = cookie.split(';').next().unwrap().to_owned();
        assert_eq!(client.get(app.url("/")).send().await.unwrap().status(), 200);

        let page = client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
        let csrf = extract_csrf(&page).unwrap();
        let res = client.post(app.url("/logout")).form(&[("csrf_token", csrf)]).send().await.unwrap();
        assert_eq!(res.status(), 303);
        assert_eq!(res.headers().get("clear-site-data").unwrap(), "\"cache\", \"cookies\", \"storage\"");
        // Replaying the old cookie does not work: the session is gone server-side.
        let replay = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
            .get(app.url("/")).header("cookie", session_cookie).send().await.unwrap();
        assert_eq!(replay.status(), 303);
        assert_eq!(location(&replay), "/login");
    }
}
