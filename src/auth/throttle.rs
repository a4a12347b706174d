//! Failed-login throttling: a token bucket per user name and per client address (governor).
//! Every attempt spends from both buckets, so guessing is slow whichever one an attacker varies.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::AppError;

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
        for key in [
            format!("user:{}", username.to_lowercase()),
            format!("client:{client}"),
        ] {
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
}
