//! The envelope every stored object is wrapped in: optional zstd compression inside
//! authenticated encryption, and the master key it is sealed with.
//!
//! ```text
//! envelope = scheme:u8 ‖ sealed(payload)
//! payload  = compression:u8 ‖ [raw_len:u64 LE, when compressed] ‖ body
//! scheme 1 = nonce:24 ‖ XChaCha20-Poly1305(enc_key, nonce, aad = scheme, payload)   (encrypted)
//! scheme 0 = payload ‖ keyed-blake3(mac_key, scheme ‖ payload)                      (authenticated only)
//! ```
//! A repository uses one scheme for every object (its `config` says which); the other is
//! refused, so an attacker cannot downgrade an object to the unencrypted form.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::aead::{self, NONCE_LEN, TAG_LEN};
use crate::error::{Result, StoreError};

const SCHEME_MAC: u8 = 0;
const SCHEME_XCHACHA: u8 = 1;
const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_ZSTD: u8 = 1;
const MAC_LEN: usize = 32;
/// zstd level 3: zstd's own default, about 2.5x on database pages at a few hundred MB/s a core.
pub const ZSTD_LEVEL: i32 = 3;
/// zstd level 1: for bulk new data (a first backup), about 1.7x the speed of level 3 for about
/// a fifth more bytes on database pages.
pub const ZSTD_FAST: i32 = 1;

thread_local! {
    /// One compression context per thread and level, and one decompression context per
    /// thread: making a context per object costs more than compressing a small one.
    static COMPRESSORS: std::cell::RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Compresses `plaintext` at `level`, appending the frame to `out` (which must have room for
/// `compress_bound` more bytes, so that it does not move); false when zstd fails, `out` then
/// holding what it held or more.
fn zstd_compress_append(plaintext: &[u8], level: i32, out: &mut Vec<u8>) -> bool {
    COMPRESSORS.with(|cell| {
        let mut list = cell.borrow_mut();
        let at = match list.iter().position(|(l, _)| *l == level) {
            Some(at) => at,
            None => match zstd::bulk::Compressor::new(level) {
                Ok(c) => {
                    list.push((level, c));
                    list.len() - 1
                }
                Err(_) => return false,
            },
        };
        let mut cursor = std::io::Cursor::new(&mut *out);
        cursor.set_position(cursor.get_ref().len() as u64);
        list[at]
            .1
            .compress_to_buffer(plaintext, &mut cursor)
            .is_ok()
    })
}

/// Decompresses `body` into `out` (replacing what it held), which must come to `raw_len`.
fn zstd_decompress_into(body: &[u8], raw_len: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        out.clear();
        out.reserve(raw_len);
        slot.as_mut()
            .expect("just set")
            .decompress_to_buffer(body, out)
            .map(drop)
    })
}

/// A random nonce, drawn from a per-thread store of operating-system randomness refilled 4 KiB
/// at a time (one system call per 170 objects rather than one per object).
fn fresh_nonce() -> [u8; NONCE_LEN] {
    NONCES.with(|cell| {
        let mut pool = cell.borrow_mut();
        let (bytes, used) = &mut *pool;
        if *used + NONCE_LEN > bytes.len() {
            getrandom::getrandom(bytes).expect("the operating system provides random bytes");
            *used = 0;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[*used..*used + NONCE_LEN]);
        // Never hand out the same bytes twice.
        bytes[*used..*used + NONCE_LEN].fill(0);
        *used += NONCE_LEN;
        nonce
    })
}

thread_local! {
    static NONCES: std::cell::RefCell<([u8; 4096], usize)> =
        const { std::cell::RefCell::new(([0; 4096], 4096)) };
}
/// Upper bound on one object's plaintext (1 GiB): refuses absurd sizes before allocating.
const MAX_PLAINTEXT: u64 = 1 << 30;

/// The repository's secrets: the key IDs are hashed with, the key objects are authenticated
/// with (unencrypted repositories), and the key they are encrypted with. Zeroed on drop.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    #[serde(with = "hex_key")]
    pub id_key: [u8; 32],
    #[serde(with = "hex_key")]
    pub mac_key: [u8; 32],
    #[serde(with = "hex_key")]
    pub enc_key: [u8; 32],
    /// Whether objects are sealed with encryption (scheme 1) or authentication only (scheme
    /// 0); set from the repository's config, never stored with the key.
    #[serde(skip)]
    #[zeroize(skip)]
    pub encrypted: bool,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(k: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(hex::encode(k)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.as_bytes(), &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// Fills a buffer from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out).expect("the operating system provides random bytes");
    out
}

impl MasterKey {
    pub fn random(encrypted: bool) -> Self {
        Self {
            id_key: random_bytes(),
            mac_key: random_bytes(),
            enc_key: random_bytes(),
            encrypted,
        }
    }

    /// The ID of a blob: keyed blake3 of its plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> crate::BlobId {
        crate::BlobId(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// Wraps `plaintext`, compressing it when `compress` is set and zstd makes it smaller.
    pub fn seal(&self, plaintext: &[u8], compress: bool) -> Vec<u8> {
        self.seal_level(plaintext, compress.then_some(ZSTD_LEVEL))
    }

    /// Wraps `plaintext`, compressing it at zstd `level` (if any) when that makes it smaller.
    /// The level is not recorded: any level reads back the same. The payload is compressed
    /// straight into the envelope and encrypted where it lies.
    pub fn seal_level(&self, plaintext: &[u8], level: Option<i32>) -> Vec<u8> {
        let head = if self.encrypted { 1 + NONCE_LEN } else { 1 };
        let tail = if self.encrypted { TAG_LEN } else { MAC_LEN };
        let body = match level {
            Some(_) => zstd::zstd_safe::compress_bound(plaintext.len()).max(plaintext.len()),
            None => plaintext.len(),
        };
        let mut out = Vec::with_capacity(head + 1 + 8 + body + tail);
        if self.encrypted {
            out.push(SCHEME_XCHACHA);
            out.extend_from_slice(&fresh_nonce());
        } else {
            out.push(SCHEME_MAC);
        }
        let compressed = level.is_some_and(|l| {
            out.push(COMPRESSION_ZSTD);
            out.extend_from_slice(&(plaintext.len() as u64).to_le_bytes());
            let body_at = out.len();
            zstd_compress_append(plaintext, l, &mut out)
                && out.len() - body_at + 8 < plaintext.len()
        });
        if !compressed {
            out.truncate(head);
            out.push(COMPRESSION_NONE);
            out.extend_from_slice(plaintext);
        }
        if self.encrypted {
            let (nonce, payload) = out[1..].split_at_mut(NONCE_LEN);
            let nonce = (&*nonce).try_into().expect("NONCE_LEN bytes");
            let tag = aead::seal_in_place(&self.enc_key, nonce, &[SCHEME_XCHACHA], payload);
            out.extend_from_slice(&tag);
        } else {
            let mac = blake3::keyed_hash(&self.mac_key, &out);
            out.extend_from_slice(mac.as_bytes());
        }
        out
    }

    /// Authenticates (and decrypts) an envelope. `object` names it in errors
    /// (`pack 3fa2… blob 81c0…`).
    pub fn open(&self, envelope: &[u8], object: &dyn Fn() -> String) -> Result<Vec<u8>> {
        let mut plain = Vec::new();
        if self.encrypted {
            self.open_into(&mut envelope.to_vec(), &mut plain, object)?;
        } else {
            let payload = self.authenticate(envelope, object)?;
            decompress_into(payload, &mut plain, object)?;
        }
        Ok(plain)
    }

    /// As [`MasterKey::open`], decrypting in place (the envelope's bytes are overwritten) into
    /// `plain`, a buffer the caller reuses.
    pub fn open_into(
        &self,
        envelope: &mut [u8],
        plain: &mut Vec<u8>,
        object: &dyn Fn() -> String,
    ) -> Result<()> {
        let payload = if self.encrypted {
            self.decrypt_in_place(envelope, object)?
        } else {
            self.authenticate(envelope, object)?
        };
        decompress_into(payload, plain, object)
    }

    /// Checks the scheme byte against the repository's.
    fn check_scheme(&self, envelope: &[u8], object: &dyn Fn() -> String) -> Result<()> {
        let corrupt = |reason: String| StoreError::corrupt(object(), reason);
        let &scheme = envelope
            .first()
            .ok_or_else(|| corrupt("empty object".into()))?;
        let expected = if self.encrypted {
            SCHEME_XCHACHA
        } else {
            SCHEME_MAC
        };
        if scheme != expected {
            return Err(corrupt(format!(
                "envelope scheme {scheme}, but this repository uses scheme {expected}"
            )));
        }
        Ok(())
    }

    /// Scheme 1: verifies the tag and decrypts the payload where it lies.
    fn decrypt_in_place<'a>(
        &self,
        envelope: &'a mut [u8],
        object: &dyn Fn() -> String,
    ) -> Result<&'a [u8]> {
        self.check_scheme(envelope, object)?;
        let corrupt = |reason: String| StoreError::corrupt(object(), reason);
        if envelope.len() < 1 + NONCE_LEN + TAG_LEN + 1 {
            return Err(corrupt(format!("truncated to {} bytes", envelope.len())));
        }
        let (nonce, rest) = envelope[1..].split_at_mut(NONCE_LEN);
        let (payload, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        let nonce = (&*nonce).try_into().expect("NONCE_LEN bytes");
        let tag = (&*tag).try_into().expect("TAG_LEN bytes");
        aead::open_in_place(&self.enc_key, nonce, &[SCHEME_XCHACHA], payload, tag)
            .map_err(|_| corrupt("authentication failed".into()))?;
        Ok(payload)
    }

    /// Scheme 0: verifies the keyed-BLAKE3 tag and returns the payload.
    fn authenticate<'a>(
        &self,
        envelope: &'a [u8],
        object: &dyn Fn() -> String,
    ) -> Result<&'a [u8]> {
        self.check_scheme(envelope, object)?;
        let corrupt = |reason: String| StoreError::corrupt(object(), reason);
        if envelope.len() < 1 + 1 + MAC_LEN {
            return Err(corrupt(format!("truncated to {} bytes", envelope.len())));
        }
        let (authenticated, mac) = envelope.split_at(envelope.len() - MAC_LEN);
        let expected = blake3::keyed_hash(&self.mac_key, authenticated);
        // blake3::Hash compares in constant time.
        if expected != blake3::Hash::from_bytes(mac.try_into().expect("MAC_LEN bytes")) {
            return Err(corrupt("authentication failed".into()));
        }
        Ok(&authenticated[1..])
    }
}

/// Decodes an authenticated payload into `plain`.
fn decompress_into(payload: &[u8], plain: &mut Vec<u8>, object: &dyn Fn() -> String) -> Result<()> {
    let corrupt = |reason: String| StoreError::corrupt(object(), reason);
    let Some((&compression, body)) = payload.split_first() else {
        return Err(corrupt("empty payload".into()));
    };
    match compression {
        COMPRESSION_NONE => {
            plain.clear();
            plain.extend_from_slice(body);
            Ok(())
        }
        COMPRESSION_ZSTD => {
            let raw_len = body
                .get(..8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .ok_or_else(|| corrupt("truncated compression header".into()))?;
            if raw_len > MAX_PLAINTEXT {
                return Err(corrupt(format!("plaintext length {raw_len} is too large")));
            }
            zstd_decompress_into(&body[8..], raw_len as usize, plain)
                .map_err(|e| corrupt(format!("zstd: {e}")))?;
            if plain.len() as u64 != raw_len {
                return Err(corrupt(format!(
                    "decompressed to {} bytes, expected {raw_len}",
                    plain.len()
                )));
            }
            Ok(())
        }
        other => Err(corrupt(format!("unknown compression {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> String {
        "test object".into()
    }

    #[test]
    fn every_compression_level_reads_back() {
        let key = MasterKey::random(true);
        let pages: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for level in [None, Some(ZSTD_FAST), Some(ZSTD_LEVEL), Some(19)] {
            let sealed = key.seal_level(&pages, level);
            if level.is_some() {
                assert!(sealed.len() < pages.len() / 10, "{level:?}");
            }
            assert_eq!(key.open(&sealed, &|| "test".into()).unwrap(), pages);
        }
    }

    #[test]
    fn round_trips_in_both_schemes() {
        for encrypted in [true, false] {
            let key = MasterKey::random(encrypted);
            let text = b"sip:alice@contoso.com ".repeat(1000);
            let sealed = key.seal(&text, true);
            assert!(sealed.len() < text.len() / 10);
            assert_eq!(key.open(&sealed, &name).unwrap(), text);

            let random: [u8; 4096] = random_bytes();
            let sealed = key.seal(&random, true);
            let overhead = if encrypted {
                1 + NONCE_LEN + 1 + TAG_LEN
            } else {
                2 + MAC_LEN
            };
            assert_eq!(
                sealed.len(),
                random.len() + overhead,
                "incompressible data is kept raw"
            );
            assert_eq!(key.open(&sealed, &name).unwrap(), random);
            assert_eq!(key.open(&key.seal(b"", true), &name).unwrap(), b"");
        }
    }

    #[test]
    fn encryption_hides_the_plaintext_and_uses_fresh_nonces() {
        let key = MasterKey::random(true);
        let text = b"MARKER-sip:alice@contoso.com";
        let a = key.seal(text, false);
        let b = key.seal(text, false);
        assert_ne!(a, b, "a fresh nonce per object");
        assert!(!a.windows(6).any(|w| w == b"MARKER"));
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        for encrypted in [true, false] {
            let key = MasterKey::random(encrypted);
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
    }

    #[test]
    fn another_key_or_scheme_fails() {
        let sealed = MasterKey::random(true).seal(b"data", false);
        let err = MasterKey::random(true).open(&sealed, &name).unwrap_err();
        assert!(err.to_string().contains("authentication failed"));
        // A downgrade: an authenticated-only object offered to an encrypted repository.
        let mut key = MasterKey::random(false);
        let plain = key.seal(b"data", false);
        key.encrypted = true;
        let err = key.open(&plain, &name).unwrap_err();
        assert!(err.to_string().contains("scheme 0"), "{err}");
    }
}
