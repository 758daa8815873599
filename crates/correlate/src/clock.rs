//! Sensor clock offsets, estimated from matched pairs: when two sensors report the same flow, the
//! difference of their times for it is one sample of their relative clock offset. The median of the
//! recent samples is the estimate. Used to line up DNS answers and connections seen by different sensors
//! (whose windows are seconds, less than the skew), exported as a metric, and shown in stories.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use storyline_model::Str;

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
        if p.count <= MIN_SAMPLES || p.count % REFRESH == 0 {
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
}
