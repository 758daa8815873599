//! Reorders generated events from event-time order into arrival order with bounded memory.
//!
//! Sessions are generated in start-time order, and no event of a future session can be emitted before
//! that session's start minus the DNS lead. So everything queued that arrives before that watermark is
//! final and can be released; what stays queued is about (delivery delay + session length) worth of
//! traffic plus the late events, which is independent of the total event count.

use crate::Generated;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use storyline_model::Timestamp;

struct Entry {
    arrival: Timestamp,
    /// Insertion order: breaks arrival ties deterministically.
    seq: u64,
    item: Generated,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.arrival, self.seq).cmp(&(o.arrival, o.seq))
    }
}

#[derive(Default)]
pub struct ArrivalQueue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

impl ArrivalQueue {
    pub fn push(&mut self, item: Generated) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            arrival: item.arrival,
            seq: self.seq,
            item,
        }));
    }

    /// The earliest-arriving event, if it arrives no later than `watermark`.
    pub fn pop_ready(&mut self, watermark: Timestamp) -> Option<Generated> {
        if self.heap.peek()?.0.arrival <= watermark {
            self.heap.pop().map(|e| e.0.item)
        } else {
            None
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }
}
