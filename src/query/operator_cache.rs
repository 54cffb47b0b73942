//! Operators' names for results pages, kept per data version: a customer
//! list shows each row's operator by name and offers the operators in its
//! filter, and operators change only by import (any other write moves the
//! data version too, by trigger), so they are read once per version
//! instead of twice per page view.
//!
//! Only a directory of at most `MAX_OPERATORS` is kept; with more, pages
//! read the names they need as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use diesel::prelude::*;

use super::count_cache::data_version;
use crate::db::DbConn;
use crate::db::schema::operators;

/// Operators kept at most (a few hundred kilobytes of names).
pub const MAX_OPERATORS: i64 = 10_000;

/// Every operator at one data version.
#[derive(Debug, Default)]
pub struct OperatorDirectory {
    /// Name by id.
    pub names: HashMap<i64, String>,
    /// (id, name) ordered by name, then id.
    pub by_name: Vec<(i64, String)>,
}

#[derive(Debug, Default)]
pub struct OperatorCache {
    kept: Mutex<Option<(String, Arc<OperatorDirectory>)>>,
}

impl OperatorCache {
    /// All operators at data version `version` (read by the caller a
    /// moment ago), or None when there are more than `MAX_OPERATORS` (or
    /// no data version to key them by).
    pub fn directory_at(
        &self,
        conn: &mut DbConn,
        version: Option<&str>,
    ) -> QueryResult<Option<Arc<OperatorDirectory>>> {
        let Some(version) = version else {
            return Ok(None);
        };
        {
            let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((v, directory)) = kept.as_ref()
                && v == version
            {
                return Ok(Some(directory.clone()));
            }
        }
        let rows: Vec<(i64, String)> = crate::db::on_backend!(conn, c => operators::table
            .order((operators::name.asc(), operators::id.asc()))
            .select((operators::id, operators::name))
            .limit(MAX_OPERATORS + 1)
            .load(c))?;
        if rows.len() as i64 > MAX_OPERATORS {
            return Ok(None);
        }
        let directory = Arc::new(OperatorDirectory {
            names: rows.iter().cloned().collect(),
            by_name: rows,
        });
        // Kept only if no import landed while it was read.
        if data_version(conn)?.as_deref() == Some(version) {
            *self.kept.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((version.to_owned(), directory.clone()));
        }
        Ok(Some(directory))
    }
}
