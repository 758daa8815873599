use serde::{Deserialize, Serialize};
use storyline_model::{routing::Shard, EventKey, Timestamp};

/// Start of an insert-time bucket, in milliseconds since the Unix epoch.
pub type Bucket = i64;

/// Buckets `after < b <= upto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketRange {
    pub after: Bucket,
    pub upto: Bucket,
}

impl BucketRange {
    pub fn new(after: Bucket, upto: Bucket) -> Self {
        Self { after, upto }
    }

    pub fn all() -> Self {
        Self {
            after: Bucket::MIN,
            upto: Bucket::MAX,
        }
    }

    pub fn contains(&self, b: Bucket) -> bool {
        self.after < b && b <= self.upto
    }
}

/// Truncates an insert time to its bucket.
pub fn bucket_of(t: Timestamp, resolution_ms: i64) -> Bucket {
    let ms = t.as_millis();
    ms - ms.rem_euclid(resolution_ms.max(1))
}

/// An event on its way into the store: the encoded canonical event and the raw record, kept apart.
#[derive(Clone, Copy, Debug)]
pub struct NewEvent<'a> {
    pub shard: Shard,
    pub bucket: Bucket,
    pub key: EventKey,
    pub event: &'a [u8],
    pub raw: &'a [u8],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub bucket: Bucket,
    pub key: EventKey,
    /// The encoded canonical event (`storyline_model::Event::decode`).
    pub event: Vec<u8>,
}

/// A worker's committed progress on one shard: every bucket `<= offset` is processed and everything it
/// produced is published; `state` is the worker's serialized correlation state at that point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub shard: Shard,
    pub offset: Bucket,
    /// Write marks of recently read buckets, to notice writes that land in them later.
    pub marks: Vec<(Bucket, u64)>,
    pub state: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub tenant: String,
    pub group: String,
    pub shard: Shard,
    pub owner: String,
    /// Grows every time the lease changes hands; commits carry it so a stale owner is fenced off.
    pub epoch: u64,
    pub expires_ms: i64,
}

/// Input that could not be accepted, kept with its reason so nothing is lost silently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Assigned by the store: increasing, unique per tenant.
    pub id: u64,
    pub tenant: String,
    pub received: Timestamp,
    /// Where it came from: `http`, `replay:<file>`, ...
    pub source: String,
    /// 1-based line in the request body or file, where known.
    pub line: Option<u64>,
    pub format: Option<String>,
    /// Stable machine code (`malformed_json`, `bad_timestamp`, ...).
    pub code: String,
    pub reason: String,
    pub raw: Vec<u8>,
}

pub fn validate_tenant(t: &str) -> crate::Result<()> {
    let ok = !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(crate::StoreError::BadTenant(t.to_string()))
    }
}
