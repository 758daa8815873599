//! A checkpoint's keyed parts, stored as a log of deltas: each commit appends its whole delta as one
//! record (split into chunks of at most [`CHUNK`] bytes), and a reset drops the log and starts it again.
//!
//! Why not one key per part: a catch-up commit changes up to a million parts (stories and index keys).
//! Inserting them one by one into the LSM cost ~7 µs each (memtable skiplist, then flush and compaction
//! of as many small keys): ten seconds of a 1M-event replay's commit. Appending them as a few large
//! key-value-separated values costs little more than their bytes. Reading them back replays the log,
//! which only happens when a worker opens a partition. The log's growth is the caller's to bound: it
//! asks for a reset (a full rewrite) once the deltas outweigh the state (the worker does).

use super::keys::meta_key;
use crate::{Result, StoreError};
use storyline_model::routing::Shard;

/// Largest value written for one record chunk: keeps a multi-hundred-MB full checkpoint out of single
/// allocations inside the engine.
pub const CHUNK: usize = 8 << 20;

/// Prefix of one checkpoint's log records; each key continues with the record's sequence number and
/// its chunk number, both big-endian, so key order is log order.
pub fn log_prefix(tenant: &str, group: &str, shard: Shard) -> Vec<u8> {
    let mut k = meta_key(
        "clog",
        &[tenant.as_bytes(), &shard.to_be_bytes(), group.as_bytes()],
    );
    k.push(0);
    k
}

/// Prefix of every checkpoint log record of a tenant.
pub fn tenant_log_prefix(tenant: &str) -> Vec<u8> {
    let mut k = meta_key("clog", &[tenant.as_bytes()]);
    k.push(0);
    k
}

pub fn record_key(prefix: &[u8], seq: u64, chunk: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 12);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&seq.to_be_bytes());
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

/// The sequence number in a record key.
pub fn record_seq(prefix_len: usize, key: &[u8]) -> Result<u64> {
    key.get(prefix_len..prefix_len + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt("short checkpoint log key".into()))
}

/// Encodes a delta: per part, its key, then a tag (1: stored, 0: removed) and the value. Lengths are
/// LEB128 varints. Hand-written because the framing must be streamable into chunks and decodable
/// without allocating a copy of every part.
pub fn encode(parts: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<u8> {
    let size: usize = parts
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 12)
        .sum();
    let mut out = Vec::with_capacity(size);
    for (k, v) in parts {
        put_len(&mut out, k.len());
        out.extend_from_slice(k);
        match v {
            Some(v) => {
                out.push(1);
                put_len(&mut out, v.len());
                out.extend_from_slice(v);
            }
            None => out.push(0),
        }
    }
    out
}

/// Applies an encoded delta to `parts` (key → value).
pub fn apply(
    mut bytes: &[u8],
    parts: &mut std::collections::HashMap<Vec<u8>, Vec<u8>>,
) -> Result<()> {
    while !bytes.is_empty() {
        let key = take(&mut bytes)?;
        let (&tag, rest) = bytes.split_first().ok_or_else(|| corrupt("missing tag"))?;
        bytes = rest;
        match tag {
            1 => {
                let value = take(&mut bytes)?;
                parts.insert(key.to_vec(), value.to_vec());
            }
            0 => {
                parts.remove(key);
            }
            other => return Err(corrupt(&format!("unknown tag {other}"))),
        }
    }
    Ok(())
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("checkpoint log: {what}"))
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Takes one length-prefixed byte string off the front of `bytes`.
fn take<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8]> {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let (&b, rest) = bytes
            .split_first()
            .ok_or_else(|| corrupt("truncated length"))?;
        *bytes = rest;
        if shift > 63 {
            return Err(corrupt("length too long"));
        }
        n |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    if n > bytes.len() {
        return Err(corrupt("truncated part"));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        #[test]
        fn applying_encoded_deltas_equals_applying_them_directly(
            deltas in prop::collection::vec(
                prop::collection::vec(
                    (prop::collection::vec(any::<u8>(), 0..6),
                     prop::option::of(prop::collection::vec(any::<u8>(), 0..300))),
                    0..20),
                1..5)
        ) {
            let mut direct = HashMap::new();
            let mut logged = HashMap::new();
            for delta in &deltas {
                for (k, v) in delta {
                    match v {
                        Some(v) => { direct.insert(k.clone(), v.clone()); }
                        None => { direct.remove(k); }
                    }
                }
                apply(&encode(delta), &mut logged).unwrap();
            }
            prop_assert_eq!(direct, logged);
        }

        #[test]
        fn a_truncated_record_is_an_error_not_a_panic(cut in 1usize..40) {
            let parts = vec![(b"story".to_vec(), Some(vec![7u8; 30])), (b"gone".to_vec(), None)];
            let bytes = encode(&parts);
            let cut = cut.min(bytes.len() - 1);
            let mut out = HashMap::new();
            // Cutting at a part boundary is a shorter, valid log; anywhere else must be reported.
            let boundaries = [0, 1 + 5 + 1 + 1 + 30];
            let r = apply(&bytes[..cut], &mut out);
            prop_assert_eq!(r.is_ok(), boundaries.contains(&cut));
        }
    }
}
