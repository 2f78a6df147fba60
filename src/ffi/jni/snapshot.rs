//! Snapshots: full ones written into one Java stream (checkpoints of the Memory and
//! Fs backends, savepoints, full RocksDB checkpoints), and incremental RocksDB
//! checkpoints whose files Java stores one by one.

use super::args::{checkpoint_id as checkpoint_id_of, long_array, string_array};
use super::backend::with_backend;
use super::streams::{with_java_stream, JavaOutputStream, JavaSnapshotFilter};
use super::{lock, run, unusable, Failure, Res};
use crate::ffi::handles::{HandleKind, HandleTable};
use crate::snapshot::{IncrementalUpload, PendingSnapshot};
use ::jni::objects::{JByteArray, JClass, JLongArray, JObject, JObjectArray, JString};
use ::jni::sys::{jboolean, jlong};
use ::jni::EnvUnowned;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

static PENDING: HandleTable<Mutex<Option<PendingSnapshot>>> =
    HandleTable::new(HandleKind::JniPendingSnapshot);
static UPLOADS: HandleTable<Mutex<IncrementalUpload>> = HandleTable::new(HandleKind::JniUpload);

// ---- full snapshots into one stream --------------------------------------------------------

/// The synchronous phase: a pending snapshot's id (cheap; the view is immutable).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_snapshot<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    checkpoint_id: jlong,
) -> jlong {
    run(&mut env, |_| {
        let id = checkpoint_id_of(checkpoint_id)?;
        // Always a full snapshot: Flink's stream takes one stream (see write_to).
        let pending = with_backend(handle, |c| Ok(c.backend.savepoint(id)?))?;
        Ok(PENDING.insert(Mutex::new(Some(pending))) as jlong)
    })
}

/// `long[] snapshotWrite(long pending, OutputStream out, byte[] chunk, String name,
/// Object[] filters)`: the asynchronous phase, writing the single-stream snapshot into
/// `out` through `chunk`, values of state `i` through `filters[i]` unless it is null
/// (see `JavaSnapshotFilter`; `filters` itself may be null). Returns `[bytes written,
/// data size, kg, offset, kg, offset, …]` (key groups with data, ascending). The
/// pending snapshot is consumed.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_snapshotWrite<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    pending: jlong,
    stream: JObject<'l>,
    chunk: JByteArray<'l>,
    name: JString<'l>,
    filters: JObjectArray<'l>,
) -> JLongArray<'l> {
    run(&mut env, |env| {
        let name = name.try_to_string(env)?;
        let mut active = Vec::new();
        if !filters.is_null() {
            for i in 0..filters.len(env)? {
                let filter = filters.get_element(env, i)?;
                active.push(!filter.is_null());
                env.delete_local_ref(filter);
            }
        }
        let cell = PENDING.remove(pending as u64).ok_or(Failure::Closed(
            "the snapshot was already written or released",
        ))?;
        let snapshot = lock(&cell, "the snapshot")?
            .take()
            .ok_or(Failure::Closed("the snapshot was already written"))?;
        let env_cell = RefCell::new(env);
        let mut sink = JavaOutputStream::new(&env_cell, &stream, &chunk)?;
        let mut filter = JavaSnapshotFilter {
            env: &env_cell,
            filters: &filters,
            active,
        };
        let written = snapshot.write_filtered_to(&mut sink, &name, &mut filter);
        drop((sink, filter));
        let written = written?;
        let mut env_ref = env_cell.borrow_mut();
        let env = &mut **env_ref;
        let offsets = written.key_group_offsets();
        let mut result = Vec::with_capacity(2 + 2 * offsets.len());
        result.push(written.bytes_written as jlong);
        result.push(written.data_bytes() as jlong);
        for &(kg, offset) in offsets {
            result.push(jlong::from(kg));
            result.push(offset as jlong);
        }
        long_array(env, &result)
    })
}

/// Drops a pending snapshot that will not be written (a cancelled checkpoint).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_snapshotRelease<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    pending: jlong,
) {
    run(&mut env, |_| {
        PENDING.remove(pending as u64);
        Ok(())
    })
}

// ---- incremental snapshots whose files Java stores -----------------------------------------

/// `long snapshotIncremental(long backend, long checkpointId)`: the synchronous phase of
/// an incremental RocksDB snapshot (flushes memtables, hard-links the DB's files); the
/// id of the upload that the asynchronous phase drives with the `upload*` calls.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_snapshotIncremental<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    checkpoint_id: jlong,
) -> jlong {
    run(&mut env, |_| {
        let id = checkpoint_id_of(checkpoint_id)?;
        let upload = with_backend(handle, |c| Ok(c.backend.incremental_snapshot(id)?))?;
        Ok(UPLOADS.insert(Mutex::new(upload)) as jlong)
    })
}

fn with_upload<T>(upload: jlong, f: impl FnOnce(&mut IncrementalUpload) -> Res<T>) -> Res<T> {
    UPLOADS.with(upload as u64, f).map_err(|u| {
        unusable(
            u,
            "the incremental snapshot was already finished or released",
            "the incremental snapshot",
        )
    })?
}

/// `String[] uploadFiles(long upload, boolean shared)`: the names of the shared (SST)
/// or private files of the snapshot.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_uploadFiles<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    upload: jlong,
    shared: jboolean,
) -> JObjectArray<'l, JString<'l>> {
    run(&mut env, |env| {
        let names = with_upload(upload, |u| Ok(u.files(shared)?))?;
        string_array(env, &names)
    })
}

/// `byte[] uploadFile(long upload, String file, OutputStream out, byte[] chunk, String
/// outName)`: copies the file into `out` through `chunk`; returns the record to pass
/// to `uploadReuse` when a later snapshot refers to this copy.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_uploadFile<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    upload: jlong,
    file: JString<'l>,
    stream: JObject<'l>,
    chunk: JByteArray<'l>,
    out_name: JString<'l>,
) -> JByteArray<'l> {
    run(&mut env, |env| {
        let file = file.try_to_string(env)?;
        let out_name = out_name.try_to_string(env)?;
        let record = with_java_stream(env, &stream, &chunk, |sink| {
            with_upload(upload, |u| Ok(u.upload(&file, sink, &out_name)?))
        })?;
        Ok(env.byte_array_from_slice(&record)?)
    })
}

/// `boolean uploadReuse(long upload, byte[] record)`: refers to a shared file stored
/// for an earlier snapshot (`record` from its `uploadFile`); false if this snapshot
/// has no such file (upload it instead).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_uploadReuse<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    upload: jlong,
    record: JByteArray<'l>,
) -> jboolean {
    run(&mut env, |env| {
        let record = env.convert_byte_array(&record)?;
        with_upload(upload, |u| Ok(u.reuse(&record)?))
    })
}

/// `long[] uploadFinish(long upload, OutputStream out, byte[] chunk, String outName)`:
/// writes the meta stream once every file is stored; returns `[meta bytes, bytes of
/// all files, bytes uploaded by this snapshot]`. The upload is consumed.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_uploadFinish<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    upload: jlong,
    stream: JObject<'l>,
    chunk: JByteArray<'l>,
    out_name: JString<'l>,
) -> JLongArray<'l> {
    run(&mut env, |env| {
        let out_name = out_name.try_to_string(env)?;
        let cell = UPLOADS.remove(upload as u64).ok_or(Failure::Closed(
            "the incremental snapshot was already finished or released",
        ))?;
        let upload = Arc::into_inner(cell)
            .ok_or(Failure::Closed("the incremental snapshot is in use"))?
            .into_inner()
            .map_err(|_| Failure::Poisoned("the incremental snapshot"))?;
        let written = with_java_stream(env, &stream, &chunk, |sink| {
            Ok(upload.finish(sink, &out_name)?)
        })?;
        let result = [
            written.bytes_written as jlong,
            written.data_bytes() as jlong,
            written.uploaded_bytes() as jlong,
        ];
        long_array(env, &result)
    })
}

/// Drops an incremental snapshot that will not be finished (a cancelled checkpoint):
/// its local hard links go.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_uploadRelease<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    upload: jlong,
) {
    run(&mut env, |_| {
        UPLOADS.remove(upload as u64);
        Ok(())
    })
}
