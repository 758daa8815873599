//! The story engine. Pure and deterministic: no I/O, no clocks. The pipeline feeds it events and an
//! event-time watermark; it returns story versions to publish. The same events, in any arrival order within
//! the allowed lateness, give the same final stories, which is what makes replays and restarts safe.
//!
//! This is the first correlator: events that share a Community ID and lie within `gap` of each other form
//! one story. Cross-sensor links (NAT, DNS, session ids, names, processes) come with the full engine.

mod fuse;
mod state;

pub use state::{Correlator, CorrelatorStats, MERGED_VERSION};

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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            gap: Duration::from_secs(60),
            allowed_lateness: Duration::from_secs(600),
            max_clock_skew: Duration::from_secs(5),
            max_story_events: 10_000,
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
        if ms % 1000 != 0 {
            format!("{ms}ms")
        } else if ms % 60_000 != 0 || ms == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{}m", ms / 60_000)
        }
    }
}
