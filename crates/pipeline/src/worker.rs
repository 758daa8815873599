//! One shard's worker: read offset → scan due buckets → correlate → publish closed stories → commit.
//!
//! Open stories survive restarts because the correlator's state is committed with the offset, in one
//! atomic write (the checkpoint). After a crash the worker restores the last checkpoint and re-reads the
//! buckets after it: stories published since then are published again with the same ids and versions
//! (at least once), nothing is skipped.

use crate::PipelineConfig;
use metrics::{counter, gauge};
use std::collections::HashMap;
use std::time::Instant;
use storyline_correlate::Correlator;
use storyline_io::StorySink;
use storyline_model::{routing::Shard, Event, Story, Timestamp};
use storyline_store::{bucket_of, Bucket, BucketRange, Checkpoint, Lease, Store, StoredEvent};

/// How often a worker runs the retention pass on a shard it owns.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

pub struct ShardWorker {
    pub lease: Lease,
    correlator: Correlator,
    offset: Bucket,
    /// Write marks of read buckets within the lookback, as they were when read.
    marks: HashMap<Bucket, u64>,
    /// Wall time at which the largest event time last grew; drives the watermark while a shard is idle.
    wall_at_max: Timestamp,
    seen_max: Timestamp,
    last_commit: Instant,
    last_retention: Option<Instant>,
    uncommitted: bool,
    out: Vec<Story>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct CycleReport {
    /// Events read from the store (re-checked buckets included).
    pub events: u64,
    /// Events found in buckets that had already been read (late writes from skewed producers).
    pub stragglers: u64,
    pub published: u64,
    /// Whether the cycle read everything written so far (in drain mode: the shard is finished).
    pub caught_up: bool,
}

impl ShardWorker {
    /// Restores the shard's last checkpoint, or starts fresh.
    pub fn open(store: &dyn Store, cfg: &PipelineConfig, lease: Lease) -> anyhow::Result<Self> {
        let cp = store.load_checkpoint(&lease.tenant, &lease.group, lease.shard)?;
        let fresh = || Correlator::new(&lease.tenant, cfg.correlate.clone());
        let (correlator, offset, marks) = match cp {
            // An offset committed without state (an operator moving a group's offset) starts empty there.
            Some(cp) if cp.state.is_empty() => (fresh(), cp.offset, cp.marks.into_iter().collect()),
            Some(cp) => (
                Correlator::restore(&cp.state).map_err(|e| {
                    anyhow::anyhow!(
                        "shard {}: checkpoint state is unreadable ({e}); it was written by an incompatible version",
                        lease.shard
                    )
                })?,
                cp.offset,
                cp.marks.into_iter().collect(),
            ),
            None => (fresh(), Bucket::MIN, HashMap::new()),
        };
        Ok(Self {
            lease,
            correlator,
            offset,
            marks,
            wall_at_max: Timestamp::now(),
            seen_max: Timestamp::MIN,
            last_commit: Instant::now(),
            last_retention: None,
            uncommitted: false,
            out: Vec::new(),
        })
    }

    pub fn shard(&self) -> Shard {
        self.lease.shard
    }

    pub fn offset(&self) -> Bucket {
        self.offset
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
        let res = cfg.bucket_ms();
        let upto = if drain {
            bucket_of(now, res).saturating_add(res)
        } else {
            bucket_of(now.saturating_sub(cfg.safety_delay + cfg.bucket), res)
        };
        let (tenant, shard) = (self.lease.tenant.clone(), self.lease.shard);
        let mut report = CycleReport::default();
        let lookback_from = self.offset.saturating_sub(cfg.lookback_ms());
        // Marks first, scans second: a write that lands during the scan changes its mark after we read it,
        // so the next cycle re-checks that bucket.
        let marks_now = store.bucket_marks(
            &tenant,
            shard,
            BucketRange::new(lookback_from, upto.max(self.offset)),
        )?;
        for &(bucket, mark) in &marks_now {
            if bucket <= self.offset
                && self.offset != Bucket::MIN
                && self.marks.get(&bucket) != Some(&mark)
            {
                let before = self.correlator.stats().events;
                self.scan_range(
                    store,
                    cfg,
                    BucketRange::new(bucket - 1, bucket),
                    &mut report,
                )?;
                report.stragglers += self.correlator.stats().events - before;
            }
        }
        if upto > self.offset {
            self.scan_range(store, cfg, BucketRange::new(self.offset, upto), &mut report)?;
            self.offset = upto;
        }
        let floor = self.offset.saturating_sub(cfg.lookback_ms());
        self.marks = marks_now
            .into_iter()
            .filter(|(b, _)| *b > floor && *b <= self.offset)
            .collect();
        if report.stragglers > 0 {
            counter!("storyline_straggler_events_total", "tenant" => tenant.clone())
                .increment(report.stragglers);
        }

        let max = self.correlator.max_event_time();
        if max > self.seen_max {
            self.seen_max = max;
            self.wall_at_max = now;
        }
        // While a shard is idle its event time moves with the wall clock, so quiet shards still close stories.
        let watermark = if max == Timestamp::MIN {
            Timestamp::MIN
        } else {
            max.saturating_add(std::time::Duration::from_nanos(
                now.nanos_since(self.wall_at_max).max(0) as u64,
            ))
        };
        self.out.clear();
        self.correlator.advance(watermark, floor, &mut self.out);
        report.caught_up = drain;
        if drain {
            self.correlator.flush(&mut self.out);
        }
        if !self.out.is_empty() {
            sink.publish(&self.out)?;
            report.published = self.out.len() as u64;
            counter!("storyline_story_versions_published_total", "tenant" => tenant.clone())
                .increment(report.published);
        }
        self.uncommitted |= report.events > 0 || report.published > 0;
        // Committing serializes the whole correlation state, so it runs on an interval, not per publish:
        // stories published since the last commit are published again after a crash (same ids and
        // versions), which at-least-once delivery allows.
        if self.uncommitted && (drain || self.last_commit.elapsed() >= cfg.commit_interval) {
            self.commit(store)?;
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

    /// Deletes buckets that are older than the retention *and* read by every consumer group (minus the
    /// re-check window, which may still be re-scanned). Returns how many events went.
    pub fn apply_retention(
        &self,
        store: &dyn Store,
        cfg: &PipelineConfig,
        now: Timestamp,
    ) -> anyhow::Result<u64> {
        let (tenant, shard) = (&self.lease.tenant, self.lease.shard);
        let Some(slowest) = store
            .offsets(tenant, shard)?
            .into_iter()
            .map(|(_, o)| o)
            .min()
        else {
            return Ok(0);
        };
        let cut = slowest
            .saturating_sub(cfg.lookback_ms())
            .min(now.saturating_sub(cfg.retention).as_millis());
        let deleted = store.delete_before(tenant, shard, cut)?;
        if deleted > 0 {
            counter!("storyline_retention_deleted_events_total", "tenant" => tenant.clone())
                .increment(deleted);
            tracing::debug!(shard, deleted, cut, "retention");
        }
        Ok(deleted)
    }

    fn scan_range(
        &mut self,
        store: &dyn Store,
        cfg: &PipelineConfig,
        range: BucketRange,
        report: &mut CycleReport,
    ) -> anyhow::Result<()> {
        let mut resume = None;
        loop {
            let page: Vec<StoredEvent> = store.scan(
                &self.lease.tenant,
                self.lease.shard,
                range,
                resume,
                cfg.scan_batch,
            )?;
            let Some(last) = page.last() else { break };
            resume = Some((last.bucket, last.key));
            for stored in &page {
                match Event::decode(&stored.event) {
                    Ok(event) => self.correlator.ingest(&event, stored.key, stored.bucket),
                    Err(e) => {
                        // Written by this binary's ingest, so this means corruption or a format change:
                        // surface it loudly instead of skipping silently.
                        anyhow::bail!(
                            "shard {} bucket {}: stored event {:032x} cannot be decoded ({e}); the data dir was written by an incompatible version",
                            self.lease.shard,
                            stored.bucket,
                            stored.key.0
                        );
                    }
                }
            }
            report.events += page.len() as u64;
            if page.len() < cfg.scan_batch {
                break;
            }
        }
        Ok(())
    }

    pub fn commit(&mut self, store: &dyn Store) -> anyhow::Result<()> {
        let mut marks: Vec<_> = self.marks.iter().map(|(b, m)| (*b, *m)).collect();
        marks.sort_unstable();
        let cp = Checkpoint {
            shard: self.lease.shard,
            offset: self.offset,
            marks,
            state: self.correlator.snapshot(),
        };
        store.commit(&self.lease.tenant, &self.lease.group, &self.lease, &cp)?;
        self.last_commit = Instant::now();
        self.uncommitted = false;
        gauge!("storyline_checkpoint_bytes", "tenant" => self.lease.tenant.clone(), "shard" => self.lease.shard.to_string())
            .set(cp.state.len() as f64);
        Ok(())
    }

    fn export_gauges(&self, now: Timestamp) {
        let labels = [
            ("tenant", self.lease.tenant.clone()),
            ("shard", self.lease.shard.to_string()),
        ];
        gauge!("storyline_open_stories", &labels).set(self.correlator.open_stories() as f64);
        gauge!("storyline_correlation_state_bytes", &labels)
            .set(self.correlator.state_bytes() as f64);
        if self.offset != Bucket::MIN {
            let behind = (now.as_millis() - self.offset) as f64 / 1000.0;
            gauge!("storyline_read_offset_lag_seconds", &labels).set(behind);
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
