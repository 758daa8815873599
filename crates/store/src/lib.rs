//! The store-as-queue. One trait, [`Store`], with a module per backend; every backend passes the same
//! [`conformance`] suite.
//!
//! The layout follows the production design Storyline starts from: events are written once to
//! `(tenant, shard, insert-time bucket, event key)`, workers read buckets in order after their committed
//! read offset, and the offset is committed only after what it covers is published. See docs/design.md.

pub mod conformance;
pub mod embedded;
mod error;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "scylla")]
pub mod scylla;
mod types;

pub use error::{Result, StoreError};
pub use types::*;

use storyline_model::routing::Shard;

/// What [`Store::scan_each`] hands each event to: its bucket, key and encoded event.
pub type EventVisitor<'a> = dyn FnMut(Bucket, storyline_model::EventKey, &[u8]) -> Result<()> + 'a;

/// Everything the pipeline needs from a database. Methods block; async callers use `spawn_blocking`.
///
/// Contract (checked by [`conformance`]):
/// - [`Store::append`] returns only when the batch is durable under the configured policy; the batch is
///   atomic (all of it is visible or none), and it bumps the [`Store::bucket_marks`] of every
///   (shard, bucket) it touches.
/// - [`Store::scan`] returns events in (bucket, event key) order.
/// - [`Store::commit`] is fenced: it succeeds only for the current, unexpired holder of the shard's lease.
pub trait Store: Send + Sync + 'static {
    /// Registers a tenant with its shard count, or checks that an existing tenant has the same count
    /// (changing the shard count of stored data would route new events away from old ones).
    fn ensure_tenant(&self, tenant: &str, shards: u16) -> Result<()>;

    fn append(&self, tenant: &str, events: &[NewEvent<'_>]) -> Result<()>;

    /// Events with `range.after < bucket <= range.upto`, starting after `resume` when given, at most
    /// `limit` of them.
    fn scan(
        &self,
        tenant: &str,
        shard: Shard,
        range: BucketRange,
        resume: Option<(Bucket, storyline_model::EventKey)>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>>;

    /// As [`Store::scan`], lending each event to `visit` (in the same order) instead of collecting copies:
    /// the embedded store reads events out of larger frames, and [`Store::scan`] costs it an allocation
    /// and a copy per event that the worker's reader drops right after decoding. Returns how many events
    /// were visited. A `visit` error stops the scan and is returned.
    fn scan_each(
        &self,
        tenant: &str,
        shard: Shard,
        range: BucketRange,
        resume: Option<(Bucket, storyline_model::EventKey)>,
        limit: usize,
        visit: &mut EventVisitor<'_>,
    ) -> Result<usize> {
        let events = self.scan(tenant, shard, range, resume, limit)?;
        for e in &events {
            visit(e.bucket, e.key, &e.event)?;
        }
        Ok(events.len())
    }

    /// The raw record of one event (payloads live apart from events so scans never read megabytes).
    fn payload(
        &self,
        tenant: &str,
        shard: Shard,
        bucket: Bucket,
        key: storyline_model::EventKey,
    ) -> Result<Option<Vec<u8>>>;

    /// Write marks of the non-empty buckets in `range`: a value that changes whenever a bucket is written.
    /// Workers compare them to find writes that landed in buckets they had already read.
    fn bucket_marks(
        &self,
        tenant: &str,
        shard: Shard,
        range: BucketRange,
    ) -> Result<Vec<(Bucket, u64)>>;

    fn load_checkpoint(
        &self,
        tenant: &str,
        group: &str,
        shard: Shard,
    ) -> Result<Option<Checkpoint>>;

    /// Stores the read offset and the worker state that goes with it, atomically, if `lease` is still
    /// held. Returns [`StoreError::LeaseLost`] otherwise.
    fn commit(
        &self,
        tenant: &str,
        group: &str,
        lease: &Lease,
        checkpoint: &Checkpoint,
    ) -> Result<()>;

    /// Whether [`Store::commit_parts`] keeps a checkpoint's parts apart from its header, so a commit
    /// writes only what changed since the previous one. A store that does not (the default) is given the
    /// whole state inside every [`Store::commit`]. A store may keep the changes as a log that grows with
    /// every commit (the embedded store does): the caller bounds it by a `reset` now and then.
    fn keyed_checkpoint_parts(&self) -> bool {
        false
    }

    /// [`Store::commit`] and changes to the checkpoint's keyed parts, in one atomic write fenced like
    /// `commit`: with `reset` every part stored for the checkpoint is dropped first; then each part of
    /// `parts` is stored or removed, in order. Only when
    /// [`Store::keyed_checkpoint_parts`].
    fn commit_parts(
        &self,
        tenant: &str,
        group: &str,
        lease: &Lease,
        checkpoint: &Checkpoint,
        reset: bool,
        parts: &storyline_model::parts::Parts,
    ) -> Result<()> {
        let _ = (tenant, group, lease, checkpoint, reset, parts);
        Err(StoreError::Corrupt(
            "this store does not keep checkpoint parts".into(),
        ))
    }

    /// Every part stored for a checkpoint, in key order. Only when [`Store::keyed_checkpoint_parts`].
    fn checkpoint_parts(
        &self,
        tenant: &str,
        group: &str,
        shard: Shard,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let _ = (tenant, group, shard);
        Err(StoreError::Corrupt(
            "the checkpoint was written with keyed parts, which this store does not keep".into(),
        ))
    }

    /// Read offsets of every consumer group of the tenant for one shard (retention keeps what any group
    /// has not read).
    fn offsets(&self, tenant: &str, shard: Shard) -> Result<Vec<(String, Bucket)>>;

    /// Takes the shard's lease if it is free, expired or already ours. `now_ms` is the caller's clock.
    fn acquire_lease(
        &self,
        tenant: &str,
        group: &str,
        shard: Shard,
        owner: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<Option<Lease>>;

    /// Extends a lease we hold; `None` if it was lost.
    fn renew_lease(&self, lease: &Lease, ttl_ms: i64, now_ms: i64) -> Result<Option<Lease>>;

    fn release_lease(&self, lease: &Lease) -> Result<()>;

    fn leases(&self, tenant: &str, group: &str) -> Result<Vec<Lease>>;

    fn put_dead_letters(&self, letters: &[DeadLetter]) -> Result<()>;

    /// Dead letters of a tenant, oldest first, after the given id.
    fn dead_letters(
        &self,
        tenant: &str,
        after_id: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>>;

    /// Deletes every event (and payload and mark) of the shard in buckets `< before`. Returns how many
    /// events went.
    fn delete_before(&self, tenant: &str, shard: Shard, before: Bucket) -> Result<u64>;

    /// How many events the shard's buckets in `range` hold, counting at most `cap` (a backlog gauge, not
    /// an exact figure past the cap); `None` if the store cannot tell.
    fn bucket_events(
        &self,
        tenant: &str,
        shard: Shard,
        range: BucketRange,
        cap: u64,
    ) -> Result<Option<u64>> {
        let _ = (tenant, shard, range, cap);
        Ok(None)
    }

    /// Deletes everything of the tenant: events, payloads, marks, checkpoints, leases, dead letters and
    /// its registration. Returns how many events went. Other tenants are untouched.
    fn delete_tenant(&self, tenant: &str) -> Result<u64>;

    /// Stores a small record of the deployment itself (the tenant registry, job history) under `key`, or
    /// deletes it (`None`). Durable when this returns. Several processes on one shared store see the same
    /// records.
    fn put_record(&self, key: &str, value: Option<&str>) -> Result<()>;

    /// Records whose key starts with `prefix` and sorts after `after` (byte order), at most `limit`.
    fn records(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>>;
}
