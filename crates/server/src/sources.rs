//! Runs the configured sources (`[[sources.syslog]]`, `[[sources.file]]`, see docs/sources.md) against the
//! default tenant.

use crate::config::Config;
use std::sync::Arc;
use storyline_io::source::{IngestOutcome, RecordIngest, Rejected, Running};
use storyline_pipeline::ingest::Framing;
use storyline_store::DeadLetter;

use crate::tenants::{IngestError, Tenants};

/// One tenant's ingest as the sources see it.
pub struct TenantRecords {
    pub tenants: Arc<Tenants>,
    pub tenant: String,
}

impl RecordIngest for TenantRecords {
    fn ingest(
        &self,
        body: &[u8],
        format: &str,
        sensor: &str,
        source: &str,
        first_line: u64,
    ) -> anyhow::Result<IngestOutcome> {
        let report = self
            .tenants
            .ingest(
                &self.tenant,
                body,
                Framing::Plain { format, sensor },
                source,
                first_line,
            )
            .map_err(|e| match e {
                // A source cannot answer 429: it waits and retries (the sender sees back-pressure).
                IngestError::Store(e) => e,
                other => anyhow::anyhow!("{other}"),
            })?;
        Ok(IngestOutcome {
            accepted: report.accepted,
            rejected: report.rejected,
        })
    }

    fn dead_letter(&self, r: &Rejected<'_>) -> anyhow::Result<()> {
        let ingestor = self
            .tenants
            .ingestor(&self.tenant)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let keep = r.raw.len().min(ingestor.limits.max_record_bytes);
        metrics::counter!("storyline_events_rejected_total", "tenant" => self.tenant.clone(), "code" => r.code.to_string())
            .increment(1);
        ingestor.store().put_dead_letters(&[DeadLetter {
            id: 0,
            tenant: self.tenant.clone(),
            received: storyline_model::Timestamp::now(),
            source: r.source.to_string(),
            line: None,
            format: Some(r.format.to_string()),
            code: r.code.to_string(),
            reason: r.reason.to_string(),
            raw: r.raw[..keep].to_vec(),
        }])?;
        Ok(())
    }
}

/// Binds and starts every configured source. Must run inside the tokio runtime that serves.
pub async fn start(config: &Config, tenants: Arc<Tenants>) -> anyhow::Result<Running> {
    storyline_io::source::start(
        &config.sources,
        &config.data_dir,
        config.limits.max_record_bytes,
        Arc::new(TenantRecords {
            tenant: config.tenant.clone(),
            tenants,
        }),
    )
    .await
}
