//! The canonical event: one sensor's report, normalized to Elastic Common Schema field names.
//!
//! Every parser produces this shape. The struct is serialized two ways: compact binary in the store
//! ([`crate::event_codec`]; postcard before it, still read), and ECS JSON (`@timestamp`, `source.ip`, ...)
//! for people and sinks. Binary formats cannot skip absent fields, so no field uses
//! `skip_serializing_if`; [`Event::to_ecs_json`] drops the nulls instead.
//! The raw record is deliberately not part of this struct: payloads can be megabytes and are stored
//! beside the event, never carried into correlation.

use crate::{Str, Timestamp};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Event {
    /// Event time as the sensor reported it (not corrected for the sensor's clock skew).
    #[serde(rename = "@timestamp")]
    pub timestamp: Timestamp,
    pub event: EventMeta,
    pub observer: Observer,
    pub source: Endpoint,
    pub destination: Endpoint,
    pub network: Network,
    pub dns: Dns,
    pub url: Url,
    pub http: Http,
    pub tls: Tls,
    pub user: Named,
    pub host: Named,
    pub process: Process,
    pub rule: Named,
    pub related: Related,
    /// The sensor's own session identifier (Zeek `uid`, Suricata `flow_id`, PAN-OS session id), scoped to
    /// the sensor. Not an ECS field; kept under `session.id`.
    pub session: Session,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventMeta {
    /// Stable id of this event: the record's own id where its format names one, else a content hash.
    pub id: Str,
    pub ingested: Option<Timestamp>,
    pub kind: Option<Str>,
    pub category: Option<Str>,
    #[serde(rename = "type")]
    pub kind_type: Option<Str>,
    pub action: Option<Str>,
    pub outcome: Option<Str>,
    pub dataset: Option<Str>,
    /// Duration in nanoseconds (ECS `event.duration`).
    pub duration: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Observer {
    #[serde(rename = "type")]
    pub kind: Option<Str>,
    /// The sensor's name as configured; every event has one.
    pub name: Str,
    pub vendor: Option<Str>,
    pub product: Option<Str>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Endpoint {
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
    pub bytes: Option<u64>,
    pub packets: Option<u64>,
    pub nat: Nat,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Nat {
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Network {
    /// Lower-case transport name: `tcp`, `udp`, `icmp`, ...
    pub transport: Option<Str>,
    /// Application protocol: `dns`, `http`, `tls`, ...
    pub protocol: Option<Str>,
    pub community_id: Option<Str>,
    pub bytes: Option<u64>,
    pub packets: Option<u64>,
    pub iana_number: Option<u8>,
    pub direction: Option<Str>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dns {
    pub question: DnsQuestion,
    pub answers: Vec<DnsAnswer>,
    pub response_code: Option<Str>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsQuestion {
    pub name: Option<Str>,
    #[serde(rename = "type")]
    pub kind: Option<Str>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsAnswer {
    pub data: Str,
    #[serde(rename = "type")]
    pub kind: Option<Str>,
    pub ttl: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Url {
    pub full: Option<Str>,
    pub domain: Option<Str>,
    pub path: Option<Str>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Http {
    pub request: HttpRequest,
    pub response: HttpResponse,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpRequest {
    pub method: Option<Str>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpResponse {
    pub status_code: Option<u16>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tls {
    pub server_name: Option<Str>,
}

/// ECS objects that carry just a name here: `user`, `host`, `rule`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Named {
    pub name: Option<Str>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Process {
    pub pid: Option<u32>,
    pub name: Option<Str>,
    pub executable: Option<Str>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Related {
    pub ip: Vec<IpAddr>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Session {
    pub id: Option<Str>,
}

impl Event {
    /// Compact binary form used by the store ([`crate::event_codec`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding (as [`Event::encode`]) to `out`: a batch encoded into one buffer costs one
    /// allocation instead of one per event.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        crate::event_codec::encode(self, out);
    }

    /// Decodes what [`Event::encode`] wrote, or an event stored as postcard before that form existed.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::event_codec::DecodeError> {
        if bytes.starts_with(&crate::event_codec::MAGIC) {
            crate::event_codec::decode(bytes)
        } else {
            postcard::from_bytes(bytes)
                .map_err(|e| crate::event_codec::DecodeError(format!("postcard event: {e}")))
        }
    }

    /// ECS JSON with absent (null, empty) fields removed.
    pub fn to_ecs_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("event serializes to JSON");
        prune_empty(&mut v);
        v
    }

    /// Fills what can be derived from other fields: `network.community_id` (when the tuple is known),
    /// `network.bytes`/`packets` totals, and `related.ip`. Parsers call this once at the end.
    pub fn finish(&mut self) {
        if self.network.community_id.is_none() {
            if let Some(id) = crate::community_id::for_event(self) {
                self.network.community_id = Some(id);
            }
        }
        if self.network.bytes.is_none() {
            self.network.bytes = sum_opt(self.source.bytes, self.destination.bytes);
        }
        if self.network.packets.is_none() {
            self.network.packets = sum_opt(self.source.packets, self.destination.packets);
        }
        if self.related.ip.is_empty() {
            let ips = [
                self.source.ip,
                self.destination.ip,
                self.source.nat.ip,
                self.destination.nat.ip,
            ];
            for ip in ips.into_iter().flatten() {
                if !self.related.ip.contains(&ip) {
                    self.related.ip.push(ip);
                }
            }
        }
    }
}

fn sum_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    }
}

/// Removes nulls, empty arrays and objects that became empty, recursively.
pub fn prune_empty(v: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null => true,
        Value::Array(a) => {
            a.retain_mut(|x| !prune_empty(x));
            a.is_empty()
        }
        Value::Object(o) => {
            o.retain(|_, x| !prune_empty(x));
            o.is_empty()
        }
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        let mut e = Event {
            timestamp: Timestamp(1_763_000_000_000_000_000),
            ..Event::default()
        };
        e.event.id = "abc".into();
        e.observer.name = "fw-1".into();
        e.source.ip = Some("10.0.0.1".parse().unwrap());
        e.source.port = Some(51000);
        e.destination.ip = Some("93.184.216.34".parse().unwrap());
        e.destination.port = Some(443);
        e.source.bytes = Some(100);
        e.destination.bytes = Some(2000);
        e.network.transport = Some("tcp".into());
        e.finish();
        e
    }

    #[test]
    fn binary_round_trip() {
        let e = sample();
        assert_eq!(Event::decode(&e.encode()).unwrap(), e);
        // Appended after other bytes, the encoding is the same and decodes on its own.
        let mut buf = b"prefix".to_vec();
        e.encode_into(&mut buf);
        assert_eq!(&buf[6..], e.encode());
        assert_eq!(Event::decode(&buf[6..]).unwrap(), e);
    }

    #[test]
    fn ecs_json_uses_ecs_names_and_drops_absent_fields() {
        let v = sample().to_ecs_json();
        assert_eq!(v["@timestamp"], "2025-11-13T02:13:20Z");
        assert_eq!(v["source"]["ip"], "10.0.0.1");
        assert_eq!(v["network"]["bytes"], 2100);
        assert!(v["network"]["community_id"]
            .as_str()
            .unwrap()
            .starts_with("1:"));
        assert!(v.get("dns").is_none(), "empty objects are pruned: {v}");
        assert!(v["source"].get("nat").is_none());
        assert_eq!(v["related"]["ip"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn ecs_json_parses_back() {
        let e = sample();
        let back: Event = serde_json::from_value(e.to_ecs_json()).unwrap();
        assert_eq!(back, e);
    }
}
