//! `cairn snapshots`

use anyhow::Result;

use crate::{exit, output, Global};

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(global: &Global, _args: &Args) -> Result<u8> {
    let repo = super::open(global)?;
    let snapshots = repo.snapshots()?;
    if global.json {
        let list: Vec<_> = snapshots
            .iter()
            .map(|(id, s)| super::snapshot_json(id, s))
            .collect();
        output::line(&serde_json::to_string(&list)?)?;
        return Ok(exit::OK);
    }
    output::line(&format!(
        "{:<8}  {:<25}  {:<12}  {:<15}  paths",
        "ID", "time", "host", "tags"
    ))?;
    for (id, s) in &snapshots {
        output::line(&format!(
            "{:<8}  {:<25}  {:<12}  {:<15}  {}{}",
            id.short(),
            s.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            s.host,
            s.tags.join(","),
            s.paths.join(" "),
            if s.partial { "  (partial)" } else { "" }
        ))?;
        for m in &s.mssql {
            let path = m.get("path").and_then(|p| p.as_str()).unwrap_or("?");
            output::line(&format!("          {path}: {}", super::mssql_line(m)))?;
        }
    }
    if !global.quiet {
        output::line(&format!("{} snapshots", snapshots.len()))?;
    }
    Ok(exit::OK)
}
