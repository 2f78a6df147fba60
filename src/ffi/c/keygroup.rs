//! Key-group assignment, bit for bit as Flink's `KeyGroupRangeAssignment`.

use super::*;
use crate::keygroup;

/// The key group of a key whose (Java `hashCode()`-style) hash is `key_hash`, for
/// `max_parallelism` key groups: `*out`.
#[no_mangle]
pub unsafe extern "C" fn sb_key_group_for_hash(
    key_hash: i32,
    max_parallelism: u32,
    out: *mut u32,
) -> sb_status {
    ffi_boundary!("sb_key_group_for_hash", {
        non_null(out, "out")?;
        out.write(keygroup::key_group_for_hash(key_hash, max_parallelism)?);
        Ok(SB_OK)
    })
}

/// The key-group range (inclusive) that operator `operator_index` of `parallelism`
/// owns: `*start`, `*end`.
#[no_mangle]
pub unsafe extern "C" fn sb_key_group_range_for_operator(
    max_parallelism: u32,
    parallelism: u32,
    operator_index: u32,
    start: *mut u32,
    end: *mut u32,
) -> sb_status {
    ffi_boundary!("sb_key_group_range_for_operator", {
        non_null(start, "start")?;
        non_null(end, "end")?;
        let range = keygroup::range_for_operator(max_parallelism, parallelism, operator_index)?;
        start.write(range.start());
        end.write(range.end());
        Ok(SB_OK)
    })
}

/// The index of the operator (of `parallelism`) that owns `key_group`: `*out`.
#[no_mangle]
pub unsafe extern "C" fn sb_operator_for_key_group(
    max_parallelism: u32,
    parallelism: u32,
    key_group: u32,
    out: *mut u32,
) -> sb_status {
    ffi_boundary!("sb_operator_for_key_group", {
        non_null(out, "out")?;
        out.write(keygroup::operator_for_key_group(
            max_parallelism,
            parallelism,
            key_group,
        )?);
        Ok(SB_OK)
    })
}

/// Flink's default max parallelism for `parallelism`: `*out`.
#[no_mangle]
pub unsafe extern "C" fn sb_default_max_parallelism(parallelism: u32, out: *mut u32) -> sb_status {
    ffi_boundary!("sb_default_max_parallelism", {
        put(out, keygroup::default_max_parallelism(parallelism), "out")?;
        Ok(SB_OK)
    })
}
