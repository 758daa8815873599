//! Delivery: what a destination implements ([`Target`]), and the loop that moves a sink's backlog to it
//! with retries, exponential backoff with jitter, `Retry-After`, and dead letters.

use super::backlog::{write_dead_letter, Backlog, DeadLetter, Record};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storyline_model::{Story, Timestamp};

/// The stories of one delivery and where they start in the backlog (so a destination can name what it
/// writes deterministically: a re-delivery after a crash writes the same name).
pub struct Batch<'a> {
    pub stories: &'a [Story],
    /// Backlog offset of the record holding the first story, and the story's index in it.
    pub offset: u64,
    pub index: usize,
    /// When that record was appended (epoch ms).
    pub appended_ms: i64,
}

/// Why a delivery failed as a whole.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryError {
    /// Worth retrying: connection errors, timeouts, HTTP 408, 429 and 5xx.
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (HTTP 4xx other than 408/429, a message too large): dead-letter the batch.
    Permanent(String),
}

impl DeliveryError {
    pub fn transient(e: impl std::fmt::Display) -> Self {
        DeliveryError::Transient {
            error: e.to_string(),
            retry_after: None,
        }
    }
}

/// One story of a delivered batch that the receiver refused (Elasticsearch `_bulk` answers per item).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemFailure {
    /// Index in `Batch::stories`.
    pub index: usize,
    pub error: String,
    pub transient: bool,
}

/// A destination. Called from the sink's own delivery thread, one batch at a time.
pub trait Target: Send {
    /// Delivers the batch; `Ok` with the stories the receiver refused one by one (usually none).
    fn deliver(&mut self, batch: &Batch<'_>) -> Result<Vec<ItemFailure>, DeliveryError>;
}

/// Retry settings of a sink.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_retries: Option<u32>,
    pub initial: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// Backoff before retry number `attempt` (1-based): `initial * 2^(attempt-1)`, capped at `max`,
    /// "equal jitter" (half fixed, half random) so many sinks do not retry in step. A `Retry-After`
    /// from the receiver wins (capped at 10 minutes).
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(Duration::from_secs(600));
        }
        let exp = self
            .initial
            .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(20))
            .min(self.max);
        let half = exp / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// Counters of one sink, shared with its status and metrics.
#[derive(Default)]
pub struct Counters {
    pub delivered: AtomicU64,
    pub retries: AtomicU64,
    pub failures: AtomicU64,
    pub dead_lettered: AtomicU64,
}

/// Everything a delivery thread works with.
pub(crate) struct Worker {
    pub name: String,
    pub backlog: Arc<Backlog>,
    pub target: Box<dyn Target>,
    pub policy: RetryPolicy,
    pub batch_stories: usize,
    pub counters: Arc<Counters>,
    /// Stop now (abandon retries; the backlog keeps what is not delivered).
    pub stop: Arc<AtomicBool>,
    /// Stop once the backlog is empty (graceful stop), or at `stop`.
    pub drain: Arc<AtomicBool>,
}

enum Done {
    /// Delivered or dead-lettered: the stories may be acknowledged.
    Settled,
    /// Stopped while retrying: leave the stories in the backlog.
    Stopped,
}

impl Worker {
    pub fn run(mut self) {
        let mut pending: std::collections::VecDeque<Record> = Default::default();
        // Stories of the front record already settled.
        let mut done_in_front = 0usize;
        let mut read_from = self.backlog.acked();
        let mut last_housekeeping = Instant::now() - Duration::from_secs(10);
        loop {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            if last_housekeeping.elapsed() >= Duration::from_millis(500) {
                last_housekeeping = Instant::now();
                self.housekeeping();
            }
            let queued: usize =
                pending.iter().map(|r| r.stories.len()).sum::<usize>() - done_in_front;
            if queued < self.batch_stories {
                match self.backlog.read(read_from, 64, 8 << 20) {
                    Ok(recs) => {
                        if let Some(last) = recs.last() {
                            read_from = last.next;
                        }
                        pending.extend(recs);
                    }
                    Err(e) => {
                        tracing::error!(sink = %self.name, error = %format!("{e:#}"), "cannot read the sink backlog; retrying");
                        self.sleep(Duration::from_secs(1));
                        continue;
                    }
                }
            }
            if pending.is_empty() {
                if self.drain.load(Ordering::SeqCst) {
                    break;
                }
                self.backlog
                    .wait_for_data(read_from, Duration::from_millis(250));
                continue;
            }
            // The next batch: stories from the front records, up to batch_stories.
            let front = &pending[0];
            let (offset, index, appended_ms) = (front.offset, done_in_front, front.appended_ms);
            let mut stories = Vec::with_capacity(self.batch_stories);
            let mut skip = done_in_front;
            for r in &pending {
                for s in r.stories.iter().skip(skip) {
                    if stories.len() == self.batch_stories {
                        break;
                    }
                    stories.push(s.clone());
                }
                skip = 0;
                if stories.len() == self.batch_stories {
                    break;
                }
            }
            let n = stories.len();
            match self.deliver(stories, offset, index, appended_ms) {
                Done::Stopped => break,
                Done::Settled => {}
            }
            // Settle n stories from the front; acknowledge records wholly settled.
            let mut left = n;
            let mut ack = None;
            while left > 0
                || pending
                    .front()
                    .is_some_and(|r| r.stories.len() == done_in_front)
            {
                let Some(r) = pending.front() else { break };
                let rest = r.stories.len() - done_in_front;
                if left >= rest {
                    left -= rest;
                    ack = Some(r.next);
                    pending.pop_front();
                    done_in_front = 0;
                } else {
                    done_in_front += left;
                    left = 0;
                }
            }
            if let Some(off) = ack {
                if let Err(e) = self.backlog.ack(off) {
                    tracing::error!(sink = %self.name, error = %format!("{e:#}"), "cannot persist the acked offset");
                }
                self.export_backlog(pending.front().map(|r| r.appended_ms));
            }
        }
        self.export_backlog(pending.front().map(|r| r.appended_ms));
    }

    fn housekeeping(&self) {
        match self.backlog.import_redrive() {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(sink = %self.name, stories = n, "re-drove dead letters into the backlog")
            }
            Err(e) => {
                tracing::warn!(sink = %self.name, error = %format!("{e:#}"), "re-driving dead letters failed")
            }
        }
        self.export_backlog(None);
    }

    fn export_backlog(&self, oldest_ms: Option<i64>) {
        let bytes = self.backlog.len_bytes();
        metrics::gauge!("storyline_sink_backlog_bytes", "sink" => self.name.clone())
            .set(bytes as f64);
        let age = if bytes == 0 {
            0.0
        } else {
            let oldest = oldest_ms.or_else(|| self.backlog.oldest_ms());
            oldest
                .map(|ms| (Timestamp::now().as_millis() - ms).max(0) as f64 / 1000.0)
                .unwrap_or(0.0)
        };
        metrics::gauge!("storyline_sink_backlog_age_seconds", "sink" => self.name.clone()).set(age);
    }

    /// Sleeps up to `d`, waking early on stop. Returns false when stopped.
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
        !self.stop.load(Ordering::SeqCst)
    }

    fn dead_letter(&self, stories: &[Story], reason: &str, error: &str, attempts: u32) {
        let n = stories.len() as u64;
        let header = DeadLetter {
            file: String::new(),
            sink: self.name.clone(),
            reason: reason.into(),
            error: error.into(),
            at: Timestamp::now().to_rfc3339(),
            attempts,
            stories: n,
            first_ids: stories.iter().take(5).map(super::encode::doc_id).collect(),
        };
        tracing::warn!(sink = %self.name, reason, error, stories = n, "story versions moved to the sink's dead letters");
        loop {
            match write_dead_letter(&self.backlog.dir().join("dead"), &header, stories) {
                Ok(_) => break,
                Err(e) => {
                    // Never drop: keep trying (the disk is full or read-only); the backlog holds them.
                    tracing::error!(sink = %self.name, error = %format!("{e:#}"), "cannot write a dead letter; retrying");
                    if !self.sleep(Duration::from_secs(1)) {
                        return;
                    }
                }
            }
        }
        self.counters.dead_lettered.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("storyline_sink_dead_letters_total", "sink" => self.name.clone(), "reason" => reason.to_string())
            .increment(n);
    }

    fn deliver(
        &mut self,
        mut stories: Vec<Story>,
        offset: u64,
        mut index: usize,
        appended_ms: i64,
    ) -> Done {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let batch = Batch {
                stories: &stories,
                offset,
                index,
                appended_ms,
            };
            let (retry, retry_after, error) = match self.target.deliver(&batch) {
                Ok(failures) if failures.is_empty() => {
                    self.delivered(stories.len());
                    return Done::Settled;
                }
                Ok(failures) => {
                    self.counters.failures.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("storyline_sink_failures_total", "sink" => self.name.clone())
                        .increment(1);
                    let mut permanent = Vec::new();
                    let mut errors = Vec::new();
                    let mut again = Vec::new();
                    let mut failed = vec![false; stories.len()];
                    for f in &failures {
                        if f.index >= stories.len() || failed[f.index] {
                            continue;
                        }
                        failed[f.index] = true;
                        if f.transient {
                            again.push(stories[f.index].clone());
                        } else {
                            permanent.push(stories[f.index].clone());
                            if errors.len() < 5 {
                                errors.push(format!(
                                    "{}: {}",
                                    super::encode::doc_id(&stories[f.index]),
                                    f.error
                                ));
                            }
                        }
                    }
                    self.delivered(failed.iter().filter(|f| !**f).count());
                    if !permanent.is_empty() {
                        self.dead_letter(&permanent, "rejected", &errors.join("; "), attempt);
                    }
                    if again.is_empty() {
                        return Done::Settled;
                    }
                    let first = failures
                        .iter()
                        .find(|f| f.transient)
                        .map(|f| f.error.clone())
                        .unwrap_or_default();
                    stories = again;
                    // The retried subset no longer starts where the batch did.
                    index = usize::MAX;
                    (true, None, first)
                }
                Err(DeliveryError::Permanent(e)) => {
                    self.counters.failures.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("storyline_sink_failures_total", "sink" => self.name.clone())
                        .increment(1);
                    self.dead_letter(&stories, "rejected", &e, attempt);
                    return Done::Settled;
                }
                Err(DeliveryError::Transient { error, retry_after }) => {
                    self.counters.failures.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("storyline_sink_failures_total", "sink" => self.name.clone())
                        .increment(1);
                    (true, retry_after, error)
                }
            };
            debug_assert!(retry);
            if self.policy.max_retries.is_some_and(|m| attempt > m) {
                self.dead_letter(&stories, "retries_exhausted", &error, attempt);
                return Done::Settled;
            }
            let wait = self.policy.backoff(attempt, retry_after);
            if attempt == 1 || attempt.is_power_of_two() {
                tracing::warn!(sink = %self.name, error = %error, attempt, wait = ?wait, "delivery failed; retrying");
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("storyline_sink_retries_total", "sink" => self.name.clone())
                .increment(1);
            // The backlog grows behind a failing destination: keep its gauges moving.
            self.export_backlog(Some(appended_ms));
            if !self.sleep(wait) {
                return Done::Stopped;
            }
        }
    }

    fn delivered(&self, n: usize) {
        self.counters
            .delivered
            .fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!("storyline_sink_deliveries_total", "sink" => self.name.clone())
            .increment(n as u64);
    }
}

/// Parses a `Retry-After` value: seconds, or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when =
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let now = time::OffsetDateTime::now_utc();
    Some(if when > now {
        (when - now).try_into().unwrap_or_default()
    } else {
        Duration::ZERO
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let p = RetryPolicy {
            max_retries: None,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        for attempt in 1..10 {
            let exp =
                (Duration::from_millis(100) * (1 << (attempt - 1))).min(Duration::from_secs(2));
            let d = p.backoff(attempt, None);
            assert!(
                d >= exp / 2 && d <= exp,
                "attempt {attempt}: {d:?} vs {exp:?}"
            );
        }
        assert_eq!(
            p.backoff(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
