//! Typed, field-naming access to JSON records: the DOM path.
//!
//! Here records are parsed into `serde_json::Value` rather than typed structs so that a wrong type in
//! one field yields a rejection naming that field (serde's typed errors only give a line and column),
//! and so that shippers' variations (nested `{"id": {"orig_h": ..}}` vs. flat `"id.orig_h"`, numbers
//! sent as strings) can be accepted without a struct per variant. This path defines each JSON format;
//! the faster typed path in `fast.rs` handles the common shapes identically and falls back to this one.

use crate::error::Rejection;
use crate::timefmt;
use serde_json::{Map, Value};
use std::net::IpAddr;
use storyline_model::{Str, Timestamp};

pub(crate) type Obj = Map<String, Value>;

pub(crate) fn parse_object(raw: &[u8], what: &str) -> Result<Obj, Rejection> {
    match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(other) => Err(Rejection::MalformedJson {
            detail: format!("{what} must be a JSON object, got {}", kind_of(&other)),
        }),
        Err(e) => Err(Rejection::malformed_json(&e)),
    }
}

pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Value at a dotted path, accepting both the flat key (`"id.orig_h"`, as Zeek writes it) and nested
/// objects (`{"id": {"orig_h": ..}}`, as some shippers rewrite it), or any mix. Null counts as absent.
pub(crate) fn get<'a>(o: &'a Obj, path: &str) -> Option<&'a Value> {
    if let Some(v) = o.get(path) {
        return (!v.is_null()).then_some(v);
    }
    for (i, _) in path.match_indices('.') {
        let (head, tail) = (&path[..i], &path[i + 1..]);
        if let Some(Value::Object(inner)) = o.get(head) {
            if let Some(v) = get(inner, tail) {
                return Some(v);
            }
        }
    }
    None
}

/// Sensors write "-" or "" for "not known"; both mean absent here.
fn is_placeholder(s: &str) -> bool {
    let s = crate::trim(s);
    s.is_empty() || s == "-"
}

fn shown(v: &Value) -> String {
    v.to_string()
}

/// Text field. Numbers and booleans are accepted and rendered as text.
pub(crate) fn text(o: &Obj, path: &str) -> Result<Option<Str>, Rejection> {
    match get(o, path) {
        None => Ok(None),
        Some(v) => value_text(v, path),
    }
}

pub(crate) fn value_text(v: &Value, path: &str) -> Result<Option<Str>, Rejection> {
    match v {
        Value::String(s) if is_placeholder(s) => Ok(None),
        Value::String(s) => Ok(Some(Str::from(s.as_str()))),
        Value::Number(n) => Ok(Some(Str::from(n.to_string()))),
        Value::Bool(b) => Ok(Some(Str::from(if *b { "true" } else { "false" }))),
        Value::Null => Ok(None),
        other => Err(Rejection::bad_value(path, kind_of(other), "a string")),
    }
}

pub(crate) fn require_text(o: &Obj, path: &str, hint: &str) -> Result<Str, Rejection> {
    text(o, path)?.ok_or_else(|| Rejection::missing(path, hint))
}

/// Unsigned integer of type `T`; accepts JSON integers, integral floats and numeric strings (Winlogbeat
/// sends Sysmon's ports and pids as strings).
pub(crate) fn uint<T: TryFrom<u64>>(
    o: &Obj,
    path: &str,
    expected: &str,
) -> Result<Option<T>, Rejection> {
    match get(o, path) {
        None => Ok(None),
        Some(v) => value_uint(v, path, expected),
    }
}

pub(crate) fn value_uint<T: TryFrom<u64>>(
    v: &Value,
    path: &str,
    expected: &str,
) -> Result<Option<T>, Rejection> {
    let n = match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                .map(|f| f as u64)
        }),
        Value::String(s) if is_placeholder(s) => return Ok(None),
        Value::String(s) => crate::trim(s).parse::<u64>().ok(),
        _ => None,
    };
    match n.and_then(|n| T::try_from(n).ok()) {
        Some(t) => Ok(Some(t)),
        None => Err(Rejection::bad_value(path, shown(v), expected)),
    }
}

/// Non-negative float (durations, TTLs); accepts numeric strings.
pub(crate) fn float(o: &Obj, path: &str, expected: &str) -> Result<Option<f64>, Rejection> {
    let Some(v) = get(o, path) else {
        return Ok(None);
    };
    let f = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if is_placeholder(s) => return Ok(None),
        Value::String(s) => crate::trim(s).parse::<f64>().ok(),
        _ => None,
    };
    match f.filter(|f| f.is_finite() && *f >= 0.0) {
        Some(f) => Ok(Some(f)),
        None => Err(Rejection::bad_value(path, shown(v), expected)),
    }
}

pub(crate) fn ip(o: &Obj, path: &str) -> Result<Option<IpAddr>, Rejection> {
    match get(o, path) {
        None => Ok(None),
        Some(Value::String(s)) if is_placeholder(s) => Ok(None),
        Some(Value::String(s)) => parse_ip(s).map(Some).ok_or_else(|| {
            Rejection::bad_value(path, shown(&Value::String(s.clone())), IP_EXPECTED)
        }),
        Some(other) => Err(Rejection::bad_value(path, shown(other), IP_EXPECTED)),
    }
}

pub(crate) const IP_EXPECTED: &str = "an IPv4 or IPv6 address as a string, like \"10.0.0.1\"";
pub(crate) const PORT_EXPECTED: &str = "a port number 0-65535";
pub(crate) const COUNT_EXPECTED: &str = "a non-negative integer";

/// IP text; an IPv6 zone suffix (`fe80::1%eth0`, written by Zeek and Windows) is dropped.
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = crate::trim(s);
    if let Some(v4) = dotted_quad(s.as_bytes()) {
        return Some(IpAddr::V4(v4));
    }
    let s = s.split_once('%').map_or(s, |(addr, _zone)| addr);
    s.parse().ok()
}

/// The usual IPv4 text, `a.b.c.d`, read in one pass; `None` for anything else (std's parser then decides).
/// It accepts only what std accepts (four parts of one to three digits, no leading zero, each at most 255),
/// with the same result: std's parser tries its forms one after another and was ~250 instructions an
/// address.
fn dotted_quad(b: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = b.split(|c| *c == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return None;
        }
        let mut v = 0u16;
        for &c in part {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u16::from(c - b'0');
        }
        *octet = u8::try_from(v).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(std::net::Ipv4Addr::from(octets))
}

/// Required timestamp: RFC 3339-like text (see [`timefmt::parse_datetime`]).
pub(crate) fn datetime(o: &Obj, path: &str, hint: &str) -> Result<Timestamp, Rejection> {
    match get(o, path) {
        None => Err(Rejection::missing(path, hint)),
        Some(Value::String(s)) => {
            timefmt::parse_datetime(s).ok_or_else(|| Rejection::bad_timestamp(path, s))
        }
        Some(other) => Err(Rejection::bad_timestamp(path, shown(other))),
    }
}

#[cfg(test)]
mod dotted_quad_tests {
    use super::dotted_quad;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_address_is_read(a in any::<[u8; 4]>()) {
            let ip = std::net::Ipv4Addr::from(a);
            prop_assert_eq!(dotted_quad(ip.to_string().as_bytes()), Some(ip));
        }

        #[test]
        fn what_it_reads_std_reads_alike(s in "[0-9.]{0,16}|[0-9a-f:.x ]{0,12}") {
            if let Some(ip) = dotted_quad(s.as_bytes()) {
                prop_assert_eq!(s.parse::<std::net::Ipv4Addr>().ok(), Some(ip));
            }
        }
    }

    #[test]
    fn unusual_forms_are_left_to_std() {
        for s in [
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "1..2.3",
            "1.2.3.4 ",
            "::1",
            "1.2.3.4%eth0",
            "",
        ] {
            assert_eq!(dotted_quad(s.as_bytes()), None, "{s}");
        }
    }
}
