//! Argument conversion: direct buffers and the fields in them, result codes,
//! ids, and Java arrays.

use super::{Failure, Res};
use crate::state::{StateId, StateKind};
use ::jni::objects::{JByteBuffer, JLongArray, JObjectArray, JString};
use ::jni::sys::{jint, jlong};
use ::jni::Env;

/// The address and capacity of a direct buffer's memory. The memory is Java's: valid while
/// the buffer object is reachable (it is, for the duration of the native call) and used by
/// one thread at a time (Java's buffers belong to the task thread).
#[inline]
pub(super) fn direct(env: &Env<'_>, buf: &JByteBuffer<'_>) -> Res<(*mut u8, usize)> {
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
#[inline]
pub(super) fn direct_bytes<'b>(env: &Env<'_>, buf: &'b JByteBuffer<'_>) -> Res<&'b [u8]> {
    let (ptr, cap) = direct(env, buf)?;
    // SAFETY: see `direct`; Java does not write the buffer during the call.
    Ok(unsafe { std::slice::from_raw_parts(ptr, cap) })
}

#[inline]
pub(super) fn len_of(len: jint, what: &str) -> Res<usize> {
    usize::try_from(len).map_err(|_| Failure::Argument(format!("negative {what} length {len}")))
}

/// Splits the first `lens.iter().sum()` bytes of `input` into consecutive fields.
#[inline]
pub(super) fn fields<const N: usize>(input: &[u8], lens: [jint; N]) -> Res<[&[u8]; N]> {
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
#[inline]
pub(super) fn input_fields<'b, const N: usize>(
    env: &Env<'_>,
    input: &'b JByteBuffer<'_>,
    lens: [jint; N],
) -> Res<[&'b [u8]; N]> {
    fields(direct_bytes(env, input)?, lens)
}

/// The code for "the output buffer needs `needed` bytes".
#[cold]
pub(super) fn too_small(needed: usize) -> Res<jint> {
    i32::try_from(needed)
        .ok()
        .and_then(|n| n.checked_add(2))
        .map(|n| -n)
        .ok_or_else(|| Failure::Argument(format!("a result of {needed} bytes exceeds 2 GiB")))
}

/// Copies `bytes` to `out`: its length, or the too-small code.
#[inline]
pub(super) fn emit(out: &mut [u8], bytes: &[u8]) -> Res<jint> {
    if bytes.len() > out.len() {
        return too_small(bytes.len());
    }
    out[..bytes.len()].copy_from_slice(bytes);
    Ok(bytes.len() as jint)
}

#[inline]
pub(super) fn kind_of(kind: jint) -> Res<StateKind> {
    u8::try_from(kind)
        .ok()
        .and_then(StateKind::from_u8)
        .ok_or_else(|| Failure::Argument(format!("unknown state kind {kind}")))
}

#[inline]
pub(super) fn key_group(kg: jint) -> Res<u32> {
    u32::try_from(kg).map_err(|_| Failure::Argument(format!("negative key group {kg}")))
}

#[inline]
pub(super) fn state_id(s: jint) -> Res<StateId> {
    StateId::try_from(s).map_err(|_| Failure::Argument(format!("negative state id {s}")))
}

#[inline]
pub(super) fn as_i8(bytes: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size and alignment.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len()) }
}

#[inline]
pub(super) fn as_i8_mut(bytes: &mut [u8]) -> &mut [i8] {
    // SAFETY: u8 and i8 have the same size and alignment.
    unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), bytes.len()) }
}

/// Appends `u32be(len) ‖ bytes`.
#[inline]
pub(super) fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A Java `String[]` of `names`.
pub(super) fn string_array<'l>(
    env: &mut Env<'l>,
    names: &[String],
) -> Res<JObjectArray<'l, JString<'l>>> {
    let array = JObjectArray::<JString>::new(env, names.len(), JString::null())?;
    for (i, name) in names.iter().enumerate() {
        let s = JString::from_str(env, name)?;
        array.set_element(env, i, &s)?;
        env.delete_local_ref(s);
    }
    Ok(array)
}

/// A Java `long[]` of `values`.
pub(super) fn long_array<'l>(env: &mut Env<'l>, values: &[jlong]) -> Res<JLongArray<'l>> {
    let array = JLongArray::new(env, values.len())?;
    array.set_region(env, 0, values)?;
    Ok(array)
}

/// A checkpoint id from Java's `long`.
pub(super) fn checkpoint_id(id: jlong) -> Res<u64> {
    u64::try_from(id).map_err(|_| Failure::Argument(format!("checkpoint id {id}")))
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
    fn too_small_codes_round_trip() {
        assert_eq!(too_small(0).unwrap(), -2);
        assert_eq!(too_small(100).unwrap(), -102);
        assert!(too_small(usize::MAX).is_err());
        let mut out = [0u8; 2];
        assert_eq!(emit(&mut out, b"abc").unwrap(), -5);
        assert_eq!(emit(&mut out, b"ab").unwrap(), 2);
    }
}
