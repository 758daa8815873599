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

/// A temporary directory holding `storyline generate` output of `events` events with `seed`, and its path.
fn generated(events: &str, seed: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    run(&["generate", "--events", events, "--seed", seed, "--out", &d]);
    (dir, d)
}

#[test]
fn generate_replay_eval_and_every_event_lands_in_one_story() {
    let (_dir, d) = generated("3000", "3");
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

/// `--publish final` (replay's default) sends each story once its times are final; `on-close` also sends
/// the versions before (the pipeline and engine tests show which). Both end with the same stories.
#[test]
fn replay_ends_with_the_same_stories_whenever_it_publishes() {
    let (_dir, d) = generated("3000", "5");
    let events = format!("{d}/events.ndjson");
    let groups = |mode: &str| {
        let out = format!("{d}/{mode}.ndjson");
        run(&[
            "replay",
            "--input",
            &events,
            "--output",
            &out,
            "--publish",
            mode,
        ]);
        latest(&read_stories(std::path::Path::new(&out)))
            .values()
            .map(event_ids)
            .filter(|ids| !ids.is_empty())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let fin = groups("final");
    assert_eq!(fin.iter().map(|g| g.len()).sum::<usize>(), 3000);
    assert_eq!(fin, groups("on-close"));
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

/// Replays one log (`extra`: e.g. `--format` and `--sensor` for plain records) into a fresh data dir: the
/// events in the latest story versions, and the dead letters as `storyline dead-letters list --json`
/// prints them.
fn replay_one_log(
    dir: &std::path::Path,
    name: &str,
    text: &str,
    extra: &[&str],
) -> (usize, String) {
    let input = dir.join(name);
    std::fs::write(&input, text).unwrap();
    let stories = dir.join("stories.ndjson");
    let data = dir.join("data");
    let mut args = vec![
        "replay",
        "--input",
        input.to_str().unwrap(),
        "--output",
        stories.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args);
    let all = read_stories(&stories);
    let ids: std::collections::BTreeSet<String> =
        latest(&all).values().flat_map(event_ids).collect();
    let dl = run(&[
        "dead-letters",
        "list",
        "--data-dir",
        data.to_str().unwrap(),
        "--json",
    ]);
    (ids.len(), String::from_utf8_lossy(&dl.stdout).into_owned())
}

/// An nfdump csv export larger than one replay chunk, whose header (columns in a non-default order)
/// stands only on its first line: the records of later chunks are read with it, not in nfdump's default
/// column order (which would put an address where the timestamp is and dead-letter them).
#[test]
fn a_long_nfdump_csv_replays_with_the_header_of_its_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../parse/tests/fixtures/nfdump.csv"),
    )
    .unwrap();
    let mut lines = fixture.lines();
    let mut header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let record: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!((header[0], header[3]), ("ts", "sa"));
    header.swap(0, 3);
    let mut csv = header.join(",");
    csv.push('\n');
    let records = 16_000;
    for i in 0..records {
        let mut c = record.clone();
        let ts = format!(
            "2026-11-21 10:{:02}:{:02}.{:03}",
            i / 6000,
            (i / 100) % 60,
            i % 1000
        );
        let port = (1024 + i).to_string();
        c[0] = &ts;
        c[5] = &port;
        c.swap(0, 3);
        csv.push_str(&c.join(","));
        csv.push('\n');
    }
    assert!(
        csv.len() > 4 << 20,
        "spans more than one 4 MiB chunk: {}",
        csv.len()
    );
    let (events, letters) = replay_one_log(
        dir.path(),
        "flows.csv",
        &csv,
        &["--format", "nfdump", "--sensor", "border-router"],
    );
    assert_eq!(letters, "", "no line was dead-lettered");
    assert_eq!(events, records, "every record became an event");
}

/// A Zeek TSV log larger than one replay chunk, made of two concatenated logs with different column
/// orders: every record is read with the header in force where it stands.
#[test]
fn a_long_zeek_tsv_log_replays_with_its_headers() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../parse/tests/fixtures/zeek_conn.tsv"),
    )
    .unwrap();
    let header: Vec<&str> = fixture
        .lines()
        .filter(|l| l.starts_with("#fields") || (l.starts_with('#') && !l.starts_with("#close")))
        .collect();
    let record = fixture.lines().find(|l| !l.starts_with('#')).unwrap();
    let cols: Vec<&str> = record.split('\t').collect();
    let mut log = String::new();
    let per_part = 20_000;
    for part in 0..2 {
        // The second part lists its columns with `uid` and `ts` swapped.
        for h in &header {
            if part == 1 && h.starts_with("#fields") {
                log.push_str(&h.replacen("ts\tuid", "uid\tts", 1));
            } else if part == 1 && h.starts_with("#types") {
                log.push_str(&h.replacen("time\tstring", "string\ttime", 1));
            } else {
                log.push_str(h);
            }
            log.push('\n');
        }
        for i in 0..per_part {
            let mut c = cols.clone();
            let uid = format!("C{part}x{i}");
            let port = (1024 + i % 60000).to_string();
            let ts = format!("{}.{:06}", 1_795_255_200 + i / 10, i % 1_000_000);
            c[0] = &ts;
            c[1] = &uid;
            c[3] = &port;
            if part == 1 {
                c.swap(0, 1);
            }
            log.push_str(&c.join("\t"));
            log.push('\n');
        }
        log.push_str("#close\t2026-11-21-11-00-00\n");
    }
    assert!(
        log.len() > 4 << 20,
        "spans more than one 4 MiB chunk: {}",
        log.len()
    );
    let (events, letters) = replay_one_log(
        dir.path(),
        "conn.log",
        &log,
        &["--format", "zeek_tsv", "--sensor", "zeek-core"],
    );
    assert_eq!(events, 2 * per_part, "every record became an event");
    assert_eq!(letters, "", "no line was dead-lettered");
}

/// An envelope file larger than several replay chunks, with malformed lines scattered through it (the last
/// one without a line end): each is dead-lettered under its own line number, and every good line becomes
/// an event — whatever chunk boundary it falls on.
#[test]
fn malformed_lines_of_a_long_replay_are_dead_lettered_with_their_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let good = |i: usize| {
        serde_json::json!({
            "format": "ecs",
            "sensor": "edr",
            "record": {
                "@timestamp": format!("2026-11-21T10:{:02}:{:02}.{:03}Z", (i / 60_000) % 60, (i / 1000) % 60, i % 1000),
                "event": {"id": format!("ev-{i}")},
                "source": {"ip": "10.0.0.1", "port": 1024 + i % 60_000},
                "destination": {"ip": "10.0.0.2", "port": 443},
                "network": {"transport": "tcp"},
                // Padding makes lines long enough to span several chunks with few records.
                "message": "x".repeat(900),
            }
        })
        .to_string()
    };
    let total = 16_000;
    let bad: std::collections::BTreeSet<usize> = [1, 4_100, 4_101, 9_999, total].into();
    let mut text = String::new();
    for line in 1..=total {
        if bad.contains(&line) {
            text.push_str(&format!("{{\"broken\": {line}"));
        } else {
            text.push_str(&good(line));
        }
        if line < total {
            text.push('\n');
        }
    }
    assert!(
        text.len() > 12 << 20,
        "spans several 4 MiB chunks: {}",
        text.len()
    );
    let (events, letters) = replay_one_log(dir.path(), "envelopes.ndjson", &text, &[]);
    let lines: std::collections::BTreeSet<usize> = letters
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["line"].as_u64().unwrap() as usize
        })
        .collect();
    assert_eq!(lines, bad, "{letters}");
    assert_eq!(events, total - bad.len());
}

/// `storyline bench correlate` times the engine over a recorded input and reports every event it read,
/// with the versions each run published: the same count on every run (each starts from an empty engine).
#[test]
fn bench_correlate_runs_the_engine_over_an_input() {
    let (_dir, d) = generated("2000", "5");
    let mut input = std::fs::read_to_string(format!("{d}/events.ndjson")).unwrap();
    input.push_str("{not json\n");
    let path = format!("{d}/with-a-bad-line.ndjson");
    std::fs::write(&path, input).unwrap();
    let out = run(&[
        "bench",
        "correlate",
        "--input",
        &path,
        "--runs",
        "2",
        "--cycle-events",
        "500",
        "--warm-ahead",
        "0,4",
        "--final-flush",
        "move,copy",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for ahead in [0, 4] {
        for flush in ["move", "copy"] {
            assert!(
                stdout.contains("correlate: 2000 events, median")
                    && stdout.contains(&format!(
                        "on one thread (warm ahead {ahead}, final flush {flush})"
                    )),
                "{stdout}"
            );
        }
    }
    assert!(
        stderr.contains("2000 events parsed (1 rejected)"),
        "{stderr}"
    );
    let versions = |flush: &str| -> Vec<u64> {
        stderr
            .lines()
            .filter(|l| l.starts_with("run ") && l.contains(&format!("final flush {flush})")))
            .map(|l| {
                let count = l.rsplit("; ").next().unwrap();
                count.split(' ').next().unwrap().parse().unwrap()
            })
            .collect()
    };
    let (moved, copied) = (versions("move"), versions("copy"));
    // Two runs of each warm-ahead setting; looking entries up ahead changes nothing in the result.
    assert_eq!((moved.len(), copied.len()), (4, 4), "{stderr}");
    assert!(moved.iter().all(|v| *v == moved[0]), "{stderr}");
    assert!(copied.iter().all(|v| *v == copied[0]), "{stderr}");
    assert!(moved[0] > 0, "{stderr}");
    // Moving the stories into their last versions publishes as many as copying them.
    assert_eq!(moved[0], copied[0], "{stderr}");
}

/// `storyline bench replay` runs whole replays as child processes, alternating with a baseline binary,
/// and reports every run with the events the replay read, its CPU time and its peak memory.
#[test]
fn bench_replay_times_whole_replays_against_a_baseline() {
    let (_dir, d) = generated("1500", "8");
    let input = format!("{d}/events.ndjson");
    let work = format!("{d}/work");
    let out = run(&[
        "bench",
        "replay",
        "--input",
        &input,
        "--runs",
        "2",
        "--baseline",
        bin(),
        "--pause",
        "0s",
        "--work-dir",
        &work,
        "--json",
        "--",
        "--shards",
        "4",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let builds = v["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 2, "{v}");
    for b in builds {
        let runs = b["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2, "{v}");
        for r in runs {
            assert_eq!(r["events"], 1500, "{v}");
            assert!(r["versions"].as_u64().unwrap() > 0, "{v}");
            assert!(r["wall_s"].as_f64().unwrap() > 0.0, "{v}");
            assert!(r["user_s"].as_f64().unwrap() > 0.0, "{v}");
            assert!(r["peak_rss_mb"].as_f64().unwrap() > 1.0, "{v}");
        }
        assert!(b["events_per_s"].as_f64().unwrap() > 0.0, "{v}");
    }
    assert_eq!(v["pairs"]["pairs"], 2, "{v}");
    let left = std::fs::read_dir(&work)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("stories-")
        })
        .count();
    assert_eq!(left, 0, "each run's stories are removed after it");
}

/// A replay that fails is named with its run and the lines it printed last.
#[test]
fn bench_replay_names_the_failing_replay() {
    let out = Command::new(bin())
        .args([
            "bench",
            "replay",
            "--input",
            "/nonexistent/x.ndjson",
            "--runs",
            "1",
            "--pause",
            "0s",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("run 1 of current")
            && err.contains("the replay failed with exit code")
            && err.contains("/nonexistent/x.ndjson"),
        "{err}"
    );
}
