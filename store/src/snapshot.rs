//! Snapshot manifests: the root of one backup, written last.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::id::{SnapshotId, TreeId};

pub const SNAPSHOT_VERSION: u32 = 1;

/// Figures of the backup that wrote a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub bytes_read: u64,
    /// Bytes the repository grew by for packs and index segments (the manifest itself excluded).
    pub bytes_added: u64,
    pub chunks_new: u64,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub duration_s: f64,
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub time: DateTime<FixedOffset>,
    pub host: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The sources as given on the command line (absolute paths, or stream names).
    pub paths: Vec<String>,
    pub tree: TreeId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<SnapshotId>,
    /// Some sources could not be read completely (listed in the summary's warnings).
    #[serde(default)]
    pub partial: bool,
    #[serde(default)]
    pub summary: SnapshotSummary,
    /// The SQL Server backups in the snapshot: `{"path", "database", "backup_type", LSNs…}`
    /// (opaque to the store), for listings and chain-aware retention.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mssql: Vec<serde_json::Value>,
}

pub fn snapshot_path(id: &SnapshotId) -> String {
    format!("snapshots/{id}")
}
