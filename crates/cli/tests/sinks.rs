//! `[[sinks]]` end to end: `storyline run` delivers to an HTTP receiver and a CSV file while a dead sink's
//! backlog grows; `storyline sinks list | dead-letters | redrive` on what it left.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storyline_generate::{GenConfig, Generator};
use storyline_model::{Story, StoryId, Timestamp};

fn storyline(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A plain HTTP/1.1 receiver that answers 200 and keeps every body (keep-alive aware).
fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let b = bodies.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { break };
            let b = b.clone();
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap();
                            }
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    b.lock().unwrap().push(String::from_utf8(body).unwrap());
                    if w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (url, bodies)
}

fn write_sinks_config(dir: &Path, port: u16, sinks: &str) -> std::path::PathBuf {
    let cfg = format!(
        r#"tenant = "t"
data_dir = "{data}"
listen = "127.0.0.1:{port}"

[pipeline]
shards = 4
workers = 2
bucket = "200ms"
safety_delay = "300ms"
commit_interval = "200ms"
poll_interval = "50ms"
lease_ttl = "1s"

[pipeline.correlate]
gap = "2s"
allowed_lateness = "30s"

{sinks}
"#,
        data = dir.join("data").display(),
    );
    let path = dir.join("storyline.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

/// Kills the server if the test fails before stopping it.
struct Running(Option<Server>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.kill();
        }
    }
}

fn dead_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

#[test]
fn run_delivers_to_each_sink_while_a_dead_one_keeps_a_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (url, bodies) = receiver();
    let csv = dir.path().join("out/stories.csv");
    let config = write_sinks_config(
        dir.path(),
        port,
        &format!(
            r#"
[[sinks]]
name = "siem"
kind = "http"
url = "{url}"
encoding = "ocsf"

[[sinks]]
name = "archive"
kind = "file"
path = "{csv}"
encoding = "csv"

[[sinks]]
name = "dead"
kind = "elasticsearch"
url = "{dead}"
retry_initial = "50ms"
retry_max = "200ms"
"#,
            csv = csv.display(),
            dead = dead_url()
        ),
    );
    let (ok, out, err) = storyline(&["check", "--config", config.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("[[sinks]]"), "{out}");

    let mut server = Running(Some(Server::start(&config, port)));
    let base = server.0.as_ref().unwrap().base.clone();
    let gen = GenConfig {
        events: 600,
        seed: 5,
        start: Timestamp::now(),
        late: 0.0,
        large: 0.0,
        rate: 2000.0,
        ..GenConfig::default()
    };
    let body: String = Generator::new(&gen)
        .map(|g| format!("{}\n", g.envelope))
        .collect();
    let client = reqwest::blocking::Client::new();
    let r = client
        .post(format!("{base}/v1/events"))
        .body(body)
        .send()
        .unwrap();
    assert!(r.status().is_success());

    // Stories reach the HTTP receiver (OCSF arrays) and the CSV file.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ocsf = 0;
    while Instant::now() < deadline {
        ocsf = bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| {
                let v: serde_json::Value = serde_json::from_str(b).unwrap();
                let arr = v.as_array().unwrap().clone();
                assert!(arr
                    .iter()
                    .all(|e| e["metadata"]["product"]["name"] == "Storyline"));
                arr.len()
            })
            .sum::<usize>();
        if ocsf >= 50 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ocsf >= 50, "only {ocsf} OCSF events reached the receiver");
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert!(csv_text.starts_with("story_id,version,"), "{csv_text:.200}");
    assert!(csv_text.lines().count() > 50);

    // The dead sink counts its first retry once the first attempt's backoff is over: scrape until then.
    let scrape = || {
        client
            .get(format!("{base}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut metrics = scrape();
    while !metrics.contains("storyline_sink_retries_total{sink=\"dead\"}")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
        metrics = scrape();
    }
    assert!(
        metrics.contains("storyline_sink_deliveries_total{sink=\"siem\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("storyline_sink_retries_total{sink=\"dead\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("storyline_sink_failures_total{sink=\"dead\"}"),
        "{metrics}"
    );
    let dead_backlog: f64 = metrics
        .lines()
        .find(|l| l.starts_with("storyline_sink_backlog_bytes{sink=\"dead\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no backlog gauge for the dead sink: {metrics}"));
    assert!(dead_backlog > 0.0);

    // A graceful stop does not wait for the dead sink for long.
    let t = Instant::now();
    server.0.take().unwrap().terminate();
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());

    let (ok, out, err) = storyline(&[
        "sinks",
        "list",
        "--config",
        config.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    let row = |n: &str| rows.iter().find(|r| r["sink"] == n).unwrap().clone();
    assert_eq!(row("siem")["backlog_bytes"], 0);
    assert!(row("dead")["backlog_bytes"].as_u64().unwrap() > 0);
    assert_eq!(row("dead")["state"], "stopped");
    assert_eq!(row("dead")["kind"], "elasticsearch");
}

#[test]
fn sinks_commands_list_show_and_redrive_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_sinks_config(
        dir.path(),
        free_port(),
        &format!(
            "[[sinks]]\nname = \"siem\"\nkind = \"http\"\nurl = \"{}\"\n",
            dead_url()
        ),
    );
    let cfg = config.to_str().unwrap();
    // A dead letter as the delivery thread writes it after a 400.
    let sink_dir = dir.path().join("data/sinks/siem");
    let stories: Vec<Story> = (1..=3)
        .map(|n| Story {
            story_id: StoryId(n),
            version: 2,
            tenant: "t".into(),
            ..Default::default()
        })
        .collect();
    storyline_io::sink::backlog::write_dead_letter(
        &sink_dir.join("dead"),
        &storyline_io::sink::backlog::DeadLetter {
            file: String::new(),
            sink: "siem".into(),
            reason: "rejected".into(),
            error: "HTTP 400 Bad Request: mapping".into(),
            at: Timestamp::now().to_rfc3339(),
            attempts: 1,
            stories: 3,
            first_ids: stories
                .iter()
                .map(storyline_io::sink::encode::doc_id)
                .collect(),
        },
        &stories,
    )
    .unwrap();

    let (ok, out, err) = storyline(&["sinks", "list", "--config", cfg]);
    assert!(ok, "{err}");
    assert!(
        out.contains("siem") && out.contains("1 (3 st.)") && out.contains("stopped"),
        "{out}"
    );

    let (ok, out, err) = storyline(&["sinks", "dead-letters", "--config", cfg, "--sink", "siem"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("[rejected] 3 story version(s)") && out.contains("HTTP 400"),
        "{out}"
    );
    assert!(out.contains(&format!("{}-2", StoryId(1))), "{out}");

    let (ok, _, err) = storyline(&["sinks", "dead-letters", "--config", cfg, "--sink", "nope"]);
    assert!(
        !ok && err.contains("no sink named \"nope\"") && err.contains("siem"),
        "{err}"
    );

    let (ok, out, err) = storyline(&["sinks", "redrive", "--config", cfg, "--sink", "siem"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("1 dead letter(s), 3 story version(s) appended"),
        "{out}"
    );

    let (ok, out, err) = storyline(&["sinks", "list", "--config", cfg, "--json"]);
    assert!(ok, "{err}");
    let row: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(row["dead_letters"], 0);
    assert_eq!(row["redrive_pending"], 0);
    assert!(row["backlog_bytes"].as_u64().unwrap() > 0, "{row}");
}
