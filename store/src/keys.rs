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

/// Argon2id cost. The default (64 MiB, 10 passes, 1 lane) takes about half a second on the
/// 2-core machines cairn is developed on (3 passes measured 177 ms, `cargo bench --bench micro
/// -- kdf`); time is bought with passes rather than memory to keep the peak RSS of a backup
/// low. It is stored per key file, so changing the default never locks anyone out.
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
            parallelism: 1,
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
