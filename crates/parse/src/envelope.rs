//! The envelope's fast path: a byte scan of the usual envelope shape,
//! `{"format": "...", "sensor": "...", "record": R}` (format and sensor in either order, the record
//! last), so that a record is parsed once instead of being skipped over as a `RawValue` first and then
//! parsed again.
//!
//! The scan only vouches for what it has checked byte by byte. A native JSON record's text is not
//! checked here but by its format's fast path, which parses it strictly (see [`crate::fast`]); if that
//! parser gives up, or the line has any other shape (other keys, escapes in the format or sensor,
//! anything malformed), `None` sends the line to the general path in `lib.rs`, which produces the
//! same result or names the error. So every answer from here is the one the general path would give.

use crate::{check_sensor, complete, formats, lookup, parse_with, Limits, Parsed, Rejection};
use std::borrow::Cow;
use storyline_model::Event;

/// `line` is trimmed and starts with `{`.
pub(crate) fn fast(line: &[u8], limits: &Limits) -> Option<Result<Parsed, Rejection>> {
    let mut s = Scan { b: line, i: 0 };
    s.eat(b'{')?;
    let mut format = None;
    let mut sensor = None;
    loop {
        s.ws();
        let key = s.plain_str()?;
        s.ws();
        s.eat(b':')?;
        s.ws();
        match key {
            "format" if format.is_none() => format = Some(s.plain_str()?),
            "sensor" if sensor.is_none() => sensor = Some(s.plain_str()?),
            "record" => break,
            _ => return None,
        }
        s.ws();
        s.eat(b',')?;
    }
    let (format, sensor) = (format?, sensor?);
    match s.peek()? {
        b'{' => {
            // The record runs to the envelope's closing brace; its format's strict parser checks that
            // it is exactly one JSON object.
            let body = line.get(..line.len().checked_sub(1)?)?;
            if line.last() != Some(&b'}') {
                return None;
            }
            let raw = trim_json_ws_end(body.get(s.i..)?);
            let (canonical, _) = lookup(format).ok()?;
            check_sensor(sensor).ok()?;
            let fast = formats::fast_fn(canonical)?;
            let mut event = Event::default();
            let own_id = fast(raw, &mut event).ok()?;
            Some(Ok(complete(
                canonical,
                sensor,
                Cow::Borrowed(raw),
                event,
                own_id,
            )))
        }
        b'"' => {
            let (content, escaped) = s.string_token()?;
            s.ws();
            s.eat(b'}')?;
            if s.i != line.len() {
                return None;
            }
            // Decoded before anything can be rejected: a bad escape is the general path's
            // malformed-JSON error.
            let raw: Cow<[u8]> = if escaped {
                let token = line.get(content.start - 1..content.end + 1)?;
                Cow::Owned(serde_json::from_slice::<String>(token).ok()?.into_bytes())
            } else {
                let text = line.get(content)?;
                std::str::from_utf8(text).ok()?;
                Cow::Borrowed(text)
            };
            Some(lookup(format).and_then(|(canonical, parse_fn)| {
                check_sensor(sensor)?;
                parse_with(canonical, parse_fn, sensor, raw, limits)
            }))
        }
        _ => None,
    }
}

/// JSON's whitespace (not the form feed that `trim_ascii` also removes).
fn is_json_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

fn trim_json_ws_end(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|c| !is_json_ws(*c)).map_or(0, |i| i + 1);
    b.get(..end).unwrap_or_default()
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(is_json_ws) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string without escapes or control characters, as UTF-8.
    fn plain_str(&mut self) -> Option<&'a str> {
        let (content, escaped) = self.string_token()?;
        if escaped {
            return None;
        }
        std::str::from_utf8(self.b.get(content)?).ok()
    }

    /// A string token: the range of its content (between the quotes) and whether it has escapes.
    /// Control characters, which JSON does not allow in strings, end the scan.
    fn string_token(&mut self) -> Option<(std::ops::Range<usize>, bool)> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            self.i += special(self.b.get(self.i..)?);
            match self.peek()? {
                b'"' => {
                    let content = start..self.i;
                    self.i += 1;
                    return Some((content, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.i += 2;
                }
                _ => return None,
            }
        }
    }
}

/// Index of the first `"`, `\` or control character in `b` (or `b.len()`), eight bytes at a time.
fn special(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let v = u64::from_le_bytes(bytes);
        // Bytes below 0x20, equal to '"' or equal to '\\' (high-bit bytes never match).
        let found = (v.wrapping_sub(ONES * 0x20) & !v & HIGHS)
            | has_zero(v ^ (ONES * u64::from(b'"')))
            | has_zero(v ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            break;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::special;

    #[test]
    fn special_bytes() {
        assert_eq!(special(b""), 0);
        assert_eq!(special(b"abc"), 3);
        assert_eq!(special(b"abcdefghijklmnop\"q"), 16);
        assert_eq!(special(b"abcdefgh\\ijklmnop"), 8);
        assert_eq!(special(b"abcdefghijk\tlmnop"), 11);
        assert_eq!(special("é€😀 plain text, long enough".as_bytes()), 33);
        for n in 0..40 {
            let mut s = vec![b'x'; n];
            s.push(b'"');
            s.extend_from_slice(b"yyyyyyyyyy");
            assert_eq!(special(&s), n);
            s[n] = 0x1f;
            assert_eq!(special(&s), n);
            s[n] = 0x7f;
            assert_eq!(special(&s), s.len());
        }
    }
}
