//! Moving over from the Django original, with real Django-format hashes
//! and DRF keys (tests/fixtures, made by make_django_fixtures.py with
//! Python's hashlib).

use crate::admin_users::{page, token_works, user};
use crate::backend_tests;
use crate::helpers::*;
use crate::login_guard::audit_entries;
use custos::auth::login::GENERIC_FAILURE;
use custos::auth::tokens;
use custos::db::schema::{api_tokens, users};
use diesel::prelude::*;

/// The plain passwords behind the fixture hashes.
const ADA: (&str, &str) = ("ada.admin", "Ada-old-django-passphrase");
const BOB: (&str, &str) = ("bob", "bob's-old-django-passphrase");
const CAROL: (&str, &str) = ("carol+ops@example.com", "carol-old-django-passphrase");
const DAVE: (&str, &str) = ("dave.gone", "dave-old-django-passphrase");

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn fixture_rows(name: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

fn write(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path.to_string_lossy().into_owned()
}

fn count(db: &TestDb) -> (i64, i64) {
    let database = db.database();
    let mut conn = database.get().unwrap();
    (
        users::table.count().get_result(&mut *conn).unwrap(),
        api_tokens::table.count().get_result(&mut *conn).unwrap(),
    )
}

backend_tests! {
    async fn django_accounts_and_drf_keys_keep_working_and_hashes_become_argon2id(backend) {
        let db = TestDb::new(&backend);
        let out = db.custos(&["import", "users", &fixture("django_auth_user.csv")], None);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("imported 5 accounts"), "{}", stdout(&out));
        let out = db.custos(&["import", "tokens", &fixture("drf_authtoken.csv")], None);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("imported 3 API keys"), "{}", stdout(&out));
        let app = spawn_app_on(db, &[]).await;

        // Roles, activity and hashes as Django had them.
        let users_csv = fixture_rows("django_auth_user.csv");
        let ada = user(&app, ADA.0).await;
        assert!(ada.is_admin() && ada.is_active);
        assert_eq!(ada.password_hash, users_csv[0][1], "stored as-is");
        let bob = user(&app, BOB.0).await;
        assert!(!bob.is_admin() && bob.is_active && !bob.must_change_password);
        assert!(!user(&app, CAROL.0).await.is_admin());
        assert!(!user(&app, DAVE.0).await.is_active);
        assert!(user(&app, "erin").await.password_hash.starts_with('!'));

        // DRF keys: only hashes stored, and they authenticate.
        let keys = fixture_rows("drf_authtoken.csv");
        let stored: Vec<(String, String)> = app.with_db(|conn| api_tokens::table.select((api_tokens::token_hash, api_tokens::prefix)).load(conn).unwrap()).await;
        for row in &keys {
            let key = &row[0];
            assert!(stored.contains(&(tokens::token_hash(key), key[..8].to_owned())), "{key}");
            assert!(stored.iter().all(|(h, _)| !h.contains(key.as_str())));
        }
        assert!(token_works(&app, &keys[0][0]).await, "bob's DRF key works");
        assert!(token_works(&app, &keys[1][0]).await, "ada's DRF key works");
        assert!(!token_works(&app, &keys[2][0]).await, "dave is inactive");
        let expiry: Vec<Option<chrono::NaiveDateTime>> = app.with_db(|conn| api_tokens::table.select(api_tokens::expires_at).load(conn).unwrap()).await;
        assert!(expiry.iter().all(Option::is_none), "no expiry unless asked");

        // Django passwords sign in, once verified as Django does...
        let client = app.client();
        let res = app.login(&client, BOB.0, "not-bobs-password").await;
        assert!(res.text().await.unwrap().contains(GENERIC_FAILURE));
        assert_eq!(user(&app, BOB.0).await.password_hash, users_csv[1][1], "no upgrade on failure");
        assert_eq!(app.login(&client, BOB.0, BOB.1).await.status(), 303);
        assert_eq!(page(&app, &client, "/").await.status(), 200);
        // ...and leave an argon2id hash behind, which works next time.
        let upgraded = user(&app, BOB.0).await.password_hash;
        assert!(upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{upgraded}");
        assert!(custos::auth::password::verify_password(&upgraded, BOB.1));
        assert!(token_works(&app, &keys[0][0]).await, "the upgrade keeps the key working");
        let again = app.client();
        assert_eq!(app.login(&again, BOB.0, BOB.1).await.status(), 303);
        assert_eq!(user(&app, BOB.0).await.password_hash, upgraded, "upgraded once");

        let admin = app.client();
        assert_eq!(app.login(&admin, ADA.0, ADA.1).await.status(), 303);
        assert_eq!(page(&app, &admin, "/admin/users").await.status(), 200, "a Django superuser is an admin");
        assert_eq!(app.login(&app.client(), CAROL.0, CAROL.1).await.status(), 303);
        for (name, password) in [(DAVE.0, DAVE.1), ("erin", "anything-at-all-1"), ("erin", "!")] {
            let res = app.login(&app.client(), name, password).await;
            assert_eq!(res.status(), 200, "{name}");
            assert!(res.text().await.unwrap().contains(GENERIC_FAILURE));
        }

        let entries = audit_entries(&app).await;
        assert!(entries.iter().any(|e| e.path == "custos import users" && e.detail.contains("Imported 5 accounts")), "{entries:?}");
        assert!(entries.iter().any(|e| e.path == "custos import tokens" && e.detail.contains("Imported 3 API keys")));
        let upgrades = entries.iter().filter(|e| e.kind == "login_success" && e.detail.contains("upgraded to argon2id")).count();
        assert_eq!(upgrades, 3, "bob, ada and carol were upgraded");
        for e in &entries {
            for secret in [ADA.1, BOB.1, CAROL.1, DAVE.1] {
                assert!(!e.detail.contains(secret) && !e.path.contains(secret));
            }
            for row in &keys {
                assert!(!e.detail.contains(&row[0]) && !e.path.contains(&row[0]));
            }
        }
    }

    async fn imported_keys_can_be_given_an_expiry(backend) {
        let db = TestDb::new(&backend);
        assert!(db.custos(&["import", "users", &fixture("django_auth_user.csv")], None).status.success());
        let out = db.custos(&["import", "tokens", "--expires-in-days", "30", &fixture("drf_authtoken.csv")], None);
        assert!(out.status.success(), "{}", stderr(&out));
        let database = db.database();
        let mut conn = database.get().unwrap();
        let expiry: Vec<Option<chrono::NaiveDateTime>> = api_tokens::table.select(api_tokens::expires_at).load(&mut *conn).unwrap();
        let soon = chrono::Utc::now().naive_utc() + chrono::Duration::days(30);
        assert!(expiry.iter().all(|e| e.is_some_and(|e| (e - soon).num_seconds().abs() < 120)), "{expiry:?}");
    }

    async fn a_bad_django_row_aborts_the_import_and_writes_nothing(backend) {
        let db = TestDb::new(&backend);
        let dir = tempfile::tempdir().unwrap();
        let header = "username,password,is_active,is_staff,is_superuser\n";
        let good = fixture_rows("django_auth_user.csv")[1].join(",") + "\n";
        let hash = fixture_rows("django_auth_user.csv")[1][1].clone();
        let cases: Vec<(String, &str)> = vec![
            (format!("zed,{hash},maybe,t,f\n"), "line 3: is_active:"),
            (format!("zed,{hash},t,t,yes\n"), "line 3: is_superuser:"),
            (format!("zed,{hash},t,,f\n"), "line 3: is_staff:"),
            ("zed,\"argon2$argon2id$v=19$m=102400,t=2,p=8$c2FsdHNhbHQ$aGFzaGhhc2g\",t,t,f\n".into(), "line 3: password: \"argon2\" hashes are not supported"),
            ("zed,pbkdf2_sha256$600000$salt$bm90MzJieXRlcw==,t,t,f\n".into(), "line 3: password:"),
            ("zed,,t,t,f\n".into(), "line 3: password: is empty"),
            (format!("zed smith,{hash},t,t,f\n"), "line 3: username:"),
            (good.clone(), "line 3: username: \"bob\" appears twice"),
            (format!("zed,{hash},t\n"), "line 3: row:"),
        ];
        for (i, (row, expected)) in cases.iter().enumerate() {
            let file = write(&dir, &format!("u{i}.csv"), &format!("{header}{good}{row}"));
            let out = db.custos(&["import", "users", &file], None);
            assert!(!out.status.success(), "case {i}");
            let err = stderr(&out);
            assert!(err.contains(expected), "case {i}: expected {expected:?} in {err:?}");
            assert!(err.contains("nothing was imported"), "{err}");
            assert_eq!(count(&db), (0, 0), "case {i} wrote rows");
        }
        let out = db.custos(&["import", "users", &write(&dir, "h.csv", "username,password\nbob,x\n")], None);
        assert!(stderr(&out).contains("line 1: header:"), "{}", stderr(&out));

        // A second import of an existing account is refused as a whole.
        let file = write(&dir, "ok.csv", &format!("{header}{good}"));
        assert!(db.custos(&["import", "users", &file], None).status.success());
        let file = write(&dir, "again.csv", &format!("{header}{}{good}", good.replace("bob,", "zed,")));
        let out = db.custos(&["import", "users", &file], None);
        assert!(stderr(&out).contains("line 3: username: an account named \"bob\" already exists"), "{}", stderr(&out));
        assert_eq!(count(&db), (1, 0));

        let key = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b";
        let other = "0123456789abcdef0123456789abcdef01234567";
        let theader = "key,username\n";
        let tcases: Vec<(String, &str)> = vec![
            (format!("{key},bob\nnot-a-key,bob\n"), "line 3: key: is not a DRF key"),
            (format!("{key},bob\n{other},nobody\n"), "line 3: username: there is no account named \"nobody\""),
            (format!("{key},bob\n{key},bob\n"), "line 3: key: appears twice"),
        ];
        for (i, (rows, expected)) in tcases.iter().enumerate() {
            let file = write(&dir, &format!("t{i}.csv"), &format!("{theader}{rows}"));
            let out = db.custos(&["import", "tokens", &file], None);
            assert!(!out.status.success(), "token case {i}");
            let err = stderr(&out);
            assert!(err.contains(expected), "token case {i}: expected {expected:?} in {err:?}");
            assert!(!err.contains(key) || err.contains(&format!("{}/", dir.path().display())), "the key is never echoed: {err}");
            assert_eq!(count(&db), (1, 0));
        }
        let file = write(&dir, "t.csv", &format!("{theader}{key},bob\n"));
        assert!(db.custos(&["import", "tokens", &file], None).status.success());
        let out = db.custos(&["import", "tokens", &file], None);
        assert!(stderr(&out).contains("line 2: key: is already stored"), "{}", stderr(&out));
        assert!(!stderr(&out).contains(key));
        assert_eq!(count(&db), (1, 1));
    }
}
