//! Random secrets (tokens, session ids, CSRF tokens, generated passwords) and their digests.

use rand::Rng;
use rand::distr::Alphanumeric;

/// A random alphanumeric string from the OS-seeded thread RNG (a CSPRNG).
pub fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Digest under which a high-entropy secret is stored; the secret itself never is.
pub fn digest(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    blake3::hash(a.as_bytes()) == blake3::hash(b.as_bytes())
}
