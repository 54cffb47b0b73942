//! At most two CSV exports at a time per user.
//!
//! An export holds a database connection and streams for as long as the
//! client reads, so one user must not be able to start dozens. A slot is
//! taken before the export starts and given back when its guard is
//! dropped (finished, failed, or the client went away). The slots belong
//! to the `Database` (one per server), since what they protect is its
//! pool of connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Exports one user may run at once.
pub const MAX_EXPORTS_PER_USER: usize = 2;

/// Running exports per user id.
#[derive(Debug, Default)]
pub struct ExportSlots {
    running: Mutex<HashMap<i64, usize>>,
}

/// A taken slot; dropping it frees the slot.
#[derive(Debug)]
pub struct ExportSlot {
    slots: Arc<ExportSlots>,
    user_id: i64,
}

impl ExportSlots {
    /// Takes a slot for `user_id`, or `None` when they already run the
    /// maximum.
    pub fn try_acquire(self: &Arc<Self>, user_id: i64) -> Option<ExportSlot> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let count = running.entry(user_id).or_insert(0);
        if *count >= MAX_EXPORTS_PER_USER {
            return None;
        }
        *count += 1;
        Some(ExportSlot {
            slots: Arc::clone(self),
            user_id,
        })
    }

    /// How many exports `user_id` is running.
    pub fn running(&self, user_id: i64) -> usize {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.get(&user_id).copied().unwrap_or(0)
    }
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        let mut running = self
            .slots
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = running.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_third_export_is_refused_until_one_ends() {
        let slots = Arc::new(ExportSlots::default());
        let a = slots.try_acquire(7);
        let b = slots.try_acquire(7);
        assert!(a.is_some() && b.is_some());
        assert!(slots.try_acquire(7).is_none());
        // Other users are not affected.
        assert!(slots.try_acquire(8).is_some());
        drop(a);
        assert_eq!(slots.running(7), 1);
        assert!(slots.try_acquire(7).is_some());
        drop(b);
        assert_eq!(slots.running(7), 0);
    }
}
