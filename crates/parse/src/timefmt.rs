//! Time text as sensors write it. Hand-parsed because no single `time` format description covers the
//! variants seen in the wild: Suricata's `+0000` offsets (no colon), PAN-OS's `2026/11/21 10:00:00`
//! without any offset, Sysmon's space instead of `T`, and 1 to 9 fractional digits.

use storyline_model::Timestamp;
use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

/// `YYYY-MM-DD` or `YYYY/MM/DD`, then `T`, `t` or a space, `hh:mm:ss`, optional `.fraction` (up to
/// nanoseconds; further digits are dropped), and an optional offset `Z`, `±hh:mm`, `±hhmm` or `±hh`.
/// No offset means UTC.
pub(crate) fn parse_datetime(s: &str) -> Option<Timestamp> {
    let b = crate::trim(s).as_bytes();
    let mut p = Cursor { b, i: 0 };
    let year = p.digits(4)? as i32;
    let sep = p.any(b"-/")?;
    let month = p.digits(2)?;
    p.exact(sep)?;
    let day = p.digits(2)?;
    p.any(b"Tt ")?;
    let hour = p.digits(2)?;
    p.exact(b':')?;
    let minute = p.digits(2)?;
    p.exact(b':')?;
    let second = p.digits(2)?;
    let mut nanos = 0u32;
    if p.peek() == Some(b'.') || p.peek() == Some(b',') {
        p.i += 1;
        let mut n = 0usize;
        while let Some(d) = p.peek().filter(u8::is_ascii_digit) {
            if n < 9 {
                nanos = nanos * 10 + u32::from(d - b'0');
            }
            n += 1;
            p.i += 1;
        }
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            nanos *= 10;
        }
    }
    let offset = match p.peek() {
        None => UtcOffset::UTC,
        Some(b'Z' | b'z') => {
            p.i += 1;
            UtcOffset::UTC
        }
        Some(sign @ (b'+' | b'-')) => {
            p.i += 1;
            let h = p.digits(2)? as i8;
            if p.peek() == Some(b':') {
                p.i += 1;
            }
            let m = if p.peek().is_some() {
                p.digits(2)? as i8
            } else {
                0
            };
            let (h, m) = if sign == b'-' { (-h, -m) } else { (h, m) };
            UtcOffset::from_hms(h, m, 0).ok()?
        }
        Some(_) => return None,
    };
    if p.peek().is_some() {
        return None;
    }
    let date =
        Date::from_calendar_date(year, Month::try_from(month as u8).ok()?, day as u8).ok()?;
    let time = Time::from_hms_nano(hour as u8, minute as u8, second as u8, nanos).ok()?;
    let dt = PrimitiveDateTime::new(date, time).assume_offset(offset);
    i64::try_from(dt.unix_timestamp_nanos()).ok().map(Timestamp)
}

/// Epoch seconds as text (`1763719200` or `1763719200.123456789`), exact to the nanosecond.
pub(crate) fn parse_epoch_secs_text(s: &str) -> Option<Timestamp> {
    let s = crate::trim(s);
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let mut nanos: i64 = 0;
    for (n, d) in frac.bytes().enumerate() {
        if n == 9 {
            break;
        }
        nanos += i64::from(d - b'0') * 10i64.pow(8 - n as u32);
    }
    let total = secs.checked_mul(1_000_000_000)?.checked_add(nanos)?;
    Some(Timestamp(if neg { -total } else { total }))
}

/// Epoch seconds as a JSON float. Rounded to the microsecond: sensors that write float seconds (Zeek)
/// have microsecond resolution, and f64 carries about 0.2 µs of noise at today's epoch values, so
/// rounding recovers the value the sensor wrote instead of an off-by-some-nanoseconds neighbour.
pub(crate) fn from_epoch_secs_f64(secs: f64) -> Option<Timestamp> {
    let micros = (secs * 1e6).round();
    if !micros.is_finite() || micros.abs() >= (i64::MAX / 1000) as f64 {
        return None;
    }
    (micros as i64).checked_mul(1000).map(Timestamp)
}

/// Seconds (as a JSON number or numeric text) to nanoseconds, for durations.
pub(crate) fn secs_to_nanos(secs: f64) -> Option<i64> {
    from_epoch_secs_f64(secs).map(|t| t.0).filter(|n| *n >= 0)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let d = self.peek().filter(u8::is_ascii_digit)?;
            v = v * 10 + u32::from(d - b'0');
            self.i += 1;
        }
        Some(v)
    }

    fn exact(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    fn any(&mut self, set: &[u8]) -> Option<u8> {
        let c = self.peek().filter(|c| set.contains(c))?;
        self.i += 1;
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn accepts_sensor_variants() {
        let want = rfc("2026-11-21T10:00:00.123456Z");
        for s in [
            "2026-11-21T10:00:00.123456+0000",
            "2026-11-21T10:00:00.123456+00:00",
            "2026-11-21T10:00:00.123456Z",
            "2026-11-21 10:00:00.123456",
            "2026-11-21T11:00:00.123456+01",
            "2026-11-21T05:30:00.123456-0430",
        ] {
            assert_eq!(parse_datetime(s), Some(want), "{s}");
        }
        assert_eq!(
            parse_datetime("2026/11/21 10:00:00"),
            Some(rfc("2026-11-21T10:00:00Z"))
        );
        assert_eq!(
            parse_datetime("2026-11-21T10:00:00.123456789123Z"),
            Some(rfc("2026-11-21T10:00:00.123456789Z"))
        );
    }

    #[test]
    fn rejects_nonsense() {
        for s in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-21T25:00:00Z",
            "2026-11-21T10:00:00.Z",
            "2026-11-21T10:00:00+9999",
            "2026-11-21T10:00:00Zjunk",
            "2026-11-21",
            "yesterday",
            "2026-11/21 10:00:00",
        ] {
            assert_eq!(parse_datetime(s), None, "{s}");
        }
    }

    #[test]
    fn epoch_seconds() {
        assert_eq!(
            parse_epoch_secs_text("1763719200.123456789"),
            Some(Timestamp(1_763_719_200_123_456_789))
        );
        assert_eq!(
            parse_epoch_secs_text("1763719200"),
            Some(Timestamp(1_763_719_200_000_000_000))
        );
        assert_eq!(parse_epoch_secs_text("99999999999999999999"), None);
        assert_eq!(parse_epoch_secs_text("1.2.3"), None);
        assert_eq!(parse_epoch_secs_text("."), None);
        assert_eq!(
            from_epoch_secs_f64(1763719200.123456),
            Some(Timestamp(1_763_719_200_123_456_000))
        );
        assert_eq!(from_epoch_secs_f64(f64::NAN), None);
        assert_eq!(from_epoch_secs_f64(1e300), None);
    }
}
