//! The HTTP API against a real server on loopback.

mod common;

use common::{envelope, Running};
use flate2::write::GzEncoder;
use std::io::Write;
use std::time::Duration;

fn start(max_record: usize) -> Running {
    common::start_with(|cfg| cfg.limits.max_record_bytes = max_record)
}

fn post(r: &Running, path: &str, body: Vec<u8>, gzip: bool) -> reqwest::blocking::Response {
    let c = reqwest::blocking::Client::new();
    let mut req = c.post(format!("{}{path}", r.base)).body(body);
    if gzip {
        req = req.header("Content-Encoding", "gzip");
    }
    req.send().unwrap()
}

#[test]
fn envelopes_are_acknowledged_with_per_line_errors_and_become_stories() {
    let r = start(1 << 16);
    let body = format!(
        "{}\n{{broken\n{}\n",
        envelope("a", 1000),
        envelope("b", 1000)
    );
    let resp = post(&r, "/v1/events", body.into_bytes(), false);
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().unwrap();
    assert_eq!(v["accepted"], 2);
    assert_eq!(v["rejected"], 1);
    assert_eq!(v["errors"][0]["line"], 2);
    assert_eq!(v["errors"][0]["code"], "malformed_json");
    assert!(v["errors"][0]["reason"].as_str().unwrap().contains("JSON"));
    // The two events share a flow: one story, published once the session is quiet.
    let mut stories = Vec::new();
    for _ in 0..200 {
        stories.extend(r.sink.take());
        if !stories.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(stories.len(), 1);
    assert_eq!(stories[0].event_count, 2);
    // The engine's counts are exported for operators.
    let metrics = reqwest::blocking::get(format!("{}/metrics", r.base))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("storyline_correlated_events_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("storyline_too_late_events_total"),
        "{metrics}"
    );
    // From the last event's arrival to publication: the gap (0.5 s here) plus reading and committing.
    let median = metrics
        .lines()
        .find(|l| {
            l.starts_with("storyline_story_publish_latency_seconds{")
                && l.contains("tenant=\"t\"")
                && l.contains("quantile=\"0.5\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no publish latency: {metrics}"));
    assert!((0.0..30.0).contains(&median), "{median}");
    assert!(metrics.contains("storyline_story_event_time_latency_seconds"));
}

#[test]
fn gzip_bodies_and_plain_records_are_accepted() {
    let r = start(1 << 16);
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(format!("{}\n", envelope("g", 2000)).as_bytes())
        .unwrap();
    let resp = post(&r, "/v1/events", gz.finish().unwrap(), true);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<serde_json::Value>().unwrap()["accepted"], 1);

    let vpc = "2 123456789010 eni-1235b8ca123456789 10.0.1.5 203.0.113.5 49152 443 6 20 4249 1620140661 1620140721 ACCEPT OK\n";
    let resp = post(
        &r,
        "/v1/events?format=aws_vpc&sensor=vpc",
        vpc.as_bytes().to_vec(),
        false,
    );
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<serde_json::Value>().unwrap()["accepted"], 1);

    let resp = post(
        &r,
        "/v1/events?format=aws_vpc",
        vpc.as_bytes().to_vec(),
        false,
    );
    assert_eq!(resp.status(), 400, "format without sensor is refused");
}

#[test]
fn bad_bodies_get_clear_status_codes() {
    let r = start(400);
    let resp = post(&r, "/v1/events", b"not gzip".to_vec(), true);
    assert_eq!(resp.status(), 400);
    let c = reqwest::blocking::Client::new();
    let resp = c
        .post(format!("{}/v1/events", r.base))
        .header("Content-Encoding", "br")
        .body("x")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 415);
    let resp = post(&r, "/v1/events", vec![b'x'; 2 << 20], false);
    assert_eq!(resp.status(), 413);
    // A record over max_record_bytes is rejected on its own line, the rest goes in.
    let big = envelope(&"x".repeat(500), 1);
    let resp = post(
        &r,
        "/v1/events",
        format!("{big}\n{}\n", envelope("ok", 2)).into_bytes(),
        false,
    );
    let v: serde_json::Value = resp.json().unwrap();
    assert_eq!(
        (v["accepted"].as_u64(), v["errors"][0]["code"].as_str()),
        (Some(1), Some("oversized"))
    );
}

#[test]
fn health_and_metrics_answer() {
    let r = start(1 << 16);
    post(
        &r,
        "/v1/events",
        format!("{}\n", envelope("m", 3000)).into_bytes(),
        false,
    );
    let health = reqwest::blocking::get(format!("{}/healthz", r.base)).unwrap();
    assert_eq!(health.status(), 200);
    let text = reqwest::blocking::get(format!("{}/metrics", r.base))
        .unwrap()
        .text()
        .unwrap();
    assert!(text.contains("storyline_events_accepted_total"), "{text}");
}
