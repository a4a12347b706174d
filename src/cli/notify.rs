//! `steward notify test CHANNEL|list` and `steward report model-card V|drift ID|weekly`: the
//! outbox and the reports, from the store, with no server running.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::{cli_actor, open_db};
use crate::config::Settings;
use crate::notify::{self, store};
use crate::reports::{self, Format, Report};

#[derive(Subcommand)]
pub enum NotifyCommand {
    /// Send a test message to one channel of notify.channels now; recorded in the outbox and
    /// the audit log. Exits 1 when it was not sent (the error says why).
    Test {
        /// The channel's name.
        channel: String,
    },
    /// The outbox, newest first: each notification and its deliveries (channel, status,
    /// tries, last error).
    List {
        /// pending (with sending), sent or failed.
        #[arg(long)]
        status: Option<String>,
        /// How many notifications (1-500).
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// The whole rows, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The configured channels and routes (no secrets).
    Channels,
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// The model card of a version of the served model (registry.model).
    ModelCard {
        /// The version's number (`steward models list`).
        version: i32,
        #[command(flatten)]
        out: Outputs,
    },
    /// The drift report of a stored monitoring check (`steward drift checks` lists them).
    Drift {
        id: String,
        #[command(flatten)]
        out: Outputs,
    },
    /// The weekly summary: traffic, drift, incidents, actions, approvals, model changes.
    Weekly {
        /// The week's end: YYYY-MM-DDTHH:MM:SS (UTC), RFC 3339, or YYYY-MM-DD (midnight); the summary
        /// covers the 7 × 24 hours before it. Default: now.
        #[arg(long, value_parser = end_arg)]
        end: Option<chrono::NaiveDateTime>,
        #[command(flatten)]
        out: Outputs,
    },
}

#[derive(clap::Args)]
pub struct Outputs {
    /// Write the PDF here.
    #[arg(long, value_name = "FILE")]
    pdf: Option<PathBuf>,
    /// Write the HTML here (with neither, the HTML goes to standard output).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

/// `--end`, checked as the API checks it (a bad value is a usage error, exit 2).
fn end_arg(text: &str) -> Result<chrono::NaiveDateTime, String> {
    reports::parse_end(text).map_err(|e| e.to_string())
}

pub fn notify_command(cmd: NotifyCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    match cmd {
        NotifyCommand::Test { channel } => {
            let db = open_db(settings)?;
            let blobs = crate::data::blob::open(&settings.storage)?;
            let (delivery, status, error) =
                notify::send_test(&db, &blobs, settings, &channel, &cli_actor())?;
            match (status, error) {
                ("sent", _) => {
                    println!("sent to {} (delivery {})", delivery.channel, delivery.id);
                    Ok(ExitCode::SUCCESS)
                }
                (_, None) => {
                    eprintln!(
                        "not sent by this command: a server's worker took delivery {} to {} \
                         first (see `steward notify list`)",
                        delivery.id, delivery.channel
                    );
                    Ok(ExitCode::FAILURE)
                }
                (_, Some(e)) => {
                    eprintln!(
                        "not sent to {}: {e} (delivery {} is {status}{})",
                        delivery.channel,
                        delivery.id,
                        if status == "pending" {
                            "; a running server's worker retries it"
                        } else {
                            ""
                        }
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        NotifyCommand::List {
            status,
            limit,
            json,
        } => {
            let (status, limit) = store::check_list(status, limit)?;
            let db = open_db(settings)?;
            let rows = store::list(&mut *db.get()?, status.as_deref(), limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(ExitCode::SUCCESS);
            }
            if rows.is_empty() {
                println!("no notifications");
            }
            for e in rows {
                let n = &e.notification;
                println!(
                    "{}  {:<17} {:<8} {}",
                    n.created_at.format("%Y-%m-%d %H:%M:%S"),
                    n.kind,
                    n.severity,
                    n.subject
                );
                let too_old = n.routed_at.is_some_and(|r| {
                    r - n.created_at
                        > chrono::Duration::hours(i64::from(settings.notify.max_age_hours))
                });
                if n.routed_at.is_none() {
                    println!("    not routed yet");
                } else if e.deliveries.is_empty() && too_old {
                    println!("    too old when routed (notify.max_age_hours): kept, not sent");
                } else if e.deliveries.is_empty() {
                    println!("    no route takes it");
                }
                for d in e.deliveries {
                    println!(
                        "    {:<8} {} ({}), {} tr{}{}",
                        d.status,
                        d.channel,
                        d.channel_kind,
                        d.attempts,
                        if d.attempts == 1 { "y" } else { "ies" },
                        d.last_error.map(|e| format!(": {e}")).unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        NotifyCommand::Channels => {
            let n = &settings.notify;
            if n.channels.is_empty() {
                println!("no channels (notify.channels)");
            }
            for c in &n.channels {
                println!("{:<20} {:<8} {}", c.name(), c.kind(), c.target());
            }
            for r in &n.routes {
                println!(
                    "route: {} → {} (at least {})",
                    r.events.join(", "),
                    r.channels.join(", "),
                    r.min_severity
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn report_command(cmd: ReportCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let (report, out) = match cmd {
        ReportCommand::ModelCard { version, out } => (Report::ModelCard(version), out),
        ReportCommand::Drift { id, out } => (Report::Drift(id), out),
        ReportCommand::Weekly { end, out } => {
            (Report::Weekly(end.unwrap_or_else(crate::db::now)), out)
        }
    };
    let db = open_db(settings)?;
    let blobs = crate::data::blob::open(&settings.storage)?;
    let doc = reports::build(&mut *db.get()?, &blobs, &settings.registry.model, &report)?;
    if out.pdf.is_none() && out.html.is_none() {
        print!(
            "{}",
            String::from_utf8(reports::render(&doc, Format::Html)?)?
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (path, format) in [(out.html, Format::Html), (out.pdf, Format::Pdf)] {
        if let Some(path) = path {
            let bytes = reports::render(&doc, format)?;
            std::fs::write(&path, &bytes)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            eprintln!("wrote {} ({} bytes)", path.display(), bytes.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}
