//! Three `storyline run` processes share one PostgreSQL store (`STORYLINE_TEST_PG`, a fresh schema): four
//! correlation partitions spread over them through leases. Events are posted round-robin; one process is
//! SIGKILLed mid-stream (with a request in flight) and posting goes on to the other two. Its partitions move
//! to the survivors within a lease TTL, and at the end every acknowledged event is in exactly one story
//! across the three processes' story files (latest version per story id), none twice, and no story id
//! changed.

mod common;
#[path = "common/pg.rs"]
mod pg;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use storyline_generate::{GenConfig, Generator};
use storyline_model::Timestamp;
use storyline_store::postgres::PostgresStore;
use storyline_store::Store;

const PARTITIONS: u16 = 4;

/// Unexpired partition leases: partition → (owner, epoch).
fn live_leases(store: &PostgresStore) -> BTreeMap<u16, (String, u64)> {
    let now = Timestamp::now().as_millis();
    store
        .leases("t", "stories")
        .unwrap()
        .into_iter()
        .filter(|l| l.expires_ms > now)
        .map(|l| (l.shard, (l.owner, l.epoch)))
        .collect()
}

/// The pid in an owner name `host-PID/wN`.
fn owner_pid(owner: &str) -> u32 {
    let process = owner.split('/').next().unwrap();
    process.rsplit('-').next().unwrap().parse().unwrap()
}

#[test]
fn three_processes_share_partitions_and_survive_a_sigkill() {
    let Some(url) = pg::test_server() else { return };
    let schema = pg::FreshSchema::new(&url, "sl_cluster");
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut servers: Vec<pg::Guarded> = dirs
        .iter()
        .map(|d| {
            let port = free_port();
            let config = pg::write_pg_config(d.path(), port, &url, &schema.schema, PARTITIONS, 2);
            pg::Guarded(Some(Server::start(&config, port)))
        })
        .collect();
    let pids: Vec<u32> = servers.iter().map(|s| s.get().child.id()).collect();
    let store = PostgresStore::connect(&url, &schema.schema).unwrap();

    // The partitions are spread: every one is leased, and by more than one process.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let leases = live_leases(&store);
        let processes: BTreeSet<u32> = leases.values().map(|(o, _)| owner_pid(o)).collect();
        if leases.len() == PARTITIONS as usize && processes.len() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partitions not spread over the processes: {leases:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let gen = GenConfig {
        events: 6000,
        seed: 5,
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
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let body_of =
        |b: &[(String, String)]| -> String { b.iter().map(|(_, l)| format!("{l}\n")).collect() };

    let mut acked: BTreeSet<String> = BTreeSet::new();
    let kill_at = batches.len() / 3;
    let mut victim: Option<(usize, BTreeMap<u16, u64>)> = None;
    let mut turn = 0usize;
    let mut next = 0usize;
    while next < batches.len() {
        let alive: Vec<usize> = (0..3).filter(|i| servers[*i].is_running()).collect();
        let target = alive[turn % alive.len()];
        turn += 1;
        let base = servers[target].get().base.clone();
        // From a third of the stream on, the process holding the most partitions dies, with a request in
        // flight to it, once it has published stories (so stories of its partitions come from two
        // processes), or at four fifths of the stream at the latest.
        let candidate = (next >= kill_at && victim.is_none()).then(|| {
            let leases = live_leases(&store);
            let v = (0..3)
                .max_by_key(|i| {
                    leases
                        .values()
                        .filter(|(o, _)| owner_pid(o) == pids[*i])
                        .count()
                })
                .unwrap();
            (v, leases)
        });
        if let Some((v, leases)) = candidate.filter(|(v, _)| {
            !read_stories(&dirs[*v].path().join("stories.ndjson")).is_empty()
                || next >= batches.len() * 4 / 5
        }) {
            let held: BTreeMap<u16, u64> = leases
                .iter()
                .filter(|(_, (o, _))| owner_pid(o) == pids[v])
                .map(|(p, (_, e))| (*p, *e))
                .collect();
            assert!(!held.is_empty(), "no process holds a partition: {leases:?}");
            let url = format!("{}/v1/events", servers[v].get().base);
            let c = client.clone();
            let body = body_of(batches[next]);
            let inflight =
                std::thread::spawn(move || c.post(url).body(body).send().map(|r| r.status()));
            std::thread::sleep(Duration::from_millis(2));
            servers[v].take().kill();
            let _ = inflight.join(); // not acknowledged: the batch is sent again below, to a survivor
            victim = Some((v, held));
            continue;
        }
        std::thread::sleep(Duration::from_millis(10));
        match client
            .post(format!("{base}/v1/events"))
            .body(body_of(batches[next]))
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
            other => panic!("ingest to a live process failed: {other:?}"),
        }
    }
    let (victim, held) = victim.expect("a process was killed");
    let victim_published = read_stories(&dirs[victim].path().join("stories.ndjson")).len();

    // The killed process's partitions were taken over by the survivors, with a new lease epoch.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let leases = live_leases(&store);
        let taken = held.iter().all(|(p, epoch)| {
            leases
                .get(p)
                .is_some_and(|(o, e)| owner_pid(o) != pids[victim] && e > epoch)
        });
        if taken && leases.len() == PARTITIONS as usize {
            println!(
                "partitions {:?} of the killed process moved: {leases:?}",
                held.keys()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partitions {held:?} of the killed process were not taken over: {leases:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Every acknowledged event reaches a story, in one of the three story files.
    let files: Vec<std::path::PathBuf> = dirs
        .iter()
        .map(|d| d.path().join("stories.ndjson"))
        .collect();
    let read_all =
        || -> Vec<serde_json::Value> { files.iter().flat_map(|f| read_stories(f)).collect() };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let published: BTreeSet<String> =
            latest(&read_all()).values().flat_map(event_ids).collect();
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
    for s in servers.iter_mut() {
        if s.is_running() {
            s.take().terminate();
        }
    }
    let all = read_all();
    let per_file: Vec<usize> = files.iter().map(|f| read_stories(f).len()).collect();
    println!(
        "story versions per process: {per_file:?} (process {victim} was killed after publishing {victim_published})"
    );
    assert!(
        per_file
            .iter()
            .enumerate()
            .filter(|(i, n)| *i != victim && **n > 0)
            .count()
            == 2,
        "both survivors published stories: {per_file:?}"
    );

    check_exactly_one_story(&all, &acked);
}
