//! The shared conformance suite on the PostgreSQL backend, plus what only a real server shows.
//!
//! Needs a server: `STORYLINE_TEST_PG` is a libpq connection string (for example
//! `host=127.0.0.1 port=5433 user=postgres dbname=postgres`); every test works in a schema of its own
//! with a random name and drops it at the end. Without the variable each test prints
//! `skipped: STORYLINE_TEST_PG not set` and passes, unless `STORYLINE_REQUIRE_PG=1` (set by
//! scripts/test.sh, which starts a throwaway server) makes that a failure.
#![cfg(feature = "postgres")]

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use storyline_model::EventKey;
use storyline_store::postgres::{PostgresOptions, PostgresStore};
use storyline_store::*;

fn server() -> Option<String> {
    match std::env::var("STORYLINE_TEST_PG") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if std::env::var("STORYLINE_REQUIRE_PG").as_deref() == Ok("1") {
                panic!(
                    "STORYLINE_REQUIRE_PG=1 but STORYLINE_TEST_PG is not set: set it to a libpq connection string \
                     such as `host=127.0.0.1 port=5433 user=postgres dbname=postgres` (scripts/test.sh starts a \
                     throwaway server and sets both)"
                );
            }
            println!("skipped: STORYLINE_TEST_PG not set");
            None
        }
    }
}

fn random_schema() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let h = std::collections::hash_map::RandomState::new().hash_one((
        std::process::id(),
        std::time::SystemTime::now(),
        N.fetch_add(1, Ordering::Relaxed),
    ));
    format!("sl_test_{h:016x}")
}

/// A schema of its own for one test, dropped (with everything in it) when the test ends.
struct Fresh {
    store: Option<PostgresStore>,
    url: String,
    schema: String,
}

impl std::ops::Deref for Fresh {
    type Target = PostgresStore;
    fn deref(&self) -> &PostgresStore {
        self.store.as_ref().expect("store open")
    }
}

impl Fresh {
    fn new(opts: PostgresOptions) -> Option<Box<Fresh>> {
        let url = server()?;
        let schema = random_schema();
        let store = PostgresStore::connect_with(&url, &schema, opts)
            .unwrap_or_else(|e| panic!("connect to STORYLINE_TEST_PG ({url}): {e}"));
        Some(Box::new(Fresh {
            store: Some(store),
            url,
            schema,
        }))
    }

    /// Another store on the same schema, with its own connections.
    fn reconnect(&self) -> PostgresStore {
        PostgresStore::connect(&self.url, &self.schema).unwrap()
    }

    fn sql(&self) -> ::postgres::Client {
        ::postgres::Client::connect(&self.url, ::postgres::NoTls).unwrap()
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        self.store = None;
        match ::postgres::Client::connect(&self.url, ::postgres::NoTls) {
            Ok(mut c) => {
                if let Err(e) = c.batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                    self.schema
                )) {
                    eprintln!("could not drop test schema {}: {e}", self.schema);
                }
            }
            Err(e) => eprintln!("could not drop test schema {}: {e}", self.schema),
        }
    }
}

fn fresh() -> Option<Box<Fresh>> {
    Fresh::new(PostgresOptions::default())
}

storyline_store::conformance_tests!(match fresh() {
    Some(s) => s,
    None => return,
});

fn one(shard: u16, bucket: Bucket, key: u128) -> NewEvent<'static> {
    NewEvent {
        shard,
        bucket,
        key: EventKey(key),
        event: b"e",
        raw: b"r",
    }
}

fn count(s: &PostgresStore, tenant: &str, shard: u16) -> usize {
    s.scan(tenant, shard, BucketRange::all(), None, 10_000)
        .unwrap()
        .len()
}

#[test]
fn acknowledged_append_survives_a_new_connection() {
    let Some(f) = fresh() else { return };
    f.ensure_tenant("t", 2).unwrap();
    f.append("t", &[one(0, 5, 1), one(1, 5, 2)]).unwrap();
    let again = f.reconnect();
    assert_eq!(count(&again, "t", 0), 1);
    assert_eq!(count(&again, "t", 1), 1);
    assert_eq!(
        again.payload("t", 1, 5, EventKey(2)).unwrap().as_deref(),
        Some(&b"r"[..])
    );
    assert!(
        matches!(
            again.ensure_tenant("t", 3),
            Err(StoreError::ShardCountMismatch { stored: 2, .. })
        ),
        "the shard count is remembered"
    );
    // And the rows are on the server, not in some client-side buffer.
    let n: i64 = f
        .sql()
        .query_one(
            format!("SELECT count(*) FROM \"{}\".events", f.schema).as_str(),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

#[test]
fn concurrent_acquires_never_both_win() {
    let Some(f) = fresh() else { return };
    // One pooled store shared by both threads: each acquire takes a connection of its own.
    let store: Arc<dyn Store> = Arc::new(f.reconnect());
    storyline_store::conformance::concurrent_acquires_never_both_win([store.clone(), store], 50);
}

#[test]
fn a_resent_batch_is_stored_once_and_still_bumps_marks() {
    let Some(f) = fresh() else { return };
    f.ensure_tenant("t", 1).unwrap();
    let batch: Vec<_> = (0..100u128)
        .map(|k| one(0, 1000 + (k % 3) as i64, k))
        .collect();
    f.append("t", &batch).unwrap();
    let m1 = f.bucket_marks("t", 0, BucketRange::all()).unwrap();
    f.append("t", &batch).unwrap();
    let m2 = f.bucket_marks("t", 0, BucketRange::all()).unwrap();
    assert_eq!(count(&f, "t", 0), 100);
    assert_eq!(m1.len(), 3);
    assert!(m1.iter().zip(&m2).all(|(a, b)| a.0 == b.0 && a.1 < b.1));
    // Retention counts what was stored, not what was sent.
    assert_eq!(f.delete_before("t", 0, 5000).unwrap(), 100);
    assert_eq!(count(&f, "t", 0), 0);
}

#[test]
fn a_batch_larger_than_one_statement_is_still_atomic_and_complete() {
    let Some(f) = fresh() else { return };
    f.ensure_tenant("t", 1).unwrap();
    let big = vec![1u8; 9 << 20];
    let batch: Vec<_> = (0..10u128)
        .map(|k| NewEvent {
            shard: 0,
            bucket: 1000,
            key: EventKey(k),
            event: b"e",
            raw: &big,
        })
        .collect();
    f.append("t", &batch).unwrap();
    assert_eq!(count(&f, "t", 0), 10);
    assert_eq!(
        f.payload("t", 0, 1000, EventKey(9)).unwrap().unwrap().len(),
        big.len()
    );
}

#[test]
fn retention_drops_whole_partitions_once_every_shard_is_past() {
    let Some(f) = Fresh::new(PostgresOptions {
        partition_ms: 1000,
        ..Default::default()
    }) else {
        return;
    };
    f.ensure_tenant("a", 2).unwrap();
    f.ensure_tenant("b", 1).unwrap();
    f.append(
        "a",
        &[
            one(0, 500, 1),
            one(1, 600, 2),
            one(0, 1500, 3),
            one(1, 2500, 4),
            one(0, 3500, 5),
        ],
    )
    .unwrap();
    assert_eq!(f.partitions().unwrap().len(), 4);

    // Shard 0 is past [0, 1000) and [1000, 2000) but shard 1 still has data in [0, 1000): only hidden.
    assert_eq!(f.delete_before("a", 0, 2000).unwrap(), 2);
    assert_eq!(count(&f, "a", 0), 1);
    assert_eq!(f.payload("a", 0, 500, EventKey(1)).unwrap(), None);
    assert_eq!(
        f.partitions().unwrap(),
        vec![
            "events_19700101_0000",
            "events_19700101_0000_2000",
            "events_19700101_0000_3000"
        ],
        "[1000, 2000) held only shard 0's data: dropped"
    );
    // Now every (tenant, shard) is past [0, 1000).
    assert_eq!(f.delete_before("a", 1, 2000).unwrap(), 1);
    assert_eq!(count(&f, "a", 1), 1);
    assert_eq!(f.partitions().unwrap().len(), 2);

    // A late write below the horizon lands (its partition comes back) but stays deleted.
    f.append("a", &[one(0, 700, 6)]).unwrap();
    assert_eq!(count(&f, "a", 0), 1);
    assert!(f.bucket_marks("a", 0, BucketRange::all()).unwrap().len() == 1);

    // Tenant b keeps [2000, 3000) alive: a's rows in it are hidden at once, and deleted row by row only
    // once the partition has been held back for `stale_after`.
    f.append("b", &[one(0, 2600, 7)]).unwrap();
    for shard in 0..2 {
        f.delete_before("a", shard, 3000).unwrap();
    }
    assert_eq!(count(&f, "a", 1), 0);
    assert_eq!(count(&f, "b", 0), 1);
    let rows_of_a = |f: &Fresh| -> i64 {
        f.sql()
            .query_one(
                format!(
                    "SELECT count(*) FROM \"{}\".events WHERE tenant = 'a' AND bucket < 3000",
                    f.schema
                )
                .as_str(),
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(rows_of_a(&f), 1, "a's bucket 2500 is only hidden so far");
    for shard in 0..2 {
        f.delete_before("a", shard, 4500).unwrap();
    }
    assert_eq!(rows_of_a(&f), 1, "not held back for long yet");
    assert_eq!(count(&f, "a", 0), 0);
    assert_eq!(
        f.partitions().unwrap(),
        vec!["events_19700101_0000_2000"],
        "[3000, 4000) held only a's bucket 3500, now below both horizons: dropped"
    );
    let impatient = PostgresStore::connect_with(
        &f.url,
        &f.schema,
        PostgresOptions {
            stale_after: std::time::Duration::ZERO,
            ..Default::default()
        },
    )
    .unwrap();
    for shard in 0..2 {
        impatient.delete_before("a", shard, 4500).unwrap();
    }
    assert_eq!(
        rows_of_a(&f),
        0,
        "stuck partition: a's rows deleted row by row"
    );
    assert_eq!(count(&f, "b", 0), 1);
    assert_eq!(f.partitions().unwrap(), vec!["events_19700101_0000_2000"]);
}

#[test]
fn append_into_a_partition_another_process_dropped() {
    let Some(f) = Fresh::new(PostgresOptions {
        partition_ms: 1000,
        ..Default::default()
    }) else {
        return;
    };
    f.ensure_tenant("a", 1).unwrap();
    f.append("a", &[one(0, 500, 1)]).unwrap();
    let other = f.reconnect();
    assert_eq!(other.delete_before("a", 0, 1000).unwrap(), 1);
    assert!(f.partitions().unwrap().is_empty());
    // `f` still believes [0, 1000) exists: the insert fails, the partition is made again, the retry lands.
    f.append("a", &[one(0, 600, 2), one(0, 1600, 3)]).unwrap();
    assert_eq!(f.partitions().unwrap().len(), 2);
    let got: Vec<_> = f
        .scan("a", 0, BucketRange::all(), None, 10)
        .unwrap()
        .iter()
        .map(|e| e.key.0)
        .collect();
    assert_eq!(got, vec![3], "bucket 600 is below the horizon");
}

#[test]
fn a_schema_of_a_newer_version_or_of_someone_else_is_refused() {
    let Some(f) = fresh() else { return };
    f.sql()
        .execute(
            format!(
                "UPDATE \"{}\".meta SET value = '99' WHERE key = 'schema_version'",
                f.schema
            )
            .as_str(),
            &[],
        )
        .unwrap();
    let err = PostgresStore::connect(&f.url, &f.schema)
        .err()
        .expect("newer schema refused")
        .to_string();
    assert!(
        err.contains("schema version 99") && err.contains("newer Storyline"),
        "{err}"
    );

    let other = random_schema();
    let mut c = f.sql();
    c.batch_execute(&format!(
        "CREATE SCHEMA \"{other}\"; CREATE TABLE \"{other}\".orders (id int)"
    ))
    .unwrap();
    let err = PostgresStore::connect(&f.url, &other)
        .err()
        .map(|e| e.to_string());
    c.batch_execute(&format!("DROP SCHEMA \"{other}\" CASCADE"))
        .unwrap();
    let err = err.expect("foreign schema refused");
    assert!(err.contains("not Storyline's"), "{err}");

    assert!(PostgresStore::connect(&f.url, "Bad-Name").is_err());
}

#[test]
fn dead_letters_keep_any_text() {
    let Some(f) = fresh() else { return };
    let letter = DeadLetter {
        id: 0,
        tenant: "t".into(),
        received: storyline_model::Timestamp(-5),
        source: "replay:a\0b".into(),
        line: None,
        format: None,
        code: "malformed_json".into(),
        reason: "bad byte \0 here, ünïcode".into(),
        raw: vec![0, 1, 2, 255],
    };
    f.put_dead_letters(std::slice::from_ref(&letter)).unwrap();
    let got = f.dead_letters("t", None, 10).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].raw, letter.raw);
    assert_eq!(got[0].line, None);
    assert_eq!(got[0].received, letter.received);
    assert_eq!(got[0].reason, "bad byte \u{fffd} here, ünïcode");
}

/// Rough numbers for docs/design.md, not a pass/fail check:
/// `cargo test -p storyline-store --release --test postgres -- --ignored --nocapture throughput`.
#[test]
#[ignore]
fn throughput() {
    let Some(f) = fresh() else { return };
    f.ensure_tenant("t", 16).unwrap();
    let event = vec![b'e'; 500];
    let raw = vec![b'r'; 800];
    let (batches, per_batch) = (200usize, 1000usize);
    for writers in [1usize, 2] {
        let store = Arc::new(f.reconnect());
        let start = std::time::Instant::now();
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (store, event, raw) = (store.clone(), event.clone(), raw.clone());
                std::thread::spawn(move || {
                    for b in (w..batches).step_by(writers) {
                        let batch: Vec<_> = (0..per_batch)
                            .map(|i| NewEvent {
                                shard: (i % 16) as u16,
                                bucket: (writers * 1_000_000 + b * 1000) as i64,
                                key: EventKey((b * per_batch + i) as u128 * 7919),
                                event: &event,
                                raw: &raw,
                            })
                            .collect();
                        store.append("t", &batch).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "append, {writers} writer(s): {:.0} events/s",
            (batches * per_batch) as f64 / secs
        );
    }
    let start = std::time::Instant::now();
    let mut n = 0;
    for shard in 0..16 {
        let mut resume = None;
        loop {
            let page = f
                .scan("t", shard, BucketRange::all(), resume, 1000)
                .unwrap();
            let Some(last) = page.last() else { break };
            resume = Some((last.bucket, last.key));
            n += page.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(n, 2 * batches * per_batch);
    println!("scan: {:.0} events/s", n as f64 / secs);
    let start = std::time::Instant::now();
    let mut gone = 0;
    for shard in 0..16 {
        gone += f.delete_before("t", shard, i64::MAX - 1).unwrap();
    }
    assert_eq!(gone as usize, n);
    println!(
        "retention of everything: {:.2} s, partitions left: {}",
        start.elapsed().as_secs_f64(),
        f.partitions().unwrap().len()
    );
}
