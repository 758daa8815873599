//! The ScyllaDB / Apache Cassandra backend (cargo feature `scylla`, off by default): the [`Store`] contract
//! on a wide-column cluster, with the maintained `scylla` driver (1.x, async; token-aware load balancing
//! by default, prepared statements throughout). Deployment notes: docs/deploy.md, "ScyllaDB".
//!
//! # Tables (in one keyspace of the caller's choice, created if missing)
//!
//! ```text
//! tenants      (tenant)                               → shards int              (LWT: IF NOT EXISTS)
//! events       ((tenant, shard, bucket), event_key)   → event blob
//! payloads     ((tenant, shard, bucket), event_key)   → raw blob                (apart: scans never read it)
//! marks        ((tenant, shard), bucket, writer)      → mark bigint
//! leases       ((tenant, grp, shard))                 → owner, epoch, expires_ms, ck_offset, ck_marks, ck_state
//! lease_slots  ((tenant), grp, shard)                 → (every lease row a tenant has: listing, offsets)
//! dead_letters ((tenant), id)                         → received, source, line, format, code, reason, raw
//! records      ((p = 'r'), key)                       → value text
//! ```
//!
//! Event keys are 16-byte big-endian blobs, so the blob order of the clustering key is the `u128` order
//! and one partition holds one bucket of one shard in key order.
//!
//! # Consistency: why nothing acknowledged is lost
//!
//! Every write is at `QUORUM` (`LOCAL_QUORUM` with [`ScyllaOptions::local_dc`]) and every read at the same
//! level: a write acknowledged by a quorum of replicas overlaps any later quorum read, so whatever
//! [`Store::append`] acknowledged is seen by every later [`Store::scan`]. Leases, commits and the tenant
//! registry need more than that (two workers must never both win a lease, and a fenced worker must never
//! overwrite a newer checkpoint): they are lightweight transactions (Paxos) at serial consistency
//! `SERIAL` (`LOCAL_SERIAL`), which are linearizable; the checkpoint is read back at `SERIAL` too, so a
//! new owner sees the last commit even if its Paxos round was still finishing.
//!
//! # Append: atomicity
//!
//! Cassandra has no multi-partition transactions (a logged batch is atomic eventually but not isolated,
//! and is limited to a few KB, far less than a batch of payloads). `append` therefore writes in two
//! phases: first every payload and every event row (concurrent prepared `INSERT`s, at most
//! [`ScyllaOptions::concurrency`] in flight, each acknowledged by a quorum), and only when all of them are
//! acknowledged, the write marks of the (shard, bucket)s touched. Scans find buckets through `marks`, so:
//!
//! - a bucket first written by a failed append has no mark and is invisible: none of the batch is seen;
//! - in a bucket that already had a mark, a reader may see part of a failed batch. The caller was never
//!   acknowledged and sends the same events again (same event keys: the inserts are idempotent upserts),
//!   and that append bumps the mark, which makes every worker that read the bucket read it again. This
//!   is exactly the situation of a batch that was stored and then re-sent, which the PostgreSQL backend
//!   and the workers already handle (events are identified by key, a re-read bucket is de-duplicated).
//!
//! The mark of a bucket is the sum (wrapping) of one cell per writing process (`writer`, random per
//! [`ScyllaStore`]); each process writes strictly increasing values (microseconds, bumped past the last
//! one) `USING TIMESTAMP` of the same value, so its own cell only grows and never loses a
//! last-write-wins race against itself, and the sum changes on every write however clocks of different
//! processes compare. (A counter column would also always change, but a deleted counter cannot be
//! incremented again, which breaks re-created tenants.)
//!
//! # Leases and fencing
//!
//! A lease and the checkpoint it guards are one row, `leases ((tenant, grp, shard))`, because a Paxos
//! condition applies to one partition of one table. Each lease is its own partition, so the Paxos rounds
//! of different shards never contend.
//! - acquire: register `(grp, shard)` in `lease_slots` (lease "shards" are the pool's partitions and
//!   member slots, so they are listed from there, not from the tenant's shard count); read the row at `SERIAL`; if absent `INSERT ... IF NOT EXISTS` (epoch 1); if expired or ours,
//!   `UPDATE ... SET owner, epoch (+1 unless it is ours and unexpired), expires_ms IF owner = ? AND epoch = ?
//!   AND expires_ms = ?` (the values read, so any change in between makes it fail and we read again).
//! - renew / release: `UPDATE ... IF owner = ? AND epoch = ?` (release expires it rather than deleting it,
//!   so the epoch keeps growing for the next owner).
//! - commit: `UPDATE leases SET ck_offset, ck_marks, ck_state ... IF owner = ? AND epoch = ?`; not applied
//!   means [`StoreError::LeaseLost`]. A timeout of a Paxos round has an unknown outcome: it is an error,
//!   and the caller's retry is fenced the same way.
//!
//! # Retention
//!
//! `delete_before` finds the shard's buckets below the horizon through `marks`, counts and deletes each
//! `events` and `payloads` partition (one partition delete each), then range-deletes the marks. Events
//! whose append failed before its marks were written are not found this way; set
//! [`ScyllaOptions::default_ttl`] (a `default_time_to_live` on the event tables, longer than any retention)
//! to have the cluster expire everything regardless.
//!
//! # Blocking
//!
//! The trait blocks and the driver is async: the store owns a small multi-thread tokio runtime (two
//! workers) that runs the driver's connections and timers, and each call waits for its future on the
//! calling thread with that runtime entered as context (`futures::executor::block_on`, not
//! `Runtime::block_on`, which panics on `spawn_blocking` threads of another runtime). Callers already use
//! `spawn_blocking` (see the trait doc); calling the store from an async task would block a worker.
//!
//! # Known limits
//!
//! - Marks are written with the writing process's clock (`USING TIMESTAMP`) and deleted with the
//!   coordinator's: keep clocks synchronized (NTP), or a write landing within the clock skew after a
//!   `delete_tenant` of the same tenant could be shadowed by the deletion.
//! - Dead-letter ids increase per process (microseconds); across processes they are unique (each insert
//!   is `IF NOT EXISTS`) and ordered only as well as the clocks agree.
//! - A tenant's dead letters share one partition and each is one Paxos round, written one after the other
//!   (concurrent rounds on one partition contend): a few hundred per second, enough for rejected input.
//! - `records` is one partition; deleted records leave tombstones there until compaction after
//!   `gc_grace_seconds` (the deployment's records are few and rarely deleted).
//! - No keyed checkpoint parts ([`Store::keyed_checkpoint_parts`] is false): the whole state is in each
//!   commit.
use crate::*;
use ::scylla::client::execution_profile::ExecutionProfile;
use ::scylla::client::session::Session;
use ::scylla::client::session_builder::SessionBuilder;
use ::scylla::deserialize::row::DeserializeRow;
use ::scylla::policies::load_balancing::DefaultPolicy;
use ::scylla::response::query_result::QueryResult;
use ::scylla::response::{PagingState, PagingStateResponse};
use ::scylla::serialize::row::SerializeRow;
use ::scylla::statement::prepared::PreparedStatement;
use ::scylla::statement::{Consistency, SerialConsistency};
use ::scylla::value::{CqlValue, Row};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use storyline_model::{EventKey, Timestamp};

/// Where the keyspace's replicas go when it is created (an existing keyspace is left as it is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replication {
    /// `SimpleStrategy` with this replication factor (one data center).
    Simple(u32),
    /// `NetworkTopologyStrategy` with a replication factor per data center.
    NetworkTopology(Vec<(String, u32)>),
}

impl Default for Replication {
    fn default() -> Self {
        Replication::Simple(3)
    }
}

impl Replication {
    /// `simple:3`, `SimpleStrategy:3`, or `NetworkTopologyStrategy:dc1=3,dc2=3` (also `nts:dc1=3`).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            StoreError::Engine(format!(
                "ScyllaDB replication {s:?}: {why} (use `SimpleStrategy:3` or `NetworkTopologyStrategy:dc1=3,dc2=3`)"
            ))
        };
        let (class, rest) = s.trim().split_once(':').ok_or_else(|| bad("no ':'"))?;
        let rf = |v: &str| -> Result<u32> {
            match v.trim().parse::<u32>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(bad("a replication factor is a whole number of at least 1")),
            }
        };
        match class.trim().to_ascii_lowercase().as_str() {
            "simple" | "simplestrategy" => Ok(Replication::Simple(rf(rest)?)),
            "nts" | "networktopology" | "networktopologystrategy" => {
                let mut dcs = Vec::new();
                for part in rest.split(',').filter(|p| !p.trim().is_empty()) {
                    let (dc, n) = part.split_once('=').ok_or_else(|| bad("expected dc=rf"))?;
                    let dc = dc.trim();
                    if dc.is_empty() || dc.contains('\'') {
                        return Err(bad("bad data center name"));
                    }
                    dcs.push((dc.to_string(), rf(n)?));
                }
                if dcs.is_empty() {
                    return Err(bad("no data center"));
                }
                Ok(Replication::NetworkTopology(dcs))
            }
            _ => Err(bad("unknown strategy")),
        }
    }

    /// The CQL map of `CREATE KEYSPACE ... WITH replication = `.
    pub fn to_cql(&self) -> String {
        match self {
            Replication::Simple(n) => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {n}}}")
            }
            Replication::NetworkTopology(dcs) => {
                let mut s = String::from("{'class': 'NetworkTopologyStrategy'");
                for (dc, n) in dcs {
                    s.push_str(&format!(", '{dc}': {n}"));
                }
                s.push('}');
                s
            }
        }
    }
}

/// Settings of [`ScyllaStore::connect_with`].
#[derive(Clone, Debug)]
pub struct ScyllaOptions {
    /// Replication of the keyspace when this store creates it (default `SimpleStrategy`, RF 3).
    pub replication: Replication,
    /// The local data center: requests go to its nodes first, and the levels become `LOCAL_QUORUM` and
    /// `LOCAL_SERIAL` (each data center is consistent on its own; use with `NetworkTopologyStrategy`).
    pub local_dc: Option<String>,
    /// Extra keyspace options appended with `AND` when the keyspace is created, e.g.
    /// `tablets = {'enabled': false}` on ScyllaDB versions whose tablets keyspaces lack LWT support.
    pub keyspace_options: Option<String>,
    /// `default_time_to_live` of `events`, `payloads` and `marks` when they are created: the cluster drops
    /// data older than this whatever retention does (must be longer than the longest retention).
    pub default_ttl: Option<Duration>,
    /// User name and password (PasswordAuthenticator), if the cluster needs them.
    pub credentials: Option<(String, String)>,
    /// Most requests of one call in flight at once (default 64).
    pub concurrency: usize,
    /// Client-side timeout of one request (default 12 s, above the servers' own write timeouts).
    pub request_timeout: Duration,
}

impl Default for ScyllaOptions {
    fn default() -> Self {
        Self {
            replication: Replication::default(),
            local_dc: None,
            keyspace_options: None,
            default_ttl: None,
            credentials: None,
            concurrency: 64,
            request_timeout: Duration::from_secs(12),
        }
    }
}

/// Splits `host[:port],host[:port]` into `host:port` contact points (default port 9042).
pub fn parse_hosts(hosts: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for h in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        // `[v6]:port`, `[v6]`, `host:port`, `host`.
        let with_port = if let Some(rest) = h.strip_prefix('[') {
            match rest.split_once(']') {
                Some((_, "")) => format!("{h}:9042"),
                Some((_, p)) if p.strip_prefix(':').is_some_and(valid_port) => h.to_string(),
                _ => {
                    return Err(StoreError::Engine(format!(
                        "ScyllaDB host {h:?}: bad address"
                    )))
                }
            }
        } else {
            match h.rsplit_once(':') {
                None => format!("{h}:9042"),
                Some((host, p)) if !host.is_empty() && !host.contains(':') && valid_port(p) => {
                    h.to_string()
                }
                _ => {
                    return Err(StoreError::Engine(format!(
                        "ScyllaDB host {h:?}: bad address"
                    )))
                }
            }
        };
        out.push(with_port);
    }
    if out.is_empty() {
        return Err(StoreError::Engine("ScyllaDB: no host given".into()));
    }
    Ok(out)
}

fn valid_port(p: &str) -> bool {
    matches!(p.parse::<u16>(), Ok(n) if n > 0)
}

/// Keyspace names this store accepts: a lowercase letter, then up to 47 of a-z, 0-9 and '_' (unquoted
/// CQL identifiers are case-insensitive, so only lowercase is unambiguous).
pub fn validate_keyspace(ks: &str) -> Result<()> {
    let ok = !ks.is_empty()
        && ks.len() <= 48
        && ks.as_bytes()[0].is_ascii_lowercase()
        && ks
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Engine(format!(
            "invalid ScyllaDB keyspace name {ks:?}: use a lowercase letter then up to 47 of a-z, 0-9 and '_'"
        )))
    }
}

/// The smallest string greater than every string that starts with `prefix` (in UTF-8 byte order, which
/// is code point order), or `None` if there is none (empty prefix, or only `char::MAX`s).
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        let mut n = c as u32 + 1;
        if (0xD800..=0xDFFF).contains(&n) {
            n = 0xE000;
        }
        if let Some(next) = char::from_u32(n) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Event keys as 16-byte big-endian blobs: blob order is `u128` order.
pub fn key_bytes(k: EventKey) -> [u8; 16] {
    k.0.to_be_bytes()
}

pub fn key_of(b: &[u8]) -> Result<EventKey> {
    let a: [u8; 16] = b.try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "ScyllaDB: an event key of {} bytes, not 16",
            b.len()
        ))
    })?;
    Ok(EventKey(u128::from_be_bytes(a)))
}

/// Combines the per-writer cells of one bucket into its mark.
pub fn combine_marks(cells: impl IntoIterator<Item = i64>) -> u64 {
    cells
        .into_iter()
        .fold(0u64, |acc, c| acc.wrapping_add(c as u64))
}

/// Strictly increasing microsecond values of one process: marks (and their write timestamps) and
/// dead-letter ids.
struct Clock(AtomicI64);

impl Clock {
    fn next(&self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        let mut last = self.0.load(Ordering::Relaxed);
        loop {
            let v = now.max(last + 1);
            match self
                .0
                .compare_exchange_weak(last, v, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return v,
                Err(seen) => last = seen,
            }
        }
    }
}

struct Stmts {
    tenant_insert: PreparedStatement,
    tenant_get: PreparedStatement,
    tenant_delete: PreparedStatement,
    event_insert: PreparedStatement,
    payload_insert: PreparedStatement,
    mark_insert: PreparedStatement,
    scan_all: PreparedStatement,
    scan_from: PreparedStatement,
    keys: PreparedStatement,
    payload_get: PreparedStatement,
    mark_buckets: PreparedStatement,
    marks_range: PreparedStatement,
    marks_below: PreparedStatement,
    marks_all: PreparedStatement,
    marks_delete_below: PreparedStatement,
    marks_delete_all: PreparedStatement,
    events_delete: PreparedStatement,
    payloads_delete: PreparedStatement,
    lease_get: PreparedStatement,
    lease_insert: PreparedStatement,
    lease_take: PreparedStatement,
    lease_renew: PreparedStatement,
    lease_release: PreparedStatement,
    lease_delete: PreparedStatement,
    leases_of: PreparedStatement,
    checkpoint_get: PreparedStatement,
    commit: PreparedStatement,
    offsets: PreparedStatement,
    slot_insert: PreparedStatement,
    slots_of: PreparedStatement,
    slots_of_group: PreparedStatement,
    slots_delete: PreparedStatement,
    dead_insert: PreparedStatement,
    dead_all: PreparedStatement,
    dead_after: PreparedStatement,
    dead_delete: PreparedStatement,
    record_put: PreparedStatement,
    record_delete: PreparedStatement,
    records_ge_lt: PreparedStatement,
    records_gt_lt: PreparedStatement,
    records_ge: PreparedStatement,
    records_gt: PreparedStatement,
}

pub struct ScyllaStore {
    session: Session,
    keyspace: String,
    hosts: String,
    writer: i64,
    clock: Clock,
    concurrency: usize,
    st: Stmts,
    /// Always `Some` until dropped (taken in `Drop` to shut it down without blocking).
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for ScyllaStore {
    fn drop(&mut self) {
        // Dropping a runtime normally waits for its threads, which panics inside an async context (a
        // server dropping its last handle at shutdown); a background shutdown never waits.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

type Res<T> = std::result::Result<T, StoreError>;

const LEASES_COLS: &str = "shard, owner, epoch, expires_ms";

fn shard_i32(s: Shard) -> i32 {
    i32::from(s)
}

fn shard_of(v: i32) -> Res<Shard> {
    Shard::try_from(v).map_err(|_| StoreError::Corrupt(format!("ScyllaDB: shard {v} out of range")))
}

fn lost(lease: &Lease) -> StoreError {
    StoreError::LeaseLost {
        shard: lease.shard,
        owner: lease.owner.clone(),
        epoch: lease.epoch,
    }
}

/// Whether a lightweight transaction was applied (its first column, `[applied]`).
fn applied(res: QueryResult) -> std::result::Result<bool, String> {
    let rows = res.into_rows_result().map_err(|e| e.to_string())?;
    let row: Row = rows.first_row().map_err(|e| e.to_string())?;
    match row.columns.first() {
        Some(Some(CqlValue::Boolean(b))) => Ok(*b),
        other => Err(format!("unexpected LWT result column {other:?}")),
    }
}

fn decode<R>(res: QueryResult) -> std::result::Result<Vec<R>, String>
where
    R: for<'f> DeserializeRow<'f, 'f>,
{
    let rows = res.into_rows_result().map_err(|e| e.to_string())?;
    let it = rows.rows::<R>().map_err(|e| e.to_string())?;
    it.map(|r| r.map_err(|e| e.to_string())).collect()
}

fn limit_i32(n: usize) -> i32 {
    n.clamp(1, i32::MAX as usize) as i32
}

impl ScyllaStore {
    /// Connects with default [`ScyllaOptions`]. `hosts`: `host[:port],...` (port 9042 by default).
    pub fn connect(hosts: &str, keyspace: &str) -> Result<Self> {
        Self::connect_with(hosts, keyspace, ScyllaOptions::default())
    }

    /// Connects, creates the keyspace and tables if missing, and prepares every statement.
    pub fn connect_with(hosts: &str, keyspace: &str, opts: ScyllaOptions) -> Result<Self> {
        validate_keyspace(keyspace)?;
        let nodes = parse_hosts(hosts)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("storyline-scylla")
            .enable_all()
            .build()
            .map_err(|e| {
                StoreError::Engine(format!("ScyllaDB: cannot start the driver runtime: {e}"))
            })?;
        let host_list = nodes.join(",");
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Engine(format!(
                "ScyllaDB ({host_list}, keyspace {keyspace}): {what}: {e}"
            ))
        };
        let (consistency, serial) = if opts.local_dc.is_some() {
            (Consistency::LocalQuorum, SerialConsistency::LocalSerial)
        } else {
            (Consistency::Quorum, SerialConsistency::Serial)
        };
        let mut policy = DefaultPolicy::builder().token_aware(true);
        if let Some(dc) = &opts.local_dc {
            policy = policy
                .prefer_datacenter(dc.clone())
                .permit_dc_failover(false);
        }
        let profile = ExecutionProfile::builder()
            .consistency(consistency)
            .serial_consistency(Some(serial))
            .request_timeout(Some(opts.request_timeout))
            .load_balancing_policy(policy.build())
            .build()
            .into_handle();
        let mut builder = SessionBuilder::new()
            .known_nodes(&nodes)
            .default_execution_profile_handle(profile);
        if let Some((user, password)) = &opts.credentials {
            builder = builder.user(user, password);
        }
        let session = run(&rt, async { Ok(builder.build().await) })?
            .map_err(|e| fail("cannot connect", &e))?;
        run(&rt, async {
            Ok(create_schema(&session, keyspace, &opts).await)
        })?
        .map_err(|e| fail("cannot create the schema", &e))?;
        let mut st = run(&rt, async { Ok(prepare_all(&session, keyspace).await) })?
            .map_err(|e| fail("cannot prepare statements", &e))?;
        let serial_read = if opts.local_dc.is_some() {
            Consistency::LocalSerial
        } else {
            Consistency::Serial
        };
        st.lease_get.set_consistency(serial_read);
        st.checkpoint_get.set_consistency(serial_read);
        st.tenant_get.set_consistency(serial_read);
        // Safe to retry after a timeout (the driver retries only statements marked so): upserts of fixed
        // values (marks carry their own write timestamp), deletions and plain reads. Paxos statements
        // (IF ...) are not: their outcome after a timeout is unknown, and the caller decides.
        for s in [
            &mut st.event_insert,
            &mut st.payload_insert,
            &mut st.mark_insert,
            &mut st.events_delete,
            &mut st.payloads_delete,
            &mut st.marks_delete_below,
            &mut st.marks_delete_all,
            &mut st.record_put,
            &mut st.record_delete,
            &mut st.slot_insert,
            &mut st.slots_delete,
            &mut st.dead_delete,
            &mut st.tenant_get,
            &mut st.scan_all,
            &mut st.scan_from,
            &mut st.keys,
            &mut st.payload_get,
            &mut st.mark_buckets,
            &mut st.marks_range,
            &mut st.marks_below,
            &mut st.marks_all,
            &mut st.lease_get,
            &mut st.leases_of,
            &mut st.checkpoint_get,
            &mut st.offsets,
            &mut st.slots_of,
            &mut st.slots_of_group,
            &mut st.dead_all,
            &mut st.dead_after,
            &mut st.records_ge_lt,
            &mut st.records_gt_lt,
            &mut st.records_ge,
            &mut st.records_gt,
        ] {
            s.set_is_idempotent(true);
        }
        let writer = {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new()
                .hash_one((std::process::id(), std::time::SystemTime::now())) as i64
        };
        Ok(Self {
            session,
            keyspace: keyspace.to_string(),
            hosts: host_list,
            writer,
            clock: Clock(AtomicI64::new(0)),
            concurrency: opts.concurrency.max(1),
            st,
            rt: Some(rt),
        })
    }

    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    /// Drops the keyspace with everything in it (tests; an operator's tool). The store is unusable after.
    pub fn drop_keyspace(&self) -> Result<()> {
        let cql = format!("DROP KEYSPACE IF EXISTS {}", self.keyspace);
        self.block(async {
            self.session
                .query_unpaged(cql.as_str(), ())
                .await
                .map_err(|e| self.err("drop keyspace", e))?;
            Ok(())
        })
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Engine(format!(
            "ScyllaDB ({}, keyspace {}): {what}: {e}",
            self.hosts, self.keyspace
        ))
    }

    fn block<T>(&self, f: impl std::future::Future<Output = Res<T>>) -> Res<T> {
        match &self.rt {
            Some(rt) => run(rt, f),
            None => Err(StoreError::Closed),
        }
    }

    async fn exec(
        &self,
        what: &str,
        st: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Res<QueryResult> {
        self.session
            .execute_unpaged(st, values)
            .await
            .map_err(|e| self.err(what, e))
    }

    async fn rows<R>(
        &self,
        what: &str,
        st: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Res<Vec<R>>
    where
        R: for<'f> DeserializeRow<'f, 'f>,
    {
        let res = self.exec(what, st, values).await?;
        decode(res).map_err(|e| self.err(what, e))
    }

    /// Every row, page by page.
    async fn all_rows<R>(
        &self,
        what: &str,
        st: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Res<Vec<R>>
    where
        R: for<'f> DeserializeRow<'f, 'f>,
    {
        let mut out = Vec::new();
        let mut state = PagingState::start();
        loop {
            let (res, next) = self
                .session
                .execute_single_page(st, &values, state)
                .await
                .map_err(|e| self.err(what, e))?;
            out.extend(decode::<R>(res).map_err(|e| self.err(what, e))?);
            match next {
                PagingStateResponse::HasMorePages { state: s } => state = s,
                PagingStateResponse::NoMorePages => return Ok(out),
            }
        }
    }

    async fn lwt(
        &self,
        what: &str,
        st: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Res<bool> {
        let res = self.exec(what, st, values).await?;
        applied(res).map_err(|e| self.err(what, e))
    }

    async fn shards_of(&self, tenant: &str) -> Res<Option<u16>> {
        let rows: Vec<(i32,)> = self
            .rows("read tenant", &self.st.tenant_get, (tenant,))
            .await?;
        rows.first()
            .map(|r| {
                u16::try_from(r.0).map_err(|_| {
                    StoreError::Corrupt(format!("ScyllaDB: tenant {tenant} has {} shards", r.0))
                })
            })
            .transpose()
    }

    /// Distinct buckets with a mark in `(after, upto]`, ascending, at most about `max` of them.
    async fn buckets(
        &self,
        tenant: &str,
        shard: Shard,
        after: Bucket,
        upto: Bucket,
        max: usize,
    ) -> Res<Vec<Bucket>> {
        let rows: Vec<(i64,)> = self
            .rows(
                "list buckets",
                &self.st.mark_buckets,
                (tenant, shard_i32(shard), after, upto, limit_i32(max)),
            )
            .await?;
        let mut out: Vec<Bucket> = rows.into_iter().map(|r| r.0).collect();
        out.dedup();
        Ok(out)
    }

    /// Counts (up to `cap`) and, with `delete`, deletes the events and payloads of one bucket partition.
    async fn bucket_keys(
        &self,
        tenant: &str,
        shard: Shard,
        bucket: Bucket,
        cap: Option<usize>,
    ) -> Res<u64> {
        let args = (
            tenant,
            shard_i32(shard),
            bucket,
            limit_i32(cap.unwrap_or(i32::MAX as usize)),
        );
        let keys: Vec<(Vec<u8>,)> = self.all_rows("count events", &self.st.keys, args).await?;
        Ok(keys.len() as u64)
    }

    async fn delete_buckets(&self, tenant: &str, shard: Shard, before: Option<Bucket>) -> Res<u64> {
        let sh = shard_i32(shard);
        let marks: Vec<(i64,)> = match before {
            Some(b) => {
                self.all_rows("list buckets", &self.st.marks_below, (tenant, sh, b))
                    .await?
            }
            None => {
                self.all_rows("list buckets", &self.st.marks_all, (tenant, sh))
                    .await?
            }
        };
        let buckets: Vec<Bucket> = {
            let mut seen = HashSet::new();
            marks
                .into_iter()
                .map(|r| r.0)
                .filter(|b| seen.insert(*b))
                .collect()
        };
        let counts: Vec<u64> = futures::stream::iter(buckets.iter().map(|&bucket| async move {
            let n = self.bucket_keys(tenant, shard, bucket, None).await?;
            self.exec(
                "delete events",
                &self.st.events_delete,
                (tenant, sh, bucket),
            )
            .await?;
            self.exec(
                "delete payloads",
                &self.st.payloads_delete,
                (tenant, sh, bucket),
            )
            .await?;
            Ok::<u64, StoreError>(n)
        }))
        .buffer_unordered(self.concurrency)
        .try_collect()
        .await?;
        match before {
            Some(b) => {
                self.exec("delete marks", &self.st.marks_delete_below, (tenant, sh, b))
                    .await?
            }
            None => {
                self.exec("delete marks", &self.st.marks_delete_all, (tenant, sh))
                    .await?
            }
        };
        Ok(counts.into_iter().sum())
    }

    async fn lease_row(
        &self,
        tenant: &str,
        group: &str,
        shard: Shard,
    ) -> Res<Option<(Option<String>, Option<i64>, Option<i64>)>> {
        let rows: Vec<(Option<String>, Option<i64>, Option<i64>)> = self
            .rows(
                "read lease",
                &self.st.lease_get,
                (tenant, group, shard_i32(shard)),
            )
            .await?;
        Ok(rows.into_iter().next())
    }
}

/// Runs a future of the driver to completion on the calling thread, with the store's runtime as the
/// context (the driver's connections, timers and spawned tasks live on that runtime's threads). Unlike
/// `Runtime::block_on` this works on any thread, including `spawn_blocking` threads of the caller's
/// runtime. It blocks: never call the store from an async task (use `spawn_blocking`).
fn run<T>(rt: &tokio::runtime::Runtime, f: impl std::future::Future<Output = Res<T>>) -> Res<T> {
    let _context = rt.enter();
    futures::executor::block_on(f)
}

async fn create_schema(
    s: &Session,
    ks: &str,
    opts: &ScyllaOptions,
) -> std::result::Result<(), String> {
    let mut create_ks = format!(
        "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {} AND durable_writes = true",
        opts.replication.to_cql()
    );
    if let Some(extra) = &opts.keyspace_options {
        create_ks.push_str(" AND ");
        create_ks.push_str(extra);
    }
    let ttl = opts
        .default_ttl
        .map(|d| format!(" WITH default_time_to_live = {}", d.as_secs().max(1)))
        .unwrap_or_default();
    let tables = [
        create_ks,
        format!("CREATE TABLE IF NOT EXISTS {ks}.tenants (tenant text PRIMARY KEY, shards int)"),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.events (tenant text, shard int, bucket bigint, event_key blob, \
             event blob, PRIMARY KEY ((tenant, shard, bucket), event_key)){ttl}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.payloads (tenant text, shard int, bucket bigint, event_key blob, \
             raw blob, PRIMARY KEY ((tenant, shard, bucket), event_key)){ttl}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.marks (tenant text, shard int, bucket bigint, writer bigint, \
             mark bigint, PRIMARY KEY ((tenant, shard), bucket, writer)){ttl}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.leases (tenant text, grp text, shard int, owner text, epoch bigint, \
             expires_ms bigint, ck_offset bigint, ck_marks blob, ck_state blob, \
             PRIMARY KEY ((tenant, grp, shard)))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.lease_slots (tenant text, grp text, shard int, \
             PRIMARY KEY ((tenant), grp, shard))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.dead_letters (tenant text, id bigint, received bigint, source text, \
             line bigint, format text, code text, reason text, raw blob, PRIMARY KEY ((tenant), id))"
        ),
        format!("CREATE TABLE IF NOT EXISTS {ks}.records (p text, key text, value text, PRIMARY KEY ((p), key))"),
    ];
    for cql in tables {
        s.query_unpaged(cql.as_str(), ())
            .await
            .map_err(|e| format!("{e} (in `{cql}`)"))?;
    }
    s.await_schema_agreement()
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn prepare_all(s: &Session, ks: &str) -> std::result::Result<Stmts, String> {
    let p = |cql: String| async move {
        s.prepare(cql.as_str())
            .await
            .map_err(|e| format!("{e} (in `{cql}`)"))
    };
    let part = "tenant = ? AND shard = ? AND bucket = ?";
    let lease_key = "tenant = ? AND grp = ? AND shard = ?";
    let records = format!("SELECT key, value FROM {ks}.records WHERE p = 'r'");
    Ok(Stmts {
        tenant_insert: p(format!("INSERT INTO {ks}.tenants (tenant, shards) VALUES (?, ?) IF NOT EXISTS")).await?,
        tenant_get: p(format!("SELECT shards FROM {ks}.tenants WHERE tenant = ?")).await?,
        tenant_delete: p(format!("DELETE FROM {ks}.tenants WHERE tenant = ? IF EXISTS")).await?,
        event_insert: p(format!(
            "INSERT INTO {ks}.events (tenant, shard, bucket, event_key, event) VALUES (?, ?, ?, ?, ?)"
        ))
        .await?,
        payload_insert: p(format!(
            "INSERT INTO {ks}.payloads (tenant, shard, bucket, event_key, raw) VALUES (?, ?, ?, ?, ?)"
        ))
        .await?,
        mark_insert: p(format!(
            "INSERT INTO {ks}.marks (tenant, shard, bucket, writer, mark) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
        ))
        .await?,
        scan_all: p(format!("SELECT event_key, event FROM {ks}.events WHERE {part} LIMIT ?")).await?,
        scan_from: p(format!(
            "SELECT event_key, event FROM {ks}.events WHERE {part} AND event_key > ? LIMIT ?"
        ))
        .await?,
        keys: p(format!("SELECT event_key FROM {ks}.events WHERE {part} LIMIT ?")).await?,
        payload_get: p(format!("SELECT raw FROM {ks}.payloads WHERE {part} AND event_key = ?")).await?,
        mark_buckets: p(format!(
            "SELECT bucket FROM {ks}.marks WHERE tenant = ? AND shard = ? AND bucket > ? AND bucket <= ? LIMIT ?"
        ))
        .await?,
        marks_range: p(format!(
            "SELECT bucket, mark FROM {ks}.marks WHERE tenant = ? AND shard = ? AND bucket > ? AND bucket <= ?"
        ))
        .await?,
        marks_below: p(format!(
            "SELECT bucket FROM {ks}.marks WHERE tenant = ? AND shard = ? AND bucket < ?"
        ))
        .await?,
        marks_all: p(format!("SELECT bucket FROM {ks}.marks WHERE tenant = ? AND shard = ?")).await?,
        marks_delete_below: p(format!("DELETE FROM {ks}.marks WHERE tenant = ? AND shard = ? AND bucket < ?")).await?,
        marks_delete_all: p(format!("DELETE FROM {ks}.marks WHERE tenant = ? AND shard = ?")).await?,
        events_delete: p(format!("DELETE FROM {ks}.events WHERE {part}")).await?,
        payloads_delete: p(format!("DELETE FROM {ks}.payloads WHERE {part}")).await?,
        lease_get: p(format!("SELECT owner, epoch, expires_ms FROM {ks}.leases WHERE {lease_key}")).await?,
        lease_insert: p(format!(
            "INSERT INTO {ks}.leases (tenant, grp, shard, owner, epoch, expires_ms) VALUES (?, ?, ?, ?, 1, ?) IF NOT EXISTS"
        ))
        .await?,
        lease_take: p(format!(
            "UPDATE {ks}.leases SET owner = ?, epoch = ?, expires_ms = ? WHERE {lease_key} \
             IF owner = ? AND epoch = ? AND expires_ms = ?"
        ))
        .await?,
        lease_renew: p(format!(
            "UPDATE {ks}.leases SET expires_ms = ? WHERE {lease_key} IF owner = ? AND epoch = ?"
        ))
        .await?,
        lease_release: p(format!(
            "UPDATE {ks}.leases SET expires_ms = {} WHERE {lease_key} IF owner = ? AND epoch = ?",
            i64::MIN
        ))
        .await?,
        lease_delete: p(format!("DELETE FROM {ks}.leases WHERE {lease_key} IF EXISTS")).await?,
        leases_of: p(format!(
            "SELECT {LEASES_COLS} FROM {ks}.leases WHERE tenant = ? AND grp = ? AND shard IN ?"
        ))
        .await?,
        checkpoint_get: p(format!(
            "SELECT ck_offset, ck_marks, ck_state FROM {ks}.leases WHERE {lease_key}"
        ))
        .await?,
        commit: p(format!(
            "UPDATE {ks}.leases SET ck_offset = ?, ck_marks = ?, ck_state = ? WHERE {lease_key} \
             IF owner = ? AND epoch = ?"
        ))
        .await?,
        offsets: p(format!(
            "SELECT grp, ck_offset FROM {ks}.leases WHERE tenant = ? AND grp IN ? AND shard = ?"
        ))
        .await?,
        slot_insert: p(format!("INSERT INTO {ks}.lease_slots (tenant, grp, shard) VALUES (?, ?, ?)")).await?,
        slots_of: p(format!("SELECT grp, shard FROM {ks}.lease_slots WHERE tenant = ?")).await?,
        slots_of_group: p(format!("SELECT shard FROM {ks}.lease_slots WHERE tenant = ? AND grp = ?")).await?,
        slots_delete: p(format!("DELETE FROM {ks}.lease_slots WHERE tenant = ?")).await?,
        dead_insert: p(format!(
            "INSERT INTO {ks}.dead_letters (tenant, id, received, source, line, format, code, reason, raw) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
        ))
        .await?,
        dead_all: p(format!(
            "SELECT id, received, source, line, format, code, reason, raw FROM {ks}.dead_letters \
             WHERE tenant = ? LIMIT ?"
        ))
        .await?,
        dead_after: p(format!(
            "SELECT id, received, source, line, format, code, reason, raw FROM {ks}.dead_letters \
             WHERE tenant = ? AND id > ? LIMIT ?"
        ))
        .await?,
        dead_delete: p(format!("DELETE FROM {ks}.dead_letters WHERE tenant = ?")).await?,
        record_put: p(format!("INSERT INTO {ks}.records (p, key, value) VALUES ('r', ?, ?)")).await?,
        record_delete: p(format!("DELETE FROM {ks}.records WHERE p = 'r' AND key = ?")).await?,
        records_ge_lt: p(format!("{records} AND key >= ? AND key < ? LIMIT ?")).await?,
        records_gt_lt: p(format!("{records} AND key > ? AND key < ? LIMIT ?")).await?,
        records_ge: p(format!("{records} AND key >= ? LIMIT ?")).await?,
        records_gt: p(format!("{records} AND key > ? LIMIT ?")).await?,
    })
}

/// ck_offset, ck_marks, ck_state.
type CheckpointRow = (Option<i64>, Option<Vec<u8>>, Option<Vec<u8>>);
/// shard, owner, epoch, expires_ms.
type LeaseRow = (i32, Option<String>, Option<i64>, Option<i64>);

type DeadRow = (
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
);

impl Store for ScyllaStore {
    fn ensure_tenant(&self, tenant: &str, shards: u16) -> Result<()> {
        validate_tenant(tenant)?;
        self.block(async {
            let ok = self
                .lwt(
                    "register tenant",
                    &self.st.tenant_insert,
                    (tenant, i32::from(shards)),
                )
                .await?;
            if ok {
                return Ok(());
            }
            match self.shards_of(tenant).await? {
                Some(stored) if stored == shards => Ok(()),
                Some(stored) => Err(StoreError::ShardCountMismatch {
                    tenant: tenant.to_string(),
                    stored,
                    configured: shards,
                }),
                None => Err(self.err(
                    "register tenant",
                    format!("tenant {tenant} was deleted while being registered; try again"),
                )),
            }
        })
    }

    fn append(&self, tenant: &str, events: &[NewEvent<'_>]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.block(async {
            // Phase 1: every payload and event row, each acknowledged by a quorum.
            let writes = events.iter().flat_map(|e| {
                let key = key_bytes(e.key);
                let sh = shard_i32(e.shard);
                [
                    (&self.st.payload_insert, (tenant, sh, e.bucket, key, e.raw)),
                    (&self.st.event_insert, (tenant, sh, e.bucket, key, e.event)),
                ]
            });
            futures::stream::iter(writes.map(|(st, v)| async move {
                self.exec("append", st, (v.0, v.1, v.2, &v.3[..], v.4))
                    .await
            }))
            .buffer_unordered(self.concurrency)
            .try_for_each(|_| async { Ok(()) })
            .await?;
            // Phase 2: the marks, only once all of the batch is durable.
            let touched: HashSet<(Shard, Bucket)> =
                events.iter().map(|e| (e.shard, e.bucket)).collect();
            futures::stream::iter(touched.into_iter().map(|(shard, bucket)| async move {
                let mark = self.clock.next();
                self.exec(
                    "bump marks",
                    &self.st.mark_insert,
                    (tenant, shard_i32(shard), bucket, self.writer, mark, mark),
                )
                .await
            }))
            .buffer_unordered(self.concurrency)
            .try_for_each(|_| async { Ok(()) })
            .await
        })
    }

    fn scan(
        &self,
        tenant: &str,
        shard: Shard,
        range: BucketRange,
        resume: Option<(Bucket, EventKey)>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        if limit == 0 || range.after >= range.upto {
            return Ok(Vec::new());
        }
        self.block(async {
            let sh = shard_i32(shard);
            let mut out = Vec::new();
            let mut lo = range.after;
            if let Some((b, _)) = resume {
                if b > range.after {
                    lo = b - 1;
                }
            }
            const BUCKETS_PER_QUERY: usize = 256;
            loop {
                let buckets = self
                    .buckets(tenant, shard, lo, range.upto, BUCKETS_PER_QUERY)
                    .await?;
                let Some(&last) = buckets.last() else {
                    return Ok(out);
                };
                for bucket in buckets {
                    let left = limit_i32(limit - out.len());
                    let rows: Vec<(Vec<u8>, Vec<u8>)> = match resume {
                        Some((b, k)) if b == bucket => {
                            self.rows(
                                "scan",
                                &self.st.scan_from,
                                (tenant, sh, bucket, &key_bytes(k)[..], left),
                            )
                            .await?
                        }
                        _ => {
                            self.rows("scan", &self.st.scan_all, (tenant, sh, bucket, left))
                                .await?
                        }
                    };
                    for (key, event) in rows {
                        out.push(StoredEvent {
                            bucket,
                            key: key_of(&key)?,
                            event,
                        });
                    }
                    if out.len() >= limit {
                        out.truncate(limit);
                        return Ok(out);
                    }
                }
                if last >= range.upto {
                    return Ok(out);
                }
                lo = last;
            }
        })
    }

    fn payload(
        &self,
        tenant: &str,
        shard: Shard,
        bucket: Bucket,
        key: EventKey,
    ) -> Result<Option<Vec<u8>>> {
        self.block(async {
            let rows: Vec<(Option<Vec<u8>>,)> = self
                .rows(
                    "read payload",
                    &self.st.payload_get,
                    (tenant, shard_i32(shard), bucket, &key_bytes(key)[..]),
                )
                .await?;
            Ok(rows.into_iter().next().map(|r| r.0.unwrap_or_default()))
        })
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
        self.block(async {
            let rows: Vec<(i64, Option<i64>)> = self
                .all_rows(
                    "read marks",
                    &self.st.marks_range,
                    (tenant, shard_i32(shard), range.after, range.upto),
                )
                .await?;
            let mut out: Vec<(Bucket, u64)> = Vec::new();
            for (bucket, mark) in rows {
                let mark = combine_marks(mark);
                match out.last_mut() {
                    Some((b, m)) if *b == bucket => *m = m.wrapping_add(mark),
                    _ => out.push((bucket, mark)),
                }
            }
            Ok(out)
        })
    }

    fn load_checkpoint(
        &self,
        tenant: &str,
        group: &str,
        shard: Shard,
    ) -> Result<Option<Checkpoint>> {
        self.block(async {
            let rows: Vec<CheckpointRow> = self
                .rows(
                    "read checkpoint",
                    &self.st.checkpoint_get,
                    (tenant, group, shard_i32(shard)),
                )
                .await?;
            let Some((Some(offset), marks, state)) = rows.into_iter().next() else {
                return Ok(None);
            };
            let marks: Vec<(Bucket, u64)> = match marks {
                Some(m) if !m.is_empty() => postcard::from_bytes(&m)
                    .map_err(|e| StoreError::Corrupt(format!("ScyllaDB: checkpoint marks: {e}")))?,
                _ => Vec::new(),
            };
            Ok(Some(Checkpoint {
                shard,
                offset,
                marks,
                state: state.unwrap_or_default(),
            }))
        })
    }

    fn commit(
        &self,
        tenant: &str,
        group: &str,
        lease: &Lease,
        checkpoint: &Checkpoint,
    ) -> Result<()> {
        if lease.shard != checkpoint.shard || lease.tenant != tenant || lease.group != group {
            return Err(lost(lease));
        }
        let marks = postcard::to_stdvec(&checkpoint.marks)
            .map_err(|e| StoreError::Corrupt(format!("ScyllaDB: checkpoint marks: {e}")))?;
        self.block(async {
            let ok = self
                .lwt(
                    "commit",
                    &self.st.commit,
                    (
                        checkpoint.offset,
                        &marks[..],
                        &checkpoint.state[..],
                        tenant,
                        group,
                        shard_i32(lease.shard),
                        lease.owner.as_str(),
                        lease.epoch as i64,
                    ),
                )
                .await?;
            if ok {
                Ok(())
            } else {
                Err(lost(lease))
            }
        })
    }

    fn offsets(&self, tenant: &str, shard: Shard) -> Result<Vec<(String, Bucket)>> {
        self.block(async {
            let slots: Vec<(String, i32)> = self
                .all_rows("list lease slots", &self.st.slots_of, (tenant,))
                .await?;
            let sh = shard_i32(shard);
            let groups: Vec<&str> = slots
                .iter()
                .filter(|(_, s)| *s == sh)
                .map(|(g, _)| g.as_str())
                .collect();
            let mut out = Vec::new();
            for chunk in groups.chunks(100) {
                let names: Vec<&str> = chunk.to_vec();
                let rows: Vec<(String, Option<i64>)> = self
                    .rows(
                        "read offsets",
                        &self.st.offsets,
                        (tenant, names, shard_i32(shard)),
                    )
                    .await?;
                out.extend(rows.into_iter().filter_map(|(g, o)| o.map(|o| (g, o))));
            }
            Ok(out)
        })
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
        let expires_ms = now_ms.saturating_add(ttl_ms);
        let sh = shard_i32(shard);
        let lease = |epoch: i64| Lease {
            tenant: tenant.into(),
            group: group.into(),
            shard,
            owner: owner.into(),
            epoch: epoch as u64,
            expires_ms,
        };
        self.block(async {
            // Before the lease row exists, so every lease row is listed (idempotent).
            self.exec(
                "register lease slot",
                &self.st.slot_insert,
                (tenant, group, sh),
            )
            .await?;
            // Each failed attempt means someone else changed the row in between: read it again.
            for _ in 0..4 {
                match self.lease_row(tenant, group, shard).await? {
                    None => {
                        if self
                            .lwt(
                                "take lease",
                                &self.st.lease_insert,
                                (tenant, group, sh, owner, expires_ms),
                            )
                            .await?
                        {
                            return Ok(Some(lease(1)));
                        }
                    }
                    Some((held_by, epoch, expires)) => {
                        let (held_by, epoch, expires) = (
                            held_by.unwrap_or_default(),
                            epoch.unwrap_or(0),
                            expires.unwrap_or(i64::MIN),
                        );
                        let ours = held_by == owner;
                        let live = expires > now_ms;
                        if live && !ours {
                            return Ok(None);
                        }
                        let new_epoch = if ours && live { epoch } else { epoch + 1 };
                        if self
                            .lwt(
                                "take lease",
                                &self.st.lease_take,
                                (
                                    owner,
                                    new_epoch,
                                    expires_ms,
                                    tenant,
                                    group,
                                    sh,
                                    held_by.as_str(),
                                    epoch,
                                    expires,
                                ),
                            )
                            .await?
                        {
                            return Ok(Some(lease(new_epoch)));
                        }
                    }
                }
            }
            Ok(None)
        })
    }

    fn renew_lease(&self, lease: &Lease, ttl_ms: i64, now_ms: i64) -> Result<Option<Lease>> {
        let expires_ms = now_ms.saturating_add(ttl_ms);
        self.block(async {
            let ok = self
                .lwt(
                    "renew lease",
                    &self.st.lease_renew,
                    (
                        expires_ms,
                        lease.tenant.as_str(),
                        lease.group.as_str(),
                        shard_i32(lease.shard),
                        lease.owner.as_str(),
                        lease.epoch as i64,
                    ),
                )
                .await?;
            Ok(ok.then(|| Lease {
                expires_ms,
                ..lease.clone()
            }))
        })
    }

    fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.block(async {
            self.lwt(
                "release lease",
                &self.st.lease_release,
                (
                    lease.tenant.as_str(),
                    lease.group.as_str(),
                    shard_i32(lease.shard),
                    lease.owner.as_str(),
                    lease.epoch as i64,
                ),
            )
            .await?;
            Ok(())
        })
    }

    fn leases(&self, tenant: &str, group: &str) -> Result<Vec<Lease>> {
        self.block(async {
            // Lease "shards" are the pool's partitions and member slots, not bounded by the tenant's
            // shard count: list the slots registered when they were first taken.
            let all: Vec<i32> = self
                .all_rows::<(i32,)>("list lease slots", &self.st.slots_of_group, (tenant, group))
                .await?
                .into_iter()
                .map(|r| r.0)
                .collect();
            let mut out = Vec::new();
            for chunk in all.chunks(100) {
                let rows: Vec<LeaseRow> = self
                    .rows(
                        "list leases",
                        &self.st.leases_of,
                        (tenant, group, chunk.to_vec()),
                    )
                    .await?;
                for (shard, owner, epoch, expires) in rows {
                    let (Some(owner), Some(epoch), Some(expires_ms)) = (owner, epoch, expires)
                    else {
                        continue;
                    };
                    out.push(Lease {
                        tenant: tenant.into(),
                        group: group.into(),
                        shard: shard_of(shard)?,
                        owner,
                        epoch: epoch as u64,
                        expires_ms,
                    });
                }
            }
            out.sort_by_key(|l| l.shard);
            Ok(out)
        })
    }

    fn put_dead_letters(&self, letters: &[DeadLetter]) -> Result<()> {
        self.block(async {
            for d in letters {
                // Ids are this process's increasing microseconds; IF NOT EXISTS makes a collision with
                // another process visible, and we take the next id.
                let mut stored = false;
                for _ in 0..16 {
                    let id = self.clock.next();
                    if self
                        .lwt(
                            "store dead letter",
                            &self.st.dead_insert,
                            (
                                d.tenant.as_str(),
                                id,
                                d.received.0,
                                d.source.as_str(),
                                d.line.map(|l| l as i64),
                                d.format.as_deref(),
                                d.code.as_str(),
                                d.reason.as_str(),
                                &d.raw[..],
                            ),
                        )
                        .await?
                    {
                        stored = true;
                        break;
                    }
                }
                if !stored {
                    return Err(self.err("store dead letter", "no free id after 16 attempts"));
                }
            }
            Ok(())
        })
    }

    fn dead_letters(
        &self,
        tenant: &str,
        after_id: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.block(async {
            let rows: Vec<DeadRow> = match after_id {
                None => {
                    self.rows(
                        "list dead letters",
                        &self.st.dead_all,
                        (tenant, limit_i32(limit)),
                    )
                    .await?
                }
                Some(a) => {
                    let a = i64::try_from(a).unwrap_or(i64::MAX);
                    self.rows(
                        "list dead letters",
                        &self.st.dead_after,
                        (tenant, a, limit_i32(limit)),
                    )
                    .await?
                }
            };
            Ok(rows
                .into_iter()
                .map(
                    |(id, received, source, line, format, code, reason, raw)| DeadLetter {
                        id: id as u64,
                        tenant: tenant.to_string(),
                        received: Timestamp(received.unwrap_or(0)),
                        source: source.unwrap_or_default(),
                        line: line.map(|l| l as u64),
                        format,
                        code: code.unwrap_or_default(),
                        reason: reason.unwrap_or_default(),
                        raw: raw.unwrap_or_default(),
                    },
                )
                .collect())
        })
    }

    fn delete_before(&self, tenant: &str, shard: Shard, before: Bucket) -> Result<u64> {
        self.block(self.delete_buckets(tenant, shard, Some(before)))
    }

    fn bucket_events(
        &self,
        tenant: &str,
        shard: Shard,
        range: BucketRange,
        cap: u64,
    ) -> Result<Option<u64>> {
        if range.after >= range.upto || cap == 0 {
            return Ok(Some(0));
        }
        self.block(async {
            let mut n = 0u64;
            let mut lo = range.after;
            loop {
                let buckets = self.buckets(tenant, shard, lo, range.upto, 256).await?;
                let Some(&last) = buckets.last() else {
                    return Ok(Some(n));
                };
                for bucket in buckets {
                    let left = (cap - n).min(i32::MAX as u64) as usize;
                    n += self.bucket_keys(tenant, shard, bucket, Some(left)).await?;
                    if n >= cap {
                        return Ok(Some(cap));
                    }
                }
                if last >= range.upto {
                    return Ok(Some(n));
                }
                lo = last;
            }
        })
    }

    fn delete_tenant(&self, tenant: &str) -> Result<u64> {
        self.block(async {
            let shards = self.shards_of(tenant).await?.unwrap_or(0);
            let mut n = 0;
            for shard in 0..shards {
                n += self.delete_buckets(tenant, shard, None).await?;
            }
            let rows: Vec<(String, i32)> = self
                .all_rows("list lease slots", &self.st.slots_of, (tenant,))
                .await?;
            futures::stream::iter(rows.iter().map(|(g, s)| async move {
                self.lwt(
                    "delete leases",
                    &self.st.lease_delete,
                    (tenant, g.as_str(), *s),
                )
                .await
            }))
            .buffer_unordered(self.concurrency)
            .try_for_each(|_| async { Ok(()) })
            .await?;
            self.exec("delete lease slots", &self.st.slots_delete, (tenant,))
                .await?;
            self.exec("delete dead letters", &self.st.dead_delete, (tenant,))
                .await?;
            self.lwt("delete tenant", &self.st.tenant_delete, (tenant,))
                .await?;
            Ok(n)
        })
    }

    fn put_record(&self, key: &str, value: Option<&str>) -> Result<()> {
        self.block(async {
            match value {
                Some(v) => {
                    self.exec("store record", &self.st.record_put, (key, v))
                        .await?
                }
                None => {
                    self.exec("delete record", &self.st.record_delete, (key,))
                        .await?
                }
            };
            Ok(())
        })
    }

    fn records(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.block(async {
            // Keys starting with `prefix` are contiguous from `prefix` itself up to its upper bound.
            let (from, inclusive) = match after {
                Some(a) if a >= prefix => (a, false),
                _ => (prefix, true),
            };
            let n = limit_i32(limit);
            let what = "list records";
            let rows: Vec<(String, Option<String>)> = match (prefix_upper_bound(prefix), inclusive)
            {
                (Some(u), true) => {
                    self.rows(what, &self.st.records_ge_lt, (from, u.as_str(), n))
                        .await?
                }
                (Some(u), false) => {
                    self.rows(what, &self.st.records_gt_lt, (from, u.as_str(), n))
                        .await?
                }
                (None, true) => self.rows(what, &self.st.records_ge, (from, n)).await?,
                (None, false) => self.rows(what, &self.st.records_gt, (from, n)).await?,
            };
            Ok(rows
                .into_iter()
                .filter(|(k, _)| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_blobs_sort_like_keys() {
        let keys = [0u128, 1, 255, 256, u64::MAX as u128, 1 << 100, u128::MAX];
        for w in keys.windows(2) {
            assert!(key_bytes(EventKey(w[0])) < key_bytes(EventKey(w[1])));
        }
        for k in keys {
            assert_eq!(key_of(&key_bytes(EventKey(k))).unwrap(), EventKey(k));
        }
        assert!(key_of(&[1, 2, 3]).is_err());
    }
}
