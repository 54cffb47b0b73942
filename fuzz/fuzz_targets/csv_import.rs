//! Fuzzes the CSV import of every kind (operators, customers, Django
//! users, DRF tokens) into an in-memory SQLite database
//! (`custos::import::{import_operators, import_customers}`,
//! `custos::import::django::{import_users, import_tokens}`).
//!
//! The first byte picks the kind; the rest is the file. Invariant: never
//! panics; an import is all or nothing: when it fails, every table is
//! exactly as before (and the failure names a line or the file); when it
//! succeeds, the rows it reports are the rows added.
#![no_main]

use std::cell::RefCell;

use custos::db::DbConn;
use custos::db::schema::{api_tokens, app_state, customers, operators, users};
use custos::import::{ImportError, Silent, django};
use diesel::prelude::*;
use libfuzzer_sys::fuzz_target;

fn fresh() -> DbConn {
    let conn = SqliteConnection::establish(":memory:").expect("in-memory SQLite");
    let mut conn = DbConn::Sqlite(conn);
    custos::db::run_migrations(&mut conn).expect("migrations");
    // A baseline for rows to refer to: one operator, one customer, one user.
    custos::import::import_operators(
        &mut conn,
        "id,name,country,support_email,created_at\n1,Op,DE,s@example.com,2024-01-01T00:00:00Z\n"
            .as_bytes(),
        &Silent,
    )
    .expect("baseline operator");
    custos::import::import_customers(
        &mut conn,
        "id,operator_id,full_name,email,phone,city,country,plan,status,created_at\n\
         1,1,A B,a@example.com,,Berlin,DE,basic,active,2024-01-01T00:00:00Z\n"
            .as_bytes(),
        &Silent,
    )
    .expect("baseline customer");
    django::import_users(
        &mut conn,
        "username,password,is_active,is_staff,is_superuser\nalice,!,True,True,False\n".as_bytes(),
        &Silent,
    )
    .expect("baseline user");
    conn
}

thread_local! {
    static DB: RefCell<DbConn> = RefCell::new(fresh());
}

type Counts = (i64, i64, i64, i64, Vec<(String, String)>);

fn counts(conn: &mut DbConn) -> Counts {
    (
        operators::table.count().get_result(conn).expect("count"),
        customers::table.count().get_result(conn).expect("count"),
        users::table.count().get_result(conn).expect("count"),
        api_tokens::table.count().get_result(conn).expect("count"),
        app_state::table
            .select((app_state::key, app_state::value))
            .order(app_state::key)
            .load(conn)
            .expect("app_state"),
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, file)) = data.split_first() else {
        return;
    };
    DB.with(|db| {
        let conn = &mut *db.borrow_mut();
        let before = counts(conn);
        let result = match kind % 4 {
            0 => custos::import::import_operators(conn, file, &Silent),
            1 => custos::import::import_customers(conn, file, &Silent),
            2 => django::import_users(conn, file, &Silent),
            _ => django::import_tokens(conn, file, &Silent, None),
        };
        let after = counts(conn);
        match result {
            Err(ImportError::Db(e)) => panic!("database error from CSV input: {e}"),
            Err(e) => {
                assert!(!e.to_string().is_empty());
                assert_eq!(before, after, "a failed import changed the database: {e}");
            }
            Ok(imported) => {
                let added = match kind % 4 {
                    0 => after.0 - before.0,
                    1 => after.1 - before.1,
                    2 => after.2 - before.2,
                    _ => after.3 - before.3,
                };
                assert_eq!(
                    added, imported.rows as i64,
                    "reported rows differ from rows added"
                );
                // Back to the baseline so the database stays small.
                *conn = fresh();
            }
        }
    });
});
