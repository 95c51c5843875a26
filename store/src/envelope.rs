//! The envelope every stored object is wrapped in: optional zstd compression inside an
//! authenticated container, and the master key it is authenticated with.
//!
//! ```text
//! envelope = scheme:u8 ‖ sealed(payload)
//! payload  = compression:u8 ‖ [raw_len:u64 LE, when compressed] ‖ body
//! scheme 0 = payload ‖ keyed-blake3(mac_key, scheme ‖ payload)    (authenticated, not encrypted)
//! ```
//! Scheme numbers are part of the format; new schemes (authenticated encryption) add numbers and
//! keep the payload layout, so compression and sizes end up inside the encryption.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

const SCHEME_MAC: u8 = 0;
const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_ZSTD: u8 = 1;
const MAC_LEN: usize = 32;
/// zstd level 3: zstd's own default, about 2.5x on database pages at a few hundred MB/s a core.
const ZSTD_LEVEL: i32 = 3;
/// Upper bound on one object's plaintext (1 GiB): refuses absurd sizes before allocating.
const MAX_PLAINTEXT: u64 = 1 << 30;

/// The repository's secrets: the key that IDs are hashed with and the key objects are
/// authenticated with.
#[derive(Clone, Serialize, Deserialize)]
pub struct MasterKey {
    #[serde(with = "hex_key")]
    pub id_key: [u8; 32],
    #[serde(with = "hex_key")]
    pub mac_key: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(k: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(k))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

impl MasterKey {
    pub fn random() -> Self {
        let mut bytes = [0u8; 64];
        getrandom::getrandom(&mut bytes).expect("the operating system provides random bytes");
        let mut id_key = [0u8; 32];
        let mut mac_key = [0u8; 32];
        id_key.copy_from_slice(&bytes[..32]);
        mac_key.copy_from_slice(&bytes[32..]);
        Self { id_key, mac_key }
    }

    /// The ID of a blob: keyed blake3 of its plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> crate::BlobId {
        crate::BlobId(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// Wraps `plaintext`, compressing it when `compress` is set and zstd makes it smaller.
    pub fn seal(&self, plaintext: &[u8], compress: bool) -> Vec<u8> {
        let compressed = if compress {
            zstd::bulk::compress(plaintext, ZSTD_LEVEL)
                .ok()
                .filter(|c| c.len() + 8 < plaintext.len())
        } else {
            None
        };
        let mut out = Vec::with_capacity(
            2 + 8 + compressed.as_ref().map_or(plaintext.len(), Vec::len) + MAC_LEN,
        );
        out.push(SCHEME_MAC);
        match compressed {
            Some(c) => {
                out.push(COMPRESSION_ZSTD);
                out.extend_from_slice(&(plaintext.len() as u64).to_le_bytes());
                out.extend_from_slice(&c);
            }
            None => {
                out.push(COMPRESSION_NONE);
                out.extend_from_slice(plaintext);
            }
        }
        let mac = blake3::keyed_hash(&self.mac_key, &out);
        out.extend_from_slice(mac.as_bytes());
        out
    }

    /// Authenticates and unwraps an envelope. `object` names it in errors
    /// (`pack 3fa2… blob 81c0…`).
    pub fn open(&self, envelope: &[u8], object: &dyn Fn() -> String) -> Result<Vec<u8>> {
        let corrupt = |reason: String| StoreError::corrupt(object(), reason);
        let (&scheme, _) = envelope
            .split_first()
            .ok_or_else(|| corrupt("empty object".into()))?;
        if scheme != SCHEME_MAC {
            return Err(corrupt(format!("unknown envelope scheme {scheme}")));
        }
        if envelope.len() < 2 + MAC_LEN {
            return Err(corrupt(format!("truncated to {} bytes", envelope.len())));
        }
        let (authenticated, mac) = envelope.split_at(envelope.len() - MAC_LEN);
        let expected = blake3::keyed_hash(&self.mac_key, authenticated);
        // blake3::Hash compares in constant time.
        if expected != blake3::Hash::from_bytes(mac.try_into().expect("MAC_LEN bytes")) {
            return Err(corrupt("authentication failed".into()));
        }
        let payload = &authenticated[1..];
        match payload[0] {
            COMPRESSION_NONE => Ok(payload[1..].to_vec()),
            COMPRESSION_ZSTD => {
                let raw_len = payload
                    .get(1..9)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .ok_or_else(|| corrupt("truncated compression header".into()))?;
                if raw_len > MAX_PLAINTEXT {
                    return Err(corrupt(format!("plaintext length {raw_len} is too large")));
                }
                let out = zstd::bulk::decompress(&payload[9..], raw_len as usize)
                    .map_err(|e| corrupt(format!("zstd: {e}")))?;
                if out.len() as u64 != raw_len {
                    return Err(corrupt(format!(
                        "decompressed to {} bytes, expected {raw_len}",
                        out.len()
                    )));
                }
                Ok(out)
            }
            other => Err(corrupt(format!("unknown compression {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> String {
        "test object".into()
    }

    #[test]
    fn round_trips_compressible_and_random() {
        let key = MasterKey::random();
        let text = b"sip:alice@contoso.com ".repeat(1000);
        let sealed = key.seal(&text, true);
        assert!(sealed.len() < text.len() / 10);
        assert_eq!(key.open(&sealed, &name).unwrap(), text);

        let mut random = vec![0u8; 4096];
        getrandom::getrandom(&mut random).unwrap();
        let sealed = key.seal(&random, true);
        assert_eq!(
            sealed[1], COMPRESSION_NONE,
            "incompressible data is kept raw"
        );
        assert_eq!(sealed.len(), random.len() + 2 + MAC_LEN);
        assert_eq!(key.open(&sealed, &name).unwrap(), random);
        assert_eq!(key.open(&key.seal(b"", true), &name).unwrap(), b"");
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let key = MasterKey::random();
        let sealed = key.seal(&b"page ".repeat(50), true);
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            let err = key.open(&bad, &name).unwrap_err().to_string();
            assert!(err.starts_with("test object is corrupt"), "{err}");
        }
        for len in 0..sealed.len() {
            assert!(key.open(&sealed[..len], &name).is_err());
        }
    }

    #[test]
    fn another_key_fails_authentication() {
        let sealed = MasterKey::random().seal(b"data", false);
        let err = MasterKey::random().open(&sealed, &name).unwrap_err();
        assert!(err.to_string().contains("authentication failed"));
    }
}
