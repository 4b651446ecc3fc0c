//! [`NameMap`]: the members of one object (a table's constraints, indexes, triggers and
//! policies, a materialized view's indexes) by name.
//!
//! A table holds few members, most often none to two. A `BTreeMap` allocates a node with
//! room for eleven entries as soon as it holds one (about 3 KB for one constraint), for every
//! table of both models of a diff. A vector kept sorted by name holds what it holds, is
//! found by binary search, and iterates, compares and serializes as the `BTreeMap` did: in
//! the names' order, as a map.

use std::borrow::Borrow;
use std::fmt;

use serde::{Serialize, Serializer};

/// An ordered map from names to an object's members: `BTreeMap<String, V>`'s order and the
/// part of its interface the schema code uses, in one sorted vector.
#[derive(Clone, PartialEq, Eq)]
pub struct NameMap<V> {
    /// Sorted by name, names unique.
    entries: Vec<(String, V)>,
}

impl<V> NameMap<V> {
    pub const fn new() -> NameMap<V> {
        NameMap {
            entries: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Where `name` is, or where it would go.
    fn find<Q>(&self, name: &Q) -> Result<usize, usize>
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries
            .binary_search_by(|(key, _)| key.borrow().cmp(name))
    }

    pub fn get<Q>(&self, name: &Q) -> Option<&V>
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let at = self.find(name).ok()?;
        Some(&self.entries[at].1)
    }

    pub fn get_mut<Q>(&mut self, name: &Q) -> Option<&mut V>
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let at = self.find(name).ok()?;
        Some(&mut self.entries[at].1)
    }

    pub fn contains_key<Q>(&self, name: &Q) -> bool
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(name).is_ok()
    }

    /// Puts `value` under `name`, returning the value it replaces.
    pub fn insert(&mut self, name: String, value: V) -> Option<V> {
        match self.find(name.as_str()) {
            Ok(at) => Some(std::mem::replace(&mut self.entries[at].1, value)),
            Err(at) => {
                self.entries.insert(at, (name, value));
                None
            }
        }
    }

    pub fn remove<Q>(&mut self, name: &Q) -> Option<V>
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let at = self.find(name).ok()?;
        Some(self.entries.remove(at).1)
    }

    pub fn iter(&self) -> Iter<'_, V> {
        Iter {
            entries: self.entries.iter(),
        }
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.entries.iter().map(|(name, _)| name)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.entries.iter().map(|(_, value)| value)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.entries.iter_mut().map(|(_, value)| value)
    }

    /// Gives back the room a vector grown one insert at a time keeps spare.
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
    }
}

impl<V> Default for NameMap<V> {
    fn default() -> NameMap<V> {
        NameMap::new()
    }
}

impl<V: fmt::Debug> fmt::Debug for NameMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// As `BTreeMap`'s: a map, in the names' order.
impl<V: Serialize> Serialize for NameMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// Later entries replace earlier ones of the same name, as in a `BTreeMap`.
impl<V> FromIterator<(String, V)> for NameMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> NameMap<V> {
        let mut entries: Vec<(String, V)> = iter.into_iter().collect();
        // Stable: of equal names, the last one given is the last one here.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(String, V)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match kept.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => kept.push(entry),
            }
        }
        kept.shrink_to_fit();
        NameMap { entries: kept }
    }
}

impl<V> Extend<(String, V)> for NameMap<V> {
    fn extend<I: IntoIterator<Item = (String, V)>>(&mut self, iter: I) {
        for (name, value) in iter {
            self.insert(name, value);
        }
    }
}

impl<Q, V> std::ops::Index<&Q> for NameMap<V>
where
    String: Borrow<Q>,
    Q: Ord + ?Sized,
{
    type Output = V;

    /// Panics when there is no entry of that name, as `BTreeMap`'s does.
    fn index(&self, name: &Q) -> &V {
        self.get(name).expect("no entry found for key")
    }
}

/// The entries in the names' order, as `(&name, &value)`.
#[derive(Clone)]
pub struct Iter<'a, V> {
    entries: std::slice::Iter<'a, (String, V)>,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a String, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        self.entries.next().map(|(name, value)| (name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl<V> DoubleEndedIterator for Iter<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.entries.next_back().map(|(name, value)| (name, value))
    }
}

impl<V> ExactSizeIterator for Iter<'_, V> {}

impl<'a, V> IntoIterator for &'a NameMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = Iter<'a, V>;

    fn into_iter(self) -> Iter<'a, V> {
        self.iter()
    }
}

impl<V> IntoIterator for NameMap<V> {
    type Item = (String, V);
    type IntoIter = std::vec::IntoIter<(String, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn inserts_in_any_order_iterate_by_name() {
        let mut map = NameMap::new();
        for name in ["b", "a", "c", "B", "é", "ab"] {
            assert_eq!(map.insert(name.to_string(), name.len()), None);
        }
        let names: Vec<&str> = map.keys().map(String::as_str).collect();
        assert_eq!(names, ["B", "a", "ab", "b", "c", "é"]);
        assert_eq!(map.insert("a".to_string(), 10), Some(1));
        assert_eq!(map["a"], 10);
        assert_eq!(map.get("zz"), None);
        assert_eq!(map.remove("b"), Some(1));
        assert!(!map.contains_key("b"));
        assert_eq!(map.len(), 5);
    }

    #[test]
    fn serializes_and_debugs_as_the_btree_map_did() {
        let pairs = [("t_pkey", 1), ("t_a_key", 2), ("t_a_check", 3)];
        let map: NameMap<i32> = pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let btree: BTreeMap<String, i32> = pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(
            serde_json::to_string(&map).unwrap(),
            serde_json::to_string(&btree).unwrap()
        );
        assert_eq!(format!("{map:?}"), format!("{btree:?}"));
        assert_eq!(serde_json::to_string(&NameMap::<i32>::new()).unwrap(), "{}");
    }

    /// One change to both maps.
    #[derive(Debug, Clone)]
    enum Op {
        Insert(String, u8),
        Remove(String),
        Bump(String),
    }

    fn name() -> impl Strategy<Value = String> {
        // Few names, so inserts replace and removes hit; some beyond ASCII.
        prop::sample::select(vec!["a", "b", "B", "ab", "a_b", "é", "z", "", "t_pkey"])
            .prop_map(str::to_string)
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (name(), any::<u8>()).prop_map(|(k, v)| Op::Insert(k, v)),
            name().prop_map(Op::Remove),
            name().prop_map(Op::Bump),
        ]
    }

    proptest! {
        #[test]
        fn behaves_as_a_btree_map(
            start in prop::collection::vec((name(), any::<u8>()), 0..12),
            ops in prop::collection::vec(op(), 0..40),
        ) {
            let mut map: NameMap<u8> = start.iter().cloned().collect();
            let mut btree: BTreeMap<String, u8> = start.into_iter().collect();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        prop_assert_eq!(map.insert(k.clone(), v), btree.insert(k, v));
                    }
                    Op::Remove(k) => prop_assert_eq!(map.remove(&k), btree.remove(&k)),
                    Op::Bump(k) => {
                        if let Some(v) = map.get_mut(&k) {
                            *v = v.wrapping_add(1);
                        }
                        if let Some(v) = btree.get_mut(&k) {
                            *v = v.wrapping_add(1);
                        }
                    }
                }
                prop_assert_eq!(map.len(), btree.len());
                prop_assert!(map.iter().eq(btree.iter()));
            }
            for k in ["a", "b", "é", "missing"] {
                prop_assert_eq!(map.get(k), btree.get(k));
                prop_assert_eq!(map.contains_key(k), btree.contains_key(k));
            }
            prop_assert!(map.keys().eq(btree.keys()));
            prop_assert!(map.values().eq(btree.values()));
            prop_assert!(map.iter().rev().eq(btree.iter().rev()));
            prop_assert_eq!(
                serde_json::to_string(&map).unwrap(),
                serde_json::to_string(&btree).unwrap()
            );
            let rebuilt: NameMap<u8> = btree.clone().into_iter().collect();
            prop_assert!(rebuilt == map);
            prop_assert!(map.clone().into_iter().eq(btree.into_iter()));
        }
    }
}
