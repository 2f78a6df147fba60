//! Java streams as the core's readers and writers: a checkpoint `OutputStream` as a
//! `Write`, a `RestoreSource` as a `SnapshotSource`, Flink's snapshot transformers
//! as a `SnapshotFilter`.

use super::args::{as_i8, as_i8_mut};
use super::{Failure, Res};
use crate::checkpoint_storage::source::SnapshotSource;
use crate::error::Error;
use crate::snapshot::{SnapshotFilter, SnapshotHandle};
use ::jni::objects::{JByteArray, JObject, JObjectArray, JString};
use ::jni::refs::Global;
use ::jni::sys::{jint, jlong};
use ::jni::vm::JavaVM;
use ::jni::{jni_sig, jni_str, Env, JValue};
use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// A `std::io::Write` into a `java.io.OutputStream`, through a reused `byte[]` chunk.
/// After a failed Java call it makes no further JNI calls (an exception is pending).
pub(super) struct JavaOutputStream<'a, 'l> {
    /// Shared with the [`JavaSnapshotFilter`] of the same write: one call at a time.
    env: &'a RefCell<&'a mut Env<'l>>,
    stream: &'a JObject<'l>,
    chunk: &'a JByteArray<'l>,
    buf: Vec<u8>,
    capacity: usize,
    failed: bool,
}

impl<'a, 'l> JavaOutputStream<'a, 'l> {
    /// A writer into `stream` through `chunk` (not empty).
    pub(super) fn new(
        env: &'a RefCell<&'a mut Env<'l>>,
        stream: &'a JObject<'l>,
        chunk: &'a JByteArray<'l>,
    ) -> Res<Self> {
        let capacity = chunk.len(&env.borrow())?;
        if capacity == 0 {
            return Err(Failure::Argument("the chunk is empty".into()));
        }
        Ok(JavaOutputStream {
            env,
            stream,
            chunk,
            buf: Vec::with_capacity(capacity),
            capacity,
            failed: false,
        })
    }

    fn push(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.failed {
            return Err(std::io::Error::other("the Java stream failed"));
        }
        let env = &mut **self.env.borrow_mut();
        let r = self.chunk.set_region(env, 0, as_i8(bytes)).and_then(|()| {
            env.call_method(
                self.stream,
                jni_str!("write"),
                jni_sig!("([BII)V"),
                &[
                    JValue::Object(self.chunk),
                    JValue::Int(0),
                    JValue::Int(bytes.len() as jint),
                ],
            )
        });
        r.map(|_| ()).map_err(|e| {
            self.failed = true;
            std::io::Error::other(format!("writing to the Java stream: {e}"))
        })
    }

    fn drain(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            let r = self.push(&buf);
            self.buf = buf;
            self.buf.clear();
            r?;
        }
        Ok(())
    }
}

impl Write for JavaOutputStream<'_, '_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.capacity {
            self.drain()?;
        }
        if data.len() >= self.capacity {
            for piece in data.chunks(self.capacity) {
                self.push(piece)?;
            }
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.drain()
    }
}

/// Flink's snapshot transformers (state TTL's `cleanupFullSnapshot`) on the values
/// written by a snapshot: `filters[state]` is an
/// `io.statebackend.internal.NativeSnapshotStrategy.ValueFilter` (`byte[] filter(byte[])`,
/// null to leave the value out) or null for states written as they are.
pub(super) struct JavaSnapshotFilter<'a, 'l> {
    pub(super) env: &'a RefCell<&'a mut Env<'l>>,
    pub(super) filters: &'a JObjectArray<'l>,
    /// Per state id: whether it has a filter.
    pub(super) active: Vec<bool>,
}

impl SnapshotFilter for JavaSnapshotFilter<'_, '_> {
    fn filters(&self, state: u32) -> bool {
        self.active.get(state as usize).copied().unwrap_or(false)
    }

    fn filter(&mut self, state: u32, value: &[u8]) -> crate::error::Result<Option<Vec<u8>>> {
        let env = &mut **self.env.borrow_mut();
        // A local frame per value: no local references pile up over millions of values.
        env.with_local_frame(4, |env| -> ::jni::errors::Result<Option<Vec<u8>>> {
            let filter = self.filters.get_element(env, state as usize)?;
            let input = env.byte_array_from_slice(value)?;
            let output = env
                .call_method(
                    &filter,
                    jni_str!("filter"),
                    jni_sig!("([B)[B"),
                    &[JValue::Object(&input)],
                )?
                .l()?;
            if output.is_null() {
                return Ok(None);
            }
            let output = env.cast_local::<JByteArray>(output)?;
            Ok(Some(env.convert_byte_array(&output)?))
        })
        .map_err(|e| Error::invalid(format!("a snapshot transformer failed: {e}")))
    }
}

/// Snapshot bytes read through a Java `io.statebackend.internal.RestoreSource`
/// (`void read(long position, int length)` fills its `byte[] chunk()`), on the thread
/// that restores.
struct JavaSource {
    vm: JavaVM,
    source: Global<JObject<'static>>,
    chunk: Global<JByteArray<'static>>,
    chunk_len: usize,
    name: String,
    len: u64,
    /// The chunk is shared: one read at a time.
    lock: Mutex<()>,
}

impl JavaSource {
    fn new(env: &mut Env<'_>, source: &JObject<'_>) -> Res<Self> {
        let len = env
            .call_method(source, jni_str!("length"), jni_sig!("()J"), &[])?
            .j()?;
        let name = env
            .call_method(
                source,
                jni_str!("name"),
                jni_sig!("()Ljava/lang/String;"),
                &[],
            )?
            .l()?;
        let name = env.cast_local::<JString>(name)?.try_to_string(env)?;
        let chunk = env
            .call_method(source, jni_str!("chunk"), jni_sig!("()[B"), &[])?
            .l()?;
        let chunk = env.new_cast_global_ref::<JByteArray>(chunk)?;
        let chunk_len = chunk.len(env)?;
        if chunk_len == 0 {
            return Err(Failure::Argument("the restore chunk is empty".into()));
        }
        Ok(JavaSource {
            vm: env.get_java_vm()?,
            source: env.new_global_ref(source)?,
            chunk,
            chunk_len,
            len: u64::try_from(len)
                .map_err(|_| Failure::Argument(format!("negative stream length {len}")))?,
            name,
            lock: Mutex::new(()),
        })
    }
}

impl SnapshotSource for JavaSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> crate::Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(Error::Corrupted {
                file: self.name.clone(),
                offset,
                reason: format!(
                    "read of {} bytes past the end ({} bytes)",
                    buf.len(),
                    self.len
                ),
            });
        }
        let _one_reader = self
            .lock
            .lock()
            .map_err(|_| Error::Closed("restore source lock poisoned".into()))?;
        self.vm
            .attach_current_thread(|env| -> ::jni::errors::Result<()> {
                let mut done = 0usize;
                while done < buf.len() {
                    let n = self.chunk_len.min(buf.len() - done);
                    env.call_method(
                        self.source.as_obj(),
                        jni_str!("read"),
                        jni_sig!("(JI)V"),
                        &[
                            JValue::Long((offset + done as u64) as jlong),
                            JValue::Int(n as jint),
                        ],
                    )?;
                    self.chunk
                        .get_region(env, 0, as_i8_mut(&mut buf[done..done + n]))?;
                    done += n;
                }
                Ok(())
            })
            .map_err(|e| Error::Io {
                path: self.name.clone().into(),
                source: std::io::Error::other(format!("reading at offset {offset}: {e}")),
            })
    }
}

/// The snapshot a `RestoreSource` stands for: a single-stream snapshot, or the meta
/// stream of an incremental one whose `files()` (each named by `fileName()`) are the
/// stored RocksDB files.
pub(super) fn restore_handle(env: &mut Env<'_>, source: &JObject<'_>) -> Res<SnapshotHandle> {
    let meta = Arc::new(JavaSource::new(env, source)?);
    let files = env
        .call_method(
            source,
            jni_str!("files"),
            jni_sig!("()[Lio/statebackend/internal/RestoreSource;"),
            &[],
        )?
        .l()?;
    if files.is_null() {
        return Ok(SnapshotHandle::Stream(meta));
    }
    let files = env.cast_local::<JObjectArray>(files)?;
    let mut by_name = std::collections::BTreeMap::new();
    for i in 0..files.len(env)? {
        let (name, file) = env.with_local_frame(8, |env| -> Res<(String, JavaSource)> {
            let file = files.get_element(env, i)?;
            let name = env
                .call_method(
                    &file,
                    jni_str!("fileName"),
                    jni_sig!("()Ljava/lang/String;"),
                    &[],
                )?
                .l()?;
            let name = env.cast_local::<JString>(name)?.try_to_string(env)?;
            Ok((name, JavaSource::new(env, &file)?))
        })?;
        let file: Arc<dyn SnapshotSource> = Arc::new(file);
        if by_name.insert(name.clone(), file).is_some() {
            return Err(Failure::Argument(format!(
                "file {name} is handed over twice for one snapshot"
            )));
        }
    }
    Ok(SnapshotHandle::Files {
        meta,
        files: by_name,
    })
}

/// Runs `f` with a writer into the Java `OutputStream` `stream` through `chunk`,
/// flushed at the end.
pub(super) fn with_java_stream<'l, T>(
    env: &mut Env<'l>,
    stream: &JObject<'l>,
    chunk: &JByteArray<'l>,
    f: impl FnOnce(&mut dyn Write) -> Res<T>,
) -> Res<T> {
    let env_cell = RefCell::new(env);
    let mut sink = JavaOutputStream::new(&env_cell, stream, chunk)?;
    let result = f(&mut sink)?;
    sink.flush()
        .map_err(|e| Failure::Core(Error::io("the Java stream", e)))?;
    Ok(result)
}
