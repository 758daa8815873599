//! `storyline bench`: benchmarks that need the whole service in one process (speed targets live here and
//! in `cargo bench`, never in timed tests).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storyline_generate::{GenConfig, Generator};
use storyline_io::StorySink;
use storyline_model::{Story, Timestamp};
use storyline_pipeline::ingest::Framing;
use storyline_server::{Config, Service};

mod replay;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Many tenants in one process, most idle: memory, threads and CPU while idle, wake-up latency, and
    /// the story latency of quiet tenants while one floods.
    Tenants(TenantArgs),
    /// The correlation engine alone, on one thread, over recorded input: the part of a replay that runs
    /// on one core (a partition's engine). Input is parsed and linked before the clock starts, as a
    /// worker's reader thread does; ingesting, closing, building the versions and the final flush are
    /// timed.
    Correlate(CorrelateArgs),
    /// `storyline replay` end to end, run after run as a child process (wall time until it is reaped, CPU
    /// time, peak memory), optionally alternating with a baseline binary: the replay benchmark of
    /// docs/benchmarks.md as one command.
    Replay(replay::ReplayArgs),
}

#[derive(clap::Args)]
pub struct CorrelateArgs {
    /// NDJSON envelopes, as `storyline replay` takes them (e.g. from `storyline generate`).
    #[arg(long)]
    input: PathBuf,
    /// Events between two `advance` calls: about what a worker cycle of a fast replay reads.
    #[arg(long, default_value_t = 65_536)]
    cycle_events: usize,
    /// Timed passes over the input; each starts from an empty engine. The median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// How many events ahead the engine looks up index entries (`Correlator::ingest_batch`), each given
    /// value measured in turn, run after run (e.g. `--warm-ahead 0,4,8`; 0 is off). Defaults to what the
    /// workers use.
    #[arg(long, value_delimiter = ',', default_values_t = [storyline_correlate::WARM_AHEAD])]
    warm_ahead: Vec<usize>,
    /// How the final flush builds its versions, each given value measured in turn with each warm-ahead
    /// setting: `move` (the stories are moved into them, as a replay's end does,
    /// `Correlator::flush_and_forget`) or `copy` (the state stays, as a service's drain keeps it).
    #[arg(long, value_delimiter = ',', default_values_t = [FinalFlush::Move], value_enum)]
    final_flush: Vec<FinalFlush>,
    /// When stories are published, as `storyline replay --publish` takes it: `final` (a replay's default)
    /// or `on-close` (the service's way, about twice the versions).
    #[arg(long, default_value = "final", value_parser = ["final", "on-close"])]
    publish: String,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FinalFlush {
    Move,
    Copy,
}

impl std::fmt::Display for FinalFlush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FinalFlush::Move => "move",
            FinalFlush::Copy => "copy",
        })
    }
}

#[derive(clap::Args)]
pub struct TenantArgs {
    /// Tenants in the process.
    #[arg(long, default_value_t = 1000)]
    tenants: usize,
    /// Of them, how many send traffic.
    #[arg(long, default_value_t = 10)]
    active: usize,
    /// Sessions per second each active tenant sends.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// How long each measured phase lasts.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    phase: Duration,
    /// Events per second the flooding tenant is held to in the last phase.
    #[arg(long, default_value_t = 2000)]
    flood_quota: u64,
    /// Idle tenants woken one by one to time the wake-up.
    #[arg(long, default_value_t = 20)]
    wakes: usize,
    /// Where the embedded store keeps its files (a fresh temporary directory by default).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Records when each tenant's stories come out.
#[derive(Default)]
struct Clock {
    /// (tenant, published at, the story's last event time)
    published: Mutex<Vec<(String, Timestamp, Timestamp)>>,
    versions: AtomicU64,
}

impl StorySink for Clock {
    fn publish(&self, stories: &[Story]) -> anyhow::Result<()> {
        let now = Timestamp::now();
        self.versions
            .fetch_add(stories.len() as u64, Ordering::Relaxed);
        let mut p = self.published.lock().unwrap_or_else(|p| p.into_inner());
        for s in stories {
            p.push((s.tenant.to_string(), now, s.last_seen));
        }
        Ok(())
    }
}

/// (resident bytes, threads, CPU seconds user+system) of this process, from /proc.
fn usage() -> (u64, u64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesized command name; utime and stime are the 14th and 15th overall.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (
        field("VmRSS:") * 1024,
        field("Threads:"),
        (ticks(11) + ticks(12)) / hz,
    )
}

/// The median (the mean of the middle two of an even count; NaN of none). Sorts `v`.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn mb(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Tenants(a) => tenants(a),
        Command::Correlate(a) => correlate(a),
        Command::Replay(a) => replay::run(a),
    }
}

fn correlate(a: CorrelateArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::BufRead;
    use storyline_correlate::{keys, Config, Correlator};
    use storyline_model::EventKey;
    let cfg = Config::default();
    let limits = storyline_parse::Limits::default();
    let file =
        std::fs::File::open(&a.input).with_context(|| format!("opening {}", a.input.display()))?;
    let bar = indicatif::ProgressBar::new(file.metadata()?.len());
    if !super::progress_wanted() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut input = Vec::new();
    let mut rejected = 0u64;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {} line {}", a.input.display(), i + 1))?;
        bar.inc(line.len() as u64 + 1);
        match storyline_parse::parse_envelope(line.as_bytes(), &limits) {
            Ok(p) => {
                let key = EventKey::new(&p.sensor, &p.event.event.id);
                let links = keys::links(&p.event, &cfg);
                // Buckets as a fast replay fills them: ~100k events per second of insert time.
                let bucket = (input.len() / 100_000) as i64 * 1000;
                input.push((p.event, key, bucket, links));
            }
            Err(_) => rejected += 1,
        }
    }
    bar.finish_and_clear();
    eprintln!("{} events parsed ({rejected} rejected)", input.len());
    let settings: Vec<(usize, FinalFlush)> = a
        .warm_ahead
        .iter()
        .flat_map(|&ahead| a.final_flush.iter().map(move |&f| (ahead, f)))
        .collect();
    let mut times = vec![Vec::new(); settings.len()];
    // Settings take turns within each run, so a noisy machine slows them alike.
    for (run, (w, &(ahead, final_flush))) in
        (0..a.runs.max(1)).flat_map(|run| settings.iter().enumerate().map(move |w| (run, w)))
    {
        let mut c = Correlator::new("bench", cfg.clone());
        c.stop_recording_changes();
        c.publish_only_final(a.publish == "final");
        let mut out = Vec::new();
        let (mut versions, mut in_ingest, mut in_advance) = (0usize, 0.0, 0.0);
        let started = Instant::now();
        for cycle in input.chunks(a.cycle_events.max(1)) {
            let t0 = Instant::now();
            c.ingest_batch(cycle, ahead);
            let t1 = Instant::now();
            let floor = cycle.last().map_or(0, |x| x.2) - 2000;
            c.advance(c.max_event_time(), floor, &mut out);
            in_ingest += (t1 - t0).as_secs_f64();
            in_advance += t1.elapsed().as_secs_f64();
            versions += out.len();
            out.clear();
        }
        let t_flush = Instant::now();
        match final_flush {
            FinalFlush::Move => c.flush_and_forget(&mut out),
            FinalFlush::Copy => c.flush(&mut out),
        }
        let flush = t_flush.elapsed().as_secs_f64();
        versions += out.len();
        let total = started.elapsed().as_secs_f64();
        drop(out);
        eprintln!(
            "run {} (warm ahead {ahead}, final flush {final_flush}): {total:.2}s ({:.0} events/s): ingest {in_ingest:.2}s, advance {in_advance:.2}s, flush {flush:.2}s; {versions} versions",
            run + 1,
            input.len() as f64 / total
        );
        times[w].push(total);
    }
    for ((ahead, final_flush), times) in settings.iter().zip(&mut times) {
        let m = median(times);
        println!(
            "correlate: {} events, median {m:.2}s = {:.0} events/s on one thread (warm ahead {ahead}, final flush {final_flush})",
            input.len(),
            input.len() as f64 / m
        );
    }
    Ok(())
}

/// Feeds generated sessions of one tenant at its wall-clock pace until `until`.
fn feed(
    service: &Service,
    tenant: &str,
    seed: u64,
    rate: f64,
    until: Instant,
) -> anyhow::Result<u64> {
    let gen_cfg = GenConfig {
        events: u64::MAX / 2,
        seed,
        rate,
        start: Timestamp::now(),
        late: 0.0,
        large: 0.0,
        // Event time = send time, so publish time minus a story's last event time is its latency.
        skew: Duration::ZERO,
        ..GenConfig::default()
    };
    let mut gen = Generator::new(&gen_cfg).peekable();
    let mut sent = 0;
    while Instant::now() < until {
        let now = Timestamp::now();
        let mut body = String::new();
        while let Some(item) = gen.next_if(|g| g.arrival <= now) {
            body.push_str(&item.envelope);
            body.push('\n');
        }
        if !body.is_empty() {
            match service
                .tenants
                .ingest(tenant, body.as_bytes(), Framing::Envelopes, "bench", 1)
            {
                Ok(r) => sent += r.accepted,
                Err(storyline_server::tenants::IngestError::Quota { retry_after, .. }) => {
                    std::thread::sleep(retry_after.min(Duration::from_millis(200)));
                }
                Err(e) => anyhow::bail!("{tenant}: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(sent)
}

fn tenants(a: TenantArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let data_dir = a
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().join("data"));
    let mut cfg = Config {
        tenant: "t0000".into(),
        data_dir,
        listen: "127.0.0.1:0".parse()?,
        ..Config::default()
    };
    cfg.pipeline.correlate.gap = Duration::from_secs(2);
    cfg.pipeline.commit_interval = Duration::from_millis(500);
    cfg.tenants.idle_after = Duration::from_secs(5);
    let sink = Arc::new(Clock::default());
    let (rss0, threads0, _) = usage();
    let service = Service::start(cfg, Some(sink.clone()))?;
    let ids: Vec<String> = (0..a.tenants).map(|i| format!("t{i:04}")).collect();
    let started = Instant::now();
    for id in ids.iter().skip(1) {
        service.tenants.create(id, None)?;
    }
    eprintln!(
        "created {} tenants in {:.1} s",
        a.tenants,
        started.elapsed().as_secs_f64()
    );
    // Everyone idle (the default tenant falls asleep too once idle_after passes).
    std::thread::sleep(service.tenants.idle_after() + Duration::from_secs(1));
    let (rss_idle0, threads_idle, cpu0) = usage();
    std::thread::sleep(a.phase);
    let (rss_idle, _, cpu1) = usage();
    let idle_cpu = (cpu1 - cpu0) / a.phase.as_secs_f64();

    // Wake-up: one event to an asleep tenant, acknowledged (durable) — against the same on an awake one.
    let line = |i: usize| {
        serde_json::json!({"format": "ecs", "sensor": "fw", "record": {
            "@timestamp": Timestamp::now().to_rfc3339(), "event": {"id": format!("w{i}")},
            "source": {"ip": "10.9.0.1", "port": 1000 + i}, "destination": {"ip": "10.9.0.2", "port": 443},
            "network": {"transport": "tcp"}}})
        .to_string()
            + "\n"
    };
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for (i, id) in ids.iter().rev().take(a.wakes).enumerate() {
        let t = Instant::now();
        service
            .tenants
            .ingest(id, line(i).as_bytes(), Framing::Envelopes, "bench", 1)?;
        cold.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        service.tenants.ingest(
            id,
            line(i + 10_000).as_bytes(),
            Framing::Envelopes,
            "bench",
            1,
        )?;
        warm.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let woken_stories_by = Instant::now() + Duration::from_secs(30);
    while Instant::now() < woken_stories_by {
        let p = sink.published.lock().unwrap_or_else(|p| p.into_inner());
        let woken: std::collections::HashSet<&str> = p
            .iter()
            .filter(|(t, _, _)| ids.iter().rev().take(a.wakes).any(|i| i == t))
            .map(|(t, _, _)| t.as_str())
            .collect();
        if woken.len() >= a.wakes {
            break;
        }
        drop(p);
        std::thread::sleep(Duration::from_millis(200));
    }

    // Traffic: `active` tenants send, the rest stay idle; then the same while one more tenant floods,
    // without and with a quota.
    let active: Vec<&str> = ids.iter().take(a.active).map(String::as_str).collect();
    let gap = service.config.pipeline.correlate.gap;
    let quiet = traffic(&service, &sink, &active, a.rate, a.phase, None, gap)?;
    let flooder = ids.last().map(String::as_str).unwrap_or("t0000");
    let flooded = traffic(
        &service,
        &sink,
        &active,
        a.rate,
        a.phase,
        Some(flooder),
        gap,
    )?;
    service.tenants.set_quotas(
        flooder,
        storyline_server::tenants::registry::Quotas {
            events_per_second: Some(a.flood_quota),
            ..Default::default()
        },
    )?;
    let limited = traffic(
        &service,
        &sink,
        &active,
        a.rate,
        a.phase,
        Some(flooder),
        gap,
    )?;
    let versions = sink.versions.load(Ordering::Relaxed);
    service.tenants.stop()?;

    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| tenants / active | {} / {} ({} sessions/s each) |",
        a.tenants, a.active, a.rate
    );
    println!(
        "| RSS: before start / {} tenants all idle / {} active | {:.1} MB / {:.1} MB / {:.1} MB |",
        a.tenants,
        a.active,
        mb(rss0),
        mb(rss_idle0.max(rss_idle)),
        mb(quiet.rss)
    );
    println!(
        "| threads: before start / all idle / {} active | {} / {} / {} |",
        a.active, threads0, threads_idle, quiet.threads
    );
    println!(
        "| CPU, all idle ({:.0} s) | {:.2}% of one core |",
        a.phase.as_secs_f64(),
        idle_cpu * 100.0
    );
    println!(
        "| first event to an asleep tenant, acknowledged (median of {}) | {:.1} ms |",
        cold.len(),
        median(&mut cold)
    );
    println!(
        "| next event to the same, now awake (median) | {:.1} ms |",
        median(&mut warm)
    );
    for (name, r) in [
        ("active tenants only", &quiet),
        ("+ one tenant flooding, no quota", &flooded),
        (
            &*format!("+ the flood held to {}/s by its quota", a.flood_quota),
            &limited,
        ),
    ] {
        println!(
            "| {name}: events in (active / flooder), CPU | {} / {}, {:.0}% of one core |",
            r.events,
            r.flood_events,
            r.cpu * 100.0
        );
        println!(
            "| {name}: active tenants' story latency after the gap, median / p99 ({} stories) | {:.2} s / {:.2} s |",
            r.latencies, r.median, r.p99
        );
    }
    println!("| story versions published | {versions} |");
    Ok(())
}

struct Phase {
    events: u64,
    flood_events: u64,
    cpu: f64,
    rss: u64,
    threads: u64,
    latencies: usize,
    median: f64,
    p99: f64,
}

/// One traffic phase: `active` tenants at `rate`, optionally `flooder` as fast as it is let. Story
/// latency: publication time minus the story's last event time minus the gap (what the engine must wait).
fn traffic(
    service: &Service,
    sink: &Clock,
    active: &[&str],
    rate: f64,
    phase: Duration,
    flooder: Option<&str>,
    gap: Duration,
) -> anyhow::Result<Phase> {
    let start = Timestamp::now();
    let until = Instant::now() + phase;
    let (_, _, cpu0) = usage();
    let sent = AtomicU64::new(0);
    let flooded = AtomicU64::new(0);
    let mut peak = (0u64, 0u64);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let mut handles: Vec<_> = active
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let sent = &sent;
                s.spawn(move || -> anyhow::Result<()> {
                    let seed = start.0 as u64 ^ i as u64;
                    sent.fetch_add(feed(service, id, seed, rate, until)?, Ordering::Relaxed);
                    Ok(())
                })
            })
            .collect();
        if let Some(f) = flooder {
            let flooded = &flooded;
            handles.push(s.spawn(move || -> anyhow::Result<()> {
                let gen_cfg = GenConfig {
                    events: u64::MAX / 2,
                    seed: start.0 as u64,
                    start: Timestamp::now(),
                    rate: 100_000.0,
                    large: 0.0,
                    late: 0.0,
                    ..GenConfig::default()
                };
                let mut gen = Generator::new(&gen_cfg);
                while Instant::now() < until {
                    let mut body = String::new();
                    for item in gen.by_ref().take(2000) {
                        body.push_str(&item.envelope);
                        body.push('\n');
                    }
                    match service
                        .tenants
                        .ingest(f, body.as_bytes(), Framing::Envelopes, "flood", 1)
                    {
                        Ok(r) => {
                            flooded.fetch_add(r.accepted, Ordering::Relaxed);
                        }
                        Err(storyline_server::tenants::IngestError::Quota {
                            retry_after, ..
                        }) => {
                            std::thread::sleep(retry_after.min(Duration::from_millis(500)));
                        }
                        Err(e) => anyhow::bail!("{f}: {e}"),
                    }
                }
                Ok(())
            }));
        }
        while Instant::now() < until {
            let (rss, threads, _) = usage();
            peak = (peak.0.max(rss), peak.1.max(threads));
            std::thread::sleep(Duration::from_millis(500));
        }
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("feeder panicked"))??;
        }
        Ok(())
    })?;
    let (_, _, cpu1) = usage();
    // Let the last sessions close and publish.
    std::thread::sleep(gap + Duration::from_secs(4));
    let mut lat: Vec<f64> = sink
        .published
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(t, at, _)| *at >= start && active.contains(&t.as_str()))
        .map(|(_, at, last)| (at.0 - last.0) as f64 / 1e9 - gap.as_secs_f64())
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let p99 = lat
        .get((lat.len() * 99 / 100).min(lat.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN);
    Ok(Phase {
        events: sent.load(Ordering::Relaxed),
        flood_events: flooded.load(Ordering::Relaxed),
        cpu: (cpu1 - cpu0) / phase.as_secs_f64(),
        rss: peak.0,
        threads: peak.1,
        latencies: lat.len(),
        median: median(&mut lat.clone()),
        p99,
    })
}
