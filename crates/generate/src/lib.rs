//! Synthetic multi-sensor network traffic with ground truth.
//!
//! A simulated enterprise network produces sessions; each session (one true story) is reported by a
//! random, topology-dependent subset of sensors, each in its own native format: Sysmon via Winlogbeat,
//! PAN-OS TRAFFIC CSV, Zeek JSON, Suricata EVE and AWS VPC flow logs. The realism knobs (clock skew,
//! reversed flow records, source NAT, late delivery, DNS lookups, oversized records) are the conditions
//! Storyline's correlation has to cope with, so each is a flag of [`GenConfig`].
//!
//! Events come out in arrival order ([`Generator`], bounded memory), written as NDJSON envelopes plus a
//! truth file by [`write_dir`]. Every event id equals the one Storyline's parser assigns, so the truth
//! can be joined to stories by id.

mod arrival;
pub mod config;
pub mod formats;
mod generator;
mod output;
pub mod plan;
pub mod session;
pub mod text;
pub mod world;

pub use config::{GenConfig, DEFAULT_START, FORMATS};
pub use generator::{Generated, Generator};
pub use output::{write_dir, Summary};
pub use plan::Sensor;
