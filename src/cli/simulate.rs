//! `steward simulate`: replays a data file's rows through a running server's `/predict` over
//! HTTP (the other hospitals become real, shifted traffic), and with `--labels` posts each row's
//! true label to `/feedback` after a delay.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::{Map, Value, json};

use crate::config::Settings;
use crate::data::table;
use crate::ml::features::{Examples, Raw};

#[derive(Args)]
pub struct SimulateArgs {
    /// A CSV or Parquet file read with the dataset schema, target column included (rows whose
    /// label is missing are skipped).
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
    /// The server (default: http://127.0.0.1:<server.port>).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Requests per second (default: as fast as the server answers).
    #[arg(long, value_name = "N", value_parser = parse_rate)]
    rate: Option<f64>,
    /// Post each row's true label to /feedback.
    #[arg(long)]
    labels: bool,
    /// Seconds between a prediction and its label.
    #[arg(long, value_name = "S", default_value_t = 0.0, value_parser = parse_delay)]
    label_delay: f64,
    /// Replay at most this many rows.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// API token (Authorization: Bearer); /feedback needs one by default.
    #[arg(long, env = "STEWARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

fn parse_rate(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.001..=100_000.0).contains(&v) => Ok(v),
        _ => Err("a number of requests per second, from 0.001 to 100000".into()),
    }
}

fn parse_delay(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err("seconds, between 0 and 86400".into()),
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    labelled: u64,
    label_failed: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, message: impl FnOnce() -> String) {
        if self.first_error.is_none() {
            self.first_error = Some(message());
        }
    }
}

fn body_of(names: &[String], row: &[Raw]) -> Value {
    let mut object = Map::new();
    for (name, cell) in names.iter().zip(row) {
        let v = match cell {
            Raw::Num(Some(x)) => json!(x),
            Raw::Cat(Some(s)) => json!(s),
            Raw::Num(None) | Raw::Cat(None) => Value::Null,
        };
        object.insert(name.clone(), v);
    }
    Value::Object(object)
}

pub(super) fn simulate_command(
    args: SimulateArgs,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    if args.labels && args.token.is_none() {
        anyhow::bail!(
            "--labels posts to /feedback, which needs an approver's token by default \
             (serving.feedback_role): give --token or set STEWARD_TOKEN (steward tokens create \
             --user NAME --name labels, NAME an approver or admin)"
        );
    }
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let label = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let t = table::read_table(&bytes, &label, &settings.dataset)?;
    let examples = Examples::from_table(&t, &settings.dataset).map_err(anyhow::Error::msg)?;
    let base = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", settings.server.port));
    let base = base.trim_end_matches('/').to_owned();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        anyhow::bail!("--url must start with http:// or https://");
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let auth = args.token.as_ref().map(|t| format!("Bearer {t}"));
    let post = |path: &str, body: &Value| -> Result<(u16, Value), String> {
        let mut req = agent.post(format!("{base}{path}"));
        if let Some(a) = &auth {
            req = req.header("Authorization", a);
        }
        let mut resp = req.send_json(body).map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let value = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_json::<Value>()
            .unwrap_or(Value::Null);
        Ok((status, value))
    };
    let total = args.limit.unwrap_or(usize::MAX).min(examples.rows.len());
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} rows, {per_sec}, eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let interval = args.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let delay = Duration::from_secs_f64(args.label_delay);
    let started = Instant::now();
    let mut due: VecDeque<(Instant, String, u32)> = VecDeque::new();
    let mut tally = Tally::default();
    let send_due = |due: &mut VecDeque<(Instant, String, u32)>, all: bool, t: &mut Tally| {
        while let Some((at, _, _)) = due.front() {
            if !all && *at > Instant::now() {
                break;
            }
            if all {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
            }
            let Some((_, id, label)) = due.pop_front() else {
                break;
            };
            match post("/feedback", &json!({"request_id": id, "label": label})) {
                Ok((s, _)) if (200..300).contains(&s) => t.labelled += 1,
                Ok((s, body)) => {
                    t.label_failed += 1;
                    t.error(|| {
                        format!(
                            "/feedback answered {s}: {}",
                            crate::error::bounded(&body.to_string(), 300)
                        )
                    });
                }
                Err(e) => {
                    t.label_failed += 1;
                    t.error(|| format!("/feedback: {e}"));
                }
            }
        }
    };
    for (i, (row, &label)) in examples
        .rows
        .iter()
        .zip(&examples.labels)
        .take(total)
        .enumerate()
    {
        if let Some(every) = interval {
            let at = started + every.mul_f64(i as f64);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
        }
        match post("/predict", &body_of(&examples.feature_names, row)) {
            Ok((200, body)) => {
                tally.ok += 1;
                if args.labels {
                    if let Some(id) = body.get("request_id").and_then(Value::as_str) {
                        due.push_back((Instant::now() + delay, id.to_owned(), label));
                    }
                }
            }
            Ok((s, body)) => {
                tally.failed += 1;
                tally.error(|| {
                    format!(
                        "/predict answered {s}: {}",
                        crate::error::bounded(&body.to_string(), 300)
                    )
                });
            }
            Err(e) => {
                tally.failed += 1;
                tally.error(|| format!("/predict: {e}"));
                if tally.ok == 0 && tally.failed >= 3 {
                    bar.abandon();
                    anyhow::bail!("cannot reach {base}: {e}");
                }
            }
        }
        send_due(&mut due, false, &mut tally);
        bar.inc(1);
    }
    if !due.is_empty() {
        bar.set_message(format!("waiting to post {} labels", due.len()));
        send_due(&mut due, true, &mut tally);
    }
    bar.finish_and_clear();
    let Tally {
        ok,
        failed,
        labelled,
        label_failed,
        first_error,
    } = tally;
    println!(
        "replayed {} rows of {label} in {:.1} s: {ok} predicted, {failed} failed{}",
        ok + failed,
        started.elapsed().as_secs_f64(),
        if args.labels {
            format!("; {labelled} labels posted, {label_failed} failed")
        } else {
            String::new()
        }
    );
    if let Some(e) = first_error {
        println!("first error: {e}");
    }
    Ok(if failed + label_failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
