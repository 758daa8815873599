//! Syslog out: one message per story version, RFC 5424 (the encoded story JSON as MSG) or CEF, over UDP,
//! TCP (RFC 6587 octet counting or LF framing) or TLS (RFC 5425: octet counting over TLS 1.2/1.3, the
//! receiver's certificate verified against `tls.ca` or the public roots, optional client certificate).
//!
//! RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [storyline@32473 story_id="…"
//! version="…"] MSG`. PRI = facility × 8 + severity (6 informational, 4 warning when an IDS rule fired);
//! TIMESTAMP is when the message is sent; MSGID is `story` (or `alert`). 32473 is the private enterprise
//! number RFC 5612 reserves for documentation: the structured data is informative only.
//!
//! CEF (ArcSight Common Event Format, rev. 25): `CEF:0|Storyline|Storyline|<version>|story|<name>|<severity>|
//! <extension>` with extension keys `src dst spt dpt proto suser shost sproc dhost app act in out cnt
//! start end rt sourceTranslatedAddress sourceTranslatedPort cs1=story_id cn1=version cs2=sensors
//! cs3=rule names`, each with its `csNLabel`/`cnNLabel`.

use super::config::{SinkConfig, SyslogFormat, SyslogFraming, SyslogProtocol, SyslogTlsConfig};
use super::deliver::{Batch, DeliveryError, ItemFailure, Target};
use super::encode::Encoding;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::Duration;
use storyline_model::{Story, Timestamp};

/// The largest UDP datagram sent; a longer message is refused (dead-lettered) rather than cut.
const MAX_DATAGRAM: usize = 65_000;

pub struct SyslogTarget {
    address: String,
    protocol: SyslogProtocol,
    framing: SyslogFraming,
    format: SyslogFormat,
    encoding: Encoding,
    facility: u8,
    hostname: String,
    app_name: String,
    timeout: Duration,
    udp: Option<UdpSocket>,
    tcp: Option<Conn>,
    /// `protocol = "tls"`: the client configuration and the name the receiver's certificate must carry.
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

/// A stream connection: plain TCP or TLS over it.
enum Conn {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn write_all_flush(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(data).and_then(|_| s.flush()),
            Conn::Tls(s) => s.write_all(data).and_then(|_| s.flush()),
        }
    }
}

/// The rustls client configuration of a syslog sink over TLS. Errors start with the key
/// (`tls.ca`: …) and name the file.
pub fn tls_client_config(
    tls: &SyslogTlsConfig,
    address: &str,
) -> Result<
    (
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    ),
    String,
> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
                .and_then(|i| i.collect::<Result<_, _>>())
                .map_err(|e| format!("tls.ca`: {}: {e}", ca.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "tls.ca`: {}: no PEM certificate in it",
                    ca.display()
                ));
            }
            for c in certs {
                roots.add(c).map_err(|e| {
                    format!("tls.ca`: {}: not a usable CA certificate: {e}", ca.display())
                })?;
            }
        }
        #[cfg(feature = "tls")]
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        #[cfg(not(feature = "tls"))]
        None => return Err("tls.ca`: missing: this build has no public CA roots (cargo feature `tls`); give the receiver's CA as a PEM file".into()),
    }
    let name_text = match &tls.server_name {
        Some(n) => n.clone(),
        None => {
            let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        }
    };
    let name = ServerName::try_from(name_text.clone()).map_err(|_| {
        format!("tls.server_name`: {name_text:?} is not a DNS name or an IP address")
    })?;
    // The provider is named rather than taken from a process-wide default, which another crate in the
    // process may or may not have installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls`: {e}"))?
        .with_root_certificates(roots);
    let config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<_, _>>())
                .map_err(|e| format!("tls.cert`: {}: {e}", cert.display()))?;
            if chain.is_empty() {
                return Err(format!(
                    "tls.cert`: {}: no PEM certificate in it",
                    cert.display()
                ));
            }
            let k = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("tls.key`: {}: {e}", key.display()))?;
            builder.with_client_auth_cert(chain, k).map_err(|e| {
                format!(
                    "tls.key`: {} does not go with {}: {e}",
                    key.display(),
                    cert.display()
                )
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err("tls`: give both cert and key for a client certificate, or neither".into())
        }
    };
    Ok((Arc::new(config), name))
}

/// A failed TLS handshake, saying what is wrong and what to change.
fn handshake_error(
    address: &str,
    name: &rustls::pki_types::ServerName<'_>,
    e: &std::io::Error,
) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls_error(address, name, tls),
        None => format!(
            "{address}: TLS handshake failed: {e} (is the receiver speaking TLS on this port?)"
        ),
    }
}

fn tls_error(address: &str, name: &rustls::pki_types::ServerName<'_>, e: &rustls::Error) -> String {
    let name = name.to_str();
    match e {
        rustls::Error::InvalidCertificate(why) => format!(
            "{address}: TLS handshake failed: the receiver's certificate is not accepted ({why:?}, \
             expected name {name:?}): set `tls.ca` to the CA that signed the receiver's certificate \
             and `tls.server_name` to a name it carries"
        ),
        rustls::Error::AlertReceived(alert) => format!(
            "{address}: TLS handshake failed: the receiver refused it with alert {alert:?}: if it \
             authenticates senders, give a client certificate it trusts (`tls.cert`, `tls.key`)"
        ),
        other => format!("{address}: TLS handshake failed: {other}"),
    }
}

impl SyslogTarget {
    pub fn new(cfg: &SinkConfig) -> anyhow::Result<Self> {
        let address = cfg.address.clone().unwrap_or_default();
        let protocol = cfg.protocol.unwrap_or_default();
        let tls = match protocol {
            SyslogProtocol::Tls => Some(
                tls_client_config(&cfg.tls.clone().unwrap_or_default(), &address)
                    .map_err(|e| anyhow::anyhow!("sink {:?}: key `{e}", cfg.name))?,
            ),
            _ => None,
        };
        Ok(Self {
            address,
            protocol,
            framing: cfg.framing.unwrap_or_default(),
            format: cfg.format.unwrap_or_default(),
            encoding: cfg.encoding,
            facility: cfg.facility.unwrap_or(16),
            hostname: cfg
                .hostname
                .clone()
                .unwrap_or_else(super::targets::hostname),
            app_name: cfg.app_name.clone().unwrap_or_else(|| "storyline".into()),
            timeout: cfg.timeout,
            udp: None,
            tcp: None,
            tls,
        })
    }

    fn resolve(&self) -> Result<std::net::SocketAddr, DeliveryError> {
        self.address
            .to_socket_addrs()
            .map_err(|e| DeliveryError::transient(format!("{}: {e}", self.address)))?
            .next()
            .ok_or_else(|| DeliveryError::transient(format!("{}: no address", self.address)))
    }

    pub fn message(&self, s: &Story) -> String {
        let alert = !s.fused.rule.names.is_empty();
        let severity = if alert { 4 } else { 6 };
        let pri = u32::from(self.facility) * 8 + severity;
        let now = Timestamp::now();
        let ts = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(
            now.as_nanos() / 1000 * 1000,
        ))
        .map(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        })
        .unwrap_or_else(|_| "-".into());
        let msg = match self.format {
            SyslogFormat::Cef => cef(s),
            SyslogFormat::Rfc5424 => {
                serde_json::to_string(&self.encoding.json(s).unwrap_or_default()).unwrap()
            }
        };
        format!(
            "<{pri}>1 {ts} {} {} {} {} [storyline@32473 story_id=\"{}\" version=\"{}\"] {msg}",
            header_field(&self.hostname, 255),
            header_field(&self.app_name, 48),
            std::process::id(),
            if alert { "alert" } else { "story" },
            s.story_id,
            s.version,
        )
    }

    fn send_tcp(&mut self, frames: &[u8]) -> Result<(), DeliveryError> {
        if self.tcp.is_none() {
            let addr = self.resolve()?;
            let stream = TcpStream::connect_timeout(&addr, self.timeout)
                .map_err(|e| DeliveryError::transient(format!("{}: {e}", self.address)))?;
            stream.set_write_timeout(Some(self.timeout)).ok();
            stream.set_nodelay(true).ok();
            self.tcp = Some(match &self.tls {
                None => Conn::Tcp(stream),
                Some((config, name)) => Conn::Tls(Box::new(self.handshake(config, name, stream)?)),
            });
        }
        let stream = self.tcp.as_mut().unwrap();
        let res = stream.write_all_flush(frames);
        if let Err(e) = res {
            // Reconnect next time; what was written may be received twice (at least once).
            self.tcp = None;
            return Err(DeliveryError::transient(format!("{}: {e}", self.address)));
        }
        Ok(())
    }
}

impl SyslogTarget {
    /// The TLS handshake, done before any story is written so that a certificate the sink does not
    /// trust fails the delivery with its reason rather than with a broken pipe later.
    fn handshake(
        &self,
        config: &Arc<rustls::ClientConfig>,
        name: &rustls::pki_types::ServerName<'static>,
        mut stream: TcpStream,
    ) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, DeliveryError> {
        // Reads happen only in the handshake; bound them like the connect.
        stream.set_read_timeout(Some(self.timeout)).ok();
        let mut conn = rustls::ClientConnection::new(config.clone(), name.clone())
            .map_err(|e| DeliveryError::transient(format!("{}: TLS: {e}", self.address)))?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut stream) {
                // A certificate problem is retried like any transient error: it is fixed on one side or
                // the other (a renewed certificate, a corrected `tls.ca`) without losing the backlog.
                return Err(DeliveryError::transient(handshake_error(
                    &self.address,
                    name,
                    &e,
                )));
            }
        }
        // With TLS 1.3 the client's side of the handshake is done before the receiver has checked the
        // client; a receiver that refuses it (no client certificate, or one it does not trust, or not a
        // permitted peer) sends an alert or just closes right after. Wait a moment for that, so stories
        // are not written into a session the receiver already refused and counted as delivered.
        let until = std::time::Instant::now() + self.timeout.min(Duration::from_millis(500));
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            stream.set_read_timeout(Some(left)).ok();
            match conn.read_tls(&mut stream) {
                Ok(0) => {
                    return Err(DeliveryError::transient(format!(
                        "{}: the receiver closed the connection right after the TLS handshake: it \
                         does not accept this client; if it authenticates senders, give a client \
                         certificate it trusts (`tls.cert`, `tls.key`)",
                        self.address
                    )))
                }
                Ok(_) => {
                    if let Err(e) = conn.process_new_packets() {
                        return Err(DeliveryError::transient(tls_error(&self.address, name, &e)));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => {
                    return Err(DeliveryError::transient(format!(
                        "{}: right after the TLS handshake: {e}",
                        self.address
                    )))
                }
            }
        }
        stream.set_read_timeout(Some(self.timeout)).ok();
        Ok(rustls::StreamOwned::new(conn, stream))
    }
}

/// A header field: printable US-ASCII without spaces, at most `max` long, `-` when empty (RFC 5424 §6).
fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v
    }
}

fn cef_header(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

fn cef_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace("\r\n", "\\n")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// The CEF line of one story version.
pub fn cef(s: &Story) -> String {
    let f = &s.fused;
    let alert = !f.rule.names.is_empty();
    let name = if alert {
        f.rule.names[0].to_string()
    } else {
        format!(
            "{} session",
            f.network
                .protocol
                .as_deref()
                .or(f.network.transport.as_deref())
                .unwrap_or("network")
        )
    };
    let severity = if alert { 7 } else { 3 };
    let mut ext: Vec<(&str, String)> = Vec::new();
    let mut put = |k: &'static str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            ext.push((k, v));
        }
    };
    put("src", f.source.ip.map(|i| i.to_string()));
    put("spt", f.source.port.map(|p| p.to_string()));
    put("dst", f.destination.ip.map(|i| i.to_string()));
    put("dpt", f.destination.port.map(|p| p.to_string()));
    put(
        "proto",
        f.network
            .transport
            .as_deref()
            .map(|t| t.to_ascii_uppercase()),
    );
    put("app", f.network.protocol.as_deref().map(str::to_string));
    put(
        "sourceTranslatedAddress",
        f.source.nat.ip.map(|i| i.to_string()),
    );
    put(
        "sourceTranslatedPort",
        f.source.nat.port.map(|p| p.to_string()),
    );
    put("suser", f.user.names.first().map(|u| u.to_string()));
    put("shost", f.host.names.first().map(|h| h.to_string()));
    put("sproc", f.process.names.first().map(|p| p.to_string()));
    put(
        "dhost",
        f.dns
            .question
            .names
            .first()
            .or(f.url.domains.first())
            .or(f.tls.server_names.first())
            .map(|h| h.to_string()),
    );
    put(
        "act",
        (!f.event.actions.is_empty()).then(|| f.event.actions.join(",")),
    );
    put("out", f.source.bytes.map(|b| b.to_string()));
    put("in", f.destination.bytes.map(|b| b.to_string()));
    put("cnt", Some(s.event_count.to_string()));
    put("start", Some(s.first_seen.as_millis().to_string()));
    put("end", Some(s.last_seen.as_millis().to_string()));
    put("rt", Some(s.last_seen.as_millis().to_string()));
    put("cs1", Some(s.story_id.to_string()));
    put("cs1Label", Some("story_id".into()));
    put("cn1", Some(s.version.to_string()));
    put("cn1Label", Some("version".into()));
    put("cs2", (!s.sensors.is_empty()).then(|| s.sensors.join(",")));
    put(
        "cs2Label",
        (!s.sensors.is_empty()).then(|| "sensors".into()),
    );
    put("cs3", alert.then(|| f.rule.names.join(",")));
    put("cs3Label", alert.then(|| "rules".into()));
    let ext: Vec<String> = ext
        .into_iter()
        .map(|(k, v)| format!("{k}={}", cef_value(&v)))
        .collect();
    format!(
        "CEF:0|Storyline|Storyline|{}|story|{}|{severity}|{}",
        cef_header(env!("CARGO_PKG_VERSION")),
        cef_header(&name),
        ext.join(" ")
    )
}

impl Target for SyslogTarget {
    fn deliver(&mut self, batch: &Batch<'_>) -> Result<Vec<ItemFailure>, DeliveryError> {
        match self.protocol {
            SyslogProtocol::Udp => {
                if self.udp.is_none() {
                    let addr = self.resolve()?;
                    let bind = if addr.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    let sock = UdpSocket::bind(bind).map_err(DeliveryError::transient)?;
                    sock.connect(addr).map_err(DeliveryError::transient)?;
                    self.udp = Some(sock);
                }
                let mut failures = Vec::new();
                for (i, s) in batch.stories.iter().enumerate() {
                    let msg = self.message(s);
                    if msg.len() > MAX_DATAGRAM {
                        failures.push(ItemFailure {
                            index: i,
                            error: format!("message of {} bytes is too large for UDP", msg.len()),
                            transient: false,
                        });
                        continue;
                    }
                    if let Err(e) = self.udp.as_ref().unwrap().send(msg.as_bytes()) {
                        self.udp = None;
                        return Err(DeliveryError::transient(format!("{}: {e}", self.address)));
                    }
                }
                Ok(failures)
            }
            SyslogProtocol::Tcp | SyslogProtocol::Tls => {
                let mut frames = Vec::with_capacity(batch.stories.len() * 700);
                for s in batch.stories {
                    let msg = self.message(s);
                    match self.framing {
                        SyslogFraming::OctetCounting => {
                            frames.extend_from_slice(format!("{} ", msg.len()).as_bytes());
                            frames.extend_from_slice(msg.as_bytes());
                        }
                        SyslogFraming::Lf => {
                            frames.extend_from_slice(msg.replace(['\n', '\r'], " ").as_bytes());
                            frames.push(b'\n');
                        }
                    }
                }
                self.send_tcp(&frames).map(|_| Vec::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::encode::fixtures::*;
    use super::*;

    #[test]
    fn cef_header_and_extension() {
        let line = cef(&tls_story());
        assert!(
            line.starts_with(&format!(
                "CEF:0|Storyline|Storyline|{}|story|tls session|3|",
                env!("CARGO_PKG_VERSION")
            )),
            "{line}"
        );
        for kv in [
            "src=10.3.1.20",
            "spt=51544",
            "dst=93.184.216.34",
            "dpt=443",
            "proto=TCP",
            "suser=CORP\\\\alice",
            "shost=WS-12",
            "act=allow",
            "cs1=00000000000000000000000000005d0c",
            "cs1Label=story_id",
            "cn1=3",
            "sourceTranslatedAddress=198.51.100.7",
        ] {
            assert!(line.contains(kv), "{kv} missing in {line}");
        }
        let mut s = alert_story();
        s.fused.rule.names = vec!["A|B=c".into()].into();
        let line = cef(&s);
        assert!(line.contains("|story|A\\|B=c|7|"), "{line}");
        assert!(line.contains("cs3=A|B\\=c"), "{line}");
    }

    #[test]
    fn rfc5424_message_carries_the_story_json() {
        let cfg = SinkConfig {
            name: "s".into(),
            kind: Some(super::super::config::SinkKind::Syslog),
            address: Some("127.0.0.1:514".into()),
            hostname: Some("sl host".into()),
            ..Default::default()
        };
        let t = SyslogTarget::new(&cfg).unwrap();
        let m = t.message(&tls_story());
        assert!(m.starts_with("<134>1 "), "{m}");
        let parts: Vec<&str> = m.splitn(8, ' ').collect();
        assert_eq!(parts[2], "slhost");
        assert_eq!(parts[3], "storyline");
        assert_eq!(parts[5], "story");
        let json_start = m.find("] {").unwrap() + 2;
        let v: serde_json::Value = serde_json::from_str(&m[json_start..]).unwrap();
        assert_eq!(v["story_id"], "00000000000000000000000000005d0c");
        assert!(t.message(&alert_story()).starts_with("<132>1 "));
    }
}
