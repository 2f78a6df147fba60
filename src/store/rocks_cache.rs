//! The RocksDB store's write-back cache: a bounded hash table in front of RocksDB.
//!
//! Why: a RocksDB point read or write walks the memtable's skip list (a score of
//! dependent cache misses at a few hundred thousand keys); profiles of the state
//! benchmarks put about 60% of the time there. Entries read or written recently
//! stay here — one allocation each, `state ‖ DB key ‖ payload` — so a hit costs one
//! hash probe, and writes reach RocksDB in one batch per write-back, once per entry
//! however often it changed in between.
//!
//! Invariants:
//! - The state is RocksDB, then the frozen layers (oldest first), then the active
//!   table's dirty entries. A clean entry holds what RocksDB and the frozen layers
//!   hold for its key.
//! - Nothing reaches RocksDB but a write-back, which writes the frozen layers in
//!   order, then the active table's dirty entries, as one atomic batch — except a
//!   long list append while no frozen layer exists and its key is not dirty.
//! - The synchronous snapshot phase moves the active table into a new frozen layer
//!   (constant time) and takes a RocksDB snapshot. The view merges the layers'
//!   dirty entries into the snapshot's, in key order, on the snapshot's thread.
//!
//! Bounded: at most `write-cache.size` bytes of entries (frozen layers included),
//! of which at most `write-cache.dirty-size` not yet in RocksDB. Over either, a
//! write-back; then clean entries not used since the last eviction go (CLOCK)
//! until a quarter of the room is free.

use super::rocks::{append_prefix, LocalCheckpoint, RocksStore, RocksView};
use super::{EntryRef, EntryVisitor, KeyedStore, MapVisitor, StoreView};
use crate::error::Result;
use crate::state::{StateId, StateKind};
use hashbrown::hash_table::Entry as Slot;
use hashbrown::HashTable;
use rocksdb::WriteBatch;
use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

/// Bytes of the state id in front of a cache key (big-endian: keys sort by state).
const STATE_LEN: usize = 4;
/// What an entry costs besides its bytes: its slot, control byte and allocation header.
const ENTRY_OVERHEAD: usize = 48;
/// List appends this long or longer go straight to RocksDB when the cache allows:
/// batching them saves less than copying them costs.
const WRITE_THROUGH_APPEND: usize = 256;
/// Frozen layers (one per snapshot with writes before it) kept before a write-back:
/// each one is a probe more for a read that misses the active table.
const MAX_FROZEN: usize = 4;

/// What an entry says about its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The key holds the payload.
    Present,
    /// The key holds nothing.
    Absent,
    /// List elements appended to whatever lies below (RocksDB's merge operands).
    Append,
}

/// One cached key: `state ‖ DB key ‖ payload` in one allocation.
struct Entry {
    bytes: Vec<u8>,
    key_len: u32,
    kind: Kind,
    /// Not yet in RocksDB.
    dirty: bool,
    /// Used since the last eviction (CLOCK's reference bit).
    used: bool,
}

impl Entry {
    fn new(key: &[u8], kind: Kind, payload: &[u8], dirty: bool) -> Entry {
        let mut bytes = Vec::with_capacity(key.len() + payload.len());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(payload);
        Entry {
            bytes,
            key_len: key.len() as u32,
            kind,
            dirty,
            used: true,
        }
    }

    fn key(&self) -> &[u8] {
        &self.bytes[..self.key_len as usize]
    }

    fn payload(&self) -> &[u8] {
        &self.bytes[self.key_len as usize..]
    }

    fn state(&self) -> StateId {
        state_of(self.key())
    }

    fn db_key(&self) -> &[u8] {
        &self.key()[STATE_LEN..]
    }

    fn cost(&self) -> usize {
        self.bytes.capacity() + ENTRY_OVERHEAD
    }

    fn set(&mut self, kind: Kind, payload: &[u8]) {
        self.bytes.truncate(self.key_len as usize);
        self.bytes.extend_from_slice(payload);
        self.kind = kind;
    }
}

/// The first 16 bytes of a key as a number (zero-padded): ordered as the keys are,
/// up to ties.
fn key_prefix(key: &[u8]) -> u128 {
    let mut p = [0u8; 16];
    let n = key.len().min(16);
    p[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(p)
}

/// The cache key of (s, kg, key, ns[, user key]) into `buf` (cleared):
/// `state (u32 BE) ‖ DB key`.
fn encode_key(
    buf: &mut Vec<u8>,
    s: StateId,
    kg: u32,
    key: &[u8],
    ns: &[u8],
    user_key: Option<&[u8]>,
) {
    buf.clear();
    buf.extend_from_slice(&s.to_be_bytes());
    append_prefix(buf, kg, key, ns);
    if let Some(u) = user_key {
        buf.extend_from_slice(u);
    }
}

fn state_of(key: &[u8]) -> StateId {
    StateId::from_be_bytes(key[..STATE_LEN].try_into().expect("state id"))
}

type Hasher = foldhash::fast::RandomState;

/// A hash table of entries and what they cost.
#[derive(Default)]
struct Layer {
    table: HashTable<Entry>,
    cost: Cost,
}

/// What the entries of a layer cost.
#[derive(Default)]
struct Cost {
    bytes: usize,
    dirty_bytes: usize,
    /// Hashes of the dirty entries, so that a write-back visits only those.
    dirty: Vec<u64>,
}

impl Layer {
    fn find(&self, h: u64, key: &[u8]) -> Option<&Entry> {
        self.table.find(h, |e| e.key() == key)
    }

    /// The dirty entries, each once.
    fn dirty_entries<'a>(&'a self, hasher: &'a Hasher) -> Box<dyn Iterator<Item = &'a Entry> + 'a> {
        if self.cost.mostly_dirty(self.table.len()) {
            // A walk over the whole table is sequential: cheaper than one probe each.
            return Box::new(self.table.iter().filter(|e| e.dirty));
        }
        let mut hashes = self.cost.dirty.clone();
        hashes.sort_unstable();
        hashes.dedup();
        // `iter_hash` also yields entries whose hash only shares the probed bits.
        Box::new(hashes.into_iter().flat_map(move |h| {
            self.table
                .iter_hash(h)
                .filter(move |e| e.dirty && hasher.hash_one(e.key()) == h)
        }))
    }
}

impl Cost {
    /// Whether a quarter or more of a table's `len` entries are dirty.
    fn mostly_dirty(&self, len: usize) -> bool {
        self.dirty.len() * 4 >= len
    }

    /// Accounts for a change of `e` (hash `h`), which cost `before` and was dirty or not.
    fn charge(&mut self, h: u64, before: usize, was_dirty: bool, e: &Entry) {
        self.bytes = self.bytes - before + e.cost();
        if was_dirty {
            self.dirty_bytes -= before;
        } else if e.dirty {
            self.dirty.push(h);
        }
        if e.dirty {
            self.dirty_bytes += e.cost();
        }
    }

    /// Accounts for a new entry `e` (hash `h`).
    fn charge_new(&mut self, h: u64, e: &Entry) {
        self.charge(h, 0, false, e);
    }
}

struct Cache {
    /// Hashes every layer's keys (the frozen ones' too).
    hasher: Hasher,
    active: Layer,
    /// Layers frozen by snapshots and not yet written back, oldest first; the
    /// views of those snapshots share them.
    frozen: Vec<Arc<Layer>>,
    frozen_bytes: usize,
    frozen_dirty_bytes: usize,
    size: usize,
    dirty_size: usize,
}

/// What lies under the active table for `key`: the frozen layers, newest first,
/// then RocksDB; appended list elements are resolved against what they append to.
fn below(frozen: &[Arc<Layer>], rocks: &RocksStore, h: u64, key: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut appended: Vec<&[u8]> = Vec::new();
    let mut base = None;
    let mut resolved = false;
    for layer in frozen.iter().rev() {
        if let Some(e) = layer.find(h, key) {
            match e.kind {
                Kind::Present => {
                    base = Some(e.payload().to_vec());
                    resolved = true;
                    break;
                }
                Kind::Absent => {
                    resolved = true;
                    break;
                }
                Kind::Append => appended.push(e.payload()),
            }
        }
    }
    if !resolved {
        let mut v = Vec::new();
        if rocks.get_into(state_of(key), &key[STATE_LEN..], &mut v)? {
            base = Some(v);
        }
    }
    if appended.is_empty() {
        return Ok(base);
    }
    let mut v = base.unwrap_or_default();
    for ops in appended.iter().rev() {
        v.extend_from_slice(ops);
    }
    Ok(Some(v))
}

impl Cache {
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The active entry of `key`, loaded from below on a miss, appends resolved:
    /// its kind is `Present` or `Absent`.
    fn load(&mut self, rocks: &RocksStore, key: &[u8]) -> Result<&mut Entry> {
        let h = self.hash(key);
        let Cache {
            hasher,
            active,
            frozen,
            ..
        } = self;
        let rehash = |e: &Entry| hasher.hash_one(e.key());
        match active.table.entry(h, |e| e.key() == key, rehash) {
            Slot::Occupied(o) => {
                let e = o.into_mut();
                if e.kind == Kind::Append {
                    let (before, was_dirty) = (e.cost(), e.dirty);
                    let mut list = below(frozen, rocks, h, key)?.unwrap_or_default();
                    list.extend_from_slice(e.payload());
                    e.set(Kind::Present, &list);
                    active.cost.charge(h, before, was_dirty, e);
                }
                e.used = true;
                Ok(e)
            }
            Slot::Vacant(v) => {
                let e = match below(frozen, rocks, h, key)? {
                    Some(value) => Entry::new(key, Kind::Present, &value, false),
                    None => Entry::new(key, Kind::Absent, &[], false),
                };
                active.cost.charge_new(h, &e);
                Ok(v.insert(e).into_mut())
            }
        }
    }

    /// Sets `key` to `kind` with `payload`, dirty.
    fn put(&mut self, key: &[u8], kind: Kind, payload: &[u8]) {
        let h = self.hash(key);
        let Cache { hasher, active, .. } = self;
        let rehash = |e: &Entry| hasher.hash_one(e.key());
        match active.table.entry(h, |e| e.key() == key, rehash) {
            Slot::Occupied(o) => {
                let e = o.into_mut();
                let (before, was_dirty) = (e.cost(), e.dirty);
                e.set(kind, payload);
                e.dirty = true;
                e.used = true;
                active.cost.charge(h, before, was_dirty, e);
            }
            Slot::Vacant(v) => {
                let e = Entry::new(key, kind, payload, true);
                active.cost.charge_new(h, &e);
                v.insert(e);
            }
        }
    }

    /// Appends encoded list elements to `key`, without reading what lies below.
    fn append(&mut self, key: &[u8], elements: &[u8]) {
        let h = self.hash(key);
        let Cache { hasher, active, .. } = self;
        let rehash = |e: &Entry| hasher.hash_one(e.key());
        match active.table.entry(h, |e| e.key() == key, rehash) {
            Slot::Occupied(o) => {
                let e = o.into_mut();
                let (before, was_dirty) = (e.cost(), e.dirty);
                match e.kind {
                    Kind::Present | Kind::Append => e.bytes.extend_from_slice(elements),
                    Kind::Absent => e.set(Kind::Present, elements),
                }
                e.dirty = true;
                e.used = true;
                active.cost.charge(h, before, was_dirty, e);
            }
            Slot::Vacant(v) => {
                let e = Entry::new(key, Kind::Append, elements, true);
                active.cost.charge_new(h, &e);
                v.insert(e);
            }
        }
    }

    /// Appends encoded list elements straight to RocksDB when nothing in the cache
    /// is newer than RocksDB for `key`; a clean cached copy is kept in step. False
    /// if the append must go through the cache.
    fn append_through(&mut self, rocks: &RocksStore, key: &[u8], elements: &[u8]) -> Result<bool> {
        if !self.frozen.is_empty() {
            return Ok(false);
        }
        let h = self.hash(key);
        let Layer { table, cost } = &mut self.active;
        let entry = table.find_mut(h, |e| e.key() == key);
        if entry.as_ref().is_some_and(|e| e.dirty) {
            return Ok(false);
        }
        rocks.merge(state_of(key), &key[STATE_LEN..], elements)?;
        if let Some(e) = entry {
            let before = e.cost();
            match e.kind {
                Kind::Present => e.bytes.extend_from_slice(elements),
                Kind::Absent | Kind::Append => e.set(Kind::Present, elements),
            }
            cost.charge(h, before, false, e);
        }
        Ok(true)
    }

    /// Drops `key` from the active table (after RocksDB changed under it).
    fn forget(&mut self, key: &[u8]) {
        let h = self.hash(key);
        if let Ok(o) = self.active.table.find_entry(h, |e| e.key() == key) {
            let (e, _) = o.remove();
            self.active.cost.bytes -= e.cost();
            if e.dirty {
                self.active.cost.dirty_bytes -= e.cost();
            }
        }
    }

    fn is_dirty(&self) -> bool {
        self.active.cost.dirty_bytes > 0 || !self.frozen.is_empty()
    }

    /// Writes back and evicts when over a bound.
    fn maintain(&mut self, rocks: &RocksStore) -> Result<()> {
        if self.active.cost.dirty_bytes + self.frozen_dirty_bytes > self.dirty_size
            || self.frozen.len() > MAX_FROZEN
            || self.active.cost.bytes + self.frozen_bytes > self.size
        {
            self.write_back(rocks)?;
            if self.active.cost.bytes > self.size {
                self.evict(self.size / 4 * 3);
            }
        }
        Ok(())
    }

    /// Writes the frozen layers, then the active table's dirty entries, to RocksDB
    /// in one batch: a failed write leaves the cache as it was.
    fn write_back(&mut self, rocks: &RocksStore) -> Result<()> {
        if !self.is_dirty() {
            return Ok(());
        }
        let cfs: Vec<_> = (0..rocks.num_states() as StateId)
            .map(|s| rocks.cf(s))
            .collect();
        let layers = self.frozen.iter().map(|l| &**l);
        let mut dirty: Vec<(u128, usize, &Entry)> = layers
            .chain(std::iter::once(&self.active))
            .enumerate()
            .flat_map(|(i, layer)| {
                layer
                    .dirty_entries(&self.hasher)
                    .map(move |e| (key_prefix(e.key()), i, e))
            })
            .collect();
        // In key order, RocksDB's memtable inserts a batch along one path of its skip
        // list (a random order costs twice the time); a key's older versions first.
        // The first 16 key bytes are compared inline, without following the pointer.
        dirty.sort_unstable_by(|a, b| {
            (a.0.cmp(&b.0))
                .then_with(|| a.2.key().cmp(b.2.key()))
                .then(a.1.cmp(&b.1))
        });
        let mut batch =
            WriteBatch::with_capacity_bytes(self.active.cost.dirty_bytes + self.frozen_dirty_bytes);
        for (_, _, e) in dirty {
            let cf = &cfs[e.state() as usize];
            match e.kind {
                Kind::Present => batch.put_cf(cf, e.db_key(), e.payload()),
                Kind::Absent => batch.delete_cf(cf, e.db_key()),
                Kind::Append => batch.merge_cf(cf, e.db_key(), e.payload()),
            }
        }
        drop(cfs);
        rocks.write(batch)?;
        self.frozen.clear();
        self.frozen_bytes = 0;
        self.frozen_dirty_bytes = 0;
        // Appended elements are in RocksDB now, merged into what they append to: their
        // entries go.
        let Layer { table, cost } = &mut self.active;
        if cost.mostly_dirty(table.len()) {
            cost.dirty.clear();
            table.retain(|e| {
                if e.dirty && e.kind == Kind::Append {
                    cost.bytes -= e.cost();
                    return false;
                }
                e.dirty = false;
                true
            });
        }
        for h in std::mem::take(&mut cost.dirty) {
            while let Ok(o) = table.find_entry(h, |e| e.dirty && e.kind == Kind::Append) {
                cost.bytes -= o.remove().0.cost();
            }
            for e in table.iter_hash_mut(h) {
                e.dirty = false;
            }
        }
        cost.dirty_bytes = 0;
        Ok(())
    }

    /// Drops clean entries not used since the last eviction (clearing the mark of
    /// the others) until at most `target` bytes remain.
    fn evict(&mut self, target: usize) {
        let bytes = &mut self.active.cost.bytes;
        for _ in 0..2 {
            self.active.table.retain(|e| {
                if *bytes <= target || e.dirty {
                    return true;
                }
                if e.used {
                    e.used = false;
                    return true;
                }
                *bytes -= e.cost();
                false
            });
            if *bytes <= target {
                break;
            }
        }
    }

    /// The synchronous snapshot phase: the active table becomes a frozen layer if it
    /// has anything RocksDB lacks. Returns the layers a view must merge.
    fn freeze(&mut self) -> Vec<Arc<Layer>> {
        if self.active.cost.dirty_bytes > 0 {
            let layer = std::mem::take(&mut self.active);
            self.frozen_bytes += layer.cost.bytes;
            self.frozen_dirty_bytes += layer.cost.dirty_bytes;
            self.frozen.push(Arc::new(layer));
        }
        self.frozen.clone()
    }
}

/// The RocksDB store with its write-back cache.
pub struct CachedRocksStore {
    rocks: RocksStore,
    cache: RefCell<Cache>,
    /// The key of the current access: `state ‖ DB key`.
    key: RefCell<Vec<u8>>,
}

impl CachedRocksStore {
    /// `size` bytes of cache, at most `dirty_size` of them not yet in RocksDB.
    pub fn new(rocks: RocksStore, size: usize, dirty_size: usize) -> Self {
        CachedRocksStore {
            rocks,
            cache: RefCell::new(Cache {
                hasher: Default::default(),
                active: Layer::default(),
                frozen: Vec::new(),
                frozen_bytes: 0,
                frozen_dirty_bytes: 0,
                size,
                dirty_size: dirty_size.min(size),
            }),
            key: RefCell::new(Vec::with_capacity(64)),
        }
    }

    /// Bytes cached, and of them not yet in RocksDB (for tests and diagnostics).
    pub fn cached_bytes(&self) -> (usize, usize) {
        let c = self.cache.borrow();
        (
            c.active.cost.bytes + c.frozen_bytes,
            c.active.cost.dirty_bytes + c.frozen_dirty_bytes,
        )
    }

    /// Runs `f` with the cache and the key of (s, kg, key, ns[, user key]).
    fn with_key<R>(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: Option<&[u8]>,
        f: impl FnOnce(&mut Cache, &[u8]) -> Result<R>,
    ) -> Result<R> {
        let mut buf = self.key.borrow_mut();
        encode_key(&mut buf, s, kg, key, ns, user_key);
        let mut cache = self.cache.borrow_mut();
        let r = f(&mut cache, &buf)?;
        cache.maintain(&self.rocks)?;
        Ok(r)
    }

    /// Reads into `out`; false if absent.
    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: Option<&[u8]>,
        out: Option<&mut Vec<u8>>,
    ) -> Result<bool> {
        self.with_key(s, kg, key, ns, user_key, |c, k| {
            let e = c.load(&self.rocks, k)?;
            if e.kind == Kind::Absent {
                return Ok(false);
            }
            if let Some(out) = out {
                out.extend_from_slice(e.payload());
            }
            Ok(true)
        })
    }

    /// Sets (s, kg, key, ns[, user key]) to `kind` with `payload`, in the cache.
    #[allow(clippy::too_many_arguments)]
    fn put(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: Option<&[u8]>,
        kind: Kind,
        payload: &[u8],
    ) -> Result<()> {
        self.with_key(s, kg, key, ns, user_key, |c, k| {
            c.put(k, kind, payload);
            Ok(())
        })
    }

    /// Writes everything back; then RocksDB alone holds the state.
    fn write_back(&self) -> Result<()> {
        self.cache.borrow_mut().write_back(&self.rocks)
    }
}

impl KeyedStore for CachedRocksStore {
    fn num_states(&self) -> usize {
        self.rocks.num_states()
    }

    fn local_checkpoint(&self) -> Result<Option<LocalCheckpoint>> {
        self.write_back()?;
        self.rocks.local_checkpoint().map(Some)
    }

    fn add_state(&mut self, id: StateId, kind: StateKind) -> Result<()> {
        self.rocks.add_state(id, kind)
    }

    fn value_get(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        self.read(s, kg, key, ns, None, Some(out))
    }

    fn value_put(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        value: &[u8],
    ) -> Result<()> {
        self.put(s, kg, key, ns, None, Kind::Present, value)
    }

    fn list_get(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        self.read(s, kg, key, ns, None, Some(out))
    }

    fn list_append(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        encoded: &[u8],
    ) -> Result<()> {
        self.with_key(s, kg, key, ns, None, |c, k| {
            // Long appends gain nothing from batching: RocksDB takes them as they are.
            if encoded.len() < WRITE_THROUGH_APPEND || !c.append_through(&self.rocks, k, encoded)? {
                c.append(k, encoded);
            }
            Ok(())
        })
    }

    fn list_replace(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        encoded: &[u8],
    ) -> Result<()> {
        self.value_put(s, kg, key, ns, encoded)
    }

    fn map_get(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        self.read(s, kg, key, ns, Some(user_key), Some(out))
    }

    fn map_put(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        self.put(s, kg, key, ns, Some(user_key), Kind::Present, value)
    }

    fn map_remove(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
    ) -> Result<()> {
        self.put(s, kg, key, ns, Some(user_key), Kind::Absent, &[])
    }

    fn map_contains(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
    ) -> Result<bool> {
        self.read(s, kg, key, ns, Some(user_key), None)
    }

    // A map's entries are found by a prefix scan, which only RocksDB can do: what
    // the cache holds is written back first.
    fn map_is_empty(&self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<bool> {
        self.write_back()?;
        self.rocks.map_is_empty(s, kg, key, ns)
    }

    fn map_for_each(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        f: &mut MapVisitor<'_>,
    ) -> Result<()> {
        self.write_back()?;
        self.rocks.map_for_each(s, kg, key, ns, f)
    }

    fn clear(&mut self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<()> {
        if self.rocks.kind(s) != StateKind::Map {
            return self.put(s, kg, key, ns, None, Kind::Absent, &[]);
        }
        // The map's user keys are found in RocksDB once the cache is written back;
        // the cached copies of the ones deleted are dropped.
        self.write_back()?;
        let mut buf = self.key.borrow_mut();
        encode_key(&mut buf, s, kg, key, ns, None);
        let mut doomed = Vec::new();
        self.rocks.scan_prefix(s, &buf[STATE_LEN..], |k, _| {
            doomed.push(k.to_vec());
            Ok(true)
        })?;
        let cf = self.rocks.cf(s);
        let mut cache = self.cache.borrow_mut();
        for chunk in doomed.chunks(1024) {
            let mut batch = WriteBatch::default();
            for k in chunk {
                batch.delete_cf(&cf, k);
                buf.truncate(STATE_LEN);
                buf.extend_from_slice(k);
                cache.forget(&buf);
            }
            self.rocks.write(batch)?;
        }
        Ok(())
    }

    fn num_entries(&self) -> Result<u64> {
        self.write_back()?;
        self.rocks.num_entries()
    }

    fn view(&self) -> Result<Box<dyn StoreView>> {
        let mut cache = self.cache.borrow_mut();
        let layers = cache.freeze();
        Ok(Box::new(CachedView {
            rocks: self.rocks.snapshot_view(),
            layers,
            hasher: cache.hasher.clone(),
            overlay: OnceLock::new(),
        }))
    }

    /// Restores go straight to RocksDB: the cache is empty while a backend restores.
    fn restore_entry(&mut self, kg: u32, e: EntryRef<'_>) -> Result<()> {
        self.write_back()?;
        self.rocks.restore_entry(kg, e)
    }
}

/// A dirty entry of a view, the frozen layers' versions of its key combined.
struct OverlayEntry {
    key: Vec<u8>,
    kind: Kind,
    payload: Vec<u8>,
}

/// A RocksDB snapshot plus the frozen layers written after it.
struct CachedView {
    rocks: RocksView,
    layers: Vec<Arc<Layer>>,
    hasher: Hasher,
    /// The layers' dirty entries combined, sorted by key; built on first use, on
    /// the snapshot's thread.
    overlay: OnceLock<Vec<OverlayEntry>>,
}

/// Combines the dirty entries of `layers` (oldest first) per key, sorted by key.
fn build_overlay(layers: &[Arc<Layer>], hasher: &Hasher) -> Vec<OverlayEntry> {
    let mut dirty: Vec<(usize, &Entry)> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.dirty_entries(hasher).map(move |e| (i, e)))
        .collect();
    dirty.sort_by(|a, b| a.1.key().cmp(b.1.key()).then(a.0.cmp(&b.0)));
    let mut out: Vec<OverlayEntry> = Vec::with_capacity(dirty.len());
    for (_, e) in dirty {
        match out.last_mut() {
            Some(last) if last.key == e.key() => match (last.kind, e.kind) {
                (_, Kind::Present | Kind::Absent) => {
                    last.kind = e.kind;
                    last.payload.clear();
                    last.payload.extend_from_slice(e.payload());
                }
                (Kind::Absent, Kind::Append) => {
                    last.kind = Kind::Present;
                    last.payload.clear();
                    last.payload.extend_from_slice(e.payload());
                }
                (Kind::Present | Kind::Append, Kind::Append) => {
                    last.payload.extend_from_slice(e.payload());
                }
            },
            _ => out.push(OverlayEntry {
                key: e.key().to_vec(),
                kind: e.kind,
                payload: e.payload().to_vec(),
            }),
        }
    }
    out
}

impl CachedView {
    /// Visits what an overlay entry leaves of a key whose snapshot value is `base`.
    fn emit(
        &self,
        s: StateId,
        o: &OverlayEntry,
        base: Option<&[u8]>,
        f: &mut EntryVisitor<'_>,
    ) -> Result<()> {
        let k = &o.key[STATE_LEN..];
        match (o.kind, base) {
            (Kind::Absent, _) => Ok(()),
            (Kind::Present, _) | (Kind::Append, None) => f(self.rocks.entry(s, k, &o.payload)?),
            (Kind::Append, Some(base)) => {
                let list = [base, &o.payload].concat();
                f(self.rocks.entry(s, k, &list)?)
            }
        }
    }
}

impl StoreView for CachedView {
    fn for_each_in_key_group(
        &self,
        kg: u32,
        only: Option<StateId>,
        f: &mut EntryVisitor<'_>,
    ) -> Result<()> {
        if !self.rocks.covers(kg) {
            return Ok(());
        }
        let overlay = self
            .overlay
            .get_or_init(|| build_overlay(&self.layers, &self.hasher));
        for s in 0..self.rocks.num_states() as StateId {
            if only.is_some_and(|o| o != s) {
                continue;
            }
            let mut prefix = [0u8; STATE_LEN + 2];
            prefix[..STATE_LEN].copy_from_slice(&s.to_be_bytes());
            prefix[STATE_LEN..].copy_from_slice(&(kg as u16).to_be_bytes());
            let lo = overlay.partition_point(|o| o.key[..prefix.len()] < prefix[..]);
            let hi = overlay.partition_point(|o| o.key[..prefix.len()] <= prefix[..]);
            let mine = &overlay[lo..hi];
            // A merge of two key-ordered sequences; the overlay wins on equal keys.
            let mut i = 0;
            self.rocks.for_each_raw(kg, s, &mut |k, v| {
                while let Some(o) = mine.get(i).filter(|o| &o.key[STATE_LEN..] < k) {
                    self.emit(s, o, None, f)?;
                    i += 1;
                }
                match mine.get(i).filter(|o| &o.key[STATE_LEN..] == k) {
                    Some(o) => {
                        i += 1;
                        self.emit(s, o, Some(v), f)
                    }
                    None => f(self.rocks.entry(s, k, v)?),
                }
            })?;
            for o in &mine[i..] {
                self.emit(s, o, None, f)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn open(dir: &std::path::Path, size: usize, dirty: usize) -> CachedRocksStore {
        let url = format!("file://{}", dir.join("checkpoints").display());
        let config = Config::rocksdb(&url)
            .unwrap()
            .with_local_dir(dir.join("local"));
        let mut store = CachedRocksStore::new(RocksStore::open(&config).unwrap(), size, dirty);
        store.add_state(0, StateKind::Value).unwrap();
        store.add_state(1, StateKind::List).unwrap();
        store
    }

    fn in_rocks(store: &CachedRocksStore, s: StateId, key: &[u8]) -> Option<Vec<u8>> {
        let mut k = Vec::new();
        append_prefix(&mut k, 0, key, b"");
        let mut out = Vec::new();
        let found = store.rocks.get_into(s, &k, &mut out).unwrap();
        found.then_some(out)
    }

    #[test]
    fn stays_within_its_bounds_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (size, dirty) = (1 << 20, 256 << 10);
        let mut store = open(dir.path(), size, dirty);
        let mut out = Vec::new();
        for round in 0..3u32 {
            for i in 0..20_000u32 {
                let value = [round.to_le_bytes(), i.to_le_bytes()].concat().repeat(8);
                store
                    .value_put(0, 0, &i.to_be_bytes(), b"", &value)
                    .unwrap();
                store
                    .list_append(1, 0, &i.to_be_bytes(), b"", &value[..5])
                    .unwrap();
                if i % 7 == 0 {
                    out.clear();
                    store
                        .value_get(0, 0, &(i / 2).to_be_bytes(), b"", &mut out)
                        .unwrap();
                }
                let (bytes, dirty_bytes) = store.cached_bytes();
                assert!(bytes <= size, "{bytes} bytes cached, room for {size}");
                assert!(
                    dirty_bytes <= dirty,
                    "{dirty_bytes} dirty bytes, room for {dirty}"
                );
            }
        }
        for i in 0..20_000u32 {
            out.clear();
            assert!(store
                .value_get(0, 0, &i.to_be_bytes(), b"", &mut out)
                .unwrap());
            assert_eq!(
                out,
                [2u32.to_le_bytes(), i.to_le_bytes()].concat().repeat(8)
            );
            out.clear();
            assert!(store
                .list_get(1, 0, &i.to_be_bytes(), b"", &mut out)
                .unwrap());
            assert_eq!(out.len(), 15, "three appends of five bytes");
        }
    }

    #[test]
    fn the_synchronous_phase_writes_nothing_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path(), 64 << 20, 16 << 20);
        store.value_put(0, 0, b"a", b"", b"old").unwrap();
        store.write_back().unwrap();
        store.value_put(0, 0, b"a", b"", b"new").unwrap();
        store.list_append(1, 0, b"a", b"", b"x").unwrap();
        let dirty = store.cached_bytes().1;
        let view = store.view().unwrap();
        assert_eq!(store.cached_bytes().1, dirty, "still only in the cache");
        assert_eq!(in_rocks(&store, 0, b"a").as_deref(), Some(&b"old"[..]));
        // Later writes do not show in the view; the cache's writes do.
        store.value_put(0, 0, b"a", b"", b"later").unwrap();
        store.write_back().unwrap();
        let mut seen = Vec::new();
        view.for_each_in_key_group(0, None, &mut |e| {
            seen.push((e.state, format!("{:?}", e.data)));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (0, format!("{:?}", super::super::EntryData::Value(b"new"))),
                (1, format!("{:?}", super::super::EntryData::List(b"x"))),
            ]
        );
        assert_eq!(in_rocks(&store, 0, b"a").as_deref(), Some(&b"later"[..]));
    }

    #[test]
    fn long_appends_go_straight_to_rocksdb_only_when_nothing_newer_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path(), 64 << 20, 16 << 20);
        let long = vec![7u8; WRITE_THROUGH_APPEND];
        let list = |store: &CachedRocksStore, key: &[u8]| {
            let mut out = Vec::new();
            store.list_get(1, 0, key, b"", &mut out).unwrap();
            out
        };
        // A clean cached list: RocksDB takes the append, the copy follows.
        store.list_append(1, 0, b"a", b"", b"s").unwrap();
        store.write_back().unwrap();
        assert_eq!(list(&store, b"a"), b"s");
        store.list_append(1, 0, b"a", b"", &long).unwrap();
        let both = [&b"s"[..], &long].concat();
        assert_eq!(in_rocks(&store, 1, b"a"), Some(both.clone()));
        assert_eq!(list(&store, b"a"), both);
        // A dirty one: the append waits in the cache behind the earlier one.
        store.list_append(1, 0, b"b", b"", b"s").unwrap();
        store.list_append(1, 0, b"b", b"", &long).unwrap();
        assert_eq!(in_rocks(&store, 1, b"b"), None);
        assert_eq!(list(&store, b"b"), both);
        // With a frozen layer (a snapshot's), everything goes through the cache.
        let _view = store.view().unwrap();
        store.list_append(1, 0, b"c", b"", &long).unwrap();
        assert_eq!(in_rocks(&store, 1, b"c"), None);
        store.write_back().unwrap();
        assert_eq!(in_rocks(&store, 1, b"c"), Some(long.clone()));
        assert_eq!(in_rocks(&store, 1, b"b"), Some(both));
    }
}
