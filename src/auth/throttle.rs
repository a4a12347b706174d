//! Login throttling: a token bucket (governor's GCRA) per client address and per user name.
//! The client's bucket is checked first and only an attempt it lets through spends from the
//! name's bucket, so one client cannot fill the table with names, and guessing is slow
//! whichever one an attacker varies. Clients are keyed by IPv4 address or IPv6 /64
//! ([`crate::http::ClientInfo::key`]).
//!
//! Memory is bounded: keys are well-formed user names (checked by the caller) and addresses,
//! buckets untouched for a minute (refilled) are swept by the scheduler and, when the table is
//! full, at most once a second on the spot; past [`MAX_KEYS`] live buckets a new name or address
//! shares one overflow bucket while the buckets already held keep working: a flood of new keys
//! throttles only new keys, for at most the minute its buckets stay live.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::error::AppError;

/// Most buckets kept (each holds a name of at most 64 bytes, or an address).
pub const MAX_KEYS: usize = 50_000;

/// A bucket untouched this long has refilled (the quota is per minute), so it can go.
const IDLE: Duration = Duration::from_secs(60);

/// The key every new name or address shares once [`MAX_KEYS`] are held.
const OVERFLOW: &str = "overflow";

pub struct LoginThrottle {
    quota: Quota,
    buckets: Mutex<Buckets>,
}

#[derive(Default)]
struct Buckets {
    map: HashMap<String, (DefaultDirectRateLimiter, Instant)>,
    /// When a full table was last pruned of idle buckets (at most once a second).
    pruned: Option<Instant>,
}

impl LoginThrottle {
    pub fn new(attempts_per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(attempts_per_minute).unwrap_or(NonZeroU32::MIN);
        LoginThrottle {
            quota: Quota::per_minute(per_minute),
            buckets: Mutex::new(Buckets::default()),
        }
    }

    /// Spends one attempt for this client and then this user, or says how long to wait.
    /// `client` is [`crate::http::ClientInfo::key`].
    pub fn check(&self, username: &str, client: &str) -> Result<(), AppError> {
        self.spend(format!("client:{client}"))?;
        self.spend(format!("user:{}", username.to_lowercase()))
    }

    fn spend(&self, key: String) -> Result<(), AppError> {
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| AppError::Internal(anyhow::anyhow!("the login throttle is poisoned")))?;
        let now = Instant::now();
        let Buckets { map, pruned } = &mut *buckets;
        if map.len() >= MAX_KEYS && !map.contains_key(&key) {
            // Full: drop idle buckets first (at most once a second, so a flood of new keys
            // costs one pass a second, not one per request).
            if pruned.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1)) {
                map.retain(|_, (_, used)| now.duration_since(*used) < IDLE);
                *pruned = Some(now);
            }
        }
        let key = if map.len() >= MAX_KEYS && !map.contains_key(&key) {
            OVERFLOW.to_owned()
        } else {
            key
        };
        let (limiter, used) = map
            .entry(key)
            .or_insert_with(|| (RateLimiter::direct(self.quota), now));
        *used = now;
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AppError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            }
        })
    }

    /// Drops buckets untouched for a minute (they have refilled); run by the scheduler.
    pub fn sweep(&self) {
        if let Ok(mut buckets) = self.buckets.lock() {
            buckets.map.retain(|_, (_, used)| used.elapsed() < IDLE);
        }
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.buckets.lock().map(|b| b.map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_runs_out_per_user() {
        let throttle = LoginThrottle::new(3);
        for _ in 0..3 {
            throttle.check("alice", "10.0.0.1").expect("within budget");
        }
        let err = throttle
            .check("alice", "10.0.0.2")
            .expect_err("user budget spent");
        assert!(matches!(err, AppError::RateLimited { retry_after_secs } if retry_after_secs >= 1));
        throttle
            .check("bob", "10.0.0.3")
            .expect("other users unaffected");
    }

    #[test]
    fn a_throttled_client_spends_no_name_buckets() {
        let throttle = LoginThrottle::new(3);
        for i in 0..100 {
            let _ = throttle.check(&format!("name{i}"), "10.0.0.1");
        }
        // The client's bucket and the three names it got through, nothing more.
        assert_eq!(throttle.len(), 4);
        throttle
            .check("name50", "10.0.0.2")
            .expect("a name refused at the client was never charged");
    }

    #[test]
    fn a_full_table_throttles_new_keys_only() {
        let throttle = LoginThrottle::new(1000);
        throttle.check("alice", "10.0.0.1").expect("first");
        for i in 0..(MAX_KEYS + 500) {
            let _ = throttle.check(&format!("u{i}"), &format!("c{i}"));
        }
        assert!(throttle.len() <= MAX_KEYS + 1, "{}", throttle.len());
        // The overflow bucket is spent by the flood; alice's own buckets are not.
        throttle
            .check("alice", "10.0.0.1")
            .expect("a key held before the flood keeps its bucket");
    }
}
