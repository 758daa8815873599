//! Open Cybersecurity Schema Framework: one OCSF event per story version.
//!
//! Schema: OCSF 1.3.0 (<https://schema.ocsf.io/1.3.0/>). The class is chosen per story:
//!
//! | story | class | `class_uid` | `category_uid` | `activity_id` |
//! |---|---|---|---|---|
//! | an IDS rule fired (`rule.names`, e.g. Suricata `alert.signature`) | Detection Finding (<https://schema.ocsf.io/1.3.0/classes/detection_finding>) | 2004 | 2 Findings | 1 Create (version 1), 2 Update (later versions) |
//! | a DNS lookup (protocol `dns`, or port 53 with a question name) | DNS Activity (<https://schema.ocsf.io/1.3.0/classes/dns_activity>) | 4003 | 4 Network Activity | 6 Traffic |
//! | HTTP (protocol `http`, or URL domains) | HTTP Activity (<https://schema.ocsf.io/1.3.0/classes/http_activity>) | 4002 | 4 | 0 Unknown (the story keeps no method) |
//! | any other session | Network Activity (<https://schema.ocsf.io/1.3.0/classes/network_activity>) | 4001 | 4 | 6 Traffic |
//!
//! `type_uid` = `class_uid * 100 + activity_id`; `time`, `start_time` and `end_time` are epoch
//! milliseconds; `metadata.uid` is `<story_id>-<version>` (what receivers dedupe on),
//! `metadata.correlation_uid` the story id, `metadata.product` Storyline with its version. Endpoints go
//! to `src_endpoint` / `dst_endpoint` (Network Endpoint object), byte and packet counts to `traffic`
//! (`bytes_out` = sent by the initiator), the transport and Community ID to `connection_info`. What OCSF
//! has no attribute for (NAT addresses, every name, sensors, event ids, provenance) is under `unmapped`.

use super::{put, strs};
use serde_json::{json, Map, Value};
use storyline_model::{FusedEndpoint, Story};

pub const OCSF_VERSION: &str = "1.3.0";

/// The OCSF class a story maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    NetworkActivity,
    HttpActivity,
    DnsActivity,
    DetectionFinding,
}

impl Class {
    pub fn of(s: &Story) -> Class {
        let f = &s.fused;
        let proto = f.network.protocol.as_deref();
        if !f.rule.names.is_empty() {
            Class::DetectionFinding
        } else if proto == Some("dns")
            || (f.destination.port == Some(53) && !f.dns.question.names.is_empty())
        {
            Class::DnsActivity
        } else if proto == Some("http") || !f.url.domains.is_empty() {
            Class::HttpActivity
        } else {
            Class::NetworkActivity
        }
    }

    pub fn uid(self) -> u32 {
        match self {
            Class::NetworkActivity => 4001,
            Class::HttpActivity => 4002,
            Class::DnsActivity => 4003,
            Class::DetectionFinding => 2004,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::NetworkActivity => "Network Activity",
            Class::HttpActivity => "HTTP Activity",
            Class::DnsActivity => "DNS Activity",
            Class::DetectionFinding => "Detection Finding",
        }
    }

    fn category(self) -> (u32, &'static str) {
        match self {
            Class::DetectionFinding => (2, "Findings"),
            _ => (4, "Network Activity"),
        }
    }

    fn activity(self, s: &Story) -> (u32, &'static str) {
        match self {
            Class::NetworkActivity | Class::DnsActivity => (6, "Traffic"),
            Class::HttpActivity => (0, "Unknown"),
            Class::DetectionFinding if s.version <= 1 => (1, "Create"),
            Class::DetectionFinding => (2, "Update"),
        }
    }
}

fn endpoint(e: &FusedEndpoint) -> Value {
    let mut m = Map::new();
    put(&mut m, "ip", json!(e.ip.map(|ip| ip.to_string())));
    put(&mut m, "port", json!(e.port));
    Value::Object(m)
}

fn nat(e: &FusedEndpoint) -> Value {
    let mut m = Map::new();
    put(&mut m, "ip", json!(e.nat.ip.map(|ip| ip.to_string())));
    put(&mut m, "port", json!(e.nat.port));
    Value::Object(m)
}

fn protocol_num(transport: &str) -> Option<u8> {
    match transport {
        "icmp" => Some(1),
        "tcp" => Some(6),
        "udp" => Some(17),
        "ipv6-icmp" | "icmpv6" => Some(58),
        "sctp" => Some(132),
        "gre" => Some(47),
        "esp" => Some(50),
        _ => None,
    }
}

/// `action_id` / `disposition_id` from the sensors' verdicts: a deny anywhere wins.
fn action(s: &Story) -> Option<(u32, &'static str)> {
    let acts = &s.fused.event.actions;
    let denied = acts.iter().any(|a| {
        matches!(
            a.to_ascii_lowercase().as_str(),
            "deny"
                | "denied"
                | "drop"
                | "dropped"
                | "block"
                | "blocked"
                | "reject"
                | "rejected"
                | "reset-both"
                | "reset-client"
                | "reset-server"
        )
    });
    let allowed = acts.iter().any(|a| {
        matches!(
            a.to_ascii_lowercase().as_str(),
            "allow" | "allowed" | "accept" | "accepted" | "pass" | "permit"
        )
    });
    if denied {
        Some((2, "Denied"))
    } else if allowed {
        Some((1, "Allowed"))
    } else {
        None
    }
}

/// The network part shared by the activity classes (and a finding's evidence).
fn network_attrs(s: &Story, m: &mut Map<String, Value>) {
    let f = &s.fused;
    put(m, "src_endpoint", endpoint(&f.source));
    put(m, "dst_endpoint", endpoint(&f.destination));
    let mut conn = Map::new();
    if let Some(t) = f.network.transport.as_deref() {
        conn.insert("protocol_name".into(), json!(t));
        put(&mut conn, "protocol_num", json!(protocol_num(t)));
    }
    put(
        &mut conn,
        "community_uid",
        json!(f.network.community_id.as_deref()),
    );
    put(m, "connection_info", Value::Object(conn));
    let mut traffic = Map::new();
    put(&mut traffic, "bytes_out", json!(f.source.bytes));
    put(&mut traffic, "bytes_in", json!(f.destination.bytes));
    put(&mut traffic, "packets_out", json!(f.source.packets));
    put(&mut traffic, "packets_in", json!(f.destination.packets));
    let bytes = f
        .network
        .bytes
        .or(match (f.source.bytes, f.destination.bytes) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        });
    put(&mut traffic, "bytes", json!(bytes));
    let packets = f
        .network
        .packets
        .or(match (f.source.packets, f.destination.packets) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        });
    put(&mut traffic, "packets", json!(packets));
    put(m, "traffic", Value::Object(traffic));
    if let Some(sni) = f.tls.server_names.first() {
        m.insert("tls".into(), json!({ "sni": sni.as_str() }));
    }
}

/// The OCSF event of one story version.
pub fn event(s: &Story) -> Value {
    let f = &s.fused;
    let class = Class::of(s);
    let (category_uid, category_name) = class.category();
    let (activity_id, activity_name) = class.activity(s);
    let mut e = Map::new();
    e.insert("class_uid".into(), json!(class.uid()));
    e.insert("class_name".into(), json!(class.name()));
    e.insert("category_uid".into(), json!(category_uid));
    e.insert("category_name".into(), json!(category_name));
    e.insert("activity_id".into(), json!(activity_id));
    e.insert("activity_name".into(), json!(activity_name));
    e.insert(
        "type_uid".into(),
        json!(u64::from(class.uid()) * 100 + u64::from(activity_id)),
    );
    e.insert(
        "type_name".into(),
        json!(format!("{}: {activity_name}", class.name())),
    );
    let (severity_id, severity) = if class == Class::DetectionFinding {
        (3, "Medium")
    } else {
        (1, "Informational")
    };
    e.insert("severity_id".into(), json!(severity_id));
    e.insert("severity".into(), json!(severity));
    e.insert("time".into(), json!(s.first_seen.as_millis()));
    e.insert("start_time".into(), json!(s.first_seen.as_millis()));
    e.insert("end_time".into(), json!(s.last_seen.as_millis()));
    e.insert(
        "duration".into(),
        json!(s.last_seen.nanos_since(s.first_seen).max(0) / 1_000_000),
    );
    e.insert("count".into(), json!(s.event_count));
    e.insert(
        "metadata".into(),
        json!({
            "version": OCSF_VERSION,
            "uid": super::doc_id(s),
            "correlation_uid": s.story_id.to_string(),
            "tenant_uid": s.tenant.as_str(),
            "product": {
                "name": "Storyline",
                "vendor_name": "Storyline",
                "version": env!("CARGO_PKG_VERSION"),
            },
        }),
    );
    if let Some((id, name)) = action(s) {
        e.insert("action_id".into(), json!(id));
        e.insert("action".into(), json!(name));
        let (did, dname) = if id == 1 {
            (1, "Allowed")
        } else {
            (2, "Blocked")
        };
        e.insert("disposition_id".into(), json!(did));
        e.insert("disposition".into(), json!(dname));
    }

    match class {
        Class::DetectionFinding => {
            let analytics: Vec<Value> = f
                .rule
                .names
                .iter()
                .map(|r| json!({ "name": r.as_str(), "type_id": 1, "type": "Rule" }))
                .collect();
            let mut info = Map::new();
            info.insert("uid".into(), json!(s.story_id.to_string()));
            info.insert("title".into(), json!(f.rule.names[0].as_str()));
            info.insert("analytic".into(), analytics[0].clone());
            if analytics.len() > 1 {
                info.insert(
                    "related_analytics".into(),
                    Value::Array(analytics[1..].to_vec()),
                );
            }
            info.insert("first_seen_time".into(), json!(s.first_seen.as_millis()));
            info.insert("last_seen_time".into(), json!(s.last_seen.as_millis()));
            put(&mut info, "data_sources", strs(&s.sensors));
            e.insert("finding_info".into(), Value::Object(info));
            e.insert("status_id".into(), json!(1));
            e.insert("status".into(), json!("New"));
            let mut evidence = Map::new();
            network_attrs(s, &mut evidence);
            if let Some(q) = f.dns.question.names.first() {
                evidence.insert("query".into(), json!({ "hostname": q.as_str() }));
            }
            if let Some(d) = f.url.domains.first() {
                evidence.insert("url".into(), json!({ "hostname": d.as_str() }));
            }
            e.insert("evidences".into(), json!([Value::Object(evidence)]));
        }
        Class::DnsActivity => {
            network_attrs(s, &mut e);
            if let Some(q) = f.dns.question.names.first() {
                e.insert("query".into(), json!({ "hostname": q.as_str() }));
            }
        }
        Class::HttpActivity => {
            network_attrs(s, &mut e);
            if let Some(d) = f.url.domains.first() {
                e.insert(
                    "http_request".into(),
                    json!({ "url": { "hostname": d.as_str() } }),
                );
            }
        }
        Class::NetworkActivity => network_attrs(s, &mut e),
    }

    // Who: the actor (first user and process) and the device (first host).
    let mut actor = Map::new();
    if let Some(u) = f.user.names.first() {
        actor.insert("user".into(), json!({ "name": u.as_str() }));
    }
    if let Some(p) = f.process.names.first() {
        actor.insert("process".into(), json!({ "name": p.as_str() }));
    }
    put(&mut e, "actor", Value::Object(actor));
    if let Some(h) = f.host.names.first() {
        e.insert(
            "device".into(),
            json!({ "hostname": h.as_str(), "type_id": 0 }),
        );
    }

    let mut un = Map::new();
    un.insert("story_id".into(), json!(s.story_id.to_string()));
    un.insert("story_version".into(), json!(s.version));
    put(&mut un, "sensors", strs(&s.sensors));
    put(&mut un, "event_ids", strs(&s.event_ids));
    put(&mut un, "source_nat", nat(&f.source));
    put(&mut un, "destination_nat", nat(&f.destination));
    put(
        &mut un,
        "network_protocol",
        json!(f.network.protocol.as_deref()),
    );
    put(&mut un, "dns_names", strs(&f.dns.question.names));
    put(&mut un, "url_domains", strs(&f.url.domains));
    put(&mut un, "tls_server_names", strs(&f.tls.server_names));
    put(&mut un, "user_names", strs(&f.user.names));
    put(&mut un, "host_names", strs(&f.host.names));
    put(&mut un, "process_names", strs(&f.process.names));
    put(&mut un, "rule_names", strs(&f.rule.names));
    put(&mut un, "actions", strs(&f.event.actions));
    put(&mut un, "categories", strs(&f.event.categories));
    put(
        &mut un,
        "merged_into",
        json!(s.merged_into.map(|id| id.to_string())),
    );
    put(&mut un, "cuts", strs(&s.cuts));
    e.insert("unmapped".into(), Value::Object(un));
    Value::Object(e)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn check_base(e: &Value, class_uid: u64, category_uid: u64, activity_id: u64) {
        assert_eq!(e["class_uid"], class_uid);
        assert_eq!(e["category_uid"], category_uid);
        assert_eq!(e["activity_id"], activity_id);
        assert_eq!(e["type_uid"], class_uid * 100 + activity_id);
        assert!(e["severity_id"].is_u64());
        assert_eq!(e["metadata"]["version"], OCSF_VERSION);
        assert_eq!(e["metadata"]["product"]["name"], "Storyline");
        assert_eq!(
            e["metadata"]["product"]["version"],
            env!("CARGO_PKG_VERSION")
        );
    }

    #[test]
    fn a_tls_session_is_network_activity() {
        let e = event(&tls_story());
        check_base(&e, 4001, 4, 6);
        assert_eq!(e["type_uid"], 400106);
        // 2026-11-21T10:00:01.2Z in epoch milliseconds.
        assert_eq!(e["time"], 1_795_255_201_200i64);
        assert_eq!(e["end_time"], 1_795_255_204_000i64);
        assert_eq!(e["metadata"]["uid"], "00000000000000000000000000005d0c-3");
        assert_eq!(e["src_endpoint"], json!({"ip": "10.3.1.20", "port": 51544}));
        assert_eq!(
            e["dst_endpoint"],
            json!({"ip": "93.184.216.34", "port": 443})
        );
        assert_eq!(e["connection_info"]["protocol_name"], "tcp");
        assert_eq!(e["connection_info"]["protocol_num"], 6);
        assert_eq!(
            e["connection_info"]["community_uid"],
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(e["traffic"]["bytes_out"], 1830);
        assert_eq!(e["traffic"]["bytes_in"], 48211);
        assert_eq!(e["traffic"]["bytes"], 1830 + 48211);
        assert_eq!(e["tls"]["sni"], "www.example.com");
        assert_eq!(e["action_id"], 1);
        assert_eq!(e["actor"]["user"]["name"], "CORP\\alice");
        assert_eq!(e["actor"]["process"]["name"], "chrome.exe");
        assert_eq!(e["device"]["hostname"], "WS-12");
        assert_eq!(
            e["unmapped"]["source_nat"],
            json!({"ip": "198.51.100.7", "port": 40112})
        );
        assert_eq!(e["unmapped"]["sensors"][2], "zeek-core");
        assert!(e.get("finding_info").is_none());
    }

    #[test]
    fn dns_http_and_alert_stories_get_their_classes() {
        let e = event(&dns_story());
        check_base(&e, 4003, 4, 6);
        assert_eq!(e["query"]["hostname"], "www.example.com");
        assert_eq!(e["connection_info"]["protocol_num"], 17);

        let e = event(&http_story());
        check_base(&e, 4002, 4, 0);
        assert_eq!(e["http_request"]["url"]["hostname"], "evil.example.net");

        let e = event(&alert_story());
        check_base(&e, 2004, 2, 2);
        assert_eq!(e["type_uid"], 200402, "version 2 updates the finding");
        assert_eq!(e["finding_info"]["title"], "ET MALWARE Known Bad UA");
        assert_eq!(e["finding_info"]["uid"], "0000000000000000000000000000a1e7");
        assert_eq!(e["finding_info"]["analytic"]["type_id"], 1);
        assert_eq!(
            e["finding_info"]["related_analytics"][0]["name"],
            "ET POLICY curl UA"
        );
        assert_eq!(e["evidences"][0]["dst_endpoint"]["port"], 80);
        assert_eq!(e["evidences"][0]["url"]["hostname"], "evil.example.net");
        assert!(
            e.get("src_endpoint").is_none(),
            "the finding's endpoints are in its evidence"
        );
        let mut first = alert_story();
        first.version = 1;
        assert_eq!(event(&first)["type_uid"], 200401);
    }

    #[test]
    fn a_deny_anywhere_is_denied() {
        let mut s = tls_story();
        s.fused.event.actions = vec!["allow".into(), "drop".into()].into();
        let e = event(&s);
        assert_eq!(e["action_id"], 2);
        assert_eq!(e["disposition_id"], 2);
    }
}
