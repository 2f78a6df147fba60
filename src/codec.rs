//! Small byte encodings shared by the stores and the snapshot format:
//! LEB128 varints, length-prefixed lists, and (key, namespace) composite keys.

/// Appends `v` as an unsigned LEB128 varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint from the front of `buf`: (value, bytes used), or None when
/// truncated or longer than 10 bytes.
#[inline]
pub fn get_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b < 0x80 {
            if i == 9 && b > 1 {
                return None;
            }
            return Some((v, i + 1));
        }
    }
    None
}

/// Appends one element to an encoded list: `varint(len) ‖ bytes`.
#[inline]
pub fn put_list_element(out: &mut Vec<u8>, element: &[u8]) {
    put_varint(out, element.len() as u64);
    out.extend_from_slice(element);
}

/// Iterates the elements of an encoded list. Stops at the first malformed element;
/// use [`validate_list`] on untrusted input first.
pub struct ListElements<'a> {
    rest: &'a [u8],
}

impl<'a> ListElements<'a> {
    pub fn new(encoded: &'a [u8]) -> Self {
        ListElements { rest: encoded }
    }
}

impl<'a> Iterator for ListElements<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, used) = get_varint(self.rest)?;
        let end = used.checked_add(usize::try_from(len).ok()?)?;
        if end > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let element = &self.rest[used..end];
        self.rest = &self.rest[end..];
        Some(element)
    }
}

/// Number of elements if `encoded` is a well-formed list, else None.
pub fn validate_list(encoded: &[u8]) -> Option<u64> {
    // Lists of fixed-length elements (numbers, ...) are common: if every length
    // byte sits where that length says, the check needs no dependent walk.
    if let Some(&first) = encoded.first() {
        let stride = first as usize + 1;
        if first < 0x80
            && encoded.len() % stride == 0
            && encoded.iter().step_by(stride).all(|&b| b == first)
        {
            return Some((encoded.len() / stride) as u64);
        }
    }
    let mut at = 0;
    let mut count = 0;
    while let Some(&first) = encoded.get(at) {
        // Elements under 128 bytes, the common case, have a one-byte length: this
        // check runs on every list write from Java.
        let end = if first < 0x80 {
            at + 1 + first as usize
        } else {
            let (len, used) = get_varint(&encoded[at..])?;
            (at + used).checked_add(usize::try_from(len).ok()?)?
        };
        if end > encoded.len() {
            return None;
        }
        at = end;
        count += 1;
    }
    Some(count)
}

/// Builds the composite key `varint(len(key)) ‖ key ‖ namespace` into `out`
/// (cleared first). The length prefix keeps (key, namespace) pairs unambiguous.
#[inline]
pub fn composite_key(out: &mut Vec<u8>, key: &[u8], ns: &[u8]) {
    out.clear();
    put_varint(out, key.len() as u64);
    out.extend_from_slice(key);
    out.extend_from_slice(ns);
}

/// Splits a composite key back into (key, namespace).
#[inline]
pub fn split_composite_key(composite: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, used) = get_varint(composite)?;
    let end = used.checked_add(usize::try_from(len).ok()?)?;
    (end <= composite.len()).then(|| (&composite[used..end], &composite[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `validate_list` as the plain element-by-element walk it must agree with.
    fn plain_walk(mut rest: &[u8]) -> Option<u64> {
        let mut count = 0;
        while !rest.is_empty() {
            let (len, used) = get_varint(rest)?;
            let end = used.checked_add(usize::try_from(len).ok()?)?;
            rest = rest.get(end..)?;
            count += 1;
        }
        Some(count)
    }

    proptest! {
        #[test]
        fn varint_round_trip(v: u64) {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            prop_assert_eq!(get_varint(&buf), Some((v, buf.len())));
        }

        #[test]
        fn list_round_trip(elements: Vec<Vec<u8>>) {
            let mut buf = Vec::new();
            for e in &elements { put_list_element(&mut buf, e); }
            prop_assert_eq!(validate_list(&buf), Some(elements.len() as u64));
            let back: Vec<Vec<u8>> = ListElements::new(&buf).map(<[u8]>::to_vec).collect();
            prop_assert_eq!(back, elements);
        }

        #[test]
        fn long_elements_round_trip(elements in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..400), 0..8)) {
            let mut buf = Vec::new();
            for e in &elements { put_list_element(&mut buf, e); }
            prop_assert_eq!(validate_list(&buf), Some(elements.len() as u64));
            // Without its last byte, a list whose last element has bytes is malformed.
            if elements.last().is_some_and(|last| !last.is_empty()) {
                prop_assert_eq!(validate_list(&buf[..buf.len() - 1]), None);
            }
        }

        #[test]
        fn fixed_length_elements_round_trip(len in 0usize..130, n in 1usize..50, flip in any::<prop::sample::Index>()) {
            let elements: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; len]).collect();
            let mut buf = Vec::new();
            for e in &elements { put_list_element(&mut buf, e); }
            prop_assert_eq!(validate_list(&buf), Some(n as u64));
            // With one length byte off, the result is what a plain walk finds.
            let at = flip.index(n) * (len + 1);
            buf[at] ^= 1;
            prop_assert_eq!(validate_list(&buf), plain_walk(&buf));
        }

        #[test]
        fn validation_agrees_with_a_plain_walk(bytes: Vec<u8>) {
            prop_assert_eq!(validate_list(&bytes), plain_walk(&bytes));
        }

        #[test]
        fn composite_round_trip(key: Vec<u8>, ns: Vec<u8>) {
            let mut buf = Vec::new();
            composite_key(&mut buf, &key, &ns);
            prop_assert_eq!(split_composite_key(&buf), Some((&key[..], &ns[..])));
        }
    }

    #[test]
    fn truncated_inputs() {
        assert_eq!(get_varint(&[0x80]), None);
        assert_eq!(validate_list(&[5, 1, 2]), None);
        assert_eq!(get_varint(&[0xff; 11]), None);
    }
}
