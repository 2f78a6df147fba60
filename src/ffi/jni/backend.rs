//! Backends: open (with restore), close, states, and the direct buffers Java
//! registers for the state accesses.

use super::args::{direct, key_group, kind_of, long_array, put_field, state_id, string_array};
use super::streams::restore_handle;
use super::{run, unusable, Failure, Res};
use crate::backend::StateBackend;
use crate::config::{BackendKind, Config};
use crate::error::Error;
use crate::ffi::handles::{HandleKind, HandleTable, LockedTable};
use crate::iter::SortedMap;
use crate::keygroup::KeyGroupRange;
use crate::migration::MigrationEntry;
use crate::snapshot::SnapshotHandle;
use crate::store::rocks::memory::SharedMemory;
use ::jni::objects::{JByteArray, JByteBuffer, JClass, JLongArray, JObject, JObjectArray, JString};
use ::jni::refs::Global;
use ::jni::sys::{jboolean, jdouble, jint, jlong};
use ::jni::{jni_sig, jni_str, EnvUnowned, JValue};

/// One backend, scratch space reused by reads, and the buffers Java registered.
pub(super) struct BackendCell {
    pub(super) backend: StateBackend,
    scratch: Scratch,
    channels: Channels,
}

/// Reused by reads: no allocation per call once warm.
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) bytes: Vec<u8>,
    pub(super) map: SortedMap,
}

/// Backends are used under their lock on every call: the table's slots are the locks.
static BACKENDS: LockedTable<BackendCell> = LockedTable::new(HandleKind::JniBackend);

/// Runs `f` on the backend behind `handle`, under its lock.
#[inline]
pub(super) fn with_backend<T>(handle: jlong, f: impl FnOnce(&mut BackendCell) -> Res<T>) -> Res<T> {
    BACKENDS
        .with(handle as u64, f)
        .map_err(|u| unusable(u, "the state backend is closed", "the state backend"))?
}

/// As [`with_backend`], but None instead of waiting while another call holds the
/// backend (metric gauges).
pub(super) fn try_with_backend<T>(
    handle: jlong,
    f: impl FnOnce(&mut BackendCell) -> T,
) -> Res<Option<T>> {
    BACKENDS
        .try_with(handle as u64, f)
        .map_err(|u| unusable(u, "the state backend is closed", "the state backend"))
}

/// Runs `f` on the backend behind `handle` with the buffers of `channel`: the input
/// (the fields Java wrote) and the output (for results).
#[inline]
pub(super) fn with_channel<T>(
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

// ---- open, close, states -----------------------------------------------------------------

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

/// `long open(String kind, int maxParallelism, int kgStart, int kgEnd, long
/// maxStateSize, String localDir, String[] rocksDBOptions, RestoreSource[] restore)`:
/// a backend of `kind` (a `BackendKind` name: memory, fs, rocksdb) owning key groups `kgStart..=kgEnd`, with `state.backend.rocksdb.*` options as
/// key and value alternately, restored from the given snapshots (may be empty).
/// Snapshots go to Flink's streams, never to the core's own checkpoint storage.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_open<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    kind: JString<'l>,
    max_parallelism: jint,
    kg_start: jint,
    kg_end: jint,
    max_state_size: jlong,
    local_dir: JString<'l>,
    rocksdb_options: JObjectArray<'l>,
    shared_memory: jlong,
    restore: JObjectArray<'l>,
) -> jlong {
    run(&mut env, |env| {
        let kind = BackendKind::from_name(&kind.try_to_string(env)?)?;
        let local_dir = local_dir.try_to_string(env)?;
        let max_parallelism = u32::try_from(max_parallelism)
            .map_err(|_| Failure::Argument(format!("max parallelism {max_parallelism}")))?;
        let range = KeyGroupRange::new(key_group(kg_start)?, key_group(kg_end)?)?;
        let limit = u64::try_from(max_state_size)
            .map_err(|_| Failure::Argument(format!("max state size {max_state_size}")))?;
        // Snapshots are streamed into Flink's checkpoint streams.
        let mut config = Config::streamed(kind, max_parallelism, range)?
            .with_local_dir(&local_dir)
            .with_max_state_size(limit);
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
        if shared_memory != 0 {
            let memory = SHARED_MEMORY
                .get(shared_memory as u64)
                .ok_or(Failure::Closed("the shared memory budget is released"))?;
            config.memory = Some(SharedMemory::clone(&memory));
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

/// Shared memory budgets (Flink: a slot's managed memory): backends opened with one
/// keep it alive after it is released here.
static SHARED_MEMORY: HandleTable<SharedMemory> = HandleTable::new(HandleKind::JniSharedMemory);

/// `long sharedMemoryCreate(long bytes, double writeCacheRatio, double
/// writeBufferRatio)`: a memory budget for several RocksDB backends (see
/// `store::rocks::memory`), for `open`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_sharedMemoryCreate<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    bytes: jlong,
    write_cache_ratio: jdouble,
    write_buffer_ratio: jdouble,
) -> jlong {
    run(&mut env, |_| {
        let bytes = usize::try_from(bytes)
            .map_err(|_| Failure::Argument(format!("memory budget of {bytes} bytes")))?;
        let memory = SharedMemory::new(bytes, write_cache_ratio, write_buffer_ratio)?;
        Ok(SHARED_MEMORY.insert(memory) as jlong)
    })
}

/// `long[] sharedMemoryStats(long)`: `[total, RocksDB's part, the write caches'
/// part, backends sharing the write caches, block cache usage]` in bytes.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_sharedMemoryStats<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    memory: jlong,
) -> JLongArray<'l> {
    run(&mut env, |env| {
        let m = SHARED_MEMORY
            .get(memory as u64)
            .ok_or(Failure::Closed("the shared memory budget is released"))?;
        long_array(
            env,
            &[
                m.total() as jlong,
                m.rocksdb_bytes() as jlong,
                m.write_cache_bytes() as jlong,
                m.members() as jlong,
                m.block_cache_usage() as jlong,
            ],
        )
    })
}

/// Releases a shared memory budget; backends opened with it keep using it until
/// they close. Releasing a released one does nothing.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_sharedMemoryRelease<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    memory: jlong,
) {
    run(&mut env, |_| {
        drop(SHARED_MEMORY.remove(memory as u64));
        Ok(())
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

/// Testing only: panics while holding the backend, which poisons it (as
/// `sb_debug_panic` does in C).
#[doc(hidden)]
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_debugPanic<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    run(&mut env, |_| {
        with_backend(handle, |_| -> Res<()> { panic!("debugPanic called") })
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

/// `long[] migrateState(long, int state, boolean userKeysChange, Migrator migrator)`:
/// rewrites every entry of the state through `migrator.migrate(byte[]) -> byte[]`
/// (see `StateBackend::migrate_state`), a batch per call: in and out, each entry
/// `u32be(len) ‖ user key ‖ u32be(len) ‖ value`, as many out as in. Returns
/// `[entries, bytes read, bytes written]`. An exception the migrator throws is the one
/// Java sees.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_migrateState<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    state: jint,
    user_keys_change: jboolean,
    migrator: JObject<'l>,
) -> JLongArray<'l> {
    run(&mut env, |env| {
        let s = state_id(state)?;
        let mut call = |batch: &mut [MigrationEntry]| -> crate::Result<()> {
            let mut encoded = Vec::new();
            for e in batch.iter() {
                put_field(&mut encoded, &e.user_key);
                put_field(&mut encoded, &e.value);
            }
            let result = env
                .with_local_frame(4, |env| -> ::jni::errors::Result<Vec<u8>> {
                    let input = env.byte_array_from_slice(&encoded)?;
                    let output = env
                        .call_method(
                            &migrator,
                            jni_str!("migrate"),
                            jni_sig!("([B)[B"),
                            &[JValue::Object(&input)],
                        )?
                        .l()?;
                    let output = env.cast_local::<JByteArray>(output)?;
                    env.convert_byte_array(&output)
                })
                .map_err(|e| Error::invalid(format!("the state migration failed: {e}")))?;
            decode_migrated(&result, batch)
        };
        let stats = with_backend(handle, |c| {
            Ok(c.backend.migrate_state(s, user_keys_change, &mut call)?)
        })?;
        long_array(
            env,
            &[
                stats.entries as jlong,
                stats.bytes_read as jlong,
                stats.bytes_written as jlong,
            ],
        )
    })
}

/// Reads the migrator's answer into `batch`: one `u32be(len) ‖ user key ‖ u32be(len)
/// ‖ value` per entry, nothing more.
fn decode_migrated(mut bytes: &[u8], batch: &mut [MigrationEntry]) -> crate::Result<()> {
    let malformed = || Error::invalid("the state migrator returned a malformed batch");
    let field = |bytes: &mut &[u8]| -> crate::Result<Vec<u8>> {
        let len = bytes.get(..4).ok_or_else(malformed)?;
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        let value = bytes.get(4..4 + len).ok_or_else(malformed)?.to_vec();
        *bytes = &bytes[4 + len..];
        Ok(value)
    };
    for e in batch.iter_mut() {
        e.user_key = field(&mut bytes)?;
        e.value = field(&mut bytes)?;
    }
    if bytes.is_empty() {
        Ok(())
    } else {
        Err(malformed())
    }
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

// ---- registered buffers ---------------------------------------------------------------

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
