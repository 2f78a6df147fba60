//! Backend handles: configuration, open/restore, close, registered states.

use super::*;
use crate::config::{Config, DEFAULT_MAX_PARALLELISM, DEFAULT_MAX_STATE_SIZE};
use crate::ffi::handles::{HandleKind, HandleTable, Unusable};
use crate::{BackendKind, KeyGroupRange, SnapshotHandle, StateBackend};
use std::cell::Cell;
use std::sync::Mutex;

/// An open backend instance. Thread-safe: calls from several threads on one backend
/// are serialized by a lock inside the library. Close it with `sb_backend_close`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sb_backend {
    pub id: u64,
}

/// What one backend owns, behind its lock.
pub(crate) struct BackendCell {
    pub(crate) backend: StateBackend,
    /// Reused output buffer of the get calls (no allocation per call).
    pub(crate) scratch: Vec<u8>,
}

pub(crate) static BACKENDS: HandleTable<Mutex<BackendCell>> =
    HandleTable::new(HandleKind::CBackend);

thread_local! {
    /// The backend whose lock this thread holds while it runs a caller's callback.
    static IN_CALLBACK: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` with the backend locked. A closed handle, a poisoned backend, and a
/// call from a callback into the backend that runs it are errors.
pub(crate) fn with_backend<R>(
    b: sb_backend,
    f: impl FnOnce(&mut BackendCell) -> Result<R, Fail>,
) -> Result<R, Fail> {
    if b.id == 0 {
        return Err(Fail::new(SB_INVALID_HANDLE, "the backend handle is zero"));
    }
    if IN_CALLBACK.get() == b.id {
        return Err(Fail::new(
            SB_INVALID_ARGUMENT,
            "a callback must not call into the backend that is running it",
        ));
    }
    BACKENDS.with(b.id, f).map_err(|u| match u {
        Unusable::Closed => Fail::new(
            SB_INVALID_HANDLE,
            "the backend handle is closed or was never opened",
        ),
        Unusable::Poisoned => Fail::new(
            SB_POISONED,
            "an earlier call panicked while using this backend; close it",
        ),
    })?
}

/// Marks the current thread as running a callback for backend `id` until dropped.
pub(crate) struct CallbackScope(u64);

impl CallbackScope {
    pub(crate) fn enter(id: u64) -> CallbackScope {
        CallbackScope(IN_CALLBACK.replace(id))
    }
}

impl Drop for CallbackScope {
    fn drop(&mut self) {
        IN_CALLBACK.set(self.0);
    }
}

/// A structured configuration. Initialize it with `sb_config_default`, then change
/// fields. The strings are borrowed during the open call only.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sb_config {
    /// One of `sb_backend_kind`.
    pub backend: u32,
    /// Where snapshots go, `file:///abs/path` (or an absolute path),
    /// `s3://bucket/prefix` or `hdfs://name-node:port/path`; required by the fs and
    /// rocksdb backends. S3 is reached with the AWS environment variables
    /// (`sb_backend_open_pairs` also takes `s3.*` keys). NUL-terminated UTF-8, or null.
    pub checkpoint_url: *const c_char,
    /// Local working directory (RocksDB files); null: the system temp directory.
    pub local_dir: *const c_char,
    /// Number of key groups of the job (default 128).
    pub max_parallelism: u32,
    /// This instance is subtask `subtask_index` of `parallelism` (default 0 of 1):
    /// it owns Flink's key-group range for that index and its share of operator
    /// state on restore.
    pub subtask_index: u32,
    pub parallelism: u32,
    /// If true, the instance owns `key_group_start..=key_group_end` instead of the
    /// range derived from the subtask.
    pub use_key_group_range: bool,
    pub key_group_start: u32,
    pub key_group_end: u32,
    /// Memory backend: maximum serialized size of one state in a snapshot (default
    /// 5 MiB).
    pub max_state_size: u64,
    /// Completed checkpoints kept under the checkpoint directory (default 1).
    pub retained_checkpoints: u32,
    /// RocksDB: incremental checkpoints (default false).
    pub incremental: bool,
}

/// Where a restore starts from: one snapshot of one old instance.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sb_snapshot_source {
    /// One of `sb_snapshot_kind`.
    pub kind: u32,
    /// `SB_SNAPSHOT_INLINE`: the snapshot bytes. `SB_SNAPSHOT_MANIFEST`: the UTF-8
    /// path, `file://` or `s3://` URL of a manifest (no NUL needed).
    pub data: sb_slice,
}

/// Facts about an open backend.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sb_backend_info {
    /// One of `sb_backend_kind`.
    pub backend: u32,
    pub max_parallelism: u32,
    /// The owned key-group range, inclusive.
    pub key_group_start: u32,
    pub key_group_end: u32,
    /// Number of registered (or restored) keyed states; their ids are 0..num_states.
    pub num_states: u32,
}

/// Fills `*config` with the defaults: memory backend, no URL, max parallelism 128,
/// subtask 0 of 1 (all key groups), 5 MiB max state size, 1 retained checkpoint,
/// not incremental.
#[no_mangle]
pub unsafe extern "C" fn sb_config_default(config: *mut sb_config) -> sb_status {
    ffi_boundary!("sb_config_default", {
        put(
            config,
            sb_config {
                backend: SB_BACKEND_MEMORY as u32,
                checkpoint_url: std::ptr::null(),
                local_dir: std::ptr::null(),
                max_parallelism: DEFAULT_MAX_PARALLELISM,
                subtask_index: 0,
                parallelism: 1,
                use_key_group_range: false,
                key_group_start: 0,
                key_group_end: DEFAULT_MAX_PARALLELISM - 1,
                max_state_size: DEFAULT_MAX_STATE_SIZE,
                retained_checkpoints: 1,
                incremental: false,
            },
            "config",
        )?;
        Ok(SB_OK)
    })
}

unsafe fn convert_config(c: &sb_config) -> Result<Config, Fail> {
    let url = opt_string(c.checkpoint_url, "config.checkpoint_url")?;
    let kind = sb_backend_kind::from_u32(c.backend).ok_or_else(|| {
        Fail::new(
            SB_INVALID_ARGUMENT,
            format!("config.backend: unknown backend kind {}", c.backend),
        )
    })?;
    let mut config = match (BackendKind::from(kind), url) {
        (BackendKind::Memory, url) => {
            let mut config = Config::memory();
            if let Some(url) = url {
                config.checkpoint_dir = Config::fs(url)?.checkpoint_dir;
            }
            config
        }
        (BackendKind::Fs, Some(url)) => Config::fs(url)?,
        (BackendKind::RocksDb, Some(url)) => Config::rocksdb(url)?,
        (BackendKind::Fs | BackendKind::RocksDb, None) => {
            return Err(Fail::new(
                SB_CONFIG_ERROR,
                "config.checkpoint_url is required by the fs and rocksdb backends",
            ))
        }
    };
    config = config
        .with_max_parallelism(c.max_parallelism)?
        .with_subtask(c.subtask_index, c.parallelism)?;
    if c.use_key_group_range {
        config =
            config.with_key_group_range(KeyGroupRange::new(c.key_group_start, c.key_group_end)?);
    }
    if let Some(dir) = opt_string(c.local_dir, "config.local_dir")? {
        config = config.with_local_dir(dir);
    }
    Ok(config
        .with_max_state_size(c.max_state_size)
        .with_retained_checkpoints(c.retained_checkpoints as usize)
        .with_incremental(c.incremental))
}

unsafe fn convert_sources(
    sources: *const sb_snapshot_source,
    n: usize,
    remote: &crate::RemoteOptions,
) -> Result<Vec<SnapshotHandle>, Fail> {
    if n == 0 {
        return Ok(Vec::new());
    }
    non_null(sources, "sources")?;
    if n > isize::MAX as usize / std::mem::size_of::<sb_snapshot_source>() {
        return Err(Fail::new(
            SB_INVALID_ARGUMENT,
            format!("{n} sources is impossible"),
        ));
    }
    std::slice::from_raw_parts(sources, n)
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let data = bytes(s.data, &format!("sources[{i}].data"))?;
            match sb_snapshot_kind::from_u32(s.kind) {
                Some(SB_SNAPSHOT_INLINE) => Ok(SnapshotHandle::inline(data)),
                Some(SB_SNAPSHOT_MANIFEST) => {
                    let path = std::str::from_utf8(data).map_err(|e| {
                        Fail::new(
                            SB_INVALID_ARGUMENT,
                            format!("sources[{i}]: the manifest path is not UTF-8: {e}"),
                        )
                    })?;
                    Ok(SnapshotHandle::manifest_with(path, remote)?)
                }
                None => Err(Fail::new(
                    SB_INVALID_ARGUMENT,
                    format!("sources[{i}].kind: unknown snapshot kind {}", s.kind),
                )),
            }
        })
        .collect()
}

pub(crate) unsafe fn open(
    config: Config,
    sources: *const sb_snapshot_source,
    n_sources: usize,
    out: *mut sb_backend,
) -> Outcome {
    non_null(out, "out")?;
    let handles = convert_sources(sources, n_sources, &config.remote)?;
    let backend = StateBackend::restore(config, &handles)?;
    let id = BACKENDS.insert(Mutex::new(BackendCell {
        backend,
        scratch: Vec::new(),
    }));
    out.write(sb_backend { id });
    Ok(SB_OK)
}

/// Opens a backend from a structured configuration and, if `n_sources > 0`,
/// restores it from the snapshots of any number of old instances (inline bytes or
/// manifests), keeping only the key groups it owns (rescaling).
///
/// `sources` is borrowed during the call. On success `*out` is a new handle the
/// caller closes with `sb_backend_close`; on failure `*out` is unchanged.
#[no_mangle]
pub unsafe extern "C" fn sb_backend_open(
    config: *const sb_config,
    sources: *const sb_snapshot_source,
    n_sources: usize,
    out: *mut sb_backend,
) -> sb_status {
    ffi_boundary!("sb_backend_open", {
        non_null(config, "config")?;
        let config = convert_config(&*config)?;
        open(config, sources, n_sources, out)
    })
}

/// Like `sb_backend_open`, with a configuration from Flink-style key/value pairs
/// (`keys[i]` = `values[i]`, NUL-terminated UTF-8, borrowed during the call), e.g.
/// `state.backend.type` = `filesystem`, `state.checkpoints.dir` = `file:///ckpt`
/// or `s3://bucket/ckpt` with `s3.endpoint`, `s3.region`, `s3.access-key`,
/// `s3.secret-key`, `s3.path.style.access` (unset ones: the AWS environment variables).
/// Unknown keys are ignored except under `state.backend.native.`.
#[no_mangle]
pub unsafe extern "C" fn sb_backend_open_pairs(
    keys: *const *const c_char,
    values: *const *const c_char,
    n_pairs: usize,
    sources: *const sb_snapshot_source,
    n_sources: usize,
    out: *mut sb_backend,
) -> sb_status {
    ffi_boundary!("sb_backend_open_pairs", {
        let config = super::memory::config_from_pairs(keys, values, n_pairs)?;
        open(config, sources, n_sources, out)
    })
}

/// Like `sb_backend_open`, with the configuration read from a flink-conf.yaml-style
/// file (`key: value` lines, `#` comments) at `path` (NUL-terminated UTF-8).
#[no_mangle]
pub unsafe extern "C" fn sb_backend_open_conf_file(
    path: *const c_char,
    sources: *const sb_snapshot_source,
    n_sources: usize,
    out: *mut sb_backend,
) -> sb_status {
    ffi_boundary!("sb_backend_open_conf_file", {
        let path = string(path, "path")?;
        let config = Config::from_yaml_file(path)?;
        open(config, sources, n_sources, out)
    })
}

/// Closes a backend; the handle becomes invalid at once (calls running on other
/// threads finish first). Iterators of this backend then fail with
/// `SB_INVALID_HANDLE` and must still be freed. Pending and completed snapshots
/// stay usable. The zero handle is a no-op; a second close is `SB_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn sb_backend_close(backend: sb_backend) -> sb_status {
    ffi_boundary!("sb_backend_close", {
        if backend.id == 0 {
            return Ok(SB_OK);
        }
        match BACKENDS.remove(backend.id) {
            Some(_) => Ok(SB_OK),
            None => Err(Fail::new(
                SB_INVALID_HANDLE,
                "the backend handle is already closed or was never opened",
            )),
        }
    })
}

/// Facts about a backend: its kind, max parallelism, key-group range, state count.
#[no_mangle]
pub unsafe extern "C" fn sb_backend_get_info(
    backend: sb_backend,
    out: *mut sb_backend_info,
) -> sb_status {
    ffi_boundary!("sb_backend_get_info", {
        non_null(out, "out")?;
        let info = with_backend(backend, |c| {
            let b = &c.backend;
            Ok(sb_backend_info {
                backend: sb_backend_kind::from(b.config().backend) as u32,
                max_parallelism: b.max_parallelism(),
                key_group_start: b.key_group_range().start(),
                key_group_end: b.key_group_range().end(),
                num_states: b.states().len() as u32,
            })
        })?;
        out.write(info);
        Ok(SB_OK)
    })
}

/// Whether a backend handle is live (not closed); `*out` = true or false.
#[no_mangle]
pub unsafe extern "C" fn sb_backend_is_open(backend: sb_backend, out: *mut bool) -> sb_status {
    ffi_boundary!("sb_backend_is_open", {
        put(out, BACKENDS.contains(backend.id), "out")?;
        Ok(SB_OK)
    })
}

// ---- keyed states ------------------------------------------------------------------------

/// Registers a keyed state by `name` (NUL-terminated UTF-8) and `kind`
/// (`sb_state_kind`) with opaque `metadata` (e.g. serializer snapshots), or returns
/// the id of the known state of that name, replacing its metadata. A known name with
/// another kind is `SB_STATE_ERROR`. `*state_id` is used by every state access.
#[no_mangle]
pub unsafe extern "C" fn sb_register_state(
    backend: sb_backend,
    name: *const c_char,
    kind: u32,
    metadata: sb_slice,
    state_id: *mut u32,
) -> sb_status {
    ffi_boundary!("sb_register_state", {
        non_null(state_id, "state_id")?;
        let name = string(name, "name")?;
        let kind = state_kind(kind)?;
        let metadata = bytes(metadata, "metadata")?;
        let id = with_backend(backend, |c| {
            Ok(c.backend.register_state(name, kind, metadata)?)
        })?;
        state_id.write(id);
        Ok(SB_OK)
    })
}

/// Looks a state up by name (restored states are known before they are registered
/// again): its id and kind. `SB_NOT_FOUND` if there is none; `kind` may be null.
#[no_mangle]
pub unsafe extern "C" fn sb_state_find(
    backend: sb_backend,
    name: *const c_char,
    state_id: *mut u32,
    kind: *mut u32,
) -> sb_status {
    ffi_boundary!("sb_state_find", {
        non_null(state_id, "state_id")?;
        let name = string(name, "name")?;
        let found = with_backend(backend, |c| {
            Ok(c.backend
                .state(name)
                .map(|s| (s.id, sb_state_kind::from(s.kind) as u32)))
        })?;
        let Some((id, k)) = found else {
            return not_found();
        };
        state_id.write(id);
        if !kind.is_null() {
            kind.write(k);
        }
        Ok(SB_OK)
    })
}

/// Copies a state's name (NUL-terminated) into `buf` with the required-size
/// protocol (`*len` includes the NUL). Unknown id: `SB_STATE_ERROR`.
#[no_mangle]
pub unsafe extern "C" fn sb_state_name(
    backend: sb_backend,
    state_id: u32,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> sb_status {
    ffi_boundary!("sb_state_name", {
        with_backend(backend, |c| {
            let info = state_info(&c.backend, state_id)?;
            copy_out_str(info.name.as_bytes(), buf, cap, len, "the state name")
        })
    })
}

/// A state's kind (`sb_state_kind`). Unknown id: `SB_STATE_ERROR`.
#[no_mangle]
pub unsafe extern "C" fn sb_state_kind_of(
    backend: sb_backend,
    state_id: u32,
    kind: *mut u32,
) -> sb_status {
    ffi_boundary!("sb_state_kind_of", {
        non_null(kind, "kind")?;
        let k = with_backend(backend, |c| {
            Ok(sb_state_kind::from(state_info(&c.backend, state_id)?.kind) as u32)
        })?;
        kind.write(k);
        Ok(SB_OK)
    })
}

/// Copies a state's metadata into `buf` with the required-size protocol.
#[no_mangle]
pub unsafe extern "C" fn sb_state_metadata(
    backend: sb_backend,
    state_id: u32,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> sb_status {
    ffi_boundary!("sb_state_metadata", {
        with_backend(backend, |c| {
            let info = state_info(&c.backend, state_id)?;
            copy_out(&info.metadata, buf, cap, len, "the metadata")
        })
    })
}

fn state_info(b: &StateBackend, id: u32) -> Result<&crate::StateInfo, Fail> {
    b.states()
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| Fail::new(SB_STATE_ERROR, format!("no state with id {id}")))
}
