//! Results pages read through the pager (the search plan chosen by how
//! common the terms are, deep pages from remembered positions) are exactly
//! the plain `ORDER BY ... OFFSET ... LIMIT` pages, at every depth, for
//! every ordering and filter, and follow the data after an import.

use custos::db::DbConn;
use custos::query::pager::{Pager, STRIDE};
use custos::query::{CustomerFilter, Params};
use custos::seed::SeedPlan;

use crate::backend_tests;
use crate::helpers::*;

const QUERIES: &[&str] = &[
    "",
    "ordering=-id",
    "ordering=-created_at",
    "ordering=full_name,-created_at",
    "status=active&ordering=-created_at",
    "status=active",
    "plan=pro&ordering=created_at",
    "search=an",
    "search=smith&status=active&ordering=-created_at",
    "search=son&ordering=full_name",
    "search=zzzq",
];

fn ids(rows: &[custos::db::models::Customer]) -> Vec<i64> {
    rows.iter().map(|c| c.id).collect()
}

/// Every page depth of interest, read twice through the pager (walking,
/// then from what it remembered) against the plain OFFSET query.
fn check_all(conn: &mut DbConn, pager: &Pager) {
    for query in QUERIES {
        let f = CustomerFilter::from_params(&Params::parse(query).unwrap()).unwrap();
        let version = pager.version(conn).unwrap();
        let version = version.as_deref();
        let count = pager.count(conn, &f, version).unwrap();
        let mut offsets = vec![
            0,
            1,
            STRIDE - 1,
            STRIDE,
            STRIDE + 1,
            2 * STRIDE + 7,
            3 * STRIDE,
            count - 1,
            count,
        ];
        offsets.retain(|o| *o >= 0);
        for _round in 0..2 {
            // Deepest first, then shallower: both directions of reuse.
            for &offset in offsets.iter().rev().chain(offsets.iter()) {
                let want = ids(&f.page(conn, offset, 25).unwrap());
                let got = ids(&pager.page(conn, &f, offset, 25, count, version).unwrap());
                assert_eq!(got, want, "{query:?} at offset {offset}");
            }
        }
    }
}

backend_tests! {
    async fn deep_and_searched_pages_are_exactly_the_offset_pages(backend) {
        let test_db = TestDb::new(&backend);
        let db = test_db.database();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.get().unwrap();
            let plan = SeedPlan { customers: 2200, operators: 4, seed: 11 };
            custos::seed::seed(&mut conn, plan, &custos::import::Silent).unwrap();
            let pager = Pager::default();
            check_all(&mut conn, &pager);
            assert!(pager.remembered_filters() > 0, "deep pages remembered positions");

            // An import changes the data version: positions are found anew.
            let mut csv = String::from(
                "id,operator_id,full_name,email,phone,city,country,plan,status,created_at\n",
            );
            for i in 0..700 {
                csv.push_str(&format!(
                    "{},1,Anna Smith {i},new{i}@example.org,,Köln,DE,pro,active,2020-0{}-01T00:00:00Z\n",
                    100_000 + i,
                    1 + i % 9
                ));
            }
            custos::import::import_customers(&mut conn, csv.as_bytes(), &custos::import::Silent)
                .unwrap();
            check_all(&mut conn, &pager);
        })
        .await
        .unwrap();
    }

    async fn a_page_is_read_once_per_data_version(backend) {
        let test_db = TestDb::new(&backend);
        let db = test_db.database();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.get().unwrap();
            let plan = SeedPlan { customers: 300, operators: 2, seed: 5 };
            custos::seed::seed(&mut conn, plan, &custos::import::Silent).unwrap();
            let pager = Pager::default();
            let f = CustomerFilter::default();
            let version = pager.version(&mut conn).unwrap();
            let version = version.as_deref();
            let count = pager.count(&mut conn, &f, version).unwrap();
            let first = pager.page(&mut conn, &f, 0, 25, count, version).unwrap();
            let again = pager.page(&mut conn, &f, 0, 25, count, version).unwrap();
            assert!(std::sync::Arc::ptr_eq(&first, &again), "the second read is the kept page");
            let other = pager.page(&mut conn, &f, 25, 25, count, version).unwrap();
            assert_ne!(ids(&other), ids(&first));
            // An import moves the version: pages are read again, and show
            // the change.
            let csv = "id,operator_id,full_name,email,phone,city,country,plan,status,created_at\n\
                       100000,1,New Person,n@example.org,,Oslo,NO,pro,active,2020-01-01T00:00:00Z\n";
            custos::import::import_customers(&mut conn, csv.as_bytes(), &custos::import::Silent)
                .unwrap();
            let moved = pager.version(&mut conn).unwrap();
            let moved = moved.as_deref();
            assert_ne!(moved, version);
            let grown = pager.count(&mut conn, &f, moved).unwrap();
            assert_eq!(grown, count + 1);
            let fresh = pager.page(&mut conn, &f, 0, 25, grown, moved).unwrap();
            assert!(!std::sync::Arc::ptr_eq(&first, &fresh));
            assert_eq!(ids(&fresh), ids(&f.page(&mut conn, 0, 25).unwrap()));
            let last = pager.page(&mut conn, &f, grown - 1, 25, grown, moved).unwrap();
            assert_eq!(ids(&last), vec![100_000]);
        })
        .await
        .unwrap();
    }
}
