//! Why a record was rejected. Rejections are counted and shown to operators, so every message names the
//! offending field and says what would have been accepted; `code()` is the stable key for metrics.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("unknown format {format:?}: set \"format\" to one of {}", known.join(", "))]
    UnknownFormat {
        format: String,
        known: &'static [&'static str],
    },
    #[error("malformed JSON: {detail}; send exactly one complete JSON value per line")]
    MalformedJson { detail: String },
    #[error("missing field `{field}`: {hint}")]
    MissingField { field: String, hint: String },
    #[error(
        "bad timestamp in `{field}`: {value:?} is not {}",
        timestamp_hint(field)
    )]
    BadTimestamp { field: String, value: String },
    #[error("bad value in `{field}`: got {value}, expected {expected}")]
    BadValue {
        field: String,
        value: String,
        expected: String,
    },
    #[error("record is {len} bytes, over the limit of {limit} bytes: split the record or raise max_record_bytes")]
    Oversized { len: usize, limit: usize },
    #[error(
        "empty record: the line holds nothing but whitespace; drop blank lines before sending"
    )]
    Empty,
}

impl Rejection {
    /// Short, stable machine code (metric label, API field).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::UnknownFormat { .. } => "unknown_format",
            Rejection::MalformedJson { .. } => "malformed_json",
            Rejection::MissingField { .. } => "missing_field",
            Rejection::BadTimestamp { .. } => "bad_timestamp",
            Rejection::BadValue { .. } => "bad_value",
            Rejection::Oversized { .. } => "oversized",
            Rejection::Empty => "empty",
        }
    }

    pub(crate) fn missing(field: impl Into<String>, hint: impl Into<String>) -> Self {
        Rejection::MissingField {
            field: field.into(),
            hint: hint.into(),
        }
    }

    /// `value` is shown as given (callers quote it if they want quotes), cut short: a rejected record
    /// can be megabytes and the message must stay one readable line.
    pub(crate) fn bad_value(
        field: impl Into<String>,
        value: impl fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        Rejection::BadValue {
            field: field.into(),
            value: excerpt(&value.to_string()),
            expected: expected.into(),
        }
    }

    pub(crate) fn bad_timestamp(field: impl Into<String>, value: impl fmt::Display) -> Self {
        Rejection::BadTimestamp {
            field: field.into(),
            value: excerpt(&value.to_string()),
        }
    }

    pub(crate) fn malformed_json(e: &serde_json::Error) -> Self {
        Rejection::MalformedJson {
            detail: excerpt(&e.to_string()),
        }
    }
}

/// The variant carries only the field name (other crates match on it), so the accepted forms are
/// derived from the field's well-known name.
fn timestamp_hint(field: &str) -> &'static str {
    match field {
        "ts" => "epoch seconds like 1763719200.123456, or a date and time: RFC 3339 like \
                 2026-11-21T10:00:00Z (Zeek) or 2026-11-21 10:00:00.123 (nfdump csv)",
        "te" | "t_first" | "t_last" | "first" | "last" => {
            "an nfdump time like 2026-11-21 10:00:00.123 (UTC), or epoch seconds"
        }
        "StartTime" | "LastTime" => {
            "an argus time with a date: epoch seconds (ra -u) or 2026/11/21 10:00:00.123456 \
             (RA_TIME_FORMAT=\"%Y/%m/%d %T.%f\")"
        }
        "start" | "end" => {
            "epoch seconds like 1763719200 (VPC Flow Logs start/end); for CEF start/end, epoch \
             milliseconds or a date like Nov 21 2026 10:00:00"
        }
        "rt" | "deviceReceiptTime" | "startTime" | "endTime" => {
            "a CEF time: epoch milliseconds like 1763719200123, or MMM dd yyyy HH:mm:ss[.SSS][ zone] \
             with a year and zone UTC, GMT or a numeric offset"
        }
        "Generated Time" | "Receive Time" | "Start Time" => {
            "a PAN-OS time like 2026/11/21 10:00:00 (UTC)"
        }
        _ => "an RFC 3339 time like 2026-11-21T10:00:00.123Z (offsets like +0000 are accepted too)",
    }
}

const EXCERPT_CHARS: usize = 80;

/// At most [`EXCERPT_CHARS`] characters, control characters escaped, so messages stay one line.
pub(crate) fn excerpt(s: &str) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == EXCERPT_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
