//! The `steward` command line. `serve` runs the server; the other commands work on the store
//! directly, so they need no running server, and record their changes in the audit log as
//! `cli:<os user>`.

mod access;
mod data;
mod models;
mod runs;
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
                  variables, then PORT and DATABASE_URL."
)]
pub struct Cli {
    /// An extra TOML file layered over the defaults and the STEWARD_ENV overlay.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
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
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(&cli.config_dir, cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init_logging(&settings.log);
    match run(cli.command, settings) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { allow_broken_audit } => {
            let mut settings = settings;
            settings.audit.allow_broken = allow_broken_audit;
            serve(settings)
        }
        Command::Config => {
            println!("{}", serde_json::to_string_pretty(&settings.redacted())?);
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
    }
}

fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        app.run_until_stopped(shutdown_signal()).await
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
    use secrecy::ExposeSecret;
    let db = Db::connect(&settings.database)?;
    let mut conn = db.get()?;
    db::run_migrations(&mut conn)?;
    crate::audit::prepare(
        &mut conn,
        settings.audit.key.expose_secret(),
        &settings.storage.dir,
        false,
    )?;
    Ok(db)
}

pub(crate) fn cli_actor() -> String {
    let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("cli:{who}")
}
