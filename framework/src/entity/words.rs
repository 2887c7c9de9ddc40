//! The map behind a kind's live entities with integer keys: from a 64-bit
//! word to a value, with each key stored beside its value.
//!
//! Every routed event looks its key up here, and with many live entities
//! the lookup finds its part of the table cold. A map that keeps a separate
//! array of control bytes before its entries (as the standard library's
//! does) touches two cache lines per lookup, the control bytes and then the
//! entry; this one keeps the entries in one array, each key beside its
//! value, and probes it from the key's home slot onwards (linear probing),
//! so that a lookup touches one line, or two when a run of entries crosses
//! into the next. The keys are hashed with SipHash-1-3, the keyed hash of
//! the standard library's maps, under a key drawn per map, so that keys
//! chosen from outside (cart ids sent by clients) cannot be made to
//! collide; it is written out here for a message of exactly one word,
//! which takes about 40 fewer instructions per lookup than the standard
//! library's general hasher fed the same word. The table grows to keep at
//! most three quarters of its slots full, and a removal shifts the entries
//! after it back into the gap, so no tombstones slow later lookups.

use std::hash::{BuildHasher, RandomState};

/// A map from 64-bit words to values (see the module's documentation).
pub(crate) struct WordMap<V> {
    /// Empty, or a power of two of slots.
    slots: Box<[Option<(u64, V)>]>,
    len: usize,
    /// The hash's key.
    key: (u64, u64),
}

impl<V> WordMap<V> {
    /// An empty map; it allocates nothing until its first entry.
    pub(crate) fn new() -> Self {
        // Two words no one outside can predict: the standard library's
        // keyed hash, under its own random key, of 0 and 1.
        let random = RandomState::new();
        WordMap {
            slots: Box::new([]),
            len: 0,
            key: (random.hash_one(0_u64), random.hash_one(1_u64)),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The slot a word is looked for from.
    fn home(&self, word: u64) -> usize {
        // Truncated to the table's size below in any case.
        let hash = sip::<1, 3>(self.key, word) as usize;
        hash & (self.slots.len() - 1)
    }

    /// The slot holding `word`, if any.
    fn find(&self, word: u64) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(word);
        loop {
            match &self.slots[i] {
                None => return None,
                Some((k, _)) if *k == word => return Some(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    pub(crate) fn get(&self, word: u64) -> Option<&V> {
        let i = self.find(word)?;
        self.slots[i].as_ref().map(|(_, v)| v)
    }

    /// Inserts, returning the value `word` had, if any.
    pub(crate) fn insert(&mut self, word: u64, value: V) -> Option<V> {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(word);
        loop {
            match &mut self.slots[i] {
                slot @ None => {
                    *slot = Some((word, value));
                    self.len += 1;
                    return None;
                }
                Some((k, v)) if *k == word => return Some(std::mem::replace(v, value)),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    /// Removes `word`'s entry and returns its value, if any.
    pub(crate) fn remove(&mut self, word: u64) -> Option<V> {
        let mut hole = self.find(word)?;
        let (_, value) = self.slots[hole].take()?;
        self.len -= 1;
        // Entries after the gap, up to the next empty slot, move back into
        // it when that does not put them before their home slot: a lookup
        // stops at an empty slot, so none may lie between an entry's home
        // and the entry.
        let mask = self.slots.len() - 1;
        let mut j = (hole + 1) & mask;
        while let Some((k, _)) = &self.slots[j] {
            let home = self.home(*k);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
            j = (j + 1) & mask;
        }
        Some(value)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().filter_map(|s| s.as_ref().map(|(_, v)| v))
    }

    /// Doubles the slots (eight at first) and puts every entry in again.
    #[cold]
    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(8);
        let old = std::mem::replace(
            &mut self.slots,
            std::iter::repeat_with(|| None).take(capacity).collect(),
        );
        self.len = 0;
        for (word, value) in old.into_vec().into_iter().flatten() {
            self.insert(word, value);
        }
    }
}

/// SipHash-c-d of one 64-bit word (an 8-byte message, read little-endian)
/// under `key`: the word is the one full block, and the last block holds
/// only the message's length in its top byte.
#[inline(always)]
fn sip<const C: usize, const D: usize>(key: (u64, u64), word: u64) -> u64 {
    let (k0, k1) = key;
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    for block in [word, 8 << 56] {
        v[3] ^= block;
        for _ in 0..C {
            sip_round(&mut v);
        }
        v[0] ^= block;
    }
    v[2] ^= 0xff;
    for _ in 0..D {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// The rounds are SipHash's: with two compression and four
        /// finalization rounds, the result is the standard library's
        /// SipHash-2-4 of the same word under the same key. (Its
        /// SipHash-1-3 is not public; the two differ only in how many times
        /// the same round runs.)
        #[test]
        #[cfg(target_endian = "little")]
        fn the_word_hash_is_siphash(k0: u64, k1: u64, word: u64) {
            #[allow(deprecated)]
            let mut reference = std::hash::SipHasher::new_with_keys(k0, k1);
            std::hash::Hasher::write_u64(&mut reference, word);
            prop_assert_eq!(sip::<2, 4>((k0, k1), word), std::hash::Hasher::finish(&reference));
        }
    }

    #[test]
    fn maps_draw_different_keys() {
        let (a, b) = (WordMap::<()>::new(), WordMap::<()>::new());
        assert_ne!(a.key, b.key);
        assert_ne!(a.key.0, a.key.1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u32),
        Remove(u64),
        Get(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few distinct keys, so that inserts, removals and lookups meet the
        // same entries and runs of neighbours form.
        let key = 0u64..48;
        prop_oneof![
            (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            key.clone().prop_map(Op::Remove),
            key.prop_map(Op::Get),
        ]
    }

    proptest! {
        #[test]
        fn word_map_agrees_with_a_hash_map(ops in proptest::collection::vec(op(), 0..400)) {
            let mut map = WordMap::new();
            let mut model = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(map.insert(k, v), model.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(map.remove(k), model.remove(&k)),
                    Op::Get(k) => prop_assert_eq!(map.get(k), model.get(&k)),
                }
                prop_assert_eq!(map.len(), model.len());
                // Every entry is still found from its home slot.
                for (k, v) in &model {
                    prop_assert_eq!(map.get(*k), Some(v));
                }
                let mut values: Vec<u32> = map.values().copied().collect();
                let mut expected: Vec<u32> = model.values().copied().collect();
                values.sort_unstable();
                expected.sort_unstable();
                prop_assert_eq!(values, expected);
            }
        }
    }

    #[test]
    fn a_map_keeps_at_most_three_quarters_of_its_slots_full() {
        let mut map = WordMap::new();
        for k in 0..1000u64 {
            map.insert(k, k);
            assert!(map.len() * 4 <= map.slots.len() * 3);
        }
        assert_eq!(map.slots.len(), 2048);
        for k in 0..1000u64 {
            assert_eq!(map.remove(k), Some(k));
        }
        assert_eq!(map.len(), 0);
        assert!(map.slots.iter().all(Option::is_none));
    }
}
