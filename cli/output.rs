//! Writing results to standard output (errors such as a closed pipe are returned, not panicked
//! on) and formatting sizes and times for people.

use std::io::Write;

use anyhow::Result;

/// Writes one line to standard output.
pub fn line(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// Writes text as it is.
pub fn text(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Writes a value as one line of JSON.
pub fn json(value: &serde_json::Value) -> Result<()> {
    line(&serde_json::to_string(value)?)
}

/// `1536` → `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Nanoseconds since the epoch as RFC 3339 in UTC (`1970-01-01T00:00:00Z` when out of range).
pub fn time_ns(ns: i64) -> String {
    chrono::DateTime::from_timestamp(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
    .unwrap_or_default()
    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_and_times() {
        assert_eq!(super::bytes(10), "10 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(3 << 30), "3.0 GiB");
        assert_eq!(super::time_ns(1_500_000_000), "1970-01-01T00:00:01.500Z");
    }
}
