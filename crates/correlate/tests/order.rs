//! Order independence on realistic traffic: generated multi-sensor events (NAT views, reversed reports,
//! DNS lookups, session ids) in any arrival order within the allowed lateness, with duplicates, give the
//! same final stories.

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use storyline_correlate::{Config, Correlator};
use storyline_generate::{GenConfig, Generator};
use storyline_model::{Event, EventKey, Story};

fn events(seed: u64) -> Vec<(Event, EventKey)> {
    let gen = GenConfig {
        events: 400,
        seed,
        rate: 10.0,
        large: 0.0,
        late: 0.0,
        ..GenConfig::default()
    };
    let limits = storyline_parse::Limits::default();
    Generator::new(&gen)
        .map(|g| {
            let p = storyline_parse::parse_envelope(g.envelope.as_bytes(), &limits).unwrap();
            let mut ev = p.event;
            ev.event.ingested = Some(g.arrival);
            let key = EventKey::new(&p.sensor, &ev.event.id);
            (ev, key)
        })
        .collect()
}

/// A final story as compared: its members and its published times (corrected by the final clock
/// estimate).
type Final = (BTreeSet<String>, i64, i64);

/// Feeds the events cycle by cycle, advancing the watermark after each as a worker does, then flushes.
/// Returns the latest version of every story, by id.
fn latest_versions<'a>(
    cycles: impl Iterator<Item = &'a [(Event, EventKey)]>,
    cfg: &Config,
) -> BTreeMap<String, Story> {
    let mut c = Correlator::new("t", cfg.clone());
    let mut out: Vec<Story> = Vec::new();
    for cycle in cycles {
        for (e, k) in cycle {
            c.ingest(e, *k, 0);
        }
        c.advance(c.max_event_time(), 0, &mut out);
    }
    c.flush(&mut out);
    let mut latest: BTreeMap<String, Story> = BTreeMap::new();
    for s in out {
        let id = s.story_id.to_string();
        if latest.get(&id).is_none_or(|o| o.version < s.version) {
            latest.insert(id, s);
        }
    }
    latest
}

/// The final stories, and how many of them show times corrected away from the sensors' own.
fn grouping(order: &[(Event, EventKey)], cfg: &Config) -> (BTreeSet<Final>, usize) {
    let latest = latest_versions(order.chunks(1), cfg);
    let finals = latest.values().filter(|s| !s.event_ids.is_empty());
    let corrected = finals
        .clone()
        .filter(|s| {
            let raw = s.provenance.iter().map(|v| v.first_seen).min();
            raw.is_some_and(|raw| raw != s.first_seen)
        })
        .count();
    let stories = finals
        .map(|s| {
            let ids = s.event_ids.iter().map(|e| e.to_string()).collect();
            (ids, s.first_seen.0, s.last_seen.0)
        })
        .collect();
    (stories, corrected)
}

fn shuffle(
    evs: &[(Event, EventKey)],
    swaps: &[(prop::sample::Index, usize)],
    dups: &[prop::sample::Index],
) -> Vec<(Event, EventKey)> {
    let mut shuffled = evs.to_vec();
    let n = shuffled.len();
    for (i, dist) in swaps {
        let i = i.index(n);
        let j = (i + dist).min(n - 1);
        // Keep each event within five minutes of event time of where it belonged (well inside the
        // ten-minute allowed lateness).
        if (shuffled[i].0.timestamp.0 - shuffled[j].0.timestamp.0).abs() < 300_000_000_000 {
            shuffled.swap(i, j);
        }
    }
    for d in dups {
        let i = d.index(n);
        let e = shuffled[i].clone();
        shuffled.insert((i + 5).min(shuffled.len()), e);
    }
    shuffled
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Every link rule is order-independent: with DNS links across sensors decided on arrival without
    /// an offset, and with them deferred until the clock-offset estimate for their time is final. So are
    /// the stories' times, corrected by the final estimate.
    #[test]
    fn any_arrival_order_within_the_lateness_gives_the_same_stories(
        seed in 0u64..1000,
        swaps in prop::collection::vec((any::<prop::sample::Index>(), 1usize..200), 0..300),
        dups in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let evs = events(seed);
        let shuffled = shuffle(&evs, &swaps, &dups);
        for offsets in [false, true] {
            let cfg = Config { dns_links_use_clock_offsets: offsets, ..Config::default() };
            let (reference, corrected) = grouping(&evs, &cfg);
            let total: usize = reference.iter().map(|g| g.0.len()).sum();
            prop_assert_eq!(total, evs.len(), "every event in exactly one story");
            prop_assert!(corrected > 0, "some story times corrected (skewed sensors)");
            prop_assert_eq!(grouping(&shuffled, &cfg).0, reference, "offsets {}", offsets);
        }
    }
}

/// The latest version of every story with events, by id, as published (JSON).
fn latest_by_id(
    cycles: &[Vec<(Event, EventKey)>],
    cfg: &Config,
) -> BTreeMap<String, serde_json::Value> {
    latest_versions(cycles.iter().map(Vec::as_slice), cfg)
        .into_iter()
        .filter(|(_, s)| !s.event_ids.is_empty())
        .map(|(id, s)| (id, serde_json::to_value(&s).unwrap()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A worker reads each cycle's shards one after another, so the order of events within a cycle
    /// depends on where the cycles fall. Stories must not: not their ids (derived from the members, not
    /// from whichever event arrived first), nor any published field.
    #[test]
    fn stories_do_not_depend_on_the_order_within_a_cycle(
        seed in 0u64..1000,
        cycle_len in 5usize..80,
        shuffle_seed in any::<u64>(),
    ) {
        let evs = events(seed);
        let cycles: Vec<Vec<_>> = evs.chunks(cycle_len).map(|c| c.to_vec()).collect();
        let mut rng = shuffle_seed | 1;
        let shuffled: Vec<Vec<_>> = cycles
            .iter()
            .map(|c| {
                let mut c = c.clone();
                // Fisher–Yates with xorshift: any permutation of the cycle.
                for i in (1..c.len()).rev() {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    c.swap(i, (rng % (i as u64 + 1)) as usize);
                }
                c
            })
            .collect();
        let cfg = Config { dns_links_use_clock_offsets: true, ..Config::default() };
        let reference = latest_by_id(&cycles, &cfg);
        let members: usize = reference.values().map(|s| s["event_ids"].as_array().unwrap().len()).sum();
        prop_assert_eq!(members, evs.len(), "every event in exactly one latest story");
        prop_assert!(
            reference.values().any(|s| s["event_count"].as_u64() > Some(1)),
            "some stories join several events"
        );
        prop_assert_eq!(latest_by_id(&shuffled, &cfg), reference);
    }
}
