//! Correlation state: which events belong to which story, and when stories close.
//!
//! Holds keys and ids only, never payloads. Stories stay in memory after they close for as long as a late
//! event may still join them (`gap + allowed_lateness` of event time), which is also what makes
//! duplicates harmless: an event key already held is ignored.

use crate::{fuse, Config};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use storyline_model::{
    push_unique, Event, EventId, EventKey, Fused, Story, StoryId, Str, Timestamp,
};

type Slot = u64;

/// The version of a story's last publication when it was folded into another: final, above any count.
pub const MERGED_VERSION: u32 = u32::MAX;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrelatorStats {
    pub events: u64,
    pub duplicates: u64,
    /// Late events that re-opened a story that had already been published.
    pub reopened: u64,
    /// Events later than the allowed lateness: published as stories of their own.
    pub too_late: u64,
    /// Events whose time was capped because it ran too far ahead of the receiving clock.
    pub future_capped: u64,
    pub versions_published: u64,
    /// Stories folded into another because a late event bridged them.
    pub merged: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoryState {
    id: StoryId,
    /// Version last published (0: never). Versions are the story's event count at publication: after a
    /// restart from an older checkpoint the same events are re-read in the same order, so a version number
    /// always names the same content, and receivers that dedupe on (story_id, version) stay right.
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

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Correlator {
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
    /// Largest effective event time ingested.
    max_event_time: Timestamp,
    /// Versions produced outside `advance` (merges), handed out by the next `advance` or `flush`.
    pending: Vec<Story>,
    stats: CorrelatorStats,
}

impl Correlator {
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
            max_event_time: Timestamp::MIN,
            pending: Vec::new(),
            stats: CorrelatorStats::default(),
        }
    }

    pub fn stats(&self) -> &CorrelatorStats {
        &self.stats
    }

    pub fn watermark(&self) -> Timestamp {
        self.watermark
    }

    pub fn max_event_time(&self) -> Timestamp {
        self.max_event_time
    }

    pub fn open_stories(&self) -> usize {
        self.closing.len()
    }

    pub fn held_events(&self) -> usize {
        self.by_event.len()
    }

    /// Event time as the engine uses it: capped at the receiving clock plus the skew bound.
    fn effective_time(&mut self, e: &Event) -> Timestamp {
        match e.event.ingested {
            Some(rx) => {
                let cap = rx.saturating_add(self.cfg.max_clock_skew);
                if e.timestamp > cap {
                    self.stats.future_capped += 1;
                    cap
                } else {
                    e.timestamp
                }
            }
            None => e.timestamp,
        }
    }

    /// Adds one event. `bucket` is the insert-time bucket it was read from.
    pub fn ingest(&mut self, e: &Event, key: EventKey, bucket: i64) {
        if self.by_event.contains_key(&key) {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.events += 1;
        let ts = self.effective_time(e);
        self.max_event_time = self.max_event_time.max(ts);
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
        fuse::fuse(&mut s.fused, e);
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
                version: MERGED_VERSION,
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
        fuse::merge(&mut s.fused, &f.fused);
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
        out[start..].sort_by(|a, b| (a.last_seen, a.story_id).cmp(&(b.last_seen, b.story_id)));
    }

    /// Closes every open story (end of input).
    pub fn flush(&mut self, out: &mut Vec<Story>) {
        let start = out.len();
        out.append(&mut self.pending);
        while let Some((_, slot)) = self.closing.pop_first() {
            self.close(slot, out);
        }
        out[start..].sort_by(|a, b| (a.last_seen, a.story_id).cmp(&(b.last_seen, b.story_id)));
    }

    fn close(&mut self, slot: Slot, out: &mut Vec<Story>) {
        let s = self.stories.get_mut(&slot).expect("closing slot exists");
        s.open = false;
        if s.dirty {
            s.dirty = false;
            s.version = s.events.len() as u32;
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
                fused: s.fused.clone(),
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

    pub fn snapshot(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("correlator state serializes")
    }

    pub fn restore(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
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
