//! Story times on one clock: two sensors report the same flows, one of them 3 s ahead. Once the
//! clock-offset estimate for the stories' time is final, their `first_seen`/`last_seen` are the
//! reference sensor's times (the first sensor in provenance), whatever the arrival order, and the
//! provenance keeps each sensor's own times.

use std::collections::BTreeMap;
use storyline_correlate::{Config, Correlator};
use storyline_model::{Event, EventKey, Story, Timestamp};

const S: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;
const T0: i64 = 1_800_000_000 * S;
const SKEW: i64 = 3 * S;
/// The estimate is a median of millisecond samples; the generator-free traffic here has none of the
/// sensors' own jitter, so the correction must be exact to the millisecond.
const TOLERANCE: i64 = MS;

/// One report of flow `i` (its own client port) at `t` on the reporting sensor's clock.
fn report(sensor: &str, i: u16, t: i64) -> Event {
    let mut e = Event {
        timestamp: Timestamp(t),
        ..Event::default()
    };
    e.event.id = format!("{sensor}-{i}").into();
    e.observer.name = sensor.into();
    e.network.transport = Some("tcp".into());
    e.source.ip = Some("10.0.0.5".parse().unwrap());
    e.source.port = Some(40_000 + i);
    e.destination.ip = Some("198.51.100.9".parse().unwrap());
    e.destination.port = Some(443);
    e.finish();
    e
}

/// 120 flows, one every 2 s over four minutes; "a-zeek" (the reference: it sorts first) reports each at
/// its true time, "b-fw" 3 s later on its clock, which runs 3 s ahead. The true time of flow `i`.
fn traffic() -> (Vec<Event>, BTreeMap<String, i64>) {
    let mut evs = Vec::new();
    let mut truth = BTreeMap::new();
    for i in 0..120u16 {
        // Flows 1.5 s long: each sensor reports the start and the end.
        let t = T0 + i64::from(i) * 2 * S + i64::from(i % 7) * 13 * MS;
        for (sensor, skew) in [("a-zeek", 0), ("b-fw", SKEW)] {
            let mut start = report(sensor, i, t + skew);
            start.event.id = format!("{sensor}-{i}-start").into();
            let mut end = report(sensor, i, t + skew + 1_500 * MS);
            end.event.id = format!("{sensor}-{i}-end").into();
            evs.push(start);
            evs.push(end);
        }
        truth.insert(format!("a-zeek-{i}-start"), t);
    }
    evs.sort_by_key(|e| e.timestamp);
    (evs, truth)
}

fn key(e: &Event) -> EventKey {
    EventKey::new(&e.observer.name, &e.event.id)
}

/// Feeds the events as a worker would (watermark = largest event time seen), then moves the watermark
/// `drain` past the last event, then flushes. Every version published, in order.
fn run(events: &[Event], cfg: &Config, drain: i64) -> Vec<Story> {
    let mut c = Correlator::new("t", cfg.clone());
    let mut out = Vec::new();
    for e in events {
        c.ingest(e, key(e), 0);
        c.advance(c.max_event_time(), 0, &mut out);
    }
    let wm = c.max_event_time();
    c.advance(Timestamp(wm.0 + drain), 0, &mut out);
    c.flush(&mut out);
    out
}

/// Feeds the events as a worker would, without moving the watermark further or flushing: the correlator
/// and every version published so far.
fn feed(events: &[Event], only_final: bool) -> (Correlator, Vec<Story>) {
    let mut c = Correlator::new("t", Config::default());
    c.publish_only_final(only_final);
    let mut out = Vec::new();
    for e in events {
        c.ingest(e, key(e), 0);
        c.advance(c.max_event_time(), 0, &mut out);
    }
    (c, out)
}

fn latest(out: &[Story]) -> BTreeMap<String, Story> {
    let mut m: BTreeMap<String, Story> = BTreeMap::new();
    for s in out {
        let id = s.story_id.to_string();
        if m.get(&id).is_none_or(|o| o.version < s.version) {
            m.insert(id, s.clone());
        }
    }
    m
}

/// The story holding `a-zeek-{i}-start` → (first_seen, last_seen).
fn times_by_flow(latest: &BTreeMap<String, Story>) -> BTreeMap<String, (i64, i64)> {
    let mut m = BTreeMap::new();
    for s in latest.values() {
        for id in &s.event_ids {
            if id.as_str().starts_with("a-zeek-") && id.as_str().ends_with("-start") {
                m.insert(id.to_string(), (s.first_seen.0, s.last_seen.0));
            }
        }
    }
    m
}

#[test]
fn story_times_are_on_the_reference_clock_once_the_estimate_is_final() {
    let (evs, truth) = traffic();
    let out = run(&evs, &Config::default(), 0);
    let stories = latest(&out);
    let times = times_by_flow(&stories);
    assert_eq!(times.len(), 120, "every flow in a story");
    for s in stories.values() {
        assert_eq!(s.event_count, 4, "one story per flow, both sensors: {s:?}");
        let b = s.provenance.iter().find(|v| v.sensor == "b-fw").unwrap();
        let a = s.provenance.iter().find(|v| v.sensor == "a-zeek").unwrap();
        assert_eq!(
            s.provenance[0].sensor, "a-zeek",
            "the reference is listed first"
        );
        let off = b
            .clock_offset_ms
            .expect("an estimate for the skewed sensor");
        assert!((off - 3_000).abs() <= 1, "offset {off} ms");
        assert_eq!(a.clock_offset_ms, Some(0));
        // Provenance keeps what each sensor said.
        assert_eq!(b.first_seen.0 - a.first_seen.0, SKEW);
    }
    for (id, (first, last)) in &times {
        let t = truth[id];
        assert!((first - t).abs() <= TOLERANCE, "{id}: first {first} vs {t}");
        let end = t + 1_500 * MS;
        assert!(
            (last - end).abs() <= TOLERANCE,
            "{id}: last {} ms after the true end, the raw skewed report is 3000 ms after",
            (last - end) / MS
        );
    }
}

#[test]
fn a_version_published_before_the_estimate_is_final_is_corrected_by_a_later_one() {
    let (evs, _) = traffic();
    // The watermark passes every story's close (gap) but not the point where the clock estimate for
    // the first stories is final (gap + allowed lateness + two epochs): those are published with raw
    // times first.
    let out = run(&evs, &Config::default(), 0);
    let first_flow: Vec<&Story> = out
        .iter()
        .filter(|s| s.event_ids.iter().any(|e| e.as_str() == "a-zeek-0-start"))
        .collect();
    assert!(
        first_flow.len() >= 2,
        "published, then corrected: {first_flow:?}"
    );
    let (early, last) = (first_flow[0], first_flow[first_flow.len() - 1]);
    assert_eq!(early.event_count, 4);
    assert_eq!(early.version, 4, "the version is the event count");
    assert_eq!(
        early.last_seen.0,
        T0 + SKEW + 1_500 * MS,
        "raw: the skewed sensor's end"
    );
    // Meanwhile the running estimate is shown: each sensor's first report against the other's earliest,
    // not a flow's end against its start (which would read 4.5 s).
    let b = early
        .provenance
        .iter()
        .find(|v| v.sensor == "b-fw")
        .unwrap();
    if let Some(off) = b.clock_offset_ms {
        assert!((off - 3_000).abs() <= 1, "running estimate {off} ms");
    }
    let later = out
        .iter()
        .filter(|s| s.event_count == 4 && s.version == 4)
        .filter_map(|s| s.provenance.iter().find(|v| v.sensor == "b-fw"))
        .filter_map(|v| v.clock_offset_ms)
        .collect::<Vec<_>>();
    assert!(later.len() > 50, "running estimates shown: {}", later.len());
    assert!(
        later.iter().all(|off| (off - 3_000).abs() <= 1),
        "{later:?}"
    );
    assert_eq!(last.event_count, 4);
    assert_eq!(last.version, 5, "a correction is a new version: count + 1");
    assert_eq!(last.last_seen.0, T0 + 1_500 * MS);
    assert_eq!(last.event_ids, early.event_ids);

    // Live, without a flush: once the watermark is past the lateness and two more epochs, the
    // correction comes out of `advance` by itself.
    let (mut c, mut live) = feed(&evs, false);
    let end = c.max_event_time().0;
    c.advance(Timestamp(end + 20 * 60 * S), 0, &mut live);
    let l = latest(&live);
    let times = times_by_flow(&l);
    let (first, _) = times["a-zeek-0-start"];
    assert_eq!(first, T0, "corrected without a flush");
    assert_eq!(
        c.held_events(),
        0,
        "corrected stories are forgotten after all"
    );
}

#[test]
fn corrected_times_do_not_depend_on_arrival_order() {
    let (evs, _) = traffic();
    let reference = times_by_flow(&latest(&run(&evs, &Config::default(), 0)));
    // Each sensor's reports in a block, the skewed sensor first: up to four minutes out of place.
    let mut blocks: Vec<Event> = evs
        .iter()
        .filter(|e| e.observer.name == "b-fw")
        .cloned()
        .collect();
    blocks.extend(evs.iter().filter(|e| e.observer.name == "a-zeek").cloned());
    let mut reversed = evs.clone();
    reversed.reverse();
    for order in [blocks, reversed] {
        assert_eq!(
            times_by_flow(&latest(&run(&order, &Config::default(), 0))),
            reference
        );
    }
}

#[test]
fn without_correction_story_times_are_the_sensors_own() {
    let (evs, truth) = traffic();
    let cfg = Config {
        correct_story_times: false,
        ..Config::default()
    };
    let times = times_by_flow(&latest(&run(&evs, &cfg, 0)));
    for (id, (first, last)) in &times {
        assert_eq!(*first, truth[id]);
        assert_eq!(*last, truth[id] + SKEW + 1_500 * MS);
    }
}

/// [`Correlator::publish_only_final`] (a replay's default): no story goes out before its times are
/// final, so each is published once, and what is published last is what publishing at close ends with.
#[test]
fn a_story_held_until_its_times_are_final_is_published_once_as_its_last_version() {
    let (evs, _) = traffic();
    let on_close = run(&evs, &Config::default(), 0);
    let (mut c, mut held) = feed(&evs, true);
    // Every story closed (the gap passed) but none is final yet: nothing is out.
    assert!(held.is_empty(), "published before final: {held:?}");
    c.flush(&mut held);

    let mut ids: Vec<_> = held.iter().map(|s| s.story_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), held.len(), "one version per story");
    assert_eq!(held.len(), 120);
    assert!(
        on_close.len() > held.len(),
        "publishing at close also sends the uncorrected versions"
    );
    let essentials = |latest: BTreeMap<String, Story>| {
        latest
            .into_values()
            .map(|s| (s.event_ids, s.version, s.first_seen, s.last_seen))
            .collect::<Vec<_>>()
    };
    assert_eq!(essentials(latest(&held)), essentials(latest(&on_close)));
    for s in &held {
        assert_eq!(s.version, 5, "the corrected version: {s:?}");
    }
}

#[test]
fn a_held_story_goes_out_once_its_estimate_is_final_without_a_flush() {
    let (evs, truth) = traffic();
    let (mut c, mut live) = feed(&evs, true);
    let end = c.max_event_time().0;
    c.advance(Timestamp(end + 20 * 60 * S), 0, &mut live);
    assert_eq!(live.len(), 120, "each story once, before any flush");
    let times = times_by_flow(&latest(&live));
    for (id, (first, _)) in &times {
        assert!((first - truth[id]).abs() <= TOLERANCE, "{id} corrected");
    }
}
