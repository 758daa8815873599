//! What correlation costs per event: the full engine against the first correlator (Community ID within a
//! gap, `storyline_correlate::first`) and the 5-tuple session-window baseline, on generated traffic
//! (parsed once, outside the timed loop). Also prints each engine's state bytes per held event at its
//! largest. `cargo bench -p storyline-correlate --bench engine`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use storyline_correlate::{baseline, first::FirstCorrelator, Config, Correlator};
use storyline_generate::{GenConfig, Generator};
use storyline_model::{Event, EventKey, Story};

fn events() -> Vec<(Event, EventKey)> {
    let gen = GenConfig {
        events: 50_000,
        seed: 7,
        large: 0.0,
        ..GenConfig::default()
    };
    let limits = storyline_parse::Limits::default();
    Generator::new(&gen)
        .map(|g| {
            let p = storyline_parse::parse_envelope(g.envelope.as_bytes(), &limits)
                .expect("generated lines parse");
            let mut ev = p.event;
            ev.event.ingested = Some(g.arrival);
            let key = EventKey::new(&p.sensor, &ev.event.id);
            (ev, key)
        })
        .collect()
}

fn run_engine(evs: &[(Event, EventKey)], cfg: &Config) -> (usize, usize) {
    let mut c = Correlator::new("t", cfg.clone());
    let mut out: Vec<Story> = Vec::new();
    let mut peak = (0, 1);
    for (i, (e, k)) in evs.iter().enumerate() {
        c.ingest(e, *k, 0);
        if i % 256 == 0 {
            c.advance(c.max_event_time(), 0, &mut out);
            out.clear();
            if c.held_events() > peak.1 {
                peak = (c.state_bytes(), c.held_events());
            }
        }
    }
    c.flush(&mut out);
    peak
}

/// The same loop as [`run_engine`], for the first correlator.
fn run_first(evs: &[(Event, EventKey)], cfg: &Config) -> (usize, usize) {
    let mut c = FirstCorrelator::new("t", cfg.clone());
    let mut out: Vec<Story> = Vec::new();
    let mut peak = (0, 1);
    let mut wm = storyline_model::Timestamp::MIN;
    for (i, (e, k)) in evs.iter().enumerate() {
        c.ingest(e, *k, 0);
        // It does not track the largest event time itself; a worker's watermark is the same thing.
        wm = wm.max(e.timestamp);
        if i % 256 == 0 {
            c.advance(wm, 0, &mut out);
            out.clear();
            if c.held_events() > peak.1 {
                peak = (c.state_bytes(), c.held_events());
            }
        }
    }
    c.flush(&mut out);
    peak
}

fn bench(cr: &mut Criterion) {
    let evs = events();
    let uncorrected = Config {
        correct_story_times: false,
        ..Config::default()
    };
    for (name, (bytes, held)) in [
        ("full_engine", run_engine(&evs, &Config::default())),
        ("full_engine_raw_times", run_engine(&evs, &uncorrected)),
        ("first_correlator", run_first(&evs, &Config::default())),
    ] {
        eprintln!(
            "{name}: state at its largest: {held} held events, ~{} bytes per held event",
            bytes / held.max(1)
        );
    }
    let mut g = cr.benchmark_group("correlate");
    g.throughput(Throughput::Elements(evs.len() as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("full_engine", |b| {
        b.iter(|| run_engine(&evs, &Config::default()))
    });
    g.bench_function("full_engine_raw_times", |b| {
        b.iter(|| run_engine(&evs, &uncorrected))
    });
    g.bench_function("first_correlator", |b| {
        b.iter(|| run_first(&evs, &Config::default()))
    });
    let plain: Vec<Event> = evs.iter().map(|(e, _)| e.clone()).collect();
    g.bench_function("baseline_5_tuple", |b| {
        b.iter(|| baseline::five_tuple_sessions(&plain, Duration::from_secs(60)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
