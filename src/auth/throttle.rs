//! Login throttling: a token bucket per user name and per client address (governor). Every
//! attempt spends from both buckets, so guessing is slow whichever one an attacker varies.
//!
//! Memory is bounded: keys are well-formed user names (checked by the caller) and addresses,
//! refilled buckets are swept, and past [`MAX_KEYS`] buckets every new name or address shares
//! one overflow bucket, so varying them fills no more memory; it only throttles harder.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::AppError;

/// Most buckets kept (each holds a name of at most 64 bytes, or an address).
pub const MAX_KEYS: usize = 50_000;

pub struct LoginThrottle {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl LoginThrottle {
    pub fn new(attempts_per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(attempts_per_minute).unwrap_or(NonZeroU32::MIN);
        LoginThrottle {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }
    }

    /// Spends one attempt for this user and this client, or says how long to wait.
    pub fn check(&self, username: &str, client: &str) -> Result<(), AppError> {
        if self.limiter.len() >= MAX_KEYS {
            self.limiter.retain_recent();
        }
        let full = self.limiter.len() >= MAX_KEYS;
        for key in [
            format!("user:{}", username.to_lowercase()),
            format!("client:{client}"),
        ] {
            let key = if full { "overflow".to_owned() } else { key };
            if let Err(not_until) = self.limiter.check_key(&key) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Err(AppError::RateLimited {
                    retry_after_secs: wait.as_secs().max(1),
                });
            }
        }
        Ok(())
    }

    /// Drops buckets that have refilled, so the map does not grow without bound.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
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
    fn the_buckets_stay_bounded() {
        let throttle = LoginThrottle::new(1000);
        for i in 0..(MAX_KEYS + 500) {
            let _ = throttle.check(&format!("u{i}"), &format!("c{i}"));
        }
        assert!(
            throttle.limiter.len() <= MAX_KEYS + 2,
            "{}",
            throttle.limiter.len()
        );
    }
}
