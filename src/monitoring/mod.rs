//! Monitoring: drift statistics with Evidently's names and numbers, drift reports between a
//! reference and a current side, and (on the scheduler) the checks over the prediction log.
//!
//! Owns: `stattests` and `ks` (the statistics), `drift` (reports). May read `data` (the schema
//! and tables); never the web layer, the API or the agent.

pub mod drift;
pub mod ks;
pub mod settings;
pub mod stattests;

#[cfg(test)]
mod golden;
