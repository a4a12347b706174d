//! `steward agent status|pause|resume|policy|incidents|incident|decisions` and `steward approvals
//! list|approve|reject`: the agent's state from the store. Approving marks the request; the
//! server's agent runs its action (once) at its next pass.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{cli_actor, open_db_as, open_store};
use crate::agent::{self, policy, store};
use crate::config::Settings;

#[derive(Subcommand)]
pub enum AgentCommand {
    /// The kill switch, dry-run, open incidents, pending approvals, running actions.
    Status(JsonFlag),
    /// Turn the kill switch on: no new decisions or actions (one already running ends).
    Pause,
    /// Turn the kill switch off.
    Resume,
    /// The policy's rules in order (first match wins).
    Policy {
        /// Say in words what each rule matches and does.
        #[arg(long)]
        explain: bool,
    },
    /// Incidents, newest first: id, status, type, alerts taken, first seen (UTC), summary.
    Incidents {
        /// open or resolved.
        #[arg(long)]
        status: Option<String>,
        /// How many (1-500).
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// The whole rows, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One incident's timeline, in time order: its alert, decision, approvals, actions,
    /// notifications and resolution.
    Incident {
        /// The incident's id (from `steward agent incidents`).
        id: String,
        /// The incident and its records, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decisions, newest first, with the rule that matched and why the earlier ones did not.
    Decisions {
        /// How many (1-500).
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// The whole rows, as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct JsonFlag {
    /// As JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum ApprovalsCommand {
    /// Approval requests, newest first: id, status, action, version, expiry (UTC), who answered.
    List {
        /// pending, approved, rejected or expired.
        #[arg(long)]
        status: Option<String>,
        /// How many (1-500).
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// The whole rows with their evidence, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending request; the server's agent runs its action once.
    Approve {
        /// The request's id (from `steward approvals list`).
        id: String,
        /// Why (kept in the audit log and, for a promotion, in its reason).
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Reject a pending request; nothing runs.
    Reject {
        /// The request's id (from `steward approvals list`).
        id: String,
        /// Why (kept in the audit log).
        #[arg(long, default_value = "")]
        comment: String,
    },
}

fn limit(n: i64) -> anyhow::Result<i64> {
    if !(1..=500).contains(&n) {
        anyhow::bail!("--limit must be between 1 and 500");
    }
    Ok(n)
}

fn when(t: &chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn agent_command(cmd: AgentCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    match cmd {
        AgentCommand::Status(JsonFlag { json }) => {
            let mut conn = open_store(settings)?;
            let s = agent::status(&mut conn, settings)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "agent: {}{}{}",
                if !s.enabled {
                    "disabled (agent.enabled = false)"
                } else if s.paused_by_config {
                    "PAUSED (agent.paused = true in the configuration)"
                } else if s.paused {
                    "PAUSED"
                } else {
                    "running"
                },
                s.paused_by
                    .as_ref()
                    .filter(|_| s.paused)
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default(),
                if s.dry_run { " (dry run)" } else { "" }
            );
            println!("open incidents: {}", s.open_incidents);
            println!("pending approvals: {}", s.pending_approvals);
            println!(
                "actions in the last hour: {} of {}",
                s.actions_last_hour, s.max_actions_per_hour
            );
            for a in &s.running_actions {
                println!(
                    "running: {} {} since {}",
                    a.action,
                    a.id,
                    when(&a.started_at)
                );
            }
            println!("usable labels: {}", s.usable_labels);
            println!("quarantined rows: {}", s.quarantined_rows);
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Pause | AgentCommand::Resume => {
            let paused = matches!(cmd, AgentCommand::Pause);
            let db = open_db_as(settings, crate::audit::Opening::Command)?;
            agent::set_paused(&mut *db.get()?, settings, paused, &cli_actor())?;
            println!(
                "{}",
                if paused {
                    "agent paused: no new decisions or actions"
                } else {
                    "agent resumed"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Policy { explain } => {
            if explain {
                print!("{}", policy::explain(&settings.agent));
            } else {
                println!("{}", serde_json::to_string_pretty(&settings.agent.rules)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Incidents {
            status,
            limit: n,
            json,
        } => {
            if let Some(s) = &status {
                if !matches!(s.as_str(), "open" | "resolved") {
                    anyhow::bail!("--status must be open or resolved");
                }
            }
            let mut conn = open_store(settings)?;
            let rows = store::list_incidents(&mut conn, status.as_deref(), limit(n)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<36}  {:<8} {:<15} {:<5} {:<23}  summary",
                "incident", "status", "type", "alerts", "first seen"
            );
            for i in rows {
                println!(
                    "{}  {:<8} {:<15} x{:<4} {}  {}",
                    i.id,
                    i.status,
                    i.alert_type,
                    i.alert_count,
                    when(&i.first_seen),
                    i.summary
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Incident { id, json } => {
            let mut conn = open_store(settings)?;
            let d = store::incident_detail(&mut conn, &id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(ExitCode::SUCCESS);
            }
            let i = &d.incident;
            println!("incident {} ({}, {})", i.id, i.status, i.alert_type);
            println!("  {}", i.summary);
            let mut lines: Vec<(chrono::NaiveDateTime, String)> = vec![(
                i.first_seen,
                format!(
                    "alert: {} from {} ({} in all, the last at {})",
                    i.alertname,
                    i.source,
                    i.alert_count,
                    when(&i.last_seen)
                ),
            )];
            for x in &d.decisions {
                lines.push((
                    x.created_at,
                    format!(
                        "decision: {} ({}) by rule {}",
                        x.action,
                        x.status,
                        x.rule.as_deref().unwrap_or("(none)")
                    ),
                ));
            }
            for a in &d.approvals {
                lines.push((
                    a.requested_at,
                    format!("approval {} requested: {}", a.id, a.action),
                ));
                if let Some(at) = a.decided_at {
                    lines.push((
                        at,
                        format!(
                            "approval {}: {}{}{}",
                            a.id,
                            a.status,
                            a.decided_by
                                .as_deref()
                                .map(|b| format!(" by {b}"))
                                .unwrap_or_default(),
                            a.comment
                                .as_deref()
                                .filter(|c| !c.is_empty())
                                .map(|c| format!(": {c}"))
                                .unwrap_or_default()
                        ),
                    ));
                }
            }
            for a in &d.actions {
                lines.push((
                    a.started_at,
                    format!(
                        "action {}: {} {}{}",
                        a.id,
                        a.action,
                        a.status,
                        a.error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ),
                ));
            }
            for n in &d.notifications {
                lines.push((
                    n.created_at,
                    format!("notification ({}): {}", n.severity, n.subject),
                ));
            }
            if let Some(at) = i.resolved_at {
                lines.push((
                    at,
                    format!("resolved: {}", i.resolution.as_deref().unwrap_or("")),
                ));
            }
            lines.sort_by_key(|l| l.0);
            for (at, line) in lines {
                println!("{}  {line}", when(&at));
            }
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Decisions { limit: n, json } => {
            let mut conn = open_store(settings)?;
            let rows = store::list_decisions(&mut conn, None, limit(n)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(ExitCode::SUCCESS);
            }
            for d in rows {
                println!(
                    "{}  {}  {:<10} {:<17} rule {}",
                    when(&d.created_at),
                    d.id,
                    d.action,
                    d.status,
                    d.rule.as_deref().unwrap_or("(none)")
                );
                let checks: Vec<policy::RuleCheck> =
                    serde_json::from_str(&d.explanation_json).unwrap_or_default();
                for c in checks {
                    println!(
                        "    {} {}: {}",
                        if c.matched { "✓" } else { "✗" },
                        c.rule,
                        c.reason
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn approvals_command(cmd: ApprovalsCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    match cmd {
        ApprovalsCommand::List {
            status,
            limit: n,
            json,
        } => {
            if let Some(s) = &status {
                if !matches!(s.as_str(), "pending" | "approved" | "rejected" | "expired") {
                    anyhow::bail!("--status must be pending, approved, rejected or expired");
                }
            }
            let mut conn = open_store(settings)?;
            let rows = store::list_approvals(&mut conn, status.as_deref(), limit(n)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<36}  {:<8} {:<8} version, expiry, who answered",
                "request", "status", "action"
            );
            for a in rows {
                println!(
                    "{}  {:<8} {:<8} {}  expires {}{}",
                    a.id,
                    a.status,
                    a.action,
                    a.version.map(|v| format!("v{v}")).unwrap_or_default(),
                    when(&a.expires_at),
                    a.decided_by
                        .as_deref()
                        .map(|b| format!("  by {b}"))
                        .unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ApprovalsCommand::Approve { id, comment } => answer(settings, &id, true, &comment),
        ApprovalsCommand::Reject { id, comment } => answer(settings, &id, false, &comment),
    }
}

fn answer(settings: &Settings, id: &str, approve: bool, comment: &str) -> anyhow::Result<ExitCode> {
    {
        {
            let db = open_db_as(settings, crate::audit::Opening::Command)?;
            let a = agent::answer(&mut *db.get()?, id, approve, &cli_actor(), comment)?;
            println!(
                "{} {}: the server's agent {}",
                a.status,
                a.id,
                if approve {
                    "runs its action at its next pass"
                } else {
                    "does nothing"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
