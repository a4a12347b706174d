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
                    u.username,
                    u.role.as_str(),
                    status,
                    u.created_at.format("%Y-%m-%d %H:%M:%S UTC")
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
        TokensCommand::Create(CreateToken {
            user,
            name,
            role,
            expires_in,
        }) => {
            let owner = users::find_by_username(&mut conn, &user)?
                .ok_or_else(|| anyhow::anyhow!("no user `{user}`"))?;
            let owner = users::User::try_from(owner)?;
            let expires_at = match expires_in {
                Some(text) => Some(crate::db::now() + accounts::parse_lifetime(&text)?),
                None => None,
            };
            let scope = tokens::Scope { role, expires_at };
            let (token, secret) =
                accounts::create_token(&mut conn, &cli_actor(), &owner, &name, scope, None)?;
            println!(
                "created token {} ({}) for {}, role {}, expires {}",
                token.id,
                token.name,
                owner.username,
                token.role_name.as_deref().unwrap_or("as its user"),
                token
                    .expires_at
                    .map(|at| format!("{} UTC", at.format("%Y-%m-%d %H:%M")))
                    .unwrap_or_else(|| "never".into())
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
            println!(
                "{:<36} {:<20} {:<11} {:<11} {:<20} status",
                "id", "name", "prefix", "role", "expires (UTC)"
            );
            let at = crate::db::now();
            for t in tokens::list(&mut conn, owner_id.as_deref())? {
                let status = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.is_expired(at) {
                    "expired"
                } else {
                    "active"
                };
                let expires = t
                    .expires_at
                    .map(|e| e.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| "never".into());
                println!(
                    "{:<36} {:<20} {:<11} {:<11} {:<20} {status}",
                    t.id,
                    t.name,
                    t.prefix,
                    t.role_name.as_deref().unwrap_or("as its user"),
                    expires
                );
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
    if let AuditCommand::Adopt = cmd {
        use secrecy::ExposeSecret;
        let db = crate::db::Db::connect(&settings.database)?;
        let mut conn = db.get()?;
        crate::db::run_migrations(&mut conn)?;
        let prepared = audit::prepare(
            &mut conn,
            settings.audit.key.expose_secret(),
            &settings.storage.dir,
            audit::Opening::Adopt,
            &cli_actor(),
        )?;
        return match (prepared.broken, prepared.keyed_now) {
            (Some(b), _) => {
                println!(
                    "not adopted: the chain is BROKEN at event {}: {}",
                    b.seq, b.reason
                );
                Ok(ExitCode::FAILURE)
            }
            (None, Some(seq)) => {
                audit::record_head(&mut conn, &settings.storage.dir)?;
                println!("the chain verified intact and is keyed from event {seq} on");
                Ok(ExitCode::SUCCESS)
            }
            (None, None) => {
                println!("nothing to adopt: the chain is keyed already (or empty)");
                Ok(ExitCode::SUCCESS)
            }
        };
    }
    // Reading the log writes nothing: no key file, no keying event.
    let mut conn = super::open_db_as(settings, audit::Opening::ReadOnly)?.get()?;
    match cmd {
        AuditCommand::Verify => {
            let report = audit::verify(&mut conn)?;
            let first_break = match report.first_break {
                Some(b) => Some(b),
                None => audit::check_head_record(&mut conn, &settings.storage.dir)?,
            };
            match first_break {
                None => {
                    println!(
                        "audit chain intact: {} events verified",
                        report.events_checked
                    );
                    let head = audit::head(&mut conn)?;
                    if head.keyed_from.is_none() && head.seq > 0 {
                        use secrecy::ExposeSecret;
                        // The rule a start applies: with a key that exists already, a chain
                        // without a keyed part may be a rewritten one.
                        let key_exists = !settings.audit.key.expose_secret().is_empty()
                            || settings.storage.dir.join(audit::KEY_FILE).exists();
                        if key_exists {
                            println!(
                                "audit chain NOT KEYED: its plain hashes hold, but a chain key \
                                 exists, so this may be a keyed chain rewritten without it; \
                                 after checking, `steward audit adopt` keys it"
                            );
                            return Ok(ExitCode::FAILURE);
                        }
                        println!(
                            "note: no part of it is keyed yet (plain hashes, from before the \
                             audit key); the next server start generates a key and keys it"
                        );
                    }
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
                    e.seq,
                    e.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    e.actor,
                    e.action,
                    e.subject
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Adopt => Ok(ExitCode::SUCCESS),
    }
}
