//! `cairn key list | add | remove ID | passwd`

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;

use crate::{exit, output, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// List the key files (one per password).
    List,
    /// Add a password.
    Add(NewKey),
    /// Remove a key file by ID or unique prefix (never the last one).
    Remove {
        /// The key's ID or a unique prefix of it.
        id: String,
    },
    /// Change the password used to open the repository: adds a key with the new password,
    /// then removes the one opened.
    Passwd(NewKey),
}

#[derive(clap::Args, Debug)]
pub struct NewKey {
    /// Read the new password from this file (otherwise CAIRN_NEW_PASSWORD, then a prompt).
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
    #[command(flatten)]
    pub kdf: super::KdfArgs,
}

pub fn run(global: &Global, args: &Args) -> Result<u8> {
    let repo = super::open(global)?;
    if matches!(args.action, Action::Add(_) | Action::Passwd(_))
        && repo.config().encryption == cairn_store::config::ENCRYPTION_NONE
    {
        anyhow::bail!("this repository is not encrypted: it has no passwords to add or change");
    }
    match &args.action {
        Action::List => {
            let keys = repo.keys()?;
            if global.json {
                let list: Vec<_> = keys
                    .iter()
                    .map(|k| json!({"id": k.id, "created": k.created, "kdf": k.kdf, "current": k.current}))
                    .collect();
                output::line(&serde_json::to_string(&list)?)?;
            } else {
                for k in &keys {
                    output::line(&format!(
                        "{} {}  {}  {}",
                        if k.current { "*" } else { " " },
                        &k.id[..8],
                        k.created,
                        k.kdf
                    ))?;
                }
            }
        }
        Action::Add(new) => {
            let password = super::new_password(global, new.new_password_file.as_deref(), false)?;
            let id = repo.add_key(&password, new.kdf.params())?;
            report(global, "added", &id)?;
        }
        Action::Remove { id } => {
            let removed = repo.remove_key(id).context("removing a key")?;
            report(global, "removed", &removed)?;
        }
        Action::Passwd(new) => {
            let password = super::new_password(global, new.new_password_file.as_deref(), false)?;
            let id = repo.add_key(&password, new.kdf.params())?;
            let old = repo.current_key().to_string();
            repo.remove_key(&old).context("removing the old key")?;
            report(global, "added", &id)?;
            report(global, "removed", &old)?;
        }
    }
    Ok(exit::OK)
}

fn report(global: &Global, what: &str, id: &str) -> Result<()> {
    if global.json {
        output::json(&json!({ what: id }))
    } else if !global.quiet {
        output::line(&format!("{what} key {}", &id[..8.min(id.len())]))
    } else {
        Ok(())
    }
}
