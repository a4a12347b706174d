//! `steward train`: trains the candidate models on a dataset version as tracked runs, and
//! optionally registers and promotes the best.

use std::process::ExitCode;
use std::sync::Mutex;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::{cli_actor, open_db};
use crate::config::Settings;
use crate::ml::models::ModelKind;
use crate::training::{self, TrainRequest};

#[derive(Args)]
pub(super) struct TrainArgs {
    /// Dataset (default: dataset.name).
    #[arg(long)]
    dataset: Option<String>,
    /// Version to train on (default: the dataset's current version).
    #[arg(long)]
    dataset_version: Option<i32>,
    /// Models, comma-separated: lr, rf, xgb (default: training.models).
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<ModelKind>>,
    /// Register the best run (by training.select_by, default cv_roc_auc_mean) as a new model
    /// version.
    #[arg(long)]
    register: bool,
    /// Register the best run and promote it to Production.
    #[arg(long)]
    promote: bool,
    /// Experiment to record the runs under (default: training.experiment).
    #[arg(long)]
    experiment: Option<String>,
    /// Train even when the version failed a critical expectation (the runs are tagged
    /// `forced`); with --promote and --reason, also promote past failed validation.
    #[arg(long)]
    force: bool,
    /// Why: recorded with the promotion; needed with --force to promote a model trained on
    /// data that failed validation.
    #[arg(long)]
    reason: Option<String>,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn train_command(args: TrainArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let db = open_db(settings)?;
    let blobs = crate::data::blob::open(&settings.storage)?;
    let promote = training::servable_promotion(&blobs, settings);
    let request = TrainRequest {
        dataset: args.dataset,
        version: args.dataset_version,
        models: args.models,
        force: args.force,
        register: args.register || args.promote,
        promote: args.promote,
        experiment: args.experiment,
        reason: args.reason,
        source: "cli".into(),
    };
    {
        // Training on data that did not pass its validation is told, not hidden: critical
        // failures still need --force, the others train with the runs tagged.
        let mut conn = db.get()?;
        let dataset = request
            .dataset
            .clone()
            .unwrap_or_else(|| settings.dataset.name.clone());
        if let Ok(n) = crate::data::resolve_version(&mut conn, &dataset, request.version) {
            let warnings =
                training::ValidationGate::of(&mut conn, &dataset, n)?.warnings(&dataset, n);
            if !warnings.is_empty() {
                eprintln!(
                    "warning: {dataset} v{n} did not pass its validation: {}{}",
                    warnings.join(", "),
                    if request.register {
                        "; a version registered from it needs --force and --reason to be promoted"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    // One bar per model; indicatif draws only on a terminal.
    let bar: Mutex<Option<(ModelKind, ProgressBar)>> = Mutex::new(None);
    let style = ProgressStyle::with_template("{msg:>22} [{bar:30}] {pos}/{len} fits {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let on_progress = |kind: ModelKind, done: usize, total: usize| {
        let Ok(mut slot) = bar.lock() else { return };
        if slot.as_ref().is_none_or(|(k, _)| *k != kind) {
            if let Some((_, old)) = slot.take() {
                old.finish();
            }
            let pb = ProgressBar::new(total as u64).with_style(style.clone());
            pb.set_message(kind.name());
            *slot = Some((kind, pb));
        }
        if let Some((_, pb)) = slot.as_ref() {
            pb.set_position(done as u64);
        }
    };
    let outcome = training::train(
        &db,
        &blobs,
        settings,
        &request,
        &cli_actor(),
        &on_progress,
        &promote,
    );
    if let Ok(mut slot) = bar.lock() {
        if let Some((_, pb)) = slot.take() {
            pb.finish();
        }
    }
    let outcome = outcome?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        let t = &settings.training;
        println!(
            "{} v{} ({} rows, blake3 {}): stratified {}-fold cross-validation, seed {}, holdout {}, imbalance {}",
            outcome.dataset,
            outcome.dataset_version,
            outcome.rows,
            outcome
                .dataset_hash
                .get(..12)
                .unwrap_or(&outcome.dataset_hash),
            t.folds,
            t.seed,
            t.holdout,
            t.imbalance.as_str(),
        );
        println!(
            "  {:<9} {:<20} {:>15} {:>15} {:>15} {:>9} {:>9}  F1-optimal threshold",
            "run", "model", "accuracy", "F1", "ROC-AUC", "holdout", "fit s"
        );
        for c in &outcome.candidates {
            let Some(r) = &c.report else {
                println!(
                    "  {:<9} {:<20} failed: {}",
                    c.run.short_id(),
                    c.run.model_kind,
                    c.run.error.as_deref().unwrap_or("")
                );
                continue;
            };
            let s = |x: crate::ml::cv::Spread| format!("{:.3} ± {:.3}", x.mean, x.std);
            let best = if outcome.best_run.as_deref() == Some(c.run.id.as_str()) {
                " *"
            } else {
                ""
            };
            println!(
                "  {:<9} {:<20} {:>15} {:>15} {:>15} {:>9.3} {:>9.2}  {:.3} (F1 {:.3}){best}",
                c.run.short_id(),
                r.model.name(),
                s(r.cv.accuracy),
                s(r.cv.f1),
                s(r.cv.roc_auc),
                r.holdout.roc_auc,
                r.fit_seconds,
                r.f1_optimal_threshold.0,
                r.f1_optimal_threshold.1
            );
        }
        if let Some(v) = &outcome.registered {
            println!(
                "registered {} v{} ({}) from run {}",
                v.model,
                v.version,
                v.model_kind,
                v.run_id.get(..8).unwrap_or(&v.run_id)
            );
        }
        if let Some(p) = &outcome.promoted {
            let archived = p
                .archived
                .map(|a| format!("; v{a} archived"))
                .unwrap_or_default();
            println!(
                "promoted {} v{} to Production{archived}",
                p.version.model, p.version.version
            );
        }
        println!(
            "  (* best by {}; {:.2} s)",
            settings.training.select_by, outcome.seconds
        );
    }
    if let Some(why) = &outcome.promotion_refused {
        eprintln!("error: registered but not promoted: {why}");
    }
    let failed = outcome.candidates.iter().any(|c| c.report.is_none())
        || outcome.promotion_refused.is_some();
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
