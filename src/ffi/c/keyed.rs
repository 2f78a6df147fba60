//! Keyed state access: value, list, map and sorted set state, clear, namespace merge.
//!
//! Every access names the state id, the key group (`sb_key_group_for_hash`), the
//! key and the namespace; all are opaque bytes serialized by the caller.

use super::backend::{with_backend, CallbackScope};
use super::*;
use crate::codec::get_varint;

/// Copies the value of (key, namespace) in value state `state` into `buf` with the
/// required-size protocol. `SB_NOT_FOUND` (and `*len` = 0) if there is none.
#[no_mangle]
pub unsafe extern "C" fn sb_value_get(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    ns: sb_slice,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> sb_status {
    ffi_boundary!("sb_value_get", {
        non_null(len, "len")?;
        let (key, ns) = (bytes(key, "key")?, bytes(ns, "ns")?);
        with_backend(backend, |c| {
            if c.backend
                .value_get(state, key_group, key, ns, &mut c.scratch)?
            {
                copy_out(&c.scratch, buf, cap, len, "the value")
            } else {
                len.write(0);
                not_found()
            }
        })
    })
}

/// Sets the value of (key, namespace) in value state `state`.
#[no_mangle]
pub unsafe extern "C" fn sb_value_put(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    ns: sb_slice,
    value: sb_slice,
) -> sb_status {
    ffi_boundary!("sb_value_put", {
        let (key, ns, value) = (bytes(key, "key")?, bytes(ns, "ns")?, bytes(value, "value")?);
        with_backend(backend, |c| {
            c.backend.value_put(state, key_group, key, ns, value)?;
            Ok(SB_OK)
        })
    })
}

/// Removes the value of (key, namespace) in value state `state` (absent: no-op).
#[no_mangle]
pub unsafe extern "C" fn sb_value_delete(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    ns: sb_slice,
) -> sb_status {
    ffi_boundary!("sb_value_delete", {
        let (key, ns) = (bytes(key, "key")?, bytes(ns, "ns")?);
        with_backend(backend, |c| {
            c.backend.value_delete(state, key_group, key, ns)?;
            Ok(SB_OK)
        })
    })
}

/// Copies the list of (key, namespace) in list state `state`, in its encoded form
/// (`varint(len) ‖ bytes` per element; walk it with `sb_list_next`), into `buf`
/// with the required-size protocol. `SB_NOT_FOUND` (and `*len` = 0) if absent.
#[no_mangle]
pub unsafe extern "C" fn sb_list_get(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    ns: sb_slice,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> sb_status {
    ffi_boundary!("sb_list_get", {
        non_null(len, "len")?;
        let (key, ns) = (bytes(key, "key")?, bytes(ns, "ns")?);
        with_backend(backend, |c| {
            if c.backend
                .list_get_encoded(state, key_group, key, ns, &mut c.scratch)?
            {
                copy_out(&c.scratch, buf, cap, len, "the list")
            } else {
                len.write(0);
                not_found()
            }
        })
    })
}

/// Walks an encoded list (from `sb_list_get` or `sb_operator_state_get`): stores
/// the element at `*offset` in `*element` (borrowing `encoded`'s memory) and
/// advances `*offset`. Start with `*offset` = 0. `SB_NOT_FOUND` at the end;
/// `SB_INVALID_ARGUMENT` if the bytes are not a well-formed list.
#[no_mangle]
pub unsafe extern "C" fn sb_list_next(
    encoded: sb_slice,
    offset: *mut usize,
    element: *mut sb_slice,
) -> sb_status {
    ffi_boundary!("sb_list_next", {
        non_null(offset, "offset")?;
        non_null(element, "element")?;
        let encoded = bytes(encoded, "encoded")?;
        let at = *offset;
        let rest = encoded.get(at..).ok_or_else(|| {
            Fail::new(
                SB_INVALID_ARGUMENT,
                format!("offset {at} is past the end ({})", encoded.len()),
            )
        })?;
        if rest.is_empty() {
            return not_found();
        }
        let malformed = || {
            Fail::new(
                SB_INVALID_ARGUMENT,
                format!("malformed encoded list at offset {at}"),
            )
        };
        let (n, used) = get_varint(rest).ok_or_else(malformed)?;
        let n = usize::try_from(n).map_err(|_| malformed())?;
        let end = used
            .checked_add(n)
            .filter(|&e| e <= rest.len())
            .ok_or_else(malformed)?;
        element.write(sb_slice::of(&rest[used..end]));
        offset.write(at + end);
        Ok(SB_OK)
    })
}

/// Appends one element to the list of (key, namespace) in list state `state`.
#[no_mangle]
pub unsafe extern "C" fn sb_list_add(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    ns: sb_slice,
    element: sb_slice,
) -> sb_status {
    ffi_boundary!("sb_list_add", {
        let (key, ns, element) = (
            bytes(key, "key")?,
            bytes(ns, "ns")?,
            bytes(element, "element")?,
        );
        with_backend(backend, |c| {
            c.backend.list_add(state, key_group, key, ns, element)?;
            Ok(SB_OK)
        })
    })
}

/// Appends `n` elements (an array of slices, borrowed during the call); `n` = 0
/// changes nothing.
#[no_mangle]
pub unsafe extern "C" fn sb_list_add_all(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    ns: sb_slice,
    elements: *const sb_slice,
    n: usize,
) -> sb_status {
    ffi_boundary!("sb_list_add_all", {
        let (key, ns) = (bytes(key, "key")?, bytes(ns, "ns")?);
        let elements = slices(elements, n, "elements")?;
        with_backend(backend, |c| {
            c.backend
                .list_add_all(state, key_group, key, ns, &elements)?;
            Ok(SB_OK)
        })
    })
}

/// Appends elements given in the encoded list form (as `sb_list_get` returns it).
#[no_mangle]
pub unsafe extern "C" fn sb_list_add_encoded(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    ns: sb_slice,
    encoded: sb_slice,
) -> sb_status {
    ffi_boundary!("sb_list_add_encoded", {
        let (key, ns, encoded) = (
            bytes(key, "key")?,
            bytes(ns, "ns")?,
            bytes(encoded, "encoded")?,
        );
        with_backend(backend, |c| {
            c.backend
                .list_add_encoded(state, key_group, key, ns, encoded)?;
            Ok(SB_OK)
        })
    })
}

/// Replaces the list with `n` elements; `n` = 0 clears it.
#[no_mangle]
pub unsafe extern "C" fn sb_list_update(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    ns: sb_slice,
    elements: *const sb_slice,
    n: usize,
) -> sb_status {
    ffi_boundary!("sb_list_update", {
        let (key, ns) = (bytes(key, "key")?, bytes(ns, "ns")?);
        let elements = slices(elements, n, "elements")?;
        with_backend(backend, |c| {
            c.backend
                .list_update(state, key_group, key, ns, &elements)?;
            Ok(SB_OK)
        })
    })
}

/// Copies the value of `user_key` in the map of (key, namespace) into `buf` with
/// the required-size protocol. `SB_NOT_FOUND` (and `*len` = 0) if absent.
#[no_mangle]
pub unsafe extern "C" fn sb_map_get(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    ns: sb_slice,
    user_key: sb_slice,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> sb_status {
    ffi_boundary!("sb_map_get", {
        non_null(len, "len")?;
        let (key, ns, uk) = (
            bytes(key, "key")?,
            bytes(ns, "ns")?,
            bytes(user_key, "user_key")?,
        );
        with_backend(backend, |c| {
            if c.backend
                .map_get(state, key_group, key, ns, uk, &mut c.scratch)?
            {
                copy_out(&c.scratch, buf, cap, len, "the map value")
            } else {
                len.write(0);
                not_found()
            }
        })
    })
}

/// Sets `user_key` to `value` in the map of (key, namespace).
#[no_mangle]
pub unsafe extern "C" fn sb_map_put(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    ns: sb_slice,
    user_key: sb_slice,
    value: sb_slice,
) -> sb_status {
    ffi_boundary!("sb_map_put", {
        let (key, ns, uk, value) = (
            bytes(key, "key")?,
            bytes(ns, "ns")?,
            bytes(user_key, "user_key")?,
            bytes(value, "value")?,
        );
        with_backend(backend, |c| {
            c.backend.map_put(state, key_group, key, ns, uk, value)?;
            Ok(SB_OK)
        })
    })
}

/// Adds `element` to sorted set state `state` (`SB_STATE_SORTED_SET`) in
/// `key_group` (present: no-op). A sorted set keeps byte strings per key group in
/// byte order, as timers: serialize the time first, big-endian (sign bit flipped
/// if it can be negative), so that byte order is time order.
#[no_mangle]
pub unsafe extern "C" fn sb_set_add(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    element: sb_slice,
) -> sb_status {
    ffi_boundary!("sb_set_add", {
        let element = bytes(element, "element")?;
        with_backend(backend, |c| {
            c.backend.set_add(state, key_group, element)?;
            Ok(SB_OK)
        })
    })
}

/// Removes `element` from sorted set state `state` in `key_group` (absent: no-op).
#[no_mangle]
pub unsafe extern "C" fn sb_set_remove(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    element: sb_slice,
) -> sb_status {
    ffi_boundary!("sb_set_remove", {
        let element = bytes(element, "element")?;
        with_backend(backend, |c| {
            c.backend.set_remove(state, key_group, element)?;
            Ok(SB_OK)
        })
    })
}

/// Copies up to `limit` elements of sorted set state `state` in `key_group`, the
/// smallest above `*after` (NULL: from the smallest), ascending, into `buf` in the
/// list encoding (walk it with `sb_list_next`), with the required-size protocol;
/// `*len` = 0 if there are none. Page through a set by passing the last element
/// of one call as `after` of the next (the RocksDB backend seeks there, past the
/// elements removed before it).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sb_set_range(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    after: *const sb_slice,
    limit: usize,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> sb_status {
    ffi_boundary!("sb_set_range", {
        non_null(len, "len")?;
        let after = match after.as_ref() {
            Some(after) => Some(bytes(*after, "after")?),
            None => None,
        };
        with_backend(backend, |c| {
            c.scratch.clear();
            c.backend
                .set_range(state, key_group, after, limit, &mut c.scratch)?;
            copy_out(&c.scratch, buf, cap, len, "the elements")
        })
    })
}

/// Removes `user_key` from the map of (key, namespace) (absent: no-op).
#[no_mangle]
pub unsafe extern "C" fn sb_map_remove(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    ns: sb_slice,
    user_key: sb_slice,
) -> sb_status {
    ffi_boundary!("sb_map_remove", {
        let (key, ns, uk) = (
            bytes(key, "key")?,
            bytes(ns, "ns")?,
            bytes(user_key, "user_key")?,
        );
        with_backend(backend, |c| {
            c.backend.map_remove(state, key_group, key, ns, uk)?;
            Ok(SB_OK)
        })
    })
}

/// Whether the map of (key, namespace) has `user_key`: `*out` = true or false.
#[no_mangle]
pub unsafe extern "C" fn sb_map_contains(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    ns: sb_slice,
    user_key: sb_slice,
    out: *mut bool,
) -> sb_status {
    ffi_boundary!("sb_map_contains", {
        non_null(out, "out")?;
        let (key, ns, uk) = (
            bytes(key, "key")?,
            bytes(ns, "ns")?,
            bytes(user_key, "user_key")?,
        );
        let found = with_backend(backend, |c| {
            Ok(c.backend.map_contains(state, key_group, key, ns, uk)?)
        })?;
        out.write(found);
        Ok(SB_OK)
    })
}

/// Whether the map of (key, namespace) is empty (or absent): `*out` = true or false.
#[no_mangle]
pub unsafe extern "C" fn sb_map_is_empty(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    ns: sb_slice,
    out: *mut bool,
) -> sb_status {
    ffi_boundary!("sb_map_is_empty", {
        non_null(out, "out")?;
        let (key, ns) = (bytes(key, "key")?, bytes(ns, "ns")?);
        let empty = with_backend(backend, |c| {
            Ok(c.backend.map_is_empty(state, key_group, key, ns)?)
        })?;
        out.write(empty);
        Ok(SB_OK)
    })
}

/// Removes whatever (key, namespace) holds in state `state`, of any kind.
#[no_mangle]
pub unsafe extern "C" fn sb_clear(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    ns: sb_slice,
) -> sb_status {
    ffi_boundary!("sb_clear", {
        let (key, ns) = (bytes(key, "key")?, bytes(ns, "ns")?);
        with_backend(backend, |c| {
            c.backend.clear(state, key_group, key, ns)?;
            Ok(SB_OK)
        })
    })
}

/// Number of (key, namespace) entries over all states: `*out`.
#[no_mangle]
pub unsafe extern "C" fn sb_num_entries(backend: sb_backend, out: *mut u64) -> sb_status {
    ffi_boundary!("sb_num_entries", {
        non_null(out, "out")?;
        let n = with_backend(backend, |c| Ok(c.backend.num_entries()?))?;
        out.write(n);
        Ok(SB_OK)
    })
}

/// Compacts what `state` keeps on disk, now: the RocksDB backend writes its cache
/// back, flushes and compacts the state's data (tombstones and list appends
/// folded); the Memory and Fs backends have nothing to compact. Blocks until done.
#[no_mangle]
pub unsafe extern "C" fn sb_compact_state(backend: sb_backend, state: u32) -> sb_status {
    ffi_boundary!("sb_compact_state", {
        with_backend(backend, |c| {
            c.backend.compact_state(state)?;
            Ok(SB_OK)
        })
    })
}

/// The output of a reduce callback: a byte buffer owned by the library, valid only
/// during the callback. Fill it with `sb_buffer_append`.
pub struct sb_buffer {
    bytes: Vec<u8>,
}

/// Appends `len` bytes at `data` to `buffer`.
#[no_mangle]
pub unsafe extern "C" fn sb_buffer_append(
    buffer: *mut sb_buffer,
    data: *const u8,
    len: usize,
) -> sb_status {
    ffi_boundary!("sb_buffer_append", {
        non_null(buffer, "buffer")?;
        let data = bytes(sb_slice { data, len }, "data")?;
        (*buffer).bytes.extend_from_slice(data);
        Ok(SB_OK)
    })
}

/// A reduce (or aggregate) function for merging values: combines `acc` (the
/// accumulated value) with `next` and appends the result to `out` with
/// `sb_buffer_append`. Returns 0 on success; any other value fails the merge with
/// `SB_CALLBACK_FAILED`. The pointers are valid only during the call. It runs on
/// the calling thread with the backend locked: it must not call into that backend
/// (such calls fail with `SB_INVALID_ARGUMENT`).
pub type sb_reduce_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut std::ffi::c_void,
        acc: *const u8,
        acc_len: usize,
        next: *const u8,
        next_len: usize,
        out: *mut sb_buffer,
    ) -> i32,
>;

/// Merges the `n_sources` namespaces `sources` of (key) into namespace `target` and
/// clears them, as session windows do. Lists are concatenated and maps united (a
/// source's entry wins); value states need `reduce` (called with `ctx`), which may
/// be null for lists and maps. If `reduce` fails, sources merged before the failure
/// stay cleared (the core's semantics).
#[no_mangle]
pub unsafe extern "C" fn sb_merge_namespaces(
    backend: sb_backend,
    state: u32,
    key_group: u32,
    key: sb_slice,
    target: sb_slice,
    sources: *const sb_slice,
    n_sources: usize,
    reduce: sb_reduce_fn,
    ctx: *mut std::ffi::c_void,
) -> sb_status {
    ffi_boundary!("sb_merge_namespaces", {
        let (key, target) = (bytes(key, "key")?, bytes(target, "target")?);
        let sources = slices(sources, n_sources, "sources")?;
        let mut callback_status: Option<i32> = None;
        let result = with_backend(backend, |c| {
            let _scope = CallbackScope::enter(backend.id);
            let mut call = |acc: &[u8], next: &[u8]| -> crate::Result<Vec<u8>> {
                let f = reduce.expect("only called when present");
                let mut out = sb_buffer { bytes: Vec::new() };
                let rc = f(
                    ctx,
                    acc.as_ptr(),
                    acc.len(),
                    next.as_ptr(),
                    next.len(),
                    &mut out,
                );
                if rc != 0 {
                    callback_status = Some(rc);
                    return Err(Error::InvalidArgument(format!(
                        "the reduce function returned {rc}"
                    )));
                }
                Ok(out.bytes)
            };
            let reduce_fn: Option<&mut crate::backend::ReduceFn<'_>> = match reduce {
                Some(_) => Some(&mut call),
                None => None,
            };
            c.backend
                .merge_namespaces(state, key_group, key, target, &sources, reduce_fn)?;
            Ok(SB_OK)
        });
        match (result, callback_status) {
            (Err(fail), Some(_)) => Err(Fail::new(SB_CALLBACK_FAILED, fail.message)),
            (result, _) => result,
        }
    })
}
