//! CSV records whose column order is given by a header line (nfdump `-o csv`, Argus `ra -c ,`): the
//! header is resolved once into the indices of the columns a format reads, so a record line costs one
//! split and direct lookups.

use crate::error::Rejection;
use crate::json::{parse_ip, COUNT_EXPECTED, IP_EXPECTED, PORT_EXPECTED};
use std::net::IpAddr;
use std::str::FromStr;

/// A header line's column names, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Columns(pub(crate) Vec<String>);

impl Columns {
    pub(crate) fn from_line(line: &str) -> Self {
        Columns(line.split(',').map(|s| s.trim().to_owned()).collect())
    }

    pub(crate) fn from_names(names: &[&str]) -> Self {
        Columns(names.iter().map(|s| (*s).to_owned()).collect())
    }

    /// The index of the first column named by any of `aliases` (ASCII case ignored).
    pub(crate) fn index(&self, aliases: &[&str]) -> Option<usize> {
        self.0
            .iter()
            .position(|c| aliases.iter().any(|a| a.eq_ignore_ascii_case(c)))
    }
}

/// A column the format reads: where it is, and the name rejections call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Col {
    pub(crate) at: Option<usize>,
    pub(crate) name: &'static str,
}

impl Col {
    /// `aliases[0]` is the name used in messages.
    pub(crate) fn find(cols: &Columns, aliases: &[&'static str]) -> Col {
        Col {
            at: cols.index(aliases),
            name: aliases.first().copied().unwrap_or("column"),
        }
    }
}

/// A split record line.
pub(crate) struct Row<'a> {
    pub(crate) fields: Vec<&'a str>,
    /// Placeholder text meaning "no value" besides the empty string.
    pub(crate) placeholder: &'a str,
}

impl<'a> Row<'a> {
    pub(crate) fn split(line: &'a str, placeholder: &'a str) -> Self {
        Self::split_upto(line, placeholder, usize::MAX)
    }

    /// Splits off the first `used` columns only (the rest of the line, if any, is one more field):
    /// exports are wide and a parser reads a few leading columns.
    pub(crate) fn split_upto(line: &'a str, placeholder: &'a str, used: usize) -> Self {
        Row {
            fields: line.splitn(used.saturating_add(1), ',').collect(),
            placeholder,
        }
    }

    /// The column's text; empty or the placeholder means absent.
    pub(crate) fn get(&self, c: Col) -> Option<&'a str> {
        let s = self.fields.get(c.at?)?.trim();
        (!s.is_empty() && s != self.placeholder).then_some(s)
    }

    pub(crate) fn require(&self, c: Col, hint: &str) -> Result<&'a str, Rejection> {
        self.get(c).ok_or_else(|| Rejection::missing(c.name, hint))
    }

    pub(crate) fn ip(&self, c: Col) -> Result<Option<IpAddr>, Rejection> {
        match self.get(c) {
            None => Ok(None),
            Some(s) => parse_ip(s)
                .map(Some)
                .ok_or_else(|| Rejection::bad_value(c.name, format!("{s:?}"), IP_EXPECTED)),
        }
    }

    pub(crate) fn num<T: FromStr>(&self, c: Col, expected: &str) -> Result<Option<T>, Rejection> {
        match self.get(c) {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| Rejection::bad_value(c.name, format!("{s:?}"), expected)),
        }
    }

    pub(crate) fn count(&self, c: Col) -> Result<Option<u64>, Rejection> {
        self.num(c, COUNT_EXPECTED)
    }

    /// A port, also in hex (`0x0008`) as flow tools write an ICMP type and code.
    pub(crate) fn port(&self, c: Col) -> Result<Option<u16>, Rejection> {
        match self.get(c) {
            None => Ok(None),
            Some(s) => {
                let n = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                    Some(hex) => u16::from_str_radix(hex, 16).ok(),
                    None => s.parse().ok(),
                };
                n.map(Some).ok_or_else(|| {
                    Rejection::bad_value(
                        c.name,
                        format!("{s:?}"),
                        format!("{PORT_EXPECTED} (numeric, not a service name)"),
                    )
                })
            }
        }
    }

    /// Non-negative seconds, fractions allowed, as nanoseconds.
    pub(crate) fn secs(&self, c: Col) -> Result<Option<i64>, Rejection> {
        match self.get(c) {
            None => Ok(None),
            Some(s) => s
                .parse::<f64>()
                .ok()
                .and_then(crate::timefmt::secs_to_nanos)
                .map(Some)
                .ok_or_else(|| {
                    Rejection::bad_value(
                        c.name,
                        format!("{s:?}"),
                        "a duration in seconds, like 1.25",
                    )
                }),
        }
    }
}

/// A text record as UTF-8, naming the record when it is not.
pub(crate) fn utf8(raw: &[u8]) -> Result<&str, Rejection> {
    crate::utf8(raw).map_err(|_| {
        Rejection::bad_value("record", String::from_utf8_lossy(raw), "a UTF-8 text line")
    })
}
