//! Turns sensor records into canonical [`Event`]s.
//!
//! Input arrives either as NDJSON envelope lines (`{"format", "sensor", "record"}`, see
//! [`parse_envelope`]) or as bare records whose format and sensor the caller knows ([`parse_record`]).
//! Every failure is a [`Rejection`] that names the offending field: parsers never panic, whatever the
//! bytes, because one bad record must not stop a pipeline.
//!
//! | format | input | own event id (else the content hash of format, sensor and raw bytes) |
//! | --- | --- | --- |
//! | `ecs` | ECS JSON object | `event.id` |
//! | `zeek` | Zeek JSON log record (conn, dns, http, ssl) | none |
//! | `suricata` | Suricata EVE JSON record | none |
//! | `aws_vpc` | VPC Flow Logs v2 default-format line, or the same fields as JSON | none |
//! | `sysmon` | Sysmon event 3 as shipped by Winlogbeat (JSON) | `<winlog.computer_name>:<winlog.record_id>` |
//! | `panos` | PAN-OS TRAFFIC/THREAT CSV line, syslog header allowed | `<serial>:<sequence number>` |
//! | `zeek_tsv` | Zeek TSV log line with its header (see [`HeaderTracker`]), or `{"fields", "line"}` | none |
//! | `nfdump` | `nfdump -o csv` line or `nfdump -o json` object (NetFlow v5/v9, IPFIX) | none |
//! | `argus` | Argus `ra -c ,` CSV line (header via [`HeaderTracker`]) | none |
//! | `gcp_vpc` | GCP VPC Flow Logs Cloud Logging entry (JSON) | none |
//! | `cef` | ArcSight CEF line, syslog header allowed | none |
//!
//! Speed: the usual envelope is read by a byte scan (`envelope.rs`) and a JSON record is deserialized
//! once, straight into borrowed per-format structs (`fast.rs`). The `serde_json::Value` (DOM) path of
//! each JSON format (`json.rs`) remains the definition of the format: the fast path answers only for
//! records it parses exactly as the DOM path would, and leaves everything else, including every
//! rejection, to it. `differential.rs` checks that the two agree; `benches/parsers.rs` and
//! docs/benchmarks.md give the numbers.

mod csv;
#[cfg(test)]
mod differential;
mod envelope;
mod error;
mod fast;
mod formats;
mod json;
#[cfg(test)]
mod reference;
mod timefmt;
mod tracker;

pub use error::Rejection;
pub use tracker::{HeaderContext, HeaderTracker};

use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use storyline_model::ids::content_event_id;
use storyline_model::{Event, Str};

/// Known format names, as written in envelopes and on command lines.
pub const FORMATS: &[&str] = &[
    "ecs", "zeek", "suricata", "aws_vpc", "sysmon", "panos", "zeek_tsv", "nfdump", "argus",
    "gcp_vpc", "cef",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted envelope line or record, checked before any parsing.
    pub max_record_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Parsed<'a> {
    pub format: Str,
    pub sensor: Str,
    /// The record as received (a JSON object's exact text, or the decoded raw line), without its line
    /// terminator. Kept beside the event for people to inspect; the content-hash id is computed over it.
    /// Borrowed from the input unless it had to be decoded (a JSON string record with escapes): a replay
    /// copied every record once more only to write it next to its event.
    pub raw: Cow<'a, [u8]>,
    pub event: Event,
}

impl Parsed<'_> {
    /// The same record, no longer borrowing its input.
    pub fn into_owned(self) -> Parsed<'static> {
        Parsed {
            format: self.format,
            sensor: self.sensor,
            raw: Cow::Owned(self.raw.into_owned()),
            event: self.event,
        }
    }
}

const MAX_SENSOR_BYTES: usize = 256;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    format: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sensor: Option<&'a RawValue>,
    #[serde(borrow, default)]
    record: Option<&'a RawValue>,
}

const ENVELOPE_SHAPE: &str =
    "an envelope line is {\"format\": \"zeek\", \"sensor\": \"name\", \"record\": {...} or \"raw line\"}";

/// `str::trim`, answering at once for the usual value: one that starts and ends with an ASCII character
/// other than whitespace. `trim` decodes and classifies a character at each end (Unicode whitespace), and
/// parsers trim most values they read: ~1.5% of a replay's instructions.
pub(crate) fn trim(s: &str) -> &str {
    let plain = |b: u8| b.is_ascii() && !matches!(b, b'\t'..=b'\r' | b' ');
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(&a), Some(&z)) if plain(a) && plain(z) => s,
        _ => s.trim(),
    }
}

/// `std::str::from_utf8` with SIMD. Whole records are validated before parsing (JSON text outside strings
/// is ASCII, so one check spares serde_json one per string); std's scalar check took ~2.8 instructions a
/// byte of them, and this saves ~0.3% of a replay's instructions. Only whether the bytes are UTF-8 is
/// used, never where they stop being.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, simdutf8::basic::Utf8Error> {
    simdutf8::basic::from_utf8(bytes)
}

/// Parses one NDJSON envelope line: `{"format": F, "sensor": S, "record": R}` where R is the native
/// JSON object, or the raw record text as a JSON string (for text formats, or JSON records forwarded
/// verbatim). Other envelope keys are ignored.
pub fn parse_envelope<'a>(line: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, Rejection> {
    parse_envelope_with(line, limits, true)
}

/// `fast`: try the byte scan of the usual envelope shape first (see `envelope.rs`); the differential
/// tests turn it off to compare.
fn parse_envelope_with<'a>(
    line: &'a [u8],
    limits: &Limits,
    fast: bool,
) -> Result<Parsed<'a>, Rejection> {
    check_size(line, limits)?;
    let line = line.trim_ascii();
    match line.first() {
        None => return Err(Rejection::Empty),
        Some(b'{') => {}
        Some(&first) => {
            let shown = if first.is_ascii_graphic() {
                format!("'{}'", first as char)
            } else {
                format!("byte 0x{first:02x}")
            };
            return Err(Rejection::MalformedJson {
                detail: format!(
                    "an envelope line must be a JSON object but this one starts with {shown}; \
                     {ENVELOPE_SHAPE}"
                ),
            });
        }
    }
    if fast {
        if let Some(parsed) = envelope::fast(line, limits) {
            return parsed;
        }
    }
    let env: Envelope = serde_json::from_slice(line).map_err(|e| Rejection::malformed_json(&e))?;
    let format = envelope_string(env.format, "format")?;
    let sensor = envelope_string(env.sensor, "sensor")?;
    let (canonical, parse_fn) = lookup(&format)?;
    check_sensor(&sensor)?;
    let record = env
        .record
        .filter(|r| r.get() != "null")
        .ok_or_else(|| Rejection::missing("record", ENVELOPE_SHAPE))?;
    let text = record.get();
    let raw: Cow<[u8]> = match text.as_bytes().first() {
        Some(b'{') => Cow::Borrowed(text.as_bytes()),
        Some(b'"') => match json_string(record)? {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        },
        _ => {
            return Err(Rejection::bad_value(
                "record",
                error::excerpt(text),
                "a JSON object (the native record) or a string (the raw record line)",
            ))
        }
    };
    parse_with(canonical, parse_fn, &sensor, raw, limits)
}

/// Parses a record already separated from any envelope: a JSON object's text or a raw text line, in
/// `format`, reported by `sensor`. A trailing line terminator is ignored.
pub fn parse_record<'a>(
    format: &str,
    sensor: &str,
    raw: &'a [u8],
    limits: &Limits,
) -> Result<Parsed<'a>, Rejection> {
    check_size(raw, limits)?;
    let (canonical, parse_fn) = lookup(format)?;
    check_sensor(sensor)?;
    parse_with(canonical, parse_fn, sensor, Cow::Borrowed(raw), limits)
}

fn parse_with<'a>(
    format: &'static str,
    parse_fn: formats::ParseFn,
    sensor: &str,
    raw: Cow<'a, [u8]>,
    limits: &Limits,
) -> Result<Parsed<'a>, Rejection> {
    check_size(&raw, limits)?;
    let raw = strip_terminator(raw);
    if raw.trim_ascii().is_empty() {
        return Err(Rejection::Empty);
    }
    let mut event = Event::default();
    let own_id = parse_fn(&raw, &mut event)?;
    Ok(complete(format, sensor, raw, event, own_id))
}

/// What every parsed record gets once its format's parser has filled the event.
fn complete<'a>(
    format: &'static str,
    sensor: &str,
    raw: Cow<'a, [u8]>,
    mut event: Event,
    own_id: Option<Str>,
) -> Parsed<'a> {
    event.observer.name = sensor.into();
    event.event.id = match own_id {
        Some(id) => id,
        None => content_event_id(format, sensor, &raw),
    };
    event.finish();
    Parsed {
        format: format.into(),
        sensor: sensor.into(),
        raw,
        event,
    }
}

fn lookup(format: &str) -> Result<(&'static str, formats::ParseFn), Rejection> {
    formats::lookup(format).ok_or_else(|| Rejection::UnknownFormat {
        format: error::excerpt(format),
        known: FORMATS,
    })
}

fn check_size(bytes: &[u8], limits: &Limits) -> Result<(), Rejection> {
    if bytes.len() > limits.max_record_bytes {
        return Err(Rejection::Oversized {
            len: bytes.len(),
            limit: limits.max_record_bytes,
        });
    }
    Ok(())
}

/// Sensor names end up in store keys and in every message about the sensor's events.
fn check_sensor(sensor: &str) -> Result<(), Rejection> {
    let expected = "a non-empty sensor name of at most 256 bytes without control characters";
    if trim(sensor).is_empty()
        || sensor.len() > MAX_SENSOR_BYTES
        || sensor.chars().any(char::is_control)
    {
        return Err(Rejection::bad_value(
            "sensor",
            format!("{sensor:?}"),
            expected,
        ));
    }
    Ok(())
}

fn strip_terminator(raw: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    let len = raw.len();
    let cut = if raw.ends_with(b"\r\n") {
        2
    } else if raw.ends_with(b"\n") {
        1
    } else {
        return raw;
    };
    match raw {
        Cow::Borrowed(b) => Cow::Borrowed(b.get(..len - cut).unwrap_or_default()),
        Cow::Owned(mut v) => {
            v.truncate(len - cut);
            Cow::Owned(v)
        }
    }
}

fn envelope_string<'a>(
    v: Option<&'a RawValue>,
    field: &'static str,
) -> Result<Cow<'a, str>, Rejection> {
    match v.filter(|r| r.get() != "null") {
        None => Err(Rejection::missing(field, ENVELOPE_SHAPE)),
        Some(r) if r.get().starts_with('"') => json_string(r),
        Some(r) => Err(Rejection::bad_value(
            field,
            error::excerpt(r.get()),
            format!("a string; {ENVELOPE_SHAPE}"),
        )),
    }
}

/// A JSON string token's value, borrowed when it has no escapes (the common case).
fn json_string(r: &RawValue) -> Result<Cow<'_, str>, Rejection> {
    let text = r.get();
    if !text.contains('\\') {
        if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            return Ok(Cow::Borrowed(inner));
        }
    }
    serde_json::from_str::<String>(text)
        .map(Cow::Owned)
        .map_err(|e| Rejection::malformed_json(&e))
}

#[cfg(test)]
mod trim_tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn trim_is_str_trim(
            s in prop_oneof![
                "\\PC{0,8}",
                "[ \\t\\n\\x0b\\x0c\\r\\x1c-\\x1fa-z\u{85}\u{a0}\u{2000}\u{3000}]{0,8}",
                "[a-z]{0,4}[ \\t]{0,2}",
            ],
        ) {
            prop_assert_eq!(super::trim(&s), s.trim());
        }
    }
}
