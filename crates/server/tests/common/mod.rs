//! A real service on loopback for the API tests.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;
use storyline_io::MemorySink;
use storyline_server::{Config, Service};

pub const ADMIN: &str = "admin-secret-for-tests";

pub struct Running {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<ServeThread>,
    pub sink: Arc<MemorySink>,
    pub dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }
}

pub type ServeThread = std::thread::JoinHandle<anyhow::Result<()>>;

/// Serves `service` on a runtime of its own thread until the sender fires (or is dropped). Returns once
/// `GET /healthz` on `port` answers, which is after every source is bound.
pub fn serve_on_thread(
    service: Service,
    port: u16,
) -> (tokio::sync::oneshot::Sender<()>, ServeThread) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(service.serve(async {
            let _ = rx.await;
        }))
    });
    let health = format!("http://127.0.0.1:{port}/healthz");
    let started = std::time::Instant::now();
    while reqwest::blocking::get(&health).is_err() {
        assert!(
            !thread.is_finished() && started.elapsed() < Duration::from_secs(20),
            "the service did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (tx, thread)
}

/// Starts a service with fast test timings; `tune` adjusts the config.
pub fn start_with(tune: impl FnOnce(&mut Config)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = Config {
        tenant: "t".into(),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    cfg.listen = format!("127.0.0.1:{port}").parse().unwrap();
    cfg.limits.max_body_bytes = 1 << 20;
    cfg.pipeline.bucket = Duration::from_millis(100);
    cfg.pipeline.safety_delay = Duration::from_millis(100);
    cfg.pipeline.poll_interval = Duration::from_millis(20);
    cfg.pipeline.commit_interval = Duration::from_millis(200);
    cfg.pipeline.correlate.gap = Duration::from_millis(500);
    cfg.tenants.admin_token_sha256 = Some(storyline_server::tenants::registry::hash_token(ADMIN));
    tune(&mut cfg);
    let sink = Arc::new(MemorySink::default());
    let service = Service::start(cfg, Some(sink.clone())).unwrap();
    let (tx, thread) = serve_on_thread(service, port);
    let base = format!("http://127.0.0.1:{port}");
    Running {
        base,
        stop: Some(tx),
        thread: Some(thread),
        sink,
        dir,
    }
}

/// An ECS record of one flow from 10.0.0.1:`port`, as an envelope line.
pub fn envelope(id: &str, port: u16) -> String {
    serde_json::json!({
        "format": "ecs", "sensor": "fw",
        "record": {"@timestamp": storyline_model::Timestamp::now().to_rfc3339(), "event": {"id": id},
                   "source": {"ip": "10.0.0.1", "port": port}, "destination": {"ip": "10.0.0.2", "port": 22},
                   "network": {"transport": "tcp"}}
    })
    .to_string()
}

/// Sends a request with an optional bearer token.
pub fn call(
    method: reqwest::Method,
    r: &Running,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> reqwest::blocking::Response {
    let c = reqwest::blocking::Client::new();
    let mut req = c.request(method, format!("{}{path}", r.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    req.send().unwrap()
}

/// Polls `f` until it gives `Some`, for up to `secs` seconds.
pub fn eventually<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
