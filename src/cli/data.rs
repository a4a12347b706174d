//! `steward data`, `steward validate` and `steward expectations`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{cli_actor, open_store};
use crate::config::Settings;
use crate::data::blob::BlobStore;
use crate::data::catalog::{self, ValidationRun};
use crate::data::expectations::Suite;
use crate::data::profile::{ColumnProfile, show};
use crate::data::{self as datasets, infer, table};

#[derive(Subcommand)]
pub(super) enum DataCommand {
    /// Add a CSV or Parquet file as the next version of a dataset (the same bytes give the
    /// same version) and validate it against the dataset's suite; it becomes current when the
    /// validation passed (else `data use V` makes it current, after a warning).
    Add {
        file: PathBuf,
        /// Dataset name (default: dataset.name from the configuration).
        #[arg(long)]
        dataset: Option<String>,
        /// What this version is.
        #[arg(short, long, default_value = "")]
        message: String,
    },
    /// List a dataset's versions, newest first; `*` marks the current one.
    List {
        #[arg(long)]
        dataset: Option<String>,
    },
    /// Show one version: hash, shape, message, and per-column statistics.
    Show {
        version: i32,
        #[arg(long)]
        dataset: Option<String>,
    },
    /// Compare two versions: row counts, schema and per-column statistics side by side.
    Diff {
        from: i32,
        to: i32,
        #[arg(long)]
        dataset: Option<String>,
    },
    /// Write a version's file, byte for byte as it was added.
    Checkout {
        version: i32,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long)]
        dataset: Option<String>,
    },
    /// Make another version the dataset's current one (recorded in the audit log).
    Use {
        version: i32,
        #[arg(long)]
        dataset: Option<String>,
    },
    /// Draft the [dataset] configuration (TOML) from a file.
    InferSchema { file: PathBuf },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["file", "dataset"])))]
pub(super) struct ValidateArgs {
    /// Suite name: <dataset.suites_dir>/<suite>.json.
    #[arg(long)]
    suite: String,
    /// A file to check (nothing is stored but the result).
    #[arg(long)]
    file: Option<PathBuf>,
    /// A dataset to check…
    #[arg(long)]
    dataset: Option<String>,
    /// …at this version (default: its current one).
    #[arg(long, requires = "dataset")]
    version: Option<i32>,
    /// Print the whole result as JSON, in Great Expectations' shape.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub(super) enum ExpectationsCommand {
    /// Draft a suite from a dataset version's observed columns, ranges and missingness.
    Suggest {
        #[arg(long)]
        dataset: Option<String>,
        #[arg(long)]
        version: Option<i32>,
        /// Suite name (default: the dataset's name).
        #[arg(long)]
        name: Option<String>,
    },
}

fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

pub(super) fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

pub(super) fn data_command(cmd: DataCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let schema = &settings.dataset;
    let name = |d: Option<String>| d.unwrap_or_else(|| schema.name.clone());
    if let DataCommand::InferSchema { file } = &cmd {
        // Reads only the file: no store needed.
        return infer_schema(file, settings);
    }
    let mut conn = open_store(settings)?;
    let blobs = crate::data::blob::open(&settings.storage)?;
    match cmd {
        DataCommand::Add {
            file,
            dataset,
            message,
        } => {
            let dataset = name(dataset);
            let bytes = read_file(&file)?;
            let upload = datasets::Upload {
                dataset: &dataset,
                bytes: &bytes,
                file_name: &file_label(&file),
                message: &message,
                parent: None,
            };
            let db = super::open_db(settings)?;
            let outcome = datasets::add_version(&db, &blobs, schema, upload, &cli_actor())?;
            let v = &outcome.version;
            if outcome.created {
                println!(
                    "added {dataset} v{}: {} rows, {} columns, {} bytes, blake3 {}",
                    v.version, v.row_count, v.column_count, v.size_bytes, v.hash
                );
            } else {
                println!(
                    "unchanged: these bytes are already {dataset} v{} ({})",
                    v.version, v.hash
                );
            }
            if let Some(run) = &outcome.validation {
                print_run_summary(run)?;
            }
            if let Some(e) = &outcome.validation_error {
                println!("not validated: {e}");
            }
            let current =
                catalog::find_dataset(&mut conn, &dataset)?.and_then(|d| d.current_version);
            if outcome.current {
                println!("{dataset} now uses v{}", v.version);
            } else if current != Some(v.version)
                && (outcome.created || outcome.validation.is_some())
            {
                // (Bytes added before, already validated, are only named "unchanged" above.)
                let why = match outcome.validation.as_ref().map(ValidationRun::status) {
                    Some("blocked") => "its validation failed a critical expectation (blocked)",
                    Some(_) => "its validation failed",
                    None => "it was not validated",
                };
                eprintln!(
                    "warning: {dataset} v{} was not made current: {why}; {dataset} still uses {}. \
                     `steward data use {} --dataset {dataset}` uses it anyway",
                    v.version,
                    current
                        .map(|c| format!("v{c}"))
                        .unwrap_or_else(|| "no version".into()),
                    v.version
                );
            }
        }
        DataCommand::List { dataset } => {
            let dataset = name(dataset);
            let current =
                catalog::find_dataset(&mut conn, &dataset)?.and_then(|d| d.current_version);
            let runs = catalog::latest_runs_by_version(&mut conn, &dataset)?;
            println!(
                "  {:>4}  {:<12} {:>8} {:>4}  {:<23} {:<10} message",
                "ver", "hash", "rows", "cols", "created", "validation"
            );
            for v in catalog::list_versions(&mut conn, &dataset)? {
                let mark = if Some(v.version) == current { "*" } else { " " };
                let status = runs
                    .get(&v.version)
                    .map(ValidationRun::status)
                    .unwrap_or("-");
                println!(
                    "{mark} {:>4}  {:<12} {:>8} {:>4}  {:<23} {:<10} {}",
                    v.version,
                    v.hash.get(..12).unwrap_or(&v.hash),
                    v.row_count,
                    v.column_count,
                    v.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    status,
                    v.message
                );
            }
        }
        DataCommand::Show { version, dataset } => {
            let dataset = name(dataset);
            let v = catalog::find_version(&mut conn, &dataset, version)?;
            println!("{dataset} v{}", v.version);
            println!("  hash     blake3:{}", v.hash);
            println!(
                "  file     {} ({}, {} bytes)",
                v.file_name, v.format, v.size_bytes
            );
            println!(
                "  shape    {} rows × {} columns",
                v.row_count, v.column_count
            );
            println!(
                "  parent   {}",
                v.parent_version
                    .map(|p| format!("v{p}"))
                    .unwrap_or("-".into())
            );
            println!(
                "  added    {} by {}",
                v.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                v.created_by
            );
            println!("  message  {}", v.message);
            println!();
            print_profile(&v.profile()?.columns);
        }
        DataCommand::Diff { from, to, dataset } => {
            let dataset = name(dataset);
            let a = catalog::find_version(&mut conn, &dataset, from)?;
            let b = catalog::find_version(&mut conn, &dataset, to)?;
            let d = datasets::diff_versions(&mut conn, &dataset, from, to)?;
            println!("{dataset} v{from} → v{to}");
            println!("  rows: {} → {}", d.rows.0, d.rows.1);
            let short = |h: &str| h.get(..12).unwrap_or(h).to_owned();
            println!("  hash: {} → {}", short(&a.hash), short(&b.hash));
            println!(
                "  * marks a column whose distribution moved: Cohen's d ≥ {}, category shares apart by TVD ≥ {}, or the missing share moving {} points",
                crate::data::profile::SHIFT_D,
                crate::data::profile::SHIFT_TVD,
                crate::data::profile::SHIFT_MISSING_PP
            );
            for c in &d.columns_added {
                println!("  column added: {c}");
            }
            for c in &d.columns_removed {
                println!("  column removed: {c}");
            }
            println!();
            println!(
                "  {:<9} {:>9} {:>9}  {:>9} {:>9}  {:>9} {:>9}  {:>8} {:>8}  {:>8} {:>8}",
                "column", "missing", "", "mean", "", "std", "", "min", "", "max", ""
            );
            println!(
                "  {:<9} {:>9} {:>9}  {:>9} {:>9}  {:>9} {:>9}  {:>8} {:>8}  {:>8} {:>8}",
                "",
                format!("v{from}"),
                format!("v{to}"),
                format!("v{from}"),
                format!("v{to}"),
                format!("v{from}"),
                format!("v{to}"),
                format!("v{from}"),
                format!("v{to}"),
                format!("v{from}"),
                format!("v{to}")
            );
            for c in &d.columns {
                let l = c.left.as_ref();
                let r = c.right.as_ref();
                let miss = |p: Option<&ColumnProfile>| {
                    p.map(|p| format!("{}({:.0}%)", p.missing, p.missing_percent))
                        .unwrap_or("-".into())
                };
                let stat = |p: Option<&ColumnProfile>, f: fn(&ColumnProfile) -> Option<f64>| {
                    show(p.and_then(f))
                };
                // `*` marks a column whose distribution moved past what the row counts explain.
                let changed = if c.shift.as_ref().is_some_and(|s| s.shifted) {
                    "*"
                } else {
                    " "
                };
                let effect = c
                    .shift
                    .as_ref()
                    .map(|s| {
                        let m = if s.measure == "cohens_d" { "d" } else { "TVD" };
                        format!("{m}={:.2}", s.value)
                    })
                    .unwrap_or_default();
                println!(
                    "{changed} {:<9} {:>9} {:>9}  {:>9} {:>9}  {:>9} {:>9}  {:>8} {:>8}  {:>8} {:>8}  {effect}",
                    c.name,
                    miss(l),
                    miss(r),
                    stat(l, |p| p.mean),
                    stat(r, |p| p.mean),
                    stat(l, |p| p.std),
                    stat(r, |p| p.std),
                    stat(l, |p| p.min),
                    stat(r, |p| p.min),
                    stat(l, |p| p.max),
                    stat(r, |p| p.max),
                );
                for change in c.changes.iter().filter(|ch| ch.starts_with("categories")) {
                    println!("    {change}");
                }
            }
        }
        DataCommand::Checkout {
            version,
            out,
            dataset,
        } => {
            let dataset = name(dataset);
            let v = catalog::find_version(&mut conn, &dataset, version)?;
            let bytes = blobs.get(&v.hash)?;
            write_atomically(&out, &bytes)?;
            println!(
                "wrote {dataset} v{version} to {} ({} bytes, blake3 verified)",
                out.display(),
                bytes.len()
            );
        }
        DataCommand::Use { version, dataset } => {
            let dataset = name(dataset);
            crate::data::catalog::find_version(&mut conn, &dataset, version)?;
            let warnings = crate::training::ValidationGate::of(&mut conn, &dataset, version)?
                .warnings(&dataset, version);
            if !warnings.is_empty() {
                eprintln!(
                    "warning: {dataset} v{version} did not pass its validation: {}",
                    warnings.join(", ")
                );
            }
            datasets::use_version(&mut conn, &dataset, version, &cli_actor())?;
            println!("{dataset} now uses v{version}");
        }
        DataCommand::InferSchema { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn infer_schema(file: &Path, settings: &Settings) -> anyhow::Result<ExitCode> {
    let bytes = read_file(file)?;
    let drafted = infer::infer_schema(
        &bytes,
        &file.display().to_string(),
        &settings.dataset.missing_values,
    )?;
    #[derive(serde::Serialize)]
    struct Draft<'a> {
        dataset: &'a crate::data::schema::DatasetSettings,
    }
    println!(
        "# Drafted from {} by `steward data infer-schema`.",
        file.display()
    );
    println!("# Check the kinds, ranges and the target, then put this in your configuration.");
    print!("{}", toml::to_string_pretty(&Draft { dataset: &drafted })?);
    Ok(ExitCode::SUCCESS)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn print_profile(columns: &[ColumnProfile]) {
    println!(
        "  {:<9} {:<11} {:>7} {:>12} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}  categories",
        "column", "kind", "count", "missing", "mean", "std", "min", "p25", "p50", "p75", "max"
    );
    for c in columns {
        let kind = format!("{:?}", c.kind).to_lowercase();
        let cats = c
            .categories
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "  {:<9} {:<11} {:>7} {:>12} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}  {cats}",
            c.name,
            kind,
            c.count,
            format!("{} ({:.1}%)", c.missing, c.missing_percent),
            show(c.mean),
            show(c.std),
            show(c.min),
            show(c.p25),
            show(c.p50),
            show(c.p75),
            show(c.max)
        );
    }
}

fn print_run_summary(run: &ValidationRun) -> anyhow::Result<()> {
    let result = run.result()?;
    println!(
        "validation {} against suite `{}`: {} ({}/{} expectations met, {}) [run {}]",
        run.source,
        run.suite,
        run.status(),
        run.successful,
        run.evaluated,
        super::plural(
            u64::try_from(run.critical_failures).unwrap_or(0),
            "critical failure",
            "critical failures"
        ),
        run.id
    );
    for r in result.results.iter().filter(|r| !r.success) {
        let critical = if r.is_critical() { "CRITICAL " } else { "" };
        let mut line = format!("  ✗ {critical}{}", r.label());
        if let Some(kwargs) = r.expectation_config.get("kwargs") {
            let mut shown = kwargs.clone();
            if let Some(map) = shown.as_object_mut() {
                map.remove("column");
            }
            line.push_str(&format!(" {shown}"));
        }
        if let Some(observed) = &r.result.observed_value {
            line.push_str(&format!("; observed {observed}"));
        }
        if let (Some(n), Some(p)) = (r.result.unexpected_count, r.result.unexpected_percent) {
            line.push_str(&format!("; {n} unexpected ({p:.1}%)"));
        }
        if !r.result.partial_unexpected_index_list.is_empty() {
            let rows: Vec<String> = r
                .result
                .partial_unexpected_index_list
                .iter()
                .map(u64::to_string)
                .collect();
            line.push_str(&format!("; rows [{}]", rows.join(", ")));
            // Not-null failures list nulls, which say nothing more.
            if r.result
                .partial_unexpected_list
                .iter()
                .any(|v| !v.is_null())
            {
                let values: Vec<String> = r
                    .result
                    .partial_unexpected_list
                    .iter()
                    .map(|v| v.to_string())
                    .collect();
                line.push_str(&format!(" values [{}]", values.join(", ")));
            }
        }
        if let Some(message) = &r.exception_info.exception_message {
            line.push_str(&format!("; error: {message}"));
        }
        println!("{line}");
    }
    Ok(())
}

pub(super) fn validate_command(
    args: ValidateArgs,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let schema = &settings.dataset;
    let suite = Suite::load(&schema.suites_dir, &args.suite)?;
    let mut conn = open_store(settings)?;
    let run = match (&args.file, &args.dataset) {
        (Some(file), _) => {
            let bytes = read_file(file)?;
            // The file's name, not its path on this machine: the run is shown to readers.
            let label = file_label(file);
            let t = table::read_table(&bytes, &label, schema)?;
            datasets::validate_table(&mut conn, &suite, &t, None, &label, &cli_actor())?
        }
        (None, Some(dataset)) => {
            let blobs = crate::data::blob::open(&settings.storage)?;
            datasets::validate_version(
                &mut conn,
                &blobs,
                schema,
                &suite,
                dataset,
                args.version,
                &cli_actor(),
            )?
        }
        (None, None) => anyhow::bail!("give --file FILE or --dataset NAME"),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&run.result()?)?);
    } else {
        print_run_summary(&run)?;
    }
    Ok(if run.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(super) fn expectations_command(
    cmd: ExpectationsCommand,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let ExpectationsCommand::Suggest {
        dataset,
        version,
        name,
    } = cmd;
    let schema = &settings.dataset;
    let dataset = dataset.unwrap_or_else(|| schema.name.clone());
    let mut conn = open_store(settings)?;
    let suite_name = name.unwrap_or_else(|| dataset.clone());
    let suite = datasets::suggest_suite(&mut conn, schema, &suite_name, &dataset, version)?;
    println!("{}", serde_json::to_string_pretty(&suite)?);
    Ok(ExitCode::SUCCESS)
}
