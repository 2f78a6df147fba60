//! Shared memory budgets for RocksDB backends, and the metrics of a backend.

use super::*;
use crate::config::Config;
use crate::ffi::handles::{HandleKind, HandleTable};
use crate::store::rocks::memory::SharedMemory;

/// A memory budget shared by several RocksDB backends of this process (what Flink
/// gives the RocksDB backends of one task slot): one block cache for all of them,
/// one limit on their memtables charged to it, and one budget for their write-back
/// caches, split evenly among them. Free it with `sb_shared_memory_free`; backends
/// opened with it keep it until they close.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sb_shared_memory {
    pub id: u64,
}

/// How a shared memory budget is split, and used now.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct sb_shared_memory_stats {
    /// The whole budget.
    pub total_bytes: u64,
    /// RocksDB's part: block cache (data, index and filter blocks) and memtables.
    pub rocksdb_bytes: u64,
    /// The write-back caches' part, split evenly among `backends`.
    pub write_cache_bytes: u64,
    /// Open backends with a write-back cache using this budget.
    pub backends: u64,
    /// What the block cache holds now, memtables charged to it included.
    pub block_cache_usage: u64,
}

/// The counters of a RocksDB backend's write-back cache since it opened, and what it
/// holds now.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct sb_write_cache_metrics {
    /// Point reads answered from the cache, and map scans answered from a kept map.
    pub hits: u64,
    /// Reads that went below the cache's table (to RocksDB or older layers).
    pub misses: u64,
    /// Bytes the cache takes now.
    pub cached_bytes: u64,
    /// Of those, bytes written and not yet handed to the cache's writer thread.
    pub dirty_bytes: u64,
    /// Runs of writes handed to the writer thread and not yet in RocksDB.
    pub runs_in_flight: u64,
    /// Times a call waited for the writer thread, and for how long in total.
    pub writer_stalls: u64,
    pub writer_stall_nanos: u64,
}

/// Estimates for one state; a `has_` flag is false where the backend has none (the
/// heap backends count entries but not bytes per state).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct sb_state_metrics {
    /// Entries: (key, namespace) pairs on the heap backends; RocksDB's estimate of
    /// the state's keys (one per map entry) on the RocksDB backend, not counting
    /// writes its write-back cache has not handed over yet.
    pub entries: u64,
    /// Bytes: RocksDB's live data on disk plus its memtables for the state.
    pub bytes: u64,
    pub has_entries: bool,
    pub has_bytes: bool,
}

static SHARED_MEMORY: HandleTable<SharedMemory> = HandleTable::new(HandleKind::CSharedMemory);

fn shared_memory(m: sb_shared_memory) -> Result<std::sync::Arc<SharedMemory>, Fail> {
    SHARED_MEMORY.get(m.id).ok_or_else(|| {
        Fail::new(
            SB_INVALID_HANDLE,
            "the shared memory handle is freed or was never created",
        )
    })
}

/// Creates a memory budget of `bytes` for RocksDB backends to share:
/// `write_cache_ratio` of it (0 up to, not including, 1; 0: no write-back caches)
/// for their write-back caches, the rest for RocksDB, of which at most
/// `write_buffer_ratio` (between 0 and 1) for memtables. A write-cache part under
/// 4 MiB is `SB_CONFIG_ERROR`, as are ratios out of range.
#[no_mangle]
pub unsafe extern "C" fn sb_shared_memory_new(
    bytes: u64,
    write_cache_ratio: f64,
    write_buffer_ratio: f64,
    out: *mut sb_shared_memory,
) -> sb_status {
    ffi_boundary!("sb_shared_memory_new", {
        non_null(out, "out")?;
        let bytes = usize::try_from(bytes)
            .map_err(|_| Fail::new(SB_INVALID_ARGUMENT, "the budget is too large"))?;
        let memory = SharedMemory::new(bytes, write_cache_ratio, write_buffer_ratio)?;
        out.write(sb_shared_memory {
            id: SHARED_MEMORY.insert(memory),
        });
        Ok(SB_OK)
    })
}

/// How a budget is split and used now.
#[no_mangle]
pub unsafe extern "C" fn sb_shared_memory_get_stats(
    memory: sb_shared_memory,
    out: *mut sb_shared_memory_stats,
) -> sb_status {
    ffi_boundary!("sb_shared_memory_get_stats", {
        non_null(out, "out")?;
        let m = shared_memory(memory)?;
        out.write(sb_shared_memory_stats {
            total_bytes: m.total() as u64,
            rocksdb_bytes: m.rocksdb_bytes() as u64,
            write_cache_bytes: m.write_cache_bytes() as u64,
            backends: m.members() as u64,
            block_cache_usage: m.block_cache_usage() as u64,
        });
        Ok(SB_OK)
    })
}

/// Frees the handle; backends opened with the budget keep using it until they
/// close. The zero handle is a no-op; a second free is `SB_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn sb_shared_memory_free(memory: sb_shared_memory) -> sb_status {
    ffi_boundary!("sb_shared_memory_free", {
        if memory.id == 0 {
            return Ok(SB_OK);
        }
        match SHARED_MEMORY.remove(memory.id) {
            Some(_) => Ok(SB_OK),
            None => Err(Fail::new(
                SB_INVALID_HANDLE,
                "the shared memory handle is already freed or was never created",
            )),
        }
    })
}

/// Like `sb_backend_open_pairs`, for a RocksDB backend whose block cache, memtables
/// and write-back cache come from `memory` (shared with the other backends opened
/// with it) instead of its own `state.backend.rocksdb.memory.fixed-per-slot` and
/// `…write-cache.size`. Another backend kind is `SB_CONFIG_ERROR`.
#[no_mangle]
pub unsafe extern "C" fn sb_backend_open_pairs_shared(
    keys: *const *const c_char,
    values: *const *const c_char,
    n_pairs: usize,
    memory: sb_shared_memory,
    sources: *const sb_snapshot_source,
    n_sources: usize,
    out: *mut sb_backend,
) -> sb_status {
    ffi_boundary!("sb_backend_open_pairs_shared", {
        let mut config = config_from_pairs(keys, values, n_pairs)?;
        config.check_shared_memory_allowed()?;
        config.memory = Some(SharedMemory::clone(&*shared_memory(memory)?));
        open(config, sources, n_sources, out)
    })
}

/// The counters of a RocksDB backend's write-back cache; `SB_NOT_FOUND` for a
/// backend without one (the heap backends, or `write-cache.size` 0).
#[no_mangle]
pub unsafe extern "C" fn sb_backend_write_cache_metrics(
    backend: sb_backend,
    out: *mut sb_write_cache_metrics,
) -> sb_status {
    ffi_boundary!("sb_backend_write_cache_metrics", {
        non_null(out, "out")?;
        let Some(m) = with_backend(backend, |c| Ok(c.backend.write_cache_metrics()))? else {
            return not_found();
        };
        out.write(sb_write_cache_metrics {
            hits: m.hits,
            misses: m.misses,
            cached_bytes: m.cached_bytes,
            dirty_bytes: m.dirty_bytes,
            runs_in_flight: m.runs_in_flight,
            writer_stalls: m.writer_stalls,
            writer_stall_nanos: m.writer_stall_nanos,
        });
        Ok(SB_OK)
    })
}

/// Estimates of a state's entries and bytes (see `sb_state_metrics`).
#[no_mangle]
pub unsafe extern "C" fn sb_state_get_metrics(
    backend: sb_backend,
    state_id: u32,
    out: *mut sb_state_metrics,
) -> sb_status {
    ffi_boundary!("sb_state_get_metrics", {
        non_null(out, "out")?;
        let m = with_backend(backend, |c| Ok(c.backend.state_metrics(state_id)?))?;
        out.write(sb_state_metrics {
            entries: m.entries.unwrap_or(0),
            bytes: m.bytes.unwrap_or(0),
            has_entries: m.entries.is_some(),
            has_bytes: m.bytes.is_some(),
        });
        Ok(SB_OK)
    })
}

/// A configuration from Flink-style key/value pairs (see `sb_backend_open_pairs`).
pub(crate) unsafe fn config_from_pairs(
    keys: *const *const c_char,
    values: *const *const c_char,
    n_pairs: usize,
) -> Result<Config, Fail> {
    let mut pairs = Vec::with_capacity(n_pairs.min(1024));
    if n_pairs > 0 {
        non_null(keys, "keys")?;
        non_null(values, "values")?;
        for i in 0..n_pairs {
            pairs.push((
                string(*keys.add(i), &format!("keys[{i}]"))?,
                string(*values.add(i), &format!("values[{i}]"))?,
            ));
        }
    }
    Ok(Config::from_pairs(pairs)?)
}
