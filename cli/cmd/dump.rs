//! `cairn dump`

use std::io::Write;

use anyhow::{bail, Result};
use cairn_store::{NodeKind, StoreError};

use crate::{exit, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A snapshot ID, a unique prefix of one, or `latest`.
    pub snapshot: String,
    /// The file or stream inside the snapshot.
    pub path: String,
}

pub fn run(global: &Global, args: &Args) -> Result<u8> {
    let repo = super::open(global)?;
    let (id, snap) = repo.resolve_snapshot(&args.snapshot)?;
    let node = repo
        .find_node(&snap.tree, &args.path)?
        .ok_or_else(|| StoreError::PathNotFound {
            snapshot: id.short(),
            path: args.path.clone(),
        })?;
    if !matches!(node.kind, NodeKind::File | NodeKind::Stream) {
        bail!("{} in snapshot {} is not a file", args.path, id.short());
    }
    let mut out = std::io::stdout().lock();
    if let Some(content) = &node.content {
        // Each chunk is authenticated and checked against its ID before a byte of it is written.
        for entry in repo.chunks(content) {
            let data = repo.load_blob(&entry?.0)?;
            out.write_all(&data)?;
        }
    }
    out.flush()?;
    Ok(exit::OK)
}
