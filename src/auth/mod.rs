//! Users, roles, passwords, API tokens, dashboard sessions and the request identity.
//!
//! Owns the `users`, `api_tokens` and `sessions` tables. Every change it makes is written to the
//! audit log by the caller-facing functions in [`accounts`].

pub mod accounts;
pub mod basic;
pub mod identity;
pub mod password;
pub mod role;
pub mod secrets;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod users;

pub use identity::Identity;
pub use role::Role;
