//! Reading snapshots back: opening a handle, checking the data header, and decoding
//! the blocks of one key group with their checksums verified.

use super::format::{
    BLOCK_HEADER_LEN, DATA_HEADER_LEN, DATA_MAGIC, FORMAT_VERSION, TAG_LIST, TAG_MAP_ENTRY,
    TAG_VALUE, TRAILER_LEN, TRAILER_MAGIC,
};
use super::incremental;
use super::manifest::{DataLocation, DbFile, DbFiles, FullData, KeyedData, Manifest};
use super::SnapshotHandle;
use crate::checkpoint_storage::source::{BytesSource, SliceSource, SnapshotSource};
use crate::checkpoint_storage::{self, RemoteOptions};
use crate::codec::{get_varint, validate_list};
use crate::error::{Error, Result};
use crate::state::StateKind;
use crate::store::{EntryData, EntryRef};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A manifest and the data it describes, ready to read.
pub struct OpenSnapshot {
    pub manifest: Manifest,
    /// Names the snapshot in messages (a manifest path, or "inline snapshot ...").
    pub name: String,
    /// The data stream of a full snapshot.
    data: Option<Box<dyn SnapshotSource>>,
    /// Where the RocksDB files of an incremental snapshot are.
    file_sources: Option<DbFileSources>,
}

/// Where the RocksDB files of an incremental snapshot are read from.
pub(crate) enum DbFileSources {
    /// Beside the manifest at this location (a path or URL), and in the checkpoint
    /// root's shared directory (the core's own checkpoint storage).
    Beside {
        manifest: String,
        remote: RemoteOptions,
    },
    /// Handed over one by one, by file name (e.g. Flink's state handles).
    Given(BTreeMap<String, Arc<dyn SnapshotSource>>),
}

impl DbFileSources {
    /// Opens the stored copy of `file`.
    pub(crate) fn open(&self, file: &DbFile) -> Result<Arc<dyn SnapshotSource>> {
        match self {
            DbFileSources::Beside { manifest, remote } => checkpoint_storage::open_source(
                &incremental::resolve(manifest, &file.location),
                remote,
            ),
            DbFileSources::Given(sources) => sources.get(&file.name).cloned().ok_or_else(|| {
                Error::Restore(format!(
                    "the snapshot's file {} was not handed over for the restore",
                    file.name
                ))
            }),
        }
    }
}

/// Opens a handle: reads and checks its manifest, opens and checks its data.
pub fn open(handle: &SnapshotHandle) -> Result<OpenSnapshot> {
    match handle {
        SnapshotHandle::Inline(bytes) => {
            let (manifest, framed) = Manifest::decode(bytes, "inline snapshot")?;
            let name = format!("inline snapshot of checkpoint {}", manifest.checkpoint_id);
            let KeyedData::Full(FullData {
                location: DataLocation::Inline,
                size,
                ..
            }) = &manifest.keyed
            else {
                return Err(Error::corrupted(
                    &name,
                    0,
                    "inline snapshot whose data is not inline",
                ));
            };
            let src = BytesSource::new(
                name.clone(),
                Arc::clone(bytes),
                framed,
                bytes.len() - framed,
            );
            check_data(&src, *size)?;
            Ok(OpenSnapshot {
                manifest,
                name,
                data: Some(Box::new(src)),
                file_sources: None,
            })
        }
        SnapshotHandle::Stream(source) => {
            let name = source.name().to_string();
            let (manifest, manifest_at) = read_stream_manifest(source.as_ref())?;
            let KeyedData::Full(FullData {
                location: DataLocation::Stream,
                size,
                ..
            }) = &manifest.keyed
            else {
                return Err(Error::corrupted(
                    &name,
                    manifest_at,
                    "stream snapshot whose data is not in the stream",
                ));
            };
            if *size != manifest_at {
                return Err(Error::corrupted(
                    &name,
                    source.len() - TRAILER_LEN as u64,
                    "trailer and manifest disagree on the data size",
                ));
            }
            let src = SliceSource::new(Arc::clone(source), 0, manifest_at);
            check_data(&src, *size)?;
            Ok(OpenSnapshot {
                manifest,
                name,
                data: Some(Box::new(src)),
                file_sources: None,
            })
        }
        SnapshotHandle::Files { meta, files } => {
            let name = meta.name().to_string();
            let (manifest, manifest_at) = read_stream_manifest(meta.as_ref())?;
            if !matches!(manifest.keyed, KeyedData::Files(_)) || manifest_at != 0 {
                return Err(Error::corrupted(
                    &name,
                    manifest_at,
                    "not the meta stream of an incremental snapshot",
                ));
            }
            Ok(OpenSnapshot {
                manifest,
                name,
                data: None,
                file_sources: Some(DbFileSources::Given(files.clone())),
            })
        }
        SnapshotHandle::Manifest(path) => {
            open_manifest(path.display().to_string(), &RemoteOptions::default())
        }
        SnapshotHandle::RemoteManifest { url, remote } => open_manifest(url.clone(), remote),
    }
}

/// Opens the manifest at `location` (a path or URL) and the data beside it.
fn open_manifest(location: String, remote: &RemoteOptions) -> Result<OpenSnapshot> {
    let source = checkpoint_storage::open_source(&location, remote)?;
    let name = location;
    let len = usize::try_from(source.len())
        .map_err(|_| Error::corrupted(&name, 0, "manifest too large"))?;
    let mut bytes = vec![0u8; len];
    source.read_exact_at(0, &mut bytes)?;
    let (manifest, framed) = Manifest::decode(&bytes, &name)?;
    if framed != bytes.len() {
        return Err(Error::corrupted(
            &name,
            framed as u64,
            "trailing bytes after the manifest",
        ));
    }
    let data: Option<Box<dyn SnapshotSource>> = match &manifest.keyed {
        KeyedData::Full(FullData {
            location: DataLocation::File(file),
            size,
            ..
        }) => {
            if file.contains('/') || file == ".." || file.is_empty() {
                return Err(Error::corrupted(
                    &name,
                    0,
                    format!("bad data file name '{file}'"),
                ));
            }
            let src =
                checkpoint_storage::open_source(&checkpoint_storage::sibling(&name, file), remote)?;
            check_data(src.as_ref(), *size)?;
            Some(Box::new(SliceSource::new(src, 0, *size)))
        }
        KeyedData::Full(_) => {
            return Err(Error::corrupted(
                &name,
                0,
                "manifest file whose data is inline",
            ))
        }
        KeyedData::Files(_) => None,
    };
    Ok(OpenSnapshot {
        manifest,
        file_sources: Some(DbFileSources::Beside {
            manifest: name.clone(),
            remote: remote.clone(),
        }),
        name,
        data,
    })
}

/// Reads the manifest of a single-stream snapshot (`data ‖ manifest ‖ trailer`) and
/// returns it with the offset it starts at (the data's length).
fn read_stream_manifest(source: &dyn SnapshotSource) -> Result<(Manifest, u64)> {
    let name = source.name();
    let len = source.len();
    if len < TRAILER_LEN as u64 {
        return Err(Error::corrupted(
            name,
            len,
            "too short for a snapshot stream",
        ));
    }
    let mut trailer = [0u8; TRAILER_LEN];
    source.read_exact_at(len - TRAILER_LEN as u64, &mut trailer)?;
    if trailer[8..] != TRAILER_MAGIC {
        return Err(Error::corrupted(
            name,
            len - 8,
            "not a libstatebackend snapshot stream (bad trailer magic; truncated?)",
        ));
    }
    let manifest_at = u64::from_le_bytes(trailer[..8].try_into().expect("8 bytes"));
    let manifest_len = (len - TRAILER_LEN as u64)
        .checked_sub(manifest_at)
        .filter(|l| *l <= crate::snapshot::format::MAX_MANIFEST_LEN)
        .ok_or_else(|| {
            Error::corrupted(
                name,
                len - TRAILER_LEN as u64,
                "manifest offset out of bounds",
            )
        })?;
    let mut bytes = vec![0u8; manifest_len as usize];
    source.read_exact_at(manifest_at, &mut bytes)?;
    let (manifest, framed) = Manifest::decode(&bytes, name).map_err(|e| match e {
        Error::Corrupted {
            file,
            offset,
            reason,
        } => Error::Corrupted {
            file,
            offset: offset + manifest_at,
            reason,
        },
        other => other,
    })?;
    if framed != bytes.len() {
        return Err(Error::corrupted(
            name,
            manifest_at + framed as u64,
            "bytes between the manifest and the trailer",
        ));
    }
    Ok((manifest, manifest_at))
}

/// The data stream has the recorded length and a valid header.
fn check_data(data: &dyn SnapshotSource, size: u64) -> Result<()> {
    if data.len() != size {
        return Err(Error::corrupted(
            data.name(),
            data.len().min(size),
            format!(
                "data is {} bytes, the manifest records {size} (truncated or replaced)",
                data.len()
            ),
        ));
    }
    check_data_header(data)
}

fn check_data_header(data: &dyn SnapshotSource) -> Result<()> {
    let mut h = [0u8; DATA_HEADER_LEN];
    data.read_exact_at(0, &mut h)?;
    if h[..8] != DATA_MAGIC {
        return Err(Error::corrupted(
            data.name(),
            0,
            "not a libstatebackend data stream (bad magic)",
        ));
    }
    let crc = u32::from_le_bytes(h[12..16].try_into().expect("4 bytes"));
    if crc32c::crc32c(&h[..12]) != crc {
        return Err(Error::corrupted(
            data.name(),
            0,
            "data header checksum mismatch",
        ));
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(Error::corrupted(
            data.name(),
            8,
            format!("unsupported format version {version} (this library reads {FORMAT_VERSION})"),
        ));
    }
    Ok(())
}

impl OpenSnapshot {
    /// The RocksDB files of an incremental snapshot, with where they are stored.
    pub(crate) fn db_files(&self) -> Option<(&DbFileSources, &DbFiles)> {
        match (&self.manifest.keyed, &self.file_sources) {
            (KeyedData::Files(files), Some(sources)) => Some((sources, files)),
            _ => None,
        }
    }

    /// Bytes of keyed data [`OpenSnapshot::verify`] reads: the data stream of a full
    /// snapshot, every file of an incremental one.
    pub fn data_len(&self) -> u64 {
        match &self.manifest.keyed {
            KeyedData::Full(full) => full.size,
            KeyedData::Files(files) => files.total_bytes(),
        }
    }

    /// Reads every byte of the snapshot's keyed data and checks every checksum: each
    /// key group's blocks (and the records in them) of a full snapshot, the size and
    /// every chunk of each file of an incremental one. `progress` is told the bytes
    /// checked so far. The first mismatch is an error naming the file and offset.
    pub fn verify(&self, progress: &mut dyn FnMut(u64)) -> Result<()> {
        match &self.manifest.keyed {
            KeyedData::Full(full) => {
                let offsets = &full.key_group_offsets;
                for (i, &(kg, offset)) in offsets.iter().enumerate() {
                    self.read_key_group(kg, offset, &mut |_| Ok(()))?;
                    progress(offsets.get(i + 1).map_or(full.size, |next| next.1));
                }
                Ok(())
            }
            KeyedData::Files(files) => {
                let (sources, _) = self.db_files().expect("incremental snapshots have files");
                let mut buf = vec![0u8; super::manifest::CHUNK_LEN as usize];
                let mut done = 0;
                for f in &files.files {
                    incremental::read_checked(sources, f, &mut buf, &mut |chunk| {
                        done += chunk.len() as u64;
                        progress(done);
                        Ok(())
                    })?;
                }
                Ok(())
            }
        }
    }

    /// Decodes every entry of key group `kg` (which must have an offset in the
    /// manifest), verifying each block's CRC32C before looking inside it.
    pub fn read_key_group(
        &self,
        kg: u32,
        offset: u64,
        f: &mut dyn FnMut(EntryRef<'_>) -> Result<()>,
    ) -> Result<()> {
        let data = self
            .data
            .as_ref()
            .ok_or_else(|| Error::invalid("not a full snapshot"))?;
        let name = data.name();
        let size = data.len();
        let mut pos = offset;
        let mut payload = Vec::new();
        let mut first = true;
        while pos < size {
            if pos + BLOCK_HEADER_LEN as u64 > size {
                return Err(Error::corrupted(name, pos, "truncated block header"));
            }
            let mut header = [0u8; BLOCK_HEADER_LEN];
            data.read_exact_at(pos, &mut header)?;
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as u64;
            let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
            let body = pos + BLOCK_HEADER_LEN as u64;
            if len < 5 || body + len > size {
                return Err(Error::corrupted(
                    name,
                    pos,
                    format!(
                        "block length {len} does not fit the data ({} bytes left)",
                        size - body
                    ),
                ));
            }
            payload.resize(len as usize, 0);
            data.read_exact_at(body, &mut payload)?;
            let actual = crc32c::crc32c(&payload);
            if actual != crc {
                return Err(Error::corrupted(
                    name,
                    pos,
                    format!(
                        "block checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"
                    ),
                ));
            }
            let block_kg = u32::from_le_bytes(payload[..4].try_into().expect("4 bytes"));
            if block_kg != kg {
                if first {
                    return Err(Error::corrupted(
                        name,
                        pos,
                        format!("expected key group {kg}, found a block of key group {block_kg}"),
                    ));
                }
                break;
            }
            first = false;
            self.decode_records(name, &payload[4..], body + 4, f)?;
            pos = body + len;
        }
        Ok(())
    }

    fn decode_records(
        &self,
        name: &str,
        mut rest: &[u8],
        base: u64,
        f: &mut dyn FnMut(EntryRef<'_>) -> Result<()>,
    ) -> Result<()> {
        let total = rest.len();
        while !rest.is_empty() {
            let at = base + (total - rest.len()) as u64;
            let bad = |reason: &str| Error::corrupted(name, at, format!("bad record: {reason}"));
            let tag = rest[0];
            rest = &rest[1..];
            let (state, used) = get_varint(rest).ok_or_else(|| bad("state id"))?;
            rest = &rest[used..];
            let info = self
                .manifest
                .states
                .get(state as usize)
                .ok_or_else(|| bad("unknown state id"))?;
            let key = take_bytes(&mut rest).ok_or_else(|| bad("key"))?;
            let namespace = take_bytes(&mut rest).ok_or_else(|| bad("namespace"))?;
            let data = match (tag, info.kind) {
                (TAG_VALUE, StateKind::Value) => {
                    EntryData::Value(take_bytes(&mut rest).ok_or_else(|| bad("value"))?)
                }
                (TAG_LIST, StateKind::List) => {
                    let list = take_bytes(&mut rest).ok_or_else(|| bad("list"))?;
                    validate_list(list).ok_or_else(|| bad("list elements"))?;
                    EntryData::List(list)
                }
                (TAG_MAP_ENTRY, StateKind::Map | StateKind::SortedSet) => EntryData::MapEntry {
                    user_key: take_bytes(&mut rest).ok_or_else(|| bad("user key"))?,
                    value: take_bytes(&mut rest).ok_or_else(|| bad("map value"))?,
                },
                _ => return Err(bad("tag does not match the state's kind")),
            };
            f(EntryRef {
                state: state as u32,
                key,
                namespace,
                data,
            })?;
        }
        Ok(())
    }
}

fn take_bytes<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, used) = get_varint(rest)?;
    let end = used.checked_add(usize::try_from(len).ok()?)?;
    if end > rest.len() {
        return None;
    }
    let b = &rest[used..end];
    *rest = &rest[end..];
    Some(b)
}
