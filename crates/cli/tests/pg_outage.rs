//! PostgreSQL unavailable, at start and mid-stream: `storyline run` starts without its database (live,
//! not ready, ingest 503 with Retry-After and the reason), becomes ready when the database comes up, answers
//! 503 while the database is stopped (`pg_ctl stop -m fast`) under a stream of posts, and takes posts again
//! after it restarts. At the end every acknowledged event is in exactly one story.
//!
//! The test runs a throwaway PostgreSQL cluster of its own (initdb/pg_ctl, as the `postgres` user when run
//! as root), because it stops it. Without the server programs it skips, unless STORYLINE_REQUIRE_PG=1.

mod common;
#[path = "common/pg.rs"]
mod pg;

use common::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storyline_generate::{GenConfig, Generator};
use storyline_model::Timestamp;

fn get(client: &reqwest::blocking::Client, url: &str) -> (u16, String) {
    let r = client.get(url).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn wait_ready(client: &reqwest::blocking::Client, base: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = get(client, &format!("{base}/readyz"));
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready after {within:?}: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn database_outages_answer_503_and_lose_nothing() {
    let Some(mut cluster) = pg::LocalCluster::init() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = pg::write_pg_config(dir.path(), port, &cluster.url(), "storyline", 2, 2);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    // 1. The database is down at start: the process starts (live), is not ready, and refuses ingest.
    let mut server = pg::Guarded(Some(Server::start(&config, port)));
    let (status, body) = get(&client, &format!("{}/readyz", server.get().base));
    assert_eq!(status, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], false, "{body}");
    assert_eq!(ready["store"], "postgres", "{body}");
    let reason = ready["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("PostgreSQL"), "{body}");
    let r = client
        .post(format!("{}/v1/events", server.get().base))
        .body("{\"format\":\"ecs\",\"sensor\":\"s\",\"record\":{}}\n")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let e: serde_json::Value = r.json().unwrap();
    assert!(
        e["error"].as_str().unwrap().contains("store unavailable")
            && e["error"].as_str().unwrap().contains("PostgreSQL"),
        "{e}"
    );

    // 2. The database comes up: the process becomes ready by itself.
    cluster.start();
    wait_ready(&client, &server.get().base, Duration::from_secs(30));

    // 3. A stream of posts; the database stops and restarts under it, twice.
    let gen = GenConfig {
        events: 4000,
        seed: 11,
        start: Timestamp::now(),
        late: 0.0,
        large: 0.0,
        rate: 300.0,
        ..GenConfig::default()
    };
    let lines: Vec<(String, String)> = Generator::new(&gen)
        .map(|g| (g.event_id, g.envelope))
        .collect();
    let batches: Vec<Vec<(String, String)>> = lines.chunks(40).map(|c| c.to_vec()).collect();
    let acked = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let posted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let refused_outside = Arc::new(AtomicU64::new(0));
    let outage = Arc::new(AtomicBool::new(false));
    let poster = {
        let (acked, posted, refused, outage, refused_outside) = (
            acked.clone(),
            posted.clone(),
            refused.clone(),
            outage.clone(),
            refused_outside.clone(),
        );
        let client = client.clone();
        let url = format!("{}/v1/events", server.get().base);
        std::thread::spawn(move || {
            for batch in &batches {
                let body: String = batch.iter().map(|(_, l)| format!("{l}\n")).collect();
                let deadline = Instant::now() + Duration::from_secs(90);
                loop {
                    let r = client.post(&url).body(body.clone()).send().unwrap();
                    match r.status().as_u16() {
                        200 => {
                            let report: serde_json::Value = r.json().unwrap();
                            assert_eq!(report["rejected"], 0, "{report}");
                            assert_eq!(report["accepted"].as_u64().unwrap() as usize, batch.len());
                            acked
                                .lock()
                                .unwrap()
                                .extend(batch.iter().map(|(id, _)| id.clone()));
                            posted.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        503 => {
                            assert!(
                                r.headers().get("retry-after").is_some(),
                                "503 without Retry-After"
                            );
                            let e: serde_json::Value = r.json().unwrap();
                            assert!(
                                e["error"].as_str().unwrap().contains("store unavailable"),
                                "{e}"
                            );
                            refused.fetch_add(1, Ordering::SeqCst);
                            if !outage.load(Ordering::SeqCst) {
                                refused_outside.fetch_add(1, Ordering::SeqCst);
                            }
                            assert!(
                                Instant::now() < deadline,
                                "ingest still refused after 90 s: {e}"
                            );
                            // A client honouring Retry-After would wait 1 s; retry sooner to see the edges.
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        other => panic!("unexpected status {other}: {}", r.text().unwrap()),
                    }
                }
                std::thread::sleep(Duration::from_millis(15));
            }
        })
    };

    for (stop_after, down_for) in [
        (20u64, Duration::from_secs(3)),
        (60, Duration::from_secs(2)),
    ] {
        while posted.load(Ordering::SeqCst) < stop_after {
            assert!(!poster.is_finished(), "the poster ended early");
            std::thread::sleep(Duration::from_millis(5));
        }
        let refused_before = refused.load(Ordering::SeqCst);
        outage.store(true, Ordering::SeqCst);
        cluster.stop();
        let posted_at_stop = posted.load(Ordering::SeqCst);
        // While the database is down: not ready, and posts are refused (none acknowledged).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, _) = get(&client, &format!("{}/readyz", server.get().base));
            if status == 503 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz stayed 200 with the database stopped"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(down_for);
        let (status, body) = get(&client, &format!("{}/readyz", server.get().base));
        assert_eq!(status, 503, "{body}");
        assert!(
            refused.load(Ordering::SeqCst) >= refused_before + 3,
            "posts were not refused during the outage"
        );
        // Nothing acknowledged while the server was down (but the answer to a batch committed just before).
        assert!(posted.load(Ordering::SeqCst) <= posted_at_stop + 1);
        cluster.start();
        outage.store(false, Ordering::SeqCst);
        wait_ready(&client, &server.get().base, Duration::from_secs(30));
        let resumed_from = posted.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(30);
        while posted.load(Ordering::SeqCst) < resumed_from + 3 {
            assert!(
                Instant::now() < deadline,
                "posts did not succeed after the restart"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    poster.join().unwrap();
    println!(
        "{} batches acknowledged, {} answers 503 in all, {} of them outside the outages (before readiness caught up)",
        posted.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst),
        refused_outside.load(Ordering::SeqCst)
    );

    // 4. Workers resumed after each outage: every acknowledged event reaches exactly one story.
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), lines.len());
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
    let metrics = client
        .get(format!("{}/metrics", server.get().base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("storyline_store_unavailable_total"),
        "{metrics}"
    );
    server.take().terminate();
    check_exactly_one_story(&read_stories(&out), &acked);
}
