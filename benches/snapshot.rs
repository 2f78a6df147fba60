//! Snapshot and restore throughput at 1 GB of state, next to the raw sequential
//! write bandwidth (with fsync) of the same disk, measured in the same run; and the
//! synchronous-phase pause at 100 MB and 1 GB.
//!
//!     cargo bench --bench snapshot
//!     STATEBACKEND_BENCH_MB=256 cargo bench --bench snapshot   # smaller state
//!
//! Results: docs/benchmarks.md.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use statebackend::{Config, SnapshotHandle, StateBackend, StateKind};
use std::io::Write;
use std::time::Duration;

const VALUE_LEN: usize = 1000;

fn state_mb() -> usize {
    std::env::var("STATEBACKEND_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// A Fs backend holding about `mb` MiB of value state (8-byte keys, 1000-byte values).
fn backend_with(mb: usize, dir: &std::path::Path) -> StateBackend {
    let url = format!("file://{}", dir.join("checkpoints").display());
    let mut b = StateBackend::open(Config::fs(&url).unwrap()).unwrap();
    let v = b.register_state("v", StateKind::Value, b"").unwrap();
    let entries = (mb << 20) / (VALUE_LEN + 8);
    let mut value = vec![0u8; VALUE_LEN];
    for k in 0..entries as u64 {
        value[..8].copy_from_slice(&k.to_le_bytes());
        let kg = (k % 128) as u32;
        b.value_put(v, kg, &k.to_be_bytes(), b"", &value).unwrap();
    }
    b
}

fn snapshot(c: &mut Criterion) {
    let mb = state_mb();
    let dir = tempfile::tempdir().unwrap();
    let mut b = backend_with(mb, dir.path());
    let bytes = b.checkpoint(0).unwrap().bytes_written;

    let mut g = c.benchmark_group(format!("snapshot/{mb}MiB"));
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Bytes(bytes));

    // The disk's own speed for the same amount of data: sequential writes and fsync.
    let chunk = vec![7u8; 1 << 20];
    g.bench_function("disk_sequential_write_fsync", |bench| {
        bench.iter(|| {
            let path = dir.path().join("raw");
            let mut f = std::fs::File::create(&path).unwrap();
            let mut left = bytes as usize;
            while left > 0 {
                let n = left.min(chunk.len());
                f.write_all(&chunk[..n]).unwrap();
                left -= n;
            }
            f.sync_all().unwrap();
            drop(f);
            std::fs::remove_file(&path).unwrap();
        })
    });

    let mut id = 1;
    let mut last = None;
    g.bench_function("fs_full_snapshot", |bench| {
        bench.iter(|| {
            id += 1;
            last = Some(b.checkpoint(id).unwrap().handle);
        })
    });

    let handle: SnapshotHandle = last.unwrap();
    let url = format!("file://{}", dir.path().join("restored").display());
    g.bench_function("fs_restore", |bench| {
        bench.iter(|| {
            StateBackend::restore(Config::fs(&url).unwrap(), std::slice::from_ref(&handle)).unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("synchronous_phase");
    g.bench_function(format!("{mb}MiB"), |bench| {
        bench.iter(|| b.snapshot(1).unwrap())
    });
    drop(b);
    let small_mb = (mb / 10).max(1);
    let mut small = backend_with(small_mb, dir.path());
    g.bench_function(format!("{small_mb}MiB"), |bench| {
        bench.iter(|| small.snapshot(1).unwrap())
    });
    g.finish();
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
