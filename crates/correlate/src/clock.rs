//! Sensor clock offsets, estimated from matched pairs: when two sensors report the same flow, the
//! difference of their times for it is one sample of their relative clock offset.
//!
//! Two estimators. [`Clocks::observe`] keeps the median of each pair's recent samples: what the metric
//! and the stories' provenance show. [`Deferred`] is the one links use, built so that stories do not
//! depend on arrival order: a DNS answer and a connection reported by different sensors are not linked
//! when the second arrives (the running estimate would depend on how many flows came first) but recorded,
//! and decided once the estimate for their time range is final — every flow report that can still arrive
//! within the allowed lateness has arrived. That estimate comes from fixed event-time epochs and, in each,
//! from the flows with the smallest keys (a bottom-k sample: which flows are kept does not depend on
//! order either).

use crate::fasthash::Map as HashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use storyline_model::{Str, Timestamp};

/// Recent samples kept per sensor pair.
const SAMPLES: usize = 63;
/// The median is recomputed after this many new samples.
const REFRESH: u64 = 8;
/// Estimates from fewer samples than this are not used.
const MIN_SAMPLES: u64 = 5;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Pair {
    /// `t(low sensor) − t(high sensor)` in ms, as a ring.
    samples: Vec<i64>,
    next: usize,
    count: u64,
    median_ms: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Clocks {
    pairs: HashMap<(u32, u32), Pair>,
    names: HashMap<u32, Str>,
    pub deferred: Deferred,
}

impl Clocks {
    pub fn name(&mut self, tag: u32, name: &Str) {
        if self.names.len() < 10_000 {
            self.names.entry(tag).or_insert_with(|| name.clone());
        }
    }

    /// One sample: sensor `a` saw the flow at `t_a`, sensor `b` at `t_b`; `delta_ns = t_a − t_b`.
    pub fn observe(&mut self, a: u32, b: u32, delta_ns: i64) {
        if a == b {
            return;
        }
        let (key, d) = if a < b {
            ((a, b), delta_ns)
        } else {
            ((b, a), -delta_ns)
        };
        let p = self.pairs.entry(key).or_default();
        let ms = d / 1_000_000;
        if p.samples.len() < SAMPLES {
            p.samples.push(ms);
        } else {
            p.samples[p.next] = ms;
            p.next = (p.next + 1) % SAMPLES;
        }
        p.count += 1;
        if p.count <= MIN_SAMPLES || p.count.is_multiple_of(REFRESH) {
            let mut s = p.samples.clone();
            s.sort_unstable();
            p.median_ms = s[s.len() / 2];
        }
    }

    /// Estimated `t(a) − t(b)` in nanoseconds, once there are enough samples.
    pub fn offset_ns(&self, a: u32, b: u32) -> Option<i64> {
        if a == b {
            return Some(0);
        }
        let (key, sign) = if a < b { ((a, b), 1) } else { ((b, a), -1) };
        let p = self.pairs.get(&key)?;
        (p.count >= MIN_SAMPLES).then(|| sign * p.median_ms * 1_000_000)
    }

    /// Every estimated pair: (sensor, reference sensor, offset seconds, samples seen).
    pub fn estimates(&self) -> Vec<(Str, Str, f64, u64)> {
        let mut out: Vec<_> = self
            .pairs
            .iter()
            .filter(|(_, p)| p.count >= MIN_SAMPLES)
            .filter_map(|((a, b), p)| {
                Some((
                    self.names.get(a)?.clone(),
                    self.names.get(b)?.clone(),
                    p.median_ms as f64 / 1000.0,
                    p.count,
                ))
            })
            .collect();
        out.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
        out
    }
}

/// Event-time epochs of the deferred estimator.
const EPOCH_NS: i64 = 60_000_000_000;
/// Flow keys sampled per epoch (the smallest key values: keys are hashes, so this is a uniform sample).
const EPOCH_KEYS: usize = 2048;
/// A link's estimate uses the samples of its own epoch and of these many epochs before and after it.
const WINDOW_BEFORE: i64 = 2;
const WINDOW_AFTER: i64 = 1;
/// A story's estimate uses its own epoch and the ones before it, not the one after: a story is held until
/// its estimate is final, and each epoch after its own would hold it a minute longer.
const STORY_WINDOW_AFTER: i64 = 0;
/// Estimates from fewer samples than this are not used (the link is decided without an offset).
const MIN_DEFERRED_SAMPLES: usize = 5;

pub fn epoch_of(t: Timestamp) -> i64 {
    t.0.div_euclid(EPOCH_NS)
}

/// The watermark past which epoch `e`'s estimate is final for stories (see [`Deferred::story_offset`]).
pub fn story_estimate_final_at(e: i64, slack_ns: i64) -> Timestamp {
    Timestamp(
        e.saturating_add(STORY_WINDOW_AFTER + 1)
            .saturating_mul(EPOCH_NS)
            .saturating_add(slack_ns),
    )
}

/// A DNS answer and a connection from different sensors that may belong together, to be decided with
/// the final offset estimate. `a` is the story of the report that arrived second, `b` the story that held
/// the other one's index entry (slots as they were then; they may have been folded since).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingLink {
    pub a: u64,
    pub b: u64,
    pub sensor_a: u32,
    pub sensor_b: u32,
    /// `a`'s time, on `a`'s clock.
    pub t: Timestamp,
    /// `b`'s entry, on `b`'s clock.
    pub lo: Timestamp,
    pub hi: Timestamp,
    /// `Some(window)` when `a` is the DNS answer (it offers `[t, t + window]`), `None` when `a` is the
    /// connection.
    pub window_ns: Option<i64>,
}

impl PendingLink {
    /// The epoch whose estimate decides it: the DNS answer's, whichever side arrived first.
    fn epoch(&self) -> i64 {
        epoch_of(if self.window_ns.is_some() {
            self.t
        } else {
            self.lo
        })
    }

    /// The connection's story (as it was when the link was recorded) and its time, on its own clock.
    pub fn connection(&self) -> (u64, Timestamp) {
        match self.window_ns {
            None => (self.a, self.t),
            Some(_) => (self.b, self.lo),
        }
    }

    /// How long after the answer the connection came, on the answer's clock, when `a`'s clock runs
    /// `offset_ns` ahead of `b`'s.
    pub fn delay_ns(&self, offset_ns: i64) -> i64 {
        match self.window_ns {
            None => self.t.0.saturating_sub(offset_ns).saturating_sub(self.lo.0),
            Some(_) => self.lo.0.saturating_add(offset_ns).saturating_sub(self.t.0),
        }
    }

    /// The last epoch that must be final before the link is decided. Every candidate answer of one
    /// connection is decided in the same step (so the nearest can be chosen among all of them, whatever
    /// the order they came in): answers precede their connection by seconds, so all fall in the
    /// connection's epoch or the one after it (clocks may disagree).
    fn decided_after(&self) -> i64 {
        self.epoch()
            .max(epoch_of(self.connection().1).saturating_add(1))
            .saturating_add(WINDOW_AFTER)
    }

    /// Whether the two belong together when `a`'s clock runs `offset_ns` ahead of `b`'s, allowing
    /// `tol_ns` for what the estimate misses.
    pub fn matches(&self, offset_ns: i64, tol_ns: i64) -> bool {
        let t = self.t.0.saturating_sub(offset_ns);
        match self.window_ns {
            None => t >= self.lo.0.saturating_sub(tol_ns) && t <= self.hi.0.saturating_add(tol_ns),
            Some(w) => {
                self.hi.0 >= t.saturating_sub(tol_ns)
                    && self.lo.0 <= t.saturating_add(w).saturating_add(tol_ns)
            }
        }
    }
}

/// The order-independent estimator and the links waiting for it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Deferred {
    /// Epochs still receiving flows: sampled key → (sensor, earliest time of that sensor's reports).
    open: BTreeMap<i64, BTreeMap<u64, Vec<(u32, i64)>>>,
    /// Final epochs: sensor pair (low tag, high tag) → samples of `t(low) − t(high)` in ms, sorted.
    done: BTreeMap<i64, HashMap<(u32, u32), Vec<i32>>>,
    /// Every epoch up to this one is final (`None`: none yet).
    final_through: Option<i64>,
    pending: Vec<PendingLink>,
    /// Pending links per slot they name: a story stays until its links are decided.
    refs: HashMap<u64, u32>,
    /// The final estimate around each epoch (the window links use), per sensor pair, in ms: a story's
    /// times are corrected with it. Kept apart from the samples because stories outlive them.
    story_offsets: BTreeMap<i64, HashMap<(u32, u32), i32>>,
    /// `story_offsets` is final for every epoch up to this one.
    story_through: Option<i64>,
    /// The earliest `final_through` at which a pending link can be decided (`None`: not known, e.g. after
    /// a restore). A replay's workers advance every few buckets while links wait ~13 minutes of event
    /// time: without it every advance sorted all pending links into ready and waiting.
    #[serde(skip)]
    next_decision: Option<i64>,
}

impl Deferred {
    /// One flow report. Reports later than `slack` behind `watermark` are past the allowed lateness: they
    /// are left out, as they would be had they arrived after the epoch became final.
    pub fn record(
        &mut self,
        key: u64,
        sensor: u32,
        t: Timestamp,
        watermark: Timestamp,
        slack_ns: i64,
    ) {
        if t.0.saturating_add(slack_ns) < watermark.0 {
            return;
        }
        let e = epoch_of(t);
        if self.final_through.is_some_and(|f| e <= f) {
            return;
        }
        let keys = self.open.entry(e).or_default();
        if keys.len() >= EPOCH_KEYS && keys.last_key_value().is_some_and(|(k, _)| key > *k) {
            return;
        }
        let sensors = keys.entry(key).or_default();
        match sensors.iter_mut().find(|(s, _)| *s == sensor) {
            Some((_, first)) => *first = (*first).min(t.0),
            None => sensors.push((sensor, t.0)),
        }
        if keys.len() > EPOCH_KEYS {
            keys.pop_last();
        }
    }

    pub fn defer(&mut self, link: PendingLink) {
        for s in [link.a, link.b] {
            *self.refs.entry(s).or_default() += 1;
        }
        self.next_decision = self.next_decision.map(|n| n.min(link.decided_after()));
        self.pending.push(link);
    }

    /// Whether a pending link names any of these slots.
    pub fn holds(&self, slots: impl IntoIterator<Item = u64>) -> bool {
        !self.refs.is_empty() && slots.into_iter().any(|s| self.refs.contains_key(&s))
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether the estimate for stories of epoch `e` is final: asked for earlier, it may still change.
    pub fn final_for(&self, e: i64) -> bool {
        self.story_through.is_some_and(|s| s >= e)
    }

    /// The final estimate of `t(a) − t(b)` (ns) for a story of epoch `e`, if `final_for(e)` and there
    /// were enough samples.
    pub fn story_offset(&self, a: u32, b: u32, e: i64) -> Option<i64> {
        if a == b {
            return Some(0);
        }
        let (pair, sign) = if a < b { ((a, b), 1) } else { ((b, a), -1) };
        let ms = *self.story_offsets.get(&e)?.get(&pair)?;
        Some(sign * i64::from(ms) * 1_000_000)
    }

    /// Drops story estimates of epochs before `e` (no story that old is held any more).
    pub fn forget_story_offsets_before(&mut self, e: i64) {
        while self
            .story_offsets
            .first_key_value()
            .is_some_and(|(k, _)| *k < e)
        {
            self.story_offsets.pop_first();
        }
    }

    /// Makes final every epoch that no report within the lateness can reach any more (all of them with
    /// `everything`, at the end of input).
    /// Returns whether more epochs became final.
    fn finalize(&mut self, watermark: Timestamp, slack_ns: i64, everything: bool) -> bool {
        let through = if everything {
            i64::MAX
        } else if watermark == Timestamp::MIN {
            return false;
        } else {
            // Epoch e is final once its end plus the slack is behind the watermark.
            epoch_of(Timestamp(watermark.0.saturating_sub(slack_ns))) - 1
        };
        if self.final_through.is_some_and(|f| f >= through) {
            return false;
        }
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() > through {
                break;
            }
            let (e, keys) = entry.remove_entry();
            let mut pairs: HashMap<(u32, u32), Vec<i32>> = HashMap::default();
            for sensors in keys.values() {
                for (i, &(sa, ta)) in sensors.iter().enumerate() {
                    for &(sb, tb) in &sensors[i + 1..] {
                        let (pair, d) = if sa < sb {
                            ((sa, sb), ta - tb)
                        } else {
                            ((sb, sa), tb - ta)
                        };
                        let ms = (d / 1_000_000).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
                        pairs.entry(pair).or_default().push(ms);
                    }
                }
            }
            for v in pairs.values_mut() {
                v.sort_unstable();
            }
            if !pairs.is_empty() {
                self.done.insert(e, pairs);
            }
        }
        self.final_through = Some(through);
        self.settle_story_offsets(through.saturating_sub(STORY_WINDOW_AFTER));
        true
    }

    /// Computes the story estimates of the epochs whose window just became final (up to `upto`), while
    /// their samples are still held.
    fn settle_story_offsets(&mut self, upto: i64) {
        let from = self.story_through.map_or(i64::MIN, |s| s.saturating_add(1));
        self.story_through = Some(self.story_through.map_or(upto, |s| s.max(upto)));
        // Epochs with no sample in their window have no estimate: only look near the samples held.
        let near: std::collections::BTreeSet<i64> = self
            .done
            .keys()
            .flat_map(|d| {
                (d.saturating_sub(STORY_WINDOW_AFTER)..=d.saturating_add(WINDOW_BEFORE))
                    .filter(|e| *e >= from && *e <= upto)
            })
            .collect();
        for e in near {
            let pairs: std::collections::BTreeSet<(u32, u32)> = self
                .done
                .range(e.saturating_sub(WINDOW_BEFORE)..=e.saturating_add(STORY_WINDOW_AFTER))
                .flat_map(|(_, p)| p.keys().copied())
                .collect();
            let mut est = HashMap::default();
            for (a, b) in pairs {
                if let Some(ns) = self.estimate(a, b, e, STORY_WINDOW_AFTER) {
                    est.insert((a, b), (ns / 1_000_000) as i32);
                }
            }
            if !est.is_empty() {
                self.story_offsets.insert(e, est);
            }
        }
    }

    /// The final estimate of `t(a) − t(b)` (ns) around epoch `e` (`WINDOW_BEFORE` epochs before it to
    /// `after` epochs after it), if there are enough samples.
    fn estimate(&self, a: u32, b: u32, e: i64, after: i64) -> Option<i64> {
        if a == b {
            return Some(0);
        }
        let (pair, sign) = if a < b { ((a, b), 1) } else { ((b, a), -1) };
        let mut all: Vec<i32> = self
            .done
            .range(e.saturating_sub(WINDOW_BEFORE)..=e.saturating_add(after))
            .filter_map(|(_, pairs)| pairs.get(&pair))
            .flatten()
            .copied()
            .collect();
        if all.len() < MIN_DEFERRED_SAMPLES {
            return None;
        }
        all.sort_unstable();
        Some(sign * i64::from(all[all.len() / 2]) * 1_000_000)
    }

    /// Takes the links whose estimate is final, each with the offset `t(a) − t(b)` to decide it by
    /// (`None`: not enough samples, decide without one), in a fixed order.
    pub fn due(
        &mut self,
        watermark: Timestamp,
        slack_ns: i64,
        everything: bool,
    ) -> Vec<(PendingLink, Option<i64>)> {
        let advanced = self.finalize(watermark, slack_ns, everything);
        let through = self.final_through.unwrap_or(i64::MIN);
        if self.pending.is_empty() || self.next_decision.is_some_and(|n| n > through) {
            // Nothing to decide; with the same epochs final and links only added, nothing to forget
            // either unless more epochs became final.
            if advanced {
                self.forget_old();
            }
            return Vec::new();
        }
        let mut next_decision = i64::MAX;
        let all_due = through == i64::MAX;
        let mut ready: Vec<PendingLink> = if all_due {
            // The end of input decides every link (~180k in a 1M-event replay, on the path between its
            // last input and its exit): taken whole, and nothing is left for `refs` to count.
            self.refs.clear();
            std::mem::take(&mut self.pending)
        } else {
            // Taken out in place, and the next decision found in the same pass: hundreds of thousands of
            // links wait while a few thousand come due, and moving all of them into fresh vectors at
            // every decided epoch was a quarter of a second of a 1M-event replay's correlator (page
            // faults and copies).
            self.pending
                .extract_if(.., |l| {
                    let at = l.decided_after();
                    if at > through {
                        next_decision = next_decision.min(at);
                    }
                    at <= through
                })
                .collect()
        };
        self.next_decision = Some(next_decision);
        // Decisions merge stories, and the guards (size, span) make merges order-sensitive: decide in an
        // order that depends only on the links themselves.
        ready.sort_by_key(|l| {
            let (x, y) = (l.t.0.min(l.lo.0), l.t.0.max(l.lo.0));
            (x, y, l.sensor_a.min(l.sensor_b), l.sensor_a.max(l.sensor_b))
        });
        if !all_due {
            for l in &ready {
                for s in [l.a, l.b] {
                    if let Some(n) = self.refs.get_mut(&s) {
                        *n -= 1;
                        if *n == 0 {
                            self.refs.remove(&s);
                        }
                    }
                }
            }
        }
        // Many links share a sensor pair and epoch, and each estimate sorts a window of samples: once each.
        let mut memo: HashMap<(u32, u32, i64), Option<i64>> = HashMap::default();
        let out = ready
            .into_iter()
            .map(|l| {
                let off = *memo
                    .entry((l.sensor_a, l.sensor_b, l.epoch()))
                    .or_insert_with(|| {
                        self.estimate(l.sensor_a, l.sensor_b, l.epoch(), WINDOW_AFTER)
                    });
                (l, off)
            })
            .collect();
        self.forget_old();
        out
    }

    /// Drops final epochs no pending or future link can ask for.
    fn forget_old(&mut self) {
        let Some(through) = self.final_through else {
            return;
        };
        let oldest_needed = self
            .pending
            .iter()
            .map(|l| l.epoch())
            .min()
            .unwrap_or(through.saturating_add(1))
            .min(through.saturating_add(1))
            .saturating_sub(WINDOW_BEFORE + WINDOW_AFTER + 1);
        while self
            .done
            .first_key_value()
            .is_some_and(|(e, _)| *e < oldest_needed)
        {
            self.done.pop_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_shrugs_off_outliers_and_direction_is_consistent() {
        let mut c = Clocks::default();
        for i in 0..40 {
            let noise = (i % 5) * 10_000_000;
            c.observe(1, 2, 3_000_000_000 + noise);
        }
        c.observe(1, 2, -60_000_000_000); // one wild sample
        let ab = c.offset_ns(1, 2).unwrap();
        assert!((ab - 3_020_000_000).abs() <= 20_000_000, "{ab}");
        assert_eq!(c.offset_ns(2, 1), Some(-ab));
        assert_eq!(c.offset_ns(1, 3), None);
    }

    fn link(t_ms: i64, lo_ms: i64, window: bool) -> PendingLink {
        PendingLink {
            a: 1,
            b: 2,
            sensor_a: 10,
            sensor_b: 20,
            t: Timestamp(t_ms * 1_000_000),
            lo: Timestamp(lo_ms * 1_000_000),
            hi: Timestamp(lo_ms * 1_000_000),
            window_ns: window.then_some(1_000_000_000),
        }
    }

    #[test]
    fn deferred_estimates_do_not_depend_on_the_order_of_reports() {
        // Sensor 10 runs 3 s ahead of sensor 20; flows in three epochs, fed in two orders.
        let mut reports = Vec::new();
        for i in 0..300u64 {
            let t = 1_000 + i as i64 * 500; // ms
            reports.push((i.wrapping_mul(0x9E37_79B9_7F4A_7C15), 10u32, t + 3_000));
            reports.push((i.wrapping_mul(0x9E37_79B9_7F4A_7C15), 20u32, t));
        }
        let run = |order: &[(u64, u32, i64)]| {
            let mut d = Deferred::default();
            d.defer(link(61_000 + 3_000, 61_300, false));
            for &(k, s, t) in order {
                d.record(k, s, Timestamp(t * 1_000_000), Timestamp::MIN, 0);
            }
            assert!(
                d.due(Timestamp(100_000_000_000), 0, false).is_empty(),
                "not final yet"
            );
            assert!(d.holds([1]));
            let due = d.due(Timestamp::MIN, 0, true);
            assert!(!d.holds([1, 2]));
            due
        };
        let forward = run(&reports);
        let mut backward = reports.clone();
        backward.reverse();
        let back = run(&backward);
        assert_eq!(forward.len(), 1);
        assert_eq!(forward[0].1, Some(3_000_000_000));
        assert_eq!(back[0].1, forward[0].1);
        // Lined up by the estimate, the connection 300 ms after the answer (on the answer's clock) matches.
        assert!(forward[0].0.matches(forward[0].1.unwrap(), 1_000_000_000));
        assert!(!forward[0].0.matches(0, 1_000_000_000));
    }

    #[test]
    fn links_come_due_epoch_by_epoch_each_once() {
        const MIN_MS: i64 = 60_000;
        // A connection in epoch `e` (its answer 300 ms before) is decided once epoch e + 2 is final.
        let at = |e: i64, id: u64| PendingLink {
            a: id,
            ..link(e * MIN_MS + 1_000, e * MIN_MS + 700, false)
        };
        let mut d = Deferred::default();
        let mut expected_at = std::collections::BTreeMap::<i64, Vec<u64>>::new();
        // Deferred out of epoch order, several per epoch.
        for (i, e) in [3i64, 0, 5, 1, 3, 0, 4, 2, 5, 1].into_iter().enumerate() {
            let id = 100 + i as u64;
            d.defer(at(e, id));
            expected_at.entry(e + 3).or_default().push(id);
        }
        let mut seen = Vec::new();
        for w in 0..12i64 {
            if w == 4 {
                // A link that arrives once others were decided is still decided in its turn.
                d.defer(at(6, 999));
                expected_at.entry(9).or_default().push(999);
            }
            let due: Vec<u64> = d
                .due(Timestamp(w * MIN_MS * 1_000_000), 0, false)
                .into_iter()
                .map(|(l, _)| l.a)
                .collect();
            let mut got = due.clone();
            got.sort();
            let mut want = expected_at.remove(&w).unwrap_or_default();
            want.sort();
            assert_eq!(got, want, "links decided with the watermark in epoch {w}");
            seen.extend(due);
            let left: usize = expected_at.values().map(Vec::len).sum();
            assert_eq!(d.pending(), left, "links still pending after epoch {w}");
        }
        seen.sort();
        assert_eq!(seen, (100..110).chain([999]).collect::<Vec<u64>>());
    }

    #[test]
    fn the_end_of_input_decides_every_link_in_order_and_holds_no_story() {
        const MIN_MS: i64 = 60_000;
        let at = |e: i64, ms: i64, id: u64| PendingLink {
            a: id,
            b: id + 1_000,
            ..link(e * MIN_MS + ms, e * MIN_MS + ms - 300, false)
        };
        let mut d = Deferred::default();
        for (id, e, ms) in [
            (100, 3, 2_000),
            (101, 0, 1_000),
            (102, 5, 1_000),
            (103, 1, 1_000),
        ] {
            d.defer(at(e, ms, id));
        }
        d.defer(at(3, 1_000, 104));
        let ids = |due: Vec<(PendingLink, Option<i64>)>| -> Vec<u64> {
            due.into_iter().map(|(l, _)| l.a).collect()
        };
        // Epoch 0's link is decided on the way; the end decides the rest in time order.
        assert_eq!(
            ids(d.due(Timestamp(3 * MIN_MS * 1_000_000), 0, false)),
            [101]
        );
        assert!(!d.holds([101, 1_101]));
        assert!(d.holds([1_100]) && d.holds([102]));
        assert_eq!(ids(d.due(Timestamp::MIN, 0, true)), [103, 104, 100, 102]);
        assert_eq!(d.pending(), 0);
        assert!(!d.holds([100, 102, 103, 104, 1_100, 1_102, 1_103, 1_104]));
        // A link deferred after the end (events ingested after a flush) is decided by the next one.
        d.defer(at(7, 1_000, 200));
        assert!(d.holds([1_200]));
        assert_eq!(ids(d.due(Timestamp::MIN, 0, true)), [200]);
        assert!(!d.holds([200, 1_200]));
    }

    #[test]
    fn late_reports_are_left_out_and_the_sample_is_bounded() {
        let mut d = Deferred::default();
        for k in 0..(EPOCH_KEYS as u64 * 2) {
            d.record(k, 1, Timestamp(5), Timestamp::MIN, 0);
        }
        assert_eq!(d.open[&0].len(), EPOCH_KEYS);
        assert_eq!(*d.open[&0].keys().last().unwrap(), EPOCH_KEYS as u64 - 1);
        d.record(
            u64::MAX,
            1,
            Timestamp(5),
            Timestamp(10 * EPOCH_NS),
            EPOCH_NS,
        );
        assert!(!d.open[&0].contains_key(&u64::MAX));
    }
}
