//! The PostgreSQL backend: the same [`Store`] contract on a server many Storyline processes share.
//!
//! Uses the maintained synchronous `postgres` crate (a blocking wrapper around tokio-postgres): the trait
//! is blocking, so callers are already on threads that may block. Connections come from a small pool
//! ([`pool`] says why it is not r2d2). The tables live in one schema of the caller's choice, created on
//! first connect; [`schema`] documents them. Design notes: docs/design.md, "PostgreSQL backend".
//!
//! - `append` is one statement (so one transaction): a multi-row `INSERT ... SELECT FROM unnest(...)
//!   ON CONFLICT DO NOTHING` into `events` whose `RETURNING` feeds the upsert of the batch's `marks`. A
//!   re-sent batch inserts nothing twice (and still bumps its marks). It returns after COMMIT, with
//!   `synchronous_commit` on.
//! - Leases are one `INSERT ... ON CONFLICT DO UPDATE ... WHERE expired OR ours RETURNING epoch`; a commit
//!   is one statement that locks the lease row (`SELECT ... FOR UPDATE` in a CTE) and writes the checkpoint
//!   only if owner and epoch still match.
//! - Retention moves a per-(tenant, shard) horizon (`retention.before`), which hides older rows from every
//!   read at once, and drops a whole `events` partition once no (tenant, shard) has data in it above its
//!   horizon. No row-by-row DELETE of events, except for a partition held back for longer than
//!   [`PostgresOptions::stale_after`] by another (tenant, shard) that keeps data longer or has stopped.

mod pool;
pub mod schema;

use crate::*;
use ::postgres::error::SqlState;
use pool::Pool;
use schema::{quote, Part};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;
use storyline_model::{EventKey, Timestamp};
use uuid::Uuid;

pub use schema::SCHEMA_VERSION;

/// Settings of [`PostgresStore::connect_with`].
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Most connections open at once (default 8). Callers beyond that wait for a free one.
    pub pool_size: usize,
    /// Width of one `events` partition in milliseconds of bucket (default 1 h). Only used when the schema
    /// is created; an existing schema keeps the width it was created with. Retention frees space in
    /// steps of this width.
    pub partition_ms: i64,
    /// How long retention waits for the brief exclusive lock that dropping a partition takes before it
    /// gives up until its next pass (default 2 s).
    pub drop_lock_timeout: Duration,
    /// A partition that is entirely below some (tenant, shard)'s horizon but still held back by another
    /// (tenant, shard) for longer than this (one that keeps data longer, or has stopped) is treated as
    /// stuck: each (tenant, shard) past it then deletes its own rows from it row by row (default 10 min,
    /// ten retention passes, so that normally every shard catches up and the partition is dropped).
    pub stale_after: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 8,
            partition_ms: 3_600_000,
            drop_lock_timeout: Duration::from_secs(2),
            stale_after: Duration::from_secs(600),
        }
    }
}

pub struct PostgresStore {
    pool: Pool,
    schema: String,
    partition_ms: i64,
    drop_lock_timeout: Duration,
    stale_after: Duration,
    /// Lower bounds of the partitions this process knows exist.
    known_parts: Mutex<HashSet<i64>>,
    sql: Sql,
}

/// An error inside a database call: the driver's (may be retried on a fresh connection) or ours.
pub(crate) enum Fail {
    Pg(::postgres::Error),
    Store(StoreError),
}

impl From<::postgres::Error> for Fail {
    fn from(e: ::postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl Fail {
    pub(crate) fn into_store(self) -> StoreError {
        match self {
            Fail::Store(e) => e,
            Fail::Pg(e) => StoreError::Engine(format!("PostgreSQL: {}", pg_message(&e))),
        }
    }

    fn state(&self) -> Option<&SqlState> {
        match self {
            Fail::Pg(e) => e.code(),
            Fail::Store(_) => None,
        }
    }
}

/// The server's message (with detail and hint) when there is one, else the driver's.
pub(crate) fn pg_message(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                m.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                m.push_str(&format!(" hint: {h}"));
            }
            m
        }
        None => {
            let mut m = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                m.push_str(&format!(": {s}"));
                src = s.source();
            }
            m
        }
    }
}

type Res<T> = std::result::Result<T, Fail>;

/// SQL text with the schema name filled in, built once.
struct Sql {
    insert_tenant: String,
    get_tenant: String,
    append: String,
    scan: String,
    scan_resume: String,
    payload: String,
    marks: String,
    load_checkpoint: String,
    commit: String,
    offsets: String,
    acquire: String,
    renew: String,
    release: String,
    leases: String,
    put_dead: String,
    list_dead: String,
    cut: String,
    mark_blocked: String,
    stale: String,
    delete_range: String,
    drop_candidates: String,
    drop_recheck: String,
}

impl Sql {
    fn new(schema: &str) -> Self {
        let s = quote(schema);
        // Rows below the (tenant, shard)'s retention horizon are deleted as far as every read is concerned.
        let horizon = |after: &str| {
            format!(
                "bucket >= coalesce((SELECT before FROM {s}.retention r WHERE r.tenant = $1 AND r.shard = $2), {after})"
            )
        };
        Sql {
            insert_tenant: format!(
                "INSERT INTO {s}.tenants (tenant, shards) VALUES ($1, $2) ON CONFLICT (tenant) DO NOTHING"
            ),
            get_tenant: format!("SELECT shards FROM {s}.tenants WHERE tenant = $1"),
            // One statement: atomic, and one round trip. Rows are sorted so concurrent batches take row
            // locks in the same order (no deadlocks between overlapping re-sends).
            append: format!(
                "WITH batch AS (
                    SELECT * FROM unnest($2::int4[], $3::int8[], $4::uuid[], $5::bytea[], $6::bytea[])
                        AS b(shard, bucket, event_key, event, raw)
                 ), ins AS (
                    INSERT INTO {s}.events (tenant, shard, bucket, event_key, event, raw)
                    SELECT $1, shard, bucket, event_key, event, raw FROM batch
                    ORDER BY shard, bucket, event_key
                    ON CONFLICT DO NOTHING
                    RETURNING shard, bucket
                 ), added AS (
                    SELECT shard, bucket, count(*) AS n FROM ins GROUP BY shard, bucket
                 )
                 INSERT INTO {s}.marks (tenant, shard, bucket, mark, events)
                 SELECT $1, t.shard, t.bucket, nextval('{s}.mark_seq'), coalesce(a.n, 0)
                 FROM (SELECT DISTINCT shard, bucket FROM batch) t LEFT JOIN added a USING (shard, bucket)
                 ORDER BY t.shard, t.bucket
                 ON CONFLICT (tenant, shard, bucket)
                 DO UPDATE SET mark = excluded.mark, events = {s}.marks.events + excluded.events"
            ),
            scan: format!(
                "SELECT bucket, event_key, event FROM {s}.events
                 WHERE tenant = $1 AND shard = $2 AND bucket > $3 AND bucket <= $4 AND {}
                 ORDER BY bucket, event_key LIMIT $5",
                horizon("$3")
            ),
            scan_resume: format!(
                "SELECT bucket, event_key, event FROM {s}.events
                 WHERE tenant = $1 AND shard = $2 AND bucket > $3 AND bucket <= $4 AND {}
                   AND (bucket, event_key) > ($6, $7)
                 ORDER BY bucket, event_key LIMIT $5",
                horizon("$3")
            ),
            payload: format!(
                "SELECT raw FROM {s}.events
                 WHERE tenant = $1 AND shard = $2 AND bucket = $3 AND event_key = $4 AND {}",
                horizon("$3")
            ),
            marks: format!(
                "SELECT bucket, mark FROM {s}.marks
                 WHERE tenant = $1 AND shard = $2 AND bucket > $3 AND bucket <= $4 AND {}
                 ORDER BY bucket",
                horizon("$3")
            ),
            load_checkpoint: format!(
                "SELECT offset_bucket, mark_buckets, mark_values, state FROM {s}.checkpoints
                 WHERE tenant = $1 AND grp = $2 AND shard = $3"
            ),
            // The lease row is locked for the rest of the statement's transaction, so no acquire can move
            // it between the check and the write.
            commit: format!(
                "WITH held AS (
                    SELECT 1 FROM {s}.leases
                    WHERE tenant = $1 AND grp = $2 AND shard = $3 AND owner = $4 AND epoch = $5
                    FOR UPDATE
                 )
                 INSERT INTO {s}.checkpoints
                    (tenant, shard, grp, offset_bucket, mark_buckets, mark_values, state)
                 SELECT $1, $3, $2, $6, $7, $8, $9 FROM held
                 ON CONFLICT (tenant, shard, grp) DO UPDATE SET
                    offset_bucket = excluded.offset_bucket, mark_buckets = excluded.mark_buckets,
                    mark_values = excluded.mark_values, state = excluded.state"
            ),
            offsets: format!(
                "SELECT grp, offset_bucket FROM {s}.checkpoints WHERE tenant = $1 AND shard = $2 ORDER BY grp"
            ),
            // Free ($6 = now is past the expiry), or already ours: take it. The epoch grows whenever the
            // lease changes hands or lapsed. Concurrent callers serialize on the row: exactly one wins.
            acquire: format!(
                "INSERT INTO {s}.leases AS l (tenant, grp, shard, owner, epoch, expires_ms)
                 VALUES ($1, $2, $3, $4, 1, $5)
                 ON CONFLICT (tenant, grp, shard) DO UPDATE SET
                    owner = excluded.owner,
                    epoch = CASE WHEN l.owner = excluded.owner AND l.expires_ms > $6 THEN l.epoch
                                 ELSE l.epoch + 1 END,
                    expires_ms = excluded.expires_ms
                 WHERE l.expires_ms <= $6 OR l.owner = excluded.owner
                 RETURNING epoch"
            ),
            renew: format!(
                "UPDATE {s}.leases SET expires_ms = $6
                 WHERE tenant = $1 AND grp = $2 AND shard = $3 AND owner = $4 AND epoch = $5"
            ),
            // Expire rather than delete, so the epoch keeps growing for the next owner.
            release: format!(
                "UPDATE {s}.leases SET expires_ms = {}
                 WHERE tenant = $1 AND grp = $2 AND shard = $3 AND owner = $4 AND epoch = $5",
                i64::MIN
            ),
            leases: format!(
                "SELECT shard, owner, epoch, expires_ms FROM {s}.leases
                 WHERE tenant = $1 AND grp = $2 ORDER BY shard"
            ),
            put_dead: format!(
                "INSERT INTO {s}.dead_letters (tenant, received_ns, source, line, format, code, reason, raw)
                 SELECT tenant, received_ns, source, line, format, code, reason, raw
                 FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::text[], $6::text[],
                             $7::text[], $8::bytea[])
                      WITH ORDINALITY AS d(tenant, received_ns, source, line, format, code, reason, raw, n)
                 ORDER BY n"
            ),
            list_dead: format!(
                "SELECT id, received_ns, source, line, format, code, reason, raw FROM {s}.dead_letters
                 WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            // Moves the horizon (never back) and deletes the marks below it; their counts say how many
            // events went.
            cut: format!(
                "WITH cut AS (
                    INSERT INTO {s}.retention AS r (tenant, shard, before) VALUES ($1, $2, $3)
                    ON CONFLICT (tenant, shard) DO UPDATE SET before = greatest(r.before, excluded.before)
                    RETURNING before
                 ), gone AS (
                    DELETE FROM {s}.marks WHERE tenant = $1 AND shard = $2 AND bucket < $3
                    RETURNING events
                 )
                 SELECT (SELECT before FROM cut), coalesce((SELECT sum(events) FROM gone), 0)::int8"
            ),
            // Partitions below the horizon that someone else still has data in: note since when.
            mark_blocked: format!(
                "UPDATE {s}.partitions p SET blocked_since = now()
                 WHERE p.hi <= $1 AND p.blocked_since IS NULL
                   AND EXISTS (SELECT 1 FROM {s}.marks m WHERE m.bucket >= p.lo AND m.bucket < p.hi)"
            ),
            stale: format!(
                "SELECT lo, hi FROM {s}.partitions
                 WHERE hi <= $1 AND blocked_since <= now() - $2::float8 * interval '1 millisecond'
                 ORDER BY lo"
            ),
            delete_range: format!(
                "DELETE FROM {s}.events WHERE tenant = $1 AND shard = $2 AND bucket >= $3 AND bucket < $4"
            ),
            drop_candidates: format!(
                "SELECT p.name FROM {s}.partitions p
                 WHERE p.hi <= $1
                   AND NOT EXISTS (SELECT 1 FROM {s}.marks m WHERE m.bucket >= p.lo AND m.bucket < p.hi)
                 ORDER BY p.lo"
            ),
            drop_recheck: format!(
                "SELECT p.lo FROM {s}.partitions p
                 WHERE p.name = $1
                   AND NOT EXISTS (SELECT 1 FROM {s}.marks m WHERE m.bucket >= p.lo AND m.bucket < p.hi)"
            ),
        }
    }
}

/// Fills in what the libpq environment variables say when the connection string leaves it out (the
/// `postgres` crate reads only the string).
fn config_from(url: &str) -> Result<::postgres::Config> {
    let mut c: ::postgres::Config = url.parse().map_err(|e| {
        StoreError::Engine(format!(
            "invalid PostgreSQL connection string ({e}); use `host=H port=P user=U dbname=D` or \
             postgresql://user@host:port/dbname"
        ))
    })?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if c.get_hosts().is_empty() {
        match env("PGHOST") {
            Some(h) => {
                c.host(&h);
            }
            None => {
                c.host("localhost");
            }
        }
    }
    if c.get_ports().is_empty() {
        if let Some(p) = env("PGPORT").and_then(|p| p.parse().ok()) {
            c.port(p);
        }
    }
    if c.get_user().is_none() {
        if let Some(u) = env("PGUSER").or_else(|| env("USER")) {
            c.user(&u);
        }
    }
    if c.get_dbname().is_none() {
        if let Some(d) = env("PGDATABASE") {
            c.dbname(&d);
        }
    }
    if c.get_password().is_none() {
        if let Some(p) = env("PGPASSWORD") {
            c.password(p);
        }
    }
    if c.get_connect_timeout().is_none() {
        c.connect_timeout(Duration::from_secs(10));
    }
    if c.get_application_name().is_none() {
        c.application_name("storyline");
    }
    Ok(c)
}

fn to_i64(v: u64) -> i64 {
    v as i64
}

fn shard_i32(shard: Shard) -> i32 {
    i32::from(shard)
}

fn shard_of(v: i32) -> Res<Shard> {
    Shard::try_from(v).map_err(|_| StoreError::Corrupt(format!("shard {v} out of range")).into())
}

/// PostgreSQL text cannot hold NUL; dead letters quote arbitrary input, so keep them storable.
fn no_nul(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Largest payload bytes sent in one statement; a bigger batch is split into several statements inside one
/// transaction (still atomic), well below the protocol's 1 GiB message limit.
const STATEMENT_BYTES: usize = 64 << 20;

impl PostgresStore {
    /// Connects to the server named by `url` (libpq `key=value` string or `postgresql://` URL; the
    /// `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD` and `PGDATABASE` variables fill in what it leaves out),
    /// creates `schema` and its tables if missing, and refuses a schema of another layout version.
    pub fn connect(url: &str, schema: &str) -> Result<Self> {
        Self::connect_with(url, schema, PostgresOptions::default())
    }

    pub fn connect_with(url: &str, schema: &str, opts: PostgresOptions) -> Result<Self> {
        schema::validate_schema(schema)?;
        if opts.partition_ms <= 0 {
            return Err(StoreError::Engine(format!(
                "partition_ms must be positive, not {}",
                opts.partition_ms
            )));
        }
        let pool = Pool::new(config_from(url)?, opts.pool_size);
        let info = {
            let mut conn = pool.get()?;
            schema::ensure(&mut conn.client, schema, opts.partition_ms)?
        };
        Ok(Self {
            pool,
            schema: schema.to_string(),
            partition_ms: info.partition_ms,
            drop_lock_timeout: opts.drop_lock_timeout,
            stale_after: opts.stale_after,
            known_parts: Mutex::new(HashSet::new()),
            sql: Sql::new(schema),
        })
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Width of one `events` partition, as recorded in the schema.
    pub fn partition_ms(&self) -> i64 {
        self.partition_ms
    }

    /// Names of the `events` partitions that exist, oldest first.
    pub fn partitions(&self) -> Result<Vec<String>> {
        let sql = format!(
            "SELECT name FROM {}.partitions ORDER BY lo",
            quote(&self.schema)
        );
        self.run(|c| {
            Ok(c.client
                .query(sql.as_str(), &[])?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }

    /// Runs `f` on a pooled connection. When a connection taken from the pool turns out to be dead (the
    /// server restarted, an idle timeout closed it), `f` runs once more on a fresh one; every operation
    /// here is safe to repeat.
    fn run<T>(&self, f: impl FnMut(&mut pool::Conn) -> Res<T>) -> Result<T> {
        self.run_raw(f).map_err(Fail::into_store)
    }

    /// [`Self::run`], keeping the driver's error for the caller to look at.
    fn run_raw<T>(&self, mut f: impl FnMut(&mut pool::Conn) -> Res<T>) -> Res<T> {
        let mut conn = self.pool.get()?;
        match f(&mut conn) {
            Err(Fail::Pg(e)) if e.is_closed() || conn.client.is_closed() => {
                let fresh = conn.fresh;
                conn.discard();
                if fresh {
                    return Err(Fail::Pg(e));
                }
                tracing::warn!(server = %self.pool.describe, "PostgreSQL connection was closed; retrying on a new one");
                let mut conn = self.pool.get()?;
                f(&mut conn)
            }
            r => r,
        }
    }

    /// Makes sure a partition exists for every bucket of the batch.
    fn ensure_partitions(&self, buckets: impl Iterator<Item = Bucket>) -> Result<()> {
        let mut missing: Vec<Part> = Vec::new();
        {
            let known = self.known_parts.lock().unwrap_or_else(|p| p.into_inner());
            for b in buckets {
                let p = Part::of(b, self.partition_ms);
                if !known.contains(&p.index) && !missing.contains(&p) {
                    missing.push(p);
                }
            }
        }
        for p in missing {
            self.run(|c| self.create_partition(c, p))?;
            self.known_parts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(p.index);
        }
        Ok(())
    }

    /// Creates the table on its own and then ATTACHes it: ATTACH needs only a SHARE UPDATE EXCLUSIVE lock
    /// on `events`, so appends and scans go on meanwhile (CREATE TABLE ... PARTITION OF would lock them
    /// out). An advisory lock serializes creators of the same schema across processes.
    fn create_partition(&self, c: &mut pool::Conn, p: Part) -> Res<()> {
        let s = quote(&self.schema);
        let name = p.name();
        let mut tx = c.client.transaction()?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('storyline partitions ' || $1, 0))",
            &[&self.schema],
        )?;
        let exists = tx
            .query_opt(
                format!("SELECT 1 FROM {s}.partitions WHERE name = $1").as_str(),
                &[&name],
            )?
            .is_some();
        if !exists {
            tx.batch_execute(&format!(
                "CREATE TABLE {s}.\"{name}\" (LIKE {s}.events INCLUDING ALL);
                 ALTER TABLE {s}.events ATTACH PARTITION {s}.\"{name}\" FOR VALUES {};",
                p.bounds_sql()
            ))?;
            tx.execute(
                format!("INSERT INTO {s}.partitions (name, lo, hi) VALUES ($1, $2, $3)").as_str(),
                &[&name, &p.lo.unwrap_or(i64::MIN), &p.hi.unwrap_or(i64::MAX)],
            )?;
            tracing::debug!(schema = %self.schema, partition = %name, "created events partition");
        }
        tx.commit()?;
        Ok(())
    }

    fn append_once(&self, tenant: &str, sorted: &[&NewEvent<'_>]) -> Res<()> {
        // Chunks by payload size; a batch of one chunk is one autocommit statement.
        let mut chunks: Vec<&[&NewEvent<'_>]> = Vec::new();
        let (mut start, mut bytes) = (0, 0usize);
        for (i, e) in sorted.iter().enumerate() {
            let size = e.event.len() + e.raw.len() + 64;
            if i > start && bytes + size > STATEMENT_BYTES {
                chunks.push(&sorted[start..i]);
                start = i;
                bytes = 0;
            }
            bytes += size;
        }
        chunks.push(&sorted[start..]);

        self.run_raw(|c| {
            let stmt = c.stmt(&self.sql.append)?;
            if chunks.len() == 1 {
                append_chunk(&mut c.client, &stmt, tenant, chunks[0])
            } else {
                let mut tx = c.client.transaction()?;
                for chunk in &chunks {
                    append_chunk(&mut tx, &stmt, tenant, chunk)?;
                }
                tx.commit()?;
                Ok(())
            }
        })
    }

    /// Drops the partitions that no (tenant, shard) has data in above its horizon. Each drop takes a
    /// brief ACCESS EXCLUSIVE lock on `events` (waiting for running statements, holding new ones back);
    /// if it cannot get it within `drop_lock_timeout` it leaves the partition to the next pass.
    fn drop_partitions(&self, below: Bucket) -> Result<u64> {
        let candidates: Vec<String> = self.run(|c| {
            let st = c.stmt(&self.sql.drop_candidates)?;
            Ok(c.client
                .query(&st, &[&below])?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })?;
        let mut dropped = 0;
        for name in candidates {
            let s = quote(&self.schema);
            let outcome = self.run(|c| {
                let mut tx = c.client.transaction()?;
                let locked = tx.batch_execute(&format!(
                    "SET LOCAL lock_timeout = {}; LOCK TABLE {s}.events IN ACCESS EXCLUSIVE MODE;",
                    self.drop_lock_timeout.as_millis().max(1)
                ));
                match locked {
                    Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                        return Ok(Dropped::Busy)
                    }
                    r => r?,
                }
                // Under the lock no append is in flight, so a mark committed since the first look shows.
                let Some(row) = tx.query_opt(self.sql.drop_recheck.as_str(), &[&name])? else {
                    return Ok(Dropped::NotNow);
                };
                let lo: i64 = row.get(0);
                tx.batch_execute(&format!("DROP TABLE IF EXISTS {s}.\"{name}\""))?;
                tx.execute(
                    format!("DELETE FROM {s}.partitions WHERE name = $1").as_str(),
                    &[&name],
                )?;
                tx.commit()?;
                Ok(Dropped::Done { lo })
            })?;
            match outcome {
                Dropped::Done { lo } => {
                    dropped += 1;
                    let index = Part::of(lo, self.partition_ms).index;
                    self.known_parts
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&index);
                    tracing::debug!(schema = %self.schema, partition = %name, "dropped events partition");
                }
                Dropped::NotNow => {}
                Dropped::Busy => {
                    tracing::info!(schema = %self.schema, partition = %name, "events busy; partition drop left to the next retention pass");
                    break;
                }
            }
        }
        Ok(dropped)
    }
}

fn append_chunk<C: ::postgres::GenericClient>(
    client: &mut C,
    stmt: &::postgres::Statement,
    tenant: &str,
    chunk: &[&NewEvent<'_>],
) -> Res<()> {
    let shards: Vec<i32> = chunk.iter().map(|e| shard_i32(e.shard)).collect();
    let buckets: Vec<i64> = chunk.iter().map(|e| e.bucket).collect();
    let keys: Vec<Uuid> = chunk.iter().map(|e| Uuid::from_u128(e.key.0)).collect();
    let events: Vec<&[u8]> = chunk.iter().map(|e| e.event).collect();
    let raws: Vec<&[u8]> = chunk.iter().map(|e| e.raw).collect();
    client.execute(stmt, &[&tenant, &shards, &buckets, &keys, &events, &raws])?;
    Ok(())
}

/// What one attempt to drop a partition came to.
enum Dropped {
    Done {
        lo: i64,
    },
    /// Someone wrote into it (or dropped it) since it was picked.
    NotNow,
    /// `events` stayed busy past the lock timeout.
    Busy,
}

fn is_no_partition(f: &Fail) -> bool {
    // "no partition of relation "events" found for row" (the append statement has no CHECK constraint
    // that could raise this code otherwise, and the message may be translated): a partition this process
    // thought existed was dropped by retention elsewhere.
    f.state() == Some(&SqlState::CHECK_VIOLATION)
}

impl Store for PostgresStore {
    fn ensure_tenant(&self, tenant: &str, shards: u16) -> Result<()> {
        validate_tenant(tenant)?;
        let stored: i32 = self.run(|c| {
            let ins = c.stmt(&self.sql.insert_tenant)?;
            c.client.execute(&ins, &[&tenant, &i32::from(shards)])?;
            let get = c.stmt(&self.sql.get_tenant)?;
            Ok(c.client.query_one(&get, &[&tenant])?.get(0))
        })?;
        if stored != i32::from(shards) {
            return Err(StoreError::ShardCountMismatch {
                tenant: tenant.into(),
                stored: u16::try_from(stored).unwrap_or(u16::MAX),
                configured: shards,
            });
        }
        Ok(())
    }

    fn append(&self, tenant: &str, events: &[NewEvent<'_>]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut sorted: Vec<&NewEvent<'_>> = events.iter().collect();
        sorted.sort_by_key(|e| (e.shard, e.bucket, e.key));
        self.ensure_partitions(sorted.iter().map(|e| e.bucket))?;
        match self.append_once(tenant, &sorted) {
            Err(f) if is_no_partition(&f) => {
                self.known_parts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                self.ensure_partitions(sorted.iter().map(|e| e.bucket))?;
                self.append_once(tenant, &sorted).map_err(Fail::into_store)
            }
            r => r.map_err(Fail::into_store),
        }
    }

    fn scan(
        &self,
        tenant: &str,
        shard: Shard,
        range: BucketRange,
        resume: Option<(Bucket, EventKey)>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        if range.after >= range.upto || limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let shard = shard_i32(shard);
        self.run(|c| {
            let rows = match resume {
                None => {
                    let st = c.stmt(&self.sql.scan)?;
                    c.client
                        .query(&st, &[&tenant, &shard, &range.after, &range.upto, &limit])?
                }
                Some((b, k)) => {
                    let st = c.stmt(&self.sql.scan_resume)?;
                    let k = Uuid::from_u128(k.0);
                    c.client.query(
                        &st,
                        &[&tenant, &shard, &range.after, &range.upto, &limit, &b, &k],
                    )?
                }
            };
            Ok(rows
                .into_iter()
                .map(|r| StoredEvent {
                    bucket: r.get(0),
                    key: EventKey(r.get::<_, Uuid>(1).as_u128()),
                    event: r.get(2),
                })
                .collect())
        })
    }

    fn payload(
        &self,
        tenant: &str,
        shard: Shard,
        bucket: Bucket,
        key: EventKey,
    ) -> Result<Option<Vec<u8>>> {
        let shard = shard_i32(shard);
        let key = Uuid::from_u128(key.0);
        self.run(|c| {
            let st = c.stmt(&self.sql.payload)?;
            Ok(c.client
                .query_opt(&st, &[&tenant, &shard, &bucket, &key])?
                .map(|r| r.get(0)))
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
        let shard = shard_i32(shard);
        self.run(|c| {
            let st = c.stmt(&self.sql.marks)?;
            Ok(c.client
                .query(&st, &[&tenant, &shard, &range.after, &range.upto])?
                .iter()
                .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
                .collect())
        })
    }

    fn load_checkpoint(
        &self,
        tenant: &str,
        group: &str,
        shard: Shard,
    ) -> Result<Option<Checkpoint>> {
        let shard_db = shard_i32(shard);
        self.run(|c| {
            let st = c.stmt(&self.sql.load_checkpoint)?;
            let Some(r) = c.client.query_opt(&st, &[&tenant, &group, &shard_db])? else {
                return Ok(None);
            };
            let buckets: Vec<i64> = r.get(1);
            let values: Vec<i64> = r.get(2);
            if buckets.len() != values.len() {
                return Err(StoreError::Corrupt(format!(
                    "checkpoint of {tenant}/{group}/{shard}: {} mark buckets but {} mark values",
                    buckets.len(),
                    values.len()
                ))
                .into());
            }
            Ok(Some(Checkpoint {
                shard,
                offset: r.get(0),
                marks: buckets
                    .into_iter()
                    .zip(values.into_iter().map(|v| v as u64))
                    .collect(),
                state: r.get(3),
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
        let lost = || StoreError::LeaseLost {
            shard: lease.shard,
            owner: lease.owner.clone(),
            epoch: lease.epoch,
        };
        if lease.shard != checkpoint.shard {
            return Err(lost());
        }
        let shard = shard_i32(lease.shard);
        let epoch = to_i64(lease.epoch);
        let buckets: Vec<i64> = checkpoint.marks.iter().map(|m| m.0).collect();
        let values: Vec<i64> = checkpoint.marks.iter().map(|m| m.1 as i64).collect();
        let written = self.run(|c| {
            let st = c.stmt(&self.sql.commit)?;
            Ok(c.client.execute(
                &st,
                &[
                    &tenant,
                    &group,
                    &shard,
                    &lease.owner,
                    &epoch,
                    &checkpoint.offset,
                    &buckets,
                    &values,
                    &checkpoint.state,
                ],
            )?)
        })?;
        if written == 1 {
            Ok(())
        } else {
            Err(lost())
        }
    }

    fn offsets(&self, tenant: &str, shard: Shard) -> Result<Vec<(String, Bucket)>> {
        let shard = shard_i32(shard);
        self.run(|c| {
            let st = c.stmt(&self.sql.offsets)?;
            Ok(c.client
                .query(&st, &[&tenant, &shard])?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
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
        let shard_db = shard_i32(shard);
        let epoch: Option<i64> = self.run(|c| {
            let st = c.stmt(&self.sql.acquire)?;
            Ok(c.client
                .query_opt(
                    &st,
                    &[&tenant, &group, &shard_db, &owner, &expires_ms, &now_ms],
                )?
                .map(|r| r.get(0)))
        })?;
        Ok(epoch.map(|epoch| Lease {
            tenant: tenant.into(),
            group: group.into(),
            shard,
            owner: owner.into(),
            epoch: epoch as u64,
            expires_ms,
        }))
    }

    fn renew_lease(&self, lease: &Lease, ttl_ms: i64, now_ms: i64) -> Result<Option<Lease>> {
        let expires_ms = now_ms.saturating_add(ttl_ms);
        let shard = shard_i32(lease.shard);
        let epoch = to_i64(lease.epoch);
        let n = self.run(|c| {
            let st = c.stmt(&self.sql.renew)?;
            Ok(c.client.execute(
                &st,
                &[
                    &lease.tenant,
                    &lease.group,
                    &shard,
                    &lease.owner,
                    &epoch,
                    &expires_ms,
                ],
            )?)
        })?;
        Ok((n == 1).then(|| Lease {
            expires_ms,
            ..lease.clone()
        }))
    }

    fn release_lease(&self, lease: &Lease) -> Result<()> {
        let shard = shard_i32(lease.shard);
        let epoch = to_i64(lease.epoch);
        self.run(|c| {
            let st = c.stmt(&self.sql.release)?;
            c.client.execute(
                &st,
                &[&lease.tenant, &lease.group, &shard, &lease.owner, &epoch],
            )?;
            Ok(())
        })
    }

    fn leases(&self, tenant: &str, group: &str) -> Result<Vec<Lease>> {
        self.run(|c| {
            let st = c.stmt(&self.sql.leases)?;
            c.client
                .query(&st, &[&tenant, &group])?
                .iter()
                .map(|r| {
                    Ok(Lease {
                        tenant: tenant.into(),
                        group: group.into(),
                        shard: shard_of(r.get(0))?,
                        owner: r.get(1),
                        epoch: r.get::<_, i64>(2) as u64,
                        expires_ms: r.get(3),
                    })
                })
                .collect()
        })
    }

    fn put_dead_letters(&self, letters: &[DeadLetter]) -> Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        let tenants: Vec<_> = letters.iter().map(|l| no_nul(&l.tenant)).collect();
        let received: Vec<i64> = letters.iter().map(|l| l.received.as_nanos()).collect();
        let sources: Vec<_> = letters.iter().map(|l| no_nul(&l.source)).collect();
        let lines: Vec<Option<i64>> = letters
            .iter()
            .map(|l| l.line.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
            .collect();
        let formats: Vec<Option<std::borrow::Cow<'_, str>>> = letters
            .iter()
            .map(|l| l.format.as_deref().map(no_nul))
            .collect();
        let codes: Vec<_> = letters.iter().map(|l| no_nul(&l.code)).collect();
        let reasons: Vec<_> = letters.iter().map(|l| no_nul(&l.reason)).collect();
        let raws: Vec<&[u8]> = letters.iter().map(|l| l.raw.as_slice()).collect();
        let as_str = |v: &Vec<std::borrow::Cow<'_, str>>| -> Vec<String> {
            v.iter().map(|s| s.to_string()).collect()
        };
        let (tenants, sources, codes, reasons) = (
            as_str(&tenants),
            as_str(&sources),
            as_str(&codes),
            as_str(&reasons),
        );
        let formats: Vec<Option<String>> = formats
            .into_iter()
            .map(|f| f.map(|s| s.into_owned()))
            .collect();
        self.run(|c| {
            let st = c.stmt(&self.sql.put_dead)?;
            c.client.execute(
                &st,
                &[
                    &tenants, &received, &sources, &lines, &formats, &codes, &reasons, &raws,
                ],
            )?;
            Ok(())
        })
    }

    fn dead_letters(
        &self,
        tenant: &str,
        after_id: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        let Ok(after) = i64::try_from(after_id.unwrap_or(0)) else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(|c| {
            let st = c.stmt(&self.sql.list_dead)?;
            Ok(c.client
                .query(&st, &[&tenant, &after, &limit])?
                .iter()
                .map(|r| DeadLetter {
                    id: r.get::<_, i64>(0) as u64,
                    tenant: tenant.into(),
                    received: Timestamp(r.get(1)),
                    source: r.get(2),
                    line: r.get::<_, Option<i64>>(3).map(|n| n as u64),
                    format: r.get(4),
                    code: r.get(5),
                    reason: r.get(6),
                    raw: r.get(7),
                })
                .collect())
        })
    }

    fn put_record(&self, key: &str, value: Option<&str>) -> Result<()> {
        // Records share the `meta` table with the schema's own keys, under a prefix of their own.
        let s = quote(&self.schema);
        let k = format!("record:{key}");
        self.run(|c| {
            match value {
                Some(v) => c.client.execute(
                    format!(
                        "INSERT INTO {s}.meta (key, value) VALUES ($1, $2)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                    )
                    .as_str(),
                    &[&k, &v],
                )?,
                None => c.client.execute(
                    format!("DELETE FROM {s}.meta WHERE key = $1").as_str(),
                    &[&k],
                )?,
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
        let s = quote(&self.schema);
        let from = format!("record:{prefix}");
        let after = format!("record:{}", after.unwrap_or(""));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(|c| {
            let rows = c.client.query(
                format!(
                    "SELECT key, value FROM {s}.meta
                     WHERE starts_with(key, $1) AND key COLLATE \"C\" > $2 COLLATE \"C\"
                     ORDER BY key COLLATE \"C\" LIMIT $3"
                )
                .as_str(),
                &[&from, &after, &limit],
            )?;
            Ok(rows
                .iter()
                .map(|r| {
                    let k: String = r.get(0);
                    (k["record:".len()..].to_string(), r.get(1))
                })
                .collect())
        })
    }

    fn bucket_events(
        &self,
        tenant: &str,
        shard: Shard,
        range: BucketRange,
        cap: u64,
    ) -> Result<Option<u64>> {
        // The marks table counts the rows each bucket received: no scan of the events.
        let s = quote(&self.schema);
        let shard_db = shard_i32(shard);
        let n: i64 = self.run(|c| {
            let r = c.client.query_one(
                format!(
                    "SELECT coalesce(sum(events), 0)::int8 FROM {s}.marks
                     WHERE tenant = $1 AND shard = $2 AND bucket > $3 AND bucket <= $4"
                )
                .as_str(),
                &[&tenant, &shard_db, &range.after, &range.upto],
            )?;
            Ok(r.get(0))
        })?;
        Ok(Some((n.max(0) as u64).min(cap)))
    }

    fn delete_tenant(&self, tenant: &str) -> Result<u64> {
        validate_tenant(tenant)?;
        let s = quote(&self.schema);
        self.run(|c| {
            let mut tx = c.client.transaction()?;
            let events = tx.execute(
                format!("DELETE FROM {s}.events WHERE tenant = $1").as_str(),
                &[&tenant],
            )?;
            for table in [
                "marks",
                "retention",
                "checkpoints",
                "leases",
                "dead_letters",
                "tenants",
            ] {
                tx.execute(
                    format!("DELETE FROM {s}.{table} WHERE tenant = $1").as_str(),
                    &[&tenant],
                )?;
            }
            tx.commit()?;
            Ok(events)
        })
    }

    fn delete_before(&self, tenant: &str, shard: Shard, before: Bucket) -> Result<u64> {
        let shard_db = shard_i32(shard);
        let (horizon, deleted): (i64, i64) = self.run(|c| {
            let st = c.stmt(&self.sql.cut)?;
            let r = c.client.query_one(&st, &[&tenant, &shard_db, &before])?;
            Ok((r.get(0), r.get(1)))
        })?;
        self.drop_partitions(horizon)?;
        // Partitions held back by someone else for longer than `stale_after`: free this (tenant, shard)'s
        // rows in them the slow way (an index range scan that finds nothing once done).
        let grace_ms = self.stale_after.as_secs_f64() * 1000.0;
        self.run(|c| {
            let mark = c.stmt(&self.sql.mark_blocked)?;
            c.client.execute(&mark, &[&horizon])?;
            let stale = c.stmt(&self.sql.stale)?;
            let del = c.stmt(&self.sql.delete_range)?;
            for r in c.client.query(&stale, &[&horizon, &grace_ms])? {
                let (lo, hi): (i64, i64) = (r.get(0), r.get(1));
                c.client.execute(&del, &[&tenant, &shard_db, &lo, &hi])?;
            }
            Ok(())
        })?;
        Ok(deleted.max(0) as u64)
    }
}
