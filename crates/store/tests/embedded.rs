//! The shared conformance suite on the embedded (fjall) backend, plus what only a real disk shows.

use std::sync::Arc;
use storyline_store::embedded::{Durability, EmbeddedStore};
use storyline_store::*;

struct Fresh {
    store: EmbeddedStore,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Fresh {
    type Target = EmbeddedStore;
    fn deref(&self) -> &EmbeddedStore {
        &self.store
    }
}

fn fresh() -> Box<Fresh> {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), Durability::Fsync).unwrap();
    Box::new(Fresh { store, _dir: dir })
}

storyline_store::conformance_tests!(fresh());

#[test]
fn acknowledged_writes_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(dir.path(), Durability::Fsync).unwrap();
        s.ensure_tenant("t", 1).unwrap();
        s.append(
            "t",
            &[NewEvent {
                shard: 0,
                bucket: 5,
                key: storyline_model::EventKey(1),
                event: b"e",
                raw: b"r",
            }],
        )
        .unwrap();
    }
    let s = EmbeddedStore::open(dir.path(), Durability::Fsync).unwrap();
    assert_eq!(
        s.scan("t", 0, BucketRange::all(), None, 10).unwrap().len(),
        1
    );
    assert!(
        s.ensure_tenant("t", 2).is_err(),
        "the shard count is remembered"
    );
}

#[test]
fn concurrent_appends_share_fsyncs_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(EmbeddedStore::open(dir.path(), Durability::Fsync).unwrap());
    s.ensure_tenant("t", 4).unwrap();
    let threads: Vec<_> = (0..4u128)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..50u128 {
                    let key = storyline_model::EventKey(t * 1000 + i);
                    s.append(
                        "t",
                        &[NewEvent {
                            shard: (t % 4) as u16,
                            bucket: 1000,
                            key,
                            event: b"e",
                            raw: b"r",
                        }],
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total: usize = (0..4)
        .map(|sh| {
            s.scan("t", sh, BucketRange::all(), None, 1000)
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(total, 200);
}

/// A commit of many checkpoint parts can outlast the lease; the time spent inside the fenced commit does
/// not count against it, so a worker waiting on the lease lock does not take the partition over the
/// moment a long commit ends.
#[test]
fn time_spent_in_a_long_commit_does_not_count_against_the_lease() {
    let s = fresh();
    s.ensure_tenant("t", 1).unwrap();
    let now = storyline_model::Timestamp::now().as_millis();
    let lease = s
        .acquire_lease("t", "g", 0, "w", 10_000, now)
        .unwrap()
        .unwrap();
    // Incompressible bytes (xorshift), so the commit's journal write takes measurable time.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut noise = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x.to_le_bytes()
    };
    let value: Vec<u8> = (0..4 << 20).flat_map(|_| noise()).collect();
    let parts: storyline_model::parts::Parts = (0u32..32)
        .map(|i| {
            (
                i.to_be_bytes(),
                Some(&value[i as usize * (1 << 20)..][..1 << 20]),
            )
        })
        .collect();
    let cp = Checkpoint {
        shard: 0,
        offset: 1,
        marks: Vec::new(),
        state: b"state".to_vec(),
    };
    let started = std::time::Instant::now();
    s.commit_parts("t", "g", &lease, &cp, false, &parts)
        .unwrap();
    let took = started.elapsed().as_millis() as i64;
    assert!(
        took >= 20,
        "the commit must take measurable time for this test: {took} ms"
    );
    let after = s
        .leases("t", "g")
        .unwrap()
        .into_iter()
        .find(|l| l.shard == 0)
        .unwrap();
    assert_eq!((after.owner.as_str(), after.epoch), ("w", lease.epoch));
    assert!(
        after.expires_ms - lease.expires_ms >= took - 10,
        "the lease was extended by {} ms for a {took} ms commit",
        after.expires_ms - lease.expires_ms
    );
}

/// The embedded store lives in one process: both threads share its handle.
#[test]
fn concurrent_acquires_never_both_win() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path(), Durability::Fsync).unwrap());
    storyline_store::conformance::concurrent_acquires_never_both_win([store.clone(), store], 32);
}

/// Checkpoint parts larger than one log chunk (8 MiB) come back whole, after a delta and across a
/// reopen, and a reset leaves only what it wrote.
#[test]
fn checkpoint_parts_larger_than_a_log_chunk_survive_deltas_reopen_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    let cp = Checkpoint {
        shard: 0,
        offset: 1,
        marks: Vec::new(),
        state: b"state".to_vec(),
    };
    let parts = |v: &[(&[u8], Option<&[u8]>)]| -> storyline_model::parts::Parts {
        v.iter().copied().collect()
    };
    {
        let s = EmbeddedStore::open(dir.path(), Durability::Fsync).unwrap();
        s.ensure_tenant("t", 1).unwrap();
        let lease = s
            .acquire_lease("t", "g", 0, "w", 60_000, 0)
            .unwrap()
            .unwrap();
        let first = parts(&[
            (&b"big"[..], Some(big.as_slice())),
            (&b"small"[..], Some(&b"1"[..])),
            (&b"old"[..], Some(&b"x"[..])),
        ]);
        s.commit_parts("t", "g", &lease, &cp, true, &first).unwrap();
        let delta = parts(&[
            (&b"old"[..], None),
            (&b"small"[..], Some(&b"2"[..])),
            (&b"new"[..], Some(&big[..9 << 20])),
        ]);
        s.commit_parts("t", "g", &lease, &cp, false, &delta)
            .unwrap();
    }
    let s = EmbeddedStore::open(dir.path(), Durability::Fsync).unwrap();
    let stored = s.checkpoint_parts("t", "g", 0).unwrap();
    let expected: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"big".to_vec(), big.clone()),
        (b"new".to_vec(), big[..9 << 20].to_vec()),
        (b"small".to_vec(), b"2".to_vec()),
    ];
    assert!(
        stored == expected,
        "parts differ after a delta and a reopen"
    );
    let lease = s
        .acquire_lease("t", "g", 0, "w2", 60_000, 120_000)
        .unwrap()
        .unwrap();
    s.commit_parts(
        "t",
        "g",
        &lease,
        &cp,
        true,
        &parts(&[(&b"only"[..], Some(&b"this"[..]))]),
    )
    .unwrap();
    assert_eq!(
        s.checkpoint_parts("t", "g", 0).unwrap(),
        vec![(b"only".to_vec(), b"this".to_vec())]
    );
}
