//! Snapshot and restore throughput at 1 GB of state, next to the raw sequential
//! write bandwidth (with fsync) of the same disk measured in the same run; the
//! synchronous-phase pause at 100 MB and 1 GB; and the RocksDB backend's full and
//! incremental checkpoints (1% of the keys changed).
//!
//!     cargo bench --bench snapshot
//!     STATEBACKEND_BENCH_MB=256 cargo bench --bench snapshot   # smaller state
//!
//! Results: docs/benchmarks.md.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use statebackend::{Config, SnapshotHandle, StateBackend, StateKind};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const VALUE_LEN: usize = 1000;

fn state_mb() -> usize {
    std::env::var("STATEBACKEND_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn entries(mb: usize) -> u64 {
    ((mb << 20) / (VALUE_LEN + 8)) as u64
}

/// Puts 1000-byte values of pseudo-random (incompressible) bytes under 8-byte keys.
fn fill(b: &mut StateBackend, keys: impl Iterator<Item = u64>, round: u64) {
    let v = b.register_state("v", StateKind::Value, b"").unwrap();
    let mut value = vec![0u8; VALUE_LEN];
    for k in keys {
        let mut x = k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ round.wrapping_add(1);
        for chunk in value.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        b.value_put(v, (k % 128) as u32, &k.to_be_bytes(), b"", &value)
            .unwrap();
    }
}

fn fs_backend(mb: usize, dir: &Path) -> StateBackend {
    let url = format!("file://{}", dir.join("fs-checkpoints").display());
    let mut b = StateBackend::open(Config::fs(&url).unwrap()).unwrap();
    fill(&mut b, 0..entries(mb), 0);
    b
}

fn snapshot(c: &mut Criterion) {
    let mb = state_mb();
    let dir = tempfile::tempdir().unwrap();
    let mut b = fs_backend(mb, dir.path());
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
    g.bench_function(format!("heap_{mb}MiB"), |bench| {
        bench.iter(|| b.snapshot(1).unwrap())
    });
    drop(b);
    let small_mb = (mb / 10).max(1);
    let mut small = fs_backend(small_mb, dir.path());
    g.bench_function(format!("heap_{small_mb}MiB"), |bench| {
        bench.iter(|| small.snapshot(1).unwrap())
    });
    drop(small);
    g.finish();

    rocksdb(c, mb, dir.path());
}

/// The RocksDB backend: full snapshot (savepoint) and restore, and incremental
/// checkpoints after 1% of the keys changed.
fn rocksdb(c: &mut Criterion, mb: usize, dir: &Path) {
    let url = format!("file://{}", dir.join("rocks-checkpoints").display());
    let config = Config::rocksdb(&url)
        .unwrap()
        .with_local_dir(dir.join("local"))
        .with_incremental(true)
        .with_retained_checkpoints(2);
    let mut b = StateBackend::open(config.clone()).unwrap();
    let n = entries(mb);
    fill(&mut b, 0..n, 0);
    let first = b.checkpoint(1).unwrap();
    println!(
        "rocksdb: first incremental checkpoint uploaded {} MiB (the whole DB, {} MiB)",
        first.bytes_written >> 20,
        first.full_size >> 20
    );

    let mut g = c.benchmark_group(format!("rocksdb/{mb}MiB"));
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let mut id = 100;
    let mut full = None;
    g.bench_function("full_snapshot", |bench| {
        bench.iter(|| {
            id += 1;
            full = Some(b.savepoint(id).unwrap().write().unwrap());
        })
    });
    let full = full.unwrap();
    println!(
        "rocksdb: full snapshot writes {} MiB",
        full.bytes_written >> 20
    );
    let restore_config = Config::rocksdb(&format!("file://{}", dir.join("r").display()))
        .unwrap()
        .with_local_dir(dir.join("local"));
    g.bench_function("restore_full", |bench| {
        bench.iter(|| {
            StateBackend::restore(restore_config.clone(), std::slice::from_ref(&full.handle))
                .unwrap()
        })
    });

    // 1% of the keys change between checkpoints; only the checkpoint is timed.
    let mut round = 0u64;
    let (mut uploaded, mut total, mut checkpoints) = (0u64, 0u64, 0u64);
    let mut sync = Duration::ZERO;
    g.bench_function("incremental_checkpoint_1pct_changed", |bench| {
        bench.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let start_key = (round * n / 100) % n;
                fill(
                    &mut b,
                    (start_key..start_key + n / 100).map(|k| k % n),
                    round,
                );
                id += 1;
                let start = Instant::now();
                let pending = b.snapshot(id).unwrap();
                sync += start.elapsed();
                let done = pending.write().unwrap();
                elapsed += start.elapsed();
                uploaded += done.bytes_written;
                total += done.full_size;
                checkpoints += 1;
            }
            elapsed
        })
    });
    g.finish();
    println!(
        "rocksdb: incremental checkpoints after 1% changed: {checkpoints} taken, on average {:.1} MiB uploaded of {:.1} MiB ({:.1}%), synchronous phase {:.1} ms",
        uploaded as f64 / checkpoints as f64 / 1048576.0,
        total as f64 / checkpoints as f64 / 1048576.0,
        100.0 * uploaded as f64 / total as f64,
        sync.as_secs_f64() * 1e3 / checkpoints as f64
    );
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
