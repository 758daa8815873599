//! Builds the [`Target`] of a configured sink.

use super::config::{SinkConfig, SinkKind};
use super::deliver::{Batch, DeliveryError, ItemFailure, Target};
use super::encode::Encoding;
use super::fanout::TargetFactory;
use std::io::Write;

/// Checks what can be checked before the delivery thread starts, and returns the target's builder.
pub fn factory(cfg: &SinkConfig) -> anyhow::Result<TargetFactory> {
    let cfg = cfg.clone();
    // Resolve secrets now so a missing environment variable fails the start, not the thread.
    for (key, v) in [
        ("token", &cfg.token),
        ("api_key", &cfg.api_key),
        ("password", &cfg.password),
    ] {
        if let Some(v) = v {
            super::config::resolve_secret(key, v)
                .map_err(|e| anyhow::anyhow!("sink {:?}: {e}", cfg.name))?;
        }
    }
    Ok(match cfg.kind() {
        SinkKind::Http | SinkKind::SplunkHec | SinkKind::Elasticsearch => {
            Box::new(move || Ok(Box::new(super::http::HttpTarget::new(&cfg)?) as Box<dyn Target>))
        }
        SinkKind::Syslog => {
            // Read the CA and client certificate now: a missing or bad file is a start error.
            if cfg.protocol == Some(super::config::SyslogProtocol::Tls) {
                super::syslog::tls_client_config(
                    &cfg.tls.clone().unwrap_or_default(),
                    cfg.address.as_deref().unwrap_or_default(),
                )
                .map_err(|e| anyhow::anyhow!("sink {:?}: key `{e}", cfg.name))?;
            }
            Box::new(move || {
                Ok(Box::new(super::syslog::SyslogTarget::new(&cfg)?) as Box<dyn Target>)
            })
        }
        SinkKind::ObjectStore => Box::new(move || {
            Ok(Box::new(super::object::ObjectTarget::new(&cfg)?) as Box<dyn Target>)
        }),
        SinkKind::File => {
            let opts = super::file::FileOptions {
                max_bytes: cfg.max_bytes.unwrap_or(256 << 20),
                keep: cfg.keep.unwrap_or(16),
                sync: true,
                rotate_every: cfg.rotate_every,
                gzip: cfg.gzip,
                encoding: cfg.encoding,
            };
            let path = cfg.path.clone().unwrap_or_default();
            // Open now: a path that cannot be written is a start error.
            let sink = super::file::RotatingFileSink::with_options(&path, opts)
                .map_err(|e| anyhow::anyhow!("sink {:?}: {e:#}", cfg.name))?;
            let mut sink = Some(sink);
            Box::new(move || {
                let sink = sink
                    .take()
                    .ok_or_else(|| anyhow::anyhow!("the file sink is already open"))?;
                Ok(Box::new(super::file::FileTarget(sink)) as Box<dyn Target>)
            })
        }
        SinkKind::Stdout => {
            let enc = cfg.encoding;
            Box::new(move || Ok(Box::new(StdoutTarget(enc)) as Box<dyn Target>))
        }
    })
}

/// One line per story on standard output.
pub struct StdoutTarget(pub Encoding);

impl Target for StdoutTarget {
    fn deliver(&mut self, batch: &Batch<'_>) -> Result<Vec<ItemFailure>, DeliveryError> {
        let mut buf = Vec::with_capacity(batch.stories.len() * 600);
        for s in batch.stories {
            self.0.line(s, &mut buf);
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&buf)
            .and_then(|_| out.flush())
            .map_err(DeliveryError::transient)?;
        Ok(Vec::new())
    }
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "storyline".into())
}
