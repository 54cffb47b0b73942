//! Malformed addresses, filter values and bodies get a clear 400, 404 or
//! 413 page, never a 500.

use custos::db::models::Role;

use crate::backend_tests;
use crate::fixtures::*;
use crate::helpers::*;

backend_tests! {
    async fn bad_query_strings_and_filter_values_get_a_400_page_with_the_reason(backend) {
        let app = spawn_app(&backend).await;
        seed(&app, 10, 2).await;
        let client = app.signed_in("alice", Role::Staff).await;
        let long_search = "a".repeat(501);
        let huge = "x".repeat(9000);
        let cases: Vec<(String, &str)> = vec![
            ("/customers?search=%zz".into(), "bad percent-encoding"),
            ("/customers?search=%ff".into(), "not valid UTF-8"),
            ("/customers?search=%E2%82".into(), "not valid UTF-8"),
            (format!("/customers?search={long_search}"), "search: Ensure this value has at most 500 characters (it has 501)."),
            (format!("/customers?q={huge}"), "longer than 8192 characters"),
            ("/customers?status=bogus".into(), "status: Select a valid choice. bogus is not one of the available choices."),
            ("/customers?plan=gold&country=XX".into(), "plan: Select a valid choice. gold is not one of the available choices. country: Select a valid choice. XX is not one of the available choices."),
            ("/customers?operator=abc".into(), "operator: Enter a number."),
            ("/customers?created_after=2024-13-01".into(), "created_after: Enter a valid date."),
            ("/customers?created_before=yesterday".into(), "created_before: Enter a valid date."),
            ("/customers/export.csv?status=%3Cscript%3E".into(), "status: Select a valid choice. &#60;script&#62; is not one of the available choices."),
            ("/customers/export.csv?search=%ff".into(), "not valid UTF-8"),
            ("/operators?country=ZZ".into(), "country: Select a valid choice. ZZ is not one of the available choices."),
            ("/operators?search=%".into(), "bad percent-encoding"),
        ];
        for (path, reason) in cases {
            let res = client.get(app.url(&path)).send().await.unwrap();
            assert_eq!(res.status(), 400, "{path}");
            assert!(res.headers().get("content-type").unwrap().to_str().unwrap().starts_with("text/html"));
            let html = res.text().await.unwrap();
            assert!(html.contains(reason), "{path}: expected {reason:?} in\n{html}");
            assert!(html.contains("Signed in as <strong>alice</strong>"), "{path}: the error page keeps the navigation");
        }
        // Unknown parameters and empty values are ignored.
        for path in ["/customers?foo=bar&status=&plan=", "/operators?x=%20&ordering=bogus", "/customers?page_size=abc"] {
            assert_eq!(client.get(app.url(path)).send().await.unwrap().status(), 200, "{path}");
        }
    }

    async fn missing_records_and_pages_get_a_404_page(backend) {
        let app = spawn_app(&backend).await;
        seed(&app, 10, 2).await;
        let client = app.signed_in("alice", Role::Staff).await;
        for path in [
            "/customers/999",
            "/customers/0",
            "/customers/-1",
            "/customers/abc",
            "/customers/1.5",
            "/customers/99999999999999999999999",
            "/customers/%ff",
            "/operators/3",
            "/operators/x",
            "/customers?page=0",
            "/customers?page=2",
            "/customers?page=x",
            "/customers?page=-1",
            "/operators?page=9",
            "/customers/1/extra",
        ] {
            let res = client.get(app.url(path)).send().await.unwrap();
            assert_eq!(res.status(), 404, "{path}");
            let html = res.text().await.unwrap();
            assert!(html.contains("Not found"), "{path}");
        }
        // Other methods on a page are refused, not served.
        let res = client.delete(app.url("/customers/1")).send().await.unwrap();
        assert_eq!(res.status(), 405);
        let res = client.post(app.url("/customers")).form(&[("a", "b")]).send().await.unwrap();
        assert_eq!(res.status(), 405);
    }

    async fn oversized_or_malformed_form_bodies_are_refused_without_a_500(backend) {
        let app = spawn_app(&backend).await;
        let client = app.signed_in("alice", Role::Staff).await;
        let page = client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
        let csrf = extract_csrf(&page).unwrap();
        for size in [20 * 1024, 200 * 1024, 2 * 1024 * 1024] {
            let body = format!("csrf_token={csrf}&pad={}", "x".repeat(size));
            let res = client
                .post(app.url("/logout"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await;
            // A server may close the connection on a body far over the
            // limit; if it answers, it answers 413.
            if let Ok(res) = res {
                assert_eq!(res.status(), 413, "{size} bytes");
            }
        }
        // The session survived.
        assert_eq!(client.get(app.url("/")).send().await.unwrap().status(), 200);
        // Garbage bodies.
        for body in ["%ff%fe=1", "csrf_token=%zz", "\u{0}\u{1}"] {
            let res = client
                .post(app.url("/logout"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(res.status().is_client_error(), "{body:?}: {}", res.status());
        }
        let anon = app.client();
        let res = anon
            .post(app.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("username=a&password={}", "x".repeat(100 * 1024)))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 413);
    }
}
