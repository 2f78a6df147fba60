//! The cache's writer: a thread that writes runs of dirty entries into RocksDB and
//! links incremental checkpoints, in the order the task thread hands them over.
//!
//! Why a thread: a write-back sorts its entries and inserts them into RocksDB's
//! memtable, about half of what a write costs when the written keys outnumber what
//! the cache can absorb (profile of `mapPutAll`). Handing a copy of the dirty entries
//! to a second core lets the task thread go on at once.
//!
//! Ordering: jobs complete in the order they were submitted, so a job's completion
//! means every earlier job's too. A run lands in chunks; each chunk is written under
//! the lock that [`Writer::snapshot`] takes, so a RocksDB snapshot always knows how
//! much of the current run it holds. A checkpoint link runs after every job
//! submitted before it and before any submitted after it: it writes what the cache
//! held at the synchronous phase, flushes and hard-links, so the linked files hold
//! exactly the state of the synchronous phase.

use super::layer::{state_of, Entry, Kind, Layer, STATE_LEN};
use crate::error::{Error, Result};
use crate::state::StateId;
use crate::store::rocks::{DbWriter, SstOp};
use crate::store::LocalCheckpoint;
use rocksdb::WriteBatch;
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Records written to RocksDB per batch: small enough that a snapshot waiting for
/// the lock waits a fraction of a millisecond.
#[cfg(not(test))]
const CHUNK: usize = 2048;
/// Tests land runs in small, slow chunks, so that snapshots meet runs half landed.
#[cfg(test)]
const CHUNK: usize = 16;
/// Runs of this many records or bytes or more are written as files and ingested;
/// the fixed cost of a file (a sync, a manifest update: milliseconds) would
/// dominate smaller ones. Tests ingest small runs too.
#[cfg(not(test))]
const INGEST_RECORDS: usize = 50_000;
#[cfg(test)]
const INGEST_RECORDS: usize = 64;
const INGEST_BYTES: usize = 8 << 20;
/// Level-0 files per state beyond which ingesting waits for compactions (RocksDB
/// slows writes down at 20).
const MAX_LEVEL0_FILES: u64 = 16;

/// A copy of dirty entries, in the order they were taken (a key's older versions
/// first), to be written to RocksDB.
#[derive(Default)]
pub(super) struct Run {
    /// `key ‖ payload` of each record, back to back.
    bytes: Vec<u8>,
    records: Vec<Record>,
}

#[derive(Clone, Copy)]
struct Record {
    start: usize,
    key_len: u32,
    payload_len: u32,
    kind: Kind,
}

impl Run {
    pub fn push(&mut self, e: &Entry) {
        self.push_parts(e.key(), e.kind, e.payload());
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Record `i`: (key, kind, payload).
    pub fn get(&self, i: usize) -> (&[u8], Kind, &[u8]) {
        let r = self.records[i];
        let key_end = r.start + r.key_len as usize;
        (
            &self.bytes[r.start..key_end],
            r.kind,
            &self.bytes[key_end..key_end + r.payload_len as usize],
        )
    }

    /// What this run takes in memory.
    pub fn bytes(&self) -> usize {
        self.bytes.capacity() + self.records.capacity() * std::mem::size_of::<Record>()
    }

    /// Empties this run, keeping its memory, with room for `bytes` and `records`.
    pub fn reuse(&mut self, bytes: usize, records: usize) {
        self.bytes.clear();
        self.records.clear();
        self.bytes.reserve(bytes);
        self.records.reserve(records);
    }

    /// Copies the records in `order` into `out` (emptied first), back to back.
    fn gather_into(&self, order: &[u32], out: &mut Run) {
        out.reuse(self.bytes.len(), order.len());
        // Fetched ahead: the order is a random walk through this run's bytes.
        const AHEAD: usize = 16;
        for (n, &i) in order.iter().enumerate() {
            if let Some(&ahead) = order.get(n + AHEAD) {
                prefetch(&self.bytes[self.records[ahead as usize].start..]);
            }
            let (key, kind, payload) = self.get(i as usize);
            out.push_parts(key, kind, payload);
        }
    }

    fn push_parts(&mut self, key: &[u8], kind: Kind, payload: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(payload);
        self.records.push(Record {
            start,
            key_len: key.len() as u32,
            payload_len: payload.len() as u32,
            kind,
        });
    }

    /// Record indices in key order, a key's records in the order they were taken.
    fn key_order(&self) -> Vec<u32> {
        // Sorted by the keys' first 32 bytes as integers (map keys share their first
        // 16 with the other user keys of their map), then ties by the whole key.
        let mut order: Vec<([u128; 2], u32)> = (0..self.len() as u32)
            .map(|i| {
                let key = self.get(i as usize).0;
                let rest = key.get(16..).unwrap_or_default();
                ([key_prefix(key), key_prefix(rest)], i)
            })
            .collect();
        order.sort_unstable();
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            while order.get(end).is_some_and(|o| o.0 == order[start].0) {
                end += 1;
            }
            if end - start > 1 {
                order[start..end].sort_by(|a, b| {
                    let key = |i: u32| self.get(i as usize).0;
                    key(a.1).cmp(key(b.1)).then(a.1.cmp(&b.1))
                });
            }
            start = end;
        }
        order.into_iter().map(|(_, i)| i).collect()
    }
}

/// Where an incremental checkpoint's link leaves its result, set before the link's
/// job completes.
#[derive(Default)]
pub(super) struct LinkSlot {
    result: Mutex<Option<Result<LocalCheckpoint>>>,
}

impl LinkSlot {
    fn set(&self, r: Result<LocalCheckpoint>) {
        *self.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }

    fn take(&self) -> Option<Result<LocalCheckpoint>> {
        self.result.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Waits for the link of an incremental checkpoint, on another thread than the
/// task's (the asynchronous phase).
pub(super) struct LinkWaiter {
    shared: Arc<Shared>,
    job: u64,
    slot: Arc<LinkSlot>,
}

impl LinkWaiter {
    /// The linked files, once the writer has linked them; the writer's error if it
    /// failed (or panicked) first.
    pub fn wait(self) -> Result<LocalCheckpoint> {
        if self.shared.wait_done(self.job) {
            if let Some(linked) = self.slot.take() {
                return linked;
            }
        }
        self.shared.check()?;
        Err(Error::RocksDb(
            "the write-back thread completed a checkpoint link without linking".into(),
        ))
    }
}

pub(super) enum Job {
    Run(Arc<Run>),
    /// An incremental checkpoint: the dirty entries of `layers` (what the cache held
    /// beyond the runs before it), then a memtable flush and the hard links.
    Link {
        layers: Vec<Arc<Layer>>,
        slot: Arc<LinkSlot>,
    },
}

/// The run being written: its job, its records in key order, how many have landed.
#[derive(Clone)]
pub(super) struct Landing {
    pub job: u64,
    pub run: Arc<Run>,
    pub order: Arc<[u32]>,
    pub landed: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<(u64, Job)>,
    stop: bool,
    current: Option<Landing>,
    error: Option<String>,
    /// The error is a panic of the writer thread.
    poisoned: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when a job is submitted or completed.
    changed: Condvar,
    /// Every job up to this one has completed.
    completed: AtomicU64,
    failed: AtomicBool,
    /// The memory of the writer's sorted copy of the last run it ingested, which it
    /// keeps: the cache counts it in its size.
    sorted_bytes: AtomicUsize,
    /// Tests slow the landing of chunks down by this much.
    #[cfg(test)]
    chunk_delay_micros: AtomicU64,
    /// Tests make the writer panic when it starts its next job.
    #[cfg(test)]
    panic_on_next_job: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The writer never panics while holding the lock; a poisoned lock still
        // holds consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Job `job` has completed: what it landed is now RocksDB's for good.
    fn complete(&self, job: u64) {
        let mut state = self.lock();
        // Cleared with the completion, under one lock: a snapshot sees the landed
        // records either as landed or as completed, never as neither.
        state.current = None;
        self.completed.store(job, Ordering::Release);
        self.changed.notify_all();
    }

    fn fail(&self, state: &mut State, e: Error) {
        state
            .error
            .get_or_insert_with(|| format!("writing cached state to RocksDB failed: {e}"));
        self.failed.store(true, Ordering::Release);
    }

    /// The writer thread panicked: it completes no job from now on, so every waiter
    /// is woken and every later wait fails, instead of blocking the task thread.
    fn poison(&self, panic: &str) {
        let mut state = self.lock();
        state.poisoned = true;
        state.error = Some(format!(
            "the write-back thread panicked: {panic}; what the cache held since the last checkpoint may be lost, restore from a checkpoint"
        ));
        self.failed.store(true, Ordering::Release);
        self.changed.notify_all();
    }

    /// The error that stopped the writer, if one did.
    fn check(&self) -> Result<()> {
        if !self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        let state = self.lock();
        let error = state.error.clone().unwrap_or_default();
        Err(if state.poisoned {
            Error::Poisoned(error)
        } else {
            Error::RocksDb(error)
        })
    }

    /// Waits until job `job` has completed or the writer has failed; whether the job
    /// completed.
    fn wait_done(&self, job: u64) -> bool {
        let done = || self.completed.load(Ordering::Acquire) >= job;
        if !done() {
            let mut state = self.lock();
            while !done() && !self.failed.load(Ordering::Acquire) {
                state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        }
        done()
    }

    /// Waits until job `job` has completed; fails if the writer has failed.
    fn wait_for(&self, job: u64) -> Result<()> {
        self.wait_done(job);
        self.check()
    }
}

/// The task thread's end of the writer.
pub(super) struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The id of the last job submitted (ids start at 1).
    submitted: u64,
    /// Waits of the task thread for a job not yet completed, and their nanoseconds
    /// (metrics).
    stalls: Cell<u64>,
    stall_nanos: Cell<u64>,
}

impl Writer {
    pub fn start(db: DbWriter) -> Result<Writer> {
        let shared = Arc::new(Shared::default());
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("statebackend-write-back".into())
            .spawn(move || write_jobs(&for_thread, &db))
            .map_err(|e| Error::RocksDb(format!("starting the write-back thread: {e}")))?;
        Ok(Writer {
            shared,
            thread: Some(thread),
            submitted: 0,
            stalls: Cell::new(0),
            stall_nanos: Cell::new(0),
        })
    }

    #[cfg(test)]
    pub fn set_chunk_delay(&self, micros: u64) {
        self.shared
            .chunk_delay_micros
            .store(micros, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub fn panic_on_next_job(&self) {
        self.shared.panic_on_next_job.store(true, Ordering::Relaxed);
    }

    /// Every job up to this id has completed.
    pub fn completed(&self) -> u64 {
        self.shared.completed.load(Ordering::Acquire)
    }

    /// The memory the writer keeps between runs (its sorted copy of the last run
    /// ingested).
    pub fn kept_bytes(&self) -> usize {
        self.shared.sorted_bytes.load(Ordering::Relaxed)
    }

    /// The id the next job will get.
    pub fn next_job(&self) -> u64 {
        self.submitted + 1
    }

    /// The error that stopped the writer, if one did: the state RocksDB holds is
    /// then incomplete, and so is every later snapshot.
    pub fn check(&self) -> Result<()> {
        self.shared.check()
    }

    pub fn submit(&mut self, job: Job) -> u64 {
        self.submitted += 1;
        let mut state = self.shared.lock();
        state.queue.push_back((self.submitted, job));
        self.shared.changed.notify_all();
        self.submitted
    }

    /// Waits until job `job` has completed; fails if the writer has failed.
    pub fn wait_for(&self, job: u64) -> Result<()> {
        if job <= self.completed() {
            return self.shared.wait_for(job);
        }
        let start = std::time::Instant::now();
        let waited = self.shared.wait_for(job);
        self.stalls.set(self.stalls.get() + 1);
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.stall_nanos
            .set(self.stall_nanos.get().saturating_add(nanos));
        waited
    }

    /// How often the task thread waited in [`Writer::wait_for`] for a job not yet
    /// completed, and for how many nanoseconds in all.
    pub fn stalls(&self) -> (u64, u64) {
        (self.stalls.get(), self.stall_nanos.get())
    }

    /// Queues the link of an incremental checkpoint (after every job submitted
    /// before it); what waits for its files.
    pub fn submit_link(&mut self, layers: Vec<Arc<Layer>>) -> LinkWaiter {
        let slot = Arc::new(LinkSlot::default());
        let job = self.submit(Job::Link {
            layers,
            slot: Arc::clone(&slot),
        });
        LinkWaiter {
            shared: Arc::clone(&self.shared),
            job,
            slot,
        }
    }

    /// Runs `f` (taking a RocksDB snapshot) while no chunk lands; returns its result,
    /// the last job completed before it and how far the run being written had got.
    pub fn snapshot<T>(&self, f: impl FnOnce() -> T) -> (T, u64, Option<Landing>) {
        let state = self.shared.lock();
        let t = f();
        (t, self.completed(), state.current.clone())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread. A panic poisons the writer rather than ending the thread
/// silently: nothing would complete the jobs the task thread waits for.
fn write_jobs(shared: &Shared, db: &DbWriter) {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| land_jobs(shared, db)));
    if let Err(payload) = run {
        shared.poison(&crate::error::panic_message(payload.as_ref()));
    }
}

/// Jobs in order until stopped. After a failure, or once stopped, runs are dropped
/// and links fail, so that nobody waits forever.
fn land_jobs(shared: &Shared, db: &DbWriter) {
    // The sorted copy of the last run ingested, kept: a fresh one of tens of
    // megabytes is mapped anew and faulted in page by page.
    let mut sorted = Run::default();
    loop {
        let (job, work, stopped) = {
            let mut state = shared.lock();
            loop {
                if let Some((job, work)) = state.queue.pop_front() {
                    break (job, work, state.stop);
                }
                if state.stop {
                    return;
                }
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
            }
        };
        #[cfg(test)]
        if shared.panic_on_next_job.swap(false, Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_micros(
                shared.chunk_delay_micros.load(Ordering::Relaxed),
            ));
            panic!("injected panic in the write-back thread (job {job})");
        }
        let live = !stopped && !shared.failed.load(Ordering::Acquire);
        match work {
            Job::Run(run) if live => write_run(shared, db, job, run, &mut sorted),
            Job::Run(_) => {}
            Job::Link { layers, slot } => {
                let mut run = Run::default();
                for layer in &layers {
                    layer.dirty_entries().for_each(|e| run.push(e));
                }
                if live && !run.records.is_empty() {
                    write_run(shared, db, job, Arc::new(run), &mut sorted);
                }
                let failed = shared.failed.load(Ordering::Acquire);
                slot.set(if stopped || failed {
                    Err(Error::RocksDb(match shared.lock().error.clone() {
                        Some(e) => e,
                        None => "the backend was closed before the checkpoint was taken".into(),
                    }))
                } else {
                    db.local_checkpoint(&|| !shared.lock().queue.is_empty())
                });
            }
        }
        shared.sorted_bytes.store(sorted.bytes(), Ordering::Relaxed);
        shared.complete(job);
    }
}

/// Lands `run`; `sorted` is room for a sorted copy of records to ingest.
fn write_run(shared: &Shared, db: &DbWriter, job: u64, run: Arc<Run>, sorted: &mut Run) {
    let order: Arc<[u32]> = run.key_order().into();
    shared.lock().current = Some(Landing {
        job,
        run: Arc::clone(&run),
        order: Arc::clone(&order),
        landed: 0,
    });
    // State by state: a state's records are contiguous in key order.
    let mut start = 0;
    while start < order.len() {
        let s = state_of(run.get(order[start] as usize).0);
        let end = start + order[start..].partition_point(|&i| state_of(run.get(i as usize).0) == s);
        let written = match ingests(db, &run, &order[start..end], s) {
            Ok(true) => ingest(shared, db, job, &run, &order[start..end], s, end, sorted),
            Ok(false) => write_batches(shared, db, &run, &order[start..end], s),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            shared.fail(&mut shared.lock(), e);
            return;
        }
        start = end;
    }
}

/// Whether records `order` of `run` (all of state `s`) go in as a file: when they
/// are many and would fill the memtable anyway. What fits the memtable stays there,
/// where a lookup or a scan costs less than in files of their own (a file ingested
/// per run made map scans twice as slow). Once the DB has outgrown RocksDB's
/// memory, every run goes through the memtable: an ingested run is a level-0 file
/// over the whole key range, and with state larger than memory the compactions
/// those cause cost more than the memtable saves (2.5 GiB against 128 MiB:
/// read-modify-writes 1.3-1.7x as fast, list appends 1.1-1.3x, without them).
fn ingests(db: &DbWriter, run: &Run, order: &[u32], s: StateId) -> Result<bool> {
    let bytes: usize = order
        .iter()
        .map(|&i| {
            let (k, _, p) = run.get(i as usize);
            k.len() + p.len()
        })
        .sum();
    if (order.len() < INGEST_RECORDS && bytes < INGEST_BYTES) || db.outgrew_memory() {
        return Ok(false);
    }
    if cfg!(test) {
        return Ok(true);
    }
    // A memtable entry takes about twice its bytes (skip list node, arena).
    Ok(2 * bytes > db.memtable_room(s)?)
}

/// Lands records `order` of `run` in write batches, one chunk at a time under the lock.
/// A chunk that would not fit the memtable first waits, outside the lock, for a
/// flush: RocksDB stalls a write while its memtables are full, and a stall under
/// the lock would hold up the synchronous phase of a checkpoint (15–36 ms after a
/// bulk load, measured).
fn write_batches(
    shared: &Shared,
    db: &DbWriter,
    run: &Run,
    order: &[u32],
    s: StateId,
) -> Result<()> {
    for chunk in order.chunks(CHUNK) {
        let batch = batch(db, run, chunk)?;
        // A memtable entry takes about twice its bytes (skip list node, arena).
        if 2 * batch.size_in_bytes() > db.memtable_room(s)? {
            db.flush(s)?;
        }
        #[cfg(test)]
        std::thread::sleep(std::time::Duration::from_micros(
            shared.chunk_delay_micros.load(Ordering::Relaxed),
        ));
        let mut state = shared.lock();
        db.write(batch)?;
        if let Some(current) = state.current.as_mut() {
            current.landed += chunk.len();
        }
    }
    Ok(())
}

/// Lands records `order` of `run` (all of state `s`, ending at `end` of the run's key
/// order) as one sorted file that RocksDB takes whole (ingests): the memtable's skip
/// list and its flush are skipped, half of what a write costs RocksDB. It lands
/// under the lock, so [`Landing`] counts it as it counts chunks.
#[allow(clippy::too_many_arguments)]
fn ingest(
    shared: &Shared,
    db: &DbWriter,
    job: u64,
    run: &Run,
    order: &[u32],
    s: StateId,
    end: usize,
    sorted: &mut Run,
) -> Result<()> {
    // In key order, contiguous: the walk below reads it front to back.
    run.gather_into(order, sorted);
    let identity: Vec<u32> = (0..sorted.len() as u32).collect();
    let mut sst = db.new_sst(&format!("write-back-{job}-{s}.sst"))?;
    for_each_combined(sorted, &identity, |key, kind, payload| {
        let op = match kind {
            Kind::Present => SstOp::Put(payload),
            Kind::Absent => SstOp::Delete,
            Kind::Append => SstOp::Merge(payload),
        };
        sst.add(&key[STATE_LEN..], op)
    })?;
    let path = sst.finish()?;
    // Compactions fold level 0 into the levels below; until they catch up, every
    // lookup would check one more file.
    while db.level0_files(s)? >= MAX_LEVEL0_FILES {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    loop {
        let mut state = shared.lock();
        if db.ingest(s, &path)? {
            if let Some(current) = state.current.as_mut() {
                current.landed = end;
            }
            return Ok(());
        }
        // Direct writes are in the memtable: flushed outside the lock.
        drop(state);
        db.flush(s)?;
    }
}

/// Calls `f` with each key of `order` (sorted, a key's records in the order they
/// were taken) once, its records combined.
fn for_each_combined(
    run: &Run,
    order: &[u32],
    mut f: impl FnMut(&[u8], Kind, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut combined: Vec<u8> = Vec::new();
    let mut n = 0;
    while n < order.len() {
        let (key, mut kind, payload) = run.get(order[n] as usize);
        n += 1;
        if order.get(n).is_none_or(|&i| run.get(i as usize).0 != key) {
            f(key, kind, payload)?;
            continue;
        }
        combined.clear();
        combined.extend_from_slice(payload);
        while let Some((_, next, more)) = order
            .get(n)
            .map(|&i| run.get(i as usize))
            .filter(|r| r.0 == key)
        {
            match (kind, next) {
                (_, Kind::Present | Kind::Absent) | (Kind::Absent, Kind::Append) => {
                    kind = if next == Kind::Absent {
                        Kind::Absent
                    } else {
                        Kind::Present
                    };
                    combined.clear();
                }
                (Kind::Present | Kind::Append, Kind::Append) => {}
            }
            combined.extend_from_slice(more);
            n += 1;
        }
        f(key, kind, &combined)?;
    }
    Ok(())
}

/// The records `chunk` of `run` as one write batch, in the chunk's order.
fn batch(db: &DbWriter, run: &Run, chunk: &[u32]) -> Result<WriteBatch> {
    let records = chunk.iter().map(|&i| run.get(i as usize));
    let bytes: usize = records.clone().map(|(k, _, p)| k.len() + p.len() + 8).sum();
    let mut batch = WriteBatch::with_capacity_bytes(bytes + 12);
    let mut cfs = Vec::new();
    // Key order is a random walk through the run's bytes: each record would wait
    // for its cache miss (88% of this loop in a profile) unless fetched ahead.
    const AHEAD: usize = 16;
    for &i in chunk.iter().take(AHEAD) {
        prefetch(run.get(i as usize).0);
    }
    for (n, (key, kind, payload)) in records.enumerate() {
        if let Some(&i) = chunk.get(n + AHEAD) {
            prefetch(run.get(i as usize).0);
        }
        let s = state_of(key) as usize;
        if cfs.len() <= s {
            cfs.resize_with(s + 1, || None);
        }
        if cfs[s].is_none() {
            cfs[s] = Some(db.cf(s as StateId)?);
        }
        let cf = cfs[s].as_ref().expect("just looked up");
        let k = &key[STATE_LEN..];
        match kind {
            Kind::Present => batch.put_cf(cf, k, payload),
            Kind::Absent => batch.delete_cf(cf, k),
            Kind::Append => batch.merge_cf(cf, k, payload),
        }
    }
    Ok(batch)
}

/// Asks the CPU to bring the cache line holding the start of `bytes` (a hint).
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and changes no memory.
    unsafe {
        std::arch::x86_64::_mm_prefetch(bytes.as_ptr().cast(), std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// The first 16 bytes of a key as a number (zero-padded): ordered as the keys are,
/// up to ties.
fn key_prefix(key: &[u8]) -> u128 {
    let mut p = [0u8; 16];
    let n = key.len().min(16);
    p[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(p)
}
