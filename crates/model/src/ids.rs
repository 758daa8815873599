//! Identifiers. Event ids are what users see; event keys are their fixed-size hashes used in store keys
//! and correlation state (16 bytes instead of a string per event).

use crate::Str;
use serde::{Deserialize, Serialize};
use std::fmt;
use xxhash_rust::xxh3::xxh3_128;

/// The id a user sees for an event: the record's own id where its format names one, otherwise
/// [`content_event_id`].
pub type EventId = Str;

/// Fixed-size key of an event, unique per (sensor, event id). Re-sent records map to the same key, which
/// is what lets correlation drop duplicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventKey(pub u128);

impl EventKey {
    pub fn new(sensor: &str, event_id: &str) -> Self {
        // Hashed in one call over `sensor \0 event_id`; short ones (nearly all) are put together on the
        // stack instead of in an allocation per event.
        let len = sensor.len() + 1 + event_id.len();
        let mut stack = [0u8; 128];
        let mut heap = Vec::new();
        let buf = if len <= stack.len() {
            &mut stack[..len]
        } else {
            heap.resize(len, 0);
            &mut heap[..]
        };
        buf[..sensor.len()].copy_from_slice(sensor.as_bytes());
        buf[sensor.len() + 1..].copy_from_slice(event_id.as_bytes());
        EventKey(xxh3_128(buf))
    }

    pub fn to_be_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

/// Content-hash event id for records that carry no id of their own: 96 bits of xxh3-128 over the format,
/// the sensor and the raw bytes, as 24 lower-case hex digits (short enough to stay inline in a [`Str`]).
/// Collisions: about n²/2⁹⁷, negligible even at 10¹² events per tenant.
pub fn content_event_id(format: &str, sensor: &str, raw: &[u8]) -> EventId {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(format.as_bytes());
    h.update(&[0]);
    h.update(sensor.as_bytes());
    h.update(&[0]);
    h.update(raw);
    let v = h.digest128() >> 32;
    let mut s = Str::default();
    use std::fmt::Write;
    let _ = write!(s, "{v:024x}");
    s
}

/// A story's id: assigned when the story is first published (or taken over from a published story folded
/// into it) and never changed afterwards (it travels in worker checkpoints), so every version of a story carries
/// the same id across restarts and replays.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct StoryId(pub u128);

impl StoryId {
    /// Derived from the tenant and the smallest key among the story's events when it was assigned, so a
    /// replay of the same input yields the same ids whatever order each cycle read its events in.
    pub fn derive(tenant: &str, member: EventKey) -> Self {
        let mut buf = Vec::with_capacity(tenant.len() + 17);
        buf.extend_from_slice(tenant.as_bytes());
        buf.push(0);
        buf.extend_from_slice(&member.to_be_bytes());
        StoryId(xxh3_128(&buf))
    }
}

impl StoryId {
    /// Appends the id as a JSON string of its 32 lowercase hex digits (its `Display`), without the
    /// formatting machinery: story JSON writes one or two per version.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [b'"'; 34];
        for (i, slot) in text[1..33].iter_mut().enumerate() {
            *slot = HEX[(self.0 >> (124 - 4 * i)) as usize & 0xf];
        }
        out.extend_from_slice(&text);
    }
}

impl fmt::Display for StoryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ids_are_stable_and_distinct() {
        let a = content_event_id("zeek", "z1", b"{\"a\":1}");
        assert_eq!(a.len(), 24);
        assert!(!a.is_heap_allocated());
        assert_eq!(a, content_event_id("zeek", "z1", b"{\"a\":1}"));
        assert_ne!(a, content_event_id("zeek", "z2", b"{\"a\":1}"));
        assert_ne!(a, content_event_id("zeek", "z1", b"{\"a\":2}"));
    }

    #[test]
    fn event_keys_are_scoped_to_the_sensor() {
        assert_eq!(EventKey::new("s", "1"), EventKey::new("s", "1"));
        assert_ne!(EventKey::new("s", "1"), EventKey::new("t", "1"));
        // The separator keeps ("ab","c") apart from ("a","bc").
        assert_ne!(EventKey::new("ab", "c"), EventKey::new("a", "bc"));
    }

    /// Keys are stored, so they must stay the hash of `sensor \0 event_id`, whatever its length
    /// (short ones are put together on the stack, long ones on the heap).
    #[test]
    fn event_keys_are_the_hash_of_sensor_and_id() {
        for (sensor, id) in [
            ("fw-1", "42"),
            ("", ""),
            ("s".repeat(60).as_str(), "i".repeat(67).as_str()),
            ("s".repeat(60).as_str(), "i".repeat(68).as_str()),
            ("edr", "x".repeat(5000).as_str()),
        ] {
            let joined = [sensor.as_bytes(), &[0], id.as_bytes()].concat();
            assert_eq!(EventKey::new(sensor, id), EventKey(xxh3_128(&joined)));
        }
    }
}
