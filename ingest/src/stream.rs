//! Chunking a byte stream into stored content.

use std::io::{ErrorKind, Read};

use cairn_chunker::Chunker;
use cairn_store::{BlobKind, Content, ContentBuilder, ContentEntry, Progress, Repository};

use crate::error::{IngestError, Result};

/// Bytes cut and stored per batch: enough chunks for the hashing and compression of one batch
/// to keep both cores busy, little enough to keep memory flat.
const BATCH: usize = 16 << 20;

/// What storing a stream produced.
#[derive(Debug)]
pub struct StoredStream {
    pub content: Content,
    pub size: u64,
    pub chunks_new: u64,
}

/// Reads `reader` to its end, cuts it into chunks, stores the new ones and returns the
/// content. `what` names the stream in errors.
pub fn store_stream(
    repo: &Repository,
    chunker: &Chunker,
    reader: &mut dyn Read,
    what: &str,
    progress: &dyn Progress,
) -> Result<StoredStream> {
    let max = chunker.params().max() as usize;
    // buf[..filled] holds bytes read but not yet stored; allocated (and zeroed) once.
    let mut buf = vec![0u8; BATCH + max];
    let mut filled = 0;
    let mut eof = false;
    let mut builder = ContentBuilder::new();
    let mut size = 0u64;
    let mut chunks_new = 0u64;
    let mut save_list = |bytes: Vec<u8>| repo.save_list(bytes);
    loop {
        while !eof && filled < buf.len() {
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
        let data = &buf[..filled];
        let mut slices: Vec<&[u8]> = Vec::new();
        let mut pos = 0;
        while let Some(n) = chunker.next_cut(&data[pos..], eof) {
            if n == 0 {
                break;
            }
            slices.push(&data[pos..pos + n]);
            pos += n;
            if !eof && pos >= BATCH {
                break;
            }
        }
        if slices.is_empty() && eof {
            break;
        }
        for saved in repo.save_blobs(BlobKind::Data, &slices)? {
            chunks_new += u64::from(saved.new);
            size += saved.size;
            builder.push(ContentEntry(saved.id, saved.size), &mut save_list)?;
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
    }
    let content = builder.finish(&mut save_list)?;
    Ok(StoredStream {
        content,
        size,
        chunks_new,
    })
}
