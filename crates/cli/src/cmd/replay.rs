//! `storyline replay`: the whole pipeline over recorded input, as fast as it goes.
//!
//! Reader → parse/ingest threads (durable group-committed appends) → leased workers → file sink. Event
//! time drives every window, so an hour of traffic takes as long as the machine needs, not an hour. When
//! the input ends the workers drain every shard, flush open stories and commit.

mod input;

use super::Counting;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use input::{read_chunks, Chunk};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use storyline_io::{RotatingFileSink, StorySink};
use storyline_parse::{HeaderContext, Limits};
use storyline_pipeline::config::WriteHorizonRef;
use storyline_pipeline::ingest::Framing;
use storyline_pipeline::{Ingestor, PipelineConfig, WorkerPool};
use storyline_store::embedded::{Durability, EmbeddedStore};
use storyline_store::Store;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  storyline generate --events 1000000 --out /tmp/t && storyline replay --input /tmp/t/events.ndjson --output /tmp/stories.ndjson\n  storyline replay --input conn.log.json --format zeek --sensor zeek-core --output stories.ndjson"
)]
pub struct Args {
    /// Input files: NDJSON envelopes ({"format","sensor","record"}), or plain records with --format/--sensor.
    #[arg(long, num_args = 1.., required = true)]
    input: Vec<PathBuf>,
    /// Where stories go (NDJSON, one line per story version).
    #[arg(long)]
    output: PathBuf,
    /// The input holds bare records of this format (one per line) instead of envelopes.
    #[arg(long, requires = "sensor")]
    format: Option<String>,
    /// Sensor name for bare records.
    #[arg(long, requires = "format")]
    sensor: Option<String>,
    /// Keep the store here (default: a temporary directory removed at the end).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    tenant: String,
    #[arg(long, default_value_t = 16)]
    shards: u16,
    /// Worker threads (correlation).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Correlation partitions: each correlates its share of the shards on its own worker thread. More
    /// than 1 correlates in parallel but misses links between partitions (NAT views, DNS lookups and
    /// their connections); docs/correlation.md.
    #[arg(long, default_value_t = 1)]
    partitions: u16,
    /// Parse/ingest threads.
    #[arg(long, default_value_t = 2)]
    ingest_threads: usize,
    /// fsync (default), flush, none.
    #[arg(long, default_value = "fsync", value_parser = parse_durability)]
    durability: Durability,
    /// Session gap: a story closes once event time moved this far past its last event.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    gap: std::time::Duration,
    /// How long after a DNS answer a connection to an answered address joins the lookup's story.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    dns_link_window: std::time::Duration,
    /// Line up DNS answers and connections from different sensors with the estimated clock offsets
    /// (`true`/`false`; default: the engine's, docs/correlation.md).
    #[arg(long)]
    dns_links_use_clock_offsets: Option<bool>,
    /// How often workers checkpoint offsets and correlation state; stories are published right after the
    /// checkpoint that covers them. A checkpoint writes the stories and keys changed since the previous
    /// one; each also costs an fsync and a sink write, so a replay checkpoints less often than the service.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    commit_interval: std::time::Duration,
    /// Most insert time a worker cycle reads. A replay is one long catch-up: longer cycles close and
    /// correct more stories within one commit, so fewer versions are published (the service reads in
    /// short cycles to publish as it goes).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    max_cycle_span: std::time::Duration,
    /// How long after a bucket closes workers wait before reading it. The service waits for writes in
    /// flight from other hosts; a replay's only writers are its own ingest threads, whose writes in flight
    /// the workers know of and wait for (the write horizon), so by default they read a bucket as soon as
    /// it closed and every write into it is durable.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    safety_delay: std::time::Duration,
    /// Insert-time bucket resolution. A bucket is read once it closed and `--safety-delay` passed: with
    /// the service's 1 s buckets the workers of a 1M-event replay idled for its first second or so, and
    /// that second was added to its end (benchmarks.md, eighth sitting). Shorter buckets keep the workers
    /// closer behind the ingest, so less is left to read once the input ends. Medians of alternating 1M
    /// runs: 250 → 100 ms 7.52 → 7.19 s, 100 → 50 ms 7.20 → 7.02 s, 50 → 25 ms 7.37 → 7.20 s (eleventh
    /// sitting).
    #[arg(long, default_value = "25ms", value_parser = humantime::parse_duration)]
    bucket: std::time::Duration,
    /// How long an idle worker sleeps before it looks for due buckets again (the service's default is
    /// 200ms; a replay's workers wait only for its own ingest).
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    poll_interval: std::time::Duration,
    /// Write correlation checkpoints even into a temporary store. Without `--data-dir` nothing can resume
    /// the replay (its store is removed when it ends), so by default its workers publish at each commit
    /// without checkpointing; this measures the service's commit path instead.
    #[arg(long)]
    checkpoints: bool,
    /// When a story is published: `final` (once its times are final: after the allowed lateness, or at
    /// the end of the input; one version per story unless late events or merges change it) or
    /// `on-close` (when it closes and again when the final clock estimate corrects its times, as the
    /// service does). The last versions are the same; on the generator's traffic `final` publishes about
    /// half as many versions (docs/correlation.md).
    #[arg(long, default_value = "final", value_parser = ["final", "on-close"])]
    publish: String,
    /// Largest accepted record.
    #[arg(long, default_value_t = 16 << 20)]
    max_record_bytes: usize,
    /// Read regular input files instead of mapping them into memory. A mapped file must not shrink
    /// while the replay runs (that kills the process with SIGBUS); use this for inputs something else may
    /// truncate meanwhile.
    #[arg(long)]
    no_mmap: bool,
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    match s {
        "fsync" => Ok(Durability::Fsync),
        "flush" => Ok(Durability::Flush),
        "none" => Ok(Durability::None),
        _ => Err(format!("{s:?}: expected fsync, flush or none")),
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    keep_freed_memory();
    let started = Instant::now();
    let mut tmp = None;
    let data_dir = match &a.data_dir {
        Some(d) => d.clone(),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("storyline-replay-")
                .tempdir()?;
            let path = dir.path().to_path_buf();
            tmp = Some(dir);
            path
        }
    };
    // Nothing resumes a replay into a temporary store, so it writes no checkpoints, and its journal is
    // cheaper uncompressed (`EmbeddedStore::open_with`).
    let ephemeral = a.data_dir.is_none() && !a.checkpoints;
    let store: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open_with(&data_dir, a.durability, !ephemeral)
            .with_context(|| format!("opening the store in {}", data_dir.display()))?,
    );
    let mut cfg = PipelineConfig {
        shards: a.shards,
        workers: a.workers,
        partitions: a.partitions,
        ..PipelineConfig::default()
    };
    cfg.correlate.gap = a.gap;
    cfg.commit_interval = a.commit_interval;
    cfg.max_cycle_span = a.max_cycle_span;
    cfg.ephemeral = ephemeral;
    cfg.publish_only_final = a.publish == "final";
    cfg.safety_delay = a.safety_delay;
    // The ingest threads below are the store's only writers: the workers wait for their writes in flight
    // instead of for a writer's clock skew, so already-read buckets need re-checking for one bucket only,
    // and stories can be forgotten and published while the input is still read (design.md).
    cfg.write_horizon = Some(WriteHorizonRef::default());
    // Between the correlator threads (the critical path) and the ingest threads (`INGEST_NICE`): with the
    // workers' reader and commit threads at nice 5 a 1M replay was faster in 7 of 7 alternating pairs,
    // median 6.72 → 6.56 s over the last 4 (benchmarks.md, twelfth sitting).
    cfg.helper_nice = Some(HELPER_NICE);
    cfg.max_clock_skew = std::time::Duration::ZERO;
    cfg.bucket = a.bucket;
    cfg.poll_interval = a.poll_interval;
    cfg.correlate.dns_link_window = a.dns_link_window;
    if let Some(on) = a.dns_links_use_clock_offsets {
        cfg.correlate.dns_links_use_clock_offsets = on;
    }
    let limits = Limits {
        max_record_bytes: a.max_record_bytes,
    };
    let ingestor = Arc::new(Ingestor::new(store.clone(), &a.tenant, &cfg, limits)?);
    if a.output.exists() {
        std::fs::remove_file(&a.output)
            .with_context(|| format!("replacing {}", a.output.display()))?;
    }
    let counting = Arc::new(Counting::new(RotatingFileSink::open(
        &a.output, 0, 0, true,
    )?));
    let sink: Arc<dyn StorySink> = counting.clone();
    let pool = WorkerPool::start(
        store.clone(),
        sink,
        cfg.clone(),
        &a.tenant,
        &format!("replay-{}", std::process::id()),
    )?;

    let total_bytes: u64 = a
        .input
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = if super::progress_wanted() {
        let b = ProgressBar::new(total_bytes);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} ingest [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b
    } else {
        ProgressBar::hidden()
    };

    let accepted = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let (tx, rx) = crossbeam_channel::bounded::<Chunk>(a.ingest_threads * 2);
    let (spare_tx, spare_rx) = crossbeam_channel::bounded::<Vec<u8>>(a.ingest_threads * 3);
    let framing_owned = a.format.clone().zip(a.sensor.clone());
    let threads: Vec<_> = (0..a.ingest_threads.max(1))
        .map(|_| {
            let (rx, ingestor, accepted, rejected) = (rx.clone(), ingestor.clone(), accepted.clone(), rejected.clone());
            let (framing_owned, spare_tx) = (framing_owned.clone(), spare_tx.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                yield_to_correlation();
                let framing = match &framing_owned {
                    Some((format, sensor)) => Framing::Plain { format, sensor },
                    None => Framing::Envelopes,
                };
                for chunk in rx {
                    let report = ingestor.ingest_lines(&chunk.body, framing, &chunk.source, chunk.first_line, Some(chunk.line_ends))?;
                    accepted.fetch_add(report.accepted, Ordering::Relaxed);
                    rejected.fetch_add(report.rejected, Ordering::Relaxed);
                    for e in report.errors.iter().take(5) {
                        tracing::warn!(file = %chunk.source, line = e.line, code = e.code, "{}", e.reason);
                    }
                    chunk.body.done(&spare_tx);
                }
                Ok(())
            })
        })
        .collect();
    drop(rx);

    // Zeek TSV, nfdump csv and Argus csv records need their header lines, which a file has once at its
    // top (and again after each concatenated or rotated part): each chunk gets the header in force
    // repeated in front.
    let headers = a.format.as_deref().and_then(HeaderContext::new);
    yield_to_correlation();
    let read_result = read_chunks(&a.input, headers, !a.no_mmap, &tx, &spare_rx, &bar);
    drop(tx);
    let mut ingest_error = None;
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => ingest_error = Some(e),
            Err(_) => ingest_error = Some(anyhow::anyhow!("an ingest thread panicked")),
        }
    }
    bar.finish_and_clear();
    read_result?;
    if let Some(e) = ingest_error {
        let _ = pool.stop();
        return Err(e.context("ingest failed"));
    }
    let ingest_secs = started.elapsed().as_secs_f64();
    pool.drain()?;
    let secs = started.elapsed().as_secs_f64();
    let (acc, rej) = (
        accepted.load(Ordering::Relaxed),
        rejected.load(Ordering::Relaxed),
    );
    let stories = counting.versions();
    eprintln!(
        "replayed {acc} events ({rej} rejected, kept in dead letters) into {stories} story versions in {secs:.2}s \
         ({:.0} events/s; ingest {ingest_secs:.2}s) → {}",
        acc as f64 / secs,
        a.output.display()
    );
    drop(ingestor);
    drop(store);
    if let Some(dir) = tmp {
        remove_store(dir);
    }
    if rej > 0 {
        match &a.data_dir {
            Some(d) => eprintln!("list them with: storyline dead-letters list --data-dir {} --tenant {}", d.display(), a.tenant),
            None => eprintln!("pass --data-dir to keep the store and list them with `storyline dead-letters list`"),
        }
    }
    Ok(())
}

/// Removes a replay's throwaway store. Nearly all of the time goes to unlinking its journals: ~30 ms
/// each at the end of a 1M-event replay, four of them (their cached pages are freed), while the other core
/// idled (strace, benchmarks.md, eighteenth sitting). So they go on two threads, and the rest after. A
/// store left behind is named, not fatal: the stories are out by now.
fn remove_store(dir: tempfile::TempDir) {
    let journals: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jnl"))
                .collect()
        })
        .unwrap_or_default();
    let (mine, theirs) = journals.split_at(journals.len() / 2);
    let unlink = |paths: &[PathBuf]| {
        for p in paths {
            // Whatever fails here fails again, and is reported, when the directory is removed.
            let _ = std::fs::remove_file(p);
        }
    };
    std::thread::scope(|scope| {
        scope.spawn(|| unlink(theirs));
        unlink(mine);
    });
    let path = dir.path().to_path_buf();
    if let Err(e) = dir.close() {
        eprintln!(
            "could not remove the replay's temporary store {}: {e}",
            path.display()
        );
    }
}

/// Lowers the calling thread's CPU priority. A replay's correlation runs on one thread and is its critical
/// path; parsing and appending run ahead of it on the other threads. At equal priority the scheduler gave
/// the correlator ~0.6 of a core while input was still being read (the rest went to the threads racing
/// ahead), and it then finished alone while the other core idled. At nice 10 it still waited ~1 s of a
/// 1M-event replay runnable but not running (`/proc/.../schedstat`): woken after waiting for a page, it
/// queued behind the ingest thread on its core. `SCHED_IDLE` threads are preempted by any waking thread
/// of normal priority, and the wait fell to ~0.75 s: 5 of 6 alternating pairs were faster (benchmarks.md,
/// fifteenth sitting). Where `SCHED_IDLE` cannot be set, nice 10 stays. Ingest yields to every other
/// process of the machine as well, which suits a batch job.
fn yield_to_correlation() {
    if !storyline_pipeline::worker::set_thread_idle_policy() {
        storyline_pipeline::worker::set_thread_nice(INGEST_NICE);
    }
}

/// Nice value of replay's reading and ingest threads where `SCHED_IDLE` is refused (workers keep the
/// process's).
const INGEST_NICE: i32 = 10;

/// Nice value of the workers' reader and commit threads.
const HELPER_NICE: i32 = 5;

/// Tells the allocator to keep freed memory instead of returning it to the OS after 10 ms (its default,
/// right for the service, whose idle tenants should cost nothing). A replay frees and reallocates
/// gigabytes as stories close and versions are built: returned pages came back as page faults that
/// zeroed them again, half of all faults, and a replay's memory is released when it exits anyway.
/// Measured: 1M events 15.32 → 14.11 s (docs/benchmarks.md).
fn keep_freed_memory() {
    /// `mi_option_purge_delay` in mimalloc.h (v2 and v3): -1 disables purging.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: called first thing in the replay, before it starts any thread (the setter is not
    // thread-safe); the value is a plain integer option.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
