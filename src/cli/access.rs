//! `steward users`, `steward tokens` and `steward audit`.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::Context;

use super::{AuditCommand, CreateToken, TokensCommand, UsersCommand, cli_actor, open_store};
use crate::audit;
use crate::auth::{accounts, tokens, users};
use crate::config::Settings;

pub(super) fn users_command(cmd: UsersCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let mut conn = open_store(settings)?;
    match cmd {
        UsersCommand::Add { username, role } => {
            let stdin = std::io::stdin();
            let (password, generated) = if stdin.is_terminal() {
                (crate::auth::secrets::random_string(20), true)
            } else {
                let mut line = String::new();
                stdin
                    .lock()
                    .read_line(&mut line)
                    .context("reading the password from standard input")?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            };
            let user = accounts::create_user(&mut conn, &cli_actor(), &username, &password, role)?;
            println!("created {} ({})", user.username, user.role);
            if generated {
                println!("password (shown once): {password}");
            }
        }
        UsersCommand::List => {
            println!("{:<24} {:<9} {:<9} created", "user", "role", "status");
            for u in users::list(&mut conn)? {
                let status = if u.disabled { "disabled" } else { "active" };
                println!(
                    "{:<24} {:<9} {:<9} {}",
                    u.username, u.role, status, u.created_at
                );
            }
        }
        UsersCommand::Disable { username } => {
            accounts::disable_user(&mut conn, &cli_actor(), &username)?;
            println!("disabled {username}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn tokens_command(cmd: TokensCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let mut conn = open_store(settings)?;
    match cmd {
        TokensCommand::Create(CreateToken { user, name }) => {
            let owner = users::find_by_username(&mut conn, &user)?
                .ok_or_else(|| anyhow::anyhow!("no user `{user}`"))?;
            let owner = users::User::try_from(owner)?;
            let (token, secret) = accounts::create_token(&mut conn, &cli_actor(), &owner, &name)?;
            println!(
                "created token {} ({}) for {}",
                token.id, token.name, owner.username
            );
            println!("token (shown once): {secret}");
        }
        TokensCommand::List { user } => {
            let owner_id = match user {
                Some(name) => Some(
                    users::find_by_username(&mut conn, &name)?
                        .ok_or_else(|| anyhow::anyhow!("no user `{name}`"))?
                        .id,
                ),
                None => None,
            };
            println!("{:<36} {:<20} {:<11} status", "id", "name", "prefix");
            for t in tokens::list(&mut conn, owner_id.as_deref())? {
                let status = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!("{:<36} {:<20} {:<11} {status}", t.id, t.name, t.prefix);
            }
        }
        TokensCommand::Revoke { id } => {
            accounts::revoke_token(&mut conn, &cli_actor(), &id, |_| true)?;
            println!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn audit_command(cmd: AuditCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let mut conn = open_store(settings)?;
    match cmd {
        AuditCommand::Verify => {
            let report = audit::verify(&mut conn)?;
            match report.first_break {
                None => {
                    println!(
                        "audit chain intact: {} events verified",
                        report.events_checked
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some(b) => {
                    println!(
                        "audit chain BROKEN at event {}: {} ({} events before it verified)",
                        b.seq, b.reason, report.events_checked
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditCommand::List { limit } => {
            for e in audit::list(&mut conn, limit, None)? {
                println!(
                    "{:>6}  {}  {:<20} {:<22} {}",
                    e.seq, e.created_at, e.actor, e.action, e.subject
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
