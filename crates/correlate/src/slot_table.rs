//! The engine's stories by slot. Slots are numbered in the order stories open, and stories are forgotten
//! within minutes of event time in about that order: the live slots are a window of numbers, nearly
//! dense. An array over that window finds a story with one read, in memory that the stories opened
//! around the same time share; a hash map probed its control bytes and then a bucket, two cache misses per
//! lookup on tables far larger than the caches (a story lookup was ~6% of adding an event; perf annotate,
//! eighteenth sitting).
//!
//! A story that outlives most of its contemporaries (up to `max_story_span` of event time) would hold the
//! window open behind it: once the window is mostly holes, its oldest stories move to a hash map, so the
//! array never grows much beyond the live stories.

use crate::fasthash::Map;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::VecDeque;

pub(crate) type Slot = u64;

/// The window is compacted once it is longer than this many times the stories it holds (plus
/// [`SLACK`]): a hole costs 8 bytes, a story several hundred, so even a sparse window is small beside
/// what it indexes.
const MAX_HOLES_PER_STORY: usize = 4;
const SLACK: usize = 1 << 16;

#[derive(Clone, Debug)]
pub(crate) struct SlotTable<T> {
    /// The slot of `window[0]`.
    base: Slot,
    window: VecDeque<Option<T>>,
    /// Stories older than `base`.
    old: Map<Slot, T>,
    /// Stories in `window`.
    in_window: usize,
}

impl<T> Default for SlotTable<T> {
    fn default() -> Self {
        Self {
            base: 0,
            window: VecDeque::new(),
            old: Map::default(),
            in_window: 0,
        }
    }
}

impl<T> SlotTable<T> {
    pub fn len(&self) -> usize {
        self.in_window + self.old.len()
    }

    pub fn get(&self, slot: &Slot) -> Option<&T> {
        match slot.checked_sub(self.base) {
            Some(i) => self.window.get(i as usize)?.as_ref(),
            None => self.old.get(slot),
        }
    }

    pub fn get_mut(&mut self, slot: &Slot) -> Option<&mut T> {
        match slot.checked_sub(self.base) {
            Some(i) => self.window.get_mut(i as usize)?.as_mut(),
            None => self.old.get_mut(slot),
        }
    }

    pub fn contains_key(&self, slot: &Slot) -> bool {
        self.get(slot).is_some()
    }

    pub fn insert(&mut self, slot: Slot, value: T) -> Option<T> {
        // Every slot in `old` stays below `base`.
        if self.window.is_empty() && (self.old.is_empty() || slot >= self.base) {
            self.base = slot;
        }
        let Some(i) = slot.checked_sub(self.base) else {
            return self.old.insert(slot, value);
        };
        let i = i as usize;
        if i >= self.window.len() {
            self.window.resize_with(i + 1, || None);
        }
        let before = self.window[i].replace(value);
        if before.is_none() {
            self.in_window += 1;
            self.compact();
        }
        before
    }

    pub fn remove(&mut self, slot: &Slot) -> Option<T> {
        let Some(i) = slot.checked_sub(self.base) else {
            return self.old.remove(slot);
        };
        let taken = self.window.get_mut(i as usize)?.take()?;
        self.in_window -= 1;
        self.trim_front();
        while matches!(self.window.back(), Some(None)) {
            self.window.pop_back();
        }
        Some(taken)
    }

    pub fn clear(&mut self) {
        self.window.clear();
        self.old.clear();
        self.in_window = 0;
    }

    /// Every story, those in the window in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Slot, &T)> {
        let base = self.base;
        self.old.iter().map(|(s, v)| (*s, v)).chain(
            self.window
                .iter()
                .enumerate()
                .filter_map(move |(i, v)| Some((base + i as Slot, v.as_ref()?))),
        )
    }

    /// Moves the oldest stories of a window that is mostly holes into `old`.
    fn compact(&mut self) {
        if self.window.len() <= MAX_HOLES_PER_STORY * self.in_window + SLACK {
            return;
        }
        while self.window.len() > 2 * self.in_window + SLACK / 2 {
            let Some(front) = self.window.pop_front() else {
                break;
            };
            if let Some(v) = front {
                self.old.insert(self.base, v);
                self.in_window -= 1;
            }
            self.base += 1;
        }
        self.trim_front();
    }

    /// Drops the holes at the window's front, so `base` is the oldest story it holds.
    fn trim_front(&mut self) {
        while matches!(self.window.front(), Some(None)) {
            self.window.pop_front();
            self.base += 1;
        }
    }
}

impl<T> std::ops::Index<&Slot> for SlotTable<T> {
    type Output = T;

    fn index(&self, slot: &Slot) -> &T {
        self.get(slot).expect("slot exists")
    }
}

/// Stored as the map it replaces (slot → value), so checkpoints read and written before it still match.
impl<T: Serialize> Serialize for SlotTable<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (slot, v) in self.iter() {
            map.serialize_entry(&slot, v)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SlotTable<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map: std::collections::BTreeMap<Slot, T> = Deserialize::deserialize(deserializer)?;
        let mut table = SlotTable::default();
        for (slot, v) in map {
            table.insert(slot, v);
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Slot),
        Remove(Slot),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Mostly new slots in rising order with removals near and far behind, as the engine does; some
        // slots far below the window (a restore in any order) and some clears.
        prop_oneof![
            8 => (0u64..400).prop_map(Op::Insert),
            6 => (0u64..400).prop_map(Op::Remove),
            1 => (0u64..3).prop_map(|_| Op::Clear),
        ]
    }

    proptest! {
        /// The table answers as a map would, whatever the order of insertions and removals.
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec(op(), 0..400)) {
            let mut table = SlotTable::default();
            let mut model = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(s) => prop_assert_eq!(table.insert(s, s * 10), model.insert(s, s * 10)),
                    Op::Remove(s) => prop_assert_eq!(table.remove(&s), model.remove(&s)),
                    Op::Clear => {
                        table.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(table.len(), model.len());
            }
            for s in 0..400 {
                prop_assert_eq!(table.get(&s), model.get(&s));
                prop_assert_eq!(table.contains_key(&s), model.contains_key(&s));
            }
            let mut listed: Vec<(Slot, u64)> = table.iter().map(|(s, v)| (s, *v)).collect();
            listed.sort_unstable();
            prop_assert_eq!(listed, model.into_iter().collect::<Vec<_>>());
        }
    }

    /// A story that outlives the others does not keep the window open: the window stays near the live
    /// stories' count while slots run far past it.
    #[test]
    fn a_long_lived_story_moves_out_of_the_window() {
        let mut table = SlotTable::default();
        table.insert(0, "long-lived");
        for s in 1..1_000_000u64 {
            table.insert(s, "short");
            if s > 100 {
                table.remove(&(s - 100));
            }
        }
        assert_eq!(table.len(), 101);
        assert_eq!(table.get(&0), Some(&"long-lived"));
        assert!(
            table.window.len() < 2 * SLACK,
            "window of {} slots for 101 stories",
            table.window.len()
        );
        assert_eq!(table.remove(&0), Some("long-lived"));
        assert_eq!(table.len(), 100);
    }

    /// Stored as a map: what was written as a map reads back as a table, and the other way round.
    #[test]
    fn stores_as_the_map_it_replaces() {
        let mut table = SlotTable::default();
        let mut map: Map<Slot, String> = Map::default();
        for s in [5u64, 9, 6, 700_000] {
            table.insert(s, format!("s{s}"));
            map.insert(s, format!("s{s}"));
        }
        let from_map: SlotTable<String> =
            postcard::from_bytes(&postcard::to_allocvec(&map).unwrap()).unwrap();
        let back: BTreeMap<Slot, String> =
            postcard::from_bytes(&postcard::to_allocvec(&table).unwrap()).unwrap();
        assert_eq!(back, map.clone().into_iter().collect::<BTreeMap<_, _>>());
        for (s, v) in &map {
            assert_eq!(from_map.get(s), Some(v));
        }
        assert_eq!(from_map.len(), map.len());
    }
}
