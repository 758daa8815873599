//! The write horizon: when every writer of a store lives in the same process as its workers (a replay),
//! workers can know exactly which insert times are complete instead of guessing with a safety delay.
//!
//! A writer stamps its batch's insert time through [`WriteHorizon::begin`] and holds the returned guard
//! until the batch is durable and visible; a worker reads only buckets that end at or before
//! [`WriteHorizon::stable`]. Stamps never go below what a worker was told is stable, so no write can land
//! in a bucket a worker already read, and the re-check window (the lookback) has nothing to catch: a
//! replay can keep it at one bucket, which lets stories be forgotten (and published) while the input is
//! still being read instead of all at its end (docs/design.md, *A replay into a temporary store*).
//!
//! A store written from other processes (the service) cannot use this: its writers' clocks and delays are
//! only bounded, which is what `safety_delay` and `max_clock_skew` are for.

use std::sync::{Arc, Mutex};
use storyline_model::Timestamp;

#[derive(Debug, Default)]
pub struct WriteHorizon {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Every stamp handed out, and every horizon reported, is at least this: stamps follow the wall clock
    /// but never go back behind a horizon a worker acted on.
    floor: Timestamp,
    /// Stamps of writes not yet visible, with an id to remove the right one.
    in_flight: Vec<(u64, Timestamp)>,
    next_id: u64,
}

/// A write in flight: its insert time, until dropped (after the write is durable, or failed).
#[derive(Debug)]
pub struct InFlight {
    horizon: Arc<WriteHorizon>,
    id: u64,
    pub at: Timestamp,
}

impl WriteHorizon {
    /// Registers a write about to be stamped and returns its insert time.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        let mut s = self.lock();
        let at = Timestamp::now().max(s.floor);
        s.floor = at;
        let id = s.next_id;
        s.next_id += 1;
        s.in_flight.push((id, at));
        InFlight {
            horizon: self.clone(),
            id,
            at,
        }
    }

    /// The time before which every write is visible: the oldest stamp still in flight, or `now` when
    /// none is. Writes that begin later are stamped at or after it.
    pub fn stable(&self, now: Timestamp) -> Timestamp {
        let mut s = self.lock();
        s.floor = s.floor.max(now);
        s.in_flight
            .iter()
            .map(|(_, at)| *at)
            .min()
            .unwrap_or(s.floor)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent through a panic elsewhere: every change is one push or remove.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.horizon.lock();
        if let Some(i) = s.in_flight.iter().position(|(id, _)| *id == self.id) {
            s.in_flight.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_horizon_waits_for_the_oldest_write_in_flight() {
        let h = Arc::new(WriteHorizon::default());
        let first = h.begin();
        let second = h.begin();
        assert!(second.at >= first.at);
        let later = Timestamp::from_millis(first.at.as_millis() + 60_000);
        assert_eq!(h.stable(later), first.at);
        drop(first);
        assert_eq!(h.stable(later), second.at);
        drop(second);
        assert_eq!(h.stable(later), later);
    }

    #[test]
    fn a_write_begun_after_a_horizon_is_stamped_at_or_after_it() {
        let h = Arc::new(WriteHorizon::default());
        // A worker whose clock reading is ahead of the writers' (or a clock stepped back): later stamps
        // still fall after what the worker considered complete.
        let ahead = Timestamp::from_millis(Timestamp::now().as_millis() + 3_600_000);
        assert_eq!(h.stable(ahead), ahead);
        let w = h.begin();
        assert!(w.at >= ahead, "{:?} < {:?}", w.at, ahead);
        assert_eq!(h.stable(Timestamp::now()), w.at);
    }
}
