//! Runs the configured sources (`[[sources.syslog]]`, `[[sources.file]]`, see docs/sources.md) against the
//! service's [`Ingestor`].

use crate::config::Config;
use std::sync::Arc;
use storyline_io::source::{IngestOutcome, RecordIngest, Rejected, Running};
use storyline_pipeline::ingest::Framing;
use storyline_pipeline::Ingestor;
use storyline_store::DeadLetter;

/// The pipeline's ingestor as the sources see it.
pub struct IngestorRecords(pub Arc<Ingestor>);

impl RecordIngest for IngestorRecords {
    fn ingest(
        &self,
        body: &[u8],
        format: &str,
        sensor: &str,
        source: &str,
        first_line: u64,
    ) -> anyhow::Result<IngestOutcome> {
        let report =
            self.0
                .ingest_from_line(body, Framing::Plain { format, sensor }, source, first_line)?;
        Ok(IngestOutcome {
            accepted: report.accepted,
            rejected: report.rejected,
        })
    }

    fn dead_letter(&self, r: &Rejected<'_>) -> anyhow::Result<()> {
        let keep = r.raw.len().min(self.0.limits.max_record_bytes);
        metrics::counter!("storyline_events_rejected_total", "tenant" => self.0.tenant().to_string(), "code" => r.code.to_string())
            .increment(1);
        self.0.store().put_dead_letters(&[DeadLetter {
            id: 0,
            tenant: self.0.tenant().to_string(),
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
pub async fn start(config: &Config, ingestor: Arc<Ingestor>) -> anyhow::Result<Running> {
    storyline_io::source::start(
        &config.sources,
        &config.data_dir,
        config.limits.max_record_bytes,
        Arc::new(IngestorRecords(ingestor)),
    )
    .await
}
