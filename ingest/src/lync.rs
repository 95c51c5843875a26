//! The Lync / Skype for Business profile: which SQL Server databases a night must hold, by
//! Microsoft's "Backup and restoration requirements: data".

/// Databases whose loss loses data: (name, what it holds). Lync 2010 and OCS name the user
/// database `rtc` instead of `rtcxds`.
pub const REQUIRED: [(&str, &str); 8] = [
    (
        "Xds",
        "topology, policies and configuration (Central Management store)",
    ),
    ("Lis", "E9-1-1 location information"),
    ("RgsConfig", "Response Group configuration"),
    (
        "rtcxds",
        "persistent user data: contact lists, ACLs, scheduled conferences",
    ),
    ("LcsLog", "archiving: IM and conference archives"),
    ("LcsCDR", "monitoring: call detail records"),
    ("QoEMetrics", "monitoring: quality of experience"),
    ("mgc", "Persistent Chat content"),
];

/// Databases the servers rebuild: backing them up wastes space and time.
pub const TRANSIENT: [&str; 6] = ["RtcDyn", "Rtcab", "Rtcab1", "CpsDyn", "RgsDyn", "MgcComp"];

/// Other names a required database goes by.
fn aliases(name: &str) -> &'static [&'static str] {
    match name {
        "rtcxds" => &["rtc"],
        _ => &[],
    }
}

/// Advisories for the SQL Server backups of a snapshot (`mssql`: the snapshot's list, each with
/// a `database`): a required database missing, unless named in `not_deployed`; a transient
/// one included. Names compare without regard to case, as SQL Server's default collation does.
pub fn check_databases(mssql: &[serde_json::Value], not_deployed: &[String]) -> Vec<String> {
    let present: Vec<String> = mssql
        .iter()
        .filter_map(|m| m.get("database")?.as_str())
        .map(str::to_ascii_lowercase)
        .collect();
    let has = |name: &str| present.iter().any(|p| p.eq_ignore_ascii_case(name));
    let skipped = |name: &str| not_deployed.iter().any(|n| n.eq_ignore_ascii_case(name));
    let mut out = Vec::new();
    for (name, holds) in REQUIRED {
        if skipped(name) || has(name) || aliases(name).iter().any(|a| has(a)) {
            continue;
        }
        out.push(format!(
            "lync profile: no backup of database {name} ({holds}) in this snapshot; add it, or list it under [lync] not_deployed"
        ));
    }
    for name in TRANSIENT {
        if has(name) {
            out.push(format!(
                "lync profile: database {name} is transient (the servers rebuild it) and need not be backed up"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn databases(names: &[&str]) -> Vec<serde_json::Value> {
        names.iter().map(|n| json!({"database": n})).collect()
    }

    #[test]
    fn a_complete_night_has_no_advisories() {
        let all = databases(&[
            "xds",
            "LIS",
            "RgsConfig",
            "rtcxds",
            "LcsLog",
            "LcsCDR",
            "QoEMetrics",
            "mgc",
        ]);
        assert_eq!(check_databases(&all, &[]), Vec::<String>::new());
        // Lync 2010's user database is `rtc`.
        let old = databases(&[
            "Xds",
            "Lis",
            "RgsConfig",
            "rtc",
            "LcsLog",
            "LcsCDR",
            "QoEMetrics",
            "mgc",
        ]);
        assert_eq!(check_databases(&old, &[]), Vec::<String>::new());
    }

    #[test]
    fn names_what_is_missing_and_what_is_transient() {
        let night = databases(&["Xds", "rtcxds", "RtcDyn", "LcsCDR", "QoEMetrics"]);
        let advice = check_databases(&night, &["mgc".into()]);
        let missing: Vec<&str> = advice
            .iter()
            .filter(|a| a.contains("no backup of database"))
            .map(|a| a.split_whitespace().nth(6).unwrap())
            .collect();
        assert_eq!(missing, ["Lis", "RgsConfig", "LcsLog"]);
        assert_eq!(
            advice.iter().filter(|a| a.contains("transient")).count(),
            1,
            "{advice:?}"
        );
        assert!(advice.iter().any(|a| a.contains("RtcDyn is transient")));
    }
}
