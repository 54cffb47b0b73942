//! Request limits: the per-user quota (exact, persistent, shared), the
//! anonymous per-address limit, the burst limiter, and which client
//! address each of them sees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::TcpListener;

use custos::db::Database;
use custos::db::models::Role;
use custos::server::Application;
use diesel::prelude::*;
use reqwest::Method;

use crate::api_support::*;
use crate::backend_tests;
use crate::helpers::*;

fn throttled(n: u64) -> String {
    let unit = if n == 1 { "second" } else { "seconds" };
    format!(r#"{{"detail":"Request was throttled. Expected available in {n} {unit}."}}"#)
}

/// A server instance on a given environment, with a handle to stop it.
struct Instance {
    base: String,
    handle: actix_web::dev::ServerHandle,
}

impl Instance {
    async fn start(env: &HashMap<String, String>) -> Instance {
        let settings = settings_from(env);
        let database = Database::connect(&settings.database_url, settings.db_pool_size).unwrap();
        database.migrate().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let app = Application::build_with(settings, database, listener).unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        tokio::spawn(app.run());
        Instance { base, handle }
    }

    async fn get(&self, token: &str, path: &str) -> Answer {
        let res = plain_client()
            .get(format!("{}{path}", self.base))
            .header("authorization", format!("Token {token}"))
            .send()
            .await
            .unwrap();
        read(res).await
    }
}

/// Creates an account with a token directly in a database.
async fn token_in(database: &Database, username: &str) -> String {
    let database = database.clone();
    let username = username.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = database.get().unwrap();
        let hash = custos::auth::password::hash_password(PASSWORD).unwrap();
        let user =
            custos::auth::users::create(&mut conn, &username, &hash, Role::Staff, false).unwrap();
        let token = custos::auth::tokens::generate_token();
        custos::auth::tokens::store_token(&mut conn, user.id, &token, None).unwrap();
        token
    })
    .await
    .unwrap()
}

fn env_with(db: &TestDb, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = db.env();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

async fn history_rows(app: &TestApp) -> i64 {
    app.with_db(|conn| {
        use custos::db::schema::api_requests;
        api_requests::table.count().get_result::<i64>(conn).unwrap()
    })
    .await
}

const PATH: &str = "/api/v1/operators/";

backend_tests! {
    async fn the_quota_counts_like_drf_and_answers_429_with_retry_after(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_API_USER_RATE", "5/minute")]).await;
        load_data(&app).await;
        let (_, token) = user_with_token(&app, "script").await;
        let auth = format!("Token {token}");
        let mut remaining = Vec::new();
        // 200, 404 and 405 all count; 401s do not.
        let a = api_get(&app, &token, PATH).await;
        assert_eq!(a.status, 200);
        remaining.push(a.header("x-ratelimit-remaining").unwrap().to_owned());
        assert_eq!(a.header("x-ratelimit-limit"), Some("5"));
        let a = api_get(&app, &token, "/api/v1/operators/404/").await;
        assert_eq!(a.status, 404);
        remaining.push(a.header("x-ratelimit-remaining").unwrap().to_owned());
        let a = api_request(&app, Method::DELETE, "/api/v1/operators/1/", Some(auth.as_bytes())).await;
        assert_eq!(a.status, 405);
        remaining.push(a.header("x-ratelimit-remaining").unwrap().to_owned());
        for _ in 0..5 {
            let a = api_get(&app, "0123456789abcdef0123456789abcdef01234567", PATH).await;
            assert_eq!(a.status, 401);
            assert_eq!(api_request(&app, Method::GET, PATH, None).await.status, 401);
        }
        for _ in 0..2 {
            let a = api_get(&app, &token, PATH).await;
            assert_eq!(a.status, 200);
            remaining.push(a.header("x-ratelimit-remaining").unwrap().to_owned());
        }
        assert_eq!(remaining, ["4", "3", "2", "1", "0"]);
        for _ in 0..3 {
            let a = api_get(&app, &token, PATH).await;
            assert_eq!(a.status, 429);
            let wait: u64 = a.header("retry-after").unwrap().parse().unwrap();
            assert!((50..=60).contains(&wait), "{wait}");
            assert_eq!(a.body, throttled(wait));
            assert_eq!(a.header("x-ratelimit-remaining"), Some("0"));
            assert_eq!(a.header("content-type"), Some("application/json"));
        }
        // Throttled requests are not added to the history.
        assert_eq!(history_rows(&app).await, 5);
        // Another user has their own quota.
        let (_, other) = user_with_token(&app, "other").await;
        assert_eq!(api_get(&app, &other, PATH).await.status, 200);
    }

    async fn a_one_second_wait_is_worded_in_the_singular(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_API_USER_RATE", "1/second")]).await;
        let (_, token) = user_with_token(&app, "script").await;
        // Retry until both requests fall inside one second (a slow machine
        // may need a second try).
        let mut seen = None;
        for _ in 0..5 {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
            assert_eq!(api_get(&app, &token, PATH).await.status, 200);
            let a = api_get(&app, &token, PATH).await;
            if a.status == 429 {
                seen = Some(a);
                break;
            }
        }
        let a = seen.expect("a second request within one second is throttled");
        assert_eq!(a.body, r#"{"detail":"Request was throttled. Expected available in 1 second."}"#);
        assert_eq!(a.header("retry-after"), Some("1"));
    }

    async fn the_quota_survives_a_restart(backend) {
        let db = TestDb::new(&backend);
        let env = env_with(&db, &[("CUSTOS_API_USER_RATE", "3/hour")]);
        let first = Instance::start(&env).await;
        let token = token_in(&db.database(), "script").await;
        for _ in 0..2 {
            assert_eq!(first.get(&token, PATH).await.status, 200);
        }
        first.handle.stop(true).await;
        let second = Instance::start(&env).await;
        let a = second.get(&token, PATH).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("x-ratelimit-remaining"), Some("0"));
        let a = second.get(&token, PATH).await;
        assert_eq!(a.status, 429);
        let wait: u64 = a.header("retry-after").unwrap().parse().unwrap();
        assert!((3500..=3600).contains(&wait), "{wait}");
        second.handle.stop(true).await;
    }

    async fn instances_sharing_a_database_share_the_quota(backend) {
        let db = TestDb::new(&backend);
        let env = env_with(&db, &[("CUSTOS_API_USER_RATE", "4/hour")]);
        let a = Instance::start(&env).await;
        let b = Instance::start(&env).await;
        let token = token_in(&db.database(), "script").await;
        for (i, inst) in [&a, &b, &a, &b].into_iter().enumerate() {
            let r = inst.get(&token, PATH).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-ratelimit-remaining"), Some((3 - i).to_string().as_str()));
        }
        assert_eq!(a.get(&token, PATH).await.status, 429);
        assert_eq!(b.get(&token, PATH).await.status, 429);
        a.handle.stop(true).await;
        b.handle.stop(true).await;
    }

    async fn a_hundred_concurrent_requests_against_a_quota_of_twenty_let_exactly_twenty_through(backend) {
        let db = TestDb::new(&backend);
        let env = env_with(&db, &[("CUSTOS_API_USER_RATE", "20/hour"), ("CUSTOS_DB_POOL_SIZE", "16")]);
        // Two instances on the same database, to race across processes' pools too.
        let a = Instance::start(&env).await;
        let b = Instance::start(&env).await;
        let token = token_in(&db.database(), "script").await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..100 {
            let url = format!("{}{PATH}", if i % 2 == 0 { &a.base } else { &b.base });
            let token = token.clone();
            tasks.spawn(async move {
                plain_client()
                    .get(url)
                    .header("authorization", format!("Token {token}"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            });
        }
        let mut counts: HashMap<u16, usize> = HashMap::new();
        while let Some(status) = tasks.join_next().await {
            *counts.entry(status.unwrap()).or_default() += 1;
        }
        assert_eq!(counts.get(&200), Some(&20), "{counts:?}");
        assert_eq!(counts.get(&429), Some(&80), "{counts:?}");
        let rows = {
            let database = db.database();
            tokio::task::spawn_blocking(move || {
                use custos::db::schema::api_requests;
                api_requests::table.count().get_result::<i64>(&mut database.get().unwrap()).unwrap()
            }).await.unwrap()
        };
        assert_eq!(rows, 20);
        a.handle.stop(true).await;
        b.handle.stop(true).await;
    }

    async fn anonymous_api_requests_are_limited_per_client_address(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_API_ANON_RATE", "3/minute")]).await;
        let (_, token) = user_with_token(&app, "script").await;
        assert_eq!(api_request(&app, Method::GET, PATH, None).await.status, 401);
        assert_eq!(api_get(&app, "not-a-token", PATH).await.status, 401);
        assert_eq!(api_request(&app, Method::GET, "/api/v1/openapi.json", None).await.status, 200);
        let a = api_request(&app, Method::GET, PATH, None).await;
        assert_eq!(a.status, 429);
        let wait: u64 = a.header("retry-after").unwrap().parse().unwrap();
        assert!((50..=60).contains(&wait), "{wait}");
        assert_eq!(a.body, throttled(wait));
        assert_eq!(api_get(&app, "0123456789abcdef0123456789abcdef01234567", PATH).await.status, 429);
        assert_eq!(api_request(&app, Method::GET, "/api/v1/openapi.json", None).await.status, 429);
        // A valid token is not held back by the address's anonymous traffic.
        assert_eq!(api_get(&app, &token, PATH).await.status, 200);
    }

    async fn a_spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_bucket(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_API_ANON_RATE", "2/minute")]).await;
        let mut statuses = Vec::new();
        for fake in ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"] {
            let res = plain_client().get(app.url(PATH)).header("x-forwarded-for", fake).send().await.unwrap();
            statuses.push(res.status().as_u16());
        }
        assert_eq!(statuses, [401, 401, 429, 429]);
    }

    async fn a_forwarded_for_from_a_trusted_proxy_selects_the_clients_bucket(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_API_ANON_RATE", "2/minute"), ("CUSTOS_TRUSTED_PROXIES", "127.0.0.1")]).await;
        let get = |xff: &'static str| {
            let url = app.url(PATH);
            async move { plain_client().get(url).header("x-forwarded-for", xff).send().await.unwrap().status().as_u16() }
        };
        assert_eq!(get("203.0.113.1").await, 401);
        assert_eq!(get("203.0.113.1").await, 401);
        assert_eq!(get("203.0.113.1").await, 429);
        // The right-most untrusted hop counts, not what the client prepends.
        assert_eq!(get("192.0.2.9, 203.0.113.1").await, 429);
        assert_eq!(get("203.0.113.2").await, 401);
        assert_eq!(get("203.0.113.1, 203.0.113.2").await, 401);
        assert_eq!(get("203.0.113.2").await, 429);
    }

    async fn the_burst_limiter_refuses_a_flood_before_any_work(backend) {
        let app = spawn_app_with(&backend, &[("CUSTOS_BURST_PER_SECOND", "1"), ("CUSTOS_BURST_SIZE", "3"), ("CUSTOS_TRUSTED_PROXIES", "127.0.0.1")]).await;
        let get = |xff: &'static str| {
            let url = app.url("/healthz");
            async move { read(plain_client().get(url).header("x-forwarded-for", xff).send().await.unwrap()).await }
        };
        let mut statuses = Vec::new();
        let mut refused = None;
        for _ in 0..5 {
            let a = get("203.0.113.7").await;
            statuses.push(a.status);
            if a.status == 429 {
                refused = Some(a);
            }
        }
        // The burst of 3 passes; then refusals (one token may come back
        // if the machine is slow enough to take a second for this).
        assert_eq!(statuses[..3], [200, 200, 200]);
        assert!(statuses.iter().filter(|s| **s == 200).count() <= 4, "{statuses:?}");
        let a = refused.expect("a request over the burst is refused");
        assert_eq!(a.header("retry-after"), Some("1"));
        assert_eq!(a.body, throttled(1));
        assert_eq!(a.header("content-type"), Some("application/json"));
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"), "security headers still apply");
        // Another client address has its own bucket.
        assert_eq!(get("203.0.113.8").await.status, 200);
    }

    async fn deciding_a_whole_batch_at_once_gives_the_same_answers_as_user_by_user(backend) {
        // On PostgreSQL the writer decides a batch's users in one call of
        // the `custos_take_quotas` function; it must answer exactly as the
        // per-user statements (`take_batch`) do, through every path: a
        // fresh counter, requests leaving the window, a longer window.
        let db = TestDb::new(&backend);
        let database = db.database();
        tokio::task::spawn_blocking(move || {
            use custos::config::Rate;
            use custos::db::schema::{api_quota, api_requests};
            use custos::quota::{QuotaDecision, take_batch, take_batches};
            let mut conn = database.get().unwrap();
            let hash = custos::auth::password::hash_password(PASSWORD).unwrap();
            let ids: Vec<i64> = ["batch-a", "batch-b", "single-a", "single-b"]
                .iter()
                .map(|name| custos::auth::users::create(&mut conn, name, &hash, Role::Staff, false).unwrap().id)
                .collect();
            let (batched, single) = (&ids[..2], &ids[2..]);
            let short = Rate { requests: 4, period_secs: 2 };
            let long = Rate { requests: 8, period_secs: 5 };
            // (rate, requests of the first user, of the second, pause after)
            let steps = [
                (short, 1, 3, 0),
                (short, 2, 1, 0),
                (short, 3, 0, 0),
                (short, 1, 2, 2100),
                (short, 2, 5, 0),
                (long, 4, 2, 0),
                (long, 1, 1, 0),
            ];
            let same = |a: &QuotaDecision, b: &QuotaDecision| match (a, b) {
                (QuotaDecision::Throttled { limit: l1, wait_secs: w1 }, QuotaDecision::Throttled { limit: l2, wait_secs: w2 }) => {
                    // Decided a moment apart, the waits may straddle a second.
                    l1 == l2 && w1.abs_diff(*w2) <= 1
                }
                _ => a == b,
            };
            let mut seen = Vec::new();
            for (step, (rate, n1, n2, pause)) in steps.into_iter().enumerate() {
                let (together, apart) = custos::db::write_transaction(&mut conn, |conn| {
                    let wanted = [(batched[0], rate, n1), (batched[1], rate, n2)];
                    let together = take_batches(conn, &wanted)?;
                    let apart = vec![
                        take_batch(conn, single[0], rate, n1)?,
                        take_batch(conn, single[1], rate, n2)?,
                    ];
                    Ok::<_, diesel::result::Error>((together, apart))
                })
                .unwrap();
                assert_eq!(together.len(), 2);
                for (t, a) in together.iter().zip(&apart) {
                    assert_eq!(t.len(), a.len(), "step {step}");
                    assert!(t.iter().zip(a).all(|(x, y)| same(x, y)), "step {step}: {t:?} against {a:?}");
                }
                for (b, s) in batched.iter().zip(single) {
                    let counters: Vec<i64> = [b, s]
                        .iter()
                        .map(|id| api_quota::table.find(**id).select(api_quota::window_count).first(&mut conn).unwrap())
                        .collect();
                    assert_eq!(counters[0], counters[1], "step {step}: window counts");
                    let rows: Vec<i64> = [b, s]
                        .iter()
                        .map(|id| api_requests::table.filter(api_requests::user_id.eq(**id)).count().get_result(&mut conn).unwrap())
                        .collect();
                    assert_eq!(rows[0], rows[1], "step {step}: history rows");
                }
                seen.push(together);
                std::thread::sleep(std::time::Duration::from_millis(pause));
            }
            // The steps reached every path: refusals, a window that emptied
            // (the first user, full before the pause, is allowed again) and
            // a longer window counted in full (6 of 8 used: 2 of 4 refused).
            let refused = |d: &[QuotaDecision]| d.iter().filter(|d| !d.is_allowed()).count();
            assert_eq!(refused(&seen[2][0]), 2, "4 of 4 used: {:?}", seen[2][0]);
            assert_eq!(refused(&seen[4][0]), 0, "the window emptied: {:?}", seen[4][0]);
            assert_eq!(refused(&seen[4][1]), 1, "{:?}", seen[4][1]);
            assert_eq!(refused(&seen[5][0]), 2, "the longer window sees the earlier requests: {:?}", seen[5][0]);
            assert!(take_batches(&mut conn, &[]).unwrap().is_empty());
        })
        .await
        .unwrap();
    }
}
