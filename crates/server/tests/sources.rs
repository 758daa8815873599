//! Sources in the running service: syslog sent by the real `logger` (util-linux, package bsdutils) and
//! forwarded by a real `rsyslogd` (package rsyslog), and a followed log file across a restart and a rotation.
//! Records are checked where they must end up: as events in the store (or as dead letters).
//!
//! Without the tools these tests skip, unless STORYLINE_REQUIRE_TOOLS=1 (scripts/test.sh sets it after
//! installing them), when they fail.

mod common;
#[path = "../../io/tests/support/rsyslog.rs"]
mod rsyslog;

use rsyslog::free_tcp_port;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storyline_io::source::file::FileConfig;
use storyline_io::source::syslog::{Protocol, SyslogConfig};
use storyline_io::source::SourcesConfig;
use storyline_io::MemorySink;
use storyline_model::{Event, Timestamp};
use storyline_server::{Config, Service};
use storyline_store::{BucketRange, Store};

const SERIAL: &str = "012801099999";

struct Running {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<common::ServeThread>,
    store: Arc<dyn Store>,
    tenant: String,
    shards: u16,
}

impl Running {
    fn shutdown(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }

    /// Every stored event as (sensor, event id).
    fn stored(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for shard in 0..self.shards {
            let events = self
                .store
                .scan(&self.tenant, shard, BucketRange::all(), None, 1_000_000)
                .unwrap();
            for e in events {
                let ev = Event::decode(&e.event).unwrap();
                out.insert((ev.observer.name.to_string(), ev.event.id.to_string()));
            }
        }
        out
    }

    /// Waits until every expected (sensor, id) is stored; panics with what is missing.
    fn wait_stored(&self, want: &BTreeSet<(String, String)>, within: Duration, context: &str) {
        let started = Instant::now();
        loop {
            let got = self.stored();
            let missing: Vec<_> = want.difference(&got).collect();
            if missing.is_empty() {
                return;
            }
            if started.elapsed() > within {
                panic!("{context}: not stored after {within:?}: {missing:?}\nstored: {got:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn count_from(&self, sensor: &str) -> usize {
        self.stored().iter().filter(|(s, _)| s == sensor).count()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(s) = self.stop.take() {
                let _ = s.send(());
            }
            return;
        }
        self.finish();
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
    let sink = Arc::new(MemorySink::default());
    let service = Service::start(cfg, Some(sink)).unwrap();
    let store = service.store.clone();
    let (tx, thread) = common::serve_on_thread(service, port);
    Running {
        base: format!("http://127.0.0.1:{port}"),
        stop: Some(tx),
        thread: Some(thread),
        store,
        tenant: "t".into(),
        shards: 4,
    }
}

/// A port free for both TCP and UDP.
fn free_port() -> u16 {
    loop {
        let port = free_tcp_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The tools' paths, or `None` to skip the test. With STORYLINE_REQUIRE_TOOLS=1 a missing tool fails it.
fn require_tools(names: &[&str]) -> Option<Vec<PathBuf>> {
    let found: Vec<_> = names.iter().map(|n| rsyslog::tool(n)).collect();
    let missing: Vec<_> = names
        .iter()
        .zip(&found)
        .filter(|(_, p)| p.is_none())
        .map(|(n, _)| *n)
        .collect();
    if missing.is_empty() {
        return Some(found.into_iter().map(Option::unwrap).collect());
    }
    let msg = format!(
        "missing {missing:?}: install them with `apt-get install -y rsyslog bsdutils` \
         (scripts/test.sh does this)"
    );
    if std::env::var("STORYLINE_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("STORYLINE_REQUIRE_TOOLS=1 and {msg}");
    }
    eprintln!("skipping: {msg}");
    None
}

/// `YYYY/MM/DD HH:MM:SS` now, in UTC (PAN-OS time format).
fn panos_now() -> String {
    let t = Timestamp::now().to_rfc3339();
    t[..19].replace('-', "/").replace('T', " ")
}

/// A PAN-OS TRAFFIC record (CSV, as a firewall sends it over syslog) with event id `SERIAL:seq`.
fn panos_line(seq: u32) -> String {
    let t = panos_now();
    let sport = 20_000 + seq;
    format!(
        "1,{t},{SERIAL},TRAFFIC,end,2561,{t},10.10.1.15,93.184.216.34,198.51.100.7,93.184.216.34,\
         \"allow web, general\",alice,,ssl,vsys1,trust,untrust,ethernet1/2,ethernet1/1,Forward-to-SIEM,\
         {t},{seq},1,{sport},443,40123,443,0x400053,tcp,allow,7799,1830,5969,22,{t},2,\
         computer-and-internet-info,0,{seq},0x0,10.0.0.0-10.255.255.255,United States,0,12,10,tcp-fin,\
         0,0,0,0,,PA-3220,from-policy,,,0,,0,,N/A,0,0,0,0"
    )
}

fn want(sensor: &str, seqs: impl IntoIterator<Item = u32>) -> BTreeSet<(String, String)> {
    seqs.into_iter()
        .map(|s| (sensor.to_string(), format!("{SERIAL}:{s}")))
        .collect()
}

fn syslog(port: u16, protocol: Protocol, format: &str) -> SyslogConfig {
    let mut c = SyslogConfig::new(
        format!("127.0.0.1:{port}").parse().unwrap(),
        protocol,
        format,
    );
    c.batch_wait = Duration::from_millis(50);
    c
}

fn logger(bin: &Path, port: u16, args: &[&str], tag: &str, msg: &str) {
    let out = Command::new(bin)
        .args([
            "-n",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "-t",
            tag,
            "-p",
            "local0.info",
        ])
        .args(args)
        .arg(msg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "logger {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn logger_rfc5424_and_rfc3164_over_tcp_and_udp_become_events() {
    let Some(tools) = require_tools(&["logger"]) else {
        return;
    };
    let logger_bin = &tools[0];
    let dir = tempfile::tempdir().unwrap();
    let (tcp, udp) = (free_port(), free_port());
    let mut tcp_src = syslog(tcp, Protocol::Tcp, "panos");
    // No fixed sensor: the sensor comes from the TAG / APP-NAME; an unknown one is dead-lettered.
    tcp_src
        .app_name_sensors
        .insert("panos-fw".into(), "fw-tcp".into());
    let mut udp_src = syslog(udp, Protocol::Udp, "panos");
    udp_src.sensor = Some("fw-udp".into());
    let svc = start(
        &dir.path().join("data"),
        SourcesConfig {
            syslog: vec![tcp_src, udp_src],
            ..SourcesConfig::default()
        },
    );

    let tcp_cases: [&[&str]; 4] = [
        &["--tcp", "--rfc5424"],
        &["--tcp", "--rfc5424", "--octet-count"],
        &["--tcp", "--rfc3164"],
        &["--tcp", "--rfc3164", "--octet-count"],
    ];
    for (i, args) in tcp_cases.iter().enumerate() {
        logger(
            logger_bin,
            tcp,
            args,
            "panos-fw",
            &panos_line(100 + i as u32),
        );
    }
    let udp_cases: [&[&str]; 2] = [&["--udp", "--rfc5424"], &["--udp", "--rfc3164"]];
    for (i, args) in udp_cases.iter().enumerate() {
        logger(
            logger_bin,
            udp,
            args,
            "anything",
            &panos_line(200 + i as u32),
        );
    }
    logger(
        logger_bin,
        tcp,
        &["--tcp", "--rfc3164"],
        "unmapped-app",
        &panos_line(300),
    );

    let mut expected = want("fw-tcp", 100..104);
    expected.extend(want("fw-udp", 200..202));
    svc.wait_stored(&expected, Duration::from_secs(20), "logger");
    assert_eq!(svc.stored().len(), 6, "{:?}", svc.stored());

    let dead = (0..200)
        .find_map(|_| {
            let d = svc.store.dead_letters("t", None, 100).unwrap();
            if d.is_empty() {
                std::thread::sleep(Duration::from_millis(50));
                None
            } else {
                Some(d)
            }
        })
        .expect("the message from an unmapped APP-NAME is dead-lettered");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].code, "unknown_sensor");
    assert_eq!(dead[0].source, format!("syslog_tcp:127.0.0.1:{tcp}"));
    assert_eq!(dead[0].format.as_deref(), Some("panos"));
    assert!(
        dead[0].reason.contains("\"unmapped-app\""),
        "{}",
        dead[0].reason
    );
    let raw = String::from_utf8_lossy(&dead[0].raw);
    assert!(
        raw.contains("unmapped-app: 1,") && raw.contains(&format!("{SERIAL},TRAFFIC")),
        "{raw}"
    );

    let metrics = reqwest::blocking::get(format!("{}/metrics", svc.base))
        .unwrap()
        .text()
        .unwrap();
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .unwrap_or_else(|| panic!("{series} not in /metrics:\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(
        value("storyline_source_dropped_total{source=\"syslog_udp\"}"),
        0.0
    );
    assert!(value("storyline_source_received_total{source=\"syslog_tcp\"}") >= 5.0);
    assert!(value("storyline_source_received_total{source=\"syslog_udp\"}") >= 2.0);
    svc.shutdown();
}

#[test]
fn rsyslogd_forwards_octet_counted_to_storyline() {
    let Some(tools) = require_tools(&["logger", "rsyslogd"]) else {
        return;
    };
    let (logger_bin, rsyslogd) = (&tools[0], &tools[1]);
    let dir = tempfile::tempdir().unwrap();
    let (ietf, bsd, relay) = (free_tcp_port(), free_tcp_port(), free_port());
    let mut ietf_src = syslog(ietf, Protocol::Tcp, "panos");
    ietf_src.sensor = Some("fw-via-rsyslog".into());
    let mut bsd_src = syslog(bsd, Protocol::Tcp, "panos");
    bsd_src
        .app_name_sensors
        .insert("panos-fw".into(), "fw-via-rsyslog-bsd".into());
    let svc = start(
        &dir.path().join("data"),
        SourcesConfig {
            syslog: vec![ietf_src, bsd_src],
            ..SourcesConfig::default()
        },
    );

    // rsyslogd as a child with its own config: no imuxsock/imklog (no system log is touched), input on a
    // loopback port, forwarding to Storyline over TCP with octet counting — in RFC 5424 (the recommended
    // template, with the disk-assisted queue of docs/sources.md) and, for messages that arrived as
    // RFC 3164, in rsyslog's default traditional format.
    let conf = format!(
        r#"global(workDirectory="{{work}}")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="{relay}" ruleset="to_storyline")
input(type="imudp" address="127.0.0.1" port="{relay}" ruleset="to_storyline")
ruleset(name="to_storyline") {{
  action(type="omfwd" target="127.0.0.1" port="{ietf}" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
         queue.type="LinkedList" queue.filename="storyline_fwd" queue.maxDiskSpace="1g"
         queue.saveOnShutdown="on" action.resumeRetryCount="-1")
  if $protocol-version == "0" then {{
    action(type="omfwd" target="127.0.0.1" port="{bsd}" protocol="tcp" TCP_Framing="octet-counted")
  }}
}}
"#,
    );
    let child = rsyslog::Rsyslogd::start(rsyslogd, &dir.path().join("rsyslog"), &conf, relay);

    let cases: [(&[&str], u32); 4] = [
        (&["--tcp", "--rfc5424"], 400),
        (&["--tcp", "--rfc3164"], 401),
        (&["--udp", "--rfc3164"], 402),
        (&["--udp", "--rfc5424"], 403),
    ];
    for (args, seq) in cases {
        logger(logger_bin, relay, args, "panos-fw", &panos_line(seq));
    }
    let mut expected = want("fw-via-rsyslog", 400..404);
    expected.extend(want("fw-via-rsyslog-bsd", [401, 402]));
    let diagnostics = || child.diagnostics();
    svc.wait_stored(
        &expected,
        Duration::from_secs(30),
        &format!("rsyslog forwarding; {}", diagnostics()),
    );
    assert_eq!(svc.stored(), expected);
    let dead = svc.store.dead_letters("t", None, 100).unwrap();
    assert!(dead.is_empty(), "{dead:?}");
    drop(child);
    svc.shutdown();
}

fn zeek_line(n: u32) -> String {
    let ts = Timestamp::now().as_millis() as f64 / 1000.0;
    format!(
        "{{\"ts\":{ts},\"uid\":\"C{n:017}\",\"id.orig_h\":\"10.10.1.15\",\"id.orig_p\":{port},\
         \"id.resp_h\":\"93.184.216.34\",\"id.resp_p\":443,\"proto\":\"tcp\",\"service\":\"ssl\",\
         \"duration\":2.5,\"orig_bytes\":1198,\"resp_bytes\":5437,\"conn_state\":\"SF\"}}",
        port = 30_000 + n
    )
}

fn append(path: &Path, lines: std::ops::Range<u32>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for n in lines {
        writeln!(f, "{}", zeek_line(n)).unwrap();
    }
}

fn wait_count(svc: &Running, sensor: &str, n: usize) {
    let started = Instant::now();
    while svc.count_from(sensor) < n {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} of {n} events from {sensor} stored",
            svc.count_from(sensor)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_followed_file_survives_a_restart_and_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("zeek");
    std::fs::create_dir_all(&logs).unwrap();
    let conn = logs.join("conn.log");
    append(&conn, 0..5);
    let mut file = FileConfig::new(&conn, "zeek", "zeek-core");
    file.poll_interval = Duration::from_millis(50);
    file.rotate_wait = Duration::from_millis(200);
    let sources = SourcesConfig {
        file: vec![file],
        ..SourcesConfig::default()
    };
    let data = dir.path().join("data");
    let svc = start(&data, sources.clone());
    wait_count(&svc, "zeek-core", 5);
    svc.shutdown();
    // The position lives beside the data directory.
    let state_dir = dir.path().join("data.sources");
    let state = storyline_io::source::file::state_file(&state_dir, &conn);
    let pos: storyline_io::source::file::Position =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(pos.line, 5);
    assert_eq!(pos.offset, std::fs::metadata(&conn).unwrap().len());

    // While stopped: more lines, then a rotation by rename and a new file.
    append(&conn, 5..8);
    std::fs::rename(&conn, logs.join("conn.log.1")).unwrap();
    append(&conn, 8..10);
    let svc = start(&data, sources.clone());
    wait_count(&svc, "zeek-core", 10);
    // And while running: copytruncate.
    std::fs::copy(&conn, logs.join("conn.log.2")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&conn)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    append(&conn, 10..12);
    wait_count(&svc, "zeek-core", 12);
    assert_eq!(svc.count_from("zeek-core"), 12);
    svc.shutdown();
}

#[test]
fn the_configurations_in_docs_sources_md_are_valid() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/sources.md"),
    )
    .unwrap();
    let blocks: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 4, "{} toml blocks", blocks.len());
    for b in blocks {
        let c = Config::parse(b).unwrap_or_else(|e| panic!("{e}\n{b}"));
        assert!(!c.sources.is_empty(), "{b}");
    }
}
