//! `cairn init`

use anyhow::{Context, Result};
use cairn_chunker::ChunkerParams;
use cairn_store::{ChunkSizes, ChunkerConfig, InitOptions, Repository};
use serde_json::json;

use crate::{exit, output, Global};

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(global: &Global, _args: &Args) -> Result<u8> {
    let path = super::repo_path(global)?;
    let files = ChunkerParams::files();
    let options = InitOptions {
        chunker: ChunkerConfig {
            files: ChunkSizes {
                min: files.min(),
                avg: files.avg(),
                max: files.max(),
            },
        },
    };
    Repository::init(&path, &options)
        .with_context(|| format!("creating repository {}", path.display()))?;
    let repo = super::open(global)?;
    if global.json {
        output::json(&json!({
            "id": repo.config().id,
            "path": path.display().to_string(),
            "version": repo.config().version,
        }))?;
    } else if !global.quiet {
        output::line(&format!(
            "created cairn repository {} at {}",
            &repo.config().id[..10],
            path.display()
        ))?;
    }
    Ok(exit::OK)
}
