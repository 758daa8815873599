//! Rate quotas as token buckets: a bucket refills at the quota's rate up to one second's worth, and a
//! batch is admitted while the bucket is not in debt — it may overdraw, and the next batch waits until
//! the debt is repaid. So any batch size gets through (no batch is larger than the bucket forever) and
//! the sustained rate is the quota.

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

    pub fn rate(&self) -> u64 {
        self.rate as u64
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
}
