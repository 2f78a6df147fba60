//! Metrics of a backend instance, read on demand ([`crate::StateBackend::metrics`]):
//! per state, estimates of its entries and bytes; for the RocksDB store, the
//! counters of its write-back cache, and the RocksDB properties (per state) and
//! statistics counters (per DB) enabled by `state.backend.rocksdb.metrics.*` (see
//! `store::rocks::options`).
//!
//! Reading them is cheap (a few counters, one RocksDB property read per state and
//! property, no scan), so a metric reporter can poll them. The counters themselves
//! are plain fields of the store, updated on the task thread.
//!
//! [`BackendMetrics::encode`] flattens a reading into integers for the bridges, in
//! one layout defined here.

/// Estimates for one state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateMetrics {
    /// Estimated number of entries: (key, namespace) pairs on the heap stores;
    /// RocksDB's `rocksdb.estimate-num-keys` of the state's column family (for map
    /// state, one per user key) on the RocksDB store. None: not known.
    pub entries: Option<u64>,
    /// Estimated bytes: RocksDB's live data on disk plus its memtables
    /// (`rocksdb.estimate-live-data-size` + `rocksdb.cur-size-all-mem-tables`).
    /// None: not known (the heap stores do not count bytes per state).
    pub bytes: Option<u64>,
    /// The values of the enabled RocksDB properties ([`BackendMetrics::properties`]),
    /// in that order; None where RocksDB has no value.
    pub properties: Vec<Option<u64>>,
}

/// The counters of the RocksDB store's write-back cache (`store::rocks::cache`),
/// since the backend opened, and what it holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteCacheMetrics {
    /// Reads answered from the cache: point reads (get, contains) that found their
    /// entry in the active table, map scans answered from a map image.
    pub hits: u64,
    /// Reads that went below the active table (frozen layers, RocksDB), and map scans
    /// that scanned RocksDB.
    pub misses: u64,
    /// Bytes the cache takes now (tables, entries, runs in flight, map images).
    pub cached_bytes: u64,
    /// Of those, bytes written by the task and not yet handed to the writer thread.
    pub dirty_bytes: u64,
    /// Runs handed to the writer thread and not yet known to have landed in RocksDB.
    pub runs_in_flight: u64,
    /// Times the task thread waited for the writer thread (a run to land before the
    /// next could be handed over or a read could go on, a write-back before a map
    /// scan, clear or compaction).
    pub writer_stalls: u64,
    /// Nanoseconds the task thread spent in those waits.
    pub writer_stall_nanos: u64,
}

impl WriteCacheMetrics {
    /// Fraction of reads answered from the cache (0 before the first read).
    pub fn hit_rate(&self) -> f64 {
        match self.hits + self.misses {
            0 => 0.0,
            reads => self.hits as f64 / reads as f64,
        }
    }
}

/// One reading of a backend's metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackendMetrics {
    /// The RocksDB properties enabled by `state.backend.rocksdb.metrics.*`, full
    /// names (`rocksdb.estimate-num-keys`); empty for the heap backends.
    pub properties: Vec<String>,
    /// Per state, in state-id order.
    pub states: Vec<StateMetrics>,
    /// The RocksDB statistics counters enabled by `state.backend.rocksdb.metrics.*`,
    /// by Flink's metric names (`rocksdb.block_cache_hit`); empty for the heap
    /// backends.
    pub statistic_names: Vec<&'static str>,
    /// Their values, in that order, over the whole DB.
    pub statistics: Vec<Option<u64>>,
    /// The write-back cache's counters, when the store has one.
    pub write_cache: Option<WriteCacheMetrics>,
}

/// Integers in [`BackendMetrics::encode`] before the statistics counters.
pub const ENCODED_HEADER: usize = 7;
/// Integers per state in [`BackendMetrics::encode`] before its properties.
pub const ENCODED_PER_STATE: usize = 2;
/// What [`BackendMetrics::encode`] writes for a value that is not known.
pub const UNKNOWN: i64 = -1;

fn encoded(v: Option<u64>) -> i64 {
    v.map_or(UNKNOWN, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

impl BackendMetrics {
    /// The reading as integers, [`UNKNOWN`] (-1) for what is not known: the write
    /// cache's `hits, misses, cached_bytes, dirty_bytes, runs_in_flight,
    /// writer_stalls, writer_stall_nanos` ([`ENCODED_HEADER`] of them), then one
    /// value per statistics counter of [`BackendMetrics::statistic_names`], then per
    /// state `entries, bytes` followed by one value per property of
    /// [`BackendMetrics::properties`].
    pub fn encode(&self) -> Vec<i64> {
        let per_state = ENCODED_PER_STATE + self.properties.len();
        let mut out = Vec::with_capacity(
            ENCODED_HEADER + self.statistic_names.len() + self.states.len() * per_state,
        );
        let c = self.write_cache;
        for field in [
            c.map(|c| c.hits),
            c.map(|c| c.misses),
            c.map(|c| c.cached_bytes),
            c.map(|c| c.dirty_bytes),
            c.map(|c| c.runs_in_flight),
            c.map(|c| c.writer_stalls),
            c.map(|c| c.writer_stall_nanos),
        ] {
            out.push(encoded(field));
        }
        out.extend(
            (0..self.statistic_names.len())
                .map(|i| encoded(self.statistics.get(i).copied().flatten())),
        );
        for s in &self.states {
            out.push(encoded(s.entries));
            out.push(encoded(s.bytes));
            out.extend(
                (0..self.properties.len()).map(|i| encoded(s.properties.get(i).copied().flatten())),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_follows_the_documented_layout() {
        let m = BackendMetrics {
            properties: vec!["rocksdb.estimate-num-keys".into()],
            states: vec![
                StateMetrics {
                    entries: Some(3),
                    bytes: None,
                    properties: vec![Some(3)],
                },
                StateMetrics {
                    entries: Some(u64::MAX),
                    bytes: Some(10),
                    properties: vec![None],
                },
            ],
            statistic_names: vec!["rocksdb.block_cache_hit"],
            statistics: vec![Some(5)],
            write_cache: None,
        };
        assert_eq!(
            m.encode(),
            [-1, -1, -1, -1, -1, -1, -1, 5, 3, -1, 3, i64::MAX, 10, -1]
        );
        let c = WriteCacheMetrics {
            hits: 3,
            misses: 1,
            ..Default::default()
        };
        assert_eq!(c.hit_rate(), 0.75);
        assert_eq!(WriteCacheMetrics::default().hit_rate(), 0.0);
    }
}
