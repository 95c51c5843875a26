//! Key files under `keys/`: the master key wrapped by one password each.
//!
//! The wrapping key is Argon2id(password, salt, parameters stored in the file); the master key
//! is sealed with XChaCha20-Poly1305 under it. A wrong password fails that authentication, so it
//! is told apart from a damaged file only by trying every key file.

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::aead;
use crate::envelope::{random_bytes, MasterKey};
use crate::error::{Result, StoreError};

/// Argon2id cost. The default is 64 MiB and 10 passes over 2 lanes, filled on both cores at
/// once: an attacker pays for the same memory and passes per guess as with one lane, while
/// opening a repository waits half as long (`cargo bench --bench micro -- kdf`). Time is
/// bought with passes rather than memory to keep the peak RSS of a backup low. The cost is
/// stored per key file, so changing the default never locks anyone out: key files made with
/// one lane (every build before two became the default) open as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        Self {
            memory_kib: 64 << 10,
            iterations: 10,
            parallelism: 2,
        }
    }
}

impl KdfParams {
    /// Derives the 32-byte wrapping key. Fails on parameters Argon2 refuses (never panics).
    pub fn derive(&self, password: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let invalid = |e: argon2::Error| StoreError::InvalidKdf(e.to_string());
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(invalid)?;
        let mut out = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(password, salt, &mut *out)
            .map_err(invalid)?;
        Ok(out)
    }
}

/// One file under `keys/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// `argon2id`, or `none` for repositories made with `--insecure-no-encryption`.
    pub kdf: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<KdfParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The sealed master key (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapped: Option<String>,
    /// The master key itself, only with `kdf = "none"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<MasterKey>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl KeyFile {
    /// The unprotected key file of an unencrypted repository.
    pub fn plain(master: &MasterKey) -> Self {
        Self {
            kdf: "none".into(),
            created: now(),
            params: None,
            salt: None,
            nonce: None,
            wrapped: None,
            key: Some(master.clone()),
        }
    }

    /// Wraps `master` with `password`.
    pub fn wrap(master: &MasterKey, password: &[u8], params: KdfParams) -> Result<Self> {
        let salt: [u8; 16] = random_bytes();
        let nonce: [u8; 24] = random_bytes();
        let wrapping = params.derive(password, &salt)?;
        let plain = Zeroizing::new(serde_json::to_vec(master).expect("keys serialize"));
        let mut sealed = plain.to_vec();
        let tag = aead::seal_in_place(&wrapping, &nonce, b"", &mut sealed);
        sealed.extend_from_slice(&tag);
        Ok(Self {
            kdf: "argon2id".into(),
            created: now(),
            params: Some(params),
            salt: Some(hex::encode(salt)),
            nonce: Some(hex::encode(nonce)),
            wrapped: Some(hex::encode(sealed)),
            key: None,
        })
    }

    /// Unwraps the master key. `password` is asked for only when the file needs one.
    /// A password that does not open it gives [`StoreError::WrongPassword`].
    pub fn unwrap(
        &self,
        name: &str,
        password: &mut dyn FnMut() -> Result<Zeroizing<String>>,
        encrypted: bool,
    ) -> Result<MasterKey> {
        let object = || format!("key file keys/{name}");
        let field = |v: &Option<String>, what: &str| -> Result<Vec<u8>> {
            let v = v
                .as_ref()
                .ok_or_else(|| StoreError::corrupt(object(), format!("no {what}")))?;
            hex::decode(v).map_err(|_| StoreError::corrupt(object(), format!("{what} is not hex")))
        };
        let mut master = match self.kdf.as_str() {
            "none" => self
                .key
                .clone()
                .ok_or_else(|| StoreError::corrupt(object(), "no key"))?,
            "argon2id" => {
                let params = self
                    .params
                    .ok_or_else(|| StoreError::corrupt(object(), "no KDF parameters"))?;
                let salt = field(&self.salt, "salt")?;
                let nonce = field(&self.nonce, "nonce")?;
                let sealed = field(&self.wrapped, "wrapped key")?;
                let nonce: [u8; aead::NONCE_LEN] = nonce
                    .try_into()
                    .map_err(|_| StoreError::corrupt(object(), "nonce is not 24 bytes"))?;
                let Some(split) = sealed.len().checked_sub(aead::TAG_LEN) else {
                    return Err(StoreError::corrupt(object(), "wrapped key is truncated"));
                };
                let wrapping = params.derive(password()?.as_bytes(), &salt)?;
                let (body, tag) = sealed.split_at(split);
                let mut plain = Zeroizing::new(body.to_vec());
                let tag = tag.try_into().expect("TAG_LEN bytes");
                aead::open_in_place(&wrapping, &nonce, b"", &mut plain, tag)
                    .map_err(|_| StoreError::WrongPassword)?;
                serde_json::from_slice(&plain)
                    .map_err(|e| StoreError::corrupt(object(), e.to_string()))?
            }
            other => {
                return Err(StoreError::corrupt(
                    object(),
                    format!("unknown kdf {other:?}"),
                ))
            }
        };
        master.encrypted = encrypted;
        Ok(master)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn wrap_unwrap_and_wrong_password() {
        let master = MasterKey::random(true);
        let file = KeyFile::wrap(&master, b"correct horse", FAST).unwrap();
        let json = serde_json::to_string(&file).unwrap();
        assert!(!json.contains(&hex::encode(master.enc_key)));
        let back: KeyFile = serde_json::from_str(&json).unwrap();
        let mut good = || Ok(Zeroizing::new("correct horse".to_string()));
        let k = back.unwrap("k", &mut good, true).unwrap();
        assert_eq!(k.enc_key, master.enc_key);
        assert_eq!(k.id_key, master.id_key);
        assert!(k.encrypted);
        let mut bad = || Ok(Zeroizing::new("battery staple".to_string()));
        assert!(matches!(
            back.unwrap("k", &mut bad, true),
            Err(StoreError::WrongPassword)
        ));
    }

    #[test]
    fn two_lanes_wrap_and_unwrap_and_differ_from_one() {
        let two = KdfParams {
            parallelism: 2,
            ..FAST
        };
        let one = KdfParams {
            parallelism: 1,
            ..FAST
        };
        assert_ne!(
            *two.derive(b"pw", b"saltsaltsalt").unwrap(),
            *one.derive(b"pw", b"saltsaltsalt").unwrap(),
            "the lanes are part of the key: they are stored with it"
        );
        let master = MasterKey::random(true);
        let file = KeyFile::wrap(&master, b"pw", two).unwrap();
        let mut pw = || Ok(Zeroizing::new("pw".to_string()));
        assert_eq!(
            file.unwrap("k", &mut pw, true).unwrap().enc_key,
            master.enc_key
        );
    }

    /// A key file written by a build from before the AEAD and Argon2 implementations were
    /// replaced (`cairn init --kdf-memory-mib 1 --kdf-iterations 2`, one lane): the derived key
    /// must come out bit for bit the same, or the tag check refuses it.
    #[test]
    fn a_key_file_from_an_earlier_build_opens() {
        let json = r#"{
          "kdf": "argon2id",
          "created": "2026-11-23T16:45:24Z",
          "params": { "memory_kib": 1024, "iterations": 2, "parallelism": 1 },
          "salt": "a62e0ab72eb6d33be7587e575203840d",
          "nonce": "6161077666db18a1a640de2299fa5f87b5a60d56a7a82253",
          "wrapped": "0c7536b96db2390a94b9de4f4884d1025723a51561d12ac1e5398511c235a45674f35ffc277f6ac6a12b4a74049a5bc21f489bb026144f1b78c8e20b2ca517606acb20640180819054f5d85aee5c7f65192010ed9a21d7912a3220203cb99aaef99de1e3c09232e0cce8f8fd971f70960240d40d3a4fd5d5ed0f59f9898fba5a1a1151f3d38e7194798aabc7492b190df57be9b2aec7dd2a9a647855cb8622ee3b4ec679ba6f5d0552a177b32cd46d75b397e4ac7c0a4c6d90a583b82f2adc368817ce4cc7782117845a36fb39e98fcf4ca544e7f1214b1d6e5c26f5036c208662bdb05ed7576c3e29648b522f301dd724e2c79e48847b"
        }"#;
        let file: KeyFile = serde_json::from_str(json).unwrap();
        let mut good = || Ok(Zeroizing::new("correct horse".to_string()));
        let key = file.unwrap("8a83", &mut good, true).unwrap();
        assert!(key.encrypted);
        let mut bad = || Ok(Zeroizing::new("correct horse ".to_string()));
        assert!(matches!(
            file.unwrap("8a83", &mut bad, true),
            Err(StoreError::WrongPassword)
        ));
    }

    #[test]
    fn damaged_key_files_and_bad_params_are_errors() {
        let master = MasterKey::random(true);
        let mut file = KeyFile::wrap(&master, b"pw", FAST).unwrap();
        file.nonce = Some("zz".into());
        let mut pw = || Ok(Zeroizing::new("pw".to_string()));
        let err = file.unwrap("abc", &mut pw, true).unwrap_err().to_string();
        assert!(err.contains("key file keys/abc"), "{err}");
        let silly = KdfParams {
            memory_kib: 1,
            iterations: 0,
            parallelism: 0,
        };
        assert!(silly.derive(b"pw", b"saltsaltsalt").is_err());
    }
}
