//! The demo job: a keyed streaming job on two backend instances (Fs backend,
//! file:// checkpoints), crashed with SIGKILL in the middle of its input, restarted
//! from its last complete checkpoint, and checked against an uninterrupted run.
//!
//!     cargo run --release --example demo
//!
//! The job reads a deterministic stream of (user, amount) events. Per user it keeps
//! a running total (value state), the large amounts (list state) and a histogram
//! (map state); the source offset is operator state, so a restore replays exactly
//! the events after the checkpoint: nothing lost, nothing counted twice.

use statebackend::keygroup::{key_group_for_hash, operator_for_key_group};
use statebackend::{Config, Distribution, SnapshotHandle, StateBackend, StateKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const EVENTS: u64 = 400_000;
const USERS: u32 = 20_000;
const MAX_PARALLELISM: u32 = 128;
const PARALLELISM: u32 = 2;
const CHECKPOINT_EVERY: u64 = 50_000;
const CRASH_AT: u64 = 234_567;

/// Event `i` of the stream: (user, amount), from a fixed pseudo-random sequence.
fn event(i: u64) -> (u32, u32) {
    let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    ((x % USERS as u64) as u32, ((x >> 32) % 100) as u32)
}

/// What the job computes per user: (total, large amounts, histogram by tens).
type Result = BTreeMap<u32, (u64, Vec<u32>, BTreeMap<u8, u64>)>;

fn reference() -> Result {
    let mut r = Result::new();
    for i in 0..EVENTS {
        let (user, amount) = event(i);
        let e = r.entry(user).or_default();
        e.0 += amount as u64;
        if amount >= 90 {
            e.1.push(amount);
        }
        *e.2.entry((amount / 10) as u8).or_default() += 1;
    }
    r
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 3 && args[1] == "worker" {
        let crash_at = args.get(3).map(|s| s.parse()).transpose()?;
        return worker(Path::new(&args[2]), crash_at);
    }
    let dir = std::env::temp_dir().join(format!("statebackend-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe()?;
    println!("libstatebackend {} demo: {EVENTS} events, {USERS} users, parallelism {PARALLELISM}, max parallelism {MAX_PARALLELISM}", statebackend::VERSION);
    println!(
        "checkpoints: file://{}/checkpoints (Fs backend)\n",
        dir.display()
    );

    println!("== run 1: the job will be killed (SIGKILL) at event {CRASH_AT}");
    let status = Command::new(&exe)
        .args(["worker", dir.to_str().unwrap(), &CRASH_AT.to_string()])
        .status()?;
    println!("   run 1 ended: {status}\n");
    if status.success() {
        return Err("run 1 was supposed to crash".into());
    }

    println!("== run 2: restart from the last complete checkpoint");
    let status = Command::new(&exe)
        .args(["worker", dir.to_str().unwrap()])
        .status()?;
    if !status.success() {
        return Err(format!("run 2 failed: {status}").into());
    }

    let got = read_result(&dir.join("result.txt"))?;
    let want = reference();
    std::fs::remove_dir_all(&dir)?;
    if got != want {
        let diff = want.iter().filter(|(k, v)| got.get(k) != Some(v)).count();
        return Err(
            format!("VERIFICATION FAILED: {diff} users differ from an uninterrupted run").into(),
        );
    }
    let total: u64 = got.values().map(|v| v.0).sum();
    println!(
        "\nverified: all {} users' totals, lists and histograms equal an uninterrupted run (sum of amounts {total})",
        got.len()
    );
    Ok(())
}

fn worker(
    dir: &Path,
    crash_at: Option<u64>,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let url = format!("file://{}", dir.join("checkpoints").display());
    let latest = SnapshotHandle::latest(&url)?;
    let mut instances = Vec::new();
    for i in 0..PARALLELISM {
        let config = Config::fs(&url)?
            .with_max_parallelism(MAX_PARALLELISM)?
            .with_subtask(i, PARALLELISM)?
            .with_retained_checkpoints(2);
        let start = Instant::now();
        let mut b = StateBackend::restore(config, &latest)?;
        b.register_state("total", StateKind::Value, b"u64 le")?;
        b.register_state("large", StateKind::List, b"u32 le")?;
        b.register_state("histogram", StateKind::Map, b"u8 -> u64 le")?;
        b.register_operator_state("source-offset", Distribution::Union)?;
        if !latest.is_empty() {
            println!(
                "   instance {i}: restored key groups {} ({} entries) in {:.1} ms",
                b.key_group_range(),
                b.num_entries()?,
                start.elapsed().as_secs_f64() * 1e3
            );
        }
        instances.push(b);
    }
    let offset = match instances[0].operator_state().get("source-offset")?.first() {
        Some(bytes) => u64::from_le_bytes(bytes[..].try_into()?),
        None => 0,
    };
    if offset > 0 {
        println!("   resuming the source at event {offset}");
    }
    let (total, large, histogram) = (0, 1, 2);
    let mut buf = Vec::new();
    let mut in_flight: Vec<
        std::thread::JoinHandle<statebackend::Result<statebackend::CompletedSnapshot>>,
    > = Vec::new();
    let mut checkpoint_id = instances[0]
        .retained_checkpoints()
        .last()
        .copied()
        .unwrap_or(0);

    for i in offset..EVENTS {
        if crash_at == Some(i) {
            println!("   event {i}: crash!");
            // SIGKILL ourselves: no destructors, no flushing, like a lost machine.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        let (user, amount) = event(i);
        let key = user.to_be_bytes();
        let kg = key_group_for_hash(user as i32, MAX_PARALLELISM)?;
        let b = &mut instances[operator_for_key_group(MAX_PARALLELISM, PARALLELISM, kg)? as usize];
        let sum = if b.value_get(total, kg, &key, b"", &mut buf)? {
            u64::from_le_bytes(buf[..].try_into()?)
        } else {
            0
        };
        b.value_put(total, kg, &key, b"", &(sum + amount as u64).to_le_bytes())?;
        if amount >= 90 {
            b.list_add(large, kg, &key, b"", &amount.to_le_bytes())?;
        }
        let bucket = [(amount / 10) as u8];
        let n = if b.map_get(histogram, kg, &key, b"", &bucket, &mut buf)? {
            u64::from_le_bytes(buf[..].try_into()?)
        } else {
            0
        };
        b.map_put(histogram, kg, &key, b"", &bucket, &(n + 1).to_le_bytes())?;

        if (i + 1) % CHECKPOINT_EVERY == 0 {
            // Wait for the previous checkpoint's asynchronous phase, then start the next.
            for h in in_flight.drain(..) {
                h.join().map_err(|_| "snapshot thread panicked")??;
            }
            checkpoint_id += 1;
            let start = Instant::now();
            let mut pending = Vec::new();
            for b in &mut instances {
                b.operator_state()
                    .update("source-offset", &[(i + 1).to_le_bytes()])?;
                pending.push(b.snapshot(checkpoint_id)?);
            }
            let sync = start.elapsed();
            let id = checkpoint_id;
            for p in pending {
                in_flight.push(std::thread::spawn(move || {
                    let start = Instant::now();
                    let done = p.write()?;
                    println!(
                        "   checkpoint {id} ({}): {} KiB written in {:.1} ms, synchronous phase {} µs",
                        done.manifest.key_group_range,
                        done.bytes_written / 1024,
                        start.elapsed().as_secs_f64() * 1e3,
                        sync.as_micros()
                    );
                    Ok(done)
                }));
            }
        }
    }
    for h in in_flight.drain(..) {
        h.join().map_err(|_| "snapshot thread panicked")??;
    }

    // Emit the result: one line per user.
    let mut out = String::new();
    for b in &instances {
        for k in b.keys(total, b"")? {
            let k = k?;
            b.value_get(total, k.key_group, &k.key, b"", &mut buf)?;
            let sum = u64::from_le_bytes(buf[..].try_into()?);
            let large_amounts: Vec<String> = b
                .list_get(large, k.key_group, &k.key, b"")?
                .unwrap_or_default()
                .iter()
                .map(|e| u32::from_le_bytes(e[..].try_into().unwrap()).to_string())
                .collect();
            let hist: Vec<String> = b
                .map_entries(histogram, k.key_group, &k.key, b"")?
                .iter()
                .map(|(b, n)| format!("{}:{}", b[0], u64::from_le_bytes(n[..].try_into().unwrap())))
                .collect();
            out.push_str(&format!(
                "{} {} {} {}\n",
                u32::from_be_bytes(k.key[..].try_into()?),
                sum,
                large_amounts.join(","),
                hist.join(",")
            ));
        }
    }
    std::fs::write(dir.join("result.txt"), out)?;
    println!("   run complete: {} events processed", EVENTS - offset);
    Ok(())
}

fn read_result(path: &PathBuf) -> std::result::Result<Result, Box<dyn std::error::Error>> {
    let mut r = Result::new();
    for line in std::fs::read_to_string(path)?.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let large = f[2]
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<std::result::Result<Vec<u32>, _>>()?;
        let mut hist = BTreeMap::new();
        for pair in f[3].split(',').filter(|s| !s.is_empty()) {
            let (b, n) = pair.split_once(':').ok_or("bad histogram")?;
            hist.insert(b.parse()?, n.parse()?);
        }
        r.insert(f[0].parse()?, (f[1].parse()?, large, hist));
    }
    Ok(r)
}
