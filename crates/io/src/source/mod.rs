//! Sources: where events come from besides `POST /v1/events`.
//!
//! - [`syslog`]: RFC 5424 and RFC 3164 messages over UDP and TCP (RFC 6587 octet counting or LF framing).
//! - [`file`]: follows a log file (Zeek, Suricata EVE) across rotation, remembering its position.
//!
//! Sources do not parse records or touch the store themselves: they hand batches of newline-separated
//! records of one format from one sensor to a [`RecordIngest`] (the server implements it with the
//! pipeline's `Ingestor`, which parses, stores durably and dead-letters). `storyline-io` sits below the
//! pipeline in the crate graph, so the dependency points this way.
//!
//! Delivery: a source moves on (reads more from a TCP connection, advances a file offset) only after
//! `RecordIngest::ingest` returned, that is after the records are durable or dead-lettered. Queues between
//! reading and ingesting are bounded in records and in bytes; when they are full, TCP connections and files
//! are simply not read (the sender's TCP window closes), and UDP datagrams are dropped and counted in
//! `storyline_source_dropped_total{source="syslog_udp"}`.

pub mod batch;
pub mod file;
pub mod syslog;

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a source hands its records to. Methods block until the work is durable; they are called from
/// blocking threads (`spawn_blocking` or a source's own thread), never from an async task.
pub trait RecordIngest: Send + Sync + 'static {
    /// Parses and stores `body`: newline-separated records, all of `format`, all from `sensor`. Rejected
    /// records are dead-lettered with `source` and their line number, counted from `first_line`. An
    /// `Err` means nothing of the body may be assumed stored: the source retries it.
    fn ingest(
        &self,
        body: &[u8],
        format: &str,
        sensor: &str,
        source: &str,
        first_line: u64,
    ) -> anyhow::Result<IngestOutcome>;

    /// Dead-letters a record that never reached a parser (for example: no sensor is configured for its
    /// syslog HOSTNAME).
    fn dead_letter(&self, rejected: &Rejected<'_>) -> anyhow::Result<()>;
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    pub accepted: u64,
    pub rejected: u64,
}

#[derive(Clone, Copy, Debug)]
pub struct Rejected<'a> {
    pub source: &'a str,
    pub format: &'a str,
    /// Stable machine code, like the parsers' (`unknown_sensor`).
    pub code: &'a str,
    pub reason: &'a str,
    pub raw: &'a [u8],
}

/// `[sources]` in `storyline.toml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesConfig {
    /// Where file sources keep their positions. Default: beside the data directory, `<data_dir>.sources`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// `[[sources.syslog]]`: one listener each.
    pub syslog: Vec<syslog::SyslogConfig>,
    /// `[[sources.file]]`: one followed file each.
    pub file: Vec<file::FileConfig>,
}

impl SourcesConfig {
    pub fn is_empty(&self) -> bool {
        self.syslog.is_empty() && self.file.is_empty()
    }

    /// Checks every source; errors name the key (`sources.syslog[1].format`) and what is allowed.
    /// `formats` are the known record formats.
    pub fn validate(&self, formats: &[&str]) -> anyhow::Result<()> {
        let mut seen = std::collections::HashSet::new();
        for (i, s) in self.syslog.iter().enumerate() {
            s.validate(formats)
                .map_err(|e| anyhow::anyhow!("key `sources.syslog[{i}].{e}"))?;
            if !seen.insert((s.protocol, s.listen)) {
                anyhow::bail!(
                    "key `sources.syslog[{i}].listen`: {} {} is already used by another syslog source",
                    s.protocol.name(),
                    s.listen
                );
            }
        }
        let mut paths = std::collections::HashSet::new();
        for (i, f) in self.file.iter().enumerate() {
            f.validate(formats)
                .map_err(|e| anyhow::anyhow!("key `sources.file[{i}].{e}"))?;
            if !paths.insert(&f.path) {
                anyhow::bail!(
                    "key `sources.file[{i}].path`: {} is already followed by another file source",
                    f.path.display()
                );
            }
        }
        Ok(())
    }

    /// The state directory in force for a data directory.
    pub fn state_dir_for(&self, data_dir: &Path) -> PathBuf {
        match &self.state_dir {
            Some(d) => d.clone(),
            None => match data_dir.file_name() {
                Some(name) => {
                    let mut n = name.to_os_string();
                    n.push(".sources");
                    data_dir.with_file_name(n)
                }
                None => data_dir.join("storyline-sources"),
            },
        }
    }
}

/// Sensor names end up in store keys; the parsers reject the same things, but a config error is better
/// found at start than in the dead letters.
pub(crate) fn check_sensor_name(s: &str) -> Result<(), String> {
    if s.trim().is_empty() || s.len() > 256 || s.chars().any(char::is_control) {
        return Err(format!(
            "{s:?} is not a sensor name: give a non-empty name of at most 256 bytes without control characters"
        ));
    }
    Ok(())
}

pub(crate) fn check_format(f: &str, formats: &[&str]) -> Result<(), String> {
    if !formats.contains(&f) {
        return Err(format!(
            "{f:?} is not a known format; known: {}",
            formats.join(", ")
        ));
    }
    Ok(())
}

/// Running sources. [`Running::stop`] stops reading, flushes what was read into the ingestor and
/// returns when every source has finished.
pub struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    files: Vec<file::Follower>,
    syslog_addrs: Vec<(syslog::Protocol, SocketAddr)>,
}

/// Binds every syslog listener (an address in use fails here, before anything runs) and starts every
/// source. Must be called inside a tokio runtime.
pub async fn start(
    cfg: &SourcesConfig,
    data_dir: &Path,
    max_record_bytes: usize,
    ingest: Arc<dyn RecordIngest>,
) -> anyhow::Result<Running> {
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut running = Running {
        stop,
        tasks: Vec::new(),
        files: Vec::new(),
        syslog_addrs: Vec::new(),
    };
    let mut bound = Vec::new();
    for (i, s) in cfg.syslog.iter().enumerate() {
        if let Some(t) = &s.tls {
            t.acceptor()
                .map_err(|e| anyhow::anyhow!("key `sources.syslog[{i}].tls.{e}"))?;
        }
        let b = syslog::bind(s).await.map_err(|e| {
            anyhow::anyhow!(
                "sources.syslog[{i}]: cannot listen on {} {}: {e}",
                s.protocol.name(),
                s.listen
            )
        })?;
        running.syslog_addrs.push((s.protocol, b.local_addr()?));
        bound.push((s.clone(), b));
    }
    for (s, b) in bound {
        running.tasks.extend(syslog::spawn(
            s,
            b,
            max_record_bytes,
            ingest.clone(),
            stop_rx.clone(),
        ));
    }
    if !cfg.file.is_empty() {
        let state_dir = cfg.state_dir_for(data_dir);
        std::fs::create_dir_all(&state_dir).map_err(|e| {
            anyhow::anyhow!(
                "sources.state_dir {}: cannot create it: {e}",
                state_dir.display()
            )
        })?;
        for f in &cfg.file {
            running.files.push(file::Follower::start(
                f.clone(),
                &state_dir,
                max_record_bytes,
                ingest.clone(),
            )?);
        }
    }
    Ok(running)
}

impl Running {
    /// Where each syslog source listens (with the real port when the config said port 0).
    pub fn syslog_addrs(&self) -> &[(syslog::Protocol, SocketAddr)] {
        &self.syslog_addrs
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let files = std::mem::take(&mut self.files);
        let _ = tokio::task::spawn_blocking(move || {
            for f in files {
                f.stop();
            }
        })
        .await;
    }
}

/// Waits until `stop` says true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Durations written like `200ms`, `5s`, `10m`.
pub(crate) mod duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map_err(|_| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?}: write a number and a unit, e.g. 200ms, 5s, 10m"
            ))
        })
    }
}
