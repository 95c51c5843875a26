//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use std::path::Path;

use cairn_store::{
    ChunkSizes, ChunkerConfig, Encryption, InitOptions, KdfParams, OpenOptions, Result,
};
use zeroize::Zeroizing;

pub const FAST_KDF: KdfParams = KdfParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

pub fn password() -> Result<Zeroizing<String>> {
    Ok(Zeroizing::new("test password".into()))
}

pub fn open_options(cache: &Path) -> OpenOptions<'_> {
    OpenOptions {
        cache_dir: Some(cache),
        password: &password,
        sync: true,
    }
}

/// A new repository at `dir/repo` (its cache in `dir/cache`), opened.
pub fn new_repo(dir: &Path) -> cairn_store::Repository {
    let path = dir.join("repo");
    cairn_store::Repository::init(&path, &init_options()).unwrap();
    cairn_store::Repository::open(&path, &open_options(&dir.join("cache"))).unwrap()
}

/// Options of an encrypted repository with the default chunker and a fast key derivation.
pub fn init_options() -> InitOptions {
    InitOptions {
        chunker: ChunkerConfig {
            files: ChunkSizes {
                min: 256 << 10,
                avg: 1 << 20,
                max: 4 << 20,
            },
            small: ChunkSizes {
                min: 16 << 10,
                avg: 64 << 10,
                max: 256 << 10,
            },
            pages: "page".into(),
        },
        encryption: Some(Encryption {
            password: password().unwrap(),
            kdf: FAST_KDF,
        }),
    }
}

/// `len` pseudo-random bytes (xorshift from `seed`): incompressible, and distinct per seed.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
