//! Event time as nanoseconds since the Unix epoch.
//!
//! Stored compactly as an integer (binary formats) and written as RFC 3339 in JSON, so stories read
//! naturally while the store stays small.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    pub fn now() -> Self {
        Self::from_system(SystemTime::now())
    }

    pub fn from_system(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(d.as_nanos().min(i64::MAX as u128) as i64),
            Err(e) => Timestamp(-(e.duration().as_nanos().min(i64::MAX as u128) as i64)),
        }
    }

    pub fn from_secs_f64(s: f64) -> Option<Self> {
        let ns = s * 1e9;
        (ns.is_finite() && ns.abs() < i64::MAX as f64).then_some(Timestamp(ns as i64))
    }

    pub fn from_millis(ms: i64) -> Self {
        Timestamp(ms.saturating_mul(1_000_000))
    }

    pub fn as_nanos(self) -> i64 {
        self.0
    }

    pub fn as_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(
            self.0
                .saturating_add(d.as_nanos().min(i64::MAX as u128) as i64),
        )
    }

    pub fn saturating_sub(self, d: Duration) -> Self {
        Timestamp(
            self.0
                .saturating_sub(d.as_nanos().min(i64::MAX as u128) as i64),
        )
    }

    /// Signed distance `self - other`.
    pub fn nanos_since(self, other: Timestamp) -> i64 {
        self.0.saturating_sub(other.0)
    }

    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let dt = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        i64::try_from(dt.unix_timestamp_nanos()).ok().map(Timestamp)
    }

    pub fn to_rfc3339(self) -> String {
        let mut out = Vec::with_capacity(30);
        self.write_rfc3339(&mut out);
        String::from_utf8(out).expect("RFC 3339 text is ASCII")
    }

    /// Appends this time as RFC 3339 in UTC, the text the `time` crate's `Rfc3339` gives (fraction
    /// without trailing zeros, none for a whole second). Written by hand because story JSON writes
    /// several per version and formatting through `time` (a `String` each, and its generic formatting
    /// machinery) was ~1% of a replay's CPU. A property test compares it with `time`.
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        const NS: i64 = 1_000_000_000;
        let (secs, nanos) = (self.0.div_euclid(NS), self.0.rem_euclid(NS) as u32);
        let (days, second_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
        let (year, month, day) = civil_from_days(days);
        // Composed on the stack and appended once: a push per character, each checking the vector's
        // capacity, made this ~430 instructions per timestamp (callgrind).
        // i64 nanoseconds span the years 1677 to 2262: always four digits.
        let mut buf = *b"0000-00-00T00:00:00.000000000";
        let digits = |buf: &mut [u8], mut v: u32| {
            for slot in buf.iter_mut().rev() {
                *slot = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        digits(&mut buf[0..4], year as u32);
        digits(&mut buf[5..7], month);
        digits(&mut buf[8..10], day);
        digits(&mut buf[11..13], second_of_day / 3600);
        digits(&mut buf[14..16], second_of_day / 60 % 60);
        digits(&mut buf[17..19], second_of_day % 60);
        if nanos == 0 {
            out.extend_from_slice(&buf[..19]);
        } else {
            digits(&mut buf[20..29], nanos);
            // The fraction without trailing zeros (nanos > 0: at least one digit stays).
            let mut end = 29;
            while buf[end - 1] == b'0' {
                end -= 1;
            }
            out.extend_from_slice(&buf[..end]);
        }
        out.push(b'Z');
    }
}

/// (year, month, day) of the proleptic Gregorian calendar for days since 1970-01-01: H. Hinnant's
/// `civil_from_days` (https://howardhinnant.github.io/date_algorithms.html).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_rfc3339())
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Repr<'a> {
                Text(&'a str),
                Owned(String),
                Nanos(i64),
            }
            match Repr::deserialize(d)? {
                Repr::Text(s) => Timestamp::parse_rfc3339(s),
                Repr::Owned(s) => Timestamp::parse_rfc3339(&s),
                Repr::Nanos(n) => Some(Timestamp(n)),
            }
            .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 timestamp"))
        } else {
            i64::deserialize(d).map(Timestamp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc3339_round_trip_keeps_nanoseconds() {
        let t = Timestamp::parse_rfc3339("2026-11-21T10:00:00.123456789Z").unwrap();
        assert_eq!(t.0 % 1_000_000_000, 123_456_789);
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-11-21T10:00:00.123456789Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }

    proptest! {
        #[test]
        fn rfc3339_text_is_what_the_time_crate_writes(
            t in prop_oneof![
                any::<i64>(),
                1_700_000_000_000_000_000i64..1_900_000_000_000_000_000,
                // Whole seconds and milliseconds, whose fractions are trimmed or left out.
                (-9_000_000_000i64..9_000_000_000).prop_map(|s| s * 1_000_000_000),
                (1_700_000_000_000i64..1_900_000_000_000).prop_map(|ms| ms * 1_000_000),
            ]
        ) {
            let expected = OffsetDateTime::from_unix_timestamp_nanos(i128::from(t))
                .unwrap()
                .format(&Rfc3339)
                .unwrap();
            prop_assert_eq!(Timestamp(t).to_rfc3339(), expected);
        }
    }

    #[test]
    fn rfc3339_text_at_the_ends_of_the_range() {
        for t in [i64::MIN, i64::MAX, 0, -1, 1, 951_782_400 * 1_000_000_000] {
            let expected = OffsetDateTime::from_unix_timestamp_nanos(i128::from(t))
                .unwrap()
                .format(&Rfc3339)
                .unwrap();
            assert_eq!(Timestamp(t).to_rfc3339(), expected, "{t}");
        }
    }

    #[test]
    fn binary_encoding_is_an_integer() {
        let t = Timestamp(1_700_000_000_000_000_000);
        let bytes = postcard::to_stdvec(&t).unwrap();
        assert!(bytes.len() <= 10);
        assert_eq!(postcard::from_bytes::<Timestamp>(&bytes).unwrap(), t);
    }
}
