//! `steward storage`: where the artifact store is, and moving its blobs to another
//! (`migrate --to s3://bucket/prefix` or a folder), each verified by its hash on both sides.

use std::process::ExitCode;

use clap::Subcommand;

use super::{cli_actor, open_store};
use crate::audit::{self, NewEvent};
use crate::config::Settings;
use crate::data::blob::{self, BlobError};

#[derive(Subcommand)]
pub enum StorageCommand {
    /// Where the configured artifact store is (storage.url, or storage.dir's blobs folder) and
    /// how many blobs it holds.
    Info,
    /// Copy every blob of the configured store to another (s3://BUCKET[/PREFIX], credentials
    /// from the environment, or a folder, whose blobs/ subfolder receives them), reading each
    /// back from the target and checking its hash. Blobs already there are checked, not copied
    /// again, so a migration can be run again after an interruption. Exits 1 when any blob
    /// could not be read whole from the source or written whole to the target (they are named;
    /// the others are copied). Then point storage.url (or storage.dir) at the target.
    Migrate {
        /// The target store: s3://BUCKET[/PREFIX] or a folder path.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

pub(super) fn storage_command(
    cmd: StorageCommand,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let source = blob::open(&settings.storage)?;
    match cmd {
        StorageCommand::Info => {
            let hashes = source.list()?;
            println!("{} ({} blobs)", source.describe(), hashes.len());
            Ok(ExitCode::SUCCESS)
        }
        StorageCommand::Migrate { to } => {
            if to.starts_with("s3://") {
                crate::config::check_storage_url(&to).map_err(|m| anyhow::anyhow!("--to: {m}"))?;
            } else if to.is_empty()
                || to.contains("://")
                || to.to_ascii_lowercase().starts_with("s3:")
            {
                anyhow::bail!(
                    "--to: give s3://BUCKET[/PREFIX] (lower-case scheme) or a folder path"
                );
            }
            let target = blob::open_url(&to, std::path::Path::new(&to))?;
            if target.describe() == source.describe() {
                anyhow::bail!("--to is the configured store itself");
            }
            let hashes = source.list()?;
            let (mut copied, mut present, mut failed) = (0usize, 0usize, Vec::new());
            for hash in &hashes {
                let moved = source.get(hash).and_then(|bytes| {
                    let stored = target.put(&bytes)?;
                    // Read back whole from the target: what it holds hashes to its name. A
                    // damaged copy already there is rewritten from the good source once.
                    match target.get(hash) {
                        Ok(_) => Ok(stored.created),
                        Err(BlobError::Corrupt { .. } | BlobError::Missing { .. }) => {
                            target.replace(&bytes)?;
                            target.get(hash)?;
                            Ok(true)
                        }
                        Err(e) => Err(e),
                    }
                });
                match moved {
                    Ok(true) => copied += 1,
                    Ok(false) => present += 1,
                    Err(e) => {
                        eprintln!("storage migrate: {hash}: {e}");
                        failed.push(hash.clone());
                    }
                }
            }
            println!(
                "storage migrate: {} blobs in {}: {copied} copied, {present} already in {}, {} failed",
                hashes.len(),
                source.describe(),
                target.describe(),
                failed.len()
            );
            let mut conn = open_store(settings)?;
            let (from, into) = (source.describe(), target.describe());
            let failures = failed.len();
            audit::with_events(&mut conn, |_, events| {
                events.push(
                    NewEvent::new(cli_actor(), "storage.migrate", "storage".to_owned()).after(
                        serde_json::json!({
                            "from": crate::error::bounded(&from, 200),
                            "to": crate::error::bounded(&into, 200),
                            "blobs": hashes.len(),
                            "copied": copied,
                            "present": present,
                            "failed": failures,
                        }),
                    ),
                );
                Ok(())
            })?;
            if failed.is_empty() {
                let next = if to.starts_with("s3://") {
                    format!("set storage.url = \"{to}\" (and audit.key to this store's key)")
                } else {
                    format!("set storage.dir to {to} (its blobs/ folder holds them)")
                };
                println!("storage migrate: every blob is in {into}, verified; {next}");
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
