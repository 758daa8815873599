//! Zeek JSON logs (`redef LogAscii::use_json = T`): conn, dns, http and ssl.
//!
//! Field names follow the Zeek log reference (docs.zeek.org: "Logs" → conn.log, dns.log, http.log,
//! ssl.log). Zeek records carry no event id of their own (`uid` names the connection, shared by all its
//! logs), so the id is the content hash.

use super::common::{app_protocol, categorize, observer, set_transport};
use crate::error::Rejection;
use crate::json::{self, Obj, COUNT_EXPECTED, PORT_EXPECTED};
use crate::timefmt;
use serde_json::Value;
use storyline_model::{DnsAnswer, Event, Str, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Log {
    Conn,
    Dns,
    Http,
    Ssl,
    Other,
}

pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    let o = json::parse_object(raw, "a Zeek record")?;
    observer(ev, "sensor", "Zeek", "Zeek");
    ev.timestamp = timestamp(&o)?;

    let path = json::text(&o, "_path")?;
    let log = match path.as_deref() {
        Some(p) => match p {
            "conn" => Log::Conn,
            "dns" => Log::Dns,
            "http" => Log::Http,
            "ssl" => Log::Ssl,
            _ => Log::Other,
        },
        None => detect(&o),
    };
    let dataset = match (&path, log) {
        (Some(p), Log::Other) => format!("zeek.{p}"),
        (_, l) => format!("zeek.{}", name(l)),
    };
    let kind_type = if log == Log::Conn {
        "connection"
    } else {
        "protocol"
    };
    categorize(ev, "event", kind_type, &dataset);

    tuple(&o, ev)?;
    ev.session.id = json::text(&o, "uid")?;
    ev.network.community_id = json::text(&o, "community_id")?;
    if let Some(service) = json::text(&o, "service")? {
        ev.network.protocol = app_protocol(&service);
    }
    match log {
        Log::Conn | Log::Other => conn(&o, ev)?,
        Log::Dns => dns(&o, ev)?,
        Log::Http => http(&o, ev)?,
        Log::Ssl => ssl(&o, ev)?,
    }
    Ok(None)
}

fn name(l: Log) -> &'static str {
    match l {
        Log::Conn => "conn",
        Log::Dns => "dns",
        Log::Http => "http",
        Log::Ssl => "ssl",
        Log::Other => "other",
    }
}

/// Without `_path` (one file per log, the default), the log is recognized by the fields only it has.
fn detect(o: &Obj) -> Log {
    let has = |k: &str| json::get(o, k).is_some();
    if has("query") {
        Log::Dns
    } else if has("method") || (has("host") && has("uri")) {
        Log::Http
    } else if has("server_name") || (has("version") && has("cipher")) {
        Log::Ssl
    } else {
        Log::Conn
    }
}

/// `ts` is epoch seconds as a float by default; `JSON::TS_ISO8601` makes it RFC 3339 text and
/// `JSON::TS_MILLIS` integer milliseconds.
fn timestamp(o: &Obj) -> Result<Timestamp, Rejection> {
    let hint = "every Zeek log record has `ts`; is this really Zeek JSON output?";
    let bad = |v: &Value| Rejection::bad_timestamp("ts", v);
    match json::get(o, "ts") {
        None => Err(Rejection::missing("ts", hint)),
        Some(v @ Value::Number(n)) => {
            let t = match (n.as_i64(), n.as_f64()) {
                // Integers this large cannot be seconds (that would be after the year 5000).
                (Some(ms), _) if ms.unsigned_abs() >= 100_000_000_000 => {
                    Some(Timestamp::from_millis(ms))
                }
                (_, Some(secs)) => timefmt::from_epoch_secs_f64(secs),
                _ => None,
            };
            t.ok_or_else(|| bad(v))
        }
        Some(Value::String(s)) => timefmt::parse_datetime(s)
            .or_else(|| timefmt::parse_epoch_secs_text(s))
            .ok_or_else(|| Rejection::bad_timestamp("ts", s)),
        Some(v) => Err(bad(v)),
    }
}

fn tuple(o: &Obj, ev: &mut Event) -> Result<(), Rejection> {
    ev.source.ip = json::ip(o, "id.orig_h")?;
    ev.source.port = json::uint(o, "id.orig_p", PORT_EXPECTED)?;
    ev.destination.ip = json::ip(o, "id.resp_h")?;
    ev.destination.port = json::uint(o, "id.resp_p", PORT_EXPECTED)?;
    if let Some(proto) = json::text(o, "proto")? {
        // Zeek logs ICMPv6 as "icmp"; the Community ID (and other sensors) need protocol 58 there.
        if proto.eq_ignore_ascii_case("icmp") && ev.source.ip.is_some_and(|ip| ip.is_ipv6()) {
            set_transport(ev, "ipv6-icmp");
        } else {
            set_transport(ev, &proto);
        }
    }
    Ok(())
}

fn conn(o: &Obj, ev: &mut Event) -> Result<(), Rejection> {
    ev.source.bytes = json::uint(o, "orig_bytes", COUNT_EXPECTED)?;
    ev.destination.bytes = json::uint(o, "resp_bytes", COUNT_EXPECTED)?;
    ev.source.packets = json::uint(o, "orig_pkts", COUNT_EXPECTED)?;
    ev.destination.packets = json::uint(o, "resp_pkts", COUNT_EXPECTED)?;
    if let Some(d) = json::float(o, "duration", "a duration in seconds, like 1.25")? {
        ev.event.duration = timefmt::secs_to_nanos(d);
    }
    Ok(())
}

fn dns(o: &Obj, ev: &mut Event) -> Result<(), Rejection> {
    ev.network.protocol = Some("dns".into());
    ev.dns.question.name = json::text(o, "query")?;
    ev.dns.question.kind = json::text(o, "qtype_name")?;
    ev.dns.response_code = json::text(o, "rcode_name")?;
    let answers = array(o, "answers")?;
    let ttls = array(o, "TTLs")?;
    for (i, a) in answers.iter().enumerate() {
        let field = "answers";
        let Some(data) = json::value_text(a, field)? else {
            continue;
        };
        let ttl = match ttls.get(i) {
            Some(t) => ttl(t)?,
            None => None,
        };
        // Zeek's answers carry no record type; an address can only be an A or AAAA answer.
        let kind =
            json::parse_ip(&data).map(|ip| Str::from(if ip.is_ipv4() { "A" } else { "AAAA" }));
        ev.dns.answers.push(DnsAnswer { data, kind, ttl });
    }
    Ok(())
}

fn array<'a>(o: &'a Obj, field: &str) -> Result<&'a [Value], Rejection> {
    match json::get(o, field) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(Rejection::bad_value(
            field,
            json::kind_of(other),
            "an array",
        )),
    }
}

fn ttl(v: &Value) -> Result<Option<u32>, Rejection> {
    let expected = "an array of TTLs in seconds, like [300.0]";
    match v.as_f64() {
        Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f.round().min(u32::MAX as f64) as u32)),
        _ => Err(Rejection::bad_value("TTLs", v, expected)),
    }
}

fn http(o: &Obj, ev: &mut Event) -> Result<(), Rejection> {
    ev.network.protocol = Some("http".into());
    // http.log has no `proto`: HTTP always runs over TCP, and the transport is needed for the
    // Community ID that joins this record to its conn.log record.
    if ev.network.transport.is_none() {
        set_transport(ev, "tcp");
    }
    let host = json::text(o, "host")?;
    let uri = json::text(o, "uri")?;
    super::set_url(ev, host, uri);
    ev.http.request.method = json::text(o, "method")?;
    ev.http.response.status_code = json::uint(o, "status_code", "an HTTP status code like 200")?;
    Ok(())
}

fn ssl(o: &Obj, ev: &mut Event) -> Result<(), Rejection> {
    ev.network.protocol = Some("tls".into());
    if ev.network.transport.is_none() {
        set_transport(ev, "tcp");
    }
    ev.tls.server_name = json::text(o, "server_name")?;
    Ok(())
}
