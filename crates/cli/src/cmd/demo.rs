//! `storyline demo`: the service on the embedded store, fed live synthetic traffic, printing stories.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storyline_generate::{GenConfig, Generator};
use storyline_io::PrettySink;
use storyline_model::Timestamp;
use storyline_pipeline::ingest::Framing;
use storyline_server::{Config, Service};

#[derive(clap::Args)]
#[command(
    after_help = "Stories appear once their session has been quiet for --gap of event time.\n\
While it runs: curl http://127.0.0.1:7878/metrics   (or --listen elsewhere)"
)]
pub struct Args {
    /// Where the embedded store keeps its files.
    #[arg(long, default_value = "storyline-demo")]
    data_dir: PathBuf,
    /// Stop after this long (e.g. 60s); default: until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Sessions per second of generated traffic.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Session gap (short, so stories show up quickly).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    gap: Duration,
    /// HTTP address for ingest, /healthz and /metrics while the demo runs.
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: std::net::SocketAddr,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut cfg = Config {
        tenant: "demo".into(),
        data_dir: a.data_dir.clone(),
        listen: a.listen,
        ..Config::default()
    };
    cfg.pipeline.correlate.gap = a.gap;
    cfg.pipeline.commit_interval = Duration::from_secs(1);
    let sink = Arc::new(super::Counting::new(PrettySink));
    let service = Service::start(cfg, Some(sink.clone()))?;
    let tenants = service.tenants.clone();
    eprintln!(
        "storyline demo: store in {}, HTTP on http://{} (/metrics, /healthz, POST /v1/events); Ctrl-C to stop",
        a.data_dir.display(),
        a.listen
    );

    let gen_cfg = GenConfig {
        events: u64::MAX / 2,
        seed: a.seed,
        rate: a.rate,
        start: Timestamp::now(),
        late: 0.05,
        max_late: Duration::from_secs(90),
        large: 0.0,
        ..GenConfig::default()
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fed = Arc::new(AtomicU64::new(0));
    let feeder = {
        let (stop, fed) = (stop.clone(), fed.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut gen = Generator::new(&gen_cfg).peekable();
            while !stop.load(Ordering::Relaxed) {
                let now = Timestamp::now();
                let mut body = String::new();
                let mut n = 0;
                while let Some(item) = gen.next_if(|g| g.arrival <= now) {
                    body.push_str(&item.envelope);
                    body.push('\n');
                    n += 1;
                }
                if n > 0 {
                    let report = tenants
                        .ingest(
                            tenants.default_tenant(),
                            body.as_bytes(),
                            Framing::Envelopes,
                            "demo",
                            1,
                        )
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    fed.fetch_add(report.accepted, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        })
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let duration = a.duration;
    let shutdown = async move {
        match duration {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {},
                    _ = super::run::shutdown_signal() => {},
                }
            }
            None => super::run::shutdown_signal().await,
        }
    };
    let served = rt.block_on(service.serve(shutdown));
    stop.store(true, Ordering::Relaxed);
    let fed_result = feeder
        .join()
        .map_err(|_| anyhow::anyhow!("the traffic feeder panicked"))?;
    served?;
    fed_result?;
    eprintln!(
        "demo ran {:.0}s: {} events in, {} story versions out (open stories continue on the next run from {})",
        started.elapsed().as_secs_f64(),
        fed.load(Ordering::Relaxed),
        sink.versions(),
        a.data_dir.display()
    );
    Ok(())
}
