//! The `steward` command line. `serve` runs the server; the other commands work on the store
//! directly, so they need no running server, and record their changes in the audit log as
//! `cli:<os user>`.

mod access;
mod agent;
mod data;
mod drift;
mod models;
mod notify;
mod runs;
mod simulate;
mod storage;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::auth::Role;
use crate::config::Settings;
use crate::db::{self, Db, PooledDb};
use crate::startup::{Application, shutdown_signal};

#[derive(Parser)]
#[command(
    name = "steward",
    version,
    about = "Keeps a tabular classifier healthy in production: data, training, registry, \
             serving, drift monitoring, remediation and an audit log, in one binary.",
    after_help = "Configuration: built-in defaults (config/default.toml), then \
                  config/$STEWARD_ENV.toml, then --config FILE, then STEWARD__SECTION__KEY \
                  variables, then PORT and DATABASE_URL.\n\nExit status: 0 done; 1 refused or \
                  failed (the message says why); 2 a usage or configuration error."
)]
pub struct Cli {
    /// An extra TOML file layered over the defaults and the STEWARD_ENV overlay.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Who the audit log names for this command's changes (`cli:NAME`); default: $USER, else
    /// the login name of the process's user, else `uid-N`.
    #[arg(long, global = true, value_name = "NAME")]
    actor: Option<String>,
    /// Folder holding the <STEWARD_ENV>.toml overlays.
    #[arg(
        long,
        global = true,
        env = "STEWARD_CONFIG_DIR",
        default_value = "config",
        value_name = "DIR"
    )]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: JSON API, dashboard, /health, /ready, /metrics and the scheduler.
    /// Refuses to start when the audit log does not verify.
    Serve {
        /// Start even though the audit log does not verify (the break is logged loudly, and
        /// new events chain from the current head).
        #[arg(long)]
        allow_broken_audit: bool,
        /// What this replica runs besides serving requests: `api` (requests only, for replicas
        /// behind a load balancer), `worker` (also the scheduled jobs, the agent and the
        /// notification worker, each job once per tick across replicas) or `all` (both; the
        /// default, from `server.role`).
        #[arg(long, value_enum)]
        role: Option<crate::config::Role>,
    },
    /// Ask a running server's /health (the container's HEALTHCHECK; the image has no curl):
    /// exit 0 when it answers 200 within 5 seconds, 1 otherwise.
    Health {
        /// The URL to ask; default http://127.0.0.1:PORT/health with the configured port.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// The store's job leases: which replica holds or last ran each scheduled job and the
    /// agent, when, and how many runs (replicas sharing a store run each job once per tick).
    Jobs {
        /// Print the leases as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply pending database migrations and list what the store has applied.
    Migrate,
    /// Print the effective configuration, secrets masked, after checking it.
    Config,
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Read and check the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Version datasets: add, list, show, diff, checkout, use, infer-schema.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Check a file or a dataset version against an expectation suite; exits 1 when it fails.
    Validate(data::ValidateArgs),
    /// Work with expectation suites.
    #[command(subcommand)]
    Expectations(data::ExpectationsCommand),
    /// Train the candidate models (lr, rf, xgb) on a dataset version as tracked runs; with
    /// --register or --promote, register the best (by training.select_by).
    Train(train::TrainArgs),
    /// The tracked training runs: list, show, compare.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// The model registry: list, show, promote, rollback, evaluate.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Monitoring with Evidently's statistics: compare two data sets, check the prediction log,
    /// list and show stored checks, write their HTML reports.
    #[command(subcommand)]
    Drift(drift::DriftCommand),
    /// Replay a data file through a running server's /predict (and its labels to /feedback),
    /// as traffic for monitoring.
    Simulate(simulate::SimulateArgs),
    /// The agent: status, the kill switch (pause, resume), the policy, incidents, decisions.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// The agent's approval requests: list, approve, reject.
    #[command(subcommand)]
    Approvals(agent::ApprovalsCommand),
    /// Notifications: send a test to a channel, list the outbox, show the channels.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// Reports in HTML and PDF: a version's model card, a check's drift report, the weekly
    /// summary.
    #[command(subcommand)]
    Report(notify::ReportCommand),
    /// The artifact store: where it is, and migrating its blobs to S3 or a folder.
    #[command(subcommand)]
    Storage(storage::StorageCommand),
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a user. The password is read from standard input when it is not a terminal,
    /// otherwise one is generated and printed once.
    Add {
        username: String,
        /// viewer (reads), approver (also approves and promotes) or admin (everything).
        #[arg(long, default_value = "viewer")]
        role: Role,
    },
    /// List users.
    List,
    /// Disable a user and end their sessions (the last active admin can't be disabled).
    Disable { username: String },
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Create an API token for a user and print it once.
    Create(CreateToken),
    /// List tokens (never the secrets).
    List {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by its id.
    Revoke { id: String },
}

#[derive(Args)]
struct CreateToken {
    /// The user the token acts as.
    #[arg(long)]
    user: String,
    /// A label to tell tokens apart, e.g. "ci".
    #[arg(long)]
    name: String,
    /// The most the token may do: viewer, approver or admin (default: what its user may).
    #[arg(long)]
    role: Option<Role>,
    /// Lifetime, such as 30m, 12h or 90d (default: until revoked).
    #[arg(long, value_name = "DURATION")]
    expires_in: Option<String>,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain; exits 1 and names the first broken event when it does not hold.
    Verify,
    /// Show the newest events.
    List {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Key a chain begun before the audit key existed, after verifying its plain hashes (a
    /// start does this itself only with a key it generated; with a configured key or an
    /// existing key file, a chain without a keyed part may be a forgery, so a person decides).
    Adopt,
}

pub fn main() -> ExitCode {
    quiet_broken_pipe();
    crate::db::init_tls();
    let cli = Cli::parse();
    let actor = match cli.actor.as_deref().map(check_actor).transpose() {
        Ok(a) => a.unwrap_or_else(system_user),
        Err(e) => {
            eprintln!("error: --actor {e}");
            return ExitCode::from(2);
        }
    };
    let _ = ACTOR.set(format!("cli:{actor}"));
    let settings = match Settings::load(&cli.config_dir, cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init_logging(&settings.log);
    let outcome = run(cli.command, settings.clone());
    // A command that may have appended to the audit chain moves the head record forward too,
    // after checking the chain from the recorded position (so a tail cut after it shows, and a
    // cut made before it is not papered over).
    if OPENED_FOR_WRITING.load(std::sync::atomic::Ordering::Relaxed) {
        if let Err(e) = record_head(&settings) {
            eprintln!("warning: the audit head record was not updated: {e:#}");
        }
    }
    match outcome {
        Ok(code) => code,
        // 1: the command ran and was refused or failed; 2 is for usage and configuration.
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve {
            allow_broken_audit,
            role,
        } => {
            let mut settings = settings;
            settings.audit.allow_broken = allow_broken_audit;
            if let Some(role) = role {
                settings.server.role = role;
                // What the role implies (an audit key shared by replicas) is checked again.
                if let Err(e) = settings.validate() {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(2));
                }
            }
            serve(settings)
        }
        Command::Config => {
            println!("{}", serde_json::to_string_pretty(&settings.redacted())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Health { url } => {
            let url =
                url.unwrap_or_else(|| format!("http://127.0.0.1:{}/health", settings.server.port));
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(std::time::Duration::from_secs(5)))
                .build()
                .into();
            match agent.get(&url).call() {
                Ok(r) if r.status().as_u16() == 200 => Ok(ExitCode::SUCCESS),
                Ok(r) => {
                    eprintln!("health: HTTP {}", r.status().as_u16());
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => {
                    eprintln!("health: no answer: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Jobs { json } => {
            let mut conn = open_store(&settings)?;
            let leases = crate::overview::leases(&mut conn, true)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&leases)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<28} {:<5} {:<20} {:>6}  holder",
                "lease", "state", "last started (UTC)", "runs"
            );
            for l in leases {
                println!(
                    "{:<28} {:<5} {:<20} {:>6}  {}",
                    l.name,
                    if l.held { "held" } else { "free" },
                    l.last_started_at
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_else(|| "-".into()),
                    l.runs,
                    l.holder.unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let mut conn = open_store(&settings)?;
            for version in db::applied_migrations(&mut conn)? {
                println!("applied {version}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Users(cmd) => access::users_command(cmd, &settings),
        Command::Tokens(cmd) => access::tokens_command(cmd, &settings),
        Command::Audit(cmd) => access::audit_command(cmd, &settings),
        Command::Data(cmd) => data::data_command(cmd, &settings),
        Command::Validate(args) => data::validate_command(args, &settings),
        Command::Expectations(cmd) => data::expectations_command(cmd, &settings),
        Command::Train(args) => train::train_command(args, &settings),
        Command::Runs(cmd) => runs::runs_command(cmd, &settings),
        Command::Models(cmd) => models::models_command(cmd, &settings),
        Command::Drift(cmd) => drift::drift_command(cmd, &settings),
        Command::Simulate(args) => simulate::simulate_command(args, &settings),
        Command::Agent(cmd) => agent::agent_command(cmd, &settings),
        Command::Approvals(cmd) => agent::approvals_command(cmd, &settings),
        Command::Notify(cmd) => notify::notify_command(cmd, &settings),
        Command::Report(cmd) => notify::report_command(cmd, &settings),
        Command::Storage(cmd) => storage::storage_command(cmd, &settings),
    }
}

fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        // Listening from here on, before the "serving" line. A signal during the build still
        // ends the process at once, as a crash would (a run it interrupts is swept later).
        let stop = shutdown_signal();
        app.run_until_stopped(stop).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Connects and migrates, as `serve` would, so every command sees the current schema, and
/// installs the audit chain key, so the command's audit events chain like the server's.
pub(crate) fn open_store(settings: &Settings) -> anyhow::Result<PooledDb> {
    Ok(open_db(settings)?.get()?)
}

/// The store's pool, migrated and with the audit chain key installed, for commands that take
/// connections per step (training).
pub(crate) fn open_db(settings: &Settings) -> anyhow::Result<Db> {
    open_db_as(settings, crate::audit::Opening::Command)
}

/// A command opened the store to write (see `main`).
static OPENED_FOR_WRITING: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

fn record_head(settings: &Settings) -> anyhow::Result<()> {
    let db = Db::connect(&settings.database)?;
    crate::audit::extend_head_record(&mut *db.get()?, &settings.storage.dir)?;
    Ok(())
}

/// [`open_db`] with the chain opened as `opening` (read-only for `audit verify`).
pub(crate) fn open_db_as(
    settings: &Settings,
    opening: crate::audit::Opening,
) -> anyhow::Result<Db> {
    if opening != crate::audit::Opening::ReadOnly {
        OPENED_FOR_WRITING.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    use secrecy::ExposeSecret;
    let db = Db::connect(&settings.database)?;
    let mut conn = db.get()?;
    db::run_migrations(&mut conn)?;
    let prepared = crate::audit::prepare(
        &mut conn,
        settings.audit.key.expose_secret(),
        &settings.storage.dir,
        opening,
        &cli_actor(),
    )?;
    // A command that would append to a chain that could not be keyed stops here (reading it
    // is `audit verify`'s job, which opens it read-only).
    if let (Some(b), crate::audit::Opening::Command) = (&prepared.broken, opening) {
        anyhow::bail!(
            "the audit log can't take events: broken at event {}: {}",
            b.seq,
            b.reason
        );
    }
    Ok(db)
}

/// A metric's value as the CLI prints it: a count ([`crate::tracking::is_count`]) as a whole
/// number, anything else to four places.
pub(crate) fn figure(name: &str, x: f64) -> String {
    if crate::tracking::is_count(name) {
        format!("{x:.0}")
    } else {
        format!("{x:.4}")
    }
}

/// `1 version`, `2 versions`.
pub(crate) fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

static ACTOR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// How the audit log names this command: `cli:` and the actor `main` settled on.
pub(crate) fn cli_actor() -> String {
    ACTOR
        .get()
        .cloned()
        .unwrap_or_else(|| format!("cli:{}", system_user()))
}

fn check_actor(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > 64
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err("must be 1-64 characters with no spaces or control characters".into());
    }
    Ok(name.to_owned())
}

/// The user running the command: `$USER`, else the login name of the process's user id (from
/// `/etc/passwd`), else `uid-N`.
fn system_user() -> String {
    if let Some(user) = std::env::var("USER")
        .ok()
        .and_then(|u| check_actor(&u).ok())
    {
        return user;
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        });
    let Some(uid) = uid else {
        return "unknown".into();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)? == uid).then(|| name.to_owned())
            })
        })
        .and_then(|name| check_actor(&name).ok())
        .unwrap_or_else(|| format!("uid-{uid}"))
}

/// A command piped into `head` ends quietly when the pipe closes: printing to a closed
/// stdout panics in `println!`, and this hook turns that one panic into a silent exit.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
