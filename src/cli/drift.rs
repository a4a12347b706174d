//! `steward drift`: drift reports. `compare` tests any two files (or a dataset version against a
//! file) feature by feature, like Evidently's `Report.run(reference, current)`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::Read;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::open_db_as;
use crate::config::Settings;
use crate::data::blob::LocalBlobStore;
use crate::data::stream::Scan;
use crate::data::{self as datasets, table};
use crate::monitoring::drift::{DriftReport, Side, compare};
use crate::monitoring::settings::check_threshold;
use crate::monitoring::stattests::StatTest;

#[derive(Subcommand)]
pub enum DriftCommand {
    /// Compare a current file with a reference (a file or a version of the configured dataset),
    /// feature by feature; exits 0 whether or not it finds drift.
    Compare(CompareArgs),
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
}

fn parse_stattest(raw: &str) -> Result<StatTest, String> {
    StatTest::parse(raw)
}

fn parse_threshold(raw: &str) -> Result<f64, String> {
    let t: f64 = raw.parse().map_err(|_| "not a number".to_owned())?;
    check_threshold(t).map(|()| t)
}

pub(super) fn drift_command(cmd: DriftCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let DriftCommand::Compare(args) = cmd;
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
    let mut options = settings.monitoring.options();
    if args.stattest.is_some() {
        options.stattest = args.stattest;
    }
    if args.threshold.is_some() {
        options.threshold = args.threshold;
    }
    let report = compare(&reference, &current, &options);
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
            let blobs = LocalBlobStore::new(&settings.storage.dir);
            let (_, t) = datasets::load_version(&mut conn, &blobs, schema, &schema.name, version)?;
            Ok(Side::from_table(&t, schema))
        }
        _ => anyhow::bail!("give --reference FILE or --reference-version V"),
    }
}

/// A file's side: streamed when it is a plain CSV, else read whole by `read_table` (Parquet, or
/// a file with a problem, which `read_table` then names).
fn read_side(path: &Path, settings: &Settings) -> anyhow::Result<Side> {
    let schema = &settings.dataset;
    let label = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let open =
        || std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()));
    match Side::from_csv(std::io::BufReader::new(open()?), &label, schema) {
        Ok(side) if side.rows > 0 => return Ok(side),
        Ok(_) | Err(Scan::Unusual) => {}
        Err(Scan::Header(e)) => return Err(e.into()),
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

fn fmt_score(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v != 0.0 && v.abs() < 1e-3 => format!("{v:.2e}"),
        Some(v) => format!("{v:.4}"),
    }
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
            fmt_score(f.score),
            fmt_score(f.threshold),
            if f.drifted { "DRIFT" } else { "-" },
            fmt_score(f.effect_size),
            fmt_score(f.psi),
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
