//! The published story: one enriched record per session, fused from the events of every sensor that saw it.

use crate::{EventId, StoryId, Str, Timestamp};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A fused list of names (hosts, processes, DNS names, actions, ...). Nearly always one: kept inline, so a
/// story's names cost no allocation of their own (empty `Vec`s were ~2 allocations per correlated event,
/// docs/benchmarks.md, fourteenth sitting). Serialized as a sequence, as a `Vec` was.
pub type Names = smallvec::SmallVec<[Str; 1]>;

/// One version of a story as published. A story is re-published with a higher `version` when it changes
/// (a late event joins it); `story_id` never changes, so receivers keep the highest version per id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Story {
    #[serde(with = "story_id_hex")]
    pub story_id: StoryId,
    pub version: u32,
    pub tenant: Str,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub event_count: u32,
    pub event_ids: Vec<EventId>,
    pub sensors: Vec<Str>,
    /// Set on the last version of a story whose events were folded into another story (a late event
    /// bridged the two). That version carries no events: they are all in the surviving story.
    #[serde(with = "opt_story_id_hex", skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<StoryId>,
    /// Which sensor said what: one entry per sensor, its own counts and verdicts, so conflicts between
    /// sensors stay visible instead of being overwritten by the fused values.
    pub provenance: Vec<SensorView>,
    /// Links that were not followed because a guard stopped them (`max_events`, `max_span`, `hot_key`).
    pub cuts: Vec<Str>,
    /// For a story of events that arrived later than the allowed lateness: the stories (already final)
    /// they would have joined.
    pub related_story_ids: Vec<Str>,
    /// Boxed: it is two thirds of a story's size, and stories are moved as values through every stage of
    /// publishing (built, collected, ordered, queued), hundreds of thousands at a time in a catch-up.
    #[serde(flatten)]
    pub fused: Box<Fused>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SensorView {
    pub sensor: Str,
    pub events: u32,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// Bytes from the initiator, as this sensor counted them.
    pub source_bytes: Option<u64>,
    /// Bytes from the responder, as this sensor counted them.
    pub destination_bytes: Option<u64>,
    pub actions: Names,
    /// This sensor's clock minus the clock of the first sensor listed in the story's provenance, in ms, as
    /// estimated from flows both reported (absent until enough flows were matched).
    pub clock_offset_ms: Option<i64>,
}

/// The fused fields: what the story's events say together, in ECS names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fused {
    pub source: FusedEndpoint,
    pub destination: FusedEndpoint,
    pub network: FusedNetwork,
    pub dns: FusedDns,
    pub url: FusedUrl,
    pub tls: FusedTls,
    pub user: FusedNames,
    pub host: FusedNames,
    pub process: FusedNames,
    pub rule: FusedNames,
    pub event: FusedEvent,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FusedEndpoint {
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
    pub bytes: Option<u64>,
    pub packets: Option<u64>,
    pub nat: FusedNat,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FusedNat {
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FusedNetwork {
    pub transport: Option<Str>,
    pub protocol: Option<Str>,
    pub community_id: Option<Str>,
    pub bytes: Option<u64>,
    pub packets: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FusedDns {
    pub question: FusedDnsQuestion,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FusedDnsQuestion {
    pub names: Names,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FusedUrl {
    pub domains: Names,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FusedTls {
    pub server_names: Names,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FusedNames {
    pub names: Names,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FusedEvent {
    pub actions: Names,
    pub categories: Names,
}

impl Story {
    /// One NDJSON line (without the newline), absent fields removed.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("story serializes");
        crate::event::prune_empty(&mut v);
        v
    }
}

mod story_id_hex {
    use crate::StoryId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &StoryId, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(id)
        } else {
            s.serialize_u128(id.0)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StoryId, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            u128::from_str_radix(&s, 16)
                .map(StoryId)
                .map_err(|_| serde::de::Error::custom("story_id must be 32 hex digits"))
        } else {
            u128::deserialize(d).map(StoryId)
        }
    }
}

mod opt_story_id_hex {
    use crate::StoryId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &Option<StoryId>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => super::story_id_hex::serialize(id, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<StoryId>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| u128::from_str_radix(&s, 16).map(StoryId))
            .transpose()
            .map_err(|_| serde::de::Error::custom("merged_into must be 32 hex digits"))
    }
}

/// Adds `v` to a small set kept in first-seen order (stories carry a handful of names, so a Vec beats a
/// set here).
pub fn push_unique<T: PartialEq, L: AsRef<[T]> + Extend<T>>(list: &mut L, v: T) {
    if !list.as_ref().contains(&v) {
        list.extend(std::iter::once(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn story_json_round_trips_with_hex_id() {
        let mut s = Story {
            story_id: StoryId(0xabc),
            version: 2,
            tenant: "acme".into(),
            event_ids: vec!["e1".into()],
            sensors: vec!["fw".into()],
            event_count: 1,
            ..Default::default()
        };
        s.fused.source.ip = Some("10.0.0.1".parse().unwrap());
        let v = s.to_json();
        assert_eq!(v["story_id"], "00000000000000000000000000000abc");
        assert_eq!(v["source"]["ip"], "10.0.0.1");
        assert!(v.get("dns").is_none());
        let back: Story = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }
}
