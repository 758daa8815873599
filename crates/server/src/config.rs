//! `storyline.toml`. Every key has a default; unknown keys are errors, so a typo never silently falls back
//! to a default.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use storyline_pipeline::PipelineConfig;
use storyline_store::embedded::Durability;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The default tenant: the one requests without a token go to (while `[tenants] anonymous` is on),
    /// and sources (syslog, files) feed.
    pub tenant: String,
    /// Where the embedded store keeps its files.
    pub data_dir: PathBuf,
    /// HTTP listen address for ingest, health and metrics.
    pub listen: SocketAddr,
    pub store: StoreConfig,
    pub pipeline: PipelineConfig,
    pub limits: LimitsConfig,
    pub output: OutputConfig,
    /// Syslog listeners and followed files (docs/sources.md).
    pub sources: storyline_io::source::SourcesConfig,
    /// Delivery sinks, each with its own durable backlog, retries and dead letters (docs/sinks.md). When
    /// any are given they replace `[output]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<storyline_io::SinkConfig>,
    /// Tenants beside `tenant`: tokens, quotas, idle sleep (docs/operations.md).
    pub tenants: crate::tenants::TenantsConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `embedded` (default: files in `data_dir`, one process), `postgres` (a PostgreSQL server that
    /// several processes share) or `scylla` (alias `cassandra`: a ScyllaDB or Cassandra cluster; needs a
    /// binary built with the cargo feature `scylla`).
    pub kind: StoreKind,
    /// Embedded store only: `fsync` (default: acknowledged = on disk), `flush` (survives a process crash,
    /// not power loss), `none`. PostgreSQL acknowledges after COMMIT with `synchronous_commit` on.
    pub durability: Durability,
    /// PostgreSQL only (required there): a libpq connection string (`host=db user=storyline dbname=storyline`)
    /// or a `postgresql://` URL. `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD` and `PGDATABASE` fill in what it
    /// leaves out, so the password can stay out of the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PostgreSQL only: the schema Storyline keeps its tables in (created on first connect).
    pub schema: String,
    /// ScyllaDB only (required there): contact points, `host:port` separated by commas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<String>,
    /// ScyllaDB only: the keyspace (created on first connect, replication factor 3, unless it exists).
    pub keyspace: String,
    /// ScyllaDB only: the local data center (requests go there first; levels become LOCAL_QUORUM and
    /// LOCAL_SERIAL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_dc: Option<String>,
    /// ScyllaDB only: user name for PasswordAuthenticator; the password is read from the environment
    /// variable `STORYLINE_SCYLLA_PASSWORD`, so it stays out of the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Embedded,
    Postgres,
    #[serde(alias = "cassandra")]
    Scylla,
}

impl StoreConfig {
    /// The connection string with any password replaced by `***`, for printing.
    pub fn redacted_url(&self) -> Option<String> {
        self.url.as_deref().map(redact_password)
    }
}

/// Hides the password of a libpq `key=value` string or a `postgres://user:password@host` URL.
pub fn redact_password(url: &str) -> String {
    let t = url.trim();
    if t.starts_with("postgres://") || t.starts_with("postgresql://") {
        let scheme_end = t.find("://").map(|i| i + 3).unwrap_or(0);
        let rest = &t[scheme_end..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                return format!("{}{}:***{}", &t[..scheme_end], &rest[..colon], &rest[at..]);
            }
        }
        let mut out = t.to_string();
        if let Some(q) = out.find("password=") {
            let end = out[q..].find('&').map(|e| q + e).unwrap_or(out.len());
            out.replace_range(q + "password=".len()..end, "***");
        }
        return out;
    }
    // key=value pairs; values may be single-quoted with backslash escapes.
    let mut out = String::new();
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let rest = &t[i..];
        let is_pw = rest.starts_with("password") && (i == 0 || b[i - 1].is_ascii_whitespace()) && {
            let after = rest["password".len()..].trim_start();
            after.starts_with('=')
        };
        if !is_pw {
            out.push(b[i] as char);
            i += 1;
            continue;
        }
        let eq = i + rest.find('=').expect("checked above");
        out.push_str("password=***");
        let mut j = eq + 1;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < b.len() && b[j] == b'\'' {
            j += 1;
            while j < b.len() && b[j] != b'\'' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            j += 1;
        } else {
            while j < b.len() && !b[j].is_ascii_whitespace() {
                j += 1;
            }
        }
        i = j.min(b.len());
    }
    out
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest single record or envelope line; larger ones are dead-lettered.
    pub max_record_bytes: usize,
    /// Largest request body (after gzip decompression).
    pub max_body_bytes: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OutputConfig {
    /// Rotating NDJSON files.
    File {
        path: PathBuf,
        #[serde(default = "default_max_bytes")]
        max_bytes: u64,
        #[serde(default = "default_keep")]
        keep: usize,
    },
    /// NDJSON on standard output.
    Stdout,
    /// Human-readable stories on standard output.
    Pretty,
}

fn default_max_bytes() -> u64 {
    256 << 20
}

fn default_keep() -> usize {
    16
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tenant: "default".into(),
            data_dir: PathBuf::from("storyline-data"),
            listen: "127.0.0.1:7878".parse().expect("valid address"),
            store: StoreConfig::default(),
            pipeline: PipelineConfig::default(),
            limits: LimitsConfig::default(),
            output: OutputConfig::File {
                path: PathBuf::from("stories/stories.ndjson"),
                max_bytes: default_max_bytes(),
                keep: default_keep(),
            },
            sources: Default::default(),
            sinks: Vec::new(),
            tenants: Default::default(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::Embedded,
            durability: Durability::Fsync,
            url: None,
            schema: "storyline".into(),
            hosts: None,
            keyspace: "storyline".into(),
            local_dc: None,
            username: None,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_record_bytes: 16 << 20,
            max_body_bytes: 256 << 20,
        }
    }
}

impl Config {
    /// Reads and validates a config file; errors name the file, the key and what is allowed.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read the config file: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let cfg: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        storyline_store::validate_tenant(&self.tenant)
            .map_err(|e| anyhow::anyhow!("key `tenant`: {e}"))?;
        let p = &self.pipeline;
        if p.shards == 0 {
            anyhow::bail!("key `pipeline.shards`: must be at least 1 (default 16)");
        }
        if p.bucket.is_zero() {
            anyhow::bail!("key `pipeline.bucket`: must be a positive duration such as \"1s\"");
        }
        if p.lease_ttl < p.poll_interval * 3 {
            anyhow::bail!("key `pipeline.lease_ttl`: must be at least three poll intervals, or leases expire between renewals");
        }
        if self.limits.max_record_bytes == 0
            || self.limits.max_body_bytes < self.limits.max_record_bytes
        {
            anyhow::bail!("key `limits`: need 0 < max_record_bytes <= max_body_bytes");
        }
        self.sources.validate(storyline_parse::FORMATS)?;
        storyline_io::sink::config::validate_all(&self.sinks)?;
        if !self.sinks.is_empty() && self.output != Config::default().output {
            anyhow::bail!(
                "key `output`: [[sinks]] replace [output]; remove [output] or add it as a sink with kind = \"file\" or \"stdout\""
            );
        }
        self.store.validate()?;
        if let Some(h) = &self.tenants.admin_token_sha256 {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                anyhow::bail!(
                    "key `tenants.admin_token_sha256`: must be 64 hex digits, the SHA-256 of the admin token \
                     (`storyline tenants new-admin-token` prints a token and its hash)"
                );
            }
        }
        if !self.tenants.anonymous
            && self.tenants.admin_token_sha256.is_none()
            && std::env::var_os("STORYLINE_ADMIN_TOKEN").is_none()
        {
            tracing::warn!(
                "[tenants] anonymous = false without an admin token: only existing tenants' tokens work, and no tenant can be created"
            );
        }
        Ok(())
    }
}

impl StoreConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.kind != StoreKind::Scylla {
            for (key, set) in [
                ("hosts", self.hosts.is_some()),
                ("local_dc", self.local_dc.is_some()),
                ("username", self.username.is_some()),
            ] {
                if set {
                    anyhow::bail!(
                        "key `store.{key}`: only used with `store.kind = \"scylla\"`; remove it or set that kind"
                    );
                }
            }
        }
        match self.kind {
            StoreKind::Embedded => {
                if self.url.is_some() {
                    anyhow::bail!(
                        "key `store.url`: only used with `store.kind = \"postgres\"` (the embedded store keeps \
                         its files in `data_dir`); remove it or set `kind = \"postgres\"`"
                    );
                }
            }
            StoreKind::Postgres => {
                let Some(url) = self.url.as_deref() else {
                    anyhow::bail!(
                        "key `store.url`: required with `store.kind = \"postgres\"`: a libpq connection string \
                         such as \"host=db.internal port=5432 user=storyline dbname=storyline\" or a \
                         postgresql://user@host:5432/dbname URL (PGPASSWORD and the other PG* variables fill in \
                         what it leaves out)"
                    );
                };
                if url.trim().is_empty() {
                    anyhow::bail!(
                        "key `store.url`: empty; give at least the host, e.g. \"host=db.internal user=storyline \
                         dbname=storyline\""
                    );
                }
                if let Err(e) = url.parse::<postgres::Config>() {
                    anyhow::bail!(
                        "key `store.url`: {:?} is not a valid PostgreSQL connection string ({e}); use \
                         \"host=H port=P user=U dbname=D\" or postgresql://user@host:port/dbname",
                        redact_password(url)
                    );
                }
                storyline_store::postgres::schema::validate_schema(&self.schema)
                    .map_err(|e| anyhow::anyhow!("key `store.schema`: {e}"))?;
                if self.durability != Durability::Fsync {
                    anyhow::bail!(
                        "key `store.durability`: only the embedded store has durability levels; PostgreSQL \
                         acknowledges after COMMIT with synchronous_commit on (remove the key)"
                    );
                }
            }
            StoreKind::Scylla => {
                let hosts = self.hosts.as_deref().unwrap_or_default();
                if hosts.split(',').all(|h| h.trim().is_empty()) {
                    anyhow::bail!(
                        "key `store.hosts`: required with `store.kind = \"scylla\"`: the cluster's contact points \
                         as \"host:port\" separated by commas, e.g. \"10.0.0.1:9042,10.0.0.2:9042\""
                    );
                }
                if self.url.is_some() {
                    anyhow::bail!(
                        "key `store.url`: only used with `store.kind = \"postgres\"`; a ScyllaDB cluster is named \
                         by `store.hosts`"
                    );
                }
                let ks = &self.keyspace;
                if ks.len() > 48
                    || !ks.starts_with(|c: char| c.is_ascii_lowercase())
                    || !ks
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    anyhow::bail!(
                        "key `store.keyspace`: {ks:?} is not a usable keyspace name; use a lowercase letter then \
                         up to 47 of a-z, 0-9 and '_'"
                    );
                }
                if self.durability != Durability::Fsync {
                    anyhow::bail!(
                        "key `store.durability`: only the embedded store has durability levels; ScyllaDB writes \
                         at QUORUM (docs/deploy.md); remove the key"
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_file_gets_defaults() {
        let c = Config::parse("tenant = \"acme\"\n[pipeline]\nshards = 4\nbucket = \"500ms\"\n")
            .unwrap();
        assert_eq!(c.tenant, "acme");
        assert_eq!(c.pipeline.shards, 4);
        assert_eq!(c.pipeline.bucket, std::time::Duration::from_millis(500));
        assert_eq!(c.store.durability, Durability::Fsync);
    }

    #[test]
    fn typos_and_bad_values_are_named() {
        let e = Config::parse("tenant = \"acme\"\n[pipeline]\nshard = 4\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("shard"), "{e}");
        let e = Config::parse("[pipeline]\ngap = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gap"), "{e}");
        let e = Config::parse("tenant = \"Bad Name\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tenant"), "{e}");
        let e = Config::parse("[output]\nkind = \"kafka\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka") || e.contains("variant"), "{e}");
    }

    #[test]
    fn scylla_needs_hosts_and_keeps_its_keys_to_itself() {
        let c = Config::parse(
            "[store]\nkind = \"scylla\"\nhosts = \"10.0.0.1:9042,10.0.0.2:9042\"\nkeyspace = \"sl_prod\"\nlocal_dc = \"dc1\"\n",
        )
        .unwrap();
        assert_eq!(c.store.kind, StoreKind::Scylla);
        assert_eq!(c.store.keyspace, "sl_prod");
        let printed = toml::to_string_pretty(&c).unwrap();
        assert_eq!(Config::parse(&printed).unwrap(), c, "{printed}");
        let c = Config::parse("[store]\nkind = \"cassandra\"\nhosts = \"db:9042\"\n").unwrap();
        assert_eq!(
            (c.store.kind, c.store.keyspace.as_str()),
            (StoreKind::Scylla, "storyline")
        );

        let err = |toml: &str| Config::parse(toml).unwrap_err().to_string();
        let e = err("[store]\nkind = \"scylla\"\n");
        assert!(e.contains("store.hosts") && e.contains("required"), "{e}");
        let e = err("[store]\nkind = \"scylla\"\nhosts = \" , \"\n");
        assert!(e.contains("store.hosts"), "{e}");
        let e = err("[store]\nkind = \"scylla\"\nhosts = \"db:9042\"\nkeyspace = \"9lives\"\n");
        assert!(e.contains("store.keyspace") && e.contains("9lives"), "{e}");
        let e = err("[store]\nkind = \"scylla\"\nhosts = \"db:9042\"\nurl = \"host=db\"\n");
        assert!(e.contains("store.url"), "{e}");
        let e = err("[store]\nkind = \"scylla\"\nhosts = \"db:9042\"\ndurability = \"none\"\n");
        assert!(e.contains("store.durability"), "{e}");
        let e = err("[store]\nkind = \"postgres\"\nurl = \"host=db\"\nhosts = \"db:9042\"\n");
        assert!(e.contains("store.hosts") && e.contains("scylla"), "{e}");
    }

    /// Without the cargo feature the binary says how to get a build that has the backend, and does not
    /// start as if the database were merely down.
    #[cfg(not(feature = "scylla"))]
    #[test]
    fn scylla_without_the_feature_names_the_build_to_use() {
        let c = Config::parse("[store]\nkind = \"scylla\"\nhosts = \"127.0.0.1:1\"\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let e = crate::store::ServiceStore::start(&c.store, dir.path())
            .err()
            .expect("no ScyllaDB backend in this build")
            .to_string();
        assert!(e.contains("--features scylla"), "{e}");
    }

    #[test]
    fn store_kinds_parse_and_postgres_needs_a_url() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.store.kind, StoreKind::Embedded);
        assert_eq!(c.store.schema, "storyline");
        let c = Config::parse(
            "[store]\nkind = \"postgres\"\nurl = \"host=db user=storyline dbname=storyline\"\nschema = \"sl_prod\"\n",
        )
        .unwrap();
        assert_eq!(c.store.kind, StoreKind::Postgres);
        assert_eq!(c.store.schema, "sl_prod");
        let c = Config::parse(
            "[store]\nkind = \"postgres\"\nurl = \"postgresql://storyline@db:5432/storyline\"\n",
        )
        .unwrap();
        assert_eq!(c.store.schema, "storyline");
        // `storyline check` prints the effective configuration; it reads back the same.
        let printed = toml::to_string_pretty(&c).unwrap();
        assert_eq!(Config::parse(&printed).unwrap(), c, "{printed}");

        let e = Config::parse("[store]\nkind = \"postgres\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.url") && e.contains("required"), "{e}");
        let e = Config::parse("[store]\nkind = \"postgres\"\nurl = \"host=db port=notaport\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.url"), "{e}");
        let e = Config::parse(
            "[store]\nkind = \"postgres\"\nurl = \"host=db\"\nschema = \"Bad-Name\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("store.schema"), "{e}");
        let e = Config::parse("[store]\nurl = \"host=db\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.url") && e.contains("postgres"), "{e}");
        let e = Config::parse("[store]\nkind = \"scylla\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("scylla"), "{e}");
        let e = Config::parse(
            "[store]\nkind = \"postgres\"\nurl = \"host=db\"\ndurability = \"none\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("store.durability"), "{e}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_password("host=db password=s3cret user=u"),
            "host=db password=*** user=u"
        );
        assert_eq!(
            redact_password("host=db password = 'a b\\'c' user=u"),
            "host=db password=*** user=u"
        );
        assert_eq!(
            redact_password("postgresql://u:s3cret@db:5432/x"),
            "postgresql://u:***@db:5432/x"
        );
        assert_eq!(
            redact_password("postgres://u@db/x?password=s3cret&sslmode=disable"),
            "postgres://u@db/x?password=***&sslmode=disable"
        );
        assert_eq!(redact_password("host=db user=u"), "host=db user=u");
    }

    #[test]
    fn output_kinds_parse() {
        let c = Config::parse("[output]\nkind = \"file\"\npath = \"/tmp/x.ndjson\"\n").unwrap();
        assert!(matches!(c.output, OutputConfig::File { max_bytes, .. } if max_bytes == 256 << 20));
        assert_eq!(
            Config::parse("[output]\nkind = \"stdout\"\n")
                .unwrap()
                .output,
            OutputConfig::Stdout
        );
    }

    #[test]
    fn sources_parse_validate_and_print() {
        let text = r#"
[[sources.syslog]]
listen = "127.0.0.1:5514"
protocol = "tcp"
format = "panos"
sensor = "fw-edge-1"

[[sources.syslog]]
listen = "0.0.0.0:5514"
protocol = "udp"
format = "panos"
batch_wait = "100ms"
hostname_sensors = { "PA-3220" = "fw-edge-1", "PA-440" = "fw-branch" }

[[sources.file]]
path = "/var/log/suricata/eve.json"
format = "suricata"
sensor = "suricata-dmz"
"#;
        let c = Config::parse(text).unwrap();
        assert_eq!(c.sources.syslog.len(), 2);
        assert_eq!(c.sources.syslog[0].sensor.as_deref(), Some("fw-edge-1"));
        assert_eq!(c.sources.syslog[0].batch_records, 1000);
        assert_eq!(
            c.sources.syslog[1].batch_wait,
            std::time::Duration::from_millis(100)
        );
        assert_eq!(c.sources.syslog[1].hostname_sensors["PA-440"], "fw-branch");
        assert_eq!(c.sources.file[0].sensor, "suricata-dmz");
        assert_eq!(
            c.sources.state_dir_for(&c.data_dir),
            PathBuf::from("storyline-sources").with_file_name("storyline-data.sources")
        );
        // `storyline check` prints the effective configuration; it reads back the same.
        let printed = toml::to_string_pretty(&c).unwrap();
        assert_eq!(Config::parse(&printed).unwrap(), c, "{printed}");
    }

    #[test]
    fn a_bad_admin_token_hash_is_named() {
        let e = Config::parse("[tenants]\nadmin_token_sha256 = \"secret\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tenants.admin_token_sha256") && e.contains("new-admin-token"),
            "{e}"
        );
        let e = Config::parse("[tenants]\nidle_after = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("idle_after"), "{e}");
        let c = Config::parse(&format!("[tenants]\nanonymous = false\nadmin_token_sha256 = \"{}\"\nidle_after = \"5m\"\n[tenants.default_quotas]\nevents_per_second = 100\n", "ab".repeat(32))).unwrap();
        assert!(!c.tenants.anonymous);
        assert_eq!(c.tenants.idle_after, std::time::Duration::from_secs(300));
        assert_eq!(c.tenants.default_quotas.events_per_second, Some(100));
    }

    #[test]
    fn source_mistakes_are_named() {
        let base = "[[sources.syslog]]\nlisten = \"127.0.0.1:5514\"\nprotocol = \"tcp\"\n";
        let e = Config::parse(&format!(
            "{base}format = \"nosuchformat\"\nsensor = \"x\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sources.syslog[0].format") && e.contains("panos"),
            "{e}"
        );
        let e = Config::parse(&format!("{base}format = \"panos\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sources.syslog[0].sensor"), "{e}");
        let e = Config::parse(&format!(
            "{base}format = \"panos\"\nsensor = \"x\"\nsensr = 1\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("sensr"), "{e}");
        let e = Config::parse(&format!(
            "{base}format = \"panos\"\nsensor = \"x\"\n{base}format = \"panos\"\nsensor = \"y\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("sources.syslog[1].listen"), "{e}");
        let e = Config::parse("[[sources.file]]\npath = \"/x/eve.json\"\nformat = \"suricata\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sensor"), "{e}");
    }

    #[test]
    fn sinks_parse_print_and_replace_output() {
        let text = r#"
[[sinks]]
name = "siem"
kind = "splunk_hec"
url = "https://splunk.example.net:8088"
token = "${SPLUNK_HEC_TOKEN}"
encoding = "ecs"

[[sinks]]
name = "archive"
kind = "file"
path = "/var/lib/storyline/out/stories.csv"
encoding = "csv"
rotate_every = "1h"
gzip = true
"#;
        let c = Config::parse(text).unwrap();
        assert_eq!(c.sinks.len(), 2);
        assert_eq!(
            c.sinks[1].rotate_every,
            Some(std::time::Duration::from_secs(3600))
        );
        let printed = toml::to_string_pretty(&c).unwrap();
        assert_eq!(Config::parse(&printed).unwrap(), c, "{printed}");
        let e = Config::parse(&format!("[output]\nkind = \"stdout\"\n{text}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("output") && e.contains("sinks"), "{e}");
        let e = Config::parse("[[sinks]]\nname = \"x\"\nkind = \"http\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sinks[0].url"), "{e}");
    }
}
