//! Reading the `events` keyspace one (shard, bucket) at a time.
//!
//! Events are stored as frames ([`super::frames`]): one value per (append, shard, bucket) under the
//! bucket's key followed by the append's sequence number, its records sorted by event key. One key per
//! event cost a memtable insert, a journal entry, a table entry and a merge step per event. A data
//! directory written before event frames holds one key per event (the bucket's key followed by the event
//! key); those are still read. A scan needs a bucket's events in key order with the last write of each key
//! winning, so a bucket is read whole: its frames' entries are merged and sorted here.

use super::frames;
use crate::{Bucket, Result, StoreError};
use fjall::Slice;
use storyline_model::EventKey;

/// Length of a frame key's suffix after the bucket key (the append's sequence number).
const FRAME_SUFFIX: usize = 8;
/// Length of a pre-frames event key's suffix after the bucket key (the event key).
const LEGACY_SUFFIX: usize = 16;

/// One bucket's stored events: every key once, in key order, each with its last written value.
#[derive(Default)]
pub struct BucketEvents {
    pub bucket: Bucket,
    values: Vec<Slice>,
    /// (key, write order, value index, start, end): sorted by key and write order, then deduplicated.
    entries: Vec<(EventKey, u32, u32, u32, u32)>,
}

impl BucketEvents {
    fn clear(&mut self, bucket: Bucket) {
        self.bucket = bucket;
        self.values.clear();
        self.entries.clear();
    }

    /// Adds a stored item of this bucket: `suffix` is its key past the bucket key.
    fn add(&mut self, suffix: &[u8], value: Slice) -> Result<()> {
        let index = self.values.len() as u32;
        // Items come in key order: frames (by sequence number) in write order; a pre-frames key is older
        // than any frame. An entry's write order is its position, with frames' entries ranked above.
        const FRAME_RANK: u32 = 0x8000_0000;
        match suffix.len() {
            FRAME_SUFFIX => {
                for entry in frames::entries(&value).map_err(corrupt)? {
                    let (key, raw) = entry.map_err(corrupt)?;
                    // `raw` borrows from `value`: kept as its span, as `value` moves into the bucket.
                    let start = raw.as_ptr() as usize - value.as_ptr() as usize;
                    let order = FRAME_RANK | self.entries.len() as u32;
                    self.entries.push((
                        key,
                        order,
                        index,
                        start as u32,
                        (start + raw.len()) as u32,
                    ));
                }
            }
            LEGACY_SUFFIX => {
                let key = EventKey(u128::from_be_bytes(suffix.try_into().expect("16 bytes")));
                let order = self.entries.len() as u32;
                self.entries
                    .push((key, order, index, 0, value.len() as u32));
            }
            _ => return Err(StoreError::Corrupt("event key of unknown layout".into())),
        }
        self.values.push(value);
        Ok(())
    }

    fn finish(&mut self) {
        // Newest write of each key first (write orders are unique, so an unstable sort is exact), then
        // only that one stays.
        self.entries
            .sort_unstable_by_key(|e| (e.0, std::cmp::Reverse(e.1)));
        self.entries.dedup_by_key(|e| e.0);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The bucket's events in key order: (key, encoded event).
    pub fn iter(&self) -> impl Iterator<Item = (EventKey, &[u8])> {
        self.entries.iter().map(|&(key, _, v, start, end)| {
            (key, &self.values[v as usize][start as usize..end as usize])
        })
    }
}

fn corrupt(e: &'static str) -> StoreError {
    StoreError::Corrupt(e.into())
}

/// Reads `items` (a key range of the `events` keyspace, whose keys start with a bucket key of
/// `bucket_key_len` bytes) bucket by bucket, handing each to `visit` until it returns `false`.
pub fn for_each(
    items: impl Iterator<Item = fjall::Guard>,
    bucket_key_len: usize,
    mut visit: impl FnMut(&BucketEvents) -> Result<bool>,
) -> Result<()> {
    let mut bucket = BucketEvents::default();
    let mut current: Option<Vec<u8>> = None;
    for item in items {
        let (k, v) = item.into_inner().map_err(super::engine)?;
        if k.len() < bucket_key_len {
            return Err(corrupt("short event key"));
        }
        let (bucket_key, suffix) = k.split_at(bucket_key_len);
        if current.as_deref() != Some(bucket_key) {
            if current.is_some() {
                bucket.finish();
                if !visit(&bucket)? {
                    return Ok(());
                }
            }
            let b = super::keys::decode_bucket_suffix(bucket_key)
                .ok_or_else(|| corrupt("short event key"))?;
            bucket.clear(b);
            current = Some(bucket_key.to_vec());
        }
        bucket.add(suffix, v)?;
    }
    if current.is_some() {
        bucket.finish();
        visit(&bucket)?;
    }
    Ok(())
}

/// How many events `items` hold (each key once per bucket), counting at most `cap`. Reads the frames: a
/// frame's header alone would count a key re-sent into the same bucket twice.
pub fn count(
    items: impl Iterator<Item = fjall::Guard>,
    bucket_key_len: usize,
    cap: u64,
) -> Result<u64> {
    let mut n = 0u64;
    for_each(items, bucket_key_len, |b| {
        n += b.len() as u64;
        Ok(n < cap)
    })?;
    Ok(n.min(cap))
}
