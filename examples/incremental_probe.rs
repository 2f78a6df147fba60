//! What incremental RocksDB checkpoints upload after a bulk load (issue 19's
//! "second checkpoint uploads 342 MiB").
//!
//! ```text
//! cargo run --release --example incremental_probe -- [MIB [WAIT_MS [DIR [COMPACTION_WAIT]]]]
//! ```
//!
//! Fills `MIB` (default 1024) of value state (1 KiB incompressible values, 2 key
//! groups, as `CheckpointBenchmark` does), then takes incremental checkpoints 2 to 5
//! under `DIR` (default: a temporary directory), changing 1% of the keys before each
//! of 3 to 5 and sleeping `WAIT_MS` (default 0) before each checkpoint. Prints, per
//! checkpoint, the bytes it refers to, the bytes it uploaded and its new SST files.
//! With `WAIT_MS` 0 the first checkpoint after the fill's also carries the outputs of
//! the compactions still running after the fill; once those have settled, a
//! checkpoint uploads about the changed 1%. `COMPACTION_WAIT` (e.g. `30 s`) sets
//! `state.backend.rocksdb.incremental.compaction-wait`: each checkpoint then lets
//! the pending compactions finish before it links its files.

use statebackend::keygroup::key_group_for_hash;
use statebackend::snapshot::manifest::KeyedData;
use statebackend::snapshot::reader;
use statebackend::{Config, StateBackend, StateKind};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

#[path = "support/values.rs"]
mod values;
use values::value;

fn main() -> statebackend::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u64| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let (mib, wait_ms) = (arg(1, 1024), arg(2, 0));
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dir = args.get(3).map_or(temp.path().to_path_buf(), Into::into);
    let mut config = Config::rocksdb(&format!("file://{}", dir.join("checkpoints").display()))?
        .with_local_dir(dir.join("local"))
        .with_max_parallelism(2)?
        .with_incremental(true)
        .with_retained_checkpoints(5);
    if let Some(wait) = args.get(4) {
        config.set_rocksdb_option("state.backend.rocksdb.incremental.compaction-wait", wait)?;
    }
    let mut backend = StateBackend::open(config)?;
    let state = backend.register_state("v", StateKind::Value, b"")?;
    let keys = mib * 1024;
    let put = |b: &mut StateBackend, k: u64, round: u64| {
        let kg = key_group_for_hash(k as i32, 2)?;
        b.value_put(state, kg, &k.to_be_bytes(), b"", &value(k, round))
    };
    let t = Instant::now();
    for k in 0..keys {
        put(&mut backend, k, 0)?;
    }
    println!("filled {mib} MiB in {:.1} s", t.elapsed().as_secs_f64());
    let mut previous = BTreeSet::new();
    for id in 2..=5u64 {
        if id > 2 {
            for k in (0..keys).step_by(100) {
                put(&mut backend, k, id)?;
            }
        }
        std::thread::sleep(Duration::from_millis(wait_ms));
        let t = Instant::now();
        let done = backend.checkpoint(id)?;
        let KeyedData::Files(files) = reader::open(&done.handle)?.manifest.keyed else {
            unreachable!("an incremental checkpoint holds files")
        };
        let names: BTreeSet<String> = files.files.iter().map(|f| f.name.clone()).collect();
        let new: Vec<String> = files
            .files
            .iter()
            .filter(|f| f.name.ends_with(".sst") && !previous.contains(&f.name))
            .map(|f| format!("{} ({} MiB)", f.name, f.size >> 20))
            .collect();
        println!(
            "checkpoint {id}: {:.2} s, refers to {} MiB, uploaded {} MiB; new SST files: {}",
            t.elapsed().as_secs_f64(),
            files.total_bytes() >> 20,
            files.uploaded_bytes >> 20,
            new.join(", ")
        );
        previous = names;
    }
    Ok(())
}
