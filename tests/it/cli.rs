//! The `custos` command line, run as a real process.

use crate::backend_tests;
use crate::helpers::*;
use diesel::prelude::*;

const OPERATORS: &str = "id,name,country,support_email,created_at
1,Nordwind Telecom,DE,support@nordwind.example,2024-01-01T00:00:00Z
2,Ó Súilleabháin & Sons,IE,help@osons.example,2024-02-01T10:00:00+01:00
";

const CUSTOMERS: &str = "id,operator_id,full_name,email,phone,city,country,plan,status,created_at
1,1,Anna Smith,anna@example.com,+49 30 1234567,Berlin,DE,basic,active,2024-05-01T12:30:00Z
2,2,Seán O'Brien,sean.obrien@example.ie,+353 1 555 0100,Dublin,IE,pro,suspended,2024-05-02T08:00:00Z
3,1,\"Zoë Müller, Jr.\",zoe@example.de,,München,DE,plus,closed,2024-06-01T00:00:00Z
";

fn write(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write csv");
    path.to_string_lossy().into_owned()
}

/// The indexes and triggers (and on PostgreSQL the constraints) on
/// `customers` with their definitions, from the database's own catalog.
fn customer_indexes(db: &TestDb) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let database = db.database();
    let mut conn = database.get().expect("conn");
    let sql = match db.backend {
        Backend::Sqlite => {
            "SELECT type || ' ' || name || ': ' || sql AS name FROM sqlite_master WHERE type IN ('index', 'trigger') AND tbl_name = 'customers' AND name NOT LIKE 'sqlite_autoindex%'"
        }
        Backend::Postgres(_) => {
            "SELECT indexname || ': ' || indexdef AS name FROM pg_indexes WHERE tablename = 'customers' UNION ALL SELECT 'trigger ' || tgname::text FROM pg_trigger WHERE tgrelid = 'customers'::regclass AND NOT tgisinternal UNION ALL SELECT 'constraint ' || conname::text || ': ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'customers'::regclass"
        }
    };
    let mut names: Vec<String> = diesel::sql_query(sql)
        .load::<Name>(&mut *conn)
        .expect("catalog")
        .into_iter()
        .map(|n| n.name)
        .collect();
    names.sort();
    names
}

fn big_customer_file(dir: &tempfile::TempDir, rows: usize, bad_last: bool) -> String {
    let mut text =
        String::from("id,operator_id,full_name,email,phone,city,country,plan,status,created_at\n");
    for i in 1..=rows {
        let plan = if bad_last && i == rows {
            "gold"
        } else {
            "basic"
        };
        text.push_str(&format!(
            "{i},1,Person {i},p{i}@example.com,,Berlin,DE,{plan},active,2024-05-01T12:30:00Z\n"
        ));
    }
    write(dir, &format!("big{rows}{bad_last}.csv"), &text)
}

fn count(db: &TestDb, table: &str) -> i64 {
    let database = db.database();
    let mut conn = database.get().expect("conn");
    use custos::db::schema::{customers, operators, users};
    match table {
        "customers" => customers::table
            .count()
            .get_result(&mut *conn)
            .expect("count"),
        "operators" => operators::table
            .count()
            .get_result(&mut *conn)
            .expect("count"),
        "users" => users::table.count().get_result(&mut *conn).expect("count"),
        _ => unreachable!(),
    }
}

#[test]
fn every_command_has_help() {
    let env = std::collections::HashMap::new();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["user", "--help"],
        vec!["user", "create", "--help"],
        vec!["user", "set-password", "--help"],
        vec!["user", "deactivate", "--help"],
        vec!["user", "list", "--help"],
        vec!["import", "--help"],
        vec!["import", "operators", "--help"],
        vec!["import", "customers", "--help"],
        vec!["seed", "--help"],
    ] {
        let out = run_custos(&env, &args, None);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).contains("Usage"), "{args:?}");
    }
}

#[test]
fn passwords_are_never_taken_from_arguments() {
    let db = TestDb::new(&Backend::Sqlite);
    let out = db.custos(
        &["user", "create", "--username", "bob", "--password", "x"],
        None,
    );
    assert!(!out.status.success());
    let out = db.custos(&["user", "create", "--username", "bob"], None);
    assert!(!out.status.success(), "--password-stdin is required");
    assert!(stderr(&out).contains("--password-stdin"));
}

backend_tests! {
    async fn migrate_applies_migrations_once(backend) {
        let db = TestDb::new(&backend);
        let first = db.custos(&["migrate"], None);
        assert!(first.status.success(), "{}", stderr(&first));
        assert!(stdout(&first).contains("applied migration"));
        let second = db.custos(&["migrate"], None);
        assert!(second.status.success());
        assert!(stdout(&second).contains("up to date"));
    }

    async fn user_commands_create_list_change_and_deactivate_accounts(backend) {
        let db = TestDb::new(&backend);
        let out = db.custos(&["user", "create", "--username", "alice", "--admin", "--password-stdin"], Some("violet-kettle-93-drum\n"));
        assert!(out.status.success(), "{}", stderr(&out));
        let out = db.custos(&["user", "create", "--username", "bob", "--password-stdin"], Some("another-long-passphrase-7\n"));
        assert!(out.status.success(), "{}", stderr(&out));

        let list = stdout(&db.custos(&["user", "list"], None));
        assert!(list.contains("alice") && list.contains("admin"), "{list}");
        assert!(list.contains("bob") && list.contains("staff"), "{list}");

        let dup = db.custos(&["user", "create", "--username", "bob", "--password-stdin"], Some("another-long-passphrase-7\n"));
        assert!(!dup.status.success());
        assert!(stderr(&dup).contains("already exists"));

        let weak = db.custos(&["user", "create", "--username", "carol", "--password-stdin"], Some("short\n"));
        assert!(!weak.status.success());
        assert!(stderr(&weak).contains("at least 12"));

        let out = db.custos(&["user", "set-password", "--username", "bob", "--password-stdin"], Some("a-new-long-passphrase-8\n"));
        assert!(out.status.success(), "{}", stderr(&out));
        let database = db.database();
        let mut conn = database.get().unwrap();
        let bob = custos::auth::users::find_by_username(&mut conn, "bob").unwrap().unwrap();
        assert!(custos::auth::password::verify_password(&bob.password_hash, "a-new-long-passphrase-8"));

        let out = db.custos(&["user", "deactivate", "--username", "bob"], None);
        assert!(out.status.success(), "{}", stderr(&out));
        let bob = custos::auth::users::find_by_username(&mut conn, "bob").unwrap().unwrap();
        assert!(!bob.is_active);

        let last_admin = db.custos(&["user", "deactivate", "--username", "alice"], None);
        assert!(!last_admin.status.success());
        assert!(stderr(&last_admin).contains("last active administrator"));

        let missing = db.custos(&["user", "deactivate", "--username", "nobody"], None);
        assert!(!missing.status.success());
        assert!(stderr(&missing).contains("no account named"));
    }

    async fn import_loads_operators_and_customers_exactly(backend) {
        let db = TestDb::new(&backend);
        let dir = tempfile::tempdir().unwrap();
        let ops = write(&dir, "operators.csv", OPERATORS);
        let custs = write(&dir, "customers.csv", CUSTOMERS);
        let out = db.custos(&["import", "operators", &ops], None);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("imported 2 operators"));
        let out = db.custos(&["import", "customers", &custs], None);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("imported 3 customers"));

        let database = db.database();
        let mut conn = database.get().unwrap();
        let c = custos::query::customer_by_id(&mut conn, 2).unwrap().unwrap();
        assert_eq!(c.full_name, "Seán O'Brien");
        assert_eq!(c.operator_id, 2);
        let c = custos::query::customer_by_id(&mut conn, 3).unwrap().unwrap();
        assert_eq!(c.full_name, "Zoë Müller, Jr.");
        assert_eq!(c.phone, "");
        let op = custos::query::operator_by_id(&mut conn, 2).unwrap().unwrap();
        assert_eq!(op.name, "Ó Súilleabháin & Sons");
        // +01:00 was converted to UTC.
        assert_eq!(custos::import::validate::format_timestamp(&op.created_at), "2024-02-01T09:00:00Z");
    }

    async fn a_bad_row_aborts_the_import_with_its_line_and_writes_nothing(backend) {
        let db = TestDb::new(&backend);
        let dir = tempfile::tempdir().unwrap();
        let ops = write(&dir, "operators.csv", OPERATORS);
        assert!(db.custos(&["import", "operators", &ops], None).status.success());
        let header = "id,operator_id,full_name,email,phone,city,country,plan,status,created_at\n";
        let good = "1,1,Anna Smith,anna@example.com,+49 30 1234567,Berlin,DE,basic,active,2024-05-01T12:30:00Z\n";
        let cases: &[(&str, &str)] = &[
            ("2,1,Bob,bob@example.com,123,Berlin,DE,gold,active,2024-05-01T12:30:00Z\n", "line 3: plan:"),
            ("2,1,Bob,bob@example.com,123,Berlin,DE,basic,gone,2024-05-01T12:30:00Z\n", "line 3: status:"),
            ("2,1,Bob,bob@example.com,123,Berlin,XX,basic,active,2024-05-01T12:30:00Z\n", "line 3: country:"),
            ("2,1,Bob,not-an-email,123,Berlin,DE,basic,active,2024-05-01T12:30:00Z\n", "line 3: email:"),
            ("2,1,Bob,bob@example.com,123,Berlin,DE,basic,active,yesterday\n", "line 3: created_at:"),
            ("2,9,Bob,bob@example.com,123,Berlin,DE,basic,active,2024-05-01T12:30:00Z\n", "line 3: operator_id:"),
            ("x,1,Bob,bob@example.com,123,Berlin,DE,basic,active,2024-05-01T12:30:00Z\n", "line 3: id:"),
            ("1,1,Bob,bob@example.com,123,Berlin,DE,basic,active,2024-05-01T12:30:00Z\n", "line 3: id:"),
            ("2,1,,bob@example.com,123,Berlin,DE,basic,active,2024-05-01T12:30:00Z\n", "line 3: full_name:"),
            ("2,1,Bob,bob@example.com,call me,Berlin,DE,basic,active,2024-05-01T12:30:00Z\n", "line 3: phone:"),
            ("2,1,Bob,bob@example.com\n", "line 3: row:"),
        ];
        for (i, (row, expected)) in cases.iter().enumerate() {
            let file = write(&dir, &format!("bad{i}.csv"), &format!("{header}{good}{row}"));
            let out = db.custos(&["import", "customers", &file], None);
            assert!(!out.status.success(), "case {i} should fail");
            let err = stderr(&out);
            assert!(err.contains(expected), "case {i}: expected {expected:?} in {err:?}");
            assert!(err.contains("nothing was imported"), "{err}");
            assert_eq!(count(&db, "customers"), 0, "case {i} wrote rows");
        }
        let bad_header = write(&dir, "header.csv", "id,name\n1,x\n");
        let out = db.custos(&["import", "customers", &bad_header], None);
        assert!(stderr(&out).contains("line 1: header:"), "{}", stderr(&out));
        let invalid_utf8 = dir.path().join("latin1.csv");
        let mut bytes = format!("{header}{good}").into_bytes();
        bytes.extend_from_slice(b"2,1,Bj\xf6rn,b@example.com,1,Berlin,DE,basic,active,2024-05-01T12:30:00Z\n");
        std::fs::write(&invalid_utf8, bytes).unwrap();
        let out = db.custos(&["import", "customers", invalid_utf8.to_str().unwrap()], None);
        assert!(stderr(&out).contains("line 3: row: is not valid UTF-8"), "{}", stderr(&out));
        assert_eq!(count(&db, "customers"), 0);

        let missing = db.custos(&["import", "customers", "/nonexistent.csv"], None);
        assert!(stderr(&missing).contains("cannot open /nonexistent.csv"));
    }

    async fn an_initial_load_keeps_every_index_whether_it_succeeds_or_fails(backend) {
        let db = TestDb::new(&backend);
        let dir = tempfile::tempdir().unwrap();
        assert!(db.custos(&["import", "operators", &write(&dir, "o.csv", OPERATORS)], None).status.success());
        let indexes = customer_indexes(&db);
        assert!(indexes.len() >= 10, "{indexes:?}");
        // A bad last row after several full load batches: nothing stays.
        let out = db.custos(&["import", "customers", &big_customer_file(&dir, 25_000, true)], None);
        assert!(stderr(&out).contains("line 25001: plan:"), "{}", stderr(&out));
        assert_eq!(count(&db, "customers"), 0);
        assert_eq!(customer_indexes(&db), indexes, "a failed load restores the indexes");
        // A good load: all rows, and the same indexes, built again.
        let out = db.custos(&["import", "customers", &big_customer_file(&dir, 25_000, false)], None);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(count(&db, "customers"), 25_000);
        assert_eq!(customer_indexes(&db), indexes, "a load rebuilds every index");
        // A later import into the filled table takes the ordinary path.
        let out = db.custos(&["import", "customers", &write(&dir, "c.csv", &CUSTOMERS.replace("\n1,", "\n30001,").replace("\n2,", "\n30002,").replace("\n3,", "\n30003,"))], None);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(count(&db, "customers"), 25_003);
        assert_eq!(customer_indexes(&db), indexes);
    }

    async fn an_existing_id_aborts_a_later_import_and_keeps_the_first(backend) {
        let db = TestDb::new(&backend);
        let dir = tempfile::tempdir().unwrap();
        assert!(db.custos(&["import", "operators", &write(&dir, "o.csv", OPERATORS)], None).status.success());
        assert!(db.custos(&["import", "customers", &write(&dir, "c.csv", CUSTOMERS)], None).status.success());
        let again = db.custos(&["import", "customers", &write(&dir, "c2.csv", CUSTOMERS)], None);
        assert!(!again.status.success());
        assert!(stderr(&again).contains("line 2: id: customer 1 already exists"), "{}", stderr(&again));
        assert_eq!(count(&db, "customers"), 3);
    }

    async fn seed_is_deterministic_and_refuses_a_filled_database(backend) {
        let a = TestDb::new(&backend);
        let b = TestDb::new(&backend);
        for db in [&a, &b] {
            let out = db.custos(&["seed", "--customers", "500", "--operators", "4", "--seed", "7"], None);
            assert!(out.status.success(), "{}", stderr(&out));
        }
        let rows = |db: &TestDb| {
            let database = db.database();
            let mut conn = database.get().unwrap();
            custos::query::CustomerFilter::default().page(&mut conn, 0, 1000).unwrap()
        };
        let (ra, rb) = (rows(&a), rows(&b));
        assert_eq!(ra.len(), 500);
        assert_eq!(ra, rb);
        assert!(ra.iter().any(|c| !c.full_name.is_ascii()), "varied names");
        assert!(ra.iter().map(|c| c.status.as_str()).collect::<std::collections::HashSet<_>>().len() == 3);
        let again = a.custos(&["seed", "--customers", "5"], None);
        assert!(!again.status.success());
        assert!(stderr(&again).contains("only fills an empty database"));
    }
}
