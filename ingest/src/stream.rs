//! Chunking a byte stream into stored content.

use std::io::{ErrorKind, Read};

use cairn_chunker::Chunker;
use cairn_store::{BlobKind, Content, ContentBuilder, ContentEntry, Progress, Repository};

use crate::error::{IngestError, Result};
use crate::mssql::{self, BackupMeta, Container, Grouping, MtfCutter};
use crate::zip::{self, Tail, ZipListing};

/// The chunkers of a repository: generic content, and what SQL Server backups need.
#[derive(Debug, Clone, Copy)]
pub struct Chunkers {
    /// Files and streams of no known kind.
    pub files: Chunker,
    /// The non-page parts of SQL Server backups (headers, log, trailer).
    pub small: Chunker,
    pub grouping: Grouping,
}

/// Cuts one stream: chosen from its first bytes.
enum StreamCutter {
    Generic(Chunker),
    Mtf(Box<MtfCutter>),
}

impl StreamCutter {
    fn next_cut(&mut self, data: &[u8], eof: bool) -> Option<usize> {
        match self {
            StreamCutter::Generic(c) => c.next_cut(data, eof),
            StreamCutter::Mtf(m) => m.next_cut(data, eof),
        }
    }
}

/// Bytes cut and stored per batch: enough chunks for the hashing and compression of one batch
/// to keep both cores busy, little enough to keep memory flat.
const BATCH: usize = 4 << 20;

/// What storing a stream produced.
#[derive(Debug)]
pub struct StoredStream {
    pub content: Content,
    pub size: u64,
    pub chunks_new: u64,
    /// Set for SQL Server backups (`compressed` alone for compressed ones).
    pub mssql: Option<BackupMeta>,
    /// Set for ZIP archives that could be listed.
    pub zip: Option<ZipListing>,
    /// Problems with the stream's structure; its bytes are stored exactly regardless.
    pub warnings: Vec<String>,
}

/// Reads `reader` to its end, cuts it into chunks, stores the new ones and returns the
/// content. `what` names the stream in errors; `size_hint` is its expected length, when known,
/// so that a small file gets a small buffer.
pub fn store_stream(
    repo: &Repository,
    chunkers: &Chunkers,
    reader: &mut dyn Read,
    what: &str,
    size_hint: Option<u64>,
    progress: &dyn Progress,
) -> Result<StoredStream> {
    let max = chunkers.files.params().max() as usize;
    let mut cutter: Option<StreamCutter> = None;
    let mut mssql_meta = None;
    let mut warnings = Vec::new();
    let full = BATCH + max;
    // buf[..filled] holds bytes read but not yet stored. Zeroing a buffer costs as much as
    // reading into it, so it starts at the expected size (+1 to see the end) and grows to
    // `full` only if the stream turns out longer.
    let start = size_hint.map_or(full, |h| {
        usize::try_from(h)
            .unwrap_or(full)
            .saturating_add(1)
            .min(full)
    });
    let mut buf = vec![0u8; start];
    // buf[done..filled] holds bytes read but not yet stored. It is moved to the front and
    // topped up only once the cutter needs more than it holds: cutting a full buffer takes
    // two batches, and moving what a batch left (half the buffer) would copy every byte again.
    let mut done = 0;
    let mut filled = 0;
    let mut eof = false;
    let mut more = true;
    let mut builder = ContentBuilder::new();
    // The end of a ZIP archive, where its central directory is.
    let mut zip_tail: Option<Tail> = None;
    let mut size = 0u64;
    let mut chunks_new = 0u64;
    let mut save_list = |bytes: Vec<u8>| repo.save_list(bytes);
    loop {
        if more {
            buf.copy_within(done..filled, 0);
            filled -= done;
            done = 0;
        }
        while more && !eof {
            if filled == buf.len() {
                if buf.len() == full {
                    break;
                }
                buf.resize(full, 0);
            }
            match reader.read(&mut buf[filled..]) {
                Ok(0) => eof = true,
                Ok(n) => {
                    filled += n;
                    progress.bytes(n as u64);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(IngestError::Io {
                        context: format!("reading {what}"),
                        error: e,
                    })
                }
            }
        }
        let data = &buf[done..filled];
        let cutter = cutter.get_or_insert_with(|| match mssql::detect(data) {
            Container::Mtf => StreamCutter::Mtf(Box::new(MtfCutter::new(chunkers.small, chunkers.grouping))),
            Container::Compressed => {
                warnings.push(
                    "a compressed SQL Server backup: dedup will be poor; back up WITH NO_COMPRESSION, cairn compresses"
                        .to_string(),
                );
                mssql_meta = Some(BackupMeta {
                    compressed: true,
                    ..BackupMeta::default()
                });
                StreamCutter::Generic(chunkers.files)
            }
            Container::Other => {
                if zip::detect(data) {
                    zip_tail = Some(Tail::default());
                }
                StreamCutter::Generic(chunkers.files)
            }
        });
        let mut lens: Vec<usize> = Vec::new();
        let mut pos = 0;
        // Whether the cutter stopped for want of bytes (rather than at the end of a batch).
        more = true;
        while let Some(n) = cutter.next_cut(&data[pos..], eof) {
            if n == 0 {
                break;
            }
            lens.push(n);
            pos += n;
            if !eof && pos >= BATCH {
                more = false;
                break;
            }
        }
        if lens.is_empty() && eof {
            break;
        }
        for saved in repo.save_adjacent(BlobKind::Data, data, &lens)? {
            chunks_new += u64::from(saved.new);
            size += saved.size;
            builder.push(ContentEntry(saved.id, saved.size), &mut save_list)?;
        }
        if let Some(tail) = &mut zip_tail {
            tail.push(&data[..pos]);
        }
        done += pos;
    }
    let content = builder.finish(&mut save_list)?;
    if let Some(StreamCutter::Mtf(m)) = cutter {
        let (meta, w) = m.finish();
        mssql_meta = Some(meta);
        warnings.extend(w);
    }
    let zip = zip_tail.and_then(|tail| match tail.list(size) {
        Ok(listing) => Some(listing),
        Err(why) => {
            warnings.push(format!(
                "looks like a ZIP archive but cannot be listed ({why}): stored exactly, entries not listed"
            ));
            None
        }
    });
    Ok(StoredStream {
        content,
        size,
        chunks_new,
        mssql: mssql_meta,
        zip,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_chunker::ChunkerParams;
    use cairn_store::{ChunkSizes, ChunkerConfig, InitOptions, NoProgress, OpenOptions};

    fn repo(dir: &std::path::Path) -> Repository {
        let p = ChunkerParams::files();
        let options = InitOptions {
            chunker: ChunkerConfig {
                files: ChunkSizes {
                    min: p.min(),
                    avg: p.avg(),
                    max: p.max(),
                },
                small: ChunkSizes {
                    min: 16 << 10,
                    avg: 64 << 10,
                    max: 256 << 10,
                },
                pages: "page".into(),
            },
            encryption: None,
        };
        Repository::init(&dir.join("repo"), &options).unwrap();
        let no_password = || unreachable!("an unencrypted repository asks for no password");
        let cache = dir.join("cache");
        let options = OpenOptions {
            cache_dir: Some(&cache),
            password: &no_password,
            sync: true,
        };
        Repository::open(&dir.join("repo"), &options).unwrap()
    }

    /// A reader that hands out at most `step` bytes per call, like a pipe.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(out.len()).min(self.1);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn content_does_not_depend_on_buffering_or_size_hints() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        let chunkers = Chunkers {
            files: Chunker::new(ChunkerParams::files()),
            small: Chunker::new(ChunkerParams::small()),
            grouping: Grouping::Page,
        };
        let mut data = Vec::new();
        let mut x = 7u64;
        while data.len() < 40 << 20 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            data.extend_from_slice(&x.to_le_bytes()[..5]);
        }
        let mut results = Vec::new();
        for (hint, step) in [
            (None, usize::MAX),
            (Some(10), 65536),
            (Some(40 << 20), 1 << 20),
            (Some(1 << 30), 777),
        ] {
            let mut reader = Trickle(&data, step);
            let s = store_stream(&repo, &chunkers, &mut reader, "test", hint, &NoProgress).unwrap();
            assert_eq!(s.size, data.len() as u64);
            results.push(s.content);
        }
        assert!(results.windows(2).all(|w| w[0] == w[1]));
        repo.flush().unwrap();
        let mut restored = Vec::new();
        for e in repo.chunks(&results[0]) {
            restored.extend(repo.load_blob(&e.unwrap().0).unwrap());
        }
        assert!(restored == data);
    }
}
