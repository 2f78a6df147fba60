//! Incremental RocksDB checkpoints: upload only the SST files the previous completed
//! checkpoint did not have; download and verify them on restore.
//!
//! SST files are immutable, so an SST file of the same name and size as one in the
//! previous completed checkpoint is the same file: the new manifest refers to the
//! already uploaded copy under `<root>/shared/`. Everything else (MANIFEST, CURRENT,
//! OPTIONS, new SST files) is uploaded. [`super::Retention`] deletes a shared file
//! once no retained checkpoint refers to it.

use super::manifest::{DbFile, DbFiles, FileLocation, CHUNK_LEN};
use crate::error::{Error, Result};
use crate::storage::file::SHARED_DIR;
use crate::storage::{CheckpointStorage, CheckpointWriter};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

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
    let mut names = Vec::new();
    for entry in std::fs::read_dir(local_dir).map_err(|e| Error::io(local_dir, e))? {
        let entry = entry.map_err(|e| Error::io(local_dir, e))?;
        if entry
            .file_type()
            .map_err(|e| Error::io(entry.path(), e))?
            .is_file()
        {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let mut files = Vec::with_capacity(names.len());
    let mut uploaded_bytes = 0;
    for name in names {
        let path = local_dir.join(&name);
        let size = std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .len();
        let sst = name.ends_with(".sst");
        if let Some(prev) = previous.get(&name).filter(|p| sst && p.size == size) {
            files.push(prev.clone());
            continue;
        }
        let (location, out) = if sst {
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
        let chunk_crcs = copy_with_checksums(&path, size, out)?;
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

fn copy_with_checksums(
    path: &Path,
    size: u64,
    mut out: Box<dyn CheckpointWriter>,
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
        out.write_all(&buf[..n]).map_err(|e| Error::io(path, e))?;
        left -= n as u64;
    }
    out.commit()?;
    Ok(crcs)
}

/// Where a file of a manifest at `manifest_path` is stored.
pub(crate) fn resolve(manifest_path: &Path, location: &FileLocation) -> PathBuf {
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    match location {
        FileLocation::Private(name) => dir.join(name),
        FileLocation::Shared(name) => dir
            .parent()
            .unwrap_or(Path::new("."))
            .join(SHARED_DIR)
            .join(name),
    }
}

/// Copies every file of a checkpoint into `dest`, verifying sizes and checksums.
pub(crate) fn download(manifest_path: &Path, files: &DbFiles, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let mut buf = vec![0u8; CHUNK_LEN as usize];
    for f in &files.files {
        let src = resolve(manifest_path, &f.location);
        let name = src.display().to_string();
        let mut input = File::open(&src).map_err(|e| Error::io(&src, e))?;
        let actual = input.metadata().map_err(|e| Error::io(&src, e))?.len();
        if actual != f.size {
            return Err(Error::corrupted(
                &name,
                actual.min(f.size),
                format!("file is {actual} bytes, the manifest records {}", f.size),
            ));
        }
        let target = dest.join(&f.name);
        let mut output = File::create(&target).map_err(|e| Error::io(&target, e))?;
        for (i, &crc) in f.chunk_crcs.iter().enumerate() {
            let offset = i as u64 * CHUNK_LEN;
            let n = (f.size - offset).min(CHUNK_LEN) as usize;
            input
                .read_exact(&mut buf[..n])
                .map_err(|e| Error::io(&src, e))?;
            let computed = crc32c::crc32c(&buf[..n]);
            if computed != crc {
                return Err(Error::corrupted(
                    &name,
                    offset,
                    format!(
                        "checksum mismatch in bytes {offset}..{} (stored {crc:#010x}, computed {computed:#010x})",
                        offset + n as u64
                    ),
                ));
            }
            output
                .write_all(&buf[..n])
                .map_err(|e| Error::io(&target, e))?;
        }
    }
    Ok(())
}
