//! Correlation state: which events belong to which story, and when stories close.
//!
//! Events are linked through keys ([`crate::keys`]) and merged transitively with union-find: each story is
//! a root slot; a story folded into another keeps its slot as a pointer to the survivor, so index entries
//! never need rewriting. The state holds keys, ids and a fused summary — never payloads. Stories stay
//! after they close for as long as a late event may still join them (`gap + allowed_lateness` of event
//! time), which is also what makes duplicates harmless: an event key already held is ignored.

use crate::clock::{epoch_of, story_estimate_final_at, Clocks, PendingLink};
use crate::fasthash::{Map, Set};
use crate::fuse::FusedAcc;
use crate::keys::{links, Key, Links};
use crate::slot_table::{Slot, SlotTable};
use crate::Config;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::BTreeSet;
use storyline_model::parts::Parts;
use storyline_model::prefetch::{
    prefetch, prefetch_list, prefetch_value, request_ahead, Stage, OWN_AHEAD,
};
use storyline_model::{push_unique, Event, EventId, EventKey, Story, StoryId, Str, Timestamp};

/// The stories an event links to: a few at most, so kept off the heap (one list per event).
type Slots = SmallVec<[Slot; 8]>;

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
    /// Stories folded into another because an event linked them.
    pub merged: u64,
    /// Links not followed because a guard stopped them.
    pub cut_links: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoryState {
    /// `StoryId(0)` until the story is first published, then derived from its members
    /// ([`StoryState::assign_id`]) — or taken over from a published story folded into it before that;
    /// never changed once set.
    id: StoryId,
    /// Version last published (0: never). Versions are the story's event count at publication: after a
    /// restart from an older checkpoint the same events are re-read in the same order, so a version number
    /// always names the same content, and receivers that dedupe on (story_id, version) stay right.
    version: u32,
    first: Timestamp,
    last: Timestamp,
    events: Vec<(EventKey, EventId)>,
    sensors: Vec<Str>,
    acc: FusedAcc,
    open: bool,
    /// Changed since the last published version.
    dirty: bool,
    /// Newest insert-time bucket of any member: duplicates re-read from recent buckets must still be
    /// recognised, so a story is not forgotten while its buckets may be re-scanned.
    max_bucket: i64,
    /// Index keys registered for this story (and for the stories folded into it), for cleanup.
    keys: Vec<(Index, Key)>,
    /// Slots folded into this one.
    absorbed: Vec<Slot>,
    cuts: Vec<Str>,
    related: Vec<StoryId>,
    /// Published with times corrected by the final clock estimate (and they differed from the raw ones).
    /// Once set it stays: the version is the event count plus this, so a correction published without a
    /// new event still gets a new version number.
    corrected: bool,
    /// `first_seen`/`last_seen` of the last version published.
    shown: (Timestamp, Timestamp),
    /// Where the story's live entry in `Correlator::closing` is (open stories only). Not state: rebuilt
    /// on restore ([`Correlator::rebuild_schedule`]).
    #[serde(skip)]
    queued_close: Option<Timestamp>,
}

impl StoryState {
    /// The story's id, derived on first use from its smallest member key. Deriving it from the members
    /// rather than from the event that happened to arrive first makes it independent of the arrival order
    /// before the story is first published: a replay reads a cycle's shards in an order that depends on
    /// where its cycles fall, and must still give every story the id it had before.
    fn assign_id(&mut self, tenant: &str) -> StoryId {
        if self.id == StoryId(0) {
            if let Some(smallest) = self.events.iter().map(|(k, _)| *k).min() {
                self.id = StoryId::derive(tenant, smallest);
            }
        }
        self.id
    }

    /// Requests the state's block ([`Stage::Own`]) or the lists it points to, ahead of a bulk pass.
    fn warm(&self, stage: Stage) {
        match stage {
            Stage::Own => prefetch_value(self),
            Stage::Behind => {
                prefetch_list(&self.events);
                prefetch_list(&self.sensors);
                prefetch_list(&self.acc.views);
                prefetch_list(&self.keys);
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum Index {
    Exact,
    Offer,
    Demand,
}

/// The entries of one key: most keys have one, kept inline in the index (a heap list cost a cache miss
/// per lookup, the largest single stall of the engine).
type Entries = SmallVec<[Entry; 1]>;

/// Where a key was seen: in which story (slot, possibly folded since), over which event-time range.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Entry {
    slot: Slot,
    lo: Timestamp,
    hi: Timestamp,
    /// Hash of the sensor that reported it: two reports from one sensor share a clock, so time windows
    /// between them need no allowance for skew.
    sensor: u32,
}

fn close_at(cfg: &Config, last: Timestamp) -> Timestamp {
    last.saturating_add(cfg.gap)
}

/// When an open story closes: `gap` after its last event, or at once when it is full.
fn close_key(cfg: &Config, s: &StoryState) -> Timestamp {
    if s.events.len() >= cfg.max_story_events {
        Timestamp::MIN
    } else {
        close_at(cfg, s.last)
    }
}

/// When a closed story is forgotten: once no late event may join it any more.
fn evict_at(cfg: &Config, first: Timestamp, last: Timestamp) -> Timestamp {
    let slack = cfg.gap + cfg.allowed_lateness;
    let after_lateness = last.saturating_add(slack);
    if !cfg.correct_story_times {
        return after_lateness;
    }
    // Held until its clock estimate is final (up to a minute more): its last version must show the
    // corrected times whatever the arrival order, and only a held story can be published again.
    after_lateness.max(story_estimate_final_at(
        epoch_of(first),
        slack.as_nanos() as i64,
    ))
}

/// Takes a closed story's entry out of the evicting schedule (or the links' waiting list).
fn off_evicting(
    cfg: &Config,
    s: &StoryState,
    slot: Slot,
    evicting: &mut BTreeSet<(Timestamp, Slot)>,
    waiting_for_links: &mut BTreeSet<(Timestamp, Slot)>,
) {
    let at = evict_at(cfg, s.first, s.last);
    if !evicting.remove(&(at, slot)) {
        waiting_for_links.remove(&(at, slot));
    }
}

/// Marks the story open and makes sure it has a closing entry no later than its closing time: an entry
/// that is earlier is moved when it comes due.
fn keep_open(
    cfg: &Config,
    s: &mut StoryState,
    slot: Slot,
    closing: &mut BTreeSet<(Timestamp, Slot)>,
    open_count: &mut usize,
) {
    let at = close_key(cfg, s);
    if !s.open {
        s.open = true;
        *open_count += 1;
    }
    if s.queued_close.is_none_or(|q| at < q) {
        s.queued_close = Some(at);
        closing.insert((at, slot));
    }
}

/// Loads a key's entry in its index and requests the entries it holds (inline or on the heap): all of a
/// short list, which [`Correlator::candidates`] reads whole, and both ends of a long one, the newest end
/// being where [`Correlator::register`] looks for the story's own entry. Loading the index slot alone
/// left the entries a cache miss per lookup (~13% of `ingest_linked`, perf annotate, eighteenth sitting).
fn warm_entries(list: Option<&Entries>) {
    /// Lists up to this many lines long are requested whole: those are searched whole.
    const WHOLE_UP_TO_LINES: usize = 8;
    let Some(list) = list else { return };
    if std::mem::size_of_val(list.as_slice()) <= WHOLE_UP_TO_LINES * 64 {
        prefetch_value(list.as_slice());
    } else {
        prefetch_list(list);
        if let Some(last) = list.last() {
            prefetch(last);
        }
    }
}

fn sensor_tag(e: &Event) -> u32 {
    tag_of(&e.observer.name)
}

fn sorted(mut list: Vec<Str>) -> Vec<Str> {
    list.sort_unstable();
    list
}

/// A recorded version as published, from its story's members, sensors, cuts, related stories and fused
/// record (copied from the state, or moved out of it at the end of a run).
fn version_story(
    tenant: &Str,
    v: Version,
    event_ids: Vec<EventId>,
    sensors: Vec<Str>,
    cuts: Vec<Str>,
    related: &[StoryId],
    fused: storyline_model::Fused,
) -> Story {
    Story {
        story_id: v.id,
        version: v.version,
        tenant: tenant.clone(),
        first_seen: v.shown.first,
        last_seen: v.shown.last,
        event_count: event_ids.len() as u32,
        // Sorted, as the fused lists: arrival order differs between replays.
        event_ids: sorted(event_ids),
        sensors: sorted(sensors),
        merged_into: None,
        provenance: v.shown.provenance,
        cuts,
        related_story_ids: related.iter().map(|id| Str::from(id.to_string())).collect(),
        fused: Box::new(crate::fuse::published(fused)),
    }
}

fn tag_of(sensor: &str) -> u32 {
    xxhash_rust::xxh3::xxh3_64(sensor.as_bytes()) as u32
}

/// Appends `f` of each item to `out`, in order; a large batch on this thread and a helper, half each.
/// The final flush presents and builds hundreds of thousands of stories, reading the state only.
/// `warm` is called on the items a few places ahead ([`map_warmed`]).
///
/// Each thread writes its half straight into `out`'s reserved tail. The helper's half was collected in a
/// vector of its own and then appended: at a replay's end that was ~80 MB of story versions written into
/// freshly faulted pages and copied once more (a twentieth of the final flush's samples were those faults).
fn on_two_threads<T: Send, R: Send>(
    items: Vec<T>,
    out: &mut Vec<R>,
    warm: impl Fn(&T, Stage) + Sync,
    f: impl Fn(T) -> R + Sync,
) {
    const TWO_THREADS_FROM: usize = 4096;
    if items.len() < TWO_THREADS_FROM {
        map_warmed(items, out, &warm, &f);
        return;
    }
    let total = items.len();
    out.reserve(total);
    let mut first = items;
    let second = first.split_off(total / 2);
    let (mine, theirs) = out.spare_capacity_mut()[..total].split_at_mut(first.len());
    let (f, warm) = (&f, &warm);
    let helped = std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("storyline-half".into())
            .spawn_scoped(scope, move || map_warmed_into(second, theirs, warm, f))
            .expect("spawning a helper thread");
        map_warmed_into(first, mine, warm, f);
        helper.join()
    });
    if let Err(panic) = helped {
        // The written items leak rather than be dropped half-initialised.
        std::panic::resume_unwind(panic);
    }
    // SAFETY: `map_warmed_into` initialised every one of the `total` slots after the current length (one
    // per item: each half's slots are exactly as many as its items), and both threads returned normally.
    unsafe { out.set_len(out.len() + total) };
}

/// Appends `f` of each item to `out`, in order, with `warm` called on the items a few places ahead first
/// ([`request_ahead`]). A bulk pass over stories (closing, presenting, recording, building them at the end
/// of input) touches each one's state once, long after it was last used: it stalled on cache misses,
/// which requests ahead overlap with the work on the current story.
fn map_warmed<T, R>(
    items: Vec<T>,
    out: &mut Vec<R>,
    warm: &impl Fn(&T, Stage),
    f: &impl Fn(T) -> R,
) {
    let mut items = items.into_iter();
    loop {
        request_ahead(items.as_slice(), warm);
        let Some(item) = items.next() else { break };
        out.push(f(item));
    }
}

/// [`map_warmed`] into slots as many as the items, each written once.
fn map_warmed_into<T, R>(
    items: Vec<T>,
    out: &mut [std::mem::MaybeUninit<R>],
    warm: &impl Fn(&T, Stage),
    f: &impl Fn(T) -> R,
) {
    assert_eq!(items.len(), out.len(), "one slot per item");
    let mut items = items.into_iter();
    for slot in out {
        request_ahead(items.as_slice(), warm);
        let item = items.next().expect("as many items as slots");
        slot.write(f(item));
    }
}

/// How a story is shown: its times, its provenance with each sensor's clock offset against the first
/// sensor listed, and whether the offsets are the final estimates (the times are then corrected by them).
struct Presented {
    first: Timestamp,
    last: Timestamp,
    provenance: Vec<storyline_model::SensorView>,
    is_final: bool,
}

/// A story version recorded as published and not built yet ([`Correlator::build_versions`]).
struct Version {
    slot: Slot,
    id: StoryId,
    version: u32,
    shown: Presented,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Correlator {
    tenant: Str,
    cfg: Config,
    next_slot: Slot,
    /// Boxed: a story's state is several hundred bytes, and growing a table of them inline copied the
    /// whole table into freshly faulted pages at every doubling (a tenth of a catch-up's page faults).
    stories: SlotTable<Box<StoryState>>,
    /// Folded slot → the slot it was folded into.
    parent: Map<Slot, Slot>,
    exact: Map<Key, Entries>,
    offers: Map<Key, Entries>,
    demands: Map<Key, Entries>,
    /// Keys of the events held, to recognise a duplicate. Which story holds one is in the story's own
    /// list: a set spares rewriting the entries of every event a merge moves.
    held_keys: Set<EventKey>,
    /// Open stories by the event time at which they close, lazily: a story's entry is left where it was
    /// when a new event moves its closing time later, and moved when it comes due
    /// ([`Correlator::advance`]). Moving it at every event was a B-tree removal and insertion per event
    /// (a tenth of adding one). Entries of stories folded away, closed or re-queued earlier are stale and
    /// skipped: only the one at a story's `queued_close` counts.
    closing: BTreeSet<(Timestamp, Slot)>,
    /// Open stories (`closing` also holds stale entries). Not state: rebuilt on restore.
    #[serde(skip)]
    open_count: usize,
    /// Closed stories by the event time at which no late event can join them any more.
    evicting: BTreeSet<(Timestamp, Slot)>,
    /// Entries of `evicting` that were due but are named by a cross-sensor DNS link not decided yet. They
    /// go back only once links were decided: checking them at every `advance` cost a quarter of a second
    /// of a 1M-event replay. Not state: restored stories are all in `evicting`.
    waiting_for_links: BTreeSet<(Timestamp, Slot)>,
    watermark: Timestamp,
    /// Largest effective event time ingested.
    max_event_time: Timestamp,
    /// Versions produced outside `advance` (merges), handed out by the next `advance` or `flush`.
    pending: Vec<Story>,
    clocks: Clocks,
    /// Flow and session keys of evicted stories, so an event that arrives after its story was forgotten
    /// can still name it (`related_story_ids`). Kept for `RELATED_MEMORY` of event time.
    gone: Map<Key, (StoryId, Timestamp)>,
    gone_order: BTreeSet<(Timestamp, Key)>,
    stats: CorrelatorStats,
    /// What changed since the last [`Correlator::checkpoint`]: the next one writes only that.
    #[serde(skip)]
    changed: Changes,
    /// For each version published since the last [`Correlator::take_arrivals`]: the insert-time bucket of
    /// its newest member (when its last event arrived), for the publish-latency metric. Not state.
    #[serde(skip)]
    arrivals: Vec<(StoryId, u32, i64)>,
    /// Bytes the last full and delta checkpoints took, to size the next one's buffer. Not state.
    #[serde(skip)]
    sizes: CheckpointSizes,
    /// [`Correlator::publish_only_final`]. A setting of the run, not state: whoever opens the state
    /// sets it again.
    #[serde(skip)]
    only_final: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct CheckpointSizes {
    full: usize,
    delta: usize,
}

#[derive(Clone, Debug, Default)]
struct Changes {
    /// Nothing is recorded: the state is never checkpointed.
    off: bool,
    stories: Set<Slot>,
    index: Set<(Index, Key)>,
    gone: Set<Key>,
}

impl Changes {
    fn story(&mut self, slot: Slot) {
        if !self.off {
            self.stories.insert(slot);
        }
    }

    fn index(&mut self, index: Index, key: Key) {
        if !self.off {
            self.index.insert((index, key));
        }
    }

    fn gone(&mut self, key: Key) {
        if !self.off {
            self.gone.insert(key);
        }
    }

    /// What changed since the last call; recording goes on (or stays off).
    fn take(&mut self) -> Changes {
        std::mem::replace(
            self,
            Changes {
                off: self.off,
                ..Changes::default()
            },
        )
    }
}

/// A new story's room for events and index keys ([`Correlator::new_story`]).
const STORY_EVENTS_RESERVED: usize = 8;
const STORY_KEYS_RESERVED: usize = 8;

/// How long, in event time after eviction, the keys of a forgotten story are remembered.
const RELATED_MEMORY: std::time::Duration = std::time::Duration::from_secs(3600);

/// An event's time capped at its receiving clock plus the skew bound (a sensor whose clock runs far
/// ahead must not drag the watermark forward), and whether it was capped.
pub(crate) fn capped_event_time(e: &Event, max_skew: std::time::Duration) -> (Timestamp, bool) {
    match e.event.ingested {
        Some(rx) => {
            let cap = rx.saturating_add(max_skew);
            if e.timestamp > cap {
                (cap, true)
            } else {
                (e.timestamp, false)
            }
        }
        None => (e.timestamp, false),
    }
}

impl Correlator {
    pub fn new(tenant: &str, cfg: Config) -> Self {
        Self {
            tenant: tenant.into(),
            cfg,
            next_slot: 0,
            stories: SlotTable::default(),
            parent: Map::default(),
            exact: Map::default(),
            offers: Map::default(),
            demands: Map::default(),
            held_keys: Set::default(),
            closing: BTreeSet::new(),
            open_count: 0,
            evicting: BTreeSet::new(),
            waiting_for_links: BTreeSet::new(),
            watermark: Timestamp::MIN,
            max_event_time: Timestamp::MIN,
            pending: Vec::new(),
            clocks: Clocks::default(),
            gone: Map::default(),
            gone_order: BTreeSet::new(),
            stats: CorrelatorStats::default(),
            changed: Changes::default(),
            arrivals: Vec::new(),
            sizes: CheckpointSizes::default(),
            only_final: false,
        }
    }

    /// Holds a closed story back until its times are final (the clock estimate for its epoch is, after
    /// the allowed lateness; at once at the end of input) instead of publishing it at close and again,
    /// corrected, then. The stories' last versions are the same; only the versions before them are not
    /// published. Right for a replay, which nobody reads before it ends: on the generator's traffic
    /// most stories close before their epoch is final, and their corrections were ~40% of all versions.
    /// Off (the default), a story is published when it closes, as a live stream needs.
    pub fn publish_only_final(&mut self, on: bool) {
        self.only_final = on;
    }

    pub fn stats(&self) -> &CorrelatorStats {
        &self.stats
    }

    pub fn watermark(&self) -> Timestamp {
        self.watermark
    }

    /// The config the state was built with (a restored state keeps its own).
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn max_event_time(&self) -> Timestamp {
        self.max_event_time
    }

    /// Estimated clock offsets between sensors: (sensor, reference, seconds, samples).
    pub fn clock_offsets(&self) -> Vec<(Str, Str, f64, u64)> {
        self.clocks.estimates()
    }

    pub fn open_stories(&self) -> usize {
        self.open_count
    }

    /// At most how many versions the next `advance` and `flush` hand out, if no event comes in between:
    /// one per open story, one per closed story held for lateness (a correction), and the merge notices
    /// waiting.
    pub fn versions_bound(&self) -> usize {
        self.open_count + self.evicting.len() + self.waiting_for_links.len() + self.pending.len()
    }

    /// (story, version, insert-time bucket of its newest member) of the versions published since the
    /// last call.
    pub fn take_arrivals(&mut self) -> Vec<(StoryId, u32, i64)> {
        std::mem::take(&mut self.arrivals)
    }

    /// Cross-sensor DNS links waiting for a final clock estimate.
    pub fn deferred_links(&self) -> usize {
        self.clocks.deferred.pending()
    }

    pub fn held_events(&self) -> usize {
        self.held_keys.len()
    }

    /// In a serial bulk pass that mutates the stories, about to work on `rest[0]`: the requests
    /// [`map_warmed`] makes.
    fn warm_ahead<T>(&self, rest: &[T], slot: impl Fn(&T) -> Slot) {
        request_ahead(rest, |item, stage| self.warm_story(slot(item), stage));
    }

    /// [`Correlator::warm_ahead`] for a queue of stories ordered by time (`closing`, `evicting`) about to
    /// be worked through from its first: the stories next in line, long untouched, are requested while the
    /// first is worked on.
    fn warm_queue(&self, queue: &BTreeSet<(Timestamp, Slot)>) {
        let next: SmallVec<[Slot; OWN_AHEAD + 1]> = queue
            .iter()
            .take(OWN_AHEAD + 1)
            .map(|(_, slot)| *slot)
            .collect();
        self.warm_ahead(&next, |slot| *slot);
    }

    fn warm_story(&self, slot: Slot, stage: Stage) {
        if let Some(s) = self.stories.get(&slot) {
            s.warm(stage);
        }
    }

    fn find(&self, mut slot: Slot) -> Slot {
        while let Some(&p) = self.parent.get(&slot) {
            slot = p;
        }
        slot
    }

    /// Event time as the engine uses it: capped at the receiving clock plus the skew bound.
    fn effective_time(&mut self, e: &Event) -> Timestamp {
        let (t, capped) = crate::state::capped_event_time(e, self.cfg.max_clock_skew);
        self.stats.future_capped += u64::from(capped);
        t
    }

    /// Adds one event. `bucket` is the insert-time bucket it was read from.
    pub fn ingest(&mut self, e: &Event, key: EventKey, bucket: i64) {
        let links = links(e, &self.cfg);
        self.ingest_linked(e, key, bucket, &links);
    }

    /// [`Correlator::ingest_linked`] for each event of a batch, in order. `warm_ahead` > 0: while it
    /// works on one event, the index entries of the event that many places ahead are looked up
    /// ([`Correlator::warm_index_entries`]); the result is the same, `storyline bench correlate` measures the gain.
    pub fn ingest_batch(&mut self, batch: &[(Event, EventKey, i64, Links)], warm_ahead: usize) {
        for (i, (e, key, bucket, links)) in batch.iter().enumerate() {
            if warm_ahead > 0 {
                // Three stages, farthest first: the event itself (a page is decoded by another thread, so
                // its events sit in another core's cache, and adding one to its story reads fields across
                // a dozen lines of it: a tenth of the correlator thread stalled on them), then the index
                // entries of its keys, then — those entries loaded by now — the story they point to.
                if let Some(later) = batch.get(i + 3 * warm_ahead) {
                    prefetch_value(later);
                }
                if let Some((_, key, _, links)) = batch.get(i + 2 * warm_ahead) {
                    self.warm_index_entries(*key, links);
                }
                if let Some((_, _, _, links)) = batch.get(i + warm_ahead) {
                    self.warm_linked_stories(links);
                }
            }
            self.ingest_linked(e, *key, *bucket, links);
        }
    }

    /// Looks up what [`Correlator::ingest_linked`] looks up first for an event. The indexes are far
    /// larger than the caches and each lookup was a miss the correlator waited for (most of
    /// `ingest_linked`); looked up a few events ahead, the misses of several events are in flight at
    /// once and the event's own lookups find the lines cached. Changes nothing.
    fn warm_index_entries(&self, key: EventKey, links: &Links) {
        std::hint::black_box(self.held_keys.contains(&key));
        for k in &links.exact {
            warm_entries(self.exact.get(k));
        }
        for k in &links.demands {
            warm_entries(self.offers.get(k));
        }
        for (k, _) in &links.offers {
            warm_entries(self.demands.get(k));
        }
    }

    /// Requests the state of the story an event's flow keys last joined, after
    /// [`Correlator::warm_index_entries`] loaded their entries: most events join the story of the newest
    /// entry of their flow, whose state was otherwise the next miss (~7% of `ingest_linked`, the lookup in
    /// [`Correlator::join`]; perf annotate, eighteenth sitting). Changes nothing.
    fn warm_linked_stories(&self, links: &Links) {
        // An event's keys mostly name one story: its state is requested once.
        let mut warmed = None;
        for k in &links.exact {
            let Some(slot) = self
                .exact
                .get(k)
                .and_then(|list| list.last())
                .map(|en| en.slot)
            else {
                continue;
            };
            if warmed != Some(slot) {
                warmed = Some(slot);
                self.warm_story(slot, Stage::Own);
            }
        }
    }

    /// [`Correlator::ingest`] with the event's links already computed (`keys::links(e, self.config())`):
    /// they depend on nothing but the event and the config, so a reader thread can compute them off the
    /// correlator's critical path.
    pub fn ingest_linked(&mut self, e: &Event, key: EventKey, bucket: i64, links: &Links) {
        if self.held_keys.contains(&key) {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.events += 1;
        let t = self.effective_time(e);
        self.max_event_time = self.max_event_time.max(t);
        let sensor = sensor_tag(e);
        self.clocks.name(sensor, &e.observer.name);
        let (candidates, hot, deferred) = self.candidates(links, t, sensor);
        let slot = self.join(candidates, t, &links.exact);
        for mut link in deferred {
            link.a = slot;
            self.clocks.deferred.defer(link);
        }
        if hot {
            self.note_cut(slot, "hot_key");
        }
        self.add_to(slot, e, key, t, bucket);
        self.register(slot, links, t, sensor);
    }

    /// Roots of the stories this event links to, oldest first, whether a hot key was skipped, and the
    /// cross-sensor DNS links to decide later (see [`crate::clock`]; their `a` is filled in by the caller).
    fn candidates(
        &mut self,
        links: &Links,
        t: Timestamp,
        sensor: u32,
    ) -> (Slots, bool, SmallVec<[PendingLink; 2]>) {
        let gap = self.cfg.gap;
        let fanout = self.cfg.max_key_fanout;
        let slack = (self.cfg.gap + self.cfg.allowed_lateness).as_nanos() as i64;
        let mut found = Slots::new();
        let mut hot = false;
        let mut samples: SmallVec<[(u32, i64); 4]> = SmallVec::new();
        let defer = self.cfg.dns_links_use_clock_offsets;
        for k in &links.exact {
            if defer || self.cfg.correct_story_times {
                self.clocks
                    .deferred
                    .record(*k, sensor, t, self.watermark, slack);
            }
            let within_gap =
                |en: &Entry| t >= en.lo.saturating_sub(gap) && t <= en.hi.saturating_add(gap);
            let Some(list) = self.exact.get(k) else {
                continue;
            };
            // Another sensor's report of the same flow: a sample of the two clocks' difference. Only this
            // sensor's first report of the flow counts: entries hold each sensor's earliest time, and a
            // later report (a flow's end) against it would add the flow's duration to the sample.
            // From the newest end, where entries within the gap are.
            if !list
                .iter()
                .rev()
                .any(|en| en.sensor == sensor && within_gap(en))
            {
                samples.extend(
                    list.iter()
                        .filter(|en| en.sensor != sensor && within_gap(en))
                        .map(|en| (en.sensor, t.nanos_since(en.lo))),
                );
            }
            if list.len() > fanout {
                hot = true;
                continue;
            }
            found.extend(list.iter().filter(|en| within_gap(en)).map(|en| en.slot));
        }
        let cross = self.cfg.dns_cross_sensor_tolerance.as_nanos() as i64;
        // Whatever the estimate turns out to be, two sensors' clocks differ by at most twice the skew bound.
        let widest = cross + 2 * self.cfg.max_clock_skew.as_nanos() as i64;
        let mut deferred = SmallVec::new();
        let mut dns = |list: Option<&Entries>, window_ns: Option<i64>| {
            let Some(list) = list else { return };
            if list.len() > fanout {
                hot = true;
                return;
            }
            for en in list {
                let link = PendingLink {
                    a: 0,
                    b: en.slot,
                    sensor_a: sensor,
                    sensor_b: en.sensor,
                    t,
                    lo: en.lo,
                    hi: en.hi,
                    window_ns,
                };
                if en.sensor == sensor {
                    // One sensor, one clock: no allowance needed.
                    if link.matches(0, 0) {
                        found.push(en.slot);
                    }
                } else if !defer {
                    if link.matches(0, cross) {
                        found.push(en.slot);
                    }
                } else if link.matches(0, widest) {
                    deferred.push(link);
                }
            }
        };
        for k in &links.demands {
            dns(self.offers.get(k), None);
        }
        for (k, window) in &links.offers {
            dns(self.demands.get(k), Some(window.as_nanos() as i64));
        }
        for (other, delta) in samples {
            self.clocks.observe(sensor, other, delta);
        }
        for s in &mut found {
            *s = self.find(*s);
        }
        found.sort_unstable();
        found.dedup();
        if hot {
            self.stats.cut_links += 1;
        }
        (found, hot, deferred)
    }

    /// Decides the cross-sensor DNS links whose clock estimate is final (all of them at the end of input),
    /// folding the stories that belong together.
    fn decide_deferred(&mut self, everything: bool) {
        let slack = (self.cfg.gap + self.cfg.allowed_lateness).as_nanos() as i64;
        let tol = self.cfg.dns_cross_sensor_tolerance.as_nanos() as i64;
        let due = self.clocks.deferred.due(self.watermark, slack, everything);
        if !due.is_empty() {
            // Links decided: stories they held may be forgotten now.
            self.evicting.append(&mut self.waiting_for_links);
        }
        // A connection that could follow several lookups (a busy client resolving the same name again and
        // again) joins the nearest one before it, not all of them: gluing them would join sessions.
        type Rank = (i64, Timestamp, u32, usize);
        // Hashed, not ordered: the winners are decided in the order of `due` below. A replay's end decides
        // ~180k links at once.
        let mut nearest: Map<(Slot, Timestamp), Rank> = Map::default();
        nearest.reserve(due.len());
        for (i, (link, offset)) in due.iter().enumerate() {
            let off = offset.unwrap_or(0);
            if !link.matches(off, tol) {
                continue;
            }
            let (conn, t) = link.connection();
            // Ties go to the earlier answer (slots are not compared: they number stories in arrival order).
            let (answer_t, answer_sensor) = match link.window_ns {
                None => (link.lo, link.sensor_b),
                Some(_) => (link.t, link.sensor_a),
            };
            let rank = (link.delay_ns(off).abs(), answer_t, answer_sensor, i);
            let e = nearest.entry((self.find(conn), t)).or_insert(rank);
            if rank < *e {
                *e = rank;
            }
        }
        let mut winners: Vec<usize> = nearest.into_values().map(|(_, _, _, i)| i).collect();
        winners.sort_unstable();
        for i in winners {
            let link = &due[i].0;
            let (x, y) = (self.find(link.a), self.find(link.b));
            if x == y || !self.stories.contains_key(&x) || !self.stories.contains_key(&y) {
                continue;
            }
            // The older story survives, as when an event links two.
            let (keep, other) = (x.min(y), x.max(y));
            let o = &self.stories[&other];
            let (n, first, last) = (o.events.len(), o.first, o.last);
            let k = &self.stories[&keep];
            let fits = k.events.len() + n < self.cfg.max_story_events
                && last.max(k.last).nanos_since(first.min(k.first))
                    <= self.cfg.max_story_span.as_nanos() as i64;
            if fits {
                self.merge(keep, other);
            } else {
                self.stats.cut_links += 1;
                self.note_cut(keep, "max_events_or_span");
                self.note_cut(other, "max_events_or_span");
            }
        }
    }

    /// Folds the candidate stories into the oldest that the guards allow and returns it, or opens a new
    /// story. Guards: a story never grows past `max_story_events` or `max_story_span`.
    fn join(&mut self, candidates: Slots, t: Timestamp, exact: &[Key]) -> Slot {
        let max_events = self.cfg.max_story_events;
        let max_span = self.cfg.max_story_span;
        let fits = |s: &StoryState, extra_events: usize, first: Timestamp, last: Timestamp| {
            s.events.len() + extra_events < max_events
                && last.max(s.last).nanos_since(first.min(s.first)) <= max_span.as_nanos() as i64
        };
        let mut keep: Option<Slot> = None;
        for c in candidates {
            let s = &self.stories[&c];
            match keep {
                None => {
                    if fits(s, 0, t, t) {
                        keep = Some(c);
                    } else {
                        self.stats.cut_links += 1;
                        let why = if s.events.len() + 1 >= max_events {
                            "max_events"
                        } else {
                            "max_span"
                        };
                        self.note_cut(c, why);
                    }
                }
                Some(k) => {
                    let (n, first, last) = (s.events.len(), s.first, s.last);
                    if fits(&self.stories[&k], n, first.min(t), last.max(t)) {
                        self.merge(k, c);
                    } else {
                        self.stats.cut_links += 1;
                        self.note_cut(k, "max_events_or_span");
                        self.note_cut(c, "max_events_or_span");
                    }
                }
            }
        }
        if let Some(k) = keep {
            return k;
        }
        let too_late = t.saturating_add(self.cfg.gap + self.cfg.allowed_lateness) < self.watermark;
        let slot = self.new_story(t);
        if too_late {
            self.stats.too_late += 1;
            let related: Vec<StoryId> = exact
                .iter()
                .filter_map(|k| self.gone.get(k).map(|(id, _)| *id))
                .collect();
            if let Some(s) = self.stories.get_mut(&slot) {
                for id in related {
                    push_unique(&mut s.related, id);
                }
            }
        }
        slot
    }

    fn note_cut(&mut self, slot: Slot, why: &str) {
        self.changed.story(slot);
        if let Some(s) = self.stories.get_mut(&slot) {
            if s.cuts.len() < 8 {
                push_unique(&mut s.cuts, Str::from(why));
            }
        }
    }

    fn new_story(&mut self, t: Timestamp) -> Slot {
        let slot = self.next_slot;
        self.next_slot += 1;
        self.changed.story(slot);
        self.stories.insert(
            slot,
            Box::new(StoryState {
                id: StoryId(0),
                version: 0,
                first: t,
                last: t,
                // Sized for most stories (half have 5 to 9 events, each adding a key or two): grown
                // from empty, the lists were reallocated and copied once or twice per story.
                events: Vec::with_capacity(STORY_EVENTS_RESERVED),
                sensors: Vec::new(),
                acc: FusedAcc::default(),
                open: true,
                dirty: true,
                max_bucket: i64::MIN,
                keys: Vec::with_capacity(STORY_KEYS_RESERVED),
                absorbed: Vec::new(),
                cuts: Vec::new(),
                related: Vec::new(),
                corrected: false,
                shown: (t, t),
                queued_close: Some(close_at(&self.cfg, t)),
            }),
        );
        self.closing.insert((close_at(&self.cfg, t), slot));
        self.open_count += 1;
        slot
    }

    /// Takes a closed story out of the evicting schedule before its times change (an open story's closing
    /// entry is moved lazily, [`Correlator::schedule_open`]).
    fn unschedule(&mut self, slot: Slot) {
        let s = &self.stories[&slot];
        if !s.open {
            off_evicting(
                &self.cfg,
                s,
                slot,
                &mut self.evicting,
                &mut self.waiting_for_links,
            );
        }
    }

    /// [`keep_open`] for the story in `slot`.
    fn schedule_open(&mut self, slot: Slot) {
        let s = self.stories.get_mut(&slot).expect("slot exists");
        keep_open(&self.cfg, s, slot, &mut self.closing, &mut self.open_count);
    }

    /// Open stories by (closing time, slot): the order they close in.
    fn open_schedule(&self) -> Vec<(Timestamp, Slot)> {
        let mut open: Vec<(Timestamp, Slot)> = self
            .stories
            .iter()
            .filter(|(_, s)| s.open)
            .map(|(slot, s)| (close_key(&self.cfg, s), slot))
            .collect();
        open.sort_unstable();
        open
    }

    /// Rebuilds what is not state: the closing schedule (without stale entries) and the open count.
    fn rebuild_schedule(&mut self) {
        let open = self.open_schedule();
        self.open_count = open.len();
        self.closing = open.iter().copied().collect();
        for (at, slot) in open {
            if let Some(s) = self.stories.get_mut(&slot) {
                s.queued_close = Some(at);
            }
        }
    }

    fn add_to(&mut self, slot: Slot, e: &Event, key: EventKey, t: Timestamp, bucket: i64) {
        self.changed.story(slot);
        // One lookup of the story for all of it (the scheduling steps are written on split borrows).
        let cfg = &self.cfg;
        let s = self.stories.get_mut(&slot).expect("slot exists");
        if !s.open {
            off_evicting(
                cfg,
                s,
                slot,
                &mut self.evicting,
                &mut self.waiting_for_links,
            );
            self.stats.reopened += 1;
        }
        s.first = s.first.min(t);
        s.last = s.last.max(t);
        s.events.push((key, e.event.id.clone()));
        push_unique(&mut s.sensors, e.observer.name.clone());
        s.acc.add_event(e, key, t);
        s.dirty = true;
        s.max_bucket = s.max_bucket.max(bucket);
        self.held_keys.insert(key);
        keep_open(cfg, s, slot, &mut self.closing, &mut self.open_count);
    }

    /// Records the event's keys under its story, widening the story's existing entry for a key when it
    /// has one.
    fn register(&mut self, slot: Slot, links: &Links, t: Timestamp, sensor: u32) {
        let mut added: SmallVec<[(Index, Key); 4]> = SmallVec::new();
        let items = links
            .exact
            .iter()
            .map(|k| (Index::Exact, *k, t, t))
            .chain(links.demands.iter().map(|k| (Index::Demand, *k, t, t)))
            .chain(
                links
                    .offers
                    .iter()
                    .map(|(k, w)| (Index::Offer, *k, t, t.saturating_add(*w))),
            );
        // `slot` is a root, so an entry is this story's exactly when its slot is `slot` or one folded into
        // it. A story has folded none or a few: asking its own list spares a `parent` lookup per entry of
        // the same sensor. Hot keys' lists run to ~1,500 entries: a 1M-event replay scanned ~20M entries
        // here, and ~9.5M of them cost such a lookup.
        const ABSORBED_SCAN_UP_TO: usize = 8;
        // Looked up once: read during the search, its key list extended after.
        let story = self.stories.get_mut(&slot);
        let (absorbed, own_keys): (&[Slot], &[(Index, Key)]) = match &story {
            Some(s) => (&s.absorbed, &s.keys),
            None => (&[], &[]),
        };
        // The keys this story (with those folded into it) has entries under. A long list is searched only
        // for a key among them: a hot key's list gains an entry with every new story that reports it, so
        // searching it mostly found none, at a cost growing with the data held (`bench correlate`, 1M
        // events: 4.77 / 4.84 → 4.46 / 4.60 s, benchmarks.md). Short lists are searched at once: asking
        // the story first cost more than it spared when done for every key (twelfth, fourteenth sittings).
        const SEARCH_UNASKED_UP_TO: usize = 32;
        for (index, k, lo, hi) in items {
            let parent = &self.parent;
            let folded_here = |mut s: Slot| {
                if absorbed.len() <= ABSORBED_SCAN_UP_TO {
                    return absorbed.contains(&s);
                }
                while let Some(&p) = parent.get(&s) {
                    s = p;
                }
                s == slot
            };
            let map = match index {
                Index::Exact => &mut self.exact,
                Index::Offer => &mut self.offers,
                Index::Demand => &mut self.demands,
            };
            self.changed.index(index, k);
            let list = map.entry(k).or_default();
            let may_hold = list.len() <= SEARCH_UNASKED_UP_TO
                || own_keys.contains(&(index, k))
                || added.contains(&(index, k));
            let held = if may_hold && absorbed.is_empty() {
                // Only `slot` itself can hold an entry here, and it holds at most one per sensor (an
                // entry is widened, never added twice). A story is young next to a long list, whose
                // entries are in the order stories first reported the key: its entry is near the end,
                // where [`warm_entries`] requested the list, not at the front.
                list.iter_mut()
                    .rev()
                    .find(|en| en.sensor == sensor && en.slot == slot)
            } else if may_hold {
                list.iter_mut()
                    .find(|en| en.sensor == sensor && (en.slot == slot || folded_here(en.slot)))
            } else {
                None
            };
            match held {
                Some(en) => {
                    en.lo = en.lo.min(lo);
                    en.hi = en.hi.max(hi);
                }
                None => {
                    list.push(Entry {
                        slot,
                        lo,
                        hi,
                        sensor,
                    });
                    added.push((index, k));
                }
            }
        }
        if let Some(s) = story {
            s.keys.extend(added);
        }
    }

    /// Moves `from`'s events into `into`. If `from` was published, its last version says where they went.
    fn merge(&mut self, into: Slot, from: Slot) {
        self.changed.story(into);
        self.changed.story(from);
        self.unschedule(from);
        let Some(f) = self.stories.remove(&from) else {
            return;
        };
        // Its closing entry, if it had one, is stale now.
        self.open_count -= usize::from(f.open);
        self.stats.merged += 1;
        self.parent.insert(from, into);
        let folded = (f.version > 0).then_some((f.id, f.version, f.corrected, f.first, f.last));
        self.unschedule(into);
        let s = self.stories.get_mut(&into).expect("merge target exists");
        if !s.open {
            self.stats.reopened += 1;
        }
        s.first = s.first.min(f.first);
        s.last = s.last.max(f.last);
        s.max_bucket = s.max_bucket.max(f.max_bucket);
        for sensor in f.sensors {
            push_unique(&mut s.sensors, sensor);
        }
        s.acc.merge(&f.acc);
        s.dirty = true;
        s.events.extend(f.events);
        s.keys.extend(f.keys);
        s.absorbed.push(from);
        s.absorbed.extend(f.absorbed);
        for c in f.cuts {
            push_unique(&mut s.cuts, c);
        }
        self.schedule_open(into);
        let Some((id, version, corrected, first, last)) = folded else {
            return;
        };
        let s = self.stories.get_mut(&into).expect("merge target exists");
        if s.id == StoryId(0) {
            // A story never published nor named goes on under the folded story's id: receivers see that
            // story grow. Deriving a new id could give it the folded story's own (its smallest member
            // may be the folded story's), and the last version would then point at itself. The next
            // version counts more events, and the correction if either had one, so it is higher.
            s.id = id;
            s.version = version;
            s.corrected |= corrected;
            return;
        }
        // The published story's last version names where its events went.
        self.stats.versions_published += 1;
        self.pending.push(Story {
            story_id: id,
            version: MERGED_VERSION,
            tenant: self.tenant.clone(),
            first_seen: first,
            last_seen: last,
            merged_into: Some(s.id),
            ..Story::default()
        });
    }

    /// Moves event time forward to `watermark` and returns the story versions that became final: stories
    /// whose last event is more than `gap` behind it. `dedupe_floor` is the oldest insert-time bucket that
    /// may still be re-scanned; stories with members in newer buckets are kept for duplicate detection.
    pub fn advance(&mut self, watermark: Timestamp, dedupe_floor: i64, out: &mut Vec<Story>) {
        self.watermark = self.watermark.max(watermark);
        self.decide_deferred(false);
        let start = out.len();
        out.append(&mut self.pending);
        let mut closed = Vec::new();
        while let Some(&(at, slot)) = self.closing.first() {
            if at >= self.watermark {
                break;
            }
            self.warm_queue(&self.closing);
            self.closing.pop_first();
            let Some(s) = self.stories.get(&slot) else {
                continue;
            };
            if !s.open || s.queued_close != Some(at) {
                continue;
            }
            let due = close_key(&self.cfg, s);
            if due > at {
                // Events moved its closing time since it was queued: it waits until then. Stories are
                // still closed in (closing time, slot) order, as with every entry kept exact.
                self.stories.get_mut(&slot).expect("checked").queued_close = Some(due);
                self.closing.insert((due, slot));
                continue;
            }
            self.close(slot, &mut closed);
        }
        self.build_versions(closed, out);
        let (mut evicted, mut corrections) = (Vec::new(), Vec::new());
        while let Some(&(at, slot)) = self.evicting.first() {
            if at >= self.watermark || self.stories[&slot].max_bucket > dedupe_floor {
                break;
            }
            self.warm_queue(&self.evicting);
            self.evicting.pop_first();
            // A story a pending link names stays until the link is decided, whatever the arrival order.
            let s = &self.stories[&slot];
            let members = std::iter::once(slot).chain(s.absorbed.iter().copied());
            if self.clocks.deferred.holds(members) {
                self.waiting_for_links.insert((at, slot));
                continue;
            }
            self.publish_final(slot, &mut corrections);
            evicted.push(slot);
        }
        // Their versions are built from their state, so they go after.
        self.build_versions(corrections, out);
        for i in 0..evicted.len() {
            self.warm_eviction(&evicted[i..]);
            self.evict(evicted[i]);
        }
        if self.cfg.correct_story_times {
            // No held story is older than this (stories are evicted after the lateness and span at most
            // `max_story_span`); the extra hour covers stories held longer for duplicate detection.
            let span = self.cfg.gap + self.cfg.allowed_lateness + self.cfg.max_story_span;
            let oldest = self
                .watermark
                .saturating_sub(span)
                .saturating_sub(RELATED_MEMORY);
            self.clocks
                .deferred
                .forget_story_offsets_before(epoch_of(oldest).saturating_sub(4));
        }
        while let Some(&(at, k)) = self.gone_order.first() {
            if at >= self.watermark {
                break;
            }
            self.gone_order.pop_first();
            self.gone.remove(&k);
            self.changed.gone(k);
        }
        crate::order::sort_by_last_seen(&mut out[start..]);
    }

    /// Closes every open story (end of input).
    pub fn flush(&mut self, out: &mut Vec<Story>) {
        self.flush_with(out, false);
    }

    /// [`Correlator::flush`] at the end of a run whose state nobody keeps (a replay that writes no
    /// checkpoint): the stories are moved into their last versions instead of copied, and the correlator
    /// is left holding no story. Copying was about half of the time a 1M-event replay's final flush spent
    /// building its ~144k versions, on the path between its last input and its exit (benchmarks.md,
    /// eleventh sitting). Events ingested after it start stories of their own, as after eviction.
    pub fn flush_and_forget(&mut self, out: &mut Vec<Story>) {
        self.flush_with(out, true);
    }

    fn flush_with(&mut self, out: &mut Vec<Story>, forget: bool) {
        self.decide_deferred(true);
        let start = out.len();
        let open = self.open_schedule();
        self.closing.clear();
        let mut batch = Vec::with_capacity(open.len());
        for i in 0..open.len() {
            self.warm_ahead(&open[i..], |(_, slot)| *slot);
            self.close(open[i].1, &mut batch);
        }
        // Every estimate is final now: stories held back until then are published, and those published
        // before theirs was are corrected.
        self.evicting.append(&mut self.waiting_for_links);
        let closed: Vec<Slot> = self.evicting.iter().map(|(_, slot)| *slot).collect();
        // Presenting a story (its provenance, its final times) reads only its own state, and is most of
        // publishing it: hundreds of thousands at a replay's end, so on two threads.
        let mut finals = Vec::new();
        on_two_threads(
            closed,
            &mut finals,
            |slot, part| self.warm_story(*slot, part),
            |slot| (slot, self.final_version(slot)),
        );
        let mut finals = finals.into_iter();
        loop {
            self.warm_ahead(finals.as_slice(), |(slot, _)| *slot);
            let Some((slot, version)) = finals.next() else {
                break;
            };
            if let Some((arrival, shown)) = version {
                batch.push(self.record_version(slot, shown, arrival));
            }
        }
        // Reserved once, exactly: a catch-up's end flushes hundreds of thousands, and growing `out` by
        // doubling copied what it held into fresh pages each time.
        out.reserve(self.pending.len() + batch.len());
        out.append(&mut self.pending);
        if forget {
            self.move_versions(batch, out);
        } else {
            self.build_versions(batch, out);
        }
        crate::order::sort_by_last_seen(&mut out[start..]);
    }

    /// Builds the versions in `batch` from their stories' states, moved out, and forgets every story:
    /// [`Correlator::flush_and_forget`]. A flush lists a story once (it is presented with its final
    /// times when it closes); were one listed twice, only its newest version is built, the one the outbox
    /// keeps.
    fn move_versions(&mut self, batch: Vec<Version>, out: &mut Vec<Story>) {
        let mut owned = Vec::with_capacity(batch.len());
        for v in batch.into_iter().rev() {
            if let Some(s) = self.stories.remove(&v.slot) {
                owned.push((v, s));
            }
        }
        owned.reverse();
        let tenant = &self.tenant;
        on_two_threads(
            owned,
            out,
            |(_, s), part| s.warm(part),
            |(v, s)| {
                let s = *s;
                let members = s.events.into_iter().map(|(_, id)| id).collect();
                version_story(
                    tenant,
                    v,
                    members,
                    s.sensors,
                    s.cuts,
                    &s.related,
                    s.acc.fused,
                )
            },
        );
        self.forget_all();
    }

    /// Drops every story and everything that names one; the clocks, the watermark and the counters stay.
    fn forget_all(&mut self) {
        self.stories.clear();
        self.parent.clear();
        self.exact.clear();
        self.offers.clear();
        self.demands.clear();
        self.held_keys.clear();
        self.closing.clear();
        self.evicting.clear();
        self.waiting_for_links.clear();
        self.open_count = 0;
    }

    fn close(&mut self, slot: Slot, batch: &mut Vec<Version>) {
        self.changed.story(slot);
        let s = self.stories.get_mut(&slot).expect("closing slot exists");
        s.open = false;
        s.queued_close = None;
        // Publishing does not move the story's times.
        let (dirty, first, last) = (s.dirty, s.first, s.last);
        self.open_count -= 1;
        if dirty && !self.held_back(first) {
            batch.push(self.publish(slot));
        }
        let at = evict_at(&self.cfg, first, last);
        self.evicting.insert((at, slot));
    }

    /// Whether a closing story that starts at `first` waits for its final times
    /// ([`Correlator::publish_only_final`]).
    fn held_back(&self, first: Timestamp) -> bool {
        self.only_final
            && self.cfg.correct_story_times
            && !self.clocks.deferred.final_for(epoch_of(first))
    }

    /// Once a closed story's times are final: publishes it if it was held back until then, or again if
    /// the final clock estimate corrects the times its last version showed.
    fn publish_final(&mut self, slot: Slot, batch: &mut Vec<Version>) {
        if let Some((arrival, shown)) = self.final_version(slot) {
            batch.push(self.record_version(slot, shown, arrival));
        }
    }

    /// What [`Correlator::publish_final`] publishes for a slot, if anything: whether it counts as an
    /// arrival, and the story as shown.
    fn final_version(&self, slot: Slot) -> Option<(bool, Presented)> {
        let s = &self.stories[&slot];
        if s.open {
            return None;
        }
        if s.dirty {
            return Some((true, self.present(s)));
        }
        if s.version == 0 || self.final_times(s).is_none_or(|times| times == s.shown) {
            return None;
        }
        // Not an arrival: the publish-latency metric is about new events, not corrections.
        Some((false, self.present(s)))
    }

    /// Publishes a new version of a story that events changed (an arrival).
    fn publish(&mut self, slot: Slot) -> Version {
        let p = self.present(&self.stories[&slot]);
        self.record_version(slot, p, true)
    }

    /// Records a published version in the story's state (id, version, times shown) and returns what
    /// [`Correlator::build_versions`] needs to build it. Not an `arrival`: a correction, which the
    /// checkpoint must record as a change of the story (events record theirs as they come).
    fn record_version(&mut self, slot: Slot, p: Presented, arrival: bool) -> Version {
        if !arrival {
            self.changed.story(slot);
        }
        let s = self.stories.get_mut(&slot).expect("published slot exists");
        s.assign_id(&self.tenant);
        s.dirty = false;
        if p.is_final && (p.first, p.last) != (s.first, s.last) {
            s.corrected = true;
        }
        s.version = s.events.len() as u32 + u32::from(s.corrected);
        s.shown = (p.first, p.last);
        self.stats.versions_published += 1;
        if arrival && s.max_bucket != i64::MIN {
            self.arrivals.push((s.id, s.version, s.max_bucket));
        }
        Version {
            slot,
            id: s.id,
            version: s.version,
            shown: p,
        }
    }

    /// Builds the versions [`Correlator::record_version`] recorded, in order, into `out`. Building copies each
    /// story's members, names and fused fields (about a third of a final flush) and reads the state only,
    /// so a large batch (a catch-up's, or the final flush's hundreds of thousands) is built on two threads.
    fn build_versions(&self, batch: Vec<Version>, out: &mut Vec<Story>) {
        on_two_threads(
            batch,
            out,
            |v, part| self.warm_story(v.slot, part),
            |v| self.build(v),
        );
    }

    fn build(&self, v: Version) -> Story {
        let s = &self.stories[&v.slot];
        let members = s.events.iter().map(|(_, id)| id.clone()).collect();
        version_story(
            &self.tenant,
            v,
            members,
            s.sensors.clone(),
            s.cuts.clone(),
            &s.related,
            s.acc.fused.clone(),
        )
    }

    /// The story's times and provenance as published. Until the final clock estimate for the story's
    /// epoch is known, the sensors' own times and the running estimate (order-dependent, for display
    /// only); then each sensor's times are moved to the reference sensor's clock by the final estimate.
    fn present(&self, s: &StoryState) -> Presented {
        let mut provenance = s.acc.sorted_views();
        let Some(reference) = provenance.first().map(|v| tag_of(&v.sensor)) else {
            return Presented {
                first: s.first,
                last: s.last,
                provenance,
                is_final: false,
            };
        };
        let Some((first, last)) = self.final_times(s) else {
            for v in &mut provenance {
                v.clock_offset_ms = self
                    .clocks
                    .offset_ns(tag_of(&v.sensor), reference)
                    .map(|ns| ns / 1_000_000);
            }
            return Presented {
                first: s.first,
                last: s.last,
                provenance,
                is_final: false,
            };
        };
        let (d, e) = (&self.clocks.deferred, epoch_of(s.first));
        for v in &mut provenance {
            v.clock_offset_ms = d
                .story_offset(tag_of(&v.sensor), reference, e)
                .map(|ns| ns / 1_000_000);
        }
        Presented {
            first,
            last,
            provenance,
            is_final: true,
        }
    }

    /// The story's times on its reference sensor's clock (the first sensor of its provenance) once the
    /// clock estimate for its epoch is final, `None` before. Computed without building the provenance:
    /// every closed story is checked for a correction at the end of input.
    fn final_times(&self, s: &StoryState) -> Option<(Timestamp, Timestamp)> {
        let (d, e) = (&self.clocks.deferred, epoch_of(s.first));
        if !(self.cfg.correct_story_times && d.final_for(e)) {
            return None;
        }
        let views = &s.acc.views;
        let reference = tag_of(views.iter().map(|v| &v.sensor).min()?);
        // A sensor left out of the provenance (past its size limit) has no times of its own to correct.
        if s.sensors.len() > views.len() {
            return Some((s.first, s.last));
        }
        let (mut lo, mut hi) = (Timestamp(i64::MAX), Timestamp(i64::MIN));
        for v in views {
            let off = d.story_offset(tag_of(&v.sensor), reference, e).unwrap_or(0);
            lo = lo.min(Timestamp(v.first_seen.0.saturating_sub(off)));
            hi = hi.max(Timestamp(v.last_seen.0.saturating_sub(off)));
        }
        Some((lo, hi))
    }

    /// Before evicting `rest[0]`: requests the states of the stories evicted next ([`request_ahead`]), and
    /// looks up the entries the next one will remove. Eviction touches each story's state and every
    /// index entry and event it named, long out of cache since.
    fn warm_eviction(&self, rest: &[Slot]) {
        self.warm_ahead(rest, |slot| *slot);
        let Some(s) = rest.get(1).and_then(|slot| self.stories.get(slot)) else {
            return;
        };
        for (k, _) in &s.events {
            std::hint::black_box(self.held_keys.contains(k));
        }
        for (index, k) in &s.keys {
            std::hint::black_box(self.index(*index).get(k).map(|l| l.len()));
        }
    }

    fn evict(&mut self, slot: Slot) {
        self.changed.story(slot);
        let Some(mut s) = self.stories.remove(&slot) else {
            return;
        };
        s.assign_id(&self.tenant);
        for (k, _) in &s.events {
            self.held_keys.remove(k);
        }
        let mut members = s.absorbed.clone();
        members.push(slot);
        for (index, k) in &s.keys {
            let map = match index {
                Index::Exact => &mut self.exact,
                Index::Offer => &mut self.offers,
                Index::Demand => &mut self.demands,
            };
            self.changed.index(*index, *k);
            if let Some(list) = map.get_mut(k) {
                list.retain(|en| !members.contains(&en.slot));
                if list.is_empty() {
                    map.remove(k);
                }
            }
        }
        for m in &s.absorbed {
            self.parent.remove(m);
        }
        let forget_at = s.last.saturating_add(RELATED_MEMORY);
        for (index, k) in &s.keys {
            if *index == Index::Exact {
                self.changed.gone(*k);
                if let Some((_, old)) = self.gone.insert(*k, (s.id, forget_at)) {
                    self.gone_order.remove(&(old, *k));
                }
                self.gone_order.insert((forget_at, *k));
            }
        }
    }

    pub fn snapshot(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("correlator state serializes")
    }

    pub fn restore(bytes: &[u8]) -> Result<Self, postcard::Error> {
        let mut c: Correlator = postcard::from_bytes(bytes)?;
        c.rebuild_schedule();
        Ok(c)
    }

    /// Stops recording what changed between checkpoints, for a run whose state is never checkpointed (it
    /// cannot be resumed): the record grows with every story touched, and keeping it up was a tenth of a
    /// replay's correlation time. A later [`Correlator::checkpoint`] must then be `full`.
    pub fn stop_recording_changes(&mut self) {
        self.changed = Changes {
            off: true,
            ..Changes::default()
        };
    }

    /// The state as a small header plus keyed parts — one per story, per index key and per remembered key
    /// of a forgotten story — so a checkpoint writes only what changed. With `full` every part is listed
    /// and older ones are to be dropped; otherwise only the parts changed since the previous call, with
    /// `None` for parts that are gone. Whoever stores them must apply every delta in order (or fall back
    /// to `full`) for [`Correlator::restore_parts`] to rebuild this exact state.
    pub fn checkpoint(&mut self, full: bool) -> StateDelta {
        let changed = self.changed.take();
        // Sized by the previous checkpoint of the same kind: untouched capacity costs no pages, and
        // growing a catch-up's few hundred MB by doubling would copy it again and again.
        let mut parts = Parts::with_capacity(if full {
            self.sizes.full
        } else {
            self.sizes.delta
        });
        if full {
            for (slot, s) in self.stories.iter() {
                put(&mut parts, &story_part(slot), Some(s));
            }
            for index in [Index::Exact, Index::Offer, Index::Demand] {
                for (k, list) in self.index(index) {
                    put(&mut parts, &index_part(index, *k), Some(list));
                }
            }
            for (k, v) in &self.gone {
                put(&mut parts, &gone_part(*k), Some(v));
            }
        } else {
            for slot in changed.stories {
                put(&mut parts, &story_part(slot), self.stories.get(&slot));
            }
            for (index, k) in changed.index {
                put(&mut parts, &index_part(index, k), self.index(index).get(&k));
            }
            for k in changed.gone {
                put(&mut parts, &gone_part(k), self.gone.get(&k));
            }
        }
        let size = parts.as_bytes().len() + parts.as_bytes().len() / 8;
        if full {
            self.sizes.full = size;
        } else {
            self.sizes.delta = size;
        }
        let mut pending = Vec::new();
        for story in &self.pending {
            serde_json::to_writer(&mut pending, story).expect("a story serializes");
            pending.push(b'\n');
        }
        let header = Header {
            tenant: self.tenant.clone(),
            cfg: self.cfg.clone(),
            next_slot: self.next_slot,
            watermark: self.watermark,
            max_event_time: self.max_event_time,
            pending,
            clocks: self.clocks.clone(),
            stats: self.stats.clone(),
        };
        StateDelta {
            header: postcard::to_stdvec(&header).expect("correlator header serializes"),
            full,
            parts,
        }
    }

    /// Rebuilds the state from a header and every part stored (the result of applying all deltas since
    /// the last full checkpoint). What the parts do not hold is derived: events → story, folded slots,
    /// the closing and eviction schedules.
    pub fn restore_parts<'a>(
        header: &[u8],
        parts: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Self, String> {
        let h: Header = postcard::from_bytes(header).map_err(|e| format!("header: {e}"))?;
        let mut c = Correlator::new(&h.tenant, h.cfg);
        c.next_slot = h.next_slot;
        c.watermark = h.watermark;
        c.max_event_time = h.max_event_time;
        c.clocks = h.clocks;
        c.stats = h.stats;
        for line in h.pending.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            c.pending
                .push(serde_json::from_slice(line).map_err(|e| format!("pending story: {e}"))?);
        }
        let bad = |what: &str, e: &dyn std::fmt::Display| format!("{what} part: {e}");
        for (key, value) in parts {
            match (key.first(), key.len()) {
                (Some(b's'), 9) => {
                    let slot = u64::from_be_bytes(key[1..9].try_into().expect("9-byte key"));
                    let s: StoryState =
                        postcard::from_bytes(value).map_err(|e| bad("story", &e))?;
                    for (k, _) in &s.events {
                        c.held_keys.insert(*k);
                    }
                    for a in &s.absorbed {
                        // Flattened: `find` gives the same root as the chain it replaces.
                        c.parent.insert(*a, slot);
                    }
                    if !s.open {
                        c.evicting.insert((evict_at(&c.cfg, s.first, s.last), slot));
                    }
                    c.stories.insert(slot, Box::new(s));
                }
                (Some(b'x'), 10) => {
                    let index = match key[1] {
                        0 => Index::Exact,
                        1 => Index::Offer,
                        2 => Index::Demand,
                        other => return Err(format!("unknown index {other}")),
                    };
                    let k = u64::from_be_bytes(key[2..10].try_into().expect("10-byte key"));
                    let list: Entries =
                        postcard::from_bytes(value).map_err(|e| bad("index", &e))?;
                    c.index_mut(index).insert(k, list);
                }
                (Some(b'g'), 9) => {
                    let k = u64::from_be_bytes(key[1..9].try_into().expect("9-byte key"));
                    let (id, at): (StoryId, Timestamp) =
                        postcard::from_bytes(value).map_err(|e| bad("forgotten story", &e))?;
                    c.gone.insert(k, (id, at));
                    c.gone_order.insert((at, k));
                }
                _ => return Err(format!("unknown part key {key:02x?}")),
            }
        }
        c.rebuild_schedule();
        Ok(c)
    }

    fn index(&self, index: Index) -> &Map<Key, Entries> {
        match index {
            Index::Exact => &self.exact,
            Index::Offer => &self.offers,
            Index::Demand => &self.demands,
        }
    }

    fn index_mut(&mut self, index: Index) -> &mut Map<Key, Entries> {
        match index {
            Index::Exact => &mut self.exact,
            Index::Offer => &mut self.offers,
            Index::Demand => &mut self.demands,
        }
    }

    /// Rough bytes held, for metrics: ids, keys and fused summaries (no payloads are ever held).
    pub fn state_bytes(&self) -> usize {
        let per_event =
            std::mem::size_of::<(EventKey, EventId)>() + std::mem::size_of::<EventKey>() + 16;
        let per_story = std::mem::size_of::<StoryState>() + 256;
        let per_entry = std::mem::size_of::<Entry>() + 24;
        let entries: usize = [&self.exact, &self.offers, &self.demands]
            .iter()
            .map(|m| m.values().map(|l| l.len()).sum::<usize>())
            .sum();
        self.held_keys.len() * per_event + self.stories.len() * per_story + entries * per_entry
    }
}

/// A checkpoint of the correlator ([`Correlator::checkpoint`]).
#[derive(Clone, Debug, Default)]
pub struct StateDelta {
    /// Small, rewritten every time: counters, clocks, the watermark, merge notices not yet handed out.
    pub header: Vec<u8>,
    /// `parts` lists every part: drop the stored ones first.
    pub full: bool,
    /// Parts stored, or removed when gone.
    pub parts: Parts,
}

#[derive(Serialize, Deserialize)]
struct Header {
    tenant: Str,
    cfg: Config,
    next_slot: Slot,
    watermark: Timestamp,
    max_event_time: Timestamp,
    /// NDJSON: a story's flattened fields need a self-describing format.
    pending: Vec<u8>,
    clocks: Clocks,
    stats: CorrelatorStats,
}

fn story_part(slot: Slot) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(b's');
    k.extend_from_slice(&slot.to_be_bytes());
    k
}

fn index_part(index: Index, key: Key) -> Vec<u8> {
    let mut k = Vec::with_capacity(10);
    k.push(b'x');
    k.push(match index {
        Index::Exact => 0,
        Index::Offer => 1,
        Index::Demand => 2,
    });
    k.extend_from_slice(&key.to_be_bytes());
    k
}

fn gone_part(key: Key) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(b'g');
    k.extend_from_slice(&key.to_be_bytes());
    k
}

/// Serializes one checkpoint part straight into the checkpoint's buffer (`None`: the part is gone).
fn put<T: Serialize>(parts: &mut Parts, key: &[u8], value: Option<&T>) {
    match value {
        Some(v) => parts.put_postcard(key, v),
        None => parts.remove(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn generated(events: u64, seed: u64, rate: f64) -> Vec<(Event, EventKey)> {
        let gen = storyline_generate::GenConfig {
            events,
            seed,
            rate,
            large: 0.0,
            ..storyline_generate::GenConfig::default()
        };
        let limits = storyline_parse::Limits::default();
        storyline_generate::Generator::new(&gen)
            .map(|g| {
                let p = storyline_parse::parse_envelope(g.envelope.as_bytes(), &limits)
                    .expect("generated lines parse");
                let mut ev = p.event;
                ev.event.ingested = Some(g.arrival);
                let key = EventKey::new(&p.sensor, &ev.event.id);
                (ev, key)
            })
            .collect()
    }

    /// Everything that decides what the correlator does next, independent of hash-map order.
    fn canonical(c: &Correlator) -> String {
        let stories: BTreeMap<_, _> = c
            .stories
            .iter()
            .map(|(k, s)| (k, postcard::to_stdvec(s).unwrap()))
            .collect();
        let index: BTreeMap<_, _> = [Index::Exact, Index::Offer, Index::Demand]
            .into_iter()
            .flat_map(|i| {
                c.index(i)
                    .iter()
                    .map(move |(k, l)| ((i as u8, *k), postcard::to_stdvec(l).unwrap()))
            })
            .collect();
        let held_keys: BTreeSet<_> = c.held_keys.iter().collect();
        let roots: BTreeMap<_, _> = c.parent.keys().map(|s| (*s, c.find(*s))).collect();
        let gone: BTreeMap<_, _> = c.gone.iter().collect();
        format!(
            "{stories:?}\n{index:?}\n{held_keys:?}\n{roots:?}\n{:?}\n{:?}\n{gone:?}\n{:?}\n{:?} {:?} {} {:?}\n{:?}\n{:?}",
            c.open_schedule(),
            c.evicting.union(&c.waiting_for_links).collect::<BTreeSet<_>>(),
            c.gone_order,
            c.watermark,
            c.max_event_time,
            c.next_slot,
            c.stats,
            c.pending,
            c.clock_offsets(),
        )
    }

    fn apply(store: &mut BTreeMap<Vec<u8>, Vec<u8>>, header: &mut Vec<u8>, d: StateDelta) {
        if d.full {
            store.clear();
        }
        for (k, v) in d.parts.iter() {
            match v {
                Some(v) => store.insert(k.to_vec(), v.to_vec()),
                None => store.remove(k),
            };
        }
        *header = d.header;
    }

    /// Adds the `i`-th event, 100 to a bucket, advancing to the newest event time every seventh.
    fn feed(c: &mut Correlator, i: usize, e: &Event, key: EventKey, out: &mut Vec<Story>) {
        c.ingest(e, key, (i / 100) as i64);
        if i.is_multiple_of(7) {
            let wm = c.max_event_time();
            c.advance(wm, (i / 100) as i64 - 3, out);
        }
    }

    fn restored(store: &BTreeMap<Vec<u8>, Vec<u8>>, header: &[u8]) -> Correlator {
        Correlator::restore_parts(
            header,
            store.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
        )
        .expect("parts restore")
    }

    /// A restart from a full checkpoint plus the deltas after it resumes with the same state, and the run
    /// goes on to publish exactly what an uninterrupted run publishes.
    #[test]
    fn restore_from_base_and_deltas_matches_an_uninterrupted_run() {
        // Slow enough traffic that stories close, are evicted and their keys forgotten (an hour) in the run.
        let events = generated(8000, 3, 0.4);
        let cfg = Config {
            allowed_lateness: std::time::Duration::from_secs(120),
            ..Config::default()
        };
        let mut reference = Correlator::new("t", cfg.clone());
        let mut expected = Vec::new();
        let mut c = Correlator::new("t", cfg);
        let mut got = Vec::new();
        let (mut store, mut header) = (BTreeMap::new(), Vec::new());
        let mut restarts = 0;
        for (i, (e, key)) in events.iter().enumerate() {
            for (c, out) in [(&mut reference, &mut expected), (&mut c, &mut got)] {
                feed(c, i, e, *key, out);
            }
            if i % 250 == 249 {
                apply(&mut store, &mut header, c.checkpoint(i == 249));
                let r = restored(&store, &header);
                assert_eq!(canonical(&r), canonical(&c), "after event {i}");
                // Carry on from the restored state every other time: its deltas must continue the chain.
                if i % 500 == 499 {
                    c = r;
                    restarts += 1;
                }
            }
        }
        reference.flush(&mut expected);
        c.flush(&mut got);
        assert!(restarts >= 10 && reference.stats().merged > 0 && !store.is_empty());
        assert!(reference.stats().versions_published > 1000);
        assert!(
            store.keys().any(|k| k[0] == b'g'),
            "no forgotten story keys"
        );
        assert_eq!(got, expected);
    }

    /// A correlator that records no changes publishes what one that does publishes, lists nothing in a
    /// delta, and still writes its whole state in a full checkpoint.
    #[test]
    fn a_correlator_that_records_no_changes_publishes_the_same() {
        let events = generated(3000, 4, 0.4);
        let mut recording = Correlator::new("t", Config::default());
        let mut quiet = Correlator::new("t", Config::default());
        quiet.stop_recording_changes();
        let (mut expected, mut got) = (Vec::new(), Vec::new());
        for (i, (e, key)) in events.iter().enumerate() {
            for (c, out) in [(&mut recording, &mut expected), (&mut quiet, &mut got)] {
                feed(c, i, e, *key, out);
            }
        }
        assert!(recording.checkpoint(false).parts.len() > 100);
        assert_eq!(quiet.checkpoint(false).parts.len(), 0);
        let full = quiet.checkpoint(true);
        let (mut store, mut header) = (BTreeMap::new(), Vec::new());
        apply(&mut store, &mut header, full);
        assert_eq!(canonical(&restored(&store, &header)), canonical(&quiet));
        recording.flush(&mut expected);
        quiet.flush(&mut got);
        assert_eq!(got, expected);
    }

    /// At the end of a run that keeps no state, moving the stories into their versions publishes what
    /// flushing publishes, and leaves an engine that holds no story and still takes events.
    #[test]
    fn flush_and_forget_publishes_what_flush_publishes() {
        let events = generated(40_000, 8, 50.0);
        for only_final in [false, true] {
            let mut kept = Correlator::new("t", Config::default());
            let mut forgot = Correlator::new("t", Config::default());
            let (mut ran_kept, mut ran_forgot) = (Vec::new(), Vec::new());
            for (c, out) in [(&mut kept, &mut ran_kept), (&mut forgot, &mut ran_forgot)] {
                c.publish_only_final(only_final);
                for (i, (e, key)) in events.iter().enumerate() {
                    feed(c, i, e, *key, out);
                }
            }
            assert_eq!(ran_kept, ran_forgot);
            let (mut copied, mut moved) = (Vec::new(), Vec::new());
            kept.flush(&mut copied);
            forgot.flush_and_forget(&mut moved);
            // Large enough to be built on two threads.
            assert!(moved.len() > 4096 * 2, "{} versions", moved.len());
            assert_eq!(moved, copied);
            assert_eq!(
                (
                    forgot.stories.len(),
                    forgot.open_stories(),
                    forgot.versions_bound()
                ),
                (0, 0, 0)
            );
            let mut after = Vec::new();
            forgot.advance(forgot.max_event_time(), i64::MAX, &mut after);
            forgot.flush(&mut after);
            assert!(after.is_empty(), "{after:?}");
            let (e, key) = &events[0];
            forgot.ingest(e, *key, 0);
            forgot.flush(&mut after);
            assert_eq!(after.len(), 1);
        }
    }

    /// A story's key seen again from the same sensor widens the story's entry for it, also when that entry
    /// came with a story folded into it (directly or through another), instead of adding a second one.
    #[test]
    fn a_key_seen_again_widens_the_entry_of_a_folded_story() {
        let mut c = Correlator::new("t", Config::default());
        let t = |s: i64| Timestamp(1_700_000_000_000_000_000 + s * 1_000_000_000);
        let links = |k: Key| Links {
            exact: smallvec::smallvec![k],
            ..Links::default()
        };
        let (a, b, d) = (c.new_story(t(0)), c.new_story(t(0)), c.new_story(t(0)));
        c.register(b, &links(7), t(1), 3);
        c.register(d, &links(8), t(1), 3);
        c.merge(b, d);
        c.merge(a, b);
        for (k, at) in [(7, 5), (8, 6)] {
            c.register(a, &links(k), t(at), 3);
            let list = &c.exact[&k];
            assert_eq!(list.len(), 1, "key {k}: {list:?}");
            assert_eq!((list[0].lo, list[0].hi), (t(1), t(at)));
        }
        // Another sensor's report of the key is an entry of its own.
        c.register(a, &links(7), t(9), 4);
        assert_eq!(c.exact[&7].len(), 2);
    }

    /// A long (hot) list is searched only for stories that registered the key: the entry of a story that
    /// did, itself or through a story folded into it, is still widened, and a key given twice in one event
    /// gets one entry.
    #[test]
    fn a_long_list_widens_the_entries_of_stories_that_hold_the_key() {
        let mut c = Correlator::new("t", Config::default());
        let t = |s: i64| Timestamp(1_700_000_000_000_000_000 + s * 1_000_000_000);
        let demand = |k: Key, times: usize| Links {
            demands: (0..times).map(|_| k).collect(),
            ..Links::default()
        };
        let hot: Key = 7;
        let others: Vec<Slot> = (0..40).map(|_| c.new_story(t(0))).collect();
        for s in &others {
            c.register(*s, &demand(hot, 1), t(1), 3);
        }
        let (a, folded) = (c.new_story(t(0)), c.new_story(t(0)));
        c.register(folded, &demand(hot, 1), t(2), 3);
        c.merge(a, folded);
        assert_eq!(c.demands[&hot].len(), 41);
        c.register(a, &demand(hot, 1), t(5), 3);
        let list = &c.demands[&hot];
        assert_eq!(list.len(), 41, "the folded story's entry is widened");
        let entry = list.iter().find(|en| en.slot == folded).unwrap();
        assert_eq!((entry.lo, entry.hi), (t(2), t(5)));
        // A new story naming the key twice in one event: one entry, then widened by its next event.
        let fresh = c.new_story(t(0));
        c.register(fresh, &demand(hot, 2), t(6), 3);
        c.register(fresh, &demand(hot, 1), t(8), 3);
        let list = &c.demands[&hot];
        assert_eq!(list.len(), 42);
        let entry = list.iter().find(|en| en.slot == fresh).unwrap();
        assert_eq!((entry.lo, entry.hi), (t(6), t(8)));
    }

    /// A warmed pass maps every item in order, and asks for each item's state and then its lists before
    /// reaching it (all but the first few, which nothing precedes).
    #[test]
    fn a_warmed_pass_maps_in_order_and_warms_the_items_ahead() {
        use storyline_model::prefetch::{BEHIND_AHEAD, OWN_AHEAD};
        let warmed = std::sync::Mutex::new(Vec::new());
        let mut out = Vec::new();
        map_warmed(
            (0..10).collect(),
            &mut out,
            &|i: &i32, part| warmed.lock().unwrap().push((*i, part == Stage::Own)),
            &|i| i * 10,
        );
        assert_eq!(out, (0..10).map(|i| i * 10).collect::<Vec<_>>());
        let warmed = warmed.into_inner().unwrap();
        let states: Vec<i32> = warmed.iter().filter(|w| w.1).map(|w| w.0).collect();
        let lists: Vec<i32> = warmed.iter().filter(|w| !w.1).map(|w| w.0).collect();
        assert_eq!(states, (OWN_AHEAD as i32..10).collect::<Vec<_>>());
        assert_eq!(lists, (BEHIND_AHEAD as i32..10).collect::<Vec<_>>());
        // Each item's state was asked for before its lists.
        for i in OWN_AHEAD as i32..10 {
            let at = |state| warmed.iter().position(|w| *w == (i, state)).unwrap();
            assert!(at(true) < at(false), "{i}: {warmed:?}");
        }
    }

    /// Adding a batch with the warm-ups ahead leaves the state that adding its events one by one leaves.
    #[test]
    fn warming_ahead_changes_nothing() {
        let events = generated(20_000, 8, 50.0);
        let cfg = Config::default();
        let batch: Vec<(Event, EventKey, i64, Links)> = events
            .iter()
            .enumerate()
            .map(|(i, (e, key))| (e.clone(), *key, (i / 100) as i64, links(e, &cfg)))
            .collect();
        let mut warmed = Correlator::new("t", cfg.clone());
        for page in batch.chunks(1000) {
            warmed.ingest_batch(page, crate::WARM_AHEAD);
        }
        let mut plain = Correlator::new("t", cfg);
        for (e, key, bucket, _) in &batch {
            plain.ingest(e, *key, *bucket);
        }
        assert!(warmed.stats().merged > 0, "the input links stories");
        assert_eq!(canonical(&warmed), canonical(&plain));
    }

    /// A batch large enough to be built on two threads gives the stories one thread builds, in order.
    #[test]
    fn versions_built_on_two_threads_come_out_as_on_one() {
        let mut c = Correlator::new("t", Config::default());
        for (i, (e, key)) in generated(40_000, 6, 50.0).iter().enumerate() {
            c.ingest(e, *key, (i / 100) as i64);
        }
        let slots: Vec<Slot> = c.open_schedule().iter().map(|(_, slot)| *slot).collect();
        assert!(slots.len() > 4096 * 2, "{} open stories", slots.len());
        let batch: Vec<Version> = slots.iter().map(|s| c.publish(*s)).collect();
        // What the outbox held before stays in front.
        let held = Story {
            story_id: StoryId(7),
            ..Story::default()
        };
        let mut parallel = vec![held.clone()];
        c.build_versions(batch, &mut parallel);
        assert_eq!(parallel.remove(0), held);
        let one_thread: Vec<Story> = slots
            .iter()
            .map(|s| {
                let v = c.publish(*s);
                c.build(v)
            })
            .collect();
        assert_eq!(parallel, one_thread);
    }
}
