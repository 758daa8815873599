//! Apache Avro: one record of the schema in `story.avsc` per story version; a batch is an object
//! container file (header with the schema, then blocks), which is what Avro readers (Spark, Hive, the
//! `avro-tools` CLI) open. Times are `timestamp-micros`.

use apache_avro::types::Value;
use apache_avro::{Schema, Writer};
use std::sync::OnceLock;
use storyline_model::{FusedEndpoint, Story, Str, Timestamp};

/// The schema text (also shipped as `crates/io/src/sink/encode/story.avsc`).
pub const SCHEMA: &str = include_str!("story.avsc");

pub fn schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| Schema::parse_str(SCHEMA).expect("story.avsc is a valid schema"))
}

fn micros(t: Timestamp) -> Value {
    Value::TimestampMicros(t.as_nanos().div_euclid(1000))
}

fn opt_str(v: Option<String>) -> Value {
    match v {
        Some(s) => Value::Union(1, Box::new(Value::String(s))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

fn opt_long(v: Option<u64>) -> Value {
    match v {
        Some(n) => Value::Union(1, Box::new(Value::Long(n.min(i64::MAX as u64) as i64))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

fn opt_int(v: Option<u16>) -> Value {
    match v {
        Some(n) => Value::Union(1, Box::new(Value::Int(i32::from(n)))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

fn strings(v: &[Str]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect())
}

fn endpoint(e: &FusedEndpoint) -> Value {
    Value::Record(vec![
        ("ip".into(), opt_str(e.ip.map(|i| i.to_string()))),
        ("port".into(), opt_int(e.port)),
        ("bytes".into(), opt_long(e.bytes)),
        ("packets".into(), opt_long(e.packets)),
        ("nat_ip".into(), opt_str(e.nat.ip.map(|i| i.to_string()))),
        ("nat_port".into(), opt_int(e.nat.port)),
    ])
}

/// The Avro record of one story version.
pub fn record(s: &Story) -> Value {
    let f = &s.fused;
    let n = &f.network;
    Value::Record(vec![
        ("story_id".into(), Value::String(s.story_id.to_string())),
        ("version".into(), Value::Long(i64::from(s.version))),
        ("tenant".into(), Value::String(s.tenant.to_string())),
        ("first_seen".into(), micros(s.first_seen)),
        ("last_seen".into(), micros(s.last_seen)),
        ("event_count".into(), Value::Long(i64::from(s.event_count))),
        ("event_ids".into(), strings(&s.event_ids)),
        ("sensors".into(), strings(&s.sensors)),
        (
            "merged_into".into(),
            opt_str(s.merged_into.map(|i| i.to_string())),
        ),
        ("source".into(), endpoint(&f.source)),
        ("destination".into(), endpoint(&f.destination)),
        (
            "network".into(),
            Value::Record(vec![
                (
                    "transport".into(),
                    opt_str(n.transport.as_ref().map(|s| s.to_string())),
                ),
                (
                    "protocol".into(),
                    opt_str(n.protocol.as_ref().map(|s| s.to_string())),
                ),
                (
                    "community_id".into(),
                    opt_str(n.community_id.as_ref().map(|s| s.to_string())),
                ),
                ("bytes".into(), opt_long(n.bytes)),
                ("packets".into(), opt_long(n.packets)),
            ]),
        ),
        ("dns_names".into(), strings(&f.dns.question.names)),
        ("url_domains".into(), strings(&f.url.domains)),
        ("tls_server_names".into(), strings(&f.tls.server_names)),
        ("user_names".into(), strings(&f.user.names)),
        ("host_names".into(), strings(&f.host.names)),
        ("process_names".into(), strings(&f.process.names)),
        ("rule_names".into(), strings(&f.rule.names)),
        ("actions".into(), strings(&f.event.actions)),
        ("categories".into(), strings(&f.event.categories)),
        (
            "provenance".into(),
            Value::Array(
                s.provenance
                    .iter()
                    .map(|p| {
                        Value::Record(vec![
                            ("sensor".into(), Value::String(p.sensor.to_string())),
                            ("events".into(), Value::Long(i64::from(p.events))),
                            ("first_seen".into(), micros(p.first_seen)),
                            ("last_seen".into(), micros(p.last_seen)),
                            ("source_bytes".into(), opt_long(p.source_bytes)),
                            ("destination_bytes".into(), opt_long(p.destination_bytes)),
                            ("actions".into(), strings(&p.actions)),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("cuts".into(), strings(&s.cuts)),
    ])
}

/// A complete object container file holding `stories` (deflate blocks).
pub fn container(stories: &[Story]) -> Vec<u8> {
    let mut w = Writer::with_codec(
        schema(),
        Vec::new(),
        apache_avro::Codec::Deflate(Default::default()),
    );
    for s in stories {
        w.append(record(s)).expect("story records match story.avsc");
    }
    w.into_inner().expect("writing Avro to a Vec cannot fail")
}

/// Blocks to append to an existing container file whose sync marker is `marker` (the last 16 bytes of
/// any container file written by [`container`] or this function).
pub fn blocks(stories: &[Story], marker: [u8; 16]) -> Vec<u8> {
    let mut w = Writer::append_to_with_codec(
        schema(),
        Vec::new(),
        apache_avro::Codec::Deflate(Default::default()),
        marker,
    );
    for s in stories {
        w.append(record(s)).expect("story records match story.avsc");
    }
    w.into_inner().expect("writing Avro to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use apache_avro::Reader;

    fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
        match v {
            Value::Record(fields) => &fields.iter().find(|(k, _)| k == name).unwrap().1,
            _ => panic!("not a record: {v:?}"),
        }
    }

    #[test]
    fn container_round_trips_through_a_reader() {
        let stories = [tls_story(), dns_story(), alert_story()];
        let bytes = container(&stories[..2]);
        // Append a third story as a block with the same marker, as the file sink does.
        let mut file = bytes.clone();
        file.extend(blocks(&stories[2..], apache_avro::read_marker(&bytes)));
        let reader = Reader::new(&file[..]).unwrap();
        let back: Vec<Value> = reader.map(|r| r.unwrap()).collect();
        assert_eq!(back.len(), 3);
        assert_eq!(
            field(&back[0], "story_id"),
            &Value::String("00000000000000000000000000005d0c".into())
        );
        assert_eq!(field(&back[0], "version"), &Value::Long(3));
        assert_eq!(
            field(&back[0], "first_seen"),
            &Value::TimestampMicros(1_795_255_201_200_000)
        );
        let src = field(&back[0], "source");
        assert_eq!(
            field(src, "nat_ip"),
            &Value::Union(1, Box::new(Value::String("198.51.100.7".into())))
        );
        assert_eq!(
            field(src, "port"),
            &Value::Union(1, Box::new(Value::Int(51544)))
        );
        assert_eq!(
            field(&back[2], "rule_names"),
            &Value::Array(vec![
                Value::String("ET MALWARE Known Bad UA".into()),
                Value::String("ET POLICY curl UA".into())
            ])
        );
        assert_eq!(
            field(&back[1], "merged_into"),
            &Value::Union(0, Box::new(Value::Null))
        );
    }

    #[test]
    fn the_schema_file_parses() {
        assert!(matches!(schema(), Schema::Record(_)));
    }
}
