//! `POST /v1/events` fed the request bodies log shippers send (docs/sources.md, "Log shippers"): Fluent Bit's
//! `http` output (`format json`: a JSON array, `date` added to every record; gzip), Vector's `http` sink
//! (`codec = "json"`: a JSON array; `newline_delimited` framing: NDJSON; gzip) and Logstash's `http` output
//! (`format => "json_batch"`: a JSON array; `format => "json"`: one object; `http_compression`: gzip), with a
//! tenant token. The shippers themselves are not installable here; these are their documented shapes.

mod common;

use common::{call, eventually, start_with, Running, ADMIN};
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Write;

/// A Suricata EVE flow record of flow `n`, now.
fn eve(n: u32) -> Value {
    let now = storyline_model::Timestamp::now().to_rfc3339();
    json!({
        "timestamp": now, "flow_id": 1_000_000 + n, "in_iface": "eth0", "event_type": "flow",
        "src_ip": "10.10.1.15", "src_port": 40_000 + n, "dest_ip": "93.184.216.34", "dest_port": 443,
        "proto": "TCP", "app_proto": "tls",
        "flow": {"pkts_toserver": 12, "pkts_toclient": 10, "bytes_toserver": 1830, "bytes_toclient": 5969,
                 "start": now, "end": now, "age": 0, "state": "closed", "reason": "timeout", "alerted": false}
    })
}

/// What Fluent Bit adds to each record (`json_date_key date`, `json_date_format double`).
fn fluent_bit(n: u32) -> Value {
    let mut r = eve(n);
    r["date"] = json!(storyline_model::Timestamp::now().as_millis() as f64 / 1000.0);
    r
}

/// What Logstash adds to each event read by its `json` codec (ECS compatibility on).
fn logstash(n: u32) -> Value {
    let mut r = eve(n);
    r["event"] = json!({"original": eve(n).to_string()});
    r["@timestamp"] = json!(storyline_model::Timestamp::now().to_rfc3339());
    r["@version"] = json!("1");
    r["host"] = json!({"name": "sensor-host"});
    r["log"] = json!({"file": {"path": "/var/log/suricata/eve.json"}});
    r
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(body).unwrap();
    e.finish().unwrap()
}

fn post(
    r: &Running,
    token: &str,
    query: &str,
    content_type: &str,
    gzipped: bool,
    body: Vec<u8>,
) -> Value {
    let mut req = reqwest::blocking::Client::new()
        .post(format!("{}/v1/events{query}", r.base))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", content_type);
    let body = if gzipped {
        req = req.header("Content-Encoding", "gzip");
        gzip(&body)
    } else {
        body
    };
    let resp = req.body(body).send().unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().unwrap()
}

fn array(records: impl IntoIterator<Item = Value>) -> Vec<u8> {
    serde_json::to_vec(&records.into_iter().collect::<Vec<_>>()).unwrap()
}

fn accepted(report: &Value) -> (u64, u64) {
    (
        report["accepted"].as_u64().unwrap(),
        report["rejected"].as_u64().unwrap(),
    )
}

#[test]
fn shipper_bodies_are_accepted_with_a_tenant_token() {
    let r = start_with(|c| c.tenants.anonymous = false);
    let created = call(
        Method::POST,
        &r,
        "/v1/tenants",
        Some(ADMIN),
        Some(r#"{"id":"acme"}"#.into()),
    );
    assert_eq!(created.status(), 201);
    let token = created.json::<Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let plain = "?format=suricata&sensor=suricata-dmz";
    const JSON: &str = "application/json";

    // Fluent Bit, `format json`, plain and `compress gzip`.
    let rep = post(
        &r,
        &token,
        plain,
        JSON,
        false,
        array((1..=3).map(fluent_bit)),
    );
    assert_eq!(accepted(&rep), (3, 0), "{rep}");
    let rep = post(
        &r,
        &token,
        plain,
        JSON,
        true,
        array((4..=5).map(fluent_bit)),
    );
    assert_eq!(accepted(&rep), (2, 0), "{rep}");

    // Vector, `codec = "json"` (an array), with a remap that builds envelopes, gzip.
    let envelopes =
        (6..=8).map(|n| json!({"format": "suricata", "sensor": "suricata-dmz", "record": eve(n)}));
    let rep = post(&r, &token, "", JSON, true, array(envelopes));
    assert_eq!(accepted(&rep), (3, 0), "{rep}");
    // Vector, `framing.method = "newline_delimited"`: NDJSON.
    let ndjson: String = (9..=10).map(|n| format!("{}\n", eve(n))).collect();
    let rep = post(
        &r,
        &token,
        plain,
        "application/x-ndjson",
        false,
        ndjson.into_bytes(),
    );
    assert_eq!(accepted(&rep), (2, 0), "{rep}");

    // Logstash, `format => "json_batch"` with `http_compression => true`, and `format => "json"`.
    let rep = post(
        &r,
        &token,
        plain,
        JSON,
        true,
        array((11..=13).map(logstash)),
    );
    assert_eq!(accepted(&rep), (3, 0), "{rep}");
    let rep = post(
        &r,
        &token,
        plain,
        JSON,
        false,
        serde_json::to_vec(&logstash(14)).unwrap(),
    );
    assert_eq!(accepted(&rep), (1, 0), "{rep}");

    // A bad element is counted and dead-lettered by its position; the others are stored. Pretty-printed
    // arrays span lines: the array, not the line, is what counts.
    let mut bad = eve(15);
    bad.as_object_mut().unwrap().remove("timestamp");
    let body = serde_json::to_vec_pretty(&json!([eve(16), bad, "not a record", eve(17)])).unwrap();
    let rep = post(&r, &token, plain, JSON, false, body);
    assert_eq!(accepted(&rep), (2, 2), "{rep}");
    let lines: Vec<u64> = rep["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![2, 3], "{rep}");
    let dl: Value = call(
        Method::GET,
        &r,
        "/v1/tenants/acme/dead-letters",
        Some(&token),
        None,
    )
    .json()
    .unwrap();
    let letters = dl["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 2, "{dl}");
    assert_eq!(letters[1]["raw"], "not a record");
    assert!(
        letters[0]["raw"]
            .as_str()
            .unwrap()
            .contains("\"flow_id\": 1000015"),
        "{dl}"
    );

    // Everything accepted is in acme's stories.
    let want = 3 + 2 + 3 + 2 + 3 + 1 + 2;
    let mut latest: std::collections::BTreeMap<String, (u32, usize)> = Default::default();
    let count = |l: &std::collections::BTreeMap<String, (u32, usize)>| -> usize {
        l.values().map(|(_, n)| n).sum()
    };
    eventually(20, || {
        for s in r.sink.take().into_iter().filter(|s| s.tenant == "acme") {
            let e = latest.entry(s.story_id.to_string()).or_insert((0, 0));
            if s.version >= e.0 {
                *e = (s.version, s.event_ids.len());
            }
        }
        (count(&latest) >= want).then_some(())
    });
    let events = count(&latest);
    assert_eq!(events, want);
    // Without the token nothing is taken.
    let anon = reqwest::blocking::Client::new()
        .post(format!("{}/v1/events{plain}", r.base))
        .header("Content-Type", JSON)
        .body(array([eve(99)]))
        .send()
        .unwrap();
    assert_eq!(anon.status(), 401);
}
