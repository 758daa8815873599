//! One running Storyline process: store, ingest, workers, sink and the HTTP API.

use crate::config::{Config, OutputConfig};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use storyline_io::{PrettySink, RotatingFileSink, StdoutSink, StorySink};
use storyline_parse::Limits;
use storyline_store::Store;

use crate::tenants::Tenants;

pub struct Service {
    pub config: Config,
    pub store: Arc<dyn Store>,
    /// The same store with its health (`GET /readyz`).
    pub health: Arc<crate::store::ServiceStore>,
    /// Every tenant's ingest and workers; `config.tenant` is the default one.
    pub tenants: Arc<Tenants>,
    /// The `[[sinks]]` fanout, stopped after the workers.
    sinks: Option<Arc<storyline_io::SinkFanout>>,
    stopped: bool,
}

/// How long the sinks keep delivering their backlogs on a graceful stop; the rest waits in the backlogs.
pub const SINK_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Gauges not set for this long are dropped from `/metrics`: a partition that moved to another process
/// stops being reported here instead of freezing at its last value (the backlog an autoscaler reads).
pub const STALE_GAUGE: std::time::Duration = std::time::Duration::from_secs(30);

/// The process-wide Prometheus recorder (the `metrics` facade allows one per process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .idle_timeout(metrics_util::MetricKindMask::GAUGE, Some(STALE_GAUGE))
                .build_recorder();
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
    /// Opens the configured store (`[store] kind`) and starts the workers. `sink` overrides the configured
    /// output (the demo prints). An unreachable PostgreSQL does not stop the start: the service runs not
    /// ready (`/readyz` says why, ingest answers 503) until the database answers.
    pub fn start(config: Config, sink: Option<Arc<dyn StorySink>>) -> anyhow::Result<Self> {
        metrics_handle();
        let health = crate::store::ServiceStore::start(&config.store, &config.data_dir)?;
        let store: Arc<dyn Store> = health.clone();
        let limits = Limits {
            max_record_bytes: config.limits.max_record_bytes,
        };
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
        let tenants = Tenants::start(
            store.clone(),
            config.pipeline.clone(),
            limits,
            config.tenants.clone(),
            sink,
            owner,
            &config.tenant,
        )?;
        record_config_change(&tenants, &config);
        Ok(Self {
            config,
            store,
            health,
            tenants,
            sinks: fanout,
            stopped: false,
        })
    }

    /// Serves HTTP until `shutdown` resolves, then stops the workers gracefully (commit, release leases).
    pub async fn serve(
        mut self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let served = self.serve_http(shutdown).await;
        // Stopping joins threads, and dropping the last handle of a PostgreSQL store closes its connections
        // with blocking calls: neither may run on the runtime's own thread.
        let stopped = tokio::task::spawn_blocking(move || {
            let r = self.stop();
            drop(self);
            r
        })
        .await
        .map_err(|e| anyhow::anyhow!("stopping the service: {e}"))?;
        served.and(stopped)
    }

    async fn serve_http(
        &mut self,
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
        let sources = crate::sources::start(&self.config, self.tenants.clone()).await?;
        let app = crate::http::router_with_health(
            self.tenants.clone(),
            self.config.limits.max_body_bytes,
            Some(self.health.clone()),
        );
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        // Sources stop reading and flush what they read before the workers stop.
        sources.stop().await;
        Ok(served?)
    }

    pub fn stop(&mut self) -> anyhow::Result<()> {
        if std::mem::replace(&mut self.stopped, true) {
            return Ok(());
        }
        let stopped = self.tenants.stop();
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

/// Notes in the default tenant's job history which sections of the effective configuration differ from
/// the last start's. Only section names and digests are kept: a config holds secrets (database URLs, sink
/// tokens) that the history, readable through the API, must not show.
fn record_config_change(tenants: &Tenants, config: &Config) {
    let key = "config/sections";
    let Ok(toml::Value::Table(table)) = toml::Value::try_from(config) else {
        return;
    };
    let digests: std::collections::BTreeMap<String, String> = table
        .iter()
        .map(|(k, v)| {
            let text = toml::to_string(&toml::Value::Table(
                std::iter::once((k.clone(), v.clone())).collect(),
            ))
            .unwrap_or_default();
            (k.clone(), crate::tenants::registry::hash_token(&text))
        })
        .collect();
    let last: Option<std::collections::BTreeMap<String, String>> =
        match tenants.store().records(key, None, 1) {
            Ok(found) => found
                .into_iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| serde_json::from_str(&v).ok()),
            // The store is not reachable yet: nothing to compare with; the next start records it.
            Err(_) => return,
        };
    if last.as_ref() == Some(&digests) {
        return;
    }
    if let Some(last) = &last {
        let changed: Vec<&str> = digests
            .keys()
            .chain(last.keys())
            .filter(|k| digests.get(*k) != last.get(*k))
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        tenants.registry.note(
            tenants.default_tenant(),
            "config_changed",
            format!("changed: {}", changed.join(", ")),
        );
    }
    let json = serde_json::to_string(&digests).unwrap_or_default();
    if let Err(e) = tenants.store().put_record(key, Some(&json)) {
        tracing::warn!(error = %e, "could not record the configuration's digests");
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "storyline".into())
}
