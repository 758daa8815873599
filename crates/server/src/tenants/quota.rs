//! Rate quotas as token buckets: a bucket refills at the quota's rate up to one second's worth, and a
//! batch is admitted while the bucket is not in debt — it may overdraw, and the next batch waits until
//! the debt is repaid. So any batch size gets through (no batch is larger than the bucket forever) and
//! the sustained rate is the quota.

use super::registry::Quotas;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(rate_per_second: u64, now: Instant) -> Self {
        Self {
            rate: rate_per_second.max(1) as f64,
            tokens: rate_per_second.max(1) as f64,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        self.at = now;
    }

    /// How long until a batch would be admitted; zero if now.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    pub fn take(&mut self, amount: u64, now: Instant) {
        self.refill(now);
        self.tokens -= amount as f64;
    }
}

/// A tenant's rate buckets (created on first use, dropped when its quotas change).
#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: Mutex<[Option<Bucket>; 2]>,
}

impl RateLimits {
    /// Admits a batch of `events` records and `bytes` bytes, or says which quota refuses it and for how
    /// long. Both buckets are checked before either is drawn from, so a refused batch costs nothing.
    pub fn admit(
        &self,
        quotas: &Quotas,
        events: u64,
        bytes: u64,
        now: Instant,
    ) -> Result<(), (&'static str, Duration)> {
        let limits = [
            ("events_per_second", quotas.events_per_second, events),
            ("bytes_per_second", quotas.bytes_per_second, bytes),
        ];
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        for ((what, rate, _), bucket) in limits.iter().zip(buckets.iter_mut()) {
            let Some(rate) = rate else { continue };
            let wait = bucket
                .get_or_insert_with(|| Bucket::new(*rate, now))
                .wait(now);
            if !wait.is_zero() {
                return Err((what, wait));
            }
        }
        for ((_, rate, amount), bucket) in limits.iter().zip(buckets.iter_mut()) {
            if let (Some(_), Some(b)) = (rate, bucket.as_mut()) {
                b.take(*amount, now);
            }
        }
        Ok(())
    }

    /// Forgets the buckets: the next batch starts from the new quotas.
    pub fn reset(&self) {
        *self.buckets.lock().unwrap_or_else(|p| p.into_inner()) = [None, None];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_while_not_in_debt_and_repays_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(100, t0);
        assert_eq!(b.wait(t0), Duration::ZERO);
        b.take(250, t0); // a batch larger than the bucket is admitted once
        let wait = b.wait(t0);
        assert!((wait.as_secs_f64() - 1.5).abs() < 1e-6, "{wait:?}");
        assert!(b.wait(t0 + Duration::from_millis(1400)) > Duration::ZERO);
        assert_eq!(b.wait(t0 + Duration::from_millis(1500)), Duration::ZERO);
        // Idle time refills at most one second's worth.
        let later = t0 + Duration::from_secs(60);
        b.take(100, later);
        assert_eq!(b.wait(later), Duration::ZERO);
        b.take(1, later);
        assert!(b.wait(later) > Duration::ZERO);
    }

    #[test]
    fn a_batch_refused_by_one_quota_draws_from_neither() {
        let limits = RateLimits::default();
        let q = Quotas {
            events_per_second: Some(100),
            bytes_per_second: Some(1000),
            ..Quotas::default()
        };
        let t0 = Instant::now();
        assert!(limits.admit(&q, 10, 2000, t0).is_ok()); // bytes overdrawn by 1000: 1 s of debt
        let (what, wait) = limits.admit(&q, 10, 10, t0).unwrap_err();
        assert_eq!(what, "bytes_per_second");
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6);
        // The refused batch took no events: 90 left, so 90 more fit once the bytes are repaid.
        let t1 = t0 + Duration::from_secs(1);
        assert!(limits.admit(&q, 90, 1, t1).is_ok());
        limits.reset();
        assert!(limits.admit(&q, 1, 1, t1).is_ok());
    }
}
