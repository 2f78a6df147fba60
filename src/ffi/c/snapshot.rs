//! Snapshots: the synchronous phase (`sb_snapshot_sync`), the asynchronous phase
//! (`sb_snapshot_write`, any thread), the result, retention and the latest
//! checkpoint.

use super::backend::with_backend;
use super::*;
use crate::ffi::handles::{HandleKind, HandleTable};
use crate::{CompletedSnapshot, PendingSnapshot, SnapshotHandle};
use std::sync::Mutex;

/// A snapshot between its two phases: it owns a consistent view of the backend's
/// state. Complete it with `sb_snapshot_write` (on any thread, while the backend
/// keeps working) or discard it with `sb_pending_snapshot_free`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sb_pending_snapshot {
    pub id: u64,
}

/// A completed snapshot: what to restore from, and facts about it. Immutable and
/// usable from any thread; free it with `sb_snapshot_free`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sb_snapshot {
    pub id: u64,
}

static PENDING: HandleTable<Mutex<Option<PendingSnapshot>>> =
    HandleTable::new(HandleKind::CPendingSnapshot);
static COMPLETED: HandleTable<CompletedSnapshot> = HandleTable::new(HandleKind::CSnapshot);

fn completed(snapshot: sb_snapshot) -> Result<std::sync::Arc<CompletedSnapshot>, Fail> {
    COMPLETED.get(snapshot.id).ok_or_else(|| {
        Fail::new(
            SB_INVALID_HANDLE,
            "the snapshot handle is freed or was never created",
        )
    })
}

/// The path or URL of a manifest snapshot, borrowed from the handle.
fn manifest_path(snapshot: &CompletedSnapshot) -> Option<&[u8]> {
    snapshot.handle.manifest_location().map(str::as_bytes)
}

/// The synchronous snapshot phase for checkpoint `checkpoint_id`: captures a
/// consistent view in time independent of the state's size. `*out` is a new
/// pending snapshot handle.
#[no_mangle]
pub unsafe extern "C" fn sb_snapshot_sync(
    backend: sb_backend,
    checkpoint_id: u64,
    out: *mut sb_pending_snapshot,
) -> sb_status {
    ffi_boundary!("sb_snapshot_sync", {
        non_null(out, "out")?;
        let pending = with_backend(backend, |c| Ok(c.backend.snapshot(checkpoint_id)?))?;
        out.write(sb_pending_snapshot {
            id: PENDING.insert(Mutex::new(Some(pending))),
        });
        Ok(SB_OK)
    })
}

/// The asynchronous snapshot phase: writes the pending snapshot (inline bytes for
/// the memory backend; data and manifest files for the others). Callable from any
/// thread while the backend keeps working, even after the backend was closed. The
/// pending handle is consumed whatever the result; on success `*out` is a new
/// completed snapshot handle. The checkpoint exists only once this returns `SB_OK`.
#[no_mangle]
pub unsafe extern "C" fn sb_snapshot_write(
    pending: sb_pending_snapshot,
    out: *mut sb_snapshot,
) -> sb_status {
    ffi_boundary!("sb_snapshot_write", {
        non_null(out, "out")?;
        let cell = PENDING.remove(pending.id).ok_or_else(|| {
            Fail::new(
                SB_INVALID_HANDLE,
                "the pending snapshot handle is already written, freed or was never created",
            )
        })?;
        let taken = cell.lock().ok().and_then(|mut p| p.take());
        let pending = taken.ok_or_else(|| {
            Fail::new(
                SB_INVALID_HANDLE,
                "the pending snapshot is already consumed",
            )
        })?;
        let snapshot = pending.write()?;
        out.write(sb_snapshot {
            id: COMPLETED.insert(snapshot),
        });
        Ok(SB_OK)
    })
}

/// Discards a pending snapshot without writing it (zero: no-op; a consumed or freed
/// handle: `SB_INVALID_HANDLE`).
#[no_mangle]
pub extern "C" fn sb_pending_snapshot_free(pending: sb_pending_snapshot) -> sb_status {
    ffi_boundary!("sb_pending_snapshot_free", {
        if pending.id == 0 {
            return Ok(SB_OK);
        }
        match PENDING.remove(pending.id) {
            Some(_) => Ok(SB_OK),
            None => Err(Fail::new(
                SB_INVALID_HANDLE,
                "the pending snapshot handle is already written, freed or was never created",
            )),
        }
    })
}

/// Both snapshot phases on the calling thread: `*out` is a new completed snapshot.
#[no_mangle]
pub unsafe extern "C" fn sb_checkpoint(
    backend: sb_backend,
    checkpoint_id: u64,
    out: *mut sb_snapshot,
) -> sb_status {
    ffi_boundary!("sb_checkpoint", {
        non_null(out, "out")?;
        let pending = with_backend(backend, |c| Ok(c.backend.snapshot(checkpoint_id)?))?;
        let snapshot = pending.write()?;
        out.write(sb_snapshot {
            id: COMPLETED.insert(snapshot),
        });
        Ok(SB_OK)
    })
}

/// Facts about a completed snapshot.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sb_snapshot_info {
    pub checkpoint_id: u64,
    /// One of `sb_snapshot_kind`.
    pub kind: u32,
    /// Bytes written (data and manifest; for inline snapshots, the bytes' length).
    pub bytes_written: u64,
    /// Problems deleting old checkpoints; the snapshot itself succeeded.
    pub retention_warnings: u32,
}

/// Facts about a completed snapshot: checkpoint id, kind, bytes written.
#[no_mangle]
pub unsafe extern "C" fn sb_snapshot_get_info(
    snapshot: sb_snapshot,
    out: *mut sb_snapshot_info,
) -> sb_status {
    ffi_boundary!("sb_snapshot_get_info", {
        non_null(out, "out")?;
        let s = completed(snapshot)?;
        out.write(sb_snapshot_info {
            checkpoint_id: s.checkpoint_id,
            kind: if manifest_path(&s).is_some() {
                SB_SNAPSHOT_MANIFEST
            } else {
                SB_SNAPSHOT_INLINE
            } as u32,
            bytes_written: s.bytes_written,
            retention_warnings: s.retention_warnings.len() as u32,
        });
        Ok(SB_OK)
    })
}

/// Copies the bytes of an inline snapshot (memory backend) into `buf` with the
/// required-size protocol. A manifest snapshot: `SB_INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn sb_snapshot_bytes(
    snapshot: sb_snapshot,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> sb_status {
    ffi_boundary!("sb_snapshot_bytes", {
        let s = completed(snapshot)?;
        let bytes = s.handle.as_bytes().ok_or_else(|| {
            Fail::new(
                SB_INVALID_ARGUMENT,
                "this snapshot is a manifest, not inline bytes (use sb_snapshot_manifest_path)",
            )
        })?;
        copy_out(bytes, buf, cap, len, "the snapshot")
    })
}

/// Copies the manifest path (or `s3://`/`hdfs://` URL) of a snapshot of the fs or
/// rocksdb backend, NUL-terminated, into
/// `buf` with the required-size protocol (`*len` includes the NUL). An inline
/// snapshot: `SB_INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn sb_snapshot_manifest_path(
    snapshot: sb_snapshot,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> sb_status {
    ffi_boundary!("sb_snapshot_manifest_path", {
        let s = completed(snapshot)?;
        let path = manifest_path(&s).ok_or_else(|| {
            Fail::new(
                SB_INVALID_ARGUMENT,
                "this snapshot is inline bytes, not a manifest (use sb_snapshot_bytes)",
            )
        })?;
        copy_out_str(path, buf, cap, len, "the manifest path")
    })
}

/// A restore source for this snapshot, borrowing its bytes or path: valid until
/// `sb_snapshot_free(snapshot)`. Pass it to `sb_backend_open`.
#[no_mangle]
pub unsafe extern "C" fn sb_snapshot_as_source(
    snapshot: sb_snapshot,
    out: *mut sb_snapshot_source,
) -> sb_status {
    ffi_boundary!("sb_snapshot_as_source", {
        non_null(out, "out")?;
        let s = completed(snapshot)?;
        // The table keeps the snapshot alive until sb_snapshot_free, so the borrowed
        // pointers outlive this call.
        let source = match (&s.handle, manifest_path(&s)) {
            (_, Some(path)) => sb_snapshot_source {
                kind: SB_SNAPSHOT_MANIFEST as u32,
                data: sb_slice::of(path),
            },
            (h, None) => sb_snapshot_source {
                kind: SB_SNAPSHOT_INLINE as u32,
                data: sb_slice::of(h.as_bytes().unwrap_or_default()),
            },
        };
        out.write(source);
        Ok(SB_OK)
    })
}

/// Frees a completed snapshot handle (not the checkpoint files). Zero: no-op;
/// twice: `SB_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn sb_snapshot_free(snapshot: sb_snapshot) -> sb_status {
    ffi_boundary!("sb_snapshot_free", {
        if snapshot.id == 0 {
            return Ok(SB_OK);
        }
        match COMPLETED.remove(snapshot.id) {
            Some(_) => Ok(SB_OK),
            None => Err(Fail::new(
                SB_INVALID_HANDLE,
                "the snapshot handle is already freed or was never created",
            )),
        }
    })
}

/// Copies the ids of the checkpoints kept under the backend's checkpoint directory
/// (ascending; none for the memory backend) into `ids` (room for `cap` ids) with the
/// required-size protocol: `*count` is the number of ids.
#[no_mangle]
pub unsafe extern "C" fn sb_retained_checkpoints(
    backend: sb_backend,
    ids: *mut u64,
    cap: usize,
    count: *mut usize,
) -> sb_status {
    ffi_boundary!("sb_retained_checkpoints", {
        non_null(count, "count")?;
        let retained = with_backend(backend, |c| Ok(c.backend.retained_checkpoints()))?;
        count.write(retained.len());
        if retained.len() > cap {
            return Err(Fail::new(
                SB_BUFFER_TOO_SMALL,
                format!("{} checkpoint ids, room for {cap}", retained.len()),
            ));
        }
        if !retained.is_empty() {
            non_null(ids, "ids")?;
            std::ptr::copy_nonoverlapping(retained.as_ptr(), ids, retained.len());
        }
        Ok(SB_OK)
    })
}

/// Finds the newest complete checkpoint under a checkpoint directory `url`
/// (`file:///…`, an absolute path, `s3://bucket/prefix` or `hdfs://…`; S3 is reached
/// with the AWS environment variables) — the newest whose manifests cover every key
/// group of the job, so a checkpoint that some instance did not finish is skipped —
/// and copies the paths (URLs for remote storage) of its manifests (one per instance
/// that wrote it) into `buf`, each NUL-terminated, one after the other, with the
/// required-size protocol. `*count` is the number of manifests; 0 (and
/// `SB_NOT_FOUND`) if there is no complete checkpoint.
#[no_mangle]
pub unsafe extern "C" fn sb_latest_checkpoint(
    url: *const c_char,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
    count: *mut usize,
) -> sb_status {
    ffi_boundary!("sb_latest_checkpoint", {
        non_null(len, "len")?;
        non_null(count, "count")?;
        let url = string(url, "url")?;
        let handles = SnapshotHandle::latest(url)?;
        let mut joined = Vec::new();
        for location in handles.iter().filter_map(SnapshotHandle::manifest_location) {
            joined.extend_from_slice(location.as_bytes());
            joined.push(0);
        }
        count.write(handles.len());
        if handles.is_empty() {
            len.write(0);
            return not_found();
        }
        // `joined` already ends with a NUL; copy_out_str would add another.
        joined.pop();
        copy_out_str(&joined, buf, cap, len, "the manifest paths")
    })
}
