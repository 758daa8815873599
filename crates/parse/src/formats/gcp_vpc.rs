//! Google Cloud VPC Flow Logs as Cloud Logging writes them: a LogEntry whose `jsonPayload` holds the
//! record (as exported to Pub/Sub, Cloud Storage or `gcloud logging read --format=json`). A bare
//! `jsonPayload` object (it has `connection`) is accepted too.
//!
//! Fields follow "About VPC Flow Logs records" (cloud.google.com/vpc/docs/about-flow-logs-records):
//! `connection` (`src_ip`, `src_port`, `dest_ip`, `dest_port`, `protocol` as an IANA number),
//! `reporter` (`SRC`, `DEST`, `SRC_GATEWAY`, `DEST_GATEWAY`), `bytes_sent`, `packets_sent` (int64,
//! which LogEntry JSON writes as strings), `start_time`, `end_time` (RFC 3339), and the optional
//! `src_instance`/`dest_instance` metadata. A record is one direction of a connection, sampled and
//! aggregated over an interval, reported by one side: `bytes_sent`/`packets_sent` are from source to
//! destination, and the reporter gives the direction as seen by the reporting VM. No own id (the
//! LogEntry's `insertId` is only unique together with its log and timestamp): the content hash.

use super::common::{categorize, observer, set_transport_number};
use crate::error::Rejection;
use crate::json::{self, Obj, COUNT_EXPECTED, PORT_EXPECTED};
use serde_json::Value;
use storyline_model::{Event, Str};

const TIME_HINT: &str = "every VPC flow log record has jsonPayload.start_time";

pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    let entry = json::parse_object(raw, "a VPC flow log entry")?;
    let (payload, prefix) = match entry.get("jsonPayload") {
        Some(Value::Object(p)) => (p, "jsonPayload."),
        Some(other) => {
            return Err(Rejection::bad_value(
                "jsonPayload",
                json::kind_of(other),
                "an object (the flow record)",
            ))
        }
        None if entry.contains_key("connection") => (&entry, ""),
        None => {
            return Err(Rejection::missing(
                "jsonPayload",
                "a Cloud Logging entry of a VPC flow log carries the record in jsonPayload",
            ))
        }
    };
    fill(payload, prefix, ev)
}

fn fill(p: &Obj, prefix: &str, ev: &mut Event) -> Result<Option<Str>, Rejection> {
    // Rejections name the field as it appears in the entry.
    let name = |f: &str| format!("{prefix}{f}");
    let renamed = |r: Rejection| rename(r, prefix);
    observer(ev, "sensor", "Google Cloud", "VPC Flow Logs");
    categorize(ev, "event", "connection", "gcp.vpcflow");

    ev.timestamp = json::datetime(p, "start_time", TIME_HINT).map_err(renamed)?;
    if json::get(p, "end_time").is_some() {
        let end = json::datetime(p, "end_time", "").map_err(renamed)?;
        ev.event.duration = Some(end.nanos_since(ev.timestamp).max(0));
    }

    match json::get(p, "connection") {
        Some(Value::Object(_)) => {}
        Some(other) => {
            return Err(Rejection::bad_value(
                name("connection"),
                json::kind_of(other),
                "an object with src_ip, src_port, dest_ip, dest_port, protocol",
            ))
        }
        None => {
            return Err(Rejection::missing(
                name("connection"),
                "the flow's 5-tuple: connection.{src_ip, src_port, dest_ip, dest_port, protocol}",
            ))
        }
    }
    ev.source.ip = json::ip(p, "connection.src_ip").map_err(renamed)?;
    ev.destination.ip = json::ip(p, "connection.dest_ip").map_err(renamed)?;
    ev.source.port = json::uint(p, "connection.src_port", PORT_EXPECTED).map_err(renamed)?;
    ev.destination.port = json::uint(p, "connection.dest_port", PORT_EXPECTED).map_err(renamed)?;
    let proto: Option<u8> = json::uint(
        p,
        "connection.protocol",
        "an IANA protocol number 0-255, like 6",
    )
    .map_err(renamed)?;
    if let Some(n) = proto {
        set_transport_number(ev, n.into());
    }
    ev.source.bytes = json::uint(p, "bytes_sent", COUNT_EXPECTED).map_err(renamed)?;
    ev.source.packets = json::uint(p, "packets_sent", COUNT_EXPECTED).map_err(renamed)?;

    let reporter = json::text(p, "reporter").map_err(renamed)?;
    let (direction, instance) = match reporter.as_deref() {
        Some("SRC" | "SRC_GATEWAY") => (Some("egress"), "src_instance.vm_name"),
        Some("DEST" | "DEST_GATEWAY") => (Some("ingress"), "dest_instance.vm_name"),
        None => (None, ""),
        Some(other) => {
            return Err(Rejection::bad_value(
                name("reporter"),
                format!("{other:?}"),
                "SRC, DEST, SRC_GATEWAY or DEST_GATEWAY",
            ))
        }
    };
    ev.network.direction = direction.map(Str::from);
    if !instance.is_empty() {
        ev.host.name = json::text(p, instance).map_err(renamed)?;
    }
    Ok(None)
}

/// Puts the entry's prefix in front of the field a payload-level rejection names.
fn rename(r: Rejection, prefix: &str) -> Rejection {
    if prefix.is_empty() {
        return r;
    }
    match r {
        Rejection::MissingField { field, hint } => Rejection::MissingField {
            field: format!("{prefix}{field}"),
            hint,
        },
        Rejection::BadTimestamp { field, value } => Rejection::BadTimestamp {
            field: format!("{prefix}{field}"),
            value,
        },
        Rejection::BadValue {
            field,
            value,
            expected,
        } => Rejection::BadValue {
            field: format!("{prefix}{field}"),
            value,
            expected,
        },
        other => other,
    }
}
