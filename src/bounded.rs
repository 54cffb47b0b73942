//! The one eviction rule of the in-memory caches that are keyed by a
//! version (counts, pages, deep-page positions, API tokens): before a new
//! key goes into a full map, entries of other versions go first, then, if
//! it is still full, everything. No cache grows past its bound, and the
//! entries of the current version survive as long as they fit.

use std::collections::HashMap;
use std::hash::Hash;

/// Makes room for `key` in `map` (at most `max` entries); `is_current`
/// tells the entries worth keeping.
pub fn make_room<K: Eq + Hash, V>(
    map: &mut HashMap<K, V>,
    key: &K,
    max: usize,
    is_current: impl Fn(&V) -> bool,
) {
    if map.len() >= max && !map.contains_key(key) {
        map.retain(|_, v| is_current(v));
        if map.len() >= max {
            map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_entries_go_first_then_all() {
        let mut map: HashMap<u32, u32> = (0..4).map(|k| (k, k % 2)).collect();
        make_room(&mut map, &9, 4, |v| *v == 1);
        assert_eq!(map.len(), 2, "only the current entries stay");
        let mut full: HashMap<u32, u32> = (0..4).map(|k| (k, 1)).collect();
        make_room(&mut full, &9, 4, |v| *v == 1);
        assert!(full.is_empty(), "all current and still full: emptied");
        let mut present: HashMap<u32, u32> = (0..4).map(|k| (k, 0)).collect();
        make_room(&mut present, &2, 4, |_| false);
        assert_eq!(present.len(), 4, "a key already there needs no room");
    }
}
