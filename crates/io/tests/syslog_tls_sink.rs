//! The syslog sink over TLS (RFC 5425) into a real `rsyslogd` receiving with its GnuTLS driver (package
//! rsyslog-gnutls): `imtcp` with `StreamDriver.Name="gtls"`, `StreamDriver.Mode="1"`, writing what it
//! receives to a file that the tests read back. Certificates come from a test CA (rcgen).
//!
//! Without the tools these tests skip, unless STORYLINE_REQUIRE_TOOLS=1 (scripts/test.sh sets it after
//! installing them), when they fail.

#[path = "support/rsyslog.rs"]
mod rsyslog;

use rsyslog::{free_tcp_port, pki, Pki, Rsyslogd};
use std::path::Path;
use std::time::{Duration, Instant};
use storyline_io::sink::backlog::dead_letters;
use storyline_io::sink::config::{SinkKind, SyslogProtocol, SyslogTlsConfig};
use storyline_io::sink::deliver::{Batch, DeliveryError, Target};
use storyline_io::sink::encode::Encoding;
use storyline_io::sink::fanout::sink_dir;
use storyline_io::sink::syslog::SyslogTarget;
use storyline_io::{SinkConfig, SinkFanout, StorySink};
use storyline_model::{Story, StoryId, Timestamp};

fn story(n: u128, version: u32) -> Story {
    let mut s = Story {
        story_id: StoryId(0x5d0c_0000 + n),
        version,
        tenant: "t".into(),
        first_seen: Timestamp::from_millis(1_795_255_201_200 + n as i64),
        last_seen: Timestamp::from_millis(1_795_255_204_000 + n as i64),
        event_count: 2,
        event_ids: vec![format!("fw:{n}").into(), format!("edr:{n}").into()],
        sensors: vec!["edr".into(), "fw".into()],
        ..Default::default()
    };
    s.fused.source.ip = Some("10.0.0.1".parse().unwrap());
    s.fused.source.port = Some(40_000 + n as u16);
    s.fused.destination.ip = Some("192.0.2.10".parse().unwrap());
    s.fused.destination.port = Some(443);
    s.fused.network.transport = Some("tcp".into());
    // Non-ASCII and a quote: the MSG must arrive byte for byte.
    s.fused.user.names = vec!["CORP\\josé \"admin\"".into()].into();
    s.fused.tls.server_names = vec![format!("host-{n}.example.net").into()].into();
    s
}

/// An rsyslogd receiving RFC 5425 on a loopback port, writing each message's raw bytes as one line.
fn receiver(
    bin: &Path,
    dir: &Path,
    pki: &Pki,
    auth_mode: &str,
) -> (Rsyslogd, u16, std::path::PathBuf) {
    let port = free_tcp_port();
    let out = dir.join("received.log");
    let conf = format!(
        r#"global(workDirectory="{{work}}"
       DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="{auth_mode}")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="stories")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="stories") {{
  action(type="omfile" file="{out}" template="raw")
}}
"#,
        ca = pki.ca.display(),
        cert = pki.server_cert.display(),
        key = pki.server_key.display(),
        out = out.display(),
    );
    (
        Rsyslogd::start(bin, &dir.join("rsyslog"), &conf, port),
        port,
        out,
    )
}

fn tls_sink(name: &str, port: u16, tls: SyslogTlsConfig) -> SinkConfig {
    SinkConfig {
        name: name.into(),
        kind: Some(SinkKind::Syslog),
        address: Some(format!("127.0.0.1:{port}")),
        protocol: Some(SyslogProtocol::Tls),
        hostname: Some("sl-1".into()),
        tls: Some(tls),
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// The (story_id, version) and MSG JSON of every received line that came from the sink.
fn received(out: &Path) -> Vec<(String, u32, serde_json::Value)> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut got = Vec::new();
    for line in text.lines() {
        let sd = "[storyline@32473 story_id=\"";
        let Some(at) = line.find(sd) else { continue };
        let rest = &line[at + sd.len()..];
        let (id, rest) = rest.split_once("\" version=\"").expect(line);
        let (version, msg) = rest.split_once("\"] ").expect(line);
        let json: serde_json::Value = serde_json::from_str(msg)
            .unwrap_or_else(|e| panic!("the MSG is not the story JSON ({e}): {line}"));
        got.push((id.to_string(), version.parse().expect(line), json));
    }
    got
}

fn wait_for(out: &Path, n: usize, rs: &Rsyslogd) -> Vec<(String, u32, serde_json::Value)> {
    let started = Instant::now();
    loop {
        let got = received(out);
        if got.len() >= n {
            return got;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} of {n} messages received: {}",
            got.len(),
            rs.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(f: &SinkFanout, name: &str) -> storyline_io::sink::fanout::SinkStatus {
    f.status().into_iter().find(|s| s.name == name).unwrap()
}

#[test]
fn stories_reach_rsyslog_over_tls_intact() {
    let Some(bin) = rsyslog::rsyslogd(true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(&dir.path().join("pki"), "storyline test CA");
    let (rs, port, out) = receiver(&bin, dir.path(), &pki, "anon");
    let cfg = tls_sink(
        "siem-tls",
        port,
        SyslogTlsConfig {
            ca: Some(pki.ca.clone()),
            server_name: Some("localhost".into()),
            ..Default::default()
        },
    );
    let data = dir.path().join("data");
    let f = SinkFanout::start(&data, &[cfg]).unwrap();
    // Two publishes (two batches on one connection), a story in two versions.
    let first: Vec<Story> = (1..=5).map(|n| story(n, 1)).collect();
    let second: Vec<Story> = vec![story(3, 2), story(6, 1)];
    f.publish(&first).unwrap();
    f.publish(&second).unwrap();
    let got = wait_for(&out, 7, &rs);
    let sent: Vec<&Story> = first.iter().chain(&second).collect();
    assert_eq!(got.len(), sent.len(), "{got:?}");
    for ((id, version, json), s) in got.iter().zip(&sent) {
        assert_eq!(id, &s.story_id.to_string());
        assert_eq!(*version, s.version);
        assert_eq!(
            json,
            &Encoding::Story.json(s).unwrap(),
            "story {id} v{version} arrived changed"
        );
    }
    let st = status(&f, "siem-tls");
    assert_eq!((st.delivered, st.dead_lettered), (7, 0), "{st:?}");
}

#[test]
fn a_client_certificate_is_presented_when_the_receiver_requires_one() {
    let Some(bin) = rsyslog::rsyslogd(true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(&dir.path().join("pki"), "storyline test CA");
    // x509/certvalid: rsyslog accepts only senders with a certificate its CA signed.
    let (rs, port, out) = receiver(&bin, dir.path(), &pki, "x509/certvalid");
    let with_cert = SyslogTlsConfig {
        ca: Some(pki.ca.clone()),
        server_name: Some("localhost".into()),
        cert: Some(pki.client_cert.clone()),
        key: Some(pki.client_key.clone()),
    };
    let f = SinkFanout::start(
        &dir.path().join("data"),
        &[tls_sink("mtls", port, with_cert)],
    )
    .unwrap();
    f.publish(&[story(1, 1), story(2, 1)]).unwrap();
    let got = wait_for(&out, 2, &rs);
    let ids: Vec<(String, u32)> = got.iter().map(|(i, v, _)| (i.clone(), *v)).collect();
    assert_eq!(
        ids,
        vec![
            (story(1, 1).story_id.to_string(), 1),
            (story(2, 1).story_id.to_string(), 1)
        ]
    );
    drop(f);

    // Without it the receiver ends the handshake, and the error says what to give.
    let mut t = SyslogTarget::new(&tls_sink(
        "no-cert",
        port,
        SyslogTlsConfig {
            ca: Some(pki.ca.clone()),
            server_name: Some("localhost".into()),
            ..Default::default()
        },
    ))
    .unwrap();
    let stories = [story(9, 1)];
    // The very first delivery fails: with TLS 1.3 the refusal comes after the client's side of the
    // handshake, and the sink waits for it rather than count stories written into a refused session.
    let err = t
        .deliver(&Batch {
            stories: &stories,
            offset: 0,
            index: 0,
            appended_ms: 0,
        })
        .expect_err("a receiver that requires a client certificate refuses the sink without one");
    let DeliveryError::Transient { error, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(
        error.contains("tls.cert") && error.contains("tls.key"),
        "{error}"
    );
    eprintln!("without a client certificate: {error}");
    assert_eq!(received(&out).len(), 2, "{}", rs.diagnostics());
}

#[test]
fn a_receiver_certificate_from_another_ca_is_refused_and_nothing_is_delivered() {
    let Some(bin) = rsyslog::rsyslogd(true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki_real = pki(&dir.path().join("pki"), "storyline test CA");
    let other = pki(&dir.path().join("other"), "some other CA");
    let (rs, port, out) = receiver(&bin, dir.path(), &pki_real, "anon");

    // The target alone: the error names the certificate problem and the keys to fix.
    let wrong_ca = SyslogTlsConfig {
        ca: Some(other.ca.clone()),
        server_name: Some("localhost".into()),
        ..Default::default()
    };
    let mut t = SyslogTarget::new(&tls_sink("wrong-ca", port, wrong_ca.clone())).unwrap();
    let stories = [story(1, 1)];
    let err = t
        .deliver(&Batch {
            stories: &stories,
            offset: 0,
            index: 0,
            appended_ms: 0,
        })
        .unwrap_err();
    let DeliveryError::Transient { error, .. } = &err else {
        panic!("a certificate problem is retried (fixable on either side): {err:?}");
    };
    for want in ["certificate", "UnknownIssuer", "tls.ca", "localhost"] {
        assert!(error.contains(want), "{want:?} missing in: {error}");
    }

    // A name the certificate does not carry is refused too, naming the name.
    let mut t = SyslogTarget::new(&tls_sink(
        "wrong-name",
        port,
        SyslogTlsConfig {
            ca: Some(pki_real.ca.clone()),
            server_name: Some("siem.example.net".into()),
            ..Default::default()
        },
    ))
    .unwrap();
    let err = format!(
        "{:?}",
        t.deliver(&Batch {
            stories: &stories,
            offset: 0,
            index: 0,
            appended_ms: 0,
        })
        .unwrap_err()
    );
    assert!(
        err.contains("siem.example.net") && err.contains("NotValidForName"),
        "{err}"
    );

    // Through the backlog: retried, never counted delivered; with max_retries the batch lands in the
    // dead letters with the reason.
    let mut cfg = tls_sink("wrong-ca", port, wrong_ca);
    cfg.max_retries = Some(2);
    let data = dir.path().join("data");
    let f = SinkFanout::start(&data, &[cfg]).unwrap();
    f.publish(&[story(1, 1), story(2, 1)]).unwrap();
    let started = Instant::now();
    while status(&f, "wrong-ca").dead_lettered < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not dead-lettered: {:?}",
            status(&f, "wrong-ca")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = status(&f, "wrong-ca");
    assert_eq!(st.delivered, 0, "{st:?}");
    assert!(st.failures >= 3, "{st:?}");
    let letters = dead_letters(&sink_dir(&data, "wrong-ca").join("dead")).unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].reason, "retries_exhausted");
    assert!(letters[0].error.contains("UnknownIssuer"), "{letters:?}");
    assert!(
        received(&out).is_empty(),
        "a story reached a receiver that was not trusted: {}",
        rs.diagnostics()
    );
}

#[test]
fn tls_configuration_mistakes_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let cfg = tls_sink(
        "bad",
        6514,
        SyslogTlsConfig {
            ca: Some(missing.clone()),
            ..Default::default()
        },
    );
    let err = SinkFanout::start(&dir.path().join("data"), &[cfg])
        .err()
        .expect("a missing CA file fails the start")
        .to_string();
    assert!(
        err.contains("tls.ca") && err.contains(&missing.display().to_string()),
        "{err}"
    );
    let pki = pki(&dir.path().join("pki"), "ca");
    let cfg = tls_sink(
        "half",
        6514,
        SyslogTlsConfig {
            ca: Some(pki.ca.clone()),
            cert: Some(pki.client_cert.clone()),
            ..Default::default()
        },
    );
    let err = SinkFanout::start(&dir.path().join("data"), &[cfg])
        .err()
        .expect("a certificate without a key fails")
        .to_string();
    assert!(err.contains("sinks[0].tls") && err.contains("key"), "{err}");
    let cfg = tls_sink(
        "mismatch",
        6514,
        SyslogTlsConfig {
            ca: Some(pki.ca.clone()),
            cert: Some(pki.client_cert.clone()),
            key: Some(pki.server_key.clone()),
            ..Default::default()
        },
    );
    let err = SinkFanout::start(&dir.path().join("data"), &[cfg])
        .err()
        .expect("a key of another certificate fails")
        .to_string();
    assert!(
        err.contains("tls.key") && err.contains("does not go with"),
        "{err}"
    );
    let mut cfg = tls_sink("plain", 6514, SyslogTlsConfig::default());
    cfg.protocol = Some(SyslogProtocol::Tcp);
    let err = SinkFanout::start(&dir.path().join("data"), &[cfg])
        .err()
        .expect("tls keys without protocol tls fail")
        .to_string();
    assert!(err.contains("sinks[0].tls"), "{err}");
}

#[test]
fn the_tls_configurations_in_docs_sinks_md_are_valid() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/sinks.md"))
            .unwrap();
    #[derive(serde::Deserialize)]
    struct Doc {
        sinks: Vec<SinkConfig>,
    }
    let tls: Vec<Vec<SinkConfig>> = doc
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .filter(|b| b.contains("protocol = \"tls\""))
        .map(|b| {
            let d: Doc = toml::from_str(b).unwrap_or_else(|e| panic!("{e}\n{b}"));
            storyline_io::sink::config::validate_all(&d.sinks)
                .unwrap_or_else(|e| panic!("{e}\n{b}"));
            d.sinks
        })
        .collect();
    assert_eq!(tls.len(), 2, "a TLS and a client-certificate example");
    assert!(tls[1][0].tls.as_ref().unwrap().cert.is_some());
}
