//! Restore: packs read once each by several workers, holes kept, and what a damaged pack
//! leaves behind.

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::harness::*;

#[test]
fn a_sparse_file_restores_sparse_and_exact() {
    let env = Env::ready();
    let src = env.dir("src");
    // 1 MiB of data, a 64 MiB hole, 1 MiB of data.
    let mut bytes = data(1 << 20, 11);
    bytes.resize(65 << 20, 0);
    bytes.extend_from_slice(&data(1 << 20, 12));
    fs::write(src.join("sparse.mdf"), &bytes).unwrap();
    env.backup_json(&[src.to_str().unwrap()]);
    let target = env.restore("latest", "out");
    let restored = target.join("src/sparse.mdf");
    assert!(fs::read(&restored).unwrap() == bytes);
    let allocated = fs::metadata(&restored).unwrap().blocks() * 512;
    assert!(
        allocated < 16 << 20,
        "{allocated} bytes allocated for a file of 2 MiB of data"
    );
}

#[test]
fn a_damaged_pack_costs_only_the_files_it_holds() {
    let env = Env::ready();
    let src = env.dir("src");
    fs::write(src.join("old.bak"), data(3 << 20, 21)).unwrap();
    env.backup_json(&[src.to_str().unwrap()]);
    let first_packs = walkdir(&env.repo().join("data"));
    // The second backup adds two packs: the new file's data, and its trees (the smaller).
    fs::write(src.join("new.bak"), data(3 << 20, 22)).unwrap();
    env.backup_json(&[src.to_str().unwrap()]);
    let mut new_packs: Vec<_> = walkdir(&env.repo().join("data"))
        .into_iter()
        .filter(|p| !first_packs.contains(p))
        .collect();
    assert_eq!(new_packs.len(), 2, "{new_packs:?}");
    new_packs.sort_by_key(|p| fs::metadata(p).unwrap().len());
    let new_pack = new_packs.pop().unwrap();
    let mut bytes = fs::read(&new_pack).unwrap();
    bytes[100] ^= 0x10;
    fs::write(&new_pack, bytes).unwrap();

    let target = env.path("out");
    let stderr = env.restore_failing(&target);
    let pack_name = new_pack.file_name().unwrap().to_str().unwrap();
    assert!(stderr.contains(pack_name), "{stderr}");
    // The file of the sound pack is whole; the other is absent, and no temporary file is left.
    assert!(fs::read(target.join("src/old.bak")).expect(&stderr) == data(3 << 20, 21));
    let left: Vec<_> = walkdir(&target);
    assert_eq!(left, [target.join("src/old.bak")], "{left:?}");
}

#[test]
fn a_file_that_cannot_be_created_is_named_and_the_others_restore() {
    let env = Env::ready();
    let src = env.dir("src");
    fs::write(src.join("a.bin"), data(2 << 20, 31)).unwrap();
    fs::write(src.join("b.bin"), data(2 << 20, 32)).unwrap();
    fs::write(src.join("c.bin"), data(2 << 20, 33)).unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    env.backup_json(&[src.to_str().unwrap()]);
    // A directory in the way of b.bin's temporary file. Whatever order the files' chunks
    // come in, b.bin's failed write must not cost the bytes of the file written after it.
    let target = env.path("out");
    fs::create_dir_all(target.join("src/.b.bin.cairn-restore")).unwrap();

    let stderr = env.restore_failing(&target);
    assert!(stderr.contains(".b.bin.cairn-restore"), "{stderr}");
    assert!(fs::read(target.join("src/a.bin")).expect(&stderr) == data(2 << 20, 31));
    assert!(fs::read(target.join("src/c.bin")).expect(&stderr) == data(2 << 20, 33));
    assert_eq!(fs::read(target.join("src/empty")).expect(&stderr), b"");
    assert!(!target.join("src/b.bin").exists());
}
