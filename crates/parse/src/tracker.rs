//! Reading a stream of text lines whose records depend on a header line seen earlier in the same
//! stream: Zeek TSV (`#fields`, `#types`, ...), nfdump csv and Argus `ra` csv (column names).
//! [`crate::parse_record`] treats every line on its own, so it can only read such a line in the
//! format's default column order (nfdump, Argus) or not at all (Zeek TSV); a caller that reads a file
//! or a connection in order keeps one tracker per stream and feeds it every line.

use crate::formats::{argus, nfdump, zeek_tsv, ParseFn};
use crate::{
    check_sensor, check_size, complete, lookup, strip_terminator, Limits, Parsed, Rejection,
};
use std::borrow::Cow;
use storyline_model::Event;

/// One stream's header state for one format. For formats without header lines it parses each line
/// like [`crate::parse_record`].
#[derive(Clone, Debug)]
pub struct HeaderTracker {
    format: &'static str,
    parse_fn: ParseFn,
    state: State,
}

#[derive(Clone, Debug)]
enum State {
    ZeekTsv(Box<zeek_tsv::Header>),
    Nfdump {
        layout: Option<Box<nfdump::Layout>>,
        /// After nfdump's `Summary` line, until the next header: totals, not flows.
        in_summary: bool,
    },
    Argus(Option<Box<argus::Layout>>),
    Stateless,
}

impl HeaderTracker {
    /// A tracker for a stream of `format` records, or the unknown-format rejection.
    pub fn new(format: &str) -> Result<Self, Rejection> {
        let (format, parse_fn) = lookup(format)?;
        let state = match format {
            "zeek_tsv" => State::ZeekTsv(Box::default()),
            "nfdump" => State::Nfdump {
                layout: None,
                in_summary: false,
            },
            "argus" => State::Argus(None),
            _ => State::Stateless,
        };
        Ok(HeaderTracker {
            format,
            parse_fn,
            state,
        })
    }

    /// Whether records of `format` can depend on an earlier header line.
    pub fn has_headers(format: &str) -> bool {
        matches!(format, "zeek_tsv" | "nfdump" | "argus")
    }

    /// One line of the stream: `None` for a header (or other non-record) line, which updates the
    /// tracker; otherwise the record's outcome, as [`crate::parse_record`] gives it. A header line that
    /// cannot be used is a rejection (and leaves the previous header in force).
    pub fn parse_line<'a>(
        &mut self,
        sensor: &str,
        line: &'a [u8],
        limits: &Limits,
    ) -> Option<Result<Parsed<'a>, Rejection>> {
        if let Err(e) = check_size(line, limits).and_then(|()| check_sensor(sensor)) {
            return Some(Err(e));
        }
        let raw = strip_terminator(Cow::Borrowed(line));
        if raw.trim_ascii().is_empty() {
            return Some(Err(Rejection::Empty));
        }
        let mut event = Event::default();
        let own_id = match &mut self.state {
            State::Stateless => (self.parse_fn)(&raw, &mut event),
            State::ZeekTsv(header) => {
                if raw.first() == Some(&b'#') {
                    let mut next = (**header).clone();
                    return match zeek_tsv::header_line(&mut next, &raw) {
                        Ok(_) => {
                            **header = next;
                            None
                        }
                        Err(e) => Some(Err(e)),
                    };
                }
                zeek_tsv::parse_line(header, &raw, &mut event)
            }
            State::Nfdump { layout, in_summary } => {
                let trimmed = raw.trim_ascii();
                match std::str::from_utf8(trimmed) {
                    Ok(text) if !text.starts_with('{') => {
                        if let Some(l) = nfdump::header(text) {
                            *layout = Some(Box::new(l));
                            *in_summary = false;
                            return None;
                        }
                        if nfdump::starts_summary(text) {
                            *in_summary = true;
                            return None;
                        }
                        if *in_summary {
                            return None;
                        }
                        match layout {
                            Some(l) => nfdump::parse_line(l, text, &mut event),
                            None => (self.parse_fn)(&raw, &mut event),
                        }
                    }
                    // JSON records carry their own names; bad UTF-8 is the parser's to reject.
                    _ => (self.parse_fn)(&raw, &mut event),
                }
            }
            State::Argus(layout) => match std::str::from_utf8(raw.trim_ascii()) {
                Ok(text) => {
                    if let Some(l) = argus::header(text) {
                        *layout = Some(Box::new(l));
                        return None;
                    }
                    match layout {
                        Some(l) => argus::parse_line(l, text, &mut event),
                        None => (self.parse_fn)(&raw, &mut event),
                    }
                }
                Err(_) => (self.parse_fn)(&raw, &mut event),
            },
        };
        Some(own_id.map(|own_id| complete(self.format, sensor, raw, event, own_id)))
    }
}

/// The header lines in force at a point of a stream, for a caller that cuts the stream into chunks
/// read separately (a followed file read in batches, a replay split across workers): put
/// [`prefix`](Self::prefix) in front of the next chunk and a fresh [`HeaderTracker`] reads it as one
/// that had seen the whole stream. Only the header lines are looked at, not the records, so it is
/// cheap enough to run over every line a second time.
///
/// - Zeek TSV: the last block of `#` lines (a new block after records replaces the old one).
/// - nfdump csv: the last header line (a line with a `ts` column), and nfdump's `Summary` line when the
///   chunk ends inside the summary block, so its totals are not read as flows.
/// - Argus `ra` csv: the last header line (a line with a `SrcAddr` column).
#[derive(Clone, Debug, Default)]
pub struct HeaderContext {
    kind: ContextKind,
    header: Vec<u8>,
    /// nfdump: the `Summary` line, when the stream is inside the summary block.
    summary: Option<Vec<u8>>,
    /// Zeek TSV: the previous line was a `#` line (a block continues).
    in_block: bool,
    prefix: Vec<u8>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ContextKind {
    #[default]
    ZeekTsv,
    Nfdump,
    Argus,
}

impl HeaderContext {
    /// A context for `format`, or `None` when its records do not depend on header lines.
    pub fn new(format: &str) -> Option<Self> {
        let kind = match format {
            "zeek_tsv" => ContextKind::ZeekTsv,
            "nfdump" => ContextKind::Nfdump,
            "argus" => ContextKind::Argus,
            _ => return None,
        };
        Some(HeaderContext {
            kind,
            ..Default::default()
        })
    }

    /// Feeds every line of `text` (complete lines; a last line without its newline is taken as one).
    pub fn observe_lines(&mut self, text: &[u8]) {
        for line in text.split_inclusive(|b| *b == b'\n') {
            self.observe(line);
        }
    }

    /// Feeds one line of the stream, in order (with or without its line end).
    pub fn observe(&mut self, line: &[u8]) {
        let raw = strip_terminator(Cow::Borrowed(line));
        // Zeek header values may end in whitespace (a separator); CSV headers are compared trimmed.
        let text = match self.kind {
            ContextKind::ZeekTsv => &raw[..],
            _ => raw.trim_ascii(),
        };
        match self.kind {
            ContextKind::ZeekTsv => {
                let is_header = text.first() == Some(&b'#');
                if is_header {
                    if !self.in_block {
                        self.header.clear();
                    }
                    push_line(&mut self.header, text);
                }
                self.in_block = is_header;
            }
            ContextKind::Nfdump => {
                // JSON records carry their names; they never change the header in force.
                let Ok(s) = std::str::from_utf8(text) else {
                    return;
                };
                if s.starts_with('{') {
                    return;
                }
                if nfdump::header(s).is_some() {
                    self.header.clear();
                    push_line(&mut self.header, text);
                    self.summary = None;
                } else if nfdump::starts_summary(s) {
                    let mut l = Vec::new();
                    push_line(&mut l, text);
                    self.summary = Some(l);
                }
            }
            ContextKind::Argus => {
                if let Ok(s) = std::str::from_utf8(text) {
                    if argus::header(s).is_some() {
                        self.header.clear();
                        push_line(&mut self.header, text);
                    }
                }
            }
        }
        self.prefix.clear();
        self.prefix.extend_from_slice(&self.header);
        if let Some(s) = &self.summary {
            self.prefix.extend_from_slice(s);
        }
    }

    /// The lines to put in front of the next chunk (empty before any header), each ending in `\n`.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }
}

fn push_line(out: &mut Vec<u8>, line: &[u8]) {
    out.extend_from_slice(line);
    out.push(b'\n');
}
