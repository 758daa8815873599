//! Keeps leases alive while a long step holds them.
//!
//! Workers renew their leases between steps, but one step can outlast a lease: a catch-up cycle's commit
//! or publication of hundreds of thousands of story versions, or restoring a large partition state, took
//! 10–20 s on a loaded machine against a 10 s TTL. Another worker then took the partition over, restored
//! the state and redid the cycle, and lost it the same way: on `storyline replay` of 1M events the
//! partition changed hands seven times. A worker now holds its lease here for the length of each step; this
//! thread renews what is held every third of the TTL. A step held longer than `max_stall` is no longer
//! renewed, so a worker that is stuck (not merely slow) still loses its partition to a live one.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use storyline_model::Timestamp;
use storyline_store::{Lease, Store};

pub struct Heartbeat {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

struct Inner {
    store: Arc<dyn Store>,
    ttl: Duration,
    max_stall: Duration,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    held: HashMap<u64, Held>,
    next_token: u64,
    stop: bool,
}

struct Held {
    lease: Lease,
    since: Instant,
    renewed: Instant,
    /// Another owner has it: nothing more to renew.
    lost: bool,
}

/// A lease held for one step; renewal stops when it is dropped.
pub struct Hold<'a> {
    inner: &'a Inner,
    token: u64,
}

impl Heartbeat {
    pub fn start(store: Arc<dyn Store>, ttl: Duration, max_stall: Duration) -> Self {
        let inner = Arc::new(Inner {
            store,
            ttl,
            max_stall,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let thread = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("storyline-lease-heartbeat".into())
                .spawn(move || inner.run())
                .expect("spawning the lease heartbeat thread")
        };
        Heartbeat {
            inner,
            thread: Some(thread),
        }
    }

    /// Renews `lease` until the returned hold is dropped (or for at most `max_stall`).
    pub fn hold(&self, lease: &Lease) -> Hold<'_> {
        let mut st = self.inner.lock();
        let token = st.next_token;
        st.next_token += 1;
        let now = Instant::now();
        st.held.insert(
            token,
            Held {
                lease: lease.clone(),
                since: now,
                renewed: now,
                lost: false,
            },
        );
        Hold {
            inner: &self.inner,
            token,
        }
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        // Taking the lock waits for a renewal in progress: once the hold is gone, its lease is never
        // renewed again (a worker releasing the lease right after must not see it extended).
        self.inner.lock().held.remove(&self.token);
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.inner.lock().stop = true;
        self.inner.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(&self) {
        let every = self.ttl / 3;
        let ttl_ms = self.ttl.as_millis() as i64;
        let mut st = self.lock();
        loop {
            st = self
                .wake
                .wait_timeout(st, every)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if st.stop {
                return;
            }
            // Renewing under the lock makes a dropped hold final (see `Hold::drop`); it blocks workers
            // only while long steps are held, for one renewal per third of the TTL.
            for held in st.held.values_mut() {
                if held.lost
                    || held.renewed.elapsed() < every
                    || held.since.elapsed() > self.max_stall
                {
                    continue;
                }
                match self
                    .store
                    .renew_lease(&held.lease, ttl_ms, Timestamp::now().as_millis())
                {
                    Ok(Some(l)) => {
                        held.lease = l;
                        held.renewed = Instant::now();
                    }
                    // Lost: the worker finds out at its next renewal or commit, both fenced by the epoch.
                    Ok(None) => held.lost = true,
                    Err(e) => {
                        tracing::warn!(partition = held.lease.shard, error = %e, "lease heartbeat could not renew; retrying")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storyline_store::embedded::{Durability, EmbeddedStore};

    fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path(), Durability::None).unwrap();
        (dir, Arc::new(s))
    }

    fn take(store: &dyn Store, owner: &str, ttl_ms: i64) -> Option<Lease> {
        store
            .acquire_lease("t", "g", 0, owner, ttl_ms, Timestamp::now().as_millis())
            .unwrap()
    }

    #[test]
    fn a_held_lease_outlives_its_ttl_and_a_dropped_one_does_not() {
        let (_dir, store) = store();
        // Generous against a loaded machine: the heartbeat renews every 333 ms, the lease lasts 1 s.
        let ttl = Duration::from_secs(1);
        let hb = Heartbeat::start(store.clone(), ttl, Duration::from_secs(60));
        let lease = take(&*store, "a", 1000).expect("free");
        {
            let _hold = hb.hold(&lease);
            std::thread::sleep(ttl * 3);
            assert!(
                take(&*store, "b", 1000).is_none(),
                "another owner took a lease that was held"
            );
        }
        std::thread::sleep(ttl * 2);
        assert!(
            take(&*store, "b", 1000).is_some(),
            "a lease no longer held must expire"
        );
    }

    #[test]
    fn a_step_held_past_max_stall_lets_the_lease_go() {
        let (_dir, store) = store();
        let ttl = Duration::from_secs(1);
        let hb = Heartbeat::start(store.clone(), ttl, Duration::from_millis(1500));
        let lease = take(&*store, "a", 1000).expect("free");
        let _hold = hb.hold(&lease);
        std::thread::sleep(ttl * 4);
        assert!(
            take(&*store, "b", 1000).is_some(),
            "a stuck step must not keep its partition forever"
        );
    }
}
