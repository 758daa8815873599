//! `storyline dead-letters replay` against the store of a real `storyline run`: records dead-lettered over
//! HTTP and syslog are replayed once the format or the sensor mapping is fixed, land in stories, and a
//! second replay changes nothing.

mod common;

use common::{bin, event_ids, free_port, latest, read_stories, write_config, Server};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn storyline(args: &[&str], config: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ecs(id: &str, port: u16) -> serde_json::Value {
    serde_json::json!({
        "@timestamp": storyline_model::Timestamp::now().to_rfc3339(),
        "event": {"id": id},
        "source": {"ip": "10.1.0.1", "port": port}, "destination": {"ip": "10.1.0.2", "port": 443},
        "network": {"transport": "tcp"}
    })
}

fn post(base: &str, query: &str, body: String) -> serde_json::Value {
    let r = reqwest::blocking::Client::new()
        .post(format!("{base}/v1/events{query}"))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().unwrap()
}

fn letters(config: &Path, all: bool) -> Vec<serde_json::Value> {
    let mut args = vec!["dead-letters", "list", "--json"];
    if all {
        args.push("--all");
    }
    ok(storyline(&args, config))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_config_with_syslog(dir: &Path, port: u16, syslog: u16, hosts: &str) -> std::path::PathBuf {
    write_config(
        dir,
        port,
        &format!(
            "\n[[sources.syslog]]\nlisten = \"127.0.0.1:{syslog}\"\nprotocol = \"tcp\"\nformat = \"ecs\"\n\
             hostname_sensors = {{ {hosts} }}\n"
        ),
    )
}

#[test]
fn fixed_records_are_replayed_into_stories_and_a_second_replay_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (port, syslog) = (free_port(), free_port());
    let config = write_config_with_syslog(dir.path(), port, syslog, "\"fw-a\" = \"fw-a\"");
    let server = Server::start(&config, port);

    let env = |format: &str, id: &str, p: u16| {
        serde_json::json!({"format": format, "sensor": "edr-1", "record": ecs(id, p)}).to_string()
    };
    let r = post(
        &server.base,
        "",
        format!(
            "{}\n{}\n{}\n{{oops\n",
            env("ecs", "good-1", 40001),
            env("klingon", "kl-1", 40002),
            env("klingon", "kl-2", 40003)
        ),
    );
    assert_eq!(
        (r["accepted"].as_u64(), r["rejected"].as_u64()),
        (Some(1), Some(3))
    );
    // ECS records sent as if they were Zeek logs: every one rejected.
    let plain: Vec<String> = (1..=3)
        .map(|i| ecs(&format!("pl-{i}"), 40010 + i).to_string())
        .collect();
    let r = post(&server.base, "?format=zeek&sensor=edr-2", plain.join("\n"));
    assert_eq!(r["rejected"].as_u64(), Some(3), "{r}");
    // A syslog message from a host the listener has no sensor for.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", syslog)).unwrap();
    writeln!(tcp, "<134>Nov 21 10:00:00 fw-b app: {}", ecs("sy-1", 40020)).unwrap();
    drop(tcp);
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The service holds the embedded store, so its own API tells when the syslog letter is in.
        let v: serde_json::Value = client
            .get(format!("{}/v1/tenants/t/dead-letters", server.base))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if v["dead_letters"].as_array().unwrap().len() == 7 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the syslog letter never came: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The running service holds the data directory: replay says so rather than waiting or corrupting.
    let locked = storyline(&["dead-letters", "replay"], &config);
    assert!(!locked.status.success());
    let err = String::from_utf8_lossy(&locked.stderr);
    assert!(err.contains("stop it first"), "{err}");
    server.terminate();

    let before = letters(&config, false);
    assert_eq!(before.len(), 7);
    let plain: Vec<_> = before.iter().filter(|l| l["format"] == "zeek").collect();
    assert_eq!(plain.len(), 3);
    assert!(plain
        .iter()
        .all(|l| l["sensor"] == "edr-2" && l["source"] == "http sensor=\"edr-2\""));
    let code_of = |id: &str| {
        before
            .iter()
            .find(|l| l["raw"]["text"].as_str().unwrap().contains(id))
            .map(|l| l["code"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(code_of("kl-1"), "unknown_format");
    assert_eq!(code_of("sy-1"), "unknown_sensor");

    // Without a fix nothing parses, and nothing is written.
    let dry = ok(storyline(&["dead-letters", "replay", "--json"], &config));
    let s: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(
        (s["tried"].as_u64(), s["replayed"].as_u64()),
        (Some(7), Some(0)),
        "{s}"
    );

    // Fix 1: the envelopes named a format that does not exist; they were ECS.
    let out = ok(storyline(
        &[
            "dead-letters",
            "replay",
            "--code",
            "unknown_format",
            "--format",
            "ecs",
        ],
        &config,
    ));
    assert!(
        out.starts_with("2 replayed, 0 still failing (2 tried"),
        "{out}"
    );
    // Fix 2: the plain records were ECS, not Zeek; the broken line stays, with its reason.
    let out = ok(storyline(
        &["dead-letters", "replay", "--format", "ecs"],
        &config,
    ));
    assert!(
        out.starts_with("3 replayed, 2 still failing (5 tried, 2 replayed before)"),
        "{out}"
    );
    assert!(
        out.contains("unknown_sensor: 1") && out.contains("malformed_json: 1"),
        "{out}"
    );
    // Fix 3: the listener now maps fw-b.
    write_config_with_syslog(
        dir.path(),
        port,
        syslog,
        "\"fw-a\" = \"fw-a\", \"fw-b\" = \"fw-b\"",
    );
    let out = ok(storyline(&["dead-letters", "replay"], &config));
    assert!(out.starts_with("1 replayed, 1 still failing"), "{out}");

    let left = letters(&config, false);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["code"], "malformed_json");
    let all = letters(&config, true);
    assert_eq!(all.len(), 7);
    assert_eq!(all.iter().filter(|l| l["replayed"] == true).count(), 6);

    // Again: nothing to do, nothing written.
    let out = ok(storyline(&["dead-letters", "replay"], &config));
    assert!(
        out.starts_with("0 replayed, 1 still failing (1 tried, 6 replayed before)"),
        "{out}"
    );
    assert_eq!(letters(&config, true), all);

    // The service picks the replayed events up: each in exactly one story.
    let server = Server::start(&config, port);
    let want: BTreeSet<&str> = ["good-1", "kl-1", "kl-2", "pl-1", "pl-2", "pl-3", "sy-1"].into();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stories = read_stories(&dir.path().join("stories.ndjson"));
        let mut seen: Vec<String> = Vec::new();
        for s in latest(&stories).values() {
            seen.extend(event_ids(s));
        }
        let got: BTreeSet<&str> = seen
            .iter()
            .filter_map(|e| want.iter().copied().find(|w| e.ends_with(w)))
            .collect();
        if got == want {
            assert_eq!(seen.len(), want.len(), "{seen:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replayed events not in stories: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.terminate();
}

#[path = "common/pg.rs"]
mod pg;

#[test]
fn replay_on_postgres_while_the_service_runs() {
    let Some(url) = pg::test_server() else { return };
    let schema = pg::FreshSchema::new(&url, "sl_replay");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = pg::write_pg_config(dir.path(), port, &url, &schema.schema, 1, 1);
    let server = pg::Guarded(Some(Server::start(&config, port)));
    let base = server.get().base.clone();
    let line =
        serde_json::json!({"format": "klingon", "sensor": "edr-1", "record": ecs("pg-1", 40100)});
    let r = post(&base, "", format!("{line}\n{{oops\n"));
    assert_eq!(r["rejected"].as_u64(), Some(2), "{r}");

    // PostgreSQL is shared: the running service picks the replayed event up.
    let out = ok(storyline(
        &["dead-letters", "replay", "--format", "ecs"],
        &config,
    ));
    assert!(out.starts_with("1 replayed, 1 still failing"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stories = read_stories(&dir.path().join("stories.ndjson"));
        if latest(&stories)
            .values()
            .any(|s| event_ids(s).iter().any(|e| e.ends_with("pg-1")))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replayed event is in no story"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = ok(storyline(&["dead-letters", "replay"], &config));
    assert!(
        out.starts_with("0 replayed, 1 still failing (1 tried, 1 replayed before)"),
        "{out}"
    );
    let left = letters(&config, false);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["raw"]["text"], "{oops");
    // The service's own listing leaves the replayed letter out too.
    let api: serde_json::Value =
        reqwest::blocking::get(format!("{base}/v1/tenants/t/dead-letters"))
            .unwrap()
            .json()
            .unwrap();
    let listed = api["dead_letters"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{api}");
    assert_eq!(listed[0]["raw"], "{oops");
    drop(server);
}
