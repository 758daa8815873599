use std::path::PathBuf;
use storyline_server::{Config, Service};

#[derive(clap::Args)]
#[command(
    after_help = "Minimal storyline.toml:\n  tenant = \"acme\"\n  data_dir = \"/var/lib/storyline\"\n  listen = \"0.0.0.0:7878\"\n  [output]\n  kind = \"file\"\n  path = \"/var/lib/storyline/stories/stories.ndjson\"\n\n\
Send events:  curl --data-binary @events.ndjson http://127.0.0.1:7878/v1/events\n\
Health:       curl http://127.0.0.1:7878/healthz\nMetrics:      curl http://127.0.0.1:7878/metrics"
)]
pub struct Args {
    /// Config file (TOML). Without it, defaults apply (see `storyline check`).
    #[arg(long)]
    config: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let service = Service::start(cfg, None)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(service.serve(shutdown_signal()))
}

/// Ctrl-C or SIGTERM: stop accepting, let workers publish and commit.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining ingest, committing offsets");
}
