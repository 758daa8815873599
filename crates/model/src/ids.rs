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
        EventKey(hash_joined(sensor.as_bytes(), event_id.as_bytes()))
    }

    pub fn to_be_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

/// xxh3-128 of `a \0 b`, in one call. Short ones (nearly all: a sensor and an event id, a tenant and a key)
/// are put together on the stack instead of in an allocation per event or story.
fn hash_joined(a: &[u8], b: &[u8]) -> u128 {
    let len = a.len() + 1 + b.len();
    let mut stack = [0u8; 128];
    let mut heap = Vec::new();
    let buf = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap[..]
    };
    buf[..a.len()].copy_from_slice(a);
    buf[a.len() + 1..].copy_from_slice(b);
    xxh3_128(buf)
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
    let digits: [u8; 24] = hex(h.digest128() >> 32);
    Str::from(std::str::from_utf8(&digits).expect("hex digits are ASCII"))
}

/// The lowest `N` hex digits of `v`, most significant first, lowercase and zero-padded: `format!("{v:0N$x}")`
/// for a `v` below 16^N, without the formatting machinery (a content id is made for most parsed events,
/// and `write!` was a quarter of making one: 39.6 → 29.3 M instructions per 50k events).
fn hex<const N: usize>(v: u128) -> [u8; N] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; N];
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit = HEX[(v >> (4 * (N - 1 - i))) as usize & 0xf];
    }
    digits
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
        StoryId(hash_joined(tenant.as_bytes(), &member.to_be_bytes()))
    }
}

impl StoryId {
    /// Appends the id as a JSON string of its 32 lowercase hex digits (its `Display`), without the
    /// formatting machinery: story JSON writes one or two per version.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut text = [b'"'; 34];
        text[1..33].copy_from_slice(&hex::<32>(self.0));
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

    /// Content ids are stored and shown: they must stay the 24 hex digits `write!` gave.
    #[test]
    fn content_ids_are_the_formatted_hash() {
        for (format, sensor, raw) in [
            ("zeek", "z1", &b"{\"a\":1}"[..]),
            ("panos", "fw", &b""[..]),
            ("cef", "", &b"CEF:0|x"[..]),
        ] {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            for part in [format.as_bytes(), &[0], sensor.as_bytes(), &[0], raw] {
                h.update(part);
            }
            let v = h.digest128() >> 32;
            assert_eq!(content_event_id(format, sensor, raw), format!("{v:024x}"));
        }
        assert_eq!(&hex::<24>(0xab), b"0000000000000000000000ab");
        assert_eq!(&hex::<32>(u128::MAX), b"ffffffffffffffffffffffffffffffff");
        let mut json = Vec::new();
        StoryId(0x1f).write_json(&mut json);
        assert_eq!(json, format!("\"{}\"", StoryId(0x1f)).into_bytes());
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

    /// Story ids are stored and published: they must stay the hash of `tenant \0 key` (big-endian).
    #[test]
    fn story_ids_are_the_hash_of_tenant_and_key() {
        for tenant in ["default", "", &"t".repeat(200)] {
            let key = EventKey(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
            let joined = [tenant.as_bytes(), &[0], &key.0.to_be_bytes()].concat();
            assert_eq!(StoryId::derive(tenant, key), StoryId(xxh3_128(&joined)));
        }
    }
}
