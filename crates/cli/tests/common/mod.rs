//! Helpers for tests that run the real `storyline` binary.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_storyline")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A config for fast tests: small buckets, short gap, short leases.
pub fn write_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let cfg = format!(
        r#"tenant = "t"
data_dir = "{data}"
listen = "127.0.0.1:{port}"

[output]
kind = "file"
path = "{out}"

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
{extra}
"#,
        data = dir.join("data").display(),
        out = dir.join("stories.ndjson").display(),
    );
    let path = dir.join("storyline.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub fn start(config: &Path, port: u16) -> Server {
        let child = Command::new(bin())
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting storyline run");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if client
                .get(format!("{base}/healthz"))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            assert!(Instant::now() < deadline, "server did not become healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, base }
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    pub fn terminate(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "graceful shutdown failed: {status}");
    }
}

/// Every complete line of a story file, parsed. A last line without its newline is one the server is
/// writing right now (or was writing when killed): it is not a story yet.
pub fn read_stories(path: &Path) -> Vec<serde_json::Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("story line is not JSON ({e}): {l}"))
        })
        .collect()
}

/// Latest version of each story id.
pub fn latest(stories: &[serde_json::Value]) -> BTreeMap<String, serde_json::Value> {
    let mut m: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for s in stories {
        let id = s["story_id"].as_str().unwrap().to_string();
        let v = s["version"].as_u64().unwrap();
        if m.get(&id)
            .is_none_or(|o| o["version"].as_u64().unwrap() < v)
        {
            m.insert(id, s.clone());
        }
    }
    m
}

pub fn event_ids(story: &serde_json::Value) -> BTreeSet<String> {
    story["event_ids"]
        .as_array()
        .map(|a| a.iter().map(|e| e.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Every acknowledged event in exactly one story (latest versions), none twice, no story id changed.
pub fn check_exactly_one_story(all: &[serde_json::Value], acked: &BTreeSet<String>) {
    let latest = latest(all);
    let mut home: BTreeMap<String, String> = BTreeMap::new();
    for (id, s) in &latest {
        for e in event_ids(s) {
            if let Some(other) = home.insert(e.clone(), id.clone()) {
                let versions: Vec<String> = all
                    .iter()
                    .filter(|s| s["story_id"] == other.as_str() || s["story_id"] == id.as_str())
                    .map(|s| format!("{} v{} {:?}", s["story_id"], s["version"], event_ids(s)))
                    .collect();
                panic!(
                    "event {e} is in two stories: {other} and {id}; their versions:\n{}",
                    versions.join("\n")
                );
            }
        }
    }
    for e in acked {
        assert!(home.contains_key(e), "acknowledged event {e} is missing");
    }
    for s in all {
        let id = s["story_id"].as_str().unwrap();
        for e in event_ids(s) {
            let now_in = &home[&e];
            let merged = latest[id].get("merged_into").is_some();
            assert!(
                now_in == id || merged,
                "event {e} moved from story {id} to {now_in}"
            );
        }
    }
}
