//! `cairn init`

use std::path::PathBuf;

use anyhow::{Context, Result};
use cairn_chunker::ChunkerParams;
use cairn_store::{ChunkSizes, ChunkerConfig, Encryption, InitOptions, Repository};
use serde_json::json;

use crate::{exit, output, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Store objects unencrypted (still authenticated). Anyone who can read the repository can
    /// read every backed-up byte, file name and host name.
    #[arg(long)]
    pub insecure_no_encryption: bool,
    /// Read the new repository's password from this file (otherwise the repository password
    /// sources, then CAIRN_NEW_PASSWORD, then a prompt).
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
    #[command(flatten)]
    pub kdf: super::KdfArgs,
    /// How SQL Server data pages are grouped into chunks: `page` (8 KiB, the default: least
    /// growth per night) or `extent` (64 KiB: 8x fewer catalog entries). Fixed for the
    /// repository's life; see store/FORMAT.md for the measurements behind the default.
    #[arg(long, value_name = "page|extent", default_value = "page", value_parser = ["page", "extent"])]
    pub sql_page_grouping: String,
}

pub fn run(global: &Global, args: &Args) -> Result<u8> {
    let path = super::repo_path(global)?;
    let files = ChunkerParams::files();
    let small = ChunkerParams::small();
    let encryption = if args.insecure_no_encryption {
        None
    } else {
        let password = super::new_password(global, args.new_password_file.as_deref(), true)?;
        Some(Encryption {
            password,
            kdf: args.kdf.params(),
        })
    };
    let options = InitOptions {
        chunker: ChunkerConfig {
            files: ChunkSizes {
                min: files.min(),
                avg: files.avg(),
                max: files.max(),
            },
            small: ChunkSizes {
                min: small.min(),
                avg: small.avg(),
                max: small.max(),
            },
            pages: args.sql_page_grouping.clone(),
        },
        encryption,
    };
    Repository::init(&path, &options)
        .with_context(|| format!("creating repository {}", path.display()))?;
    let repo = match &options.encryption {
        // Open with the password just set, whatever the environment holds.
        Some(e) => {
            let password = || Ok(e.password.clone());
            let open = cairn_store::OpenOptions {
                cache_dir: global.cache_dir.as_deref(),
                password: &password,
                sync: true,
            };
            Repository::open(&path, &open)?
        }
        None => super::open(global)?,
    };
    if global.json {
        output::json(&json!({
            "id": repo.config().id,
            "path": path.display().to_string(),
            "version": repo.config().version,
            "encryption": repo.config().encryption,
        }))?;
    } else if !global.quiet {
        output::line(&format!(
            "created cairn repository {} at {} ({})",
            &repo.config().id[..10],
            path.display(),
            if args.insecure_no_encryption {
                "NOT encrypted"
            } else {
                "encrypted"
            }
        ))?;
    }
    Ok(exit::OK)
}
