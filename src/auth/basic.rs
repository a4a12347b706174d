//! HTTP Basic credentials, as MLflow's client sends them (`MLFLOW_TRACKING_USERNAME` and
//! `MLFLOW_TRACKING_PASSWORD`): a user name and password mapped to Steward's user and role.
//!
//! A password check is argon2 (tens of milliseconds), and MLflow's client sends the same
//! credentials with every call, so a checked pair is remembered for [`REMEMBER`] by its
//! HMAC-SHA256 under a random key of the process (never the password itself), at most [`MAX_ENTRIES`] pairs. A remembered
//! pair still names the user by id: the caller reads the user on every request, so a disabled
//! user or a lowered role takes effect at once. (Steward has no password change: a user is
//! disabled and a new one made.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a checked pair is taken without checking the password again.
pub const REMEMBER: Duration = Duration::from_secs(15 * 60);
/// Most pairs remembered; when full, the table is emptied (a flood of pairs only costs
/// password checks, which the login throttle bounds).
pub const MAX_ENTRIES: usize = 1024;

pub struct BasicCache {
    /// A random key of this process: the cache keys are HMACs, useless outside it.
    key: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    /// One password check at a time for pairs not remembered: a client's calls that all miss
    /// at once (its first, or after [`REMEMBER`]) cost one check and one throttle attempt.
    pub checking: tokio::sync::Mutex<()>,
}

impl Default for BasicCache {
    fn default() -> Self {
        BasicCache {
            key: rand::random(),
            entries: Mutex::default(),
            checking: tokio::sync::Mutex::default(),
        }
    }
}

impl BasicCache {
    /// HMAC-SHA256 of the pair under this process's key.
    fn digest(&self, username: &str, password: &str) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = match hmac::Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            // HMAC takes a key of any length; should it not, an unkeyed digest of the pair.
            Err(_) => {
                let mut hasher = Sha256::new();
                hasher.update(username.as_bytes());
                hasher.update([0u8]);
                hasher.update(password.as_bytes());
                return hasher.finalize().into();
            }
        };
        mac.update(username.as_bytes());
        mac.update(&[0u8]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The user id a pair was checked for within [`REMEMBER`], if any.
    pub fn lookup(&self, username: &str, password: &str) -> Option<String> {
        let key = self.digest(username, password);
        let mut entries = self.entries.lock().ok()?;
        match entries.get(&key) {
            Some((user_id, at)) if at.elapsed() < REMEMBER => Some(user_id.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remembers that this pair is `user_id`'s.
    pub fn remember(&self, username: &str, password: &str, user_id: &str) {
        let key = self.digest(username, password);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (user_id.to_owned(), Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_remembered_by_both_halves() {
        let cache = BasicCache::default();
        assert_eq!(cache.lookup("ada", "pw"), None);
        cache.remember("ada", "pw", "u1");
        assert_eq!(cache.lookup("ada", "pw").as_deref(), Some("u1"));
        assert_eq!(cache.lookup("ada", "other"), None);
        // The separator keeps "ad" + "apw" apart from "ada" + "pw".
        assert_eq!(cache.lookup("ad", "apw"), None);
    }
}
