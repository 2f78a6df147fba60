//! RocksDB options: predefined profiles plus overrides of the common options, from
//! `state.backend.rocksdb.*` configuration keys (Flink's names where Flink has one),
//! and which RocksDB properties are reported as metrics (Flink's
//! `state.backend.rocksdb.metrics.*`). An unknown key is an error.

use crate::config::parse_memory_size;
use crate::error::{Error, Result};
use rocksdb::statistics::Ticker;
use rocksdb::{DBCompactionStyle, DBCompressionType};
use std::collections::BTreeMap;

/// Flink's `PredefinedOptions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Default,
    SpinningDisk,
    SpinningDiskHighMem,
    FlashSsd,
}

/// The effective RocksDB settings of one backend instance.
#[derive(Clone, Debug, PartialEq)]
pub struct RocksOptions {
    pub profile: Profile,
    /// One budget for block cache and memtables of all column families.
    pub memory_budget: usize,
    /// Share of the budget memtables may use (Flink's write-buffer-ratio).
    pub write_buffer_ratio: f64,
    pub block_size: usize,
    pub write_buffer_size: usize,
    pub write_buffer_count: i32,
    pub compaction_style: DBCompactionStyle,
    /// Compression per level; None keeps the profile's (LZ4, ZSTD at the bottom).
    pub compression_per_level: Option<Vec<DBCompressionType>>,
    pub background_jobs: i32,
    /// Bytes of the write-back cache in front of RocksDB (`write-cache.size`; 0: none).
    pub write_cache_size: usize,
    /// Of those, bytes not yet written to RocksDB (`write-cache.dirty-size`).
    pub write_cache_dirty_size: usize,
    /// How long at most a checkpoint lets RocksDB finish its pending compactions
    /// before it links its files, when they are far behind (a bulk load just
    /// happened): `incremental.compaction-wait`, 30 s by default; zero: never. See
    /// `DbWriter::local_checkpoint`.
    pub compaction_wait: std::time::Duration,
    /// Threads that read a checkpoint's files on restore
    /// (`checkpoint.transfer.thread.num`, 4 by default as in Flink).
    pub transfer_threads: usize,
    /// The RocksDB properties read as metrics (`metrics.*` set to true).
    pub metrics: MetricOptions,
}

/// Which RocksDB properties are reported as metrics, per state (column family):
/// Flink's `state.backend.rocksdb.metrics.*` options, each of which enables one
/// property (`metrics.num-files-at-level`: one per level, 0 to 6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricOptions {
    /// Full RocksDB property names (`rocksdb.estimate-num-keys`), in the order of
    /// [`NATIVE_METRICS`].
    pub properties: Vec<String>,
    /// The RocksDB statistics counters enabled by the options of
    /// [`STATISTICS_METRICS`], by metric name (`rocksdb.block_cache_hit`), in that
    /// order: counters of the whole DB, for which RocksDB keeps a statistics object.
    pub statistics: Vec<&'static str>,
    /// `metrics.column-family-as-variable`: Flink reports a state's properties in a
    /// metric group with the variable `column_family` (the state's name) instead of a
    /// group named after the state.
    pub column_family_as_variable: bool,
}

/// The RocksDB properties Flink's `RocksDBNativeMetricOptions` (1.20) can report,
/// by option (`state.backend.rocksdb.metrics.<name>` enables `rocksdb.<name>`).
pub const NATIVE_METRICS: &[&str] = &[
    "num-immutable-mem-table",
    "mem-table-flush-pending",
    "compaction-pending",
    "background-errors",
    "cur-size-active-mem-table",
    "cur-size-all-mem-tables",
    "size-all-mem-tables",
    "num-entries-active-mem-table",
    "num-entries-imm-mem-tables",
    "num-deletes-active-mem-table",
    "num-deletes-imm-mem-tables",
    "estimate-num-keys",
    "estimate-table-readers-mem",
    "num-snapshots",
    "num-live-versions",
    "estimate-live-data-size",
    "total-sst-files-size",
    "live-sst-files-size",
    "estimate-pending-compaction-bytes",
    "num-running-compactions",
    "num-running-flushes",
    "actual-delayed-write-rate",
    "is-write-stopped",
    "block-cache-capacity",
    "block-cache-usage",
    "block-cache-pinned-usage",
    "num-files-at-level",
];

/// Flink's statistics options (`RocksDBNativeMetricOptions`, 1.20): the option
/// (`state.backend.rocksdb.metrics.<option>`), the metric Flink names after the
/// RocksDB Java `TickerType` (`rocksdb.<ticker name in lower case>`), and the counter.
pub const STATISTICS_METRICS: &[(&str, &str, Ticker)] = &[
    (
        "block-cache-hit",
        "rocksdb.block_cache_hit",
        Ticker::BlockCacheHit,
    ),
    (
        "block-cache-miss",
        "rocksdb.block_cache_miss",
        Ticker::BlockCacheMiss,
    ),
    (
        "bloom-filter-useful",
        "rocksdb.bloom_filter_useful",
        Ticker::BloomFilterUseful,
    ),
    (
        "bloom-filter-full-positive",
        "rocksdb.bloom_filter_full_positive",
        Ticker::BloomFilterFullPositive,
    ),
    (
        "bloom-filter-full-true-positive",
        "rocksdb.bloom_filter_full_true_positive",
        Ticker::BloomFilterFullTruePositive,
    ),
    ("bytes-read", "rocksdb.bytes_read", Ticker::BytesRead),
    (
        "iter-bytes-read",
        "rocksdb.iter_bytes_read",
        Ticker::IterBytesRead,
    ),
    (
        "bytes-written",
        "rocksdb.bytes_written",
        Ticker::BytesWritten,
    ),
    (
        "compaction-read-bytes",
        "rocksdb.compact_read_bytes",
        Ticker::CompactReadBytes,
    ),
    (
        "compaction-write-bytes",
        "rocksdb.compact_write_bytes",
        Ticker::CompactWriteBytes,
    ),
    ("stall-micros", "rocksdb.stall_micros", Ticker::StallMicros),
];

/// The counter behind a statistics metric name of [`STATISTICS_METRICS`].
pub fn ticker(metric: &str) -> Option<Ticker> {
    STATISTICS_METRICS
        .iter()
        .find(|(_, name, _)| *name == metric)
        .map(|(_, _, ticker)| *ticker)
}

/// The metric option that enables one property per LSM level (`rocksdb.num-files-at-level0` …).
const FILES_AT_LEVEL: &str = "num-files-at-level";
/// Levels reported by `metrics.num-files-at-level` (RocksDB's default `num_levels`: 7).
const LEVELS: usize = 7;
/// The metric option that changes how properties are grouped.
const COLUMN_FAMILY_AS_VARIABLE: &str = "column-family-as-variable";

/// The options this library applies (keys without `state.backend.rocksdb.`).
const APPLIED: &[&str] = &[
    "predefined-options",
    "memory.fixed-per-slot",
    "block.cache-size",
    "memory.write-buffer-ratio",
    "block.blocksize",
    "writebuffer.size",
    "writebuffer.count",
    "thread.num",
    "compaction.style",
    "compression.per.level",
    "write-cache.size",
    "write-cache.dirty-size",
    "incremental.compaction-wait",
    "checkpoint.transfer.thread.num",
];

/// Keys read by the Flink integration, checked here and without effect on the core:
/// a slot's shared memory budget (`memory.managed`, `memory.write-cache-ratio`; see
/// `store::rocks::memory`) and where timers live (`timer-service.factory`: ROCKSDB,
/// native sorted sets; HEAP, Flink's heap queues).
const FLINK_INTEGRATION: &[&str] = &[
    "memory.managed",
    "memory.write-cache-ratio",
    "timer-service.factory",
];

/// Keys of Flink's RocksDB options that are accepted and have no effect here.
const ACCEPTED_WITHOUT_EFFECT: &[&str] = &[];

/// Whether `option` (a key without `state.backend.rocksdb.`) is one this library
/// knows (see `Config::knows_rocksdb_option`).
pub fn is_known(option: &str) -> bool {
    metric_option(option).is_some()
        || APPLIED.contains(&option)
        || FLINK_INTEGRATION.contains(&option)
        || ACCEPTED_WITHOUT_EFFECT.contains(&option)
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions {
            profile: Profile::Default,
            memory_budget: 256 << 20,
            write_buffer_ratio: 0.5,
            block_size: 4 << 10,
            write_buffer_size: 64 << 20,
            write_buffer_count: 2,
            compaction_style: DBCompactionStyle::Level,
            compression_per_level: None,
            background_jobs: 2,
            write_cache_size: 256 << 20,
            write_cache_dirty_size: 32 << 20,
            compaction_wait: DEFAULT_COMPACTION_WAIT,
            transfer_threads: 4,
            metrics: MetricOptions::default(),
        }
    }
}

/// The metric of a `metrics.*` option (key without `state.backend.rocksdb.`): a name
/// in [`NATIVE_METRICS`], or `column-family-as-variable`.
fn metric_option(option: &str) -> Option<&str> {
    option.strip_prefix("metrics.").filter(|m| {
        *m == COLUMN_FAMILY_AS_VARIABLE
            || NATIVE_METRICS.contains(m)
            || STATISTICS_METRICS.iter().any(|(option, _, _)| option == m)
    })
}

fn err(key: &str, value: &str, reason: impl Into<String>) -> Error {
    Error::Config {
        key: format!("{}{key}", crate::config::keys::ROCKSDB_PREFIX),
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl RocksOptions {
    /// Applies a profile, then the overrides; keys have the `state.backend.rocksdb.` prefix removed.
    pub fn from_config(options: &BTreeMap<String, String>) -> Result<Self> {
        let mut o = RocksOptions::default();
        if let Some(v) = options.get("predefined-options") {
            o.profile = match v.to_ascii_uppercase().as_str() {
                "DEFAULT" => Profile::Default,
                "SPINNING_DISK_OPTIMIZED" => Profile::SpinningDisk,
                "SPINNING_DISK_OPTIMIZED_HIGH_MEM" => Profile::SpinningDiskHighMem,
                "FLASH_SSD_OPTIMIZED" => Profile::FlashSsd,
                _ => return Err(err("predefined-options", v, "expected DEFAULT, SPINNING_DISK_OPTIMIZED, SPINNING_DISK_OPTIMIZED_HIGH_MEM or FLASH_SSD_OPTIMIZED")),
            };
        }
        match o.profile {
            Profile::Default => {}
            Profile::SpinningDisk => {
                o.compaction_style = DBCompactionStyle::Level;
                o.background_jobs = 4;
            }
            Profile::SpinningDiskHighMem => {
                o.block_size = 128 << 10;
                o.write_buffer_size = 64 << 20;
                o.write_buffer_count = 4;
                o.memory_budget = 512 << 20;
                o.background_jobs = 4;
            }
            Profile::FlashSsd => {
                o.background_jobs = 4;
            }
        }
        let mut metrics = Vec::new();
        for (key, value) in options {
            let size = || {
                parse_memory_size(
                    &format!("{}{key}", crate::config::keys::ROCKSDB_PREFIX),
                    value,
                )
            };
            match key.as_str() {
                "predefined-options" => {}
                "memory.fixed-per-slot" | "block.cache-size" => {
                    o.memory_budget =
                        usize::try_from(size()?).map_err(|_| err(key, value, "too large"))?;
                    if o.memory_budget < (8 << 20) {
                        return Err(err(key, value, "at least 8 mb"));
                    }
                }
                "memory.write-buffer-ratio" => {
                    o.write_buffer_ratio = value
                        .parse::<f64>()
                        .ok()
                        .filter(|r| *r > 0.0 && *r < 1.0)
                        .ok_or_else(|| err(key, value, "expected a ratio between 0 and 1"))?;
                }
                "block.blocksize" => {
                    o.block_size = size()? as usize;
                    if !(1024..=(64 << 20)).contains(&o.block_size) {
                        return Err(err(key, value, "between 1 kb and 64 mb"));
                    }
                }
                "writebuffer.size" => {
                    o.write_buffer_size = size()? as usize;
                    if o.write_buffer_size < (64 << 10) {
                        return Err(err(key, value, "at least 64 kb"));
                    }
                }
                "writebuffer.count" => {
                    o.write_buffer_count = value
                        .parse::<i32>()
                        .ok()
                        .filter(|n| (1..=64).contains(n))
                        .ok_or_else(|| err(key, value, "expected 1 to 64"))?;
                }
                "thread.num" => {
                    o.background_jobs = value
                        .parse::<i32>()
                        .ok()
                        .filter(|n| (1..=64).contains(n))
                        .ok_or_else(|| err(key, value, "expected 1 to 64"))?;
                }
                "compaction.style" => {
                    o.compaction_style = match value.to_ascii_uppercase().as_str() {
                        "LEVEL" => DBCompactionStyle::Level,
                        "UNIVERSAL" => DBCompactionStyle::Universal,
                        "FIFO" => DBCompactionStyle::Fifo,
                        _ => return Err(err(key, value, "expected LEVEL, UNIVERSAL or FIFO")),
                    }
                }
                "compression.per.level" => {
                    let levels = value
                        .split([';', ','])
                        .map(|s| compression(s.trim()).ok_or_else(|| err(key, value, format!("unknown compression '{}'; this build has NO_COMPRESSION, LZ4_COMPRESSION, LZ4HC_COMPRESSION and ZSTD_COMPRESSION", s.trim()))))
                        .collect::<Result<Vec<_>>>()?;
                    o.compression_per_level = Some(levels);
                }
                "write-cache.size" => {
                    o.write_cache_size =
                        usize::try_from(size()?).map_err(|_| err(key, value, "too large"))?;
                }
                "write-cache.dirty-size" => {
                    o.write_cache_dirty_size =
                        usize::try_from(size()?).map_err(|_| err(key, value, "too large"))?;
                }
                "incremental.compaction-wait" => {
                    o.compaction_wait = parse_duration(value).ok_or_else(|| {
                        err(
                            key,
                            value,
                            "expected a duration such as 0, 500 ms, 10 s or 1 min",
                        )
                    })?;
                }
                "checkpoint.transfer.thread.num" => {
                    o.transfer_threads = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|&n| (1..=64).contains(&n))
                        .ok_or_else(|| err(key, value, "expected a number of threads, 1 to 64"))?;
                }
                // Read by the Flink integration: native sorted sets or heap queues.
                "timer-service.factory" => {
                    if !matches!(
                        value.trim().to_ascii_uppercase().as_str(),
                        "HEAP" | "ROCKSDB"
                    ) {
                        return Err(err(key, value, "expected HEAP or ROCKSDB"));
                    }
                }
                // Read by the Flink integration for a slot's shared budget; checked here.
                "memory.managed" => {
                    if !matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false") {
                        return Err(err(key, value, "expected true or false"));
                    }
                }
                "memory.write-cache-ratio" => {
                    if !value
                        .trim()
                        .parse::<f64>()
                        .is_ok_and(|r| (0.0..1.0).contains(&r))
                    {
                        return Err(err(
                            key,
                            value,
                            "expected a ratio from 0 (no write cache) up to, not including, 1",
                        ));
                    }
                }
                k if ACCEPTED_WITHOUT_EFFECT.contains(&k) => {}
                k => match metric_option(k) {
                    Some(metric) => {
                        let on = match value.trim().to_ascii_lowercase().as_str() {
                            "true" => true,
                            "false" => false,
                            _ => return Err(err(key, value, "expected true or false")),
                        };
                        if metric == COLUMN_FAMILY_AS_VARIABLE {
                            o.metrics.column_family_as_variable = on;
                        } else if on {
                            metrics.push(metric);
                        }
                    }
                    None => return Err(err(key, value, "unknown RocksDB option")),
                },
            }
        }
        // In Flink's order, whatever the order of the keys.
        for metric in NATIVE_METRICS.iter().filter(|m| metrics.contains(m)) {
            if *metric == FILES_AT_LEVEL {
                o.metrics
                    .properties
                    .extend((0..LEVELS).map(|level| format!("rocksdb.{FILES_AT_LEVEL}{level}")));
            } else {
                o.metrics.properties.push(format!("rocksdb.{metric}"));
            }
        }
        o.metrics.statistics = STATISTICS_METRICS
            .iter()
            .filter(|(option, _, _)| metrics.contains(option))
            .map(|(_, name, _)| *name)
            .collect();
        Ok(o)
    }
}

/// See [`RocksOptions::compaction_wait`].
pub(crate) const DEFAULT_COMPACTION_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A duration in Flink's notation: a number and a unit (`ms`, `s`, `min`, `h`, or
/// their long names; none: milliseconds).
fn parse_duration(value: &str) -> Option<std::time::Duration> {
    let value = value.trim().to_ascii_lowercase();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let amount: u64 = value[..split].parse().ok()?;
    let millis = match value[split..].trim() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "min" | "m" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(
        amount.checked_mul(millis)?,
    ))
}

fn compression(name: &str) -> Option<DBCompressionType> {
    Some(match name.to_ascii_uppercase().as_str() {
        "NO_COMPRESSION" | "NONE" => DBCompressionType::None,
        "LZ4_COMPRESSION" | "LZ4" => DBCompressionType::Lz4,
        "LZ4HC_COMPRESSION" | "LZ4HC" => DBCompressionType::Lz4hc,
        "ZSTD_COMPRESSION" | "ZSTD" => DBCompressionType::Zstd,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_wait_is_a_duration() {
        let wait = |v: &str| {
            RocksOptions::from_config(&BTreeMap::from([(
                "incremental.compaction-wait".to_string(),
                v.to_string(),
            )]))
            .map(|o| o.compaction_wait)
        };
        assert_eq!(wait("10 s").unwrap(), std::time::Duration::from_secs(10));
        assert_eq!(
            wait("500ms").unwrap(),
            std::time::Duration::from_millis(500)
        );
        assert_eq!(wait("1 min").unwrap(), std::time::Duration::from_secs(60));
        assert_eq!(wait("0").unwrap(), std::time::Duration::ZERO);
        assert_eq!(
            RocksOptions::from_config(&BTreeMap::new())
                .unwrap()
                .compaction_wait,
            DEFAULT_COMPACTION_WAIT
        );
        let e = wait("soon").unwrap_err().to_string();
        assert!(
            e.contains("state.backend.rocksdb.incremental.compaction-wait"),
            "{e}"
        );
    }

    #[test]
    fn transfer_threads_are_flinks_option() {
        let threads = |v: &str| {
            RocksOptions::from_config(&BTreeMap::from([(
                "checkpoint.transfer.thread.num".to_string(),
                v.to_string(),
            )]))
            .map(|o| o.transfer_threads)
        };
        assert_eq!(threads("8").unwrap(), 8);
        assert_eq!(RocksOptions::default().transfer_threads, 4);
        for bad in ["0", "many", "1000"] {
            let e = threads(bad).unwrap_err().to_string();
            assert!(
                e.contains("state.backend.rocksdb.checkpoint.transfer.thread.num"),
                "{e}"
            );
        }
    }

    #[test]
    fn timer_service_factory_takes_flinks_values() {
        for ok in ["HEAP", "ROCKSDB", "rocksdb"] {
            let options = BTreeMap::from([("timer-service.factory".to_string(), ok.to_string())]);
            assert!(RocksOptions::from_config(&options).is_ok(), "{ok}");
        }
        let options = BTreeMap::from([("timer-service.factory".to_string(), "FORST".to_string())]);
        let e = RocksOptions::from_config(&options).unwrap_err().to_string();
        assert!(
            e.contains("state.backend.rocksdb.timer-service.factory")
                && e.contains("HEAP or ROCKSDB"),
            "{e}"
        );
    }

    #[test]
    fn every_known_option_is_applied_or_accepted() {
        for key in APPLIED
            .iter()
            .chain(ACCEPTED_WITHOUT_EFFECT)
            .chain(FLINK_INTEGRATION)
        {
            assert!(is_known(key));
            let options = BTreeMap::from([(key.to_string(), "not a value".to_string())]);
            if let Err(e) = RocksOptions::from_config(&options) {
                assert!(
                    !e.to_string().contains("unknown RocksDB option"),
                    "{key}: {e}"
                );
            }
        }
        assert!(!is_known("log.level"));
    }

    #[test]
    fn metric_options_enable_properties_in_flinks_order() {
        let options = BTreeMap::from([
            ("metrics.estimate-num-keys".to_string(), "true".to_string()),
            ("metrics.block-cache-usage".to_string(), "TRUE".to_string()),
            (
                "metrics.num-running-flushes".to_string(),
                "false".to_string(),
            ),
            ("metrics.num-files-at-level".to_string(), "true".to_string()),
            (
                "metrics.column-family-as-variable".to_string(),
                "true".to_string(),
            ),
        ]);
        let m = RocksOptions::from_config(&options).unwrap().metrics;
        let mut expected = vec![
            "rocksdb.estimate-num-keys".to_string(),
            "rocksdb.block-cache-usage".to_string(),
        ];
        expected.extend((0..7).map(|l| format!("rocksdb.num-files-at-level{l}")));
        assert_eq!(m.properties, expected);
        assert!(m.statistics.is_empty());
        assert!(m.column_family_as_variable);
        for name in NATIVE_METRICS {
            assert!(is_known(&format!("metrics.{name}")), "{name}");
        }
        let options = BTreeMap::from([
            ("metrics.stall-micros".to_string(), "true".to_string()),
            ("metrics.block-cache-hit".to_string(), "true".to_string()),
        ]);
        let m = RocksOptions::from_config(&options).unwrap().metrics;
        assert!(m.properties.is_empty());
        assert_eq!(
            m.statistics,
            ["rocksdb.block_cache_hit", "rocksdb.stall_micros"]
        );
        for (option, name, _) in STATISTICS_METRICS {
            assert!(is_known(&format!("metrics.{option}")), "{option}");
            assert!(ticker(name).is_some(), "{name}");
        }
        assert!(RocksOptions::from_config(&BTreeMap::new())
            .unwrap()
            .metrics
            .properties
            .is_empty());
    }

    #[test]
    fn unknown_or_malformed_metric_options_are_errors() {
        assert!(!is_known("metrics.no-such-property"));
        let unknown = BTreeMap::from([("metrics.no-such-property".into(), "true".into())]);
        let e = RocksOptions::from_config(&unknown).unwrap_err().to_string();
        assert!(e.contains("unknown RocksDB option"), "{e}");
        let malformed = BTreeMap::from([("metrics.estimate-num-keys".into(), "yes".into())]);
        let e = RocksOptions::from_config(&malformed)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("state.backend.rocksdb.metrics.estimate-num-keys"),
            "{e}"
        );
        assert!(e.contains("expected true or false"), "{e}");
    }
}
