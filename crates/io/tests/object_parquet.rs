//! Parquet objects through the object_store sink on the local file system backend, read back with the
//! parquet crate's own reader. Needs the cargo feature `parquet` (scripts/test.sh runs a pass with it).
#![cfg(feature = "parquet")]

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType, UInt16Type, UInt32Type};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use storyline_io::sink::config::SinkKind;
use storyline_io::sink::encode::Encoding;
use storyline_io::{SinkConfig, SinkFanout, StorySink};
use storyline_model::{Story, StoryId, Timestamp};

fn story(n: u128) -> Story {
    let mut s = Story {
        story_id: StoryId(0xfeed_0000 + n),
        version: 1 + (n % 3) as u32,
        tenant: "t".into(),
        first_seen: Timestamp::from_millis(1_795_255_201_200 + n as i64),
        last_seen: Timestamp::from_millis(1_795_255_204_000 + n as i64),
        event_count: 2,
        event_ids: vec![format!("fw:{n}").into(), format!("edr:{n}").into()],
        sensors: vec!["edr".into(), "fw".into()],
        ..Default::default()
    };
    s.fused.source.ip = Some("10.0.0.1".parse().unwrap());
    s.fused.source.port = Some(40_000 + n as u16);
    s.fused.destination.ip = Some("192.0.2.10".parse().unwrap());
    s.fused.destination.port = Some(if n.is_multiple_of(2) { 443 } else { 53 });
    s.fused.network.transport = Some("tcp".into());
    if !n.is_multiple_of(2) {
        s.fused.network.protocol = Some("dns".into());
        s.fused.dns.question.names = vec![format!("q{n}.example.net").into()].into();
    }
    s.fused.user.names = vec![format!("user-{n}").into()].into();
    s
}

fn files_under(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|e| e == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap_or_else(|e| panic!("{}: not a Parquet file: {e}", path.display()))
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn deliver(data: &Path, cfg: &SinkConfig, stories: &[Story]) {
    let f = SinkFanout::start(data, std::slice::from_ref(cfg)).unwrap();
    f.publish(stories).unwrap();
    let started = Instant::now();
    loop {
        let st = f.status().into_iter().find(|s| s.name == cfg.name).unwrap();
        assert_eq!(st.dead_lettered, 0, "{st:?}");
        if st.delivered == stories.len() as u64 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{st:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn strings(a: &dyn Array) -> Vec<String> {
    let a = a.as_string::<i32>();
    (0..a.len()).map(|i| a.value(i).to_string()).collect()
}

#[test]
fn story_rows_in_parquet_objects_read_back_column_by_column() {
    let data = tempfile::tempdir().unwrap();
    let bucket = tempfile::tempdir().unwrap();
    let cfg = SinkConfig {
        name: "lake-parquet".into(),
        kind: Some(SinkKind::ObjectStore),
        url: Some(format!("file://{}/stories", bucket.path().display())),
        encoding: Encoding::Parquet,
        batch_stories: 4,
        ..Default::default()
    };
    let stories: Vec<Story> = (0..10).map(story).collect();
    deliver(data.path(), &cfg, &stories);
    let files = files_under(bucket.path(), "parquet");
    assert_eq!(files.len(), 3, "4 + 4 + 2 stories: {files:?}");
    assert!(files[0]
        .to_string_lossy()
        .ends_with("/lake-parquet-00000000000000000000-000000.parquet"));
    let mut seen = 0;
    for path in &files {
        let b = read(path);
        let col = |n: &str| {
            b.column_by_name(n)
                .unwrap_or_else(|| panic!("no column {n}"))
                .clone()
        };
        let ids = strings(col("story_id").as_ref());
        let versions = col("version");
        let versions = versions.as_primitive::<UInt32Type>();
        let first = col("first_seen");
        let first = first.as_primitive::<TimestampMicrosecondType>();
        let dport = col("destination_port");
        let dport = dport.as_primitive::<UInt16Type>();
        let users = col("user_names");
        let users = users.as_list::<i32>();
        let dns = col("dns_names");
        let dns = dns.as_list::<i32>();
        for (i, id) in ids.iter().enumerate() {
            let s = &stories[seen];
            assert_eq!(id, &s.story_id.to_string());
            assert_eq!(versions.value(i), s.version);
            assert_eq!(first.value(i), s.first_seen.as_nanos() / 1000);
            assert_eq!(Some(dport.value(i)), s.fused.destination.port);
            assert_eq!(
                strings(users.value(i).as_ref()),
                vec![s.fused.user.names[0].to_string()]
            );
            let want_dns: Vec<String> = s
                .fused
                .dns
                .question
                .names
                .iter()
                .map(|n| n.to_string())
                .collect();
            assert_eq!(strings(dns.value(i).as_ref()), want_dns);
            assert!(col("source_bytes").is_null(i), "absent is null");
            seen += 1;
        }
    }
    assert_eq!(seen, 10);
    // Every file has the one documented schema.
    let schema = read(&files[2]).schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, storyline_io::sink::encode::csv::COLUMNS);
}

#[test]
fn ocsf_events_in_parquet_objects_keep_their_nesting() {
    let data = tempfile::tempdir().unwrap();
    let bucket = tempfile::tempdir().unwrap();
    let cfg = SinkConfig {
        name: "lake-ocsf".into(),
        kind: Some(SinkKind::ObjectStore),
        url: Some(format!("file://{}/ocsf", bucket.path().display())),
        encoding: Encoding::OcsfParquet,
        ..Default::default()
    };
    let stories: Vec<Story> = (0..6).map(story).collect();
    deliver(data.path(), &cfg, &stories);
    let files = files_under(bucket.path(), "parquet");
    assert_eq!(files.len(), 1);
    let b = read(&files[0]);
    assert_eq!(b.num_rows(), 6);
    let class = b.column_by_name("class_uid").unwrap();
    let class = class.as_primitive::<Int64Type>();
    for (i, s) in stories.iter().enumerate() {
        let want = if s.fused.network.protocol.as_deref() == Some("dns") {
            4003
        } else {
            4001
        };
        assert_eq!(class.value(i), want, "story {i}");
    }
    let meta = b.column_by_name("metadata").unwrap();
    let uid = meta.as_struct().column_by_name("uid").unwrap().clone();
    let want: Vec<String> = stories
        .iter()
        .map(|s| format!("{}-{}", s.story_id, s.version))
        .collect();
    assert_eq!(strings(uid.as_ref()), want);
    let query = b.column_by_name("query").expect("DNS stories have a query");
    let host = query.as_struct().column_by_name("hostname").unwrap();
    let host = host.as_string::<i32>();
    assert!(host.is_null(0));
    assert_eq!(host.value(1), "q1.example.net");
}

#[test]
fn parquet_configurations_in_docs_sinks_md_are_valid() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/sinks.md"))
            .unwrap();
    let blocks: Vec<&str> = doc
        .split("```toml parquet\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(
        !blocks.is_empty(),
        "no ```toml parquet block in docs/sinks.md"
    );
    #[derive(serde::Deserialize)]
    struct Doc {
        sinks: Vec<SinkConfig>,
    }
    for b in blocks {
        let d: Doc = toml::from_str(b).unwrap_or_else(|e| panic!("{e}\n{b}"));
        storyline_io::sink::config::validate_all(&d.sinks).unwrap_or_else(|e| panic!("{e}\n{b}"));
        assert!(d.sinks.iter().all(|s| s.encoding.is_parquet()), "{b}");
    }
}
