//! Zeek TSV logs (the default `LogAscii` writer): conn, dns, http and ssl.
//!
//! A TSV line cannot be read without its file's header (`#separator`, `#fields`, `#types`, ...), which
//! Zeek writes once at the top of each log file. So a record is accepted in three shapes:
//! - text holding the header lines and then exactly one record line (a whole small file works);
//! - a JSON object `{"fields": [...], "types": [...], "path": "conn", "line": "<tab-separated>"}`
//!   (`fields` and `types` may also be the `#fields`/`#types` lines' text; only `fields` and `line`
//!   are required; `separator`, `set_separator`, `empty_field`, `unset_field` override the defaults);
//! - a bare record line read with a header seen earlier in the same stream, through
//!   [`crate::HeaderTracker`].
//!
//! The line is turned into the object Zeek's JSON writer would have written for it, and mapped by the
//! `zeek` format's code, so that the TSV and JSON forms of a record give equal events. Header syntax
//! follows the Zeek manual, "Logging Framework" → ASCII writer (docs.zeek.org); values are escaped as
//! `\xHH`. Records have no id of their own, so the id is the content hash.

use super::zeek;
use crate::error::Rejection;
use crate::json::{self, Obj};
use serde_json::{Number, Value};
use std::borrow::Cow;
use storyline_model::{Event, Str};

/// What a log file's header says; the defaults are Zeek's.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Header {
    separator: Vec<u8>,
    set_separator: Vec<u8>,
    empty_field: Vec<u8>,
    unset_field: Vec<u8>,
    path: Option<String>,
    fields: Vec<String>,
    /// One per field when the header has `#types`; empty otherwise.
    types: Vec<String>,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            separator: b"\t".to_vec(),
            set_separator: b",".to_vec(),
            empty_field: b"(empty)".to_vec(),
            unset_field: b"-".to_vec(),
            path: None,
            fields: Vec::new(),
            types: Vec::new(),
        }
    }
}

const SHAPES: &str = "a Zeek TSV record needs its header: send the `#separator`, `#fields` (and \
                      `#types`) lines before the record line, or {\"fields\": [...], \"types\": [...], \
                      \"line\": \"...\"}";

pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    let trimmed = raw.trim_ascii();
    if trimmed.first() == Some(&b'{') {
        return from_object(trimmed, ev);
    }
    let mut header = Header::default();
    let mut record: Option<&[u8]> = None;
    for line in trimmed.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if header_line(&mut header, line)? || line.trim_ascii().is_empty() {
            continue;
        }
        if record.is_some() {
            return Err(Rejection::bad_value(
                "record",
                "more than one record line",
                "one record line per record (use a header tracker or one envelope per line for a \
                 whole file)",
            ));
        }
        record = Some(line);
    }
    let Some(line) = record else {
        return Err(Rejection::missing(
            "record",
            "the text holds only header lines; a record line must follow them",
        ));
    };
    parse_line(&header, line, ev)
}

/// If `line` is a header line (it starts with `#`), applies it to `h` and returns true.
pub(crate) fn header_line(h: &mut Header, line: &[u8]) -> Result<bool, Rejection> {
    let Some(rest) = line.strip_prefix(b"#") else {
        return Ok(false);
    };
    // `#separator` is the one directive separated by a space, as the separator is not yet known.
    if let Some(value) = rest.strip_prefix(b"separator ") {
        let sep = unescape(value);
        if sep.is_empty() {
            return Err(Rejection::bad_value(
                "#separator",
                "an empty separator",
                "a separator like \\x09",
            ));
        }
        // A new file (logs are often concatenated) starts over from Zeek's defaults.
        *h = Header {
            separator: sep.into_owned(),
            ..Header::default()
        };
        return Ok(true);
    }
    let mut parts = split(rest, &h.separator);
    let directive = parts.next().unwrap_or_default();
    let values = || parts_text(split(rest, &h.separator).skip(1));
    match directive {
        b"set_separator" => h.set_separator = one_value(values(), "#set_separator")?,
        b"empty_field" => h.empty_field = one_value(values(), "#empty_field")?,
        b"unset_field" => h.unset_field = one_value(values(), "#unset_field")?,
        b"path" => h.path = values().into_iter().next(),
        b"fields" => {
            h.fields = values();
            h.types.clear();
        }
        b"types" => h.types = values(),
        // `#open`, `#close` and comments carry nothing a record needs.
        _ => {}
    }
    Ok(true)
}

fn parts_text<'a>(parts: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    parts
        .map(|p| String::from_utf8_lossy(&unescape(p)).into_owned())
        .collect()
}

fn one_value(values: Vec<String>, field: &str) -> Result<Vec<u8>, Rejection> {
    match values.as_slice() {
        [v] if !v.is_empty() => Ok(v.clone().into_bytes()),
        _ => Err(Rejection::bad_value(
            field,
            format!("{values:?}"),
            "exactly one non-empty value after the directive",
        )),
    }
}

/// Splits on a non-empty separator.
fn split<'a>(s: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match find(r, sep) {
            Some(i) => {
                rest = r.get(i + sep.len()..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [] => None,
        [b] => hay.iter().position(|c| c == b),
        _ => hay.windows(needle.len()).position(|w| w == needle),
    }
}

/// Zeek writes separators and non-printable bytes inside values as `\xHH`.
fn unescape(s: &[u8]) -> Cow<'_, [u8]> {
    if !s.contains(&b'\\') {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c == b'\\' && s.get(i + 1) == Some(&b'x') {
            let hex = s
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    Cow::Owned(out)
}

/// A record line read with `h`.
pub(crate) fn parse_line(
    h: &Header,
    line: &[u8],
    ev: &mut Event,
) -> Result<Option<Str>, Rejection> {
    let o = to_object(h, line)?;
    zeek::fill(&o, ev)
}

/// The object Zeek's JSON writer would have written for this line.
fn to_object(h: &Header, line: &[u8]) -> Result<Obj, Rejection> {
    if h.fields.is_empty() {
        return Err(Rejection::missing("#fields", SHAPES));
    }
    if !h.types.is_empty() && h.types.len() != h.fields.len() {
        return Err(Rejection::bad_value(
            "#types",
            format!("{} types for {} fields", h.types.len(), h.fields.len()),
            "one type per field",
        ));
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut o = Obj::new();
    if let Some(p) = &h.path {
        o.insert("_path".into(), Value::String(p.clone()));
    }
    let mut values = split(line, &h.separator);
    for (i, name) in h.fields.iter().enumerate() {
        let Some(raw) = values.next() else {
            return Err(Rejection::missing(
                name.as_str(),
                format!(
                    "the line has {i} of the {} fields named by #fields; was it truncated, or \
                     does it belong to another log file?",
                    h.fields.len()
                ),
            ));
        };
        if raw == h.unset_field.as_slice() {
            continue;
        }
        let kind = h
            .types
            .get(i)
            .map_or_else(|| default_type(name), String::as_str);
        o.insert(name.clone(), value(h, kind, raw));
    }
    if values.next().is_some() {
        return Err(Rejection::bad_value(
            "record",
            format!("more than the {} fields of #fields", h.fields.len()),
            "one value per field named by #fields",
        ));
    }
    Ok(o)
}

/// Without `#types`, the containers the mapping reads still have to be lists.
fn default_type(name: &str) -> &'static str {
    match name {
        "answers" => "vector[string]",
        "TTLs" => "vector[interval]",
        _ => "string",
    }
}

fn value(h: &Header, kind: &str, raw: &[u8]) -> Value {
    let inner = kind
        .strip_prefix("set[")
        .or_else(|| kind.strip_prefix("vector["))
        .and_then(|k| k.strip_suffix(']'));
    match inner {
        Some(_) if raw == h.empty_field.as_slice() => Value::Array(Vec::new()),
        Some(elem) => Value::Array(
            split(raw, &h.set_separator)
                .map(|item| scalar(elem, item))
                .collect(),
        ),
        None if raw == h.empty_field.as_slice() => Value::String(String::new()),
        None => scalar(kind, raw),
    }
}

/// A value typed as Zeek's JSON writer types it. Text that does not fit its type is kept as a string,
/// so the mapping rejects it naming the field.
fn scalar(kind: &str, raw: &[u8]) -> Value {
    let text = String::from_utf8_lossy(&unescape(raw)).into_owned();
    let number = match kind {
        "count" | "port" => text.parse::<u64>().ok().map(Number::from),
        "int" => text.parse::<i64>().ok().map(Number::from),
        "time" | "interval" | "double" => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(Number::from_f64),
        "bool" => {
            return match text.as_str() {
                "T" => Value::Bool(true),
                "F" => Value::Bool(false),
                _ => Value::String(text),
            }
        }
        _ => None,
    };
    number.map_or(Value::String(text), Value::Number)
}

/// The JSON-object shape: the header's parts as keys, and the record line.
fn from_object(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    let o = json::parse_object(raw, "a Zeek TSV record object")?;
    let mut h = Header::default();
    for (key, target) in [
        ("separator", &mut h.separator),
        ("set_separator", &mut h.set_separator),
        ("empty_field", &mut h.empty_field),
        ("unset_field", &mut h.unset_field),
    ] {
        if let Some(v) = json::text(&o, key)? {
            *target = unescape(v.as_bytes()).into_owned();
        }
    }
    h.path = json::text(&o, "path")?.map(|p| p.to_string());
    h.fields = list(&o, "fields", &h.separator)?;
    h.types = list(&o, "types", &h.separator)?;
    let line = json::text(&o, "line")?.ok_or_else(|| {
        Rejection::missing("line", "the record's tab-separated line, as Zeek wrote it")
    })?;
    parse_line(&h, line.as_bytes(), ev)
}

/// An array of names, or the text of a `#fields`/`#types` line (with or without the directive).
fn list(o: &Obj, key: &str, sep: &[u8]) -> Result<Vec<String>, Rejection> {
    match json::get(o, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(Rejection::bad_value(
                    key,
                    json::kind_of(other),
                    "an array of strings",
                )),
            })
            .collect(),
        Some(Value::String(s)) => {
            let directive = format!("#{key}");
            let body = s.strip_prefix(directive.as_str()).unwrap_or(s);
            Ok(parts_text(split(body.as_bytes(), sep))
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect())
        }
        Some(other) => Err(Rejection::bad_value(
            key,
            json::kind_of(other),
            "an array of names, or the text of the header line",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_hex() {
        assert_eq!(&*unescape(b"a\\x09b"), b"a\tb");
        assert_eq!(&*unescape(b"\\x2"), b"\\x2");
        assert_eq!(&*unescape(b"\\xzz\\"), b"\\xzz\\");
    }

    #[test]
    fn splits_on_multibyte_separators() {
        let parts: Vec<&[u8]> = split(b"a||b||", b"||").collect();
        assert_eq!(parts, [&b"a"[..], b"b", b""]);
    }
}
