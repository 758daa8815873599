//! Each format's fixtures (see fixtures/README.md for the documentation they follow) and the fields
//! they must map to.

use std::net::IpAddr;
use storyline_model::ids::content_event_id;
use storyline_model::Timestamp;
use storyline_parse::{parse_envelope, parse_record, Limits, Parsed};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("fixtures/", $name))
    };
}

fn parse<'a>(format: &str, raw: &'a [u8]) -> Parsed<'a> {
    match parse_record(format, "sensor-1", raw, &Limits::default()) {
        Ok(p) => p,
        Err(e) => panic!("{format}: {e}"),
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn content_id(p: &Parsed) -> String {
    content_event_id(&p.format, &p.sensor, &p.raw).to_string()
}

#[test]
fn zeek_conn() {
    let p = parse("zeek", fixture!("zeek_conn.json"));
    let e = &p.event;
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:00.123456Z"));
    assert_eq!(e.source.ip, ip("10.10.1.15"));
    assert_eq!(e.source.port, Some(51742));
    assert_eq!(e.destination.ip, ip("93.184.216.34"));
    assert_eq!(e.destination.port, Some(443));
    assert_eq!(e.network.transport.as_deref(), Some("tcp"));
    assert_eq!(e.network.iana_number, Some(6));
    assert_eq!(
        e.network.protocol.as_deref(),
        Some("tls"),
        "Zeek's ssl is called tls"
    );
    assert_eq!(
        (e.source.bytes, e.destination.bytes),
        (Some(1198), Some(5437))
    );
    assert_eq!(
        (e.source.packets, e.destination.packets),
        (Some(12), Some(10))
    );
    assert_eq!(e.network.bytes, Some(1198 + 5437));
    assert_eq!(e.event.duration, Some(2_518_062_000));
    assert_eq!(e.session.id.as_deref(), Some("CHhAvVGS1DHFjwGM9"));
    assert_eq!(e.event.dataset.as_deref(), Some("zeek.conn"));
    assert_eq!(e.observer.name, "sensor-1");
    assert_eq!(e.observer.product.as_deref(), Some("Zeek"));
    assert_eq!(e.event.id, content_id(&p), "Zeek has no own id");
    assert!(e.network.community_id.is_some(), "computed by finish()");
    assert_eq!(e.related.ip.len(), 2);
}

#[test]
fn zeek_dns() {
    let e = parse("zeek", fixture!("zeek_dns.json")).event;
    assert_eq!(
        e.event.dataset.as_deref(),
        Some("zeek.dns"),
        "detected from `query`"
    );
    assert_eq!(e.network.protocol.as_deref(), Some("dns"));
    assert_eq!(e.network.transport.as_deref(), Some("udp"));
    assert_eq!(e.dns.question.name.as_deref(), Some("www.example.com"));
    assert_eq!(e.dns.question.kind.as_deref(), Some("A"));
    assert_eq!(e.dns.response_code.as_deref(), Some("NOERROR"));
    assert_eq!(e.dns.answers.len(), 2);
    assert_eq!(e.dns.answers[0].data, "www.example.com.edgekey.net");
    assert_eq!(e.dns.answers[0].ttl, Some(300));
    assert_eq!(e.dns.answers[0].kind, None);
    assert_eq!(e.dns.answers[1].data, "93.184.216.34");
    assert_eq!(e.dns.answers[1].ttl, Some(60));
    assert_eq!(e.dns.answers[1].kind.as_deref(), Some("A"));
}

#[test]
fn zeek_http_with_path_and_iso_timestamps() {
    let e = parse("zeek", fixture!("zeek_http.json")).event;
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:01.5Z"));
    assert_eq!(e.event.dataset.as_deref(), Some("zeek.http"));
    assert_eq!(e.url.domain.as_deref(), Some("www.example.com"));
    assert_eq!(e.url.path.as_deref(), Some("/index.html"));
    assert_eq!(
        e.url.full.as_deref(),
        Some("http://www.example.com/index.html?lang=en")
    );
    assert_eq!(e.http.request.method.as_deref(), Some("GET"));
    assert_eq!(e.http.response.status_code, Some(200));
    // http.log has no `proto`; TCP is implied, which gives the Community ID that joins it to conn.log.
    assert_eq!(e.network.transport.as_deref(), Some("tcp"));
    assert!(e.network.community_id.is_some());
}

#[test]
fn zeek_ssl_joins_its_conn_record() {
    let ssl = parse("zeek", fixture!("zeek_ssl.json")).event;
    assert_eq!(ssl.event.dataset.as_deref(), Some("zeek.ssl"));
    assert_eq!(ssl.tls.server_name.as_deref(), Some("www.example.com"));
    assert_eq!(ssl.network.protocol.as_deref(), Some("tls"));
    let conn = parse("zeek", fixture!("zeek_conn.json")).event;
    assert_eq!(ssl.network.community_id, conn.network.community_id);
    assert_eq!(ssl.session.id, conn.session.id);
}

#[test]
fn zeek_nested_id_and_millisecond_ts() {
    let raw = br#"{"ts":1795255200123,"id":{"orig_h":"fe80::1%eth0","orig_p":128,"resp_h":"fe80::2","resp_p":129},"proto":"icmp"}"#;
    let e = parse("zeek", raw).event;
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:00.123Z"));
    assert_eq!(e.source.ip, ip("fe80::1"));
    assert_eq!(e.network.transport.as_deref(), Some("ipv6-icmp"));
    assert_eq!(e.network.iana_number, Some(58));
}

#[test]
fn suricata_flow() {
    let p = parse("suricata", fixture!("suricata_flow.json"));
    let e = &p.event;
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:05.123456Z"));
    assert_eq!(e.source.ip, ip("10.10.1.15"));
    assert_eq!(e.source.port, Some(51742));
    assert_eq!(e.destination.ip, ip("93.184.216.34"));
    assert_eq!(e.destination.port, Some(443));
    assert_eq!(e.network.transport.as_deref(), Some("tcp"));
    assert_eq!(e.network.protocol.as_deref(), Some("tls"));
    assert_eq!(e.session.id.as_deref(), Some("1234567890123456"));
    assert_eq!(
        (e.source.bytes, e.destination.bytes),
        (Some(1830), Some(5969))
    );
    assert_eq!(
        (e.source.packets, e.destination.packets),
        (Some(12), Some(10))
    );
    assert_eq!(e.event.duration, Some(2_518_062_000));
    assert_eq!(e.event.dataset.as_deref(), Some("suricata.flow"));
    assert_eq!(e.observer.product.as_deref(), Some("Suricata"));
    assert_eq!(e.event.id, content_id(&p));
    // The fixture's community_id is the real one for its tuple; Zeek's report of the flow matches.
    let zeek = parse("zeek", fixture!("zeek_conn.json")).event;
    assert_eq!(
        e.network.community_id.as_deref(),
        Some("1:zCu+VKUfzGTjHXzfd5+sBimJp2s=")
    );
    assert_eq!(zeek.network.community_id, e.network.community_id);
}

#[test]
fn suricata_dns_v2() {
    let e = parse("suricata", fixture!("suricata_dns_v2.json")).event;
    assert_eq!(e.network.protocol.as_deref(), Some("dns"));
    assert_eq!(e.network.transport.as_deref(), Some("udp"));
    assert_eq!(e.dns.question.name.as_deref(), Some("www.example.com"));
    assert_eq!(e.dns.question.kind.as_deref(), Some("A"));
    assert_eq!(e.dns.response_code.as_deref(), Some("NOERROR"));
    assert_eq!(e.dns.answers.len(), 2);
    assert_eq!(e.dns.answers[0].kind.as_deref(), Some("CNAME"));
    assert_eq!(e.dns.answers[0].ttl, Some(300));
    assert_eq!(e.dns.answers[1].data, "93.184.216.34");
    assert_eq!(e.session.id.as_deref(), Some("987654321"));
}

#[test]
fn suricata_dns_v1_per_answer_record() {
    let e = parse("suricata", fixture!("suricata_dns_v1.json")).event;
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:00.01Z"));
    assert_eq!(e.dns.answers.len(), 1);
    assert_eq!(e.dns.answers[0].data, "93.184.216.34");
    assert_eq!(e.dns.answers[0].kind.as_deref(), Some("A"));
    assert_eq!(e.dns.answers[0].ttl, Some(60));
    assert_eq!(
        e.dns.question.name.as_deref(),
        Some("www.example.com.edgekey.net")
    );
    assert_eq!(
        e.dns.question.kind, None,
        "a v1 answer's rrtype is the answer's type"
    );
}

#[test]
fn suricata_dns_query_and_grouped_and_v3() {
    let q = br#"{"timestamp":"2026-11-21T10:00:00Z","event_type":"dns","src_ip":"10.10.1.15","src_port":53211,"dest_ip":"10.10.0.2","dest_port":53,"proto":"UDP","dns":{"type":"query","id":1,"rrname":"example.org","rrtype":"AAAA","tx_id":0}}"#;
    let e = parse("suricata", q).event;
    assert_eq!(e.dns.question.name.as_deref(), Some("example.org"));
    assert_eq!(e.dns.question.kind.as_deref(), Some("AAAA"));
    assert!(e.dns.answers.is_empty());

    let g = br#"{"timestamp":"2026-11-21T10:00:00Z","event_type":"dns","dns":{"version":2,"type":"answer","rrname":"example.org","rrtype":"A","rcode":"NOERROR","grouped":{"A":["192.0.2.1","192.0.2.2"]}}}"#;
    let e = parse("suricata", g).event;
    assert_eq!(e.dns.answers.len(), 2);
    assert_eq!(e.dns.answers[1].data, "192.0.2.2");
    assert_eq!(e.dns.answers[1].kind.as_deref(), Some("A"));

    let v3 = br#"{"timestamp":"2026-11-21T10:00:00Z","event_type":"dns","dns":{"version":3,"type":"response","rcode":"NXDOMAIN","queries":[{"rrname":"nope.example","rrtype":"A"}]}}"#;
    let e = parse("suricata", v3).event;
    assert_eq!(e.dns.question.name.as_deref(), Some("nope.example"));
    assert_eq!(e.dns.response_code.as_deref(), Some("NXDOMAIN"));
}

#[test]
fn suricata_http() {
    let e = parse("suricata", fixture!("suricata_http.json")).event;
    assert_eq!(e.network.protocol.as_deref(), Some("http"));
    assert_eq!(e.url.domain.as_deref(), Some("www.example.com"));
    assert_eq!(e.url.path.as_deref(), Some("/index.html"));
    assert_eq!(
        e.url.full.as_deref(),
        Some("http://www.example.com/index.html?lang=en")
    );
    assert_eq!(e.http.request.method.as_deref(), Some("GET"));
    assert_eq!(e.http.response.status_code, Some(200));
}

#[test]
fn suricata_tls() {
    let e = parse("suricata", fixture!("suricata_tls.json")).event;
    assert_eq!(e.tls.server_name.as_deref(), Some("www.example.com"));
    assert_eq!(e.network.protocol.as_deref(), Some("tls"));
}

#[test]
fn suricata_alert() {
    let e = parse("suricata", fixture!("suricata_alert.json")).event;
    assert_eq!(e.event.kind.as_deref(), Some("alert"));
    assert_eq!(e.rule.name.as_deref(), Some("ET SCAN Potential SSH Scan"));
    assert_eq!(e.event.action.as_deref(), Some("allowed"));
    assert_eq!(e.source.ip, ip("203.0.113.50"));
    assert_eq!(e.source.bytes, Some(74));
}

#[test]
fn suricata_anomaly() {
    let e = parse("suricata", fixture!("suricata_anomaly.json")).event;
    assert_eq!(e.event.dataset.as_deref(), Some("suricata.anomaly"));
    assert_eq!(e.event.action.as_deref(), Some("stream.pkt_invalid_ack"));
}

#[test]
fn suricata_netflow_icmp_type_code_in_ports() {
    let e = parse("suricata", fixture!("suricata_netflow_icmp.json")).event;
    assert_eq!(e.network.transport.as_deref(), Some("icmp"));
    assert_eq!((e.source.port, e.destination.port), (Some(8), Some(0)));
    assert_eq!((e.source.bytes, e.source.packets), (Some(336), Some(4)));
    assert_eq!(e.destination.bytes, None);
    assert_eq!(e.event.duration, Some(3_000_000_000));
}

#[test]
fn aws_vpc_text_line() {
    let p = parse("aws_vpc", fixture!("aws_vpc_accept.log"));
    let e = &p.event;
    assert!(
        !p.raw.ends_with(b"\n"),
        "the line terminator is not part of the record"
    );
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:00Z"));
    assert_eq!(e.event.duration, Some(60_000_000_000));
    assert_eq!(e.source.ip, ip("172.31.16.139"));
    assert_eq!(e.destination.ip, ip("172.31.16.21"));
    assert_eq!((e.source.port, e.destination.port), (Some(20641), Some(22)));
    assert_eq!(e.network.transport.as_deref(), Some("tcp"));
    assert_eq!(e.network.iana_number, Some(6));
    assert_eq!((e.source.packets, e.source.bytes), (Some(20), Some(4249)));
    assert_eq!((e.network.packets, e.network.bytes), (Some(20), Some(4249)));
    assert_eq!(e.event.action.as_deref(), Some("accept"));
    assert_eq!(e.event.outcome.as_deref(), Some("success"));
    assert_eq!(e.observer.vendor.as_deref(), Some("AWS"));
    assert_eq!(e.event.id, content_id(&p));
}

#[test]
fn aws_vpc_json_object() {
    let e = parse("aws_vpc", fixture!("aws_vpc_reject.json")).event;
    assert_eq!(e.source.ip, ip("172.31.9.69"));
    assert_eq!(e.destination.port, Some(3389));
    assert_eq!(e.event.action.as_deref(), Some("reject"));
    assert_eq!(e.event.outcome.as_deref(), Some("failure"));
    let hyphenated = br#"{"version":"2","account-id":"1","interface-id":"eni-1","srcaddr":"10.0.0.1","dstaddr":"10.0.0.2","srcport":"1","dstport":"2","protocol":"17","packets":"1","bytes":"40","start":"1795255200","end":"1795255201","action":"ACCEPT","log-status":"OK"}"#;
    let e = parse("aws_vpc", hyphenated).event;
    assert_eq!(e.network.transport.as_deref(), Some("udp"));
    assert_eq!(e.event.duration, Some(1_000_000_000));
}

#[test]
fn aws_vpc_nodata_has_no_tuple() {
    let e = parse("aws_vpc", fixture!("aws_vpc_nodata.log")).event;
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:00Z"));
    assert_eq!(e.source.ip, None);
    assert_eq!(e.network.transport, None);
    assert_eq!(e.event.action, None);
    assert_eq!(e.network.community_id, None);
    assert_eq!(e.event.kind_type.as_deref(), Some("info"));
}

#[test]
fn sysmon_network_connection() {
    let p = parse("sysmon", fixture!("sysmon_3.json"));
    let e = &p.event;
    assert_eq!(e.event.id, "WS-0142.corp.example.com:881234");
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:00.456Z"));
    assert_eq!(e.host.name.as_deref(), Some("WS-0142.corp.example.com"));
    assert_eq!(e.source.ip, ip("10.10.1.15"));
    assert_eq!(e.source.port, Some(51742));
    assert_eq!(e.destination.ip, ip("93.184.216.34"));
    assert_eq!(e.destination.port, Some(443));
    assert_eq!(e.network.transport.as_deref(), Some("tcp"));
    assert_eq!(e.network.direction.as_deref(), Some("egress"));
    assert_eq!(e.process.pid, Some(6412));
    assert_eq!(
        e.process.executable.as_deref(),
        Some(r"C:\Program Files\Mozilla Firefox\firefox.exe")
    );
    assert_eq!(e.process.name.as_deref(), Some("firefox.exe"));
    assert_eq!(e.user.name.as_deref(), Some(r"CORP\alice"));
    assert_eq!(e.observer.product.as_deref(), Some("Sysmon"));
    // The same flow seen by the network sensors has the same Community ID.
    let zeek = parse("zeek", fixture!("zeek_conn.json")).event;
    assert_eq!(e.network.community_id, zeek.network.community_id);
}

#[test]
fn sysmon_winlogbeat_7_numbers_and_flat_keys() {
    let raw = br#"{"@timestamp":"2026-11-21T10:00:00Z","winlog.event_id":3,"winlog.record_id":17,"winlog.computer_name":"srv1","winlog.event_data.SourceIp":"10.0.0.5","winlog.event_data.SourcePort":"445","winlog.event_data.Initiated":"false","winlog.event_data.Image":"System"}"#;
    let e = parse("sysmon", raw).event;
    assert_eq!(e.event.id, "srv1:17");
    assert_eq!(e.source.port, Some(445));
    assert_eq!(e.network.direction.as_deref(), Some("ingress"));
    assert_eq!(e.process.name.as_deref(), Some("System"));
}

#[test]
fn panos_traffic_with_syslog_header() {
    let p = parse("panos", fixture!("panos_traffic.log"));
    let e = &p.event;
    assert_eq!(e.event.id, "012801012345:7320001");
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:02Z"));
    assert_eq!(e.source.ip, ip("10.10.1.15"));
    assert_eq!(e.destination.ip, ip("93.184.216.34"));
    assert_eq!(
        (e.source.port, e.destination.port),
        (Some(51742), Some(443))
    );
    assert_eq!(e.source.nat.ip, ip("198.51.100.7"));
    assert_eq!(e.source.nat.port, Some(40123));
    assert_eq!(e.destination.nat.ip, ip("93.184.216.34"));
    assert_eq!(e.destination.nat.port, Some(443));
    assert_eq!(
        e.rule.name.as_deref(),
        Some("allow web, general"),
        "quoted CSV field"
    );
    assert_eq!(e.user.name.as_deref(), Some(r"corp\alice"));
    assert_eq!(e.network.protocol.as_deref(), Some("tls"), "App-ID ssl");
    assert_eq!(e.session.id.as_deref(), Some("34567"));
    assert_eq!(e.network.transport.as_deref(), Some("tcp"));
    assert_eq!(e.event.action.as_deref(), Some("allow"));
    assert_eq!(e.event.outcome.as_deref(), Some("success"));
    assert_eq!(e.event.kind_type.as_deref(), Some("end"));
    assert_eq!(e.network.bytes, Some(7799));
    assert_eq!(
        (e.source.bytes, e.destination.bytes),
        (Some(1830), Some(5969))
    );
    assert_eq!(e.network.packets, Some(22));
    assert_eq!(
        (e.source.packets, e.destination.packets),
        (Some(12), Some(10))
    );
    assert_eq!(e.event.duration, Some(2_000_000_000));
    assert_eq!(e.observer.kind.as_deref(), Some("firewall"));
    assert_eq!(e.related.ip.len(), 3);
    let zeek = parse("zeek", fixture!("zeek_conn.json")).event;
    assert_eq!(e.network.community_id, zeek.network.community_id);
}

#[test]
fn panos_threat_without_nat() {
    let e = parse("panos", fixture!("panos_threat.log")).event;
    assert_eq!(e.event.id, "012801012345:7320002");
    assert_eq!(e.event.kind.as_deref(), Some("alert"));
    assert_eq!(e.event.action.as_deref(), Some("alert"));
    assert_eq!(e.source.nat.ip, None, "0.0.0.0 means no NAT");
    assert_eq!(e.source.nat.port, None);
    assert_eq!(e.destination.port, Some(22));
    assert_eq!(e.rule.name.as_deref(), Some("allow-ssh"));
    assert_eq!(e.related.ip.len(), 2);
}

#[test]
fn ecs_record() {
    let p = parse("ecs", fixture!("ecs.json"));
    let e = &p.event;
    assert_eq!(e.event.id, "fw7-000123", "own id");
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:00.5Z"));
    assert_eq!(e.source.ip, ip("10.10.1.15"), "dotted key merged");
    assert_eq!(e.source.port, Some(51742));
    assert_eq!(e.source.nat.ip, ip("198.51.100.7"));
    assert_eq!(e.destination.bytes, Some(5969));
    assert_eq!(e.network.bytes, Some(1830 + 5969));
    assert_eq!(e.event.duration, Some(1_500_000_000));
    assert_eq!(e.user.name.as_deref(), Some("alice"));
    assert_eq!(e.observer.name, "sensor-1", "the envelope's sensor wins");
    assert_eq!(e.observer.vendor.as_deref(), Some("Example"));
    assert!(e.network.community_id.is_some());
}

#[test]
fn ecs_round_trips_the_models_own_json() {
    let first = parse("ecs", fixture!("ecs.json")).event;
    let text = first.to_ecs_json().to_string();
    let again = parse("ecs", text.as_bytes()).event;
    assert_eq!(again, first);
}

#[test]
fn ecs_without_id_gets_content_id() {
    let p = parse(
        "ecs",
        br#"{"@timestamp":"2026-11-21T10:00:00Z","source":{"ip":"10.0.0.1"}}"#,
    );
    assert_eq!(p.event.event.id, content_id(&p));
}

#[test]
fn envelope_with_native_object_keeps_its_exact_bytes() {
    let record = std::str::from_utf8(fixture!("zeek_conn.json"))
        .unwrap()
        .trim();
    let line = format!(r#"{{"format":"zeek","sensor":"zeek-dmz","record":{record}}}"#);
    let p = parse_envelope(line.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(p.format, "zeek");
    assert_eq!(p.sensor, "zeek-dmz");
    assert_eq!(p.raw, record.as_bytes());
    assert_eq!(p.event.observer.name, "zeek-dmz");
    // Same record, same sensor: the same id however it arrived.
    let direct = parse_record("zeek", "zeek-dmz", record.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(direct.event, p.event);
}

#[test]
fn envelope_with_string_record_uses_the_decoded_text() {
    let line_text = std::str::from_utf8(fixture!("panos_traffic.log"))
        .unwrap()
        .trim();
    let line = serde_json::json!({"format": "panos", "sensor": "pa-edge", "record": line_text, "extra": 1})
        .to_string();
    let padded = format!("  {line}\r\n");
    let p = parse_envelope(padded.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(&*p.raw, line_text.as_bytes());
    assert_eq!(p.event.event.id, "012801012345:7320001");

    // A JSON record forwarded verbatim as a string parses like the native object.
    let zeek = std::str::from_utf8(fixture!("zeek_dns.json"))
        .unwrap()
        .trim();
    let line = serde_json::json!({"format": "zeek", "sensor": "z", "record": zeek}).to_string();
    let p = parse_envelope(line.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(p.raw, zeek.as_bytes());
    assert_eq!(
        p.event.dns.question.name.as_deref(),
        Some("www.example.com")
    );
}

// ---------------------------------------------------------------------------------------------------
// Zeek TSV, nfdump, Argus, GCP VPC Flow Logs, CEF.

/// Events equal but for the id, which is the content hash of differently written records.
#[track_caller]
fn assert_same_event(a: &storyline_model::Event, b: &storyline_model::Event) {
    let (mut a, mut b) = (a.clone(), b.clone());
    a.event.id = Default::default();
    b.event.id = Default::default();
    assert_eq!(a, b);
}

#[test]
fn zeek_tsv_equals_zeek_json() {
    for (tsv, json) in [
        (
            &fixture!("zeek_conn.tsv")[..],
            &fixture!("zeek_conn.json")[..],
        ),
        (fixture!("zeek_dns.tsv"), fixture!("zeek_dns.json")),
        (fixture!("zeek_http.tsv"), fixture!("zeek_http.json")),
        (fixture!("zeek_ssl.tsv"), fixture!("zeek_ssl.json")),
    ] {
        let t = parse("zeek_tsv", tsv);
        let j = parse("zeek", json);
        assert_same_event(&t.event, &j.event);
        assert_eq!(t.format, "zeek_tsv");
        assert_eq!(t.event.event.id, content_id(&t));
    }
    let conn = parse("zeek_tsv", fixture!("zeek_conn.tsv")).event;
    assert_eq!(conn.timestamp, ts("2026-11-21T10:00:00.123456Z"));
    assert_eq!(
        conn.network.community_id.as_deref(),
        Some("1:zCu+VKUfzGTjHXzfd5+sBimJp2s=")
    );
    assert_eq!(conn.event.dataset.as_deref(), Some("zeek.conn"));
    let dns = parse("zeek_tsv", fixture!("zeek_dns.tsv")).event;
    assert_eq!(dns.dns.answers.len(), 2);
    assert_eq!(dns.dns.answers[1].ttl, Some(60));
}

/// The record line alone, with the header as JSON: the same event as the whole file.
#[test]
fn zeek_tsv_object_form() {
    let text = std::str::from_utf8(fixture!("zeek_conn.tsv")).unwrap();
    let header = |d: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("#{d}\t")))
            .unwrap()
            .to_owned()
    };
    let line = text.lines().find(|l| !l.starts_with('#')).unwrap();
    let fields: Vec<&str> = header("fields").leak().split('\t').collect();
    let obj = serde_json::json!({"path": "conn", "fields": fields, "types": header("types"), "line": line});
    let from_obj = parse("zeek_tsv", obj.to_string().as_bytes()).event;
    assert_same_event(&from_obj, &parse("zeek_tsv", text.as_bytes()).event);
    // Without types, numbers are read from text, and the result is the same.
    let untyped = serde_json::json!({"path": "conn", "fields": fields, "line": line});
    assert_same_event(
        &parse("zeek_tsv", untyped.to_string().as_bytes()).event,
        &from_obj,
    );
}

#[test]
fn zeek_tsv_header_tracker_over_concatenated_files() {
    use storyline_parse::HeaderTracker;
    let mut t = HeaderTracker::new("zeek_tsv").unwrap();
    let mut events = Vec::new();
    let stream = [&fixture!("zeek_conn.tsv")[..], fixture!("zeek_dns.tsv")].concat();
    for line in stream.split_inclusive(|b| *b == b'\n') {
        if let Some(r) = t.parse_line("sensor-1", line, &Limits::default()) {
            events.push(r.unwrap().event);
        }
    }
    assert_eq!(events.len(), 2, "header lines are not records");
    assert_same_event(&events[0], &parse("zeek", fixture!("zeek_conn.json")).event);
    assert_same_event(&events[1], &parse("zeek", fixture!("zeek_dns.json")).event);
    // A bare line without any header cannot be read.
    let line = std::str::from_utf8(fixture!("zeek_conn.tsv"))
        .unwrap()
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap();
    let mut fresh = HeaderTracker::new("zeek_tsv").unwrap();
    let r = fresh.parse_line("z", line.as_bytes(), &Limits::default());
    assert_eq!(r.unwrap().unwrap_err().code(), "missing_field");
}

#[test]
fn nfdump_csv_line() {
    let p = parse("nfdump", fixture!("nfdump_flow.csv"));
    let e = &p.event;
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:00.123Z"));
    assert_eq!(e.event.duration, Some(2_518_000_000));
    assert_eq!(e.source.ip, ip("10.10.1.15"));
    assert_eq!(e.destination.ip, ip("93.184.216.34"));
    assert_eq!(
        (e.source.port, e.destination.port),
        (Some(51742), Some(443))
    );
    assert_eq!(e.network.transport.as_deref(), Some("tcp"));
    assert_eq!((e.source.packets, e.source.bytes), (Some(12), Some(1830)));
    assert_eq!(
        (e.destination.packets, e.destination.bytes),
        (None, None),
        "NetFlow v5 has no reverse counters: zero is not reported"
    );
    assert_eq!(e.network.bytes, Some(1830));
    assert_eq!(e.network.direction.as_deref(), Some("egress"));
    assert_eq!(e.event.dataset.as_deref(), Some("nfdump.flow"));
    assert_eq!(e.event.id, content_id(&p));
    let zeek = parse("zeek", fixture!("zeek_conn.json")).event;
    assert_eq!(e.network.community_id, zeek.network.community_id);
}

#[test]
fn nfdump_whole_csv_output_through_a_tracker() {
    use storyline_parse::HeaderTracker;
    // Columns found by name: a reordered, shortened export reads the same.
    let mut t = HeaderTracker::new("nfdump").unwrap();
    let mut events = Vec::new();
    let reordered = "pr,sa,da,sp,dp,ts,td,ibyt,ipkt\nTCP,10.10.1.15,93.184.216.34,51742,443,2026-11-21 10:00:00.123,2.518,1830,12\n";
    let whole = [&fixture!("nfdump.csv")[..], reordered.as_bytes()].concat();
    for line in whole.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if let Some(r) = t.parse_line("nf-1", line, &Limits::default()) {
            events.push(r.unwrap().event);
        }
    }
    assert_eq!(events.len(), 3, "headers and the summary block are skipped");
    assert_eq!(events[1].network.transport.as_deref(), Some("udp"));
    assert_eq!(events[1].destination.port, Some(53));
    let mut a = events[0].clone();
    let mut b = events[2].clone();
    assert_eq!(b.network.direction, None, "no dir column");
    a.network.direction = None;
    (a.event.id, b.event.id) = (Default::default(), Default::default());
    assert_eq!(a.event.duration, b.event.duration);
    a.event.duration = None;
    b.event.duration = None;
    assert_eq!(a, b);
}

#[test]
fn nfdump_json_ipfix_biflow() {
    let e = parse("nfdump", fixture!("nfdump_ipfix.json")).event;
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:00.123Z"));
    assert_eq!(e.event.duration, Some(2_518_000_000));
    assert_eq!(
        (e.source.bytes, e.destination.bytes),
        (Some(1830), Some(5969))
    );
    assert_eq!(
        (e.source.packets, e.destination.packets),
        (Some(12), Some(10))
    );
    assert_eq!(e.network.bytes, Some(7799));
    assert_eq!(e.network.direction.as_deref(), Some("egress"));
    let csv = parse("nfdump", fixture!("nfdump_flow.csv")).event;
    assert_eq!(e.network.community_id, csv.network.community_id);
    let v6 = br#"{"type":"FLOW","first":"2026-11-21T10:00:00","proto":17,"src6_addr":"2001:db8::1","dst6_addr":"2001:db8::2","src_port":5353,"dst_port":53,"in_packets":1,"in_bytes":80}"#;
    let e = parse("nfdump", v6).event;
    assert_eq!(e.source.ip, ip("2001:db8::1"));
    assert!(e.network.community_id.is_some());
}

#[test]
fn argus_default_columns_with_header() {
    use storyline_parse::HeaderTracker;
    let text = std::str::from_utf8(fixture!("argus.csv")).unwrap();
    let first = text.lines().nth(1).unwrap();
    let p = parse("argus", first.as_bytes());
    let e = &p.event;
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:00.123456Z"));
    assert_eq!(e.event.duration, Some(2_518_062_000));
    assert_eq!(
        (e.source.port, e.destination.port),
        (Some(51742), Some(443))
    );
    assert_eq!(e.network.transport.as_deref(), Some("tcp"));
    assert_eq!((e.network.packets, e.network.bytes), (Some(22), Some(7799)));
    assert_eq!((e.source.bytes, e.destination.bytes), (None, None));
    assert_eq!(e.observer.product.as_deref(), Some("Argus"));
    assert_eq!(e.event.id, content_id(&p));
    let zeek = parse("zeek", fixture!("zeek_conn.json")).event;
    assert_eq!(e.network.community_id, zeek.network.community_id);

    let mut t = HeaderTracker::new("argus").unwrap();
    let events: Vec<_> = text
        .lines()
        .filter_map(|l| t.parse_line("argus-1", l.as_bytes(), &Limits::default()))
        .map(|r| r.unwrap().event)
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].network.transport.as_deref(), Some("udp"));
}

#[test]
fn argus_reordered_columns_split_counts_and_dates() {
    use storyline_parse::HeaderTracker;
    let mut t = HeaderTracker::new("argus").unwrap();
    let events: Vec<_> = std::str::from_utf8(fixture!("argus_split.csv"))
        .unwrap()
        .lines()
        .filter_map(|l| t.parse_line("argus-1", l.as_bytes(), &Limits::default()))
        .map(|r| r.unwrap().event)
        .collect();
    assert_eq!(events.len(), 2);
    let e = &events[0];
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:00.123456Z"));
    assert_eq!(e.event.duration, Some(2_518_062_000));
    assert_eq!(
        (e.source.bytes, e.destination.bytes),
        (Some(1830), Some(5969))
    );
    assert_eq!(
        (e.source.packets, e.destination.packets),
        (Some(12), Some(10))
    );
    assert_eq!(e.network.bytes, Some(7799));
    let zeek = parse("zeek", fixture!("zeek_conn.json")).event;
    assert_eq!(e.network.community_id, zeek.network.community_id);
    let icmp = &events[1];
    assert_eq!(icmp.network.transport.as_deref(), Some("icmp"));
    assert_eq!(
        (icmp.source.port, icmp.destination.port),
        (Some(8), Some(0))
    );
    assert!(icmp.network.community_id.is_some());
}

#[test]
fn gcp_vpc_reported_by_source() {
    let p = parse("gcp_vpc", fixture!("gcp_vpc.json"));
    let e = &p.event;
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:00.123456Z"), "start_time");
    assert_eq!(e.event.duration, Some(5_000_000_000));
    assert_eq!(e.source.ip, ip("10.128.0.15"));
    assert_eq!(e.destination.ip, ip("93.184.216.34"));
    assert_eq!(
        (e.source.port, e.destination.port),
        (Some(51742), Some(443))
    );
    assert_eq!(e.network.transport.as_deref(), Some("tcp"));
    assert_eq!((e.source.bytes, e.source.packets), (Some(1830), Some(12)));
    assert_eq!(e.destination.bytes, None);
    assert_eq!(e.network.direction.as_deref(), Some("egress"));
    assert_eq!(e.host.name.as_deref(), Some("web-frontend-1"));
    assert_eq!(e.event.dataset.as_deref(), Some("gcp.vpcflow"));
    assert_eq!(e.event.id, content_id(&p));
    assert!(e.network.community_id.is_some());
}

#[test]
fn gcp_vpc_reported_by_destination_and_bare_payload() {
    let e = parse("gcp_vpc", fixture!("gcp_vpc_dest.json")).event;
    assert_eq!(e.network.direction.as_deref(), Some("ingress"));
    assert_eq!(e.host.name.as_deref(), Some("bastion"));
    assert_eq!(e.destination.port, Some(22));
    let entry: serde_json::Value = serde_json::from_slice(fixture!("gcp_vpc_dest.json")).unwrap();
    let bare = entry["jsonPayload"].to_string();
    assert_same_event(&parse("gcp_vpc", bare.as_bytes()).event, &e);
}

#[test]
fn cef_firewall_with_syslog_header() {
    let p = parse("cef", fixture!("cef_firewall.log"));
    let e = &p.event;
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:02.641Z"), "rt wins");
    assert_eq!(e.event.duration, Some(2_518_000_000), "end - start");
    assert_eq!(e.source.ip, ip("10.10.1.15"));
    assert_eq!(e.destination.ip, ip("93.184.216.34"));
    assert_eq!(
        (e.source.port, e.destination.port),
        (Some(51742), Some(443))
    );
    assert_eq!(e.network.transport.as_deref(), Some("tcp"));
    assert_eq!(
        (e.source.bytes, e.destination.bytes),
        (Some(1830), Some(5969))
    );
    assert_eq!(e.network.bytes, Some(7799));
    assert_eq!(e.network.direction.as_deref(), Some("egress"));
    assert_eq!(e.source.nat.ip, ip("198.51.100.7"));
    assert_eq!(e.source.nat.port, Some(40123));
    assert_eq!(e.event.action.as_deref(), Some("accept"));
    assert_eq!(e.event.outcome.as_deref(), Some("success"));
    assert_eq!(
        e.user.name.as_deref(),
        Some(r"CORP\alice"),
        "\\\\ unescaped"
    );
    assert_eq!(e.host.name.as_deref(), Some("WS-0142"));
    assert_eq!(e.network.protocol.as_deref(), Some("https"));
    assert_eq!(
        e.rule.name.as_deref(),
        Some("allow web, general"),
        "cs1 labelled Rule Name; value with spaces"
    );
    assert_eq!(e.observer.vendor.as_deref(), Some("Example Networks"));
    assert_eq!(e.observer.product.as_deref(), Some("EdgeWall"));
    assert_eq!(e.event.dataset.as_deref(), Some("cef"));
    assert_eq!(e.event.id, content_id(&p));
    let zeek = parse("zeek", fixture!("zeek_conn.json")).event;
    assert_eq!(e.network.community_id, zeek.network.community_id);
}

#[test]
fn cef_proxy_escapes() {
    let e = parse("cef", fixture!("cef_proxy.log")).event;
    assert_eq!(e.timestamp, ts("2026-11-21T10:00:01.5Z"), "rt in epoch ms");
    assert_eq!(
        e.observer.product.as_deref(),
        Some("Secure|Gateway"),
        "\\| in the header"
    );
    assert_eq!(e.url.domain.as_deref(), Some("www.example.com"));
    assert_eq!(e.url.path.as_deref(), Some("/index.html"));
    assert_eq!(
        e.url.full.as_deref(),
        Some("http://www.example.com/index.html?lang=en"),
        "\\= in a value"
    );
    assert_eq!(e.http.request.method.as_deref(), Some("GET"));
    assert_eq!(e.network.protocol.as_deref(), Some("http"));
    assert_eq!(e.event.outcome.as_deref(), Some("success"));
    let zeek = parse("zeek", fixture!("zeek_http.json")).event;
    assert_eq!(e.network.community_id, zeek.network.community_id);
}

#[test]
fn new_formats_arrive_in_envelopes() {
    for (format, raw) in [
        ("zeek_tsv", &fixture!("zeek_conn.tsv")[..]),
        ("nfdump", fixture!("nfdump_flow.csv")),
        ("nfdump", fixture!("nfdump_ipfix.json")),
        ("gcp_vpc", fixture!("gcp_vpc.json")),
        ("cef", fixture!("cef_firewall.log")),
    ] {
        let text = std::str::from_utf8(raw).unwrap().trim_end();
        let direct = parse(format, text.as_bytes());
        let line = serde_json::json!({"format": format, "sensor": "sensor-1", "record": text});
        let line = line.to_string();
        let p = parse_envelope(line.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(p.event, direct.event, "{format}");
        if text.starts_with('{') {
            let native = format!(r#"{{"format":"{format}","sensor":"sensor-1","record":{text}}}"#);
            let p = parse_envelope(native.as_bytes(), &Limits::default()).unwrap();
            assert_eq!(p.event, direct.event, "{format} native");
        }
    }
}
