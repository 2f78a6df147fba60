//! One memory budget shared by several RocksDB backends, as Flink shares a slot's
//! managed memory among the RocksDB instances of the operators in that slot: one
//! block cache, one write-buffer manager charging the memtables to that cache, and
//! one write-back-cache budget split evenly among the backends that use it.
//!
//! The budget is `total` bytes: `write_cache_ratio` of it for the write-back caches,
//! the rest for RocksDB (block cache, index and filter blocks, and memtables, of
//! which `write_buffer_ratio` at most). A backend opened with a [`SharedMemory`] in
//! its [`crate::Config`] takes its RocksDB memory and its write cache from it instead
//! of from its own `memory.fixed-per-slot` and `write-cache.size`.

use crate::error::{Error, Result};
use rocksdb::{Cache, WriteBufferManager};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The smallest write-back cache a share may be: below that the cache would spend
/// its time evicting, and a backend does better without it.
pub const MIN_WRITE_CACHE: usize = 4 << 20;

/// A memory budget shared by several RocksDB backends (cheap to clone: a handle).
#[derive(Clone)]
pub struct SharedMemory(Arc<Inner>);

struct Inner {
    total: usize,
    rocksdb: usize,
    write_buffer_limit: usize,
    block_cache: Cache,
    write_buffers: WriteBufferManager,
    write_cache: Arc<WriteCacheBudget>,
}

impl std::fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMemory")
            .field("total", &self.0.total)
            .field("rocksdb", &self.0.rocksdb)
            .field("write_cache", &self.0.write_cache.total)
            .field("members", &self.members())
            .finish()
    }
}

impl SharedMemory {
    /// A budget of `total` bytes, `write_cache_ratio` of them for the write-back
    /// caches (0: backends run without one), and of the rest at most
    /// `write_buffer_ratio` for memtables.
    pub fn new(total: usize, write_cache_ratio: f64, write_buffer_ratio: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&write_cache_ratio) {
            return Err(Error::Config {
                key: crate::config::keys::WRITE_CACHE_RATIO.into(),
                value: write_cache_ratio.to_string(),
                reason: "expected a ratio from 0 (no write cache) up to, not including, 1".into(),
            });
        }
        if !(write_buffer_ratio > 0.0 && write_buffer_ratio < 1.0) {
            return Err(Error::Config {
                key: format!(
                    "{}memory.write-buffer-ratio",
                    crate::config::keys::ROCKSDB_PREFIX
                ),
                value: write_buffer_ratio.to_string(),
                reason: "expected a ratio between 0 and 1".into(),
            });
        }
        let write_cache = (total as f64 * write_cache_ratio) as usize;
        if write_cache_ratio > 0.0 && write_cache < MIN_WRITE_CACHE {
            return Err(Error::Config {
                key: crate::config::keys::WRITE_CACHE_RATIO.into(),
                value: write_cache_ratio.to_string(),
                reason: format!(
                    "the memory budget of {total} bytes leaves the write cache {write_cache} \
                     bytes, less than the {MIN_WRITE_CACHE} it needs: give the slot more \
                     managed memory (taskmanager.memory.managed.size or .fraction), or set the \
                     ratio to 0 to run without a write cache"
                ),
            });
        }
        let rocksdb = total - write_cache;
        // Flink's split (RocksDBMemoryControllerUtils): memtables may overshoot the
        // write-buffer manager's limit by half before it stalls them, so the limit is
        // 2/3 of their share and the cache's capacity leaves room for that overshoot.
        let write_buffer_limit = (2.0 * rocksdb as f64 * write_buffer_ratio / 3.0) as usize;
        let block_cache =
            Cache::new_lru_cache(((3.0 - write_buffer_ratio) * rocksdb as f64 / 3.0) as usize);
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            write_buffer_limit,
            false,
            block_cache.clone(),
        );
        Ok(SharedMemory(Arc::new(Inner {
            total,
            rocksdb,
            write_buffer_limit,
            block_cache,
            write_buffers,
            write_cache: Arc::new(WriteCacheBudget {
                total: write_cache,
                members: AtomicUsize::new(0),
            }),
        })))
    }

    /// Bytes of the whole budget.
    pub fn total(&self) -> usize {
        self.0.total
    }

    /// Bytes for RocksDB: block cache and memtables.
    pub fn rocksdb_bytes(&self) -> usize {
        self.0.rocksdb
    }

    /// Bytes for all the write-back caches together.
    pub fn write_cache_bytes(&self) -> usize {
        self.0.write_cache.total
    }

    /// Backends with a write-back cache using this budget now.
    pub fn members(&self) -> usize {
        self.0.write_cache.members.load(Ordering::Relaxed)
    }

    /// What the block cache holds now (data, index and filter blocks, and the
    /// memtables charged to it).
    pub fn block_cache_usage(&self) -> usize {
        self.0.block_cache.get_usage()
    }

    /// The memtables' limit: no memtable of a backend using this budget is made
    /// larger than half of it (nor its arena blocks, an eighth of a memtable, larger
    /// than a sixteenth), so that one backend's first write does not take the budget.
    pub(crate) fn max_write_buffer_size(&self) -> usize {
        (self.0.write_buffer_limit / 2).max(64 << 10)
    }

    pub(crate) fn block_cache(&self) -> &Cache {
        &self.0.block_cache
    }

    pub(crate) fn write_buffers(&self) -> &WriteBufferManager {
        &self.0.write_buffers
    }

    /// A share of the write-cache budget for one more backend, or None if the
    /// budget has no write cache.
    pub(crate) fn join_write_cache(&self) -> Option<WriteCacheShare> {
        let budget = &self.0.write_cache;
        if budget.total == 0 {
            return None;
        }
        budget.members.fetch_add(1, Ordering::Relaxed);
        Some(WriteCacheShare(Arc::clone(budget)))
    }
}

/// The write-back caches' part of a [`SharedMemory`].
#[derive(Debug)]
struct WriteCacheBudget {
    total: usize,
    members: AtomicUsize,
}

/// One backend's membership in a write-cache budget: an even share of it, which
/// shrinks as backends join and grows as they leave (when dropped).
#[derive(Debug)]
pub struct WriteCacheShare(Arc<WriteCacheBudget>);

impl WriteCacheShare {
    /// The bytes this backend's cache may take now.
    pub(crate) fn bytes(&self) -> usize {
        self.0.total / self.0.members.load(Ordering::Relaxed).max(1)
    }
}

impl Drop for WriteCacheShare {
    fn drop(&mut self) {
        self.0.members.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_the_write_cache_evenly() {
        let m = SharedMemory::new(256 << 20, 0.5, 0.5).unwrap();
        assert_eq!(m.write_cache_bytes(), 128 << 20);
        assert_eq!(m.rocksdb_bytes(), 128 << 20);
        let a = m.join_write_cache().unwrap();
        assert_eq!(a.bytes(), 128 << 20);
        let b = m.join_write_cache().unwrap();
        assert_eq!((a.bytes(), b.bytes(), m.members()), (64 << 20, 64 << 20, 2));
        drop(b);
        assert_eq!((a.bytes(), m.members()), (128 << 20, 1));
    }

    #[test]
    fn a_budget_too_small_for_the_write_cache_is_refused() {
        let e = SharedMemory::new(6 << 20, 0.5, 0.5)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("write-cache-ratio") && e.contains("managed memory"),
            "{e}"
        );
        let m = SharedMemory::new(6 << 20, 0.0, 0.5).unwrap();
        assert!(m.join_write_cache().is_none());
        assert!(SharedMemory::new(1 << 30, 1.0, 0.5).is_err());
        assert!(SharedMemory::new(1 << 30, 0.5, 0.0).is_err());
    }
}
