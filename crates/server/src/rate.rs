//! Rate limits: token buckets per socket and per client address, and a cap on each address's
//! open connections. Time is passed in, so tests need no clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A token bucket: `burst` tokens, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(now: Instant, per_second: f64, burst: u32) -> Self {
        Self {
            per_second,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is available, as of the last [`TokenBucket::try_take`].
    pub fn retry_after(&self) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.per_second.max(f64::MIN_POSITIVE))
    }

    /// True when the bucket would be full at `now`: forgetting it changes nothing.
    fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.per_second >= self.burst
    }
}

/// Buckets beyond this many trigger a sweep of the full ones.
const PRUNE_ABOVE: usize = 4096;

/// One token bucket per key (a client address), created full on first use and forgotten once
/// full again, so memory follows the number of recently active clients.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    per_second: f64,
    burst: u32,
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter allowing each key `burst` at once and `per_second` sustained. A `per_second` of
    /// 0 turns it off.
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_second,
            burst: burst.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or says how long until one is available.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        // A bucket is plain numbers; a panic elsewhere cannot leave one half-updated.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, bucket| !bucket.is_full(now));
        }
        let bucket = buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new(now, self.per_second, self.burst));
        if bucket.try_take(now) {
            Ok(())
        } else {
            Err(bucket.retry_after())
        }
    }

    /// Number of keys remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Counts each key's open connections against a cap.
#[derive(Debug)]
pub struct ConnectionCounter<K: Hash + Eq> {
    limit: u32,
    open: Mutex<HashMap<K, u32>>,
}

/// One open connection; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionGuard<K: Hash + Eq> {
    counter: Arc<ConnectionCounter<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> ConnectionCounter<K> {
    /// A counter allowing `limit` connections per key.
    pub fn new(limit: u32) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection of `key`, unless it has `limit` already.
    pub fn try_acquire(self: &Arc<Self>, key: &K) -> Option<ConnectionGuard<K>> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key.clone()).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ConnectionGuard {
            counter: Arc::clone(self),
            key: key.clone(),
        })
    }

    /// Open connections of `key`.
    #[cfg(test)]
    pub fn count(&self, key: &K) -> u32 {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(key).copied().unwrap_or(0)
    }
}

impl<K: Hash + Eq> Drop for ConnectionGuard<K> {
    fn drop(&mut self) {
        let mut open = self
            .counter
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_the_sustained_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(start, 10.0, 5);
        assert!((0..5).all(|_| bucket.try_take(start)));
        assert!(!bucket.try_take(start));
        assert!(bucket.try_take(start + Duration::from_millis(100)));
        assert!(!bucket.try_take(start + Duration::from_millis(100)));
        // A long pause refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.try_take(later)).count(), 5);
    }

    #[test]
    fn each_key_has_its_own_bucket_and_is_told_when_to_retry() {
        let start = Instant::now();
        let limiter = KeyedLimiter::new(2.0, 3);
        for _ in 0..3 {
            assert_eq!(limiter.check(&"a", start), Ok(()));
        }
        let wait = limiter.check(&"a", start).expect_err("limited");
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // Another key is untouched.
        assert_eq!(limiter.check(&"b", start), Ok(()));
        assert_eq!(limiter.check(&"a", start + wait), Ok(()));
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let start = Instant::now();
        let limiter = KeyedLimiter::new(10.0, 10);
        for key in 0..=PRUNE_ABOVE {
            limiter.check(&key, start).expect("first use");
        }
        // A second later every bucket has refilled; the next check sweeps them.
        limiter
            .check(&usize::MAX, start + Duration::from_secs(1))
            .expect("fresh");
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn a_zero_rate_turns_the_limit_off() {
        let limiter = KeyedLimiter::new(0.0, 0);
        let now = Instant::now();
        assert!((0..10_000).all(|_| limiter.check(&1, now).is_ok()));
        assert_eq!(limiter.len(), 0);
    }

    #[test]
    fn connections_per_key_are_capped_and_freed_on_drop() {
        let counter = ConnectionCounter::new(2);
        let first = counter.try_acquire(&"a").expect("first");
        let _second = counter.try_acquire(&"a").expect("second");
        assert!(counter.try_acquire(&"a").is_none());
        assert!(counter.try_acquire(&"b").is_some());
        drop(first);
        assert_eq!(counter.count(&"a"), 1);
        assert!(counter.try_acquire(&"a").is_some());
    }
}
