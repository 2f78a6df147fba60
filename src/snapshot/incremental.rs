//! Incremental RocksDB checkpoints: upload only the SST files the previous completed
//! checkpoint did not have; download and verify them on restore.
//!
//! SST files are immutable, so an SST file of the same name and size as one in the
//! previous completed checkpoint is the same file: the new manifest refers to the
//! already uploaded copy under `<root>/shared/`. Everything else (MANIFEST, CURRENT,
//! OPTIONS, new SST files) is uploaded. [`super::Retention`] deletes a shared file
//! once no retained checkpoint refers to it.

use super::manifest::{DbFile, DbFiles, FileLocation, KeyedData, Manifest, CHUNK_LEN};
use super::reader::DbFileSources;
use super::{finish_stream, StreamedSnapshot};
use crate::checkpoint_storage::file::SHARED_DIR;
use crate::checkpoint_storage::{self, CheckpointStorage};
use crate::error::{Error, Result};
use crate::store::{CheckpointLink, LocalCheckpoint};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The files of the previous completed checkpoint, by their name in the DB.
pub(crate) type PreviousFiles = BTreeMap<String, DbFile>;

/// Uploads the files of a local RocksDB checkpoint. On failure, shared files this
/// call uploaded are deleted again (nothing refers to them).
pub(crate) fn upload(
    local_dir: &Path,
    checkpoint_id: u64,
    instance: &str,
    storage: &dyn CheckpointStorage,
    previous: &PreviousFiles,
) -> Result<DbFiles> {
    let mut new_shared = Vec::new();
    let result = upload_files(
        local_dir,
        checkpoint_id,
        instance,
        storage,
        previous,
        &mut new_shared,
    );
    if result.is_err() {
        for name in new_shared {
            let _ = storage.discard_shared(&name);
        }
    }
    result
}

fn upload_files(
    local_dir: &Path,
    checkpoint_id: u64,
    instance: &str,
    storage: &dyn CheckpointStorage,
    previous: &PreviousFiles,
    new_shared: &mut Vec<String>,
) -> Result<DbFiles> {
    let names = local_files(local_dir)?;
    let mut files = Vec::with_capacity(names.len());
    let mut uploaded_bytes = 0;
    for (name, size) in names {
        let path = local_dir.join(&name);
        let sst = is_shared(&name);
        if let Some(prev) = previous.get(&name).filter(|p| sst && p.size == size) {
            files.push(prev.clone());
            continue;
        }
        let (location, mut out) = if sst {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let remote = format!("{instance}/{name}.{nanos}");
            let out = storage.create_shared(&remote)?;
            new_shared.push(remote.clone());
            (FileLocation::Shared(remote), out)
        } else {
            let remote = format!("{instance}.db.{name}");
            let out = storage.create(checkpoint_id, &remote)?;
            (FileLocation::Private(remote), out)
        };
        let chunk_crcs = copy_with_checksums(&path, size, &mut *out, &location_name(&location))?;
        out.commit()?;
        uploaded_bytes += size;
        files.push(DbFile {
            name,
            location,
            size,
            chunk_crcs,
        });
    }
    Ok(DbFiles {
        files,
        uploaded_bytes,
    })
}

fn location_name(location: &FileLocation) -> String {
    match location {
        FileLocation::Shared(n) | FileLocation::Private(n) => n.clone(),
    }
}

/// Whether a RocksDB file may be shared by later checkpoints: SST files are
/// immutable, and one of the same name and size is the same file.
fn is_shared(name: &str) -> bool {
    name.ends_with(".sst")
}

/// (name, size) of the files of a local RocksDB checkpoint, by name.
fn local_files(local_dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(local_dir).map_err(|e| Error::io(local_dir, e))? {
        let entry = entry.map_err(|e| Error::io(local_dir, e))?;
        let meta = entry.metadata().map_err(|e| Error::io(entry.path(), e))?;
        if meta.is_file() {
            files.push((entry.file_name().to_string_lossy().into_owned(), meta.len()));
        }
    }
    files.sort();
    Ok(files)
}

/// Copies `size` bytes of the file at `path` into `out`; returns the CRC32C of each
/// chunk.
fn copy_with_checksums(
    path: &Path,
    size: u64,
    out: &mut dyn Write,
    out_name: &str,
) -> Result<Vec<u32>> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; CHUNK_LEN as usize];
    let mut crcs = Vec::with_capacity(size.div_ceil(CHUNK_LEN) as usize);
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK_LEN) as usize;
        file.read_exact(&mut buf[..n])
            .map_err(|e| Error::io(path, e))?;
        crcs.push(crc32c::crc32c(&buf[..n]));
        out.write_all(&buf[..n])
            .map_err(|e| Error::io(out_name, e))?;
        left -= n as u64;
    }
    out.flush().map_err(|e| Error::io(out_name, e))?;
    Ok(crcs)
}

/// An incremental RocksDB snapshot whose files the caller stores one by one (Flink's
/// checkpoint streams, for example), from [`crate::StateBackend::incremental_snapshot`].
///
/// The caller stores each file of [`IncrementalUpload::files`] with
/// [`IncrementalUpload::upload`], or, for a shared file it stored for an earlier
/// checkpoint, hands back that upload's record to [`IncrementalUpload::reuse`]; then
/// [`IncrementalUpload::finish`] writes the meta stream: the manifest with every
/// file's size and checksums. Restore with [`super::SnapshotHandle::Files`].
pub struct IncrementalUpload {
    /// The manifest, its file list still empty.
    manifest: Manifest,
    local: Local,
    stored: BTreeMap<String, DbFile>,
    uploaded_bytes: u64,
}

/// The local checkpoint, linked on first use (the asynchronous phase).
enum Local {
    Pending(CheckpointLink),
    Linked {
        local: LocalCheckpoint,
        /// (name, size) of its files, by name.
        files: Vec<(String, u64)>,
    },
    /// Linking failed; the error was returned.
    Failed,
}

impl IncrementalUpload {
    pub(crate) fn new(manifest: Manifest, local: CheckpointLink) -> Self {
        IncrementalUpload {
            manifest,
            local: Local::Pending(local),
            stored: BTreeMap::new(),
            uploaded_bytes: 0,
        }
    }

    pub fn checkpoint_id(&self) -> u64 {
        self.manifest.checkpoint_id
    }

    /// The local checkpoint and its files, linked (waited for) on first use.
    fn local(&mut self) -> Result<(&LocalCheckpoint, &[(String, u64)])> {
        if let Local::Pending(_) = self.local {
            let Local::Pending(pending) = std::mem::replace(&mut self.local, Local::Failed) else {
                unreachable!()
            };
            let local = pending.resolve()?;
            let files = local_files(&local.dir)?;
            self.local = Local::Linked { local, files };
        }
        match &self.local {
            Local::Linked { local, files } => Ok((local, files)),
            _ => Err(Error::invalid(format!(
                "checkpoint {} has no local files: linking them failed",
                self.checkpoint_id()
            ))),
        }
    }

    /// Names of the files to store: the shared ones (immutable SST files, which a
    /// later checkpoint may refer to again) or the private ones.
    pub fn files(&mut self, shared: bool) -> Result<Vec<String>> {
        let (_, files) = self.local()?;
        Ok(files
            .iter()
            .filter(|(name, _)| is_shared(name) == shared)
            .map(|(name, _)| name.clone())
            .collect())
    }

    fn local_size(&mut self, name: &str) -> Result<u64> {
        let id = self.checkpoint_id();
        let (_, files) = self.local()?;
        files
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, size)| size)
            .ok_or_else(|| Error::invalid(format!("checkpoint {id} has no file {name}")))
    }

    /// Copies file `name` into `sink`; returns the record to hand to
    /// [`IncrementalUpload::reuse`] when a later checkpoint refers to this copy.
    pub fn upload(&mut self, name: &str, sink: &mut dyn Write, sink_name: &str) -> Result<Vec<u8>> {
        let size = self.local_size(name)?;
        let path = self.local()?.0.dir.join(name);
        let chunk_crcs = copy_with_checksums(&path, size, sink, sink_name)?;
        let location = if is_shared(name) {
            FileLocation::Shared(name.to_string())
        } else {
            FileLocation::Private(name.to_string())
        };
        let file = DbFile {
            name: name.to_string(),
            location,
            size,
            chunk_crcs,
        };
        let record = postcard::to_allocvec(&file)
            .map_err(|e| Error::invalid(format!("encoding the record of {name}: {e}")))?;
        self.uploaded_bytes += size;
        self.stored.insert(file.name.clone(), file);
        Ok(record)
    }

    /// Refers to a shared file stored for an earlier checkpoint instead of uploading
    /// it again. False if this checkpoint has no shared file of that name and size
    /// (upload it instead).
    pub fn reuse(&mut self, record: &[u8]) -> Result<bool> {
        let file: DbFile = postcard::from_bytes(record).map_err(|e| {
            Error::invalid(format!(
                "not the record of an uploaded checkpoint file: {e}"
            ))
        })?;
        let same = is_shared(&file.name)
            && matches!(file.location, FileLocation::Shared(_))
            && file.chunk_crcs.len() as u64 == file.size.div_ceil(CHUNK_LEN)
            && self
                .local()?
                .1
                .iter()
                .any(|(n, s)| *n == file.name && *s == file.size);
        if same {
            self.stored.insert(file.name.clone(), file);
        }
        Ok(same)
    }

    /// Writes the meta stream (a single-stream snapshot with no data: `manifest ‖
    /// trailer`) once every file is stored. The local checkpoint is deleted.
    pub fn finish(mut self, sink: &mut dyn Write, sink_name: &str) -> Result<StreamedSnapshot> {
        let names: Vec<String> = self.local()?.1.iter().map(|(n, _)| n.clone()).collect();
        let IncrementalUpload {
            mut manifest,
            mut stored,
            uploaded_bytes,
            ..
        } = self;
        let mut files = Vec::with_capacity(names.len());
        for name in &names {
            files.push(stored.remove(name).ok_or_else(|| {
                Error::invalid(format!(
                    "file {name} of checkpoint {} was neither uploaded nor reused",
                    manifest.checkpoint_id
                ))
            })?);
        }
        manifest.keyed = KeyedData::Files(DbFiles {
            files,
            uploaded_bytes,
        });
        finish_stream(manifest, 0, sink, sink_name)
    }
}

/// Where a file of the manifest at `manifest` (a path or URL) is stored.
pub(crate) fn resolve(manifest: &str, location: &FileLocation) -> String {
    match location {
        FileLocation::Private(name) => checkpoint_storage::sibling(manifest, name),
        FileLocation::Shared(name) => {
            // <root>/chk-<id>/<manifest> → <root>/shared/<name>
            let checkpoint_dir = checkpoint_storage::sibling(manifest, "");
            let root = checkpoint_dir.trim_end_matches('/');
            checkpoint_storage::sibling(root, &format!("{SHARED_DIR}/{name}"))
        }
    }
}

/// Copies every file of a checkpoint into `dest`, verifying sizes and checksums.
pub(crate) fn download(
    sources: &DbFileSources,
    files: &DbFiles,
    dest: &Path,
    threads: usize,
) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    // Files are taken in turn by up to `threads` threads, each reading one file at a
    // time through its own source (a Java stream each, from Flink).
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let copy = || -> Result<()> {
        let mut buf = vec![0u8; CHUNK_LEN as usize];
        while !failed.load(Ordering::Relaxed) {
            let Some(f) = files.files.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let target = dest.join(&f.name);
            let result = File::create(&target)
                .map_err(|e| Error::io(&target, e))
                .and_then(|mut output| {
                    read_checked(sources, f, &mut buf, &mut |chunk| {
                        output.write_all(chunk).map_err(|e| Error::io(&target, e))
                    })
                });
            if result.is_err() {
                failed.store(true, Ordering::Relaxed);
                return result;
            }
        }
        Ok(())
    };
    let threads = threads.clamp(1, files.files.len().max(1));
    if threads == 1 {
        return copy();
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads).map(|_| scope.spawn(copy)).collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(Error::Restore("a file reader panicked".into())))
            })
            .collect::<Result<Vec<()>>>()
            .map(|_| ())
    })
}

/// Reads the stored copy of `f` chunk by chunk into `buf` (`CHUNK_LEN` bytes),
/// checking its size and each chunk's checksum before handing the chunk to `out`.
pub(crate) fn read_checked(
    sources: &DbFileSources,
    f: &DbFile,
    buf: &mut [u8],
    out: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let src = sources.open(f)?;
    let name = src.name();
    let actual = src.len();
    if actual != f.size {
        return Err(Error::corrupted(
            name,
            actual.min(f.size),
            format!("file is {actual} bytes, the manifest records {}", f.size),
        ));
    }
    if f.chunk_crcs.len() as u64 != f.size.div_ceil(CHUNK_LEN) {
        return Err(Error::corrupted(
            name,
            0,
            format!(
                "the manifest records {} checksums for {} bytes",
                f.chunk_crcs.len(),
                f.size
            ),
        ));
    }
    for (i, &crc) in f.chunk_crcs.iter().enumerate() {
        let offset = i as u64 * CHUNK_LEN;
        let n = (f.size - offset).min(CHUNK_LEN) as usize;
        src.read_exact_at(offset, &mut buf[..n])?;
        let computed = crc32c::crc32c(&buf[..n]);
        if computed != crc {
            return Err(Error::corrupted(
                name,
                offset,
                format!(
                    "checksum mismatch in bytes {offset}..{} (stored {crc:#010x}, computed {computed:#010x})",
                    offset + n as u64
                ),
            ));
        }
        out(&buf[..n])?;
    }
    Ok(())
}
