//! Which snapshots to keep: a pure function from a [`KeepPolicy`] and the snapshots to a
//! [`ForgetPlan`], so `--dry-run` is free and decisions can be tested on fixed time sets.
//!
//! Semantics follow restic's: snapshots are grouped (by host and paths by default); within a
//! group, newest first, `--keep-last N` keeps the N newest, and each of `--keep-hourly/daily/
//! weekly/monthly/yearly N` keeps the newest snapshot of each of the N most recent hours/days/
//! ISO weeks/months/years that have one, in the time zone of each snapshot's own time;
//! `--keep-within D` keeps all snapshots within D of the group's newest; `--keep-tag T` keeps
//! tagged ones. Then, chain-aware: a snapshot holding the SQL Server full, differential or log
//! backups that a kept differential or log needs to be restored is kept too.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, FixedOffset, Months, Timelike};
use serde::Serialize;

use crate::id::SnapshotId;
use crate::snapshot::Snapshot;

/// A calendar duration such as `1y2m3d4h` (years, months, days, hours).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CalendarDuration {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

impl std::str::FromStr for CalendarDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid duration {s:?}: expected e.g. 30d, 1y2m, 12h");
        let mut d = CalendarDuration::default();
        let mut number = String::new();
        let mut any = false;
        for c in s.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let n: u32 = number.parse().map_err(|_| bad())?;
            number.clear();
            match c {
                'y' => d.years += n,
                'm' => d.months += n,
                'd' => d.days += n,
                'h' => d.hours += n,
                _ => return Err(bad()),
            }
            any = true;
        }
        if !number.is_empty() || !any {
            return Err(bad());
        }
        Ok(d)
    }
}

impl CalendarDuration {
    /// `t` minus this duration (months and years by the calendar).
    fn before(&self, t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        let t = t
            .checked_sub_months(Months::new(self.years * 12 + self.months))
            .unwrap_or(t);
        t - chrono::Duration::days(i64::from(self.days))
            - chrono::Duration::hours(i64::from(self.hours))
    }
}

/// What `forget` keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeepPolicy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within: Option<CalendarDuration>,
    pub tags: Vec<String>,
}

impl KeepPolicy {
    /// Whether any rule is set (a policy without rules would remove everything).
    pub fn is_empty(&self) -> bool {
        self.last + self.hourly + self.daily + self.weekly + self.monthly + self.yearly == 0
            && self.within.is_none()
            && self.tags.is_empty()
    }
}

/// How snapshots are grouped before the policy applies to each group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        Self {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl std::str::FromStr for GroupBy {
    type Err = String;

    /// `host,paths` (the default), any comma-separated subset of `host`, `paths`, `tags`, or
    /// the empty string (one group).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut g = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" => g.paths = true,
                "tags" => g.tags = true,
                other => {
                    return Err(format!(
                        "invalid --group-by {other:?}: use host, paths, tags"
                    ))
                }
            }
        }
        Ok(g)
    }
}

/// The decision: every snapshot is in `keep` or `remove`; kept ones have their reasons.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ForgetPlan {
    pub keep: Vec<SnapshotId>,
    pub remove: Vec<SnapshotId>,
    pub reasons: BTreeMap<SnapshotId, Vec<String>>,
}

fn group_key(s: &Snapshot, by: GroupBy) -> (String, Vec<String>, Vec<String>) {
    let mut paths = s.paths.clone();
    paths.sort();
    let mut tags = s.tags.clone();
    tags.sort();
    (
        if by.host {
            s.host.clone()
        } else {
            String::new()
        },
        if by.paths { paths } else { Vec::new() },
        if by.tags { tags } else { Vec::new() },
    )
}

/// A time bucket of a rule: (year, month or ISO week, day, hour), unused parts zero.
type Bucket = (i32, u32, u32, u32);

/// The bucket a rule puts a snapshot in, in the snapshot's own time zone.
fn bucket(rule: &str, t: &DateTime<FixedOffset>) -> Bucket {
    match rule {
        "hourly" => (t.year(), t.month(), t.day(), t.hour()),
        "daily" => (t.year(), t.month(), t.day(), 0),
        "weekly" => {
            let w = t.iso_week();
            (w.year(), w.week(), 0, 0)
        }
        "monthly" => (t.year(), t.month(), 0, 0),
        _ => (t.year(), 0, 0, 0),
    }
}

/// Decides which snapshots to keep. `chains`: keep what kept SQL backups depend on.
pub fn plan(
    snapshots: &[(SnapshotId, Snapshot)],
    policy: &KeepPolicy,
    group_by: GroupBy,
    chains: bool,
) -> ForgetPlan {
    let mut reasons: BTreeMap<SnapshotId, Vec<String>> = BTreeMap::new();
    let mut groups: BTreeMap<_, Vec<&(SnapshotId, Snapshot)>> = BTreeMap::new();
    for s in snapshots {
        groups.entry(group_key(&s.1, group_by)).or_default().push(s);
    }
    for members in groups.values_mut() {
        // Newest first; equal times by ID so the plan does not depend on input order.
        members.sort_by(|a, b| b.1.time.cmp(&a.1.time).then(a.0.cmp(&b.0)));
        let newest = members[0].1.time;
        let mut rules: Vec<(&str, u32, Option<Bucket>)> = [
            ("hourly", policy.hourly),
            ("daily", policy.daily),
            ("weekly", policy.weekly),
            ("monthly", policy.monthly),
            ("yearly", policy.yearly),
        ]
        .into_iter()
        .map(|(name, n)| (name, n, None))
        .collect();
        for (i, (id, s)) in members.iter().map(|m| (&m.0, &m.1)).enumerate() {
            let mut why = Vec::new();
            if (i as u32) < policy.last {
                why.push("last snapshot".to_string());
            }
            for (name, left, last) in rules.iter_mut() {
                let b = bucket(name, &s.time);
                if *left > 0 && *last != Some(b) {
                    *last = Some(b);
                    *left -= 1;
                    why.push(format!("{name} snapshot"));
                }
            }
            if let Some(d) = &policy.within {
                if s.time >= d.before(newest) {
                    why.push("within the period".to_string());
                }
            }
            for t in &policy.tags {
                if s.tags.contains(t) {
                    why.push(format!("tagged {t}"));
                }
            }
            if !why.is_empty() {
                reasons.insert(*id, why);
            }
        }
    }
    if chains {
        keep_chains(snapshots, &mut reasons);
    }
    let mut out = ForgetPlan::default();
    let mut ordered: Vec<&(SnapshotId, Snapshot)> = snapshots.iter().collect();
    ordered.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    for (id, _) in ordered {
        if reasons.contains_key(id) {
            out.keep.push(*id);
        } else {
            out.remove.push(*id);
        }
    }
    out.reasons = reasons;
    out
}

/// An LSN `vlf:block:slot` as a comparable tuple.
fn lsn(v: &serde_json::Value, key: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v
        .get(key)?
        .as_str()?
        .split(':')
        .map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// One SQL backup of a snapshot.
struct Backup<'a> {
    snapshot: SnapshotId,
    database: String,
    kind: String,
    meta: &'a serde_json::Value,
}

/// Adds to `reasons` every snapshot holding a backup a kept one depends on, until nothing
/// changes: a differential needs its full (database-backup LSN = the full's checkpoint LSN);
/// a log needs its full, the newest differential of that full that ends before it, and the
/// logs between that base and itself (LSN continuity).
fn keep_chains(
    snapshots: &[(SnapshotId, Snapshot)],
    reasons: &mut BTreeMap<SnapshotId, Vec<String>>,
) {
    let backups: Vec<Backup> = snapshots
        .iter()
        .flat_map(|(id, s)| {
            s.mssql.iter().filter_map(move |m| {
                Some(Backup {
                    snapshot: *id,
                    database: format!(
                        "{}\\{}",
                        m.get("server")?.as_str()?,
                        m.get("database")?.as_str()?
                    ),
                    kind: m.get("backup_type")?.as_str()?.to_string(),
                    meta: m,
                })
            })
        })
        .collect();
    let mut by_db: HashMap<&str, Vec<&Backup>> = HashMap::new();
    for b in &backups {
        by_db.entry(b.database.as_str()).or_default().push(b);
    }
    let short_name = |b: &Backup| {
        let kind = match b.kind.as_str() {
            "D" => "full",
            "I" => "differential",
            "L" => "log",
            k => k,
        };
        format!(
            "{} {kind}",
            b.meta
                .get("database")
                .and_then(|d| d.as_str())
                .unwrap_or("?")
        )
    };
    loop {
        let mut added: Vec<(SnapshotId, String)> = Vec::new();
        for b in backups.iter().filter(|b| reasons.contains_key(&b.snapshot)) {
            let same = &by_db[b.database.as_str()];
            let needs: Vec<&Backup> = match b.kind.as_str() {
                "I" => same
                    .iter()
                    .filter(|f| {
                        f.kind == "D"
                            && lsn(f.meta, "checkpoint_lsn").is_some()
                            && lsn(f.meta, "checkpoint_lsn") == lsn(b.meta, "database_backup_lsn")
                    })
                    .copied()
                    .collect(),
                "L" => log_needs(b, same),
                _ => Vec::new(),
            };
            for n in needs {
                if n.snapshot != b.snapshot && !reasons.contains_key(&n.snapshot) {
                    added.push((
                        n.snapshot,
                        format!("needed by {} ({})", b.snapshot.short(), short_name(b)),
                    ));
                }
            }
        }
        if added.is_empty() {
            break;
        }
        for (id, why) in added {
            let list = reasons.entry(id).or_default();
            if !list.contains(&why) {
                list.push(why);
            }
        }
    }
}

/// What a log backup needs: its full, the newest differential of that full ending at or before
/// the log's first LSN, and the logs from that base up to the log.
fn log_needs<'a>(log: &Backup, same: &[&'a Backup<'a>]) -> Vec<&'a Backup<'a>> {
    let (Some(base_lsn), Some(first)) = (
        lsn(log.meta, "database_backup_lsn"),
        lsn(log.meta, "first_lsn"),
    ) else {
        return Vec::new();
    };
    let Some(full) = same
        .iter()
        .find(|f| f.kind == "D" && lsn(f.meta, "checkpoint_lsn") == Some(base_lsn))
    else {
        return Vec::new();
    };
    let diff = same
        .iter()
        .filter(|d| {
            d.kind == "I"
                && lsn(d.meta, "database_backup_lsn") == Some(base_lsn)
                && lsn(d.meta, "last_lsn").is_some_and(|l| l <= first)
        })
        .max_by_key(|d| lsn(d.meta, "last_lsn"));
    let from = diff
        .and_then(|d| lsn(d.meta, "last_lsn"))
        .or_else(|| lsn(full.meta, "last_lsn"))
        .unwrap_or(base_lsn);
    let mut out: Vec<&Backup> = vec![*full];
    out.extend(diff.copied());
    out.extend(same.iter().filter(|l| {
        l.kind == "L" && lsn(l.meta, "last_lsn").is_some_and(|e| e > from && e <= first)
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(i: u8, time: &str, host: &str, tags: &[&str]) -> (SnapshotId, Snapshot) {
        (
            SnapshotId([i; 32]),
            Snapshot {
                version: 1,
                time: DateTime::parse_from_rfc3339(time).unwrap(),
                host: host.into(),
                username: String::new(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                paths: vec!["/backups/sql".into()],
                tree: crate::id::BlobId([0; 32]),
                parent: None,
                partial: false,
                summary: Default::default(),
                mssql: vec![],
            },
        )
    }

    /// The plan as a table, oldest first: time, host, decision, reasons.
    fn render(snaps: &[(SnapshotId, Snapshot)], plan: &ForgetPlan) -> String {
        let mut rows: Vec<_> = snaps.iter().collect();
        rows.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        let mut out = String::new();
        for (id, s) in rows {
            let decision = match plan.reasons.get(id) {
                Some(r) => format!("keep    {}", r.join(", ")),
                None => "remove".to_string(),
            };
            out.push_str(&format!(
                "{}  {:<6} {decision}\n",
                s.time.to_rfc3339(),
                s.host
            ));
        }
        out
    }

    /// Nightly snapshots at 02:00 UTC for `days` days from 2023-01-01.
    fn nightly(days: u32) -> Vec<(SnapshotId, Snapshot)> {
        let start = DateTime::parse_from_rfc3339("2023-01-01T02:00:00+00:00").unwrap();
        (0..days)
            .map(|d| {
                let t = start + chrono::Duration::days(i64::from(d));
                let mut s = snap(0, &t.to_rfc3339(), "sql01", &[]);
                s.0 = SnapshotId(*blake3::hash(&d.to_le_bytes()).as_bytes());
                s
            })
            .collect()
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            "1y2m".parse::<CalendarDuration>(),
            Ok(CalendarDuration {
                years: 1,
                months: 2,
                days: 0,
                hours: 0
            })
        );
        assert_eq!("30d".parse::<CalendarDuration>().unwrap().days, 30);
        for bad in ["", "30", "d", "3w", "1y2"] {
            assert!(bad.parse::<CalendarDuration>().is_err(), "{bad}");
        }
    }

    /// restic's documented example policy over 400 nightly snapshots: 7 dailies, then the
    /// newest of each of 5 ISO weeks, 12 months, and years.
    #[test]
    fn restic_style_daily_weekly_monthly_yearly() {
        let snaps = nightly(400);
        let policy = KeepPolicy {
            daily: 7,
            weekly: 5,
            monthly: 12,
            yearly: 75,
            ..Default::default()
        };
        let plan = plan(&snaps, &policy, GroupBy::default(), false);
        let kept: Vec<_> = snaps
            .iter()
            .filter(|s| plan.reasons.contains_key(&s.0))
            .cloned()
            .collect();
        insta::assert_snapshot!(render(&kept, &plan));
        assert_eq!(plan.keep.len() + plan.remove.len(), 400);
    }

    #[test]
    fn keep_last_within_and_tags() {
        let snaps = vec![
            snap(1, "2024-01-01T00:00:00+00:00", "a", &["monthly-export"]),
            snap(2, "2024-06-01T00:00:00+00:00", "a", &[]),
            snap(3, "2024-11-01T00:00:00+00:00", "a", &[]),
            snap(4, "2024-12-01T00:00:00+00:00", "a", &[]),
            snap(5, "2025-01-01T00:00:00+00:00", "a", &[]),
        ];
        let policy = KeepPolicy {
            last: 1,
            within: Some("2m".parse().unwrap()),
            tags: vec!["monthly-export".into()],
            ..Default::default()
        };
        insta::assert_snapshot!(render(
            &snaps,
            &plan(&snaps, &policy, GroupBy::default(), false)
        ));
    }

    /// Daylight-saving changes in Central Europe: buckets follow each snapshot's local time.
    /// In spring 02:30 does not exist (the job ran at 03:30 +02:00); in autumn 02:30 happens
    /// twice, and both runs fall in the same local hour and day.
    #[test]
    fn dst_changes_use_local_time() {
        let snaps = vec![
            snap(1, "2024-03-30T02:30:00+01:00", "a", &[]),
            snap(2, "2024-03-31T03:30:00+02:00", "a", &[]),
            snap(3, "2024-04-01T02:30:00+02:00", "a", &[]),
            snap(4, "2024-10-26T02:30:00+02:00", "a", &[]),
            snap(5, "2024-10-27T02:30:00+02:00", "a", &[]),
            snap(6, "2024-10-27T02:30:00+01:00", "a", &[]),
            snap(7, "2024-10-28T00:30:00+01:00", "a", &[]),
            // Late evening local time is the next day in UTC: still its local day.
            snap(8, "2024-10-28T23:30:00+01:00", "a", &[]),
        ];
        let policy = KeepPolicy {
            hourly: 10,
            daily: 10,
            ..Default::default()
        };
        insta::assert_snapshot!(render(
            &snaps,
            &plan(&snaps, &policy, GroupBy::default(), false)
        ));
    }

    #[test]
    fn hosts_are_grouped_apart_unless_told() {
        let snaps = vec![
            snap(1, "2024-05-01T01:00:00+00:00", "be01", &[]),
            snap(2, "2024-05-01T02:00:00+00:00", "be02", &[]),
            snap(3, "2024-05-02T01:00:00+00:00", "be01", &[]),
            snap(4, "2024-05-02T02:00:00+00:00", "be02", &[]),
            snap(5, "2024-05-03T01:00:00+00:00", "be01", &[]),
        ];
        let policy = KeepPolicy {
            last: 1,
            ..Default::default()
        };
        let by_host = plan(&snaps, &policy, GroupBy::default(), false);
        let together = plan(&snaps, &policy, "paths".parse().unwrap(), false);
        insta::assert_snapshot!(format!(
            "grouped by host and paths:\n{}\none group:\n{}",
            render(&snaps, &by_host),
            render(&snaps, &together)
        ));
        assert!("hosts".parse::<GroupBy>().is_err());
        assert!(KeepPolicy::default().is_empty());
    }
}
