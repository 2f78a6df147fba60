//! Snapshots: the synchronous phase ([`crate::StateBackend::snapshot`]) returns a
//! [`PendingSnapshot`]; its [`PendingSnapshot::write`] is the asynchronous phase,
//! run on any thread while the backend keeps working.

pub mod format;
pub mod incremental;
pub mod manifest;
pub mod reader;
pub mod restore;
pub mod writer;

use crate::checkpoint_storage::source::{BytesSource, SnapshotSource};
use crate::checkpoint_storage::{self, CheckpointStorage, RemoteOptions};
use crate::config::{BackendKind, CheckpointUrl};
use crate::error::{Error, Result};
use crate::keygroup::KeyGroupRange;
use crate::operator::OperatorListSnapshot;
use crate::state::StateInfo;
use crate::store::StoreView;
pub use incremental::IncrementalUpload;
use manifest::{DataLocation, FileLocation, KeyedData, Manifest};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use writer::SizeLimit;
pub use writer::{NoFilter, SnapshotFilter};

/// What a restore starts from: the bytes of an inline snapshot (memory backend), the
/// path or URL of a manifest (fs and rocksdb backends), a single-stream snapshot
/// written by [`PendingSnapshot::write_to`] (e.g. into a Flink checkpoint stream), or
/// an incremental snapshot whose files the caller stored ([`IncrementalUpload`]).
#[derive(Clone)]
pub enum SnapshotHandle {
    Inline(Arc<[u8]>),
    /// A manifest file in local checkpoint storage.
    Manifest(PathBuf),
    /// A manifest in remote checkpoint storage (`s3://…`, `hdfs://…`), with the
    /// settings that reach it.
    RemoteManifest {
        url: String,
        remote: RemoteOptions,
    },
    Stream(Arc<dyn SnapshotSource>),
    /// The meta stream of [`IncrementalUpload::finish`] and the stored files, by
    /// their names in the RocksDB directory.
    Files {
        meta: Arc<dyn SnapshotSource>,
        files: BTreeMap<String, Arc<dyn SnapshotSource>>,
    },
}

impl std::fmt::Debug for SnapshotHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotHandle::Inline(b) => write!(f, "Inline({} bytes)", b.len()),
            SnapshotHandle::Manifest(p) => write!(f, "Manifest({})", p.display()),
            SnapshotHandle::RemoteManifest { url, .. } => write!(f, "RemoteManifest({url})"),
            SnapshotHandle::Stream(s) => write!(f, "Stream({}, {} bytes)", s.name(), s.len()),
            SnapshotHandle::Files { meta, files } => {
                write!(f, "Files({}, {} files)", meta.name(), files.len())
            }
        }
    }
}

impl PartialEq for SnapshotHandle {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SnapshotHandle::Inline(a), SnapshotHandle::Inline(b)) => a == b,
            (SnapshotHandle::Manifest(a), SnapshotHandle::Manifest(b)) => a == b,
            (
                SnapshotHandle::RemoteManifest { url: a, remote: ra },
                SnapshotHandle::RemoteManifest { url: b, remote: rb },
            ) => a == b && ra == rb,
            (SnapshotHandle::Stream(a), SnapshotHandle::Stream(b)) => Arc::ptr_eq(a, b),
            (SnapshotHandle::Files { meta: a, .. }, SnapshotHandle::Files { meta: b, .. }) => {
                Arc::ptr_eq(a, b)
            }
            _ => false,
        }
    }
}

impl SnapshotHandle {
    /// A handle for inline snapshot bytes.
    pub fn inline(bytes: impl Into<Arc<[u8]>>) -> Self {
        SnapshotHandle::Inline(bytes.into())
    }

    /// A handle for a manifest given as `file:///…` URL or absolute path, or as an
    /// `s3://…`/`hdfs://…` URL reached with the AWS environment variables.
    pub fn manifest(url: &str) -> Result<Self> {
        SnapshotHandle::manifest_with(url, &RemoteOptions::default())
    }

    /// Like [`SnapshotHandle::manifest`], reaching remote storage with `remote`.
    pub fn manifest_with(url: &str, remote: &RemoteOptions) -> Result<Self> {
        let parsed = CheckpointUrl::parse(url)
            .map_err(|reason| Error::invalid(format!("manifest location '{url}': {reason}")))?;
        Ok(match parsed.local_path() {
            Some(path) => SnapshotHandle::Manifest(path.to_path_buf()),
            None => SnapshotHandle::RemoteManifest {
                url: parsed.as_str().to_string(),
                remote: remote.clone(),
            },
        })
    }

    /// The path or URL of a manifest handle. (Manifest paths come from UTF-8
    /// locations, so a local one is None only if built from a non-UTF-8 path.)
    pub fn manifest_location(&self) -> Option<&str> {
        match self {
            SnapshotHandle::Manifest(path) => path.to_str(),
            SnapshotHandle::RemoteManifest { url, .. } => Some(url),
            SnapshotHandle::Inline(_)
            | SnapshotHandle::Stream(_)
            | SnapshotHandle::Files { .. } => None,
        }
    }

    /// The handle of the manifest at `location` (as [`CheckpointStorage::location`]
    /// gives it: a local path or a URL).
    fn at(location: String, remote: &RemoteOptions) -> Self {
        if location.starts_with('/') {
            SnapshotHandle::Manifest(PathBuf::from(location))
        } else {
            SnapshotHandle::RemoteManifest {
                url: location,
                remote: remote.clone(),
            }
        }
    }

    /// The manifests of the newest complete checkpoint under a checkpoint directory
    /// URL: the newest `chk-<id>` whose manifests together cover every key group of
    /// the job (one manifest per instance that wrote it). Empty if there is none.
    /// A checkpoint that some instances did not finish (a crash between their
    /// manifests) is skipped, so a restore never misses key groups.
    pub fn latest(checkpoint_url: &str) -> Result<Vec<SnapshotHandle>> {
        SnapshotHandle::latest_with(checkpoint_url, None, &RemoteOptions::default())
    }

    /// Like [`SnapshotHandle::latest`], for an instance that owns only `range`: the
    /// newest checkpoint whose manifests cover `range`, and only those manifests.
    pub fn latest_covering(
        checkpoint_url: &str,
        range: KeyGroupRange,
    ) -> Result<Vec<SnapshotHandle>> {
        SnapshotHandle::latest_with(checkpoint_url, Some(range), &RemoteOptions::default())
    }

    /// [`SnapshotHandle::latest`] (`wanted` None) or
    /// [`SnapshotHandle::latest_covering`], reaching remote storage with `remote`.
    pub fn latest_with(
        checkpoint_url: &str,
        wanted: Option<KeyGroupRange>,
        remote: &RemoteOptions,
    ) -> Result<Vec<SnapshotHandle>> {
        let url = CheckpointUrl::parse(checkpoint_url).map_err(|reason| {
            Error::invalid(format!("checkpoint directory '{checkpoint_url}': {reason}"))
        })?;
        let storage = checkpoint_storage::open(&url, remote)?;
        for id in storage.checkpoint_ids()?.into_iter().rev() {
            if let Some(names) = complete_checkpoint(storage.as_ref(), id, wanted)? {
                return Ok(names
                    .iter()
                    .map(|n| SnapshotHandle::at(storage.location(id, n), remote))
                    .collect());
            }
        }
        Ok(Vec::new())
    }

    /// The inline bytes, if this is an inline snapshot.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            SnapshotHandle::Inline(b) => Some(b),
            _ => None,
        }
    }

    /// A single-stream snapshot held in memory (see [`PendingSnapshot::write_to`]).
    pub fn stream_bytes(name: &str, bytes: impl Into<Arc<[u8]>>) -> Self {
        let bytes: Arc<[u8]> = bytes.into();
        let len = bytes.len();
        SnapshotHandle::Stream(Arc::new(BytesSource::new(name.to_string(), bytes, 0, len)))
    }
}

/// The result of [`PendingSnapshot::write_to`].
#[derive(Clone, Debug)]
pub struct StreamedSnapshot {
    pub checkpoint_id: u64,
    pub manifest: Manifest,
    /// Length of everything written: data, manifest and trailer.
    pub bytes_written: u64,
}

impl StreamedSnapshot {
    /// (key group, offset of its first block in the stream), ascending, for the key
    /// groups with data: what a caller records so that a restore reads only the key
    /// groups it owns (Flink's `KeyGroupRangeOffsets`). Empty for an incremental
    /// snapshot, whose data are files.
    pub fn key_group_offsets(&self) -> &[(u32, u64)] {
        match &self.manifest.keyed {
            KeyedData::Full(full) => &full.key_group_offsets,
            KeyedData::Files(_) => &[],
        }
    }

    /// Bytes of keyed data the snapshot refers to: the data stream of a full one,
    /// every file of an incremental one (shared files included).
    pub fn data_bytes(&self) -> u64 {
        match &self.manifest.keyed {
            KeyedData::Full(full) => full.size,
            KeyedData::Files(files) => files.total_bytes(),
        }
    }

    /// Bytes of keyed data this snapshot wrote: all of a full one's, the newly
    /// uploaded files of an incremental one.
    pub fn uploaded_bytes(&self) -> u64 {
        match &self.manifest.keyed {
            KeyedData::Full(full) => full.size,
            KeyedData::Files(files) => files.uploaded_bytes,
        }
    }
}

/// Ends a single-stream snapshot after `data_size` bytes of data: `manifest ‖
/// trailer` (docs/snapshot-format.md, "Single-stream snapshots").
fn finish_stream(
    manifest: Manifest,
    data_size: u64,
    sink: &mut dyn std::io::Write,
    sink_name: &str,
) -> Result<StreamedSnapshot> {
    let encoded = manifest.encode()?;
    let mut trailer = [0u8; format::TRAILER_LEN];
    trailer[..8].copy_from_slice(&data_size.to_le_bytes());
    trailer[8..].copy_from_slice(&format::TRAILER_MAGIC);
    sink.write_all(&encoded)
        .and_then(|_| sink.write_all(&trailer))
        .and_then(|_| sink.flush())
        .map_err(|e| Error::io(sink_name, e))?;
    Ok(StreamedSnapshot {
        checkpoint_id: manifest.checkpoint_id,
        bytes_written: data_size + (encoded.len() + format::TRAILER_LEN) as u64,
        manifest,
    })
}

/// The manifest names of checkpoint `id` if its manifests cover `wanted` (all key
/// groups if None), else None (some instance did not finish it). Overlapping
/// manifests are an error: checkpoints of different parallelism share the id.
pub fn complete_checkpoint(
    storage: &dyn CheckpointStorage,
    id: u64,
    wanted: Option<KeyGroupRange>,
) -> Result<Option<Vec<String>>> {
    let mut manifests = Vec::new();
    for name in manifest_names(storage, id)? {
        let bytes = storage.read(id, &name)?;
        let (m, _) = Manifest::decode(&bytes, &storage.location(id, &name))?;
        manifests.push((m.key_group_range, m.max_parallelism, name));
    }
    let Some(&(_, max_parallelism, _)) = manifests.first() else {
        return Ok(None);
    };
    if manifests.iter().any(|(_, m, _)| *m != max_parallelism) {
        return Err(Error::Restore(format!(
            "checkpoint {id} holds manifests of different max parallelism"
        )));
    }
    let wanted = match wanted {
        Some(r) => r,
        None => KeyGroupRange::all(max_parallelism)?,
    };
    manifests.sort_by_key(|(r, _, _)| r.start());
    for pair in manifests.windows(2) {
        if pair[0].0.intersect(&pair[1].0).is_some() {
            return Err(Error::Restore(format!(
                "checkpoint {id} holds overlapping manifests ({} and {}): checkpoints of \
                 different parallelism share one checkpoint id",
                pair[0].2, pair[1].2
            )));
        }
    }
    let mut next = wanted.start();
    let mut chosen = Vec::new();
    for (range, _, name) in manifests {
        if range.intersect(&wanted).is_none() {
            continue;
        }
        if range.start() > next {
            return Ok(None);
        }
        next = range.end() + 1;
        chosen.push(name);
    }
    Ok((next > wanted.end()).then_some(chosen))
}

/// The names of the manifests (one per instance that finished it) of checkpoint `id`.
pub fn manifest_names(storage: &dyn CheckpointStorage, id: u64) -> Result<Vec<String>> {
    Ok(storage
        .list(id)?
        .into_iter()
        .filter(|n| n.ends_with(MANIFEST_SUFFIX))
        .collect())
}

/// File name suffix of manifests.
pub const MANIFEST_SUFFIX: &str = ".manifest";

/// The result of a completed snapshot.
#[derive(Clone, Debug)]
pub struct CompletedSnapshot {
    pub checkpoint_id: u64,
    /// What to restore from.
    pub handle: SnapshotHandle,
    pub manifest: Manifest,
    /// Bytes written by this snapshot (data or new files, and the manifest).
    pub bytes_written: u64,
    /// Size of the whole snapshot: for an incremental checkpoint, all files it
    /// refers to, including those shared with earlier checkpoints.
    pub full_size: u64,
    /// Problems deleting old checkpoints; the snapshot itself succeeded.
    pub retention_warnings: Vec<String>,
}

/// Where a pending snapshot goes.
pub(crate) enum Target {
    Inline {
        max_state_size: u64,
    },
    Storage {
        storage: Arc<dyn CheckpointStorage>,
        retention: Arc<Mutex<Retention>>,
        instance: String,
        /// Reaches remote storage when the result is restored.
        remote: RemoteOptions,
    },
}

/// What the synchronous phase captured.
pub(crate) enum Payload {
    /// A point-in-time view, written as a full snapshot.
    View(Box<dyn StoreView>),
    /// A local RocksDB checkpoint (linked on first use), uploaded incrementally.
    CheckpointLink(crate::store::CheckpointLink),
}

/// A snapshot between its synchronous and asynchronous phase. It owns an immutable
/// view of the state; it is `Send`, so [`PendingSnapshot::write`] can run on
/// another thread while the backend keeps processing.
pub struct PendingSnapshot {
    pub(crate) checkpoint_id: u64,
    pub(crate) backend: BackendKind,
    pub(crate) max_parallelism: u32,
    pub(crate) range: KeyGroupRange,
    pub(crate) states: Vec<StateInfo>,
    pub(crate) operator_states: Vec<OperatorListSnapshot>,
    pub(crate) payload: Payload,
    pub(crate) target: Target,
}

impl PendingSnapshot {
    pub fn checkpoint_id(&self) -> u64 {
        self.checkpoint_id
    }

    /// The asynchronous phase into one byte stream: `data ‖ manifest ‖ trailer`
    /// (docs/snapshot-format.md, "Single-stream snapshots"), e.g. a Flink checkpoint
    /// output stream. A full snapshot whatever the configuration; the memory
    /// backend's size limit applies. Restore with [`SnapshotHandle::Stream`].
    pub fn write_to(
        self,
        sink: &mut dyn std::io::Write,
        sink_name: &str,
    ) -> Result<StreamedSnapshot> {
        self.write_filtered_to(sink, sink_name, &mut NoFilter)
    }

    /// [`PendingSnapshot::write_to`], with values going through `filter` (e.g.
    /// Flink's state TTL cleanup on full snapshots).
    pub fn write_filtered_to(
        self,
        sink: &mut dyn std::io::Write,
        sink_name: &str,
        filter: &mut dyn SnapshotFilter,
    ) -> Result<StreamedSnapshot> {
        let limit = match self.target {
            Target::Inline { max_state_size } => Some(SizeLimit {
                checkpoint_id: self.checkpoint_id,
                max_state_size,
            }),
            Target::Storage { .. } => None,
        };
        let Payload::View(view) = self.payload else {
            return Err(Error::invalid(
                "an incremental checkpoint cannot be written as one stream; take a savepoint",
            ));
        };
        let full = writer::write_data(
            view.as_ref(),
            self.range,
            &self.states,
            limit,
            sink,
            sink_name,
            DataLocation::Stream,
            filter,
        )?;
        let data_size = full.size;
        let manifest = Manifest {
            checkpoint_id: self.checkpoint_id,
            backend: self.backend,
            max_parallelism: self.max_parallelism,
            key_group_range: self.range,
            states: self.states,
            keyed: KeyedData::Full(full),
            operator_states: self.operator_states,
        };
        finish_stream(manifest, data_size, sink, sink_name)
    }

    /// The asynchronous phase: writes the data, then the manifest, each atomically.
    /// The checkpoint exists only once this returns Ok.
    pub fn write(self) -> Result<CompletedSnapshot> {
        let PendingSnapshot {
            checkpoint_id,
            backend,
            max_parallelism,
            range,
            states,
            operator_states,
            payload,
            target,
        } = self;
        let manifest_for = |keyed| Manifest {
            checkpoint_id,
            backend,
            max_parallelism,
            key_group_range: range,
            states: states.clone(),
            keyed,
            operator_states: operator_states.clone(),
        };
        match target {
            Target::Inline { max_state_size } => {
                let Payload::View(view) = payload else {
                    return Err(Error::invalid(
                        "incremental snapshots need checkpoint storage",
                    ));
                };
                let mut data = Vec::new();
                let limit = SizeLimit {
                    checkpoint_id,
                    max_state_size,
                };
                let name = format!("inline snapshot of checkpoint {checkpoint_id}");
                let keyed = writer::write_data(
                    view.as_ref(),
                    range,
                    &states,
                    Some(limit),
                    &mut data,
                    &name,
                    DataLocation::Inline,
                    &mut NoFilter,
                )?;
                let manifest = manifest_for(KeyedData::Full(keyed));
                let mut blob = manifest.encode()?;
                blob.extend_from_slice(&data);
                Ok(CompletedSnapshot {
                    checkpoint_id,
                    bytes_written: blob.len() as u64,
                    full_size: blob.len() as u64,
                    handle: SnapshotHandle::Inline(blob.into()),
                    manifest,
                    retention_warnings: Vec::new(),
                })
            }
            Target::Storage {
                storage,
                retention,
                instance,
                remote,
            } => {
                let keyed = match payload {
                    Payload::View(view) => {
                        // A unique data name: a rewritten checkpoint id never mixes old and new files.
                        let data_name = format!(
                            "{instance}.{}.data",
                            std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_nanos())
                                .unwrap_or(0)
                        );
                        let location = storage.location(checkpoint_id, &data_name);
                        let mut data = storage.create(checkpoint_id, &data_name)?;
                        let full = writer::write_data(
                            view.as_ref(),
                            range,
                            &states,
                            None,
                            &mut *data,
                            &location,
                            DataLocation::File(data_name),
                            &mut NoFilter,
                        )?;
                        data.commit()?;
                        KeyedData::Full(full)
                    }
                    Payload::CheckpointLink(local) => {
                        let local = local.resolve()?;
                        let previous = retention
                            .lock()
                            .map_err(|_| Error::Closed("retention lock poisoned".into()))?
                            .previous_files();
                        KeyedData::Files(incremental::upload(
                            &local.dir,
                            checkpoint_id,
                            &instance,
                            storage.as_ref(),
                            &previous,
                        )?)
                    }
                };
                let manifest = manifest_for(keyed);
                let encoded = manifest.encode()?;
                let (data_written, full_size) = match &manifest.keyed {
                    KeyedData::Full(f) => (f.size, f.size),
                    KeyedData::Files(f) => (f.uploaded_bytes, f.total_bytes()),
                };
                let manifest_name = format!("{instance}{MANIFEST_SUFFIX}");
                let mut out = storage.create(checkpoint_id, &manifest_name)?;
                out.write_all(&encoded)
                    .map_err(|e| Error::io(storage.location(checkpoint_id, &manifest_name), e))?;
                let manifest_location = out.commit()?;
                let retention_warnings = retention
                    .lock()
                    .map_err(|_| Error::Closed("retention lock poisoned".into()))?
                    .completed(checkpoint_id, &manifest);
                Ok(CompletedSnapshot {
                    checkpoint_id,
                    bytes_written: data_written + encoded.len() as u64,
                    full_size: full_size + encoded.len() as u64,
                    handle: SnapshotHandle::at(manifest_location, &remote),
                    manifest,
                    retention_warnings,
                })
            }
        }
    }
}

use std::io::Write as _;

/// Keeps the newest `keep` completed checkpoints of one instance and deletes the
/// files of older ones (and of older incomplete attempts). Shared files of
/// incremental checkpoints are deleted once no retained checkpoint refers to them.
#[derive(Debug)]
pub struct Retention {
    keep: usize,
    /// Retained checkpoints and the shared files each refers to.
    completed: BTreeMap<u64, Vec<String>>,
    /// Files of the newest completed incremental checkpoint, by name in the DB.
    previous: incremental::PreviousFiles,
    storage: Arc<dyn CheckpointStorage>,
    instance: String,
    prefix: String,
}

impl Retention {
    /// Starts from the checkpoints this instance already has in storage, and deletes
    /// shared files that none of them refers to (left by an interrupted upload).
    pub(crate) fn load(
        keep: usize,
        storage: Arc<dyn CheckpointStorage>,
        instance: &str,
    ) -> Result<Self> {
        let manifest_name = format!("{instance}{MANIFEST_SUFFIX}");
        let mut completed = BTreeMap::new();
        for id in storage.checkpoints_with(&manifest_name)? {
            let Ok(bytes) = storage.read(id, &manifest_name) else {
                continue; // Not committed: a later discard removes its leftovers.
            };
            let location = storage.location(id, &manifest_name);
            let (manifest, _) = Manifest::decode(&bytes, &location)?;
            completed.insert(id, shared_files(&manifest));
        }
        let referenced: BTreeSet<&String> = completed.values().flatten().collect();
        for name in storage.list_shared(instance)? {
            if !referenced.contains(&name) {
                storage.discard_shared(&name)?;
            }
        }
        // Deduplication starts empty: RocksDB file names are unique only within one
        // DB's history, and this DB may not be the one that wrote those checkpoints
        // (see `restored_from`).
        Ok(Retention {
            keep,
            completed,
            previous: incremental::PreviousFiles::new(),
            storage,
            instance: instance.to_string(),
            prefix: format!("{instance}."),
        })
    }

    /// Files of the newest completed incremental checkpoint (what need not be uploaded).
    pub(crate) fn previous_files(&self) -> incremental::PreviousFiles {
        self.previous.clone()
    }

    /// Seeds deduplication with the checkpoint whose files became this DB (the base
    /// of the restore, of this same instance): those files are the DB's own.
    pub(crate) fn restored_from(&mut self, manifest: &Manifest) {
        self.previous = previous_files(manifest);
    }

    /// Records a completed checkpoint and discards what falls out of retention.
    fn completed(&mut self, checkpoint_id: u64, manifest: &Manifest) -> Vec<String> {
        let newest = self
            .completed
            .keys()
            .next_back()
            .is_none_or(|&n| checkpoint_id > n);
        self.completed.insert(checkpoint_id, shared_files(manifest));
        if newest && matches!(manifest.keyed, KeyedData::Files(_)) {
            self.previous = previous_files(manifest);
        }
        let mut warnings = Vec::new();
        // Other instances may not have finished the newer checkpoints yet: an old
        // checkpoint goes only once a newer one is complete for the whole job.
        let newest_complete = if self.completed.len() > self.keep {
            self.newest_complete().unwrap_or_else(|e| {
                warnings.push(format!(
                    "could not check which checkpoints are complete: {e}"
                ));
                None
            })
        } else {
            None
        };
        while self.completed.len() > self.keep
            && newest_complete
                .is_some_and(|c| *self.completed.keys().next().expect("non-empty") < c)
        {
            let (oldest, shared) = self.completed.pop_first().expect("non-empty");
            if let Err(e) = self.storage.discard(oldest, &self.prefix) {
                warnings.push(format!("could not delete checkpoint {oldest}: {e}"));
            }
            let referenced: BTreeSet<&String> = self.completed.values().flatten().collect();
            for name in shared.iter().filter(|n| !referenced.contains(n)) {
                if let Err(e) = self.storage.discard_shared(name) {
                    warnings.push(format!("could not delete shared file {name}: {e}"));
                }
            }
        }
        // Leftovers of attempts older than the oldest retained checkpoint.
        let oldest_kept = *self.completed.keys().next().expect("just inserted");
        match self.storage.checkpoints_with(&self.prefix) {
            Ok(ids) => {
                for id in ids.into_iter().filter(|&id| id < oldest_kept) {
                    if let Err(e) = self.storage.discard(id, &self.prefix) {
                        warnings.push(format!("could not delete checkpoint {id}: {e}"));
                    }
                }
            }
            Err(e) => warnings.push(format!("could not list old checkpoints: {e}")),
        }
        warnings
    }

    /// The newest checkpoint whose manifests cover every key group of the job.
    fn newest_complete(&self) -> Result<Option<u64>> {
        for id in self.storage.checkpoint_ids()?.into_iter().rev() {
            if complete_checkpoint(self.storage.as_ref(), id, None)?.is_some() {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Ids of the retained checkpoints, ascending.
    pub fn retained(&self) -> Vec<u64> {
        self.completed.keys().copied().collect()
    }

    /// The instance whose checkpoints this tracks.
    pub fn instance(&self) -> &str {
        &self.instance
    }
}

fn shared_files(manifest: &Manifest) -> Vec<String> {
    match &manifest.keyed {
        KeyedData::Full(_) => Vec::new(),
        KeyedData::Files(files) => files
            .files
            .iter()
            .filter_map(|f| match &f.location {
                FileLocation::Shared(n) => Some(n.clone()),
                FileLocation::Private(_) => None,
            })
            .collect(),
    }
}

fn previous_files(manifest: &Manifest) -> incremental::PreviousFiles {
    match &manifest.keyed {
        KeyedData::Full(_) => incremental::PreviousFiles::new(),
        KeyedData::Files(files) => files
            .files
            .iter()
            .filter(|f| matches!(f.location, FileLocation::Shared(_)))
            .map(|f| (f.name.clone(), f.clone()))
            .collect(),
    }
}
