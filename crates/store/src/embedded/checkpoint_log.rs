//! A checkpoint's keyed parts, stored as a log of deltas: each commit appends its whole delta as one
//! record (its [`Parts`](storyline_model::parts::Parts) bytes as they are, split into chunks of at most
//! [`CHUNK`] bytes), and a reset drops the log and starts it again.
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

/// Applies one record (its chunks joined) to `parts` (key → value).
pub fn apply(record: &[u8], parts: &mut std::collections::HashMap<Vec<u8>, Vec<u8>>) -> Result<()> {
    storyline_model::parts::Parts::apply_bytes(record, parts)
        .map_err(|e| StoreError::Corrupt(format!("checkpoint log: {e}")))
}
