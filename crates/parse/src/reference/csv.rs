//! The implementation before the parsing optimization (see `mod.rs`).

use std::borrow::Cow;

/// Splits on commas outside double quotes; `""` inside quotes is a literal quote. Lenient, as a log
/// line cannot be re-requested: an unterminated quote runs to the end of the line, and text between a
/// closing quote and the next comma is kept.
pub(crate) fn split_line(line: &str) -> Vec<Cow<'_, str>> {
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        let (field, next) = if let Some(quoted) = rest.strip_prefix('"') {
            quoted_field(quoted)
        } else {
            match rest.find(',') {
                Some(i) => (Cow::Borrowed(&rest[..i]), Some(&rest[i + 1..])),
                None => (Cow::Borrowed(rest), None),
            }
        };
        fields.push(field);
        match next {
            Some(n) => rest = n,
            None => return fields,
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
