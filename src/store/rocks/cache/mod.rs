//! The RocksDB store's write-back cache: a bounded hash table in front of RocksDB.
//!
//! Why: a RocksDB point read or write walks the memtable's skip list (a score of
//! dependent cache misses at a few hundred thousand keys); profiles of the state
//! benchmarks put about 60% of the time there. Entries read or written recently
//! stay here — one allocation each, `state ‖ DB key ‖ payload` — so a hit costs one
//! hash probe, and writes reach RocksDB in sorted runs, once per entry however
//! often it changed in between, written by a thread of their own (`writer`).
//!
//! Invariants:
//! - The state is RocksDB, then the runs handed to the writer and not yet landed
//!   (oldest first), then the frozen layers' dirty entries (oldest first), then the
//!   active table's dirty entries. A clean entry holds what lies below it.
//! - A value whose run has not landed is only in that run and the cache: its entry
//!   is pinned (not evicted), and frozen layers stay until their run has landed.
//!   A read that must combine appended elements with what RocksDB holds first waits
//!   for the runs carrying them.
//! - Only the writer writes to RocksDB, except clearing a map and restoring, which
//!   write directly once the writer is idle.
//! - The synchronous snapshot phase moves the active table into a new frozen layer
//!   (constant time) and takes a RocksDB snapshot between two chunks of a run; the
//!   view merges the runs' and layers' entries into the snapshot's, in key order, on
//!   the snapshot's thread. An incremental checkpoint queues its link behind the
//!   runs before it; the asynchronous phase waits for it and stores the layers'
//!   entries beside the linked files.
//!
//! Bounded: at most `write-cache.size` bytes of tables, entries, runs in flight, the
//! landed run kept for the next one and the writer's sorted copy of the last run it
//! ingested (kept too), of which at most `write-cache.dirty-size` not yet handed to
//! the writer.
//! Over the dirty bound, a run; over the size, clean entries not used since the
//! last eviction go (CLOCK) until a quarter of the room is free.
//!
//! Metrics ([`CachedRocksStore::metrics`]): reads that hit the active table or a map
//! image and those that did not, counted in plain fields on the task thread; the
//! writer counts the task thread's waits for it.

mod images;
mod layer;
mod sets;
mod view;
mod writer;

use super::memory::WriteCacheShare;
use super::{append_prefix, RocksStore};
use crate::codec::ListElements;
use crate::error::Result;
use crate::metrics::{StateMetrics, WriteCacheMetrics};
use crate::state::{StateId, StateKind};
use crate::store::{CheckpointLink, EntryRef, KeyedStore, MapVisitor, SetVisitor, StoreView};
use hashbrown::hash_table::Entry as Slot;
use images::{ImageBuilder, MapImages};
use layer::{state_of, Entry, Kind, Layer, STATE_LEN};
use rocksdb::WriteBatch;
use sets::SetOverlay;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};
use view::{CachedView, Pending};
use writer::{Job, Landing, Run, Writer};

/// Lists this long are not rewritten for an append: only the new elements are
/// written back, and RocksDB merges them.
const LONG_LIST: usize = 256;
/// Frozen layers (one per snapshot with writes before it) kept before their entries
/// are handed to the writer: each one is a probe more for a read that misses the
/// active table.
const MAX_FROZEN: usize = 4;
/// Runs queued or being written before the task thread waits: one lands while the
/// next fills, and the cache holds one copy of dirty entries at most.
const MAX_IN_FLIGHT: usize = 1;

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

type Hasher = foldhash::quality::RandomState;

/// A layer frozen by a snapshot.
struct Frozen {
    layer: Arc<Layer>,
    bytes: usize,
    /// The run carrying its dirty entries (0: not yet handed to the writer).
    job: u64,
}

struct Cache {
    /// Hashes the keys (entries keep theirs: frozen layers are probed with it too).
    hasher: Hasher,
    active: Layer,
    /// Oldest first; those handed to the writer come first.
    frozen: Vec<Frozen>,
    frozen_bytes: usize,
    /// Dirty bytes of the frozen layers not yet handed to the writer.
    frozen_dirty_bytes: usize,
    /// Runs handed to the writer and not known to have landed, oldest first.
    in_flight: VecDeque<(u64, Arc<Run>)>,
    in_flight_bytes: usize,
    /// The memory of the last run landed, for the next one: a fresh run of tens of
    /// megabytes is mapped anew and faulted in page by page as it is filled.
    spare: Option<Run>,
    writer: Writer,
    /// The last job that writes entries (a run, or a link with layers).
    last_write: u64,
    size: CacheSize,
    dirty_size: usize,
    /// What the writer keeps between runs ([`Writer::kept_bytes`]), as of the last
    /// `settle`: read there only, so the cache's size changes only where its bounds
    /// are enforced.
    writer_kept: usize,
    /// Evictions so far (each draws its victims afresh).
    evictions: u64,
    /// Maps as last scanned, while unchanged.
    images: MapImages,
    /// Reads answered by the active table or a map image, and the others (metrics).
    hits: u64,
    misses: u64,
    /// Sorted-set elements changed and maybe not yet in RocksDB, in key order.
    sets: SetOverlay,
}

/// How many bytes a cache may take: a size of its own, or its share of a budget
/// shared with other backends' caches (which changes as they come and go).
pub enum CacheSize {
    Fixed(usize),
    Shared(WriteCacheShare),
}

impl CacheSize {
    fn bytes(&self) -> usize {
        match self {
            CacheSize::Fixed(size) => *size,
            CacheSize::Shared(share) => share.bytes(),
        }
    }
}

impl Cache {
    /// The bytes this cache may take now.
    fn size(&self) -> usize {
        self.size.bytes()
    }

    /// The dirty bytes it may hold now: at most half of a shared cache's share.
    fn dirty_size(&self) -> usize {
        match &self.size {
            CacheSize::Fixed(_) => self.dirty_size,
            CacheSize::Shared(share) => self.dirty_size.min(share.bytes() / 2),
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn bytes(&self) -> usize {
        self.active.bytes()
            + self.frozen_bytes
            + self.in_flight_bytes
            + self.images.bytes()
            + self.sets.bytes()
            + self.spare.as_ref().map_or(0, Run::bytes)
            + self.writer_kept
    }

    fn dirty_bytes(&self) -> usize {
        self.active.cost.dirty_bytes + self.frozen_dirty_bytes
    }

    /// Lets go of what the writer has landed; fails once the writer has failed.
    fn settle(&mut self) -> Result<()> {
        self.writer.check()?;
        let done = self.writer.completed();
        self.writer_kept = self.writer.kept_bytes();
        while let Some((job, run)) = self.in_flight.front() {
            if *job > done {
                break;
            }
            self.in_flight_bytes -= run.bytes();
            let (_, run) = self.in_flight.pop_front().expect("a run in flight");
            // The writer has let go of it unless a snapshot's view still reads it.
            if let Ok(run) = Arc::try_unwrap(run) {
                self.spare = Some(run);
            }
        }
        let landed = self
            .frozen
            .iter()
            .take_while(|f| f.job != 0 && f.job <= done)
            .count();
        for f in self.frozen.drain(..landed) {
            self.frozen_bytes -= f.bytes;
        }
        self.sets.landed(done);
        Ok(())
    }

    /// What lies under the active table for `key`: the frozen layers, newest first,
    /// then RocksDB; appended elements are resolved against what they append to,
    /// once RocksDB holds that.
    fn below(&mut self, rocks: &RocksStore, h: u64, key: &[u8]) -> Result<Option<Vec<u8>>> {
        loop {
            let done = self.writer.completed();
            let mut appended: Vec<&[u8]> = Vec::new();
            let mut base = None;
            let mut resolved = false;
            // The last run RocksDB must hold before it can be read for this key.
            let mut needs = 0;
            // A layer whose run has landed is RocksDB's (whether or not `settle` has
            // let go of it yet).
            for f in self
                .frozen
                .iter()
                .rev()
                .filter(|f| f.job == 0 || f.job > done)
            {
                let Some(e) = f.layer.find(h, key) else {
                    continue;
                };
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
                    Kind::Append if e.dirty => {
                        appended.push(e.payload());
                        needs = needs.max(f.job);
                    }
                    Kind::Append => needs = needs.max(e.pin),
                }
            }
            if !resolved && needs > done {
                // Part of this key may be landing: once it has, it is RocksDB's.
                self.writer.wait_for(needs)?;
                self.settle()?;
                continue;
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
            return Ok(Some(v));
        }
    }

    /// The active entry of `key`, loaded from below on a miss, appends resolved:
    /// its kind is `Present` or `Absent`.
    fn load(&mut self, rocks: &RocksStore, key: &[u8]) -> Result<&mut Entry> {
        let h = self.hash(key);
        let below = match self.active.find(h, key) {
            Some(e) if e.kind != Kind::Append => {
                self.hits += 1;
                None
            }
            found => {
                self.misses += 1;
                // A clean `Append` stands for what RocksDB holds once its run lands.
                let pin = found.map_or(0, |e| e.pin);
                if pin > self.writer.completed() {
                    self.writer.wait_for(pin)?;
                    self.settle()?;
                }
                Some(self.below(rocks, h, key)?)
            }
        };
        let Layer { table, cost } = &mut self.active;
        match table.entry(h, |e| e.is(h, key), |e| e.hash) {
            Slot::Occupied(o) => {
                let e = o.into_mut();
                if let Some(below) = below {
                    let (before, was_dirty) = (e.heap(), e.dirty);
                    let mut list = below.unwrap_or_default();
                    list.extend_from_slice(e.payload());
                    e.set(Kind::Present, &list);
                    cost.charge(h, before, was_dirty, e);
                }
                e.used = true;
                Ok(e)
            }
            Slot::Vacant(v) => {
                let e = match below.expect("a miss reads below") {
                    Some(value) => Entry::new(h, key, Kind::Present, &value, false),
                    None => Entry::new(h, key, Kind::Absent, &[], false),
                };
                cost.charge_new(h, &e);
                Ok(v.insert(e).into_mut())
            }
        }
    }

    /// Probes for `key` and lets the result go: brings its slot into the CPU's cache.
    fn touch(&self, key: &[u8]) {
        let h = self.hash(key);
        std::hint::black_box(self.active.find(h, key).is_some());
    }

    /// Sets `key` to `kind` with `payload`, dirty.
    fn put(&mut self, key: &[u8], kind: Kind, payload: &[u8]) {
        let h = self.hash(key);
        let Layer { table, cost } = &mut self.active;
        match table.entry(h, |e| e.is(h, key), |e| e.hash) {
            Slot::Occupied(o) => {
                let e = o.into_mut();
                let (before, was_dirty) = (e.heap(), e.dirty);
                e.set(kind, payload);
                e.dirty = true;
                e.used = true;
                cost.charge(h, before, was_dirty, e);
            }
            Slot::Vacant(v) => {
                let e = Entry::new(h, key, kind, payload, true);
                cost.charge_new(h, &e);
                v.insert(e);
            }
        }
    }

    /// Appends encoded list elements to `key`, without reading what lies below.
    fn append(&mut self, key: &[u8], elements: &[u8]) {
        let h = self.hash(key);
        let Layer { table, cost } = &mut self.active;
        match table.entry(h, |e| e.is(h, key), |e| e.hash) {
            Slot::Occupied(o) => {
                let e = o.into_mut();
                let (before, was_dirty) = (e.heap(), e.dirty);
                match e.kind {
                    // A long clean list lies below: write only the new elements
                    // (rewriting it at each append costs its length each time).
                    Kind::Present if !e.dirty && e.payload().len() >= LONG_LIST => {
                        e.set(Kind::Append, elements)
                    }
                    Kind::Present | Kind::Append => e.extend(elements),
                    Kind::Absent => e.set(Kind::Present, elements),
                }
                e.dirty = true;
                e.used = true;
                cost.charge(h, before, was_dirty, e);
            }
            Slot::Vacant(v) => {
                let e = Entry::new(h, key, Kind::Append, elements, true);
                cost.charge_new(h, &e);
                v.insert(e);
            }
        }
    }

    /// Drops the image of the map at `prefix` (its cache key without a user key).
    fn forget_image(&mut self, prefix: &[u8]) {
        // Most maps have no image: no hash for them while there are none.
        if !self.images.is_empty() {
            let h = self.hash(prefix);
            self.images.invalidate(h, prefix);
        }
    }

    /// Drops `key` from the active table (after RocksDB changed under it).
    fn forget(&mut self, key: &[u8]) {
        let h = self.hash(key);
        let Layer { table, cost } = &mut self.active;
        if let Ok(o) = table.find_entry(h, |e| e.is(h, key)) {
            let (e, _) = o.remove();
            cost.discharge(&e);
        }
    }

    /// Hands runs to the writer and evicts when over a bound.
    fn maintain(&mut self) -> Result<()> {
        self.settle()?;
        let unhanded = self.frozen.iter().filter(|f| f.job == 0).count();
        if self.dirty_bytes() > self.dirty_size() || unhanded > MAX_FROZEN {
            self.hand_over()?;
        }
        if self.bytes() > self.size() || self.table_would_overflow() {
            self.make_room()?;
        }
        self.active.tidy();
        Ok(())
    }

    /// Whether the active table doubles at its next insert and would then take more
    /// than the cache's size.
    fn table_would_overflow(&self) -> bool {
        let table = &self.active.table;
        let (len, capacity) = (table.len(), table.capacity());
        len + 1 >= capacity
            && len >= capacity / 2
            && self.bytes() + layer::table_bytes(2 * capacity, layer::SLOT)
                - layer::table_bytes(capacity, layer::SLOT)
                > self.size()
    }

    /// Evicts until a quarter of the room is free, in the table and in bytes; when
    /// what is left is dirty or in flight, waits for the writer to land it first.
    fn make_room(&mut self) -> Result<()> {
        self.evict_to(self.entries_to_keep());
        if self.bytes() > self.size() {
            self.hand_over()?;
            self.writer.wait_for(self.writer.next_job() - 1)?;
            self.settle()?;
            self.evict_to(self.entries_to_keep());
        }
        if self.bytes() > self.size() {
            // Little left to evict: the memory kept for the next run goes.
            self.spare = None;
        }
        Ok(())
    }

    /// How many entries of the active table fit in three quarters of the size, with
    /// what else the cache holds.
    fn entries_to_keep(&self) -> usize {
        let len = self.active.table.len();
        let others = self.bytes() - self.active.bytes();
        let room = (self.size() / 4 * 3).saturating_sub(others);
        layer::entries_within(room, self.active.cost.heap / len.max(1)).min(len)
    }

    /// Hands a copy of every dirty entry to the writer, as one run: those of the
    /// frozen layers not yet handed over, oldest first, then the active table's.
    fn hand_over(&mut self) -> Result<()> {
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            let oldest = self.in_flight[0].0;
            self.writer.wait_for(oldest)?;
            self.settle()?;
        }
        let first = self.frozen.iter().take_while(|f| f.job != 0).count();
        if self.active.cost.dirty_bytes == 0 && first == self.frozen.len() {
            return Ok(());
        }
        let job = self.writer.next_job();
        let count: usize = self.frozen[first..]
            .iter()
            .map(|f| f.layer.cost.dirty.len())
            .sum::<usize>()
            + self.active.cost.dirty.len();
        // Enough: the dirty bytes count each entry's slot and allocation, more
        // than its key and payload.
        let mut run = self.spare.take().unwrap_or_default();
        run.reuse(self.dirty_bytes(), count);
        for f in &mut self.frozen[first..] {
            f.layer.dirty_entries().for_each(|e| run.push(e));
            f.job = job;
        }
        self.frozen_dirty_bytes = 0;
        self.active.dirty_entries().for_each(|e| run.push(e));
        self.active.mark_written(job);
        self.sets.handed_to(job);
        let run = Arc::new(run);
        self.in_flight_bytes += run.bytes();
        self.in_flight.push_back((job, Arc::clone(&run)));
        self.last_write = self.writer.submit(Job::Run(run));
        debug_assert_eq!(self.last_write, job);
        Ok(())
    }

    /// Hands everything over and waits until it has landed: then RocksDB alone
    /// holds the state.
    fn write_back(&mut self) -> Result<()> {
        self.settle()?;
        self.hand_over()?;
        self.writer.wait_for(self.last_write)?;
        self.settle()
    }

    /// Makes RocksDB hold the state and waits for every queued checkpoint link,
    /// before the task thread writes to RocksDB itself.
    fn before_direct_write(&mut self) -> Result<()> {
        self.write_back()?;
        self.writer.wait_for(self.writer.next_job() - 1)
    }

    /// Drops clean entries not used since the last eviction and not in flight
    /// (clearing the mark of the others) until at most `keep` entries remain. The entries dropped are picked at random among those,
    /// all over the table: dropping the first ones found, in slot order, empties one
    /// end of the table and crowds the other, where probes then run long (17
    /// candidate slots per probe instead of about 1, measured).
    fn evict_to(&mut self, keep: usize) {
        let done = self.writer.completed();
        for _ in 0..2 {
            let Layer { table, cost } = &mut self.active;
            let excess = table.len().saturating_sub(keep);
            if excess == 0 {
                return;
            }
            let idle = table
                .iter()
                .filter(|e| !e.dirty && !e.used && e.pin <= done)
                .count();
            // Drop an idle entry with probability excess / idle, in 1/2^32 steps.
            let share = (excess as u128 * (1u128 << 32) / idle.max(1) as u128) as u64;
            self.evictions = self.evictions.wrapping_add(1);
            let salt = self.evictions.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            table.retain(|e| {
                if e.dirty || e.pin > done {
                    return true;
                }
                if e.used {
                    e.used = false;
                    return true;
                }
                // A fresh pseudo-random draw per entry and eviction.
                let draw = (e.hash ^ salt).wrapping_mul(0xd6e8_feb8_6659_fd93) >> 32;
                if draw < share {
                    cost.discharge(e);
                    return false;
                }
                true
            });
        }
    }

    /// The synchronous snapshot phase: the active table becomes a frozen layer if it
    /// has anything not yet handed to the writer.
    fn freeze(&mut self) {
        if self.active.cost.dirty_bytes > 0 {
            let layer = std::mem::take(&mut self.active);
            let bytes = layer.bytes();
            self.frozen_bytes += bytes;
            self.frozen_dirty_bytes += layer.cost.dirty_bytes;
            self.frozen.push(Frozen {
                layer: Arc::new(layer),
                bytes,
                job: 0,
            });
        }
    }

    /// The frozen layers not yet handed to the writer, oldest first, now handed to
    /// job `job`.
    fn take_unhanded(&mut self, job: u64) -> Vec<Arc<Layer>> {
        self.frozen_dirty_bytes = 0;
        // Called right after a freeze: the layers hold every dirty entry.
        debug_assert_eq!(self.active.cost.dirty_bytes, 0);
        self.sets.handed_to(job);
        self.frozen
            .iter_mut()
            .filter(|f| f.job == 0)
            .map(|f| {
                f.job = job;
                Arc::clone(&f.layer)
            })
            .collect()
    }

    /// What a RocksDB snapshot taken when job `completed` had completed and the
    /// writer was at `landing` lacks, oldest first.
    fn pending(&self, completed: u64, landing: Option<Landing>) -> Vec<Pending> {
        let mut pending = Vec::new();
        let mut runs = self
            .in_flight
            .iter()
            .filter(|(job, _)| *job > completed)
            .peekable();
        let mut frozen = self.frozen.iter().filter(|f| f.job > completed).peekable();
        loop {
            let run_job = runs.peek().map(|(job, _)| *job);
            let layer_job = frozen.peek().map(|f| f.job);
            let Some(job) = run_job.into_iter().chain(layer_job).min() else {
                break;
            };
            // A job's layers are in its run, if it has one; a link carries them.
            let mut layers = Vec::new();
            while let Some(f) = frozen.next_if(|f| f.job == job) {
                layers.push(Arc::clone(&f.layer));
            }
            let run = runs
                .next_if(|(j, _)| *j == job)
                .map(|(_, run)| Arc::clone(run));
            match landing.as_ref().filter(|l| l.job == job) {
                Some(l) => pending.push(Pending::Run {
                    run: Arc::clone(&l.run),
                    landed: Some((Arc::clone(&l.order), l.landed)),
                }),
                None => match run {
                    Some(run) => pending.push(Pending::Run { run, landed: None }),
                    None => pending.push(Pending::Layers(layers)),
                },
            }
        }
        let unhanded: Vec<Arc<Layer>> = self
            .frozen
            .iter()
            .filter(|f| f.job == 0)
            .map(|f| Arc::clone(&f.layer))
            .collect();
        pending.push(Pending::Layers(unhanded));
        pending
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
    /// `size` bytes of cache, at most `dirty_size` of them not yet handed to the
    /// writer thread, which this starts.
    pub fn new(rocks: RocksStore, size: CacheSize, dirty_size: usize) -> Result<Self> {
        let initial = size.bytes();
        let writer = Writer::start(rocks.writer())?;
        Ok(CachedRocksStore {
            rocks,
            cache: RefCell::new(Cache {
                hasher: Default::default(),
                active: Layer::default(),
                frozen: Vec::new(),
                frozen_bytes: 0,
                frozen_dirty_bytes: 0,
                in_flight: VecDeque::new(),
                in_flight_bytes: 0,
                spare: None,
                writer,
                last_write: 0,
                size,
                dirty_size: dirty_size.min(initial),
                writer_kept: 0,
                evictions: 0,
                images: MapImages::new(initial / 8),
                hits: 0,
                misses: 0,
                sets: SetOverlay::default(),
            }),
            key: RefCell::new(Vec::with_capacity(64)),
        })
    }

    /// Bytes the cache takes, and of them not yet handed to the writer (for tests
    /// and diagnostics).
    pub fn cached_bytes(&self) -> (usize, usize) {
        let c = self.cache.borrow();
        (c.bytes(), c.dirty_bytes())
    }

    /// The cache's counters and what it holds now.
    pub fn metrics(&self) -> WriteCacheMetrics {
        let c = self.cache.borrow();
        let (writer_stalls, writer_stall_nanos) = c.writer.stalls();
        WriteCacheMetrics {
            hits: c.hits,
            misses: c.misses,
            cached_bytes: c.bytes() as u64,
            dirty_bytes: c.dirty_bytes() as u64,
            runs_in_flight: c.in_flight.len() as u64,
            writer_stalls,
            writer_stall_nanos,
        }
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
        cache.maintain()?;
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
            if let Some(u) = user_key {
                c.forget_image(&k[..k.len() - u.len()]);
            }
            c.put(k, kind, payload);
            Ok(())
        })
    }

    /// The image of map (s, kg, key, ns), if it has one; the map's cache key is left
    /// in `self.key` either way.
    fn map_image(&self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Option<images::Entries> {
        let mut buf = self.key.borrow_mut();
        encode_key(&mut buf, s, kg, key, ns, None);
        let mut cache = self.cache.borrow_mut();
        let h = cache.hash(&buf);
        let image = cache.images.get(h, &buf);
        match image {
            Some(_) => cache.hits += 1,
            None => cache.misses += 1,
        }
        image
    }

    /// Scans the map whose cache key `map_image` left in `self.key` in RocksDB, after
    /// writing the cache back, and keeps its image. With `only_for_image`, stops
    /// once the map is too large for one.
    fn scan_and_image(
        &self,
        s: StateId,
        only_for_image: bool,
        f: &mut MapVisitor<'_>,
    ) -> Result<()> {
        let prefix = self.key.borrow().clone();
        self.write_back()?;
        let mut builder = ImageBuilder::new(&prefix);
        self.rocks.scan_prefix(s, &prefix[STATE_LEN..], |k, v| {
            let user_key = &k[prefix.len() - STATE_LEN..];
            builder.add(user_key, v);
            f(user_key, v)?;
            Ok(builder.whole() || !only_for_image)
        })?;
        let mut cache = self.cache.borrow_mut();
        let h = cache.hash(&prefix);
        cache.images.insert(h, builder);
        Ok(())
    }

    /// Writes everything back; then RocksDB alone holds the state.
    fn write_back(&self) -> Result<()> {
        self.cache.borrow_mut().write_back()
    }
}

impl KeyedStore for CachedRocksStore {
    fn num_states(&self) -> usize {
        self.rocks.num_states()
    }

    /// Queues the link behind the runs already handed over, with the frozen layers
    /// not yet handed over: the writer writes those, then flushes and hard-links.
    fn local_checkpoint(&self) -> Result<Option<CheckpointLink>> {
        let mut cache = self.cache.borrow_mut();
        cache.settle()?;
        cache.freeze();
        let job = cache.writer.next_job();
        let layers = cache.take_unhanded(job);
        if !layers.is_empty() {
            cache.last_write = job;
        }
        let waiter = cache.writer.submit_link(layers);
        Ok(Some(CheckpointLink::deferred(move || waiter.wait())))
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
            c.append(k, encoded);
            Ok(())
        })
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

    fn map_put_all(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        entries: &[u8],
    ) -> Result<()> {
        let mut buf = self.key.borrow_mut();
        encode_key(&mut buf, s, kg, key, ns, None);
        let prefix = buf.len();
        let cache = self.cache.get_mut();
        cache.forget_image(&buf);
        // The user keys' probes first, with nothing in between: independent, their
        // cache misses overlap, and the puts then find their slots cached.
        let mut fields = ListElements::new(entries);
        while let (Some(user_key), Some(_)) = (fields.next(), fields.next()) {
            buf.truncate(prefix);
            buf.extend_from_slice(user_key);
            cache.touch(&buf);
        }
        let mut fields = ListElements::new(entries);
        while let (Some(user_key), Some(value)) = (fields.next(), fields.next()) {
            buf.truncate(prefix);
            buf.extend_from_slice(user_key);
            cache.put(&buf, Kind::Present, value);
            cache.maintain()?;
        }
        Ok(())
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
    // the cache holds is written back first. A map scanned and unchanged since is
    // read from its image.
    fn map_is_empty(&self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<bool> {
        if let Some(image) = self.map_image(s, kg, key, ns) {
            return Ok(image.is_empty());
        }
        // On to the map's end (while it fits an image): the next check or scan of
        // the map then finds its image.
        let mut empty = true;
        self.scan_and_image(s, true, &mut |_, _| {
            empty = false;
            Ok(())
        })?;
        Ok(empty)
    }

    fn map_for_each(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        f: &mut MapVisitor<'_>,
    ) -> Result<()> {
        // The cache is not borrowed while `f` runs.
        if let Some(image) = self.map_image(s, kg, key, ns) {
            for (user_key, value) in image.iter() {
                f(user_key, value)?;
            }
            return Ok(());
        }
        self.scan_and_image(s, false, f)
    }

    // A sorted set's elements are dirty entries like any other, recorded in the
    // overlay too (see `sets`); a range merges the overlay over RocksDB.
    fn set_add(&mut self, s: StateId, kg: u32, element: &[u8]) -> Result<()> {
        self.with_key(s, kg, &[], &[], Some(element), |c, k| {
            c.put(k, Kind::Present, &[]);
            c.sets.record(k, true);
            Ok(())
        })
    }

    fn set_remove(&mut self, s: StateId, kg: u32, element: &[u8]) -> Result<()> {
        self.with_key(s, kg, &[], &[], Some(element), |c, k| {
            c.put(k, Kind::Absent, &[]);
            c.sets.record(k, false);
            Ok(())
        })
    }

    fn set_range(
        &self,
        s: StateId,
        kg: u32,
        after: Option<&[u8]>,
        f: &mut SetVisitor<'_>,
    ) -> Result<()> {
        let mut cache = self.cache.borrow_mut();
        cache.settle()?;
        let mut prefix = Vec::new();
        encode_key(&mut prefix, s, kg, &[], &[], None);
        let from = [&prefix[..], after.unwrap_or_default()].concat();
        let mut overlay = cache
            .sets
            .range(&prefix, after.map(|_| from.as_slice()))
            .map(|(k, present)| (&k[prefix.len()..], present))
            .peekable();
        let mut stopped = false;
        // A merge of two ordered sequences; the overlay wins on equal elements.
        self.rocks
            .scan_from(s, &prefix[STATE_LEN..], &from[STATE_LEN..], |k, _| {
                let element = &k[prefix.len() - STATE_LEN..];
                if after == Some(element) {
                    return Ok(true);
                }
                while let Some((o, present)) = overlay.next_if(|(o, _)| *o <= element) {
                    if present && !f(o)? {
                        stopped = true;
                        return Ok(false);
                    }
                    if o == element {
                        return Ok(true);
                    }
                }
                stopped = !f(element)?;
                Ok(!stopped)
            })?;
        if !stopped {
            for (o, present) in overlay {
                if present && !f(o)? {
                    break;
                }
            }
        }
        Ok(())
    }

    fn clear(&mut self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<()> {
        if self.rocks.kind(s) != StateKind::Map {
            return self.put(s, kg, key, ns, None, Kind::Absent, &[]);
        }
        // The map's user keys are found in RocksDB once the cache is written back;
        // the cached copies of the ones deleted are dropped.
        let mut cache = self.cache.borrow_mut();
        cache.before_direct_write()?;
        let mut buf = self.key.borrow_mut();
        encode_key(&mut buf, s, kg, key, ns, None);
        cache.forget_image(&buf);
        let mut doomed = Vec::new();
        self.rocks.scan_prefix(s, &buf[STATE_LEN..], |k, _| {
            doomed.push(k.to_vec());
            Ok(true)
        })?;
        let cf = self.rocks.cf(s);
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

    /// RocksDB's estimates: entries not yet written back are not in them.
    fn state_metrics(&self, s: StateId, properties: &[String]) -> StateMetrics {
        self.rocks.state_metrics(s, properties)
    }

    fn write_cache_metrics(&self) -> Option<WriteCacheMetrics> {
        Some(self.metrics())
    }

    fn statistics(&self, metrics: &[&str]) -> Vec<Option<u64>> {
        self.rocks.statistics(metrics)
    }

    /// Once the cache is written back (the writer idle), RocksDB compacts.
    fn compact(&mut self, s: StateId) -> Result<()> {
        self.cache.get_mut().before_direct_write()?;
        self.rocks.compact(s)
    }

    fn view(&self) -> Result<Box<dyn StoreView>> {
        let mut cache = self.cache.borrow_mut();
        cache.settle()?;
        cache.freeze();
        let (rocks, completed, landing) = cache.writer.snapshot(|| self.rocks.snapshot_view());
        Ok(Box::new(CachedView {
            rocks,
            pending: cache.pending(completed, landing),
            overlay: OnceLock::new(),
        }))
    }

    /// Restores go straight to RocksDB: the cache is empty while a backend restores.
    fn restore_entries(&mut self, feed: &mut crate::store::RestoreFeed<'_>) -> Result<()> {
        let cache = self.cache.get_mut();
        cache.images.clear();
        cache.before_direct_write()?;
        self.rocks.restore_entries(feed)
    }

    fn restore_entry(&mut self, kg: u32, e: EntryRef<'_>) -> Result<()> {
        let cache = self.cache.get_mut();
        cache.images.clear();
        cache.before_direct_write()?;
        self.rocks.restore_entry(kg, e)
    }
}

#[cfg(test)]
mod tests;
