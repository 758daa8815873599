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
    super::fast_or_dom(raw, ev, fast::parse, parse_dom)
}

/// The definition of the format, and the path that names the field of a rejected record.
pub(crate) fn parse_dom(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
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
    let (direction, instance) = match reporter.as_deref().map(|r| (r, reporter_side(r))) {
        None => (None, ""),
        Some((_, Some((d, Side::Src)))) => (Some(d), "src_instance.vm_name"),
        Some((_, Some((d, Side::Dest)))) => (Some(d), "dest_instance.vm_name"),
        Some((other, None)) => {
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

/// The direction as seen by the reporting side, and where that side's VM name is.
fn reporter_side(reporter: &str) -> Option<(&'static str, Side)> {
    match reporter {
        "SRC" | "SRC_GATEWAY" => Some(("egress", Side::Src)),
        "DEST" | "DEST_GATEWAY" => Some(("ingress", Side::Dest)),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Side {
    Src,
    Dest,
}

/// The fast path (see [`crate::fast`]) for the usual shape, a LogEntry with `jsonPayload`: the same
/// mapping as [`parse_dom`] on borrowed fields. Anything else (a bare payload, dotted keys, a value
/// the DOM path would reject) is left to the DOM path.
pub(crate) mod fast {
    use super::*;
    use crate::fast::{self as f, Bail, Fast, Field, Nested, Refuse};
    use serde::Deserialize;

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Entry<'a> {
        #[serde(borrow, rename = "jsonPayload")]
        payload: Nested<Payload<'a>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Payload<'a> {
        #[serde(borrow)]
        connection: Nested<Connection<'a>>,
        #[serde(borrow)]
        reporter: Field<'a>,
        #[serde(borrow)]
        bytes_sent: Field<'a>,
        #[serde(borrow)]
        packets_sent: Field<'a>,
        #[serde(borrow)]
        start_time: Field<'a>,
        #[serde(borrow)]
        end_time: Field<'a>,
        #[serde(borrow)]
        src_instance: Nested<Instance<'a>>,
        #[serde(borrow)]
        dest_instance: Nested<Instance<'a>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Connection<'a> {
        #[serde(borrow)]
        src_ip: Field<'a>,
        #[serde(borrow)]
        src_port: Field<'a>,
        #[serde(borrow)]
        dest_ip: Field<'a>,
        #[serde(borrow)]
        dest_port: Field<'a>,
        #[serde(borrow)]
        protocol: Field<'a>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Instance<'a> {
        #[serde(borrow)]
        vm_name: Field<'a>,
    }

    /// A dotted key (`"connection.src_ip"`) is another spelling of a nested path, which only the DOM
    /// path merges.
    fn dotted(key: &str) -> bool {
        key.contains('.')
    }

    impl Refuse for Entry<'_> {}
    impl Refuse for Payload<'_> {
        const REFUSE: Option<fn(&str) -> bool> = Some(dotted);
    }
    impl Refuse for Connection<'_> {
        const REFUSE: Option<fn(&str) -> bool> = Some(dotted);
    }
    impl Refuse for Instance<'_> {
        const REFUSE: Option<fn(&str) -> bool> = Some(dotted);
    }

    pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Fast<Option<Str>> {
        let entry: Entry = f::object(raw)?;
        let p = entry.payload.object().ok_or(Bail)?;
        let c = p.connection.object().ok_or(Bail)?;
        observer(ev, "sensor", "Google Cloud", "VPC Flow Logs");
        categorize(ev, "event", "connection", "gcp.vpcflow");
        ev.timestamp = f::datetime(p.start_time.get())?;
        if let Some(end) = p.end_time.get() {
            let end = f::datetime(Some(end))?;
            ev.event.duration = Some(end.nanos_since(ev.timestamp).max(0));
        }
        ev.source.ip = f::ip(c.src_ip.get())?;
        ev.destination.ip = f::ip(c.dest_ip.get())?;
        ev.source.port = f::uint(c.src_port.get())?;
        ev.destination.port = f::uint(c.dest_port.get())?;
        if let Some(n) = f::uint::<u8>(c.protocol.get())? {
            set_transport_number(ev, n.into());
        }
        ev.source.bytes = f::uint(p.bytes_sent.get())?;
        ev.source.packets = f::uint(p.packets_sent.get())?;
        if let Some(reporter) = f::text(p.reporter.get())? {
            let (direction, side) = reporter_side(&reporter).ok_or(Bail)?;
            ev.network.direction = Some(direction.into());
            let instance = match side {
                Side::Src => &p.src_instance,
                Side::Dest => &p.dest_instance,
            };
            ev.host.name = f::text(instance.object().and_then(|i| i.vm_name.get()))?;
        }
        Ok(None)
    }
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
