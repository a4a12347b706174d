//! Steward's integration tests: one binary, each test against a real server on a loopback
//! port with its own fresh store (SQLite, or PostgreSQL when TEST_DATABASE_URL is set).
#![expect(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test's failed expectation is its failure, with the message saying which"
)]

mod helpers;

mod access;
mod agent;
mod alerting;
mod audit;
mod auth;
mod bounds;
mod cli;
mod control;
mod dashboard;
mod data;
mod deploy;
mod drift;
mod figures;
mod layers;
mod mlflow;
mod notify;
mod probes;
mod replicas;
mod reports;
mod routes;
mod serving;
mod storage;
mod store;
mod train;
