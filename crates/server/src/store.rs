//! The configured store (`[store] kind`), and whether it can be reached.
//!
//! [`ServiceStore`] wraps the backend the service runs on and keeps its health: every call that fails with
//! an engine error (the database is unreachable, a connection broke, the disk failed) marks the store
//! unavailable with that error as the reason, and `GET /readyz` reports it (503) until a later call or probe
//! succeeds.
//!
//! With PostgreSQL the process does not need the database to start: if it cannot connect, it starts anyway,
//! not ready, and a background probe connects (creating or checking the schema, registering the tenant) as
//! soon as the server answers. While the database is unavailable every call fails at once with the reason
//! (ingest answers 503 with Retry-After; workers back off) instead of each waiting for a connect timeout,
//! and the probe retries every [`PROBE_DOWN`]; while it is available the probe checks it every
//! [`PROBE_UP`], so readiness also drops when nothing is calling. Nothing is acknowledged unless its
//! append committed, and workers resume from their committed offsets, so an outage loses nothing.

use crate::config::{redact_password, StoreConfig, StoreKind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use storyline_model::{routing::Shard, EventKey};
use storyline_store::embedded::EmbeddedStore;
use storyline_store::postgres::{PostgresOptions, PostgresStore};
use storyline_store::*;

/// Probe interval while the store is unavailable.
pub const PROBE_DOWN: Duration = Duration::from_millis(500);
/// Probe interval while it is available.
pub const PROBE_UP: Duration = Duration::from_secs(2);

/// Opens the configured backend directly, for commands that need it now (`storyline dead-letters list`):
/// errors are returned, nothing is retried. A PostgreSQL schema that does not exist yet is created.
pub fn open(cfg: &StoreConfig, data_dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match cfg.kind {
        StoreKind::Embedded => Arc::new(open_embedded(cfg, data_dir)?),
        StoreKind::Postgres | StoreKind::Scylla => {
            connect_remote(cfg).map_err(|e| anyhow::anyhow!("{e}"))?
        }
    })
}

fn open_embedded(cfg: &StoreConfig, data_dir: &Path) -> anyhow::Result<EmbeddedStore> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| anyhow::anyhow!("data_dir {}: cannot create it: {e}", data_dir.display()))?;
    EmbeddedStore::open(data_dir, cfg.durability).map_err(|e| {
        anyhow::anyhow!(
            "data_dir {}: cannot open the store: {e} (is another storyline process using it?)",
            data_dir.display()
        )
    })
}

/// Connects to the configured database server (PostgreSQL or ScyllaDB).
fn connect_remote(cfg: &StoreConfig) -> Result<Arc<dyn Store>> {
    match cfg.kind {
        StoreKind::Scylla => connect_scylla(cfg),
        _ => {
            let url = cfg.url.as_deref().unwrap_or_default();
            Ok(Arc::new(PostgresStore::connect_with(
                url,
                &cfg.schema,
                PostgresOptions::default(),
            )?))
        }
    }
}

#[cfg(feature = "scylla")]
fn connect_scylla(cfg: &StoreConfig) -> Result<Arc<dyn Store>> {
    use storyline_store::scylla::{ScyllaOptions, ScyllaStore};
    let mut opts = ScyllaOptions {
        local_dc: cfg.local_dc.clone(),
        ..ScyllaOptions::default()
    };
    if let Some(user) = &cfg.username {
        let password = std::env::var("STORYLINE_SCYLLA_PASSWORD").map_err(|_| {
            StoreError::Config(format!(
                "store.username is {user:?} but STORYLINE_SCYLLA_PASSWORD is not set; export the password there"
            ))
        })?;
        opts.credentials = Some((user.clone(), password));
    }
    Ok(Arc::new(ScyllaStore::connect_with(
        cfg.hosts.as_deref().unwrap_or_default(),
        &cfg.keyspace,
        opts,
    )?))
}

#[cfg(not(feature = "scylla"))]
fn connect_scylla(_: &StoreConfig) -> Result<Arc<dyn Store>> {
    Err(StoreError::Config(
        "store.kind = \"scylla\" needs a binary built with the ScyllaDB backend: \
         cargo build --release -p storyline-cli --features scylla (docs/deploy.md)"
            .into(),
    ))
}

/// What `/readyz` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// `embedded` or `postgres`.
    pub store: &'static str,
    /// Where: the data dir, or the connection string without its password, and the schema.
    pub target: String,
    /// Why it is not ready (the last error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seconds in the current state.
    pub for_seconds: f64,
}

struct Health {
    reason: Option<String>,
    since: Instant,
}

/// Wakes the probe early (when a call just failed).
#[derive(Default)]
struct Signal {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Signal {
    fn wake(&self) {
        *self.woken.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }

    fn wait(&self, timeout: Duration) {
        let mut w = self.woken.lock().unwrap_or_else(|p| p.into_inner());
        if !*w {
            w = self
                .cv
                .wait_timeout(w, timeout)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *w = false;
    }
}

/// The service's store: the configured backend plus its health. See the module docs.
pub struct ServiceStore {
    kind: StoreKind,
    cfg: StoreConfig,
    target: String,
    inner: RwLock<Option<Arc<dyn Store>>>,
    /// Tenants registered before the database could be reached, checked when it can.
    tenants: Mutex<Vec<(String, u16)>>,
    ready: AtomicBool,
    health: Mutex<Health>,
    signal: Arc<Signal>,
}

impl ServiceStore {
    /// Opens the configured store. The embedded store must open (errors are returned). PostgreSQL is tried
    /// once; if that fails with an engine error (unreachable, refused, authentication) the store starts
    /// unavailable and a probe thread keeps trying; a schema this build cannot use is an error.
    pub fn start(cfg: &StoreConfig, data_dir: &Path) -> anyhow::Result<Arc<Self>> {
        let (target, inner, reason): (String, Option<Arc<dyn Store>>, Option<String>) = match cfg
            .kind
        {
            StoreKind::Embedded => (
                data_dir.display().to_string(),
                Some(Arc::new(open_embedded(cfg, data_dir)?)),
                None,
            ),
            StoreKind::Postgres | StoreKind::Scylla => {
                let target = if cfg.kind == StoreKind::Scylla {
                    format!(
                        "{} keyspace {}",
                        cfg.hosts.as_deref().unwrap_or_default(),
                        cfg.keyspace
                    )
                } else {
                    format!(
                        "{} schema {}",
                        redact_password(cfg.url.as_deref().unwrap_or_default()),
                        cfg.schema
                    )
                };
                match connect_remote(cfg) {
                    Ok(s) => (target, Some(s), None),
                    Err(StoreError::Engine(e)) => {
                        tracing::error!(store = %target, error = %e,
                            "the database is unavailable; starting anyway, not ready (GET /readyz), retrying every {} ms",
                            PROBE_DOWN.as_millis());
                        (target, None, Some(e))
                    }
                    Err(e) => anyhow::bail!("store {target}: {e}"),
                }
            }
        };
        let this = Arc::new(Self {
            kind: cfg.kind,
            cfg: cfg.clone(),
            target,
            ready: AtomicBool::new(reason.is_none()),
            inner: RwLock::new(inner),
            tenants: Mutex::new(Vec::new()),
            health: Mutex::new(Health {
                reason,
                since: Instant::now(),
            }),
            signal: Arc::new(Signal::default()),
        });
        this.export_ready();
        if this.kind != StoreKind::Embedded {
            let weak = Arc::downgrade(&this);
            let signal = this.signal.clone();
            std::thread::Builder::new()
                .name("storyline-store-probe".into())
                .spawn(move || probe_loop(weak, signal))?;
        }
        Ok(this)
    }

    pub fn backend(&self) -> &'static str {
        match self.kind {
            StoreKind::Embedded => "embedded",
            StoreKind::Postgres => "postgres",
            StoreKind::Scylla => "scylla",
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn readiness(&self) -> Readiness {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        Readiness {
            ready: self.is_ready(),
            store: self.backend(),
            target: self.target.clone(),
            reason: if self.is_ready() {
                None
            } else {
                h.reason.clone()
            },
            for_seconds: h.since.elapsed().as_secs_f64(),
        }
    }

    /// Sets `storyline_store_ready` (rendered with `/metrics`).
    pub fn export_ready(&self) {
        metrics::gauge!("storyline_store_ready", "store" => self.backend())
            .set(if self.is_ready() { 1.0 } else { 0.0 });
    }

    fn mark_down(&self, reason: &str) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let was_ready = self.ready.swap(false, Ordering::SeqCst);
        if was_ready {
            h.since = Instant::now();
            tracing::error!(store = %self.target, error = %reason, "store unavailable; ingest answers 503 and workers back off until it is back");
            metrics::counter!("storyline_store_unavailable_total", "store" => self.backend())
                .increment(1);
        }
        h.reason = Some(reason.to_string());
        drop(h);
        self.export_ready();
        if was_ready {
            // Probe now: a single failed statement should not keep the store down for a whole interval.
            self.signal.wake();
        }
    }

    fn mark_up(&self) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if !self.ready.swap(true, Ordering::SeqCst) {
            tracing::warn!(store = %self.target, down_for_s = h.since.elapsed().as_secs_f64(), "store available again");
            h.since = Instant::now();
            h.reason = None;
        }
        drop(h);
        self.export_ready();
    }

    fn unavailable(&self) -> StoreError {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        StoreError::Engine(format!(
            "{} store {} unavailable for {:.0} s ({}); retrying",
            self.backend(),
            self.target,
            h.since.elapsed().as_secs_f64(),
            h.reason.as_deref().unwrap_or("unknown reason")
        ))
    }

    fn current(&self) -> Option<Arc<dyn Store>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs one call on the backend and records its outcome. PostgreSQL calls fail at once while the store
    /// is known to be unavailable (the probe finds out when it is back).
    fn call<T>(&self, f: impl FnOnce(&dyn Store) -> Result<T>) -> Result<T> {
        let store = match self.current() {
            Some(s) if self.kind == StoreKind::Embedded || self.is_ready() => s,
            _ => return Err(self.unavailable()),
        };
        let r = f(&*store);
        match &r {
            Err(StoreError::Engine(e)) => self.mark_down(e),
            Ok(_) if !self.is_ready() => self.mark_up(),
            _ => {}
        }
        r
    }

    /// One probe: connect if not connected yet, else a cheap read. Returns the error that keeps it down.
    fn probe(&self) -> std::result::Result<(), String> {
        let Some(store) = self.current() else {
            let store = connect_remote(&self.cfg).map_err(|e| reason_of(&e))?;
            let tenants = self
                .tenants
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for (tenant, shards) in &tenants {
                store.ensure_tenant(tenant, *shards).map_err(|e| {
                    tracing::error!(store = %self.target, error = %e, "the store cannot serve this configuration");
                    reason_of(&e)
                })?;
            }
            *self.inner.write().unwrap_or_else(|p| p.into_inner()) = Some(store);
            tracing::info!(store = %self.target, backend = self.backend(), "connected to the database");
            return Ok(());
        };
        let tenant = self
            .tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first()
            .map(|t| t.0.clone())
            .unwrap_or_else(|| "default".into());
        // A connection the server closed (restart) fails once and is dropped from the pool: a few attempts
        // clear them out before the store is declared down.
        let mut last = String::new();
        for _ in 0..3 {
            match store.load_checkpoint(&tenant, "storyline-readiness-probe", 0) {
                Ok(_) => return Ok(()),
                Err(e) => last = reason_of(&e),
            }
        }
        Err(last)
    }
}

/// The error's text without the "storage engine error" prefix.
fn reason_of(e: &StoreError) -> String {
    match e {
        StoreError::Engine(m) => m.clone(),
        e => e.to_string(),
    }
}

fn probe_loop(store: Weak<ServiceStore>, signal: Arc<Signal>) {
    loop {
        let Some(s) = store.upgrade() else { return };
        match s.probe() {
            Ok(()) => s.mark_up(),
            Err(e) => s.mark_down(&e),
        }
        let wait = if s.is_ready() { PROBE_UP } else { PROBE_DOWN };
        drop(s);
        signal.wait(wait);
    }
}

impl Store for ServiceStore {
    fn ensure_tenant(&self, tenant: &str, shards: u16) -> Result<()> {
        validate_tenant(tenant)?;
        {
            let mut t = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
            if !t.iter().any(|(n, _)| n == tenant) {
                t.push((tenant.to_string(), shards));
            }
        }
        if self.current().is_none() {
            // Checked when the database can be reached (a mismatch then keeps the store not ready).
            return Ok(());
        }
        self.call(|s| s.ensure_tenant(tenant, shards))
    }

    fn append(&self, tenant: &str, events: &[NewEvent<'_>]) -> Result<()> {
        self.call(|s| s.append(tenant, events))
    }

    fn scan(
        &self,
        tenant: &str,
        shard: Shard,
        range: BucketRange,
        resume: Option<(Bucket, EventKey)>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        self.call(|s| s.scan(tenant, shard, range, resume, limit))
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
        self.call(|s| s.scan_each(tenant, shard, range, resume, limit, &mut *visit))
    }

    fn payload(
        &self,
        tenant: &str,
        shard: Shard,
        bucket: Bucket,
        key: EventKey,
    ) -> Result<Option<Vec<u8>>> {
        self.call(|s| s.payload(tenant, shard, bucket, key))
    }

    fn bucket_marks(
        &self,
        tenant: &str,
        shard: Shard,
        range: BucketRange,
    ) -> Result<Vec<(Bucket, u64)>> {
        self.call(|s| s.bucket_marks(tenant, shard, range))
    }

    fn load_checkpoint(
        &self,
        tenant: &str,
        group: &str,
        shard: Shard,
    ) -> Result<Option<Checkpoint>> {
        self.call(|s| s.load_checkpoint(tenant, group, shard))
    }

    fn commit(
        &self,
        tenant: &str,
        group: &str,
        lease: &Lease,
        checkpoint: &Checkpoint,
    ) -> Result<()> {
        self.call(|s| s.commit(tenant, group, lease, checkpoint))
    }

    // Keyed checkpoint parts are a property of the backend, fixed for the life of the process: the embedded
    // store keeps them; PostgreSQL does not (yet), connected or not.
    fn keyed_checkpoint_parts(&self) -> bool {
        self.kind == StoreKind::Embedded
            && self.current().is_some_and(|s| s.keyed_checkpoint_parts())
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
        self.call(|s| s.commit_parts(tenant, group, lease, checkpoint, reset, parts))
    }

    fn checkpoint_parts(
        &self,
        tenant: &str,
        group: &str,
        shard: Shard,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.call(|s| s.checkpoint_parts(tenant, group, shard))
    }

    fn offsets(&self, tenant: &str, shard: Shard) -> Result<Vec<(String, Bucket)>> {
        self.call(|s| s.offsets(tenant, shard))
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
        self.call(|s| s.acquire_lease(tenant, group, shard, owner, ttl_ms, now_ms))
    }

    fn renew_lease(&self, lease: &Lease, ttl_ms: i64, now_ms: i64) -> Result<Option<Lease>> {
        self.call(|s| s.renew_lease(lease, ttl_ms, now_ms))
    }

    fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.call(|s| s.release_lease(lease))
    }

    fn leases(&self, tenant: &str, group: &str) -> Result<Vec<Lease>> {
        self.call(|s| s.leases(tenant, group))
    }

    fn put_dead_letters(&self, letters: &[DeadLetter]) -> Result<()> {
        self.call(|s| s.put_dead_letters(letters))
    }

    fn dead_letters(
        &self,
        tenant: &str,
        after_id: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        self.call(|s| s.dead_letters(tenant, after_id, limit))
    }

    fn delete_before(&self, tenant: &str, shard: Shard, before: Bucket) -> Result<u64> {
        self.call(|s| s.delete_before(tenant, shard, before))
    }

    fn delete_tenant(&self, tenant: &str) -> Result<u64> {
        self.call(|s| s.delete_tenant(tenant))
    }

    fn bucket_events(
        &self,
        tenant: &str,
        shard: Shard,
        range: BucketRange,
        cap: u64,
    ) -> Result<Option<u64>> {
        self.call(|s| s.bucket_events(tenant, shard, range, cap))
    }

    fn put_record(&self, key: &str, value: Option<&str>) -> Result<()> {
        self.call(|s| s.put_record(key, value))
    }

    fn records(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        self.call(|s| s.records(prefix, after, limit))
    }
}
