//! `StateBackend::metrics`: per-state estimates on every backend, the RocksDB
//! properties enabled by `state.backend.rocksdb.metrics.*` (and only those), the
//! write-back cache's counters, and the flat encoding the bridges pass on.

use statebackend::keygroup::key_group_for_hash;
use statebackend::metrics::{ENCODED_HEADER, ENCODED_PER_STATE, UNKNOWN};
use statebackend::{Config, StateBackend, StateKind};

const KEYS: i32 = 1000;

fn fill(b: &mut StateBackend) -> (u32, u32) {
    let value = b.register_state("value", StateKind::Value, b"").unwrap();
    let map = b.register_state("map", StateKind::Map, b"").unwrap();
    for key in 0..KEYS {
        let kg = key_group_for_hash(key, 128).unwrap();
        let k = key.to_be_bytes();
        b.value_put(value, kg, &k, b"", &[1; 16]).unwrap();
        for user_key in 0..3u8 {
            b.map_put(map, kg, &k, b"", &[user_key], b"x").unwrap();
        }
    }
    (value, map)
}

#[test]
fn heap_backends_count_entries_per_state() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    for config in [Config::memory(), Config::fs(&url).unwrap()] {
        let mut b = StateBackend::open(config.with_max_parallelism(128).unwrap()).unwrap();
        assert!(b.metrics().states.is_empty());
        let (value, map) = fill(&mut b);
        let m = b.metrics();
        assert!(m.properties.is_empty());
        assert!(m.statistic_names.is_empty());
        assert!(m.write_cache.is_none());
        assert_eq!(m.states[value as usize].entries, Some(KEYS as u64));
        // One entry per (key, namespace) map, as `num_entries` counts.
        assert_eq!(m.states[map as usize].entries, Some(KEYS as u64));
        assert_eq!(m.states[value as usize].bytes, None);
        let encoded = m.encode();
        assert_eq!(encoded.len(), ENCODED_HEADER + 2 * ENCODED_PER_STATE);
        assert!(encoded[..ENCODED_HEADER].iter().all(|v| *v == UNKNOWN));
        assert_eq!(encoded[ENCODED_HEADER], KEYS as i64);
        assert_eq!(encoded[ENCODED_HEADER + 1], UNKNOWN);
    }
}

#[test]
fn rocksdb_reads_the_enabled_properties_and_the_caches_counters() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("checkpoints").display());
    let mut config = Config::rocksdb(&url)
        .unwrap()
        .with_max_parallelism(128)
        .unwrap()
        .with_local_dir(dir.path().join("local"));
    for (key, value) in [
        ("estimate-num-keys", "true"),
        ("num-files-at-level", "true"),
        ("block-cache-usage", "false"),
        ("bytes-written", "true"),
        ("block-cache-miss", "true"),
    ] {
        config
            .set_rocksdb_option(&format!("state.backend.rocksdb.metrics.{key}"), value)
            .unwrap();
    }
    let mut b = StateBackend::open(config).unwrap();
    let options = b.metric_options();
    assert!(!options.column_family_as_variable);
    let mut expected = vec!["rocksdb.estimate-num-keys".to_string()];
    expected.extend((0..7).map(|l| format!("rocksdb.num-files-at-level{l}")));
    assert_eq!(options.properties, expected, "block-cache-usage is off");
    assert_eq!(
        options.statistics,
        ["rocksdb.block_cache_miss", "rocksdb.bytes_written"]
    );

    let (value, map) = fill(&mut b);
    let cache = b.metrics().write_cache.expect("a write-back cache");
    assert!(cache.dirty_bytes > 0, "{cache:?}");
    let mut out = Vec::new();
    for key in 0..KEYS {
        let kg = key_group_for_hash(key, 128).unwrap();
        assert!(b
            .value_get(value, kg, &key.to_be_bytes(), b"", &mut out)
            .unwrap());
    }
    let read = b.metrics().write_cache.unwrap();
    assert_eq!(
        read.hits - cache.hits,
        KEYS as u64,
        "written keys are cached"
    );

    // Written back: RocksDB's estimates see every entry (a map: one per user key).
    assert_eq!(b.num_entries().unwrap(), 2 * KEYS as u64);
    let m = b.metrics();
    assert_eq!(m.write_cache.unwrap().dirty_bytes, 0);
    let v = &m.states[value as usize];
    assert_eq!(v.entries, Some(KEYS as u64));
    assert!(v.bytes.unwrap() > 0);
    assert_eq!(v.properties[0], v.entries, "rocksdb.estimate-num-keys");
    assert_eq!(m.states[map as usize].entries, Some(3 * KEYS as u64));
    for level in 0..7 {
        assert!(v.properties[1 + level].is_some(), "level {level}");
    }
    // RocksDB's statistics counters: the writer wrote the entries in batches.
    assert_eq!(m.statistic_names, options.statistics);
    assert!(m.statistics[0].is_some(), "block cache misses");
    assert!(m.statistics[1].unwrap() > 0, "bytes written");
    let encoded = m.encode();
    let per_state = ENCODED_PER_STATE + expected.len();
    assert_eq!(encoded.len(), ENCODED_HEADER + 2 + 2 * per_state);
    assert_eq!(encoded[0], read.hits as i64);
    assert_eq!(encoded[ENCODED_HEADER + 1], m.statistics[1].unwrap() as i64);
    assert_eq!(encoded[ENCODED_HEADER + 2 + per_state], 3 * KEYS as i64);
}

#[test]
fn an_unknown_metric_option_fails_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let mut config = Config::rocksdb(&url).unwrap();
    config
        .set_rocksdb_option("state.backend.rocksdb.metrics.no-such-property", "true")
        .unwrap();
    let e = StateBackend::open(config).unwrap_err().to_string();
    assert!(
        e.contains("state.backend.rocksdb.metrics.no-such-property"),
        "{e}"
    );
    assert!(e.contains("unknown RocksDB option"), "{e}");
    assert!(!Config::knows_rocksdb_option(
        "state.backend.rocksdb.metrics.no-such-property"
    ));
    assert!(Config::knows_rocksdb_option(
        "state.backend.rocksdb.metrics.estimate-num-keys"
    ));
}
