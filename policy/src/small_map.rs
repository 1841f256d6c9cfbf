//! A map for the few entries a scheduler keeps per track (its sources, at most
//! `sources_max` and usually a handful; its requests out): a vector searched in order. For
//! so few entries a scan of one allocation beats hashing a 32-byte node id and probing a
//! table, and the entries stay in the order they were inserted.

/// Entries in insertion order; each key at most once.
#[derive(Debug, Clone)]
pub(crate) struct SmallMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<K: Eq, V> SmallMap<K, V> {
    /// The value for `key`.
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value)
    }

    /// The value for `key`, to change.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value)
    }

    /// Sets `key`'s value, returning the one it replaces (a new key goes last).
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.get_mut(&key) {
            Some(slot) => Some(std::mem::replace(slot, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Takes `key`'s value out (the others keep their order, and those after it move one
    /// place down: a map whose places are kept elsewhere must not lose entries).
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let at = self.position(key)?;
        Some(self.entries.remove(at).1)
    }

    /// Where `key` is in insertion order: its place for [`SmallMap::get_at`], which holds
    /// for as long as nothing is removed.
    pub(crate) fn position(&self, key: &K) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }

    /// The entry at `at` in insertion order.
    pub(crate) fn get_at(&self, at: usize) -> Option<(&K, &V)> {
        self.entries.get(at).map(|(key, value)| (key, value))
    }

    /// The value at `at` in insertion order, to change.
    pub(crate) fn get_at_mut(&mut self, at: usize) -> Option<&mut V> {
        self.entries.get_mut(at).map(|(_, value)| value)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(key, value)| (key, value))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(key, _)| key)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, value)| value)
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Against a `BTreeMap`, over a seeded run of inserts, removals and look-ups.
    #[test]
    fn behaves_as_a_map() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut map = SmallMap::default();
        let mut reference = BTreeMap::new();
        for step in 0..10_000u64 {
            let key = next() % 12;
            match next() % 4 {
                0 | 1 => assert_eq!(map.insert(key, step), reference.insert(key, step)),
                2 => assert_eq!(map.remove(&key), reference.remove(&key)),
                _ => {
                    if let Some(value) = map.get_mut(&key) {
                        *value += 1;
                    }
                    if let Some(value) = reference.get_mut(&key) {
                        *value += 1;
                    }
                }
            }
            assert_eq!(map.get(&key), reference.get(&key));
            assert_eq!(map.len(), reference.len());
            let mut listed: Vec<(u64, u64)> = map.iter().map(|(k, v)| (*k, *v)).collect();
            listed.sort_unstable();
            let expected: Vec<(u64, u64)> = reference.iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(listed, expected);
        }
        map.clear();
        assert!(map.is_empty());
    }

    #[test]
    fn keeps_insertion_order() {
        let mut map = SmallMap::default();
        for key in [5, 1, 9, 3] {
            map.insert(key, ());
        }
        map.remove(&1);
        map.insert(9, ());
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), vec![5, 9, 3]);
        // Places follow the order, and reach the same entries as the keys.
        assert_eq!(map.position(&3), Some(2));
        assert_eq!(map.position(&1), None);
        assert_eq!(map.get_at(1), Some((&9, &())));
        assert_eq!(map.get_at(3), None);
        assert!(map.get_at_mut(0).is_some() && map.get_at_mut(7).is_none());
    }
}
