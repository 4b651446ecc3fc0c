//! Two ordered maps walked side by side: each key once, with what either side holds.
//!
//! Comparing two models goes through their maps of 20,000 tables several times. Collecting
//! the union of the keys and looking each up on both sides costs two searches a key (about
//! fifteen name comparisons each); walking the two sorted maps together costs one
//! comparison a step.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::collections::btree_map::Iter;
use std::iter::Peekable;

/// Every key of either map, in order, with its value on each side (at least one is `Some`).
pub fn pairs<'a, K: Ord, V>(from: &'a BTreeMap<K, V>, to: &'a BTreeMap<K, V>) -> Pairs<'a, K, V> {
    Pairs {
        from: from.iter().peekable(),
        to: to.iter().peekable(),
    }
}

/// The keys both maps hold, in order, with both values.
pub fn both<'a, K: Ord, V>(
    from: &'a BTreeMap<K, V>,
    to: &'a BTreeMap<K, V>,
) -> impl Iterator<Item = (&'a K, &'a V, &'a V)> {
    pairs(from, to).filter_map(|(key, old, new)| Some((key, old?, new?)))
}

/// See [`pairs`].
pub struct Pairs<'a, K, V> {
    from: Peekable<Iter<'a, K, V>>,
    to: Peekable<Iter<'a, K, V>>,
}

impl<'a, K: Ord, V> Iterator for Pairs<'a, K, V> {
    type Item = (&'a K, Option<&'a V>, Option<&'a V>);

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.from.peek(), self.to.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        Some(match order {
            Ordering::Less => {
                let (key, old) = self.from.next()?;
                (key, Some(old), None)
            }
            Ordering::Greater => {
                let (key, new) = self.to.next()?;
                (key, None, Some(new))
            }
            Ordering::Equal => {
                let (key, old) = self.from.next()?;
                let (_, new) = self.to.next()?;
                (key, Some(old), Some(new))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The walk gives what collecting the keys and looking each up gives.
        #[test]
        fn same_as_looking_up_every_key(
            from in proptest::collection::btree_map(0u8..40, any::<u8>(), 0..20),
            to in proptest::collection::btree_map(0u8..40, any::<u8>(), 0..20),
        ) {
            let walked: Vec<_> = pairs(&from, &to).collect();
            let keys: std::collections::BTreeSet<&u8> = from.keys().chain(to.keys()).collect();
            let looked_up: Vec<_> = keys.into_iter().map(|k| (k, from.get(k), to.get(k))).collect();
            prop_assert_eq!(walked, looked_up);
            let common: Vec<_> = both(&from, &to).map(|(k, _, _)| *k).collect();
            let expected: Vec<_> = from.keys().filter(|k| to.contains_key(k)).copied().collect();
            prop_assert_eq!(common, expected);
        }
    }
}
