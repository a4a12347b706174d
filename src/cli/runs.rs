//! `steward runs`: the tracked training runs.

use std::process::ExitCode;

use clap::Subcommand;

use super::open_store;
use crate::config::Settings;
use crate::tracking;

#[derive(Subcommand)]
pub(super) enum RunsCommand {
    /// List runs, newest first, with their headline metrics.
    List {
        /// Only this experiment's runs.
        #[arg(long)]
        experiment: Option<String>,
        /// Sort by this metric, best first (e.g. cv_roc_auc_mean, holdout_f1, cv_log_loss_mean).
        #[arg(long)]
        sort: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show one run: params, metrics, tags and artifacts (an id or a unique prefix of 6+).
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Compare two runs side by side.
    Compare {
        a: String,
        b: String,
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn runs_command(cmd: RunsCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let mut conn = open_store(settings)?;
    match cmd {
        RunsCommand::List {
            experiment,
            sort,
            limit,
            json,
        } => {
            let rows =
                tracking::runs_table(&mut conn, experiment.as_deref(), sort.as_deref(), limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<9} {:<16} {:<5} {:<9} {:<10} {:>8} {:>8} {:>8} {:>8}  started",
                "run",
                "experiment",
                "model",
                "status",
                "dataset",
                "cv auc",
                "cv acc",
                "cv f1",
                "hold auc"
            );
            for row in &rows {
                let r = &row.run;
                let f = |k: &str| {
                    row.metrics
                        .get(k)
                        .map(|v| format!("{v:.3}"))
                        .unwrap_or_else(|| "-".into())
                };
                println!(
                    "{:<9} {:<16} {:<5} {:<9} {:<10} {:>8} {:>8} {:>8} {:>8}  {}",
                    r.short_id(),
                    r.experiment,
                    r.model_kind,
                    r.status,
                    format!("{} v{}", r.dataset, r.dataset_version),
                    f("cv_roc_auc_mean"),
                    f("cv_accuracy_mean"),
                    f("cv_f1_mean"),
                    f("holdout_roc_auc"),
                    r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
                );
            }
        }
        RunsCommand::Show { id, json } => {
            let d = tracking::run_detail(&mut conn, &id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(ExitCode::SUCCESS);
            }
            let r = &d.run;
            println!("run        {}", r.id);
            println!("experiment {}", r.experiment);
            println!("model      {}", r.model_kind);
            println!(
                "status     {}{}",
                r.status,
                r.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
            println!(
                "dataset    {} v{} (blake3 {})",
                r.dataset, r.dataset_version, r.dataset_hash
            );
            println!(
                "started    {} by {}; {}",
                r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
                r.created_by,
                r.duration_ms
                    .map(|ms| format!("{:.2} s", ms as f64 / 1000.0))
                    .unwrap_or_else(|| "still running".into())
            );
            println!("steward    {} (owner {})", r.steward_version, r.owner);
            println!("params     {}", d.params);
            for (k, v) in &d.tags {
                println!("tag        {k} = {v}");
            }
            println!("metrics");
            for (k, v) in &d.metrics {
                let steps = d
                    .history
                    .get(k)
                    .map(|h| format!("  ({} steps)", h.len()))
                    .unwrap_or_default();
                println!("  {k:<28} {}{steps}", super::figure(k, *v));
            }
            println!("artifacts");
            for a in &d.artifacts {
                println!(
                    "  {:<24} {:>9} bytes  {}  blake3 {}",
                    a.name,
                    a.size_bytes,
                    a.media_type,
                    a.hash.get(..12).unwrap_or(&a.hash)
                );
            }
        }
        RunsCommand::Compare { a, b, json } => {
            let c = tracking::compare(&mut conn, &a, &b)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c)?);
                return Ok(ExitCode::SUCCESS);
            }
            let show = |v: &Option<serde_json::Value>| match v {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "-".into(),
            };
            let same_data = c.a.run.dataset == c.b.run.dataset
                && c.a.run.dataset_version == c.b.run.dataset_version
                && c.a.run.dataset_hash == c.b.run.dataset_hash;
            if !same_data {
                eprintln!(
                    "warning: different data: {} learned from {} v{} ({}), {} from {} v{} ({}); \
                     their figures are not compared",
                    c.a.run.short_id(),
                    c.a.run.dataset,
                    c.a.run.dataset_version,
                    c.a.run.short_hash(),
                    c.b.run.short_id(),
                    c.b.run.dataset,
                    c.b.run.dataset_version,
                    c.b.run.short_hash()
                );
            }
            println!(
                "{:<28} {:>14} {:>14}",
                "",
                c.a.run.short_id(),
                c.b.run.short_id()
            );
            println!(
                "{:<28} {:>14} {:>14}",
                "model", c.a.run.model_kind, c.b.run.model_kind
            );
            println!(
                "{:<28} {:>14} {:>14}",
                "data",
                format!("{} v{}", c.a.run.dataset, c.a.run.dataset_version),
                format!("{} v{}", c.b.run.dataset, c.b.run.dataset_version)
            );
            for p in c.params.iter().filter(|p| p.name != "model") {
                println!("{:<28} {:>14} {:>14}", p.name, show(&p.a), show(&p.b));
            }
            let delta_heading = if same_data { "b − a" } else { "" };
            println!(
                "{:<28} {:>14} {:>14} {:>10}",
                "metric", "", "", delta_heading
            );
            for m in &c.metrics {
                let f = |v: Option<f64>| v.map(|v| super::figure(&m.name, v)).unwrap_or("-".into());
                let d = match m.delta() {
                    Some(d) if same_data => {
                        let shown = super::figure(&m.name, d);
                        if d >= 0.0 { format!("+{shown}") } else { shown }
                    }
                    _ => String::new(),
                };
                println!("{:<28} {:>14} {:>14} {:>10}", m.name, f(m.a), f(m.b), d);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
