//! The envelope's fast path: a byte scan of the usual envelope shapes,
//! `{"format": "...", "sensor": "...", "record": R}` in any key order (a native record must be last or
//! followed by one of the other two), so that a record is parsed once instead of being skipped over as a
//! `RawValue` first and then parsed again.
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
pub(crate) fn fast<'a>(line: &'a [u8], limits: &Limits) -> Option<Result<Parsed<'a>, Rejection>> {
    let mut s = Scan { b: line, i: 0 };
    s.eat(b'{')?;
    let mut keys = Keys::default();
    loop {
        s.ws();
        let key = s.plain_str()?;
        s.ws();
        s.eat(b':')?;
        s.ws();
        if key == "record" {
            break;
        }
        keys.set(key, s.plain_str()?)?;
        s.ws();
        s.eat(b',')?;
    }
    match s.peek()? {
        b'{' => {
            // The record runs to the envelope's closing brace, or to a last `"format"` or `"sensor"`
            // (as serializers that sort keys write it). The format's strict parser then checks that
            // it is exactly one JSON object.
            let close = line.len().checked_sub(1)?;
            if line.get(close) != Some(&b'}') {
                return None;
            }
            let mut end = close;
            if keys.format.is_none() || keys.sensor.is_none() {
                let (key, value, comma) = trailing_pair(line, close, s.i)?;
                keys.set(key, value)?;
                end = comma;
            }
            let (format, sensor) = (keys.format?, keys.sensor?);
            let raw = trim_json_ws_end(line.get(s.i..end)?);
            // An object's text ends with its brace (a format's parser may trim more than JSON does).
            if raw.last() != Some(&b'}') {
                return None;
            }
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
            loop {
                s.ws();
                if s.peek()? == b'}' {
                    break;
                }
                s.eat(b',')?;
                s.ws();
                let key = s.plain_str()?;
                s.ws();
                s.eat(b':')?;
                s.ws();
                keys.set(key, s.plain_str()?)?;
            }
            s.eat(b'}')?;
            if s.i != line.len() {
                return None;
            }
            let (format, sensor) = (keys.format?, keys.sensor?);
            // Decoded before anything can be rejected: a bad escape is the general path's
            // malformed-JSON error.
            let raw: Cow<[u8]> = if escaped {
                let token = line.get(content.start - 1..content.end + 1)?;
                Cow::Owned(serde_json::from_slice::<String>(token).ok()?.into_bytes())
            } else {
                let text = line.get(content)?;
                crate::utf8(text).ok()?;
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

/// The envelope's string fields, each allowed once.
#[derive(Default)]
struct Keys<'a> {
    format: Option<&'a str>,
    sensor: Option<&'a str>,
}

impl<'a> Keys<'a> {
    fn set(&mut self, key: &str, value: &'a str) -> Option<()> {
        let slot = match key {
            "format" => &mut self.format,
            "sensor" => &mut self.sensor,
            _ => return None,
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(value);
        Some(())
    }
}

/// Reads `, "key": "value"` backwards from `line[..end]` (whitespace allowed between the tokens, both
/// strings without escapes), staying after `floor`. Returns the key, the value and the comma's index.
fn trailing_pair(line: &[u8], end: usize, floor: usize) -> Option<(&str, &str, usize)> {
    let back_ws = |mut i: usize| {
        while i > floor && line.get(i - 1).copied().is_some_and(is_json_ws) {
            i -= 1;
        }
        i
    };
    // The string ending just before `i`, and the index of its opening quote.
    let string_before = |i: usize| -> Option<(&str, usize)> {
        let close = i.checked_sub(1).filter(|c| *c > floor)?;
        if line.get(close) != Some(&b'"') {
            return None;
        }
        let open = line.get(floor..close)?.iter().rposition(|b| *b == b'"')? + floor;
        let text = line.get(open + 1..close)?;
        if text.iter().any(|b| *b == b'\\' || *b < 0x20) {
            return None;
        }
        Some((crate::utf8(text).ok()?, open))
    };
    let (value, open) = string_before(back_ws(end))?;
    let colon = back_ws(open).checked_sub(1)?;
    if line.get(colon) != Some(&b':') {
        return None;
    }
    let (key, open) = string_before(back_ws(colon))?;
    let comma = back_ws(open).checked_sub(1).filter(|c| *c > floor)?;
    if line.get(comma) != Some(&b',') {
        return None;
    }
    Some((key, value, comma))
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
        crate::utf8(self.b.get(content)?).ok()
    }

    /// A string token: the range of its content (between the quotes) and whether it has escapes.
    /// Control characters, which JSON does not allow in strings, end the scan.
    fn string_token(&mut self) -> Option<(std::ops::Range<usize>, bool)> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            self.i += storyline_model::json_text::special(self.b.get(self.i..)?);
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

#[cfg(test)]
mod tests {
    use super::trailing_pair;

    #[test]
    fn pairs_read_backwards() {
        let line = br#"{"record":{"a":"b"} , "sensor" : "s 1" }"#;
        let end = line.len() - 1;
        let (key, value, comma) = trailing_pair(line, end, 10).unwrap();
        assert_eq!((key, value, line[comma]), ("sensor", "s 1", b','));
        assert_eq!(&line[10..comma], br#"{"a":"b"} "#);
        for bad in [
            &br#"{"record":{},"sensor":"a"b"}"#[..],
            br#"{"record":{},"sensor":"a\"}"#,
            br#"{"record":{},"sensor":5}"#,
            br#"{"record":{}"sensor":"x"}"#,
            br#"{"record":{},"sen"sor":"x"}"#,
            br#"{"record":"sensor":"x"}"#,
        ] {
            let end = bad.len() - 1;
            let found = trailing_pair(bad, end, 10);
            assert!(found.is_none_or(|(k, _, _)| k != "sensor"), "{found:?}");
        }
    }
}
