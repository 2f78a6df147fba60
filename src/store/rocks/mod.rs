//! The RocksDB store: working state in an embedded RocksDB on local disk, bounded
//! by disk rather than memory.
//!
//! One column family per state. Keys follow Flink's layout so a key group is a
//! contiguous key range: `key group (u16, big-endian) ‖ varint(len key) ‖ key ‖
//! varint(len namespace) ‖ namespace`, followed by the user key for map state.
//! Lists are stored encoded (see `codec`) and appended with a merge operator, so
//! `add` never reads the list. Block cache and memtables of all column families
//! share one budget (a write-buffer manager charged to the cache).

pub mod cache;
pub mod memory;
pub mod options;

/// Incompressible values for the tests, the ones `tests/incremental.rs` and the probes
/// write.
#[cfg(test)]
#[path = "../../../examples/support/values.rs"]
mod test_values;

use self::options::RocksOptions;
use super::{
    CheckpointLink, EntryData, EntryRef, EntryVisitor, KeyedStore, LocalCheckpoint, MapVisitor,
    SetVisitor, StoreView,
};
use crate::codec::{get_varint, put_varint};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::keygroup::KeyGroupRange;
use crate::metrics::StateMetrics;
use crate::state::{StateId, StateKind};
use rocksdb::statistics::StatsLevel;
use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType,
    DBWithThreadMode, MergeOperands, MultiThreaded, Options, ReadOptions, SnapshotWithThreadMode,
    WriteBatch, WriteBufferManager, WriteOptions,
};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Db = DBWithThreadMode<MultiThreaded>;

/// Prefix of working directories; a stale one is recognised by its dead owner pid.
const WORKDIR_PREFIX: &str = "statebackend-rocksdb-";

/// An open DB and what must outlive it. Fields drop in order: the DB closes before
/// its working directory is deleted.
struct OpenDb {
    db: Db,
    /// See [`RocksOptions::compaction_wait`].
    compaction_wait: std::time::Duration,
    /// Bytes of memory RocksDB has (block cache and memtables): its own budget, or
    /// its part of a shared one.
    memory: usize,
    /// The DB's options when `state.backend.rocksdb.metrics.*` enabled statistics
    /// counters: they hold RocksDB's statistics object, which the DB shares.
    statistics: Option<Options>,
    _cache: Cache,
    _write_buffers: WriteBufferManager,
    dir: WorkDir,
}

/// The RocksDB store of one backend instance.
pub struct RocksStore {
    inner: Arc<OpenDb>,
    range: KeyGroupRange,
    states: Vec<(String, StateKind)>,
    cf_options: Options,
    /// Bytes of one memtable.
    write_buffer_size: usize,
    write: WriteOptions,
    read: ReadOptions,
    /// Reused buffer for composite keys.
    key_buf: RefCell<Vec<u8>>,
}

/// Level-0 files that start a compaction into level 1 (RocksDB's default: 4).
const LEVEL0_COMPACTION_TRIGGER: i32 = 8;

/// The list merge operator. RocksDB calls it from its own threads (reads,
/// flushes, compactions) through C++: a panic must not unwind there, which would
/// abort the process; it becomes a failed merge, which RocksDB reports as an error.
fn list_append(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    std::panic::catch_unwind(|| {
        #[cfg(test)]
        if operands.iter().any(|op| op == tests::PANIC_IN_MERGE) {
            panic!("injected panic in the list merge operator");
        }
        let len = existing.map_or(0, <[u8]>::len) + operands.iter().map(<[u8]>::len).sum::<usize>();
        let mut out = Vec::with_capacity(len);
        if let Some(e) = existing {
            out.extend_from_slice(e);
        }
        for op in operands {
            out.extend_from_slice(op);
        }
        out
    })
    .ok()
}

impl RocksStore {
    /// Opens a fresh DB in a new working directory under the configured local dir,
    /// after removing working directories left behind by dead processes.
    pub fn open(config: &Config) -> Result<Self> {
        RocksStore::open_in(config, config.key_group_range, &[], |_| Ok(()))
    }

    /// Opens a DB whose files `populate` puts into the (empty) DB directory first,
    /// with column families `state-0..` for `kinds`. `range` bounds what views see.
    pub(crate) fn open_in(
        config: &Config,
        range: KeyGroupRange,
        kinds: &[StateKind],
        populate: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Self> {
        let options = RocksOptions::from_config(&config.rocksdb_options)?;
        let local = config.local_dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = WorkDir::create(&local, range)?;
        let db_path = dir.path.join("db");
        populate(&db_path)?;

        // A budget shared with other backends (Flink: the slot's managed memory), or
        // one of this backend's own.
        let (cache, write_buffers) = match &config.memory {
            Some(shared) => (shared.block_cache().clone(), shared.write_buffers().clone()),
            None => {
                let cache = Cache::new_lru_cache(options.memory_budget);
                let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
                    (options.memory_budget as f64 * options.write_buffer_ratio) as usize,
                    false,
                    cache.clone(),
                );
                (cache, write_buffers)
            }
        };
        let mut table = BlockBasedOptions::default();
        table.set_block_size(options.block_size);
        table.set_block_cache(&cache);
        // Index and filter blocks live in the shared budget, partitioned so that a
        // lookup loads one small partition instead of a whole file's index; the top
        // level stays pinned.
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
        table.set_partition_filters(true);
        table.set_pin_top_level_index_and_filter(true);
        table.set_metadata_block_size(4096);
        table.set_bloom_filter(10.0, false);

        let mut cf = Options::default();
        cf.set_block_based_table_factory(&table);
        cf.set_write_buffer_size(match &config.memory {
            Some(shared) => options
                .write_buffer_size
                .min(shared.max_write_buffer_size()),
            None => options.write_buffer_size,
        });
        cf.set_max_write_buffer_number(options.write_buffer_count);
        cf.set_compaction_style(options.compaction_style);
        match &options.compression_per_level {
            Some(levels) => cf.set_compression_per_level(levels),
            None => {
                cf.set_compression_type(DBCompressionType::Lz4);
                cf.set_bottommost_compression_type(DBCompressionType::Zstd);
            }
        }
        cf.set_merge_operator_associative("statebackend-list-append", list_append);
        // The write-back cache lands large runs as files spanning the whole key
        // range: each compaction of level 0 rewrites the level below whole, so
        // it waits for twice RocksDB's default of files (the bloom filters keep
        // point reads of level 0 cheap).
        cf.set_level_zero_file_num_compaction_trigger(LEVEL0_COMPACTION_TRIGGER);

        let mut db_options = cf.clone();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_write_buffer_manager(&write_buffers);
        db_options.set_max_background_jobs(options.background_jobs);
        if !options.metrics.statistics.is_empty() {
            // Counters only (no histograms, no timers): what the metrics read.
            db_options.enable_statistics();
            db_options.set_statistics_level(StatsLevel::ExceptHistogramOrTimers);
        }

        let states: Vec<(String, StateKind)> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| (cf_name(i as StateId), *k))
            .collect();
        let descriptors = std::iter::once(ColumnFamilyDescriptor::new("default", cf.clone()))
            .chain(
                states
                    .iter()
                    .map(|(name, _)| ColumnFamilyDescriptor::new(name, cf.clone())),
            )
            .collect::<Vec<_>>();
        let db = Db::open_cf_descriptors(&db_options, &db_path, descriptors)?;
        // State lives in checkpoints; a write-ahead log would only duplicate it.
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        Ok(RocksStore {
            inner: Arc::new(OpenDb {
                db,
                compaction_wait: options.compaction_wait,
                memory: match &config.memory {
                    Some(shared) => shared.rocksdb_bytes(),
                    None => options.memory_budget,
                },
                statistics: (!options.metrics.statistics.is_empty()).then_some(db_options),
                _cache: cache,
                _write_buffers: write_buffers,
                dir,
            }),
            range,
            states,
            cf_options: cf,
            write_buffer_size: options.write_buffer_size,
            write,
            read: ReadOptions::default(),
            key_buf: RefCell::new(Vec::with_capacity(64)),
        })
    }

    /// Deletes every key group outside `own` (delete-range per column family), after
    /// restoring a DB that covered more key groups than this instance owns.
    pub(crate) fn clip_to(&mut self, own: KeyGroupRange) -> Result<()> {
        for (name, _) in &self.states {
            let cf = self.inner.db.cf_handle(name).expect("open column family");
            if own.start() > 0 {
                self.inner
                    .db
                    .delete_range_cf(&cf, [0u8, 0], (own.start() as u16).to_be_bytes())?;
            }
            // Key groups are below 2^15, so every key is below [0x80, 0].
            self.inner.db.delete_range_cf(
                &cf,
                ((own.end() + 1) as u16).to_be_bytes(),
                [0x80u8, 0],
            )?;
        }
        self.range = own;
        Ok(())
    }

    /// The synchronous phase of an incremental checkpoint: flushes the memtables and
    /// hard-links the DB's files into a new local directory.
    pub fn local_checkpoint(&self) -> Result<LocalCheckpoint> {
        link(&self.inner)
    }

    /// What a thread that writes to this DB needs (the write-back cache's writer).
    pub(crate) fn writer(&self) -> DbWriter {
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        DbWriter {
            inner: Arc::clone(&self.inner),
            write,
            write_buffer_size: self.write_buffer_size,
            cf_options: {
                // Ingested files land in level 0, where the profile's LZ4 applies (an
                // SST file writer takes its file for the bottom level: ZSTD).
                let mut o = self.cf_options.clone();
                o.set_compression_type(DBCompressionType::Lz4);
                o.set_bottommost_compression_type(DBCompressionType::Lz4);
                o
            },
        }
    }

    /// The working directory (removed when the store and its snapshots are gone).
    pub fn working_dir(&self) -> &Path {
        &self.inner.dir.path
    }

    fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(super) fn cf(&self, s: StateId) -> Arc<rocksdb::BoundColumnFamily<'_>> {
        self.db()
            .cf_handle(&self.states[s as usize].0)
            .expect("column family created with the state")
    }

    /// Runs `f` with the composite key of (kg, key, ns[, user key]).
    fn with_key<R>(
        &self,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: Option<&[u8]>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> R {
        let mut buf = self.key_buf.borrow_mut();
        encode_prefix(&mut buf, kg, key, ns);
        if let Some(u) = user_key {
            buf.extend_from_slice(u);
        }
        f(&buf)
    }

    /// The kind of state `s`.
    pub(super) fn kind(&self, s: StateId) -> StateKind {
        self.states[s as usize].1
    }

    /// Applies `batch` (no write-ahead log, as every write here).
    pub(super) fn write(&self, batch: WriteBatch) -> Result<()> {
        Ok(self.db().write_opt(batch, &self.write)?)
    }

    /// Merges (appends) `operand` into the DB key `k` of state `s`.
    pub(super) fn merge(&self, s: StateId, k: &[u8], operand: &[u8]) -> Result<()> {
        Ok(self
            .db()
            .merge_cf_opt(&self.cf(s), k, operand, &self.write)?)
    }

    /// Appends the value stored under the DB key `k` of state `s` to `out`.
    pub(super) fn get_into(&self, s: StateId, k: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        Ok(
            match self.db().get_pinned_cf_opt(&self.cf(s), k, &self.read)? {
                Some(v) => {
                    out.extend_from_slice(&v);
                    true
                }
                None => false,
            },
        )
    }

    /// Visits every (key, value) under `prefix` in state `s`.
    pub(super) fn scan_prefix(
        &self,
        s: StateId,
        prefix: &[u8],
        f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.scan_from(s, prefix, prefix, f)
    }

    /// Visits the (key, value) pairs under `prefix` in state `s` from `from` on (a key
    /// that starts with `prefix`), in key order, while `f` returns true.
    pub(super) fn scan_from(
        &self,
        s: StateId,
        prefix: &[u8],
        from: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let cf = self.cf(s);
        let mut read = ReadOptions::default();
        // The bound lets RocksDB stop at the prefix's end instead of reading past it.
        if let Some(end) = prefix_end(prefix) {
            read.set_iterate_upper_bound(end);
        }
        let mut it = self.db().raw_iterator_cf_opt(&cf, read);
        it.seek(from);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(prefix) || !f(k, v)? {
                break;
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }
}

/// The smallest key above every key that starts with `prefix` (None: there is none).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The column family of state `id`.
fn cf_name(id: StateId) -> String {
    format!("state-{id}")
}

/// How long one slice of a checkpoint's compaction wait lasts: how soon writes
/// handed over meanwhile end it.
const COMPACTION_WAIT_SLICE: std::time::Duration = std::time::Duration::from_millis(100);

/// Waits up to `wait` in slices of `wait_slice(slice)` (true once the compactions are
/// done), until they are done or `writes_waiting`; past the wait the checkpoint links
/// what there is.
fn wait_for_compactions(
    wait: std::time::Duration,
    writes_waiting: &dyn Fn() -> bool,
    mut wait_slice: impl FnMut(std::time::Duration) -> Result<bool>,
) -> Result<()> {
    let deadline = std::time::Instant::now() + wait;
    while !writes_waiting() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || wait_slice(left.min(COMPACTION_WAIT_SLICE))? {
            break;
        }
    }
    Ok(())
}

/// Flushes the memtables and hard-links the DB's files into a new local directory.
fn link(inner: &Arc<OpenDb>) -> Result<LocalCheckpoint> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let parent = inner.dir.path.join("checkpoints");
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let dir = parent.join(format!("local-{nanos}"));
    rocksdb::checkpoint::Checkpoint::new(&inner.db)?.create_checkpoint(&dir)?;
    // The files stay valid while the DB is open: the checkpoint holds it.
    Ok(LocalCheckpoint::new(dir, Arc::clone(inner) as _))
}

/// The DB as a writer thread uses it: write batches, sorted files to ingest, and
/// checkpoint links.
pub(crate) struct DbWriter {
    inner: Arc<OpenDb>,
    write: WriteOptions,
    /// The column families' options, which ingested files are built with.
    cf_options: Options,
    write_buffer_size: usize,
}

/// A file being written to be ingested; deleted if dropped before it is finished.
pub(crate) struct NewSst<'a> {
    writer: rocksdb::SstFileWriter<'a>,
    path: Option<PathBuf>,
}

impl NewSst<'_> {
    pub(crate) fn add(&mut self, key: &[u8], op: SstOp<'_>) -> Result<()> {
        match op {
            SstOp::Put(v) => self.writer.put(key, v)?,
            SstOp::Delete => self.writer.delete(key)?,
            SstOp::Merge(v) => self.writer.merge(key, v)?,
        }
        Ok(())
    }

    /// Completes the file (synced); returns its path.
    pub(crate) fn finish(mut self) -> Result<PathBuf> {
        self.writer.finish()?;
        Ok(self.path.take().expect("finished once"))
    }
}

impl Drop for NewSst<'_> {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What an entry of a file to ingest does to its key.
pub(crate) enum SstOp<'a> {
    Put(&'a [u8]),
    Delete,
    /// Appends list elements (a merge operand).
    Merge(&'a [u8]),
}

impl DbWriter {
    pub(crate) fn cf(&self, s: StateId) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>> {
        self.inner
            .db
            .cf_handle(&cf_name(s))
            .ok_or_else(|| Error::RocksDb(format!("state {s} has no column family")))
    }

    pub(crate) fn write(&self, batch: WriteBatch) -> Result<()> {
        Ok(self.inner.db.write_opt(batch, &self.write)?)
    }

    /// See [`RocksStore::local_checkpoint`]. The memtables are flushed first (the link
    /// flushes them anyway), so that RocksDB's estimate counts what they held: that
    /// flush can be what puts level 0 over its compaction trigger. When RocksDB is then
    /// far behind with its compactions ([`DbWriter::compactions_behind`]: a bulk load
    /// just happened), the pending compactions get up to
    /// `incremental.compaction-wait` to finish first: the checkpoint after the load then
    /// links the compacted files, and the next ones upload what changed instead of the
    /// compactions' outputs. It runs on the writer thread, after the runs before the
    /// checkpoint, so the checkpoint's content does not change; `writes_waiting` says
    /// whether the task thread has handed over writes since, which end the wait (its
    /// next hand-over would stall behind it: a job still loading, whose compactions
    /// do not settle anyway).
    pub(crate) fn local_checkpoint(
        &self,
        writes_waiting: &dyn Fn() -> bool,
    ) -> Result<LocalCheckpoint> {
        let wait = self.inner.compaction_wait;
        if wait.is_zero() {
            return link(&self.inner);
        }
        self.flush_states()?;
        if self.compactions_behind() {
            wait_for_compactions(wait, writes_waiting, |slice| {
                let mut options = rocksdb::WaitForCompactOptions::default();
                options.set_timeout(u64::try_from(slice.as_micros()).unwrap_or(u64::MAX));
                match self.inner.db.wait_for_compact(&options) {
                    Ok(()) => Ok(true),
                    Err(e) if e.to_string().to_ascii_lowercase().contains("timed out") => Ok(false),
                    Err(e) => Err(e.into()),
                }
            })?;
        }
        link(&self.inner)
    }

    /// Whether RocksDB's estimate of the bytes its pending compactions must rewrite is
    /// at least a quarter of the DB's files (and 64 MiB): so right after a bulk load,
    /// when a checkpoint would link files that are about to be rewritten, and not while
    /// a job updates its state at a steady rate (1 GiB of state with 1% changed between
    /// checkpoints: about 10%).
    fn compactions_behind(&self) -> bool {
        let pending = self.sum_property("rocksdb.estimate-pending-compaction-bytes");
        pending >= 64 << 20
            && pending.saturating_mul(4) >= self.sum_property("rocksdb.total-sst-files-size")
    }

    /// Whether the DB's files have outgrown RocksDB's memory: the state no longer
    /// fits in its block cache.
    pub(crate) fn outgrew_memory(&self) -> bool {
        self.sum_property("rocksdb.total-sst-files-size") > self.inner.memory as u64
    }

    /// RocksDB's integer `property` summed over the states' column families.
    fn sum_property(&self, property: &str) -> u64 {
        self.state_cfs()
            .iter()
            .map(|cf| {
                self.inner
                    .db
                    .property_int_value_cf(cf, property)
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            })
            .sum()
    }

    /// A new file `name` in the working directory to write entries into (DB keys in
    /// order, each once), with the column families' table options: its filters and
    /// index are those of a flushed file.
    pub(crate) fn new_sst(&self, name: &str) -> Result<NewSst<'_>> {
        let path = self.inner.dir.path.join(name);
        let writer = rocksdb::SstFileWriter::create(&self.cf_options);
        writer.open(&path)?;
        Ok(NewSst {
            writer,
            path: Some(path),
        })
    }

    /// Moves the file at `path` into state `s`'s column family, newer than all it
    /// holds. False, with nothing done, if the file overlaps the memtable: flush
    /// first ([`DbWriter::flush`]), which this never does itself so that it takes
    /// milliseconds, not a flush's time.
    pub(crate) fn ingest(&self, s: StateId, path: &Path) -> Result<bool> {
        let mut options = rocksdb::IngestExternalFileOptions::default();
        options.set_move_files(true);
        options.set_allow_blocking_flush(false);
        match self
            .inner
            .db
            .ingest_external_file_cf_opts(&self.cf(s)?, &options, vec![path])
        {
            Ok(()) => Ok(true),
            Err(e) if e.to_string().contains("requires flush") => Ok(false),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(e.into())
            }
        }
    }

    /// The states' column families (states are numbered from 0, one each).
    fn state_cfs(&self) -> Vec<Arc<rocksdb::BoundColumnFamily<'_>>> {
        (0..)
            .map_while(|s| self.inner.db.cf_handle(&cf_name(s)))
            .collect()
    }

    /// Flushes every state's memtables.
    fn flush_states(&self) -> Result<()> {
        let cfs = self.state_cfs();
        let cfs: Vec<_> = cfs.iter().collect();
        self.inner
            .db
            .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())?;
        Ok(())
    }

    /// Flushes state `s`'s memtables.
    pub(crate) fn flush(&self, s: StateId) -> Result<()> {
        Ok(self.inner.db.flush_cf(&self.cf(s)?)?)
    }

    /// Bytes state `s`'s active memtable can take before RocksDB flushes it.
    pub(crate) fn memtable_room(&self, s: StateId) -> Result<usize> {
        let used = self
            .inner
            .db
            .property_int_value_cf(&self.cf(s)?, "rocksdb.cur-size-active-mem-table")?
            .unwrap_or(0);
        Ok(self.write_buffer_size.saturating_sub(used as usize))
    }

    /// Files in level 0 of state `s`: each one a lookup must check.
    pub(crate) fn level0_files(&self, s: StateId) -> Result<u64> {
        Ok(self
            .inner
            .db
            .property_int_value_cf(&self.cf(s)?, "rocksdb.num-files-at-level0")?
            .unwrap_or(0))
    }
}

/// `kg (u16 BE) ‖ varint(len key) ‖ key ‖ varint(len ns) ‖ ns` into `buf` (cleared).
fn encode_prefix(buf: &mut Vec<u8>, kg: u32, key: &[u8], ns: &[u8]) {
    buf.clear();
    append_prefix(buf, kg, key, ns);
}

/// Appends the key prefix of (kg, key, ns) to `buf` (see [`encode_prefix`]).
pub(super) fn append_prefix(buf: &mut Vec<u8>, kg: u32, key: &[u8], ns: &[u8]) {
    buf.extend_from_slice(&(kg as u16).to_be_bytes());
    put_varint(buf, key.len() as u64);
    buf.extend_from_slice(key);
    put_varint(buf, ns.len() as u64);
    buf.extend_from_slice(ns);
}

/// Splits a stored key into (key, namespace, rest = user key).
fn split_key(k: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let rest = k.get(2..)?;
    let (klen, used) = get_varint(rest)?;
    let rest = &rest[used..];
    let key = rest.get(..usize::try_from(klen).ok()?)?;
    let rest = &rest[key.len()..];
    let (nlen, used) = get_varint(rest)?;
    let rest = &rest[used..];
    let ns = rest.get(..usize::try_from(nlen).ok()?)?;
    Some((key, ns, &rest[ns.len()..]))
}

fn corrupt_key(k: &[u8]) -> Error {
    Error::RocksDb(format!("malformed key in the working DB: {k:02x?}"))
}

/// Restored entries per file: a file is ingested, and the next one begun, once it
/// holds this much.
const RESTORE_FILE_BYTES: usize = 256 << 20;

/// One state's file of a restore being written: its keys ascend.
struct RestoreFile<'a> {
    sst: NewSst<'a>,
    last_key: Vec<u8>,
    bytes: usize,
}

impl RocksStore {
    /// [`KeyedStore::restore_entries`]: each state's entries go into sorted files
    /// that RocksDB ingests whole, skipping the memtable, its flushes and the
    /// compactions of what they would have written. Entries that come out of order
    /// (a snapshot of the heap store lists a key group in its table's order, or
    /// snapshots of several old instances come interleaved) are put one by one.
    fn restore_sorted(&mut self, feed: &mut crate::store::RestoreFeed<'_>) -> Result<()> {
        let writer = self.writer();
        let mut files: Vec<Option<RestoreFile<'_>>> = Vec::new();
        let mut key = Vec::with_capacity(64);
        let mut written = 0u64;
        let finish = |s: StateId, file: RestoreFile<'_>| -> Result<()> {
            let path = file.sst.finish()?;
            if !writer.ingest(s, &path)? {
                // Entries put one by one overlap it in the memtable.
                writer.flush(s)?;
                if !writer.ingest(s, &path)? {
                    return Err(Error::RocksDb(format!(
                        "cannot ingest the restored file {}",
                        path.display()
                    )));
                }
            }
            Ok(())
        };
        feed(&mut |kg, e| {
            encode_prefix(&mut key, kg, e.key, e.namespace);
            let value = match e.data {
                EntryData::Value(v) | EntryData::List(v) => v,
                EntryData::MapEntry { user_key, value } => {
                    key.extend_from_slice(user_key);
                    value
                }
            };
            let s = e.state as usize;
            if files.len() <= s {
                files.resize_with(s + 1, || None);
            }
            if files[s].as_ref().is_some_and(|f| key <= f.last_key) {
                return self.restore_entry(kg, e);
            }
            if files[s].is_none() {
                written += 1;
                files[s] = Some(RestoreFile {
                    sst: writer.new_sst(&format!("restore-{s}-{written}.sst"))?,
                    last_key: Vec::new(),
                    bytes: 0,
                });
            }
            let file = files[s].as_mut().expect("just made");
            file.sst.add(&key, SstOp::Put(value))?;
            file.last_key.clear();
            file.last_key.extend_from_slice(&key);
            file.bytes += key.len() + value.len();
            if file.bytes >= RESTORE_FILE_BYTES {
                finish(e.state, files[s].take().expect("present"))?;
            }
            Ok(())
        })?;
        for (s, file) in files.into_iter().enumerate() {
            if let Some(file) = file {
                finish(s as StateId, file)?;
            }
        }
        Ok(())
    }
}

impl KeyedStore for RocksStore {
    fn restore_entries(&mut self, feed: &mut crate::store::RestoreFeed<'_>) -> Result<()> {
        self.restore_sorted(feed)
    }

    fn num_states(&self) -> usize {
        self.states.len()
    }

    fn local_checkpoint(&self) -> Result<Option<CheckpointLink>> {
        RocksStore::local_checkpoint(self).map(|l| Some(CheckpointLink::linked(l)))
    }

    fn add_state(&mut self, id: StateId, kind: StateKind) -> Result<()> {
        if id as usize != self.states.len() {
            return Err(Error::State(format!(
                "state ids must be added in order: got {id}, expected {}",
                self.states.len()
            )));
        }
        let name = cf_name(id);
        self.inner.db.create_cf(&name, &self.cf_options)?;
        self.states.push((name, kind));
        Ok(())
    }

    fn value_get(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        self.with_key(kg, key, ns, None, |k| self.get_into(s, k, out))
    }

    fn value_put(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        value: &[u8],
    ) -> Result<()> {
        self.with_key(kg, key, ns, None, |k| {
            Ok(self.db().put_cf_opt(&self.cf(s), k, value, &self.write)?)
        })
    }

    fn list_get(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        self.with_key(kg, key, ns, None, |k| self.get_into(s, k, out))
    }

    fn list_append(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        encoded: &[u8],
    ) -> Result<()> {
        self.with_key(kg, key, ns, None, |k| self.merge(s, k, encoded))
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
        self.with_key(kg, key, ns, Some(user_key), |k| self.get_into(s, k, out))
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
        self.with_key(kg, key, ns, Some(user_key), |k| {
            Ok(self.db().put_cf_opt(&self.cf(s), k, value, &self.write)?)
        })
    }

    fn map_remove(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
    ) -> Result<()> {
        self.with_key(kg, key, ns, Some(user_key), |k| {
            Ok(self.db().delete_cf_opt(&self.cf(s), k, &self.write)?)
        })
    }

    fn map_contains(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
    ) -> Result<bool> {
        self.with_key(kg, key, ns, Some(user_key), |k| {
            Ok(self
                .db()
                .get_pinned_cf_opt(&self.cf(s), k, &self.read)?
                .is_some())
        })
    }

    fn map_is_empty(&self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<bool> {
        let prefix = self.with_key(kg, key, ns, None, <[u8]>::to_vec);
        let mut empty = true;
        self.scan_prefix(s, &prefix, |_, _| {
            empty = false;
            Ok(false)
        })?;
        Ok(empty)
    }

    fn set_range(
        &self,
        s: StateId,
        kg: u32,
        after: Option<&[u8]>,
        f: &mut SetVisitor<'_>,
    ) -> Result<()> {
        let prefix = self.with_key(kg, &[], &[], None, <[u8]>::to_vec);
        let from = [&prefix[..], after.unwrap_or_default()].concat();
        self.scan_from(s, &prefix, &from, |k, _| {
            let element = &k[prefix.len()..];
            if after == Some(element) {
                return Ok(true);
            }
            f(element)
        })
    }

    fn map_for_each(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        f: &mut MapVisitor<'_>,
    ) -> Result<()> {
        let prefix = self.with_key(kg, key, ns, None, <[u8]>::to_vec);
        self.scan_prefix(s, &prefix, |k, v| {
            f(&k[prefix.len()..], v)?;
            Ok(true)
        })
    }

    fn clear(&mut self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<()> {
        let prefix = self.with_key(kg, key, ns, None, <[u8]>::to_vec);
        if self.states[s as usize].1 != StateKind::Map {
            return Ok(self.db().delete_cf_opt(&self.cf(s), &prefix, &self.write)?);
        }
        // Delete the map's entries as they are scanned, in bounded batches.
        let cf = self.cf(s);
        let mut batch = WriteBatch::default();
        self.scan_prefix(s, &prefix, |k, _| {
            batch.delete_cf(&cf, k);
            if batch.len() >= 1024 {
                self.write(std::mem::take(&mut batch))?;
            }
            Ok(true)
        })?;
        if !batch.is_empty() {
            self.write(batch)?;
        }
        Ok(())
    }

    fn compact(&mut self, s: StateId) -> Result<()> {
        let cf = self.cf(s);
        self.db().flush_cf(&cf)?;
        let mut options = rocksdb::CompactOptions::default();
        // Also rewrites the last level: tombstones and merge operands are folded.
        options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        self.db()
            .compact_range_cf_opt(&cf, None::<&[u8]>, None::<&[u8]>, &options);
        Ok(())
    }

    fn num_entries(&self) -> Result<u64> {
        let mut n = 0u64;
        for (id, (_, kind)) in self.states.iter().enumerate() {
            let cf = self.cf(id as StateId);
            let mut it = self.db().raw_iterator_cf_opt(&cf, ReadOptions::default());
            it.seek_to_first();
            let mut last: Vec<u8> = Vec::new();
            while let Some(k) = it.key() {
                if matches!(kind, StateKind::Map | StateKind::SortedSet) {
                    let (_, _, user_key) = split_key(k).ok_or_else(|| corrupt_key(k))?;
                    let prefix = &k[..k.len() - user_key.len()];
                    if prefix != last.as_slice() {
                        n += 1;
                        last.clear();
                        last.extend_from_slice(prefix);
                    }
                } else {
                    n += 1;
                }
                it.next();
            }
            it.status()?;
        }
        Ok(n)
    }

    fn view(&self) -> Result<Box<dyn StoreView>> {
        Ok(Box::new(self.snapshot_view()))
    }

    fn statistics(&self, metrics: &[&str]) -> Vec<Option<u64>> {
        metrics.iter().map(|m| self.statistic(m)).collect()
    }

    fn state_metrics(&self, s: StateId, properties: &[String]) -> StateMetrics {
        let live = self.property(s, "rocksdb.estimate-live-data-size");
        let memtables = self.property(s, "rocksdb.cur-size-all-mem-tables");
        StateMetrics {
            entries: self.property(s, "rocksdb.estimate-num-keys"),
            bytes: live.zip(memtables).map(|(l, m)| l.saturating_add(m)),
            properties: properties.iter().map(|p| self.property(s, p)).collect(),
        }
    }
}

impl RocksStore {
    /// The integer RocksDB property `name` (`rocksdb.estimate-num-keys`) of state
    /// `s`'s column family; None when RocksDB has none by that name (or fails to
    /// read it: a metric is not worth an error). `rocksdb.num-files-at-level<N>` is
    /// a string property in RocksDB, parsed here.
    pub fn property(&self, s: StateId, name: &str) -> Option<u64> {
        let (cf_name, _) = self.states.get(s as usize)?;
        let cf = self.db().cf_handle(cf_name)?;
        if name.starts_with("rocksdb.num-files-at-level") {
            let value = self.db().property_value_cf(&cf, name).ok()??;
            return value.trim().parse().ok();
        }
        self.db().property_int_value_cf(&cf, name).ok()?
    }

    /// The RocksDB statistics counter of a metric of `options::STATISTICS_METRICS`
    /// (`rocksdb.block_cache_hit`) over the whole DB; None unless statistics were
    /// enabled when the DB opened.
    pub fn statistic(&self, metric: &str) -> Option<u64> {
        let ticker = options::ticker(metric)?;
        Some(self.inner.statistics.as_ref()?.get_ticker_count(ticker))
    }

    /// A RocksDB snapshot: later writes never show in it.
    pub(super) fn snapshot_view(&self) -> RocksView {
        let snapshot = self.inner.db.snapshot();
        // SAFETY: the snapshot borrows `inner.db`; the view owns an Arc of `inner`,
        // declared after the snapshot, so the DB outlives the snapshot.
        let snapshot: SnapshotWithThreadMode<'static, Db> =
            unsafe { std::mem::transmute(snapshot) };
        RocksView {
            snapshot,
            inner: Arc::clone(&self.inner),
            range: self.range,
            states: self.states.clone(),
        }
    }
}

/// Visitor over the (DB key, value) pairs of a view; an error stops the walk.
pub(super) type RawVisitor<'v> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'v;

/// A RocksDB snapshot plus the DB it belongs to. Field order matters: the snapshot
/// is released before the last reference to the DB can go.
pub(super) struct RocksView {
    snapshot: SnapshotWithThreadMode<'static, Db>,
    inner: Arc<OpenDb>,
    range: KeyGroupRange,
    states: Vec<(String, StateKind)>,
}

impl RocksView {
    /// Whether key group `kg` is in the view.
    pub(super) fn covers(&self, kg: u32) -> bool {
        self.range.contains(kg)
    }

    /// Number of states the view covers (ids `0..n`).
    pub(super) fn num_states(&self) -> usize {
        self.states.len()
    }

    /// Visits the (DB key, value) pairs of state `s` in key group `kg`, in key order.
    pub(super) fn for_each_raw(&self, kg: u32, s: StateId, f: &mut RawVisitor<'_>) -> Result<()> {
        if !self.range.contains(kg) {
            return Ok(());
        }
        let lower = (kg as u16).to_be_bytes();
        let cf = self
            .inner
            .db
            .cf_handle(&self.states[s as usize].0)
            .expect("column family of a registered state");
        let mut read = ReadOptions::default();
        if kg < u16::MAX as u32 {
            read.set_iterate_upper_bound(((kg + 1) as u16).to_be_bytes().to_vec());
        }
        let mut it = self.snapshot.raw_iterator_cf_opt(&cf, read);
        it.seek(lower);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&lower) {
                break;
            }
            f(k, v)?;
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// The entry a (DB key, value) pair of state `s` stands for.
    pub(super) fn entry<'a>(&self, s: StateId, k: &'a [u8], v: &'a [u8]) -> Result<EntryRef<'a>> {
        let (key, namespace, user_key) = split_key(k).ok_or_else(|| corrupt_key(k))?;
        let data = match self.states[s as usize].1 {
            StateKind::Value => EntryData::Value(v),
            StateKind::List => EntryData::List(v),
            StateKind::Map | StateKind::SortedSet => EntryData::MapEntry { user_key, value: v },
        };
        Ok(EntryRef {
            state: s,
            key,
            namespace,
            data,
        })
    }
}

impl StoreView for RocksView {
    fn for_each_in_key_group(
        &self,
        kg: u32,
        only: Option<StateId>,
        f: &mut EntryVisitor<'_>,
    ) -> Result<()> {
        for s in 0..self.states.len() as StateId {
            if only.is_none_or(|o| o == s) {
                self.for_each_raw(kg, s, &mut |k, v| f(self.entry(s, k, v)?))?;
            }
        }
        Ok(())
    }
}

/// This instance's working directory: created fresh, deleted on drop.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn create(local: &Path, range: KeyGroupRange) -> Result<Self> {
        std::fs::create_dir_all(local).map_err(|e| Error::io(local, e))?;
        remove_stale_workdirs(local);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = local.join(format!(
            "{WORKDIR_PREFIX}{}-kg-{range}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
        Ok(WorkDir { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Deletes working directories whose owning process no longer exists: a crashed
/// process's DB is never opened as live state, only removed.
fn remove_stale_workdirs(local: &Path) {
    let Ok(entries) = std::fs::read_dir(local) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(WORKDIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if !process_alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Paths of live working directories under `local` (for tests and diagnostics).
pub fn working_dirs(local: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(local)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(WORKDIR_PREFIX))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint's compaction wait ends when writes wait behind it, when the
    /// compactions are done or when its time is up.
    #[test]
    fn the_compaction_wait_ends_at_waiting_writes_done_compactions_or_its_time() {
        use std::cell::Cell;
        use std::time::Duration;
        let long = Duration::from_secs(3600);
        // Writes already waiting: no wait at all.
        let slices = Cell::new(0);
        wait_for_compactions(long, &|| true, |_| {
            slices.set(slices.get() + 1);
            Ok(false)
        })
        .unwrap();
        assert_eq!(slices.get(), 0);
        // Writes handed over during the third slice end the wait after it.
        wait_for_compactions(long, &|| slices.get() == 3, |slice| {
            assert!(slice <= COMPACTION_WAIT_SLICE);
            slices.set(slices.get() + 1);
            Ok(false)
        })
        .unwrap();
        assert_eq!(slices.get(), 3);
        // Compactions done in the second slice.
        slices.set(0);
        wait_for_compactions(long, &|| false, |_| {
            slices.set(slices.get() + 1);
            Ok(slices.get() == 2)
        })
        .unwrap();
        assert_eq!(slices.get(), 2);
        // Neither: the wait ends with its time.
        wait_for_compactions(Duration::from_millis(1), &|| false, |slice| {
            std::thread::sleep(slice);
            Ok(false)
        })
        .unwrap();
        // A failure is the checkpoint's.
        let failed =
            wait_for_compactions(long, &|| false, |_| Err(Error::RocksDb("injected".into())));
        assert!(matches!(failed, Err(Error::RocksDb(m)) if m == "injected"));
    }

    /// The compaction wait decides after the checkpoint's own flush: level 0 holds five
    /// flushed files of 45 MiB, under both its triggers (8 files, `max_bytes_for_level_base`
    /// 256 MiB), so nothing is pending, and the memtable 40 MiB more; the checkpoint's
    /// flush puts level 0 over 256 MiB, and the checkpoint waits for the compaction that
    /// makes due instead of linking files about to be rewritten (found by CI: a bulk load
    /// that ended with 239 MiB in level 0 and 45 MiB in the memtable).
    #[test]
    fn the_checkpoints_own_flush_counts_for_the_compaction_wait() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("checkpoints").display());
        let config = Config::rocksdb(&url)
            .unwrap()
            .with_local_dir(dir.path().join("local"))
            .with_incremental(true);
        let mut store = RocksStore::open(&config).unwrap();
        store.add_state(0, StateKind::Value).unwrap();
        let writer = store.writer();
        // Scattered keys, so that the files overlap as a load's do, and incompressible
        // 1 KiB values, so that the files are as large as the data.
        let mut k = 0u64;
        let mut put = |mib: usize| {
            for _ in 0..mib * 1024 / 64 {
                let mut batch = WriteBatch::default();
                for _ in 0..64 {
                    k += 1;
                    let key = k.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes();
                    batch.put_cf(&writer.cf(0).unwrap(), key, test_values::value(k, 0));
                }
                writer.write(batch).unwrap();
            }
        };
        for _ in 0..5 {
            put(45);
            writer.flush(0).unwrap();
        }
        put(40);
        let pending = || writer.sum_property("rocksdb.estimate-pending-compaction-bytes");
        assert_eq!(writer.level0_files(0).unwrap(), 5);
        assert_eq!(pending(), 0);
        let _link = writer.local_checkpoint(&|| false).unwrap();
        assert_eq!(
            pending(),
            0,
            "{} MiB of compactions pending",
            pending() >> 20
        );
        assert_eq!(writer.level0_files(0).unwrap(), 0);
    }

    /// A merge operand that makes the merge operator panic (tests only).
    pub(super) const PANIC_IN_MERGE: &[u8] = b"\xffpanic in the merge operator";

    /// RocksDB runs the merge operator on its own threads and on reads, behind C++:
    /// a panic there is a failed merge, reported as an error, not an aborted process.
    #[test]
    fn a_panic_in_the_merge_operator_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("checkpoints").display());
        let config = Config::rocksdb(&url)
            .unwrap()
            .with_local_dir(dir.path().join("local"));
        let mut store = RocksStore::open(&config).unwrap();
        store.add_state(0, StateKind::List).unwrap();
        store.list_append(0, 0, b"k", b"", &[1, b'a']).unwrap();
        store.list_append(0, 0, b"k", b"", PANIC_IN_MERGE).unwrap();
        let mut out = Vec::new();
        match store.list_get(0, 0, b"k", b"", &mut out) {
            Err(Error::RocksDb(msg)) => assert!(msg.contains("Merge operator failed"), "{msg}"),
            other => panic!("expected a failed merge, got {other:?}"),
        }
        // The store goes on: other keys merge as before.
        store.list_append(0, 0, b"other", b"", &[1, b'b']).unwrap();
        store.list_append(0, 0, b"other", b"", &[1, b'c']).unwrap();
        out.clear();
        assert!(store.list_get(0, 0, b"other", b"", &mut out).unwrap());
        assert_eq!(out, [1, b'b', 1, b'c']);
    }
}
