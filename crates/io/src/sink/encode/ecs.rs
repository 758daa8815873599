//! Elastic Common Schema: one ECS document per story version.
//!
//! Field names follow ECS 8.x (<https://www.elastic.co/guide/en/ecs/current/ecs-field-reference.html>).
//! A story describes one network session, so the document is an `event.kind: "event"` of
//! `event.category: ["network"]` (plus `intrusion_detection` when an IDS rule fired), `event.type:
//! ["connection"]`, timed by the story: `@timestamp` = `event.start` = `first_seen`, `event.end` =
//! `last_seen`. Single-valued ECS fields (`user.name`, `dns.question.name` …) get the first name the story
//! saw; every name and the Storyline extras (sensors, event ids, provenance) are under `storyline.*`, and
//! `labels.story_id` / `labels.story_version` say which story version this is (receivers dedupe on them).

use super::{put, strs};
use serde_json::{json, Map, Value};
use storyline_model::{FusedEndpoint, Story};

fn endpoint(e: &FusedEndpoint) -> Value {
    let mut m = Map::new();
    put(&mut m, "ip", json!(e.ip.map(|ip| ip.to_string())));
    put(&mut m, "port", json!(e.port));
    put(&mut m, "bytes", json!(e.bytes));
    put(&mut m, "packets", json!(e.packets));
    let mut nat = Map::new();
    put(&mut nat, "ip", json!(e.nat.ip.map(|ip| ip.to_string())));
    put(&mut nat, "port", json!(e.nat.port));
    put(&mut m, "nat", Value::Object(nat));
    Value::Object(m)
}

fn first(v: &[storyline_model::Str]) -> Value {
    v.first().map(|s| json!(s.as_str())).unwrap_or(Value::Null)
}

fn named(v: &[storyline_model::Str]) -> Value {
    let mut m = Map::new();
    put(&mut m, "name", first(v));
    Value::Object(m)
}

/// The ECS document of one story version.
pub fn document(s: &Story) -> Value {
    let f = &s.fused;
    let mut doc = Map::new();
    doc.insert("@timestamp".into(), json!(s.first_seen.to_rfc3339()));

    let mut categories = vec![json!("network")];
    if !f.rule.names.is_empty()
        || f.event
            .categories
            .iter()
            .any(|c| c == "intrusion_detection")
    {
        categories.push(json!("intrusion_detection"));
    }
    let mut event = Map::new();
    event.insert("kind".into(), json!("event"));
    event.insert("category".into(), Value::Array(categories));
    event.insert("type".into(), json!(["connection"]));
    event.insert("id".into(), json!(super::doc_id(s)));
    event.insert("dataset".into(), json!("storyline.story"));
    event.insert("module".into(), json!("storyline"));
    event.insert("start".into(), json!(s.first_seen.to_rfc3339()));
    event.insert("end".into(), json!(s.last_seen.to_rfc3339()));
    event.insert(
        "duration".into(),
        json!(s.last_seen.nanos_since(s.first_seen).max(0)),
    );
    put(&mut event, "action", first(&f.event.actions));
    doc.insert("event".into(), Value::Object(event));

    put(&mut doc, "source", endpoint(&f.source));
    put(&mut doc, "destination", endpoint(&f.destination));

    let mut network = Map::new();
    put(
        &mut network,
        "transport",
        json!(f.network.transport.as_deref()),
    );
    put(
        &mut network,
        "protocol",
        json!(f.network.protocol.as_deref()),
    );
    put(
        &mut network,
        "community_id",
        json!(f.network.community_id.as_deref()),
    );
    put(&mut network, "bytes", json!(f.network.bytes));
    put(&mut network, "packets", json!(f.network.packets));
    put(&mut doc, "network", Value::Object(network));

    if let Some(name) = f.dns.question.names.first() {
        doc.insert(
            "dns".into(),
            json!({ "question": { "name": name.as_str() } }),
        );
    }
    if let Some(domain) = f.url.domains.first() {
        doc.insert("url".into(), json!({ "domain": domain.as_str() }));
    }
    if let Some(sni) = f.tls.server_names.first() {
        doc.insert(
            "tls".into(),
            json!({ "client": { "server_name": sni.as_str() } }),
        );
    }
    put(&mut doc, "user", named(&f.user.names));
    put(&mut doc, "host", named(&f.host.names));
    put(&mut doc, "process", named(&f.process.names));
    put(&mut doc, "rule", named(&f.rule.names));

    // related.*: every address and name, for pivoting.
    let mut ips: Vec<String> = Vec::new();
    for ip in [
        f.source.ip,
        f.source.nat.ip,
        f.destination.ip,
        f.destination.nat.ip,
    ]
    .into_iter()
    .flatten()
    {
        let ip = ip.to_string();
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    let mut hosts: Vec<&str> = Vec::new();
    for h in f
        .host
        .names
        .iter()
        .chain(&f.dns.question.names)
        .chain(&f.url.domains)
        .chain(&f.tls.server_names)
    {
        if !hosts.contains(&h.as_str()) {
            hosts.push(h);
        }
    }
    let mut related = Map::new();
    put(&mut related, "ip", json!(ips));
    put(&mut related, "hosts", json!(hosts));
    put(&mut related, "user", strs(&f.user.names));
    put(&mut doc, "related", Value::Object(related));

    doc.insert(
        "labels".into(),
        json!({
            "story_id": s.story_id.to_string(),
            "story_version": s.version.to_string(),
            "tenant": s.tenant.as_str(),
        }),
    );

    // Everything the ECS fields above hold only in part.
    let mut extra = Map::new();
    extra.insert("story_id".into(), json!(s.story_id.to_string()));
    extra.insert("version".into(), json!(s.version));
    extra.insert("event_count".into(), json!(s.event_count));
    put(&mut extra, "event_ids", strs(&s.event_ids));
    put(&mut extra, "sensors", strs(&s.sensors));
    put(
        &mut extra,
        "merged_into",
        json!(s.merged_into.map(|id| id.to_string())),
    );
    put(&mut extra, "cuts", strs(&s.cuts));
    let mut names = Map::new();
    put(&mut names, "dns", strs(&f.dns.question.names));
    put(&mut names, "url", strs(&f.url.domains));
    put(&mut names, "tls", strs(&f.tls.server_names));
    put(&mut names, "user", strs(&f.user.names));
    put(&mut names, "host", strs(&f.host.names));
    put(&mut names, "process", strs(&f.process.names));
    put(&mut names, "rule", strs(&f.rule.names));
    put(&mut names, "action", strs(&f.event.actions));
    put(&mut extra, "names", Value::Object(names));
    if !s.provenance.is_empty() {
        let mut p = serde_json::to_value(&s.provenance).expect("provenance serializes");
        prune(&mut p);
        extra.insert("provenance".into(), p);
    }
    doc.insert("storyline".into(), Value::Object(extra));
    Value::Object(doc)
}

/// Removes nulls and empty arrays (the provenance serializes every field).
fn prune(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !(v.is_null() || v.as_array().is_some_and(|a| a.is_empty())));
            m.values_mut().for_each(prune);
        }
        Value::Array(a) => a.iter_mut().for_each(prune),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn golden_fields_of_a_tls_story() {
        let d = document(&tls_story());
        assert_eq!(d["@timestamp"], "2026-11-21T10:00:01.2Z");
        assert_eq!(d["event"]["kind"], "event");
        assert_eq!(d["event"]["category"], json!(["network"]));
        assert_eq!(d["event"]["type"], json!(["connection"]));
        assert_eq!(d["event"]["end"], "2026-11-21T10:00:04Z");
        assert_eq!(d["event"]["duration"], 2_800_000_000i64);
        assert_eq!(d["event"]["action"], "allow");
        assert_eq!(d["event"]["id"], "00000000000000000000000000005d0c-3");
        assert_eq!(d["source"]["ip"], "10.3.1.20");
        assert_eq!(d["source"]["port"], 51544);
        assert_eq!(d["source"]["bytes"], 1830);
        assert_eq!(d["source"]["nat"]["ip"], "198.51.100.7");
        assert_eq!(d["source"]["nat"]["port"], 40112);
        assert_eq!(d["destination"]["ip"], "93.184.216.34");
        assert_eq!(d["destination"]["port"], 443);
        assert!(d["destination"].get("nat").is_none(), "no empty objects");
        assert_eq!(d["network"]["transport"], "tcp");
        assert_eq!(d["network"]["protocol"], "tls");
        assert_eq!(
            d["network"]["community_id"],
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(d["tls"]["client"]["server_name"], "www.example.com");
        assert_eq!(d["user"]["name"], "CORP\\alice");
        assert_eq!(d["host"]["name"], "WS-12");
        assert_eq!(d["process"]["name"], "chrome.exe");
        assert!(d.get("rule").is_none());
        assert!(d.get("dns").is_none());
        assert_eq!(
            d["related"]["ip"],
            json!(["10.3.1.20", "198.51.100.7", "93.184.216.34"])
        );
        assert_eq!(d["related"]["hosts"], json!(["WS-12", "www.example.com"]));
        assert_eq!(d["related"]["user"], json!(["CORP\\alice"]));
        assert_eq!(d["labels"]["story_id"], "00000000000000000000000000005d0c");
        assert_eq!(d["labels"]["story_version"], "3");
        assert_eq!(
            d["storyline"]["sensors"],
            json!(["edr-agent", "fw-edge-1", "zeek-core"])
        );
        assert_eq!(d["storyline"]["event_count"], 3);
        assert_eq!(d["storyline"]["provenance"][0]["sensor"], "fw-edge-1");
        // The document is one valid JSON line.
        let text = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), d);
    }

    #[test]
    fn alerts_add_the_intrusion_detection_category_and_rule() {
        let d = document(&alert_story());
        assert_eq!(
            d["event"]["category"],
            json!(["network", "intrusion_detection"])
        );
        assert_eq!(d["rule"]["name"], "ET MALWARE Known Bad UA");
        assert_eq!(
            d["storyline"]["names"]["rule"],
            json!(["ET MALWARE Known Bad UA", "ET POLICY curl UA"])
        );
        assert_eq!(d["url"]["domain"], "evil.example.net");
        let d = document(&dns_story());
        assert_eq!(d["dns"]["question"]["name"], "www.example.com");
    }
}
