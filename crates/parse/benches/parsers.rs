//! Records/s of `parse_envelope` per format, on realistic records from the synthetic-traffic generator
//! (`large: 0.0`: no oversized extra fields). ECS records are the model's own ECS JSON of the generated
//! events (the generator writes no ECS), sent with format `ecs`.
//!
//! Run: `cargo bench -p storyline-parse --bench parsers`. Criterion's "thrpt" line is records/s.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::collections::BTreeMap;
use std::time::Duration;
use storyline_generate::{GenConfig, Generator};
use storyline_parse::{parse_envelope, Limits};

const EVENTS: u64 = 20_000;

fn envelopes() -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let cfg = GenConfig {
        events: EVENTS,
        seed: 7,
        large: 0.0,
        ..GenConfig::default()
    };
    let limits = Limits::default();
    let mut by_format: BTreeMap<&'static str, Vec<Vec<u8>>> = BTreeMap::new();
    for g in Generator::new(&cfg) {
        let parsed = parse_envelope(g.envelope.as_bytes(), &limits)
            .unwrap_or_else(|e| panic!("generated record rejected: {e}\n{}", g.envelope));
        let ecs = serde_json::json!({
            "format": "ecs",
            "sensor": parsed.sensor.as_str(),
            "record": parsed.event.to_ecs_json(),
        });
        by_format
            .entry("ecs")
            .or_default()
            .push(ecs.to_string().into_bytes());
        by_format
            .entry(g.format)
            .or_default()
            .push(g.envelope.into_bytes());
    }
    by_format
}

fn parsers(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("parse_envelope");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (format, lines) in envelopes() {
        let mean_len = lines.iter().map(Vec::len).sum::<usize>() / lines.len().max(1);
        eprintln!("{format}: {} envelopes, mean {mean_len} bytes", lines.len());
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(format), &lines, |b, lines| {
            b.iter(|| {
                for line in lines {
                    let _ = black_box(parse_envelope(black_box(line), &limits));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parsers);
criterion_main!(benches);
