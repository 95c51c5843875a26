//! `cairn diff`

use anyhow::Result;
use cairn_store::diff::{diff, Change};

use crate::{exit, output, Global};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The older snapshot (ID, prefix or `latest`).
    pub before: String,
    /// The newer snapshot.
    pub after: String,
}

pub fn run(global: &Global, args: &Args) -> Result<u8> {
    let repo = super::open(global)?;
    let (a, sa) = repo.resolve_snapshot(&args.before)?;
    let (b, sb) = repo.resolve_snapshot(&args.after)?;
    let changes = diff(&repo, &sa.tree, &sb.tree)?;
    if global.json {
        for c in &changes {
            output::json(&serde_json::to_value(c)?)?;
        }
        return Ok(exit::OK);
    }
    let size = |s: Option<u64>| s.map(output::bytes).unwrap_or_default();
    for c in &changes {
        let (mark, sizes) = match c.change {
            Change::Added => ("+", size(c.size_after)),
            Change::Removed => ("-", size(c.size_before)),
            Change::Changed => (
                "M",
                format!("{} -> {}", size(c.size_before), size(c.size_after)),
            ),
        };
        output::line(&format!("{mark}  {}  {sizes}", c.path))?;
        match (&c.mssql_before, &c.mssql_after) {
            (Some(x), Some(y)) => output::line(&format!(
                "     {}\n  -> {}",
                super::mssql_line(x),
                super::mssql_line(y)
            ))?,
            (None, Some(m)) | (Some(m), None) => {
                output::line(&format!("     {}", super::mssql_line(m)))?
            }
            (None, None) => {}
        }
    }
    if !global.quiet {
        let count = |k: Change| changes.iter().filter(|c| c.change == k).count();
        output::line(&format!(
            "{} to {}: {} added, {} removed, {} changed",
            a.short(),
            b.short(),
            count(Change::Added),
            count(Change::Removed),
            count(Change::Changed)
        ))?;
    }
    Ok(exit::OK)
}
