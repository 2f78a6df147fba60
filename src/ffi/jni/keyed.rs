//! State accesses: value, list and map state, one call each, through the
//! channel's registered buffers (see the module docs of `jni`).

use super::args::{emit, fields, key_group, state_id, too_small};
use super::backend::with_channel;
use super::{access, Failure, ABSENT};
use ::jni::objects::JClass;
use ::jni::sys::{jboolean, jint, jlong};
use ::jni::EnvUnowned;

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
            let [key, target, sources] = fields(input, [key_len, target_len, sources_len])?;
            Ok(backend.merge_namespaces_encoded(
                state_id(state)?,
                key_group(kg)?,
                key,
                target,
                sources,
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
            let map = &mut scratch.map;
            backend.map_entries_sorted(state_id(state)?, key_group(kg)?, key, ns, map)?;
            let needed = map.content_bytes() + 8 * map.len();
            if needed > out.len() {
                return too_small(needed);
            }
            let mut at = 0;
            for (user_key, value) in map.iter() {
                for field in [user_key, value] {
                    out[at..at + 4].copy_from_slice(&(field.len() as u32).to_be_bytes());
                    out[at + 4..at + 4 + field.len()].copy_from_slice(field);
                    at += 4 + field.len();
                }
            }
            Ok(at as jint)
        })
    })
}

// ---- sorted set state (timers) ------------------------------------------------------

/// in: the element.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_setAdd<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    element_len: jint,
) {
    access(&mut env, || {
        with_channel(handle, channel, |backend, _, input, _| {
            let [element] = fields(input, [element_len])?;
            Ok(backend.set_add(state_id(state)?, key_group(kg)?, element)?)
        })
    })
}

/// in: the element.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_setRemove<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    element_len: jint,
) {
    access(&mut env, || {
        with_channel(handle, channel, |backend, _, input, _| {
            let [element] = fields(input, [element_len])?;
            Ok(backend.set_remove(state_id(state)?, key_group(kg)?, element)?)
        })
    })
}

/// in: the element to start after (`after_len` -1: from the smallest); out: up to
/// `limit` elements above it, ascending, in the list encoding. Returns the length
/// (0: none) or too-small.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_setRange<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
    channel: jint,
    state: jint,
    kg: jint,
    after_len: jint,
    limit: jint,
) -> jint {
    access(&mut env, || {
        with_channel(handle, channel, |backend, scratch, input, out| {
            let after = match after_len {
                -1 => None,
                len => Some(fields(input, [len])?[0]),
            };
            let limit = usize::try_from(limit)
                .map_err(|_| Failure::Argument(format!("a negative limit: {limit}")))?;
            scratch.bytes.clear();
            backend.set_range(
                state_id(state)?,
                key_group(kg)?,
                after,
                limit,
                &mut scratch.bytes,
            )?;
            emit(out, &scratch.bytes)
        })
    })
}
