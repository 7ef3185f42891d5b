//! A sliding-window rate limiter: login attempts, keyed by email and by client address, and
//! service API requests, keyed by app key.
//!
//! It lives in the memory of one API process: with several API replicas each enforces the limit
//! on its own, so the effective limit is the configured one times the number of replicas. That
//! is acceptable for slowing password guessing; a shared limit would need Redis. (Service keys: the
//! same holds; a replica's share of the limit still stops one runaway client.)
//!
//! An attempt is counted only when it is let through, so a client that keeps hammering while
//! refused does not push its own window further out.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

/// How often (in checks) stale keys are swept out of the map.
const SWEEP_EVERY: u64 = 1024;

pub struct RateLimiter {
    /// Attempts allowed per key within `window`; 0 turns the limiter off.
    limit: u32,
    window: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    hits: HashMap<String, VecDeque<Instant>>,
    checks: u64,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// `limit` attempts per minute.
    pub fn per_minute(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    /// Records one attempt under every key when none of them is at its limit; otherwise records
    /// nothing and returns how long until the fullest key frees a slot.
    pub fn check<K: AsRef<str>>(&self, keys: &[K]) -> Result<(), Duration> {
        self.check_at(keys, Instant::now())
    }

    pub fn check_at<K: AsRef<str>>(&self, keys: &[K], now: Instant) -> Result<(), Duration> {
        if self.limit == 0 {
            return Ok(());
        }
        let limit = self.limit as usize;
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.checks += 1;
        if inner.checks.is_multiple_of(SWEEP_EVERY) {
            let window = self.window;
            inner.hits.retain(|_, hits| {
                prune(hits, now, window);
                !hits.is_empty()
            });
        }
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Some(hits) = inner.hits.get_mut(key.as_ref()) {
                prune(hits, now, self.window);
                if hits.len() >= limit
                    && let Some(oldest) = hits.front()
                {
                    wait = wait.max((*oldest + self.window).saturating_duration_since(now));
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for key in keys {
            inner
                .hits
                .entry(key.as_ref().to_owned())
                .or_default()
                .push_back(now);
        }
        Ok(())
    }
}

/// Drops the attempts that left the window.
fn prune(hits: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while hits
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        hits.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn attempts_beyond_the_limit_wait_for_the_oldest_to_leave_the_window() {
        let limiter = RateLimiter::new(3, MIN);
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(
                limiter
                    .check_at(&["email:a"], t0 + Duration::from_secs(i))
                    .is_ok()
            );
        }
        let wait = limiter
            .check_at(&["email:a"], t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        // Refused attempts are not counted: the first slot frees at t0 + 60.
        assert!(
            limiter
                .check_at(&["email:a"], t0 + Duration::from_secs(59))
                .is_err()
        );
        assert!(
            limiter
                .check_at(&["email:a"], t0 + Duration::from_secs(60))
                .is_ok()
        );
        assert!(
            limiter
                .check_at(&["email:a"], t0 + Duration::from_secs(60))
                .is_err()
        );
    }

    #[test]
    fn keys_are_counted_apart_and_any_full_key_refuses() {
        let limiter = RateLimiter::new(2, MIN);
        let t0 = Instant::now();
        assert!(limiter.check_at(&["email:a", "ip:1"], t0).is_ok());
        assert!(limiter.check_at(&["email:b", "ip:1"], t0).is_ok());
        // The address is full even though email c is fresh.
        assert!(limiter.check_at(&["email:c", "ip:1"], t0).is_err());
        // Email a from another address still has one attempt left.
        assert!(limiter.check_at(&["email:a", "ip:2"], t0).is_ok());
        assert!(limiter.check_at(&["email:a", "ip:3"], t0).is_err());
        // A refused check recorded nothing for the fresh key.
        assert!(limiter.check_at(&["email:c", "ip:4"], t0).is_ok());
    }

    #[test]
    fn a_limit_of_zero_turns_the_limiter_off() {
        let limiter = RateLimiter::new(0, MIN);
        for _ in 0..100 {
            assert!(limiter.check(&["k"]).is_ok());
        }
    }

    #[test]
    fn stale_keys_are_swept() {
        let limiter = RateLimiter::new(5, MIN);
        let t0 = Instant::now();
        for i in 0..SWEEP_EVERY - 1 {
            limiter.check_at(&[format!("k{i}")], t0).unwrap();
        }
        limiter.check_at(&["last"], t0 + MIN).unwrap();
        assert_eq!(limiter.inner.lock().unwrap().hits.len(), 1);
    }
}
