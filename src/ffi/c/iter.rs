//! Iterators: keys of a state, every entry of a backend, the entries of one map.
//!
//! An iterator reads a point-in-time view taken when it was created. Its items
//! borrow memory owned by the iterator, valid until the next call on that iterator
//! or its free. Once its backend is closed, an iterator fails with
//! `SB_INVALID_HANDLE`; it must still be freed.

use super::backend::{with_backend, BACKENDS};
use super::*;
use crate::codec::put_list_element;
use crate::ffi::handles::{HandleKind, HandleTable};
use crate::iter::{EntriesIter, Entry, EntryValue, KeyEntry, KeysIter};
use std::sync::Mutex;

/// An iterator over the keys of one state (`sb_keys_iter_new`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sb_keys_iter {
    pub id: u64,
}

/// An iterator over every entry of a backend (`sb_entries_iter_new`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sb_entries_iter {
    pub id: u64,
}

/// An iterator over the (user key, value) pairs of one map (`sb_map_iter_new`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sb_map_iter {
    pub id: u64,
}

/// One item of a keys iterator. The slices borrow the iterator's memory.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sb_key_entry {
    pub key_group: u32,
    pub key: sb_slice,
    pub ns: sb_slice,
}

/// One item of an entries iterator. The slices borrow the iterator's memory.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sb_entry {
    pub key_group: u32,
    pub state: u32,
    /// One of `sb_state_kind`.
    pub kind: u32,
    pub key: sb_slice,
    pub ns: sb_slice,
    /// Map state: the user key (one item per user key). Empty otherwise.
    pub user_key: sb_slice,
    /// Value state: the value. List state: the encoded list (`sb_list_next`).
    /// Map state: the value of `user_key`.
    pub value: sb_slice,
}

/// An iterator's state, tied to the backend it came from.
struct Cursor<I, T> {
    backend: u64,
    /// None once the iterator is exhausted or its backend is gone.
    inner: Mutex<Option<(I, Option<T>)>>,
}

static KEYS_ITERS: HandleTable<Cursor<KeysIter, KeyEntry>> =
    HandleTable::new(HandleKind::CKeysIter);
static ENTRIES_ITERS: HandleTable<Cursor<EntriesIter, (Entry, Vec<u8>)>> =
    HandleTable::new(HandleKind::CEntriesIter);
/// A map's (user key, value) pairs, read eagerly (one map is small by contract).
type MapEntry = (Vec<u8>, Vec<u8>);

static MAP_ITERS: HandleTable<Cursor<std::vec::IntoIter<MapEntry>, MapEntry>> =
    HandleTable::new(HandleKind::CMapIter);

/// Advances a cursor: stores the next item (fallibly produced by `next`) in the
/// cursor and hands it to `emit`.
fn advance<I, T>(
    table: &HandleTable<Cursor<I, T>>,
    id: u64,
    next: impl FnOnce(&mut I) -> Option<crate::Result<T>>,
    emit: impl FnOnce(&T),
) -> Outcome {
    let cursor = table.get(id).ok_or_else(|| {
        Fail::new(
            SB_INVALID_HANDLE,
            "the iterator handle is freed or was never created",
        )
    })?;
    let mut inner = cursor
        .inner
        .lock()
        .map_err(|_| Fail::new(SB_POISONED, "an earlier call panicked using this iterator"))?;
    if !BACKENDS.contains(cursor.backend) {
        // Release the view now: it may hold resources of the closed backend.
        *inner = None;
        return Err(Fail::new(
            SB_INVALID_HANDLE,
            "the iterator's backend has been closed",
        ));
    }
    let Some((iter, current)) = inner.as_mut() else {
        return not_found();
    };
    match next(iter) {
        None => {
            *inner = None;
            not_found()
        }
        Some(Err(e)) => {
            *inner = None;
            Err(e.into())
        }
        Some(Ok(item)) => {
            emit(current.insert(item));
            Ok(SB_OK)
        }
    }
}

fn free<I, T>(table: &HandleTable<Cursor<I, T>>, id: u64) -> Outcome {
    if id == 0 {
        return Ok(SB_OK);
    }
    match table.remove(id) {
        Some(_) => Ok(SB_OK),
        None => Err(Fail::new(
            SB_INVALID_HANDLE,
            "the iterator handle is already freed or was never created",
        )),
    }
}

fn cursor<I, T>(backend: sb_backend, iter: I) -> Cursor<I, T> {
    Cursor {
        backend: backend.id,
        inner: Mutex::new(Some((iter, None))),
    }
}

/// Iterates the keys of state `state` that have an entry in namespace `ns`, key
/// group by key group. `*out` is a new iterator; free it with `sb_keys_iter_free`.
#[no_mangle]
pub unsafe extern "C" fn sb_keys_iter_new(
    backend: sb_backend,
    state: u32,
    ns: sb_slice,
    out: *mut sb_keys_iter,
) -> sb_status {
    ffi_boundary!("sb_keys_iter_new", {
        non_null(out, "out")?;
        let ns = bytes(ns, "ns")?;
        let iter = with_backend(backend, |c| Ok(c.backend.keys(state, ns)?))?;
        out.write(sb_keys_iter {
            id: KEYS_ITERS.insert(cursor(backend, iter)),
        });
        Ok(SB_OK)
    })
}

/// Iterates every (key, namespace) of state `state`. Free with `sb_keys_iter_free`.
#[no_mangle]
pub unsafe extern "C" fn sb_keys_and_namespaces_iter_new(
    backend: sb_backend,
    state: u32,
    out: *mut sb_keys_iter,
) -> sb_status {
    ffi_boundary!("sb_keys_and_namespaces_iter_new", {
        non_null(out, "out")?;
        let iter = with_backend(backend, |c| Ok(c.backend.keys_and_namespaces(state)?))?;
        out.write(sb_keys_iter {
            id: KEYS_ITERS.insert(cursor(backend, iter)),
        });
        Ok(SB_OK)
    })
}

/// Stores the next item in `*out` (valid until the next call on this iterator or
/// its free). `SB_NOT_FOUND` at the end.
#[no_mangle]
pub unsafe extern "C" fn sb_keys_iter_next(
    iter: sb_keys_iter,
    out: *mut sb_key_entry,
) -> sb_status {
    ffi_boundary!("sb_keys_iter_next", {
        non_null(out, "out")?;
        advance(&KEYS_ITERS, iter.id, Iterator::next, |e| {
            out.write(sb_key_entry {
                key_group: e.key_group,
                key: sb_slice::of(&e.key),
                ns: sb_slice::of(&e.namespace),
            })
        })
    })
}

/// Frees a keys iterator. The zero handle is a no-op; a second free is
/// `SB_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn sb_keys_iter_free(iter: sb_keys_iter) -> sb_status {
    ffi_boundary!("sb_keys_iter_free", { free(&KEYS_ITERS, iter.id) })
}

/// Iterates every entry of every state, in key-group order. Free with
/// `sb_entries_iter_free`.
#[no_mangle]
pub unsafe extern "C" fn sb_entries_iter_new(
    backend: sb_backend,
    out: *mut sb_entries_iter,
) -> sb_status {
    ffi_boundary!("sb_entries_iter_new", {
        non_null(out, "out")?;
        let iter = with_backend(backend, |c| Ok(c.backend.entries()?))?;
        out.write(sb_entries_iter {
            id: ENTRIES_ITERS.insert(cursor(backend, iter)),
        });
        Ok(SB_OK)
    })
}

/// Stores the next entry in `*out` (valid until the next call on this iterator or
/// its free). `SB_NOT_FOUND` at the end.
#[no_mangle]
pub unsafe extern "C" fn sb_entries_iter_next(
    iter: sb_entries_iter,
    out: *mut sb_entry,
) -> sb_status {
    ffi_boundary!("sb_entries_iter_next", {
        non_null(out, "out")?;
        let next = |it: &mut EntriesIter| {
            it.next().map(|r| {
                r.map(|e| {
                    // A list is handed out in its encoded form, as sb_list_get does.
                    let mut encoded = Vec::new();
                    if let EntryValue::List(elements) = &e.value {
                        for el in elements {
                            put_list_element(&mut encoded, el);
                        }
                    }
                    (e, encoded)
                })
            })
        };
        advance(&ENTRIES_ITERS, iter.id, next, |(e, encoded)| {
            let (kind, user_key, value) = match &e.value {
                EntryValue::Value(v) => (SB_STATE_VALUE, sb_slice::EMPTY, sb_slice::of(v)),
                EntryValue::List(_) => (SB_STATE_LIST, sb_slice::EMPTY, sb_slice::of(encoded)),
                EntryValue::MapEntry { user_key, value } => {
                    (SB_STATE_MAP, sb_slice::of(user_key), sb_slice::of(value))
                }
            };
            out.write(sb_entry {
                key_group: e.key_group,
                state: e.state,
                kind: kind as u32,
                key: sb_slice::of(&e.key),
                ns: sb_slice::of(&e.namespace),
                user_key,
                value,
            })
        })
    })
}

/// Frees an entries iterator (zero: no-op; twice: `SB_INVALID_HANDLE`).
#[no_mangle]
pub extern "C" fn sb_entries_iter_free(iter: sb_entries_iter) -> sb_status {
    ffi_boundary!("sb_entries_iter_free", { free(&ENTRIES_ITERS, iter.id) })
}

/// Iterates the (user key, value) pairs of the map of (key, namespace), sorted by
/// user key. Free with `sb_map_iter_free`.
#[no_mangle]
pub unsafe extern "C" fn sb_map_iter_new(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    ns: sb_slice,
    out: *mut sb_map_iter,
) -> sb_status {
    ffi_boundary!("sb_map_iter_new", {
        non_null(out, "out")?;
        let (key, ns) = (bytes(key, "key")?, bytes(ns, "ns")?);
        let entries = with_backend(backend, |c| {
            Ok(c.backend.map_entries(state, key_group, key, ns)?)
        })?;
        out.write(sb_map_iter {
            id: MAP_ITERS.insert(cursor(backend, entries.into_iter())),
        });
        Ok(SB_OK)
    })
}

/// Stores the next pair in `*user_key` and `*value` (valid until the next call on
/// this iterator or its free). `SB_NOT_FOUND` at the end.
#[no_mangle]
pub unsafe extern "C" fn sb_map_iter_next(
    iter: sb_map_iter,
    user_key: *mut sb_slice,
    value: *mut sb_slice,
) -> sb_status {
    ffi_boundary!("sb_map_iter_next", {
        non_null(user_key, "user_key")?;
        non_null(value, "value")?;
        advance(
            &MAP_ITERS,
            iter.id,
            |it| it.next().map(Ok),
            |(k, v)| {
                user_key.write(sb_slice::of(k));
                value.write(sb_slice::of(v));
            },
        )
    })
}

/// Frees a map iterator (zero: no-op; twice: `SB_INVALID_HANDLE`).
#[no_mangle]
pub extern "C" fn sb_map_iter_free(iter: sb_map_iter) -> sb_status {
    ffi_boundary!("sb_map_iter_free", { free(&MAP_ITERS, iter.id) })
}
