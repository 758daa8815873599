//! The story engine. Pure and deterministic: no I/O, no clocks. The pipeline feeds it events and an
//! event-time watermark; it returns story versions to publish. The same events, in any arrival order within
//! the allowed lateness, give the same final stories, which is what makes replays and restarts safe.
//!
//! Events link through keys ([`keys`]): the flow tuple in every view a sensor reports (so reversed and
//! NATed reports meet), sensor session ids, and DNS answers offered to the connections that follow them.
//! Linked events are merged transitively (union-find) into stories, within guards that stop a resolver, a
//! NAT gateway or a scanner from gluing thousands of sessions together. docs/correlation.md has the rules.

pub mod baseline;
mod clock;
pub mod fasthash;
pub mod first;
mod fuse;
pub mod keys;
mod order;
mod slot_table;
mod state;

pub use state::{Correlator, CorrelatorStats, StateDelta, MERGED_VERSION};

/// How far ahead [`Correlator::ingest_batch`] looks up index entries in the workers.
pub const WARM_AHEAD: usize = 4;

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// A story closes once event time has moved this far past its last event.
    #[serde(with = "humantime_serde_compat")]
    pub gap: Duration,
    /// How long after closing a story can still take a late event (published as a new version of the same
    /// story). Later events become stories of their own.
    #[serde(with = "humantime_serde_compat")]
    pub allowed_lateness: Duration,
    /// Bound on sensor clocks running ahead: an event time further than this past the time the event was
    /// received is capped, so one bad clock cannot drag the watermark forward.
    #[serde(with = "humantime_serde_compat")]
    pub max_clock_skew: Duration,
    /// A story that reaches this many events is published and closed; the next event starts a new story.
    pub max_story_events: usize,
    /// Stories are not merged past this span of event time.
    #[serde(with = "humantime_serde_compat")]
    pub max_story_span: Duration,
    /// How long after a DNS answer a connection from the asking client to an answered address (or name)
    /// joins the lookup's story; also bounded by the answer's TTL.
    #[serde(with = "humantime_serde_compat")]
    pub dns_link_window: Duration,
    /// Allowance for clock differences when a DNS answer and a connection come from different sensors.
    /// Flow links tolerate the full skew (they match within `gap`); DNS links match within a few seconds,
    /// where the full ±skew would glue a client's back-to-back sessions to the same server together.
    #[serde(with = "humantime_serde_compat")]
    pub dns_cross_sensor_tolerance: Duration,
    /// Line up DNS answers and connections from different sensors with the estimated clock offset of the
    /// pair. Such links are then decided once the estimate for their time range is final (after the
    /// allowed lateness; at once at the end of a replay), so stories stay independent of arrival order
    /// and shard count; the stories involved may be published apart first and merged then (in a live
    /// stream, after the allowed lateness). Off, they are decided on arrival within
    /// `dns_cross_sensor_tolerance`, without an offset: F1 0.973 instead of 0.992 at the generator's
    /// defaults (docs/correlation.md).
    #[serde(alias = "estimate_clock_offsets")]
    pub dns_links_use_clock_offsets: bool,
    /// Publish a story's `first_seen`/`last_seen` on the clock of its reference sensor (the first in its
    /// provenance), each sensor's times corrected by the final offset estimate of the pair. The estimate
    /// is final only after the allowed lateness, so a version published earlier shows the sensors' own
    /// times and the story is published again, corrected, once it is final (docs/correlation.md).
    pub correct_story_times: bool,
    /// A link key shared by more live stories than this is "hot" (a resolver, a NAT gateway, a scanner):
    /// it stops linking and the stories record the cut.
    pub max_key_fanout: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            gap: Duration::from_secs(60),
            allowed_lateness: Duration::from_secs(600),
            max_clock_skew: Duration::from_secs(5),
            max_story_events: 10_000,
            max_story_span: Duration::from_secs(3600),
            dns_link_window: Duration::from_secs(1),
            dns_cross_sensor_tolerance: Duration::from_secs(1),
            dns_links_use_clock_offsets: true,
            correct_story_times: true,
            max_key_fanout: 32,
        }
    }
}

/// Durations in configs are written like `60s`, `10m`, `500ms`.
pub mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&format_duration(*d))
        } else {
            s.serialize_u64(d.as_millis() as u64)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            parse_duration(&s).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid duration {s:?}: write a number and a unit, e.g. 500ms, 5s, 10m, 1h"
                ))
            })
        } else {
            u64::deserialize(d).map(Duration::from_millis)
        }
    }

    pub fn parse_duration(s: &str) -> Option<Duration> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let (num, unit) = s.split_at(split);
        let n: f64 = num.parse().ok()?;
        let secs = match unit.trim() {
            "ms" => n / 1000.0,
            "s" => n,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            "d" => n * 86400.0,
            _ => return None,
        };
        (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
    }

    pub fn format_duration(d: Duration) -> String {
        let ms = d.as_millis();
        if !ms.is_multiple_of(1000) {
            format!("{ms}ms")
        } else if !ms.is_multiple_of(60_000) || ms == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{}m", ms / 60_000)
        }
    }
}
