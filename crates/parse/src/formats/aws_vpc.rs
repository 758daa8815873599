//! AWS VPC Flow Logs, default format (version 2): a space-separated text line, or the same fields as a
//! JSON object (hyphenated or underscored keys, as log shippers re-key them).
//!
//! Field order and meanings follow the AWS VPC user guide, "Flow log records" → "Default format" and
//! "Available fields" (docs.aws.amazon.com/vpc/latest/userguide/flow-log-records.html). Records have no
//! id of their own, so the id is the content hash.

use super::common::{categorize, observer, outcome_of_verdict, set_transport_number};
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
    let trimmed = raw.trim_ascii();
    if trimmed.first() == Some(&b'{') {
        if let Ok(fields) = fast::from_json(trimmed) {
            return fill(&fields, ev);
        }
    }
    parse_dom(raw, ev)
}

/// The definition of the format, and the path that names the field of a rejected record.
pub(crate) fn parse_dom(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    let trimmed = raw.trim_ascii();
    let fields: Vec<Cow<str>> = if trimmed.first() == Some(&b'{') {
        from_json(trimmed)?
    } else {
        from_text(trimmed)?
    };
    fill(&fields, ev)
}

/// The event from the 14 fields (`from_*` always return exactly 14).
fn fill(fields: &[Cow<str>], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    observer(ev, "sensor", "AWS", "VPC Flow Logs");
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
        set_transport_number(ev, n.into());
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
    let line = super::columns::utf8(line)?;
    let mut fields: Vec<Cow<str>> = Vec::with_capacity(FIELDS.len() + 1);
    fields.extend(line.split_ascii_whitespace().map(Cow::Borrowed));
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

/// The fast path (see [`crate::fast`]) for the JSON form: the 14 fields without a DOM.
pub(crate) mod fast {
    use super::*;
    use crate::fast::{self as f, Bail, Fast, Field, Refuse};
    use serde::Deserialize;

    /// [`FIELDS`], hyphenated as AWS names them, or underscored as shippers re-key them.
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Record<'a> {
        #[serde(borrow)]
        version: Field<'a>,
        #[serde(borrow, rename = "account-id")]
        account_id: Field<'a>,
        #[serde(borrow, rename = "account_id")]
        account_id_: Field<'a>,
        #[serde(borrow, rename = "interface-id")]
        interface_id: Field<'a>,
        #[serde(borrow, rename = "interface_id")]
        interface_id_: Field<'a>,
        #[serde(borrow)]
        srcaddr: Field<'a>,
        #[serde(borrow)]
        dstaddr: Field<'a>,
        #[serde(borrow)]
        srcport: Field<'a>,
        #[serde(borrow)]
        dstport: Field<'a>,
        #[serde(borrow)]
        protocol: Field<'a>,
        #[serde(borrow)]
        packets: Field<'a>,
        #[serde(borrow)]
        bytes: Field<'a>,
        #[serde(borrow)]
        start: Field<'a>,
        #[serde(borrow)]
        end: Field<'a>,
        #[serde(borrow)]
        action: Field<'a>,
        #[serde(borrow, rename = "log-status")]
        log_status: Field<'a>,
        #[serde(borrow, rename = "log_status")]
        log_status_: Field<'a>,
    }

    impl Refuse for Record<'_> {}

    /// The JSON form, whole: a [`super::parse`] that gives up instead of rejecting.
    pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Fast<Option<Str>> {
        let fields = from_json(raw.trim_ascii())?;
        fill(&fields, ev).map_err(|_| Bail)
    }

    /// [`super::from_json`] without a DOM.
    pub(crate) fn from_json<'a>(raw: &'a [u8]) -> Fast<Vec<Cow<'a, str>>> {
        let r: Record = f::object(raw)?;
        let Record {
            version,
            account_id,
            account_id_,
            interface_id,
            interface_id_,
            srcaddr,
            dstaddr,
            srcport,
            dstport,
            protocol,
            packets,
            bytes,
            start,
            end,
            action,
            log_status,
            log_status_,
        } = r;
        let either = |hyphen: Field<'a>, underscore: Field<'a>| {
            if hyphen.get().is_some() {
                hyphen
            } else {
                underscore
            }
        };
        [
            version,
            either(account_id, account_id_),
            either(interface_id, interface_id_),
            srcaddr,
            dstaddr,
            srcport,
            dstport,
            protocol,
            packets,
            bytes,
            start,
            end,
            action,
            either(log_status, log_status_),
        ]
        .into_iter()
        .map(|v| match v {
            Field::Absent | Field::Null => Ok(Cow::Borrowed("-")),
            Field::Str(s) => Ok(s),
            Field::Num(n) => Ok(Cow::Owned(n.to_string())),
            _ => Err(Bail),
        })
        .collect()
    }
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
