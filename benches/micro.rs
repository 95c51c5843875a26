//! Micro-benchmarks of the backup pipeline's stages: cutting, hashing, sealing (zstd + tag),
//! pack writing and catalog look-ups. `cargo bench --bench micro`.

use cairn_chunker::{Chunker, ChunkerParams};
use cairn_ingest::mssql::{Grouping, MtfCutter};
use cairn_store::backend::{Backend, LocalBackend};
use cairn_store::catalog::Catalog;
use cairn_store::envelope::MasterKey;
use cairn_store::index::IndexedPack;
use cairn_store::pack::{BlobKind, Member, PackEntry, PackWriter};
use cairn_store::{BlobId, IndexId, PackId};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::sync::Arc;

/// Half random, half text-like bytes: roughly as compressible as database pages.
fn sample(len: usize) -> Vec<u8> {
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        if v & 1 == 0 {
            out.extend_from_slice(&v.to_le_bytes());
        } else {
            out.extend_from_slice(b"sip:user@contoso.com;");
        }
    }
    out.truncate(len);
    out
}

fn chunker(c: &mut Criterion) {
    let data = sample(64 << 20);
    let mut g = c.benchmark_group("chunker");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    for (name, params) in [
        ("files 1MiB", ChunkerParams::files()),
        ("small 64KiB", ChunkerParams::small()),
    ] {
        let ch = Chunker::new(params);
        g.bench_function(name, |b| b.iter(|| ch.cuts(&data).count()));
    }
    // The fastcdc crate (v2020 algorithm) with the same sizes: the baseline our own chunker
    // has to beat to justify itself.
    g.bench_function("fastcdc crate v2020 1MiB", |b| {
        b.iter(|| fastcdc::v2020::FastCDC::new(&data, 256 << 10, 1 << 20, 4 << 20).count())
    });
    g.finish();
}

fn hash_and_seal(c: &mut Criterion) {
    let key = MasterKey::random(true);
    let chunk = sample(1 << 20);
    let mut g = c.benchmark_group("blob");
    g.throughput(Throughput::Bytes(chunk.len() as u64));
    g.bench_function("keyed blake3 1MiB", |b| b.iter(|| key.blob_id(&chunk)));
    // Sealing with and without encryption, compressed and not: the cost of each layer.
    for (name, encrypted, compress) in [
        ("seal zstd-3 + xchacha 1MiB", true, true),
        ("seal zstd-3 + mac 1MiB", false, true),
        ("seal xchacha only 1MiB", true, false),
        ("seal mac only 1MiB", false, false),
    ] {
        let mut k = key.clone();
        k.encrypted = encrypted;
        g.bench_function(name, |b| b.iter(|| k.seal(&chunk, compress)));
    }
    // Level 1: what a batch of mostly new data (a first backup) is sealed with.
    g.bench_function("seal zstd-1 + xchacha 1MiB", |b| {
        b.iter(|| key.seal_level(&chunk, Some(cairn_store::envelope::ZSTD_FAST)))
    });
    let sealed = key.seal(&chunk, true);
    g.bench_function("open xchacha + zstd 1MiB", |b| {
        b.iter(|| key.open(&sealed, &|| "bench".into()).unwrap())
    });
    g.finish();

    // Seven ~9 KiB page groups sealed one by one (format 1) or as one frame (format 2), at
    // the level of a first backup's bulk data.
    let pages: Vec<Vec<u8>> = (0..7).map(|i| sample(9000 + i)).collect();
    let joined = pages.concat();
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Bytes(joined.len() as u64));
    let fast = Some(cairn_store::envelope::ZSTD_FAST);
    g.bench_function("seal 7 page groups one by one", |b| {
        b.iter(|| {
            pages
                .iter()
                .map(|p| key.seal_level(p, fast).len())
                .sum::<usize>()
        })
    });
    g.bench_function("seal 7 page groups as one frame", |b| {
        b.iter(|| key.seal_level(&joined, fast).len())
    });
    g.finish();

    // The AEAD alone on an object of the typical size (a ~9 KiB page group): ring's
    // assembly, which the envelope uses, against the portable implementation earlier builds
    // used. Both produce the same bytes (`store/src/aead.rs` tests).
    let mut object = sample(9000);
    let mut g = c.benchmark_group("aead");
    g.throughput(Throughput::Bytes(object.len() as u64));
    let nonce = [7u8; 24];
    g.bench_function("seal xchacha20-poly1305 9000 B (ring)", |b| {
        b.iter(|| cairn_store::aead::seal_in_place(&key.enc_key, &nonce, b"\x01", &mut object))
    });
    g.bench_function("seal xchacha20-poly1305 9000 B (portable)", |b| {
        use chacha20poly1305::aead::{AeadInPlace, KeyInit};
        let cipher = chacha20poly1305::XChaCha20Poly1305::new((&key.enc_key).into());
        b.iter(|| {
            cipher
                .encrypt_in_place_detached((&nonce).into(), b"\x01", &mut object)
                .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("kdf");
    g.sample_size(10);
    let salt = [7u8; 16];
    // The default fills its two lanes on both cores; one lane is what earlier builds wrote.
    let default = cairn_store::KdfParams::default();
    for (name, params) in [
        ("argon2id default (64 MiB, 10 passes, 2 lanes)", default),
        (
            "argon2id 1 lane (64 MiB, 10 passes)",
            cairn_store::KdfParams {
                parallelism: 1,
                ..default
            },
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| params.derive(b"password", &salt).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("pack");
    let blobs: Vec<Vec<u8>> = (0..16)
        .map(|i| key.seal(&sample((1 << 20) + i), true))
        .collect();
    g.throughput(Throughput::Bytes(
        blobs.iter().map(|b| b.len() as u64).sum(),
    ));
    // Into the page cache and hashed; the fsync of `commit` is the disk's, not measured here.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path()));
    g.bench_function("write 16 sealed blobs", |b| {
        b.iter(|| {
            let mut w = PackWriter::new();
            for (i, blob) in blobs.iter().enumerate() {
                let member = Member {
                    id: BlobId([i as u8; 32]),
                    raw_len: 1 << 20,
                    start: 0,
                };
                w.add(&backend, BlobKind::Data, &[member], blob).unwrap();
            }
            w.finish(&backend, &key, 2).unwrap().id
        })
    });
    g.finish();
}

fn catalog(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = Catalog::open(&dir.path().join("catalog.sqlite")).unwrap();
    let id = |n: u64| BlobId(*blake3::hash(&n.to_le_bytes()).as_bytes());
    // 200,000 blobs: a 200 GB repository at 1 MiB chunks.
    for seg in 0..200u64 {
        let entries = (0..1000)
            .map(|i| PackEntry {
                kind: BlobKind::Data,
                id: id(seg * 1000 + i),
                offset: i * 100,
                length: 100,
                raw_len: 200,
                start: 0,
            })
            .collect();
        let pack = IndexedPack {
            id: PackId(*blake3::hash(&seg.to_be_bytes()).as_bytes()),
            size: 1,
            entries,
        };
        catalog
            .add_segment(&IndexId([seg as u8; 32]), &[pack])
            .unwrap();
    }
    let mut g = c.benchmark_group("catalog");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("locate_many 1000 (all known)", |b| {
        b.iter_batched(
            || (0..1000u64).map(|i| id(i * 197)).collect::<Vec<_>>(),
            |ids| catalog.locate_many(&ids).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("contains_many 1000 (half known)", |b| {
        b.iter_batched(
            || {
                (0..1000u64)
                    .map(|i| id(i * 397 + (i % 2) * 10_000_000))
                    .collect::<Vec<_>>()
            },
            |ids| catalog.contains_many(&ids).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// The SQL Server page cutter on a real backup of the corpus (skipped without it).
fn page_cutter(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/sqlbak/salihdemirog__siber/Northwind.bak");
    let Ok(bak) = std::fs::read(&path) else {
        eprintln!("page cutter: skipped, {} is not present", path.display());
        return;
    };
    let mut g = c.benchmark_group("mssql");
    g.throughput(Throughput::Bytes(bak.len() as u64));
    for (name, grouping) in [
        ("page cutter, page grouping", Grouping::Page),
        ("page cutter, extent grouping", Grouping::Extent),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut cutter = MtfCutter::new(Chunker::new(ChunkerParams::small()), grouping);
                let (mut pos, mut cuts) = (0, 0);
                while let Some(n) = cutter.next_cut(&bak[pos..], true) {
                    if n == 0 {
                        break;
                    }
                    pos += n;
                    cuts += 1;
                }
                cuts
            })
        });
    }
    g.finish();
}

criterion_group!(benches, chunker, hash_and_seal, catalog, page_cutter);
criterion_main!(benches);
