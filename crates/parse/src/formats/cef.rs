//! ArcSight Common Event Format: `CEF:Version|Device Vendor|Device Product|Device Version|Signature
//! ID|Name|Severity|Extension`, optionally after a syslog header (anything before `CEF:`).
//!
//! Syntax and key names follow "Micro Focus Security ArcSight Common Event Format, Version 25" (the
//! CEF implementation standard): in the header, `\|` and `\\` are escapes for `|` and `\`; the
//! extension is space-separated `key=value` pairs whose values may contain spaces and escape `=`, `\`
//! and line breaks as `\=`, `\\`, `\n`, `\r`. A value runs to the space before the next `key=`.
//!
//! Mapped: `src`, `dst` (or `c6a2`/`c6a3` for IPv6), `spt`, `dpt`, `proto`, `act`, `in` (bytes from
//! source to destination), `out` (bytes back), `rt`, `start`, `end`, `suser`, `shost`, `dhost`,
//! `request`, `requestMethod`, `app`, `deviceDirection`, the `sourceTranslated*`/
//! `destinationTranslated*` NAT fields, and `cs1`..`cs6` whose `csNLabel` names a rule or policy
//! (to `rule.name`). The spec's full key names (`sourceAddress`, ...) are accepted as aliases.
//! `@timestamp` is `rt`, else `start`, else `end`. No own id: the content hash.

use super::common::{app_protocol, categorize, outcome_of_verdict, set_transport};
use crate::error::{excerpt, Rejection};
use crate::json::{parse_ip, COUNT_EXPECTED, IP_EXPECTED, PORT_EXPECTED};
use std::borrow::Cow;
use std::net::IpAddr;
use storyline_model::{Event, Str, Timestamp};
use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

const HEADER: [&str; 7] = [
    "CEF version",
    "Device Vendor",
    "Device Product",
    "Device Version",
    "Signature ID",
    "Name",
    "Severity",
];

const LAYOUT: &str =
    "a CEF record: CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|key=value ...";

const TIME_HINT: &str = "a CEF event needs rt (receipt time), start or end: epoch milliseconds or \
                         MMM dd yyyy HH:mm:ss";

pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    // Lossy: a user or host name in a legacy encoding should not cost the whole record.
    let text = match crate::utf8(raw) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(raw),
    };
    let Some(at) = text.find("CEF:") else {
        return Err(Rejection::bad_value(
            "record",
            format!("{:?}", excerpt(text.trim())),
            LAYOUT,
        ));
    };
    let cef = text.get(at + 4..).unwrap_or("").trim_end();
    let (header, ext) = split_header(cef)?;
    match header[0].trim() {
        "0" | "1" => {}
        v => {
            return Err(Rejection::bad_value(
                "CEF version",
                format!("{v:?}"),
                "0 or 1 (CEF:0|...)",
            ))
        }
    }
    ev.observer.vendor = non_empty(&header[1]);
    ev.observer.product = non_empty(&header[2]);

    let pairs = extension(ext);
    let x = Ext::read(&pairs);

    let start_ts = x.get(START).map(|(k, v)| cef_time(k, v)).transpose()?;
    let end_ts = x.get(END).map(|(k, v)| cef_time(k, v)).transpose()?;
    ev.timestamp = match x.get(RT) {
        Some((k, v)) => cef_time(k, v)?,
        None => start_ts
            .or(end_ts)
            .ok_or_else(|| Rejection::missing("rt", TIME_HINT))?,
    };
    if let (Some(s), Some(e)) = (start_ts, end_ts) {
        ev.event.duration = Some(e.nanos_since(s).max(0));
    }

    ev.source.ip = ip(x.get(SRC).or(x.get(SRC6)))?;
    ev.destination.ip = ip(x.get(DST).or(x.get(DST6)))?;
    ev.source.port = num(x.get(SPT), PORT_EXPECTED)?;
    ev.destination.port = num(x.get(DPT), PORT_EXPECTED)?;
    ev.source.nat.ip = ip(x.get(SRC_NAT))?;
    ev.source.nat.port = num(x.get(SPT_NAT), PORT_EXPECTED)?;
    ev.destination.nat.ip = ip(x.get(DST_NAT))?;
    ev.destination.nat.port = num(x.get(DPT_NAT), PORT_EXPECTED)?;
    if let Some((k, p)) = x.get(PROTO) {
        if !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Rejection::bad_value(
                k,
                format!("{p:?}"),
                "a transport protocol name like TCP, or its number",
            ));
        }
        set_transport(ev, p);
    }
    ev.source.bytes = num(x.get(BYTES_IN), COUNT_EXPECTED)?;
    ev.destination.bytes = num(x.get(BYTES_OUT), COUNT_EXPECTED)?;
    if let Some((_, app)) = x.get(APP) {
        ev.network.protocol = app_protocol(app);
    }
    ev.network.direction = match x.get(DIRECTION) {
        None => None,
        Some((_, "0")) => Some("ingress".into()),
        Some((_, "1")) => Some("egress".into()),
        Some((k, v)) => {
            return Err(Rejection::bad_value(
                k,
                format!("{v:?}"),
                "0 (inbound) or 1 (outbound)",
            ))
        }
    };
    if let Some((_, act)) = x.get(ACT) {
        ev.event.outcome = outcome_of_verdict(act);
        ev.event.action = Some(act.to_ascii_lowercase().into());
    }
    let text = |slot: usize| x.get(slot).map(|(_, v)| Str::from(v));
    ev.user.name = text(SUSER);
    ev.host.name = text(SHOST);
    let request = text(REQUEST);
    if request.is_some() {
        super::set_url(ev, text(DHOST), request);
    }
    ev.http.request.method = text(METHOD);
    ev.rule.name = x.rule().map(Str::from);

    let kind_type = if ev.source.ip.is_some() && ev.destination.ip.is_some() {
        "connection"
    } else {
        "info"
    };
    categorize(ev, "event", kind_type, "cef");
    Ok(None)
}

/// The 7 header fields (unescaped) and the extension's text.
fn split_header(cef: &str) -> Result<([Cow<'_, str>; 7], &str), Rejection> {
    let mut fields: Vec<Cow<str>> = Vec::with_capacity(7);
    let b = cef.as_bytes();
    let (mut start, mut i) = (0, 0);
    let mut escaped = false;
    while fields.len() < 7 {
        match b.get(i) {
            Some(b'\\') => {
                escaped = true;
                i += 2;
            }
            Some(b'|') => {
                let raw = cef.get(start..i).unwrap_or("");
                fields.push(if escaped {
                    Cow::Owned(unescape_header(raw))
                } else {
                    Cow::Borrowed(raw)
                });
                escaped = false;
                i += 1;
                start = i;
            }
            Some(_) => i += 1,
            None => {
                let missing = HEADER.get(fields.len() + 1).copied().unwrap_or("Severity");
                return Err(Rejection::missing(
                    missing,
                    format!(
                        "the record has {} of the 7 `|`-terminated header fields; {LAYOUT}",
                        fields.len() + 1
                    ),
                ));
            }
        }
    }
    let ext = cef.get(start..).unwrap_or("");
    let fields: [Cow<str>; 7] = fields
        .try_into()
        .map_err(|_| Rejection::missing("Severity", LAYOUT))?;
    Ok((fields, ext))
}

fn unescape_header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('|' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn non_empty(s: &str) -> Option<Str> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.into())
}

/// The extension's `key=value` pairs in order, values unescaped.
fn extension(ext: &str) -> Vec<(&str, Cow<'_, str>)> {
    let b = ext.as_bytes();
    // Unescaped `=` signs that follow a plausible key; each starts a pair.
    let mut starts: Vec<(usize, usize)> = Vec::new(); // (key start, index of '=')
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            i += 2;
            continue;
        }
        if c == b'=' {
            let key_start = b
                .get(..i)
                .and_then(|before| before.iter().rposition(|x| *x == b' '))
                .map_or(0, |s| s + 1);
            let key = b.get(key_start..i).unwrap_or_default();
            let after_prev = starts.last().is_none_or(|(_, eq)| key_start > *eq);
            if !key.is_empty() && key.iter().all(|x| is_key_byte(*x)) && after_prev {
                starts.push((key_start, i));
            }
        }
        i += 1;
    }
    let mut pairs = Vec::with_capacity(starts.len());
    for (n, &(key_start, eq)) in starts.iter().enumerate() {
        let value_end = match starts.get(n + 1) {
            Some(&(next_key, _)) => next_key.saturating_sub(1),
            None => ext.len(),
        };
        let key = ext.get(key_start..eq).unwrap_or("");
        let value = ext.get(eq + 1..value_end.max(eq + 1)).unwrap_or("");
        pairs.push((key, unescape_value(value)));
    }
    pairs
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'[' | b']')
}

fn unescape_value(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('=') => out.push('='),
            Some('\\') => out.push('\\'),
            Some('|') => out.push('|'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

// Slots of the extension keys read (the spec's short key and its full name share a slot).
const RT: usize = 0;
const START: usize = 1;
const END: usize = 2;
const SRC: usize = 3;
const SRC6: usize = 4;
const DST: usize = 5;
const DST6: usize = 6;
const SPT: usize = 7;
const DPT: usize = 8;
const SRC_NAT: usize = 9;
const SPT_NAT: usize = 10;
const DST_NAT: usize = 11;
const DPT_NAT: usize = 12;
const PROTO: usize = 13;
const BYTES_IN: usize = 14;
const BYTES_OUT: usize = 15;
const APP: usize = 16;
const DIRECTION: usize = 17;
const ACT: usize = 18;
const SUSER: usize = 19;
const SHOST: usize = 20;
const DHOST: usize = 21;
const REQUEST: usize = 22;
const METHOD: usize = 23;
const SLOTS: usize = 24;

fn slot(key: &str) -> Option<usize> {
    Some(match key {
        "rt" | "deviceReceiptTime" => RT,
        "start" | "startTime" => START,
        "end" | "endTime" => END,
        "src" | "sourceAddress" => SRC,
        "c6a2" => SRC6,
        "dst" | "destinationAddress" => DST,
        "c6a3" => DST6,
        "spt" | "sourcePort" => SPT,
        "dpt" | "destinationPort" => DPT,
        "sourceTranslatedAddress" => SRC_NAT,
        "sourceTranslatedPort" => SPT_NAT,
        "destinationTranslatedAddress" => DST_NAT,
        "destinationTranslatedPort" => DPT_NAT,
        "proto" | "transportProtocol" => PROTO,
        "in" | "bytesIn" => BYTES_IN,
        "out" | "bytesOut" => BYTES_OUT,
        "app" | "applicationProtocol" => APP,
        "deviceDirection" => DIRECTION,
        "act" | "deviceAction" => ACT,
        "suser" | "sourceUserName" => SUSER,
        "shost" | "sourceHostName" => SHOST,
        "dhost" | "destinationHostName" => DHOST,
        "request" | "requestUrl" => REQUEST,
        "requestMethod" => METHOD,
        _ => return None,
    })
}

/// The extension values read, each with the key it was written as (rejections name that key). The
/// first non-empty value of a slot wins.
struct Ext<'a> {
    slots: [Option<(&'a str, &'a str)>; SLOTS],
    /// `cs1`..`cs6` and their labels.
    cs: [Option<&'a str>; 6],
    cs_label: [Option<&'a str>; 6],
}

impl<'a> Ext<'a> {
    fn read(pairs: &'a [(&'a str, Cow<'a, str>)]) -> Self {
        let mut x = Ext {
            slots: [None; SLOTS],
            cs: [None; 6],
            cs_label: [None; 6],
        };
        for (k, v) in pairs {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            if let Some(i) = slot(k) {
                if let Some(s) = x.slots.get_mut(i) {
                    s.get_or_insert((k, v));
                }
            } else if let Some(rest) = k.strip_prefix("cs") {
                let (n, label) = match rest.strip_suffix("Label") {
                    Some(n) => (n, true),
                    None => (rest, false),
                };
                let Some(i) = n.parse::<usize>().ok().and_then(|n| n.checked_sub(1)) else {
                    continue;
                };
                let target = if label { &mut x.cs_label } else { &mut x.cs };
                if let Some(s) = target.get_mut(i) {
                    s.get_or_insert(v);
                }
            }
        }
        x
    }

    fn get(&self, slot: usize) -> Option<(&'a str, &'a str)> {
        self.slots.get(slot).copied().flatten()
    }

    /// The custom string whose label says it holds the rule or policy name.
    fn rule(&self) -> Option<&'a str> {
        self.cs_label
            .iter()
            .zip(&self.cs)
            .find_map(|(label, value)| {
                let l = (*label)?.to_ascii_lowercase();
                matches!(
                    l.as_str(),
                    "rule"
                        | "rule name"
                        | "rulename"
                        | "rule_name"
                        | "policy"
                        | "policy name"
                        | "policyname"
                        | "acl"
                        | "firewall rule"
                )
                .then_some(*value)
                .flatten()
            })
    }
}

fn ip(f: Option<(&str, &str)>) -> Result<Option<IpAddr>, Rejection> {
    match f {
        None => Ok(None),
        Some((k, s)) => parse_ip(s)
            .map(Some)
            .ok_or_else(|| Rejection::bad_value(k, format!("{s:?}"), IP_EXPECTED)),
    }
}

fn num<T: std::str::FromStr>(
    f: Option<(&str, &str)>,
    expected: &str,
) -> Result<Option<T>, Rejection> {
    match f {
        None => Ok(None),
        Some((k, s)) => s
            .parse()
            .map(Some)
            .map_err(|_| Rejection::bad_value(k, format!("{s:?}"), expected)),
    }
}

/// CEF times: epoch milliseconds, or `MMM dd yyyy HH:mm:ss[.SSS][ zone]` with zone `UTC`, `GMT`,
/// `Z` or a numeric offset (none: UTC). RFC 3339 is accepted as some devices send it. The spec's
/// forms without a year cannot be placed in time and are rejected.
fn cef_time(field: &str, s: &str) -> Result<Timestamp, Rejection> {
    let bad = || Rejection::bad_timestamp(field, s);
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = s.parse().map_err(|_| bad())?;
        return ms.checked_mul(1_000_000).map(Timestamp).ok_or_else(bad);
    }
    if let Some(t) = crate::timefmt::parse_datetime(s) {
        return Ok(t);
    }
    month_day_year(s).ok_or_else(bad)
}

fn month_day_year(s: &str) -> Option<Timestamp> {
    let mut parts = s.split_ascii_whitespace();
    let month = match parts.next()?.to_ascii_lowercase().as_str() {
        "jan" => Month::January,
        "feb" => Month::February,
        "mar" => Month::March,
        "apr" => Month::April,
        "may" => Month::May,
        "jun" => Month::June,
        "jul" => Month::July,
        "aug" => Month::August,
        "sep" => Month::September,
        "oct" => Month::October,
        "nov" => Month::November,
        "dec" => Month::December,
        _ => return None,
    };
    let day: u8 = parts.next()?.parse().ok()?;
    let year_text = parts.next()?;
    if year_text.len() != 4 {
        return None;
    }
    let year: i32 = year_text.parse().ok()?;
    let clock = parts.next()?;
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms = hms.split(':');
    let h: u8 = hms.next()?.parse().ok()?;
    let m: u8 = hms.next()?.parse().ok()?;
    let sec: u8 = hms.next()?.parse().ok()?;
    if hms.next().is_some() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = if frac.is_empty() {
        0
    } else {
        frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32)
    };
    let offset = match parts.next() {
        None => UtcOffset::UTC,
        Some(z) if ["utc", "gmt", "z"].contains(&z.to_ascii_lowercase().as_str()) => UtcOffset::UTC,
        Some(z) => numeric_offset(z)?,
    };
    if parts.next().is_some() {
        return None;
    }
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms_nano(h, m, sec, nanos).ok()?;
    let dt = PrimitiveDateTime::new(date, time).assume_offset(offset);
    i64::try_from(dt.unix_timestamp_nanos()).ok().map(Timestamp)
}

/// `+hh:mm`, `+hhmm` or `+hh` (and `-`).
fn numeric_offset(z: &str) -> Option<UtcOffset> {
    let (sign, rest) = match z.as_bytes().first()? {
        b'+' => (1i8, z.get(1..)?),
        b'-' => (-1i8, z.get(1..)?),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let h: i8 = digits.get(..2)?.parse().ok()?;
    let m: i8 = digits
        .get(2..)
        .filter(|s| !s.is_empty())
        .map_or(Some(0), |s| s.parse().ok())?;
    UtcOffset::from_hms(sign * h, sign * m, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(ext: &str) -> Vec<(String, String)> {
        extension(ext)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn extension_values_with_spaces_and_escapes() {
        assert_eq!(
            pairs(r"src=10.0.0.1 msg=a b\=c d\\ e cs1=x\ny"),
            [
                ("src".into(), "10.0.0.1".into()),
                ("msg".into(), r"a b=c d\ e".into()),
                ("cs1".into(), "x\ny".into()),
            ]
        );
        // An unescaped `=` inside a value (no key before it) stays in the value.
        assert_eq!(
            pairs("request=http://h/p?a=1&b=2 act=allow"),
            [
                ("request".into(), "http://h/p?a=1&b=2".into()),
                ("act".into(), "allow".into()),
            ]
        );
        assert!(pairs("").is_empty());
        assert!(pairs("   no pairs here").is_empty());
    }

    #[test]
    fn header_escapes() {
        let (h, ext) = split_header(r"0|Ven\|dor|Pro\\duct|1|100|Name|5|src=1.2.3.4").unwrap();
        assert_eq!(h[1], "Ven|dor");
        assert_eq!(h[2], r"Pro\duct");
        assert_eq!(ext, "src=1.2.3.4");
    }

    #[test]
    fn times() {
        let t = |s| cef_time("rt", s).ok();
        let want = Some(Timestamp(1_795_255_200_123_000_000));
        assert_eq!(t("1795255200123"), want);
        assert_eq!(t("Nov 21 2026 10:00:00.123"), want);
        assert_eq!(t("Nov 21 2026 10:00:00.123 UTC"), want);
        assert_eq!(t("Nov 21 2026 11:00:00.123 +01:00"), want);
        assert_eq!(t("2026-11-21T10:00:00.123Z"), want);
        assert_eq!(t("Nov 21 10:00:00"), None, "no year");
        assert_eq!(
            t("Nov 21 2026 10:00:00 EST"),
            None,
            "named zones are ambiguous"
        );
        assert_eq!(t("99999999999999999999"), None);
    }
}
