//! State access in the shape of Flink's `flink-benchmarks` state benchmarks:
//! 500,000 preloaded keys, 8-byte keys and values, 2 key groups, one thread.
//!
//!     cargo bench --bench state_access
//!
//! Results and the comparison with Flink's backends: docs/benchmarks.md.

use criterion::{criterion_group, criterion_main, Criterion};
use statebackend::keygroup::key_group_for_hash;
use statebackend::{BackendKind, Config, StateBackend, StateKind};
use std::hint::black_box;

const KEYS: u64 = 500_000;
const MAX_PARALLELISM: u32 = 2;
const MAP_KEYS_PER_KEY: u64 = 10;

/// Flink's key group of a `Long` key (Long.hashCode, then murmur).
fn kg(key: u64) -> u32 {
    key_group_for_hash((key ^ (key >> 32)) as i32, MAX_PARALLELISM).unwrap()
}

/// A fixed pseudo-random order of the preloaded keys.
fn random_keys(n: usize) -> Vec<u64> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % KEYS
        })
        .collect()
}

fn open(kind: BackendKind, dir: &std::path::Path) -> StateBackend {
    let url = format!("file://{}", dir.display());
    let config = match kind {
        BackendKind::Memory => Config::memory(),
        BackendKind::Fs => Config::fs(&url).unwrap(),
        BackendKind::RocksDb => Config::rocksdb(&url).unwrap(),
    };
    StateBackend::open(
        config
            .with_local_dir(dir.join("local"))
            .with_max_parallelism(MAX_PARALLELISM)
            .unwrap(),
    )
    .unwrap()
}

fn state_access(c: &mut Criterion) {
    let order = random_keys(1 << 20);
    for kind in [BackendKind::Memory, BackendKind::Fs, BackendKind::RocksDb] {
        let dir = tempfile::tempdir().unwrap();
        let mut b = open(kind, dir.path());
        let value = b.register_state("value", StateKind::Value, b"").unwrap();
        let list = b.register_state("list", StateKind::List, b"").unwrap();
        let map = b.register_state("map", StateKind::Map, b"").unwrap();
        for k in 0..KEYS {
            let key = k.to_be_bytes();
            b.value_put(value, kg(k), &key, b"", &k.to_le_bytes())
                .unwrap();
            b.list_add(list, kg(k), &key, b"", &k.to_le_bytes())
                .unwrap();
            for u in 0..MAP_KEYS_PER_KEY {
                b.map_put(map, kg(k), &key, b"", &u.to_be_bytes(), &k.to_le_bytes())
                    .unwrap();
            }
        }
        let name = kind.name();
        let mut g = c.benchmark_group(format!("state/{name}"));
        let mut out = Vec::with_capacity(64);
        let mut i = 0usize;
        let mut next = || {
            i = (i + 1) & ((1 << 20) - 1);
            order[i]
        };

        g.bench_function("value_get", |bench| {
            bench.iter(|| {
                let k = next();
                black_box(
                    b.value_get(value, kg(k), &k.to_be_bytes(), b"", &mut out)
                        .unwrap(),
                )
            })
        });
        g.bench_function("value_update", |bench| {
            bench.iter(|| {
                let k = next();
                b.value_put(value, kg(k), &k.to_be_bytes(), b"", &k.to_le_bytes())
                    .unwrap()
            })
        });
        let mut fresh = KEYS;
        g.bench_function("value_insert", |bench| {
            bench.iter(|| {
                fresh += 1;
                b.value_put(
                    value,
                    kg(fresh),
                    &fresh.to_be_bytes(),
                    b"",
                    &fresh.to_le_bytes(),
                )
                .unwrap()
            })
        });
        g.bench_function("list_add", |bench| {
            bench.iter(|| {
                let k = next();
                b.list_add(list, kg(k), &k.to_be_bytes(), b"", &k.to_le_bytes())
                    .unwrap()
            })
        });
        g.bench_function("list_get", |bench| {
            bench.iter(|| {
                let k = next();
                black_box(
                    b.list_get_encoded(list, kg(k), &k.to_be_bytes(), b"", &mut out)
                        .unwrap(),
                )
            })
        });
        g.bench_function("map_get", |bench| {
            bench.iter(|| {
                let k = next();
                let u = k % MAP_KEYS_PER_KEY;
                black_box(
                    b.map_get(
                        map,
                        kg(k),
                        &k.to_be_bytes(),
                        b"",
                        &u.to_be_bytes(),
                        &mut out,
                    )
                    .unwrap(),
                )
            })
        });
        g.bench_function("map_put", |bench| {
            bench.iter(|| {
                let k = next();
                let u = k % MAP_KEYS_PER_KEY;
                b.map_put(
                    map,
                    kg(k),
                    &k.to_be_bytes(),
                    b"",
                    &u.to_be_bytes(),
                    &k.to_le_bytes(),
                )
                .unwrap()
            })
        });
        g.bench_function("map_iterate", |bench| {
            bench.iter(|| {
                let k = next();
                let mut n = 0u64;
                b.map_for_each(map, kg(k), &k.to_be_bytes(), b"", &mut |uk, v| {
                    n += (uk.len() + v.len()) as u64;
                    Ok(())
                })
                .unwrap();
                black_box(n)
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = state_access
}
criterion_main!(benches);
