//! Story quality on generated multi-sensor traffic with ground truth: pairwise precision/recall over
//! event pairs, at the generator's default conditions (skew ±5 s, 20% reversed, 30% NAT, 10% up to 8 min
//! late, DNS before 60% of sessions). The events go through the real parsers, in arrival order.

use std::collections::HashMap;
use storyline_correlate::{Config, Correlator};
use storyline_generate::{GenConfig, Generator};
use storyline_model::{EventKey, Story};

struct Scores {
    precision: f64,
    recall: f64,
}

impl Scores {
    fn f1(&self) -> f64 {
        2.0 * self.precision * self.recall / (self.precision + self.recall)
    }
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Runs the engine over `events` generated events and scores the latest story versions.
fn score(events: u64, seed: u64, cfg: Config) -> Scores {
    let gen = GenConfig {
        events,
        seed,
        large: 0.0,
        ..GenConfig::default()
    };
    let mut truth: HashMap<String, String> = HashMap::new();
    let mut c = Correlator::new("t", cfg);
    let mut out: Vec<Story> = Vec::new();
    let limits = storyline_parse::Limits::default();
    for g in Generator::new(&gen) {
        let p = storyline_parse::parse_envelope(g.envelope.as_bytes(), &limits)
            .expect("generated lines parse");
        truth.insert(g.event_id.clone(), g.story.clone());
        let mut ev = p.event;
        ev.event.ingested = Some(g.arrival);
        c.ingest(&ev, EventKey::new(&p.sensor, &ev.event.id), 0);
        c.advance(c.max_event_time(), 0, &mut out);
    }
    c.flush(&mut out);
    let mut latest: HashMap<String, &Story> = HashMap::new();
    for s in &out {
        let id = s.story_id.to_string();
        if latest.get(&id).is_none_or(|o| o.version < s.version) {
            latest.insert(id, s);
        }
    }
    let mut cell: HashMap<(String, &str), u64> = HashMap::new();
    let mut pred: HashMap<String, u64> = HashMap::new();
    let mut tru: HashMap<&str, u64> = HashMap::new();
    let mut seen = 0;
    for (id, s) in &latest {
        for e in &s.event_ids {
            let t = truth[e.as_str()].as_str();
            *cell.entry((id.clone(), t)).or_default() += 1;
            *pred.entry(id.clone()).or_default() += 1;
            *tru.entry(t).or_default() += 1;
            seen += 1;
        }
    }
    assert_eq!(seen, truth.len(), "every event is in exactly one story");
    // Sensor clocks are skewed by up to ±5 s; stories show the estimated offsets.
    let shown = latest
        .values()
        .flat_map(|s| &s.provenance)
        .filter(|v| v.clock_offset_ms.is_some_and(|o| o != 0))
        .count();
    assert!(shown > 0, "no story shows a clock offset");
    let tp: u64 = cell.values().map(|n| pairs(*n)).sum();
    Scores {
        precision: tp as f64 / pred.values().map(|n| pairs(*n)).sum::<u64>() as f64,
        recall: tp as f64 / tru.values().map(|n| pairs(*n)).sum::<u64>() as f64,
    }
}

#[test]
fn stories_match_the_truth_at_default_conditions() {
    let s = score(20_000, 11, Config::default());
    eprintln!(
        "precision {:.4} recall {:.4} F1 {:.4}",
        s.precision,
        s.recall,
        s.f1()
    );
    assert!(
        s.f1() >= 0.97,
        "F1 {:.4} (precision {:.4}, recall {:.4})",
        s.f1(),
        s.precision,
        s.recall
    );
}
