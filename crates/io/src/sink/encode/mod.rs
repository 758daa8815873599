//! Encodings: pure functions from a [`Story`] to bytes, one module each.
//!
//! | encoding | module | one story is | a batch is |
//! |---|---|---|---|
//! | `story` | [`story_line`](super::story_line) | the Storyline story JSON | NDJSON / JSON array |
//! | `ecs` | [`ecs`] | an Elastic Common Schema document | NDJSON / JSON array |
//! | `ocsf` | [`ocsf`] | an OCSF 1.3 event (Network, HTTP, DNS Activity or Detection Finding) | NDJSON / JSON array |
//! | `csv` | [`csv`] | one RFC 4180 record of fixed columns | header line + records |
//! | `avro` | [`avro`] | one record of `story.avsc` | an Avro object container file |
//! | `parquet` | `parquet` (feature `parquet`) | one row of typed story columns | a Parquet file |
//! | `ocsf_parquet` | `parquet` (feature `parquet`) | one row of an OCSF event, nested | a Parquet file |
//!
//! Delivery sinks pick the framing they need (the HTTP sink sends JSON arrays, Elasticsearch NDJSON bulk
//! lines, syslog one message per story); the per-story functions are the same everywhere.

pub mod avro;
pub mod csv;
pub mod ecs;
pub mod ocsf;
#[cfg(feature = "parquet")]
pub mod parquet;

use serde::{Deserialize, Serialize};
use storyline_model::Story;

/// `encoding = "..."` of a sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The Storyline story JSON, as `storyline replay` writes it.
    #[default]
    Story,
    /// Elastic Common Schema.
    Ecs,
    /// Open Cybersecurity Schema Framework 1.3.
    Ocsf,
    /// Comma-separated values, fixed columns ([`csv::COLUMNS`]).
    Csv,
    /// Apache Avro, schema `story.avsc`.
    Avro,
    /// Apache Parquet, one typed row per story version (object_store only; cargo feature `parquet`).
    Parquet,
    /// Apache Parquet, one nested row per OCSF event (object_store only; cargo feature `parquet`).
    #[serde(rename = "ocsf_parquet")]
    OcsfParquet,
}

impl Encoding {
    pub const ALL: &'static [&'static str] = &[
        "story",
        "ecs",
        "ocsf",
        "csv",
        "avro",
        "parquet",
        "ocsf_parquet",
    ];

    pub fn name(self) -> &'static str {
        match self {
            Encoding::Story => "story",
            Encoding::Ecs => "ecs",
            Encoding::Ocsf => "ocsf",
            Encoding::Csv => "csv",
            Encoding::Avro => "avro",
            Encoding::Parquet => "parquet",
            Encoding::OcsfParquet => "ocsf_parquet",
        }
    }

    /// A whole-file encoding (Parquet): a batch is one file with a footer, so it cannot be appended to
    /// or streamed line by line; only the object store sink, one object per batch, takes it.
    pub fn is_parquet(self) -> bool {
        matches!(self, Encoding::Parquet | Encoding::OcsfParquet)
    }

    /// One JSON document per story (`story`, `ecs`, `ocsf`).
    pub fn is_json(self) -> bool {
        matches!(self, Encoding::Story | Encoding::Ecs | Encoding::Ocsf)
    }

    /// The JSON document of one story; `None` for the non-JSON encodings.
    pub fn json(self, story: &Story) -> Option<serde_json::Value> {
        match self {
            Encoding::Story => Some(story.to_json()),
            Encoding::Ecs => Some(ecs::document(story)),
            Encoding::Ocsf => Some(ocsf::event(story)),
            Encoding::Csv | Encoding::Avro | Encoding::Parquet | Encoding::OcsfParquet => None,
        }
    }

    /// Like [`batch`](Self::batch), for every encoding: the Parquet encodings can fail (a build without
    /// the `parquet` feature, an OCSF batch whose schema cannot be inferred), and the error says why.
    pub fn try_batch(self, stories: &[Story]) -> Result<Vec<u8>, String> {
        match self {
            #[cfg(feature = "parquet")]
            Encoding::Parquet => parquet::file(&parquet::story_batch(stories)?),
            #[cfg(feature = "parquet")]
            Encoding::OcsfParquet => parquet::file(&parquet::ocsf_batch(stories)?),
            #[cfg(not(feature = "parquet"))]
            Encoding::Parquet | Encoding::OcsfParquet => Err(format!(
                "encoding {:?}: this build has no Parquet; build with `--features storyline-io/parquet`",
                self.name()
            )),
            _ => Ok(self.batch(stories)),
        }
    }

    /// The stories as a self-contained byte stream: NDJSON for the JSON encodings, a header line and
    /// records for CSV, an object container file for Avro, a Parquet file (empty when that fails: use
    /// [`try_batch`](Self::try_batch) for Parquet).
    pub fn batch(self, stories: &[Story]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(stories.len() * 600);
        match self {
            Encoding::Parquet | Encoding::OcsfParquet => {
                buf = self.try_batch(stories).unwrap_or_default()
            }
            Encoding::Csv => {
                csv::header(&mut buf);
                for s in stories {
                    csv::record(s, &mut buf);
                }
            }
            Encoding::Avro => buf = avro::container(stories),
            _ => {
                for s in stories {
                    self.line(s, &mut buf);
                }
            }
        }
        buf
    }

    /// One line per story (JSON encodings and CSV records; Avro has no lines).
    pub fn line(self, story: &Story, buf: &mut Vec<u8>) {
        match self {
            Encoding::Csv => csv::record(story, buf),
            Encoding::Avro | Encoding::Parquet | Encoding::OcsfParquet => {
                unreachable!(
                    "{} has no line form (validation keeps it off line sinks)",
                    self.name()
                )
            }
            _ => {
                let doc = self.json(story).expect("json encoding");
                serde_json::to_writer(&mut *buf, &doc).expect("writing JSON to a Vec cannot fail");
                buf.push(b'\n');
            }
        }
    }

    /// File name extension of a batch.
    pub fn extension(self) -> &'static str {
        match self {
            Encoding::Csv => "csv",
            Encoding::Avro => "avro",
            Encoding::Parquet | Encoding::OcsfParquet => "parquet",
            _ => "ndjson",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Csv => "text/csv",
            Encoding::Avro => "avro/binary",
            Encoding::Parquet | Encoding::OcsfParquet => "application/vnd.apache.parquet",
            _ => "application/x-ndjson",
        }
    }
}

/// `<story_id>-<version>`: the id receivers dedupe on (the Elasticsearch `_id`, OCSF `metadata.uid`).
pub fn doc_id(story: &Story) -> String {
    format!("{}-{}", story.story_id, story.version)
}

/// Inserts `key: value` unless the value is null, an empty string, an empty array or an empty object.
pub(crate) fn put(
    map: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    value: serde_json::Value,
) {
    let empty = match &value {
        serde_json::Value::Null => true,
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if !empty {
        map.insert(key.to_string(), value);
    }
}

pub(crate) fn strs(v: &[storyline_model::Str]) -> serde_json::Value {
    serde_json::Value::Array(
        v.iter()
            .map(|s| serde_json::Value::from(s.as_str()))
            .collect(),
    )
}

#[cfg(test)]
pub(crate) mod fixtures {
    use storyline_model::{SensorView, Story, StoryId, Timestamp};

    /// A TLS session seen by a firewall (NAT), an endpoint agent and Zeek.
    pub fn tls_story() -> Story {
        let mut s = Story {
            story_id: StoryId(0x5d0c),
            version: 3,
            tenant: "default".into(),
            first_seen: Timestamp::parse_rfc3339("2026-11-21T10:00:01.2Z").unwrap(),
            last_seen: Timestamp::parse_rfc3339("2026-11-21T10:00:04Z").unwrap(),
            event_count: 3,
            event_ids: vec![
                "WS-12:88121".into(),
                "001801000123:5512".into(),
                "9f3c".into(),
            ],
            sensors: vec!["edr-agent".into(), "fw-edge-1".into(), "zeek-core".into()],
            ..Default::default()
        };
        let f = &mut s.fused;
        f.source.ip = Some("10.3.1.20".parse().unwrap());
        f.source.port = Some(51544);
        f.source.bytes = Some(1830);
        f.source.packets = Some(12);
        f.source.nat.ip = Some("198.51.100.7".parse().unwrap());
        f.source.nat.port = Some(40112);
        f.destination.ip = Some("93.184.216.34".parse().unwrap());
        f.destination.port = Some(443);
        f.destination.bytes = Some(48211);
        f.network.transport = Some("tcp".into());
        f.network.protocol = Some("tls".into());
        f.network.community_id = Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=".into());
        f.tls.server_names = vec!["www.example.com".into()].into();
        f.user.names = vec!["CORP\\alice".into()].into();
        f.host.names = vec!["WS-12".into()].into();
        f.process.names = vec!["chrome.exe".into()].into();
        f.event.actions = vec!["allow".into()].into();
        s.provenance = vec![SensorView {
            sensor: "fw-edge-1".into(),
            events: 1,
            first_seen: s.first_seen,
            last_seen: s.last_seen,
            source_bytes: Some(1830),
            destination_bytes: Some(48211),
            actions: vec!["allow".into()].into(),
            clock_offset_ms: None,
        }];
        s
    }

    /// A DNS lookup over UDP.
    pub fn dns_story() -> Story {
        let mut s = tls_story();
        s.story_id = StoryId(0xd15);
        s.version = 1;
        let f = &mut s.fused;
        f.destination.ip = Some("10.0.0.53".parse().unwrap());
        f.destination.port = Some(53);
        f.network.transport = Some("udp".into());
        f.network.protocol = Some("dns".into());
        f.tls.server_names.clear();
        f.dns.question.names = vec!["www.example.com".into()].into();
        s
    }

    /// An IDS alert on an HTTP session.
    pub fn alert_story() -> Story {
        let mut s = tls_story();
        s.story_id = StoryId(0xa1e7);
        s.version = 2;
        let f = &mut s.fused;
        f.network.protocol = Some("http".into());
        f.destination.port = Some(80);
        f.tls.server_names.clear();
        f.url.domains = vec!["evil.example.net".into()].into();
        f.rule.names = vec!["ET MALWARE Known Bad UA".into(), "ET POLICY curl UA".into()].into();
        f.event.categories = vec!["intrusion_detection".into()].into();
        s
    }

    /// An HTTP session without alerts.
    pub fn http_story() -> Story {
        let mut s = alert_story();
        s.story_id = StoryId(0x477);
        s.fused.rule.names.clear();
        s.fused.event.categories.clear();
        s
    }
}
