//! The nightly plan file of `cairn run` (TOML), read and checked before anything runs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cairn_ingest::Source;
use cairn_store::check::ReadData;
use cairn_store::retention::{CalendarDuration, GroupBy, KeepPolicy};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The repository; relative paths are taken from the plan file's directory.
    pub repository: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub host: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub profile: Option<Profile>,
    /// Exclusions for every path source.
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceSpec>,
    pub retention: Option<Retention>,
    pub check: Option<CheckSpec>,
    #[serde(default)]
    pub lync: LyncSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Lync,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub path: Option<PathBuf>,
    pub command: Option<Vec<String>>,
    pub name: Option<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[serde(default)]
    pub keep_last: u32,
    #[serde(default)]
    pub keep_hourly: u32,
    #[serde(default)]
    pub keep_daily: u32,
    #[serde(default)]
    pub keep_weekly: u32,
    #[serde(default)]
    pub keep_monthly: u32,
    #[serde(default)]
    pub keep_yearly: u32,
    pub keep_within: Option<String>,
    #[serde(default)]
    pub keep_tags: Vec<String>,
    /// How the plan's snapshots (its host's, carrying its tags) are grouped before the
    /// policy applies, as `forget --group-by`. Default `host`: editing the plan's sources
    /// does not strand the older snapshots in a group of their own.
    pub group_by: Option<String>,
    /// Delete the data of removed snapshots (default true).
    #[serde(default = "yes")]
    pub prune: bool,
    /// Percentage of unused space tolerated in packs before they are repacked.
    #[serde(default = "ten")]
    pub max_unused: f64,
    /// Apply retention after a partial backup too (default false: a bad night never removes
    /// a good one).
    #[serde(default)]
    pub after_partial: bool,
}

fn yes() -> bool {
    true
}

fn ten() -> f64 {
    10.0
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// `N/T` or `P%` of the packs, read and verified after the backup.
    pub read_data_subset: Option<String>,
    /// Read every pack (slow on large repositories).
    #[serde(default)]
    pub read_data: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LyncSpec {
    /// Required databases this deployment does not have (e.g. `["mgc"]` without Persistent
    /// Chat): not reported missing.
    #[serde(default)]
    pub not_deployed: Vec<String>,
}

/// A plan checked and resolved: paths made absolute, policies parsed.
#[derive(Debug)]
pub struct Resolved {
    pub repository: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub host: Option<String>,
    pub tags: Vec<String>,
    pub lync: bool,
    pub not_deployed: Vec<String>,
    pub excludes: Vec<String>,
    pub sources: Vec<Source>,
    pub retention: Option<(KeepPolicy, GroupBy, Retention)>,
    pub read_data: Option<ReadData>,
}

/// Reads and checks the plan at `path`; every error names the file and what is wrong.
pub fn load(path: &Path) -> Result<Resolved> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading plan {}", path.display()))?;
    let plan: Plan =
        toml::from_str(&text).with_context(|| format!("plan {} is not valid", path.display()))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    resolve(plan, base).with_context(|| format!("plan {}", path.display()))
}

fn resolve(plan: Plan, base: &Path) -> Result<Resolved> {
    let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    if plan.sources.is_empty() {
        bail!("no [[source]]: nothing to back up");
    }
    let mut sources = Vec::new();
    for (i, s) in plan.sources.into_iter().enumerate() {
        let n = i + 1;
        let source = match (s.path, s.command) {
            (Some(path), None) => Source::Path {
                path: abs(path),
                name: s.name,
                excludes: s.exclude,
            },
            (None, Some(argv)) => {
                if argv.is_empty() || argv[0].is_empty() {
                    bail!("source {n}: `command` is empty");
                }
                if !s.exclude.is_empty() {
                    bail!("source {n}: `exclude` applies to paths, not commands");
                }
                let name = s.name.with_context(|| {
                    format!("source {n}: a command needs a `name` to be stored under")
                })?;
                Source::Command { name, argv }
            }
            (Some(_), Some(_)) => bail!("source {n}: give `path` or `command`, not both"),
            (None, None) => bail!("source {n}: give `path` or `command`"),
        };
        sources.push(source);
    }
    let retention = match plan.retention {
        None => None,
        Some(r) => {
            let policy = KeepPolicy {
                last: r.keep_last,
                hourly: r.keep_hourly,
                daily: r.keep_daily,
                weekly: r.keep_weekly,
                monthly: r.keep_monthly,
                yearly: r.keep_yearly,
                within: r
                    .keep_within
                    .as_deref()
                    .map(str::parse::<CalendarDuration>)
                    .transpose()
                    .map_err(anyhow::Error::msg)
                    .context("[retention] keep_within")?,
                tags: r.keep_tags.clone(),
            };
            if policy.is_empty() {
                bail!("[retention] keeps nothing (no keep_* key): it would remove every snapshot");
            }
            if !(0.0..=100.0).contains(&r.max_unused) {
                bail!(
                    "[retention] max_unused {} is not a percentage",
                    r.max_unused
                );
            }
            let group_by = r
                .group_by
                .as_deref()
                .unwrap_or("host")
                .parse::<GroupBy>()
                .map_err(anyhow::Error::msg)
                .context("[retention] group_by")?;
            Some((policy, group_by, r))
        }
    };
    let read_data = match plan.check {
        None => None,
        Some(CheckSpec {
            read_data_subset: Some(_),
            read_data: true,
        }) => bail!("[check] give read_data or read_data_subset, not both"),
        Some(CheckSpec {
            read_data_subset: Some(s),
            ..
        }) => Some(
            ReadData::parse_subset(&s)
                .map_err(anyhow::Error::msg)
                .context("[check] read_data_subset")?,
        ),
        Some(CheckSpec {
            read_data: true, ..
        }) => Some(ReadData::All),
        Some(_) => Some(ReadData::None),
    };
    let lync = plan.profile == Some(Profile::Lync);
    if !lync && !plan.lync.not_deployed.is_empty() {
        bail!("[lync] is set but `profile = \"lync\"` is not");
    }
    Ok(Resolved {
        repository: plan.repository.map(abs),
        password_file: plan.password_file.map(abs),
        cache_dir: plan.cache_dir.map(abs),
        host: plan.host,
        tags: plan.tags,
        lync,
        not_deployed: plan.lync.not_deployed,
        excludes: plan.exclude,
        sources,
        retention,
        read_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Resolved> {
        let plan: Plan = toml::from_str(text)?;
        resolve(plan, Path::new("/etc/cairn"))
    }

    #[test]
    fn the_example_plan_reads() {
        let text = include_str!("../examples/lync-nightly.toml");
        let plan = parse(text).unwrap();
        assert!(plan.lync);
        assert_eq!(plan.sources.len(), 5);
        assert!(plan.retention.is_some());
        assert!(matches!(plan.read_data, Some(ReadData::Percent(_))));
    }

    #[test]
    fn relative_paths_are_taken_from_the_plan_directory() {
        let plan = parse(
            r#"
            repository = "repo"
            [[source]]
            path = "sql"
            name = "SQL"
            exclude = ["*.tmp"]
            "#,
        )
        .unwrap();
        assert_eq!(plan.repository.unwrap(), Path::new("/etc/cairn/repo"));
        assert_eq!(
            plan.sources,
            [Source::Path {
                path: "/etc/cairn/sql".into(),
                name: Some("SQL".into()),
                excludes: vec!["*.tmp".into()],
            }]
        );
    }

    #[test]
    fn mistakes_are_named() {
        let err = |text: &str| format!("{:#}", parse(text).unwrap_err());
        assert!(err("").contains("no [[source]]"));
        assert!(err("[[source]]\npath = \"/a\"\ncommand = [\"x\"]").contains("source 1"));
        assert!(err("[[source]]\ncommand = [\"cat\"]").contains("needs a `name`"));
        assert!(err("[[source]]\ncommand = []\nname = \"x\"").contains("`command` is empty"));
        assert!(
            err("[[source]]\npath = \"/a\"\n[retention]\nprune = true").contains("keeps nothing")
        );
        assert!(
            err("[[source]]\npath = \"/a\"\n[check]\nread_data_subset = \"7\"")
                .contains("read_data_subset")
        );
        assert!(err(
            "[[source]]\npath = \"/a\"\n[retention]\nkeep_daily = 3\nkeep_within = \"3x\""
        )
        .contains("keep_within"));
        // Unknown keys are errors, so a misspelt policy never silently keeps nothing.
        assert!(
            err("[[source]]\npath = \"/a\"\n[retention]\nkeep_dialy = 3").contains("keep_dialy")
        );
        assert!(err("profile = \"exchange\"\n[[source]]\npath = \"/a\"").contains("exchange"));
    }
}
