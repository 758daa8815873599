//! [`SinkFanout`]: the [`StorySink`] the workers publish to when `[[sinks]]` are configured.
//!
//! `publish` appends the batch to each sink's durable backlog ([`Backlog`], fsynced) and returns: that is
//! what lets the worker commit its offset. A delivery thread per sink ([`deliver`](super::deliver))
//! drains its backlog to the destination with retries. So a slow or dead destination only grows its own
//! backlog; it never blocks ingest, the workers or the other sinks. When a backlog is full, the batch goes
//! to that sink's dead letters (counted in `storyline_sink_dead_letters_total{reason="backlog_full"}`),
//! never dropped silently and never blocking.

use super::backlog::{write_dead_letter, Appended, Backlog, DeadLetter, DirStatus};
use super::config::SinkConfig;
use super::deliver::{Counters, RetryPolicy, Target, Worker};
use super::StorySink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use storyline_model::{Story, Timestamp};

/// Builds a sink's [`Target`] inside its delivery thread (HTTP clients own a runtime that must not be
/// created or dropped inside an async context).
pub type TargetFactory = Box<dyn FnMut() -> anyhow::Result<Box<dyn Target>> + Send>;

struct Sink {
    name: String,
    backlog: Arc<Backlog>,
    counters: Arc<Counters>,
}

pub struct SinkFanout {
    sinks: Vec<Sink>,
    stop: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A sink's numbers, for tests and `storyline sinks list`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SinkStatus {
    pub name: String,
    pub backlog_bytes: u64,
    pub delivered: u64,
    pub retries: u64,
    pub failures: u64,
    pub dead_lettered: u64,
}

/// `<data_dir>/sinks/<name>`.
pub fn sink_dir(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("sinks").join(name)
}

impl SinkFanout {
    /// Opens every configured sink's backlog and starts its delivery thread.
    pub fn start(data_dir: &Path, configs: &[SinkConfig]) -> anyhow::Result<Self> {
        super::config::validate_all(configs)?;
        let mut with_targets = Vec::new();
        for c in configs {
            with_targets.push((c.clone(), super::targets::factory(c)?));
        }
        Self::start_with(data_dir, with_targets)
    }

    /// Like [`start`](Self::start) with the targets given (tests, embedding).
    pub fn start_with(
        data_dir: &Path,
        sinks: Vec<(SinkConfig, TargetFactory)>,
    ) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let drain = Arc::new(AtomicBool::new(false));
        let mut fanout = SinkFanout {
            sinks: Vec::new(),
            stop: stop.clone(),
            drain: drain.clone(),
            threads: Mutex::new(Vec::new()),
        };
        let mut opened = Vec::new();
        for (cfg, factory) in sinks {
            let dir = sink_dir(data_dir, &cfg.name);
            let backlog = Arc::new(
                Backlog::open(&dir, cfg.backlog_bytes)
                    .map_err(|e| anyhow::anyhow!("sink {:?}: {e:#}", cfg.name))?,
            );
            opened.push((cfg, factory, backlog));
        }
        for (cfg, mut factory, backlog) in opened {
            let counters = Arc::new(Counters::default());
            fanout.sinks.push(Sink {
                name: cfg.name.clone(),
                backlog: backlog.clone(),
                counters: counters.clone(),
            });
            let (stop, drain) = (stop.clone(), drain.clone());
            let name = cfg.name.clone();
            let handle = std::thread::Builder::new()
                .name(format!("sink-{}", cfg.name))
                .spawn(move || {
                    let target = loop {
                        match factory() {
                            Ok(t) => break t,
                            Err(e) => {
                                // A target that cannot be built yet (object store unreachable) is retried;
                                // the backlog holds the stories meanwhile.
                                tracing::error!(sink = %name, error = %format!("{e:#}"), "cannot set up the sink; retrying in 5s");
                                let until = Instant::now() + Duration::from_secs(5);
                                while Instant::now() < until {
                                    if stop.load(Ordering::SeqCst) || drain.load(Ordering::SeqCst) {
                                        return;
                                    }
                                    std::thread::sleep(Duration::from_millis(50));
                                }
                            }
                        }
                    };
                    Worker {
                        name,
                        backlog,
                        target,
                        policy: RetryPolicy {
                            max_retries: cfg.max_retries,
                            initial: cfg.retry_initial,
                            max: cfg.retry_max,
                        },
                        batch_stories: cfg.batch_stories,
                        counters,
                        stop,
                        drain,
                    }
                    .run()
                })?;
            fanout.threads.lock().unwrap().push(handle);
        }
        Ok(fanout)
    }

    pub fn status(&self) -> Vec<SinkStatus> {
        self.sinks
            .iter()
            .map(|s| SinkStatus {
                name: s.name.clone(),
                backlog_bytes: s.backlog.len_bytes(),
                delivered: s.counters.delivered.load(Ordering::Relaxed),
                retries: s.counters.retries.load(Ordering::Relaxed),
                failures: s.counters.failures.load(Ordering::Relaxed),
                dead_lettered: s.counters.dead_lettered.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// What the sink's directory holds (dead letters and all).
    pub fn dir_status(&self, name: &str) -> anyhow::Result<DirStatus> {
        let s = self
            .sinks
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| anyhow::anyhow!("no sink {name:?}"))?;
        let mut st = DirStatus::read(s.backlog.dir())?;
        st.locked = true;
        Ok(st)
    }

    /// Stops the delivery threads: each delivers what its backlog holds for up to `grace`, then stops
    /// (whatever is left stays in the backlog and is delivered after the next start).
    pub fn stop(&self, grace: Duration) {
        self.drain.store(true, Ordering::SeqCst);
        for s in &self.sinks {
            s.backlog.wake();
        }
        let threads: Vec<_> =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && threads.iter().any(|t| !t.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop.store(true, Ordering::SeqCst);
        for s in &self.sinks {
            s.backlog.wake();
        }
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for SinkFanout {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

impl StorySink for SinkFanout {
    fn publish(&self, stories: &[Story]) -> anyhow::Result<()> {
        if stories.is_empty() {
            return Ok(());
        }
        let payload = super::backlog::encode_payload(stories);
        let now = Timestamp::now().as_millis();
        for s in &self.sinks {
            match s.backlog.append_payload(&payload, now)? {
                Appended::Yes => {
                    metrics::gauge!("storyline_sink_backlog_bytes", "sink" => s.name.clone())
                        .set(s.backlog.len_bytes() as f64);
                }
                Appended::Full => {
                    let n = stories.len() as u64;
                    let header = DeadLetter {
                        file: String::new(),
                        sink: s.name.clone(),
                        reason: "backlog_full".into(),
                        error: format!(
                            "the backlog holds {} bytes (backlog_bytes = {}): the destination is down or slower than the stories come",
                            s.backlog.len_bytes(),
                            s.backlog.max_bytes()
                        ),
                        at: Timestamp::now().to_rfc3339(),
                        attempts: 0,
                        stories: n,
                        first_ids: stories.iter().take(5).map(super::encode::doc_id).collect(),
                    };
                    write_dead_letter(&s.backlog.dir().join("dead"), &header, stories)?;
                    s.counters.dead_lettered.fetch_add(n, Ordering::Relaxed);
                    metrics::counter!("storyline_sink_dead_letters_total", "sink" => s.name.clone(), "reason" => "backlog_full")
                        .increment(n);
                    tracing::warn!(sink = %s.name, stories = n, "sink backlog full: story versions dead-lettered");
                }
            }
        }
        Ok(())
    }
}
