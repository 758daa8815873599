//! Accepting input: parse every line, route it to a shard, write the batch durably, dead-letter the rest.

pub mod replay;

use metrics::counter;
use std::borrow::Cow;
use std::sync::Arc;
use storyline_model::routing::shard_for;
use storyline_model::{EventKey, Timestamp};
use storyline_parse::{Limits, Parsed, Rejection};
use storyline_store::{bucket_of, DeadLetter, NewEvent, Store, StoreError};

/// The `source` of a plain record's dead letter: where it came from and, because a plain record does not
/// name its sensor, the sensor it was received for, so `storyline dead-letters replay` can parse it again.
/// The store's `DeadLetter` has no sensor field and its embedded encoding (postcard) cannot grow one without
/// breaking letters already stored, hence the suffix: `http sensor="fw-edge-1"`. The name is a JSON
/// string, in which an unescaped `"` cannot occur, so [`split_dead_letter_source`] finds it unambiguously.
pub fn dead_letter_source(source: &str, sensor: &str) -> String {
    let quoted = serde_json::to_string(sensor).unwrap_or_else(|_| "\"\"".into());
    format!("{source}{SENSOR_MARK}{}", &quoted[1..])
}

const SENSOR_MARK: &str = " sensor=\"";

/// A dead letter's `source` split into where it came from and the sensor [`dead_letter_source`] added
/// (none for envelopes, source-level rejections and letters stored before the sensor was kept).
pub fn split_dead_letter_source(source: &str) -> (&str, Option<String>) {
    if let Some((base, rest)) = source.rsplit_once(SENSOR_MARK) {
        if let Ok(sensor) = serde_json::from_str::<String>(&format!("\"{rest}")) {
            return (base, Some(sensor));
        }
    }
    (source, None)
}

/// The elements of a body that is one JSON array, the shape log shippers' HTTP outputs send (Fluent
/// Bit `format json`, Vector's `http` sink with `codec = "json"`, Logstash `format => "json_batch"`). Any
/// other body, including one that only starts with `[`, is read as lines: no format's record line is a JSON
/// array, so nothing that was accepted before is read differently.
fn json_array(body: &[u8]) -> Option<Vec<&serde_json::value::RawValue>> {
    let t = body.trim_ascii();
    if t.first() != Some(&b'[') || t.last() != Some(&b']') {
        return None;
    }
    serde_json::from_slice(t).ok()
}

/// The body's lines, as `body.split(|b| *b == b'\n')` gives them (the piece after the last newline
/// included, even empty), found with `memchr`: the byte-by-byte split was ~6% of a replay's instructions
/// (callgrind, 50k events).
pub fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', body)
        .map(Some)
        .chain(std::iter::once(None))
        .map(move |end| {
            let end = end.unwrap_or(body.len());
            let line = &body[start..end];
            start = end + 1;
            line
        })
}

/// One array element as a record: its JSON text, except that for plain records a string element is the
/// record's raw line (text formats such as `panos` or `cef`, shipped as JSON strings).
fn element_record<'a>(e: &'a serde_json::value::RawValue, framing: Framing<'_>) -> Cow<'a, [u8]> {
    let text = e.get();
    if let (Framing::Plain { .. }, Some(b'"')) = (framing, text.as_bytes().first()) {
        if let Ok(s) = serde_json::from_str::<Cow<'a, str>>(text) {
            return match s {
                Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                Cow::Owned(s) => Cow::Owned(s.into_bytes()),
            };
        }
    }
    Cow::Borrowed(text.as_bytes())
}

/// One rejected line of a batch.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LineError {
    /// 1-based line number in the batch.
    pub line: u64,
    pub code: &'static str,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestReport {
    pub accepted: u64,
    pub rejected: u64,
    pub errors: Vec<LineError>,
}

/// How the records of a batch are framed.
#[derive(Clone, Copy, Debug)]
pub enum Framing<'a> {
    /// NDJSON envelope lines.
    Envelopes,
    /// Bare records of one format from one sensor, one per line.
    Plain { format: &'a str, sensor: &'a str },
}

pub struct Ingestor {
    store: Arc<dyn Store>,
    tenant: String,
    shards: u16,
    bucket_ms: i64,
    horizon: Option<crate::config::WriteHorizonRef>,
    pub limits: Limits,
}

/// Error lines returned to a client per batch; the rest are only counted (and all are dead-lettered).
const MAX_REPORTED_ERRORS: usize = 100;

impl Ingestor {
    pub fn new(
        store: Arc<dyn Store>,
        tenant: &str,
        cfg: &crate::PipelineConfig,
        limits: Limits,
    ) -> Result<Self, StoreError> {
        store.ensure_tenant(tenant, cfg.shards)?;
        Ok(Self {
            store,
            tenant: tenant.into(),
            shards: cfg.shards,
            bucket_ms: cfg.bucket_ms(),
            horizon: cfg.write_horizon.clone(),
            limits,
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Parses and stores a batch of newline-separated records, or a JSON array of them (see
    /// [`json_array`]), in which case "line" means the element's 1-based position. Returns once accepted events are durable;
    /// rejected lines are in dead_letters before this returns. An `Err` means the store failed and nothing
    /// of the batch may be assumed stored: the sender should retry the whole batch (ids make that safe).
    pub fn ingest(
        &self,
        body: &[u8],
        framing: Framing<'_>,
        source: &str,
    ) -> Result<IngestReport, StoreError> {
        self.ingest_from_line(body, framing, source, 1)
    }

    /// [`Ingestor::ingest`] for a chunk of a larger input whose first line is `first_line` (1-based), so
    /// errors and dead letters name the line in the file.
    pub fn ingest_from_line(
        &self,
        body: &[u8],
        framing: Framing<'_>,
        source: &str,
        first_line: u64,
    ) -> Result<IngestReport, StoreError> {
        self.ingest_lines(body, framing, source, first_line, None)
    }

    /// [`Ingestor::ingest_from_line`] for a caller that already counted the chunk's line ends (a replay's
    /// reader does, to number the next chunk's lines): counting them again here was a second pass over
    /// every byte of the input, ~0.1 s of a 1M-event replay's ingest threads.
    pub fn ingest_lines(
        &self,
        body: &[u8],
        framing: Framing<'_>,
        source: &str,
        first_line: u64,
        line_ends: Option<usize>,
    ) -> Result<IngestReport, StoreError> {
        // With a write horizon the batch stays in flight until this returns (durable), and workers do not
        // read its bucket before.
        let in_flight = self.horizon.as_ref().map(|h| h.0.begin());
        let now = in_flight.as_ref().map_or_else(Timestamp::now, |w| w.at);
        let mut dead: Vec<DeadLetter> = Vec::new();
        let mut report = IngestReport::default();
        let elements = json_array(body);
        // Sized up front: a replay chunk holds thousands of events, and growing the vector by doubling
        // copied it into fresh pages each time (sampled: a third of a replay's page faults).
        let mut accepted = EncodedBatch::with_capacity(match &elements {
            Some(elements) => elements.len(),
            None => line_ends.unwrap_or_else(|| memchr::memchr_iter(b'\n', body).count()) + 1,
        });
        let records: Box<dyn Iterator<Item = Cow<'_, [u8]>>> = match &elements {
            Some(elements) => Box::new(elements.iter().map(|e| element_record(e, framing))),
            None => Box::new(lines(body).map(Cow::Borrowed)),
        };
        // Records of some text formats depend on a header line earlier in the stream (Zeek TSV `#fields`,
        // nfdump and Argus column names): a batch is read in order with one tracker, and callers that split
        // a stream into batches repeat its header at the start of each.
        let mut tracker = match framing {
            Framing::Plain { format, .. }
                if storyline_parse::HeaderTracker::has_headers(format) =>
            {
                storyline_parse::HeaderTracker::new(format).ok()
            }
            _ => None,
        };
        for (i, line) in records.enumerate() {
            if line.trim_ascii().is_empty() {
                continue;
            }
            let parsed_line = match &line {
                Cow::Borrowed(line) => self.parse_line(line, framing, tracker.as_mut()),
                // A record decoded out of a JSON string lives only for this iteration.
                Cow::Owned(line) => self
                    .parse_line(line, framing, tracker.as_mut())
                    .map(|r| r.map(Parsed::into_owned)),
            };
            let Some(result) = parsed_line else { continue };
            let line = &*line;
            match result {
                Ok(mut p) => {
                    p.event.event.ingested = Some(now);
                    accepted.push(p, self.shards);
                }
                Err(rejection) => {
                    let line_no = first_line + i as u64;
                    let (format, source) = match framing {
                        Framing::Plain { format, sensor } => (
                            Some(format.to_string()),
                            Cow::Owned(dead_letter_source(source, sensor)),
                        ),
                        Framing::Envelopes => (None, Cow::Borrowed(source)),
                    };
                    self.reject(
                        &mut report,
                        &mut dead,
                        line_no,
                        rejection,
                        line,
                        format,
                        &source,
                        now,
                    );
                }
            }
        }
        report.accepted = accepted.len() as u64;
        self.store_encoded(&accepted, now)?;
        self.store.put_dead_letters(&dead)?;
        counter!("storyline_events_accepted_total", "tenant" => self.tenant.clone())
            .increment(report.accepted);
        Ok(report)
    }

    /// One record of a batch; `None` for a line that only updates the header tracker.
    fn parse_line<'b>(
        &self,
        line: &'b [u8],
        framing: Framing<'_>,
        tracker: Option<&mut storyline_parse::HeaderTracker>,
    ) -> Option<Result<Parsed<'b>, Rejection>> {
        match (framing, tracker) {
            (Framing::Envelopes, _) => Some(storyline_parse::parse_envelope(line, &self.limits)),
            (Framing::Plain { sensor, .. }, Some(t)) => t.parse_line(sensor, line, &self.limits),
            (Framing::Plain { format, sensor }, None) => Some(storyline_parse::parse_record(
                format,
                sensor,
                line,
                &self.limits,
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reject(
        &self,
        report: &mut IngestReport,
        dead: &mut Vec<DeadLetter>,
        line: u64,
        rejection: Rejection,
        raw: &[u8],
        format: Option<String>,
        source: &str,
        now: Timestamp,
    ) {
        let code = rejection.code();
        let reason = rejection.to_string();
        counter!("storyline_events_rejected_total", "tenant" => self.tenant.clone(), "code" => code).increment(1);
        report.rejected += 1;
        if report.errors.len() < MAX_REPORTED_ERRORS {
            report.errors.push(LineError {
                line,
                code,
                reason: reason.clone(),
            });
        }
        // An oversized record is kept up to the limit: enough to see what it was without letting one bad
        // sender fill the disk.
        let keep = raw.len().min(self.limits.max_record_bytes);
        dead.push(DeadLetter {
            id: 0,
            tenant: self.tenant.clone(),
            received: now,
            source: source.to_string(),
            line: Some(line),
            format,
            code: code.to_string(),
            reason,
            raw: raw[..keep].to_vec(),
        });
    }

    /// Writes parsed events in one durable append.
    pub fn store_parsed(&self, parsed: &[Parsed<'_>], now: Timestamp) -> Result<(), StoreError> {
        let mut batch = EncodedBatch::with_capacity(parsed.len());
        for p in parsed {
            batch.push_encoded(&p.event, &p.sensor, Cow::Borrowed(&p.raw), self.shards);
        }
        self.store_encoded(&batch, now)
    }

    fn store_encoded(&self, batch: &EncodedBatch<'_>, now: Timestamp) -> Result<(), StoreError> {
        if batch.items.is_empty() {
            return Ok(());
        }
        let bucket = bucket_of(now, self.bucket_ms);
        let mut events: Vec<NewEvent<'_>> = batch
            .items
            .iter()
            .map(|item| NewEvent {
                shard: item.shard,
                bucket,
                key: item.key,
                event: &batch.encoded[item.span.clone()],
                raw: &item.raw,
            })
            .collect();
        // Key order: one write mark per shard, and sequential inserts into the memtable.
        events.sort_unstable_by_key(|e| (e.shard, e.key));
        let started = std::time::Instant::now();
        self.store.append(&self.tenant, &events)?;
        metrics::histogram!("storyline_store_write_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }
}

/// A batch's events, each encoded as soon as it is parsed, all into one buffer. Collecting the parsed
/// events first and encoding them at the end moved each (~1 KB) into the batch and read it back long after,
/// out of cache, for a batch of thousands.
struct EncodedBatch<'a> {
    encoded: Vec<u8>,
    items: Vec<EncodedEvent<'a>>,
}

struct EncodedEvent<'a> {
    shard: storyline_model::routing::Shard,
    key: EventKey,
    span: std::ops::Range<usize>,
    raw: Cow<'a, [u8]>,
}

impl<'a> EncodedBatch<'a> {
    fn with_capacity(events: usize) -> Self {
        EncodedBatch {
            encoded: Vec::with_capacity(events * 256),
            items: Vec::with_capacity(events),
        }
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn push(&mut self, p: Parsed<'a>, shards: u16) {
        self.push_encoded(&p.event, &p.sensor, p.raw, shards);
    }

    fn push_encoded(
        &mut self,
        event: &storyline_model::Event,
        sensor: &str,
        raw: Cow<'a, [u8]>,
        shards: u16,
    ) {
        let start = self.encoded.len();
        event.encode_into(&mut self.encoded);
        self.items.push(EncodedEvent {
            shard: shard_for(event, shards),
            key: EventKey::new(sensor, &event.event.id),
            span: start..self.encoded.len(),
            raw,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn lines_are_what_splitting_at_newlines_gives(body in proptest::collection::vec(
            proptest::prop_oneof![proptest::strategy::Just(b'\n'), proptest::prelude::any::<u8>()],
            0..64,
        )) {
            let split: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
            proptest::prop_assert_eq!(lines(&body).collect::<Vec<_>>(), split);
        }
    }

    #[test]
    fn only_a_whole_json_array_is_read_by_element() {
        assert_eq!(
            json_array(b" [{\"a\":1}, \"x\"]\n").map(|v| v.len()),
            Some(2)
        );
        assert_eq!(json_array(b"[]").map(|v| v.len()), Some(0));
        // Two arrays on two lines, a cut array, or a line that only starts with `[`: lines as before.
        assert!(json_array(b"[1]\n[2]").is_none());
        assert!(json_array(b"[{\"a\":1},").is_none());
        assert!(json_array(b"[x] 1,2,3").is_none());
        assert!(json_array(b"{\"a\":[1]}").is_none());
    }

    #[test]
    fn a_string_element_is_a_raw_line_only_for_plain_records() {
        let v = json_array(br#"["1,2,\"q\"", {"k": 1}]"#).unwrap();
        let plain = Framing::Plain {
            format: "panos",
            sensor: "fw",
        };
        assert_eq!(&*element_record(v[0], plain), br#"1,2,"q""#);
        assert_eq!(&*element_record(v[1], plain), br#"{"k": 1}"#);
        assert_eq!(
            &*element_record(v[0], Framing::Envelopes),
            br#""1,2,\"q\"""#
        );
    }

    #[test]
    fn the_sensor_in_a_dead_letter_source_reads_back_whatever_its_name() {
        for sensor in ["fw-edge-1", "a \" sensor=\"b", "x\\y", "ünï"] {
            let s = dead_letter_source("file:/var/log/a sensor=\"c\".log", sensor);
            assert_eq!(
                split_dead_letter_source(&s),
                ("file:/var/log/a sensor=\"c\".log", Some(sensor.to_string())),
                "{s}"
            );
        }
        assert_eq!(split_dead_letter_source("http"), ("http", None));
        assert_eq!(
            split_dead_letter_source("file:/x sensor=\"broken"),
            ("file:/x sensor=\"broken", None)
        );
    }
}
