use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;
use storyline_correlate::{Config, Correlator};
use storyline_model::{Event, EventKey, Story, Timestamp};

const S: i64 = 1_000_000_000;

fn flow_event(id: &str, sensor: &str, t_secs: i64, client_port: u16, reversed: bool) -> Event {
    let mut e = Event {
        timestamp: Timestamp(1_800_000_000 * S + t_secs * S),
        ..Event::default()
    };
    e.event.id = id.into();
    e.observer.name = sensor.into();
    e.network.transport = Some("tcp".into());
    e.source.ip = Some("10.0.0.5".parse().unwrap());
    e.source.port = Some(client_port);
    e.destination.ip = Some("198.51.100.9".parse().unwrap());
    e.destination.port = Some(443);
    if reversed {
        std::mem::swap(&mut e.source, &mut e.destination);
    }
    e.finish();
    e
}

fn key(e: &Event) -> EventKey {
    EventKey::new(&e.observer.name, &e.event.id)
}

/// Feeds events in the given order, advancing the watermark to each event's time as a worker would, then
/// flushes. Returns the latest version of every story, keyed by story id.
fn run(events: &[Event], cfg: &Config) -> (BTreeMap<String, Story>, Vec<Story>) {
    let mut c = Correlator::new("t", cfg.clone());
    let mut out = Vec::new();
    let mut wm = Timestamp::MIN;
    for e in events {
        c.ingest(e, key(e), 0);
        wm = wm.max(e.timestamp);
        c.advance(wm, 0, &mut out);
    }
    c.flush(&mut out);
    (latest_versions(&out), out)
}

fn latest_versions(out: &[Story]) -> BTreeMap<String, Story> {
    let mut latest: BTreeMap<String, Story> = BTreeMap::new();
    for s in out {
        let id = s.story_id.to_string();
        if latest.get(&id).is_none_or(|old| old.version < s.version) {
            latest.insert(id, s.clone());
        }
    }
    latest
}

/// The grouping alone, independent of story ids: the sorted list of each story's sorted members.
fn partition(latest: &BTreeMap<String, Story>) -> Vec<Vec<String>> {
    membership(latest); // also checks that no event is in two stories
    let mut groups: Vec<Vec<String>> = latest
        .values()
        .filter(|s| !s.event_ids.is_empty())
        .map(|s| {
            let mut g: Vec<String> = s.event_ids.iter().map(|e| e.to_string()).collect();
            g.sort();
            g
        })
        .collect();
    groups.sort();
    groups
}

fn membership(latest: &BTreeMap<String, Story>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (id, s) in latest {
        for e in &s.event_ids {
            if let Some(other) = m.insert(e.to_string(), id.clone()) {
                let holders: Vec<_> = latest
                    .values()
                    .filter(|s| s.event_ids.contains(e))
                    .map(|s| {
                        (
                            s.story_id,
                            s.version,
                            s.event_ids.clone(),
                            s.first_seen,
                            s.last_seen,
                        )
                    })
                    .collect();
                panic!("event {e} in two stories: {other} and {id}: {holders:?}");
            }
        }
    }
    m
}

#[test]
fn both_directions_of_a_flow_form_one_story_with_the_initiator_as_source() {
    let evs = vec![
        flow_event("a", "fw", 0, 50000, false),
        flow_event("b", "vpc", 1, 50000, true),
        flow_event("c", "zeek", 2, 50000, false),
    ];
    let (latest, _) = run(&evs, &Config::default());
    assert_eq!(latest.len(), 1);
    let s = latest.values().next().unwrap();
    assert_eq!(s.event_count, 3);
    assert_eq!(s.sensors, vec!["fw", "vpc", "zeek"]);
    assert_eq!(s.fused.source.ip, Some("10.0.0.5".parse().unwrap()));
    assert_eq!(s.fused.destination.port, Some(443));
}

#[test]
fn a_gap_splits_sessions_and_other_flows_stay_apart() {
    let evs = vec![
        flow_event("a", "fw", 0, 50000, false),
        flow_event("b", "fw", 200, 50000, false), // same tuple, after the 60 s gap: a new session
        flow_event("c", "fw", 1, 50001, false),   // another flow
    ];
    let (latest, _) = run(&evs, &Config::default());
    assert_eq!(latest.len(), 3);
}

#[test]
fn events_without_a_flow_are_stories_of_their_own() {
    let mut e = Event::default();
    e.event.id = "lonely".into();
    e.observer.name = "edr".into();
    e.timestamp = Timestamp(5 * S);
    let (latest, _) = run(&[e], &Config::default());
    assert_eq!(latest.len(), 1);
    assert_eq!(latest.values().next().unwrap().event_ids, vec!["lonely"]);
}

#[test]
fn a_late_event_reopens_its_story_as_a_new_version_with_the_same_id() {
    let mut evs: Vec<Event> = vec![flow_event("a", "fw", 0, 50000, false)];
    // Other traffic moves event time 5 minutes on, closing the first story.
    evs.push(flow_event("x", "fw", 300, 40000, false));
    evs.push(flow_event("late", "vpc", 2, 50000, true));
    let (latest, all) = run(&evs, &Config::default());
    let versions: Vec<_> = all
        .iter()
        .filter(|s| s.event_ids.contains(&"a".into()))
        .collect();
    assert_eq!(
        versions.len(),
        2,
        "published, then re-published with the late event"
    );
    assert_eq!(versions[0].story_id, versions[1].story_id);
    assert_eq!((versions[0].version, versions[1].version), (1, 2));
    assert_eq!(versions[1].event_count, 2);
    assert_eq!(latest.len(), 2);
}

#[test]
fn events_beyond_the_lateness_get_their_own_story_and_are_counted() {
    let cfg = Config {
        allowed_lateness: Duration::from_secs(60),
        ..Config::default()
    };
    let mut c = Correlator::new("t", cfg);
    let mut out = Vec::new();
    let first = flow_event("a", "fw", 0, 50000, false);
    c.ingest(&first, key(&first), 0);
    let later = flow_event("x", "fw", 3600, 40000, false);
    c.ingest(&later, key(&later), 0);
    c.advance(later.timestamp, 0, &mut out);
    let late = flow_event("late", "vpc", 1, 50000, true);
    c.ingest(&late, key(&late), 0);
    c.flush(&mut out);
    assert_eq!(c.stats().too_late, 1);
    let late_story = out
        .iter()
        .find(|s| s.event_ids.contains(&"late".into()))
        .unwrap();
    assert_eq!(late_story.event_count, 1);
}

#[test]
fn future_dated_events_cannot_drag_event_time() {
    let mut c = Correlator::new("t", Config::default());
    let mut e = flow_event("future", "fw", 3600, 50000, false);
    e.event.ingested = Some(Timestamp(1_800_000_000 * S));
    c.ingest(&e, key(&e), 0);
    assert_eq!(c.stats().future_capped, 1);
    let mut out = Vec::new();
    c.flush(&mut out);
    assert_eq!(
        out[0].last_seen,
        Timestamp(1_800_000_005 * S),
        "capped at receive time + 5 s skew bound"
    );
}

#[test]
fn a_late_event_that_bridges_two_published_stories_merges_them() {
    let evs = vec![
        flow_event("a", "fw", 0, 50000, false),
        flow_event("b", "fw", 100, 50000, false),
        flow_event("x", "fw", 400, 40000, false), // closes both
        flow_event("bridge", "zeek", 50, 50000, false),
    ];
    let (latest, all) = run(&evs, &Config::default());
    let merged: Vec<_> = all.iter().filter(|s| s.merged_into.is_some()).collect();
    assert_eq!(merged.len(), 1);
    assert!(merged[0].event_ids.is_empty());
    let survivor = &latest[&merged[0].merged_into.unwrap().to_string()];
    let mut ids: Vec<_> = survivor.event_ids.iter().map(|s| s.to_string()).collect();
    ids.sort();
    assert_eq!(ids, vec!["a", "b", "bridge"]);
    // The absorbed story's latest version is the empty one, so every event is in exactly one story.
    membership(&latest);
}

#[test]
fn a_published_story_folded_into_one_never_published_goes_on_under_its_id() {
    // B: a long session seen from inside, open throughout. A: one report of the same session's outside
    // view (after NAT), closed and published while B runs on. Then the firewall's NAT record names both
    // views: A (the newer story) is folded into B, which has no id yet.
    let b: Vec<Event> = (0..14)
        .map(|i| flow_event(&format!("b{i}"), "fw", i * 30, 40000, false))
        .collect();
    let outside = |id: &str| {
        let mut e = flow_event(id, "vpc", 100, 40000, false);
        e.source.ip = Some("203.0.113.7".parse().unwrap());
        e.source.port = Some(61000);
        e.finish();
        e
    };
    // A's key the smallest of all: an id derived from B's members would then be A's own.
    let smallest_b = b.iter().map(key).min().unwrap();
    let a = (0..)
        .map(|i| outside(&format!("a{i}")))
        .find(|a| key(a) < smallest_b)
        .unwrap();
    let mut bridge = flow_event("bridge", "fw-nat", 120, 40000, false);
    bridge.source.nat.ip = Some("203.0.113.7".parse().unwrap());
    bridge.source.nat.port = Some(61000);
    bridge.finish();

    let mut c = Correlator::new("t", Config::default());
    let mut out = Vec::new();
    let feed = |c: &mut Correlator, e: &Event, out: &mut Vec<Story>| {
        c.ingest(e, key(e), 0);
        c.advance(c.max_event_time(), 0, out);
    };
    for e in &b[..4] {
        feed(&mut c, e, &mut out);
    }
    feed(&mut c, &a, &mut out);
    for e in &b[4..8] {
        feed(&mut c, e, &mut out);
    }
    let a_story = out
        .iter()
        .find(|s| s.event_ids.contains(&a.event.id))
        .expect("A was published on its own")
        .clone();
    assert!(
        out.iter().all(|s| !s.event_ids.contains(&b[0].event.id)),
        "B still open"
    );
    feed(&mut c, &bridge, &mut out);
    for e in &b[8..] {
        feed(&mut c, e, &mut out);
    }
    c.flush(&mut out);

    let latest = latest_versions(&out);
    let members = membership(&latest);
    assert_eq!(members.len(), b.len() + 2, "every event in a latest story");
    let fused = &latest[&a_story.story_id.to_string()];
    assert_eq!(
        fused.event_count as usize,
        b.len() + 2,
        "B went on under A's id"
    );
    assert!(fused.version > a_story.version);
    assert!(out.iter().all(|s| s.merged_into != Some(s.story_id)));
}

#[test]
fn a_story_that_reaches_the_size_limit_is_cut() {
    let cfg = Config {
        max_story_events: 3,
        ..Config::default()
    };
    let evs: Vec<_> = (0..7)
        .map(|i| flow_event(&format!("e{i}"), "fw", i, 50000, false))
        .collect();
    let (latest, _) = run(&evs, &cfg);
    let mut sizes: Vec<_> = latest.values().map(|s| s.event_count).collect();
    sizes.sort();
    assert_eq!(sizes, vec![1, 3, 3]);
}

#[test]
fn snapshot_restore_continues_identically() {
    let evs: Vec<_> = (0..40)
        .map(|i| {
            flow_event(
                &format!("e{i}"),
                "fw",
                i * 7,
                50000 + (i % 5) as u16,
                i % 3 == 0,
            )
        })
        .collect();
    let (expected, _) = run(&evs, &Config::default());

    let mut c = Correlator::new("t", Config::default());
    let mut out = Vec::new();
    for (i, e) in evs.iter().enumerate() {
        if i == 20 {
            c = Correlator::restore(&c.snapshot()).unwrap();
        }
        c.ingest(e, key(e), 0);
        c.advance(e.timestamp, 0, &mut out);
    }
    c.flush(&mut out);
    assert_eq!(
        membership(&latest_versions(&out)),
        membership(&expected),
        "same stories, same ids"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any arrival order (each event at most a few minutes out of place, well within the lateness) and any
    /// duplicates give the same final grouping.
    #[test]
    fn arrival_order_and_duplicates_do_not_change_final_stories(
        times in prop::collection::vec((0i64..900, 0u16..6, any::<bool>()), 1..60),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..80),
        dups in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let mut evs: Vec<Event> = times.iter().enumerate()
            .map(|(i, (t, port, rev))| flow_event(&format!("e{i}"), if *rev { "vpc" } else { "fw" }, *t, 50000 + port, *rev))
            .collect();
        evs.sort_by_key(|e| e.timestamp);
        let (reference, _) = run(&evs, &Config::default());

        let mut shuffled = evs.clone();
        for idx in &order {
            let i = idx.index(shuffled.len());
            // Swap with a neighbour no more than 5 minutes of event time away: bounded disorder.
            let j = (i + 1).min(shuffled.len() - 1);
            if (shuffled[i].timestamp.0 - shuffled[j].timestamp.0).abs() < 300 * S {
                shuffled.swap(i, j);
            }
        }
        // Duplicates arrive within the allowed lateness of the original (a re-sent batch), not hours later:
        // dedupe memory is bounded by the lateness, like every stream processor's.
        for d in &dups {
            let i = d.index(shuffled.len());
            let e = shuffled[i].clone();
            // Right after the original, or a few events later if those are close in event time.
            let mut at = i + 1;
            while at < shuffled.len() && at < i + 4 && (shuffled[at].timestamp.0 - e.timestamp.0).abs() < 60 * S {
                at += 1;
            }
            shuffled.insert(at, e);
        }
        let (got, _) = run(&shuffled, &Config::default());
        prop_assert_eq!(partition(&got), partition(&reference));
        let total: usize = got.values().map(|s| s.event_ids.len()).sum();
        prop_assert_eq!(total, evs.len(), "every event in exactly one story");
    }
}
