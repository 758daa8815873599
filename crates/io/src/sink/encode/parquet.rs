//! Apache Parquet (cargo feature `parquet`): one file per batch, one row group, Snappy pages.
//!
//! - `parquet` — one row per story version, the columns of [`super::csv::COLUMNS`] with their own
//!   types ([`story_schema`]): times as UTC microsecond timestamps, counters as unsigned integers,
//!   name lists as lists of strings, absent values null. Fixed, so every file of a sink has one schema.
//! - `ocsf_parquet` — one row per OCSF event ([`super::ocsf::event`]), nested as the JSON is (objects
//!   become structs, arrays lists). The schema is inferred from the batch's events, so a batch without
//!   any DNS story has no `query` column: readers that merge schemas (Spark, DuckDB `union_by_name`,
//!   Athena/Glue crawlers) read a directory of them as one table.
//!
//! Snappy rather than zstd: pure Rust (no C build), and what most lake tools default to.

use arrow_array::builder::{
    ListBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt16Builder, UInt32Builder,
    UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::sync::{Arc, OnceLock};
use storyline_model::{Story, Str, Timestamp};

fn list_of_strings() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// The schema of `parquet` story rows. Columns are only ever added at the end.
pub fn story_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
            let mut fields = Vec::new();
            for name in super::csv::COLUMNS {
                let (ty, nullable) = match *name {
                    "story_id" | "tenant" => (DataType::Utf8, false),
                    "version" | "event_count" => (DataType::UInt32, false),
                    "first_seen" | "last_seen" => (ts.clone(), false),
                    "source_port" | "source_nat_port" | "destination_port" => {
                        (DataType::UInt16, true)
                    }
                    "source_bytes"
                    | "source_packets"
                    | "destination_bytes"
                    | "destination_packets"
                    | "network_bytes"
                    | "network_packets" => (DataType::UInt64, true),
                    "sensors" | "dns_names" | "url_domains" | "tls_server_names" | "user_names"
                    | "host_names" | "process_names" | "rule_names" | "actions" | "categories"
                    | "event_ids" => (list_of_strings(), false),
                    _ => (DataType::Utf8, true),
                };
                fields.push(Field::new(*name, ty, nullable));
            }
            Arc::new(Schema::new(fields))
        })
        .clone()
}

/// Builds one column of the story rows; `get` reads its value from a story.
enum Col {
    Str(StringBuilder, fn(&Story) -> Option<String>),
    U16(UInt16Builder, fn(&Story) -> Option<u16>),
    U32(UInt32Builder, fn(&Story) -> Option<u32>),
    U64(UInt64Builder, fn(&Story) -> Option<u64>),
    Time(TimestampMicrosecondBuilder, fn(&Story) -> Timestamp),
    List(ListBuilder<StringBuilder>, fn(&Story) -> Vec<&str>),
}

fn strs(v: &[Str]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

fn column(name: &str) -> Col {
    let s = StringBuilder::new;
    let list = || ListBuilder::new(StringBuilder::new());
    match name {
        "story_id" => Col::Str(s(), |x| Some(x.story_id.to_string())),
        "version" => Col::U32(UInt32Builder::new(), |x| Some(x.version)),
        "tenant" => Col::Str(s(), |x| Some(x.tenant.to_string())),
        "first_seen" => Col::Time(TimestampMicrosecondBuilder::new(), |x| x.first_seen),
        "last_seen" => Col::Time(TimestampMicrosecondBuilder::new(), |x| x.last_seen),
        "event_count" => Col::U32(UInt32Builder::new(), |x| Some(x.event_count)),
        "sensors" => Col::List(list(), |x| strs(&x.sensors)),
        "source_ip" => Col::Str(s(), |x| x.fused.source.ip.map(|i| i.to_string())),
        "source_port" => Col::U16(UInt16Builder::new(), |x| x.fused.source.port),
        "source_bytes" => Col::U64(UInt64Builder::new(), |x| x.fused.source.bytes),
        "source_packets" => Col::U64(UInt64Builder::new(), |x| x.fused.source.packets),
        "source_nat_ip" => Col::Str(s(), |x| x.fused.source.nat.ip.map(|i| i.to_string())),
        "source_nat_port" => Col::U16(UInt16Builder::new(), |x| x.fused.source.nat.port),
        "destination_ip" => Col::Str(s(), |x| x.fused.destination.ip.map(|i| i.to_string())),
        "destination_port" => Col::U16(UInt16Builder::new(), |x| x.fused.destination.port),
        "destination_bytes" => Col::U64(UInt64Builder::new(), |x| x.fused.destination.bytes),
        "destination_packets" => Col::U64(UInt64Builder::new(), |x| x.fused.destination.packets),
        "network_transport" => Col::Str(s(), |x| {
            x.fused.network.transport.as_deref().map(str::to_string)
        }),
        "network_protocol" => Col::Str(s(), |x| {
            x.fused.network.protocol.as_deref().map(str::to_string)
        }),
        "community_id" => Col::Str(s(), |x| {
            x.fused.network.community_id.as_deref().map(str::to_string)
        }),
        "network_bytes" => Col::U64(UInt64Builder::new(), |x| x.fused.network.bytes),
        "network_packets" => Col::U64(UInt64Builder::new(), |x| x.fused.network.packets),
        "dns_names" => Col::List(list(), |x| strs(&x.fused.dns.question.names)),
        "url_domains" => Col::List(list(), |x| strs(&x.fused.url.domains)),
        "tls_server_names" => Col::List(list(), |x| strs(&x.fused.tls.server_names)),
        "user_names" => Col::List(list(), |x| strs(&x.fused.user.names)),
        "host_names" => Col::List(list(), |x| strs(&x.fused.host.names)),
        "process_names" => Col::List(list(), |x| strs(&x.fused.process.names)),
        "rule_names" => Col::List(list(), |x| strs(&x.fused.rule.names)),
        "actions" => Col::List(list(), |x| strs(&x.fused.event.actions)),
        "categories" => Col::List(list(), |x| strs(&x.fused.event.categories)),
        "merged_into" => Col::Str(s(), |x| x.merged_into.map(|m| m.to_string())),
        "event_ids" => Col::List(list(), |x| x.event_ids.iter().map(|e| e.as_str()).collect()),
        other => unreachable!("column {other} of csv::COLUMNS has no Parquet builder"),
    }
}

impl Col {
    fn push(&mut self, s: &Story) {
        match self {
            Col::Str(b, get) => b.append_option(get(s)),
            Col::U16(b, get) => b.append_option(get(s)),
            Col::U32(b, get) => b.append_option(get(s)),
            Col::U64(b, get) => b.append_option(get(s)),
            Col::Time(b, get) => b.append_value(get(s).as_nanos() / 1000),
            Col::List(b, get) => {
                for v in get(s) {
                    b.values().append_value(v);
                }
                b.append(true);
            }
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Col::Str(mut b, _) => Arc::new(b.finish()),
            Col::U16(mut b, _) => Arc::new(b.finish()),
            Col::U32(mut b, _) => Arc::new(b.finish()),
            Col::U64(mut b, _) => Arc::new(b.finish()),
            Col::Time(mut b, _) => Arc::new(b.finish().with_timezone("UTC")),
            Col::List(mut b, _) => Arc::new(b.finish()),
        }
    }
}

/// The story rows of a batch as an Arrow record batch of [`story_schema`].
pub fn story_batch(stories: &[Story]) -> Result<RecordBatch, String> {
    let mut cols: Vec<Col> = super::csv::COLUMNS.iter().map(|c| column(c)).collect();
    for s in stories {
        for c in &mut cols {
            c.push(s);
        }
    }
    // The builders make lists with nullable items and non-null lists; the schema says the same, so
    // the batch checks out.
    RecordBatch::try_new(story_schema(), cols.into_iter().map(Col::finish).collect())
        .map_err(|e| format!("parquet story rows: {e}"))
}

/// The OCSF events of a batch as an Arrow record batch, its schema inferred from the events.
pub fn ocsf_batch(stories: &[Story]) -> Result<RecordBatch, String> {
    let mut ndjson = Vec::with_capacity(stories.len() * 1200);
    for s in stories {
        serde_json::to_writer(&mut ndjson, &super::ocsf::event(s))
            .map_err(|e| format!("ocsf: {e}"))?;
        ndjson.push(b'\n');
    }
    let (schema, _) =
        arrow_json::reader::infer_json_schema_from_seekable(std::io::Cursor::new(&ndjson), None)
            .map_err(|e| format!("ocsf_parquet: inferring the schema: {e}"))?;
    let schema = Arc::new(schema);
    let mut reader = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(stories.len().max(1))
        .build(std::io::Cursor::new(&ndjson))
        .map_err(|e| format!("ocsf_parquet: {e}"))?;
    let mut batches = Vec::new();
    for b in &mut reader {
        batches.push(b.map_err(|e| format!("ocsf_parquet: reading the events: {e}"))?);
    }
    arrow_select_concat(&schema, &batches)
}

fn arrow_select_concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch, String> {
    match batches {
        [] => Ok(RecordBatch::new_empty(schema.clone())),
        [one] => Ok(one.clone()),
        many => arrow_select::concat::concat_batches(schema, many)
            .map_err(|e| format!("ocsf_parquet: {e}")),
    }
}

/// A whole Parquet file holding `batch`.
pub fn file(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(format!("storyline {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))
        .map_err(|e| format!("parquet: {e}"))?;
    w.write(batch).map_err(|e| format!("parquet: {e}"))?;
    w.close().map_err(|e| format!("parquet: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{TimestampMicrosecondType, UInt16Type, UInt32Type, UInt64Type};
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn read(bytes: Vec<u8>) -> RecordBatch {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap()
    }

    #[test]
    fn story_rows_round_trip_with_their_types() {
        let mut merged = http_story();
        merged.merged_into = Some(storyline_model::StoryId(0x77));
        let stories = vec![tls_story(), dns_story(), alert_story(), merged];
        let b = read(file(&story_batch(&stories).unwrap()).unwrap());
        assert_eq!(b.num_rows(), 4);
        assert_eq!(b.schema().fields().len(), super::super::csv::COLUMNS.len());
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let ids = col("story_id");
        let ids = ids.as_string::<i32>();
        for (i, s) in stories.iter().enumerate() {
            assert_eq!(ids.value(i), s.story_id.to_string());
        }
        assert_eq!(col("version").as_primitive::<UInt32Type>().value(0), 3);
        assert_eq!(
            col("first_seen")
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            stories[0].first_seen.as_nanos() / 1000
        );
        assert_eq!(
            col("destination_port")
                .as_primitive::<UInt16Type>()
                .value(1),
            53
        );
        assert_eq!(
            col("destination_bytes")
                .as_primitive::<UInt64Type>()
                .value(0),
            48211
        );
        // An absent value is null, not zero or "".
        assert!(col("destination_packets").is_null(0));
        assert!(col("merged_into").is_null(0));
        assert_eq!(
            col("merged_into").as_string::<i32>().value(3),
            storyline_model::StoryId(0x77).to_string()
        );
        let rules = col("rule_names");
        let rules = rules.as_list::<i32>();
        let r2 = rules.value(2);
        let r2 = r2.as_string::<i32>();
        assert_eq!(
            (0..r2.len()).map(|i| r2.value(i)).collect::<Vec<_>>(),
            vec!["ET MALWARE Known Bad UA", "ET POLICY curl UA"]
        );
        assert_eq!(rules.value(0).len(), 0, "no rules: an empty list");
        assert_eq!(
            col("source_nat_ip").as_string::<i32>().value(0),
            "198.51.100.7"
        );
    }

    #[test]
    fn ocsf_rows_are_nested_like_the_json() {
        let stories = vec![tls_story(), dns_story(), alert_story()];
        let b = read(file(&ocsf_batch(&stories).unwrap()).unwrap());
        assert_eq!(b.num_rows(), 3);
        let class = b.column_by_name("class_uid").unwrap();
        let class = class.as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!(
            (0..3).map(|i| class.value(i)).collect::<Vec<_>>(),
            vec![4001, 4003, 2004]
        );
        let meta = b.column_by_name("metadata").unwrap();
        let uid = meta.as_struct().column_by_name("uid").unwrap();
        assert_eq!(
            uid.as_string::<i32>().value(1),
            super::super::doc_id(&stories[1])
        );
        let dst = b.column_by_name("dst_endpoint").unwrap();
        let port = dst.as_struct().column_by_name("port").unwrap();
        assert_eq!(
            port.as_primitive::<arrow_array::types::Int64Type>()
                .value(0),
            443
        );
    }
}
