//! Worker threads that share a tenant's correlation partitions through leases.
//!
//! Each worker renews its leases every third of the TTL, takes free or expired partitions up to its fair
//! share (partitions / live workers, counting workers in other processes through the lease table), and
//! gives back partitions above its share so a joining worker gets some. A worker that dies stops
//! renewing; its partitions expire and move. Commits are fenced by the lease epoch, so a worker that lost
//! a partition cannot overwrite the new owner's offsets. (A lease's `shard` field holds the partition.)

use crate::worker::PartitionWorker;
use crate::PipelineConfig;
use metrics::counter;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use storyline_io::StorySink;
use storyline_model::{routing::Shard, Timestamp};
use storyline_store::Store;

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    drain: AtomicBool,
    /// Partitions fully processed and flushed after `drain` was requested.
    drained: Mutex<BTreeSet<Shard>>,
    errors: Mutex<Vec<String>>,
}

pub struct WorkerPool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    partitions: u16,
}

impl WorkerPool {
    /// Starts `cfg.workers` threads for one tenant. `owner` names this process in the lease table; it
    /// must be unique per process run (a restarted process is a new owner).
    pub fn start(
        store: Arc<dyn Store>,
        sink: Arc<dyn StorySink>,
        cfg: PipelineConfig,
        tenant: &str,
        owner: &str,
    ) -> anyhow::Result<Self> {
        store.ensure_tenant(tenant, cfg.shards)?;
        let shared = Arc::new(Shared::default());
        let local = cfg.workers.max(1);
        let handles = (0..local)
            .map(|i| {
                let ctx = WorkerCtx {
                    store: store.clone(),
                    sink: sink.clone(),
                    cfg: cfg.clone(),
                    tenant: tenant.to_string(),
                    owner: format!("{owner}/w{i}"),
                    local_workers: local,
                    shared: shared.clone(),
                };
                std::thread::Builder::new()
                    .name(format!("storyline-worker-{i}"))
                    .spawn(move || ctx.run())
                    .expect("spawning a worker thread")
            })
            .collect();
        Ok(Self {
            shared,
            handles,
            partitions: cfg.partitions(),
        })
    }

    /// No more input will come: process everything stored, flush every open story, commit, and stop.
    pub fn drain(self) -> anyhow::Result<()> {
        self.shared.drain.store(true, Ordering::SeqCst);
        loop {
            let done = self
                .shared
                .drained
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len()
                >= self.partitions as usize;
            let failed = !self
                .shared
                .errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty();
            if done || failed || self.handles.iter().all(|h| h.is_finished()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.stop()
    }

    /// Graceful stop: each worker finishes its cycle, commits and releases its leases.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shared.stop.store(true, Ordering::SeqCst);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        let errors = self.shared.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("worker failed: {}", errors.join("; "))
        }
    }
}

struct WorkerCtx {
    store: Arc<dyn Store>,
    sink: Arc<dyn StorySink>,
    cfg: PipelineConfig,
    tenant: String,
    owner: String,
    local_workers: usize,
    shared: Arc<Shared>,
}

fn now_ms() -> i64 {
    Timestamp::now().as_millis()
}

impl WorkerCtx {
    fn run(self) {
        let mut owned: BTreeMap<Shard, PartitionWorker> = BTreeMap::new();
        let mut next_lease_round = Instant::now();
        let mut failures = 0u32;
        while !self.shared.stop.load(Ordering::SeqCst) {
            if Instant::now() >= next_lease_round {
                if let Err(e) = self.lease_round(&mut owned) {
                    tracing::warn!(owner = %self.owner, error = %e, "lease round failed; retrying");
                }
                next_lease_round = Instant::now() + self.cfg.lease_ttl / 3;
            }
            let drain = self.shared.drain.load(Ordering::SeqCst);
            let mut busy = false;
            let mut lost = Vec::new();
            for (shard, w) in owned.iter_mut() {
                if drain
                    && self
                        .shared
                        .drained
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .contains(shard)
                {
                    continue;
                }
                match w.cycle(
                    &*self.store,
                    &*self.sink,
                    &self.cfg,
                    Timestamp::now(),
                    drain,
                ) {
                    Ok(r) => {
                        failures = 0;
                        busy |= r.events > 0;
                        if drain && r.caught_up {
                            self.shared
                                .drained
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(*shard);
                        }
                    }
                    Err(e) if is_lease_lost(&e) => {
                        tracing::info!(shard, owner = %self.owner, "lease lost; shard moved to another worker");
                        lost.push(*shard);
                    }
                    Err(e) => {
                        // Store or sink trouble: back off and retry from the committed offset; nothing
                        // acknowledged is lost because the offset did not move.
                        failures += 1;
                        tracing::warn!(shard, error = %format!("{e:#}"), failures, "worker cycle failed");
                        counter!("storyline_worker_errors_total", "tenant" => self.tenant.clone())
                            .increment(1);
                        if failures >= 20 {
                            self.shared
                                .errors
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(format!("shard {shard}: {e:#}"));
                            return;
                        }
                        lost.push(*shard);
                        std::thread::sleep(Duration::from_millis(50 * u64::from(failures.min(20))));
                    }
                }
            }
            for shard in lost {
                // Dropping the worker discards uncommitted state; whoever takes the shard resumes from the
                // checkpoint.
                if let Some(w) = owned.remove(&shard) {
                    let _ = self.store.release_lease(&w.lease);
                }
                next_lease_round = Instant::now();
            }
            if !busy && !drain {
                std::thread::sleep(self.cfg.poll_interval);
            } else if !busy {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        for (_, mut w) in owned {
            if let Err(e) = w.commit(&*self.store) {
                tracing::warn!(shard = w.partition(), error = %e, "final commit failed");
            }
            let _ = self.store.release_lease(&w.lease);
        }
    }

    fn lease_round(&self, owned: &mut BTreeMap<Shard, PartitionWorker>) -> anyhow::Result<()> {
        let ttl = self.cfg.lease_ttl.as_millis() as i64;
        let mut lost = Vec::new();
        for (shard, w) in owned.iter_mut() {
            match self.store.renew_lease(&w.lease, ttl, now_ms())? {
                Some(l) => w.lease = l,
                None => lost.push(*shard),
            }
        }
        for s in lost {
            owned.remove(&s);
            counter!("storyline_lease_changes_total", "tenant" => self.tenant.clone(), "change" => "lost").increment(1);
        }
        let now = now_ms();
        let leases = self.store.leases(&self.tenant, &self.cfg.group)?;
        let mut live: HashSet<&str> = leases
            .iter()
            .filter(|l| l.expires_ms > now)
            .map(|l| l.owner.as_str())
            .collect();
        live.insert(&self.owner);
        let workers = live.len().max(self.local_workers);
        let partitions = self.cfg.partitions() as usize;
        let share = partitions.div_ceil(workers);
        let held_by_others: HashSet<Shard> = leases
            .iter()
            .filter(|l| l.expires_ms > now && l.owner != self.owner)
            .map(|l| l.shard)
            .collect();
        // Start the search at an owner-specific partition so workers starting together do not all race
        // for 0.
        let start = xxhash_rust::xxh3::xxh3_64(self.owner.as_bytes()) as usize % partitions;
        for i in 0..partitions {
            if owned.len() >= share {
                break;
            }
            let shard = ((start + i) % partitions) as Shard;
            if owned.contains_key(&shard) || held_by_others.contains(&shard) {
                continue;
            }
            if let Some(lease) = self.store.acquire_lease(
                &self.tenant,
                &self.cfg.group,
                shard,
                &self.owner,
                ttl,
                now_ms(),
            )? {
                match PartitionWorker::open(&*self.store, &self.cfg, lease.clone()) {
                    Ok(w) => {
                        counter!("storyline_lease_changes_total", "tenant" => self.tenant.clone(), "change" => "acquired").increment(1);
                        tracing::debug!(partition = shard, owner = %self.owner, epoch = lease.epoch, "acquired partition");
                        owned.insert(shard, w);
                    }
                    Err(e) => {
                        let _ = self.store.release_lease(&lease);
                        return Err(e);
                    }
                }
            }
        }
        // Give back partitions above the fair share so a worker that joined gets its part.
        while owned.len() > share {
            let Some((&shard, _)) = owned.iter().next_back() else {
                break;
            };
            if let Some(mut w) = owned.remove(&shard) {
                w.commit(&*self.store)?;
                self.store.release_lease(&w.lease)?;
                counter!("storyline_lease_changes_total", "tenant" => self.tenant.clone(), "change" => "released").increment(1);
            }
        }
        Ok(())
    }
}

fn is_lease_lost(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<storyline_store::StoreError>(),
        Some(storyline_store::StoreError::LeaseLost { .. })
    )
}
