//! The cache's entries and the hash tables (layers) that hold them, with what they
//! take in memory.

use crate::state::StateId;
use crate::store::huge_pages::HugePages;
use hashbrown::HashTable;

/// Bytes of the state id in front of a cache key (big-endian: keys sort by state).
pub(super) const STATE_LEN: usize = 4;

/// What an entry says about its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// The key holds the payload.
    Present,
    /// The key holds nothing.
    Absent,
    /// List elements appended to whatever lies below (RocksDB's merge operands). A
    /// clean `Append` has no payload: it stands for what lies below.
    Append,
}

/// One cached key: `state ‖ DB key ‖ payload`, in its slot when short.
pub(super) struct Entry {
    /// The key's hash: growing the table and finding dirty entries need not read the key.
    pub hash: u64,
    /// The write-back job that carries this entry's value to RocksDB, while it may
    /// not have landed: until it has, the entry is all the cache knows of it and
    /// is not evicted (0: none).
    pub pin: u64,
    bytes: Bytes,
    key_len: u32,
    pub kind: Kind,
    /// Not yet handed to the writer.
    pub dirty: bool,
    /// Used since the last eviction (CLOCK's reference bit).
    pub used: bool,
}

/// Bytes of `key ‖ payload` kept in the slot itself.
const INLINE: usize = 38;

/// `key ‖ payload`: in the slot when short (the keys and values of most states:
/// no allocation, and a probe compares the key without leaving the table), else
/// allocated.
enum Bytes {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Vec<u8>),
}

impl Bytes {
    fn new(head: &[u8], tail: &[u8]) -> Bytes {
        let len = head.len() + tail.len();
        if len <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..head.len()].copy_from_slice(head);
            buf[head.len()..len].copy_from_slice(tail);
            Bytes::Inline {
                len: len as u8,
                buf,
            }
        } else {
            let mut v = Vec::with_capacity(len);
            v.extend_from_slice(head);
            v.extend_from_slice(tail);
            Bytes::Heap(v)
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Inline { len, buf } => &buf[..*len as usize],
            Bytes::Heap(v) => v,
        }
    }

    /// Bytes allocated outside the slot.
    fn heap_capacity(&self) -> usize {
        match self {
            Bytes::Inline { .. } => 0,
            Bytes::Heap(v) => v.capacity(),
        }
    }

    /// Keeps the first `keep` bytes and puts `tail` after them.
    fn replace_tail(&mut self, keep: usize, tail: &[u8]) {
        let len = keep + tail.len();
        match self {
            Bytes::Inline { len: l, buf } if len <= INLINE => {
                buf[keep..len].copy_from_slice(tail);
                *l = len as u8;
            }
            Bytes::Heap(v) if len > INLINE => {
                v.truncate(keep);
                v.extend_from_slice(tail);
                if v.capacity() > 2 * v.len() + 64 {
                    // Much shorter than before (a long list's new elements).
                    v.shrink_to_fit();
                }
            }
            _ => *self = Bytes::new(&self.as_slice()[..keep], tail),
        }
    }

    /// Appends `more`, growing allocations geometrically (lists grow by appends).
    fn append(&mut self, more: &[u8]) {
        match self {
            Bytes::Heap(v) => v.extend_from_slice(more),
            Bytes::Inline { len, .. } if *len as usize + more.len() <= INLINE => {
                let keep = *len as usize;
                self.replace_tail(keep, more)
            }
            Bytes::Inline { .. } => {
                let old = self.as_slice();
                let mut v = Vec::with_capacity((old.len() + more.len()).max(2 * INLINE));
                v.extend_from_slice(old);
                v.extend_from_slice(more);
                *self = Bytes::Heap(v);
            }
        }
    }
}

/// What the allocator takes for `capacity` bytes (glibc: an 8-byte header,
/// 16-byte steps, 32 bytes at least).
pub(super) fn heap_bytes(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        (capacity + 8).next_multiple_of(16).max(32)
    }
}

/// What a table with room for `capacity` entries of `slot` bytes takes: a slot and
/// a control byte per bucket (hashbrown fills at most 7/8 of them).
pub(super) fn table_bytes(capacity: usize, slot: usize) -> usize {
    let buckets = match capacity {
        0 => return 0,
        c if c < 8 => c + 1,
        c => c / 7 * 8,
    };
    buckets * (slot + 1) + 16
}

/// Bytes of an entry's slot in a table.
pub(super) const SLOT: usize = std::mem::size_of::<Entry>();
/// How many entries of `heap` allocated bytes each fit in `room` bytes: tables
/// have a power of two of buckets, at most 7/8 of them used, and `Layer::tidy`
/// rebuilds them with a third more room than entries.
pub(super) fn entries_within(room: usize, heap: usize) -> usize {
    let mut buckets = 1usize << 40;
    while buckets > 16 {
        let entries = buckets / 8 * 7 / 4 * 3;
        if buckets * (SLOT + 1) + entries * heap <= room {
            return entries;
        }
        buckets /= 2;
    }
    0
}

impl Entry {
    pub fn new(hash: u64, key: &[u8], kind: Kind, payload: &[u8], dirty: bool) -> Entry {
        Entry {
            hash,
            pin: 0,
            bytes: Bytes::new(key, payload),
            key_len: key.len() as u32,
            kind,
            dirty,
            used: true,
        }
    }

    pub fn key(&self) -> &[u8] {
        &self.bytes.as_slice()[..self.key_len as usize]
    }

    /// Whether this is the entry of `key`, whose hash is `hash`.
    pub fn is(&self, hash: u64, key: &[u8]) -> bool {
        self.hash == hash && self.key() == key
    }

    pub fn payload(&self) -> &[u8] {
        &self.bytes.as_slice()[self.key_len as usize..]
    }

    /// The allocator's bytes of this entry beyond its slot.
    pub fn heap(&self) -> usize {
        heap_bytes(self.bytes.heap_capacity())
    }

    pub fn set(&mut self, kind: Kind, payload: &[u8]) {
        self.bytes.replace_tail(self.key_len as usize, payload);
        self.kind = kind;
    }

    pub fn extend(&mut self, elements: &[u8]) {
        self.bytes.append(elements);
    }
}

pub(super) fn state_of(key: &[u8]) -> StateId {
    StateId::from_be_bytes(key[..STATE_LEN].try_into().expect("state id"))
}

/// A hash table of entries and what they cost.
pub(super) struct Layer {
    pub table: HashTable<Entry, HugePages>,
    pub cost: Cost,
}

impl Default for Layer {
    fn default() -> Self {
        Layer {
            table: HashTable::new_in(HugePages),
            cost: Cost::default(),
        }
    }
}

/// What the entries of a layer cost.
#[derive(Default)]
pub(super) struct Cost {
    /// The entries' allocations.
    pub heap: usize,
    /// The dirty entries' allocations and slots.
    pub dirty_bytes: usize,
    /// Hashes of the dirty entries, so that a write-back visits only those.
    pub dirty: Vec<u64>,
    /// Entries removed since the table was last built (see `Layer::tidy`).
    pub removed: usize,
}

impl Cost {
    /// Whether a quarter or more of a table's `len` entries are dirty.
    pub fn mostly_dirty(&self, len: usize) -> bool {
        self.dirty.len() * 4 >= len
    }

    /// Accounts for a change of `e` (hash `h`), whose allocation was `before` bytes
    /// and which was dirty or not.
    pub fn charge(&mut self, h: u64, before: usize, was_dirty: bool, e: &Entry) {
        self.heap = self.heap - before + e.heap();
        if was_dirty {
            self.dirty_bytes -= before + SLOT;
        } else if e.dirty {
            self.dirty.push(h);
        }
        if e.dirty {
            self.dirty_bytes += e.heap() + SLOT;
        }
    }

    /// Accounts for a new entry `e` (hash `h`).
    pub fn charge_new(&mut self, h: u64, e: &Entry) {
        self.charge(h, 0, false, e);
    }

    /// Accounts for the removal of `e`.
    pub fn discharge(&mut self, e: &Entry) {
        self.heap -= e.heap();
        if e.dirty {
            self.dirty_bytes -= e.heap() + SLOT;
        }
        self.removed += 1;
    }
}

impl Layer {
    /// Everything this layer takes in memory: its table, its entries, its list of
    /// dirty hashes.
    pub fn bytes(&self) -> usize {
        table_bytes(self.table.capacity(), SLOT) + self.cost.heap + self.cost.dirty.capacity() * 8
    }

    pub fn find(&self, h: u64, key: &[u8]) -> Option<&Entry> {
        self.table.find(h, |e| e.is(h, key))
    }

    /// The dirty entries, each once.
    pub fn dirty_entries(&self) -> Box<dyn Iterator<Item = &Entry> + '_> {
        if self.cost.mostly_dirty(self.table.len()) {
            // A walk over the whole table is sequential: cheaper than one probe each.
            return Box::new(self.table.iter().filter(|e| e.dirty));
        }
        // An entry dirtied twice is listed twice.
        let mut hashes = self.cost.dirty.clone();
        hashes.sort_unstable();
        hashes.dedup();
        Box::new(hashes.into_iter().flat_map(move |h| {
            self.table
                .iter_hash(h)
                .filter(move |e| e.dirty && e.hash == h)
        }))
    }

    /// Marks every dirty entry handed to write-back job `job`: a value becomes clean
    /// and pinned to the job; appended elements become a clean, empty `Append`
    /// (what RocksDB will hold), pinned too.
    pub fn mark_written(&mut self, job: u64) {
        let Layer { table, cost } = self;
        let mut heap = cost.heap;
        let mut mark = |e: &mut Entry| {
            if !e.dirty {
                return;
            }
            let before = e.heap();
            e.dirty = false;
            e.pin = job;
            if e.kind == Kind::Append {
                e.set(Kind::Append, &[]);
            }
            heap = heap - before + e.heap();
        };
        if cost.mostly_dirty(table.len()) {
            table.iter_mut().for_each(mark);
        } else {
            for h in &cost.dirty {
                table
                    .iter_hash_mut(*h)
                    .filter(|e| e.hash == *h)
                    .for_each(&mut mark);
            }
        }
        cost.heap = heap;
        cost.dirty.clear();
        cost.dirty_bytes = 0;
    }

    /// Rebuilds the table once many entries were removed from it, with room for a
    /// third more (a cache at its bound refills what eviction freed). A removed
    /// entry may leave its slot marked deleted, and a probe for an absent key walks
    /// past such slots; hashbrown clears them only when inserts fill the table. And
    /// the rebuilt table is smaller when eviction emptied it: its memory is the
    /// cache's too.
    pub fn tidy(&mut self) {
        let len = self.table.len();
        if self.cost.removed < 1024 || self.cost.removed < len / 4 {
            return;
        }
        // Never larger than it was: eviction left about as many entries as the
        // cache's size allows, and a third more room than that could double it.
        let capacity = (len + len / 3).min(self.table.capacity());
        let mut table = HashTable::with_capacity_in(capacity, HugePages);
        for e in std::mem::replace(&mut self.table, HashTable::new_in(HugePages)) {
            table.insert_unique(e.hash, e, |e| e.hash);
        }
        self.table = table;
        self.cost.removed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_sizes_follow_glibc() {
        assert_eq!(heap_bytes(0), 0);
        assert_eq!(heap_bytes(1), 32);
        assert_eq!(heap_bytes(24), 32);
        assert_eq!(heap_bytes(25), 48);
        assert_eq!(heap_bytes(1000), 1008);
    }

    #[test]
    fn short_entries_live_in_their_slot() {
        assert_eq!(SLOT, 64);
        let mut e = Entry::new(1, b"key", Kind::Present, b"v", true);
        assert_eq!(
            (e.key(), e.payload(), e.heap()),
            (&b"key"[..], &b"v"[..], 0)
        );
        e.set(Kind::Present, &[7; 35]);
        assert_eq!(
            (e.key(), e.payload(), e.heap()),
            (&b"key"[..], &[7; 35][..], 0)
        );
        e.extend(b"x");
        assert_eq!(e.payload(), [&[7; 35][..], b"x"].concat());
        assert!(e.heap() >= 2 * INLINE);
        e.set(Kind::Append, b"short again");
        assert_eq!((e.payload(), e.heap()), (&b"short again"[..], 0));
        let long = vec![3u8; 1000];
        e.set(Kind::Present, &long);
        assert_eq!((e.key(), e.payload()), (&b"key"[..], &long[..]));
        e.set(Kind::Present, &long[..500]);
        assert_eq!(e.payload(), &long[..500]);
    }

    #[test]
    fn room_is_counted_in_whole_tables() {
        // 2^20 buckets of 65 bytes fit in 96 MiB, 2^21 do not.
        assert_eq!(entries_within(96 << 20, 0), (1 << 20) / 8 * 7 / 4 * 3);
        assert_eq!(entries_within(200 << 20, 0), (1 << 21) / 8 * 7 / 4 * 3);
        // Allocated entries take their share.
        assert_eq!(entries_within(96 << 20, 100), (1 << 19) / 8 * 7 / 4 * 3);
        assert_eq!(entries_within(1000, 0), 0);
    }

    #[test]
    fn a_layer_counts_its_table() {
        let mut layer = Layer::default();
        assert_eq!(layer.bytes(), 0);
        for i in 0..1000u64 {
            let e = Entry::new(i, &i.to_be_bytes(), Kind::Present, b"v", false);
            layer.cost.charge_new(i, &e);
            layer.table.insert_unique(i, e, |e| e.hash);
        }
        let buckets = 1024 + 1024; // 1000 entries need more than 7/8 of 1024
        assert_eq!(
            layer.bytes(),
            buckets * (SLOT + 1) + 16,
            "short entries: no allocations"
        );
    }
}
