//! `[[sinks]]` in `storyline.toml`: one table per delivery sink (docs/sinks.md).
//!
//! One flat table per sink: the keys every sink has (name, kind, encoding, backlog and retry settings)
//! and the keys of its kind. A key that does not belong to the sink's kind is an error that names it, as
//! is an unknown key.

use super::encode::Encoding;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// POST batches to any HTTP endpoint (JSON array, CSV or Avro body).
    Http,
    /// Splunk HTTP Event Collector (`/services/collector/event`).
    SplunkHec,
    /// Elasticsearch / OpenSearch `_bulk`.
    Elasticsearch,
    /// Syslog (RFC 5424 with the story as MSG, or CEF) over UDP or TCP.
    Syslog,
    /// Rotating files.
    File,
    /// Objects in an object store (local directory; S3, GCS, Azure with the `cloud` feature).
    ObjectStore,
    /// Standard output, one line per story.
    Stdout,
}

impl SinkKind {
    pub const ALL: &'static [&'static str] = &[
        "http",
        "splunk_hec",
        "elasticsearch",
        "syslog",
        "file",
        "object_store",
        "stdout",
    ];

    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Http => "http",
            SinkKind::SplunkHec => "splunk_hec",
            SinkKind::Elasticsearch => "elasticsearch",
            SinkKind::Syslog => "syslog",
            SinkKind::File => "file",
            SinkKind::ObjectStore => "object_store",
            SinkKind::Stdout => "stdout",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogProtocol {
    Udp,
    #[default]
    Tcp,
    /// RFC 5425: octet-counted frames over TLS, the receiver's certificate verified.
    Tls,
}

/// `tls = { ca = "...", server_name = "...", cert = "...", key = "..." }` of a syslog sink with
/// `protocol = "tls"`: whom to trust, the name to expect, and an optional client certificate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogTlsConfig {
    /// PEM: the CA certificate(s) the receiver's certificate must chain to. Absent: the public web PKI
    /// roots (webpki-roots), which suits a receiver with a certificate from a public CA only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// The name the receiver's certificate must carry (DNS name or IP address). Default: the host
    /// part of `address`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// PEM: a client certificate (then any intermediates), for receivers that authenticate senders
    /// (rsyslog `StreamDriver.AuthMode="x509/certvalid"` or `x509/name`). Goes with `key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM: the client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFormat {
    /// RFC 5424 with the encoded story (JSON) as MSG.
    #[default]
    Rfc5424,
    /// ArcSight Common Event Format in the MSG of an RFC 5424 message.
    Cef,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFraming {
    /// RFC 6587 octet counting (`LEN SP MSG`), the safe choice.
    #[default]
    OctetCounting,
    /// One message per line (LF); newlines in a message become spaces.
    Lf,
}

/// One `[[sinks]]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    /// Unique; names the backlog directory `<data_dir>/sinks/<name>/` and the metrics label.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<SinkKind>,
    pub encoding: Encoding,

    // --- delivery, every kind ---
    /// The backlog holds at most this many bytes; beyond it new story versions go to the dead letters.
    pub backlog_bytes: u64,
    /// Story versions per delivery (request, object, file write), at most.
    pub batch_stories: usize,
    /// Give up on a batch after this many retries of a transient error (then it is dead-lettered).
    /// Absent: retry until delivered (the backlog holds the rest meanwhile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(with = "crate::source::duration")]
    pub retry_initial: Duration,
    #[serde(with = "crate::source::duration")]
    pub retry_max: Duration,
    /// Per request (HTTP, object store) or connect/write (syslog TCP).
    #[serde(with = "crate::source::duration")]
    pub timeout: Duration,

    // --- http, splunk_hec, elasticsearch, object_store ---
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Extra request headers (http, splunk_hec, elasticsearch). Values may be `${ENV_VAR}`.
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "redact_map"
    )]
    pub headers: BTreeMap<String, String>,
    /// Compress request bodies (http family), or rotated files (file), with gzip.
    pub gzip: bool,
    /// Splunk HEC token (`Authorization: Splunk <token>`). May be `${ENV_VAR}`.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "redact")]
    pub token: Option<String>,
    /// Splunk `sourcetype` (default `storyline:story`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sourcetype: Option<String>,
    /// Splunk `source` (default `storyline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Splunk index, or Elasticsearch index (default `storyline-stories`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Elasticsearch API key (`Authorization: ApiKey <key>`). May be `${ENV_VAR}`.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "redact")]
    pub api_key: Option<String>,
    /// Basic authentication (http, elasticsearch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "redact")]
    pub password: Option<String>,

    // --- syslog ---
    /// `host:port` of the syslog receiver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<SyslogProtocol>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<SyslogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub framing: Option<SyslogFraming>,
    /// Syslog facility number (default 16, local0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facility: Option<u8>,
    /// HOSTNAME of the messages (default: this machine's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// APP-NAME (default `storyline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// `protocol = "tls"` only: CA, server name, client certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<SyslogTlsConfig>,

    // --- file ---
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Rotate at this size (0: never). Default 256 MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Also rotate when the live file is this old (e.g. "1h").
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "opt_duration",
        default
    )]
    pub rotate_every: Option<Duration>,
    /// Rotated files kept. Default 16.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep: Option<usize>,

    // --- object_store ---
    /// Backend options (`aws_region`, `aws_access_key_id` …, see the object_store crate); values may
    /// be `${ENV_VAR}`.
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "redact_map"
    )]
    pub options: BTreeMap<String, String>,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: None,
            encoding: Encoding::Story,
            backlog_bytes: 1 << 30,
            batch_stories: 500,
            max_retries: None,
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            url: None,
            headers: BTreeMap::new(),
            gzip: false,
            token: None,
            sourcetype: None,
            source: None,
            index: None,
            api_key: None,
            username: None,
            password: None,
            address: None,
            protocol: None,
            format: None,
            framing: None,
            facility: None,
            hostname: None,
            app_name: None,
            tls: None,
            path: None,
            max_bytes: None,
            rotate_every: None,
            keep: None,
            options: BTreeMap::new(),
        }
    }
}

/// Secrets print as `<redacted>` in `storyline check` unless they are `${ENV_VAR}` references.
fn redact<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) if is_env_ref(v) => s.serialize_str(v),
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

fn redact_map<S: serde::Serializer>(m: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut out = s.serialize_map(Some(m.len()))?;
    for (k, v) in m {
        let secret = {
            let k = k.to_ascii_lowercase();
            k.contains("authorization")
                || k.contains("secret")
                || k.contains("token")
                || k.contains("key")
                || k.contains("password")
        };
        if secret && !is_env_ref(v) {
            out.serialize_entry(k, "<redacted>")?;
        } else {
            out.serialize_entry(k, v)?;
        }
    }
    out.end()
}

fn is_env_ref(v: &str) -> bool {
    v.starts_with("${") && v.ends_with('}')
}

/// Resolves a `${ENV_VAR}` value; other values are returned as they are.
pub fn resolve_secret(key: &str, v: &str) -> anyhow::Result<String> {
    if is_env_ref(v) {
        let var = &v[2..v.len() - 1];
        std::env::var(var)
            .map_err(|_| anyhow::anyhow!("key `{key}`: environment variable {var} is not set"))
    } else {
        Ok(v.to_string())
    }
}

mod opt_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => crate::source::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(with = "crate::source::duration")] Duration);
        Ok(Some(W::deserialize(d)?.0))
    }
}

impl SinkConfig {
    pub fn kind(&self) -> SinkKind {
        self.kind.unwrap_or(SinkKind::Stdout)
    }

    /// Checks one sink; the error starts with the key (`url: …`), the caller prefixes `sinks[i].`.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "name`: {:?} is not a sink name: give 1 to 64 characters of a-z 0-9 - _ (it names the backlog directory)",
                self.name
            ));
        }
        let Some(kind) = self.kind else {
            return Err(format!(
                "kind`: missing; one of {}",
                SinkKind::ALL.join(", ")
            ));
        };
        if self.backlog_bytes < 1 << 20 {
            return Err("backlog_bytes`: at least 1048576 (1 MiB)".into());
        }
        if self.batch_stories == 0 {
            return Err("batch_stories`: at least 1".into());
        }
        if self.retry_initial.is_zero() || self.retry_max < self.retry_initial {
            return Err("retry_initial`: need 0 < retry_initial <= retry_max".into());
        }
        if self.timeout.is_zero() {
            return Err("timeout`: must be positive".into());
        }
        // Which keys belong to which kind.
        let http_like = matches!(
            kind,
            SinkKind::Http | SinkKind::SplunkHec | SinkKind::Elasticsearch
        );
        let given: &[(&str, bool, bool)] = &[
            (
                "url",
                self.url.is_some(),
                http_like || kind == SinkKind::ObjectStore,
            ),
            ("headers", !self.headers.is_empty(), http_like),
            ("gzip", self.gzip, http_like || kind == SinkKind::File),
            ("token", self.token.is_some(), kind == SinkKind::SplunkHec),
            (
                "sourcetype",
                self.sourcetype.is_some(),
                kind == SinkKind::SplunkHec,
            ),
            ("source", self.source.is_some(), kind == SinkKind::SplunkHec),
            (
                "index",
                self.index.is_some(),
                matches!(kind, SinkKind::SplunkHec | SinkKind::Elasticsearch),
            ),
            (
                "api_key",
                self.api_key.is_some(),
                kind == SinkKind::Elasticsearch,
            ),
            (
                "username",
                self.username.is_some(),
                matches!(kind, SinkKind::Http | SinkKind::Elasticsearch),
            ),
            (
                "password",
                self.password.is_some(),
                matches!(kind, SinkKind::Http | SinkKind::Elasticsearch),
            ),
            ("address", self.address.is_some(), kind == SinkKind::Syslog),
            (
                "protocol",
                self.protocol.is_some(),
                kind == SinkKind::Syslog,
            ),
            ("format", self.format.is_some(), kind == SinkKind::Syslog),
            ("framing", self.framing.is_some(), kind == SinkKind::Syslog),
            (
                "facility",
                self.facility.is_some(),
                kind == SinkKind::Syslog,
            ),
            (
                "hostname",
                self.hostname.is_some(),
                kind == SinkKind::Syslog,
            ),
            (
                "app_name",
                self.app_name.is_some(),
                kind == SinkKind::Syslog,
            ),
            ("tls", self.tls.is_some(), kind == SinkKind::Syslog),
            ("path", self.path.is_some(), kind == SinkKind::File),
            (
                "max_bytes",
                self.max_bytes.is_some(),
                kind == SinkKind::File,
            ),
            (
                "rotate_every",
                self.rotate_every.is_some(),
                kind == SinkKind::File,
            ),
            ("keep", self.keep.is_some(), kind == SinkKind::File),
            (
                "options",
                !self.options.is_empty(),
                kind == SinkKind::ObjectStore,
            ),
        ];
        for (key, set, allowed) in given {
            if *set && !allowed {
                return Err(format!("{key}`: not a key of kind {:?}", kind.name()));
            }
        }
        if self.encoding.is_parquet() {
            if kind != SinkKind::ObjectStore {
                return Err(format!(
                    "encoding`: {:?} writes whole files (one per batch): only kind \"object_store\" takes it",
                    self.encoding.name()
                ));
            }
            if !cfg!(feature = "parquet") {
                return Err(format!(
                    "encoding`: {:?}: this build has no Parquet; build with `--features storyline-io/parquet`",
                    self.encoding.name()
                ));
            }
        }
        let json_only = |what: &str| -> Result<(), String> {
            if self.encoding.is_json() {
                Ok(())
            } else {
                Err(format!(
                    "encoding`: {what} takes a JSON encoding (story, ecs, ocsf), not {:?}",
                    self.encoding.name()
                ))
            }
        };
        match kind {
            SinkKind::Http | SinkKind::SplunkHec | SinkKind::Elasticsearch => {
                let url = self
                    .url
                    .as_deref()
                    .ok_or("url`: missing (e.g. \"https://siem.example.net:8088\")")?;
                let parsed = reqwest::Url::parse(url).map_err(|e| format!("url`: {url:?}: {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(format!("url`: {url:?}: use http:// or https://"));
                }
                if parsed.scheme() == "https" && !cfg!(feature = "tls") {
                    return Err(format!(
                        "url`: {url:?}: this build has no TLS (cargo feature `tls`)"
                    ));
                }
                if kind == SinkKind::SplunkHec {
                    json_only("splunk_hec")?;
                    if self.token.is_none() {
                        return Err(
                            "token`: missing: the HEC token (or \"${SPLUNK_HEC_TOKEN}\")".into(),
                        );
                    }
                }
                if kind == SinkKind::Elasticsearch {
                    json_only("elasticsearch")?;
                    if self.api_key.is_some() && self.username.is_some() {
                        return Err("api_key`: give api_key or username/password, not both".into());
                    }
                }
                if self.username.is_some() != self.password.is_some() {
                    return Err("username`: username and password go together".into());
                }
            }
            SinkKind::Syslog => {
                let addr = self
                    .address
                    .as_deref()
                    .ok_or("address`: missing (e.g. \"siem.example.net:514\")")?;
                if !addr
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                {
                    return Err(format!("address`: {addr:?}: write host:port"));
                }
                if self.format != Some(SyslogFormat::Cef) {
                    json_only("syslog (rfc5424)")?;
                }
                if self.facility.is_some_and(|f| f > 23) {
                    return Err("facility`: 0 to 23".into());
                }
                if self.framing.is_some() && self.protocol == Some(SyslogProtocol::Udp) {
                    return Err("framing`: only for protocol = \"tcp\" or \"tls\"".into());
                }
                if self.protocol == Some(SyslogProtocol::Tls) {
                    // RFC 5425 §4.3 requires octet counting over TLS.
                    if self.framing == Some(SyslogFraming::Lf) {
                        return Err("framing`: protocol = \"tls\" uses octet_counting (RFC 5425); remove `framing`".into());
                    }
                    let tls = self.tls.clone().unwrap_or_default();
                    if tls.cert.is_some() != tls.key.is_some() {
                        return Err("tls`: give both cert and key (PEM file paths) for a client certificate, or neither".into());
                    }
                    if tls.ca.is_none() && !cfg!(feature = "tls") {
                        return Err("tls.ca`: missing: this build has no public CA roots (cargo feature `tls`); give the receiver's CA as a PEM file".into());
                    }
                    if let Some(name) = &tls.server_name {
                        if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
                            return Err(format!(
                                "tls.server_name`: {name:?} is not a DNS name or an IP address"
                            ));
                        }
                    }
                } else if self.tls.is_some() {
                    return Err("tls`: only for protocol = \"tls\"".into());
                }
            }
            SinkKind::File => {
                if self.path.is_none() {
                    return Err(
                        "path`: missing (e.g. \"/var/lib/storyline/out/stories.ndjson\")".into(),
                    );
                }
                if self
                    .rotate_every
                    .is_some_and(|d| d < Duration::from_secs(1))
                {
                    return Err("rotate_every`: at least 1s".into());
                }
            }
            SinkKind::ObjectStore => {
                let url = self.url.as_deref().ok_or("url`: missing (e.g. \"file:///var/lib/storyline/objects\" or \"s3://bucket/prefix\")")?;
                let parsed = reqwest::Url::parse(url).map_err(|e| format!("url`: {url:?}: {e}"))?;
                match parsed.scheme() {
                    "file" | "memory" => {}
                    "s3" | "s3a" | "gs" | "az" | "adl" | "azure" | "abfs" | "abfss" if cfg!(feature = "cloud") => {}
                    "s3" | "s3a" | "gs" | "az" | "adl" | "azure" | "abfs" | "abfss" => {
                        return Err(format!(
                            "url`: {url:?}: this build has no cloud backends; build with `--features storyline-io/cloud`"
                        ))
                    }
                    other => return Err(format!("url`: {url:?}: unknown scheme {other:?}; use file://, s3://, gs:// or az://")),
                }
            }
            SinkKind::Stdout => {
                if self.encoding == Encoding::Avro {
                    return Err("encoding`: stdout takes story, ecs, ocsf or csv".into());
                }
            }
        }
        Ok(())
    }
}

/// Checks every sink and that names are unique; errors name the key (`sinks[1].url`).
pub fn validate_all(sinks: &[SinkConfig]) -> anyhow::Result<()> {
    let mut names = std::collections::HashSet::new();
    for (i, s) in sinks.iter().enumerate() {
        s.validate()
            .map_err(|e| anyhow::anyhow!("key `sinks[{i}].{e}"))?;
        if !names.insert(&s.name) {
            anyhow::bail!(
                "key `sinks[{i}].name`: {:?} is already the name of another sink",
                s.name
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        sinks: Vec<SinkConfig>,
    }

    fn parse(text: &str) -> anyhow::Result<Vec<SinkConfig>> {
        let d: Doc = toml::from_str(text)?;
        validate_all(&d.sinks)?;
        Ok(d.sinks)
    }

    #[test]
    fn kinds_parse_with_defaults() {
        let s = parse(
            r#"
[[sinks]]
name = "siem"
kind = "splunk_hec"
url = "http://splunk.example.net:8088"
token = "${HEC_TOKEN}"
encoding = "ecs"

[[sinks]]
name = "archive"
kind = "file"
path = "/tmp/x.csv"
encoding = "csv"
rotate_every = "1h"
gzip = true
"#,
        )
        .unwrap();
        assert_eq!(s[0].kind, Some(SinkKind::SplunkHec));
        assert_eq!(s[0].encoding, Encoding::Ecs);
        assert_eq!(s[0].backlog_bytes, 1 << 30);
        assert_eq!(s[1].rotate_every, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn mistakes_are_named() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        let msg = e("[[sinks]]\nname = \"a\"\nkind = \"kafka\"\n");
        assert!(msg.contains("kafka"), "{msg}");
        let msg = e("[[sinks]]\nname = \"a\"\nkind = \"http\"\n");
        assert!(msg.contains("sinks[0].url"), "{msg}");
        let msg = e("[[sinks]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x\"\nurll = 1\n");
        assert!(msg.contains("urll"), "{msg}");
        let msg = e("[[sinks]]\nname = \"a\"\nkind = \"file\"\npath = \"/x\"\ntoken = \"t\"\n");
        assert!(
            msg.contains("sinks[0].token") && msg.contains("file"),
            "{msg}"
        );
        let msg = e("[[sinks]]\nname = \"a\"\nkind = \"elasticsearch\"\nurl = \"http://x\"\nencoding = \"csv\"\n");
        assert!(msg.contains("sinks[0].encoding"), "{msg}");
        let msg = e("[[sinks]]\nname = \"A b\"\nkind = \"stdout\"\n");
        assert!(msg.contains("sinks[0].name"), "{msg}");
        let msg = e("[[sinks]]\nname = \"a\"\nkind = \"stdout\"\n[[sinks]]\nname = \"a\"\nkind = \"stdout\"\n");
        assert!(msg.contains("sinks[1].name"), "{msg}");
        let msg = e("[[sinks]]\nname = \"a\"\n");
        assert!(msg.contains("sinks[0].kind"), "{msg}");
        let msg = e("[[sinks]]\nname = \"a\"\nkind = \"syslog\"\naddress = \"nohost\"\n");
        assert!(msg.contains("sinks[0].address"), "{msg}");
        let msg = e("[[sinks]]\nname = \"a\"\nkind = \"splunk_hec\"\nurl = \"http://x\"\n");
        assert!(msg.contains("sinks[0].token"), "{msg}");
    }

    #[test]
    fn syslog_tls_keys_are_checked() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        let base =
            "[[sinks]]\nname = \"a\"\nkind = \"syslog\"\naddress = \"siem.example.net:6514\"\n";
        let ok = parse(&format!(
            "{base}protocol = \"tls\"\ntls = {{ ca = \"/etc/ca.pem\", server_name = \"siem.example.net\" }}\n"
        ))
        .unwrap();
        assert_eq!(ok[0].protocol, Some(SyslogProtocol::Tls));
        assert_eq!(
            ok[0].tls.as_ref().unwrap().ca.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        let msg = e(&format!("{base}protocol = \"tls\"\nframing = \"lf\"\n"));
        assert!(
            msg.contains("sinks[0].framing") && msg.contains("octet_counting"),
            "{msg}"
        );
        let msg = e(&format!(
            "{base}protocol = \"tls\"\ntls = {{ cert = \"/c.pem\" }}\n"
        ));
        assert!(msg.contains("sinks[0].tls") && msg.contains("key"), "{msg}");
        let msg = e(&format!(
            "{base}protocol = \"tcp\"\ntls = {{ ca = \"/c.pem\" }}\n"
        ));
        assert!(
            msg.contains("sinks[0].tls") && msg.contains("\"tls\""),
            "{msg}"
        );
        let msg = e(&format!(
            "{base}protocol = \"tls\"\ntls = {{ server_name = \"not a name\" }}\n"
        ));
        assert!(msg.contains("sinks[0].tls.server_name"), "{msg}");
        let msg = e(&format!(
            "{base}protocol = \"tls\"\ntls = {{ cafile = \"/c.pem\" }}\n"
        ));
        assert!(msg.contains("cafile"), "{msg}");
        let msg = e("[[sinks]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x\"\ntls = { ca = \"/c.pem\" }\n");
        assert!(
            msg.contains("sinks[0].tls") && msg.contains("http"),
            "{msg}"
        );
    }

    #[test]
    fn parquet_is_for_the_object_store_and_needs_its_feature() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        let msg =
            e("[[sinks]]\nname = \"a\"\nkind = \"file\"\npath = \"/x\"\nencoding = \"parquet\"\n");
        assert!(
            msg.contains("sinks[0].encoding") && msg.contains("object_store"),
            "{msg}"
        );
        let msg = e("[[sinks]]\nname = \"a\"\nkind = \"stdout\"\nencoding = \"ocsf_parquet\"\n");
        assert!(msg.contains("sinks[0].encoding"), "{msg}");
        let obj = "[[sinks]]\nname = \"a\"\nkind = \"object_store\"\nurl = \"file:///tmp/x\"\nencoding = \"ocsf_parquet\"\n";
        if cfg!(feature = "parquet") {
            assert_eq!(parse(obj).unwrap()[0].encoding, Encoding::OcsfParquet);
        } else {
            let msg = e(obj);
            assert!(msg.contains("--features storyline-io/parquet"), "{msg}");
        }
    }

    #[test]
    fn secrets_are_redacted_when_printed() {
        let s = parse(
            "[[sinks]]\nname = \"es\"\nkind = \"elasticsearch\"\nurl = \"http://x:9200\"\napi_key = \"s3cr3t\"\nheaders = { \"X-Team\" = \"soc\", \"Authorization\" = \"Bearer zzz\" }\n",
        )
        .unwrap();
        #[derive(Serialize)]
        struct Out<'a> {
            sinks: &'a [SinkConfig],
        }
        let text = toml::to_string(&Out { sinks: &s }).unwrap();
        assert!(!text.contains("s3cr3t") && !text.contains("zzz"), "{text}");
        assert!(text.contains("soc"), "{text}");
    }
}
