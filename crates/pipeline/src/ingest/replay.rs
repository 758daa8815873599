//! Replaying dead letters: parse rejected records again with the parsers, mappings and sources in force
//! now, store those that parse as events, and remember which letters are done.
//!
//! A letter is never deleted: the store has no call for it, and a letter's raw record is worth keeping as
//! history. Instead, its state after a replay is written as a small deployment record
//! ([`Store::put_record`], key `dead_letters/<tenant>/<time>`): which letters were replayed (ranges of ids)
//! and, for those that still fail, the new code and reason. [`LetterStates`] reads them back;
//! `storyline dead-letters list` hides replayed letters and shows the latest reason of the others. The
//! state of a batch is written only after its events were appended (durable), so a crash in between
//! leaves the letters pending and a later replay stores the same events again under the same ids, which
//! the correlator already has: replaying twice is safe.

use super::{split_dead_letter_source, Ingestor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use storyline_io::source::SourcesConfig;
use storyline_model::Timestamp;
use storyline_parse::{Limits, Parsed, Rejection};
use storyline_store::{DeadLetter, Store, StoreError};

/// Letters read from the store per page; also the most stored per append and per state record.
const PAGE: usize = 500;

fn record_prefix(tenant: &str) -> String {
    format!("dead_letters/{tenant}/")
}

/// What one state record holds.
#[derive(Default, Serialize, Deserialize)]
struct StateRecord {
    /// Inclusive ranges of replayed letter ids.
    #[serde(default)]
    replayed: Vec<(u64, u64)>,
    /// Letters that still fail, with their new code and reason.
    #[serde(default)]
    failing: Vec<Failing>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Failing {
    id: u64,
    code: String,
    reason: String,
}

/// The replay state of a tenant's dead letters.
#[derive(Default)]
pub struct LetterStates {
    /// start → end (inclusive), non-overlapping.
    replayed: BTreeMap<u64, u64>,
    failing: HashMap<u64, (String, String)>,
}

impl LetterStates {
    /// Reads every state record of the tenant, oldest first, so a later reason replaces an earlier one.
    pub fn load(store: &dyn Store, tenant: &str) -> Result<Self, StoreError> {
        let prefix = record_prefix(tenant);
        let mut states = LetterStates::default();
        let mut after: Option<String> = None;
        loop {
            let page = store.records(&prefix, after.as_deref(), 1000)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (key, value) in &page {
                let rec: StateRecord = serde_json::from_str(value).map_err(|e| {
                    StoreError::Corrupt(format!("dead-letter replay record {key}: {e}"))
                })?;
                for (a, b) in rec.replayed {
                    states.add_replayed(a, b);
                }
                for f in rec.failing {
                    states.failing.insert(f.id, (f.code, f.reason));
                }
            }
        }
        Ok(states)
    }

    fn add_replayed(&mut self, mut a: u64, mut b: u64) {
        self.failing.retain(|id, _| *id < a || *id > b);
        // Ranges touching [a, b] are merged into it, so they stay disjoint and a lookup needs one range.
        let touching: Vec<(u64, u64)> = self
            .replayed
            .range(..=b.saturating_add(1))
            .rev()
            .take_while(|(_, end)| end.saturating_add(1) >= a)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            self.replayed.remove(&s);
            a = a.min(s);
            b = b.max(e);
        }
        self.replayed.insert(a, b);
    }

    pub fn is_replayed(&self, id: u64) -> bool {
        self.replayed
            .range(..=id)
            .next_back()
            .is_some_and(|(_, end)| id <= *end)
    }

    /// The letter as it stands: its latest code and reason. `None` if it was replayed.
    pub fn current(&self, mut letter: DeadLetter) -> Option<DeadLetter> {
        if self.is_replayed(letter.id) {
            return None;
        }
        if let Some((code, reason)) = self.failing.get(&letter.id) {
            letter.code = code.clone();
            letter.reason = reason.clone();
        }
        Some(letter)
    }

    /// The letter with its latest code and reason, replayed or not.
    pub fn latest(&self, mut letter: DeadLetter) -> DeadLetter {
        if let Some((code, reason)) = self.failing.get(&letter.id) {
            letter.code = code.clone();
            letter.reason = reason.clone();
        }
        letter
    }
}

/// What to replay and how.
#[derive(Clone, Debug, Default)]
pub struct ReplayOptions {
    /// Only letters with this code (their latest one).
    pub code: Option<String>,
    /// Parse every selected record as this format instead of the one it was received as (for envelopes:
    /// instead of the envelope's `format`).
    pub format: Option<String>,
    /// Sensor of plain records whose letter does not name one (dead-lettered by an older Storyline).
    pub sensor: Option<String>,
    /// Only letters after this id.
    pub after: Option<u64>,
    /// At most this many letters are tried.
    pub limit: Option<usize>,
    /// Parse, count and report, but store nothing.
    pub dry_run: bool,
}

/// One letter that still fails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StillFailing {
    pub id: u64,
    pub code: String,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplaySummary {
    /// Letters tried (selected and not replayed before).
    pub tried: u64,
    /// Letters whose record parsed now and is stored (or would be, with `dry_run`).
    pub replayed: u64,
    /// Still failing, by code.
    pub still_failing: BTreeMap<String, u64>,
    /// The first few that still fail.
    pub failing_examples: Vec<StillFailing>,
    /// Letters skipped because an earlier replay stored their record.
    pub already_replayed: u64,
}

/// Failing letters listed in a summary; the rest are counted.
const MAX_EXAMPLES: usize = 20;

/// Where replayed events go: an ingestor made only once there is something to store, so a dry run or a
/// replay that stores nothing never registers a tenant.
pub type MakeIngestor<'a> = dyn FnMut() -> Result<Ingestor, StoreError> + 'a;

/// Replays the tenant's pending dead letters in id order. `progress` is called after every page with the
/// summary so far. Stops at the first store error (what was done before it is recorded).
pub fn replay(
    store: &Arc<dyn Store>,
    tenant: &str,
    make_ingestor: &mut MakeIngestor<'_>,
    limits: &Limits,
    sources: &SourcesConfig,
    opts: &ReplayOptions,
    progress: &mut dyn FnMut(&ReplaySummary),
) -> Result<ReplaySummary, StoreError> {
    let states = LetterStates::load(&**store, tenant)?;
    let mut ingestor: Option<Ingestor> = None;
    let mut summary = ReplaySummary::default();
    let mut after = opts.after;
    let limit = opts.limit.unwrap_or(usize::MAX);
    let mut tried = 0usize;
    'pages: loop {
        let page = store.dead_letters(tenant, after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let now = Timestamp::now();
        let mut parsed: Vec<Parsed> = Vec::new();
        let mut replayed: Vec<u64> = Vec::new();
        let mut failing: Vec<Failing> = Vec::new();
        let mut reached_limit = false;
        for letter in page {
            if states.is_replayed(letter.id) {
                summary.already_replayed += 1;
                continue;
            }
            let letter = states.latest(letter);
            if opts.code.as_ref().is_some_and(|c| *c != letter.code) {
                continue;
            }
            if tried >= limit {
                reached_limit = true;
                break;
            }
            tried += 1;
            summary.tried += 1;
            match reparse(&letter, opts, sources, limits) {
                Ok(mut p) => {
                    p.event.event.ingested = Some(now);
                    parsed.push(p);
                    replayed.push(letter.id);
                }
                Err((code, reason)) => {
                    *summary.still_failing.entry(code.clone()).or_default() += 1;
                    if summary.failing_examples.len() < MAX_EXAMPLES {
                        summary.failing_examples.push(StillFailing {
                            id: letter.id,
                            code: code.clone(),
                            reason: reason.clone(),
                        });
                    }
                    // Rewritten only when it changed, so replaying again without a fix writes nothing.
                    if code != letter.code || reason != letter.reason {
                        failing.push(Failing {
                            id: letter.id,
                            code,
                            reason,
                        });
                    }
                }
            }
        }
        summary.replayed += replayed.len() as u64;
        if !opts.dry_run {
            if !parsed.is_empty() {
                let ing = match &mut ingestor {
                    Some(i) => i,
                    None => ingestor.insert(make_ingestor()?),
                };
                // Durable before the letters are marked: a letter is done only once its event is stored.
                ing.store_parsed(&parsed, now)?;
            }
            if !replayed.is_empty() || !failing.is_empty() {
                save_state(&**store, tenant, &replayed, failing)?;
            }
        }
        progress(&summary);
        if reached_limit {
            break 'pages;
        }
    }
    Ok(summary)
}

fn save_state(
    store: &dyn Store,
    tenant: &str,
    replayed: &[u64],
    failing: Vec<Failing>,
) -> Result<(), StoreError> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &id in replayed {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == id => *end = id,
            _ => ranges.push((id, id)),
        }
    }
    let rec = StateRecord {
        replayed: ranges,
        failing,
    };
    let value = serde_json::to_string(&rec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // Time orders the records, so the latest reason of a letter wins when they are read back; the first
    // id keeps two writes in the same nanosecond apart.
    let first = replayed
        .first()
        .copied()
        .or_else(|| rec.failing.first().map(|f| f.id))
        .unwrap_or(0);
    let key = format!(
        "{}{:020}-{first:020}",
        record_prefix(tenant),
        Timestamp::now().as_nanos().max(0)
    );
    store.put_record(&key, Some(&value))
}

/// Parses a letter's record again. `Err((code, reason))` if it still cannot be accepted.
fn reparse(
    letter: &DeadLetter,
    opts: &ReplayOptions,
    sources: &SourcesConfig,
    limits: &Limits,
) -> Result<Parsed<'static>, (String, String)> {
    let rejected = |r: Rejection| (r.code().to_string(), r.to_string());
    if letter.code == "oversized" {
        // Only the first max_record_bytes of an oversized record were kept: what is left is not the record.
        return Err((
            "oversized".into(),
            format!(
                "{} (only the first {} bytes were kept, so it cannot be replayed)",
                letter.reason,
                letter.raw.len()
            ),
        ));
    }
    let (base, stored_sensor) = split_dead_letter_source(&letter.source);
    let Some(received_format) = &letter.format else {
        // An envelope line: it names its own format and sensor.
        return match &opts.format {
            None => storyline_parse::parse_envelope(&letter.raw, limits)
                .map(Parsed::into_owned)
                .map_err(rejected),
            Some(f) => {
                let (sensor, record) = envelope_parts(&letter.raw)?;
                storyline_parse::parse_record(f, &sensor, &record, limits)
                    .map(Parsed::into_owned)
                    .map_err(rejected)
            }
        };
    };
    let format = opts.format.as_deref().unwrap_or(received_format);
    let mut record: &[u8] = &letter.raw;
    let from_frame: Vec<u8>;
    let sensor = match stored_sensor {
        Some(s) => Some(s),
        None => {
            let syslog = sources.syslog.iter().find(|s| s.source_name() == base);
            let file = base.strip_prefix("file:").and_then(|p| {
                sources
                    .file
                    .iter()
                    .find(|f| f.path.display().to_string() == p)
            });
            if let (Some(cfg), "unknown_sensor") = (syslog, letter.code.as_str()) {
                // The whole frame was kept: read its header with the mapping in force now.
                let (sensor, msg) = cfg.sensor_and_record(&letter.raw);
                from_frame = msg;
                record = &from_frame;
                sensor
            } else {
                file.map(|f| f.sensor.clone())
            }
        }
    };
    let Some(sensor) = sensor.or_else(|| opts.sensor.clone()) else {
        return Err((
            "unknown_sensor".into(),
            if letter.code == "unknown_sensor" {
                letter.reason.clone()
            } else {
                format!(
                    "the letter does not say which sensor sent the record (it was dead-lettered by an \
                     older Storyline) and no source in the config names {base}: replay it with --sensor"
                )
            },
        ));
    };
    storyline_parse::parse_record(format, &sensor, record, limits)
        .map(Parsed::into_owned)
        .map_err(rejected)
}

/// The sensor and record of an envelope whose format is overridden: a string record is the raw line, an
/// object record its JSON text.
fn envelope_parts(line: &[u8]) -> Result<(String, Vec<u8>), (String, String)> {
    #[derive(Deserialize)]
    struct Env<'a> {
        sensor: Option<String>,
        #[serde(borrow)]
        record: Option<&'a serde_json::value::RawValue>,
    }
    let bad = |detail: String| ("malformed_json".to_string(), detail);
    let env: Env = serde_json::from_slice(line)
        .map_err(|e| bad(format!("the envelope is not a JSON object: {e}")))?;
    let sensor = env.sensor.ok_or_else(|| {
        (
            "missing_field".to_string(),
            "the envelope has no sensor".to_string(),
        )
    })?;
    let record = env.record.ok_or_else(|| {
        (
            "missing_field".to_string(),
            "the envelope has no record".to_string(),
        )
    })?;
    let text = record.get();
    let raw = if text.starts_with('"') {
        serde_json::from_str::<String>(text)
            .map_err(|e| bad(format!("record: {e}")))?
            .into_bytes()
    } else {
        text.as_bytes().to_vec()
    };
    Ok((sensor, raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_ranges_and_latest_reasons() {
        let mut s = LetterStates::default();
        s.failing.insert(4, ("a".into(), "old".into()));
        s.failing.insert(9, ("b".into(), "kept".into()));
        s.add_replayed(3, 5);
        s.add_replayed(7, 7);
        s.add_replayed(20, 30);
        s.add_replayed(22, 25);
        s.add_replayed(31, 31);
        assert!(s.is_replayed(26) && s.is_replayed(31) && !s.is_replayed(32));
        assert_eq!(s.replayed.len(), 3, "{:?}", s.replayed);
        assert!(!s.is_replayed(2));
        assert!(s.is_replayed(3) && s.is_replayed(4) && s.is_replayed(5));
        assert!(!s.is_replayed(6));
        assert!(s.is_replayed(7));
        assert!(!s.is_replayed(8));
        assert!(!s.failing.contains_key(&4));
        assert!(s.failing.contains_key(&9));
    }

    #[test]
    fn envelope_parts_reads_string_and_object_records() {
        let (s, r) = envelope_parts(br#"{"format":"x","sensor":"fw","record":"a,b"}"#).unwrap();
        assert_eq!((s.as_str(), r.as_slice()), ("fw", b"a,b".as_slice()));
        let (_, r) = envelope_parts(br#"{"sensor":"fw","record":{"k": 1}}"#).unwrap();
        assert_eq!(r, br#"{"k": 1}"#);
        assert_eq!(envelope_parts(b"{oops").unwrap_err().0, "malformed_json");
    }
}
