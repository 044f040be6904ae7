//! A circuit breaker for Redis calls (cache in request step 5, ownership in step 3): after a run of
//! failures Redis is skipped for a cool-down, then one call at a time probes it until one succeeds.
//! Pure; time is passed in.

use std::time::{Duration, Instant};

/// Breaker state.
#[derive(Debug)]
pub struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    threshold: u32,
    cooldown: Duration,
}

impl Breaker {
    /// Opens after `threshold` failures in a row, for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            failures: 0,
            open_until: None,
            threshold,
            cooldown,
        }
    }

    /// Whether a call may go to Redis at `now`. While open, none may; after the cool-down one probe
    /// may (and the breaker re-opens for another cool-down until that probe succeeds).
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.open_until {
            Some(until) if now < until => false,
            Some(_) => {
                self.open_until = Some(now + self.cooldown);
                true
            }
            None => true,
        }
    }

    /// A call succeeded: close.
    pub fn success(&mut self) {
        self.failures = 0;
        self.open_until = None;
    }

    /// A call failed at `now`.
    pub fn failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.threshold {
            self.open_until = Some(now + self.cooldown);
        }
    }

    /// Whether the breaker is open (Redis considered down).
    pub fn is_open(&self) -> bool {
        self.open_until.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_probes_and_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(5));
        for _ in 0..2 {
            assert!(b.allow(t0));
            b.failure(t0);
        }
        assert!(!b.is_open());
        b.failure(t0);
        assert!(b.is_open());
        assert!(!b.allow(t0 + Duration::from_secs(1)));
        let later = t0 + Duration::from_secs(6);
        assert!(b.allow(later), "one probe after the cool-down");
        assert!(!b.allow(later), "only one");
        b.success();
        assert!(b.allow(later) && !b.is_open());
    }
}
