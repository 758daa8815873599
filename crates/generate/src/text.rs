//! Hand-rolled JSON object writer and timestamp formats.
//!
//! Records are written directly as text rather than through `serde_json::Value`: the generator must
//! produce millions of records quickly (even in debug builds), the key order must be fixed (the content
//! hash of a record is its event id), and the time formats are sensor-specific anyway.

use std::fmt::Write;
use storyline_model::Timestamp;

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Builds one JSON object (possibly with nested objects) into a string with a fixed key order.
pub struct Obj {
    buf: String,
    /// Per nesting level: whether the next member needs a leading comma.
    comma: Vec<bool>,
}

impl Obj {
    pub fn new(capacity: usize) -> Self {
        let mut buf = String::with_capacity(capacity);
        buf.push('{');
        Obj {
            buf,
            comma: vec![false],
        }
    }

    fn key(&mut self, k: &str) {
        let c = self.comma.last_mut().expect("open object");
        if *c {
            self.buf.push(',');
        }
        *c = true;
        push_json_str(&mut self.buf, k);
        self.buf.push(':');
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        push_json_str(&mut self.buf, v);
        self
    }

    pub fn num(&mut self, k: &str, v: impl std::fmt::Display) -> &mut Self {
        self.key(k);
        let _ = write!(self.buf, "{v}");
        self
    }

    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k);
        self.buf.push_str(if v { "true" } else { "false" });
        self
    }

    /// A value that is already valid JSON text (arrays, literals).
    pub fn raw(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        self.buf.push_str(v);
        self
    }

    pub fn strs(&mut self, k: &str, vs: &[&str]) -> &mut Self {
        self.key(k);
        self.buf.push('[');
        for (i, v) in vs.iter().enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            push_json_str(&mut self.buf, v);
        }
        self.buf.push(']');
        self
    }

    pub fn open(&mut self, k: &str) -> &mut Self {
        self.key(k);
        self.buf.push('{');
        self.comma.push(false);
        self
    }

    pub fn close(&mut self) -> &mut Self {
        assert!(self.comma.len() > 1, "close without open");
        self.comma.pop();
        self.buf.push('}');
        self
    }

    pub fn finish(mut self) -> String {
        assert_eq!(self.comma.len(), 1, "unclosed nested object");
        self.buf.push('}');
        self.buf
    }
}

/// Civil UTC date and time of a timestamp, split for the various sensor formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanos: u32,
}

impl Civil {
    pub fn of(t: Timestamp) -> Civil {
        let ns = t.as_nanos();
        let secs = ns.div_euclid(1_000_000_000);
        let nanos = ns.rem_euclid(1_000_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
            nanos,
        }
    }
}

/// Howard Hinnant's `civil_from_days`: proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Zeek: epoch seconds with microseconds, e.g. `1795255200.123456`.
pub fn epoch_micros(t: Timestamp) -> String {
    let us = t.as_nanos().div_euclid(1000);
    format!(
        "{}.{:06}",
        us.div_euclid(1_000_000),
        us.rem_euclid(1_000_000)
    )
}

/// Suricata EVE: `2026-11-21T10:00:00.123456+0000`.
pub fn suricata_time(t: Timestamp) -> String {
    let c = Civil::of(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+0000",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.nanos / 1000
    )
}

/// Beats `@timestamp`: `2026-11-21T10:00:00.123Z`.
pub fn beats_time(t: Timestamp) -> String {
    let c = Civil::of(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.nanos / 1_000_000
    )
}

/// Sysmon `UtcTime`: `2026-11-21 10:00:00.123`.
pub fn sysmon_time(t: Timestamp) -> String {
    let c = Civil::of(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.nanos / 1_000_000
    )
}

/// PAN-OS: `2026/11/21 10:00:00` (whole seconds).
pub fn panos_time(t: Timestamp) -> String {
    let c = Civil::of(t);
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// The timestamp a whole-second format states.
pub fn floor_secs(t: Timestamp) -> Timestamp {
    Timestamp(epoch_secs(t) * 1_000_000_000)
}

/// Whole epoch seconds (AWS VPC flow logs), rounded down.
pub fn epoch_secs(t: Timestamp) -> i64 {
    t.as_nanos().div_euclid(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_the_sensors() {
        let t = Timestamp::parse_rfc3339("2026-11-21T10:00:00.123456789Z").unwrap();
        assert_eq!(suricata_time(t), "2026-11-21T10:00:00.123456+0000");
        assert_eq!(beats_time(t), "2026-11-21T10:00:00.123Z");
        assert_eq!(sysmon_time(t), "2026-11-21 10:00:00.123");
        assert_eq!(panos_time(t), "2026/11/21 10:00:00");
        assert_eq!(epoch_secs(t), t.as_nanos() / 1_000_000_000);
        assert_eq!(
            epoch_micros(t),
            format!("{}.123456", t.as_nanos() / 1_000_000_000)
        );
        let leap = Timestamp::parse_rfc3339("2028-02-29T23:59:59Z").unwrap();
        assert_eq!(panos_time(leap), "2028/02/29 23:59:59");
        assert_eq!(panos_time(Timestamp(0)), "1970/01/01 00:00:00");
    }

    #[test]
    fn objects_are_valid_json() {
        let mut o = Obj::new(64);
        o.str("a", "q\"\\\n\u{1}é")
            .num("n", 5)
            .open("x")
            .bool("b", true)
            .strs("l", &["1", "2"])
            .close()
            .raw("r", "[]");
        let s = o.finish();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "q\"\\\n\u{1}é");
        assert_eq!(v["x"]["l"][1], "2");
        assert_eq!(
            s,
            r#"{"a":"q\"\\\n\u0001é","n":5,"x":{"b":true,"l":["1","2"]},"r":[]}"#
        );
    }
}
