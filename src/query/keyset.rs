//! Keyset ("seek") batches over a customer query, for exports that must
//! walk the whole filtered result in constant memory.
//!
//! Each batch continues strictly after the last row of the previous one in
//! the query's own ordering (with `id` as the final tie-breaker), so it
//! never skips or repeats a row and never needs an OFFSET. The query runs
//! through the shared filter, so an export holds exactly the rows the
//! pages and the API show for the same parameters.

use diesel::dsl::not;
use diesel::expression::BoxableExpression;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::{Backend, CustomerField, CustomerFilter, OrderBy, SearchPlan};
use crate::db::DbConn;
use crate::db::models::Customer;
use crate::db::schema::customers;

type Condition = Box<dyn BoxableExpression<customers::table, Backend, SqlType = Bool>>;

/// The sort keys that decide the order completely: the requested ones up
/// to and including `id`, then `id` ascending if it was not among them.
pub fn effective_keys(ordering: &[OrderBy<CustomerField>]) -> Vec<OrderBy<CustomerField>> {
    let mut keys = Vec::new();
    for o in ordering {
        keys.push(*o);
        if o.field == CustomerField::Id {
            return keys;
        }
    }
    keys.push(OrderBy {
        field: CustomerField::Id,
        descending: false,
    });
    keys
}

/// `field = value of row`.
fn equal(field: CustomerField, row: &Customer) -> Condition {
    match field {
        CustomerField::Id => Box::new(customers::id.eq(row.id)),
        CustomerField::FullName => Box::new(customers::full_name.eq(row.full_name.clone())),
        CustomerField::CreatedAt => Box::new(customers::created_at.eq(row.created_at)),
    }
}

/// `field comes after the value of row` in the key's direction
/// (`strict`), or `... or equal` (not strict).
fn beyond(key: OrderBy<CustomerField>, row: &Customer, strict: bool) -> Condition {
    macro_rules! cmp {
        ($col:expr, $value:expr) => {
            match (key.descending, strict) {
                (false, true) => Box::new($col.gt($value)),
                (false, false) => Box::new($col.ge($value)),
                (true, true) => Box::new($col.lt($value)),
                (true, false) => Box::new($col.le($value)),
            }
        };
    }
    match key.field {
        CustomerField::Id => cmp!(customers::id, row.id),
        CustomerField::FullName => cmp!(customers::full_name, row.full_name.clone()),
        CustomerField::CreatedAt => cmp!(customers::created_at, row.created_at),
    }
}

/// Rows strictly after `row` in the order given by `keys`:
/// `k1 > v1 OR (k1 = v1 AND k2 > v2) OR ...`, plus the redundant
/// `k1 >= v1` so the database can start from an index range.
pub(super) fn after(keys: &[OrderBy<CustomerField>], row: &Customer) -> Condition {
    let mut any: Option<Condition> = None;
    for (i, key) in keys.iter().enumerate() {
        let mut term: Condition = beyond(*key, row, true);
        for prefix in keys[..i].iter().rev() {
            term = Box::new(equal(prefix.field, row).and(term));
        }
        any = Some(match any {
            Some(previous) => Box::new(previous.or(term)),
            None => term,
        });
    }
    match (keys.first(), any) {
        (Some(first), Some(any)) => Box::new(beyond(*first, row, false).and(any)),
        // No keys cannot happen (`effective_keys` always ends with id);
        // an impossible condition ends the export rather than looping.
        _ => Box::new(not(customers::id.eq(customers::id))),
    }
}

impl CustomerFilter {
    /// The next `limit` rows of the full ordered result after `last` (the
    /// last row of the previous batch; `None` for the first batch). An
    /// empty batch means the end.
    pub fn batch_after(
        &self,
        conn: &mut DbConn,
        last: Option<&Customer>,
        limit: i64,
    ) -> QueryResult<Vec<Customer>> {
        let mut q = self.ordered(conn, SearchPlan::Auto);
        if let Some(row) = last {
            q = q.filter(after(&effective_keys(&self.ordering), row));
        }
        q.limit(limit).select(Customer::as_select()).load(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(field: CustomerField, descending: bool) -> OrderBy<CustomerField> {
        OrderBy { field, descending }
    }

    #[test]
    fn keys_end_with_id_and_stop_at_it() {
        assert_eq!(effective_keys(&[]), vec![key(CustomerField::Id, false)]);
        assert_eq!(
            effective_keys(&[key(CustomerField::CreatedAt, true)]),
            vec![
                key(CustomerField::CreatedAt, true),
                key(CustomerField::Id, false)
            ]
        );
        assert_eq!(
            effective_keys(&[
                key(CustomerField::Id, true),
                key(CustomerField::FullName, false)
            ]),
            vec![key(CustomerField::Id, true)]
        );
    }
}
