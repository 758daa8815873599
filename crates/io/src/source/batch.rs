//! The queue between a network source and the ingestor: bounded in records and in bytes, drained by one
//! batcher task that collects records (up to a count, a size, or a wait) and ingests them from a blocking
//! thread. A batch leaves the queue's byte budget only when the ingestor has acknowledged it, so a slow
//! store fills the budget and stops the readers.

use super::{RecordIngest, Rejected};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Where a record goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Ingest as a record of this sensor.
    Sensor(Arc<str>),
    /// Dead-letter with this code and reason (no sensor could be found for it).
    Reject { code: &'static str, reason: String },
}

pub struct Item {
    pub target: Target,
    /// One record, without newlines.
    pub body: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub format: Arc<str>,
    /// Named in dead letters, e.g. `syslog_tcp:0.0.0.0:5514`.
    pub source: Arc<str>,
    /// Label of the source's metrics, e.g. `syslog_tcp`.
    pub metric: &'static str,
    pub max_records: usize,
    pub max_bytes: usize,
    pub max_wait: Duration,
    /// Records queued before senders wait (or UDP drops).
    pub queue_records: usize,
    /// Bytes queued or in the batch being ingested before senders wait (or UDP drops).
    pub queue_bytes: usize,
}

/// The sending side; clone it for every reader. The batcher ends when every clone is gone.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::Sender<Item>,
    budget: Arc<Semaphore>,
    budget_total: usize,
}

impl Queue {
    fn cost(&self, body: &[u8]) -> u32 {
        body.len()
            .clamp(1, self.budget_total)
            .min(u32::MAX as usize) as u32
    }

    /// Waits for room. `false` if the batcher is gone.
    pub async fn send(&self, target: Target, body: Vec<u8>) -> bool {
        let Ok(permit) = self
            .budget
            .clone()
            .acquire_many_owned(self.cost(&body))
            .await
        else {
            return false;
        };
        self.tx
            .send(Item {
                target,
                body,
                _permit: permit,
            })
            .await
            .is_ok()
    }

    /// Queues only if there is room now. `false` means the record was not queued.
    pub fn try_send(&self, target: Target, body: Vec<u8>) -> bool {
        let Ok(permit) = self.budget.clone().try_acquire_many_owned(self.cost(&body)) else {
            return false;
        };
        self.tx
            .try_send(Item {
                target,
                body,
                _permit: permit,
            })
            .is_ok()
    }
}

/// Starts the batcher. `stop` only bounds retries at shutdown: the batcher itself ends when the queue is
/// closed and drained.
pub fn spawn(
    ingest: Arc<dyn RecordIngest>,
    settings: Settings,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (Queue, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(settings.queue_records.max(1));
    let budget_total = settings.queue_bytes.clamp(1, Semaphore::MAX_PERMITS);
    let queue = Queue {
        tx,
        budget: Arc::new(Semaphore::new(budget_total)),
        budget_total,
    };
    let task = tokio::spawn(run(ingest, settings, rx, stop));
    (queue, task)
}

async fn run(
    ingest: Arc<dyn RecordIngest>,
    s: Settings,
    mut rx: mpsc::Receiver<Item>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut batch: Vec<Item> = Vec::new();
    loop {
        let Some(first) = rx.recv().await else {
            break;
        };
        let mut bytes = first.body.len();
        batch.push(first);
        let deadline = tokio::time::Instant::now() + s.max_wait;
        while batch.len() < s.max_records && bytes < s.max_bytes {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(item)) => {
                    bytes += item.body.len();
                    batch.push(item);
                }
                Ok(None) | Err(_) => break,
            }
        }
        flush(&ingest, &s, std::mem::take(&mut batch), &stop).await;
    }
}

/// Ingests one batch, retrying a failing store with backoff until it succeeds; at shutdown it gives up
/// after a few tries and logs what was lost.
async fn flush(
    ingest: &Arc<dyn RecordIngest>,
    s: &Settings,
    batch: Vec<Item>,
    stop: &tokio::sync::watch::Receiver<bool>,
) {
    let mut groups: BTreeMap<Arc<str>, Vec<u8>> = BTreeMap::new();
    let mut rejects: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let mut permits = Vec::with_capacity(batch.len());
    for item in batch {
        match item.target {
            Target::Sensor(sensor) => {
                let body = groups.entry(sensor).or_default();
                if !body.is_empty() {
                    body.push(b'\n');
                }
                body.extend_from_slice(&item.body);
            }
            Target::Reject { code, reason } => rejects.push((code, reason, item.body)),
        }
        permits.push(item._permit);
    }
    let mut pending = Some((groups, rejects));
    let mut delay = Duration::from_millis(100);
    let mut failures_at_stop = 0;
    loop {
        let (groups, rejects) = pending.take().expect("batch present");
        let ing = ingest.clone();
        let settings = s.clone();
        let done =
            tokio::task::spawn_blocking(move || ingest_all(&*ing, &settings, groups, rejects))
                .await;
        match done {
            Ok(None) => break,
            Ok(Some((left, err))) => {
                metrics::counter!("storyline_source_ingest_errors_total", "source" => s.metric)
                    .increment(1);
                if *stop.borrow() {
                    failures_at_stop += 1;
                    if failures_at_stop >= 3 {
                        let lost = left
                            .0
                            .values()
                            .map(|b| b.split(|c| *c == b'\n').count())
                            .sum::<usize>()
                            + left.1.len();
                        tracing::error!(source = %s.source, lost, error = %err,
                            "store unavailable at shutdown: records read from the network were not stored");
                        break;
                    }
                }
                tracing::warn!(source = %s.source, error = %err, retry_in = ?delay,
                    "store unavailable: holding the batch (readers wait) and retrying");
                pending = Some(left);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => {
                tracing::error!(source = %s.source, error = %e, "ingest task failed");
                break;
            }
        }
    }
    drop(permits);
}

type Pending = (
    BTreeMap<Arc<str>, Vec<u8>>,
    Vec<(&'static str, String, Vec<u8>)>,
);

/// Ingests every group; returns what is left when the store fails.
fn ingest_all(
    ingest: &dyn RecordIngest,
    s: &Settings,
    mut groups: BTreeMap<Arc<str>, Vec<u8>>,
    mut rejects: Vec<(&'static str, String, Vec<u8>)>,
) -> Option<(Pending, anyhow::Error)> {
    while let Some((sensor, body)) = groups.pop_first() {
        match ingest.ingest(&body, &s.format, &sensor, &s.source, 1) {
            Ok(_) => {}
            Err(e) => {
                groups.insert(sensor, body);
                return Some(((groups, rejects), e));
            }
        }
    }
    while let Some((code, reason, raw)) = rejects.pop() {
        let r = Rejected {
            source: &s.source,
            format: &s.format,
            code,
            reason: &reason,
            raw: &raw,
        };
        if let Err(e) = ingest.dead_letter(&r) {
            rejects.push((code, reason, raw));
            return Some(((groups, rejects), e));
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::source::IngestOutcome;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// Records what it was given; can be made to fail or to block.
    #[derive(Default)]
    pub struct Recorder {
        pub batches: Mutex<Vec<(String, String, String)>>,
        pub dead: Mutex<Vec<(String, String)>>,
        pub fail: AtomicBool,
        pub gate: Mutex<()>,
        pub calls: AtomicUsize,
        /// Records ingested so far.
        pub count: AtomicUsize,
        pub first_lines: Mutex<Vec<u64>>,
    }

    impl Recorder {
        pub fn records(&self) -> Vec<(String, String)> {
            self.batches
                .lock()
                .unwrap()
                .iter()
                .flat_map(|(_, sensor, body)| {
                    body.split('\n')
                        .map(|l| (sensor.clone(), l.to_string()))
                        .collect::<Vec<_>>()
                })
                .collect()
        }
    }

    impl RecordIngest for Recorder {
        fn ingest(
            &self,
            body: &[u8],
            format: &str,
            sensor: &str,
            _source: &str,
            first_line: u64,
        ) -> anyhow::Result<IngestOutcome> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let _g = self.gate.lock().unwrap();
            if self.fail.load(Ordering::SeqCst) {
                anyhow::bail!("store down");
            }
            let text = String::from_utf8_lossy(body).into_owned();
            let n = text.split('\n').count() as u64;
            self.count.fetch_add(n as usize, Ordering::SeqCst);
            self.first_lines.lock().unwrap().push(first_line);
            self.batches
                .lock()
                .unwrap()
                .push((format.into(), sensor.into(), text));
            Ok(IngestOutcome {
                accepted: n,
                rejected: 0,
            })
        }

        fn dead_letter(&self, r: &Rejected<'_>) -> anyhow::Result<()> {
            self.dead.lock().unwrap().push((
                r.code.to_string(),
                String::from_utf8_lossy(r.raw).into_owned(),
            ));
            Ok(())
        }
    }

    fn settings(max_records: usize, queue_bytes: usize) -> Settings {
        Settings {
            format: "ecs".into(),
            source: "test".into(),
            metric: "test",
            max_records,
            max_bytes: 1 << 20,
            max_wait: Duration::from_millis(20),
            queue_records: 4,
            queue_bytes,
        }
    }

    #[tokio::test]
    async fn batches_by_count_and_wait_grouped_by_sensor() {
        let rec = Arc::new(Recorder::default());
        let (_tx, stop) = tokio::sync::watch::channel(false);
        let (q, task) = spawn(rec.clone(), settings(3, 1 << 20), stop);
        let a: Arc<str> = "a".into();
        for i in 0..7 {
            let sensor = if i % 2 == 0 { a.clone() } else { "b".into() };
            assert!(
                q.send(Target::Sensor(sensor), format!("r{i}").into_bytes())
                    .await
            );
        }
        q.send(
            Target::Reject {
                code: "unknown_sensor",
                reason: "x".into(),
            },
            b"raw".to_vec(),
        )
        .await;
        drop(q);
        task.await.unwrap();
        let mut got = rec.records();
        got.sort();
        assert_eq!(got.len(), 7);
        assert_eq!(got[0], ("a".into(), "r0".into()));
        assert!(got.contains(&("b".into(), "r5".into())));
        assert_eq!(
            rec.dead.lock().unwrap().as_slice(),
            &[("unknown_sensor".into(), "raw".into())]
        );
    }

    // The std lock stands for a store that does not answer; holding it across awaits is the point.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test]
    async fn a_full_budget_makes_try_send_fail_and_send_wait_until_the_store_answers() {
        let rec = Arc::new(Recorder::default());
        let (_tx, stop) = tokio::sync::watch::channel(false);
        let (q, task) = spawn(rec.clone(), settings(1, 10), stop);
        let gate = rec.gate.lock().unwrap();
        let s: Arc<str> = "s".into();
        // The first record is taken into a batch and blocks in the (gated) store; it still holds its bytes.
        assert!(q.send(Target::Sensor(s.clone()), vec![b'x'; 10]).await);
        assert!(!q.try_send(Target::Sensor(s.clone()), b"y".to_vec()));
        let q2 = q.clone();
        let s2 = s.clone();
        let waiting = tokio::spawn(async move { q2.send(Target::Sensor(s2), b"z".to_vec()).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        drop(gate);
        assert!(waiting.await.unwrap());
        drop(q);
        task.await.unwrap();
        assert_eq!(rec.records().len(), 2);
    }

    #[tokio::test]
    async fn a_failing_store_is_retried_without_losing_the_batch() {
        let rec = Arc::new(Recorder::default());
        rec.fail.store(true, Ordering::SeqCst);
        let (_tx, stop) = tokio::sync::watch::channel(false);
        let (q, task) = spawn(rec.clone(), settings(10, 1 << 20), stop);
        q.send(Target::Sensor("s".into()), b"kept".to_vec()).await;
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(rec.calls.load(Ordering::SeqCst) >= 2);
        rec.fail.store(false, Ordering::SeqCst);
        drop(q);
        task.await.unwrap();
        assert_eq!(rec.records(), vec![("s".into(), "kept".into())]);
    }
}
