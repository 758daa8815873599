//! Zero loss, shown: events are posted over HTTP while the server is SIGKILLed and restarted several times.
//! Afterwards every acknowledged event is in exactly one story (latest versions), none twice, and no story
//! id changed under an event.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use storyline_generate::{GenConfig, Generator};
use storyline_model::Timestamp;

#[test]
fn acknowledged_events_survive_sigkill_in_exactly_one_story() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "");
    let gen = GenConfig {
        events: 4000,
        seed: 42,
        start: Timestamp::now(),
        late: 0.0,
        large: 0.0,
        rate: 300.0,
        ..GenConfig::default()
    };
    let lines: Vec<(String, String)> = Generator::new(&gen)
        .map(|g| (g.event_id, g.envelope))
        .collect();
    let batches: Vec<&[(String, String)]> = lines.chunks(50).collect();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut server = Server::start(&config, port);
    let mut next = 0usize;
    let kill_points = [10usize, 23, 37, 52, 66];
    let mut kills = 0;
    while next < batches.len() {
        if kills < kill_points.len() && next == kill_points[kills] {
            // Kill while a request is in flight: its batch may or may not be stored, and is not acknowledged.
            let body: String = batches[next]
                .iter()
                .map(|(_, l)| format!("{l}\n"))
                .collect();
            let url = format!("{}/v1/events", server.base);
            let c = client.clone();
            let inflight = std::thread::spawn(move || {
                c.post(url).body(body).send().map(|r| r.status().as_u16())
            });
            std::thread::sleep(Duration::from_millis(2));
            server.kill();
            let _ = inflight.join();
            kills += 1;
            server = Server::start(&config, port);
            continue; // the client retries the same batch: re-sent events must dedupe
        }
        let body: String = batches[next]
            .iter()
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        match client
            .post(format!("{}/v1/events", server.base))
            .body(body)
            .send()
        {
            Ok(r) if r.status().is_success() => {
                let report: serde_json::Value = r.json().unwrap();
                assert_eq!(report["rejected"], 0, "{report}");
                assert_eq!(
                    report["accepted"].as_u64().unwrap() as usize,
                    batches[next].len()
                );
                acked.extend(batches[next].iter().map(|(id, _)| id.clone()));
                next += 1;
            }
            other => panic!("ingest failed without a kill: {other:?}"),
        }
    }
    assert_eq!(kills, kill_points.len());

    // Wait until every acknowledged event is in a published story (sessions close 2 s after going quiet).
    let out = dir.path().join("stories.ndjson");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let published: BTreeSet<String> = latest(&read_stories(&out))
            .values()
            .flat_map(event_ids)
            .collect();
        if acked.is_subset(&published) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged events never reached a story",
            acked.difference(&published).count()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.terminate();

    check_exactly_one_story(&read_stories(&out), &acked);
}
