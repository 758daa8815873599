//! Tenants in one process: each has its own storage namespace (the store's tenant key), its own
//! correlation state and workers, its own API tokens and quotas.
//!
//! Idle tenants cost nothing but a registry entry: a tenant's workers start on its first event ("wake")
//! and stop once it has sent nothing for `idle_after` ("sleep"), after they have read, published and
//! committed everything — the open correlation state waits in the store's checkpoint, not in memory.
//! One reaper thread for the whole process does the sleeping, so an idle tenant holds no thread or timer.

pub mod quota;
pub mod registry;

use quota::RateLimits;
use registry::{new_token, Quotas, Registry, TenantRecord};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storyline_io::StorySink;
use storyline_model::Timestamp;
use storyline_parse::Limits;
use storyline_pipeline::ingest::{Framing, IngestReport};
use storyline_pipeline::{Ingestor, PipelineConfig, WorkerPool};
use storyline_store::{validate_tenant, Store};

/// How often each process re-reads the tenant registry: a token revoked or a tenant deleted through
/// another process sharing the store stops working here within this long.
pub const REGISTRY_RELOAD: Duration = Duration::from_secs(15);

/// `[tenants]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantsConfig {
    /// Requests without a token go to the config's `tenant` (a single-tenant deployment). Set to false
    /// when tenants are managed through the API: then every request needs a token.
    pub anonymous: bool,
    /// SHA-256 (hex) of the admin token that manages tenants (`storyline tenants new-admin-token`
    /// prints a token and its hash). The env variable `STORYLINE_ADMIN_TOKEN` (the token itself) also
    /// works. Without either, the tenant API is closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_sha256: Option<String>,
    /// A tenant whose last event is this old has its workers stopped until the next one. Raised, if
    /// needed, to what publishing a closed story takes (gap + safety delay + bucket + 2 commit intervals
    /// + 4 poll intervals), so a tenant never sleeps on an unpublished story.
    #[serde(with = "storyline_correlate::humantime_serde_compat")]
    pub idle_after: Duration,
    /// Quotas of tenants created without their own.
    pub default_quotas: Quotas,
}

impl Default for TenantsConfig {
    fn default() -> Self {
        Self {
            anonymous: true,
            admin_token_sha256: None,
            idle_after: Duration::from_secs(120),
            default_quotas: Quotas::default(),
        }
    }
}

#[derive(Debug)]
pub enum IngestError {
    UnknownTenant(String),
    /// Over a quota: retry after this long.
    Quota {
        what: &'static str,
        retry_after: Duration,
    },
    Store(anyhow::Error),
}

impl std::error::Error for IngestError {}

impl std::fmt::Display for IngestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownTenant(t) => write!(f, "no tenant {t:?}"),
            Self::Quota { what, retry_after } => write!(
                f,
                "over the tenant's {what} quota; retry after {:.1} s",
                retry_after.as_secs_f64()
            ),
            Self::Store(e) => write!(f, "{e:#}"),
        }
    }
}

/// What the process keeps of a tenant it has served.
struct Live {
    ingestor: Arc<Ingestor>,
    /// `Some` while awake.
    pool: Mutex<Option<WorkerPool>>,
    last_event: Mutex<Instant>,
    rates: RateLimits,
}

/// A tenant as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TenantView {
    pub id: String,
    pub created: Timestamp,
    pub quotas: Quotas,
    pub tokens: usize,
    /// `awake` (workers running in this process) or `asleep`.
    pub state: &'static str,
}

pub struct Tenants {
    store: Arc<dyn Store>,
    pipeline: PipelineConfig,
    limits: Limits,
    settings: TenantsConfig,
    sink: Arc<dyn StorySink>,
    owner: String,
    default_tenant: String,
    pub registry: Registry,
    live: Mutex<HashMap<String, Arc<Live>>>,
    stopping: AtomicBool,
    /// The registry was read and the default tenant registered.
    loaded: AtomicBool,
}

impl Tenants {
    /// Loads the registry, registers the default tenant, and wakes the default tenant and every tenant
    /// that was not asleep when the last process stopped (it may have stored events or open stories to
    /// finish). A store that cannot be reached yet does not stop the start: the registry is loaded once
    /// it answers.
    pub fn start(
        store: Arc<dyn Store>,
        pipeline: PipelineConfig,
        limits: Limits,
        settings: TenantsConfig,
        sink: Arc<dyn StorySink>,
        owner: String,
        default_tenant: &str,
    ) -> anyhow::Result<Arc<Self>> {
        validate_tenant(default_tenant)?;
        let t = Arc::new(Self {
            registry: Registry::new(store.clone()),
            store,
            pipeline,
            limits,
            settings,
            sink,
            owner,
            default_tenant: default_tenant.to_string(),
            live: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            loaded: AtomicBool::new(false),
        });
        // The deployment's own tenant always runs (single-tenant deployments and clusters of processes
        // sharing its partitions expect its workers from the start).
        let live = t.live(default_tenant)?;
        t.wake(default_tenant, &live, "started")?;
        t.load_registry();
        let reaper = Arc::downgrade(&t);
        std::thread::Builder::new()
            .name("tenant-reaper".into())
            .spawn(move || {
                let mut last_reload = Instant::now();
                loop {
                    std::thread::sleep(Duration::from_millis(500));
                    let Some(t) = reaper.upgrade() else { return };
                    if t.stopping.load(Ordering::Relaxed) {
                        return;
                    }
                    if !t.loaded.load(Ordering::Relaxed) {
                        t.load_registry();
                    } else if last_reload.elapsed() >= REGISTRY_RELOAD {
                        // Other processes on a shared store rotate tokens and delete tenants too.
                        last_reload = Instant::now();
                        if let Err(e) = t.registry.reload() {
                            tracing::warn!(error = %e, "tenant registry reload failed");
                        }
                    }
                    t.sleep_idle();
                }
            })?;
        Ok(t)
    }

    /// Reads the registry, registers the default tenant, wakes the tenants that were awake. Until it
    /// succeeds (the store answers), only the default tenant is served.
    fn load_registry(&self) {
        let loaded = (|| -> anyhow::Result<()> {
            self.registry.reload()?;
            if self.registry.get(&self.default_tenant)?.is_none() {
                self.create_record(&self.default_tenant, None, false)?;
            }
            for rec in self.registry.list() {
                if !rec.asleep && rec.id != self.default_tenant {
                    let live = self.live(&rec.id)?;
                    self.wake(&rec.id, &live, "started")?;
                }
            }
            Ok(())
        })();
        match loaded {
            Ok(()) => self.loaded.store(true, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "tenant registry not loaded yet; retrying")
            }
        }
    }

    pub fn default_tenant(&self) -> &str {
        &self.default_tenant
    }

    pub fn settings(&self) -> &TenantsConfig {
        &self.settings
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// How long a tenant stays awake after its last event: at least what a story needs to close (gap),
    /// be read (safety delay and bucket), committed and published (commit interval), with a margin.
    pub fn idle_after(&self) -> Duration {
        let p = &self.pipeline;
        let publish = p.correlate.gap
            + p.safety_delay
            + p.bucket
            + 2 * p.commit_interval
            + 4 * p.poll_interval;
        self.settings.idle_after.max(publish)
    }

    fn create_record(
        &self,
        id: &str,
        quotas: Option<Quotas>,
        with_token: bool,
    ) -> anyhow::Result<(TenantRecord, Option<String>)> {
        validate_tenant(id)?;
        let token = with_token.then(|| new_token(id));
        let rec = TenantRecord {
            id: id.to_string(),
            created: Timestamp::now(),
            quotas: quotas.unwrap_or_else(|| self.settings.default_quotas.clone()),
            token_sha256: token.iter().map(|t| registry::hash_token(t)).collect(),
            asleep: true,
        };
        self.store.ensure_tenant(id, self.pipeline.shards)?;
        self.registry.put(&rec)?;
        self.registry.note(id, "created", "");
        Ok((rec, token))
    }

    /// A new tenant and its first API token (shown once; only its hash is kept).
    pub fn create(&self, id: &str, quotas: Option<Quotas>) -> anyhow::Result<(TenantView, String)> {
        validate_tenant(id)?;
        if self.registry.get(id)?.is_some() {
            anyhow::bail!("tenant {id:?} exists already");
        }
        let (rec, token) = self.create_record(id, quotas, true)?;
        Ok((self.view(&rec), token.unwrap_or_default()))
    }

    /// Replaces every token of the tenant with a new one.
    pub fn rotate_token(&self, id: &str) -> anyhow::Result<Option<String>> {
        let token = new_token(id);
        let hash = registry::hash_token(&token);
        let Some(_) = self.registry.update(id, |r| r.token_sha256 = vec![hash])? else {
            return Ok(None);
        };
        self.registry
            .note(id, "token_rotated", "all earlier tokens revoked");
        Ok(Some(token))
    }

    pub fn set_quotas(&self, id: &str, quotas: Quotas) -> anyhow::Result<Option<TenantView>> {
        let detail = serde_json::to_string(&quotas)?;
        let Some(rec) = self.registry.update(id, |r| r.quotas = quotas)? else {
            return Ok(None);
        };
        if let Some(live) = self.live_if_any(id) {
            live.rates.reset();
        }
        self.registry.note(id, "quotas_changed", detail);
        Ok(Some(self.view(&rec)))
    }

    /// Stops the tenant's workers and deletes its record, history and every stored byte.
    pub fn delete(&self, id: &str) -> anyhow::Result<Option<u64>> {
        if self.registry.get(id)?.is_none() {
            return Ok(None);
        }
        let live = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(live) = live {
            if let Some(pool) = live.pool.lock().unwrap_or_else(|p| p.into_inner()).take() {
                pool.stop()?;
            }
        }
        self.registry.remove(id)?;
        let events = self.store.delete_tenant(id)?;
        tracing::info!(tenant = id, events, "tenant deleted");
        Ok(Some(events))
    }

    pub fn view(&self, rec: &TenantRecord) -> TenantView {
        let awake = self
            .live_if_any(&rec.id)
            .is_some_and(|l| l.pool.lock().unwrap_or_else(|p| p.into_inner()).is_some());
        TenantView {
            id: rec.id.clone(),
            created: rec.created,
            quotas: rec.quotas.clone(),
            tokens: rec.token_sha256.len(),
            state: if awake { "awake" } else { "asleep" },
        }
    }

    fn live_if_any(&self, id: &str) -> Option<Arc<Live>> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn live(&self, id: &str) -> Result<Arc<Live>, IngestError> {
        if let Some(l) = self.live_if_any(id) {
            return Ok(l);
        }
        if id != self.default_tenant
            && self
                .registry
                .get(id)
                .map_err(|e| IngestError::Store(e.into()))?
                .is_none()
        {
            return Err(IngestError::UnknownTenant(id.to_string()));
        }
        let ingestor = Ingestor::new(self.store.clone(), id, &self.pipeline, self.limits)
            .map_err(|e| IngestError::Store(e.into()))?;
        let mut map = self.live.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map
            .entry(id.to_string())
            .or_insert_with(|| {
                Arc::new(Live {
                    ingestor: Arc::new(ingestor),
                    pool: Mutex::new(None),
                    last_event: Mutex::new(Instant::now()),
                    rates: RateLimits::default(),
                })
            })
            .clone())
    }

    /// Starts the tenant's workers unless they run. The registry learns first that the tenant is awake,
    /// so a crash from here on wakes it again on restart.
    fn wake(&self, id: &str, live: &Live, why: &str) -> anyhow::Result<()> {
        let mut pool = live.pool.lock().unwrap_or_else(|p| p.into_inner());
        *live.last_event.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        if pool.is_some() {
            return Ok(());
        }
        let started = Instant::now();
        if self.registry.cached(id).is_some_and(|r| r.asleep) {
            match self.registry.update(id, |r| r.asleep = false) {
                Ok(_) => {}
                // The default tenant is woken at every start anyway.
                Err(e) if id == self.default_tenant => {
                    tracing::warn!(error = %e, "could not record the default tenant as awake")
                }
                Err(e) => return Err(e.into()),
            }
        }
        *pool = Some(WorkerPool::start(
            self.store.clone(),
            self.sink.clone(),
            self.pipeline.clone(),
            id,
            &self.owner,
        )?);
        metrics::counter!("storyline_tenant_wakeups_total", "tenant" => id.to_string())
            .increment(1);
        metrics::histogram!("storyline_tenant_wake_seconds")
            .record(started.elapsed().as_secs_f64());
        self.registry.note(id, why, "");
        Ok(())
    }

    /// Puts tenants without recent events to sleep.
    fn sleep_idle(&self) {
        let idle_after = self.idle_after();
        let lives: Vec<(String, Arc<Live>)> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut awake = 0u64;
        for (id, live) in lives {
            let mut pool = live.pool.lock().unwrap_or_else(|p| p.into_inner());
            if pool.is_none() {
                continue;
            }
            if id == self.default_tenant {
                awake += 1;
                continue;
            }
            let idle = live
                .last_event
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed();
            // Stories still correlating would wait unpublished until the next wake: keep working.
            let unpublished = pool.as_ref().map_or(0, |p| p.open_stories());
            if idle < idle_after || unpublished > 0 {
                awake += 1;
                continue;
            }
            let stopped = pool.take().map(|p| p.stop()).unwrap_or(Ok(()));
            match stopped.and_then(|()| {
                self.registry
                    .update(&id, |r| r.asleep = true)
                    .map_err(anyhow::Error::from)
            }) {
                Ok(_) => self.registry.note(
                    &id,
                    "slept",
                    format!("no events for {:.0} s", idle.as_secs_f64()),
                ),
                Err(e) => {
                    // Left awake in the registry: the next start wakes it and finishes what is due.
                    tracing::warn!(tenant = %id, error = %e, "stopping an idle tenant's workers failed");
                    self.registry.note(&id, "error", format!("{e:#}"));
                }
            }
        }
        metrics::gauge!("storyline_tenants_awake").set(awake as f64);
        metrics::gauge!("storyline_tenants").set(self.registry.tenant_count() as f64);
    }

    /// Stores a batch for the tenant: quota check, wake, durable ingest.
    pub fn ingest(
        &self,
        tenant: &str,
        body: &[u8],
        framing: Framing<'_>,
        source: &str,
        first_line: u64,
    ) -> Result<IngestReport, IngestError> {
        let live = self.live(tenant)?;
        let rec = match self.registry.cached(tenant) {
            Some(r) => r,
            None if tenant == self.default_tenant => TenantRecord {
                id: tenant.to_string(),
                created: Timestamp::now(),
                quotas: self.settings.default_quotas.clone(),
                token_sha256: Vec::new(),
                asleep: false,
            },
            None => self
                .registry
                .get(tenant)
                .map_err(|e| IngestError::Store(e.into()))?
                .ok_or_else(|| IngestError::UnknownTenant(tenant.to_string()))?,
        };
        // Counted only for a quota that needs it: an extra pass over every body otherwise.
        let lines = if rec.quotas.events_per_second.is_some() {
            storyline_pipeline::ingest::lines(body)
                .filter(|l| !l.is_empty())
                .count() as u64
        } else {
            0
        };
        if let Err((what, retry_after)) =
            live.rates
                .admit(&rec.quotas, lines, body.len() as u64, Instant::now())
        {
            metrics::counter!("storyline_quota_rejections_total", "tenant" => tenant.to_string(), "quota" => what)
                .increment(1);
            return Err(IngestError::Quota { what, retry_after });
        }
        if let Some(max) = rec.quotas.max_open_stories {
            let open = live
                .pool
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map_or(0, |p| p.open_stories());
            if open >= max {
                metrics::counter!("storyline_quota_rejections_total", "tenant" => tenant.to_string(), "quota" => "max_open_stories")
                    .increment(1);
                return Err(IngestError::Quota {
                    what: "max_open_stories",
                    retry_after: self.pipeline.correlate.gap,
                });
            }
        }
        self.wake(tenant, &live, "woke")
            .map_err(IngestError::Store)?;
        let report = live
            .ingestor
            .ingest_from_line(body, framing, source, first_line)
            .map_err(|e| IngestError::Store(e.into()))?;
        *live.last_event.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        metrics::counter!("storyline_ingest_bytes_total", "tenant" => tenant.to_string())
            .increment(body.len() as u64);
        Ok(report)
    }

    /// The tenant's ingestor (dead letters of sources go through it), waking nothing.
    pub fn ingestor(&self, tenant: &str) -> Result<Arc<Ingestor>, IngestError> {
        Ok(self.live(tenant)?.ingestor.clone())
    }

    /// Stops every tenant's workers (commit, release leases). Tenants stay marked awake, so the next
    /// start resumes them.
    pub fn stop(&self) -> anyhow::Result<()> {
        self.stopping.store(true, Ordering::Relaxed);
        let lives: Vec<(String, Arc<Live>)> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        let mut first_err = None;
        for (id, live) in lives {
            if let Some(pool) = live.pool.lock().unwrap_or_else(|p| p.into_inner()).take() {
                if let Err(e) = pool.stop() {
                    self.registry.note(&id, "error", format!("{e:#}"));
                    first_err.get_or_insert(e);
                } else {
                    self.registry.note(&id, "stopped", "process stopping");
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
