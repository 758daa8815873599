//! The first correlator, kept as the cost reference the full engine is benchmarked against
//! (`benches/engine.rs`): events join when they carry the same Community ID as reported, within `gap` of
//! the story; late re-open and bridging merges; fused fields taken first-come. No NAT views, session ids,
//! DNS links, clock estimates, guards beyond the size limit, or provenance. Restored from the commit that
//! introduced it (3e99d35) with only what the current model needs changed; not used by the pipeline.

use crate::fuse::{add, max_opt};
use crate::Config;
use std::collections::{BTreeSet, HashMap};
use storyline_model::{
    push_unique, Event, EventId, EventKey, Fused, Story, StoryId, Str, Timestamp,
};

type Slot = u64;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirstStats {
    pub events: u64,
    pub duplicates: u64,
    pub reopened: u64,
    pub too_late: u64,
    pub future_capped: u64,
    pub versions_published: u64,
    pub merged: u64,
}

#[derive(Clone, Debug)]
struct StoryState {
    id: StoryId,
    /// Versions published so far.
    version: u32,
    first: Timestamp,
    last: Timestamp,
    flow: Option<Str>,
    events: Vec<(EventKey, EventId)>,
    sensors: Vec<Str>,
    fused: Fused,
    open: bool,
    /// Changed since the last published version.
    dirty: bool,
    /// Newest insert-time bucket of any member: duplicates re-read from recent buckets must still be
    /// recognised, so a story is not forgotten while its buckets may be re-scanned.
    max_bucket: i64,
}

/// The first correlator. Same calling convention as [`crate::Correlator`].
#[derive(Clone, Debug)]
pub struct FirstCorrelator {
    tenant: Str,
    cfg: Config,
    next_slot: Slot,
    stories: HashMap<Slot, StoryState>,
    by_flow: HashMap<Str, Vec<Slot>>,
    by_event: HashMap<EventKey, Slot>,
    /// Open stories by the event time at which they close.
    closing: BTreeSet<(Timestamp, Slot)>,
    /// Closed stories by the event time at which no late event can join them any more.
    evicting: BTreeSet<(Timestamp, Slot)>,
    watermark: Timestamp,
    /// Versions produced outside `advance` (merges), handed out by the next `advance` or `flush`.
    pending: Vec<Story>,
    stats: FirstStats,
}

impl FirstCorrelator {
    pub fn new(tenant: &str, cfg: Config) -> Self {
        Self {
            tenant: tenant.into(),
            cfg,
            next_slot: 0,
            stories: HashMap::new(),
            by_flow: HashMap::new(),
            by_event: HashMap::new(),
            closing: BTreeSet::new(),
            evicting: BTreeSet::new(),
            watermark: Timestamp::MIN,
            pending: Vec::new(),
            stats: FirstStats::default(),
        }
    }

    pub fn stats(&self) -> &FirstStats {
        &self.stats
    }

    pub fn watermark(&self) -> Timestamp {
        self.watermark
    }

    pub fn open_stories(&self) -> usize {
        self.closing.len()
    }

    pub fn held_events(&self) -> usize {
        self.by_event.len()
    }

    /// Event time as the engine uses it: capped at the receiving clock plus the skew bound.
    fn effective_time(&mut self, e: &Event) -> Timestamp {
        let (t, capped) = crate::state::capped_event_time(e, self.cfg.max_clock_skew);
        self.stats.future_capped += u64::from(capped);
        t
    }

    /// Adds one event. `bucket` is the insert-time bucket it was read from.
    pub fn ingest(&mut self, e: &Event, key: EventKey, bucket: i64) {
        if self.by_event.contains_key(&key) {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.events += 1;
        let ts = self.effective_time(e);
        let gap = self.cfg.gap;
        let max_events = self.cfg.max_story_events;
        let mut candidates: Vec<Slot> = match e
            .network
            .community_id
            .as_ref()
            .and_then(|f| self.by_flow.get(f))
        {
            Some(slots) => slots
                .iter()
                .copied()
                .filter(|slot| {
                    let s = &self.stories[slot];
                    s.events.len() < max_events
                        && ts >= s.first.saturating_sub(gap)
                        && ts <= s.last.saturating_add(gap)
                })
                .collect(),
            None => Vec::new(),
        };
        let slot = if candidates.is_empty() {
            if ts.saturating_add(gap + self.cfg.allowed_lateness) < self.watermark {
                self.stats.too_late += 1;
            }
            self.new_story(e, key, ts)
        } else {
            // The event bridges every story it is within `gap` of: fold them into the oldest, so the
            // grouping does not depend on the order events arrived in.
            candidates.sort_unstable();
            let keep = candidates[0];
            for other in candidates.drain(1..) {
                let fits = self.stories[&keep].events.len() + self.stories[&other].events.len()
                    < max_events;
                if fits {
                    self.merge(keep, other);
                }
            }
            keep
        };
        self.add_to(slot, e, key, ts, bucket);
    }

    fn new_story(&mut self, e: &Event, key: EventKey, ts: Timestamp) -> Slot {
        let slot = self.next_slot;
        self.next_slot += 1;
        let flow = e.network.community_id.clone();
        if let Some(f) = &flow {
            self.by_flow.entry(f.clone()).or_default().push(slot);
        }
        self.stories.insert(
            slot,
            StoryState {
                id: StoryId::derive(&self.tenant, key),
                version: 0,
                first: ts,
                last: ts,
                flow,
                events: Vec::new(),
                sensors: Vec::new(),
                fused: Fused::default(),
                open: true,
                dirty: true,
                max_bucket: i64::MIN,
            },
        );
        self.closing.insert((self.close_at(ts), slot));
        slot
    }

    fn close_at(&self, last: Timestamp) -> Timestamp {
        last.saturating_add(self.cfg.gap)
    }

    fn evict_at(&self, last: Timestamp) -> Timestamp {
        last.saturating_add(self.cfg.gap + self.cfg.allowed_lateness)
    }

    fn add_to(&mut self, slot: Slot, e: &Event, key: EventKey, ts: Timestamp, bucket: i64) {
        let (old_last, was_open) = {
            let s = &self.stories[&slot];
            (s.last, s.open)
        };
        if was_open {
            self.closing.remove(&(self.close_at(old_last), slot));
        } else {
            self.evicting.remove(&(self.evict_at(old_last), slot));
            self.stats.reopened += 1;
        }
        let max_events = self.cfg.max_story_events;
        let s = self.stories.get_mut(&slot).expect("slot exists");
        s.first = s.first.min(ts);
        s.last = s.last.max(ts);
        s.events.push((key, e.event.id.clone()));
        push_unique(&mut s.sensors, e.observer.name.clone());
        fuse(&mut s.fused, e);
        s.open = true;
        s.dirty = true;
        s.max_bucket = s.max_bucket.max(bucket);
        let full = s.events.len() >= max_events;
        let last = s.last;
        let close = if full {
            Timestamp::MIN
        } else {
            self.close_at(last)
        };
        self.closing.insert((close, slot));
        self.by_event.insert(key, slot);
    }

    /// Moves `from`'s events into `into`. If `from` was published, its last version says where they went.
    fn merge(&mut self, into: Slot, from: Slot) {
        let Some(f) = self.stories.remove(&from) else {
            return;
        };
        self.stats.merged += 1;
        if f.open {
            self.closing.remove(&(self.close_at(f.last), from));
        } else {
            self.evicting.remove(&(self.evict_at(f.last), from));
        }
        if let Some(flow) = &f.flow {
            if let Some(list) = self.by_flow.get_mut(flow) {
                list.retain(|x| *x != from);
            }
        }
        let into_id = self.stories[&into].id;
        if f.version > 0 {
            self.stats.versions_published += 1;
            self.pending.push(Story {
                story_id: f.id,
                version: f.version + 1,
                tenant: self.tenant.clone(),
                first_seen: f.first,
                last_seen: f.last,
                merged_into: Some(into_id),
                ..Story::default()
            });
        }
        let (was_open, old_last) = (self.stories[&into].open, self.stories[&into].last);
        if was_open {
            self.closing.remove(&(self.close_at(old_last), into));
        } else {
            self.evicting.remove(&(self.evict_at(old_last), into));
        }
        let s = self.stories.get_mut(&into).expect("merge target exists");
        s.first = s.first.min(f.first);
        s.last = s.last.max(f.last);
        s.max_bucket = s.max_bucket.max(f.max_bucket);
        for sensor in f.sensors {
            push_unique(&mut s.sensors, sensor);
        }
        merge_fused(&mut s.fused, &f.fused);
        s.dirty = true;
        s.open = true;
        for (k, _) in &f.events {
            self.by_event.insert(*k, into);
        }
        s.events.extend(f.events);
        let last = s.last;
        self.closing.insert((self.close_at(last), into));
    }

    /// Moves event time forward to `watermark` and returns the story versions that became final: stories
    /// whose last event is more than `gap` behind it. `dedupe_floor` is the oldest insert-time bucket that
    /// may still be re-scanned; stories with members in newer buckets are kept for duplicate detection.
    pub fn advance(&mut self, watermark: Timestamp, dedupe_floor: i64, out: &mut Vec<Story>) {
        self.watermark = self.watermark.max(watermark);
        let start = out.len();
        out.append(&mut self.pending);
        while let Some(&(at, slot)) = self.closing.first() {
            if at >= self.watermark {
                break;
            }
            self.closing.pop_first();
            self.close(slot, out);
        }
        while let Some(&(at, slot)) = self.evicting.first() {
            if at >= self.watermark || self.stories[&slot].max_bucket > dedupe_floor {
                break;
            }
            self.evicting.pop_first();
            self.evict(slot);
        }
        crate::order::sort_by_last_seen(&mut out[start..]);
    }

    /// Closes every open story (end of input).
    pub fn flush(&mut self, out: &mut Vec<Story>) {
        let start = out.len();
        out.append(&mut self.pending);
        while let Some((_, slot)) = self.closing.pop_first() {
            self.close(slot, out);
        }
        crate::order::sort_by_last_seen(&mut out[start..]);
    }

    fn close(&mut self, slot: Slot, out: &mut Vec<Story>) {
        let s = self.stories.get_mut(&slot).expect("closing slot exists");
        s.open = false;
        if s.dirty {
            s.dirty = false;
            s.version += 1;
            self.stats.versions_published += 1;
            out.push(Story {
                story_id: s.id,
                version: s.version,
                tenant: self.tenant.clone(),
                first_seen: s.first,
                last_seen: s.last,
                event_count: s.events.len() as u32,
                event_ids: s.events.iter().map(|(_, id)| id.clone()).collect(),
                sensors: s.sensors.clone(),
                merged_into: None,
                fused: Box::new(s.fused.clone()),
                ..Story::default()
            });
        }
        let last = s.last;
        let at = self.evict_at(last);
        self.evicting.insert((at, slot));
    }

    fn evict(&mut self, slot: Slot) {
        let Some(s) = self.stories.remove(&slot) else {
            return;
        };
        for (k, _) in &s.events {
            self.by_event.remove(k);
        }
        if let Some(f) = &s.flow {
            if let Some(list) = self.by_flow.get_mut(f) {
                list.retain(|x| *x != slot);
                if list.is_empty() {
                    self.by_flow.remove(f);
                }
            }
        }
    }

    /// Rough bytes held, for metrics: ids, keys and fused summaries (no payloads are ever held).
    pub fn state_bytes(&self) -> usize {
        let per_event = std::mem::size_of::<(EventKey, EventId)>()
            + std::mem::size_of::<(EventKey, Slot)>()
            + 16;
        let per_story = std::mem::size_of::<StoryState>() + 64;
        self.by_event.len() * per_event + self.stories.len() * per_story
    }
}

/// Whether the event reports the session from the responder's side. Flow exporters and firewalls often
/// report B→A; the initiator is usually the side with the ephemeral (higher) port.
fn reversed(e: &Event) -> bool {
    matches!((e.source.port, e.destination.port), (Some(s), Some(d)) if s < d && s < 1024 && d >= 1024)
}

fn fuse(f: &mut Fused, e: &Event) {
    let (src, dst) = if reversed(e) {
        (&e.destination, &e.source)
    } else {
        (&e.source, &e.destination)
    };
    for (into, from) in [(&mut f.source, src), (&mut f.destination, dst)] {
        into.ip = into.ip.or(from.ip);
        into.port = into.port.or(from.port);
        // Sensors disagree on counts (sampling, partial views); the largest is the most complete view.
        into.bytes = max_opt(into.bytes, from.bytes);
        into.packets = max_opt(into.packets, from.packets);
        into.nat.ip = into.nat.ip.or(from.nat.ip);
        into.nat.port = into.nat.port.or(from.nat.port);
    }
    let n = &mut f.network;
    n.transport = n.transport.take().or_else(|| e.network.transport.clone());
    n.protocol = n.protocol.take().or_else(|| e.network.protocol.clone());
    n.community_id = n
        .community_id
        .take()
        .or_else(|| e.network.community_id.clone());
    n.bytes = max_opt(n.bytes, e.network.bytes);
    n.packets = max_opt(n.packets, e.network.packets);
    add(&mut f.dns.question.names, e.dns.question.name.as_ref());
    add(&mut f.url.domains, e.url.domain.as_ref());
    add(&mut f.tls.server_names, e.tls.server_name.as_ref());
    add(&mut f.user.names, e.user.name.as_ref());
    add(&mut f.host.names, e.host.name.as_ref());
    add(&mut f.process.names, e.process.name.as_ref());
    add(&mut f.rule.names, e.rule.name.as_ref());
    add(&mut f.event.actions, e.event.action.as_ref());
    add(&mut f.event.categories, e.event.category.as_ref());
}

/// Folds one story's fused record into another's (when a late event bridges two stories).
fn merge_fused(into: &mut Fused, from: &Fused) {
    for (a, b) in [
        (&mut into.source, &from.source),
        (&mut into.destination, &from.destination),
    ] {
        a.ip = a.ip.or(b.ip);
        a.port = a.port.or(b.port);
        a.bytes = max_opt(a.bytes, b.bytes);
        a.packets = max_opt(a.packets, b.packets);
        a.nat.ip = a.nat.ip.or(b.nat.ip);
        a.nat.port = a.nat.port.or(b.nat.port);
    }
    crate::fuse::merge_network_and_names(into, from);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(id: &str, t_secs: i64, port: u16, reversed: bool) -> Event {
        let mut e = Event {
            timestamp: Timestamp(t_secs * 1_000_000_000),
            ..Event::default()
        };
        e.event.id = id.into();
        e.observer.name = "fw".into();
        e.network.transport = Some("tcp".into());
        e.source.ip = Some("10.0.0.5".parse().unwrap());
        e.source.port = Some(port);
        e.destination.ip = Some("198.51.100.9".parse().unwrap());
        e.destination.port = Some(443);
        if reversed {
            std::mem::swap(&mut e.source, &mut e.destination);
        }
        e.finish();
        e
    }

    /// The benchmark's reference must still correlate: both directions of a flow meet through the
    /// Community ID, another flow and a later session of the same flow stay apart.
    #[test]
    fn groups_by_community_id_within_the_gap() {
        let evs = [
            flow("a", 0, 50_000, false),
            flow("b", 10, 50_000, true),
            flow("c", 12, 50_001, false),
            flow("d", 500, 50_000, false),
        ];
        let mut c = FirstCorrelator::new("t", Config::default());
        let mut out = Vec::new();
        for e in &evs {
            c.ingest(e, EventKey::new("fw", &e.event.id), 0);
            c.advance(e.timestamp, 0, &mut out);
        }
        c.flush(&mut out);
        let mut groups: Vec<Vec<String>> = out
            .iter()
            .map(|s| s.event_ids.iter().map(|i| i.to_string()).collect())
            .collect();
        groups.sort();
        assert_eq!(groups, vec![vec!["a", "b"], vec!["c"], vec!["d"]]);
    }
}
