//! The default backend: fjall, an embedded LSM-tree engine in pure Rust (engine choice and its
//! measurements: docs/design.md).
//!
//! Keyspaces: `events` (encoded canonical events) and `payloads` (raw records, key-value separated so
//! large ones do not bloat scans), both one frame per (append, shard, bucket) ([`frames`]); `marks`
//! (per-bucket write marks), `meta` (tenants, checkpoints, leases), `checkpoint_log` (checkpoint parts
//! as a log of deltas, [`checkpoint_log`]) and `dead_letters`. A single process owns the data directory
//! (fjall locks it), so leases and commits are serialized with a mutex; leases still matter because
//! several workers in the process share shards.

mod buckets;
mod checkpoint_log;
mod frames;
mod keys;

use crate::*;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions, PersistMode};
use keys::*;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use storyline_model::{EventKey, Timestamp};

/// Tables in level 0 of the `events` and `payloads` keyspaces before they are merged into level 1 (fjall's
/// default: 4). These keyspaces are a queue — written once, read once soon after, deleted by retention — so
/// merging less often saves rewriting data that is about to be read and dropped, at the cost of a few more
/// tables per scan. 16 made a 1M-event replay ~7% faster (docs/benchmarks.md); 48 was no better.
const QUEUE_L0_TABLES: u8 = 16;

/// Keys removed per batch by retention and tenant deletion.
const DELETE_CHUNK: usize = 10_000;

/// When an append is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fsync before acknowledging (group commit: concurrent appends share one fsync). Survives power loss.
    #[default]
    Fsync,
    /// Hand the data to the OS before acknowledging. Survives a process crash, not a power loss.
    Flush,
    /// Acknowledge from memory. Only for benchmarks and throwaway runs.
    None,
}

pub struct EmbeddedStore {
    db: Database,
    events: Keyspace,
    payloads: Keyspace,
    marks: Keyspace,
    meta: Keyspace,
    checkpoint_log: Keyspace,
    dead: Keyspace,
    durability: Durability,
    /// Source of write marks and dead-letter ids: starts at the wall clock in ns so values keep growing
    /// across restarts.
    seq: AtomicU64,
    group_commit: GroupCommit,
    /// Serializes lease changes and fenced commits.
    lease_lock: Mutex<()>,
}

impl EmbeddedStore {
    pub fn open(path: &Path, durability: Durability) -> Result<Self> {
        Self::open_with(path, durability, true)
    }

    /// `compress_journal`: whether fjall compresses large values in its journal. The journal holds a
    /// write only until its memtable is flushed into (compressed) tables and blob files. With frames every
    /// value is large enough to be compressed, which was ~9% of the CPU of a 1M-event replay that writes
    /// no checkpoints, so such a replay turns it off (0.7 s faster, benchmarks.md, eighth sitting). A
    /// store that checkpoints writes large state parts too, and there the uncompressed journal's extra
    /// bytes cost more than the compression saved (1-2 s slower over 1M events), so the service keeps it.
    pub fn open_with(path: &Path, durability: Durability, compress_journal: bool) -> Result<Self> {
        let mut builder = Database::builder(path);
        if !compress_journal {
            builder = builder.journal_compression(fjall::CompressionType::None);
        }
        let db = builder.open().map_err(engine)?;
        let ks = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(engine)
        };
        // The queue keyspaces (`events`, `payloads`) merge level 0 less often ([`QUEUE_L0_TABLES`]).
        let queue = || {
            KeyspaceCreateOptions::default().compaction_strategy(std::sync::Arc::new(
                fjall::compaction::Leveled::default().with_l0_threshold(QUEUE_L0_TABLES),
            ))
        };
        let payloads = db
            .keyspace("payloads", || {
                // Payload frames arrive compressed (`frames::encode_compressed`). A store created
                // before keeps compressing its blob files (the setting is fixed at creation); every
                // blob file records its own, so old and new ones read alike.
                queue().with_kv_separation(Some(
                    KvSeparationOptions::default().compression(fjall::CompressionType::None),
                ))
            })
            .map_err(engine)?;
        let checkpoint_log = db
            .keyspace("checkpoint_log", || {
                KeyspaceCreateOptions::default()
                    .with_kv_separation(Some(KvSeparationOptions::default()))
            })
            .map_err(engine)?;
        let store = Self {
            checkpoint_log,
            events: db.keyspace("events", queue).map_err(engine)?,
            marks: ks("marks")?,
            meta: ks("meta")?,
            dead: ks("dead_letters")?,
            payloads,
            db,
            durability,
            seq: AtomicU64::new(Timestamp::now().as_nanos().max(1) as u64),
            group_commit: GroupCommit::default(),
            lease_lock: Mutex::new(()),
        };
        Ok(store)
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn make_durable(&self) -> Result<()> {
        match self.durability {
            Durability::Fsync => self
                .group_commit
                .sync(|| self.db.persist(PersistMode::SyncAll).map_err(engine)),
            Durability::Flush => self.db.persist(PersistMode::Buffer).map_err(engine),
            Durability::None => Ok(()),
        }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        match self.meta.get(key).map_err(engine)? {
            None => Ok(None),
            Some(v) => postcard::from_bytes(&v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(e.to_string())),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, key: &[u8], v: &T) -> Result<()> {
        let bytes = postcard::to_stdvec(v).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.meta.insert(key, bytes).map_err(engine)?;
        self.make_durable()
    }

    /// Removes every key under `prefix` from the keyspace. Returns how many keys went.
    fn delete_prefix(&self, space: &Keyspace, prefix: &[u8]) -> Result<u64> {
        self.delete_listed(space, || {
            space
                .prefix(prefix)
                .take(DELETE_CHUNK)
                .map(|g| g.key().map_err(engine))
                .collect()
        })
    }

    /// Removes every key in `start..end` from the keyspace. Returns how many keys went.
    fn delete_range(&self, space: &Keyspace, start: &[u8], end: &[u8]) -> Result<u64> {
        self.delete_listed(space, || {
            space
                .range(start..end)
                .take(DELETE_CHUNK)
                .map(|g| g.key().map_err(engine))
                .collect()
        })
    }

    /// Removes the keys `next_chunk` lists until it lists none, one batch per chunk so that one pass never
    /// builds an unbounded batch.
    fn delete_listed(
        &self,
        space: &Keyspace,
        next_chunk: impl Fn() -> Result<Vec<fjall::UserKey>>,
    ) -> Result<u64> {
        let mut deleted = 0u64;
        loop {
            let keys = next_chunk()?;
            if keys.is_empty() {
                return Ok(deleted);
            }
            deleted += keys.len() as u64;
            let mut batch = self.db.batch();
            for k in keys {
                batch.remove(space, k);
            }
            batch.commit().map_err(engine)?;
        }
    }

    pub fn disk_space(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }
}

/// The key range of the shard's buckets in `range` (`after < bucket <= upto`), for any keyspace keyed by
/// bucket first: events (bucket, event key) and marks (bucket).
fn bucket_bounds(tenant: &str, shard: Shard, range: BucketRange) -> (Vec<u8>, Vec<u8>) {
    let start = bucket_key(tenant, shard, range.after.saturating_add(1));
    let end = match range.upto.checked_add(1) {
        Some(n) => bucket_key(tenant, shard, n),
        None => {
            // Past every bucket and event key of the shard.
            let mut e = shard_prefix(tenant, shard);
            e.extend_from_slice(&[0xff; 25]);
            e
        }
    };
    (start, end)
}

fn engine(e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(e.to_string())
}

fn lease_key(tenant: &str, group: &str, shard: Shard) -> Vec<u8> {
    meta_key(
        "lease",
        &[tenant.as_bytes(), group.as_bytes(), &shard.to_be_bytes()],
    )
}

fn checkpoint_key(tenant: &str, group: &str, shard: Shard) -> Vec<u8> {
    meta_key(
        "checkpoint",
        &[tenant.as_bytes(), &shard.to_be_bytes(), group.as_bytes()],
    )
}

/// Prefix of a checkpoint's keyed parts as stored before the checkpoint log: read on restore and dropped
/// by the next reset, so a data directory from an older version keeps its state. Not under
/// "checkpoint", whose prefix scans list offsets.
fn legacy_parts_prefix(tenant: &str, group: &str, shard: Shard) -> Vec<u8> {
    let mut k = meta_key(
        "cpart",
        &[tenant.as_bytes(), &shard.to_be_bytes(), group.as_bytes()],
    );
    k.push(0);
    k
}

/// Group commit: a writer whose data was already covered by someone else's fsync returns at once; the
/// others queue on the mutex and the first one through syncs for all of them.
#[derive(Default)]
struct GroupCommit {
    written: AtomicU64,
    synced: Mutex<u64>,
}

impl GroupCommit {
    fn sync(&self, fsync: impl FnOnce() -> Result<()>) -> Result<()> {
        let mine = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if *synced >= mine {
            return Ok(());
        }
        let covers = self.written.load(Ordering::SeqCst);
        fsync()?;
        *synced = covers;
        Ok(())
    }
}

impl Store for EmbeddedStore {
    fn ensure_tenant(&self, tenant: &str, shards: u16) -> Result<()> {
        validate_tenant(tenant)?;
        let key = meta_key("tenant", &[tenant.as_bytes()]);
        let _g = self.lease_lock.lock().unwrap_or_else(|p| p.into_inner());
        match self.get_meta::<u16>(&key)? {
            Some(stored) if stored != shards => Err(StoreError::ShardCountMismatch {
                tenant: tenant.into(),
                stored,
                configured: shards,
            }),
            Some(_) => Ok(()),
            None => self.put_meta(&key, &shards),
        }
    }

    fn append(&self, tenant: &str, events: &[NewEvent<'_>]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut batch = self.db.batch();
        let seq = self.next_seq();
        let mark = seq.to_be_bytes();
        // One event frame, one payload frame and one write mark per (shard, bucket) the batch touches. A
        // stable sort keeps the batch's order among equal keys, so the last write of a key still wins;
        // event frames are in key order so that a scan merges sorted runs.
        let mut order: Vec<u32> = (0..events.len() as u32).collect();
        order.sort_by_key(|&i| {
            let e = &events[i as usize];
            (e.shard, e.bucket, e.key)
        });
        for group in order.chunk_by(|&a, &b| {
            let (a, b) = (&events[a as usize], &events[b as usize]);
            (a.shard, a.bucket) == (b.shard, b.bucket)
        }) {
            let first = &events[group[0] as usize];
            let key = bucket_key(tenant, first.shard, first.bucket);
            let frame = frame_key(&key, seq);
            let members = || group.iter().map(|&i| &events[i as usize]);
            batch.insert(
                &self.events,
                frame.clone(),
                frames::encode(members().map(|e| (e.key, e.event))),
            );
            batch.insert(
                &self.payloads,
                frame,
                frames::encode_compressed(members().map(|e| (e.key, e.raw))),
            );
            batch.insert(&self.marks, key, mark.as_slice());
        }
        batch.commit().map_err(engine)?;
        self.make_durable()
    }

    fn scan(
        &self,
        tenant: &str,
        shard: Shard,
        range: BucketRange,
        resume: Option<(Bucket, EventKey)>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let mut out = Vec::with_capacity(limit.min(4096));
        self.scan_each(
            tenant,
            shard,
            range,
            resume,
            limit,
            &mut |bucket, key, event| {
                out.push(StoredEvent {
                    bucket,
                    key,
                    event: event.to_vec(),
                });
                Ok(())
            },
        )?;
        Ok(out)
    }

    fn scan_each(
        &self,
        tenant: &str,
        shard: Shard,
        range: BucketRange,
        resume: Option<(Bucket, EventKey)>,
        limit: usize,
        visit: &mut EventVisitor<'_>,
    ) -> Result<usize> {
        if range.after >= range.upto || limit == 0 {
            return Ok(0);
        }
        let (first, end) = bucket_bounds(tenant, shard, range);
        // A bucket is read whole (its frames are merged), so a resumed scan starts at the resume bucket.
        let start = match resume {
            Some((b, _)) if b > range.after => bucket_key(tenant, shard, b),
            _ => first,
        };
        if start >= end {
            return Ok(0);
        }
        let bucket_key_len = shard_prefix(tenant, shard).len() + 8;
        let mut visited = 0;
        buckets::for_each(self.events.range(start..end), bucket_key_len, |b| {
            let after = match resume {
                Some((rb, rk)) if rb == b.bucket => Some(rk),
                _ => None,
            };
            for (key, event) in b.iter() {
                if visited >= limit {
                    return Ok(false);
                }
                if after.is_some_and(|a| key <= a) {
                    continue;
                }
                visit(b.bucket, key, event)?;
                visited += 1;
            }
            Ok(visited < limit)
        })?;
        Ok(visited)
    }

    fn payload(
        &self,
        tenant: &str,
        shard: Shard,
        bucket: Bucket,
        key: EventKey,
    ) -> Result<Option<Vec<u8>>> {
        // Stores written before payload frames hold one key per record.
        if let Some(v) = self
            .payloads
            .get(event_key(tenant, shard, bucket, key))
            .map_err(engine)?
        {
            return Ok(Some(v.to_vec()));
        }
        let prefix = bucket_key(tenant, shard, bucket);
        let mut found = None;
        // Frames sort in write order: the last one holding the key has its latest record.
        for item in self.payloads.prefix(&prefix) {
            let (k, frame) = item.into_inner().map_err(engine)?;
            if k.len() != prefix.len() + 8 {
                continue;
            }
            let corrupt = |e: &str| StoreError::Corrupt(e.into());
            let frame = frames::expanded(&frame).map_err(corrupt)?;
            if let Some(raw) = frames::find(&frame, key).map_err(corrupt)? {
                found = Some(raw.to_vec());
            }
        }
        Ok(found)
    }

    fn bucket_marks(
        &self,
        tenant: &str,
        shard: Shard,
        range: BucketRange,
    ) -> Result<Vec<(Bucket, u64)>> {
        if range.after >= range.upto {
            return Ok(Vec::new());
        }
        let (start, end) = bucket_bounds(tenant, shard, range);
        let mut out = Vec::new();
        for item in self.marks.range(start..end) {
            let (k, v) = item.into_inner().map_err(engine)?;
            let bucket = decode_bucket_suffix(&k)
                .ok_or_else(|| StoreError::Corrupt("short mark key".into()))?;
            let mark: [u8; 8] = v
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("bad mark".into()))?;
            out.push((bucket, u64::from_be_bytes(mark)));
        }
        Ok(out)
    }

    fn load_checkpoint(
        &self,
        tenant: &str,
        group: &str,
        shard: Shard,
    ) -> Result<Option<Checkpoint>> {
        self.get_meta(&checkpoint_key(tenant, group, shard))
    }

    fn commit(
        &self,
        tenant: &str,
        group: &str,
        lease: &Lease,
        checkpoint: &Checkpoint,
    ) -> Result<()> {
        let _g = self.lease_lock.lock().unwrap_or_else(|p| p.into_inner());
        let current: Option<Lease> = self.get_meta(&lease_key(tenant, group, lease.shard))?;
        let held = current.is_some_and(|c| c.owner == lease.owner && c.epoch == lease.epoch);
        if !held || lease.shard != checkpoint.shard {
            return Err(StoreError::LeaseLost {
                shard: lease.shard,
                owner: lease.owner.clone(),
                epoch: lease.epoch,
            });
        }
        self.put_meta(&checkpoint_key(tenant, group, lease.shard), checkpoint)
    }

    fn keyed_checkpoint_parts(&self) -> bool {
        true
    }

    fn commit_parts(
        &self,
        tenant: &str,
        group: &str,
        lease: &Lease,
        checkpoint: &Checkpoint,
        reset: bool,
        parts: &storyline_model::parts::Parts,
    ) -> Result<()> {
        let _g = self.lease_lock.lock().unwrap_or_else(|p| p.into_inner());
        let current: Option<Lease> = self.get_meta(&lease_key(tenant, group, lease.shard))?;
        let held = current
            .as_ref()
            .is_some_and(|c| c.owner == lease.owner && c.epoch == lease.epoch);
        if !held || lease.shard != checkpoint.shard {
            return Err(StoreError::LeaseLost {
                shard: lease.shard,
                owner: lease.owner.clone(),
                epoch: lease.epoch,
            });
        }
        let started = std::time::Instant::now();
        let prefix = checkpoint_log::log_prefix(tenant, group, lease.shard);
        let seq = match self.checkpoint_log.prefix(&prefix).next_back() {
            Some(last) => {
                checkpoint_log::record_seq(prefix.len(), &last.key().map_err(engine)?)? + 1
            }
            None => 0,
        };
        let mut batch = self.db.batch();
        if reset {
            for item in self.checkpoint_log.prefix(&prefix) {
                batch.remove(&self.checkpoint_log, item.key().map_err(engine)?);
            }
            for item in self
                .meta
                .prefix(legacy_parts_prefix(tenant, group, lease.shard))
            {
                batch.remove(&self.meta, item.key().map_err(engine)?);
            }
        }
        let header =
            postcard::to_stdvec(checkpoint).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        batch.insert(
            &self.meta,
            checkpoint_key(tenant, group, lease.shard),
            header,
        );
        for (i, chunk) in parts.as_bytes().chunks(checkpoint_log::CHUNK).enumerate() {
            batch.insert(
                &self.checkpoint_log,
                checkpoint_log::record_key(&prefix, seq, i as u32),
                chunk,
            );
        }
        batch.commit().map_err(engine)?;
        self.make_durable()?;
        // A commit of a large catch-up can take longer than the lease, all of it under `lease_lock`: a
        // worker waiting to acquire would get the lock the moment the commit ends, find the lease expired
        // and take over although its owner was busy committing the whole time. So the time spent in a
        // fenced commit does not count against the lease: its expiry moves by the commit's duration (a
        // duration, so it holds whatever clock the caller's lease times are on). Not made durable on its
        // own: after a crash the lease merely expires at its older time.
        if let Some(c) = current {
            let took_ms = started.elapsed().as_millis() as i64;
            let extended = Lease {
                expires_ms: c.expires_ms.saturating_add(took_ms),
                ..c
            };
            let bytes =
                postcard::to_stdvec(&extended).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            self.meta
                .insert(lease_key(tenant, group, lease.shard), bytes)
                .map_err(engine)?;
        }
        Ok(())
    }

    fn checkpoint_parts(
        &self,
        tenant: &str,
        group: &str,
        shard: Shard,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let legacy = legacy_parts_prefix(tenant, group, shard);
        let mut parts = std::collections::HashMap::new();
        for item in self.meta.prefix(&legacy) {
            let (k, v) = item.into_inner().map_err(engine)?;
            parts.insert(k[legacy.len()..].to_vec(), v.to_vec());
        }
        let prefix = checkpoint_log::log_prefix(tenant, group, shard);
        // A record's chunks are adjacent in key order; they are joined before the record is applied.
        let mut record: (Option<u64>, Vec<u8>) = (None, Vec::new());
        for item in self.checkpoint_log.prefix(&prefix) {
            let (k, v) = item.into_inner().map_err(engine)?;
            let seq = checkpoint_log::record_seq(prefix.len(), &k)?;
            if record.0 != Some(seq) {
                checkpoint_log::apply(&record.1, &mut parts)?;
                record = (Some(seq), Vec::new());
            }
            record.1.extend_from_slice(&v);
        }
        checkpoint_log::apply(&record.1, &mut parts)?;
        let mut out: Vec<_> = parts.into_iter().collect();
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn offsets(&self, tenant: &str, shard: Shard) -> Result<Vec<(String, Bucket)>> {
        let prefix = {
            let mut p = meta_key("checkpoint", &[tenant.as_bytes(), &shard.to_be_bytes()]);
            p.push(0);
            p
        };
        let mut out = Vec::new();
        for item in self.meta.prefix(&prefix) {
            let (k, v) = item.into_inner().map_err(engine)?;
            let group = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let cp: Checkpoint =
                postcard::from_bytes(&v).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push((group, cp.offset));
        }
        Ok(out)
    }

    fn acquire_lease(
        &self,
        tenant: &str,
        group: &str,
        shard: Shard,
        owner: &str,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Result<Option<Lease>> {
        let _g = self.lease_lock.lock().unwrap_or_else(|p| p.into_inner());
        let key = lease_key(tenant, group, shard);
        let current: Option<Lease> = self.get_meta(&key)?;
        let epoch = match &current {
            Some(c) if c.owner == owner && c.expires_ms > now_ms => c.epoch,
            Some(c) if c.expires_ms > now_ms => return Ok(None),
            Some(c) => c.epoch + 1,
            None => 1,
        };
        let lease = Lease {
            tenant: tenant.into(),
            group: group.into(),
            shard,
            owner: owner.into(),
            epoch,
            expires_ms: now_ms.saturating_add(ttl_ms),
        };
        self.put_meta(&key, &lease)?;
        Ok(Some(lease))
    }

    fn renew_lease(&self, lease: &Lease, ttl_ms: i64, now_ms: i64) -> Result<Option<Lease>> {
        let _g = self.lease_lock.lock().unwrap_or_else(|p| p.into_inner());
        let key = lease_key(&lease.tenant, &lease.group, lease.shard);
        let current: Option<Lease> = self.get_meta(&key)?;
        match current {
            Some(c) if c.owner == lease.owner && c.epoch == lease.epoch => {
                let renewed = Lease {
                    expires_ms: now_ms.saturating_add(ttl_ms),
                    ..c
                };
                self.put_meta(&key, &renewed)?;
                Ok(Some(renewed))
            }
            _ => Ok(None),
        }
    }

    fn release_lease(&self, lease: &Lease) -> Result<()> {
        let _g = self.lease_lock.lock().unwrap_or_else(|p| p.into_inner());
        let key = lease_key(&lease.tenant, &lease.group, lease.shard);
        let current: Option<Lease> = self.get_meta(&key)?;
        if let Some(c) = current {
            if c.owner == lease.owner && c.epoch == lease.epoch {
                // Expire it rather than delete it, so the epoch keeps growing for the next owner.
                self.put_meta(
                    &key,
                    &Lease {
                        expires_ms: i64::MIN,
                        ..c
                    },
                )?;
            }
        }
        Ok(())
    }

    fn leases(&self, tenant: &str, group: &str) -> Result<Vec<Lease>> {
        let mut prefix = meta_key("lease", &[tenant.as_bytes(), group.as_bytes()]);
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.meta.prefix(&prefix) {
            let (_, v) = item.into_inner().map_err(engine)?;
            out.push(postcard::from_bytes(&v).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        Ok(out)
    }

    fn put_dead_letters(&self, letters: &[DeadLetter]) -> Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut batch = self.db.batch();
        for l in letters {
            let id = self.next_seq();
            let mut k = tenant_prefix(&l.tenant);
            k.extend_from_slice(&id.to_be_bytes());
            let stored = DeadLetter { id, ..l.clone() };
            let v = postcard::to_stdvec(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            batch.insert(&self.dead, k, v);
        }
        batch.commit().map_err(engine)?;
        self.make_durable()
    }

    fn dead_letters(
        &self,
        tenant: &str,
        after_id: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        let prefix = tenant_prefix(tenant);
        let mut start = prefix.clone();
        start.extend_from_slice(&after_id.map_or(0, |i| i.saturating_add(1)).to_be_bytes());
        let mut end = prefix;
        end.extend_from_slice(&[0xff; 9]);
        let mut out = Vec::new();
        for item in self.dead.range(start..end).take(limit) {
            let (_, v) = item.into_inner().map_err(engine)?;
            out.push(postcard::from_bytes(&v).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        Ok(out)
    }

    fn put_record(&self, key: &str, value: Option<&str>) -> Result<()> {
        let k = meta_key("record", &[key.as_bytes()]);
        match value {
            Some(v) => self.meta.insert(k, v.as_bytes()).map_err(engine)?,
            None => self.meta.remove(k).map_err(engine)?,
        }
        self.make_durable()
    }

    fn records(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        let head = meta_key("record", &[b""]);
        let from = meta_key("record", &[prefix.as_bytes()]);
        let mut out = Vec::new();
        for item in self.meta.prefix(&from) {
            let (k, v) = item.into_inner().map_err(engine)?;
            let key = String::from_utf8_lossy(&k[head.len()..]).into_owned();
            if after.is_some_and(|a| key.as_str() <= a) {
                continue;
            }
            out.push((key, String::from_utf8_lossy(&v).into_owned()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn bucket_events(
        &self,
        tenant: &str,
        shard: Shard,
        range: BucketRange,
        cap: u64,
    ) -> Result<Option<u64>> {
        if range.after >= range.upto {
            return Ok(Some(0));
        }
        let (start, end) = bucket_bounds(tenant, shard, range);
        let bucket_key_len = shard_prefix(tenant, shard).len() + 8;
        buckets::count(self.events.range(start..end), bucket_key_len, cap).map(Some)
    }

    fn delete_tenant(&self, tenant: &str) -> Result<u64> {
        validate_tenant(tenant)?;
        let data = tenant_prefix(tenant);
        // Every key under the tenant is (shard, bucket, ...).
        let deleted = buckets::count(self.events.prefix(&data), data.len() + 2 + 8, u64::MAX)?;
        self.delete_prefix(&self.events, &data)?;
        self.delete_prefix(&self.payloads, &data)?;
        self.delete_prefix(&self.marks, &data)?;
        self.delete_prefix(&self.dead, &data)?;
        let _g = self.lease_lock.lock().unwrap_or_else(|p| p.into_inner());
        for kind in ["checkpoint", "cpart", "lease"] {
            let mut p = meta_key(kind, &[tenant.as_bytes()]);
            p.push(0);
            self.delete_prefix(&self.meta, &p)?;
        }
        self.delete_prefix(
            &self.checkpoint_log,
            &checkpoint_log::tenant_log_prefix(tenant),
        )?;
        self.meta
            .remove(meta_key("tenant", &[tenant.as_bytes()]))
            .map_err(engine)?;
        self.make_durable()?;
        Ok(deleted)
    }

    fn delete_before(&self, tenant: &str, shard: Shard, before: Bucket) -> Result<u64> {
        let start = shard_prefix(tenant, shard);
        let end = bucket_key(tenant, shard, before);
        let events = self.events.range(start.as_slice()..end.as_slice());
        let deleted = buckets::count(events, start.len() + 8, u64::MAX)?;
        self.delete_range(&self.events, &start, &end)?;
        // Payload frames (and, in a store written before frames, one record per event key).
        self.delete_range(&self.payloads, &start, &end)?;
        self.delete_range(&self.marks, &start, &end)?;
        self.make_durable()?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data directory written before payload frames keeps one record per event key: those are still
    /// found, and retention still removes them.
    #[test]
    fn records_stored_one_key_each_are_still_read_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path(), Durability::None).unwrap();
        s.ensure_tenant("t", 1).unwrap();
        s.payloads
            .insert(event_key("t", 0, 1000, EventKey(9)), b"legacy")
            .unwrap();
        s.append(
            "t",
            &[NewEvent {
                shard: 0,
                bucket: 1000,
                key: EventKey(8),
                event: b"e",
                raw: b"framed",
            }],
        )
        .unwrap();
        assert_eq!(
            s.payload("t", 0, 1000, EventKey(9)).unwrap().as_deref(),
            Some(&b"legacy"[..])
        );
        assert_eq!(
            s.payload("t", 0, 1000, EventKey(8)).unwrap().as_deref(),
            Some(&b"framed"[..])
        );
        s.delete_before("t", 0, 2000).unwrap();
        assert_eq!(s.payload("t", 0, 1000, EventKey(9)).unwrap(), None);
        assert_eq!(s.payload("t", 0, 1000, EventKey(8)).unwrap(), None);
        assert_eq!(s.payloads.iter().count(), 0);
    }

    fn append_one(s: &EmbeddedStore, bucket: Bucket, key: u128, event: &[u8]) {
        s.append(
            "t",
            &[NewEvent {
                shard: 0,
                bucket,
                key: EventKey(key),
                event,
                raw: event,
            }],
        )
        .unwrap();
    }

    /// A data directory written before event frames keeps one key per event: a scan merges those with
    /// the frames of the same bucket in key order, a later write of a key wins, and counting and
    /// retention see each key once.
    #[test]
    fn events_stored_one_key_each_are_merged_with_frames() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path(), Durability::None).unwrap();
        s.ensure_tenant("t", 1).unwrap();
        for (bucket, key) in [(1000, 2), (1000, 5), (1000, 9), (2000, 1)] {
            s.events
                .insert(
                    event_key("t", 0, bucket, EventKey(key)),
                    format!("old-{key}"),
                )
                .unwrap();
        }
        append_one(&s, 1000, 7, b"new-7");
        append_one(&s, 1000, 5, b"new-5");
        append_one(&s, 1000, 1, b"new-1");
        append_one(&s, 1000, 7, b"newer-7");
        let all: Vec<(Bucket, u128, String)> = s
            .scan("t", 0, BucketRange::all(), None, 100)
            .unwrap()
            .into_iter()
            .map(|e| (e.bucket, e.key.0, String::from_utf8(e.event).unwrap()))
            .collect();
        let expected = [
            (1000, 1, "new-1"),
            (1000, 2, "old-2"),
            (1000, 5, "new-5"),
            (1000, 7, "newer-7"),
            (1000, 9, "old-9"),
            (2000, 1, "old-1"),
        ];
        assert_eq!(
            all,
            expected
                .iter()
                .map(|(b, k, v)| (*b, *k, v.to_string()))
                .collect::<Vec<_>>()
        );
        // Paging resumes inside a bucket, after the resume key, whatever layout holds it.
        let mut paged = Vec::new();
        let mut resume = None;
        loop {
            let page = s.scan("t", 0, BucketRange::all(), resume, 2).unwrap();
            if page.is_empty() {
                break;
            }
            resume = page.last().map(|e| (e.bucket, e.key));
            paged.extend(page.into_iter().map(|e| (e.bucket, e.key.0)));
        }
        assert_eq!(
            paged,
            expected
                .iter()
                .map(|(b, k, _)| (*b, *k))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            s.bucket_events("t", 0, BucketRange::all(), 100).unwrap(),
            Some(6)
        );
        assert_eq!(s.delete_before("t", 0, 2000).unwrap(), 5);
        assert_eq!(
            s.scan("t", 0, BucketRange::all(), None, 100).unwrap().len(),
            1
        );
    }

    /// Whether the journal was written compressed or not, reopening the store with either setting
    /// recovers what it holds.
    #[test]
    fn a_journal_written_either_way_is_recovered_either_way() {
        for (write, read) in [(false, true), (true, false), (false, false)] {
            let dir = tempfile::tempdir().unwrap();
            let payload = vec![b'x'; 64 << 10];
            {
                let s = EmbeddedStore::open_with(dir.path(), Durability::Fsync, write).unwrap();
                s.ensure_tenant("t", 1).unwrap();
                s.append(
                    "t",
                    &[NewEvent {
                        shard: 0,
                        bucket: 1000,
                        key: EventKey(5),
                        event: b"event",
                        raw: &payload,
                    }],
                )
                .unwrap();
            }
            let s = EmbeddedStore::open_with(dir.path(), Durability::Fsync, read).unwrap();
            let got = s.scan("t", 0, BucketRange::all(), None, 10).unwrap();
            assert_eq!(
                got.len(),
                1,
                "write compressed {write}, read compressed {read}"
            );
            assert_eq!(got[0].event, b"event");
            assert_eq!(
                s.payload("t", 0, 1000, EventKey(5)).unwrap().as_deref(),
                Some(payload.as_slice())
            );
        }
    }
}
