//! The binary's commands end to end: generate → replay → eval, and bad input kept and listed.

mod common;

use common::*;
use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    let out = Command::new(bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "storyline {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn generate_replay_eval_and_every_event_lands_in_one_story() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    run(&["generate", "--events", "3000", "--seed", "3", "--out", d]);
    let events = format!("{d}/events.ndjson");
    let stories = format!("{d}/stories.ndjson");
    let truth = format!("{d}/truth.ndjson");
    run(&[
        "replay", "--input", &events, "--output", &stories, "--shards", "4",
    ]);
    let latest = latest(&read_stories(std::path::Path::new(&stories)));
    let mut seen = std::collections::BTreeSet::new();
    for s in latest.values() {
        for e in event_ids(s) {
            assert!(seen.insert(e.clone()), "{e} in two stories");
        }
    }
    assert_eq!(seen.len(), 3000);
    let out = run(&["eval", "--truth", &truth, "--stories", &stories, "--json"]);
    let scores: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(scores["events"], 3000);
    assert_eq!(scores["missing_events"], 0);
    // Generated traffic with skew, NAT, reversed reports, DNS and late events: the stories match the truth
    // (the 5-tuple baseline scores ~0.58; the quality figures themselves are in docs/correlation.md).
    assert!(scores["f1"].as_f64().unwrap() > 0.97, "{scores}");
}

#[test]
fn bad_lines_are_dead_lettered_with_their_line_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let input = format!("{d}/in.ndjson");
    let good = r#"{"format":"ecs","sensor":"s","record":{"@timestamp":"2026-11-21T10:00:00Z","event":{"id":"ok"}}}"#;
    let no_time = r#"{"format":"ecs","sensor":"s","record":{"event":{"id":"x"}}}"#;
    let unknown = r#"{"format":"klingon","sensor":"s","record":{}}"#;
    std::fs::write(
        &input,
        format!("{good}\n{no_time}\n{{oops\n{unknown}\n\u{0}\u{1}binary\n"),
    )
    .unwrap();
    let data = format!("{d}/data");
    let stories = format!("{d}/stories.ndjson");
    let out = run(&[
        "replay",
        "--input",
        &input,
        "--output",
        &stories,
        "--data-dir",
        &data,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("replayed 1 events (4 rejected"), "{stderr}");
    let out = run(&["dead-letters", "list", "--data-dir", &data, "--json"]);
    let letters: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(u64, &str)> = letters
        .iter()
        .map(|l| (l["line"].as_u64().unwrap(), l["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "missing_field"),
            (3, "malformed_json"),
            (4, "unknown_format"),
            (5, "malformed_json")
        ]
    );
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("@timestamp"),
        "{}",
        letters[0]
    );
    assert_eq!(letters[2]["raw"]["text"], unknown);
    assert!(letters[0]["source"]
        .as_str()
        .unwrap()
        .ends_with("in.ndjson"));
    let text = run(&["dead-letters", "list", "--data-dir", &data]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("line 3"));
}

#[test]
fn check_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "tenant = \"ok\"\n[pipeline]\nshardz = 3\n").unwrap();
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("shardz"), "{err}");
}
