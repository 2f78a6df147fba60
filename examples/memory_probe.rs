//! Where a RocksDB backend's native memory goes on state far larger than its budget
//! (issue 19: at the same budget, ours grows 75–190 MiB more than Flink's RocksDB).
//!
//! ```text
//! cargo run --release --example memory_probe -- [MIB [OPS [BUDGET_MIB [RATIO [DIR]]]]]
//! ```
//!
//! Opens a RocksDB backend inside a shared budget of `BUDGET_MIB` (default 256, as
//! Flink's `fixed-per-slot`), `RATIO` of it (default 0.5) for the write cache, loads
//! `MIB` (default 2560) of 1 KiB incompressible values in ascending key order, then
//! does `OPS` (default 1,000,000) read-modify-writes on uniformly random keys. After
//! the load and at the end it prints the process's anonymous resident memory
//! (RssAnon) gained since the start beside what the backend accounts for: the write
//! cache's bytes, the block cache's usage (memtables are charged to it) and pinned
//! part, the memtables, RocksDB's estimate of its table readers. The difference is
//! what no budget counts (allocator overhead, the writer's working copies, …).

use statebackend::keygroup::key_group_for_hash;
use statebackend::store::rocks::memory::SharedMemory;
use statebackend::{Config, StateBackend, StateKind};
use std::time::Instant;

#[path = "support/values.rs"]
mod values;
use values::value;

const MIB: f64 = 1048576.0;
const MAX_PARALLELISM: u32 = 128;
const PROPERTIES: [&str; 4] = [
    "block-cache-pinned-usage",
    "cur-size-all-mem-tables",
    "estimate-table-readers-mem",
    "size-all-mem-tables",
];

/// RssAnon of this process, in bytes.
fn rss_anon() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("RssAnon")
        * 1024
}

fn report(when: &str, backend: &StateBackend, memory: &SharedMemory, baseline: u64) {
    let metrics = backend.metrics();
    let property = |name: &str| -> f64 {
        let i = metrics
            .properties
            .iter()
            .position(|p| p.ends_with(name))
            .expect("an enabled property");
        // Per column family; the cache is shared, the rest summed over the states.
        match name {
            "block-cache-pinned-usage" => metrics.states[0].properties[i].unwrap_or(0) as f64,
            _ => metrics
                .states
                .iter()
                .map(|s| s.properties[i].unwrap_or(0))
                .sum::<u64>() as f64,
        }
    };
    let cache = metrics.write_cache.map_or(0, |c| c.cached_bytes) as f64;
    let block_cache = memory.block_cache_usage() as f64;
    let readers = property("estimate-table-readers-mem");
    let grown = (rss_anon() - baseline) as f64;
    let accounted = cache + block_cache + readers;
    println!(
        "{when}: RssAnon +{:.0} MiB; accounted {:.0} MiB = write cache {:.0} + block cache {:.0} \
         (pinned {:.0}; memtables {:.0} active, {:.0} with unflushed) + table readers {:.0}; \
         not accounted {:.0} MiB",
        grown / MIB,
        accounted / MIB,
        cache / MIB,
        block_cache / MIB,
        property("block-cache-pinned-usage") / MIB,
        property("cur-size-all-mem-tables") / MIB,
        property("size-all-mem-tables") / MIB,
        readers / MIB,
        (grown - accounted) / MIB,
    );
}

fn main() -> statebackend::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: f64| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let (mib, ops, budget, ratio) = (
        arg(1, 2560.0) as u64,
        arg(2, 1e6) as u64,
        arg(3, 256.0) as usize,
        arg(4, 0.5),
    );
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dir = args.get(5).map_or(temp.path().to_path_buf(), Into::into);
    let baseline = rss_anon();
    let memory = SharedMemory::new(budget << 20, ratio, 0.5)?;
    let mut config = Config::rocksdb(&format!("file://{}", dir.join("checkpoints").display()))?
        .with_local_dir(dir.join("local"))
        .with_max_parallelism(MAX_PARALLELISM)?;
    for p in PROPERTIES {
        config.set_rocksdb_option(&format!("state.backend.rocksdb.metrics.{p}"), "true")?;
    }
    config.memory = Some(memory.clone());
    let mut backend = StateBackend::open(config)?;
    let state = backend.register_state("v", StateKind::Value, b"")?;
    let keys = mib * 1024;
    let kg = |k: u64| key_group_for_hash(k as i32, MAX_PARALLELISM).expect("a key group");

    let t = Instant::now();
    for k in 0..keys {
        backend.value_put(state, kg(k), &k.to_be_bytes(), b"", &value(k, 0))?;
    }
    println!(
        "loaded {mib} MiB ({keys} keys) in {:.1} s, budget {budget} MiB, write-cache ratio {ratio}",
        t.elapsed().as_secs_f64()
    );
    report("after the load", &backend, &memory, baseline);

    let t = Instant::now();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(1024);
    for i in 0..ops {
        // xorshift: uniform keys, the same in every run.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = x % keys;
        out.clear();
        assert!(backend.value_get(state, kg(k), &k.to_be_bytes(), b"", &mut out)?);
        out[(i % 1000) as usize] ^= 1;
        backend.value_put(state, kg(k), &k.to_be_bytes(), b"", &out)?;
        if (i + 1) % (ops / 4).max(1) == 0 {
            report(&format!("after {} ops", i + 1), &backend, &memory, baseline);
        }
    }
    println!(
        "{ops} read-modify-writes in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
