//! Reading one page of customer results fast at any depth and for any
//! search term: the plan for the search, and remembered positions for
//! deep pages.
//!
//! **Search plan.** A term of 3+ characters can be answered two ways on
//! SQLite: from the trigram index (every matching row is looked up, then
//! sorted), or by walking the index of the requested order and testing
//! `LIKE` on each row until the page is full. Which is cheaper depends on
//! how common the term is, which the cached exact count tells: a rare term
//! ("zq9") is a handful of index hits, a common one ("smith", 6 % of rows)
//! fills a page after a few hundred rows of walking but would be tens of
//! thousands of lookups and a sort from the index. Both plans return the
//! same rows (the `LIKE` decides either way); only the cost differs.
//!
//! **Deep pages.** `OFFSET 250000` walks a quarter of a million rows. The
//! pager instead remembers, per filter and ordering, the sort keys of
//! every `STRIDE`-th row of the result (an anchor), and reads a deep page
//! as "after the nearest anchor, skip fewer than `STRIDE` rows". Anchors
//! are found once (walking in `STRIDE` steps) and kept for as long as the
//! data version they were taken at is current; customer data only changes
//! by import, which bumps it.
//!
//! **Pages.** For the same reason a page once read is kept, per filter,
//! position and data version (`CACHED_PAGES` of them): the first page of
//! a listing that everyone opens is read from the database once per import.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use diesel::QueryResult;

use super::count_cache::{CountCache, data_version};
use super::{CustomerFilter, SearchPlan};
use crate::db::DbConn;
use crate::db::models::Customer;

/// Rows between two remembered positions: a deep page walks fewer.
pub const STRIDE: i64 = 512;

/// Filters whose positions are remembered at most (each holds one row per
/// `STRIDE` rows of its result: about 2,000 rows for a million).
pub const ANCHOR_FILTERS: usize = 16;

/// Result pages kept at most (50 rows each by default).
pub const CACHED_PAGES: usize = 512;

/// A page of results as read at `version`.
#[derive(Debug)]
struct CachedPage {
    version: String,
    rows: Arc<[Customer]>,
}

/// Which page: the filter (with its ordering), offset and limit.
type PageKey = (String, i64, i64);

/// A remembered row position list: `rows[i]` is the row at position
/// `(i + 1) * STRIDE - 1` of the ordered result, at `version`.
#[derive(Debug, Default)]
struct Anchors {
    version: String,
    rows: Vec<Customer>,
}

/// Counts and page positions of customer results, per data version. One
/// per database.
#[derive(Debug, Default)]
pub struct Pager {
    counts: Arc<CountCache>,
    anchors: Mutex<HashMap<String, Anchors>>,
    pages: Mutex<HashMap<PageKey, CachedPage>>,
    operators: super::operator_cache::OperatorCache,
}

impl Pager {
    /// The count cache (also used by exports).
    pub fn counts(&self) -> Arc<CountCache> {
        self.counts.clone()
    }

    /// The data version now (None if the row is missing: nothing is
    /// cached then). A request reads it once and passes it to the methods
    /// below, instead of each cache reading it again (on PostgreSQL each
    /// read is a round trip).
    pub fn version(&self, conn: &mut DbConn) -> QueryResult<Option<String>> {
        data_version(conn)
    }

    /// Every operator's name at `version` (`query::operator_cache`),
    /// unless there are too many to keep.
    pub fn operator_directory(
        &self,
        conn: &mut DbConn,
        version: Option<&str>,
    ) -> QueryResult<Option<Arc<super::operator_cache::OperatorDirectory>>> {
        self.operators.directory_at(conn, version)
    }

    /// The exact number of customers matching `filter` at `version` (from
    /// `version`).
    pub fn count(
        &self,
        conn: &mut DbConn,
        filter: &CustomerFilter,
        version: Option<&str>,
    ) -> QueryResult<i64> {
        self.counts.count_at(conn, filter, version)
    }

    /// The rows `offset .. offset + limit` of `filter`'s ordered result at
    /// `version` (from `version`), which has `count` rows (from `count`).
    pub fn page(
        &self,
        conn: &mut DbConn,
        filter: &CustomerFilter,
        offset: i64,
        limit: i64,
        count: i64,
        version: Option<&str>,
    ) -> QueryResult<Arc<[Customer]>> {
        let Some(version) = version else {
            return self
                .read_page(conn, filter, offset, limit, count, None)
                .map(Arc::from);
        };
        let key = (anchor_key(filter), offset, limit);
        if let Some(page) = self.pages().get(&key).filter(|p| p.version == version) {
            return Ok(page.rows.clone());
        }
        let rows: Arc<[Customer]> =
            Arc::from(self.read_page(conn, filter, offset, limit, count, Some(version))?);
        // Kept only if no import landed since `version` was read (the
        // reads are not one snapshot): then the rows are exactly those of
        // `version`.
        if data_version(conn)?.as_deref() == Some(version) {
            let mut pages = self.pages();
            crate::bounded::make_room(&mut pages, &key, CACHED_PAGES, |p| p.version == version);
            pages.insert(
                key,
                CachedPage {
                    version: version.to_owned(),
                    rows: rows.clone(),
                },
            );
        }
        Ok(rows)
    }

    /// Reads a page from the database (deep ones from an anchor, if the
    /// data version is known).
    fn read_page(
        &self,
        conn: &mut DbConn,
        filter: &CustomerFilter,
        offset: i64,
        limit: i64,
        count: i64,
        version: Option<&str>,
    ) -> QueryResult<Vec<Customer>> {
        let total = if filter.is_unfiltered() {
            count
        } else {
            self.counts
                .count_at(conn, &CustomerFilter::default(), version)?
        };
        let plan = SearchPlan::choose(filter, offset + limit, count, total);
        if plan == SearchPlan::FromIndex || offset < STRIDE {
            return filter.page_with(conn, plan, None, offset, limit);
        }
        let Some(version) = version else {
            return filter.page_with(conn, plan, None, offset, limit);
        };
        let strides = offset / STRIDE;
        match self.anchor(conn, filter, plan, version, strides)? {
            Some(anchor) => {
                filter.page_with(conn, plan, Some(&anchor), offset - strides * STRIDE, limit)
            }
            // The result is shorter than `offset` (an import since it was
            // counted): an empty page, as OFFSET past the end gives.
            None => Ok(Vec::new()),
        }
    }

    fn pages(&self) -> MutexGuard<'_, HashMap<PageKey, CachedPage>> {
        // Entries are replaced whole, so a poisoned map is still right.
        self.pages.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Anchors>> {
        // Entries are replaced whole, so a poisoned map is still right.
        self.anchors.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The row at position `n * STRIDE - 1` (n ≥ 1), walking from the
    /// furthest remembered anchor and remembering the new ones.
    fn anchor(
        &self,
        conn: &mut DbConn,
        filter: &CustomerFilter,
        plan: SearchPlan,
        version: &str,
        n: i64,
    ) -> QueryResult<Option<Customer>> {
        let key = anchor_key(filter);
        let wanted = usize::try_from(n).unwrap_or(usize::MAX);
        let (known, mut last) = {
            let map = self.lock();
            match map.get(&key).filter(|a| a.version == version) {
                Some(a) if a.rows.len() >= wanted => return Ok(a.rows.get(wanted - 1).cloned()),
                Some(a) => (a.rows.len(), a.rows.last().cloned()),
                None => (0, None),
            }
        };
        let mut found = Vec::with_capacity(wanted.saturating_sub(known).min(4096));
        for _ in known..wanted {
            match filter.nth_after(conn, plan, last.as_ref(), STRIDE - 1)? {
                Some(row) => {
                    found.push(row.clone());
                    last = Some(row);
                }
                None => break,
            }
        }
        let reached = known + found.len();
        let mut map = self.lock();
        crate::bounded::make_room(&mut map, &key, ANCHOR_FILTERS, |a| a.version == version);
        let entry = map.entry(key).or_default();
        if entry.version != version {
            *entry = Anchors {
                version: version.to_owned(),
                rows: Vec::new(),
            };
        }
        // Another request may have walked the same way meanwhile; extend
        // only a list that ends where this walk started.
        if entry.rows.len() == known {
            entry.rows.extend(found.iter().cloned());
        }
        Ok(if reached >= wanted { last } else { None })
    }

    /// Filters whose positions are remembered (for tests).
    pub fn remembered_filters(&self) -> usize {
        self.lock().len()
    }
}

/// What decides the order of a result: every filter field and the ordering.
fn anchor_key(filter: &CustomerFilter) -> String {
    format!("{filter:?}")
}
