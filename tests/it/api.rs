//! The JSON API: authentication answers, bodies, pagination, filters,
//! ordering, methods, audit and the OpenAPI document, compared exactly
//! with what Django REST framework answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use custos::db::models::{NewCustomer, Role};
use reqwest::Method;
use serde_json::{Value, json};

use crate::api_support::*;
use crate::backend_tests;
use crate::helpers::*;

const NOT_PROVIDED: &str = r#"{"detail":"Authentication credentials were not provided."}"#;

fn detail(msg: &str) -> String {
    json!({ "detail": msg }).to_string()
}

async fn app_with_data(backend: &Backend) -> (TestApp, String) {
    let app = spawn_app_with(backend, GENEROUS).await;
    load_data(&app).await;
    let (_, token) = user_with_token(&app, "script").await;
    (app, token)
}

/// All ids a list query returns, following `next` links to the end.
async fn all_ids(app: &TestApp, token: &str, path_and_query: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut url = app.url(path_and_query);
    loop {
        let res = plain_client()
            .get(&url)
            .header("authorization", format!("Token {token}"))
            .send()
            .await
            .unwrap();
        let a = read(res).await;
        assert_eq!(a.status, 200, "{url}: {}", a.body);
        let body = a.json();
        ids.extend(ids_of(&body));
        match body["next"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    ids
}

fn sorted_ids(rows: &[&NewCustomer]) -> Vec<i64> {
    let mut ids: Vec<i64> = rows.iter().map(|c| c.id).collect();
    ids.sort();
    ids
}

backend_tests! {
    async fn every_missing_or_bad_credential_gets_drfs_exact_401(backend) {
        let (app, token) = app_with_data(&backend).await;
        let path = "/api/v1/customers/";
        let cases: Vec<(Option<Vec<u8>>, String)> = vec![
            (None, NOT_PROVIDED.to_owned()),
            (Some(b"Basic YWxpY2U6c2VjcmV0".to_vec()), NOT_PROVIDED.to_owned()),
            (Some(b"Tokens abc".to_vec()), NOT_PROVIDED.to_owned()),
            (Some(b"Token".to_vec()), detail("Invalid token header. No credentials provided.")),
            (Some(b"bearer  ".to_vec()), detail("Invalid token header. No credentials provided.")),
            (Some(b"Token a b".to_vec()), detail("Invalid token header. Token string should not contain spaces.")),
            (Some(b"Token \xff\xfe".to_vec()), detail("Invalid token header. Token string should not contain invalid characters.")),
            (Some(b"Token 0123456789abcdef0123456789abcdef01234567".to_vec()), detail("Invalid token.")),
            (Some(b"Token ' OR 1=1 --".to_vec()), detail("Invalid token header. Token string should not contain spaces.")),
            (Some(b"Token 'OR'1'='1".to_vec()), detail("Invalid token.")),
            (Some(format!("Token {}", token.to_uppercase()).into_bytes()), detail("Invalid token.")),
        ];
        for (header, expected) in cases {
            let a = api_request(&app, Method::GET, path, header.as_deref()).await;
            assert_eq!(a.status, 401, "{header:?}");
            assert_eq!(a.body, expected, "{header:?}");
            assert_eq!(a.header("www-authenticate"), Some("Token"), "{header:?}");
            assert_eq!(a.header("content-type"), Some("application/json"));
            assert_eq!(a.header("x-ratelimit-limit"), None, "401s are not counted");
        }
        // The keyword is case-insensitive, and Bearer works too.
        for keyword in ["Token", "token", "TOKEN", "Bearer", "bearer"] {
            let value = format!("{keyword} {token}");
            let a = api_request(&app, Method::GET, path, Some(value.as_bytes())).await;
            assert_eq!(a.status, 200, "{keyword}");
        }
        // Revoked, expired, inactive.
        let (uid, revoked) = user_with_token(&app, "revoked").await;
        let r = revoked.clone();
        app.with_db(move |conn| {
            let id = custos::auth::tokens::list_tokens(conn, uid).unwrap()[0].id;
            let _ = r;
            custos::auth::tokens::revoke_token(conn, id, Some(uid)).unwrap();
        }).await;
        let a = api_get(&app, &revoked, path).await;
        assert_eq!((a.status, a.body.as_str()), (401, detail("Invalid token.").as_str()));

        let expired_uid = app.create_user("expired", Role::Staff).await;
        let expired = custos::auth::tokens::generate_token();
        let e = expired.clone();
        app.with_db(move |conn| {
            let past = custos::db::now() - chrono::Duration::seconds(1);
            custos::auth::tokens::store_token(conn, expired_uid, &e, Some(past)).unwrap();
        }).await;
        let a = api_get(&app, &expired, path).await;
        assert_eq!((a.status, a.body.as_str()), (401, detail("Invalid token.").as_str()));

        // A user made inactive behind the application's back (a token that
        // was not revoked): DRF's inactive message.
        let (inactive_uid, inactive) = user_with_token(&app, "inactive").await;
        app.with_db(move |conn| {
            use custos::db::schema::users;
            use diesel::prelude::*;
            diesel::update(users::table.find(inactive_uid)).set(users::is_active.eq(false)).execute(conn).unwrap();
        }).await;
        let a = api_get(&app, &inactive, path).await;
        assert_eq!((a.status, a.body.as_str()), (401, detail("User inactive or deleted.").as_str()));
        assert_eq!(a.header("www-authenticate"), Some("Token"));
    }

    async fn the_session_cookie_gives_no_api_access(backend) {
        let app = spawn_app_with(&backend, GENEROUS).await;
        load_data(&app).await;
        let browser = app.signed_in("alice", Role::Admin).await;
        assert_eq!(browser.get(app.url("/")).send().await.unwrap().status(), 200);
        let a = read(browser.get(app.url("/api/v1/customers/")).send().await.unwrap()).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.body, NOT_PROVIDED);
        assert!(a.header("set-cookie").is_none(), "the API never touches the session");
    }

    async fn list_and_detail_bodies_match_drf_exactly(backend) {
        let (app, token) = app_with_data(&backend).await;
        let all = customers();
        let base = format!("http://127.0.0.1:{}", app.port);

        let a = api_get(&app, &token, "/api/v1/customers/?page_size=2").await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("content-type"), Some("application/json"));
        assert_eq!(a.header("allow"), Some("GET, HEAD, OPTIONS"));
        assert_eq!(a.header("vary"), Some("Accept"));
        assert!(a.header("x-ratelimit-limit").is_some());
        let expected = json!({
            "count": all.len(),
            "next": format!("{base}/api/v1/customers/?page=2&page_size=2"),
            "previous": null,
            "results": [expected_customer(&all[0]), expected_customer(&all[1])],
        });
        assert_eq!(a.body, expected.to_string());

        let special = all.iter().find(|c| c.full_name == "Zoë Ærøskøbing").unwrap();
        let a = api_get(&app, &token, &format!("/api/v1/customers/{}/", special.id)).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body, expected_customer(special).to_string());
        assert!(a.body.contains("Zoë Ærøskøbing"), "UTF-8 as is, like DRF's ensure_ascii=False");
        // Without the trailing slash too.
        let b = api_get(&app, &token, &format!("/api/v1/customers/{}", special.id)).await;
        assert_eq!((b.status, b.body), (200, a.body));

        let a = api_get(&app, &token, "/api/v1/operators/").await;
        assert_eq!(a.status, 200);
        assert_eq!(
            a.body,
            r#"{"count":3,"next":null,"previous":null,"results":[{"id":1,"name":"Nordwind Telecom","country":"DE","support_email":"help@nordwind.example","created_at":"2020-01-02T03:04:00Z"},{"id":2,"name":"Helios_Energy 100%","country":"FR","support_email":"support@helios.example","created_at":"2021-06-07T08:09:00Z"},{"id":3,"name":"Øster Mobile","country":"DK","support_email":"kontakt@oster.example","created_at":"2022-11-12T13:14:00Z"}]}"#
        );
        let a = api_get(&app, &token, "/api/v1/operators/2").await;
        assert_eq!(
            a.body,
            r#"{"id":2,"name":"Helios_Energy 100%","country":"FR","support_email":"support@helios.example","created_at":"2021-06-07T08:09:00Z"}"#
        );
        // Operator search treats % and _ literally.
        let a = api_get(&app, &token, "/api/v1/operators/?search=s_e").await;
        assert_eq!(ids_of(&a.json()), vec![2]);
        let a = api_get(&app, &token, "/api/v1/operators/?search=%25").await;
        assert_eq!(ids_of(&a.json()), vec![2]);
        let a = api_get(&app, &token, "/api/v1/operators/?search=mobile&country=dk").await;
        assert_eq!(ids_of(&a.json()), vec![3]);

        // Sub-second timestamps keep DRF's microseconds.
        app.with_db(|conn| {
            use custos::db::schema::operators;
            use diesel::prelude::*;
            let t = at(2024, 5, 1, 12, 30) + chrono::Duration::microseconds(1500);
            diesel::update(operators::table.find(3)).set(operators::created_at.eq(t)).execute(conn).unwrap();
        }).await;
        let a = api_get(&app, &token, "/api/v1/operators/3/").await;
        assert!(a.body.contains(r#""created_at":"2024-05-01T12:30:00.001500Z""#), "{}", a.body);
    }

    async fn missing_objects_and_bad_ids_answer_drfs_404s(backend) {
        let (app, token) = app_with_data(&backend).await;
        let cases = [
            ("/api/v1/customers/999999/", "No Customer matches the given query."),
            ("/api/v1/customers/999999", "No Customer matches the given query."),
            ("/api/v1/operators/42/", "No Operator matches the given query."),
            ("/api/v1/customers/abc/", "Not found."),
            ("/api/v1/customers/1%27%20OR%201=1/", "Not found."),
            ("/api/v1/operators/99999999999999999999999/", "Not found."),
            ("/api/v1/nothing-here/", "Not found."),
        ];
        for (path, msg) in cases {
            let a = api_get(&app, &token, path).await;
            assert_eq!(a.status, 404, "{path}");
            assert_eq!(a.body, detail(msg), "{path}");
            assert_eq!(a.header("content-type"), Some("application/json"));
        }
        // The detail view filters like the list (DRF filters its queryset).
        let c = customers().into_iter().find(|c| c.status == "active").unwrap();
        let a = api_get(&app, &token, &format!("/api/v1/customers/{}/?status=closed", c.id)).await;
        assert_eq!(a.body, detail("No Customer matches the given query."));
        let a = api_get(&app, &token, &format!("/api/v1/customers/{}/?status=active", c.id)).await;
        assert_eq!(a.status, 200);
        let a = api_get(&app, &token, &format!("/api/v1/customers/{}/?status=bogus", c.id)).await;
        assert_eq!(a.status, 400);
    }

    async fn pagination_edges_follow_drfs_page_number_pagination(backend) {
        let (app, token) = app_with_data(&backend).await;
        let total = customers().len() as i64; // 120
        let base = format!("http://127.0.0.1:{}", app.port);
        let get = |q: &str| {
            let q = q.to_owned();
            let app = &app;
            let token = &token;
            async move { api_get(app, token, &format!("/api/v1/customers/{q}")).await }
        };
        // Default page size 50.
        let a = get("").await.json();
        assert_eq!(a["count"], total);
        assert_eq!(ids_of(&a).len(), 50);
        assert_eq!(a["next"], format!("{base}/api/v1/customers/?page=2"));
        assert_eq!(a["previous"], Value::Null);
        // page=last
        let a = get("?page=last&page_size=50").await.json();
        assert_eq!(ids_of(&a), (101..=total).collect::<Vec<_>>());
        assert_eq!(a["next"], Value::Null);
        assert_eq!(a["previous"], format!("{base}/api/v1/customers/?page=2&page_size=50"));
        // previous to page 1 drops `page`; other parameters are sorted and re-encoded.
        let a = get("?status=active&page=2&search=a&page_size=10&ordering=-id").await.json();
        assert_eq!(a["previous"], format!("{base}/api/v1/customers/?ordering=-id&page_size=10&search=a&status=active"));
        assert_eq!(a["next"], format!("{base}/api/v1/customers/?ordering=-id&page=3&page_size=10&search=a&status=active"));
        let a = get("?search=%22anna%20smith%22&zz=%C3%A9&flag&page_size=1").await.json();
        assert_eq!(a["next"], format!("{base}/api/v1/customers/?flag=&page=2&page_size=1&search=%22anna+smith%22&zz=%C3%A9"));
        // Without the trailing slash the links keep the path as requested.
        let a = api_get(&app, &token, "/api/v1/customers?page_size=100").await.json();
        assert_eq!(a["next"], format!("{base}/api/v1/customers?page=2&page_size=100"));
        // An empty page value is page 1 (DRF: `get("page") or 1`).
        assert_eq!(get("?page=").await.status, 200);
        // Invalid pages.
        for q in ["?page=0", "?page=-1", "?page=x", "?page=3&page_size=60", "?page=1.0", "?page=99999999999999999999", "?page=LAST"] {
            let a = get(q).await;
            assert_eq!((a.status, a.body.as_str()), (404, detail("Invalid page.").as_str()), "{q}");
        }
        // page_size: clamped to 100; invalid values mean the default.
        assert_eq!(ids_of(&get("?page_size=500").await.json()).len(), 100);
        for q in ["?page_size=0", "?page_size=-5", "?page_size=x", "?page_size="] {
            assert_eq!(ids_of(&get(q).await.json()).len(), 50, "{q}");
        }
        // An empty result still has page 1, but no page 2.
        let a = get("?search=nobody-has-this-name").await;
        assert_eq!(a.body, r#"{"count":0,"next":null,"previous":null,"results":[]}"#);
        assert_eq!(get("?search=nobody-has-this-name&page=2").await.status, 404);
        assert_eq!(get("?search=nobody-has-this-name&page=last").await.status, 200);
    }

    async fn filters_and_search_match_an_independent_expectation(backend) {
        let (app, token) = app_with_data(&backend).await;
        let all = customers();
        let lower = |s: &str| s.to_lowercase();
        // (query string, search terms as DRF splits them, other filters)
        type Pred = Box<dyn Fn(&NewCustomer) -> bool>;
        let cases: Vec<(&str, Vec<&str>, Pred)> = vec![
            ("search=anna", vec!["anna"], Box::new(|_| true)),
            ("search=anna+smith", vec!["anna", "smith"], Box::new(|_| true)),
            ("search=anna,smith", vec!["anna", "smith"], Box::new(|_| true)),
            ("search=%22anna+smith%22", vec!["anna smith"], Box::new(|_| true)),
            ("search=%22smith,+anna%22", vec!["smith, anna"], Box::new(|_| true)),
            ("search=100%25", vec!["100%"], Box::new(|_| true)),
            ("search=%25", vec!["%"], Box::new(|_| true)),
            ("search=under_score", vec!["under_score"], Box::new(|_| true)),
            ("search=_", vec!["_"], Box::new(|_| true)),
            ("search=o%27brien", vec!["o'brien"], Box::new(|_| true)),
            ("search=o%27", vec!["o'"], Box::new(|_| true)),
            // DRF quirk kept: a lone quote is an empty quoted phrase, matching all.
            ("search=%27", vec![""], Box::new(|_| true)),
            ("search=zo%C3%AB", vec!["zoë"], Box::new(|_| true)),
            ("search=%C3%86R%C3%98", vec!["ærø"], Box::new(|_| true)),
            ("search=%C5%81ukasz", vec!["łukasz"], Box::new(|_| true)),
            ("search=m%C3%BCller", vec!["müller"], Box::new(|_| true)),
            ("search=back%5Cslash", vec!["back\\slash"], Box::new(|_| true)),
            ("search=%5C", vec!["\\"], Box::new(|_| true)),
            ("search=%27say+%22hi%22+there%27", vec!["say \"hi\" there"], Box::new(|_| true)),
            ("search=%2B49+30", vec!["+49", "30"], Box::new(|_| true)),
            ("search=example.com", vec!["example.com"], Box::new(|_| true)),
            ("status=active", vec![], Box::new(|c| c.status == "active")),
            ("status=suspended&plan=pro", vec![], Box::new(|c| c.status == "suspended" && c.plan == "pro")),
            ("country=de", vec![], Box::new(|c| c.country == "DE")),
            ("operator=2&plan=basic", vec![], Box::new(|c| c.operator_id == 2 && c.plan == "basic")),
            ("created_after=2023-03-01&created_before=2023-04-30", vec![], Box::new(|c| {
                let d = c.created_at.date();
                d >= chrono::NaiveDate::from_ymd_opt(2023, 3, 1).unwrap() && d <= chrono::NaiveDate::from_ymd_opt(2023, 4, 30).unwrap()
            })),
            ("search=smith&status=closed&country=FR", vec!["smith"], Box::new(|c| c.status == "closed" && c.country == "FR")),
            ("status=&plan=&search=&unknown=1", vec![], Box::new(|_| true)),
        ];
        for (query, terms, pred) in cases {
            let expected: Vec<&NewCustomer> = all
                .iter()
                .filter(|c| {
                    let fields = [lower(&c.full_name), lower(&c.email), lower(&c.phone)];
                    terms.iter().all(|t| fields.iter().any(|f| f.contains(&lower(t))))
                })
                .filter(|c| pred(c))
                .collect();
            let got = all_ids(&app, &token, &format!("/api/v1/customers/?page_size=40&{query}")).await;
            assert_eq!(got, sorted_ids(&expected), "{query}");
            if query.starts_with("search=%25") || query.starts_with("search=_") {
                assert!(got.len() < all.len(), "{query}: wildcards must be literal");
            }
        }
    }

    async fn ordering_matches_an_independent_expectation_and_ignores_unknown_fields(backend) {
        let (app, token) = app_with_data(&backend).await;
        let all = customers();
        type Key = Box<dyn Fn(&NewCustomer, &NewCustomer) -> std::cmp::Ordering>;
        let cases: Vec<(&str, Key)> = vec![
            ("", Box::new(|a, b| a.id.cmp(&b.id))),
            ("ordering=-id", Box::new(|a, b| b.id.cmp(&a.id))),
            ("ordering=full_name", Box::new(|a, b| a.full_name.cmp(&b.full_name).then(a.id.cmp(&b.id)))),
            ("ordering=-full_name", Box::new(|a, b| b.full_name.cmp(&a.full_name).then(a.id.cmp(&b.id)))),
            ("ordering=-created_at,-id", Box::new(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)))),
            ("ordering=created_at", Box::new(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)))),
            ("ordering=bogus,-full_name", Box::new(|a, b| b.full_name.cmp(&a.full_name).then(a.id.cmp(&b.id)))),
            ("ordering=bogus", Box::new(|a, b| a.id.cmp(&b.id))),
            ("ordering=email", Box::new(|a, b| a.id.cmp(&b.id))),
            ("ordering=search_text", Box::new(|a, b| a.id.cmp(&b.id))),
            ("ordering=%20-created_at%20,full_name", Box::new(|a, b| b.created_at.cmp(&a.created_at).then(a.full_name.cmp(&b.full_name)).then(a.id.cmp(&b.id)))),
        ];
        for (query, key) in cases {
            let mut expected: Vec<&NewCustomer> = all.iter().collect();
            expected.sort_by(|a, b| key(a, b));
            let expected: Vec<i64> = expected.iter().map(|c| c.id).collect();
            let got = all_ids(&app, &token, &format!("/api/v1/customers/?page_size=33&{query}")).await;
            assert_eq!(got, expected, "{query}");
        }
    }

    async fn invalid_filter_values_answer_400_naming_the_field(backend) {
        let (app, token) = app_with_data(&backend).await;
        let cases = [
            ("status=bogus", r#"{"status":["Select a valid choice. bogus is not one of the available choices."]}"#),
            ("plan=gold&country=XX", r#"{"plan":["Select a valid choice. gold is not one of the available choices."],"country":["Select a valid choice. XX is not one of the available choices."]}"#),
            ("created_after=2024-02-30", r#"{"created_after":["Enter a valid date."]}"#),
            ("status=%27%20OR%201%3D1--", r#"{"status":["Select a valid choice. ' OR 1=1-- is not one of the available choices."]}"#),
        ];
        for (q, body) in cases {
            let a = api_get(&app, &token, &format!("/api/v1/customers/?{q}")).await;
            assert_eq!(a.status, 400, "{q}");
            assert_eq!(a.body, body, "{q}");
            assert_eq!(a.header("content-type"), Some("application/json"));
        }
        let a = api_get(&app, &token, "/api/v1/customers/?search=%ZZ").await;
        assert_eq!(a.status, 400);
        assert!(a.json()["detail"].is_string());
        let a = api_get(&app, &token, "/api/v1/customers/?search=%FF").await;
        assert_eq!(a.status, 400);
        let long = "a".repeat(600);
        let a = api_get(&app, &token, &format!("/api/v1/customers/?search={long}")).await;
        assert_eq!(a.status, 400);
        assert!(a.json()["search"].is_array());
    }

    async fn other_methods_get_405_with_allow_after_authentication(backend) {
        let (app, token) = app_with_data(&backend).await;
        let auth = format!("Token {token}");
        for (method, path) in [
            (Method::POST, "/api/v1/customers/"),
            (Method::PUT, "/api/v1/customers/1/"),
            (Method::PATCH, "/api/v1/customers/1"),
            (Method::DELETE, "/api/v1/operators/1/"),
            (Method::POST, "/api/v1/operators"),
        ] {
            let a = api_request(&app, method.clone(), path, Some(auth.as_bytes())).await;
            assert_eq!(a.status, 405, "{method} {path}");
            assert_eq!(a.body, format!(r#"{{"detail":"Method \"{method}\" not allowed."}}"#));
            assert_eq!(a.header("allow"), Some("GET, HEAD, OPTIONS"));
            // Anonymous: authentication comes first.
            let a = api_request(&app, method.clone(), path, None).await;
            assert_eq!(a.status, 401, "{method} {path}");
            assert_eq!(a.body, NOT_PROVIDED);
        }
    }

    async fn head_and_options_answer_like_drf(backend) {
        let (app, token) = app_with_data(&backend).await;
        let auth = format!("Token {token}");
        let a = api_request(&app, Method::HEAD, "/api/v1/customers/", Some(auth.as_bytes())).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body, "");
        assert_eq!(a.header("content-type"), Some("application/json"));
        let a = api_request(&app, Method::HEAD, "/api/v1/customers/", None).await;
        assert_eq!(a.status, 401);
        let a = api_request(&app, Method::OPTIONS, "/api/v1/customers/", Some(auth.as_bytes())).await;
        assert_eq!(a.status, 200);
        assert_eq!(
            a.body,
            r#"{"name":"Customer List","description":"","renders":["application/json"],"parses":["application/json","application/x-www-form-urlencoded","multipart/form-data"]}"#
        );
        assert_eq!(a.header("allow"), Some("GET, HEAD, OPTIONS"));
        let a = api_request(&app, Method::OPTIONS, "/api/v1/operators/3/", Some(auth.as_bytes())).await;
        assert_eq!(a.json()["name"], "Operator Instance");
        let a = api_request(&app, Method::OPTIONS, "/api/v1/operators/", None).await;
        assert_eq!(a.status, 401);
    }

    async fn every_api_call_is_audited_with_rows_or_customer_ids(backend) {
        let (app, token) = app_with_data(&backend).await;
        api_get(&app, &token, "/api/v1/customers/?page_size=7&status=active").await;
        api_get(&app, &token, "/api/v1/customers/5/").await;
        api_get(&app, &token, "/api/v1/operators/1/").await;
        api_get(&app, &token, "/api/v1/customers/999999/").await;
        let rows = app.with_db(|conn| {
            use custos::db::models::AuditEntry;
            use custos::db::schema::audit_log;
            use diesel::prelude::*;
            audit_log::table
                .filter(audit_log::kind.eq("api_call"))
                .order(audit_log::id.asc())
                .select(AuditEntry::as_select())
                .load(conn)
                .unwrap()
        }).await;
        assert_eq!(rows.len(), 4, "{rows:?}");
        assert!(rows.iter().all(|r| r.username.as_deref() == Some("script")));
        assert_eq!(rows[0].row_count, Some(7));
        assert_eq!(rows[0].path, "/api/v1/customers/?page_size=7&status=active");
        assert_eq!(rows[1].customer_ids.as_deref(), Some("5"));
        assert_eq!(rows[2].row_count, Some(1));
        assert!(rows[3].detail.contains("404"), "{:?}", rows[3]);
        assert_eq!(rows[3].row_count, None);
    }

    async fn the_openapi_document_is_valid_3_1_and_lists_exactly_the_served_routes(backend) {
        let (app, token) = app_with_data(&backend).await;
        let a = read(plain_client().get(app.url("/api/v1/openapi.json")).send().await.unwrap()).await;
        assert_eq!(a.status, 200, "public");
        assert_eq!(a.header("content-type"), Some("application/json"));
        let doc = a.json();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
        let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
        let served: BTreeSet<String> = custos::web::api::ROUTES.iter().map(|r| r.path.to_owned()).collect();
        assert_eq!(documented, served);
        // Every route of the application under /api is documented.
        let all: BTreeSet<String> = custos::web::all_routes().iter().filter(|r| r.path.starts_with("/api/")).map(|r| r.path.to_owned()).collect();
        assert_eq!(documented, all);
        // Each documented path really is served (and methods match).
        let auth = format!("Token {token}");
        for route in custos::web::api::ROUTES {
            let path = route.path.replace("{id}", "1");
            let item = &doc["paths"][route.path];
            for m in route.methods {
                assert!(item[m.to_lowercase()].is_object(), "{} {m} undocumented", route.path);
                let a = api_request(&app, Method::from_bytes(m.as_bytes()).unwrap(), &path, Some(auth.as_bytes())).await;
                assert_eq!(a.status, 200, "{m} {path}: {}", a.body);
            }
            if route.path.contains("openapi") {
                assert_eq!(item["get"]["security"], json!([]));
            } else {
                assert!(item["get"]["responses"]["401"].is_object());
                assert!(item["get"]["responses"]["429"].is_object());
                assert!(item["get"]["responses"]["404"].is_object());
                assert!(item["get"]["responses"]["400"].is_object());
            }
        }
        // The token scheme.
        assert_eq!(doc["components"]["securitySchemes"]["tokenAuth"]["name"], "Authorization");
        assert!(doc["security"].as_array().unwrap().iter().any(|s| s.get("tokenAuth").is_some()));
        // Every $ref resolves inside the document.
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, v) in m {
                        if k == "$ref" { out.push(v.as_str().unwrap().to_owned()); } else { refs(v, out); }
                    }
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all_refs = Vec::new();
        refs(&doc, &mut all_refs);
        assert!(!all_refs.is_empty());
        for r in all_refs {
            let pointer = r.strip_prefix('#').unwrap();
            assert!(doc.pointer(pointer).is_some(), "dangling {r}");
        }
        // Path parameters are declared for templated paths.
        for (path, item) in doc["paths"].as_object().unwrap() {
            if path.contains("{id}") {
                let params = item["get"]["parameters"].as_array().unwrap();
                assert!(params.iter().any(|p| p["$ref"] == "#/components/parameters/id"), "{path}");
            }
        }
        // Only GET and HEAD on the document.
        let a = api_request(&app, Method::POST, "/api/v1/openapi.json", None).await;
        assert_eq!(a.status, 405);
        assert_eq!(a.header("allow"), Some("GET, HEAD"));
    }
}
