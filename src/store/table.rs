//! The heap store's hash table: copy-on-write at the granularity of segments.
//!
//! A table is a power-of-two number of segments, each a SwissTable (`hashbrown`)
//! behind an `Arc`. Cloning a table clones the segment pointers — what the
//! synchronous snapshot phase does — and a later write copies only the segment it
//! touches (`Arc::make_mut`), so the snapshot keeps its view while the live table
//! moves on. Keys and values of up to 22 bytes are stored inline in the slots;
//! longer ones are shared, so copying a segment never copies large payloads.

use hashbrown::HashTable;
use std::hash::BuildHasher;
use std::sync::Arc;

type Hasher = foldhash::fast::RandomState;

/// Segments split once they average this many entries.
const SEGMENT_TARGET: usize = 2048;
/// Bytes stored inline in a slot.
const INLINE: usize = 22;

/// A byte string stored inline when short, shared on the heap otherwise. 24 bytes.
#[derive(Clone)]
pub enum SmallBytes {
    Inline { len: u8, data: [u8; INLINE] },
    Shared(Arc<[u8]>),
}

impl SmallBytes {
    #[inline]
    pub fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..bytes.len()].copy_from_slice(bytes);
            SmallBytes::Inline {
                len: bytes.len() as u8,
                data,
            }
        } else {
            SmallBytes::Shared(bytes.into())
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, data } => &data[..*len as usize],
            SmallBytes::Shared(b) => b,
        }
    }

    /// Replaces the contents, reusing the allocation when it is unshared and fits.
    #[inline]
    pub fn set(&mut self, bytes: &[u8]) {
        if let SmallBytes::Shared(b) = self {
            if b.len() == bytes.len() {
                if let Some(slot) = Arc::get_mut(b) {
                    slot.copy_from_slice(bytes);
                    return;
                }
            }
        }
        *self = SmallBytes::new(bytes);
    }
}

impl std::fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02x?}", self.as_slice())
    }
}

type Segment<V> = HashTable<(SmallBytes, V)>;

/// A hash map from byte strings to `V` with O(segments) clones.
#[derive(Clone)]
pub struct CowTable<V> {
    segments: Vec<Arc<Segment<V>>>,
    /// log2 of the number of segments.
    bits: u32,
    len: usize,
    hasher: Hasher,
}

impl<V: Clone> CowTable<V> {
    pub fn with_hasher(hasher: Hasher) -> Self {
        CowTable {
            segments: vec![Arc::new(HashTable::new())],
            bits: 0,
            len: 0,
            hasher,
        }
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Segment of a hash: bits 32.. (hashbrown uses the low bits for the bucket and
    /// the top 7 for its tags, so these bits leave both well spread).
    #[inline]
    fn segment_of(&self, hash: u64) -> usize {
        ((hash >> 32) & ((1u64 << self.bits) - 1)) as usize
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        let h = self.hash(key);
        self.segments[self.segment_of(h)]
            .find(h, |(k, _)| k.as_slice() == key)
            .map(|(_, v)| v)
    }

    #[inline]
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// A mutable value; copies the entry's segment first if a snapshot shares it.
    /// A miss copies nothing.
    #[inline]
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let h = self.hash(key);
        let i = self.segment_of(h);
        let eq = |(k, _): &(SmallBytes, V)| k.as_slice() == key;
        self.segments[i].find(h, eq)?;
        Arc::make_mut(&mut self.segments[i])
            .find_mut(h, eq)
            .map(|(_, v)| v)
    }

    /// Inserts or replaces; returns the previous value.
    #[inline]
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        let h = self.hash(key);
        let i = self.segment_of(h);
        let hasher = &self.hasher;
        let segment = Arc::make_mut(&mut self.segments[i]);
        if let Some((_, v)) = segment.find_mut(h, |(k, _)| k.as_slice() == key) {
            return Some(std::mem::replace(v, value));
        }
        segment.insert_unique(h, (SmallBytes::new(key), value), |(k, _)| {
            hasher.hash_one(k.as_slice())
        });
        self.len += 1;
        if self.len > SEGMENT_TARGET << self.bits {
            self.split_segments();
        }
        None
    }

    /// Removes a key; a miss copies nothing.
    #[inline]
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let h = self.hash(key);
        let i = self.segment_of(h);
        let eq = |(k, _): &(SmallBytes, V)| k.as_slice() == key;
        self.segments[i].find(h, eq)?;
        let entry = Arc::make_mut(&mut self.segments[i])
            .find_entry(h, eq)
            .ok()?;
        let ((_, v), _) = entry.remove();
        self.len -= 1;
        Some(v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        self.segments
            .iter()
            .flat_map(|s| s.iter().map(|(k, v)| (k.as_slice(), v)))
    }

    /// Doubles the number of segments: segment i splits into i and i + 2^bits by the
    /// next hash bit. Segments a snapshot shares are copied, others moved.
    fn split_segments(&mut self) {
        let bit = 1u64 << (32 + self.bits);
        let per_segment = self.len >> self.bits;
        let old = std::mem::take(&mut self.segments);
        let mut low = Vec::with_capacity(old.len());
        let mut high = Vec::with_capacity(old.len());
        for segment in old {
            let mut a = HashTable::with_capacity(per_segment / 2 + 1);
            let mut b = HashTable::with_capacity(per_segment / 2 + 1);
            let entries: Vec<(SmallBytes, V)> = match Arc::try_unwrap(segment) {
                Ok(owned) => owned.into_iter().collect(),
                Err(shared) => shared.iter().cloned().collect(),
            };
            for (k, v) in entries {
                let h = self.hasher.hash_one(k.as_slice());
                let target = if h & bit == 0 { &mut a } else { &mut b };
                target.insert_unique(h, (k, v), |(k, _)| self.hasher.hash_one(k.as_slice()));
            }
            low.push(Arc::new(a));
            high.push(Arc::new(b));
        }
        low.extend(high);
        self.segments = low;
        self.bits += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        #[test]
        fn behaves_like_a_map_and_snapshots_stay_frozen(
            ops in prop::collection::vec((any::<bool>(), 0u16..3000, prop::collection::vec(any::<u8>(), 0..40)), 0..6000),
            snapshot_at in 0usize..6000,
        ) {
            let mut table: CowTable<SmallBytes> = CowTable::with_hasher(Hasher::default());
            let mut model = BTreeMap::new();
            let mut frozen = None;
            for (i, (put, k, v)) in ops.iter().enumerate() {
                if i == snapshot_at {
                    frozen = Some((table.clone(), model.clone()));
                }
                let key = k.to_be_bytes().repeat(1 + (*k as usize % 13));
                if *put {
                    table.insert(&key, SmallBytes::new(v));
                    model.insert(key, v.clone());
                } else {
                    prop_assert_eq!(table.remove(&key).map(|b| b.as_slice().to_vec()), model.remove(&key));
                }
            }
            let check = |t: &CowTable<SmallBytes>, m: &BTreeMap<Vec<u8>, Vec<u8>>| {
                assert_eq!(t.len(), m.len());
                let got: BTreeMap<Vec<u8>, Vec<u8>> =
                    t.iter().map(|(k, v)| (k.to_vec(), v.as_slice().to_vec())).collect();
                assert_eq!(&got, m);
                for (k, v) in m {
                    assert_eq!(t.get(k).map(SmallBytes::as_slice), Some(&v[..]));
                }
            };
            check(&table, &model);
            if let Some((t, m)) = frozen {
                check(&t, &m);
            }
        }
    }
}
