//! Zeek JSON logs (`redef LogAscii::use_json = T`): conn, dns, http and ssl.
//!
//! Field names follow the Zeek log reference (docs.zeek.org: "Logs" → conn.log, dns.log, http.log,
//! ssl.log). Zeek records carry no event id of their own (`uid` names the connection, shared by all its
//! logs), so the id is the content hash.

use super::common::{app_protocol, categorize, observer, set_transport};
use crate::error::Rejection;
use crate::json::{self, Obj, COUNT_EXPECTED, PORT_EXPECTED};
use crate::timefmt;
use serde_json::{Number, Value};
use std::borrow::Cow;
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
    super::fast_or_dom(raw, ev, fast::parse, parse_dom)
}

/// The definition of the format, and the path that names the field of a rejected record.
pub(crate) fn parse_dom(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    let o = json::parse_object(raw, "a Zeek record")?;
    fill(&o, ev)
}

/// The mapping of one record, whatever it was read from: `zeek_tsv` builds the same object from a TSV
/// line so that both forms of a record give the same event.
pub(crate) fn fill(o: &Obj, ev: &mut Event) -> Result<Option<Str>, Rejection> {
    observer(ev, "sensor", "Zeek", "Zeek");
    ev.timestamp = timestamp(o)?;

    let path = json::text(o, "_path")?;
    let log = match path.as_deref() {
        Some(p) => log_named(p),
        None => detect(o),
    };
    categorize_log(ev, path.as_deref(), log);

    tuple(o, ev)?;
    ev.session.id = json::text(o, "uid")?;
    ev.network.community_id = json::text(o, "community_id")?;
    if let Some(service) = json::text(o, "service")? {
        ev.network.protocol = app_protocol(&service);
    }
    match log {
        Log::Conn | Log::Other => conn(o, ev)?,
        Log::Dns => dns(o, ev)?,
        Log::Http => http(o, ev)?,
        Log::Ssl => ssl(o, ev)?,
    }
    Ok(None)
}

fn log_named(path: &str) -> Log {
    match path {
        "conn" => Log::Conn,
        "dns" => Log::Dns,
        "http" => Log::Http,
        "ssl" => Log::Ssl,
        _ => Log::Other,
    }
}

fn categorize_log(ev: &mut Event, path: Option<&str>, log: Log) {
    let dataset = match (path, log) {
        (Some(p), Log::Other) => format!("zeek.{p}").into(),
        (_, l) => Cow::Borrowed(dataset(l)),
    };
    let kind_type = if log == Log::Conn {
        "connection"
    } else {
        "protocol"
    };
    categorize(ev, "event", kind_type, &dataset);
}

fn dataset(l: Log) -> &'static str {
    match l {
        Log::Conn => "zeek.conn",
        Log::Dns => "zeek.dns",
        Log::Http => "zeek.http",
        Log::Ssl => "zeek.ssl",
        Log::Other => "zeek.other",
    }
}

#[cfg(test)]
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
    detect_by(|k| json::get(o, k).is_some())
}

fn detect_by(has: impl Fn(&str) -> bool) -> Log {
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
        Some(v @ Value::Number(n)) => epoch_number(n).ok_or_else(|| bad(v)),
        Some(Value::String(s)) => epoch_text(s).ok_or_else(|| Rejection::bad_timestamp("ts", s)),
        Some(v) => Err(bad(v)),
    }
}

fn epoch_number(n: &Number) -> Option<Timestamp> {
    match (n.as_i64(), n.as_f64()) {
        // Integers this large cannot be seconds (that would be after the year 5000).
        (Some(ms), _) if ms.unsigned_abs() >= 100_000_000_000 => Some(Timestamp::from_millis(ms)),
        (_, Some(secs)) => timefmt::from_epoch_secs_f64(secs),
        _ => None,
    }
}

fn epoch_text(s: &str) -> Option<Timestamp> {
    timefmt::parse_datetime(s).or_else(|| timefmt::parse_epoch_secs_text(s))
}

fn tuple(o: &Obj, ev: &mut Event) -> Result<(), Rejection> {
    ev.source.ip = json::ip(o, "id.orig_h")?;
    ev.source.port = json::uint(o, "id.orig_p", PORT_EXPECTED)?;
    ev.destination.ip = json::ip(o, "id.resp_h")?;
    ev.destination.port = json::uint(o, "id.resp_p", PORT_EXPECTED)?;
    if let Some(proto) = json::text(o, "proto")? {
        zeek_transport(ev, &proto);
    }
    Ok(())
}

fn zeek_transport(ev: &mut Event, proto: &str) {
    // Zeek logs ICMPv6 as "icmp"; the Community ID (and other sensors) need protocol 58 there.
    if proto.eq_ignore_ascii_case("icmp") && ev.source.ip.is_some_and(|ip| ip.is_ipv6()) {
        set_transport(ev, "ipv6-icmp");
    } else {
        set_transport(ev, proto);
    }
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
        push_answer(ev, data, ttl);
    }
    Ok(())
}

fn push_answer(ev: &mut Event, data: Str, ttl: Option<u32>) {
    // Zeek's answers carry no record type; an address can only be an A or AAAA answer.
    let kind = json::parse_ip(&data).map(|ip| Str::from(if ip.is_ipv4() { "A" } else { "AAAA" }));
    ev.dns.answers.push(DnsAnswer { data, kind, ttl });
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
    match ttl_secs(v.as_f64()) {
        Some(t) => Ok(Some(t)),
        None => Err(Rejection::bad_value("TTLs", v, expected)),
    }
}

fn ttl_secs(f: Option<f64>) -> Option<u32> {
    f.filter(|f| f.is_finite() && *f >= 0.0)
        .map(|f| f.round().min(u32::MAX as f64) as u32)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_name_the_log() {
        for l in [Log::Conn, Log::Dns, Log::Http, Log::Ssl, Log::Other] {
            assert_eq!(dataset(l), format!("zeek.{}", name(l)));
        }
    }
}

/// The fast path (see [`crate::fast`]): the same mapping as [`parse_dom`], on borrowed fields.
pub(crate) mod fast {
    use super::*;
    use crate::fast::{self as f, pick, Bail, Fast, Field, Nested, Refuse, Seq};
    use serde::Deserialize;

    /// The keys [`parse_dom`] reads; `id.*` may be flat (as Zeek writes them) or nested.
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Record<'a> {
        #[serde(borrow)]
        ts: Field<'a>,
        #[serde(borrow, rename = "_path")]
        path: Field<'a>,
        #[serde(borrow, rename = "id.orig_h")]
        orig_h: Field<'a>,
        #[serde(borrow, rename = "id.orig_p")]
        orig_p: Field<'a>,
        #[serde(borrow, rename = "id.resp_h")]
        resp_h: Field<'a>,
        #[serde(borrow, rename = "id.resp_p")]
        resp_p: Field<'a>,
        #[serde(borrow)]
        id: Nested<Id<'a>>,
        #[serde(borrow)]
        proto: Field<'a>,
        #[serde(borrow)]
        uid: Field<'a>,
        #[serde(borrow)]
        community_id: Field<'a>,
        #[serde(borrow)]
        service: Field<'a>,
        #[serde(borrow)]
        orig_bytes: Field<'a>,
        #[serde(borrow)]
        resp_bytes: Field<'a>,
        #[serde(borrow)]
        orig_pkts: Field<'a>,
        #[serde(borrow)]
        resp_pkts: Field<'a>,
        #[serde(borrow)]
        duration: Field<'a>,
        #[serde(borrow)]
        query: Field<'a>,
        #[serde(borrow)]
        qtype_name: Field<'a>,
        #[serde(borrow)]
        rcode_name: Field<'a>,
        #[serde(borrow)]
        answers: Seq<Field<'a>>,
        #[serde(borrow, rename = "TTLs")]
        ttls: Seq<Field<'a>>,
        #[serde(borrow)]
        method: Field<'a>,
        #[serde(borrow)]
        host: Field<'a>,
        #[serde(borrow)]
        uri: Field<'a>,
        #[serde(borrow)]
        status_code: Field<'a>,
        #[serde(borrow)]
        server_name: Field<'a>,
        #[serde(borrow)]
        version: Field<'a>,
        #[serde(borrow)]
        cipher: Field<'a>,
    }

    impl Refuse for Record<'_> {}
    impl Refuse for Id<'_> {}

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Id<'a> {
        #[serde(borrow)]
        orig_h: Field<'a>,
        #[serde(borrow)]
        orig_p: Field<'a>,
        #[serde(borrow)]
        resp_h: Field<'a>,
        #[serde(borrow)]
        resp_p: Field<'a>,
    }

    pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Fast<Option<Str>> {
        f::object_with(raw, |r: &Record| map(r, ev))
    }

    fn map(r: &Record, ev: &mut Event) -> Fast<Option<Str>> {
        observer(ev, "sensor", "Zeek", "Zeek");
        ev.timestamp = match r.ts.get() {
            Some(Field::Num(n)) => epoch_number(n).ok_or(Bail)?,
            Some(Field::Str(s)) => epoch_text(s).ok_or(Bail)?,
            _ => return Err(Bail),
        };

        let path = f::text(r.path.get())?;
        let log = match path.as_deref() {
            Some(p) => log_named(p),
            None => detect_by(|k| {
                let field = match k {
                    "query" => &r.query,
                    "method" => &r.method,
                    "host" => &r.host,
                    "uri" => &r.uri,
                    "server_name" => &r.server_name,
                    "version" => &r.version,
                    "cipher" => &r.cipher,
                    _ => &Field::Absent,
                };
                field.get().is_some()
            }),
        };
        categorize_log(ev, path.as_deref(), log);

        let id = r.id.object();
        ev.source.ip = f::ip(pick(&r.orig_h, id.map(|i| &i.orig_h)))?;
        ev.source.port = f::uint(pick(&r.orig_p, id.map(|i| &i.orig_p)))?;
        ev.destination.ip = f::ip(pick(&r.resp_h, id.map(|i| &i.resp_h)))?;
        ev.destination.port = f::uint(pick(&r.resp_p, id.map(|i| &i.resp_p)))?;
        if let Some(proto) = f::text(r.proto.get())? {
            zeek_transport(ev, &proto);
        }
        ev.session.id = f::text(r.uid.get())?;
        ev.network.community_id = f::text(r.community_id.get())?;
        if let Some(service) = f::text(r.service.get())? {
            ev.network.protocol = app_protocol(&service);
        }

        match log {
            Log::Conn | Log::Other => {
                ev.source.bytes = f::uint(r.orig_bytes.get())?;
                ev.destination.bytes = f::uint(r.resp_bytes.get())?;
                ev.source.packets = f::uint(r.orig_pkts.get())?;
                ev.destination.packets = f::uint(r.resp_pkts.get())?;
                if let Some(d) = f::float(r.duration.get())? {
                    ev.event.duration = timefmt::secs_to_nanos(d);
                }
            }
            Log::Dns => {
                ev.network.protocol = Some("dns".into());
                ev.dns.question.name = f::text(r.query.get())?;
                ev.dns.question.kind = f::text(r.qtype_name.get())?;
                ev.dns.response_code = f::text(r.rcode_name.get())?;
                let answers = array(&r.answers)?;
                let ttls = array(&r.ttls)?;
                for (i, a) in answers.iter().enumerate() {
                    let Some(data) = f::text(Some(a))? else {
                        continue;
                    };
                    let ttl = match ttls.get(i) {
                        Some(Field::Num(n)) => Some(ttl_secs(n.as_f64()).ok_or(Bail)?),
                        Some(_) => return Err(Bail),
                        None => None,
                    };
                    push_answer(ev, data, ttl);
                }
            }
            Log::Http => {
                ev.network.protocol = Some("http".into());
                if ev.network.transport.is_none() {
                    set_transport(ev, "tcp");
                }
                let host = f::text(r.host.get())?;
                let uri = f::text(r.uri.get())?;
                super::super::set_url(ev, host, uri);
                ev.http.request.method = f::text(r.method.get())?;
                ev.http.response.status_code = f::uint(r.status_code.get())?;
            }
            Log::Ssl => {
                ev.network.protocol = Some("tls".into());
                if ev.network.transport.is_none() {
                    set_transport(ev, "tcp");
                }
                ev.tls.server_name = f::text(r.server_name.get())?;
            }
        }
        Ok(None)
    }

    /// `array` of the DOM path: absent or null is empty, anything but an array is rejected there.
    fn array<'r, 'a>(s: &'r Seq<Field<'a>>) -> Fast<&'r [Field<'a>]> {
        match s {
            Seq::Absent | Seq::Null => Ok(&[]),
            Seq::Items(items) => Ok(items),
            Seq::Other => Err(Bail),
        }
    }
}
