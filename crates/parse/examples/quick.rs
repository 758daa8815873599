use std::collections::BTreeMap;
use storyline_generate::{GenConfig, Generator};
use storyline_parse::{parse_envelope, Limits};
// Usage: quick FORMAT ROUNDS  (prints record count; measure with perf stat)
fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    let rounds: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let cfg = GenConfig { events: 20_000, seed: 7, large: 0.0, ..GenConfig::default() };
    let limits = Limits::default();
    let mut by: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
    for g in Generator::new(&cfg) {
        if filter == "ecs" {
            let p = parse_envelope(g.envelope.as_bytes(), &limits).unwrap();
            let ecs = serde_json::json!({"format":"ecs","sensor":p.sensor.as_str(),"record":p.event.to_ecs_json()});
            by.entry("ecs").or_default().push(ecs.to_string().into_bytes());
        }
        by.entry(g.format).or_default().push(g.envelope.into_bytes());
    }
    let lines = &by[filter.as_str()];
    let mut n = 0usize;
    for _ in 0..rounds {
        for l in lines { std::hint::black_box(parse_envelope(std::hint::black_box(l), &limits)).ok(); n += 1; }
    }
    eprintln!("{n}");
}
