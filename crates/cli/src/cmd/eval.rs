//! `storyline eval`: how close published stories are to the generator's ground truth.
//!
//! Pairwise scores over event pairs: a pair is predicted when both events are in the same story (latest
//! version of each story id) and true when both are in the same true story. Events in the truth that no
//! story contains count as stories of one (they cost recall). With `--baseline-events`, the same scores for
//! the baseline a plain stream processor gives: session windows keyed by the exact 5-tuple.

use anyhow::Context;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// truth.ndjson from `storyline generate`.
    #[arg(long)]
    truth: PathBuf,
    /// Stories NDJSON (every version; the latest of each story id counts).
    #[arg(long)]
    stories: PathBuf,
    /// Also score the 5-tuple session-window baseline over these input envelopes (events.ndjson).
    #[arg(long)]
    baseline_events: Option<PathBuf>,
    /// Session gap of the baseline.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    baseline_gap: std::time::Duration,
    /// Print the scores as JSON (one object per line).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, serde::Serialize, PartialEq)]
pub struct Scores {
    pub name: String,
    pub events: u64,
    pub missing_events: u64,
    pub true_stories: u64,
    pub predicted_stories: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub exact_story_share: f64,
}

fn lines(
    path: &Path,
) -> anyhow::Result<impl Iterator<Item = (usize, anyhow::Result<serde_json::Value>)>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let p = path.display().to_string();
    Ok(std::io::BufReader::new(f)
        .lines()
        .enumerate()
        .filter_map(move |(i, l)| match l {
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some((
                i + 1,
                serde_json::from_str(&l).with_context(|| format!("{p} line {}: not JSON", i + 1)),
            )),
            Err(e) => Some((i + 1, Err(anyhow::anyhow!("{p} line {}: {e}", i + 1)))),
        }))
}

fn load_truth(truth: &Path) -> anyhow::Result<HashMap<String, String>> {
    let mut true_of = HashMap::new();
    for (n, v) in lines(truth)? {
        let v = v?;
        let (Some(e), Some(s)) = (v["event_id"].as_str(), v["story"].as_str()) else {
            anyhow::bail!(
                "{} line {n}: needs string fields event_id and story",
                truth.display()
            );
        };
        true_of.insert(e.to_string(), s.to_string());
    }
    Ok(true_of)
}

/// Event id → story id, from the latest version of every story.
fn load_stories(stories: &Path) -> anyhow::Result<HashMap<String, String>> {
    let mut latest: HashMap<String, (u64, Vec<String>)> = HashMap::new();
    for (n, v) in lines(stories)? {
        let v = v?;
        let id = v["story_id"]
            .as_str()
            .with_context(|| format!("{} line {n}: no story_id", stories.display()))?;
        let version = v["version"].as_u64().unwrap_or(0);
        let ids: Vec<String> = v["event_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let entry = latest.entry(id.to_string()).or_insert((0, Vec::new()));
        if version >= entry.0 {
            *entry = (version, ids);
        }
    }
    let mut pred = HashMap::new();
    for (id, (_, ids)) in latest {
        for e in ids {
            pred.insert(e, id.clone());
        }
    }
    Ok(pred)
}

/// Event id → baseline group, grouping the parsed input by exact 5-tuple session windows.
fn baseline(events: &Path, gap: std::time::Duration) -> anyhow::Result<HashMap<String, String>> {
    let f = std::fs::File::open(events).with_context(|| format!("opening {}", events.display()))?;
    let limits = storyline_parse::Limits::default();
    let mut parsed = Vec::new();
    for line in std::io::BufReader::new(f).split(b'\n') {
        if let Ok(p) = storyline_parse::parse_envelope(&line?, &limits) {
            parsed.push(p.event);
        }
    }
    let groups = storyline_correlate::baseline::five_tuple_sessions(&parsed, gap);
    Ok(parsed
        .iter()
        .zip(groups)
        .map(|(e, g)| (e.event.id.to_string(), g.to_string()))
        .collect())
}

pub fn score_groups(
    name: &str,
    true_of: &HashMap<String, String>,
    pred_of: &HashMap<String, String>,
) -> Scores {
    let mut cell: HashMap<(String, &str), u64> = HashMap::new();
    let mut pred_size: HashMap<String, u64> = HashMap::new();
    let mut true_size: HashMap<&str, u64> = HashMap::new();
    let mut missing = 0u64;
    for (e, t) in true_of {
        let p = match pred_of.get(e) {
            Some(p) => p.clone(),
            None => {
                missing += 1;
                format!("missing:{e}")
            }
        };
        *cell.entry((p.clone(), t.as_str())).or_default() += 1;
        *pred_size.entry(p).or_default() += 1;
        *true_size.entry(t.as_str()).or_default() += 1;
    }
    let pairs = |n: u64| n * n.saturating_sub(1) / 2;
    let tp: u64 = cell.values().map(|n| pairs(*n)).sum();
    let pp: u64 = pred_size.values().map(|n| pairs(*n)).sum();
    let tpairs: u64 = true_size.values().map(|n| pairs(*n)).sum();
    let precision = if pp == 0 { 1.0 } else { tp as f64 / pp as f64 };
    let recall = if tpairs == 0 {
        1.0
    } else {
        tp as f64 / tpairs as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    let exact = cell
        .iter()
        .filter(|((p, t), n)| pred_size[p] == **n && true_size[t] == **n)
        .count() as u64;
    Scores {
        name: name.to_string(),
        events: true_of.len() as u64,
        missing_events: missing,
        true_stories: true_size.len() as u64,
        predicted_stories: pred_size.len() as u64,
        precision,
        recall,
        f1,
        exact_story_share: if true_size.is_empty() {
            1.0
        } else {
            exact as f64 / true_size.len() as f64
        },
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let truth = load_truth(&a.truth)?;
    let mut all = vec![score_groups(
        "storyline",
        &truth,
        &load_stories(&a.stories)?,
    )];
    if let Some(ev) = &a.baseline_events {
        all.push(score_groups(
            "baseline-5-tuple",
            &truth,
            &baseline(ev, a.baseline_gap)?,
        ));
    }
    for s in all {
        if a.json {
            println!("{}", serde_json::to_string(&s)?);
        } else {
            println!(
                "{}: events {} (missing from stories: {}), true stories {}, predicted stories {}\n  pairwise precision {:.4}  recall {:.4}  F1 {:.4}  stories reproduced exactly {:.2}%",
                s.name, s.events, s.missing_events, s.true_stories, s.predicted_stories, s.precision, s.recall, s.f1, s.exact_story_share * 100.0
            );
        }
    }
    Ok(())
}
