//! Microsoft Tape Format as SQL Server writes it: descriptor blocks (DBLKs), streams and the
//! SCIN record (`../shared/docs/sqlserver-backup-format.md`, verified on the corpus).
//! Pure parsing of byte slices: every function checks bounds and never panics.

use serde::Serialize;

/// Size of the common DBLK header.
pub const DBLK_HEADER: usize = 52;
/// Size of a stream header.
pub const STREAM_HEADER: usize = 22;
/// SQL Server data pages.
pub const PAGE: usize = 8192;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// XOR of the 16-bit words of `b` (MTF header checksums).
fn xor_words(b: &[u8]) -> u16 {
    b.chunks_exact(2)
        .fold(0, |acc, w| acc ^ u16::from_le_bytes([w[0], w[1]]))
}

/// A descriptor block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dblk {
    pub kind: [u8; 4],
    /// Offset of the first stream header from the DBLK's start.
    pub first_event: u16,
}

/// Parses a DBLK header; `Err` says why the bytes are not one.
pub fn parse_dblk(b: &[u8]) -> Result<Dblk, String> {
    let h = b.get(..DBLK_HEADER).ok_or("truncated descriptor block")?;
    let kind: [u8; 4] = h[..4].try_into().expect("4 bytes");
    if !kind.iter().all(|c| c.is_ascii_uppercase()) {
        return Err(format!("no descriptor block (type bytes {:02x?})", kind));
    }
    let stored = u16_at(h, 50).expect("in range");
    if xor_words(&h[..50]) != stored {
        return Err(format!(
            "{} block header checksum mismatch",
            String::from_utf8_lossy(&kind)
        ));
    }
    Ok(Dblk {
        kind,
        first_event: u16_at(h, 8).expect("in range"),
    })
}

/// A stream header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHeader {
    pub id: [u8; 4],
    pub media_format: u16,
    pub length: u64,
}

pub fn parse_stream(b: &[u8]) -> Result<StreamHeader, String> {
    let h = b.get(..STREAM_HEADER).ok_or("truncated stream header")?;
    let id: [u8; 4] = h[..4].try_into().expect("4 bytes");
    if xor_words(&h[..20]) != u16_at(h, 20).expect("in range") {
        return Err(format!(
            "{} stream header checksum mismatch",
            String::from_utf8_lossy(&id)
        ));
    }
    Ok(StreamHeader {
        id,
        media_format: u16_at(h, 6).expect("in range"),
        length: u64_at(h, 8).expect("in range"),
    })
}

/// What the RAID stream of the TAPE block says about a striped media set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaFamily {
    pub media_set_guid: String,
    pub family_count: u16,
    pub family_number: u16,
}

pub fn parse_raid(b: &[u8]) -> Option<MediaFamily> {
    Some(MediaFamily {
        media_set_guid: hex::encode(b.get(..16)?),
        family_count: u16_at(b, 20)?,
        family_number: u16_at(b, 24)?,
    })
}

/// An LSN as SQL Server shows it in msdb: `vlf:block:slot`.
fn lsn(b: &[u8], off: usize) -> Option<String> {
    Some(format!(
        "{}:{}:{}",
        u32_at(b, off)?,
        u32_at(b, off + 4)?,
        u16_at(b, off + 8)?
    ))
}

/// A 5-byte MTF date (40 bits big-endian: year 14, month 4, day 5, hour 5, minute 6,
/// second 6), as `YYYY-MM-DD hh:mm:ss`; `None` when zero.
pub fn mtf_date(b: &[u8]) -> Option<String> {
    let b = b.get(..5)?;
    let v = b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
    if v == 0 {
        return None;
    }
    let (year, month, day) = (v >> 26, (v >> 22) & 0xf, (v >> 17) & 0x1f);
    let (hour, minute, second) = ((v >> 12) & 0x1f, (v >> 6) & 0x3f, v & 0x3f);
    Some(format!(
        "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}"
    ))
}

/// The SQL Server release of a database version number.
pub fn sql_version(db_version: u16) -> Option<&'static str> {
    Some(match db_version {
        611 | 612 => "2005",
        655 => "2008",
        660 | 661 => "2008R2",
        706 => "2012",
        782 => "2014",
        852 => "2016",
        868 | 869 => "2017",
        895..=904 => "2019",
        950..=957 => "2022",
        _ => return None,
    })
}

/// What a backup says about itself (the SCIN record), as `ls --json` shows it under "mssql".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackupMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_lsn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_lsn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_lsn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_backup_lsn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_finish: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_version: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compat_level: Option<u8>,
    pub compressed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_checksums: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_count: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_number: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_set_guid: Option<String>,
    /// Pages found in the data streams.
    pub pages: u64,
}

/// Reads a UTF-16LE string given as (u16 size, u16 offset) at `at` inside `record`.
fn utf16_field(record: &[u8], at: usize) -> Option<String> {
    let size = usize::from(u16_at(record, at)?);
    let off = usize::from(u16_at(record, at + 2)?);
    let bytes = record.get(off..off + size)?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|w| u16::from_le_bytes([w[0], w[1]]))
        .collect();
    Some(String::from_utf16_lossy(&units))
}

/// Fills `meta` from a SCIN record (the MQCI stream data starting at `SCIN`). Later copies
/// overwrite earlier ones, so the trailing copy's finish date wins.
pub fn parse_scin(record: &[u8], meta: &mut BackupMeta) -> Result<(), String> {
    if record.get(..4) != Some(b"SCIN") {
        return Err("the SQL Server header has no SCIN record".into());
    }
    let len = u32_at(record, 4).ok_or("truncated SCIN record")? as usize;
    let r = record
        .get(..len)
        .ok_or_else(|| format!("SCIN record of {len} bytes is truncated"))?;
    if r.len() < 0x70 {
        return Err(format!("SCIN record of {len} bytes is too short"));
    }
    meta.has_checksums = Some(r[8] & 0x10 != 0);
    meta.first_lsn = lsn(r, 0x20);
    meta.last_lsn = lsn(r, 0x2A);
    meta.checkpoint_lsn = lsn(r, 0x34);
    meta.database_backup_lsn = lsn(r, 0x3E);
    meta.db_created = mtf_date(&r[0x48..]);
    meta.backup_start = mtf_date(&r[0x4D..]);
    if let Some(finish) = mtf_date(&r[0x52..]) {
        meta.backup_finish = Some(finish);
    }
    meta.backup_type = Some(char::from(r[0x57]).to_string());
    meta.compat_level = Some(r[0x5B]);
    let version = u16_at(r, 0x5E).expect("in range");
    meta.db_version = Some(version);
    meta.sql_version = sql_version(version).map(str::to_string);
    meta.database = utf16_field(r, 0x68);
    meta.server = utf16_field(r, 0x6C);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_checksums() {
        // 2024-12-09 18:58:10 packed as an MTF date.
        let v: u64 = (2024 << 26) | (12 << 22) | (9 << 17) | (18 << 12) | (58 << 6) | 10;
        let b = v.to_be_bytes();
        assert_eq!(mtf_date(&b[3..]).as_deref(), Some("2024-12-09 18:58:10"));
        assert_eq!(mtf_date(&[0; 5]), None);
        assert_eq!(mtf_date(&[1, 2]), None);
        let mut h = vec![0u8; DBLK_HEADER];
        h[..4].copy_from_slice(b"MSDA");
        h[8] = 60;
        let ck = xor_words(&h[..50]);
        h[50..52].copy_from_slice(&ck.to_le_bytes());
        assert_eq!(parse_dblk(&h).unwrap().first_event, 60);
        h[9] ^= 1;
        assert!(parse_dblk(&h).unwrap_err().contains("checksum"));
        assert!(parse_dblk(&h[..10]).is_err());
        assert!(parse_scin(b"SCIN\xff\xff\xff\xff", &mut BackupMeta::default()).is_err());
    }
}
