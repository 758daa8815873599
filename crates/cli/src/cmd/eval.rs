//! `storyline eval`: how close published stories are to the generator's ground truth.
//!
//! Pairwise scores over event pairs: a pair is predicted when both events are in the same story (latest
//! version of each story id) and true when both are in the same true story. Events in the truth that no
//! story contains count as stories of one (they cost recall).

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
    /// Print the scores as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, serde::Serialize, PartialEq)]
pub struct Scores {
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

pub fn score(truth: &Path, stories: &Path) -> anyhow::Result<Scores> {
    let mut true_of: HashMap<String, String> = HashMap::new();
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
    let mut pred_of: HashMap<&str, usize> = HashMap::new();
    let mut predicted_stories = 0u64;
    for (i, (_, (_, ids))) in latest.iter().enumerate() {
        if !ids.is_empty() {
            predicted_stories += 1;
        }
        for e in ids {
            if true_of.contains_key(e.as_str()) {
                pred_of.insert(e.as_str(), i);
            }
        }
    }
    // Contingency counts between predicted and true stories.
    let mut cell: HashMap<(usize, &str), u64> = HashMap::new();
    let mut pred_size: HashMap<usize, u64> = HashMap::new();
    let mut true_size: HashMap<&str, u64> = HashMap::new();
    let mut missing = 0u64;
    let mut next_singleton = latest.len();
    for (e, t) in &true_of {
        let p = match pred_of.get(e.as_str()) {
            Some(p) => *p,
            None => {
                missing += 1;
                next_singleton += 1;
                next_singleton
            }
        };
        *cell.entry((p, t.as_str())).or_default() += 1;
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
    Ok(Scores {
        events: true_of.len() as u64,
        missing_events: missing,
        true_stories: true_size.len() as u64,
        predicted_stories,
        precision,
        recall,
        f1,
        exact_story_share: if true_size.is_empty() {
            1.0
        } else {
            exact as f64 / true_size.len() as f64
        },
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let s = score(&a.truth, &a.stories)?;
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!(
            "events {}  (missing from stories: {})\ntrue stories {}  predicted stories {}\npairwise precision {:.4}  recall {:.4}  F1 {:.4}\nstories reproduced exactly {:.2}%",
            s.events, s.missing_events, s.true_stories, s.predicted_stories, s.precision, s.recall, s.f1, s.exact_story_share * 100.0
        );
    }
    Ok(())
}
