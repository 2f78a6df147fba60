//! The JNI bridge under the Flink classes in `java/` (`io.statebackend.internal.NativeBridge`).
//!
//! Like the C ABI, this layer only converts and guards: every native method runs inside
//! [`EnvUnowned::with_env`] (which catches panics) and resolves through `ThrowJava`,
//! which turns a core error into a Java exception carrying the core's message:
//! `IllegalArgumentException` for misuse, `IllegalStateException` for a closed handle,
//! `io.statebackend.StateBackendException` for everything else. A Java exception raised
//! by a callback (a checkpoint stream's `write`, a restore stream's `read`) stays the
//! exception Java sees.
//!
//! Backends, key iterators and pending snapshots are `long` ids from generation-checked
//! handle tables (`super::handles`): a closed or forged id fails to resolve.
//!
//! Hot path: one call per state access, no Java allocation, no JNI call back into the
//! JVM. Each Java thread's accessor registers a pair of direct `ByteBuffer`s once
//! (`bind`, again after it grew one): the backend keeps their addresses and a global
//! reference to each, and Java passes the pair's channel id and plain ints. Java
//! writes the fields of an access one after another into the input buffer (`key ‖
//! namespace ‖ user key ‖ value`, as the call needs) and passes their lengths. Results
//! go into the output buffer; calls return the result's length, [`ABSENT`] when there
//! is none, or `-(needed) - 2` when the output buffer is too small (Java grows it and
//! calls again). These calls enter the `jni` crate's environment wrapper only to throw
//! (see `access`).

use super::handles::{HandleTable, LockedTable, Unusable};
use crate::backend::StateBackend;
use crate::codec::ListElements;
use crate::config::{BackendKind, Config};
use crate::error::Error;
use crate::iter::{EntriesIter, Entry, EntryValue, KeyEntry, KeysIter};
use crate::keygroup::KeyGroupRange;
use crate::snapshot::manifest::KeyedData;
use crate::snapshot::IncrementalUpload;
use crate::snapshot::{PendingSnapshot, SnapshotFilter, SnapshotHandle};
use crate::state::{StateId, StateKind};
use crate::storage::source::SnapshotSource;
use ::jni::errors::ErrorPolicy;
use ::jni::objects::{JByteArray, JByteBuffer, JClass, JLongArray, JObject, JObjectArray, JString};
use ::jni::refs::Global;
use ::jni::sys::{jboolean, jint, jlong};
use ::jni::vm::JavaVM;
use ::jni::{jni_sig, jni_str, Env, EnvUnowned, JValue};
use std::cell::RefCell;
use std::io::Write;
use std::iter::Peekable;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};

/// Returned by reads when there is no entry.
pub const ABSENT: jint = -1;

// ---- errors ----------------------------------------------------------------------

/// Why a native method failed.
#[derive(Debug)]
enum Failure {
    Core(Error),
    Jni(::jni::errors::Error),
    Closed(&'static str),
    Argument(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Core(e) => write!(f, "{e}"),
            Failure::Jni(e) => write!(f, "JNI: {e}"),
            Failure::Closed(what) => write!(f, "{what}"),
            Failure::Argument(msg) => write!(f, "invalid argument: {msg}"),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Core(e)
    }
}

impl From<::jni::errors::Error> for Failure {
    fn from(e: ::jni::errors::Error) -> Self {
        Failure::Jni(e)
    }
}

const ILLEGAL_ARGUMENT: &str = "java/lang/IllegalArgumentException";
const ILLEGAL_STATE: &str = "java/lang/IllegalStateException";
const BACKEND_EXCEPTION: &str = "io/statebackend/StateBackendException";

impl Failure {
    fn exception_class(&self) -> &'static str {
        match self {
            Failure::Core(
                Error::InvalidArgument(_)
                | Error::Config { .. }
                | Error::State(_)
                | Error::KeyGroupOutOfRange { .. },
            )
            | Failure::Argument(_) => ILLEGAL_ARGUMENT,
            Failure::Core(Error::Closed(_)) | Failure::Closed(_) => ILLEGAL_STATE,
            _ => BACKEND_EXCEPTION,
        }
    }
}

/// Throws the Java exception for a failure or a panic, unless one is already pending
/// (a Java callback threw: that exception is the one to see).
struct ThrowJava;

fn throw(env: &mut Env<'_>, class: &str, msg: String) -> ::jni::errors::Result<()> {
    if env.exception_check() {
        return Ok(());
    }
    env.throw_new(
        ::jni::strings::JNIString::new(class),
        ::jni::strings::JNIString::new(msg),
    )
}

impl<T: Default> ErrorPolicy<T, Failure> for ThrowJava {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = ();

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _captures: &mut (),
        err: Failure,
    ) -> ::jni::errors::Result<T> {
        throw(env, err.exception_class(), err.to_string())?;
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _captures: &mut (),
        payload: Box<dyn std::any::Any + Send + 'static>,
    ) -> ::jni::errors::Result<T> {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        throw(env, BACKEND_EXCEPTION, format!("native panic: {msg}"))?;
        Ok(T::default())
    }
}

type Res<T> = Result<T, Failure>;

/// Runs one native method body: panics are caught, failures thrown as Java exceptions.
fn run<'l, T: Default>(env: &mut EnvUnowned<'l>, body: impl FnOnce(&mut Env<'l>) -> Res<T>) -> T {
    env.with_env(body).resolve::<ThrowJava>()
}

/// Runs the body of a state access, which needs no JNI environment: as [`run`], but
/// the `jni` crate's wrapper (thread-attachment bookkeeping and exception checks,
/// about 55 ns a call, against 7 ns for the bare JNI transition) is only entered to
/// throw.
#[inline(always)]
fn access<'l, T: Default>(env: &mut EnvUnowned<'l>, body: impl FnOnce() -> Res<T>) -> T {
    match std::panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v,
        Ok(Err(failure)) => throw_failure(env, failure),
        Err(payload) => throw_panic(env, payload),
    }
}

#[cold]
#[inline(never)]
fn throw_failure<'l, T: Default>(env: &mut EnvUnowned<'l>, failure: Failure) -> T {
    run(env, |_| Err(failure))
}

#[cold]
#[inline(never)]
fn throw_panic<'l, T: Default>(
    env: &mut EnvUnowned<'l>,
    payload: Box<dyn std::any::Any + Send + 'static>,
) -> T {
    // Re-raised inside `run`, whose policy turns it into the Java exception.
    run(env, |_| std::panic::resume_unwind(payload))
}

// ---- handles -----------------------------------------------------------------------

/// One backend, scratch space reused by reads, and the buffers Java registered.
struct BackendCell {
    backend: StateBackend,
    scratch: Scratch,
    channels: Channels,
}

/// Reused by reads: no allocation per call once warm.
#[derive(Default)]
struct Scratch {
    bytes: Vec<u8>,
    /// `(start, user key end, end)` of each map entry encoded in `bytes` (`u32be(len) ‖
    /// user key ‖ u32be(len) ‖ value`).
    spans: Vec<(usize, usize, usize)>,
}

/// Backends are used under their lock on every call: the table's slots are the locks.
static BACKENDS: LockedTable<BackendCell> = LockedTable::new(0x4a);
static KEY_ITERS: HandleTable<Mutex<Peekable<KeysIter>>> = HandleTable::new(0x4b);
static PENDING: HandleTable<Mutex<Option<PendingSnapshot>>> = HandleTable::new(0x4c);
static ENTRY_ITERS: HandleTable<Mutex<Peekable<EntriesIter>>> = HandleTable::new(0x4d);
static UPLOADS: HandleTable<Mutex<IncrementalUpload>> = HandleTable::new(0x4e);

const CLOSED_BACKEND: &str = "the state backend is closed";

fn lock<T>(m: &Mutex<T>) -> Res<MutexGuard<'_, T>> {
    // A panic under the lock may have left the object half-updated: refuse to use it.
    m.lock()
        .map_err(|_| Failure::Closed("unusable after an earlier native panic"))
}

/// Runs `f` on the backend behind `handle`, under its lock.
#[inline]
fn with_backend<T>(handle: jlong, f: impl FnOnce(&mut BackendCell) -> Res<T>) -> Res<T> {
    match BACKENDS.with(handle as u64, f) {
        Ok(r) => r,
        Err(Unusable::Closed) => Err(Failure::Closed(CLOSED_BACKEND)),
        // A panic under the lock may have left the backend half-updated.
        Err(Unusable::Poisoned) => Err(Failure::Closed("unusable after an earlier native panic")),
    }
}

/// Runs `f` on the backend behind `handle` with the buffers of `channel`: the input
/// (the fields Java wrote) and the output (for results).
#[inline]
fn with_channel<T>(
    handle: jlong,
    channel: jint,
    f: impl FnOnce(&mut StateBackend, &mut Scratch, &[u8], &mut [u8]) -> Res<T>,
) -> Res<T> {
    with_backend(handle, |c| {
        let BackendCell {
            backend,
            scratch,
            channels,
        } = c;
        let ch = channels.get(channel)?;
        // SAFETY: the channel's global references keep both buffers, and so their
        // memory, alive while they are registered; they do not overlap (checked by
        // `bind`); the Java thread that owns them waits in this call.
        let (input, output) = unsafe {
            (
                std::slice::from_raw_parts(ch.input.0, ch.input.1),
                std::slice::from_raw_parts_mut(ch.output.0, ch.output.1),
            )
        };
        f(backend, scratch, input, output)
    })
}

// ---- registered buffers ---------------------------------------------------------------

/// A pair of direct buffers registered by one Java accessor: `input` receives the
/// fields of each access, `output` its results. The global references keep the buffer
/// objects, and so the memory behind the addresses, alive while they are registered.
struct Channel {
    _refs: [Global<JByteBuffer<'static>>; 2],
    input: (*const u8, usize),
    output: (*mut u8, usize),
}

// SAFETY: the addresses point into memory the global references keep alive, reached
// only under the backend's lock.
unsafe impl Send for Channel {}

/// The registered buffer pairs of one backend. A channel id is `generation << 16 |
/// index`, so a released id does not reach the pair that reuses its slot.
#[derive(Default)]
struct Channels {
    slots: Vec<(u16, Option<Channel>)>,
}

const CHANNEL_INDEX_BITS: u32 = 16;
const MAX_CHANNELS: usize = 1 << CHANNEL_INDEX_BITS;

impl Channels {
    #[inline]
    fn get(&self, id: jint) -> Res<&Channel> {
        let index = (id as u32 & (MAX_CHANNELS as u32 - 1)) as usize;
        match self.slots.get(index) {
            Some((generation, Some(ch))) if id >= 0 && channel_id(index, *generation) == id => {
                Ok(ch)
            }
            _ => Err(Failure::Argument(format!("unknown buffer channel {id}"))),
        }
    }

    /// Registers `ch` as a new channel (`id` -1) or in place of channel `id`; the id and
    /// the pair it replaces (to drop outside the lock).
    fn bind(&mut self, id: jint, ch: Channel) -> Res<(jint, Option<Channel>)> {
        if id >= 0 {
            self.get(id)?;
            let index = (id as u32 & (MAX_CHANNELS as u32 - 1)) as usize;
            let old = self.slots[index].1.replace(ch);
            return Ok((id, old));
        }
        let index = match self.slots.iter().position(|(_, ch)| ch.is_none()) {
            Some(index) => index,
            None if self.slots.len() < MAX_CHANNELS => {
                self.slots.push((0, None));
                self.slots.len() - 1
            }
            None => {
                return Err(Failure::Argument(format!(
                    "more than {MAX_CHANNELS} registered buffer pairs"
                )))
            }
        };
        let slot = &mut self.slots[index];
        slot.1 = Some(ch);
        Ok((channel_id(index, slot.0), None))
    }

    /// Unregisters channel `id`; the pair (to drop outside the lock).
    fn release(&mut self, id: jint) -> Res<Option<Channel>> {
        self.get(id)?;
        let index = (id as u32 & (MAX_CHANNELS as u32 - 1)) as usize;
        let slot = &mut self.slots[index];
        slot.0 = (slot.0 + 1) & 0x7fff;
        Ok(slot.1.take())
    }
}

fn channel_id(index: usize, generation: u16) -> jint {
    (i32::from(generation) << CHANNEL_INDEX_BITS) | index as jint
}

// ---- buffers -----------------------------------------------------------------------

/// The address and capacity of a direct buffer's memory. The memory is Java's: valid while
/// the buffer object is reachable (it is, for the duration of the native call) and used by
/// one thread at a time (Java's buffers belong to the task thread).
fn direct(env: &Env<'_>, buf: &JByteBuffer<'_>) -> Res<(*mut u8, usize)> {
    // A heap buffer (or null) has no address: the `jni` crate reports a null pointer.
    let not_direct = |e| Failure::Argument(format!("not a direct buffer ({e})"));
    let ptr = env.get_direct_buffer_address(buf).map_err(not_direct)?;
    let cap = env.get_direct_buffer_capacity(buf).map_err(not_direct)?;
    if ptr.is_null() {
        return Err(Failure::Argument("not a direct buffer".into()));
    }
    Ok((ptr, cap))
}

/// The bytes of a direct buffer, read-only.
fn direct_bytes<'b>(env: &Env<'_>, buf: &'b JByteBuffer<'_>) -> Res<&'b [u8]> {
    let (ptr, cap) = direct(env, buf)?;
    // SAFETY: see `direct`; Java does not write the buffer during the call.
    Ok(unsafe { std::slice::from_raw_parts(ptr, cap) })
}

fn len_of(len: jint, what: &str) -> Res<usize> {
    usize::try_from(len).map_err(|_| Failure::Argument(format!("negative {what} length {len}")))
}

/// Splits the first `lens.iter().sum()` bytes of `input` into consecutive fields.
fn fields<const N: usize>(input: &[u8], lens: [jint; N]) -> Res<[&[u8]; N]> {
    let mut out = [&input[..0]; N];
    let mut at = 0usize;
    for (slot, len) in out.iter_mut().zip(lens) {
        let len = len_of(len, "field")?;
        let end = at
            .checked_add(len)
            .filter(|&e| e <= input.len())
            .ok_or_else(|| {
                Failure::Argument(format!(
                    "fields of {} bytes exceed the input buffer ({} bytes)",
                    lens.iter().map(|&l| l as i64).sum::<i64>(),
                    input.len()
                ))
            })?;
        *slot = &input[at..end];
        at = end;
    }
    Ok(out)
}

/// The input buffer's fields.
fn input_fields<'b, const N: usize>(
    env: &Env<'_>,
    input: &'b JByteBuffer<'_>,
    lens: [jint; N],
) -> Res<[&'b [u8]; N]> {
    fields(direct_bytes(env, input)?, lens)
}

/// The code for "the output buffer needs `needed` bytes".
fn too_small(needed: usize) -> Res<jint> {
    i32::try_from(needed)
        .ok()
        .and_then(|n| n.checked_add(2))
        .map(|n| -n)
        .ok_or_else(|| Failure::Argument(format!("a result of {needed} bytes exceeds 2 GiB")))
}

/// Copies `bytes` to `out`: its length, or the too-small code.
fn emit(out: &mut [u8], bytes: &[u8]) -> Res<jint> {
    if bytes.len() > out.len() {
        return too_small(bytes.len());
    }
    out[..bytes.len()].copy_from_slice(bytes);
    Ok(bytes.len() as jint)
}

fn kind_of(kind: jint) -> Res<StateKind> {
    u8::try_from(kind)
        .ok()
        .and_then(StateKind::from_u8)
        .ok_or_else(|| Failure::Argument(format!("unknown state kind {kind}")))
}

fn key_group(kg: jint) -> Res<u32> {
    u32::try_from(kg).map_err(|_| Failure::Argument(format!("negative key group {kg}")))
}

fn state_id(s: jint) -> Res<StateId> {
    StateId::try_from(s).map_err(|_| Failure::Argument(format!("negative state id {s}")))
}

fn as_i8(bytes: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size and alignment.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len()) }
}

fn as_i8_mut(bytes: &mut [u8]) -> &mut [i8] {
    // SAFETY: u8 and i8 have the same size and alignment.
    unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), bytes.len()) }
}

// ---- Java streams -------------------------------------------------------------------

/// A `std::io::Write` into a `java.io.OutputStream`, through a reused `byte[]` chunk.
/// After a failed Java call it makes no further JNI calls (an exception is pending).
struct JavaOutputStream<'a, 'l> {
    /// Shared with the [`JavaSnapshotFilter`] of the same write: one call at a time.
    env: &'a RefCell<&'a mut Env<'l>>,
    stream: &'a JObject<'l>,
    chunk: &'a JByteArray<'l>,
    buf: Vec<u8>,
    capacity: usize,
    failed: bool,
}

impl JavaOutputStream<'_, '_> {
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
struct JavaSnapshotFilter<'a, 'l> {
    env: &'a RefCell<&'a mut Env<'l>>,
    filters: &'a JObjectArray<'l>,
    /// Per state id: whether it has a filter.
    active: Vec<bool>,
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
fn restore_handle(env: &mut Env<'_>, source: &JObject<'_>) -> Res<SnapshotHandle> {
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

/// A Java `String[]` of `names`.
fn string_array<'l>(env: &mut Env<'l>, names: &[String]) -> Res<JObjectArray<'l, JString<'l>>> {
    let array = JObjectArray::<JString>::new(env, names.len(), JString::null())?;
    for (i, name) in names.iter().enumerate() {
        let s = JString::from_str(env, name)?;
        array.set_element(env, i, &s)?;
        env.delete_local_ref(s);
    }
    Ok(array)
}

/// A Java `long[]` of `values`.
fn long_array<'l>(env: &mut Env<'l>, values: &[jlong]) -> Res<JLongArray<'l>> {
    let array = JLongArray::new(env, values.len())?;
    array.set_region(env, 0, values)?;
    Ok(array)
}

// ---- lifecycle -----------------------------------------------------------------------

/// Kinds as Java passes them.
fn backend_kind(kind: jint) -> Res<BackendKind> {
    match kind {
        0 => Ok(BackendKind::Memory),
        1 => Ok(BackendKind::Fs),
        2 => Ok(BackendKind::RocksDb),
        _ => Err(Failure::Argument(format!("unknown backend kind {kind}"))),
    }
}

/// `boolean rocksDBOptionKnown(String key)`: whether the RocksDB backend knows the
/// option `key` (with its `state.backend.rocksdb.` prefix).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_rocksDBOptionKnown<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    key: JString<'l>,
) -> jboolean {
    run(&mut env, |env| {
        Ok(Config::knows_rocksdb_option(&key.try_to_string(env)?))
    })
}

/// `long open(int kind, int maxParallelism, int kgStart, int kgEnd, long maxStateSize,
/// String localDir, String[] rocksDBOptions, RestoreSource[] restore)`: a backend
/// owning key groups `kgStart..=kgEnd`, with `state.backend.rocksdb.*` options as
/// key and value alternately, restored from the given snapshots (may be empty).
/// Snapshots go to Flink's streams, never to the core's own checkpoint storage.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_open<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    kind: jint,
    max_parallelism: jint,
    kg_start: jint,
    kg_end: jint,
    max_state_size: jlong,
    local_dir: JString<'l>,
    rocksdb_options: JObjectArray<'l>,
    restore: JObjectArray<'l>,
) -> jlong {
    run(&mut env, |env| {
        let kind = backend_kind(kind)?;
        let local_dir = local_dir.try_to_string(env)?;
        let max_parallelism = u32::try_from(max_parallelism)
            .map_err(|_| Failure::Argument(format!("max parallelism {max_parallelism}")))?;
        let range = KeyGroupRange::new(key_group(kg_start)?, key_group(kg_end)?)?;
        let mut config = Config::memory().with_max_parallelism(max_parallelism)?;
        config.backend = kind;
        config = config
            .with_key_group_range(range)
            .with_local_dir(&local_dir);
        // Snapshots are streamed into Flink's checkpoint streams: no checkpoint
        // directory; the core applies the size limit to the memory backend only.
        let limit = u64::try_from(max_state_size)
            .map_err(|_| Failure::Argument(format!("max state size {max_state_size}")))?;
        config = config.with_max_state_size(limit);
        let n = rocksdb_options.len(env)?;
        if n % 2 != 0 {
            return Err(Failure::Argument(
                "RocksDB options come as key and value alternately".into(),
            ));
        }
        for i in (0..n).step_by(2) {
            let (key, value) = env.with_local_frame(4, |env| -> Res<(String, String)> {
                let key = rocksdb_options.get_element(env, i)?;
                let value = rocksdb_options.get_element(env, i + 1)?;
                Ok((
                    env.cast_local::<JString>(key)?.try_to_string(env)?,
                    env.cast_local::<JString>(value)?.try_to_string(env)?,
                ))
            })?;
            config.set_rocksdb_option(&key, &value)?;
        }
        let count = restore.len(env)?;
        let mut handles = Vec::with_capacity(count);
        for i in 0..count {
            // A local frame per source: its local references go when it is set up.
            let handle = env.with_local_frame(8, |env| -> Res<SnapshotHandle> {
                let source = restore.get_element(env, i)?;
                restore_handle(env, &source)
            })?;
            handles.push(handle);
        }
        let backend = StateBackend::restore_with_storage(config, None, &handles)?;
        let id = BACKENDS.insert(BackendCell {
            backend,
            scratch: Scratch::default(),
            channels: Channels::default(),
        });
        Ok(id as jlong)
    })
}

/// Closes a backend; closing a closed one does nothing. In-flight calls on other
/// threads finish first (the lock), later calls throw IllegalStateException.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_close<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    run(&mut env, |_| {
        // Waits for a call holding the backend's lock; the backend (and the global
        // references of its registered buffers) drop here.
        drop(BACKENDS.remove(handle as u64));
        Ok(())
    })
}

/// `int registerState(long, String name, int kind, byte[] metadata)`: the state's id.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_registerState<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    name: JString<'l>,
    kind: jint,
    metadata: JByteArray<'l>,
) -> jint {
    run(&mut env, |env| {
        let name = name.try_to_string(env)?;
        let kind = kind_of(kind)?;
        let metadata = env.convert_byte_array(&metadata)?;
        with_backend(handle, |c| {
            let id = c.backend.register_state(&name, kind, &metadata)?;
            Ok(id as jint)
        })
    })
}

/// `byte[] restoredState(long, String name)`: `kind ‖ metadata` of a state the backend
/// knows (from a restore or an earlier registration), or null.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_restoredState<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    name: JString<'l>,
) -> JByteArray<'l> {
    run(&mut env, |env| {
        let name = name.try_to_string(env)?;
        let found = with_backend(handle, |c| {
            Ok(c.backend.state(&name).map(|info| {
                let mut bytes = Vec::with_capacity(1 + info.metadata.len());
                bytes.push(info.kind as u8);
                bytes.extend_from_slice(&info.metadata);
                bytes
            }))
        })?;
        match found {
            Some(bytes) => Ok(env.byte_array_from_slice(&bytes)?),
            None => Ok(JByteArray::default()),
        }
    })
}

/// Number of (key, namespace) entries over all states.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_numEntries<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jlong {
    run(&mut env, |_| {
        with_backend(handle, |c| Ok(c.backend.num_entries()? as jlong))
    })
}

/// `void compactState(long, int state)`: see `StateBackend::compact_state`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_compactState<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    state: jint,
) {
    run(&mut env, |_| {
        with_backend(handle, |c| Ok(c.backend.compact_state(state_id(state)?)?))
    })
}

// ---- registering buffers -----------------------------------------------------------------

/// `int bind(long, int channel, ByteBuffer in, ByteBuffer out)`: registers a pair of
/// direct buffers for the state accesses of one Java accessor; returns the channel id
/// to pass to them. `channel` -1 registers a new pair; a channel id replaces that
/// channel's pair (after Java grew a buffer).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_bind<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    input: JByteBuffer<'l>,
    out: JByteBuffer<'l>,
) -> jint {
    run(&mut env, |env| {
        let (i, i_cap) = direct(env, &input)?;
        let (o, o_cap) = direct(env, &out)?;
        if i_cap == 0 || o_cap == 0 {
            return Err(Failure::Argument(
                "empty buffers cannot be registered".into(),
            ));
        }
        let (o_start, o_end) = (o as usize, o as usize + o_cap);
        let (i_start, i_end) = (i as usize, i as usize + i_cap);
        if o_start < i_end && i_start < o_end {
            return Err(Failure::Argument(
                "the input and output buffers must not overlap".into(),
            ));
        }
        let ch = Channel {
            _refs: [env.new_global_ref(&input)?, env.new_global_ref(&out)?],
            input: (i, i_cap),
            output: (o, o_cap),
        };
        let (id, old) = with_backend(handle, |c| c.channels.bind(channel, ch))?;
        // The replaced pair's global references go outside the backend's lock.
        drop(old);
        Ok(id)
    })
}

/// `void unbind(long, int channel)`: releases a registered pair (nothing if the backend
/// is closed: closing released them all).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_unbind<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
) {
    run(&mut env, |_| {
        match with_backend(handle, |c| c.channels.release(channel)) {
            Ok(old) => drop(old),
            Err(Failure::Closed(_)) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    })
}

// ---- value state -----------------------------------------------------------------------
//
// Every state access below takes `(handle, channel, state, key group, field lengths)`:
// the fields are read from the channel's input buffer, results written into its
// output buffer.

/// in: `key ‖ namespace`; out: the value. Returns its length, ABSENT or too-small.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_valueGet<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    key_len: jint,
    ns_len: jint,
) -> jint {
    access(&mut env, || {
        with_channel(handle, channel, |backend, scratch, input, out| {
            let [key, ns] = fields(input, [key_len, ns_len])?;
            if !backend.value_get(
                state_id(state)?,
                key_group(kg)?,
                key,
                ns,
                &mut scratch.bytes,
            )? {
                return Ok(ABSENT);
            }
            emit(out, &scratch.bytes)
        })
    })
}

/// in: `key ‖ namespace ‖ value`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_valuePut<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    key_len: jint,
    ns_len: jint,
    value_len: jint,
) {
    access(&mut env, || {
        with_channel(handle, channel, |backend, _, input, _| {
            let [key, ns, value] = fields(input, [key_len, ns_len, value_len])?;
            Ok(backend.value_put(state_id(state)?, key_group(kg)?, key, ns, value)?)
        })
    })
}

/// in: `key ‖ namespace`: removes whatever the state holds there (any kind).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_clear<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    key_len: jint,
    ns_len: jint,
) {
    access(&mut env, || {
        with_channel(handle, channel, |backend, _, input, _| {
            let [key, ns] = fields(input, [key_len, ns_len])?;
            Ok(backend.clear(state_id(state)?, key_group(kg)?, key, ns)?)
        })
    })
}

// ---- list state ------------------------------------------------------------------------

/// in: `key ‖ namespace`; out: the encoded list (`varint(len) ‖ bytes` per element).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_listGet<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    key_len: jint,
    ns_len: jint,
) -> jint {
    access(&mut env, || {
        with_channel(handle, channel, |backend, scratch, input, out| {
            let [key, ns] = fields(input, [key_len, ns_len])?;
            let (s, kg) = (state_id(state)?, key_group(kg)?);
            if !backend.list_get_encoded(s, kg, key, ns, &mut scratch.bytes)? {
                return Ok(ABSENT);
            }
            emit(out, &scratch.bytes)
        })
    })
}

/// in: `key ‖ namespace ‖ element`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_listAdd<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    key_len: jint,
    ns_len: jint,
    element_len: jint,
) {
    access(&mut env, || {
        with_channel(handle, channel, |backend, _, input, _| {
            let [key, ns, element] = fields(input, [key_len, ns_len, element_len])?;
            Ok(backend.list_add(state_id(state)?, key_group(kg)?, key, ns, element)?)
        })
    })
}

/// in: `key ‖ namespace ‖ encoded elements`; `replace` replaces the list (an empty
/// encoding clears it), otherwise the elements are appended.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_listAddAll<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    key_len: jint,
    ns_len: jint,
    encoded_len: jint,
    replace: jboolean,
) {
    access(&mut env, || {
        with_channel(handle, channel, |backend, _, input, _| {
            let [key, ns, encoded] = fields(input, [key_len, ns_len, encoded_len])?;
            let (s, kg) = (state_id(state)?, key_group(kg)?);
            if replace {
                backend.list_update_encoded(s, kg, key, ns, encoded)?;
            } else {
                backend.list_add_encoded(s, kg, key, ns, encoded)?;
            }
            Ok(())
        })
    })
}

/// in: `key ‖ target ‖ sources`, the source namespaces in the list encoding
/// (`varint(len) ‖ bytes` each): merges list or map namespaces into the target
/// (session windows).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_mergeNamespaces<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    key_len: jint,
    target_len: jint,
    sources_len: jint,
) {
    access(&mut env, || {
        with_channel(handle, channel, |backend, _, input, _| {
            let [key, target, encoded] = fields(input, [key_len, target_len, sources_len])?;
            if crate::codec::validate_list(encoded).is_none() {
                return Err(Failure::Argument("malformed encoded namespaces".into()));
            }
            let sources: Vec<&[u8]> = ListElements::new(encoded).collect();
            Ok(backend.merge_namespaces(
                state_id(state)?,
                key_group(kg)?,
                key,
                target,
                &sources,
                None,
            )?)
        })
    })
}

// ---- map state -------------------------------------------------------------------------

/// in: `key ‖ namespace ‖ user key`; out: the value.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_mapGet<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    key_len: jint,
    ns_len: jint,
    user_key_len: jint,
) -> jint {
    access(&mut env, || {
        with_channel(handle, channel, |backend, scratch, input, out| {
            let [key, ns, uk] = fields(input, [key_len, ns_len, user_key_len])?;
            let (s, kg) = (state_id(state)?, key_group(kg)?);
            if !backend.map_get(s, kg, key, ns, uk, &mut scratch.bytes)? {
                return Ok(ABSENT);
            }
            emit(out, &scratch.bytes)
        })
    })
}

/// in: `key ‖ namespace ‖ user key ‖ value`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_mapPut<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    key_len: jint,
    ns_len: jint,
    user_key_len: jint,
    value_len: jint,
) {
    access(&mut env, || {
        with_channel(handle, channel, |backend, _, input, _| {
            let [key, ns, uk, value] = fields(input, [key_len, ns_len, user_key_len, value_len])?;
            Ok(backend.map_put(state_id(state)?, key_group(kg)?, key, ns, uk, value)?)
        })
    })
}

/// in: `key ‖ namespace ‖ entries`, the entries in the list encoding (`varint(len) ‖
/// bytes` each), user key and value alternately: Flink's `putAll` in one call.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_mapPutAll<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    key_len: jint,
    ns_len: jint,
    entries_len: jint,
) {
    access(&mut env, || {
        with_channel(handle, channel, |backend, _, input, _| {
            let [key, ns, entries] = fields(input, [key_len, ns_len, entries_len])?;
            Ok(backend.map_put_all_encoded(state_id(state)?, key_group(kg)?, key, ns, entries)?)
        })
    })
}

/// in: `key ‖ namespace ‖ user key`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_mapRemove<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    key_len: jint,
    ns_len: jint,
    user_key_len: jint,
) {
    access(&mut env, || {
        with_channel(handle, channel, |backend, _, input, _| {
            let [key, ns, uk] = fields(input, [key_len, ns_len, user_key_len])?;
            Ok(backend.map_remove(state_id(state)?, key_group(kg)?, key, ns, uk)?)
        })
    })
}

/// in: `key ‖ namespace ‖ user key`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_mapContains<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    key_len: jint,
    ns_len: jint,
    user_key_len: jint,
) -> jboolean {
    access(&mut env, || {
        with_channel(handle, channel, |backend, _, input, _| {
            let [key, ns, uk] = fields(input, [key_len, ns_len, user_key_len])?;
            Ok(backend.map_contains(state_id(state)?, key_group(kg)?, key, ns, uk)?)
        })
    })
}

/// in: `key ‖ namespace`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_mapIsEmpty<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    key_len: jint,
    ns_len: jint,
) -> jboolean {
    access(&mut env, || {
        with_channel(handle, channel, |backend, _, input, _| {
            let [key, ns] = fields(input, [key_len, ns_len])?;
            Ok(backend.map_is_empty(state_id(state)?, key_group(kg)?, key, ns)?)
        })
    })
}

/// Appends `u32be(len) ‖ bytes`.
fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// in: `key ‖ namespace`; out: every entry of the map as `u32be(len) ‖ user key ‖
/// u32be(len) ‖ value`, in the core's order (sorted by serialized user key, on every
/// backend). Returns the length (0: empty) or too-small.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_mapEntries<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    key_len: jint,
    ns_len: jint,
) -> jint {
    access(&mut env, || {
        with_channel(handle, channel, |backend, scratch, input, out| {
            let [key, ns] = fields(input, [key_len, ns_len])?;
            let (s, kg) = (state_id(state)?, key_group(kg)?);
            let Scratch { bytes, spans } = scratch;
            bytes.clear();
            spans.clear();
            backend.map_for_each(s, kg, key, ns, &mut |uk, v| {
                let start = bytes.len();
                put_field(bytes, uk);
                let user_key_end = bytes.len();
                put_field(bytes, v);
                spans.push((start, user_key_end, bytes.len()));
                Ok(())
            })?;
            if bytes.len() > out.len() {
                return too_small(bytes.len());
            }
            // User keys are unique: the order is total.
            spans.sort_unstable_by(|a, b| bytes[a.0 + 4..a.1].cmp(&bytes[b.0 + 4..b.1]));
            let mut at = 0;
            for &(start, _, end) in spans.iter() {
                out[at..at + end - start].copy_from_slice(&bytes[start..end]);
                at += end - start;
            }
            Ok(at as jint)
        })
    })
}

// ---- key iteration ---------------------------------------------------------------------

/// `long keysOpen(long, int state, ByteBuffer in, int nsLen, boolean allNamespaces)`:
/// an iterator over the keys of a state in one namespace (the first `nsLen` bytes of
/// `in`), or over every (key, namespace) when `allNamespaces`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_keysOpen<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    state: jint,
    input: JByteBuffer<'l>,
    ns_len: jint,
    all_namespaces: jboolean,
) -> jlong {
    run(&mut env, |env| {
        let [ns] = input_fields(env, &input, [ns_len])?;
        let iter = with_backend(handle, |c| {
            let s = state_id(state)?;
            Ok(if all_namespaces {
                c.backend.keys_and_namespaces(s)?
            } else {
                c.backend.keys(s, ns)?
            })
        })?;
        Ok(KEY_ITERS.insert(Mutex::new(iter.peekable())) as jlong)
    })
}

/// Fills `out` with as many `u32be(len) ‖ key ‖ u32be(len) ‖ namespace` as fit.
/// Returns the bytes written, 0 at the end, or too-small when not even one fits.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_keysNext<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    iter: jlong,
    out: JByteBuffer<'l>,
) -> jint {
    run(&mut env, |env| {
        let (ptr, cap) = direct(env, &out)?;
        // SAFETY: see `direct`; the only buffer of this call.
        let out = unsafe { std::slice::from_raw_parts_mut(ptr, cap) };
        let cell = KEY_ITERS
            .get(iter as u64)
            .ok_or(Failure::Closed("the key iterator is closed"))?;
        let mut it = lock(&cell)?;
        fill_batch(&mut *it, out, |e: &KeyEntry, item| {
            put_field(item, &e.key);
            put_field(item, &e.namespace);
        })
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_keysClose<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    iter: jlong,
) {
    run(&mut env, |_| {
        KEY_ITERS.remove(iter as u64);
        Ok(())
    })
}

// ---- canonical savepoints ---------------------------------------------------------------

/// `String[] stateNames(long)`: the names of the states the backend knows (restored or
/// registered), in state-id order.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_stateNames<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> JObjectArray<'l, JString<'l>> {
    run(&mut env, |env| {
        let names: Vec<String> = with_backend(handle, |c| {
            Ok(c.backend.states().iter().map(|s| s.name.clone()).collect())
        })?;
        string_array(env, &names)
    })
}

/// `long entriesOpen(long)`: an iterator over every entry of every state, key group by
/// key group (states in id order within a key group), over a point-in-time view taken
/// now: the synchronous phase of a canonical savepoint.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_entriesOpen<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jlong {
    run(&mut env, |_| {
        let iter = with_backend(handle, |c| Ok(c.backend.entries()?))?;
        Ok(ENTRY_ITERS.insert(Mutex::new(iter.peekable())) as jlong)
    })
}

/// Flink's list encoding in canonical savepoints (its `ListDelimitedSerializer`): the
/// serialized elements joined by one `,` byte.
fn delimited_list(elements: &[Vec<u8>]) -> Vec<u8> {
    let len = elements.iter().map(|e| e.len() + 1).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    for (i, e) in elements.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e);
    }
    out
}

/// Fills `out` with as many items as fit, each encoded by `encode` (which may append
/// nothing to skip an item). Returns the bytes written, 0 at the end, or too-small
/// when not even the first item fits.
fn fill_batch<T>(
    it: &mut Peekable<impl Iterator<Item = crate::Result<T>>>,
    out: &mut [u8],
    mut encode: impl FnMut(&T, &mut Vec<u8>),
) -> Res<jint> {
    let mut at = 0usize;
    let mut item = Vec::new();
    while let Some(next) = it.peek() {
        let Ok(entry) = next else {
            let Some(Err(e)) = it.next() else {
                unreachable!("peeked an error")
            };
            return Err(e.into());
        };
        item.clear();
        encode(entry, &mut item);
        if at + item.len() > out.len() {
            if at == 0 {
                return too_small(item.len());
            }
            break;
        }
        out[at..at + item.len()].copy_from_slice(&item);
        at += item.len();
        it.next();
    }
    Ok(at as jint)
}

/// The fields of one entry as `entriesNext` writes them.
fn entry_fields(e: &Entry) -> (&[u8], std::borrow::Cow<'_, [u8]>) {
    match &e.value {
        EntryValue::Value(v) => (&[], std::borrow::Cow::Borrowed(&v[..])),
        EntryValue::List(l) => (&[], std::borrow::Cow::Owned(delimited_list(l))),
        EntryValue::MapEntry { user_key, value } => {
            (&user_key[..], std::borrow::Cow::Borrowed(&value[..]))
        }
    }
}

/// Fills `out` with as many entries as fit, each `u32be(key group) ‖ u32be(state) ‖
/// u32be(len) ‖ key ‖ u32be(len) ‖ namespace ‖ u32be(len) ‖ user key (maps; else
/// empty) ‖ u32be(len) ‖ value` (lists in Flink's delimited encoding, maps as stored:
/// `null flag ‖ value`; empty lists are skipped). Returns the bytes written, 0 at the
/// end, or too-small when not even one entry fits.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_entriesNext<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    iter: jlong,
    out: JByteBuffer<'l>,
) -> jint {
    run(&mut env, |env| {
        let (ptr, cap) = direct(env, &out)?;
        // SAFETY: see `direct`; the only buffer of this call.
        let out = unsafe { std::slice::from_raw_parts_mut(ptr, cap) };
        let cell = ENTRY_ITERS
            .get(iter as u64)
            .ok_or(Failure::Closed("the entry iterator is closed"))?;
        let mut it = lock(&cell)?;
        fill_batch(&mut *it, out, |e: &Entry, item| {
            if matches!(&e.value, EntryValue::List(l) if l.is_empty()) {
                return;
            }
            item.extend_from_slice(&e.key_group.to_be_bytes());
            item.extend_from_slice(&e.state.to_be_bytes());
            let (user_key, value) = entry_fields(e);
            for field in [&e.key[..], &e.namespace[..], user_key, &value[..]] {
                put_field(item, field);
            }
        })
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_entriesClose<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    iter: jlong,
) {
    run(&mut env, |_| {
        ENTRY_ITERS.remove(iter as u64);
        Ok(())
    })
}

// ---- snapshots -------------------------------------------------------------------------

/// The synchronous phase: a pending snapshot's id (cheap; the view is immutable).
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_snapshot<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    checkpoint_id: jlong,
) -> jlong {
    run(&mut env, |_| {
        let id = u64::try_from(checkpoint_id)
            .map_err(|_| Failure::Argument(format!("checkpoint id {checkpoint_id}")))?;
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
        let snapshot = lock(&cell)?
            .take()
            .ok_or(Failure::Closed("the snapshot was already written"))?;
        let capacity = chunk.len(env)?;
        if capacity == 0 {
            return Err(Failure::Argument("the chunk is empty".into()));
        }
        let env_cell = RefCell::new(env);
        let mut sink = JavaOutputStream {
            env: &env_cell,
            stream: &stream,
            chunk: &chunk,
            buf: Vec::with_capacity(capacity),
            capacity,
            failed: false,
        };
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
        let KeyedData::Full(full) = &written.manifest.keyed else {
            return Err(Failure::Core(Error::invalid(
                "a stream snapshot always holds full data",
            )));
        };
        let mut result = Vec::with_capacity(2 + 2 * full.key_group_offsets.len());
        result.push(written.bytes_written as jlong);
        result.push(full.size as jlong);
        for &(kg, offset) in &full.key_group_offsets {
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

// ---- incremental snapshots whose files Java stores ---------------------------------

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
        let id = u64::try_from(checkpoint_id)
            .map_err(|_| Failure::Argument(format!("checkpoint id {checkpoint_id}")))?;
        let upload = with_backend(handle, |c| Ok(c.backend.incremental_snapshot(id)?))?;
        Ok(UPLOADS.insert(Mutex::new(upload)) as jlong)
    })
}

fn with_upload<T>(upload: jlong, f: impl FnOnce(&mut IncrementalUpload) -> Res<T>) -> Res<T> {
    let cell = UPLOADS.get(upload as u64).ok_or(Failure::Closed(
        "the incremental snapshot was already finished or released",
    ))?;
    let mut guard = lock(&cell)?;
    f(&mut guard)
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
            .map_err(|_| Failure::Closed("the incremental snapshot's lock is poisoned"))?;
        let written = with_java_stream(env, &stream, &chunk, |sink| {
            Ok(upload.finish(sink, &out_name)?)
        })?;
        let KeyedData::Files(files) = &written.manifest.keyed else {
            return Err(Failure::Core(Error::invalid(
                "an incremental snapshot always holds files",
            )));
        };
        let result = [
            written.bytes_written as jlong,
            files.total_bytes() as jlong,
            files.uploaded_bytes as jlong,
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

/// Runs `f` with a writer into the Java `OutputStream` `stream` through `chunk`,
/// flushed at the end.
fn with_java_stream<'l, T>(
    env: &mut Env<'l>,
    stream: &JObject<'l>,
    chunk: &JByteArray<'l>,
    f: impl FnOnce(&mut dyn Write) -> Res<T>,
) -> Res<T> {
    let capacity = chunk.len(env)?;
    if capacity == 0 {
        return Err(Failure::Argument("the chunk is empty".into()));
    }
    let env_cell = RefCell::new(env);
    let mut sink = JavaOutputStream {
        env: &env_cell,
        stream,
        chunk,
        buf: Vec::with_capacity(capacity),
        capacity,
        failed: false,
    };
    let result = f(&mut sink)?;
    sink.flush()
        .map_err(|e| Failure::Core(Error::io("the Java stream", e)))?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_and_check_bounds() {
        let input = b"keynsvalue";
        let [k, n, v] = fields(input, [3, 2, 5]).unwrap();
        assert_eq!((k, n, v), (&b"key"[..], &b"ns"[..], &b"value"[..]));
        assert!(fields(input, [3, 2, 6]).is_err());
        assert!(fields(input, [-1]).is_err());
    }

    #[test]
    fn lists_join_with_flink_delimiter() {
        assert_eq!(delimited_list(&[]), b"");
        assert_eq!(delimited_list(&[b"ab".to_vec()]), b"ab");
        assert_eq!(
            delimited_list(&[b"ab".to_vec(), b"".to_vec(), b"c".to_vec()]),
            b"ab,,c"
        );
    }

    #[test]
    fn too_small_codes_round_trip() {
        assert_eq!(too_small(0).unwrap(), -2);
        assert_eq!(too_small(100).unwrap(), -102);
        assert!(too_small(usize::MAX).is_err());
        let mut out = [0u8; 2];
        assert_eq!(emit(&mut out, b"abc").unwrap(), -5);
        assert_eq!(emit(&mut out, b"ab").unwrap(), 2);
    }

    #[test]
    fn errors_map_to_java_exceptions() {
        assert_eq!(
            Failure::Core(Error::invalid("x")).exception_class(),
            ILLEGAL_ARGUMENT
        );
        assert_eq!(
            Failure::Closed(CLOSED_BACKEND).exception_class(),
            ILLEGAL_STATE
        );
        assert_eq!(
            Failure::Core(Error::Restore("x".into())).exception_class(),
            BACKEND_EXCEPTION
        );
    }
}
