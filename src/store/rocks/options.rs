//! RocksDB options: predefined profiles plus overrides of the common options, from
//! `state.backend.rocksdb.*` configuration keys (Flink's names where Flink has one).
//! An unknown key is an error.

use crate::config::parse_memory_size;
use crate::error::{Error, Result};
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
}

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
];

/// Keys of Flink's RocksDB options that are accepted and have no effect here.
const ACCEPTED_WITHOUT_EFFECT: &[&str] = &[
    "memory.managed",
    "timer-service.factory",
    "checkpoint.transfer.thread.num",
];

/// Whether `option` (a key without `state.backend.rocksdb.`) is one this library
/// knows (see `Config::knows_rocksdb_option`).
pub fn is_known(option: &str) -> bool {
    APPLIED.contains(&option) || ACCEPTED_WITHOUT_EFFECT.contains(&option)
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
        }
    }
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
                k if ACCEPTED_WITHOUT_EFFECT.contains(&k) => {}
                _ => return Err(err(key, value, "unknown RocksDB option")),
            }
        }
        Ok(o)
    }
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
    fn every_known_option_is_applied_or_accepted() {
        for key in APPLIED.iter().chain(ACCEPTED_WITHOUT_EFFECT) {
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
}
