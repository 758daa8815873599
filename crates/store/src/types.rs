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
    #[serde(with = "bytes")]
    pub state: Vec<u8>,
}

/// `#[serde(with = "storyline_store::bytes")]` for a `Vec<u8>`: written as one byte string instead of a
/// sequence of single bytes (postcard: the same encoding, without a call per byte), and read from either.
pub mod bytes {
    use serde::{de, Deserializer, Serializer};

    pub fn serialize<S: Serializer, T: AsRef<[u8]> + ?Sized>(
        v: &T,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v.as_ref())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_written_as_byte_sequences_still_read() {
        #[derive(Serialize)]
        struct Before {
            shard: Shard,
            offset: Bucket,
            marks: Vec<(Bucket, u64)>,
            state: Vec<u8>,
        }
        let cp = Checkpoint {
            shard: 3,
            offset: 1_700_000_000_000,
            marks: vec![(1, 2)],
            state: (0..=255).collect(),
        };
        let before = postcard::to_stdvec(&Before {
            shard: cp.shard,
            offset: cp.offset,
            marks: cp.marks.clone(),
            state: cp.state.clone(),
        })
        .unwrap();
        assert_eq!(postcard::to_stdvec(&cp).unwrap(), before);
        assert_eq!(postcard::from_bytes::<Checkpoint>(&before).unwrap(), cp);
    }
}
