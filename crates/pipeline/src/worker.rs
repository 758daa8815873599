//! One correlation partition's worker: read offsets → scan due buckets of the partition's shards →
//! correlate → publish closed stories → commit.
//!
//! A partition is a set of shards (`shard % partitions == partition`) read by one correlator, so links
//! between any of their events are found whichever shard each event was routed to. With the default of one
//! partition per tenant, stories do not depend on the shard count at all; more partitions trade links
//! across partitions for parallel correlation (docs/correlation.md).
//!
//! Open stories survive restarts because the correlator's state is committed with the read offsets, in one
//! atomic write (the checkpoint). After a crash the worker restores the last checkpoint and re-reads the
//! buckets after it: stories published since then are published again with the same ids and versions
//! (at least once), nothing is skipped.

use crate::PipelineConfig;
use metrics::{counter, gauge, histogram};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Instant;
use storyline_correlate::keys::{links, Links};
use storyline_correlate::{Config as CorrelateConfig, Correlator};
use storyline_io::StorySink;
use storyline_model::{routing::Shard, Event, Fused, SensorView, Story, StoryId, Str, Timestamp};
use storyline_store::{bucket_of, Bucket, BucketRange, Checkpoint, Lease, Store, StoreError};

/// How often a worker runs the retention pass on the shards it owns.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// How often the correlation-state size gauge is recomputed (scrapes are seconds apart).
const STATE_GAUGE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Read position in one shard.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Cursor {
    shard: Shard,
    offset: Bucket,
    /// Write marks of read buckets within the lookback, as they were when read.
    marks: HashMap<Bucket, u64>,
}

/// What a partition commits, inside `Checkpoint::state`, after [`STATE_MAGIC`]. The correlator's state is
/// a small header plus keyed parts (`Correlator::checkpoint`): a store that keeps parts under keys of their
/// own gets only the parts changed since the previous commit; any other store gets all of them, inline.
#[derive(Deserialize)]
struct PartitionState {
    cursors: Vec<Cursor>,
    #[serde(with = "storyline_store::bytes")]
    correlator_header: Vec<u8>,
    /// Story versions the correlator counts as published and the sink may not have yet, as in
    /// [`PartitionStateV1::outbox`].
    outbox: Vec<OutboxStory>,
    /// Every part, when the store does not keep them apart (`None`: see `Store::checkpoint_parts`).
    inline_parts: Option<Vec<Part>>,
    /// (largest event time seen, wall time it was first seen): the idle watermark resumes where it was,
    /// so a restarted worker closes stories — and decides deferred links — at the same points as one
    /// that ran on.
    idle_clock: (Timestamp, Timestamp),
}

/// [`PartitionState`] as written, borrowing what it holds.
#[derive(Serialize)]
struct PartitionStateRef<'a> {
    cursors: &'a [Cursor],
    #[serde(with = "storyline_store::bytes")]
    correlator_header: &'a [u8],
    outbox: Vec<OutboxStoryRef<'a>>,
    inline_parts: Option<Vec<PartRef<'a>>>,
    idle_clock: (Timestamp, Timestamp),
}

#[derive(Deserialize)]
struct Part {
    #[serde(with = "storyline_store::bytes")]
    key: Vec<u8>,
    #[serde(with = "storyline_store::bytes")]
    value: Vec<u8>,
}

#[derive(Serialize)]
struct PartRef<'a> {
    #[serde(with = "storyline_store::bytes")]
    key: &'a [u8],
    #[serde(with = "storyline_store::bytes")]
    value: &'a [u8],
}

/// A [`Story`] in a compact, non-self-describing form: its JSON form (flattened and omitted fields)
/// cannot go through postcard, and JSON cost as much as the rest of the commit.
#[derive(Deserialize)]
struct OutboxStory(
    u128,
    u32,
    Str,
    Timestamp,
    Timestamp,
    u32,
    Vec<Str>,
    Vec<Str>,
    Option<u128>,
    Vec<SensorView>,
    Vec<Str>,
    Vec<Str>,
    Fused,
);

#[derive(Serialize)]
struct OutboxStoryRef<'a>(
    u128,
    u32,
    &'a Str,
    Timestamp,
    Timestamp,
    u32,
    &'a [Str],
    &'a [Str],
    Option<u128>,
    &'a [SensorView],
    &'a [Str],
    &'a [Str],
    &'a Fused,
);

impl<'a> OutboxStoryRef<'a> {
    fn new(story: &'a Story) -> Self {
        // Every field by name: a field added to `Story` fails here until the outbox carries it.
        let Story {
            story_id,
            version,
            tenant,
            first_seen,
            last_seen,
            event_count,
            event_ids,
            sensors,
            merged_into,
            provenance,
            cuts,
            related_story_ids,
            fused,
        } = story;
        Self(
            story_id.0,
            *version,
            tenant,
            *first_seen,
            *last_seen,
            *event_count,
            event_ids,
            sensors,
            merged_into.map(|id| id.0),
            provenance,
            cuts,
            related_story_ids,
            fused,
        )
    }
}

impl From<OutboxStory> for Story {
    fn from(o: OutboxStory) -> Story {
        let OutboxStory(
            story_id,
            version,
            tenant,
            first_seen,
            last_seen,
            event_count,
            event_ids,
            sensors,
            merged_into,
            provenance,
            cuts,
            related_story_ids,
            fused,
        ) = o;
        Story {
            story_id: StoryId(story_id),
            version,
            tenant,
            first_seen,
            last_seen,
            event_count,
            event_ids,
            sensors,
            merged_into: merged_into.map(StoryId),
            provenance,
            cuts,
            related_story_ids,
            fused: Box::new(fused),
        }
    }
}

/// Marks the [`PartitionState`] layout; older layouts are plain postcard and start with the cursor count.
const STATE_MAGIC: &[u8; 8] = b"SLPS\x002\x00\x00";

/// The layout with the whole correlator serialized as one value (read for compatibility).
#[derive(Deserialize)]
struct PartitionStateV1 {
    cursors: Vec<Cursor>,
    correlator: Vec<u8>,
    /// Story versions the correlator state counts as published, committed before they go to the sink
    /// (NDJSON of [`Story`]; the story's optional and flattened fields need a self-describing format).
    /// A worker that restores this state publishes them again first.
    outbox: Vec<u8>,
}

/// The layout before the outbox (read for compatibility).
#[derive(Deserialize)]
struct PartitionStateV0 {
    cursors: Vec<Cursor>,
    correlator: Vec<u8>,
}

fn decode_state_v1(bytes: &[u8]) -> Result<PartitionStateV1, postcard::Error> {
    postcard::from_bytes::<PartitionStateV1>(bytes).or_else(|e| {
        postcard::from_bytes::<PartitionStateV0>(bytes)
            .map(|v0| PartitionStateV1 {
                cursors: v0.cursors,
                correlator: v0.correlator,
                outbox: Vec::new(),
            })
            .map_err(|_| e)
    })
}

/// The shards of `partition`.
pub fn partition_shards(cfg: &PipelineConfig, partition: u16) -> Vec<Shard> {
    (0..cfg.shards)
        .filter(|s| s % cfg.partitions() == partition)
        .collect()
}

/// Events behind are counted up to this many per shard and cycle (the gauge then reads "at least").
const BACKLOG_COUNT_CAP: u64 = 1_000_000;
/// A cycle counts its backlog only when it finds more buckets due than this (a catch-up).
const BACKLOG_COUNT_FROM_BUCKETS: usize = 2;

pub struct PartitionWorker {
    /// The lease's `shard` field is the partition number (its lowest shard).
    pub lease: Lease,
    correlator: Correlator,
    cursors: Vec<Cursor>,
    /// Wall time at which the largest event time last grew; drives the watermark while idle.
    wall_at_max: Timestamp,
    seen_max: Timestamp,
    /// When the newest member of each story waiting in the outbox had arrived (the end of its insert-time
    /// bucket, ms), for the publish-latency metric. Not kept across restarts.
    arrivals: HashMap<StoryId, i64>,
    last_commit: Instant,
    last_retention: Option<Instant>,
    /// When the state-size gauge was last computed: it walks every index entry, and a replay's cycles
    /// (tens of milliseconds apart) spent ~2% of the correlator thread on it.
    last_state_gauge: Option<Instant>,
    /// When the lease was last renewed from inside a long cycle (the pool renews between cycles).
    last_renew: Instant,
    uncommitted: bool,
    /// Publish (and so commit) in the next cycle, without waiting for the commit interval.
    flush_now: bool,
    /// Story versions that became final and are not published yet: they go to the sink right after the
    /// next commit, which includes them (the outbox).
    out: Vec<Story>,
    /// The next commit must write every part of the correlator state, not just the changed ones: the
    /// first after opening (parts of an older state may be stored) and any after a failed commit (its
    /// changes may not have landed).
    full_next: bool,
    /// The deltas written since the last full write outweigh it: the next commit rewrites the state in
    /// full to bound the stored log, unless it is the last before the partition is let go (whoever opens
    /// it next writes in full anyway, and a replay's end would rewrite its whole state for nothing).
    log_outgrown: bool,
    parts_log: PartsLog,
    /// A commit of a catch-up cycle, written and published on a helper thread while the next cycle reads
    /// (which it starts, and waits for before it commits in turn).
    in_flight: Option<PendingCommit>,
    /// [`PipelineConfig::ephemeral`]: commits only publish.
    ephemeral: bool,
    /// Page buffers of the last cycle, kept for the next one if it read full pages (a catch-up): each
    /// cycle's reader thread started without any, and filling fresh buffers of megabytes was most of the
    /// page faults of a 1M-event replay's reader threads. A cycle that reads less lets them go, so an idle
    /// partition holds none.
    spare_pages: Vec<PageEvents>,
}

/// A serialized checkpoint, and the stories to publish once it is written.
struct PendingCommit {
    /// `None` in an ephemeral run: the stories are published without one.
    checkpoint: Option<Checkpoint>,
    parts: storyline_model::parts::Parts,
    full: bool,
    keyed: bool,
    lease: Lease,
    out: Vec<Story>,
}

/// What became of a [`PendingCommit`]: not written (nothing was published), or written and then
/// published (or not, when there was no sink to publish to).
enum CommitOutcome {
    NotWritten(anyhow::Error),
    Written {
        published: Option<anyhow::Result<()>>,
        write_ms: u64,
        publish_ms: u64,
    },
}

impl PendingCommit {
    fn run(&self, store: &dyn Store, sink: Option<&dyn StorySink>) -> CommitOutcome {
        let started = Instant::now();
        let (tenant, group) = (&self.lease.tenant, &self.lease.group);
        let written = match &self.checkpoint {
            None => Ok(()),
            Some(cp) if self.keyed => {
                store.commit_parts(tenant, group, &self.lease, cp, self.full, &self.parts)
            }
            Some(cp) => store.commit(tenant, group, &self.lease, cp),
        };
        if let Err(e) = written {
            return CommitOutcome::NotWritten(e.into());
        }
        let write_ms = started.elapsed().as_millis() as u64;
        let published = sink.map(|sink| match self.out.is_empty() {
            true => Ok(()),
            false => sink.publish(&self.out),
        });
        CommitOutcome::Written {
            published,
            write_ms,
            publish_ms: started.elapsed().as_millis() as u64 - write_ms,
        }
    }
}

/// Bytes of the last full write of the checkpoint parts and of the deltas written since. A store may keep
/// deltas as a log (the embedded store does) that only a full write truncates; deltas are written until
/// they add up to the last full write or [`PartsLog::MIN_DELTAS`], whichever is larger, so the stored
/// log stays within about twice the state and a small state is not rewritten every cycle.
#[derive(Debug, Default, Clone, Copy)]
struct PartsLog {
    full: usize,
    deltas: usize,
}

impl PartsLog {
    const MIN_DELTAS: usize = 16 << 20;

    /// Records a written checkpoint; returns whether the next one should be full.
    fn written(&mut self, full: bool, bytes: usize) -> bool {
        if full {
            *self = PartsLog {
                full: bytes,
                deltas: 0,
            };
        } else {
            self.deltas += bytes;
        }
        self.deltas > self.full.max(Self::MIN_DELTAS)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct CycleReport {
    /// Events read from the store (re-checked buckets included).
    pub events: u64,
    /// Events found in buckets that had already been read (late writes from skewed producers).
    pub stragglers: u64,
    pub published: u64,
    /// Whether the cycle read everything written so far (in drain mode: the partition is finished).
    pub caught_up: bool,
    /// More is due right away: the cycle stopped at `max_cycle_span`.
    pub more: bool,
}

impl PartitionWorker {
    /// Restores the partition's last checkpoint, or starts fresh.
    pub fn open(store: &dyn Store, cfg: &PipelineConfig, lease: Lease) -> anyhow::Result<Self> {
        let partition = lease.shard;
        let fresh_cursors = || {
            partition_shards(cfg, partition)
                .into_iter()
                .map(|shard| Cursor {
                    shard,
                    offset: Bucket::MIN,
                    marks: HashMap::new(),
                })
                .collect::<Vec<_>>()
        };
        let fresh = || Correlator::new(&lease.tenant, cfg.correlate.clone());
        let unreadable = |e: &dyn std::fmt::Display| {
            anyhow::anyhow!(
                "partition {partition}: checkpoint state is unreadable ({e}); it was written by an incompatible version"
            )
        };
        // A fresh or older-layout state starts the idle clock now.
        let mut idle_clock = (Timestamp::MIN, Timestamp::now());
        let (mut correlator, cursors, outbox) = match store.load_checkpoint(
            &lease.tenant,
            &lease.group,
            partition,
        )? {
            None => (fresh(), fresh_cursors(), Vec::new()),
            // An offset committed without state (an operator moving a group's offset) starts empty there.
            Some(cp) if cp.state.is_empty() => {
                let mut c = fresh_cursors();
                for cur in &mut c {
                    cur.offset = cp.offset;
                }
                (fresh(), c, Vec::new())
            }
            Some(cp) => {
                let (cursors, correlator, outbox) = match cp.state.strip_prefix(STATE_MAGIC) {
                    Some(bytes) => {
                        let st: PartitionState =
                            postcard::from_bytes(bytes).map_err(|e| unreadable(&e))?;
                        let parts = match st.inline_parts {
                            Some(parts) => parts.into_iter().map(|p| (p.key, p.value)).collect(),
                            None => {
                                store.checkpoint_parts(&lease.tenant, &lease.group, partition)?
                            }
                        };
                        let correlator = Correlator::restore_parts(
                            &st.correlator_header,
                            parts.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
                        )
                        .map_err(|e| unreadable(&e))?;
                        let outbox = st.outbox.into_iter().map(Story::from).collect();
                        idle_clock = st.idle_clock;
                        (st.cursors, correlator, outbox)
                    }
                    None => {
                        let st = decode_state_v1(&cp.state).map_err(|e| unreadable(&e))?;
                        let correlator =
                            Correlator::restore(&st.correlator).map_err(|e| unreadable(&e))?;
                        let outbox = st
                            .outbox
                            .split(|b| *b == b'\n')
                            .filter(|l| !l.is_empty())
                            .map(serde_json::from_slice::<Story>)
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| unreadable(&e))?;
                        (st.cursors, correlator, outbox)
                    }
                };
                let expected = partition_shards(cfg, partition);
                if cursors.iter().map(|c| c.shard).collect::<Vec<_>>() != expected {
                    anyhow::bail!(
                        "partition {partition}: the checkpoint covers shards {:?} but the config puts {:?} in it; \
                         `pipeline.partitions` cannot change while a consumer group has state (use a new `group`)",
                        cursors.iter().map(|c| c.shard).collect::<Vec<_>>(),
                        expected
                    );
                }
                (correlator, cursors, outbox)
            }
        };
        if cfg.ephemeral {
            correlator.stop_recording_changes();
        }
        correlator.publish_only_final(cfg.publish_only_final);
        Ok(Self {
            lease,
            correlator,
            cursors,
            seen_max: idle_clock.0,
            arrivals: HashMap::new(),
            wall_at_max: idle_clock.1,
            last_commit: Instant::now(),
            last_retention: None,
            last_state_gauge: None,
            last_renew: Instant::now(),
            uncommitted: false,
            // Stories committed as published by the previous owner that it may not have delivered.
            flush_now: !outbox.is_empty(),
            out: outbox,
            full_next: true,
            log_outgrown: false,
            parts_log: PartsLog::default(),
            in_flight: None,
            ephemeral: cfg.ephemeral,
            spare_pages: Vec::new(),
        })
    }

    pub fn partition(&self) -> u16 {
        self.lease.shard
    }

    /// The oldest read offset of the partition's shards.
    pub fn offset(&self) -> Bucket {
        self.cursors
            .iter()
            .map(|c| c.offset)
            .min()
            .unwrap_or(Bucket::MIN)
    }

    /// One pass. In `drain` mode every written bucket is due (no more writers) and, once caught up, every
    /// open story is flushed.
    pub fn cycle(
        &mut self,
        store: &dyn Store,
        sink: &dyn StorySink,
        cfg: &PipelineConfig,
        now: Timestamp,
        drain: bool,
    ) -> anyhow::Result<CycleReport> {
        let mut report = CycleReport::default();
        // The previous cycle's commit (a catch-up's) is written and published while this one reads, and
        // concluded before this one advances: its outcome decides what the next commit must hold.
        let in_flight = self.in_flight.take();
        let (read, committed) = std::thread::scope(|scope| {
            let writer = in_flight.map(|job| {
                // Named, as every helper thread, so a profile or `top -H` tells the work apart.
                std::thread::Builder::new()
                    .name("storyline-commit".into())
                    .spawn_scoped(scope, move || {
                        if let Some(nice) = cfg.helper_nice {
                            set_thread_nice(nice);
                        }
                        let outcome = job.run(store, Some(sink));
                        (job, outcome)
                    })
                    .expect("spawning the commit thread")
            });
            let read = self.read_due(store, cfg, now, drain, &mut report);
            (read, writer.map(|w| w.join()))
        });
        if let Some(joined) = committed {
            let (job, outcome) =
                joined.map_err(|_| anyhow::anyhow!("the commit thread panicked"))?;
            report.published += self.conclude(job, outcome, "in the background")?;
        }
        let more = read?;
        report.more = more;

        let t_read = Instant::now();
        self.keep_lease(store, cfg)?;
        let max = self.correlator.max_event_time();
        if max > self.seen_max {
            self.seen_max = max;
            self.wall_at_max = now;
        }
        // While a partition is idle its event time moves with the wall clock, so quiet partitions still
        // close stories.
        let watermark = if max == Timestamp::MIN {
            Timestamp::MIN
        } else {
            max.saturating_add(std::time::Duration::from_nanos(
                now.nanos_since(self.wall_at_max).max(0) as u64,
            ))
        };
        let floor = self.offset().saturating_sub(cfg.lookback_ms());
        if drain && self.out.is_empty() {
            // A drain's last cycles close and correct most stories at once: room for all of them up front
            // (capacity never written costs no pages), so neither `advance` nor the final flush grows the
            // outbox by copying it into fresh pages (~5% of the correlator thread of a 1M replay).
            self.out.reserve(self.correlator.versions_bound());
        }
        let before = self.out.len();
        self.correlator.advance(watermark, floor, &mut self.out);
        report.caught_up = drain && !more;
        if report.caught_up {
            if self.ephemeral {
                // Nothing will checkpoint this state, and a drained replay reads nothing more.
                self.correlator.flush_and_forget(&mut self.out);
            } else {
                self.correlator.flush(&mut self.out);
            }
        }
        let t_adv = Instant::now();
        let res = cfg.bucket_ms();
        for (id, _version, bucket) in self.correlator.take_arrivals() {
            let arrived = self.arrivals.entry(id).or_insert(i64::MIN);
            *arrived = (*arrived).max(bucket.saturating_add(res));
        }
        self.uncommitted |= report.events > 0 || self.out.len() > before;
        // Committing serializes the whole correlation state, so it runs on an interval, not per cycle.
        // Stories are published right after the commit that includes them (the outbox): the committed
        // state always knows every version that went out, so whoever resumes from it (this process after
        // a crash, another after a takeover) carries on from what was published, never from an older
        // state that would publish different versions (a story merged away on a re-run would never say
        // so). A crash between commit and publish publishes the outbox again (same ids and versions):
        // at least once. The cost: a story waits up to `commit_interval` for its commit.
        if (self.uncommitted || self.flush_now)
            && (report.caught_up
                || self.flush_now
                || self.last_commit.elapsed() >= cfg.commit_interval)
        {
            let job = self.prepare_commit(store, false);
            tracing::debug!(
                partition = self.lease.shard,
                events = report.events,
                advance_ms = (t_adv - t_read).as_millis() as u64,
                serialize_ms = t_adv.elapsed().as_millis() as u64,
                "checkpoint serialized"
            );
            if more || ((drain || self.ephemeral) && !report.caught_up) {
                // The next cycle follows at once (more is due, or a drain reads until it is caught up), or
                // nobody waits for this one (an ephemeral replay, until its end): write and publish while
                // the next cycle reads.
                self.in_flight = Some(job);
            } else {
                let outcome = job.run(store, Some(sink));
                report.published += self.conclude(job, outcome, "in the cycle")?;
            }
        }
        self.export_gauges(now);
        if self
            .last_retention
            .is_none_or(|t| t.elapsed() >= RETENTION_EVERY)
        {
            self.last_retention = Some(Instant::now());
            self.apply_retention(store, cfg, now)?;
        }
        Ok(report)
    }

    /// Reads what is due in every shard of the partition, at most `max_cycle_span` of insert time from
    /// the oldest unread bucket on; returns whether more is due right away. Capping a catch-up's cycles
    /// publishes its stories as it goes and lets each commit overlap the next cycle's reading, instead of
    /// one cycle reading everything and committing a state of millions of parts at the end.
    fn read_due(
        &mut self,
        store: &dyn Store,
        cfg: &PipelineConfig,
        now: Timestamp,
        drain: bool,
        report: &mut CycleReport,
    ) -> anyhow::Result<bool> {
        let res = cfg.bucket_ms();
        let due = if drain {
            bucket_of(now, res).saturating_add(res)
        } else {
            let waited = bucket_of(now.saturating_sub(cfg.safety_delay + cfg.bucket), res);
            match &cfg.write_horizon {
                // The last bucket that ends at or before every write still in flight.
                Some(h) => waited.min(bucket_of(h.0.stable(now), res).saturating_sub(res)),
                None => waited,
            }
        };
        let offset = self.offset();
        if offset != Bucket::MIN && due > offset {
            // How far behind this cycle starts: during a long catch-up, the end-of-cycle gauge would
            // still show the previous, small lag.
            gauge!("storyline_read_offset_lag_seconds", "tenant" => self.lease.tenant.clone(), "partition" => self.lease.shard.to_string())
                .set((now.as_millis() - offset) as f64 / 1000.0);
        }
        // Marks first, scans second: a write that lands during a scan changes its mark after we read it,
        // so the next cycle re-checks that bucket.
        let marks = self
            .cursors
            .iter()
            .map(|c| {
                let from = c.offset.saturating_sub(cfg.lookback_ms());
                store.bucket_marks(
                    &self.lease.tenant,
                    c.shard,
                    BucketRange::new(from, due.max(c.offset)),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let first_unread = self
            .cursors
            .iter()
            .zip(&marks)
            .filter_map(|(c, m)| m.iter().map(|(b, _)| *b).find(|b| *b > c.offset))
            .min();
        let span = (cfg.max_cycle_span.as_millis() as i64).max(res);
        let upto = match first_unread {
            Some(first) => due.min(first.saturating_add(span - res)),
            None => due,
        };
        let more = self
            .cursors
            .iter()
            .zip(&marks)
            .any(|(c, m)| m.iter().any(|(b, _)| *b > c.offset && *b > upto));
        let mut jobs = Vec::new();
        let mut counted = Vec::with_capacity(marks.len());
        for (i, marks_now) in marks.iter().enumerate() {
            counted.push(self.plan_shard(i, store, upto, marks_now, &mut jobs)?);
        }
        // All ranges of the cycle through one reader, so it decodes the next shard's first page while the
        // correlator works on this shard's last: a reader per range left the correlator waiting at every
        // range's start (1.5 s of a 1M-event replay).
        let (new_events, completed, read) = self.read_ranges(store, cfg, &jobs, report);
        // A shard's cursor moves only once all of its ranges were read (jobs are in shard order).
        for (i, marks_now) in marks.into_iter().enumerate() {
            let shard_jobs = || {
                jobs.iter()
                    .zip(&new_events)
                    .enumerate()
                    .filter(|(_, (j, _))| j.cursor == i)
            };
            if shard_jobs().any(|(n, _)| n >= completed) {
                break;
            }
            let mut read_new = 0;
            for (_, (job, added)) in shard_jobs() {
                if job.straggler {
                    report.stragglers += added;
                } else {
                    read_new += added;
                }
            }
            let left = counted[i].map(|n| n.saturating_sub(read_new));
            self.finish_shard(i, cfg, upto, marks_now, left);
        }
        read?;
        if report.stragglers > 0 {
            counter!("storyline_straggler_events_total", "tenant" => self.lease.tenant.clone())
                .increment(report.stragglers);
        }
        Ok(more)
    }

    /// Plans one shard's part of the cycle: its recently read buckets whose write marks changed (late
    /// writes) are read again, then its buckets up to `upto`. `marks_now` are the shard's write marks from
    /// its lookback on, read before any scan. Returns the shard's backlog in events when it was counted.
    fn plan_shard(
        &self,
        i: usize,
        store: &dyn Store,
        upto: Bucket,
        marks_now: &[(Bucket, u64)],
        jobs: &mut Vec<ReadJob>,
    ) -> anyhow::Result<Option<u64>> {
        let (shard, offset) = (self.cursors[i].shard, self.cursors[i].offset);
        // Backlog as this cycle finds it: what a long catch-up is working through. A cycle that finds
        // only the bucket or two that came due since the last one reads them at once, so it is not counted
        // (that would read their keys twice); the gauges drop to zero once the shard is read.
        let behind = marks_now.iter().filter(|(b, _)| *b > offset).count();
        let mut counted = None;
        if behind > BACKLOG_COUNT_FROM_BUCKETS {
            let last = marks_now.last().map_or(upto, |(b, _)| *b);
            counted = store.bucket_events(
                &self.lease.tenant,
                shard,
                BucketRange::new(offset, last.max(upto)),
                BACKLOG_COUNT_CAP,
            )?;
            self.backlog_gauges(shard, behind, counted);
        }
        for &(bucket, mark) in marks_now {
            if bucket <= offset
                && offset != Bucket::MIN
                && self.cursors[i].marks.get(&bucket) != Some(&mark)
            {
                jobs.push(ReadJob {
                    cursor: i,
                    shard,
                    range: BucketRange::new(bucket - 1, bucket),
                    straggler: true,
                });
            }
        }
        if upto > offset {
            jobs.push(ReadJob {
                cursor: i,
                shard,
                range: BucketRange::new(offset, upto),
                straggler: false,
            });
        }
        Ok(counted)
    }

    /// Moves a shard's cursor past what the cycle read of it. `counted`: its backlog in events still
    /// unread, when the cycle counted it.
    fn finish_shard(
        &mut self,
        i: usize,
        cfg: &PipelineConfig,
        upto: Bucket,
        marks_now: Vec<(Bucket, u64)>,
        counted: Option<u64>,
    ) {
        let (shard, offset) = (self.cursors[i].shard, self.cursors[i].offset);
        let new_offset = offset.max(upto);
        let left = marks_now.iter().filter(|(b, _)| *b > new_offset).count();
        self.backlog_gauges(shard, left, if left == 0 { Some(0) } else { counted });
        let floor = new_offset.saturating_sub(cfg.lookback_ms());
        let cur = &mut self.cursors[i];
        cur.offset = new_offset;
        cur.marks = marks_now
            .into_iter()
            .filter(|(b, _)| *b > floor && *b <= new_offset)
            .collect();
    }

    fn backlog_gauges(&self, shard: Shard, buckets: usize, events: Option<u64>) {
        let labels = [
            ("tenant", self.lease.tenant.clone()),
            ("shard", shard.to_string()),
        ];
        gauge!("storyline_backlog_buckets", &labels).set(buckets as f64);
        if let Some(n) = events {
            gauge!("storyline_backlog_events", &labels).set(n as f64);
        }
    }

    /// Reads the ranges in order, each in key order, and feeds the correlator. A reader thread scans and
    /// decodes the next page while this one correlates: the correlator is the partition's critical path,
    /// and decoding is a fifth of its work. One reader, pages in order: the correlator sees the same
    /// sequence as with no reader. Returns the events each job added (duplicates of events held are not
    /// counted), how many jobs were read to their end, and the first error.
    fn read_ranges(
        &mut self,
        store: &dyn Store,
        cfg: &PipelineConfig,
        jobs: &[ReadJob],
        report: &mut CycleReport,
    ) -> (Vec<u64>, usize, anyhow::Result<()>) {
        let mut new_events = vec![0u64; jobs.len()];
        let mut completed = 0;
        if jobs.is_empty() {
            return (new_events, completed, Ok(()));
        }
        let tenant = self.lease.tenant.clone();
        let limit = cfg.scan_batch.max(1);
        let links_cfg = self.correlator.config().clone();
        let kept = std::mem::take(&mut self.spare_pages);
        let mut read_full_page = false;
        let result = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, anyhow::Result<Page>)>(2);
            // Emptied pages go back to the reader: a page of decoded events is megabytes, and a fresh one
            // for every page is as many freshly faulted pages.
            let (spare_tx, spare_rx) = std::sync::mpsc::channel::<PageEvents>();
            for page in kept {
                let _ = spare_tx.send(page);
            }
            let reader = PageReader {
                store,
                tenant: &tenant,
                limit,
                links_cfg: &links_cfg,
            };
            let reading = std::thread::Builder::new().name("storyline-read".into());
            let reader_thread = reading
                .spawn_scoped(scope, move || {
                    if let Some(nice) = cfg.helper_nice {
                        set_thread_nice(nice);
                    }
                    // The correlator waits for the cycle's first page: a short one lets it start sooner
                    // (its waits for first pages were ~3% of a 1M-event replay).
                    let mut limit = reader.limit.min(FIRST_PAGE);
                    for (n, job) in jobs.iter().enumerate() {
                        let mut resume = None;
                        loop {
                            // Emptied here: dropping a page's events is work the correlator thread need not do.
                            let mut buf = spare_rx.try_recv().unwrap_or_default();
                            buf.clear();
                            // Sized for the page up front (only address space until written): grown by
                            // doubling, a page of decoded events was copied ~10 times (~1% of a replay's
                            // instructions).
                            buf.reserve(limit);
                            let page = reader.read(job.shard, job.range, resume, buf, limit);
                            limit = reader.limit;
                            let (failed, more, next) = match &page {
                                Ok(p) => (false, p.full, p.last),
                                Err(_) => (true, false, None),
                            };
                            // A closed channel means the consumer stopped (an error): nothing more to read.
                            if tx.send((n, page)).is_err() || failed {
                                return spare_rx;
                            }
                            if !more {
                                break;
                            }
                            resume = next;
                        }
                    }
                    spare_rx
                })
                .expect("spawning the reader thread");
            for (n, page) in rx {
                let page = page?;
                let before = self.correlator.stats().events;
                self.correlator
                    .ingest_batch(&page.events, storyline_correlate::WARM_AHEAD);
                new_events[n] += self.correlator.stats().events - before;
                report.events += page.events.len() as u64;
                if page.full {
                    read_full_page = true;
                    self.keep_lease(store, cfg)?;
                } else {
                    // A job's last page: it and every job before it were read to their end.
                    completed = n + 1;
                }
                // The reader may be done: its receiver still holds what is sent.
                let _ = spare_tx.send(page.events);
            }
            // The pages in flight: at most the channel's two, the one being read and the one just used.
            const KEPT_PAGES: usize = 4;
            if read_full_page {
                if let Ok(spare) = reader_thread.join() {
                    self.spare_pages.extend(spare.try_iter().take(KEPT_PAGES));
                }
            }
            Ok(())
        });
        (new_events, completed, result)
    }

    /// Renews the lease during a long catch-up scan: a cycle that outlived the lease would let another
    /// worker take the partition and both would publish the same stories.
    pub fn keep_lease(&mut self, store: &dyn Store, cfg: &PipelineConfig) -> anyhow::Result<()> {
        if self.last_renew.elapsed() < cfg.lease_ttl / 3 {
            return Ok(());
        }
        let ttl = cfg.lease_ttl.as_millis() as i64;
        match store.renew_lease(&self.lease, ttl, Timestamp::now().as_millis())? {
            Some(l) => {
                self.lease = l;
                self.last_renew = Instant::now();
                Ok(())
            }
            None => Err(storyline_store::StoreError::LeaseLost {
                shard: self.lease.shard,
                owner: self.lease.owner.clone(),
                epoch: self.lease.epoch,
            }
            .into()),
        }
    }

    pub fn note_renewed(&mut self, lease: Lease) {
        self.lease = lease;
        self.last_renew = Instant::now();
    }

    /// Records a commit's outcome. Written: the state is what the next commit builds on, and its stories
    /// count as published (their publication's error, if any, is returned: the caller drops the state, and
    /// whoever resumes publishes them again from the checkpoint). Not written: its stories wait for the next
    /// commit, which must write every part. Returns how many versions went out.
    fn conclude(
        &mut self,
        job: PendingCommit,
        outcome: CommitOutcome,
        how: &str,
    ) -> anyhow::Result<u64> {
        let PendingCommit {
            checkpoint,
            parts,
            full,
            keyed,
            out,
            ..
        } = job;
        let (published, write_ms, publish_ms) = match outcome {
            CommitOutcome::NotWritten(e) => {
                // The correlator counts the changes as written: if they were not, only a full write is
                // right.
                self.full_next = true;
                self.uncommitted = true;
                self.requeue(out);
                return Err(e);
            }
            CommitOutcome::Written {
                published,
                write_ms,
                publish_ms,
            } => (published, write_ms, publish_ms),
        };
        self.full_next = false;
        self.log_outgrown = self.parts_log.written(full, parts.as_bytes().len());
        self.last_commit = Instant::now();
        self.flush_now = false;
        let written = checkpoint.as_ref().map_or(0, |c| c.state.len())
            + if keyed { parts.as_bytes().len() } else { 0 };
        gauge!("storyline_checkpoint_bytes", "tenant" => self.lease.tenant.clone(), "partition" => self.lease.shard.to_string())
            .set(written as f64);
        tracing::debug!(
            partition = self.lease.shard,
            parts = parts.len(),
            published = out.len(),
            write_ms,
            publish_ms,
            "checkpoint written {how}"
        );
        let Some(published) = published else {
            // No sink: the stories stay in the outbox, for the next commit and publication.
            self.requeue(out);
            return Ok(0);
        };
        published?;
        if out.is_empty() {
            return Ok(0);
        }
        let n = out.len() as u64;
        counter!("storyline_story_versions_published_total", "tenant" => self.lease.tenant.clone())
            .increment(n);
        // Publish latency: from the arrival of a story's last event to its publication (includes the gap
        // the engine waits to know a session is over). Event-time latency: from its last event's own time
        // (adds the sensor's delay and clock skew).
        let now = Timestamp::now();
        let tenant = self.lease.tenant.clone();
        let publish =
            histogram!("storyline_story_publish_latency_seconds", "tenant" => tenant.clone());
        let event_time =
            histogram!("storyline_story_event_time_latency_seconds", "tenant" => tenant);
        for s in out.iter().filter(|s| !s.event_ids.is_empty()) {
            event_time.record(now.nanos_since(s.last_seen).max(0) as f64 / 1e9);
            if let Some(arrived_ms) = self.arrivals.remove(&s.story_id) {
                publish.record((now.as_millis() - arrived_ms).max(0) as f64 / 1000.0);
            }
        }
        if self.arrivals.len() > 100_000 {
            // Only a metric: never let it hold memory if publications keep failing.
            self.arrivals.clear();
        }
        // The stored checkpoint still holds them: the next commit empties it (an ephemeral run stored none).
        self.uncommitted |= !self.ephemeral;
        free_published(out);
        Ok(n)
    }

    /// Puts a commit's stories back in front of the outbox (they are older than any produced since).
    fn requeue(&mut self, mut older: Vec<Story>) {
        older.append(&mut self.out);
        self.out = older;
    }

    /// Commits and publishes what is waiting (before the partition is released or the process stops).
    pub fn finish(&mut self, store: &dyn Store, sink: &dyn StorySink) -> anyhow::Result<()> {
        if let Some(job) = self.in_flight.take() {
            let outcome = job.run(store, Some(sink));
            self.conclude(job, outcome, "at finish")?;
        }
        let job = self.prepare_commit(store, true);
        let outcome = job.run(store, Some(sink));
        self.conclude(job, outcome, "at finish")?;
        Ok(())
    }

    /// Commits the read offsets, the correlator state and the outbox (story versions not yet published),
    /// without publishing: the outbox stays for the next commit and publication.
    pub fn commit(&mut self, store: &dyn Store) -> anyhow::Result<()> {
        if let Some(job) = self.in_flight.take() {
            // Folded into this commit instead: its changes were never written, so this one writes all.
            self.full_next = true;
            self.requeue(job.out);
        }
        let job = self.prepare_commit(store, false);
        let outcome = job.run(store, None);
        self.conclude(job, outcome, "without publishing")?;
        Ok(())
    }

    /// Serializes the read offsets, the correlator state (the parts changed since the last commit, or all)
    /// and the outbox, which it takes. `last`: the partition is let go after it.
    fn prepare_commit(&mut self, store: &dyn Store, last: bool) -> PendingCommit {
        let superseded = newest_versions_only(&mut self.out);
        if superseded > 0 {
            counter!("storyline_story_versions_superseded_total", "tenant" => self.lease.tenant.clone())
                .increment(superseded as u64);
        }
        if self.ephemeral {
            self.uncommitted = false;
            return PendingCommit {
                checkpoint: None,
                parts: Default::default(),
                full: false,
                keyed: false,
                lease: self.lease.clone(),
                out: std::mem::take(&mut self.out),
            };
        }
        let keyed = store.keyed_checkpoint_parts();
        let full = self.full_next || (self.log_outgrown && !last) || !keyed;
        let delta = self.correlator.checkpoint(full);
        let inline_parts = (!keyed).then(|| {
            delta
                .parts
                .iter()
                .filter_map(|(key, value)| Some(PartRef { key, value: value? }))
                .collect()
        });
        let state = PartitionStateRef {
            cursors: &self.cursors,
            correlator_header: &delta.header,
            outbox: self.out.iter().map(OutboxStoryRef::new).collect(),
            inline_parts,
            idle_clock: (self.seen_max, self.wall_at_max),
        };
        // Reserved up front (untouched capacity costs no pages): growing by doubling through a catch-up
        // outbox of 100k+ stories copied it ~20 times.
        let mut encoded = Vec::with_capacity(
            STATE_MAGIC.len()
                + delta.header.len()
                + self.out.len() * 1024
                + if keyed {
                    0
                } else {
                    delta.parts.as_bytes().len()
                }
                + (64 << 10),
        );
        encoded.extend_from_slice(STATE_MAGIC);
        storyline_model::parts::append_postcard(&state, &mut encoded)
            .expect("partition state serializes");
        // Counted as committed from here: what changes next belongs to the next commit, and if this one is
        // not written, `conclude` brings its stories back and asks for a full write.
        self.uncommitted = false;
        PendingCommit {
            checkpoint: Some(Checkpoint {
                shard: self.lease.shard,
                offset: self.offset(),
                marks: Vec::new(),
                state: encoded,
            }),
            parts: delta.parts,
            full: delta.full,
            keyed,
            lease: self.lease.clone(),
            out: std::mem::take(&mut self.out),
        }
    }

    /// Deletes, in this partition's shards, buckets that are older than the retention *and* read by every
    /// consumer group (minus the re-check window, which may still be re-scanned). Every group's progress
    /// is taken as the oldest offset it committed for any partition — conservative, whatever partitioning
    /// each group uses. Returns how many events went.
    pub fn apply_retention(
        &self,
        store: &dyn Store,
        cfg: &PipelineConfig,
        now: Timestamp,
    ) -> anyhow::Result<u64> {
        let tenant = &self.lease.tenant;
        let mut slowest = Bucket::MAX;
        for shard in 0..cfg.shards {
            for (_, offset) in store.offsets(tenant, shard)? {
                slowest = slowest.min(offset);
            }
        }
        if slowest == Bucket::MAX || slowest == Bucket::MIN {
            return Ok(0);
        }
        let cut = slowest
            .saturating_sub(cfg.lookback_ms())
            .min(now.saturating_sub(cfg.retention).as_millis());
        let mut deleted = 0;
        for c in &self.cursors {
            deleted += store.delete_before(tenant, c.shard, cut)?;
        }
        if deleted > 0 {
            counter!("storyline_retention_deleted_events_total", "tenant" => tenant.clone())
                .increment(deleted);
            tracing::debug!(partition = self.lease.shard, deleted, cut, "retention");
        }
        Ok(deleted)
    }

    fn export_gauges(&mut self, now: Timestamp) {
        let labels = [
            ("tenant", self.lease.tenant.clone()),
            ("partition", self.lease.shard.to_string()),
        ];
        gauge!("storyline_open_stories", &labels).set(self.correlator.open_stories() as f64);
        gauge!("storyline_deferred_dns_links", &labels)
            .set(self.correlator.deferred_links() as f64);
        // The engine's own counts travel in the checkpoint, so they survive restarts and takeovers.
        let st = self.correlator.stats();
        for (name, value) in [
            ("storyline_correlated_events_total", st.events),
            ("storyline_duplicate_events_total", st.duplicates),
            ("storyline_late_events_reopened_total", st.reopened),
            ("storyline_too_late_events_total", st.too_late),
            ("storyline_future_capped_events_total", st.future_capped),
            ("storyline_stories_merged_total", st.merged),
            ("storyline_cut_links_total", st.cut_links),
        ] {
            counter!(name, &labels).absolute(value);
        }
        if self
            .last_state_gauge
            .is_none_or(|t| t.elapsed() >= STATE_GAUGE_EVERY)
        {
            self.last_state_gauge = Some(Instant::now());
            gauge!("storyline_correlation_state_bytes", &labels)
                .set(self.correlator.state_bytes() as f64);
        }
        let offset = self.offset();
        if offset != Bucket::MIN {
            let behind = (now.as_millis() - offset) as f64 / 1000.0;
            gauge!("storyline_read_offset_lag_seconds", &labels).set(behind);
        }
        for (sensor, reference, secs, _) in self.correlator.clock_offsets() {
            gauge!("storyline_sensor_clock_offset_seconds", "tenant" => self.lease.tenant.clone(),
                "sensor" => sensor.to_string(), "reference" => reference.to_string())
            .set(secs);
        }
        let wm = self.correlator.watermark();
        if wm != Timestamp::MIN {
            gauge!("storyline_watermark_lag_seconds", &labels)
                .set(now.nanos_since(wm) as f64 / 1e9);
        }
    }

    pub fn correlator(&self) -> &Correlator {
        &self.correlator
    }
}

/// Frees a published outbox. Freeing a replay's final flush (~200k story versions, allocation by
/// allocation) took ~150 ms of the correlator's thread after its last publication; a large outbox is
/// freed on a thread of its own instead (in a replay, while the process ends).
fn free_published(out: Vec<Story>) {
    const ON_ITS_OWN_FROM: usize = 10_000;
    if out.len() >= ON_ITS_OWN_FROM {
        // If no thread can be started, the closure and the outbox are dropped here, as before.
        let _ = std::thread::Builder::new()
            .name("storyline-free".into())
            .spawn(move || drop(out));
    }
}

/// Drops the story versions that a newer version of the same story, waiting in the same outbox, replaces;
/// returns how many went. Receivers keep only a story's newest version, and a catch-up would otherwise
/// commit and publish, one right after the other, a story's version with its sensors' own times and its
/// correction by the final clock estimate (most stories of a long replay), or a version and its merge.
fn newest_versions_only(out: &mut Vec<Story>) -> usize {
    // The engine's integer hasher: a catch-up's commit holds hundreds of thousands of versions, and
    // SipHash made this a few percent of the correlator thread.
    let mut newest: storyline_correlate::fasthash::Map<StoryId, u32> =
        storyline_correlate::fasthash::Map::with_capacity_and_hasher(out.len(), Default::default());
    for s in out.iter() {
        let v = newest.entry(s.story_id).or_insert(s.version);
        *v = (*v).max(s.version);
    }
    if newest.len() == out.len() {
        return 0;
    }
    let before = out.len();
    // Taking the entry keeps one copy even of a version listed twice (an outbox restored and re-added).
    out.retain(|s| {
        newest.get(&s.story_id) == Some(&s.version) && newest.remove(&s.story_id).is_some()
    });
    before - out.len()
}

/// Decoded events with their links (computed by the reader thread, off the correlator's path).
type PageEvents = Vec<(Event, storyline_model::EventKey, Bucket, Links)>;

/// One scanned page, decoded.
struct Page {
    events: PageEvents,
    /// The page was full: there may be more after `last`.
    full: bool,
    last: Option<(Bucket, storyline_model::EventKey)>,
}

/// One range a cycle reads: a shard's recently read bucket whose write mark changed (a late write), or
/// its new buckets.
struct ReadJob {
    /// The shard's index in the partition's cursors.
    cursor: usize,
    shard: Shard,
    range: BucketRange,
    straggler: bool,
}

/// Sets the calling thread's nice value (a replay's threads: see [`PipelineConfig::helper_nice`]).
/// Unprivileged: raising a nice value needs no capability, and a failure leaves the priority as it was
/// (it only tunes speed).
pub fn set_thread_nice(nice: i32) {
    // SAFETY: two syscalls on the calling thread, no memory passed.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice);
    }
}

/// Moves the calling thread to the `SCHED_IDLE` policy: it runs only when no thread of normal priority
/// wants its core, and any such thread waking up preempts it at once (a nice value only shares the core
/// by weight, and a waking thread may wait out the running one's slice). Unprivileged; returns whether
/// it took (it only tunes speed).
pub fn set_thread_idle_policy() -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: one syscall on the calling thread (pid 0) with a valid parameter block.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 }
}

/// Events in a cycle's first page (later pages hold `scan_batch`).
const FIRST_PAGE: usize = 512;

/// What a reader thread scans with: the store, in pages of `limit` events (the first of a cycle shorter).
struct PageReader<'a> {
    store: &'a dyn Store,
    tenant: &'a str,
    limit: usize,
    links_cfg: &'a CorrelateConfig,
}

impl PageReader<'_> {
    /// The page of at most `limit` events of `shard`'s `range` after `resume`, decoded into `events`
    /// (empty: a recycled buffer).
    fn read(
        &self,
        shard: Shard,
        range: BucketRange,
        resume: Option<(Bucket, storyline_model::EventKey)>,
        mut events: PageEvents,
        limit: usize,
    ) -> anyhow::Result<Page> {
        let mut last = None;
        let read = self.store.scan_each(
            self.tenant,
            shard,
            range,
            resume,
            limit,
            &mut |bucket, key, bytes| {
                last = Some((bucket, key));
                match Event::decode(bytes) {
                    Ok(event) => {
                        let links = links(&event, self.links_cfg);
                        events.push((event, key, bucket, links));
                        Ok(())
                    }
                    // Written by this binary's ingest, so this means corruption or a format change:
                    // surface it loudly instead of skipping silently.
                    // (`StoreError::Corrupt` says "corrupt or from an incompatible version".)
                    Err(e) => Err(StoreError::Corrupt(format!(
                        "shard {shard} bucket {bucket}: stored event {:032x} cannot be decoded ({e})",
                        key.0
                    ))),
                }
            },
        )?;
        let full = read >= limit;
        Ok(Page { events, full, last })
    }
}

#[cfg(test)]
mod tests {
    use super::{newest_versions_only, set_thread_idle_policy, PartsLog};
    use storyline_model::{Story, StoryId};

    /// The policy is the calling thread's only: the process's other threads keep theirs.
    #[test]
    fn the_idle_policy_applies_to_the_calling_thread_when_it_takes() {
        // SAFETY: reads the calling thread's policy.
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let before = policy();
        let (took, after) = std::thread::spawn(move || (set_thread_idle_policy(), policy()))
            .join()
            .unwrap();
        if took {
            assert_eq!(after, libc::SCHED_IDLE);
        } else {
            assert_eq!(after, before, "a refused change leaves the policy");
        }
        assert_eq!(policy(), before);
    }

    #[test]
    fn only_the_newest_version_of_each_story_stays_in_the_outbox() {
        let v = |id: u128, version: u32| Story {
            story_id: StoryId(id),
            version,
            ..Story::default()
        };
        let mut out = vec![v(1, 2), v(2, 1), v(1, 3), v(3, 5), v(2, 1), v(1, u32::MAX)];
        assert_eq!(newest_versions_only(&mut out), 3);
        let left: Vec<_> = out.iter().map(|s| (s.story_id.0, s.version)).collect();
        assert_eq!(left, vec![(2, 1), (3, 5), (1, u32::MAX)], "order kept");
        assert_eq!(newest_versions_only(&mut out), 0);
    }

    #[test]
    fn deltas_are_written_until_they_outweigh_the_last_full_write() {
        let big = PartsLog::MIN_DELTAS * 2;
        let mut log = PartsLog::default();
        assert!(!log.written(true, big), "right after a full write");
        assert!(!log.written(false, big / 2));
        assert!(!log.written(false, big / 2), "equal is not more");
        assert!(log.written(false, 1), "the deltas now outweigh the state");
        assert!(!log.written(true, big), "a full write starts over");
    }

    #[test]
    fn a_small_state_is_not_rewritten_every_cycle() {
        let mut log = PartsLog::default();
        assert!(!log.written(true, 10));
        let cycles = (0..100_000)
            .take_while(|_| !log.written(false, 1000))
            .count();
        assert_eq!(cycles, PartsLog::MIN_DELTAS / 1000);
    }
}
