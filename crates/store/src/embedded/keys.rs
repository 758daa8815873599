//! Byte layout of keys. Integers are big-endian with the sign bit flipped so that byte order is numeric
//! order, which is what makes a bucket range one contiguous key range.

use crate::Bucket;
use storyline_model::{routing::Shard, EventKey};

pub fn tenant_prefix(tenant: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.len() + 1 + 2 + 8 + 16);
    k.extend_from_slice(tenant.as_bytes());
    k.push(0);
    k
}

pub fn shard_prefix(tenant: &str, shard: Shard) -> Vec<u8> {
    let mut k = tenant_prefix(tenant);
    k.extend_from_slice(&shard.to_be_bytes());
    k
}

pub fn encode_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn decode_i64(b: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = b.try_into().ok()?;
    Some((u64::from_be_bytes(arr) ^ (1 << 63)) as i64)
}

pub fn bucket_key(tenant: &str, shard: Shard, bucket: Bucket) -> Vec<u8> {
    let mut k = shard_prefix(tenant, shard);
    k.extend_from_slice(&encode_i64(bucket));
    k
}

pub fn event_key(tenant: &str, shard: Shard, bucket: Bucket, key: EventKey) -> Vec<u8> {
    let mut k = bucket_key(tenant, shard, bucket);
    k.extend_from_slice(&key.to_be_bytes());
    k
}

/// The key of the payload frame an append with sequence number `seq` wrote to the bucket `bucket_key`.
pub fn frame_key(bucket_key: &[u8], seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(bucket_key.len() + 8);
    k.extend_from_slice(bucket_key);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub fn decode_bucket_suffix(full: &[u8]) -> Option<Bucket> {
    full.len()
        .checked_sub(8)
        .and_then(|s| decode_i64(&full[s..]))
}

pub fn meta_key(kind: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(64);
    k.extend_from_slice(kind.as_bytes());
    for p in parts {
        k.push(0);
        k.extend_from_slice(p);
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_encoding_preserves_order() {
        let vals = [i64::MIN, -5, -1, 0, 1, 1_000, i64::MAX];
        for w in vals.windows(2) {
            assert!(encode_i64(w[0]) < encode_i64(w[1]));
            assert_eq!(decode_i64(&encode_i64(w[0])), Some(w[0]));
        }
    }
}
