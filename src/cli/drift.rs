//! `steward drift`: drift reports. `compare` tests any two files (or a dataset version against a
//! file) feature by feature, like Evidently's `Report.run(reference, current)`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::Read;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::data::file_label;
use super::{cli_actor, open_db_as, open_store};
use crate::config::Settings;
use crate::data::stream::Scan;
use crate::data::{self as datasets, table};
use crate::monitoring::check::{self, CheckContext, CheckReport};
use crate::monitoring::drift::{DriftReport, Side, compare, histograms};
use crate::monitoring::settings::check_threshold;
use crate::monitoring::stattests::StatTest;
use crate::reports::drift::fmt;

#[derive(Subcommand)]
pub enum DriftCommand {
    /// Compare a current file with a reference (a file or a version of the configured dataset),
    /// feature by feature; exits 0 whether or not it finds drift.
    Compare(CompareArgs),
    /// Check the Production version's window of the prediction log now, store the check and
    /// print it; exits 0 whether or not it finds drift.
    Run {
        /// Print the check as JSON (the shape of GET /api/v1/drift/checks/{id}).
        #[arg(long)]
        json: bool,
    },
    /// The stored checks, newest first.
    Checks {
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=500))]
        limit: i64,
    },
    /// One stored check.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Write a stored check as a self-contained HTML report (charts, never rows).
    Report {
        id: String,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        html: PathBuf,
    },
}

#[derive(Args)]
pub struct CompareArgs {
    /// The reference data: a CSV or Parquet file read with the dataset schema.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "reference_version",
        required_unless_present = "reference_version"
    )]
    reference: Option<PathBuf>,
    /// The reference data: this version of the configured dataset.
    #[arg(long, value_name = "V")]
    reference_version: Option<i32>,
    /// The current data: a CSV or Parquet file read with the dataset schema.
    #[arg(long, value_name = "FILE")]
    current: PathBuf,
    /// Use this test for every feature it applies to: ks, chisquare, z, wasserstein,
    /// jensenshannon or psi (default: monitoring.stattest, else Evidently's choice per feature).
    #[arg(long, value_name = "NAME", value_parser = parse_stattest)]
    stattest: Option<StatTest>,
    /// One threshold for every feature (default: monitoring.threshold, else each test's own).
    #[arg(long, value_name = "X", value_parser = parse_threshold)]
    threshold: Option<f64>,
    /// Print the report as JSON (the stable contract for scripts).
    #[arg(long)]
    json: bool,
    /// Also write the report as a self-contained HTML file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

fn parse_stattest(raw: &str) -> Result<StatTest, String> {
    StatTest::parse(raw)
}

fn parse_threshold(raw: &str) -> Result<f64, String> {
    let t: f64 = raw.parse().map_err(|_| "not a number".to_owned())?;
    check_threshold(t).map(|()| t)
}

pub(super) fn drift_command(cmd: DriftCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let args = match cmd {
        DriftCommand::Compare(args) => args,
        DriftCommand::Run { json } => return run_check(settings, json),
        DriftCommand::Checks { limit } => return list_checks(settings, limit),
        DriftCommand::Show { id, json } => return show_check(settings, &id, json),
        DriftCommand::Report { id, html } => return write_report(settings, &id, &html),
    };
    // Options first: a usage error before any file is read.
    let mut options = settings.monitoring.options();
    if args.stattest.is_some() {
        options.stattest = args.stattest;
    }
    if let Some(t) = args.threshold {
        if let Err(m) = crate::monitoring::settings::check_threshold_for(options.stattest, t) {
            // A usage error: exit 2, like clap's.
            eprintln!("error: --threshold {m}");
            return Ok(ExitCode::from(2));
        }
        options.threshold = Some(t);
    }
    // The two sides are read at once, each on its own thread.
    let (reference, current) = std::thread::scope(|scope| {
        let current = scope.spawn(|| read_side(&args.current, settings));
        let reference = reference_side(&args, settings);
        let current = current
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("reading the current data failed")));
        (reference, current)
    });
    let (reference, current) = (reference?, current?);
    if reference.rows == 0 {
        anyhow::bail!("the reference has no rows");
    }
    if current.rows == 0 {
        anyhow::bail!("the current data has no rows");
    }
    let report = compare(&reference, &current, &options);
    if let Some(path) = &args.html {
        let label = |p: Option<&PathBuf>| {
            p.map(|p| file_label(p)).unwrap_or_else(|| {
                format!(
                    "{} v{}",
                    settings.dataset.name,
                    args.reference_version.unwrap_or(0)
                )
            })
        };
        let html = crate::reports::drift::compare_report(
            &label(args.reference.as_ref()),
            &label(Some(&args.current)),
            &report,
            &histograms(&reference, &current),
        );
        std::fs::write(path, html).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn reference_side(args: &CompareArgs, settings: &Settings) -> anyhow::Result<Side> {
    let schema = &settings.dataset;
    match (&args.reference, args.reference_version) {
        (Some(file), None) => read_side(file, settings),
        (None, Some(version)) => {
            let db = open_db_as(settings, crate::audit::Opening::ReadOnly)?;
            let mut conn = db.get()?;
            let blobs = crate::data::blob::open(&settings.storage)?;
            let (_, t) = datasets::load_version(&mut conn, &blobs, schema, &schema.name, version)?;
            Ok(Side::from_table(&t, schema))
        }
        _ => anyhow::bail!("give --reference FILE or --reference-version V"),
    }
}

/// A file's side: a CSV streamed (a bad row named by its line, the target column optional),
/// Parquet read whole by `read_table`.
fn read_side(path: &Path, settings: &Settings) -> anyhow::Result<Side> {
    let schema = &settings.dataset;
    let label = file_label(path);
    let open =
        || std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()));
    match Side::from_csv(std::io::BufReader::new(open()?), &label, schema) {
        Ok(side) => return Ok(side),
        // Parquet: read whole below.
        Err(Scan::Unusual) => {}
        Err(Scan::Bad(e)) => return Err(e.into()),
        Err(Scan::Io(e)) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display())));
        }
    }
    let mut bytes = Vec::new();
    open()?
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let t = table::read_table(&bytes, &label, schema)?;
    drop(bytes);
    Ok(Side::from_table(&t, schema))
}

fn print_report(r: &DriftReport) {
    println!(
        "reference {} rows, current {} rows",
        r.reference_rows, r.current_rows
    );
    println!(
        "{:<12} {:<11} {:>5} {:<13} {:>10} {:>9} {:<7} {:>8} {:>8} {:>7}",
        "feature",
        "kind",
        "uniq",
        "stattest",
        "score",
        "threshold",
        "drift",
        "effect",
        "psi",
        "missing"
    );
    for f in &r.features {
        if let Some(reason) = &f.skipped {
            println!("{:<12} {:<11} skipped: {reason}", f.feature, f.kind);
            continue;
        }
        println!(
            "{:<12} {:<11} {:>5} {:<13} {:>10} {:>9} {:<7} {:>8} {:>8} {:>7}",
            f.feature,
            f.kind,
            f.n_unique,
            f.stattest.map(StatTest::as_str).unwrap_or("-"),
            fmt(f.score),
            fmt(f.threshold),
            if f.drifted { "DRIFT" } else { "-" },
            fmt(f.effect_size),
            fmt(f.psi),
            format!("{}/{}", f.missing_reference, f.missing_current),
        );
    }
    println!(
        "drift share {:.3} ({} of {} features){}",
        r.drift_share,
        r.drifted_features,
        r.tested_features,
        if r.dataset_drift {
            ": DATASET DRIFT"
        } else {
            ": no dataset drift"
        }
    );
}

fn run_check(settings: &Settings, json: bool) -> anyhow::Result<ExitCode> {
    let mut conn = open_store(settings)?;
    let blobs = crate::data::blob::open(&settings.storage)?;
    let actor = cli_actor();
    let ctx = CheckContext {
        schema: &settings.dataset,
        monitoring: &settings.monitoring,
        model: &settings.registry.model,
        blobs: &blobs,
        rejected_requests: None,
        trigger: "manual",
        actor: &actor,
    };
    let report = check::run(&mut conn, &ctx)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_check(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn list_checks(settings: &Settings, limit: i64) -> anyhow::Result<ExitCode> {
    let db = open_db_as(settings, crate::audit::Opening::ReadOnly)?;
    let checks = check::list(&mut *db.get()?, limit)?;
    println!(
        "{:<36}  {:<19}  {:<9}  {:>7}  {:>6}  {:>5}  {:>8}  {:>9}",
        "id", "when (UTC)", "status", "version", "rows", "share", "acc live", "acc est."
    );
    for c in checks {
        println!(
            "{:<36}  {:<19}  {:<9}  {:>7}  {:>6}  {:>5}  {:>8}  {:>9}",
            c.id,
            c.created_at.format("%Y-%m-%d %H:%M:%S"),
            c.status,
            format!("v{}", c.version),
            c.window_rows,
            c.drift_share.map_or("-".into(), |s| format!("{s:.2}")),
            c.accuracy_live.map_or("-".into(), |s| format!("{s:.3}")),
            c.accuracy_estimated
                .map_or("-".into(), |s| format!("{s:.3}")),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn stored_check(settings: &Settings, id: &str) -> anyhow::Result<CheckReport> {
    if uuid::Uuid::parse_str(id).is_err() {
        anyhow::bail!(
            "no such drift check (ids look like 019a...-...; see `steward drift checks`)"
        );
    }
    let db = open_db_as(settings, crate::audit::Opening::ReadOnly)?;
    let value = check::get(&mut *db.get()?, id)?;
    Ok(check::parse_stored(value)?)
}

fn show_check(settings: &Settings, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let report = stored_check(settings, id)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_check(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn write_report(settings: &Settings, id: &str, html: &Path) -> anyhow::Result<ExitCode> {
    let report = stored_check(settings, id)?;
    let text = crate::reports::drift::check_report(&report);
    std::fs::write(html, &text).with_context(|| format!("cannot write {}", html.display()))?;
    println!("wrote {} ({} bytes)", html.display(), text.len());
    Ok(ExitCode::SUCCESS)
}

fn print_check(r: &CheckReport) {
    println!(
        "check {} of {} v{} ({} by {}): {}",
        r.id, r.model, r.version, r.trigger, r.actor, r.status
    );
    println!(
        "window: {} rows, {} labelled (at most {}{})",
        r.window.rows,
        r.window.labelled_rows,
        r.window.max_rows,
        if r.window.hours > 0 {
            format!(", last {} h", r.window.hours)
        } else {
            String::new()
        }
    );
    if let Some(reason) = &r.reason {
        println!("skipped: {reason}");
        return;
    }
    if let Some(d) = &r.drift {
        print_report(d);
    }
    for (what, f) in [
        ("prediction drift", &r.prediction_drift),
        ("target drift", &r.target_drift),
    ] {
        match f {
            Some(f) => println!(
                "{what}: {} {} (threshold {}){}",
                f.stattest.map(StatTest::as_str).unwrap_or("-"),
                fmt(f.score),
                fmt(f.threshold),
                if f.drifted { ": DRIFT" } else { "" }
            ),
            None => println!("{what}: not enough labelled rows (monitoring.min_labels)"),
        }
    }
    if let Some(q) = &r.data_quality {
        if q.failures.is_empty() {
            println!("data quality: passed");
        } else {
            println!("data quality: FAILED");
            for f in &q.failures {
                println!("  - {f}");
            }
        }
        if let Some(n) = q.rejected_requests {
            println!("rejected requests since the previous check: {n}");
        }
    }
    if let Some(p) = &r.performance {
        let holdout = |k: &str| fmt(p.holdout.get(k).copied());
        match &p.live {
            Some(l) => println!(
                "live ({} labelled): accuracy {} (holdout {}), F1 {} ({}), ROC-AUC {} ({}){}",
                p.labelled_rows,
                fmt(Some(l.accuracy)),
                holdout("holdout_accuracy"),
                fmt(Some(l.f1)),
                holdout("holdout_f1"),
                fmt(l.roc_auc),
                holdout("holdout_roc_auc"),
                if p.decay { ": DECAY" } else { "" }
            ),
            None => println!("live: {} labelled rows, too few", p.labelled_rows),
        }
        if let Some(e) = &p.estimated {
            println!(
                "estimated (no labels): accuracy {} [{}, {}], F1 {}, ROC-AUC {}{}",
                fmt(Some(e.accuracy)),
                fmt(Some(e.accuracy_band[0])),
                fmt(Some(e.accuracy_band[1])),
                fmt(Some(e.f1)),
                fmt(e.roc_auc),
                if p.estimated_decay {
                    ": ESTIMATED DECAY"
                } else {
                    ""
                }
            );
        }
    }
    for a in &r.alerts {
        println!(
            "ALERT {} ({:?}): {}",
            a.alert_type.as_str(),
            a.severity,
            a.summary
        );
    }
}
