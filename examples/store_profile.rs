//! Profiling driver (not a benchmark): preloads state like benches/state_access.rs,
//! then runs one operation N times inside `run_ops`, for callgrind:
//!
//!     valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*run_ops*' \
//!         target/release/examples/store_profile memory value_get 100000
//!
//! and measures memory: `store_profile memory footprint 10000000` prints the
//! resident bytes per value-state entry (FootprintBenchmark's shapes, without Flink).

use statebackend::keygroup::key_group_for_hash;
use statebackend::{BackendKind, Config, StateBackend, StateKind};
use std::hint::black_box;

const MAX_PARALLELISM: u32 = 2;

fn kg(key: u64) -> u32 {
    key_group_for_hash((key ^ (key >> 32)) as i32, MAX_PARALLELISM).unwrap()
}

#[inline(never)]
fn run_ops(b: &mut StateBackend, op: &str, order: &[u64], ids: (u32, u32, u32)) -> u64 {
    let (value, list, map) = ids;
    let mut out = Vec::with_capacity(64);
    let mut n = 0u64;
    for &k in order {
        let key = k.to_be_bytes();
        let g = kg(k);
        match op {
            "value_get" => n += b.value_get(value, g, &key, b"", &mut out).unwrap() as u64,
            "value_update" => b.value_put(value, g, &key, b"", &k.to_le_bytes()).unwrap(),
            "list_add" => b.list_add(list, g, &key, b"", &k.to_le_bytes()).unwrap(),
            "list_add_all" => {
                let elements: Vec<[u8; 8]> = (0..100u64).map(|i| (k ^ i).to_le_bytes()).collect();
                b.list_add_all(list, g, &key, b"", &elements).unwrap()
            }
            "map_put_all" => {
                let mut entries = Vec::with_capacity(200);
                for u in 0..10u64 {
                    statebackend::codec::put_list_element(&mut entries, &u.to_be_bytes());
                    statebackend::codec::put_list_element(&mut entries, &k.to_le_bytes());
                }
                b.map_put_all_encoded(map, g, &key, b"", &entries).unwrap()
            }
            "list_get" => n += b.list_get_encoded(list, g, &key, b"", &mut out).unwrap() as u64,
            "map_get" => {
                let u = k % 10;
                n += b
                    .map_get(map, g, &key, b"", &u.to_be_bytes(), &mut out)
                    .unwrap() as u64
            }
            "map_put" => {
                let u = k % 10;
                b.map_put(map, g, &key, b"", &u.to_be_bytes(), &k.to_le_bytes())
                    .unwrap()
            }
            "map_iterate" => b
                .map_for_each(map, g, &key, b"", &mut |uk, v| {
                    n += (uk.len() + v.len()) as u64;
                    Ok(())
                })
                .unwrap(),
            _ => panic!("unknown op {op}"),
        }
    }
    n
}

/// CPU time of the calling thread in nanoseconds (waits for RocksDB's stalls excluded).
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Resident memory of this process in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// Resident bytes per entry of one value state holding `keys` entries of 8-byte
/// keys and values in a 1-byte namespace (FootprintBenchmark's shapes: Flink's
/// `VoidNamespace`, 2 key groups).
fn footprint(kind: BackendKind, keys: u64) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let config = match kind {
        BackendKind::RocksDb => Config::rocksdb(&url).unwrap(),
        _ => Config::memory(),
    };
    let mut b = StateBackend::open(
        config
            .with_local_dir(dir.path().join("local"))
            .with_max_parallelism(MAX_PARALLELISM)
            .unwrap(),
    )
    .unwrap();
    let value = b.register_state("value", StateKind::Value, b"").unwrap();
    let before = rss();
    for k in 0..keys {
        b.value_put(value, kg(k), &k.to_be_bytes(), &[0], &k.to_le_bytes())
            .unwrap();
    }
    let after = rss();
    println!(
        "{keys} entries: {:.1} bytes per entry (resident memory grew by {} MiB)",
        (after - before) as f64 / keys as f64,
        (after - before) >> 20
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // store_profile memory|rocksdb footprint ENTRIES
    if args[2] == "footprint" {
        let kind = match args[1].as_str() {
            "rocksdb" => BackendKind::RocksDb,
            _ => BackendKind::Memory,
        };
        return footprint(kind, args[3].parse().unwrap());
    }
    let kind = match args[1].as_str() {
        "memory" => BackendKind::Memory,
        "rocksdb" => BackendKind::RocksDb,
        k => panic!("unknown backend {k}"),
    };
    let op = args[2].as_str();
    let n: usize = args[3].parse().unwrap();
    let keys: u64 = args.get(4).map_or(500_000, |k| k.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let config = match kind {
        BackendKind::RocksDb => Config::rocksdb(&url).unwrap(),
        _ => Config::memory(),
    };
    let mut config = config
        .with_local_dir(dir.path().join("local"))
        .with_max_parallelism(MAX_PARALLELISM)
        .unwrap();
    // STORE_OPTS="write-cache.size=0,compression.per.level=LZ4_COMPRESSION": RocksDB options.
    for kv in std::env::var("STORE_OPTS")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
    {
        let (k, v) = kv.split_once('=').unwrap();
        config.rocksdb_options.insert(k.to_string(), v.to_string());
    }
    let mut b = StateBackend::open(config).unwrap();
    let value = b.register_state("value", StateKind::Value, b"").unwrap();
    let list = b.register_state("list", StateKind::List, b"").unwrap();
    let map = b.register_state("map", StateKind::Map, b"").unwrap();
    let preload = std::time::Instant::now();
    for k in 0..keys {
        let key = k.to_be_bytes();
        b.value_put(value, kg(k), &key, b"", &k.to_le_bytes())
            .unwrap();
        b.list_add(list, kg(k), &key, b"", &k.to_le_bytes())
            .unwrap();
        for u in 0..10u64 {
            b.map_put(map, kg(k), &key, b"", &u.to_be_bytes(), &k.to_le_bytes())
                .unwrap();
        }
    }
    eprintln!("preload: {:.2} s", preload.elapsed().as_secs_f64());
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let order: Vec<u64> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % keys
        })
        .collect();
    // "a,b": run a first (untimed), then time b.
    let mut ops: Vec<&str> = op.split(',').collect();
    let op = ops.pop().unwrap();
    for first in ops {
        black_box(run_ops(&mut b, first, &order, (value, list, map)));
    }
    let t = std::time::Instant::now();
    let cpu = thread_cpu_ns();
    black_box(run_ops(&mut b, op, &order, (value, list, map)));
    eprintln!(
        "{op}: {:.1} ns/op ({:.1} ns/op on this thread's CPU)",
        t.elapsed().as_nanos() as f64 / n as f64,
        (thread_cpu_ns() - cpu) as f64 / n as f64
    );
}
