//! Iteration: the keys of a state (Flink's `getKeys`), and every entry of a
//! backend as a canonical savepoint holds it, in batches filling a direct buffer.

use super::args::{direct, input_fields, put_field, state_id, too_small};
use super::backend::with_backend;
use super::{run, unusable, Res};
use crate::ffi::handles::{HandleKind, HandleTable};
use crate::iter::{EntriesIter, Entry, KeyEntry, KeysIter};
use ::jni::objects::{JByteBuffer, JClass};
use ::jni::sys::{jboolean, jint, jlong};
use ::jni::EnvUnowned;
use std::iter::Peekable;
use std::sync::Mutex;

static KEY_ITERS: HandleTable<Mutex<Peekable<KeysIter>>> =
    HandleTable::new(HandleKind::JniKeysIter);
static ENTRY_ITERS: HandleTable<Mutex<Peekable<EntriesIter>>> =
    HandleTable::new(HandleKind::JniEntriesIter);

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
        KEY_ITERS
            .with(iter as u64, |it| {
                fill_batch(it, out, |e: &KeyEntry, item| {
                    put_field(item, &e.key);
                    put_field(item, &e.namespace);
                })
            })
            .map_err(|u| unusable(u, "the key iterator is closed", "the key iterator"))?
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

// ---- the entries of a canonical savepoint ----------------------------------------------

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
        ENTRY_ITERS
            .with(iter as u64, |it| {
                fill_batch(it, out, |e: &Entry, item| {
                    let Some((user_key, value)) = e.canonical() else {
                        return;
                    };
                    item.extend_from_slice(&e.key_group.to_be_bytes());
                    item.extend_from_slice(&e.state.to_be_bytes());
                    for field in [&e.key[..], &e.namespace[..], user_key, &value[..]] {
                        put_field(item, field);
                    }
                })
            })
            .map_err(|u| unusable(u, "the entry iterator is closed", "the entry iterator"))?
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
