//! The shared conformance suite on the ScyllaDB / Cassandra backend (feature `scylla`), plus checks of
//! its helpers that need no server.
//!
//! Needs a server for the conformance part: `STORYLINE_TEST_SCYLLA=host:port` (for example
//! `127.0.0.1:9042`; a single node is enough, the keyspace is created with replication factor 1). Every
//! test works in a keyspace of its own with a random name and drops it at the end. Without the variable
//! each such test prints `skipped: STORYLINE_TEST_SCYLLA not set` and passes, unless
//! `STORYLINE_REQUIRE_SCYLLA=1` makes that a failure.
//!
//! `cargo test -p storyline-store --features scylla --test scylla`
#![cfg(feature = "scylla")]

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use storyline_model::EventKey;
use storyline_store::scylla::{
    combine_marks, key_bytes, key_of, parse_hosts, prefix_upper_bound, validate_keyspace,
    Replication, ScyllaOptions, ScyllaStore,
};
use storyline_store::*;

fn server() -> Option<String> {
    match std::env::var("STORYLINE_TEST_SCYLLA") {
        Ok(h) if !h.trim().is_empty() => Some(h),
        _ => {
            if std::env::var("STORYLINE_REQUIRE_SCYLLA").as_deref() == Ok("1") {
                panic!(
                    "STORYLINE_REQUIRE_SCYLLA=1 but STORYLINE_TEST_SCYLLA is not set: set it to a node's \
                     host:port, such as `127.0.0.1:9042`"
                );
            }
            println!("skipped: STORYLINE_TEST_SCYLLA not set");
            None
        }
    }
}

fn random_keyspace() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let h = std::collections::hash_map::RandomState::new().hash_one((
        std::process::id(),
        std::time::SystemTime::now(),
        N.fetch_add(1, Ordering::Relaxed),
    ));
    format!("sl_test_{h:016x}")
}

fn test_options() -> ScyllaOptions {
    ScyllaOptions {
        replication: Replication::Simple(1),
        keyspace_options: std::env::var("STORYLINE_TEST_SCYLLA_KEYSPACE_OPTIONS").ok(),
        ..Default::default()
    }
}

/// A keyspace of its own for one test, dropped when the test ends.
struct Fresh {
    store: Option<ScyllaStore>,
    hosts: String,
    keyspace: String,
}

impl std::ops::Deref for Fresh {
    type Target = ScyllaStore;
    fn deref(&self) -> &ScyllaStore {
        self.store.as_ref().expect("store open")
    }
}

impl Fresh {
    fn new() -> Option<Box<Fresh>> {
        let hosts = server()?;
        let keyspace = random_keyspace();
        let store = ScyllaStore::connect_with(&hosts, &keyspace, test_options())
            .unwrap_or_else(|e| panic!("connect to STORYLINE_TEST_SCYLLA ({hosts}): {e}"));
        Some(Box::new(Fresh {
            store: Some(store),
            hosts,
            keyspace,
        }))
    }

    /// Another store on the same keyspace, with its own session (and its own writer id).
    fn reconnect(&self) -> ScyllaStore {
        ScyllaStore::connect_with(&self.hosts, &self.keyspace, test_options()).unwrap()
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            if let Err(e) = store.drop_keyspace() {
                eprintln!("could not drop test keyspace {}: {e}", self.keyspace);
            }
        }
    }
}

fn fresh() -> Option<Box<Fresh>> {
    Fresh::new()
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

fn count(s: &ScyllaStore, tenant: &str, shard: u16) -> usize {
    s.scan(tenant, shard, BucketRange::all(), None, 10_000)
        .unwrap()
        .len()
}

#[test]
fn acknowledged_append_survives_a_new_session() {
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
    assert!(matches!(
        again.ensure_tenant("t", 3),
        Err(StoreError::ShardCountMismatch { stored: 2, .. })
    ));
}

#[test]
fn concurrent_acquires_never_both_win() {
    let Some(f) = fresh() else { return };
    // Two sessions, as two processes would have.
    let clients: [Arc<dyn Store>; 2] = [Arc::new(f.reconnect()), Arc::new(f.reconnect())];
    storyline_store::conformance::concurrent_acquires_never_both_win(clients, 16);
}

#[test]
fn a_resent_batch_from_another_process_is_stored_once_and_still_changes_marks() {
    let Some(f) = fresh() else { return };
    let other = f.reconnect();
    f.ensure_tenant("t", 1).unwrap();
    let batch: Vec<_> = (0..100u128)
        .map(|k| one(0, 1000 + (k % 3) as i64, k))
        .collect();
    f.append("t", &batch).unwrap();
    let m1 = f.bucket_marks("t", 0, BucketRange::all()).unwrap();
    other.append("t", &batch).unwrap();
    let m2 = f.bucket_marks("t", 0, BucketRange::all()).unwrap();
    f.append("t", &batch).unwrap();
    let m3 = f.bucket_marks("t", 0, BucketRange::all()).unwrap();
    assert_eq!(count(&f, "t", 0), 100);
    assert_eq!(m1.len(), 3);
    assert!(m1.iter().zip(&m2).all(|(a, b)| a.0 == b.0 && a.1 != b.1));
    assert!(m2.iter().zip(&m3).all(|(a, b)| a.0 == b.0 && a.1 != b.1));
    assert_eq!(f.delete_before("t", 0, 5000).unwrap(), 100);
    assert_eq!(count(&f, "t", 0), 0);
}

#[test]
fn leases_beyond_the_tenant_shard_count_are_listed_and_deleted() {
    // The pool leases its partitions and member slots, whose numbers need not be shards of the tenant.
    let Some(f) = fresh() else { return };
    f.ensure_tenant("t", 2).unwrap();
    for slot in [0u16, 7, 300] {
        f.acquire_lease("t", "g/members", slot, "w", 60_000, 0)
            .unwrap()
            .unwrap();
    }
    let slots: Vec<u16> = f
        .leases("t", "g/members")
        .unwrap()
        .iter()
        .map(|l| l.shard)
        .collect();
    assert_eq!(slots, vec![0, 7, 300]);
    assert!(f.leases("t", "g").unwrap().is_empty());
    f.delete_tenant("t").unwrap();
    assert!(f.leases("t", "g/members").unwrap().is_empty());
}

#[test]
fn scans_cross_many_buckets() {
    let Some(f) = fresh() else { return };
    f.ensure_tenant("t", 1).unwrap();
    // More buckets than one marks query returns.
    let batch: Vec<_> = (0..600u128).map(|k| one(0, k as i64 * 10, k)).collect();
    f.append("t", &batch).unwrap();
    assert_eq!(count(&f, "t", 0), 600);
    assert_eq!(
        f.bucket_events("t", 0, BucketRange::all(), 10_000).unwrap(),
        Some(600)
    );
    assert_eq!(
        f.bucket_marks("t", 0, BucketRange::all()).unwrap().len(),
        600
    );
}

// ---- no server needed ----

#[test]
fn hosts_get_the_default_port() {
    assert_eq!(
        parse_hosts("a, b:9043 ,[::1],[::1]:19042").unwrap(),
        vec!["a:9042", "b:9043", "[::1]:9042", "[::1]:19042"]
    );
    assert!(parse_hosts("").is_err());
    assert!(parse_hosts("a:0").is_err());
    assert!(parse_hosts("a:port").is_err());
    assert!(parse_hosts(":9042").is_err());
    assert!(parse_hosts("::1").is_err(), "bare IPv6 needs brackets");
}

#[test]
fn replication_options_parse_and_render() {
    assert_eq!(Replication::default(), Replication::Simple(3));
    assert_eq!(
        Replication::parse("SimpleStrategy:1").unwrap(),
        Replication::Simple(1)
    );
    let nts = Replication::parse("NetworkTopologyStrategy:dc1=3, dc2=2").unwrap();
    assert_eq!(
        nts,
        Replication::NetworkTopology(vec![("dc1".into(), 3), ("dc2".into(), 2)])
    );
    assert_eq!(
        nts.to_cql(),
        "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}"
    );
    assert_eq!(
        Replication::Simple(3).to_cql(),
        "{'class': 'SimpleStrategy', 'replication_factor': 3}"
    );
    for bad in [
        "simple",
        "simple:0",
        "simple:x",
        "nts:",
        "nts:dc1",
        "nts:d'c=3",
        "EverywhereStrategy:1",
    ] {
        assert!(Replication::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn keyspace_names_are_checked() {
    for ok in ["storyline", "sl_test_0123abcd", "a"] {
        validate_keyspace(ok).unwrap();
    }
    for bad in ["", "Storyline", "1abc", "a-b", "a.b", &"a".repeat(49)] {
        assert!(validate_keyspace(bad).is_err(), "{bad}");
    }
}

#[test]
fn prefix_upper_bound_covers_exactly_the_prefix() {
    assert_eq!(prefix_upper_bound("tenant/").as_deref(), Some("tenant0"));
    assert_eq!(prefix_upper_bound(""), None);
    assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
    assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
    assert_eq!(
        prefix_upper_bound("x\u{D7FF}").as_deref(),
        Some("x\u{E000}"),
        "skips surrogates"
    );
    // Everything with the prefix sorts below the bound; the next keys outside it do not.
    let p = "history/a/";
    let upper = prefix_upper_bound(p).unwrap();
    for inside in [
        "history/a/",
        "history/a/1",
        "history/a/\u{10FFFF}\u{10FFFF}",
    ] {
        assert!(inside.as_bytes() < upper.as_bytes(), "{inside}");
    }
    for outside in ["history/a0", "history/b", "history/a/"[..9].as_ref()] {
        assert!(
            !outside.starts_with(p)
                && (outside.as_bytes() >= upper.as_bytes() || outside.as_bytes() < p.as_bytes()),
            "{outside}"
        );
    }
}

#[test]
fn event_keys_keep_their_order_as_blobs() {
    let keys = [0u128, 1, 255, 256, u64::MAX as u128, 1 << 100, u128::MAX];
    for w in keys.windows(2) {
        assert!(key_bytes(EventKey(w[0])) < key_bytes(EventKey(w[1])));
    }
    for k in keys {
        assert_eq!(key_of(&key_bytes(EventKey(k))).unwrap(), EventKey(k));
    }
    assert!(key_of(&[0; 15]).is_err());
}

#[test]
fn marks_of_several_writers_change_when_any_of_them_grows() {
    let before = combine_marks([100, 200]);
    assert_ne!(combine_marks([101, 200]), before);
    assert_ne!(combine_marks([100, 200, 1]), before, "a new writer");
    assert_eq!(combine_marks([200, 100]), before, "order does not matter");
    // Values near the top of the range wrap instead of overflowing.
    assert_ne!(
        combine_marks([i64::MAX, i64::MAX]),
        combine_marks([i64::MAX, i64::MAX - 1])
    );
}

#[test]
fn the_store_can_be_used_from_spawn_blocking_of_another_runtime() {
    // The server calls the store from `spawn_blocking`: that thread has the server's runtime as its
    // context, which `Runtime::block_on` would refuse with a panic. A connection error must come back.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(async {
            tokio::task::spawn_blocking(|| {
                let opts = ScyllaOptions {
                    request_timeout: std::time::Duration::from_secs(2),
                    ..Default::default()
                };
                ScyllaStore::connect_with("127.0.0.1:1", "storyline", opts).err()
            })
            .await
        })
        .expect("no panic")
        .expect("nothing listens on port 1");
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

#[test]
fn an_unreachable_cluster_is_named_in_the_error() {
    let opts = ScyllaOptions {
        request_timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let err = ScyllaStore::connect_with("127.0.0.1:1", "storyline", opts)
        .err()
        .expect("nothing listens on port 1")
        .to_string();
    assert!(
        err.contains("127.0.0.1:1") && err.contains("keyspace storyline"),
        "{err}"
    );
}
