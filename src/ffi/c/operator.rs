//! Operator (non-keyed) list state of a backend instance, with Flink's two
//! redistribution modes on restore.

use super::backend::with_backend;
use super::*;
use crate::codec::put_list_element;
use crate::Distribution;

/// Registers operator list state `name` (NUL-terminated UTF-8) with
/// `distribution` (`sb_distribution`); idempotent. Another distribution for a
/// known name is `SB_STATE_ERROR`.
#[no_mangle]
pub unsafe extern "C" fn sb_operator_state_register(
    backend: sb_backend,
    name: *const c_char,
    distribution: u32,
) -> sb_status {
    ffi_boundary!("sb_operator_state_register", {
        let name = string(name, "name")?;
        let mode = sb_distribution::from_u32(distribution)
            .map(Distribution::from)
            .ok_or_else(|| {
                Fail::new(
                    SB_INVALID_ARGUMENT,
                    format!("unknown distribution {distribution}"),
                )
            })?;
        with_backend(backend, |c| {
            c.backend.register_operator_state(name, mode)?;
            Ok(SB_OK)
        })
    })
}

/// Appends one element to operator list state `name`.
#[no_mangle]
pub unsafe extern "C" fn sb_operator_state_add(
    backend: sb_backend,
    name: *const c_char,
    element: sb_slice,
) -> sb_status {
    ffi_boundary!("sb_operator_state_add", {
        let name = string(name, "name")?;
        let element = bytes(element, "element")?;
        with_backend(backend, |c| {
            c.backend.operator_state().add(name, element)?;
            Ok(SB_OK)
        })
    })
}

/// Replaces the elements of operator list state `name` with `n` elements.
#[no_mangle]
pub unsafe extern "C" fn sb_operator_state_update(
    backend: sb_backend,
    name: *const c_char,
    elements: *const sb_slice,
    n: usize,
) -> sb_status {
    ffi_boundary!("sb_operator_state_update", {
        let name = string(name, "name")?;
        let elements = slices(elements, n, "elements")?;
        with_backend(backend, |c| {
            c.backend.operator_state().update(name, &elements)?;
            Ok(SB_OK)
        })
    })
}

/// Copies the elements of operator list state `name` as an encoded list (walk it
/// with `sb_list_next`) into `buf` with the required-size protocol. An empty list
/// is `SB_OK` with `*len` = 0; an unknown name is `SB_STATE_ERROR`.
#[no_mangle]
pub unsafe extern "C" fn sb_operator_state_get(
    backend: sb_backend,
    name: *const c_char,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> sb_status {
    ffi_boundary!("sb_operator_state_get", {
        non_null(len, "len")?;
        let name = string(name, "name")?;
        with_backend(backend, |c| {
            let mut encoded = std::mem::take(&mut c.scratch);
            encoded.clear();
            let elements = c.backend.operator_state().get(name);
            if let Ok(elements) = elements {
                for e in elements {
                    put_list_element(&mut encoded, e);
                }
            }
            let result = match elements {
                Ok(_) => copy_out(&encoded, buf, cap, len, "the operator state"),
                Err(e) => Err(e.into()),
            };
            c.scratch = encoded;
            result
        })
    })
}

/// Removes every element of operator list state `name`.
#[no_mangle]
pub unsafe extern "C" fn sb_operator_state_clear(
    backend: sb_backend,
    name: *const c_char,
) -> sb_status {
    ffi_boundary!("sb_operator_state_clear", {
        let name = string(name, "name")?;
        with_backend(backend, |c| {
            c.backend.operator_state().clear(name)?;
            Ok(SB_OK)
        })
    })
}
