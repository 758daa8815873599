//! One running Storyline process: store, ingest, workers, sink and the HTTP API.

use crate::config::{Config, OutputConfig};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use storyline_io::{PrettySink, RotatingFileSink, StdoutSink, StorySink};
use storyline_parse::Limits;
use storyline_pipeline::{Ingestor, WorkerPool};
use storyline_store::embedded::EmbeddedStore;
use storyline_store::Store;

pub struct Service {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub ingestor: Arc<Ingestor>,
    pool: Option<WorkerPool>,
    /// The `[[sinks]]` fanout, stopped after the workers.
    sinks: Option<Arc<storyline_io::SinkFanout>>,
}

/// How long the sinks keep delivering their backlogs on a graceful stop; the rest waits in the backlogs.
pub const SINK_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide Prometheus recorder (the `metrics` facade allows one per process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed (tests that embed two services): reuse that one.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub fn make_sink(output: &OutputConfig) -> anyhow::Result<Arc<dyn StorySink>> {
    Ok(match output {
        OutputConfig::File {
            path,
            max_bytes,
            keep,
        } => Arc::new(RotatingFileSink::open(path, *max_bytes, *keep, true)?),
        OutputConfig::Stdout => Arc::new(StdoutSink),
        OutputConfig::Pretty => Arc::new(PrettySink),
    })
}

impl Service {
    /// Opens the store and starts the workers. `sink` overrides the configured output (the demo prints).
    pub fn start(config: Config, sink: Option<Arc<dyn StorySink>>) -> anyhow::Result<Self> {
        metrics_handle();
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            anyhow::anyhow!(
                "data_dir {}: cannot create it: {e}",
                config.data_dir.display()
            )
        })?;
        let store: Arc<dyn Store> = Arc::new(
            EmbeddedStore::open(&config.data_dir, config.store.durability).map_err(|e| {
                anyhow::anyhow!(
                    "data_dir {}: cannot open the store: {e}",
                    config.data_dir.display()
                )
            })?,
        );
        let limits = Limits {
            max_record_bytes: config.limits.max_record_bytes,
        };
        let ingestor = Arc::new(Ingestor::new(
            store.clone(),
            &config.tenant,
            &config.pipeline,
            limits,
        )?);
        let mut fanout = None;
        let sink = match sink {
            Some(s) => s,
            None if !config.sinks.is_empty() => {
                let f = Arc::new(storyline_io::SinkFanout::start(
                    &config.data_dir,
                    &config.sinks,
                )?);
                fanout = Some(f.clone());
                f
            }
            None => make_sink(&config.output)?,
        };
        let owner = format!("{}-{}", hostname(), std::process::id());
        let pool = WorkerPool::start(
            store.clone(),
            sink,
            config.pipeline.clone(),
            &config.tenant,
            &owner,
        )?;
        Ok(Self {
            config,
            store,
            ingestor,
            pool: Some(pool),
            sinks: fanout,
        })
    }

    /// Serves HTTP until `shutdown` resolves, then stops the workers gracefully (commit, release leases).
    pub async fn serve(
        mut self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(self.config.listen)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "listen {}: {e} (set `listen` in the config to a free address)",
                    self.config.listen
                )
            })?;
        tracing::info!(addr = %listener.local_addr()?, tenant = %self.config.tenant, "storyline listening");
        let sources = crate::sources::start(&self.config, self.ingestor.clone()).await?;
        let app = crate::http::router(self.ingestor.clone(), self.config.limits.max_body_bytes);
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        // Sources stop reading and flush what they read before the workers stop.
        sources.stop().await;
        served?;
        self.stop()
    }

    pub fn stop(&mut self) -> anyhow::Result<()> {
        let stopped = match self.pool.take() {
            Some(pool) => pool.stop(),
            None => Ok(()),
        };
        if let Some(f) = self.sinks.take() {
            f.stop(SINK_DRAIN);
        }
        stopped
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "storyline".into())
}
