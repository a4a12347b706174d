//! `steward train`: cross-validates the candidate models on a dataset version.

use std::process::ExitCode;

use clap::Args;

use super::open_store;
use crate::config::Settings;
use crate::data::blob::LocalBlobStore;
use crate::data::{self as datasets, catalog};
use crate::ml::{self, models::ModelKind};

#[derive(Args)]
pub(super) struct TrainArgs {
    /// Dataset (default: dataset.name).
    #[arg(long)]
    dataset: Option<String>,
    /// Version to train on (default: the dataset's current version).
    #[arg(long)]
    dataset_version: Option<i32>,
    /// Models, comma-separated: lr, rf (default: training.models).
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<ModelKind>>,
    /// Train even when the version failed a critical expectation.
    #[arg(long)]
    force: bool,
    /// Print the reports as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn train_command(args: TrainArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let schema = &settings.dataset;
    let dataset = args.dataset.unwrap_or_else(|| schema.name.clone());
    let models = args
        .models
        .unwrap_or_else(|| settings.training.models.clone());
    let mut conn = open_store(settings)?;
    let blobs = LocalBlobStore::new(&settings.storage.dir);
    let number = datasets::resolve_version(&mut conn, &dataset, args.dataset_version)?;
    if let Some(run) = catalog::latest_runs_by_version(&mut conn, &dataset)?.get(&number) {
        if run.critical_failures > 0 && !args.force {
            let failed: Vec<String> = run
                .result()?
                .critical_failures()
                .iter()
                .map(|r| r.label())
                .collect();
            anyhow::bail!(
                "{dataset} v{number} failed critical expectations: {}; fix the data or pass --force",
                failed.join(", ")
            );
        }
    }
    let (version, table) = datasets::load_version(&mut conn, &blobs, schema, &dataset, number)?;
    let started = std::time::Instant::now();
    let reports = ml::evaluate_models(&table, schema, &settings.training, &models)
        .map_err(|e| anyhow::anyhow!("training on {dataset} v{number}: {e}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{dataset} v{number} ({} rows, blake3 {}): stratified {}-fold cross-validation, seed {}, threshold {}",
        version.row_count,
        &version.hash[..12],
        settings.training.folds,
        settings.training.seed,
        settings.training.threshold
    );
    println!(
        "  {:<20} {:>15} {:>15} {:>15} {:>15} {:>15}  F1-optimal threshold",
        "model", "accuracy", "F1", "ROC-AUC", "PR-AUC", "Brier"
    );
    for r in &reports {
        let s = |x: ml::cv::Spread| format!("{:.3} ± {:.3}", x.mean, x.std);
        println!(
            "  {:<20} {:>15} {:>15} {:>15} {:>15} {:>15}  {:.3} (F1 {:.3})",
            r.model.name(),
            s(r.accuracy),
            s(r.f1),
            s(r.roc_auc),
            s(r.pr_auc),
            s(r.brier),
            r.f1_optimal_threshold.0,
            r.f1_optimal_threshold.1
        );
    }
    println!("  ({:.2} s)", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}
