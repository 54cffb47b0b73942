//! Exact result counts, cached per filter and data version, so paging
//! through a million customers does not count them on every request.
//!
//! Customer data changes only by import and seed, and each of those bumps
//! `app_state.data_version` in the same transaction as its rows. Every
//! lookup reads that version first (one primary-key read, cheaper than any
//! count), so a count is reused only while the data it was taken from is
//! unchanged: right on the next request after an import, and across every
//! instance sharing a PostgreSQL database, with no time-to-live to tune.
//!
//! A count stored under version `v` was taken after reading `v`, so it
//! reflects data at least that new; a request racing an import may see the
//! import's rows or not, as it may without the cache. The cache holds at
//! most `capacity` filters; when full, entries of older versions go first,
//! then everything.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::NaiveDate;
use diesel::prelude::*;

use super::CustomerFilter;
use crate::db::DbConn;
use crate::db::schema::app_state;

/// Filters remembered at most (each entry is the filter's few fields).
pub const DEFAULT_CAPACITY: usize = 4096;

/// The parts of a filter that decide the count (not the ordering).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CountKey {
    search_terms: Vec<String>,
    status: Option<String>,
    plan: Option<String>,
    country: Option<String>,
    operator: Option<i64>,
    created_after: Option<NaiveDate>,
    created_before: Option<NaiveDate>,
}

impl CountKey {
    fn of(f: &CustomerFilter) -> Self {
        Self {
            search_terms: f.search_terms.clone(),
            status: f.status.clone(),
            plan: f.plan.clone(),
            country: f.country.clone(),
            operator: f.operator,
            created_after: f.created_after,
            created_before: f.created_before,
        }
    }
}

/// Counts of customer filters, per data version. One per database.
#[derive(Debug)]
pub struct CountCache {
    entries: Mutex<HashMap<CountKey, (String, i64)>>,
    capacity: usize,
}

impl Default for CountCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl CountCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CountKey, (String, i64)>> {
        // A panic while holding the lock cannot leave a wrong count behind
        // (entries are inserted whole), so a poisoned map is still good.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Filters currently remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The exact number of customers matching `filter` now.
    pub fn count(&self, conn: &mut DbConn, filter: &CustomerFilter) -> QueryResult<i64> {
        let version = data_version(conn)?;
        self.count_at(conn, filter, version.as_deref())
    }

    /// The exact number of customers matching `filter` at data version
    /// `version`, read by the caller a moment ago (so that one request
    /// reads it once for all the caches it consults).
    pub fn count_at(
        &self,
        conn: &mut DbConn,
        filter: &CustomerFilter,
        version: Option<&str>,
    ) -> QueryResult<i64> {
        let Some(version) = version else {
            // No version to follow: never cache.
            return filter.count(conn);
        };
        let key = CountKey::of(filter);
        if let Some((v, n)) = self.lock().get(&key)
            && v == version
        {
            return Ok(*n);
        }
        let n = filter.count(conn)?;
        let mut entries = self.lock();
        crate::bounded::make_room(&mut entries, &key, self.capacity, |(v, _)| v == version);
        entries.insert(key, (version.to_owned(), n));
        Ok(n)
    }
}

/// The current `app_state.data_version`, if the row exists.
pub fn data_version(conn: &mut DbConn) -> QueryResult<Option<String>> {
    app_state_value(conn, "data_version")
}

/// The `app_state` value under `key`, if the row exists.
pub fn app_state_value(conn: &mut DbConn, key: &str) -> QueryResult<Option<String>> {
    crate::db::on_backend!(conn, c => app_state::table
        .find(key)
        .select(app_state::value)
        .first::<String>(c)
        .optional())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::run_migrations;
    use crate::query::Params;

    #[test]
    fn the_cache_stays_bounded_and_follows_the_version() {
        let mut conn = DbConn::Sqlite(
            diesel::SqliteConnection::establish(":memory:").expect("in-memory database"),
        );
        run_migrations(&mut conn).expect("migrations");
        let cache = CountCache::new(3);
        for i in 0..10 {
            let f = CustomerFilter::from_params(
                &Params::parse(&format!("search=x{i}")).expect("params"),
            )
            .expect("filter");
            assert_eq!(cache.count(&mut conn, &f).expect("count"), 0);
            assert!(cache.len() <= 3);
        }
        crate::import::bump_data_version(&mut conn).expect("bump");
        // Entries of the old version give way first; never more than 3.
        for status in ["active", "suspended", "closed"] {
            let f = CustomerFilter::from_params(
                &Params::parse(&format!("status={status}")).expect("params"),
            )
            .expect("filter");
            assert_eq!(cache.count(&mut conn, &f).expect("count"), 0);
        }
        assert_eq!(cache.len(), 3);
        let version = data_version(&mut conn).expect("version");
        assert!(
            cache
                .lock()
                .values()
                .all(|(v, _)| Some(v) == version.as_ref())
        );
    }
}
