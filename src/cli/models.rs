//! `steward models`: the model registry.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::{cli_actor, open_store};
use crate::config::Settings;
use crate::data::{self as datasets, table::read_table};
use crate::registry::{self, Stage};
use crate::training;

#[derive(Subcommand)]
pub(super) enum ModelsCommand {
    /// List the versions of the registered model, with stages.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a version (default: Production), its metrics and the stage history.
    Show {
        version: Option<i32>,
        #[arg(long)]
        json: bool,
    },
    /// Move a version to a stage; promoting to Production archives the current one.
    Promote {
        version: i32,
        /// None, Staging, Production or Archived.
        #[arg(long, default_value = "Production")]
        stage: Stage,
        /// Why, kept with the transition and in the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        /// Promote to Production even though the version was trained on data whose validation
        /// failed (needs --reason; the override is audited).
        #[arg(long)]
        force: bool,
    },
    /// Roll Production back: to the version before it in the Production history, skipping
    /// versions rolled back from (so repeated rollbacks walk further back), or to --to V.
    Rollback {
        /// Why, kept with the transition and in the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        /// Roll back to this version (one that was in Production before).
        #[arg(long, value_name = "V")]
        to: Option<i32>,
        /// Roll back even though the target was trained on data whose validation failed
        /// (needs --reason; the override is audited).
        #[arg(long)]
        force: bool,
    },
    /// Score a version (default: Production) on labelled data: a file, or a dataset version.
    Evaluate {
        #[arg(long)]
        version: Option<i32>,
        /// A CSV or Parquet file with the dataset's columns, target included.
        #[arg(long, conflicts_with = "dataset_version")]
        file: Option<PathBuf>,
        /// A version of the configured dataset.
        #[arg(long)]
        dataset_version: Option<i32>,
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn models_command(cmd: ModelsCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let mut conn = open_store(settings)?;
    let model = &settings.registry.model;
    match cmd {
        ModelsCommand::List { json } => {
            let versions = registry::list_versions(&mut conn, model)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&versions)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<4} {:<11} {:<5} {:<10} {:>8} {:>8} {:<9}  created",
                "v", "stage", "model", "dataset", "cv auc", "hold auc", "run"
            );
            for v in versions {
                let m = v.metrics();
                let f = |k: &str| m.get(k).map(|x| format!("{x:.3}")).unwrap_or("-".into());
                println!(
                    "{:<4} {:<11} {:<5} {:<10} {:>8} {:>8} {:<9}  {} by {}",
                    v.version,
                    v.stage,
                    v.model_kind,
                    format!("{} v{}", v.dataset, v.dataset_version),
                    f("cv_roc_auc_mean"),
                    f("holdout_roc_auc"),
                    v.run_id.get(..8).unwrap_or(&v.run_id),
                    v.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    v.created_by
                );
            }
        }
        ModelsCommand::Show { version, json } => {
            let v = registry::resolve(&mut conn, model, version)?;
            let history: Vec<_> = registry::transitions(&mut conn, model)?
                .into_iter()
                .filter(|t| t.version == v.version)
                .collect();
            if json {
                let out = serde_json::json!({ "version": v, "metrics": v.metrics(), "transitions": history });
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{} v{} ({})", v.model, v.version, v.stage);
            println!("model     {}", v.model_kind);
            println!("run       {}", v.run_id);
            println!(
                "dataset   {} v{} (blake3 {})",
                v.dataset, v.dataset_version, v.dataset_hash
            );
            println!("artifact  blake3 {}", v.artifact_hash);
            for (k, x) in v.metrics() {
                if k.ends_with("_mean") || k.starts_with("holdout_") && !k.contains("by_round") {
                    println!("  {k:<28} {}", super::figure(&k, x));
                }
            }
            println!("transitions");
            for t in history {
                println!(
                    "  {}  {} → {}  by {}: {}",
                    t.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    t.from_stage,
                    t.to_stage,
                    t.actor,
                    t.reason
                );
            }
        }
        ModelsCommand::Promote {
            version,
            stage,
            reason,
            force,
        } => {
            let blobs = crate::data::blob::open(&settings.storage)?;
            let features = settings.dataset.feature_names();
            let servable = registry::Servable::new(&blobs, &features);
            let actor = cli_actor();
            let change = registry::Change {
                actor: &actor,
                reason: &reason,
                force,
            };
            // Forcing past the data gate says what is overridden; without --force the refusal
            // names the failures itself.
            if stage == Stage::Production && force {
                let target = registry::find_version(&mut conn, model, version)?;
                let failures = registry::data_failures(&mut conn, &target)?;
                if !failures.is_empty() {
                    eprintln!(
                        "warning: forcing past failed validation: {model} v{version} was trained on {} v{}, whose validation failed: {}",
                        target.dataset,
                        target.dataset_version,
                        failures.join(", ")
                    );
                }
            }
            let out = registry::transition(&mut conn, model, version, stage, change, &servable)?;
            let archived = out
                .archived
                .map(|a| format!("; v{a} archived"))
                .unwrap_or_default();
            println!("{model} v{version}: {} → {stage}{archived}", out.from_stage);
        }
        ModelsCommand::Rollback { reason, to, force } => {
            let blobs = crate::data::blob::open(&settings.storage)?;
            let features = settings.dataset.feature_names();
            let servable = registry::Servable::new(&blobs, &features);
            let actor = cli_actor();
            let change = registry::Change {
                actor: &actor,
                reason: &reason,
                force,
            };
            let out = registry::rollback(&mut conn, model, to, change, &servable)?;
            let failures = registry::data_failures(&mut conn, &out.version)?;
            if !failures.is_empty() {
                eprintln!(
                    "warning: forced past failed validation: v{} was trained on {} v{}, whose validation failed: {}",
                    out.version.version,
                    out.version.dataset,
                    out.version.dataset_version,
                    failures.join(", ")
                );
            }
            println!(
                "{model}: rolled back from v{} to v{}: {}",
                out.archived.map(|a| a.to_string()).unwrap_or("-".into()),
                out.version.version,
                describe(&out.version)
            );
        }
        ModelsCommand::Evaluate {
            version,
            file,
            dataset_version,
            json,
        } => {
            let blobs = crate::data::blob::open(&settings.storage)?;
            let mut validation = None;
            let (source, table) = match file {
                Some(path) => {
                    let bytes = std::fs::read(&path)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                    let name = path.display().to_string();
                    let table = read_table(&bytes, &name, &settings.dataset)?;
                    // The file is checked against the suite first: figures on data that
                    // fails it say so before anything else.
                    let schema = &settings.dataset;
                    if let Ok(suite) =
                        crate::data::expectations::Suite::load(&schema.suites_dir, &schema.suite)
                    {
                        let result = crate::data::expectations::validate(&suite, &table, &name);
                        let failed: Vec<String> = result
                            .results
                            .iter()
                            .filter(|r| !r.success)
                            .map(|r| r.label())
                            .collect();
                        if !failed.is_empty() && !json {
                            println!(
                                "warning: {name} fails the suite `{}`: {}",
                                suite.name,
                                failed.join(", ")
                            );
                        }
                        validation = Some(serde_json::json!({
                            "suite": suite.name,
                            "success": result.success,
                            "failed": failed,
                        }));
                    }
                    (name.clone(), table)
                }
                None => {
                    let dataset = &settings.dataset.name;
                    let n = datasets::resolve_version(&mut conn, dataset, dataset_version)?;
                    let (_, t) =
                        datasets::load_version(&mut conn, &blobs, &settings.dataset, dataset, n)?;
                    (format!("{dataset} v{n}"), t)
                }
            };
            let (v, m) = training::evaluate_on(&mut conn, &blobs, settings, version, &table)?;
            if json {
                let out = serde_json::json!({ "model": v.model, "version": v.version, "data": source, "validation": validation, "metrics": m });
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(ExitCode::SUCCESS);
            }
            let [[tn, fp], [fn_, tp]] = m.confusion;
            println!(
                "{} v{} ({}) on {source}: accuracy {:.3}, ROC-AUC {:.3}, F1 {:.3}, precision {:.3}, recall {:.3}, Brier {:.3}; {} rows (tn {tn}, fp {fp}, fn {fn_}, tp {tp})",
                v.model,
                v.version,
                v.model_kind,
                m.accuracy,
                m.roc_auc,
                m.f1,
                m.precision,
                m.recall,
                m.brier,
                tn + fp + fn_ + tp
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A version as the CLI names it: kind, key figures and the data it learned from.
fn describe(v: &registry::ModelVersion) -> String {
    let metrics = v.metrics();
    let figure = |name: &str| {
        metrics
            .get(name)
            .map(|x| format!("{x:.3}"))
            .unwrap_or_else(|| "–".into())
    };
    format!(
        "{}, CV ROC-AUC {}, holdout ROC-AUC {}, trained on {} v{}",
        v.model_kind,
        figure("cv_roc_auc_mean"),
        figure("holdout_roc_auc"),
        v.dataset,
        v.dataset_version
    )
}
