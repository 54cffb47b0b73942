//! Nobody sees data without signing in: the route-table walk, bookmarks
//! that survive the login, and `next` targets that cannot leave the site.

use crate::backend_tests;
use crate::fixtures::*;
use crate::helpers::*;
use custos::db::models::Role;
use custos::web::{Access, all_routes};

/// A concrete path for a route pattern: every `{...}` segment becomes 1.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| if seg.starts_with('{') { "1" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

fn anonymous() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

backend_tests! {
    async fn every_route_that_is_not_public_refuses_an_anonymous_request(backend) {
        let app = spawn_app(&backend).await;
        seed(&app, 30, 3).await;
        let customers = all_customers(&app).await;
        let client = anonymous();
        let routes: Vec<_> = all_routes().into_iter().filter(|r| r.access != Access::Public).collect();
        assert!(routes.len() >= 6, "the route table lists the protected pages: {routes:?}");
        for route in routes {
            let path = concrete(route.path);
            for method in route.methods {
                let target = if matches!(*method, "GET" | "HEAD") {
                    format!("{path}?status=active&q=a%20b")
                } else {
                    path.clone()
                };
                let req = match *method {
                    "GET" => client.get(app.url(&target)),
                    "POST" => client.post(app.url(&target)).form(&[("x", "")]),
                    "PUT" => client.put(app.url(&target)).form(&[("x", "")]),
                    "PATCH" => client.patch(app.url(&target)).form(&[("x", "")]),
                    "DELETE" => client.delete(app.url(&target)),
                    "HEAD" => client.head(app.url(&target)),
                    "OPTIONS" => client.request(reqwest::Method::OPTIONS, app.url(&target)),
                    other => panic!("the walk does not know method {other} of {}", route.path),
                };
                let res = req.send().await.unwrap();
                let status = res.status().as_u16();
                let loc = location(&res);
                let body = res.text().await.unwrap();
                let what = format!("{method} {target} ({:?})", route.access);
                match route.access {
                    Access::Token => assert_eq!(status, 401, "{what} answered {status}"),
                    _ if matches!(*method, "GET" | "HEAD") => {
                        assert_eq!(status, 303, "{what} answered {status}: {body}");
                        assert_eq!(loc, format!("/login?next={}", enc(&target)), "{what}");
                    }
                    _ => {
                        assert!(
                            (status == 303 && loc.starts_with("/login")) || status == 400 || status == 403,
                            "{what} answered {status} {loc}"
                        );
                    }
                }
                for c in &customers {
                    assert!(!body.contains(&c.email) && !body.contains(&c.full_name), "{what} leaked customer {}", c.id);
                }
            }
        }
    }

    async fn admin_routes_refuse_a_signed_in_staff_member(backend) {
        let app = spawn_app(&backend).await;
        let staff = app.signed_in("sam", Role::Staff).await;
        for route in all_routes().into_iter().filter(|r| r.access == Access::Admin) {
            if route.methods.contains(&"GET") {
                let res = staff.get(app.url(&concrete(route.path))).send().await.unwrap();
                assert_eq!(res.status(), 403, "GET {} for staff", route.path);
            }
        }
    }

    async fn a_change_to_the_user_behind_the_servers_back_counts_on_the_very_next_page(backend) {
        // The user's row is read for every page (no cache that could
        // outlive a change made by another instance or by hand).
        use custos::db::schema::{sessions, users};
        use diesel::prelude::*;
        let app = spawn_app(&backend).await;
        let admin = app.signed_in("ada", Role::Admin).await;
        assert_eq!(admin.get(app.url("/admin/users")).send().await.unwrap().status(), 200);
        // Demoted by hand: the next admin page is refused.
        app.with_db(|conn| {
            diesel::update(users::table.filter(users::username.eq("ada")))
                .set(users::role.eq("staff"))
                .execute(conn)
                .unwrap()
        })
        .await;
        assert_eq!(admin.get(app.url("/admin/users")).send().await.unwrap().status(), 403);
        assert_eq!(admin.get(app.url("/customers")).send().await.unwrap().status(), 200);
        // The stored session state holds no credentials.
        let states: Vec<String> = app
            .with_db(|conn| sessions::table.select(sessions::state).load(conn).unwrap())
            .await;
        assert!(!states.is_empty());
        for state in &states {
            assert!(!state.contains("argon2") && !state.contains("password"), "{state}");
        }
        // Deactivated by hand (its sessions left in place): the next page
        // is the login page, with no data.
        app.with_db(|conn| {
            diesel::update(users::table.filter(users::username.eq("ada")))
                .set(users::is_active.eq(false))
                .execute(conn)
                .unwrap()
        })
        .await;
        let res = admin.get(app.url("/customers")).send().await.unwrap();
        assert_eq!(res.status(), 303);
        assert_eq!(location(&res), "/login?next=/customers");
        assert_eq!(res.text().await.unwrap(), "");
    }

    async fn a_bookmarked_result_page_survives_the_login(backend) {
        let app = spawn_app(&backend).await;
        seed(&app, 60, 3).await;
        app.create_user("alice", Role::Staff).await;
        let client = app.client();
        let bookmark = "/customers?status=active&ordering=-created_at&search=a%20e&page_size=10";
        let res = client.get(app.url(bookmark)).send().await.unwrap();
        assert_eq!(res.status(), 303);
        let login_url = location(&res);
        assert_eq!(login_url, format!("/login?next={}", enc(bookmark)));
        assert_eq!(res.text().await.unwrap(), "", "no data in the redirect");
        // The login page carries the target in its form.
        let page = client.get(app.url(&login_url)).send().await.unwrap().text().await.unwrap();
        let marker = "name=\"next\" value=\"";
        let start = page.find(marker).unwrap() + marker.len();
        let next = unescape(&page[start..start + page[start..].find('"').unwrap()]);
        assert_eq!(next, bookmark);
        let res = app.login_next(&client, "alice", PASSWORD, &next).await;
        assert_eq!(res.status(), 303);
        assert_eq!(location(&res), bookmark, "lands exactly on the bookmark");
        let res = client.get(app.url(bookmark)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let html = res.text().await.unwrap();
        assert!(!ids_on_page(&html).is_empty() || html.contains("No customers match"));
    }

    async fn login_never_redirects_off_the_site(backend) {
        let app = spawn_app(&backend).await;
        app.create_user("alice", Role::Staff).await;
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "/%2F%2Fevil.example",
            "/%5Cevil.example",
            "javascript:alert(1)",
            "/%252F%252Fevil.example",
            "http:/evil.example",
        ] {
            let client = app.client();
            // As a query parameter on the login page...
            let page = client.get(app.url(&format!("/login?next={}", enc(bad)))).send().await.unwrap();
            assert_eq!(page.status(), 200);
            let html = page.text().await.unwrap();
            assert!(!html.contains("evil.example") && !html.contains("javascript:"), "{bad} kept in the form");
            // ...and as the submitted form field.
            let res = app.login_next(&client, "alice", PASSWORD, bad).await;
            assert_eq!(res.status(), 303, "{bad}");
            assert_eq!(location(&res), "/", "{bad}");
        }
    }
}
