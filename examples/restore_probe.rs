//! How long restoring a full RocksDB snapshot takes (issue 19's "our full restore
//! 2.5 s against Flink's 0.61 s at 1 GiB").
//!
//! ```text
//! cargo run --release --example restore_probe -- [MIB [KEY_GROUPS [DIR]]]
//! ```
//!
//! Fills `MIB` (default 1024) of value state (1 KiB incompressible values over
//! `KEY_GROUPS` key groups, default 2, as `CheckpointBenchmark` does), writes a full
//! snapshot (a savepoint) under `DIR` (default: a temporary directory), then restores
//! it into a new RocksDB backend three times and prints each restore's time, and
//! checks that every 97th key reads back its value.

use statebackend::keygroup::key_group_for_hash;
use statebackend::{Config, StateBackend, StateKind};
use std::time::Instant;

#[path = "support/values.rs"]
mod values;
use values::value;

fn main() -> statebackend::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u64| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let (mib, key_groups) = (arg(1, 1024), arg(2, 2) as u32);
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dir = args.get(3).map_or(temp.path().to_path_buf(), Into::into);
    let config = |name: &str| -> statebackend::Result<Config> {
        Config::rocksdb(&format!("file://{}", dir.join(name).display()))?
            .with_local_dir(dir.join("local"))
            .with_max_parallelism(key_groups)
    };
    let mut backend = StateBackend::open(config("checkpoints")?)?;
    let state = backend.register_state("v", StateKind::Value, b"")?;
    let keys = mib * 1024;
    let kg = |k: u64| key_group_for_hash(k as i32, key_groups);
    let t = Instant::now();
    for k in 0..keys {
        backend.value_put(state, kg(k)?, &k.to_be_bytes(), b"", &value(k, 0))?;
    }
    println!("filled {mib} MiB in {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let full = backend.savepoint(1)?.write()?;
    println!(
        "full snapshot: {} MiB in {:.2} s",
        full.bytes_written >> 20,
        t.elapsed().as_secs_f64()
    );
    drop(backend);
    for run in 1..=3 {
        let t = Instant::now();
        let restored = StateBackend::restore(
            config(&format!("restored-{run}"))?,
            std::slice::from_ref(&full.handle),
        )?;
        let took = t.elapsed().as_secs_f64();
        let mut out = Vec::new();
        for k in (0..keys).step_by(97) {
            assert!(restored.value_get(state, kg(k)?, &k.to_be_bytes(), b"", &mut out)?);
            assert_eq!(out, value(k, 0), "key {k}");
        }
        println!("restore {run}: {took:.2} s");
    }
    Ok(())
}
