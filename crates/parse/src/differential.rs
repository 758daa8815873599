//! The fast path agrees with the DOM path: whenever it parses a record, the DOM path parses that
//! record to the same event and own id (and where the fast path gives up, the DOM path's answer is the
//! result, so rejections and their messages are the DOM path's by construction).
//!
//! Inputs: the fixtures, every JSON record of a generated data set (all of which the fast path must
//! handle, or it would not be fast), and records derived from those by random edits: values of every
//! type at the paths the formats read, in flat and nested spellings, duplicate keys and escapes.

use crate::formats;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use storyline_model::Event;

/// Whether the fast path handled the record; an error describes a disagreement.
fn compare(format: &str, raw: &[u8]) -> Result<bool, String> {
    let (fast, dom) = formats::paths(format).expect("a JSON format");
    let mut fast_event = Event::default();
    let fast_result = fast(raw, &mut fast_event);
    let mut dom_event = Event::default();
    let dom_result = dom(raw, &mut dom_event);
    let Ok(own) = fast_result else {
        return Ok(false);
    };
    match dom_result {
        Ok(dom_own) if dom_own == own && dom_event == fast_event => Ok(true),
        Ok(dom_own) => Err(format!(
            "{format}: the paths disagree on {}\nfast: {own:?} {fast_event:?}\ndom:  {dom_own:?} {dom_event:?}",
            String::from_utf8_lossy(raw)
        )),
        Err(e) => Err(format!(
            "{format}: fast path accepted what the DOM path rejects ({e}): {}",
            String::from_utf8_lossy(raw)
        )),
    }
}

const FIXTURES: &[(&str, &str)] = &[
    ("zeek", include_str!("../tests/fixtures/zeek_conn.json")),
    ("zeek", include_str!("../tests/fixtures/zeek_dns.json")),
    ("zeek", include_str!("../tests/fixtures/zeek_http.json")),
    ("zeek", include_str!("../tests/fixtures/zeek_ssl.json")),
    (
        "suricata",
        include_str!("../tests/fixtures/suricata_alert.json"),
    ),
    (
        "suricata",
        include_str!("../tests/fixtures/suricata_anomaly.json"),
    ),
    (
        "suricata",
        include_str!("../tests/fixtures/suricata_dns_v1.json"),
    ),
    (
        "suricata",
        include_str!("../tests/fixtures/suricata_dns_v2.json"),
    ),
    (
        "suricata",
        include_str!("../tests/fixtures/suricata_flow.json"),
    ),
    (
        "suricata",
        include_str!("../tests/fixtures/suricata_http.json"),
    ),
    (
        "suricata",
        include_str!("../tests/fixtures/suricata_netflow_icmp.json"),
    ),
    (
        "suricata",
        include_str!("../tests/fixtures/suricata_tls.json"),
    ),
    ("sysmon", include_str!("../tests/fixtures/sysmon_3.json")),
    (
        "aws_vpc",
        include_str!("../tests/fixtures/aws_vpc_reject.json"),
    ),
    ("ecs", include_str!("../tests/fixtures/ecs.json")),
    ("gcp_vpc", include_str!("../tests/fixtures/gcp_vpc.json")),
    (
        "gcp_vpc",
        include_str!("../tests/fixtures/gcp_vpc_dest.json"),
    ),
];

/// Hand-written records in shapes the fixtures lack.
const EXTRA: &[(&str, &str)] = &[
    (
        "ecs",
        r#"{"@timestamp":"2026-11-21T10:00:00.5Z","event":{"id":"fw7-000123","kind":"event","ingested":"2026-11-21T10:00:01Z","duration":1500000000},"observer":{"type":"firewall","name":"ignored"},"source":{"ip":"10.10.1.15","port":51742,"bytes":1830,"nat":{"ip":"198.51.100.7","port":40123}},"destination":{"ip":"93.184.216.34","port":443},"network":{"transport":"tcp","iana_number":6},"dns":{"question":{"name":"a.example"},"answers":[{"data":"10.0.0.1","type":"A","ttl":60}]},"related":{"ip":["10.10.1.15"]},"labels":{"ignored":"yes"}}"#,
    ),
    (
        "zeek",
        r#"{"ts":1795255200123,"id":{"orig_h":"fe80::1%eth0","orig_p":128,"resp_h":"fe80::2","resp_p":129},"proto":"icmp"}"#,
    ),
    (
        "zeek",
        r#"{"ts":"2026-11-21T10:00:00Z","id.orig_h":null,"id":{"orig_h":"10.0.0.1"},"query":"x","answers":["a",null,"10.0.0.9"],"TTLs":[1,2.5]}"#,
    ),
    (
        "suricata",
        r#"{"timestamp":"2026-11-21T10:00:00Z","event_type":"dns","src_ip":"10.10.1.15","src_port":53211,"dest_ip":"10.10.0.2","dest_port":53,"proto":"UDP","dns":{"type":"query","id":1,"rrname":"example.org","rrtype":"AAAA","tx_id":0}}"#,
    ),
    (
        "suricata",
        r#"{"timestamp":"2026-11-21T10:00:00Z","event_type":"dns","dns":{"version":2,"type":"answer","rrname":"example.org","rrtype":"A","rcode":"NOERROR","grouped":{"A":["192.0.2.1","192.0.2.2"]}}}"#,
    ),
    (
        "suricata",
        r#"{"timestamp":"2026-11-21T10:00:00Z","event_type":"dns","dns":{"version":3,"type":"response","rcode":"NXDOMAIN","queries":[{"rrname":"nope.example","rrtype":"A"}]}}"#,
    ),
    (
        "sysmon",
        r#"{"@timestamp":"2026-11-21T10:00:00Z","winlog.event_id":3,"winlog.record_id":17,"winlog.computer_name":"srv1","winlog.event_data.SourceIp":"10.0.0.5","winlog.event_data.SourcePort":"445","winlog.event_data.Initiated":"false","winlog.event_data.Image":"System"}"#,
    ),
    (
        "aws_vpc",
        r#"{"version":"2","account-id":"1","interface-id":"eni-1","srcaddr":"10.0.0.1","dstaddr":"10.0.0.2","srcport":"1","dstport":"2","protocol":"17","packets":"1","bytes":"40","start":"1795255200","end":"1795255201","action":"ACCEPT","log-status":"OK"}"#,
    ),
];

/// Generated records per JSON format (the record's exact text from each envelope).
fn generated() -> &'static BTreeMap<String, Vec<String>> {
    static CELL: OnceLock<BTreeMap<String, Vec<String>>> = OnceLock::new();
    CELL.get_or_init(|| {
        let cfg = storyline_generate::GenConfig {
            events: 6_000,
            seed: 11,
            large: 0.0,
            ..storyline_generate::GenConfig::default()
        };
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for g in storyline_generate::Generator::new(&cfg) {
            let env: BTreeMap<String, Box<serde_json::value::RawValue>> =
                serde_json::from_str(&g.envelope).expect("generated envelope");
            let record = env["record"].get();
            let ecs = crate::parse_envelope(g.envelope.as_bytes(), &Default::default())
                .expect("generated record parses")
                .event
                .to_ecs_json()
                .to_string();
            out.entry("ecs".into()).or_default().push(ecs);
            if record.starts_with('{') {
                out.entry(g.format.into())
                    .or_default()
                    .push(record.to_owned());
            }
        }
        out
    })
}

#[test]
fn fixtures_and_extras_take_the_fast_path() {
    for (format, raw) in FIXTURES.iter().chain(EXTRA) {
        if formats::paths(format).is_none() {
            continue;
        }
        let handled = compare(format, raw.trim().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        // The ECS fixture mixes dotted keys and objects, which only the DOM path merges.
        if *format != "ecs" {
            assert!(handled, "{format}: the fast path gave up on {raw}");
        }
    }
}

#[test]
fn every_generated_record_takes_the_fast_path() {
    for (format, records) in generated() {
        if formats::paths(format).is_none() {
            continue;
        }
        for raw in records {
            let handled = compare(format, raw.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            assert!(handled, "{format}: the fast path gave up on {raw}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Random edits of real records.

/// Paths each format reads, in every spelling the DOM path accepts (flat dotted keys, nested objects,
/// mixes), plus a few neighbours it must ignore.
fn paths_of(format: &str) -> &'static [&'static [&'static str]] {
    match format {
        "zeek" => &[
            &["ts"],
            &["_path"],
            &["id.orig_h"],
            &["id.orig_p"],
            &["id.resp_h"],
            &["id.resp_p"],
            &["id", "orig_h"],
            &["id", "orig_p"],
            &["id", "resp_h"],
            &["id", "resp_p"],
            &["id"],
            &["proto"],
            &["uid"],
            &["community_id"],
            &["service"],
            &["orig_bytes"],
            &["resp_bytes"],
            &["orig_pkts"],
            &["resp_pkts"],
            &["duration"],
            &["query"],
            &["qtype_name"],
            &["rcode_name"],
            &["answers"],
            &["TTLs"],
            &["answers", "[0]"],
            &["answers", "[1]"],
            &["TTLs", "[0]"],
            &["TTLs", "[1]"],
            &["method"],
            &["host"],
            &["uri"],
            &["status_code"],
            &["server_name"],
            &["version"],
            &["cipher"],
            &["id.orig"],
            &["other"],
        ],
        "suricata" => &[
            &["timestamp"],
            &["event_type"],
            &["src_ip"],
            &["src_port"],
            &["dest_ip"],
            &["dest_port"],
            &["proto"],
            &["icmp_type"],
            &["icmp_code"],
            &["flow_id"],
            &["community_id"],
            &["app_proto"],
            &["flow"],
            &["flow", "bytes_toserver"],
            &["flow", "bytes_toclient"],
            &["flow", "pkts_toserver"],
            &["flow", "pkts_toclient"],
            &["flow", "start"],
            &["flow", "end"],
            &["flow.bytes_toserver"],
            &["netflow", "bytes"],
            &["netflow", "pkts"],
            &["netflow", "start"],
            &["netflow", "end"],
            &["dns"],
            &["dns", "rrname"],
            &["dns", "rrtype"],
            &["dns", "rcode"],
            &["dns", "rdata"],
            &["dns", "ttl"],
            &["dns", "answers"],
            &["dns", "answers", "[0]"],
            &["dns", "answers", "[0]", "rdata"],
            &["dns", "answers", "[0]", "rrtype"],
            &["dns", "answers", "[0]", "ttl"],
            &["dns", "answers", "[1]", "ttl"],
            &["dns", "grouped"],
            &["dns", "grouped", "A"],
            &["dns", "grouped", "A", "[0]"],
            &["dns", "grouped", "CNAME"],
            &["dns", "queries"],
            &["dns", "queries", "[0]"],
            &["dns", "queries", "[0]", "rrname"],
            &["dns", "queries", "[0]", "rrtype"],
            &["http"],
            &["http", "hostname"],
            &["http", "url"],
            &["http", "http_method"],
            &["http", "status"],
            &["tls"],
            &["tls", "sni"],
            &["alert"],
            &["alert", "signature"],
            &["alert", "action"],
            &["anomaly"],
            &["anomaly", "event"],
            &["other"],
        ],
        "sysmon" => &[
            &["@timestamp"],
            &["winlog"],
            &["winlog", "event_id"],
            &["winlog", "computer_name"],
            &["winlog", "record_id"],
            &["winlog.event_id"],
            &["winlog.computer_name"],
            &["winlog.record_id"],
            &["winlog", "event_data"],
            &["winlog.event_data"],
            &["winlog", "event_data", "UtcTime"],
            &["winlog.event_data.UtcTime"],
            &["winlog", "event_data", "SourceIp"],
            &["winlog.event_data.SourceIp"],
            &["winlog", "event_data", "SourcePort"],
            &["winlog.event_data.SourcePort"],
            &["winlog", "event_data", "DestinationIp"],
            &["winlog.event_data.DestinationIp"],
            &["winlog", "event_data", "DestinationPort"],
            &["winlog.event_data.DestinationPort"],
            &["winlog", "event_data", "Protocol"],
            &["winlog.event_data.Protocol"],
            &["winlog", "event_data", "Initiated"],
            &["winlog.event_data.Initiated"],
            &["winlog", "event_data", "ProcessId"],
            &["winlog.event_data.ProcessId"],
            &["winlog", "event_data", "Image"],
            &["winlog.event_data.Image"],
            &["winlog", "event_data", "User"],
            &["winlog.event_data.User"],
            &["winlog", "event_data.SourceIp"],
            &["winlog.event_data", "SourceIp"],
            &["winlog", "event_data", "Other"],
            &["other"],
        ],
        "aws_vpc" => &[
            &["version"],
            &["account-id"],
            &["interface-id"],
            &["srcaddr"],
            &["dstaddr"],
            &["srcport"],
            &["dstport"],
            &["protocol"],
            &["packets"],
            &["bytes"],
            &["start"],
            &["end"],
            &["action"],
            &["log-status"],
            &["account_id"],
            &["interface_id"],
            &["log_status"],
            &["other"],
        ],
        "ecs" => &[
            &["@timestamp"],
            &["event"],
            &["event", "id"],
            &["event", "ingested"],
            &["event", "kind"],
            &["event", "type"],
            &["event", "duration"],
            &["event", "outcome"],
            &["observer"],
            &["observer", "name"],
            &["observer", "type"],
            &["source"],
            &["source", "ip"],
            &["source", "port"],
            &["source", "bytes"],
            &["source", "packets"],
            &["source", "nat"],
            &["source", "nat", "ip"],
            &["source", "nat", "port"],
            &["destination", "ip"],
            &["destination", "port"],
            &["destination", "bytes"],
            &["network"],
            &["network", "transport"],
            &["network", "iana_number"],
            &["network", "community_id"],
            &["network", "bytes"],
            &["dns", "question", "name"],
            &["dns", "question", "type"],
            &["dns", "answers"],
            &["dns", "answers", "[0]", "data"],
            &["dns", "answers", "[0]", "ttl"],
            &["dns", "response_code"],
            &["url", "full"],
            &["http", "request", "method"],
            &["http", "response", "status_code"],
            &["tls", "server_name"],
            &["user", "name"],
            &["host"],
            &["process", "pid"],
            &["process", "executable"],
            &["rule", "name"],
            &["related", "ip"],
            &["related", "ip", "[0]"],
            &["session", "id"],
            &["source.ip"],
            &["event.id"],
            &["labels", "x.y"],
            &["other"],
        ],
        "gcp_vpc" => &[
            &["jsonPayload"],
            &["jsonPayload", "connection"],
            &["jsonPayload", "connection", "src_ip"],
            &["jsonPayload", "connection", "src_port"],
            &["jsonPayload", "connection", "dest_ip"],
            &["jsonPayload", "connection", "dest_port"],
            &["jsonPayload", "connection", "protocol"],
            &["jsonPayload", "connection.src_ip"],
            &["jsonPayload", "reporter"],
            &["jsonPayload", "bytes_sent"],
            &["jsonPayload", "packets_sent"],
            &["jsonPayload", "start_time"],
            &["jsonPayload", "end_time"],
            &["jsonPayload", "src_instance"],
            &["jsonPayload", "src_instance", "vm_name"],
            &["jsonPayload", "dest_instance", "vm_name"],
            &["jsonPayload", "src_instance.vm_name"],
            &["jsonPayload", "rtt_msec"],
            &["connection"],
            &["timestamp"],
            &["other"],
        ],
        _ => &[&["other"]],
    }
}

/// Values that reach the interesting branches: realistic ones of each field's kind, placeholders,
/// wrong types, edge numbers.
fn value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(vec![
            json!(0),
            json!(3),
            json!(6),
            json!(17),
            json!(53),
            json!(443),
            json!(65535),
            json!(65536),
            json!(-1),
            json!(1.0),
            json!(2.5),
            json!(300.0),
            json!(-0.5),
            json!(1e20),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1795255200),
            json!(1795255200.123456),
            json!(1795255200123_i64),
            json!(""),
            json!("-"),
            json!(" "),
            json!("3"),
            json!(" 42 "),
            json!("1.5"),
            json!("1e3"),
            json!("x"),
            json!("tcp"),
            json!("UDP"),
            json!("icmp"),
            json!("6"),
            json!("conn"),
            json!("dns"),
            json!("http"),
            json!("ssl"),
            json!("weird"),
            json!("ssl,http"),
            json!("10.0.0.1"),
            json!("fe80::1%eth0"),
            json!("::1"),
            json!("10.0.0.256"),
            json!("2026-11-21T10:00:00Z"),
            json!("2026-11-21T10:00:00.5+0000"),
            json!("2026-11-21 10:00:00"),
            json!("SRC"),
            json!("DEST_GATEWAY"),
            json!("1795255200.5"),
            json!("true"),
            json!("FALSE"),
            json!("NOERROR"),
            json!("A"),
            json!("/a/b?c"),
            json!("http://h/p"),
            json!("C:\\a\\b.exe"),
            json!("a\"b"),
            json!("é"),
        ]),
        ".{0,6}".prop_map(Value::from),
    ];
    scalar.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "orig_h", "resp_p", "rdata", "rrtype", "ttl", "A", "x", "sni",
                    ]),
                    inner
                ),
                0..3
            )
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

#[derive(Clone, Debug)]
enum Edit {
    /// A value at one of the format's paths.
    Set(usize, Value),
    Remove(usize),
    /// A new value for one of the record's own values (at any depth).
    Replace(usize, Value),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<usize>(), value()).prop_map(|(i, v)| Edit::Set(i, v)),
        1 => any::<usize>().prop_map(Edit::Remove),
        3 => (any::<usize>(), value()).prop_map(|(i, v)| Edit::Replace(i, v)),
    ]
}

fn apply(record: &mut Map<String, Value>, paths: &[&[&str]], e: &Edit) {
    let mut root = Value::Object(std::mem::take(record));
    match e {
        Edit::Set(i, v) => set_path(&mut root, paths[i % paths.len()], Some(v.clone())),
        Edit::Remove(i) => set_path(&mut root, paths[i % paths.len()], None),
        Edit::Replace(i, v) => {
            let mut all = Vec::new();
            values_of(&root, &mut Vec::new(), &mut all);
            if let Some(path) = all.get(i % all.len().max(1)) {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                set_path(&mut root, &path, Some(v.clone()));
            }
        }
    }
    if let Value::Object(m) = root {
        *record = m;
    }
}

/// Paths of every value below the root, in `set_path` notation.
fn values_of(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let children: Vec<(String, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, c)| (k.clone(), c)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(n, c)| (format!("[{n}]"), c))
            .collect(),
        _ => return,
    };
    for (key, child) in children {
        path.push(key);
        out.push(path.clone());
        values_of(child, path, out);
        path.pop();
    }
}

/// Sets (or with `None` removes) the value at `path`, creating objects and arrays on the way. A
/// segment `[n]` is the n-th element of an array.
fn set_path(v: &mut Value, path: &[&str], set: Option<Value>) {
    let Some((key, rest)) = path.split_first() else {
        return;
    };
    if let Some(n) = key.strip_prefix('[').and_then(|k| k.strip_suffix(']')) {
        let n: usize = n.parse().unwrap_or(0);
        if !v.is_array() {
            if set.is_none() {
                return;
            }
            *v = Value::Array(Vec::new());
        }
        let Value::Array(items) = v else { return };
        if rest.is_empty() {
            match set {
                Some(x) => {
                    while items.len() <= n {
                        items.push(Value::Null);
                    }
                    items[n] = x;
                }
                None if n < items.len() => {
                    items.remove(n);
                }
                None => {}
            }
            return;
        }
        while items.len() <= n {
            items.push(Value::Object(Map::new()));
        }
        set_path(&mut items[n], rest, set);
        return;
    }
    if !v.is_object() {
        if set.is_none() {
            return;
        }
        *v = Value::Object(Map::new());
    }
    let Value::Object(obj) = v else { return };
    if rest.is_empty() {
        match set {
            Some(x) => {
                obj.insert((*key).to_owned(), x);
            }
            None => {
                obj.remove(*key);
            }
        }
        return;
    }
    let slot = obj
        .entry((*key).to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    set_path(slot, rest, set);
}

/// Text-level changes `Value` cannot express: a duplicate of a key (whose later value wins), escapes.
#[derive(Clone, Debug)]
enum Text {
    None,
    DuplicateFirst(usize, Value),
    EscapeSlashes,
}

fn text_change() -> impl Strategy<Value = Text> {
    prop_oneof![
        2 => Just(Text::None),
        1 => (any::<usize>(), value()).prop_map(|(i, v)| Text::DuplicateFirst(i, v)),
        1 => Just(Text::EscapeSlashes),
    ]
}

fn render(record: &Map<String, Value>, paths: &[&[&str]], t: &Text) -> String {
    let text = Value::Object(record.clone()).to_string();
    match t {
        Text::None => text,
        Text::DuplicateFirst(i, v) => {
            let key = paths.get(i % paths.len().max(1)).map_or("x", |p| p[0]);
            format!("{{{}:{v},{}", json!(key), &text[1..])
        }
        // `/` only occurs inside strings in JSON text; `\/` forces the owned-string path.
        Text::EscapeSlashes => text.replace('/', "\\/"),
    }
}

fn bases(format: &str) -> &'static [Map<String, Value>] {
    static CELL: OnceLock<BTreeMap<String, Vec<Map<String, Value>>>> = OnceLock::new();
    let all = CELL.get_or_init(|| {
        crate::FORMATS
            .iter()
            .map(|f| (f.to_string(), load_bases(f)))
            .collect()
    });
    all.get(format).map_or(&[], Vec::as_slice)
}

fn load_bases(format: &str) -> Vec<Map<String, Value>> {
    let own: Vec<Map<String, Value>> = FIXTURES
        .iter()
        .chain(EXTRA)
        .filter(|(f, _)| *f == format)
        .filter_map(|(_, raw)| serde_json::from_str(raw).ok())
        .collect();
    // The hand-written records show more shapes than the generated ones: weigh them up.
    let mut out = [own.clone(), own.clone(), own].concat();
    if let Some(records) = generated().get(format) {
        // A spread of the generated shapes, not all of them.
        let step = (records.len() / 40).max(1);
        out.extend(
            records
                .iter()
                .step_by(step)
                .filter_map(|r| serde_json::from_str(r).ok()),
        );
    }
    out
}

/// Random edits of the format's records; fails on any disagreement. Also requires both outcomes to be
/// common, so that the comparison keeps meaning something as the generators change.
fn differential(format: &str) {
    use proptest::test_runner::{Config, TestRunner};
    use std::cell::Cell;
    // DIFFERENTIAL_CASES=100000 for a longer search.
    let cases = std::env::var("DIFFERENTIAL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let strategy = (
        prop::collection::vec(edit(), 0..5),
        text_change(),
        any::<usize>(),
    );
    let bases = bases(format);
    let paths = paths_of(format);
    let handled = Cell::new(0u32);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |(edits, t, which)| {
            let mut record = bases[which % bases.len()].clone();
            for e in &edits {
                apply(&mut record, paths, e);
            }
            let raw = render(&record, paths, &t);
            if compare(format, raw.as_bytes()).map_err(TestCaseError::fail)? {
                handled.set(handled.get() + 1);
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let handled = handled.get();
    eprintln!("{format}: handled {handled}");
    assert!(
        handled > cases / 20 && handled < cases * 19 / 20,
        "{format}: the fast path handled {handled} of {cases} edited records"
    );
}

#[test]
fn zeek_edits() {
    differential("zeek");
}

#[test]
fn suricata_edits() {
    differential("suricata");
}

#[test]
fn sysmon_edits() {
    differential("sysmon");
}

#[test]
fn aws_vpc_edits() {
    differential("aws_vpc");
}

#[test]
fn ecs_edits() {
    differential("ecs");
}

#[test]
fn gcp_vpc_edits() {
    differential("gcp_vpc");
}

// ---------------------------------------------------------------------------------------------------
// The envelope: the byte scan gives exactly the general path's answer, errors included.

fn compare_envelope(line: &[u8]) -> Result<(), String> {
    let limits = crate::Limits::default();
    let fast = crate::parse_envelope_with(line, &limits, true);
    let general = crate::parse_envelope_with(line, &limits, false);
    if fast == general {
        Ok(())
    } else {
        Err(format!(
            "envelope paths disagree on {:?}\nfast:    {fast:?}\ngeneral: {general:?}",
            String::from_utf8_lossy(line)
        ))
    }
}

#[test]
fn generated_envelopes() {
    let cfg = storyline_generate::GenConfig {
        events: 3_000,
        seed: 5,
        large: 0.0,
        ..storyline_generate::GenConfig::default()
    };
    for g in storyline_generate::Generator::new(&cfg) {
        compare_envelope(g.envelope.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Pieces of envelope text: the usual ones and every kind of deviation the scan must refuse.
fn envelope_text() -> impl Strategy<Value = String> {
    let record = prop_oneof![
        4 => prop::sample::select(
            FIXTURES.iter().chain(EXTRA).map(|(_, r)| r.trim().to_owned()).collect::<Vec<_>>()
        ),
        2 => prop::sample::select(
            FIXTURES.iter().chain(EXTRA).map(|(_, r)| json!(r.trim()).to_string()).collect::<Vec<_>>()
        ),
        2 => prop::sample::select(vec![
            json!(include_str!("../tests/fixtures/panos_traffic.log").trim()).to_string(),
            json!(include_str!("../tests/fixtures/aws_vpc_accept.log").trim()).to_string(),
            r#""2 1 eni-1 - - - - - - - 1 2 - NODATA""#.to_owned(),
        ]),
        1 => prop::sample::select(vec![
            "null", "5", "[1]", "{}", r#""   ""#, r#""""#, r#""\u0041""#, r#""\ud800""#,
            r#""\x""#, "\"a\u{1}b\"", r#"{"ts":1}}"#, r#"{"ts":1"#, r#"{"ts":1e999}"#,
            r#"{"ts":1795255200.5,"id.orig_h":"\u0031\u0030.0.0.1"}"#, "\"\\\"", "\"é\"",
            r#"{"@timestamp":"2026-11-21T10:00:00Z","$serde_json::private::RawValue":"1"}"#,
        ]).prop_map(str::to_owned),
    ];
    let format = prop::sample::select(vec![
        r#""zeek""#,
        r#""suricata""#,
        r#""sysmon""#,
        r#""ecs""#,
        r#""aws_vpc""#,
        r#""panos""#,
        r#""netflow9""#,
        r#""ze\u0065k""#,
        "5",
        "null",
        r#""""#,
    ]);
    let sensor = prop::sample::select(vec![
        r#""s1""#,
        r#""s1""#,
        r#""""#,
        r#"" ""#,
        r#""a\nb""#,
        "\"a\tb\"",
        r#""s\u00e9""#,
        "7",
        "null",
        r#""é""#,
    ]);
    let ws = prop::sample::select(vec!["", "", "", " ", "\t", "\r\n", "\u{c}"]);
    let order = prop::sample::select(vec![
        vec!["format", "sensor", "record"],
        vec!["sensor", "format", "record"],
        vec!["format", "record", "sensor"],
        vec!["sensor", "record", "format"],
        vec!["record", "sensor"],
        vec!["format", "record", "extra"],
        vec!["record", "format", "sensor"],
        vec!["format", "sensor", "extra", "record"],
        vec!["format", "sensor", "record", "extra"],
        vec!["format", "format", "sensor", "record"],
        vec!["format", "sensor", "record", "record"],
        vec!["format", "record"],
        vec!["sensor", "record"],
        vec!["format", "sensor"],
    ]);
    (
        order,
        format,
        sensor,
        record,
        prop::collection::vec(ws, 8),
        any::<u8>(),
    )
        .prop_map(|(order, format, sensor, record, ws, tail)| {
            let mut out = format!("{}{{", ws[0]);
            for (n, key) in order.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                let value = match *key {
                    "format" => format.to_owned(),
                    "sensor" => sensor.to_owned(),
                    "record" => record.clone(),
                    _ => "[1,{\"x\":null}]".to_owned(),
                };
                out.push_str(&format!(
                    "{}\"{key}\"{}:{}{value}{}",
                    ws[1], ws[2], ws[3], ws[4]
                ));
            }
            out.push_str(ws[5]);
            out.push('}');
            out.push_str(ws[6]);
            match tail % 8 {
                0 => out.push('}'),
                1 => out.push_str(" x"),
                _ => {}
            }
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn envelopes_of_every_shape(line in envelope_text()) {
        compare_envelope(line.as_bytes()).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn damaged_envelopes(
        line in envelope_text(),
        at in any::<usize>(),
        byte in prop::sample::select(vec![b'"', b'\\', b'{', b'}', b',', b':', b' ', 0, 0xff, b'x']),
        delete in any::<bool>(),
    ) {
        let mut bytes = line.into_bytes();
        let at = at % bytes.len().max(1);
        if delete {
            if at < bytes.len() {
                bytes.remove(at);
            }
        } else {
            bytes.insert(at.min(bytes.len()), byte);
        }
        compare_envelope(&bytes).map_err(TestCaseError::fail)?;
    }
}

// ---------------------------------------------------------------------------------------------------
// The text formats (and AWS's JSON form) against their implementation before the optimization: the
// same result for every input, rejections included.

type Outcome = Result<(Event, Option<storyline_model::Str>), crate::Rejection>;

fn run_parser(f: formats::ParseFn, raw: &[u8]) -> Outcome {
    let mut ev = Event::default();
    f(raw, &mut ev).map(|own| (ev, own))
}

fn compare_reference(format: &str, raw: &[u8]) -> Result<(), String> {
    let (now, before): (formats::ParseFn, formats::ParseFn) = match format {
        "panos" => (formats::panos::parse, crate::reference::panos::parse),
        "aws_vpc" => (formats::aws_vpc::parse, crate::reference::aws_vpc::parse),
        _ => unreachable!(),
    };
    let (a, b) = (run_parser(now, raw), run_parser(before, raw));
    if a == b {
        Ok(())
    } else {
        Err(format!(
            "{format}: differs from the reference on {:?}\nnow:    {a:?}\nbefore: {b:?}",
            String::from_utf8_lossy(raw)
        ))
    }
}

/// Generated text records (decoded from their envelopes) and the fixtures.
fn text_records(format: &str) -> &'static [String] {
    static CELL: OnceLock<BTreeMap<String, Vec<String>>> = OnceLock::new();
    let all = CELL.get_or_init(|| {
        let cfg = storyline_generate::GenConfig {
            events: 6_000,
            seed: 12,
            large: 0.0,
            ..storyline_generate::GenConfig::default()
        };
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for g in storyline_generate::Generator::new(&cfg) {
            let env: BTreeMap<String, Value> = serde_json::from_str(&g.envelope).unwrap();
            let record = match &env["record"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.entry(g.format.into()).or_default().push(record);
        }
        for (format, text) in [
            ("panos", include_str!("../tests/fixtures/panos_traffic.log")),
            ("panos", include_str!("../tests/fixtures/panos_threat.log")),
            (
                "aws_vpc",
                include_str!("../tests/fixtures/aws_vpc_accept.log"),
            ),
            (
                "aws_vpc",
                include_str!("../tests/fixtures/aws_vpc_nodata.log"),
            ),
            (
                "aws_vpc",
                include_str!("../tests/fixtures/aws_vpc_reject.json"),
            ),
        ] {
            out.entry(format.into()).or_default().push(text.to_owned());
        }
        out
    });
    all.get(format).map_or(&[], Vec::as_slice)
}

#[test]
fn text_formats_match_the_reference_on_real_records() {
    for format in ["panos", "aws_vpc"] {
        for raw in text_records(format) {
            compare_reference(format, raw.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

fn text_piece() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![
        &b","[..],
        b"\"",
        b"\"\"",
        b" ",
        b"\t",
        b"-",
        b"TRAFFIC",
        b",TRAFFIC,",
        b",THREAT,",
        b"THREAT",
        b"2026/11/21 10:00:00",
        b"0.0.0.0",
        b"10.0.0.1",
        b"99999",
        b"tcp",
        b"TCP",
        b"6",
        b"ACCEPT",
        b"Reject",
        b"NODATA",
        b"\xff",
        b"\xc3\xa9",
        b"{",
        b"}",
        b":",
        b"2",
        b"version",
    ])
    .prop_map(<[u8]>::to_vec)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn text_formats_match_the_reference_on_edited_records(
        format in prop::sample::select(vec!["panos", "aws_vpc"]),
        which in any::<usize>(),
        edits in prop::collection::vec((any::<usize>(), 0..4usize, text_piece()), 0..4),
    ) {
        let records = text_records(format);
        let mut raw = records[which % records.len()].clone().into_bytes();
        for (at, op, piece) in edits {
            let at = at % (raw.len() + 1);
            match op {
                0 => { raw.splice(at..at, piece); }
                1 => { raw.drain(at..(at + piece.len()).min(raw.len())); }
                2 => {
                    // Replace the field under `at` (up to the next separator) with the piece.
                    let end = raw[at..].iter().position(|b| *b == b',' || *b == b' ').map_or(raw.len(), |n| at + n);
                    raw.splice(at..end, piece);
                }
                _ => raw.truncate(at),
            }
        }
        compare_reference(format, &raw).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn text_formats_match_the_reference_on_token_soup(
        format in prop::sample::select(vec!["panos", "aws_vpc"]),
        pieces in prop::collection::vec(text_piece(), 0..120),
    ) {
        compare_reference(format, &pieces.concat()).map_err(TestCaseError::fail)?;
    }
}
