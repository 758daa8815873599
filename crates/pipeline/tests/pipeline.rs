//! The pipeline on the embedded store: ingest, workers, leases, checkpoints, stragglers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use storyline_io::MemorySink;
use storyline_model::{Event, EventKey, Story, Timestamp};
use storyline_pipeline::config::WriteHorizonRef;
use storyline_pipeline::ingest::Framing;
use storyline_pipeline::worker::PartitionWorker;
use storyline_pipeline::{Ingestor, PipelineConfig, WorkerPool};
use storyline_store::embedded::{Durability, EmbeddedStore};
use storyline_store::{bucket_of, NewEvent, Store};

fn open(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(dir, Durability::Fsync).unwrap())
}

fn flow(id: &str, sensor: &str, t: Timestamp, port: u16) -> Event {
    let mut e = Event {
        timestamp: t,
        ..Event::default()
    };
    e.event.id = id.into();
    e.observer.name = sensor.into();
    e.network.transport = Some("tcp".into());
    e.source.ip = Some("10.0.0.7".parse().unwrap());
    e.source.port = Some(port);
    e.destination.ip = Some("203.0.113.10".parse().unwrap());
    e.destination.port = Some(443);
    e.finish();
    e
}

/// Appends events straight into chosen buckets, as a producer with its own clock would.
fn append_at(store: &dyn Store, bucket: i64, events: &[Event], shards: u16) {
    let encoded: Vec<_> = events
        .iter()
        .map(|e| {
            (
                storyline_model::routing::shard_for(e, shards),
                EventKey::new(&e.observer.name, &e.event.id),
                e.encode(),
            )
        })
        .collect();
    let batch: Vec<_> = encoded
        .iter()
        .map(|(shard, key, ev)| NewEvent {
            shard: *shard,
            bucket,
            key: *key,
            event: ev,
            raw: b"raw",
        })
        .collect();
    store.append("t", &batch).unwrap();
}

fn latest(stories: &[Story]) -> BTreeMap<String, Story> {
    let mut m: BTreeMap<String, Story> = BTreeMap::new();
    for s in stories {
        let id = s.story_id.to_string();
        if m.get(&id).is_none_or(|o| o.version < s.version) {
            m.insert(id, s.clone());
        }
    }
    m
}

fn members(latest: &BTreeMap<String, Story>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (id, s) in latest {
        for e in &s.event_ids {
            assert!(
                m.insert(e.to_string(), id.clone()).is_none(),
                "event {e} is in two stories"
            );
        }
    }
    m
}

#[test]
fn a_write_into_an_already_read_bucket_is_processed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cfg = PipelineConfig {
        shards: 1,
        ..PipelineConfig::default()
    };
    store.ensure_tenant("t", 1).unwrap();
    let sink = MemorySink::default();
    let now = Timestamp::now();
    let res = cfg.bucket_ms();
    let old_bucket = bucket_of(now, res) - 3 * res; // due: older than bucket + safety delay
    let t0 = now.saturating_sub(Duration::from_secs(3));
    append_at(&*store, old_bucket, &[flow("a", "fw", t0, 50000)], 1);

    let lease = store
        .acquire_lease("t", &cfg.group, 0, "w", 10_000, now.as_millis())
        .unwrap()
        .unwrap();
    let mut w = PartitionWorker::open(&*store, &cfg, lease).unwrap();
    let r = w.cycle(&*store, &sink, &cfg, now, false).unwrap();
    assert_eq!(r.events, 1);
    assert!(w.offset() >= old_bucket, "the bucket was read");

    // A producer whose clock is 3 s behind writes into that bucket after it was read, and re-sends "a".
    append_at(
        &*store,
        old_bucket,
        &[flow("b", "vpc", t0, 50000), flow("a", "fw", t0, 50000)],
        1,
    );
    let r = w
        .cycle(
            &*store,
            &sink,
            &cfg,
            now.saturating_add(Duration::from_millis(300)),
            false,
        )
        .unwrap();
    assert_eq!(
        r.stragglers, 1,
        "the new event is picked up; the re-sent one is recognised"
    );
    let r = w
        .cycle(
            &*store,
            &sink,
            &cfg,
            now.saturating_add(Duration::from_millis(600)),
            false,
        )
        .unwrap();
    assert_eq!(
        (r.events, r.stragglers),
        (0, 0),
        "nothing is processed twice"
    );

    let r = w
        .cycle(
            &*store,
            &sink,
            &cfg,
            now.saturating_add(Duration::from_millis(900)),
            true,
        )
        .unwrap();
    assert!(r.published >= 1);
    let stories = latest(&sink.take());
    let m = members(&stories);
    assert_eq!(m.len(), 2);
    assert_eq!(m["a"], m["b"], "the straggler joined its flow's story");
}

#[test]
fn stragglers_survive_a_restart_between_read_and_late_write() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PipelineConfig {
        shards: 1,
        ..PipelineConfig::default()
    };
    let now = Timestamp::now();
    let res = cfg.bucket_ms();
    let old_bucket = bucket_of(now, res) - 3 * res;
    let t0 = now.saturating_sub(Duration::from_secs(3));
    let sink = MemorySink::default();
    {
        let store = open(dir.path());
        store.ensure_tenant("t", 1).unwrap();
        append_at(&*store, old_bucket, &[flow("a", "fw", t0, 50000)], 1);
        let lease = store
            .acquire_lease("t", &cfg.group, 0, "w1", 10_000, now.as_millis())
            .unwrap()
            .unwrap();
        let mut w = PartitionWorker::open(&*store, &cfg, lease).unwrap();
        w.cycle(&*store, &sink, &cfg, now, false).unwrap();
        w.commit(&*store).unwrap();
    }
    let store = open(dir.path());
    append_at(&*store, old_bucket, &[flow("b", "vpc", t0, 50000)], 1);
    let lease = store
        .acquire_lease("t", &cfg.group, 0, "w2", 10_000, now.as_millis() + 20_000)
        .unwrap()
        .unwrap();
    let mut w = PartitionWorker::open(&*store, &cfg, lease).unwrap();
    let r = w
        .cycle(
            &*store,
            &sink,
            &cfg,
            now.saturating_add(Duration::from_millis(200)),
            true,
        )
        .unwrap();
    assert_eq!(
        r.stragglers, 1,
        "the late write is found after the restart; 'a' is known from the checkpoint"
    );
    let m = members(&latest(&sink.take()));
    assert_eq!(m["a"], m["b"]);
}

/// Drain cycles until the worker is caught up (a drain reads a few buckets per cycle).
fn drain(
    w: &mut PartitionWorker,
    store: &dyn Store,
    sink: &MemorySink,
    cfg: &PipelineConfig,
    now: Timestamp,
) {
    for _ in 0..10_000 {
        if w.cycle(store, sink, cfg, now, true).unwrap().caught_up {
            return;
        }
    }
    panic!("drain never caught up");
}

#[test]
fn open_stories_survive_a_restart_with_the_same_story_id() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PipelineConfig {
        shards: 1,
        ..PipelineConfig::default()
    };
    let now = Timestamp::now();
    let res = cfg.bucket_ms();
    let sink = MemorySink::default();
    {
        let store = open(dir.path());
        store.ensure_tenant("t", 1).unwrap();
        append_at(
            &*store,
            bucket_of(now, res) - 5 * res,
            &[flow("a", "fw", now, 50000)],
            1,
        );
        let lease = store
            .acquire_lease("t", &cfg.group, 0, "w1", 10_000, now.as_millis())
            .unwrap()
            .unwrap();
        let mut w = PartitionWorker::open(&*store, &cfg, lease).unwrap();
        let r = w.cycle(&*store, &sink, &cfg, now, false).unwrap();
        assert_eq!((r.events, r.published), (1, 0), "the story is still open");
        w.commit(&*store).unwrap();
    }
    let store = open(dir.path());
    append_at(
        &*store,
        bucket_of(now, res) - 2 * res,
        &[flow("b", "zeek", now, 50000)],
        1,
    );
    let lease = store
        .acquire_lease("t", &cfg.group, 0, "w2", 10_000, now.as_millis() + 20_000)
        .unwrap()
        .unwrap();
    let mut w = PartitionWorker::open(&*store, &cfg, lease).unwrap();
    drain(&mut w, &*store, &sink, &cfg, now);
    let stories = sink.take();
    assert_eq!(stories.len(), 1);
    assert_eq!(
        stories[0].event_count, 2,
        "the open story from before the restart took the new event"
    );
}

#[test]
fn a_fenced_worker_cannot_commit_after_its_shard_moved() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cfg = PipelineConfig {
        shards: 1,
        ..PipelineConfig::default()
    };
    store.ensure_tenant("t", 1).unwrap();
    let now = Timestamp::now().as_millis();
    let lease = store
        .acquire_lease("t", &cfg.group, 0, "old", 1_000, now)
        .unwrap()
        .unwrap();
    let mut old = PartitionWorker::open(&*store, &cfg, lease).unwrap();
    assert!(store
        .acquire_lease("t", &cfg.group, 0, "new", 1_000, now + 5_000)
        .unwrap()
        .is_some());
    let err = old.commit(&*store).unwrap_err();
    assert!(err.to_string().contains("no longer held"), "{err}");
}

fn envelope(i: usize, port: u16, sensor: &str, t: Timestamp) -> String {
    let rec = serde_json::json!({
        "@timestamp": t.to_rfc3339(),
        "event": {"id": format!("ev-{i}")},
        "source": {"ip": "10.1.1.1", "port": port},
        "destination": {"ip": "198.51.100.1", "port": 443},
        "network": {"transport": "tcp"},
    });
    serde_json::json!({"format": "ecs", "sensor": sensor, "record": rec}).to_string()
}

#[test]
fn pool_drains_every_event_into_exactly_one_story_and_dead_letters_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cfg = PipelineConfig {
        shards: 8,
        partitions: 4,
        workers: 3,
        ..PipelineConfig::default()
    };
    let ingestor = Ingestor::new(store.clone(), "t", &cfg, Default::default()).unwrap();
    let t = Timestamp::now();
    let mut body = String::new();
    for i in 0..300 {
        body.push_str(&envelope(
            i,
            40000 + (i % 50) as u16,
            if i % 2 == 0 { "fw" } else { "zeek" },
            t,
        ));
        body.push('\n');
    }
    body.push_str("{\"format\": \"ecs\", \"sensor\": \"fw\", \"record\": {\"event\": {\"id\": \"no-time\"}}}\n");
    body.push_str("not json at all\n");
    body.push_str(&envelope(999, 1, "fw", t).replace("\"ecs\"", "\"nosuch\""));
    let report = ingestor
        .ingest(body.as_bytes(), Framing::Envelopes, "test")
        .unwrap();
    assert_eq!(report.accepted, 300);
    assert_eq!(report.rejected, 3);
    let codes: BTreeSet<_> = report.errors.iter().map(|e| e.code).collect();
    assert_eq!(
        codes,
        BTreeSet::from(["missing_field", "malformed_json", "unknown_format"])
    );
    assert_eq!(report.errors[0].line, 301);
    let dead = store.dead_letters("t", None, 10).unwrap();
    assert_eq!(dead.len(), 3);
    assert_eq!(dead[1].raw, b"not json at all");

    let sink = Arc::new(MemorySink::default());
    let pool = WorkerPool::start(
        store.clone(),
        sink.clone(),
        cfg.clone(),
        "t",
        "test-process",
    )
    .unwrap();
    pool.drain().unwrap();
    let stories = latest(&sink.take());
    let m = members(&stories);
    assert_eq!(m.len(), 300);
    assert_eq!(stories.len(), 50, "one story per flow");
    // Every partition committed its offsets, and the leases were released.
    for partition in 0..4 {
        assert!(store
            .load_checkpoint("t", &cfg.group, partition)
            .unwrap()
            .is_some());
    }
    assert!(store
        .leases("t", &cfg.group)
        .unwrap()
        .iter()
        .all(|l| l.expires_ms < Timestamp::now().as_millis()));
}

/// A store for a pool of `workers` over two shards with short leases and polls, and a bucket ten buckets
/// back (due at once): the store's directory, the store, the config, now, the bucket.
fn quick_pool(
    workers: usize,
) -> (
    tempfile::TempDir,
    Arc<dyn Store>,
    PipelineConfig,
    Timestamp,
    i64,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cfg = PipelineConfig {
        shards: 2,
        workers,
        lease_ttl: Duration::from_millis(300),
        poll_interval: Duration::from_millis(10),
        ..PipelineConfig::default()
    };
    store.ensure_tenant("t", cfg.shards).unwrap();
    let now = Timestamp::now();
    let bucket = bucket_of(now, cfg.bucket_ms()) - 10 * cfg.bucket_ms();
    (dir, store, cfg, now, bucket)
}

/// A sink that fails by panicking, on the worker's thread.
struct PanickingSink;

impl storyline_io::StorySink for PanickingSink {
    fn publish(&self, _: &[Story]) -> anyhow::Result<()> {
        panic!("the sink broke");
    }
}

/// A worker that dies (here by a panicking sink) fails the drain: its stories were never published, so
/// a replay must not end as if they were.
#[test]
fn a_drain_fails_when_its_workers_panic() {
    let (_dir, store, cfg, now, bucket) = quick_pool(2);
    append_at(
        &*store,
        bucket,
        &[flow("a", "fw", now, 1), flow("b", "fw", now, 2)],
        2,
    );
    let pool = WorkerPool::start(store, Arc::new(PanickingSink), cfg, "t", "p").unwrap();
    let err = pool.drain().expect_err("a drain whose workers died");
    assert!(
        format!("{err:#}").contains("panicked: the sink broke"),
        "{err:#}"
    );
}

/// A sink whose first publication panics on the worker's thread; later ones deliver.
#[derive(Default)]
struct PanicsOnceSink {
    panicked: std::sync::atomic::AtomicBool,
    delivered: MemorySink,
}

impl storyline_io::StorySink for PanicsOnceSink {
    fn publish(&self, stories: &[Story]) -> anyhow::Result<()> {
        if !self
            .panicked
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("the sink broke once");
        }
        self.delivered.publish(stories)
    }
}

/// In a service, a worker whose loop panicked starts again and resumes its partitions from their
/// checkpoints: with one worker nobody else would take its leases, and its shards would wait for a
/// process restart. Every event still lands in exactly one story, and `stop` still reports the panic.
#[test]
fn a_service_worker_that_panicked_restarts_and_publishes_everything() {
    let (_dir, store, cfg, now, bucket) = quick_pool(1);
    // Five flows five minutes old, and one event now: event time has moved past their gap, so their
    // stories close and are published (the first publication panics).
    let old = Timestamp(now.0 - 300_000_000_000);
    let mut events: Vec<Event> = (0..20)
        .map(|i| flow(&format!("e{i}"), "fw", old, 30_000 + (i % 5) as u16))
        .collect();
    events.push(flow("now", "fw", now, 40_000));
    append_at(&*store, bucket, &events, cfg.shards);
    let sink = Arc::new(PanicsOnceSink::default());
    let pool = WorkerPool::start(store, sink.clone(), cfg, "t", "p").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sink.delivered.len() < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never came back after its panic"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A service stops (its open stories stay in the checkpoint; only a drain flushes them).
    let err = pool.stop().expect_err("the panic is still reported");
    assert!(
        format!("{err:#}").contains("panicked: the sink broke once"),
        "{err:#}"
    );
    let latest = latest(&sink.delivered.take());
    let m = members(&latest);
    let ids: BTreeSet<String> = (0..20).map(|i| format!("e{i}")).collect();
    assert_eq!(
        m.keys().cloned().collect::<BTreeSet<_>>(),
        ids,
        "every closed event in one story"
    );
    assert_eq!(latest.len(), 5, "one story per flow");
}

#[test]
fn retention_deletes_only_what_every_group_has_read_and_is_old_enough() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cfg = PipelineConfig {
        shards: 1,
        retention: Duration::from_secs(60),
        ..PipelineConfig::default()
    };
    store.ensure_tenant("t", 1).unwrap();
    let now = Timestamp::now();
    let res = cfg.bucket_ms();
    let old = bucket_of(now, res) - 600 * res; // ten minutes ago: past the retention
    let recent = bucket_of(now, res) - 10 * res; // within the retention
    append_at(&*store, old, &[flow("old", "fw", now, 1)], 1);
    append_at(&*store, recent, &[flow("recent", "fw", now, 2)], 1);
    let count = |s: &dyn Store| {
        s.scan("t", 0, storyline_store::BucketRange::all(), None, 100)
            .unwrap()
            .len()
    };

    let sink = MemorySink::default();
    let lease = store
        .acquire_lease("t", &cfg.group, 0, "w", 10_000, now.as_millis())
        .unwrap()
        .unwrap();
    let mut w = PartitionWorker::open(&*store, &cfg, lease).unwrap();
    // A second consumer group that has read nothing yet holds everything back.
    let other = PipelineConfig {
        group: "archive".into(),
        ..cfg.clone()
    };
    let lease2 = store
        .acquire_lease("t", "archive", 0, "w", 10_000, now.as_millis())
        .unwrap()
        .unwrap();
    store
        .commit(
            "t",
            "archive",
            &lease2,
            &storyline_store::Checkpoint {
                shard: 0,
                offset: old - res,
                ..Default::default()
            },
        )
        .unwrap();
    // A cycle reads at most `max_cycle_span` from the oldest unread bucket: the old one, then the rest.
    while w.cycle(&*store, &sink, &cfg, now, false).unwrap().more {}
    w.commit(&*store).unwrap();
    assert_eq!(
        w.apply_retention(&*store, &cfg, now).unwrap(),
        0,
        "the archive group has not read the old bucket"
    );
    assert_eq!(count(&*store), 2);

    let mut w2 = PartitionWorker::open(&*store, &other, lease2).unwrap();
    while w2.cycle(&*store, &sink, &other, now, false).unwrap().more {}
    w2.commit(&*store).unwrap();
    assert_eq!(
        w.apply_retention(&*store, &cfg, now).unwrap(),
        1,
        "read by both groups and past the retention"
    );
    let left = store
        .scan("t", 0, storyline_store::BucketRange::all(), None, 100)
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].bucket, recent,
        "recent data stays although every group read it"
    );
}

/// Runs generated multi-sensor traffic through ingest, the worker pool and a sink; returns the grouping.
fn stories_with(shards: u16, partitions: u16, events: &[String]) -> BTreeSet<BTreeSet<String>> {
    let cfg = PipelineConfig {
        shards,
        partitions,
        workers: 2,
        ..PipelineConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    grouping(&drained(&cfg, events, &open(dir.path())))
}

/// The latest version of every story of `events` run through ingest and a drained worker pool.
fn drained(cfg: &PipelineConfig, events: &[String], store: &Arc<dyn Store>) -> Vec<Story> {
    let cfg = cfg.clone();
    let store = store.clone();
    let ingestor = Ingestor::new(store.clone(), "t", &cfg, Default::default()).unwrap();
    for chunk in events.chunks(500) {
        let body: String = chunk.iter().map(|l| format!("{l}\n")).collect();
        let r = ingestor
            .ingest(body.as_bytes(), Framing::Envelopes, "test")
            .unwrap();
        assert_eq!(r.rejected, 0);
    }
    let sink = Arc::new(MemorySink::default());
    WorkerPool::start(store, sink.clone(), cfg, "t", "p")
        .unwrap()
        .drain()
        .unwrap();
    let latest = latest(&sink.take());
    members(&latest); // every event once
    latest.into_values().collect()
}

/// Which events went together.
fn grouping(latest: &[Story]) -> BTreeSet<BTreeSet<String>> {
    latest
        .iter()
        .filter(|s| !s.event_ids.is_empty())
        .map(|s| s.event_ids.iter().map(|e| e.to_string()).collect())
        .collect()
}

fn generated_envelopes(events: u64, seed: u64) -> Vec<String> {
    let gen = storyline_generate::GenConfig {
        events,
        seed,
        large: 0.0,
        ..Default::default()
    };
    storyline_generate::Generator::new(&gen)
        .map(|g| g.envelope)
        .collect()
}

#[test]
fn stories_do_not_depend_on_the_shard_count() {
    let events = generated_envelopes(3000, 5);
    let one = stories_with(1, 1, &events);
    assert_eq!(one.iter().map(|s| s.len()).sum::<usize>(), 3000);
    for shards in [7, 64] {
        assert_eq!(
            stories_with(shards, 1, &events),
            one,
            "{shards} shards, one partition"
        );
    }
    // Several partitions correlate in parallel but cannot link across partitions: the grouping is finer.
    let split = stories_with(64, 8, &events);
    assert!(split.len() > one.len());
}

#[test]
fn an_ephemeral_run_publishes_the_same_stories_without_writing_checkpoints() {
    let events = generated_envelopes(3000, 11);
    let kept = PipelineConfig {
        shards: 4,
        ..PipelineConfig::default()
    };
    let ephemeral = PipelineConfig {
        ephemeral: true,
        ..kept.clone()
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (kept_store, ephemeral_store) = (open(a.path()), open(b.path()));
    let with_checkpoints = drained(&kept, &events, &kept_store);
    let without = drained(&ephemeral, &events, &ephemeral_store);
    assert_eq!(
        grouping(&without).iter().map(BTreeSet::len).sum::<usize>(),
        3000
    );
    let json = |stories: &[Story]| -> BTreeMap<String, String> {
        stories
            .iter()
            .map(|s| (s.story_id.to_string(), serde_json::to_string(s).unwrap()))
            .collect()
    };
    assert_eq!(
        json(&without),
        json(&with_checkpoints),
        "the same stories, ids and fields"
    );
    assert!(kept_store
        .load_checkpoint("t", &kept.group, 0)
        .unwrap()
        .is_some());
    assert!(
        ephemeral_store
            .load_checkpoint("t", &ephemeral.group, 0)
            .unwrap()
            .is_none(),
        "nothing was checkpointed"
    );
}

/// A store whose scans are slow (to make one catch-up cycle outlive the lease), and whose next commits,
/// or next scans of one shard, can be made to fail as an unreachable database's would. It keeps
/// checkpoints inline (no keyed parts).
struct SlowScans {
    inner: Arc<dyn Store>,
    scan_delay: Duration,
    failing_commits: std::sync::atomic::AtomicU32,
    /// (shard, how many of its next scans fail)
    failing_scans: std::sync::Mutex<(u16, u32)>,
}

impl SlowScans {
    fn new(inner: Arc<dyn Store>, scan_delay: Duration) -> Self {
        Self {
            inner,
            scan_delay,
            failing_commits: Default::default(),
            failing_scans: Default::default(),
        }
    }
}

impl Store for SlowScans {
    fn ensure_tenant(&self, t: &str, s: u16) -> storyline_store::Result<()> {
        self.inner.ensure_tenant(t, s)
    }
    fn append(&self, t: &str, e: &[NewEvent<'_>]) -> storyline_store::Result<()> {
        self.inner.append(t, e)
    }
    fn scan(
        &self,
        t: &str,
        s: u16,
        r: storyline_store::BucketRange,
        resume: Option<(i64, EventKey)>,
        limit: usize,
    ) -> storyline_store::Result<Vec<storyline_store::StoredEvent>> {
        std::thread::sleep(self.scan_delay);
        {
            let mut f = self.failing_scans.lock().unwrap();
            if f.0 == s && f.1 > 0 {
                f.1 -= 1;
                return Err(storyline_store::StoreError::Engine(
                    "injected: scan failed".into(),
                ));
            }
        }
        self.inner.scan(t, s, r, resume, limit)
    }
    fn payload(
        &self,
        t: &str,
        s: u16,
        b: i64,
        k: EventKey,
    ) -> storyline_store::Result<Option<Vec<u8>>> {
        self.inner.payload(t, s, b, k)
    }
    fn bucket_marks(
        &self,
        t: &str,
        s: u16,
        r: storyline_store::BucketRange,
    ) -> storyline_store::Result<Vec<(i64, u64)>> {
        self.inner.bucket_marks(t, s, r)
    }
    fn load_checkpoint(
        &self,
        t: &str,
        g: &str,
        s: u16,
    ) -> storyline_store::Result<Option<storyline_store::Checkpoint>> {
        self.inner.load_checkpoint(t, g, s)
    }
    fn commit(
        &self,
        t: &str,
        g: &str,
        l: &storyline_store::Lease,
        c: &storyline_store::Checkpoint,
    ) -> storyline_store::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        let fail = self
            .failing_commits
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(storyline_store::StoreError::Engine(
                "injected: database unreachable".into(),
            ));
        }
        self.inner.commit(t, g, l, c)
    }
    fn offsets(&self, t: &str, s: u16) -> storyline_store::Result<Vec<(String, i64)>> {
        self.inner.offsets(t, s)
    }
    fn acquire_lease(
        &self,
        t: &str,
        g: &str,
        s: u16,
        o: &str,
        ttl: i64,
        now: i64,
    ) -> storyline_store::Result<Option<storyline_store::Lease>> {
        self.inner.acquire_lease(t, g, s, o, ttl, now)
    }
    fn renew_lease(
        &self,
        l: &storyline_store::Lease,
        ttl: i64,
        now: i64,
    ) -> storyline_store::Result<Option<storyline_store::Lease>> {
        self.inner.renew_lease(l, ttl, now)
    }
    fn release_lease(&self, l: &storyline_store::Lease) -> storyline_store::Result<()> {
        self.inner.release_lease(l)
    }
    fn leases(&self, t: &str, g: &str) -> storyline_store::Result<Vec<storyline_store::Lease>> {
        self.inner.leases(t, g)
    }
    fn put_dead_letters(&self, d: &[storyline_store::DeadLetter]) -> storyline_store::Result<()> {
        self.inner.put_dead_letters(d)
    }
    fn dead_letters(
        &self,
        t: &str,
        a: Option<u64>,
        l: usize,
    ) -> storyline_store::Result<Vec<storyline_store::DeadLetter>> {
        self.inner.dead_letters(t, a, l)
    }
    fn delete_before(&self, t: &str, s: u16, b: i64) -> storyline_store::Result<u64> {
        self.inner.delete_before(t, s, b)
    }
    fn delete_tenant(&self, t: &str) -> storyline_store::Result<u64> {
        self.inner.delete_tenant(t)
    }
    fn put_record(&self, k: &str, v: Option<&str>) -> storyline_store::Result<()> {
        self.inner.put_record(k, v)
    }
    fn records(
        &self,
        p: &str,
        a: Option<&str>,
        l: usize,
    ) -> storyline_store::Result<Vec<(String, String)>> {
        self.inner.records(p, a, l)
    }
}

#[test]
fn a_catch_up_cycle_longer_than_the_lease_keeps_it_and_publishes_once() {
    let dir = tempfile::tempdir().unwrap();
    let inner = open(dir.path());
    let store: Arc<dyn Store> = Arc::new(SlowScans::new(inner, Duration::from_millis(30)));
    let cfg = PipelineConfig {
        shards: 1,
        workers: 2,
        scan_batch: 10,
        lease_ttl: Duration::from_millis(300),
        poll_interval: Duration::from_millis(20),
        ..PipelineConfig::default()
    };
    store.ensure_tenant("t", 1).unwrap();
    let now = Timestamp::now();
    let evs: Vec<Event> = (0..600)
        .map(|i| flow(&format!("e{i}"), "fw", now, 10_000 + (i % 100) as u16))
        .collect();
    append_at(
        &*store,
        bucket_of(now, cfg.bucket_ms()) - 10 * cfg.bucket_ms(),
        &evs,
        1,
    );
    // 60 pages × 30 ms: one cycle takes ~2 s, six lease lifetimes, while a second worker waits for it.
    let sink = Arc::new(MemorySink::default());
    WorkerPool::start(store.clone(), sink.clone(), cfg, "t", "p")
        .unwrap()
        .drain()
        .unwrap();
    let all = sink.take();
    let latest = latest(&all);
    assert_eq!(members(&latest).len(), 600);
    assert_eq!(
        all.len(),
        latest.len(),
        "no story was published twice by two owners"
    );
}

/// A worker restarted from its checkpoints (a full one, then only the changed parts after each commit)
/// publishes exactly what an uninterrupted worker publishes, version for version.
#[test]
fn restarts_from_incremental_checkpoints_publish_what_an_uninterrupted_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(store.keyed_checkpoint_parts());
    let shards = 4;
    store.ensure_tenant("t", shards).unwrap();
    let cfg = PipelineConfig {
        shards,
        commit_interval: Duration::ZERO,
        ..PipelineConfig::default()
    };
    // Slow traffic so that stories close, and are evicted, during the run.
    let gen = storyline_generate::GenConfig {
        events: 4000,
        seed: 11,
        rate: 2.0,
        large: 0.0,
        ..Default::default()
    };
    let res = cfg.bucket_ms();
    let base = bucket_of(Timestamp::now(), res) - 1000 * res;
    let limits = storyline_parse::Limits::default();
    let events: Vec<Event> = storyline_generate::Generator::new(&gen)
        .map(|g| {
            let mut e = storyline_parse::parse_envelope(g.envelope.as_bytes(), &limits)
                .unwrap()
                .event;
            e.event.ingested = Some(g.arrival);
            e
        })
        .collect();
    let buckets = events.chunks(100).count() as i64;
    for (i, chunk) in events.chunks(100).enumerate() {
        append_at(&*store, base + i as i64 * res, chunk, shards);
    }
    let run = |group: &str, restart_every: Option<usize>| -> (Vec<Story>, usize) {
        let cfg = PipelineConfig {
            group: group.into(),
            ..cfg.clone()
        };
        let sink = MemorySink::default();
        let lease = |n: usize| {
            store
                .acquire_lease(
                    "t",
                    group,
                    0,
                    &format!("w{n}"),
                    60_000,
                    Timestamp::now().as_millis(),
                )
                .unwrap()
                .expect("partition free")
        };
        let mut w = PartitionWorker::open(&*store, &cfg, lease(0)).unwrap();
        let mut restarts = 0;
        // One bucket becomes due per cycle.
        let lag = (cfg.safety_delay + cfg.bucket).as_millis() as i64;
        for i in 0..buckets {
            let now = Timestamp::from_millis(base + i * res + lag + res / 2);
            let r = w.cycle(&*store, &sink, &cfg, now, false).unwrap();
            assert!(r.events > 0);
            if restart_every.is_some_and(|n| i as usize % n == n - 1) {
                // A crash after the cycle's commit and publish: whoever comes next starts from the store.
                store.release_lease(&w.lease).unwrap();
                restarts += 1;
                w = PartitionWorker::open(&*store, &cfg, lease(restarts)).unwrap();
            }
        }
        let end = Timestamp::from_millis(base + buckets * res + lag);
        drain(&mut w, &*store, &sink, &cfg, end);
        (sink.take(), restarts)
    };
    let (expected, _) = run("uninterrupted", None);
    let (got, restarts) = run("restarted", Some(3));
    assert!(restarts >= 10);
    assert!(expected.len() > 500, "{} versions", expected.len());
    assert!(
        expected.iter().any(|s| s.merged_into.is_some()),
        "no merge was exercised"
    );
    // The outbox of the last commit before each crash goes out again (at least once): same id, same
    // version, same content.
    let versions = |v: &[Story]| {
        let mut m: BTreeMap<(String, u32), Story> = BTreeMap::new();
        for s in v {
            let k = (s.story_id.to_string(), s.version);
            if let Some(o) = m.insert(k.clone(), s.clone()) {
                assert_eq!(&o, s, "{k:?} published with two contents");
            }
        }
        m
    };
    assert!(got.len() > expected.len(), "no outbox was published again");
    assert_eq!(versions(&expected).len(), expected.len());
    assert!(
        versions(&got) == versions(&expected),
        "different story versions"
    );
}

/// A sink whose first publication takes several lease lifetimes (a SIEM stalling, a huge catch-up batch).
struct StallingSink {
    inner: MemorySink,
    stall: Duration,
    stalled: std::sync::atomic::AtomicBool,
}

impl storyline_io::StorySink for StallingSink {
    fn publish(&self, stories: &[Story]) -> anyhow::Result<()> {
        if !self.stalled.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(self.stall);
        }
        self.inner.publish(stories)
    }
}

/// The step between reads — commit and publication — can outlast the lease too: the heartbeat keeps the
/// partition with the worker that is busy in it, so the second worker never takes it over and nothing is
/// published twice.
#[test]
fn a_publication_longer_than_the_lease_keeps_it_and_publishes_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cfg = PipelineConfig {
        shards: 1,
        workers: 2,
        lease_ttl: Duration::from_millis(300),
        poll_interval: Duration::from_millis(20),
        ..PipelineConfig::default()
    };
    store.ensure_tenant("t", 1).unwrap();
    let now = Timestamp::now();
    let evs: Vec<Event> = (0..200)
        .map(|i| flow(&format!("e{i}"), "fw", now, 10_000 + (i % 50) as u16))
        .collect();
    append_at(
        &*store,
        bucket_of(now, cfg.bucket_ms()) - 10 * cfg.bucket_ms(),
        &evs,
        1,
    );
    let sink = Arc::new(StallingSink {
        inner: MemorySink::default(),
        stall: Duration::from_millis(1500),
        stalled: Default::default(),
    });
    let before = store.leases("t", &cfg.group).unwrap();
    assert!(before.is_empty());
    WorkerPool::start(store.clone(), sink.clone(), cfg.clone(), "t", "p")
        .unwrap()
        .drain()
        .unwrap();
    let epoch = store.leases("t", &cfg.group).unwrap()[0].epoch;
    assert_eq!(
        epoch, 1,
        "the partition changed hands while its owner was publishing"
    );
    let all = sink.inner.take();
    let latest = latest(&all);
    assert_eq!(members(&latest).len(), 200);
    assert_eq!(
        all.len(),
        latest.len(),
        "no story was published twice by two owners"
    );
}

/// A store of `shards` shards whose commits and scans can be made to fail, and a config that commits
/// after every cycle.
fn failing_store(shards: u16) -> (tempfile::TempDir, Arc<SlowScans>, PipelineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SlowScans::new(open(dir.path()), Duration::ZERO));
    let cfg = PipelineConfig {
        shards,
        commit_interval: Duration::ZERO,
        ..PipelineConfig::default()
    };
    store.ensure_tenant("t", cfg.shards).unwrap();
    (dir, store, cfg)
}

/// Writes `per_bucket` flows into each of `buckets` buckets 70 s apart, ending a while before `now`, with
/// event time = the bucket's, so each bucket's sessions close when the next one is read. Event `j` of
/// bucket `i` is `b{i}e{j}` on port `port(i, j)`. Returns the event ids.
fn append_spaced_buckets(
    store: &dyn Store,
    cfg: &PipelineConfig,
    now: Timestamp,
    buckets: usize,
    per_bucket: usize,
    port: impl Fn(usize, usize) -> u16,
) -> BTreeSet<String> {
    let res = cfg.bucket_ms();
    let mut ids = BTreeSet::new();
    for i in 0..buckets {
        let b = bucket_of(now, res) - (buckets - i) as i64 * 70 * res;
        let evs: Vec<Event> = (0..per_bucket)
            .map(|j| {
                let id = format!("b{i}e{j}");
                ids.insert(id.clone());
                flow(&id, "fw", Timestamp::from_millis(b), port(i, j))
            })
            .collect();
        append_at(store, b, &evs, cfg.shards);
    }
    ids
}

/// A catch-up reads at most `max_cycle_span` per cycle, publishing as it goes, and writes each cycle's
/// checkpoint while the next cycle reads. When such a background write fails, nothing is published or
/// lost: its stories wait for the next commit, which writes the whole state, and a worker restored from
/// the store afterwards carries on from it.
#[test]
fn a_catch_up_commits_behind_its_reads_and_survives_a_failed_write() {
    let (_dir, store, cfg) = failing_store(2);
    let now = Timestamp::now();
    // Each bucket holds three sessions of three events.
    let ids = append_spaced_buckets(&*store, &cfg, now, 12, 9, |i, j| {
        20_000 + (i * 3 + j % 3) as u16
    });
    let lease = || {
        store
            .acquire_lease("t", &cfg.group, 0, "w", 60_000, now.as_millis())
            .unwrap()
            .unwrap()
    };
    let sink = MemorySink::default();
    let mut w = PartitionWorker::open(&*store, &cfg, lease()).unwrap();
    let mut cycles = 0;
    let mut failed = 0;
    let mut published_while_catching_up = 0;
    loop {
        cycles += 1;
        if cycles == 4 {
            // The write of cycle 3's checkpoint, running during cycle 4, fails.
            store
                .failing_commits
                .store(1, std::sync::atomic::Ordering::SeqCst);
        }
        match w.cycle(&*store, &sink, &cfg, now, false) {
            Ok(r) if r.more => published_while_catching_up = sink.len(),
            Ok(_) => break,
            Err(e) => {
                assert!(format!("{e:#}").contains("injected"), "{e:#}");
                failed += 1;
            }
        }
        assert!(cycles < 100, "the catch-up never ended");
    }
    assert_eq!(failed, 1, "the background write failed once");
    assert!(cycles >= 12, "one bucket per cycle: {cycles} cycles");
    assert!(
        published_while_catching_up > 0,
        "stories are published during the catch-up, not only at its end"
    );
    w.finish(&*store, &sink).unwrap();
    store.release_lease(&w.lease).unwrap();

    // Whoever opens the partition next restores the state the failed write left behind, and finishes.
    let mut w2 = PartitionWorker::open(&*store, &cfg, lease()).unwrap();
    drain(&mut w2, &*store, &sink, &cfg, now);
    let all = sink.take();
    let latest = latest(&all);
    let m = members(&latest);
    assert_eq!(
        m.keys().cloned().collect::<BTreeSet<_>>(),
        ids,
        "every event in exactly one story"
    );
    let mut content: BTreeMap<(String, u32), &Story> = BTreeMap::new();
    for s in &all {
        if let Some(o) = content.insert((s.story_id.to_string(), s.version), s) {
            assert_eq!(o, s, "one version, one content");
        }
    }
    assert_eq!(
        latest.values().filter(|s| !s.event_ids.is_empty()).count(),
        12 * 3
    );
}

/// A cycle whose read fails part way through its shards (the first shards read, one failing, the rest not
/// reached yet) moves no cursor past what it did not read: the next cycles read it, and every event ends
/// up in exactly one story.
#[test]
fn a_read_that_fails_part_way_through_a_cycle_loses_nothing() {
    let (_dir, store, cfg) = failing_store(4);
    let now = Timestamp::now();
    // Each event a session of its own, spread over the shards.
    let ids = append_spaced_buckets(&*store, &cfg, now, 6, 40, |i, j| {
        20_000 + (i * 40 + j) as u16
    });
    let lease = store
        .acquire_lease("t", &cfg.group, 0, "w", 60_000, now.as_millis())
        .unwrap()
        .unwrap();
    let sink = MemorySink::default();
    let mut w = PartitionWorker::open(&*store, &cfg, lease).unwrap();
    let mut failed = 0;
    for cycle in 1.. {
        if cycle == 3 {
            *store.failing_scans.lock().unwrap() = (2, 1);
        }
        match w.cycle(&*store, &sink, &cfg, now, true) {
            Ok(r) if r.caught_up => break,
            Ok(_) => {}
            Err(e) => {
                assert!(format!("{e:#}").contains("injected"), "{e:#}");
                failed += 1;
            }
        }
        assert!(cycle < 100, "the catch-up never ended");
    }
    assert_eq!(failed, 1, "the scan failed once");
    w.finish(&*store, &sink).unwrap();
    let all = sink.take();
    let m = members(&latest(&all));
    assert_eq!(
        m.keys().cloned().collect::<BTreeSet<_>>(),
        ids,
        "every event in exactly one story"
    );
}

/// `publish_only_final` (a replay's): a story that closed is not published while the clock estimate for
/// its time may still change; publishing at close (the service's) sends it at once. Draining publishes
/// the held story, as the same last version.
#[test]
fn a_replay_worker_holds_closed_stories_until_their_times_are_final() {
    let now = Timestamp::now();
    let run = |only_final: bool| {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let cfg = PipelineConfig {
            shards: 1,
            publish_only_final: only_final,
            ..PipelineConfig::default()
        };
        store.ensure_tenant("t", 1).unwrap();
        let sink = MemorySink::default();
        let res = cfg.bucket_ms();
        let bucket = bucket_of(now, res) - 5 * res;
        let t0 = now.saturating_sub(Duration::from_secs(600));
        // A flow, then another five minutes later in event time: the first story's gap has passed, the
        // allowed lateness (10 min) has not.
        append_at(
            &*store,
            bucket,
            &[
                flow("a", "fw", t0, 50000),
                flow("b", "zeek", t0, 50000),
                flow(
                    "c",
                    "fw",
                    t0.saturating_add(Duration::from_secs(300)),
                    50001,
                ),
            ],
            1,
        );
        let lease = store
            .acquire_lease("t", &cfg.group, 0, "w", 10_000, now.as_millis())
            .unwrap()
            .unwrap();
        let mut w = PartitionWorker::open(&*store, &cfg, lease).unwrap();
        let mut cfg_now = cfg.clone();
        cfg_now.commit_interval = Duration::ZERO;
        w.cycle(&*store, &sink, &cfg_now, now, false).unwrap();
        let before_drain = sink.take();
        w.cycle(&*store, &sink, &cfg_now, now, true).unwrap();
        let mut all = before_drain.clone();
        all.extend(sink.take());
        (before_drain, all)
    };
    let (held_early, held) = run(true);
    let (sent_early, sent) = run(false);
    assert!(
        held_early.is_empty(),
        "published before final: {held_early:?}"
    );
    assert!(
        sent_early
            .iter()
            .any(|s| s.event_ids.iter().any(|e| e == "a")),
        "at close, the first story goes out at once: {sent_early:?}"
    );
    let essentials = |all: &[Story]| {
        latest(all)
            .into_values()
            .map(|s| (s.event_ids, s.version, s.first_seen, s.last_seen))
            .collect::<Vec<_>>()
    };
    assert_eq!(essentials(&held), essentials(&sent));
    assert_eq!(held.len(), 2, "each story once: {held:?}");
}

/// A replay's configuration: the workers know the writes in flight, so they wait neither a safety delay
/// nor a clock skew, and re-check one bucket only.
fn replay_like(horizon: bool) -> PipelineConfig {
    PipelineConfig {
        shards: 1,
        safety_delay: Duration::ZERO,
        max_clock_skew: Duration::ZERO,
        write_horizon: horizon.then(WriteHorizonRef::default),
        ..PipelineConfig::default()
    }
}

/// A worker of partition 0 whose lease starts at `at`.
fn worker_at(store: &dyn Store, cfg: &PipelineConfig, at: Timestamp) -> PartitionWorker {
    let lease = store
        .acquire_lease("t", &cfg.group, 0, "w", 10_000, at.as_millis())
        .unwrap()
        .unwrap();
    PartitionWorker::open(store, cfg, lease).unwrap()
}

/// One cycle (not a drain) at `now`.
fn step(
    w: &mut PartitionWorker,
    store: &dyn Store,
    cfg: &PipelineConfig,
    now: Timestamp,
) -> storyline_pipeline::worker::CycleReport {
    w.cycle(store, &MemorySink::default(), cfg, now, false)
        .unwrap()
}

/// One event written the way a slow ingest thread writes: stamped at `at`, visible only later.
fn late_visible_write(store: &dyn Store, at: Timestamp, res: i64) {
    append_at(
        store,
        bucket_of(at, res),
        &[flow("slow", "fw", at, 50000)],
        1,
    );
}

#[test]
fn with_a_write_horizon_a_bucket_is_read_only_once_its_writes_in_flight_are_visible() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cfg = replay_like(true);
    let horizon = cfg.write_horizon.clone().unwrap().0;
    store.ensure_tenant("t", 1).unwrap();
    let res = cfg.bucket_ms();

    let write = horizon.begin();
    let mut w = worker_at(&*store, &cfg, write.at);
    // Far past the lookback: without the horizon this bucket would be read, and never re-checked.
    let later = write.at.saturating_add(Duration::from_secs(3));
    let r = step(&mut w, &*store, &cfg, later);
    assert_eq!(r.events, 0);
    assert!(
        w.offset() < bucket_of(write.at, res),
        "the bucket of the write in flight is not read: offset {} vs bucket {}",
        w.offset(),
        bucket_of(write.at, res)
    );

    late_visible_write(&*store, write.at, res);
    drop(write);
    let r = step(
        &mut w,
        &*store,
        &cfg,
        later.saturating_add(Duration::from_millis(300)),
    );
    assert_eq!(
        (r.events, r.stragglers),
        (1, 0),
        "read once visible, as a first read"
    );
    assert!(
        w.offset() >= bucket_of(later, res) - 2 * res,
        "then the worker catches up"
    );

    // The ingest path stamps through the same horizon: a batch begun while an older write is in flight
    // is not read before that write is visible either.
    let older = horizon.begin();
    let ingestor = Ingestor::new(store.clone(), "t", &cfg, Default::default()).unwrap();
    let t = Timestamp::now();
    let body = envelope(1, 40000, "fw", t);
    let report = ingestor
        .ingest(body.as_bytes(), Framing::Envelopes, "test")
        .unwrap();
    assert_eq!(report.accepted, 1);
    let far = Timestamp::now().saturating_add(Duration::from_secs(5));
    let r = step(&mut w, &*store, &cfg, far);
    assert_eq!(r.events, 0, "the ingested batch waits for the older write");
    drop(older);
    let r = step(
        &mut w,
        &*store,
        &cfg,
        far.saturating_add(Duration::from_millis(300)),
    );
    assert_eq!(r.events, 1);
}

/// What the horizon is for: the same late write with a one-bucket lookback and no horizon is never read
/// (which is why the service, whose writers are elsewhere, re-checks `max_clock_skew + safety_delay`).
#[test]
fn without_a_write_horizon_a_one_bucket_lookback_misses_a_slow_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cfg = replay_like(false);
    store.ensure_tenant("t", 1).unwrap();
    let res = cfg.bucket_ms();
    let at = Timestamp::now();
    let mut w = worker_at(&*store, &cfg, at);
    let later = at.saturating_add(Duration::from_secs(3));
    step(&mut w, &*store, &cfg, later);
    assert!(
        w.offset() >= bucket_of(at, res),
        "read past the write's bucket"
    );
    late_visible_write(&*store, at, res);
    let r = step(
        &mut w,
        &*store,
        &cfg,
        later.saturating_add(Duration::from_millis(300)),
    );
    assert_eq!((r.events, r.stragglers), (0, 0));
}
