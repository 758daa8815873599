//! Syslog over TLS (RFC 5425) into the running service, sent by a real `rsyslogd` through its GnuTLS
//! network stream driver (package rsyslog-gnutls): `omfwd` with `StreamDriver="gtls"`, octet counting,
//! checking the server's certificate against a CA made by the test.
//!
//! Without the tools this test skips, unless STORYLINE_REQUIRE_TOOLS=1 (scripts/test.sh sets it after
//! installing them), when it fails.

mod common;
#[path = "../../io/tests/support/rsyslog.rs"]
mod rsyslog;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storyline_io::source::syslog::{Protocol, SyslogConfig, TlsConfig};
use storyline_io::source::SourcesConfig;
use storyline_io::MemorySink;
use storyline_model::{Event, Timestamp};
use storyline_server::{Config, Service};
use storyline_store::{BucketRange, Store};

struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<common::ServeThread>,
    store: Arc<dyn Store>,
}

impl Running {
    /// Every stored event as (sensor, event id).
    fn stored(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for shard in 0..4 {
            for e in self
                .store
                .scan("t", shard, BucketRange::all(), None, 1_000_000)
                .unwrap()
            {
                let ev = Event::decode(&e.event).unwrap();
                out.insert((ev.observer.name.to_string(), ev.event.id.to_string()));
            }
        }
        out
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            if !std::thread::panicking() {
                t.join().unwrap().unwrap();
            }
        }
    }
}

fn start(data_dir: &Path, sources: SourcesConfig) -> Running {
    let port = free_tcp_port();
    let mut cfg = Config {
        tenant: "t".into(),
        data_dir: data_dir.to_path_buf(),
        sources,
        ..Config::default()
    };
    cfg.listen = format!("127.0.0.1:{port}").parse().unwrap();
    cfg.pipeline.shards = 4;
    cfg.validate().unwrap();
    let service = Service::start(cfg, Some(Arc::new(MemorySink::default()))).unwrap();
    let store = service.store.clone();
    let (tx, thread) = common::serve_on_thread(service, port);
    Running {
        stop: Some(tx),
        thread: Some(thread),
        store,
    }
}

use rsyslog::free_tcp_port;

/// An ECS record with its own event id, now.
fn ecs(id: &str, port: u16) -> String {
    serde_json::json!({
        "@timestamp": Timestamp::now().to_rfc3339(), "event": {"id": id},
        "source": {"ip": "10.1.0.1", "port": port}, "destination": {"ip": "10.1.0.2", "port": 443},
        "network": {"transport": "tcp"}
    })
    .to_string()
}

#[test]
fn rsyslogd_forwards_over_tls_to_storyline() {
    let Some(rsyslogd) = rsyslog::rsyslogd(true) else {
        return;
    };
    let Some(logger) = rsyslog::tool("logger") else {
        let msg = "missing logger: install it with `apt-get install -y bsdutils` (scripts/test.sh does this)";
        if std::env::var("STORYLINE_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("STORYLINE_REQUIRE_TOOLS=1 and {msg}");
        }
        eprintln!("skipping: {msg}");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = rsyslog::pki(&dir.path().join("pki"), "storyline test CA");
    let (ca, tls) = (
        pki.ca.clone(),
        TlsConfig {
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
        },
    );
    let (tls_port, relay) = (free_tcp_port(), free_tcp_port());
    let mut src = SyslogConfig::new(
        format!("127.0.0.1:{tls_port}").parse().unwrap(),
        Protocol::Tcp,
        "ecs",
    );
    src.app_name_sensors
        .insert("edr".into(), "edr-over-tls".into());
    src.batch_wait = Duration::from_millis(50);
    src.tls = Some(tls);
    let svc = start(
        &dir.path().join("data"),
        SourcesConfig {
            syslog: vec![src],
            ..SourcesConfig::default()
        },
    );

    // rsyslogd as a child with its own config (no system log touched): plain TCP in on a loopback port,
    // out over TLS to Storyline, checking that the server's certificate is signed by the CA and names
    // localhost — the configuration docs/sources.md gives.
    let conf = format!(
        r#"global(workDirectory="{{work}}" DefaultNetstreamDriverCAFile="{ca}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{relay}" ruleset="to_storyline")
ruleset(name="to_storyline") {{
  action(type="omfwd" target="127.0.0.1" port="{tls_port}" protocol="tcp"
         StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
         StreamDriverPermittedPeers="localhost"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
         queue.type="LinkedList" queue.filename="storyline_fwd" queue.saveOnShutdown="on"
         action.resumeRetryCount="-1")
}}
"#,
        ca = ca.display(),
    );
    let child = rsyslog::Rsyslogd::start(&rsyslogd, &dir.path().join("rsyslog"), &conf, relay);
    let diagnostics = || child.diagnostics();

    let ids = ["tls-1", "tls-2", "tls-3"];
    for (i, id) in ids.iter().enumerate() {
        let sent = Command::new(&logger)
            .args(["-n", "127.0.0.1", "-P", &relay.to_string(), "--tcp"])
            .args(["--rfc5424", "-t", "edr", "-p", "local0.info"])
            .arg(ecs(id, 41_000 + i as u16))
            .output()
            .unwrap();
        assert!(
            sent.status.success(),
            "logger: {}",
            String::from_utf8_lossy(&sent.stderr)
        );
    }
    let want: BTreeSet<(String, String)> = ids
        .iter()
        .map(|id| ("edr-over-tls".to_string(), id.to_string()))
        .collect();
    let started = Instant::now();
    while svc.stored() != want {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not stored over TLS: {:?}; {}",
            svc.stored(),
            diagnostics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let dead = svc.store.dead_letters("t", None, 100).unwrap();
    assert!(dead.is_empty(), "{dead:?}");
    drop(child);
}
