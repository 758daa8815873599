//! The behaviour every backend must show. Each backend's test file instantiates
//! [`conformance_tests!`](crate::conformance_tests) with a constructor for a fresh, empty store, so the
//! same checks run against the embedded engine, PostgreSQL and ScyllaDB alike.

use crate::*;
use storyline_model::EventKey;

const T: &str = "acme";
const G: &str = "stories";

fn ev(shard: Shard, bucket: Bucket, key: u128) -> (Shard, Bucket, EventKey, Vec<u8>) {
    (
        shard,
        bucket,
        EventKey(key),
        format!("event-{shard}-{bucket}-{key}").into_bytes(),
    )
}

fn append_all(s: &dyn Store, tenant: &str, evs: &[(Shard, Bucket, EventKey, Vec<u8>)]) {
    let batch: Vec<NewEvent<'_>> = evs
        .iter()
        .map(|(shard, bucket, key, body)| NewEvent {
            shard: *shard,
            bucket: *bucket,
            key: *key,
            event: body,
            raw: body,
        })
        .collect();
    s.append(tenant, &batch).expect("append");
}

pub fn scan_returns_bucket_range_in_order(s: &dyn Store) {
    s.ensure_tenant(T, 4).unwrap();
    append_all(
        s,
        T,
        &[
            ev(1, 2000, 9),
            ev(1, 1000, 5),
            ev(1, 1000, 3),
            ev(1, 3000, 1),
            ev(2, 1000, 7),
        ],
    );
    let got = s.scan(T, 1, BucketRange::new(0, 2000), None, 100).unwrap();
    let keys: Vec<_> = got.iter().map(|e| (e.bucket, e.key.0)).collect();
    assert_eq!(
        keys,
        vec![(1000, 3), (1000, 5), (2000, 9)],
        "ordered by (bucket, key), shard 2 and bucket 3000 excluded"
    );
    assert_eq!(got[0].event, b"event-1-1000-3");
    // `after` is exclusive.
    let got = s
        .scan(T, 1, BucketRange::new(1000, 3000), None, 100)
        .unwrap();
    assert_eq!(
        got.iter().map(|e| e.bucket).collect::<Vec<_>>(),
        vec![2000, 3000]
    );
}

pub fn scan_pages_with_resume(s: &dyn Store) {
    s.ensure_tenant(T, 1).unwrap();
    let evs: Vec<_> = (0..25u128)
        .map(|i| ev(0, 1000 * (1 + (i as i64 % 3)), i))
        .collect();
    append_all(s, T, &evs);
    let mut seen = Vec::new();
    let mut resume = None;
    loop {
        let page = s.scan(T, 0, BucketRange::all(), resume, 7).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        resume = page.last().map(|e| (e.bucket, e.key));
        seen.extend(page.into_iter().map(|e| (e.bucket, e.key.0)));
    }
    let mut expected: Vec<_> = evs.iter().map(|(_, b, k, _)| (*b, k.0)).collect();
    expected.sort();
    assert_eq!(seen, expected);
    // `scan_each` lends the same events in the same pages, and stops at the visitor's error.
    let mut lent = Vec::new();
    let mut resume = None;
    loop {
        let mut page = Vec::new();
        let n = s
            .scan_each(T, 0, BucketRange::all(), resume, 7, &mut |b, k, body| {
                page.push((b, k, body.to_vec()));
                Ok(())
            })
            .unwrap();
        assert_eq!(n, page.len());
        if page.is_empty() {
            break;
        }
        resume = page.last().map(|(b, k, _)| (*b, *k));
        for (b, k, body) in page {
            assert_eq!(body, format!("event-0-{b}-{}", k.0).into_bytes());
            lent.push((b, k.0));
        }
    }
    assert_eq!(lent, expected);
    let mut calls = 0;
    let stopped = s.scan_each(T, 0, BucketRange::all(), None, 100, &mut |_, _, _| {
        calls += 1;
        Err(StoreError::Corrupt("stop".into()))
    });
    assert!(matches!(stopped, Err(StoreError::Corrupt(m)) if m == "stop"));
    assert_eq!(calls, 1);
}

pub fn payloads_are_kept_apart(s: &dyn Store) {
    s.ensure_tenant(T, 1).unwrap();
    let big = vec![7u8; 3 << 20];
    s.append(
        T,
        &[NewEvent {
            shard: 0,
            bucket: 1000,
            key: EventKey(1),
            event: b"small",
            raw: &big,
        }],
    )
    .unwrap();
    let scanned = s.scan(T, 0, BucketRange::all(), None, 10).unwrap();
    assert_eq!(scanned[0].event, b"small");
    assert_eq!(
        s.payload(T, 0, 1000, EventKey(1)).unwrap().as_deref(),
        Some(big.as_slice())
    );
    assert_eq!(s.payload(T, 0, 1000, EventKey(2)).unwrap(), None);
}

/// One append that spans shards and buckets, partly sent again: every record comes back from its own
/// (shard, bucket, key) and nowhere else, and retention takes exactly the older bucket's.
pub fn payloads_of_one_append_span_shards_and_buckets(s: &dyn Store) {
    s.ensure_tenant(T, 4).unwrap();
    let raws: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; usize::from(i) * 3]).collect();
    let batch: Vec<NewEvent<'_>> = raws
        .iter()
        .enumerate()
        .map(|(i, raw)| NewEvent {
            shard: (i % 3) as Shard,
            bucket: 1000 * (1 + (i / 3 % 2) as Bucket),
            key: EventKey(i as u128 + 1),
            event: b"e",
            raw,
        })
        .collect();
    s.append(T, &batch).unwrap();
    s.append(T, &batch[..5]).unwrap();
    for e in &batch {
        assert_eq!(
            s.payload(T, e.shard, e.bucket, e.key).unwrap().as_deref(),
            Some(e.raw),
            "{:?}",
            e.key
        );
        assert_eq!(s.payload(T, 3, e.bucket, e.key).unwrap(), None);
        assert_eq!(s.payload(T, e.shard, e.bucket + 1000, e.key).unwrap(), None);
    }
    for shard in 0..3 {
        s.delete_before(T, shard, 2000).unwrap();
    }
    for e in &batch {
        let kept = s.payload(T, e.shard, e.bucket, e.key).unwrap();
        assert_eq!(
            kept.is_some(),
            e.bucket == 2000,
            "{:?} in {}",
            e.key,
            e.bucket
        );
    }
}

pub fn marks_change_on_every_write(s: &dyn Store) {
    s.ensure_tenant(T, 2).unwrap();
    append_all(s, T, &[ev(0, 1000, 1)]);
    let m1 = s.bucket_marks(T, 0, BucketRange::all()).unwrap();
    assert_eq!(m1.len(), 1);
    assert_eq!(m1[0].0, 1000);
    append_all(s, T, &[ev(0, 1000, 2), ev(0, 2000, 3)]);
    let m2 = s.bucket_marks(T, 0, BucketRange::all()).unwrap();
    assert_eq!(m2.len(), 2);
    assert_ne!(
        m2[0].1, m1[0].1,
        "a write into bucket 1000 must change its mark"
    );
    assert!(s.bucket_marks(T, 1, BucketRange::all()).unwrap().is_empty());
    assert_eq!(
        s.bucket_marks(T, 0, BucketRange::new(1000, 2000))
            .unwrap()
            .len(),
        1
    );
}

pub fn leases_have_one_owner_and_fence_commits(s: &dyn Store) {
    s.ensure_tenant(T, 1).unwrap();
    let a = s
        .acquire_lease(T, G, 0, "worker-a", 1000, 10_000)
        .unwrap()
        .expect("free lease");
    assert!(
        s.acquire_lease(T, G, 0, "worker-b", 1000, 10_500)
            .unwrap()
            .is_none(),
        "held and unexpired"
    );
    let cp = Checkpoint {
        shard: 0,
        offset: 5000,
        marks: vec![(5000, 1)],
        state: b"state".to_vec(),
    };
    s.commit(T, G, &a, &cp).unwrap();
    assert_eq!(s.load_checkpoint(T, G, 0).unwrap(), Some(cp.clone()));
    let a = s.renew_lease(&a, 1000, 10_800).unwrap().expect("renewed");
    assert!(
        s.acquire_lease(T, G, 0, "worker-b", 1000, 11_700)
            .unwrap()
            .is_none(),
        "renewal extended it"
    );
    // a stops renewing; after expiry b takes over with a higher epoch and a is fenced off.
    let b = s
        .acquire_lease(T, G, 0, "worker-b", 1000, 11_900)
        .unwrap()
        .expect("expired lease moves");
    assert!(b.epoch > a.epoch);
    assert!(matches!(
        s.commit(T, G, &a, &cp),
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(s.renew_lease(&a, 1000, 11_950).unwrap().is_none());
    let cp2 = Checkpoint { offset: 6000, ..cp };
    s.commit(T, G, &b, &cp2).unwrap();
    assert_eq!(s.load_checkpoint(T, G, 0).unwrap().unwrap().offset, 6000);
    // A released lease is free at once.
    s.release_lease(&b).unwrap();
    let c = s
        .acquire_lease(T, G, 0, "worker-c", 1000, 11_960)
        .unwrap()
        .expect("released lease is free");
    assert!(c.epoch > b.epoch);
    assert_eq!(s.leases(T, G).unwrap().len(), 1);
}

pub fn offsets_list_every_group(s: &dyn Store) {
    s.ensure_tenant(T, 2).unwrap();
    for (group, offset) in [("g1", 1000), ("g2", 3000)] {
        let l = s
            .acquire_lease(T, group, 1, "w", 60_000, 0)
            .unwrap()
            .unwrap();
        s.commit(
            T,
            group,
            &l,
            &Checkpoint {
                shard: 1,
                offset,
                ..Default::default()
            },
        )
        .unwrap();
    }
    let mut offs = s.offsets(T, 1).unwrap();
    offs.sort();
    assert_eq!(
        offs,
        vec![("g1".to_string(), 1000), ("g2".to_string(), 3000)]
    );
    assert!(s.offsets(T, 0).unwrap().is_empty());
}

pub fn dead_letters_are_kept_and_listed(s: &dyn Store) {
    let letter = |n: u64, tenant: &str| DeadLetter {
        id: 0,
        tenant: tenant.into(),
        received: storyline_model::Timestamp(n as i64),
        source: "http".into(),
        line: Some(n),
        format: Some("zeek".into()),
        code: "malformed_json".into(),
        reason: format!("line {n}: bad"),
        raw: vec![0xff, n as u8],
    };
    s.put_dead_letters(&[letter(1, T), letter(2, T), letter(3, "other")])
        .unwrap();
    s.put_dead_letters(&[letter(4, T)]).unwrap();
    let all = s.dead_letters(T, None, 100).unwrap();
    assert_eq!(
        all.iter().map(|d| d.line.unwrap()).collect::<Vec<_>>(),
        vec![1, 2, 4]
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(all[0].raw, vec![0xff, 1]);
    let rest = s.dead_letters(T, Some(all[0].id), 1).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].line, Some(2));
    assert_eq!(s.dead_letters("other", None, 10).unwrap().len(), 1);
}

pub fn retention_deletes_only_older_buckets(s: &dyn Store) {
    s.ensure_tenant(T, 2).unwrap();
    append_all(
        s,
        T,
        &[
            ev(0, 1000, 1),
            ev(0, 2000, 2),
            ev(0, 3000, 3),
            ev(1, 1000, 4),
        ],
    );
    assert_eq!(s.delete_before(T, 0, 3000).unwrap(), 2);
    let left: Vec<_> = s
        .scan(T, 0, BucketRange::all(), None, 10)
        .unwrap()
        .iter()
        .map(|e| e.bucket)
        .collect();
    assert_eq!(left, vec![3000]);
    assert_eq!(s.payload(T, 0, 1000, EventKey(1)).unwrap(), None);
    assert_eq!(s.bucket_marks(T, 0, BucketRange::all()).unwrap().len(), 1);
    assert_eq!(
        s.scan(T, 1, BucketRange::all(), None, 10).unwrap().len(),
        1,
        "other shards untouched"
    );
}

pub fn tenants_are_isolated(s: &dyn Store) {
    s.ensure_tenant("a", 2).unwrap();
    s.ensure_tenant("b", 2).unwrap();
    append_all(s, "a", &[ev(0, 1000, 1)]);
    assert!(s
        .scan("b", 0, BucketRange::all(), None, 10)
        .unwrap()
        .is_empty());
    assert!(matches!(
        s.ensure_tenant("a", 3),
        Err(StoreError::ShardCountMismatch { stored: 2, .. })
    ));
    assert!(matches!(
        s.ensure_tenant("Bad Name", 1),
        Err(StoreError::BadTenant(_))
    ));
    // A tenant whose name is a prefix of another's sees nothing of it.
    s.ensure_tenant("ab", 2).unwrap();
    assert!(s
        .scan("ab", 0, BucketRange::all(), None, 10)
        .unwrap()
        .is_empty());
}

pub fn deleting_a_tenant_removes_all_of_it_and_nothing_else(s: &dyn Store) {
    for t in ["gone", "gone2", "kept"] {
        s.ensure_tenant(t, 2).unwrap();
        append_all(s, t, &[ev(0, 1000, 1), ev(1, 2000, 2)]);
        s.put_dead_letters(&[DeadLetter {
            id: 0,
            tenant: t.into(),
            received: storyline_model::Timestamp(1),
            source: "http".into(),
            line: Some(1),
            format: None,
            code: "malformed_json".into(),
            reason: "bad".into(),
            raw: b"{".to_vec(),
        }])
        .unwrap();
        let lease = s
            .acquire_lease(t, "g", 0, "me", 10_000, 0)
            .unwrap()
            .unwrap();
        s.commit(
            t,
            "g",
            &lease,
            &Checkpoint {
                offset: 1000,
                ..Default::default()
            },
        )
        .unwrap();
    }
    assert_eq!(s.delete_tenant("gone").unwrap(), 2);
    for shard in 0..2 {
        assert!(s
            .scan("gone", shard, BucketRange::all(), None, 10)
            .unwrap()
            .is_empty());
        assert!(s
            .bucket_marks("gone", shard, BucketRange::all())
            .unwrap()
            .is_empty());
    }
    assert!(s.dead_letters("gone", None, 10).unwrap().is_empty());
    assert!(s.leases("gone", "g").unwrap().is_empty());
    assert_eq!(s.load_checkpoint("gone", "g", 0).unwrap(), None);
    assert!(s.offsets("gone", 0).unwrap().is_empty());
    // Registered again, with another shard count: the old registration went too.
    s.ensure_tenant("gone", 4).unwrap();
    // A tenant whose name starts with the deleted one's keeps everything.
    for t in ["gone2", "kept"] {
        assert_eq!(s.scan(t, 0, BucketRange::all(), None, 10).unwrap().len(), 1);
        assert_eq!(s.scan(t, 1, BucketRange::all(), None, 10).unwrap().len(), 1);
        assert_eq!(s.dead_letters(t, None, 10).unwrap().len(), 1);
        assert_eq!(s.leases(t, "g").unwrap().len(), 1);
        assert!(s.load_checkpoint(t, "g", 0).unwrap().is_some());
    }
}

pub fn bucket_events_count_what_a_range_holds(s: &dyn Store) {
    s.ensure_tenant(T, 2).unwrap();
    append_all(
        s,
        T,
        &[
            ev(0, 1000, 1),
            ev(0, 1000, 2),
            ev(0, 2000, 3),
            ev(0, 3000, 4),
            ev(1, 2000, 5),
        ],
    );
    // A re-sent event is stored once and counted once.
    append_all(s, T, &[ev(0, 2000, 3)]);
    let count = |after, upto, cap| {
        s.bucket_events(T, 0, BucketRange::new(after, upto), cap)
            .unwrap()
    };
    let Some(all) = count(Bucket::MIN, Bucket::MAX, 100) else {
        return; // this store does not count
    };
    assert_eq!(all, 4);
    assert_eq!(count(1000, 3000, 100), Some(2), "after < bucket <= upto");
    assert_eq!(count(999, 1000, 100), Some(2));
    assert_eq!(count(3000, 9000, 100), Some(0));
    assert_eq!(count(Bucket::MIN, Bucket::MAX, 3), Some(3), "capped");
    assert_eq!(
        s.bucket_events(T, 1, BucketRange::all(), 100).unwrap(),
        Some(1)
    );
}

pub fn records_are_kept_by_key_and_listed_by_prefix(s: &dyn Store) {
    s.put_record("tenant/b", Some(r#"{"id":"b"}"#)).unwrap();
    s.put_record("tenant/a", Some("first")).unwrap();
    s.put_record("tenant/a", Some("second")).unwrap();
    s.put_record("tenants", Some("not under tenant/")).unwrap();
    s.put_record("history/a/1", Some("x")).unwrap();
    let all = s.records("tenant/", None, 10).unwrap();
    assert_eq!(
        all,
        vec![
            ("tenant/a".to_string(), "second".to_string()),
            ("tenant/b".to_string(), r#"{"id":"b"}"#.to_string())
        ]
    );
    assert_eq!(s.records("tenant/", None, 1).unwrap().len(), 1);
    let rest = s.records("tenant/", Some("tenant/a"), 10).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0, "tenant/b");
    s.put_record("tenant/a", None).unwrap();
    assert_eq!(s.records("tenant/", None, 10).unwrap().len(), 1);
    assert_eq!(s.records("history/", None, 10).unwrap().len(), 1);
}

pub fn checkpoint_parts_change_with_their_checkpoint(s: &dyn Store) {
    if !s.keyed_checkpoint_parts() {
        return;
    }
    s.ensure_tenant(T, 2).unwrap();
    let part = |k: &str, v: Option<&str>| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()));
    let parts = |v: &[(Vec<u8>, Option<Vec<u8>>)]| -> storyline_model::parts::Parts {
        v.iter().map(|(k, v)| (k, v.as_ref())).collect()
    };
    let parts_of = |group: &str, shard: Shard| -> Vec<(String, String)> {
        s.checkpoint_parts(T, group, shard)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    };
    let owned = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let a = s.acquire_lease(T, G, 1, "a", 1000, 0).unwrap().unwrap();
    let cp = |offset| Checkpoint {
        shard: 1,
        offset,
        marks: Vec::new(),
        state: b"header".to_vec(),
    };
    s.commit_parts(
        T,
        G,
        &a,
        &cp(1000),
        true,
        &parts(&[part("s1", Some("one")), part("s2", Some("two"))]),
    )
    .unwrap();
    // Another group of the same shard has parts of its own.
    let other = s.acquire_lease(T, "g2", 1, "a", 1000, 0).unwrap().unwrap();
    s.commit_parts(
        T,
        "g2",
        &other,
        &cp(500),
        true,
        &parts(&[part("s1", Some("theirs"))]),
    )
    .unwrap();
    assert_eq!(parts_of(G, 1), owned(&[("s1", "one"), ("s2", "two")]));
    // A delta: one part changes, one goes, one is new; the rest stays.
    s.commit_parts(
        T,
        G,
        &a,
        &cp(2000),
        false,
        &parts(&[
            part("s2", None),
            part("s3", Some("three")),
            part("s1", Some("uno")),
        ]),
    )
    .unwrap();
    assert_eq!(parts_of(G, 1), owned(&[("s1", "uno"), ("s3", "three")]));
    assert_eq!(s.load_checkpoint(T, G, 1).unwrap(), Some(cp(2000)));
    assert_eq!(parts_of("g2", 1), owned(&[("s1", "theirs")]));
    assert!(parts_of(G, 0).is_empty());
    let mut offs = s.offsets(T, 1).unwrap();
    offs.sort();
    assert_eq!(offs, vec![("g2".to_string(), 500), (G.to_string(), 2000)]);
    // A fenced writer changes nothing.
    let b = s.acquire_lease(T, G, 1, "b", 1000, 5000).unwrap().unwrap();
    assert!(matches!(
        s.commit_parts(
            T,
            G,
            &a,
            &cp(3000),
            true,
            &parts(&[part("s9", Some("stale"))])
        ),
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(parts_of(G, 1), owned(&[("s1", "uno"), ("s3", "three")]));
    // A reset drops every earlier part.
    s.commit_parts(
        T,
        G,
        &b,
        &cp(3000),
        true,
        &parts(&[part("s4", Some("four"))]),
    )
    .unwrap();
    assert_eq!(parts_of(G, 1), owned(&[("s4", "four")]));
    s.delete_tenant(T).unwrap();
    assert!(parts_of(G, 1).is_empty());
    assert!(parts_of("g2", 1).is_empty());
}

/// Generates one `#[test]` per conformance check. `$make` builds a fresh, empty store behind a pointer to a
/// guard that derefs to the store (`Box<Guard>` where `Guard: Deref<Target = YourStore>`), so the guard can
/// clean up (remove a temp dir, drop a schema) when the test ends.
/// Two clients race for each of `rounds` leases — even rounds to create the lease, odd rounds to take
/// over an expired one — and exactly one wins every time. `clients` are two handles on the same store:
/// two connections, two sessions, or one shared handle for a store that lives in one process.
pub fn concurrent_acquires_never_both_win(clients: [std::sync::Arc<dyn Store>; 2], rounds: u16) {
    use std::sync::{Arc, Barrier};
    let first = clients[0].clone();
    first.ensure_tenant("t", rounds).unwrap();
    for i in 0..rounds {
        if i % 2 == 1 {
            let l = first
                .acquire_lease("t", "g", i, "old", 10, 0)
                .unwrap()
                .unwrap();
            assert_eq!(l.epoch, 1);
        }
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = ["a", "b"]
            .into_iter()
            .zip(clients.iter().cloned())
            .map(|(owner, store)| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    store
                        .acquire_lease("t", "g", i, owner, 60_000, 1_000)
                        .unwrap()
                })
            })
            .collect();
        let won: Vec<Lease> = handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(won.len(), 1, "round {i}: exactly one owner, got {won:?}");
        let held = first.leases("t", "g").unwrap();
        let row = held.iter().find(|l| l.shard == i).unwrap();
        assert_eq!(row.owner, won[0].owner);
        assert_eq!(row.epoch, won[0].epoch);
        assert_eq!(row.epoch, if i % 2 == 1 { 2 } else { 1 });
    }
}

#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            scan_returns_bucket_range_in_order, scan_pages_with_resume, payloads_are_kept_apart,
            payloads_of_one_append_span_shards_and_buckets,
            marks_change_on_every_write, leases_have_one_owner_and_fence_commits, offsets_list_every_group,
            dead_letters_are_kept_and_listed, retention_deletes_only_older_buckets, tenants_are_isolated,
            deleting_a_tenant_removes_all_of_it_and_nothing_else, records_are_kept_by_key_and_listed_by_prefix,
            bucket_events_count_what_a_range_holds,
            checkpoint_parts_change_with_their_checkpoint);
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let store = $make;
                $crate::conformance::$name(&**store);
            }
        )*
    };
}
