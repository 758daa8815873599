use serde::{Deserialize, Serialize};
use std::time::Duration;
use storyline_correlate::humantime_serde_compat as hd;

/// How the pipeline reads, waits and commits. Every field has a default; see docs/design.md for the why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Shards per tenant: how stored events are partitioned (by flow). Fixed once a tenant has data.
    pub shards: u16,
    /// Correlation partitions: each is one correlator reading `shards / partitions` shards, owned by one
    /// worker through a lease. 1 (default): every link is found whatever shard its events landed on. More
    /// partitions correlate in parallel but miss links between events of different partitions (NAT views,
    /// DNS → connection); see docs/correlation.md. Fixed per consumer group once it has state.
    pub partitions: u16,
    /// Insert-time bucket resolution.
    #[serde(with = "hd")]
    pub bucket: Duration,
    /// A bucket is read only this long after it closed, so writes in flight have landed.
    #[serde(with = "hd")]
    pub safety_delay: Duration,
    /// How far behind a producer's clock may be. Buckets this recent are re-checked after reading, and a
    /// write that landed in one after it was read is still processed (once).
    #[serde(with = "hd")]
    pub max_clock_skew: Duration,
    /// Lease time-to-live: a dead worker's shards move after this long.
    #[serde(with = "hd")]
    pub lease_ttl: Duration,
    /// How often a worker commits its offset and state when nothing forces it.
    #[serde(with = "hd")]
    pub commit_interval: Duration,
    /// Most insert time one cycle reads, from the oldest unread bucket on. A worker catching up reads in
    /// cycles this long, publishing as it goes, and writes each cycle's checkpoint while it reads the next.
    #[serde(with = "hd")]
    pub max_cycle_span: Duration,
    /// Sleep between cycles when a worker found nothing to do.
    #[serde(with = "hd")]
    pub poll_interval: Duration,
    /// Events per scan page.
    pub scan_batch: usize,
    /// Stored events older than this, and read by every consumer group, are deleted.
    #[serde(with = "hd")]
    pub retention: Duration,
    /// Consumer group name: each group reads every event once with its own offsets.
    pub group: String,
    /// Worker threads in this process.
    pub workers: usize,
    pub correlate: storyline_correlate::Config,
    /// Nobody can ever resume this run's partitions (a replay into a temporary store, removed when it
    /// ends): commits publish the outbox but write no checkpoint, which would only be dead weight. Never
    /// read from a config file.
    #[serde(skip)]
    pub ephemeral: bool,
    /// Publish each story only once its times are final instead of when it closes and again corrected
    /// ([`storyline_correlate::Correlator::publish_only_final`]): a replay's default. Not for the service,
    /// whose stories would wait the allowed lateness. Never read from a config file.
    #[serde(skip)]
    pub publish_only_final: bool,
    /// Set when every writer of the store is in this process (a replay): workers read a bucket as soon as
    /// every write stamped into it is visible, instead of after `safety_delay`
    /// ([`crate::horizon::WriteHorizon`]). Never read from a config file.
    #[serde(skip)]
    pub write_horizon: Option<WriteHorizonRef>,
    /// Nice value for a worker's reader and commit threads (`None`: the process's). A replay lowers them
    /// below its correlator threads, which are its critical path (benchmarks.md, twelfth sitting). Never
    /// read from a config file.
    #[serde(skip)]
    pub helper_nice: Option<i32>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            shards: 16,
            partitions: 1,
            bucket: Duration::from_secs(1),
            safety_delay: Duration::from_millis(1500),
            max_clock_skew: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(10),
            commit_interval: Duration::from_secs(1),
            max_cycle_span: Duration::from_secs(2),
            poll_interval: Duration::from_millis(200),
            scan_batch: 4096,
            retention: Duration::from_secs(24 * 3600),
            group: "stories".into(),
            workers: 2,
            correlate: storyline_correlate::Config::default(),
            ephemeral: false,
            publish_only_final: false,
            write_horizon: None,
            helper_nice: None,
        }
    }
}

impl PipelineConfig {
    /// Partitions, clamped to 1..=shards.
    pub fn partitions(&self) -> u16 {
        self.partitions.clamp(1, self.shards.max(1))
    }

    pub fn bucket_ms(&self) -> i64 {
        (self.bucket.as_millis() as i64).max(1)
    }

    /// Already-read buckets whose write marks are re-checked each cycle.
    pub fn lookback_ms(&self) -> i64 {
        (self.max_clock_skew + self.safety_delay).as_millis() as i64 + self.bucket_ms()
    }
}

/// A shared [`crate::horizon::WriteHorizon`]; two are equal when they are the same one.
#[derive(Clone, Debug, Default)]
pub struct WriteHorizonRef(pub std::sync::Arc<crate::horizon::WriteHorizon>);

impl PartialEq for WriteHorizonRef {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}
