//! Worker threads that share a tenant's correlation partitions through leases.
//!
//! Each worker renews its leases every third of the TTL, takes free or expired partitions up to its fair
//! share (partitions / live workers, counting workers in other processes through the lease table), and
//! gives back partitions above its share so a joining worker gets some. Every worker also holds a
//! membership lease (group `<group>/members`, one slot per worker), so a worker that owns no partition yet
//! is counted too: without it, a process joining after another took every partition would never get one. A worker that dies stops
//! renewing; its partitions expire and move. Commits are fenced by the lease epoch, so a worker that lost
//! a partition cannot overwrite the new owner's offsets. (A lease's `shard` field holds the partition.)

use crate::heartbeat::Heartbeat;
use crate::worker::PartitionWorker;
use crate::PipelineConfig;
use metrics::{counter, gauge};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use storyline_io::StorySink;
use storyline_model::{routing::Shard, Timestamp};
use storyline_store::{Lease, Store};

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    drain: AtomicBool,
    /// Partitions fully processed and flushed after `drain` was requested.
    drained: Mutex<BTreeSet<Shard>>,
    errors: Mutex<Vec<String>>,
    /// Worker threads that returned from their loop (an ephemeral pool's then park instead of exiting).
    finished: AtomicUsize,
    /// Open stories of each partition this process works on, as of its last cycle (for quotas).
    open_stories: Mutex<BTreeMap<Shard, u64>>,
}

pub struct WorkerPool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    partitions: u16,
    ephemeral: bool,
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
        let heartbeat = Arc::new(Heartbeat::start(
            store.clone(),
            cfg.lease_ttl,
            cfg.lease_ttl * MAX_STALL_TTLS,
        ));
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
                    heartbeat: heartbeat.clone(),
                };
                std::thread::Builder::new()
                    .name(format!("storyline-worker-{i}"))
                    .spawn(move || {
                        let (shared, ephemeral) = (ctx.shared.clone(), ctx.cfg.ephemeral);
                        let mut panics = 0u32;
                        while ctx.clone().run_recording_panics() && ctx.restarts_after_panic() {
                            panics += 1;
                            ctx.restart_after_panic(panics);
                        }
                        shared.finished.fetch_add(1, Ordering::SeqCst);
                        if ephemeral {
                            // The thread's end would hand every page of its heap back to the allocator,
                            // one by one (mimalloc abandons a finished thread's pages): 0.26 s at the very
                            // end of a 1M-event replay, for the state that `run` forgot because the
                            // process exit releases it anyway. The exit ends this thread too.
                            loop {
                                std::thread::park();
                            }
                        }
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        Ok(Self {
            shared,
            handles,
            partitions: cfg.partitions(),
            ephemeral: cfg.ephemeral,
        })
    }

    /// Open stories in this process's partitions of the tenant, as of each partition's last cycle.
    pub fn open_stories(&self) -> u64 {
        self.shared
            .open_stories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
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
        if self.ephemeral {
            // Its threads park once done (see `start`): wait for that, then let them be.
            while self.shared.finished.load(Ordering::SeqCst) < self.handles.len() {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.handles.clear();
        }
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

#[derive(Clone)]
struct WorkerCtx {
    store: Arc<dyn Store>,
    sink: Arc<dyn StorySink>,
    cfg: PipelineConfig,
    tenant: String,
    owner: String,
    local_workers: usize,
    shared: Arc<Shared>,
    heartbeat: Arc<Heartbeat>,
}

fn now_ms() -> i64 {
    Timestamp::now().as_millis()
}

impl WorkerCtx {
    /// Whether a worker thread whose loop panicked starts it again: in a service, yes (its partitions
    /// would otherwise wait for a process restart: with one worker per process nobody takes over its
    /// leases); never once stopping or draining, where the panic fails the drain instead.
    fn restarts_after_panic(&self) -> bool {
        !self.cfg.ephemeral
            && !self.shared.stop.load(Ordering::SeqCst)
            && !self.shared.drain.load(Ordering::SeqCst)
    }

    /// Waits out a backoff before the `panics`-th restart (a panic that recurs on the same input must not
    /// spin), counting it. The restarted loop leases its partitions again and resumes them from their
    /// checkpoints, as after a process restart: nothing acknowledged is lost.
    fn restart_after_panic(&self, panics: u32) {
        counter!("storyline_worker_restarts_total", "tenant" => self.tenant.clone()).increment(1);
        let wait = backoff(panics);
        tracing::warn!(owner = %self.owner, panics, wait_ms = wait.as_millis() as u64,
            "restarting the worker after a panic; its partitions resume from their checkpoints");
        self.sleep_unless_stopped(wait);
    }

    /// [`WorkerCtx::run`], with a panic recorded as the pool's error: a drain must not report success,
    /// nor `stop` a clean stop, after a worker died (a replay exited 0 with its stories unpublished).
    /// Returns whether it panicked.
    fn run_recording_panics(self) -> bool {
        let (shared, owner) = (self.shared.clone(), self.owner.clone());
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run())) {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            tracing::error!(owner = %owner, "worker panicked: {what}");
            let mut errors = shared.errors.lock().unwrap_or_else(|p| p.into_inner());
            // A service restarts the worker, and a panic that recurs on the same input recurs every few
            // seconds for as long as it runs: the first ones say what happened, the log has the rest.
            if errors.len() < KEPT_ERRORS {
                errors.push(format!("worker {owner} panicked: {what}"));
            }
            return true;
        }
        false
    }

    fn run(self) {
        let mut owned: BTreeMap<Shard, PartitionWorker> = BTreeMap::new();
        let mut member: Option<Lease> = None;
        let mut next_lease_round = Instant::now();
        let mut failures = 0u32;
        let mut lease_failures = 0u32;
        while !self.shared.stop.load(Ordering::SeqCst) {
            if Instant::now() >= next_lease_round {
                match self.lease_round(&mut owned, &mut member) {
                    Ok(()) => lease_failures = 0,
                    Err(e) => {
                        lease_failures += 1;
                        if lease_failures <= 3 || lease_failures.is_power_of_two() {
                            tracing::warn!(owner = %self.owner, error = %e, failures = lease_failures, "lease round failed; retrying");
                        }
                    }
                }
                next_lease_round = Instant::now() + self.cfg.lease_ttl / 3;
            }
            let drain = self.shared.drain.load(Ordering::SeqCst);
            let mut busy = false;
            let mut failed = false;
            let mut keep_state = false;
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
                let _held = self.heartbeat.hold(&w.lease);
                match w.cycle(
                    &*self.store,
                    &*self.sink,
                    &self.cfg,
                    Timestamp::now(),
                    drain,
                ) {
                    Ok(r) => {
                        failures = 0;
                        busy |= r.events > 0 || r.more;
                        self.shared
                            .open_stories
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(w.partition(), w.correlator().open_stories() as u64);
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
                        // Store or sink trouble (a database outage, a full disk): back off and retry;
                        // nothing acknowledged is lost because the offset did not move. A service never
                        // gives up (the outage may end); it reports instead, through the log, the error
                        // counter and `storyline_worker_consecutive_failures`. Only a drain (replay: nobody
                        // to wait for) fails after `DRAIN_GIVE_UP` failures in a row.
                        //
                        // A store that could not be reached keeps the partition's state in memory: it
                        // is consistent with what was published (a cycle that failed before publishing
                        // re-reads events the correlator recognises by key; one whose commit failed after
                        // publishing commits next time), and restoring the older checkpoint instead could
                        // leave a story version published since then without its successor (a story
                        // merged away on the re-run would never say so). The lease is checked before the
                        // next cycle. Anything else (the sink failed: the stories of the cycle were not
                        // delivered) drops the state, and the partition restarts from its checkpoint.
                        failures += 1;
                        if is_unavailable(&e) {
                            keep_state = true;
                        } else {
                            lost.push(*shard);
                        }
                        failed = true;
                        if failures <= 3 || failures.is_power_of_two() {
                            tracing::warn!(shard, error = %format!("{e:#}"), failures,
                                backoff_ms = backoff(failures).as_millis() as u64, "worker cycle failed; retrying");
                        }
                        counter!("storyline_worker_errors_total", "tenant" => self.tenant.clone())
                            .increment(1);
                        if drain && failures >= DRAIN_GIVE_UP {
                            self.shared
                                .errors
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(format!("shard {shard}: {e:#}"));
                            return;
                        }
                    }
                }
            }
            gauge!("storyline_worker_consecutive_failures", "tenant" => self.tenant.clone(), "worker" => self.owner.clone())
                .set(f64::from(failures));
            for shard in lost {
                // Dropping the worker discards uncommitted state; whoever takes the shard resumes from the
                // checkpoint.
                if let Some(w) = owned.remove(&shard) {
                    let _ = self.store.release_lease(&w.lease);
                }
                next_lease_round = Instant::now();
            }
            if keep_state {
                // Renew (or find lost) the leases of the partitions kept before their next cycle.
                next_lease_round = Instant::now();
            }
            if failed {
                let wait = if drain {
                    Duration::from_millis(50 * u64::from(failures.min(DRAIN_GIVE_UP)))
                } else {
                    backoff(failures)
                };
                self.sleep_unless_stopped(wait);
                continue;
            }
            if !busy && !drain {
                std::thread::sleep(self.cfg.poll_interval);
            } else if !busy {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        for (_, mut w) in owned {
            let held = self.heartbeat.hold(&w.lease);
            if let Err(e) = w.finish(&*self.store, &*self.sink) {
                tracing::warn!(shard = w.partition(), error = %e, "final commit failed");
            }
            drop(held);
            let _ = self.store.release_lease(&w.lease);
            if self.cfg.ephemeral {
                // Nothing outlives an ephemeral run (a replay into a temporary store, whose process ends
                // next): freeing a 1M-event correlation state allocation by allocation took 140 ms at the
                // very end of the replay, with nothing else left to do.
                std::mem::forget(w);
            }
        }
        if let Some(m) = member {
            let _ = self.store.release_lease(&m);
        }
    }

    /// Sleeps for `d`, waking early when the pool is stopped.
    fn sleep_unless_stopped(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.shared.stop.load(Ordering::SeqCst) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// Keeps this worker's membership lease: one slot per live worker in the group's members group, so a
    /// worker that owns no partition yet still counts when the others compute their fair share.
    fn keep_membership(&self, member: &mut Option<Lease>, ttl: i64) -> anyhow::Result<()> {
        if let Some(l) = member.as_ref() {
            if let Some(l) = self.store.renew_lease(l, ttl, now_ms())? {
                *member = Some(l);
                return Ok(());
            }
            *member = None;
        }
        let group = members_group(&self.cfg.group);
        let start = xxhash_rust::xxh3::xxh3_64(self.owner.as_bytes()) % u64::from(MEMBER_SLOTS);
        for i in 0..u64::from(MEMBER_SLOTS) {
            let slot = ((start + i) % u64::from(MEMBER_SLOTS)) as Shard;
            if let Some(l) =
                self.store
                    .acquire_lease(&self.tenant, &group, slot, &self.owner, ttl, now_ms())?
            {
                *member = Some(l);
                return Ok(());
            }
        }
        anyhow::bail!("all {MEMBER_SLOTS} member slots of group {group} are taken")
    }

    fn lease_round(
        &self,
        owned: &mut BTreeMap<Shard, PartitionWorker>,
        member: &mut Option<Lease>,
    ) -> anyhow::Result<()> {
        let ttl = self.cfg.lease_ttl.as_millis() as i64;
        self.keep_membership(member, ttl)?;
        let mut lost = Vec::new();
        for (shard, w) in owned.iter_mut() {
            match self.store.renew_lease(&w.lease, ttl, now_ms())? {
                Some(l) => w.note_renewed(l),
                None => lost.push(*shard),
            }
        }
        for s in lost {
            owned.remove(&s);
            counter!("storyline_lease_changes_total", "tenant" => self.tenant.clone(), "change" => "lost").increment(1);
        }
        let now = now_ms();
        let leases = self.store.leases(&self.tenant, &self.cfg.group)?;
        let members = self
            .store
            .leases(&self.tenant, &members_group(&self.cfg.group))?;
        let mut live: HashSet<&str> = leases
            .iter()
            .chain(members.iter())
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
                let held = self.heartbeat.hold(&lease);
                let opened = PartitionWorker::open(&*self.store, &self.cfg, lease.clone());
                drop(held);
                match opened {
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
                let held = self.heartbeat.hold(&w.lease);
                w.finish(&*self.store, &*self.sink)?;
                drop(held);
                self.store.release_lease(&w.lease)?;
                counter!("storyline_lease_changes_total", "tenant" => self.tenant.clone(), "change" => "released").increment(1);
            }
        }
        Ok(())
    }
}

/// A step (a cycle, restoring a partition, its final commit) is kept alive by the heartbeat for at most
/// this many lease TTLs; a worker stuck longer loses the partition to a live one.
const MAX_STALL_TTLS: u32 = 30;

/// Membership slots per consumer group: more than the workers that will ever run at once.
const MEMBER_SLOTS: u16 = 1024;

/// The lease group whose leases say which workers of `group` are alive (one slot each).
fn members_group(group: &str) -> String {
    format!("{group}/members")
}

/// Failures in a row after which a drain gives up (a running service never does).
const DRAIN_GIVE_UP: u32 = 20;

/// Most errors a pool keeps for `stop` and `drain` to report.
const KEPT_ERRORS: usize = 16;

/// Longest wait between retries after failed cycles (and between restarts after panics).
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Wait after the `failures`-th failed cycle in a row: 100 ms, doubling, at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    (Duration::from_millis(100) * 2u32.pow(exp)).min(MAX_BACKOFF)
}

/// The store could not be reached or failed to execute (as opposed to data, lease or sink trouble).
fn is_unavailable(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<storyline_store::StoreError>(),
        Some(storyline_store::StoreError::Engine(_))
    )
}

fn is_lease_lost(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<storyline_store::StoreError>(),
        Some(storyline_store::StoreError::LeaseLost { .. })
    )
}
