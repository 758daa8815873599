//! The syslog source: one listener per `[[sources.syslog]]`, UDP or TCP.
//!
//! Each message's MSG part (see [`header`]) is one record of the listener's `format`, from the sensor
//! named by the listener's `hostname_sensors` (by syslog HOSTNAME), `app_name_sensors` (by APP-NAME or
//! RFC 3164 TAG), or else its fixed `sensor`; a message matching none is dead-lettered with code
//! `unknown_sensor` (the whole frame kept). Newlines inside a message (possible with octet counting) become
//! spaces, because a record is one line.
//!
//! TCP is the zero-loss choice: when the store falls behind, connections are not read, and the sender's
//! TCP window closes. UDP cannot push back: a datagram that finds the queue full is dropped and counted in
//! `storyline_source_dropped_total{source="syslog_udp"}` (datagrams the kernel drops because its socket
//! buffer is full are not seen at all: see `RcvbufErrors` in `/proc/net/snmp`).

pub mod framing;
pub mod header;

use super::batch::{self, Queue, Target};
use super::{check_format, check_sensor_name, duration, stopped, RecordIngest};
use framing::{Decoder, TcpFraming};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    fn metric(self) -> &'static str {
        match self {
            Protocol::Tcp => "syslog_tcp",
            Protocol::Udp => "syslog_udp",
        }
    }
}

/// `[[sources.syslog]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    pub listen: SocketAddr,
    pub protocol: Protocol,
    /// Format of every record (MSG) received here, e.g. `panos`.
    pub format: String,
    /// Sensor of messages no map below names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// Syslog HOSTNAME → sensor (exact match). Checked first.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hostname_sensors: BTreeMap<String, String>,
    /// APP-NAME (RFC 5424) or TAG (RFC 3164) → sensor (exact match). Checked after `hostname_sensors`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub app_name_sensors: BTreeMap<String, String>,
    /// TCP only: `auto` (per frame: a leading digit means octet counting), `octet_counting`,
    /// `non_transparent` (LF-terminated).
    #[serde(default)]
    pub framing: TcpFraming,
    /// A batch is ingested when it holds this many records...
    #[serde(default = "default_batch_records")]
    pub batch_records: usize,
    /// ...or this long after its first record arrived.
    #[serde(default = "default_batch_wait", with = "duration")]
    pub batch_wait: Duration,
    /// Bytes read but not yet acknowledged by the store, at most. Beyond it TCP stops reading, UDP drops.
    #[serde(default = "default_queue_bytes")]
    pub queue_bytes: usize,
    /// TCP connections served at once; more wait in the listen backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// TCP only: serve TLS (RFC 5425) with this certificate and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// `tls = { cert = "...", key = "..." }` of a TCP syslog listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM: the server certificate, then any intermediates.
    pub cert: std::path::PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
}

impl TlsConfig {
    /// Reads the certificate and key. Errors name the file.
    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|e| format!("cert`: {}: {e}", self.cert.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "cert`: {}: no PEM certificate in it",
                self.cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("key`: {}: {e}", self.key.display()))?;
        // The provider is named here rather than taken from a process-wide default, which another crate
        // in the process may or may not have installed.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cert`: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                format!(
                    "key`: {} does not go with {}: {e}",
                    self.key.display(),
                    self.cert.display()
                )
            })?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

fn default_batch_records() -> usize {
    1000
}

fn default_batch_wait() -> Duration {
    Duration::from_millis(200)
}

fn default_queue_bytes() -> usize {
    64 << 20
}

fn default_max_connections() -> usize {
    256
}

/// A batch is also cut at this size.
const BATCH_BYTES: usize = 8 << 20;

/// Room for a syslog header on top of the record limit before a frame counts as oversized.
pub const HEADER_ALLOWANCE: usize = 8192;

/// Largest UDP payload.
const DATAGRAM: usize = 65_535;

impl SyslogConfig {
    /// A minimal listener config, with defaults for the rest.
    pub fn new(listen: SocketAddr, protocol: Protocol, format: &str) -> Self {
        Self {
            listen,
            protocol,
            format: format.into(),
            sensor: None,
            hostname_sensors: BTreeMap::new(),
            app_name_sensors: BTreeMap::new(),
            framing: TcpFraming::Auto,
            batch_records: default_batch_records(),
            batch_wait: default_batch_wait(),
            queue_bytes: default_queue_bytes(),
            max_connections: default_max_connections(),
            tls: None,
        }
    }

    /// Errors start with the key's name (the caller prefixes `sources.syslog[i].`).
    pub(crate) fn validate(&self, formats: &[&str]) -> Result<(), String> {
        check_format(&self.format, formats).map_err(|e| format!("format`: {e}"))?;
        if self.sensor.is_none()
            && self.hostname_sensors.is_empty()
            && self.app_name_sensors.is_empty()
        {
            return Err("sensor`: give `sensor`, or map names to sensors with `hostname_sensors` or `app_name_sensors`".into());
        }
        if let Some(s) = &self.sensor {
            check_sensor_name(s).map_err(|e| format!("sensor`: {e}"))?;
        }
        for (key, map) in [
            ("hostname_sensors", &self.hostname_sensors),
            ("app_name_sensors", &self.app_name_sensors),
        ] {
            for s in map.values() {
                check_sensor_name(s).map_err(|e| format!("{key}`: {e}"))?;
            }
        }
        if self.protocol == Protocol::Udp && self.framing != TcpFraming::Auto {
            return Err("framing`: applies to protocol \"tcp\" only".into());
        }
        if let Some(tls) = &self.tls {
            if self.protocol == Protocol::Udp {
                return Err(
                    "tls`: applies to protocol \"tcp\" only (DTLS is not supported)".into(),
                );
            }
            // The files are read when the listener starts, not here: commands that only read the config
            // (`dead-letters list`) must work where the key is not readable.
            if tls.cert.as_os_str().is_empty() || tls.key.as_os_str().is_empty() {
                return Err("tls`: give both cert and key (PEM file paths)".into());
            }
        }
        if self.batch_records == 0 {
            return Err("batch_records`: must be at least 1".into());
        }
        if self.batch_wait.is_zero() {
            return Err("batch_wait`: must be a positive duration such as \"200ms\"".into());
        }
        if self.queue_bytes < 65_536 {
            return Err("queue_bytes`: must be at least 65536".into());
        }
        if self.max_connections == 0 {
            return Err("max_connections`: must be at least 1".into());
        }
        Ok(())
    }

    /// How dead letters of this listener name their source: `syslog_tcp:0.0.0.0:5514`.
    pub fn source_name(&self) -> String {
        format!("{}:{}", self.protocol.metric(), self.listen)
    }

    /// The sensor (if this listener's config names one for it) and the record of one whole frame, read as
    /// the listener reads it now. For replaying frames that were dead-lettered as `unknown_sensor` once
    /// the config maps their HOSTNAME or APP-NAME.
    pub fn sensor_and_record(&self, frame: &[u8]) -> (Option<String>, Vec<u8>) {
        let h = header::parse(frame);
        let sensor = match Resolver::new(self).resolve(&h) {
            Target::Sensor(s) => Some(s.to_string()),
            Target::Reject { .. } => None,
        };
        let mut record = h.msg.to_vec();
        for b in &mut record {
            if *b == b'\n' {
                *b = b' ';
            }
        }
        (sensor, record)
    }
}

/// Decides the sensor of a message.
#[derive(Debug)]
struct Resolver {
    sensor: Option<Arc<str>>,
    by_host: BTreeMap<String, Arc<str>>,
    by_app: BTreeMap<String, Arc<str>>,
}

impl Resolver {
    fn new(c: &SyslogConfig) -> Self {
        // One Arc per distinct sensor name, so the batcher groups them cheaply.
        let mut names: BTreeMap<String, Arc<str>> = BTreeMap::new();
        let mut intern = |s: &String| -> Arc<str> {
            names
                .entry(s.clone())
                .or_insert_with(|| Arc::from(s.as_str()))
                .clone()
        };
        Resolver {
            sensor: c.sensor.as_ref().map(&mut intern),
            by_host: c
                .hostname_sensors
                .iter()
                .map(|(k, v)| (k.clone(), intern(v)))
                .collect(),
            by_app: c
                .app_name_sensors
                .iter()
                .map(|(k, v)| (k.clone(), intern(v)))
                .collect(),
        }
    }

    fn resolve(&self, h: &header::Header<'_>) -> Target {
        if let Some(s) = h.hostname_str().and_then(|n| self.by_host.get(n)) {
            return Target::Sensor(s.clone());
        }
        if let Some(s) = h.app_name_str().and_then(|n| self.by_app.get(n)) {
            return Target::Sensor(s.clone());
        }
        if let Some(s) = &self.sensor {
            return Target::Sensor(s.clone());
        }
        Target::Reject {
            code: "unknown_sensor",
            reason: format!(
                "no sensor for syslog HOSTNAME {:?} and APP-NAME {:?}: add one to hostname_sensors or \
                 app_name_sensors, or set sensor, in this [[sources.syslog]]",
                h.hostname_str().unwrap_or("-"),
                h.app_name_str().unwrap_or("-"),
            ),
        }
    }

    /// The record and its target for one frame. A cut (oversized) frame goes on whole, so the record is
    /// over the limit and dead-lettered as oversized by the ingestor.
    fn record(&self, frame: &[u8], truncated: bool) -> (Target, Vec<u8>) {
        let h = header::parse(frame);
        let target = self.resolve(&h);
        let keep_whole = truncated || matches!(target, Target::Reject { .. });
        let mut body = if keep_whole {
            frame.to_vec()
        } else {
            h.msg.to_vec()
        };
        for b in &mut body {
            if *b == b'\n' {
                *b = b' ';
            }
        }
        (target, body)
    }
}

pub enum Bound {
    Tcp(tokio::net::TcpListener, Option<tokio_rustls::TlsAcceptor>),
    Udp(tokio::net::UdpSocket),
}

impl Bound {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Bound::Tcp(l, _) => l.local_addr(),
            Bound::Udp(s) => s.local_addr(),
        }
    }
}

pub async fn bind(c: &SyslogConfig) -> std::io::Result<Bound> {
    Ok(match c.protocol {
        Protocol::Tcp => {
            let tls = match &c.tls {
                Some(t) => Some(t.acceptor().map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("tls.{e}"))
                })?),
                None => None,
            };
            Bound::Tcp(tokio::net::TcpListener::bind(c.listen).await?, tls)
        }
        Protocol::Udp => Bound::Udp(tokio::net::UdpSocket::bind(c.listen).await?),
    })
}

/// Starts the listener and its batcher; returns their tasks.
pub fn spawn(
    c: SyslogConfig,
    bound: Bound,
    max_record_bytes: usize,
    ingest: Arc<dyn RecordIngest>,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let metric = c.protocol.metric();
    let source: Arc<str> = c.source_name().into();
    let settings = batch::Settings {
        format: c.format.as_str().into(),
        source: source.clone(),
        metric,
        max_records: c.batch_records,
        max_bytes: BATCH_BYTES,
        max_wait: c.batch_wait,
        queue_records: c.batch_records.saturating_mul(4),
        queue_bytes: c.queue_bytes,
    };
    // Metrics exist from the start, so a dashboard sees 0 rather than nothing.
    metrics::counter!("storyline_source_received_total", "source" => metric).increment(0);
    metrics::counter!("storyline_source_dropped_total", "source" => metric).increment(0);
    let (queue, batcher) = batch::spawn(ingest, settings, stop.clone());
    let resolver = Arc::new(Resolver::new(&c));
    let cap = max_record_bytes.saturating_add(HEADER_ALLOWANCE);
    tracing::info!(source = %source, format = %c.format, "syslog source listening");
    let listener = match bound {
        Bound::Udp(sock) => tokio::spawn(run_udp(sock, resolver, queue, cap, stop)),
        Bound::Tcp(l, tls) => tokio::spawn(run_tcp(l, tls, c, resolver, queue, cap, stop)),
    };
    vec![listener, batcher]
}

async fn run_udp(
    sock: tokio::net::UdpSocket,
    resolver: Arc<Resolver>,
    queue: Queue,
    cap: usize,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; DATAGRAM + 1];
    loop {
        let got = tokio::select! {
            r = sock.recv_from(&mut buf) => r,
            _ = stopped(&mut stop) => break,
        };
        let n = match got {
            Ok((n, _peer)) => n,
            Err(e) => {
                // ICMP errors surface here on some systems; nothing to do but go on.
                tracing::debug!(error = %e, "syslog udp receive error");
                continue;
            }
        };
        metrics::counter!("storyline_source_received_total", "source" => "syslog_udp").increment(1);
        let truncated = n > cap;
        let (target, body) = resolver.record(&buf[..n.min(cap)], truncated);
        if truncated {
            metrics::counter!("storyline_source_truncated_total", "source" => "syslog_udp")
                .increment(1);
        }
        if !queue.try_send(target, body) {
            metrics::counter!("storyline_source_dropped_total", "source" => "syslog_udp")
                .increment(1);
        }
    }
}

/// A TLS handshake that has not finished by then is given up, so a client that connects and says nothing
/// does not hold a connection slot for ever.
const TLS_HANDSHAKE: Duration = Duration::from_secs(30);

async fn run_tcp(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    c: SyslogConfig,
    resolver: Arc<Resolver>,
    queue: Queue,
    cap: usize,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(c.max_connections));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s,
            _ = stopped(&mut stop) => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped(&mut stop) => break,
        };
        let (sock, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "syslog tcp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let conn = Connection {
            resolver: resolver.clone(),
            queue: queue.clone(),
            framing: c.framing,
            cap,
        };
        let mut stop = stop.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            match tls {
                None => conn.serve(sock, peer, stop).await,
                Some(acceptor) => {
                    let handshake = tokio::select! {
                        h = tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(sock)) => h,
                        _ = stopped(&mut stop) => return,
                    };
                    match handshake {
                        Ok(Ok(stream)) => conn.serve(stream, peer, stop).await,
                        Ok(Err(e)) => {
                            metrics::counter!("storyline_source_tls_handshake_failures_total", "source" => "syslog_tcp").increment(1);
                            tracing::warn!(%peer, error = %e, "syslog tls handshake failed");
                        }
                        Err(_) => {
                            metrics::counter!("storyline_source_tls_handshake_failures_total", "source" => "syslog_tcp").increment(1);
                            tracing::warn!(%peer, "syslog tls handshake timed out");
                        }
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

struct Connection {
    resolver: Arc<Resolver>,
    queue: Queue,
    framing: TcpFraming,
    cap: usize,
}

impl Connection {
    async fn serve<S: tokio::io::AsyncRead + Unpin>(
        self,
        mut sock: S,
        peer: SocketAddr,
        mut stop: watch::Receiver<bool>,
    ) {
        tracing::debug!(%peer, "syslog tcp connection");
        let mut decoder = Decoder::new(self.framing, self.cap);
        let mut buf = vec![0u8; 64 * 1024];
        let mut frames = Vec::new();
        loop {
            let read = tokio::select! {
                r = sock.read(&mut buf) => r,
                _ = stopped(&mut stop) => return,
            };
            let eof = match read {
                Ok(0) => {
                    decoder.finish(&mut frames);
                    true
                }
                Ok(n) => {
                    decoder.feed(&buf[..n], &mut frames);
                    false
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "syslog tcp connection failed");
                    decoder.finish(&mut frames);
                    true
                }
            };
            for f in frames.drain(..) {
                metrics::counter!("storyline_source_received_total", "source" => "syslog_tcp")
                    .increment(1);
                if f.truncated {
                    metrics::counter!("storyline_source_truncated_total", "source" => "syslog_tcp")
                        .increment(1);
                }
                let (target, body) = self.resolver.record(&f.data, f.truncated);
                // Waiting here is the backpressure: the socket is not read until there is room.
                let sent = tokio::select! {
                    ok = self.queue.send(target, body) => ok,
                    _ = stopped(&mut stop) => return,
                };
                if !sent {
                    return;
                }
            }
            if eof {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::batch::tests::Recorder;
    use std::sync::atomic::Ordering;
    use tokio::io::AsyncWriteExt;

    fn config(protocol: Protocol) -> SyslogConfig {
        let mut c = SyslogConfig::new("127.0.0.1:0".parse().unwrap(), protocol, "panos");
        c.sensor = Some("fixed".into());
        c.hostname_sensors.insert("fw-a".into(), "sensor-a".into());
        c.app_name_sensors
            .insert("suricata".into(), "sensor-s".into());
        c.batch_wait = Duration::from_millis(20);
        c
    }

    async fn wait_for(rec: &Recorder, n: usize) -> Vec<(String, String)> {
        for _ in 0..500 {
            let r = rec.records();
            if r.len() >= n {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        rec.records()
    }

    #[test]
    fn sensors_come_from_hostname_then_app_name_then_the_fixed_sensor() {
        let r = Resolver::new(&config(Protocol::Tcp));
        let t = |s: &str| r.record(s.as_bytes(), false);
        assert_eq!(
            t("<14>Nov 21 10:00:03 fw-a suricata: x"),
            (Target::Sensor("sensor-a".into()), b"x".to_vec())
        );
        assert_eq!(
            t("<14>1 - fw-b suricata - - - y"),
            (Target::Sensor("sensor-s".into()), b"y".to_vec())
        );
        assert_eq!(
            t("<14>Nov 21 10:00:03 other 1,2,3"),
            (Target::Sensor("fixed".into()), b"1,2,3".to_vec())
        );
        let mut c = config(Protocol::Tcp);
        c.sensor = None;
        let r = Resolver::new(&c);
        let (target, body) = r.record(b"<14>Nov 21 10:00:03 other app: 1,2\n3", false);
        assert!(
            matches!(target, Target::Reject { code: "unknown_sensor", ref reason } if reason.contains("\"other\""))
        );
        assert_eq!(body, b"<14>Nov 21 10:00:03 other app: 1,2 3");
    }

    #[test]
    fn config_errors_name_the_key() {
        let f = &["panos", "ecs"];
        let mut c = config(Protocol::Udp);
        assert!(c.validate(f).is_ok());
        c.format = "cef".into();
        assert!(c.validate(f).unwrap_err().starts_with("format`"));
        let mut c = config(Protocol::Udp);
        c.sensor = None;
        c.hostname_sensors.clear();
        c.app_name_sensors.clear();
        assert!(c.validate(f).unwrap_err().starts_with("sensor`"));
        let mut c = config(Protocol::Udp);
        c.framing = TcpFraming::OctetCounting;
        assert!(c.validate(f).unwrap_err().starts_with("framing`"));
        let mut c = config(Protocol::Tcp);
        c.hostname_sensors.insert("h".into(), "".into());
        assert!(c.validate(f).unwrap_err().starts_with("hostname_sensors`"));
    }

    #[tokio::test]
    async fn tcp_both_framings_and_udp_reach_the_ingestor() {
        let rec = Arc::new(Recorder::default());
        let (stop_tx, stop) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        for p in [Protocol::Tcp, Protocol::Udp] {
            let c = config(p);
            let b = bind(&c).await.unwrap();
            addrs.push(b.local_addr().unwrap());
            tasks.extend(spawn(c, b, 1024, rec.clone(), stop.clone()));
        }
        let mut s = tokio::net::TcpStream::connect(addrs[0]).await.unwrap();
        s.write_all(b"<14>Nov 21 10:00:03 fw-a one\n25 <14>1 - fw-a - - - - t\nwo")
            .await
            .unwrap();
        s.shutdown().await.unwrap();
        let u = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        u.send_to(b"<14>Nov 21 10:00:03 x suricata[1]: three", addrs[1])
            .await
            .unwrap();
        let mut got = wait_for(&rec, 3).await;
        got.sort();
        assert_eq!(
            got,
            vec![
                ("sensor-a".into(), "one".into()),
                ("sensor-a".into(), "t wo".into()),
                ("sensor-s".into(), "three".into()),
            ]
        );
        stop_tx.send(true).unwrap();
        for t in tasks {
            t.await.unwrap();
        }
    }

    /// A self-signed certificate for `localhost`, written as PEM files; returns its DER for clients.
    pub(crate) fn self_signed(dir: &std::path::Path) -> (TlsConfig, Vec<u8>) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let tls = TlsConfig {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&tls.cert, ck.cert.pem()).unwrap();
        std::fs::write(&tls.key, ck.key_pair.serialize_pem()).unwrap();
        (tls, ck.cert.der().to_vec())
    }

    async fn tls_client(
        addr: SocketAddr,
        trusted: &[u8],
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(trusted.to_vec()))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await
    }

    #[tokio::test]
    async fn tls_octet_counted_frames_reach_the_ingestor_and_plain_tcp_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let (tls, der) = self_signed(dir.path());
        let rec = Arc::new(Recorder::default());
        let (stop_tx, stop) = watch::channel(false);
        let mut c = config(Protocol::Tcp);
        c.tls = Some(tls);
        assert!(c.validate(&["panos"]).is_ok());
        let b = bind(&c).await.unwrap();
        let addr = b.local_addr().unwrap();
        let tasks = spawn(c, b, 1024, rec.clone(), stop);

        // A client speaking plain syslog to the TLS port: its bytes are not a handshake, nothing is read.
        let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"<14>Nov 21 10:00:03 fw-a plaintext\n")
            .await
            .unwrap();
        plain.shutdown().await.unwrap();

        // RFC 5425: octet-counted frames inside TLS, one split across writes.
        let mut s = tls_client(addr, &der).await.unwrap();
        let one = b"<14>1 2026-11-21T10:00:03Z fw-a app - - - one";
        let two = b"<14>Nov 21 10:00:03 x suricata[1]: two\nlines";
        s.write_all(format!("{} ", one.len()).as_bytes())
            .await
            .unwrap();
        s.write_all(one).await.unwrap();
        s.write_all(format!("{} ", two.len()).as_bytes())
            .await
            .unwrap();
        s.write_all(&two[..10]).await.unwrap();
        s.flush().await.unwrap();
        s.write_all(&two[10..]).await.unwrap();
        s.shutdown().await.unwrap();
        let mut got = wait_for(&rec, 2).await;
        got.sort();
        assert_eq!(
            got,
            vec![
                ("sensor-a".into(), "one".into()),
                ("sensor-s".into(), "two lines".into()),
            ]
        );
        stop_tx.send(true).unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(rec.records().len(), 2, "{:?}", rec.records());
    }

    #[test]
    fn tls_config_errors_name_the_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let (tls, _) = self_signed(dir.path());
        let f = &["panos"];
        let mut c = config(Protocol::Udp);
        c.tls = Some(tls.clone());
        assert!(c.validate(f).unwrap_err().starts_with("tls`"));
        let missing = TlsConfig {
            cert: dir.path().join("missing.pem"),
            key: tls.key.clone(),
        };
        let e = missing.acceptor().err().unwrap();
        assert!(e.starts_with("cert`") && e.contains("missing.pem"), "{e}");
        let other_dir = dir.path().join("other");
        std::fs::create_dir(&other_dir).unwrap();
        let (other, _) = self_signed(&other_dir);
        let mismatched = TlsConfig {
            cert: tls.cert.clone(),
            key: other.key,
        };
        let e = mismatched.acceptor().err().unwrap();
        assert!(e.starts_with("key`"), "{e}");
        assert!(tls.acceptor().is_ok());
    }

    #[tokio::test]
    async fn an_oversized_tcp_line_is_cut_and_passed_on_whole() {
        let rec = Arc::new(Recorder::default());
        let (_stop_tx, stop) = watch::channel(false);
        let c = config(Protocol::Tcp);
        let b = bind(&c).await.unwrap();
        let addr = b.local_addr().unwrap();
        let _tasks = spawn(c, b, 100, rec.clone(), stop);
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"<14>Nov 21 10:00:03 fw-a ").await.unwrap();
        // Far more than the cap without a newline: memory stays bounded by the cap.
        for _ in 0..64 {
            s.write_all(&[b'x'; 4096]).await.unwrap();
        }
        s.write_all(b"\n<14>Nov 21 10:00:03 fw-a after\n")
            .await
            .unwrap();
        s.shutdown().await.unwrap();
        let got = wait_for(&rec, 2).await;
        assert_eq!(got.len(), 2, "{got:?}");
        let big = got.iter().find(|(_, r)| r.starts_with("<14>")).unwrap();
        assert_eq!(big.1.len(), 100 + HEADER_ALLOWANCE);
        assert!(got.contains(&("sensor-a".into(), "after".into())));
    }

    // The std lock stands for a store that does not answer; holding it across awaits is the point.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test]
    async fn a_stalled_store_stops_tcp_reading_and_drops_counted_udp() {
        const LINES: usize = 100_000;
        let rec = Arc::new(Recorder::default());
        let (_stop_tx, stop) = watch::channel(false);
        let mut addrs = Vec::new();
        for p in [Protocol::Tcp, Protocol::Udp] {
            let mut c = config(p);
            c.batch_records = 100;
            c.queue_bytes = 65_536;
            let b = bind(&c).await.unwrap();
            addrs.push(b.local_addr().unwrap());
            spawn(c, b, 1 << 16, rec.clone(), stop.clone());
        }
        let gate = rec.gate.lock().unwrap();
        // TCP: 50 MB, more than the kernel buffers on both sides hold, so a writer that keeps writing
        // blocks once nothing is read any more.
        let tcp = addrs[0];
        let writer = tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(tcp).await.unwrap();
            let line = format!("<14>Nov 21 10:00:03 fw-a {}\n", "p".repeat(500));
            for _ in 0..LINES {
                s.write_all(line.as_bytes()).await.unwrap();
            }
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            !writer.is_finished(),
            "the sender was never pushed back: 50 MB accepted while the store was stalled"
        );
        // UDP: the queue is full, so datagrams are dropped rather than queued without bound.
        let u = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..1000 {
            u.send_to(&[b'u'; 200], addrs[1]).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(gate);
        writer.await.unwrap();
        // The count includes the UDP records: wait until it reached the TCP lines and stopped moving.
        let mut last = 0;
        for _ in 0..300 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = rec.count.load(Ordering::SeqCst);
            if now >= LINES && now == last {
                break;
            }
            last = now;
        }
        let got = rec.records();
        let tcp_records = got.iter().filter(|(_, r)| r.starts_with('p')).count();
        assert_eq!(tcp_records, LINES, "TCP lost records under backpressure");
        let udp_records = got.iter().filter(|(_, r)| r.starts_with('u')).count();
        assert!(
            udp_records > 0 && udp_records < 1000,
            "UDP kept {udp_records} of 1000"
        );
    }
}
