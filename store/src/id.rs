//! Object IDs: 32-byte hashes shown as 64 hex digits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::StoreError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// The first 8 hex digits, as shown in listings.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, StoreError> {
                parse_hex32(s).map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A blob (chunk, tree or chunk list): keyed blake3 of its plaintext.
    BlobId
);
id_type!(
    /// A pack file under `data/`: blake3 of the file's bytes.
    PackId
);
id_type!(
    /// A snapshot manifest under `snapshots/`: blake3 of the file's bytes.
    SnapshotId
);
id_type!(
    /// An index segment under `index/`: blake3 of the file's bytes.
    IndexId
);

/// Tree blobs are blobs; the alias says what the ID points at.
pub type TreeId = BlobId;
/// Data chunks are blobs too.
pub type ChunkId = BlobId;

fn parse_hex32(s: &str) -> Result<[u8; 32], StoreError> {
    let invalid = |reason| StoreError::InvalidId {
        input: s.to_string(),
        reason,
    };
    if s.len() != 64 {
        return Err(invalid("expected 64 hex digits"));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| invalid("not hexadecimal"))?;
    Ok(out)
}

/// A user-typed ID prefix (at least 1 hex digit), resolved against a set of full IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPrefix(String);

impl FromStr for IdPrefix {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        let lower = s.to_ascii_lowercase();
        if lower.is_empty() || lower.len() > 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::InvalidId {
                input: s.to_string(),
                reason: "expected 1 to 64 hex digits",
            });
        }
        Ok(IdPrefix(lower))
    }
}

impl IdPrefix {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, hex_id: &str) -> bool {
        hex_id.starts_with(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let id = BlobId([0xab; 32]);
        let s = id.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<BlobId>().unwrap(), id);
        assert_eq!(id.short(), "abababab");
        assert!("abc".parse::<BlobId>().is_err());
        assert!("zz".repeat(32).parse::<BlobId>().is_err());
    }

    #[test]
    fn prefixes() {
        assert!("".parse::<IdPrefix>().is_err());
        assert!("xyz".parse::<IdPrefix>().is_err());
        let p: IdPrefix = "AB12".parse().unwrap();
        assert!(p.matches("ab12ff"));
        assert!(!p.matches("ab13ff"));
    }
}
