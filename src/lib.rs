//! Steward: one binary that keeps a tabular classifier healthy in production.
//!
//! The modules, one per capability (see DESIGN.md for the map):
//! - [`config`]: settings and their validation;
//! - [`db`]: the Diesel store over SQLite or PostgreSQL, and migrations;
//! - [`auth`]: users, roles, tokens, sessions, the request identity;
//! - [`data`]: dataset versions, the blob store, expectation suites and validation;
//! - [`ml`]: preprocessing, models, cross-validation and metrics;
//! - [`audit`]: the hash-chained audit log;
//! - [`monitoring`]: drift, data quality and performance checks; [`agent`]: alerts → incidents
//!   → decisions → actions, with approvals;
//! - [`api`]: the JSON API and the probes; [`web`]: the HTMX dashboard; [`http`]: the HTTP
//!   plumbing both share (identity, route tables with their access, bodies, headers);
//! - [`telemetry`]: metrics and logs; [`scheduler`]: background jobs;
//! - [`startup`]: building and running the process; [`cli`]: the command line.

pub mod agent;
pub mod api;
pub mod audit;
pub mod auth;
pub mod charts;
pub mod cli;
pub mod config;
pub mod data;
pub mod db;
pub mod error;
pub mod http;
pub mod ml;
pub mod monitoring;
pub mod notify;
pub mod outbox;
pub mod overview;
pub mod registry;
pub mod reports;
pub mod scheduler;
pub mod serving;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tracking;
pub mod training;
pub mod web;
