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
