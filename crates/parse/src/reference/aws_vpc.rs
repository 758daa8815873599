//! The implementation before the parsing optimization (see `mod.rs`).

use super::common::{categorize, observer, outcome_of_verdict, set_transport};
use crate::error::Rejection;
use crate::json::{self, parse_ip, COUNT_EXPECTED, IP_EXPECTED, PORT_EXPECTED};
use serde_json::Value;
use std::borrow::Cow;
use storyline_model::{Event, Str, Timestamp};

const FIELDS: [&str; 14] = [
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
];

const LAYOUT: &str = "the default format has 14 space-separated fields: version account-id \
                      interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end \
                      action log-status";

pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    observer(ev, "sensor", "AWS", "VPC Flow Logs");
    let trimmed = raw.trim_ascii();
    let fields: Vec<Cow<str>> = if trimmed.first() == Some(&b'{') {
        from_json(trimmed)?
    } else {
        from_text(trimmed)?
    };
    // `from_*` always return exactly 14 fields.
    let f = |i: usize| -> Option<&str> {
        let s = fields.get(i)?.trim();
        (!s.is_empty() && s != "-").then_some(s)
    };

    match f(0) {
        Some("2") => {}
        Some("version") => {
            return Err(Rejection::bad_value(
                "version",
                "\"version\"",
                "2; this is the header line of a flow log file, skip it",
            ))
        }
        Some(v) => {
            return Err(Rejection::bad_value(
                "version",
                format!("{v:?}"),
                "2 (only the default format is supported; custom formats reorder fields)",
            ))
        }
        None => return Err(Rejection::missing("version", LAYOUT)),
    }

    let start = epoch(f(10), "start")?;
    let end = epoch(f(11), "end")?;
    ev.timestamp = start;
    ev.event.duration = Some(end.nanos_since(start).max(0));

    ev.source.ip = ip(f(3), "srcaddr")?;
    ev.destination.ip = ip(f(4), "dstaddr")?;
    ev.source.port = number(f(5), "srcport", PORT_EXPECTED)?;
    ev.destination.port = number(f(6), "dstport", PORT_EXPECTED)?;
    if let Some(p) = f(7) {
        let n: u8 =
            number(Some(p), "protocol", "an IANA protocol number 0-255, like 6")?.unwrap_or(0);
        set_transport(ev, &n.to_string());
    }
    // One record covers one direction of traffic on the interface, so everything counts for the source.
    ev.source.packets = number(f(8), "packets", COUNT_EXPECTED)?;
    ev.source.bytes = number(f(9), "bytes", COUNT_EXPECTED)?;

    let status = f(13);
    let kind_type = match status {
        Some("NODATA" | "SKIPDATA") => "info",
        _ => "connection",
    };
    categorize(ev, "event", kind_type, "aws.vpcflow");
    if let Some(action) = f(12) {
        let action = action.to_ascii_lowercase();
        ev.event.outcome = outcome_of_verdict(&action);
        ev.event.action = Some(action.into());
    }
    Ok(None)
}

fn from_text(line: &[u8]) -> Result<Vec<Cow<'_, str>>, Rejection> {
    let line = std::str::from_utf8(line).map_err(|_| {
        Rejection::bad_value("record", String::from_utf8_lossy(line), "a UTF-8 text line")
    })?;
    let fields: Vec<Cow<str>> = line.split_ascii_whitespace().map(Cow::Borrowed).collect();
    if let Some(missing) = FIELDS.get(fields.len()) {
        return Err(Rejection::missing(
            *missing,
            format!("the line has only {} fields; {LAYOUT}", fields.len()),
        ));
    }
    if fields.len() > FIELDS.len() {
        return Err(Rejection::bad_value(
            "record",
            format!("{} fields", fields.len()),
            format!("exactly 14 fields ({LAYOUT}); custom flow log formats are not supported"),
        ));
    }
    Ok(fields)
}

fn from_json(raw: &[u8]) -> Result<Vec<Cow<'static, str>>, Rejection> {
    let o = json::parse_object(raw, "a VPC flow log record")?;
    FIELDS
        .iter()
        .map(|name| {
            let underscored = name.replace('-', "_");
            let v = json::get(&o, name).or_else(|| json::get(&o, &underscored));
            match v {
                None => Ok(Cow::Borrowed("-")),
                Some(Value::String(s)) => Ok(Cow::Owned(s.clone())),
                Some(Value::Number(n)) => Ok(Cow::Owned(n.to_string())),
                Some(other) => Err(Rejection::bad_value(
                    *name,
                    json::kind_of(other),
                    "a string or a number",
                )),
            }
        })
        .collect()
}

fn epoch(s: Option<&str>, field: &str) -> Result<Timestamp, Rejection> {
    let s = s.ok_or_else(|| Rejection::missing(field, format!("{field} is required; {LAYOUT}")))?;
    s.parse::<i64>()
        .ok()
        .and_then(|secs| secs.checked_mul(1_000_000_000))
        .map(Timestamp)
        .ok_or_else(|| Rejection::bad_timestamp(field, s))
}

fn ip(s: Option<&str>, field: &str) -> Result<Option<std::net::IpAddr>, Rejection> {
    match s {
        None => Ok(None),
        Some(s) => parse_ip(s)
            .map(Some)
            .ok_or_else(|| Rejection::bad_value(field, format!("{s:?}"), IP_EXPECTED)),
    }
}

fn number<T: std::str::FromStr>(
    s: Option<&str>,
    field: &str,
    expected: &str,
) -> Result<Option<T>, Rejection> {
    match s {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| Rejection::bad_value(field, format!("{s:?}"), expected)),
    }
}
