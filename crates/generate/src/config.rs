//! The knobs of a generation run. One struct serves the CLI (flattened into `storyline generate`), the
//! library API and the tests, so a benchmark can be reproduced from its command line alone.

use std::time::Duration;
use storyline_model::Timestamp;

/// Fixed default start so that a run without `--start` is reproducible byte for byte.
pub const DEFAULT_START: &str = "2026-11-21T10:00:00Z";

/// Every format the generator can write, in the order their writers run.
pub const FORMATS: [&str; 5] = ["sysmon", "panos", "zeek", "suricata", "aws_vpc"];

#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct GenConfig {
    /// Total number of events to write.
    #[arg(long, default_value_t = 10_000)]
    pub events: u64,

    /// Random seed: the same seed (and options) gives byte-identical output.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Each sensor's clock is off by a fixed amount drawn uniformly from ±skew.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub skew: Duration,

    /// Share of flow-exporter and firewall records (aws_vpc, panos) that report a session B→A.
    #[arg(long, default_value_t = 0.2, value_parser = parse_share)]
    pub reversed: f64,

    /// Share of sessions that leave through the firewall's source NAT.
    #[arg(long, default_value_t = 0.3, value_parser = parse_share)]
    pub nat: f64,

    /// Share of events delivered late (1 minute up to --max-late after they happened).
    #[arg(long, default_value_t = 0.1, value_parser = parse_share)]
    pub late: f64,

    /// Upper bound of a late event's delay.
    #[arg(long, default_value = "8m", value_parser = humantime::parse_duration)]
    pub max_late: Duration,

    /// Share of sessions preceded by a DNS lookup of the server's name.
    #[arg(long, default_value_t = 0.6, value_parser = parse_share)]
    pub dns: f64,

    /// Sessions per second of event time.
    #[arg(long, default_value_t = 200.0, value_parser = parse_rate)]
    pub rate: f64,

    /// Start of event time (RFC 3339). Pass the current time for a live demo.
    #[arg(long, default_value = DEFAULT_START, value_parser = parse_start)]
    pub start: Timestamp,

    /// Share of JSON records that carry a large extra field (256 KiB–2 MiB).
    #[arg(long, default_value_t = 0.0001, value_parser = parse_share)]
    pub large: f64,

    /// Restrict output to these formats or sensor names (comma separated); empty means all.
    #[arg(long, value_delimiter = ',')]
    pub sensors: Vec<String>,
}

impl Default for GenConfig {
    /// The CLI defaults, taken from the clap definition itself so the two can never drift apart.
    fn default() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            cfg: GenConfig,
        }
        Wrap::parse_from(["storyline-generate"]).cfg
    }
}

impl GenConfig {
    /// Whether `format` (whose single sensor instance is `sensor`) is selected by `--sensors`.
    pub fn wants(&self, format: &str, sensor: &str) -> bool {
        self.sensors.is_empty()
            || self
                .sensors
                .iter()
                .any(|s| s.trim() == format || s.trim() == sensor)
    }
}

fn parse_share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a share between 0 and 1"))
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("rate must be positive, got {v}"))
    }
}

fn parse_start(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(s).ok_or_else(|| format!("{s:?} is not an RFC 3339 time"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        cfg: GenConfig,
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let c = GenConfig::default();
        assert_eq!(c.events, 10_000);
        assert_eq!(c.seed, 1);
        assert_eq!(c.skew, Duration::from_secs(5));
        assert_eq!(c.reversed, 0.2);
        assert_eq!(c.nat, 0.3);
        assert_eq!(c.late, 0.1);
        assert_eq!(c.max_late, Duration::from_secs(480));
        assert_eq!(c.dns, 0.6);
        assert_eq!(c.rate, 200.0);
        assert_eq!(c.start, Timestamp::parse_rfc3339(DEFAULT_START).unwrap());
        assert_eq!(c.large, 0.0001);
        assert!(c.sensors.is_empty());
    }

    #[test]
    fn flags_parse() {
        let c = Wrap::parse_from([
            "g",
            "--events",
            "5",
            "--skew",
            "250ms",
            "--max-late",
            "2m 30s",
            "--sensors",
            "zeek,fw-edge-1",
            "--start",
            "2027-01-01T00:00:00Z",
        ])
        .cfg;
        assert_eq!(c.events, 5);
        assert_eq!(c.skew, Duration::from_millis(250));
        assert_eq!(c.max_late, Duration::from_secs(150));
        assert!(c.wants("zeek", "zeek-core"));
        assert!(c.wants("panos", "fw-edge-1"));
        assert!(!c.wants("sysmon", "edr-agent"));
        assert!(Wrap::try_parse_from(["g", "--nat", "1.5"]).is_err());
        assert!(Wrap::try_parse_from(["g", "--rate", "0"]).is_err());
    }
}
