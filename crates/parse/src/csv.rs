//! Splitting one CSV line (RFC 4180 quoting) into fields. A full CSV reader would be overkill: PAN-OS
//! records are single lines, and quoted fields only ever protect commas and quotes.

use std::borrow::Cow;

/// Splits on commas outside double quotes; `""` inside quotes is a literal quote. Lenient, as a log
/// line cannot be re-requested: an unterminated quote runs to the end of the line, and text between a
/// closing quote and the next comma is kept.
#[cfg(test)]
pub(crate) fn split_line(line: &str) -> Vec<Cow<'_, str>> {
    let mut fields = Vec::new();
    split_into(&mut fields, line, usize::MAX);
    fields
}

/// [`split_line`] appending to `fields`, stopping once `fields` holds `max` fields (the fields split
/// so far are the same either way: each field's extent depends only on the text from its start).
pub(crate) fn split_into<'a>(fields: &mut Vec<Cow<'a, str>>, line: &'a str, max: usize) {
    let mut rest = line;
    while fields.len() < max {
        let (field, next) = if let Some(quoted) = rest.strip_prefix('"') {
            quoted_field(quoted)
        } else {
            // Byte search: a comma is ASCII, so both sides stay valid UTF-8.
            match rest.bytes().position(|b| b == b',') {
                Some(i) => (
                    Cow::Borrowed(rest.get(..i).unwrap_or_default()),
                    rest.get(i + 1..),
                ),
                None => (Cow::Borrowed(rest), None),
            }
        };
        fields.push(field);
        match next {
            Some(n) => rest = n,
            None => return,
        }
    }
}

/// `s` starts just after the opening quote. Returns the field and the text after its comma, if any.
fn quoted_field(s: &str) -> (Cow<'_, str>, Option<&str>) {
    let mut value: Option<String> = None;
    let mut start = 0;
    let mut i = 0;
    let bytes = s.as_bytes();
    while let Some(&b) = bytes.get(i) {
        if b == b'"' {
            if bytes.get(i + 1) == Some(&b'"') {
                value
                    .get_or_insert_with(String::new)
                    .push_str(&s[start..=i]);
                i += 2;
                start = i;
                continue;
            }
            let body = match value {
                Some(mut v) => {
                    v.push_str(&s[start..i]);
                    Cow::Owned(v)
                }
                None => Cow::Borrowed(&s[..i]),
            };
            let after = &s[i + 1..];
            return match after.find(',') {
                Some(j) => {
                    let trailing = &after[..j];
                    let field = if trailing.is_empty() {
                        body
                    } else {
                        Cow::Owned(format!("{body}{trailing}"))
                    };
                    (field, Some(&after[j + 1..]))
                }
                None if after.is_empty() => (body, None),
                None => (Cow::Owned(format!("{body}{after}")), None),
            };
        }
        i += 1;
    }
    let body = match value {
        Some(mut v) => {
            v.push_str(&s[start..]);
            Cow::Owned(v)
        }
        None => Cow::Borrowed(s),
    };
    (body, None)
}

#[cfg(test)]
mod tests {
    use super::split_line;

    fn split(s: &str) -> Vec<String> {
        split_line(s).into_iter().map(|c| c.into_owned()).collect()
    }

    #[test]
    fn split_stops_at_max() {
        let line = r#"a,"b,c",d,,e"#;
        let all = split(line);
        for max in 0..7 {
            let mut some = Vec::new();
            super::split_into(&mut some, line, max);
            let some: Vec<String> = some.into_iter().map(|c| c.into_owned()).collect();
            assert_eq!(some, all[..max.min(all.len())], "{max}");
        }
    }

    #[test]
    fn plain_and_quoted_fields() {
        assert_eq!(split("a,b,,c"), ["a", "b", "", "c"]);
        assert_eq!(split(""), [""]);
        assert_eq!(split("a,"), ["a", ""]);
        assert_eq!(split(r#""x,y",z"#), ["x,y", "z"]);
        assert_eq!(split(r#""say ""hi""",2"#), [r#"say "hi""#, "2"]);
        assert_eq!(split(r#""""#), [""]);
        assert_eq!(split(r#"a,"unterminated,b"#), ["a", "unterminated,b"]);
        assert_eq!(split(r#""q"tail,n"#), ["qtail", "n"]);
        assert_eq!(split("é,\"ü\",ß"), ["é", "ü", "ß"]);
    }
}
