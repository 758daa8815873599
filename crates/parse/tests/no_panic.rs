//! Parsers must survive anything: random bytes, damaged copies of valid envelopes, and JSON that uses
//! the formats' field names with values of every type (the input most likely to reach deep code paths).

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use storyline_parse::{
    parse_envelope, parse_record, HeaderTracker, Limits, Parsed, Rejection, FORMATS,
};

const FIXTURES: &[(&str, &str)] = &[
    ("zeek", include_str!("fixtures/zeek_conn.json")),
    ("zeek", include_str!("fixtures/zeek_dns.json")),
    ("zeek", include_str!("fixtures/zeek_http.json")),
    ("suricata", include_str!("fixtures/suricata_flow.json")),
    ("suricata", include_str!("fixtures/suricata_dns_v2.json")),
    ("suricata", include_str!("fixtures/suricata_alert.json")),
    (
        "suricata",
        include_str!("fixtures/suricata_netflow_icmp.json"),
    ),
    ("aws_vpc", include_str!("fixtures/aws_vpc_accept.log")),
    ("aws_vpc", include_str!("fixtures/aws_vpc_reject.json")),
    ("sysmon", include_str!("fixtures/sysmon_3.json")),
    ("panos", include_str!("fixtures/panos_traffic.log")),
    ("panos", include_str!("fixtures/panos_threat.log")),
    ("ecs", include_str!("fixtures/ecs.json")),
    ("zeek_tsv", include_str!("fixtures/zeek_conn.tsv")),
    ("zeek_tsv", include_str!("fixtures/zeek_dns.tsv")),
    ("nfdump", include_str!("fixtures/nfdump_flow.csv")),
    ("nfdump", include_str!("fixtures/nfdump_ipfix.json")),
    (
        "argus",
        "1795255200.123456,1795255202.641518,10.10.1.15,51742,93.184.216.34,443,tcp,22,7799",
    ),
    ("gcp_vpc", include_str!("fixtures/gcp_vpc.json")),
    ("cef", include_str!("fixtures/cef_firewall.log")),
    ("cef", include_str!("fixtures/cef_proxy.log")),
];

/// Each fixture as an envelope line, with the record native (JSON formats) or as a string.
fn envelopes() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (format, text) in FIXTURES {
        let text = text.trim();
        out.push(
            json!({"format": format, "sensor": "s1", "record": text})
                .to_string()
                .into_bytes(),
        );
        if text.starts_with('{') {
            out.push(
                format!(r#"{{"format":"{format}","sensor":"s1","record":{text}}}"#).into_bytes(),
            );
        }
    }
    out
}

/// Checks what must hold for any outcome.
fn check(result: Result<Parsed, Rejection>, sensor: &str) -> Result<(), TestCaseError> {
    match result {
        Ok(p) => {
            prop_assert_eq!(p.event.observer.name.as_str(), sensor);
            prop_assert!(!p.event.event.id.is_empty());
            let _ = p.event.to_ecs_json();
            prop_assert_eq!(
                storyline_model::Event::decode(&p.event.encode()).ok(),
                Some(p.event)
            );
        }
        Err(r) => {
            let msg = r.to_string();
            prop_assert!(!msg.contains('\n'), "{}", msg);
            prop_assert!(!r.code().is_empty());
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Truncate(usize),
    Repeat(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let tokens = prop::sample::select(vec![
        &b"\""[..],
        b"\\",
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"null",
        b"-",
        b"1e999",
        b"\xff",
        b"\\u0000",
        b"\\ud800",
        b"TRAFFIC",
        b",THREAT,",
        b" ",
        b"0.0.0.0",
        b"::",
        b"99999999999999999999",
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), 1..16usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), tokens).prop_map(|(i, t)| Mutation::Insert(i, t.to_vec())),
        (any::<usize>(), vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1..64usize).prop_map(|(i, n)| Mutation::Repeat(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len().max(1);
    match m {
        Mutation::Set(i, b) => {
            if let Some(x) = bytes.get_mut(i % len) {
                *x = *b;
            }
        }
        Mutation::Delete(i, n) => {
            let start = (i % len).min(bytes.len());
            let end = (start + n).min(bytes.len());
            bytes.drain(start..end);
        }
        Mutation::Insert(i, t) => {
            let at = (i % len).min(bytes.len());
            bytes.splice(at..at, t.iter().copied());
        }
        Mutation::Truncate(i) => bytes.truncate(i % len),
        Mutation::Repeat(i, n) => {
            let start = (i % len).min(bytes.len());
            let end = (start + n).min(bytes.len());
            let chunk = bytes[start..end].to_vec();
            bytes.splice(end..end, chunk);
        }
    }
}

/// Keys the parsers look at, so random objects exercise real mappings rather than being ignored.
const KEYS: &[&str] = &[
    "@timestamp",
    "ts",
    "timestamp",
    "event_type",
    "_path",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "id",
    "orig_h",
    "proto",
    "service",
    "uid",
    "orig_bytes",
    "duration",
    "query",
    "answers",
    "TTLs",
    "qtype_name",
    "method",
    "host",
    "uri",
    "status_code",
    "server_name",
    "src_ip",
    "src_port",
    "dest_ip",
    "dest_port",
    "flow_id",
    "flow",
    "start",
    "end",
    "bytes_toserver",
    "netflow",
    "dns",
    "rrname",
    "rdata",
    "ttl",
    "grouped",
    "queries",
    "http",
    "url",
    "status",
    "tls",
    "sni",
    "alert",
    "signature",
    "icmp_type",
    "winlog",
    "event_id",
    "record_id",
    "computer_name",
    "event_data",
    "SourceIp",
    "SourcePort",
    "Image",
    "ProcessId",
    "Initiated",
    "version",
    "srcaddr",
    "dstport",
    "protocol",
    "action",
    "log-status",
    "source",
    "destination",
    "ip",
    "port",
    "nat",
    "event",
    "network",
    "source.ip",
    "community_id",
    "fields",
    "types",
    "line",
    "path",
    "separator",
    "type",
    "t_first",
    "t_last",
    "first",
    "src4_addr",
    "dst6_addr",
    "src_port",
    "in_bytes",
    "out_packets",
    "direction",
    "jsonPayload",
    "connection",
    "src_ip",
    "dest_port",
    "reporter",
    "bytes_sent",
    "start_time",
    "end_time",
    "src_instance",
    "vm_name",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0u32..70_000).prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "-",
            "3",
            "tcp",
            "TCP",
            "icmp",
            "10.0.0.1",
            "fe80::1%eth0",
            "2026-11-21T10:00:00+0000",
            "2026/11/21 10:00:00",
            "1795255200.5",
            "true",
            "NOERROR",
            "A",
            "/x?y",
            "C:\\a\\b.exe",
            "ACCEPT",
            "2",
            "3",
            "query",
            "answer",
        ])
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// Text records built from the tokens the text formats split on and look for.
fn arb_text_record() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        ",",
        " ",
        "\"",
        "TRAFFIC",
        "THREAT",
        "2",
        "6",
        "-",
        "10.0.0.1",
        "0.0.0.0",
        "2026/11/21 10:00:00",
        "1795255200",
        "ACCEPT",
        "NODATA",
        "tcp",
        "allow",
        "end",
        "99999",
        "é",
        "\t",
        "\n",
        "#fields\tts\tid.orig_h\tid.orig_p\tanswers\n",
        "#types\ttime\taddr\tport\tvector[string]\n",
        "#separator \\x09\n",
        "#separator \n",
        "(empty)",
        "\\x",
        "\\x09",
        "ts,sa,da,pr\n",
        "StartTime,SrcAddr,DstAddr,Proto,Sport\n",
        "Summary\n",
        "2026-11-21 10:00:00.123",
        "0x0008",
        "CEF:0|",
        "|",
        "\\|",
        "=",
        "\\=",
        "\\",
        " rt=",
        " src=",
        " spt=",
        " cs1Label=Rule",
        " cs1=",
        " start=",
        " deviceDirection=",
        "Nov 21 2026 10:00:00",
        "1795255200123",
    ]);
    vec(token, 0..120).prop_map(|t| t.concat())
}

const TEXT_FORMATS: &[&str] = &["panos", "aws_vpc", "zeek_tsv", "nfdump", "argus", "cef"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in vec(any::<u8>(), 0..1024)) {
        let limits = Limits::default();
        check(parse_envelope(&bytes, &limits), "s1")?;
        for f in FORMATS {
            check(parse_record(f, "s1", &bytes, &limits), "s1")?;
        }
    }

    #[test]
    fn mutated_envelopes(which in any::<prop::sample::Index>(), muts in vec(mutation(), 1..4)) {
        let all = envelopes();
        let mut line = which.get(&all).clone();
        for m in &muts {
            apply(&mut line, m);
        }
        let sensor = "s1";
        match parse_envelope(&line, &Limits::default()) {
            // A mutation may hit the sensor name itself; then there is nothing sensor-specific to check.
            Ok(p) if p.sensor != sensor => {}
            other => check(other, sensor)?,
        }
    }

    #[test]
    fn json_with_format_field_names(
        format in prop::sample::select(FORMATS),
        record in arb_json(),
        with_base in any::<bool>(),
    ) {
        // Random objects rarely carry a valid timestamp, so half start from one that passes the
        // required-field checks; random keys then add to or override it.
        let record = match (with_base, record) {
            (true, Value::Object(extra)) => {
                let mut base = json!({
                    "@timestamp": "2026-11-21T10:00:00Z", "ts": 1795255200.5,
                    "timestamp": "2026-11-21T10:00:00+0000", "event_type": "dns",
                    "winlog.event_id": 3, "version": 2, "start": 1795255200,
                });
                if let Value::Object(b) = &mut base {
                    b.extend(extra);
                }
                base
            }
            (_, r) => r,
        };
        let line = json!({"format": format, "sensor": "s1", "record": record}).to_string();
        check(parse_envelope(line.as_bytes(), &Limits::default()), "s1")?;
        let as_string = json!({"format": format, "sensor": "s1", "record": record.to_string()}).to_string();
        check(parse_envelope(as_string.as_bytes(), &Limits::default()), "s1")?;
    }

    #[test]
    fn token_soup_text_records(format in prop::sample::select(TEXT_FORMATS), text in arb_text_record()) {
        check(parse_record(format, "s1", text.as_bytes(), &Limits::default()), "s1")?;
    }

    /// A stream of lines (headers among them, in any order) through one tracker per format.
    #[test]
    fn token_soup_streams_through_a_header_tracker(
        format in prop::sample::select(TEXT_FORMATS),
        lines in vec(arb_text_record(), 0..8),
    ) {
        let mut t = HeaderTracker::new(format).expect("known format");
        for line in lines.iter().flat_map(|l| l.split('\n')) {
            if let Some(r) = t.parse_line("s1", line.as_bytes(), &Limits::default()) {
                check(r, "s1")?;
            }
        }
    }

    /// Damaged copies of each fixture, whole files included, through a tracker.
    #[test]
    fn mutated_fixture_streams(which in any::<prop::sample::Index>(), muts in vec(mutation(), 1..4)) {
        let (format, text) = *which.get(FIXTURES);
        let mut bytes = text.as_bytes().to_vec();
        for m in &muts {
            apply(&mut bytes, m);
        }
        let mut t = HeaderTracker::new(format).expect("known format");
        for line in bytes.split(|b| *b == b'\n') {
            if let Some(r) = t.parse_line("s1", line, &Limits::default()) {
                check(r, "s1")?;
            }
        }
        check(parse_record(format, "s1", &bytes, &Limits::default()), "s1")?;
    }
}

#[test]
fn unmutated_envelopes_all_parse() {
    for line in envelopes() {
        let p = parse_envelope(&line, &Limits::default());
        assert!(
            p.is_ok(),
            "{}: {:?}",
            String::from_utf8_lossy(&line),
            p.err()
        );
    }
}

#[test]
fn deep_nesting_is_rejected_not_overflowed() {
    let deep = format!(
        r#"{{"format":"ecs","sensor":"s","record":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(parse_envelope(deep.as_bytes(), &Limits::default()).is_err());
    let deep_record = format!(r#"{{"a":{}1{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
    for f in FORMATS {
        assert!(parse_record(f, "s", deep_record.as_bytes(), &Limits::default()).is_err());
    }
}
