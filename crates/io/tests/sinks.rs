//! Delivery sinks against real receivers on 127.0.0.1: an HTTP server that fails on purpose (503, 429
//! with Retry-After, 400), Splunk HEC and `_bulk` request formats, syslog UDP/TCP listeners, the local
//! object store; a dead sink beside a healthy one; a backlog across a restart; dead letters re-driven.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storyline_io::sink::backlog::{dead_letters, request_redrive, DirStatus};
use storyline_io::sink::config::SinkKind;
use storyline_io::sink::fanout::sink_dir;
use storyline_io::{SinkConfig, SinkFanout, StorySink};
use storyline_model::{Story, StoryId, Timestamp};

// ---------- a receiver that fails on purpose ----------

#[derive(Clone, Debug)]
struct Request {
    at: Instant,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// What the server answers next: a queue of scripted answers, then `default`.
struct Script {
    next: VecDeque<(u16, Option<&'static str>)>,
    default: u16,
    /// For `_bulk`: per-item statuses to answer, by position (one answer each).
    bulk_items: VecDeque<Vec<u16>>,
}

struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<Script>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TestServer {
    fn start(default: u16) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(Script {
            next: VecDeque::new(),
            default,
            bulk_items: VecDeque::new(),
        }));
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (reqs, scr) = (requests.clone(), script.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(
                    move |uri: Uri, headers: HeaderMap, body: Bytes| {
                        let (reqs, scr) = (reqs.clone(), scr.clone());
                        async move { answer(reqs, scr, uri, headers, body) }
                    },
                );
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        Self {
            addr,
            requests,
            script,
            _stop: stop_tx,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn push(&self, status: u16, retry_after: Option<&'static str>) {
        self.script
            .lock()
            .unwrap()
            .next
            .push_back((status, retry_after));
    }

    fn set_default(&self, status: u16) {
        self.script.lock().unwrap().default = status;
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Story ids of every accepted JSON-array body.
    fn accepted_ids(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.headers.get("x-answer").is_none())
            .flat_map(|r| {
                let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["story_id"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

fn answer(
    reqs: Arc<Mutex<Vec<Request>>>,
    scr: Arc<Mutex<Script>>,
    uri: Uri,
    mut headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = scr.lock().unwrap();
    let (status, retry_after) = s.next.pop_front().unwrap_or((s.default, None));
    let bulk = if uri.path().ends_with("/_bulk") && status == 200 {
        s.bulk_items.pop_front()
    } else {
        None
    };
    drop(s);
    if status != 200 {
        // Marks refused requests in the record (the sink never sends this header).
        headers.insert("x-answer", status.to_string().parse().unwrap());
    }
    reqs.lock().unwrap().push(Request {
        at: Instant::now(),
        path: uri.path().to_string(),
        headers,
        body: body.to_vec(),
    });
    let code = StatusCode::from_u16(status).unwrap();
    if let Some(items) = bulk {
        let items: Vec<_> = items
            .iter()
            .map(|st| serde_json::json!({"index": {"status": st, "error": if *st >= 300 { serde_json::json!({"type": "test_error"}) } else { serde_json::Value::Null }}}))
            .collect();
        let errors = items
            .iter()
            .any(|i| i["index"]["status"].as_u64().unwrap() >= 300);
        return (
            code,
            serde_json::json!({"errors": errors, "items": items}).to_string(),
        )
            .into_response();
    }
    let mut resp = (code, "{\"text\":\"scripted\",\"code\":0}").into_response();
    if let Some(ra) = retry_after {
        resp.headers_mut()
            .insert("retry-after", ra.parse().unwrap());
    }
    resp
}

// ---------- helpers ----------

fn story(n: u128) -> Story {
    let mut s = Story {
        story_id: StoryId(n),
        version: 1,
        tenant: "t".into(),
        first_seen: Timestamp::from_millis(1_795_255_201_200),
        last_seen: Timestamp::from_millis(1_795_255_204_000),
        event_count: 1,
        event_ids: vec![format!("e{n}").into()],
        sensors: vec!["fw".into()],
        ..Default::default()
    };
    s.fused.source.ip = Some("10.0.0.1".parse().unwrap());
    s.fused.source.port = Some(40000 + (n % 20000) as u16);
    s.fused.destination.ip = Some("192.0.2.10".parse().unwrap());
    s.fused.destination.port = Some(443);
    s.fused.network.transport = Some("tcp".into());
    s.fused.user.names = vec!["alice".into()].into();
    s.fused.host.names = vec!["ws-1".into()].into();
    s.fused.event.actions = vec!["allow".into()].into();
    s
}

fn id(n: u128) -> String {
    StoryId(n).to_string()
}

fn http_sink(name: &str, kind: SinkKind, url: &str) -> SinkConfig {
    SinkConfig {
        name: name.into(),
        kind: Some(kind),
        url: Some(url.into()),
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
        ..Default::default()
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An address where nothing listens (connection refused).
fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn status(f: &SinkFanout, name: &str) -> storyline_io::sink::fanout::SinkStatus {
    f.status().into_iter().find(|s| s.name == name).unwrap()
}

// ---------- HTTP ----------

#[test]
fn http_retries_503_then_delivers_everything() {
    let server = TestServer::start(200);
    for _ in 0..3 {
        server.push(503, None);
    }
    let dir = tempfile::tempdir().unwrap();
    let f = SinkFanout::start(
        dir.path(),
        &[http_sink("siem", SinkKind::Http, &server.url())],
    )
    .unwrap();
    f.publish(&(0..10).map(story).collect::<Vec<_>>()).unwrap();
    f.publish(&(10..15).map(story).collect::<Vec<_>>()).unwrap();
    wait_until("15 delivered", Duration::from_secs(10), || {
        status(&f, "siem").delivered == 15
    });
    let st = status(&f, "siem");
    assert_eq!(st.retries, 3, "{st:?}");
    assert_eq!(st.failures, 3);
    assert_eq!(st.dead_lettered, 0);
    let reqs = server.requests();
    assert_eq!(
        reqs.iter()
            .filter(|r| r.headers.get("x-answer").is_some())
            .count(),
        3
    );
    let ids: HashSet<String> = server.accepted_ids().into_iter().collect();
    assert_eq!(ids, (0..15).map(id).collect::<HashSet<_>>());
    assert_eq!(reqs[0].headers["content-type"], "application/json");
    // Acknowledged: the backlog is empty.
    wait_until("backlog empty", Duration::from_secs(5), || {
        status(&f, "siem").backlog_bytes == 0
    });
}

#[test]
fn http_honours_retry_after() {
    let server = TestServer::start(200);
    server.push(429, Some("1"));
    server.push(503, Some("1"));
    let dir = tempfile::tempdir().unwrap();
    let f = SinkFanout::start(
        dir.path(),
        &[http_sink("siem", SinkKind::Http, &server.url())],
    )
    .unwrap();
    f.publish(&[story(1)]).unwrap();
    wait_until("delivered", Duration::from_secs(10), || {
        status(&f, "siem").delivered == 1
    });
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    for w in reqs.windows(2) {
        let gap = w[1].at - w[0].at;
        // The backoff alone would be 10-200 ms; Retry-After says 1 s.
        assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    }
}

#[test]
fn http_400_goes_to_dead_letters_and_redrive_delivers_it() {
    let server = TestServer::start(400);
    let dir = tempfile::tempdir().unwrap();
    let cfg = http_sink("siem", SinkKind::Http, &server.url());
    let f = SinkFanout::start(dir.path(), std::slice::from_ref(&cfg)).unwrap();
    f.publish(&[story(1), story(2)]).unwrap();
    wait_until("dead-lettered", Duration::from_secs(10), || {
        status(&f, "siem").dead_lettered == 2
    });
    let st = status(&f, "siem");
    assert_eq!(
        (st.retries, st.delivered),
        (0, 0),
        "a 400 is not retried: {st:?}"
    );
    assert_eq!(server.requests().len(), 1);
    let sdir = sink_dir(dir.path(), "siem");
    let letters = dead_letters(&sdir.join("dead")).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, "rejected");
    assert!(letters[0].error.contains("400"), "{:?}", letters[0]);
    assert_eq!(letters[0].stories, 2);
    assert_eq!(letters[0].first_ids[0], format!("{}-1", id(1)));
    let ds = DirStatus::read(&sdir).unwrap();
    assert_eq!(
        (ds.dead_letters, ds.dead_letter_stories, ds.locked),
        (1, 2, true)
    );

    // The receiver is fixed; re-drive while the sink runs.
    server.set_default(200);
    assert_eq!(request_redrive(&sdir).unwrap(), 1);
    wait_until("re-driven and delivered", Duration::from_secs(10), || {
        status(&f, "siem").delivered == 2
    });
    let ids: HashSet<String> = server.accepted_ids().into_iter().collect();
    assert_eq!(ids, [id(1), id(2)].into_iter().collect());
    assert!(dead_letters(&sdir.join("dead")).unwrap().is_empty());
    assert_eq!(DirStatus::read(&sdir).unwrap().redrive_pending, 0);
}

#[test]
fn max_retries_moves_a_batch_to_dead_letters() {
    let server = TestServer::start(503);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = http_sink("siem", SinkKind::Http, &server.url());
    cfg.max_retries = Some(2);
    let f = SinkFanout::start(dir.path(), &[cfg]).unwrap();
    f.publish(&[story(1)]).unwrap();
    wait_until("dead-lettered", Duration::from_secs(10), || {
        status(&f, "siem").dead_lettered == 1
    });
    assert_eq!(server.requests().len(), 3, "1 try + 2 retries");
    let letters = dead_letters(&sink_dir(dir.path(), "siem").join("dead")).unwrap();
    assert_eq!(letters[0].reason, "retries_exhausted");
    assert_eq!(letters[0].attempts, 3);
    assert!(letters[0].error.contains("503"));
}

#[test]
fn a_dead_sink_never_slows_the_healthy_one_or_the_publisher() {
    let healthy = TestServer::start(200);
    // Accepts connections (the kernel does, from its backlog) and never answers: requests time out.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = SinkFanout::start(
        dir.path(),
        &[
            http_sink("dead", SinkKind::Http, &format!("http://{}", dead_addr())),
            http_sink(
                "hanging",
                SinkKind::Http,
                &format!("http://{}", hanging.local_addr().unwrap()),
            ),
            http_sink("healthy", SinkKind::Http, &healthy.url()),
        ],
    )
    .unwrap();
    let mut worst = Duration::ZERO;
    let mut n = 0u128;
    for _ in 0..100 {
        let batch: Vec<Story> = (n..n + 10).map(story).collect();
        n += 10;
        let t = Instant::now();
        f.publish(&batch).unwrap();
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    // Three fsynced appends per publish; nothing waits for a destination (the bound is loose for busy
    // CI disks: a publish that waited for the dead or hanging receiver would never return).
    assert!(worst < Duration::from_secs(2), "a publish took {worst:?}");
    wait_until("healthy got all", Duration::from_secs(10), || {
        status(&f, "healthy").delivered == 1000
    });
    let ids: HashSet<String> = healthy.accepted_ids().into_iter().collect();
    assert_eq!(ids.len(), 1000);
    let dead = status(&f, "dead");
    assert_eq!(dead.delivered, 0);
    assert!(dead.failures > 0 && dead.retries > 0, "{dead:?}");
    assert!(
        dead.backlog_bytes > 100_000,
        "the dead sink's backlog holds everything: {dead:?}"
    );
    assert_eq!(dead.dead_lettered, 0, "retried until delivered by default");
    assert_eq!(status(&f, "healthy").backlog_bytes, 0);
    let hung = status(&f, "hanging");
    assert_eq!(hung.delivered, 0);
    assert!(hung.backlog_bytes > 100_000, "{hung:?}");
    // Stopping does not hang on the dead sink.
    let t = Instant::now();
    f.stop(Duration::from_millis(300));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        t.elapsed()
    );
}

#[test]
fn a_full_backlog_dead_letters_new_batches_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = http_sink("dead", SinkKind::Http, &format!("http://{}", dead_addr()));
    cfg.backlog_bytes = 1 << 20;
    let f = SinkFanout::start(dir.path(), &[cfg]).unwrap();
    let batch: Vec<Story> = (0..500).map(story).collect();
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        f.publish(&batch).unwrap();
        worst = worst.max(t.elapsed());
    }
    assert!(worst < Duration::from_secs(2), "{worst:?}");
    let st = status(&f, "dead");
    assert!(st.backlog_bytes <= 1 << 20);
    assert!(st.dead_lettered >= 500, "{st:?}");
    assert_eq!(st.dead_lettered % 500, 0);
    let letters = dead_letters(&sink_dir(dir.path(), "dead").join("dead")).unwrap();
    assert!(letters.iter().all(|d| d.reason == "backlog_full"));
    assert!(st.backlog_bytes > 0, "what fits stays in the backlog");
}

#[test]
fn the_backlog_survives_a_restart_and_is_delivered_after() {
    let server = TestServer::start(503);
    let dir = tempfile::tempdir().unwrap();
    let cfg = http_sink("siem", SinkKind::Http, &server.url());
    {
        let f = SinkFanout::start(dir.path(), std::slice::from_ref(&cfg)).unwrap();
        f.publish(&(0..7).map(story).collect::<Vec<_>>()).unwrap();
        f.publish(&(7..9).map(story).collect::<Vec<_>>()).unwrap();
        wait_until("a failed try", Duration::from_secs(5), || {
            status(&f, "siem").failures > 0
        });
        f.stop(Duration::ZERO);
        assert!(status(&f, "siem").backlog_bytes > 0);
    }
    assert!(server.accepted_ids().is_empty());
    // "Restart": a new fanout on the same data directory; the receiver is back.
    server.set_default(200);
    let f = SinkFanout::start(dir.path(), &[cfg]).unwrap();
    wait_until("delivered after restart", Duration::from_secs(10), || {
        status(&f, "siem").delivered == 9
    });
    let ids: HashSet<String> = server.accepted_ids().into_iter().collect();
    assert_eq!(ids, (0..9).map(id).collect::<HashSet<_>>());
    wait_until("acked", Duration::from_secs(5), || {
        status(&f, "siem").backlog_bytes == 0
    });
}

// ---------- Splunk HEC and _bulk request formats ----------

#[test]
fn splunk_hec_request_format() {
    let server = TestServer::start(200);
    server.push(503, None);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = http_sink("splunk", SinkKind::SplunkHec, &server.url());
    cfg.token = Some("11111111-2222-3333-4444-555555555555".into());
    cfg.encoding = storyline_io::sink::encode::Encoding::Ecs;
    cfg.index = Some("security".into());
    let f = SinkFanout::start(dir.path(), &[cfg]).unwrap();
    f.publish(&[story(1), story(2)]).unwrap();
    wait_until("delivered", Duration::from_secs(10), || {
        status(&f, "splunk").delivered == 2
    });
    let reqs = server.requests();
    let ok = reqs.last().unwrap();
    assert_eq!(ok.path, "/services/collector/event");
    assert_eq!(
        ok.headers["authorization"],
        "Splunk 11111111-2222-3333-4444-555555555555"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(ok.body.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for (l, n) in lines.iter().zip([1u128, 2]) {
        assert_eq!(l["sourcetype"], "storyline:story");
        assert_eq!(l["source"], "storyline");
        assert_eq!(l["index"], "security");
        assert!(
            (l["time"].as_f64().unwrap() - 1_795_255_201.2).abs() < 1e-3,
            "{l}"
        );
        assert_eq!(l["event"]["labels"]["story_id"], id(n));
        assert_eq!(l["event"]["event"]["kind"], "event");
        assert_eq!(l["fields"]["story_version"], 1);
    }
    assert_eq!(reqs.len(), 2, "one 503, then delivered");
}

#[test]
fn elasticsearch_bulk_format_and_per_item_outcomes() {
    let server = TestServer::start(200);
    // First answer: item 1 throttled (429, retried alone), item 2 refused (400, dead-lettered).
    server
        .script
        .lock()
        .unwrap()
        .bulk_items
        .push_back(vec![201, 429, 400]);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = http_sink("es", SinkKind::Elasticsearch, &format!("{}/", server.url()));
    cfg.index = Some("stories-v1".into());
    cfg.api_key = Some("a2V5OnNlY3JldA==".into());
    cfg.encoding = storyline_io::sink::encode::Encoding::Ocsf;
    cfg.gzip = true;
    let f = SinkFanout::start(dir.path(), &[cfg]).unwrap();
    let mut s3 = story(3);
    s3.version = 7;
    f.publish(&[story(1), story(2), s3]).unwrap();
    wait_until("settled", Duration::from_secs(10), || {
        let st = status(&f, "es");
        st.delivered == 2 && st.dead_lettered == 1
    });
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let decode = |r: &Request| {
        assert_eq!(r.headers["content-encoding"], "gzip");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut text)
            .unwrap();
        text
    };
    assert_eq!(reqs[0].path, "/_bulk");
    assert_eq!(reqs[0].headers["authorization"], "ApiKey a2V5OnNlY3JldA==");
    assert_eq!(reqs[0].headers["content-type"], "application/x-ndjson");
    let lines: Vec<serde_json::Value> = decode(&reqs[0])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(
        lines[0],
        serde_json::json!({"index": {"_index": "stories-v1", "_id": format!("{}-1", id(1))}})
    );
    assert_eq!(lines[1]["class_uid"], 4001);
    assert_eq!(lines[4]["index"]["_id"], format!("{}-7", id(3)));
    // The retry carries only the throttled item.
    let retry: Vec<serde_json::Value> = decode(&reqs[1])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(retry.len(), 2);
    assert_eq!(retry[0]["index"]["_id"], format!("{}-1", id(2)));
    let letters = dead_letters(&sink_dir(dir.path(), "es").join("dead")).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].first_ids, vec![format!("{}-7", id(3))]);
    assert!(letters[0].error.contains("test_error"), "{:?}", letters[0]);
}

// ---------- syslog ----------

#[test]
fn syslog_over_udp_rfc5424() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = SinkConfig {
        name: "syslog-udp".into(),
        kind: Some(SinkKind::Syslog),
        address: Some(sock.local_addr().unwrap().to_string()),
        protocol: Some(storyline_io::sink::config::SyslogProtocol::Udp),
        hostname: Some("sl-1".into()),
        ..Default::default()
    };
    let f = SinkFanout::start(dir.path(), &[cfg]).unwrap();
    f.publish(&[story(1), story(2)]).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 70_000];
    for _ in 0..2 {
        let n = sock.recv(&mut buf).unwrap();
        got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    for (m, n) in got.iter().zip([1u128, 2]) {
        assert!(m.starts_with("<134>1 "), "{m}");
        assert!(m.contains(" sl-1 storyline "), "{m}");
        assert!(
            m.contains(&format!(
                "[storyline@32473 story_id=\"{}\" version=\"1\"] {{",
                id(n)
            )),
            "{m}"
        );
        let v: serde_json::Value = serde_json::from_str(&m[m.find("] {").unwrap() + 2..]).unwrap();
        assert_eq!(v["story_id"], id(n));
    }
}

#[test]
fn syslog_over_tcp_cef_octet_counted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::<u8>::new()));
    let r = received.clone();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match std::io::Read::read(&mut conn, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => r.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = SinkConfig {
        name: "cef".into(),
        kind: Some(SinkKind::Syslog),
        address: Some(addr.to_string()),
        format: Some(storyline_io::sink::config::SyslogFormat::Cef),
        ..Default::default()
    };
    let f = SinkFanout::start(dir.path(), &[cfg]).unwrap();
    f.publish(&[story(1), story(2), story(3)]).unwrap();
    // Parse RFC 6587 octet-counted frames.
    let mut frames = Vec::new();
    wait_until("3 frames", Duration::from_secs(10), || {
        let data = received.lock().unwrap().clone();
        frames.clear();
        let mut rest = &data[..];
        while let Some(sp) = rest.iter().position(|b| *b == b' ') {
            let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
            if rest.len() < sp + 1 + len {
                break;
            }
            frames.push(String::from_utf8(rest[sp + 1..sp + 1 + len].to_vec()).unwrap());
            rest = &rest[sp + 1 + len..];
        }
        frames.len() == 3
    });
    for (m, n) in frames.iter().zip([1u128, 2, 3]) {
        let cef = &m[m.find("CEF:0|").expect(m)..];
        assert!(cef.starts_with("CEF:0|Storyline|Storyline|"), "{cef}");
        assert!(cef.contains("|story|tcp session|3|"), "{cef}");
        for kv in [
            "src=10.0.0.1",
            "dst=192.0.2.10",
            "dpt=443",
            "proto=TCP",
            "suser=alice",
            "shost=ws-1",
            "act=allow",
        ] {
            assert!(cef.contains(kv), "{kv}: {cef}");
        }
        assert!(cef.contains(&format!("cs1={}", id(n))), "{cef}");
    }
}

// ---------- object store (local file system backend) ----------

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn object_store_on_the_local_file_system() {
    let data = tempfile::tempdir().unwrap();
    let bucket = tempfile::tempdir().unwrap();
    let url = format!("file://{}/stories", bucket.path().display());
    let cfg = SinkConfig {
        name: "lake".into(),
        kind: Some(SinkKind::ObjectStore),
        url: Some(url.clone()),
        batch_stories: 4,
        ..Default::default()
    };
    let f = SinkFanout::start(data.path(), std::slice::from_ref(&cfg)).unwrap();
    f.publish(&(0..10).map(story).collect::<Vec<_>>()).unwrap();
    wait_until("delivered", Duration::from_secs(10), || {
        status(&f, "lake").delivered == 10
    });
    let files = files_under(&bucket.path().join("stories"));
    assert_eq!(files.len(), 3, "4 + 4 + 2 stories: {files:?}");
    let names: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(bucket.path()).unwrap().display().to_string())
        .collect();
    let hour = time::OffsetDateTime::now_utc();
    let prefix = format!(
        "stories/{:04}/{:02}/{:02}/",
        hour.year(),
        hour.month() as u8,
        hour.day()
    );
    assert!(names[0].starts_with(&prefix), "{names:?}");
    assert!(
        names[0].ends_with("/lake-00000000000000000000-000000.ndjson"),
        "{names:?}"
    );
    assert!(
        names[1].ends_with("/lake-00000000000000000000-000004.ndjson"),
        "{names:?}"
    );
    let mut ids = Vec::new();
    for p in &files {
        for line in std::fs::read_to_string(p).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            ids.push(v["story_id"].as_str().unwrap().to_string());
        }
    }
    ids.sort();
    assert_eq!(ids, (0..10).map(id).collect::<Vec<_>>());
    drop(f);

    // Avro objects are container files.
    let cfg = SinkConfig {
        name: "lake-avro".into(),
        encoding: storyline_io::sink::encode::Encoding::Avro,
        ..cfg
    };
    let f = SinkFanout::start(data.path(), &[cfg]).unwrap();
    f.publish(&(0..3).map(story).collect::<Vec<_>>()).unwrap();
    wait_until("delivered", Duration::from_secs(10), || {
        status(&f, "lake-avro").delivered == 3
    });
    let avro: Vec<_> = files_under(&bucket.path().join("stories"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "avro"))
        .collect();
    assert_eq!(avro.len(), 1);
    let bytes = std::fs::read(&avro[0]).unwrap();
    assert_eq!(apache_avro::Reader::new(&bytes[..]).unwrap().count(), 3);
}

#[test]
fn file_sink_through_the_backlog_writes_csv() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("stories.csv");
    let cfg = SinkConfig {
        name: "csv".into(),
        kind: Some(SinkKind::File),
        encoding: storyline_io::sink::encode::Encoding::Csv,
        path: Some(path.clone()),
        ..Default::default()
    };
    let f = SinkFanout::start(data.path(), &[cfg]).unwrap();
    f.publish(&(0..5).map(story).collect::<Vec<_>>()).unwrap();
    wait_until("delivered", Duration::from_secs(10), || {
        status(&f, "csv").delivered == 5
    });
    let rows =
        storyline_io::sink::encode::csv::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0][0], "story_id");
    assert_eq!(rows[3][0], id(2));
}
