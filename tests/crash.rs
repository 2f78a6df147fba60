//! Crash consistency: a snapshot cut off at any point — a writer failing at byte N,
//! or a process killed mid-write — leaves the previous checkpoint restorable and no
//! partial checkpoint visible.

mod common;

use common::CrashingStorage;
use common::{config, dump};
use statebackend::checkpoint_storage::file::FileStorage;
use statebackend::{BackendKind, SnapshotHandle, StateBackend, StateKind};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

fn fill(b: &mut StateBackend, round: u8, n: i32) {
    let v = b.register_state("v", StateKind::Value, b"").unwrap();
    let l = b.register_state("l", StateKind::List, b"").unwrap();
    for k in 0..n {
        let kg = common::kg_of(k, 16);
        b.value_put(v, kg, &k.to_be_bytes(), b"", &[round; 40])
            .unwrap();
        b.list_add(l, kg, &k.to_be_bytes(), b"", &[round]).unwrap();
    }
}

#[test]
fn writer_failing_at_every_byte_keeps_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("checkpoints");
    let cfg = config(BackendKind::Fs, dir.path(), 16, 0, 1).with_retained_checkpoints(1);

    // Checkpoint 1 completes normally.
    let mut b = StateBackend::open(cfg.clone()).unwrap();
    fill(&mut b, 1, 300);
    b.checkpoint(1).unwrap();
    let at_one = dump(std::slice::from_ref(&b));

    // Size of a full checkpoint 2, written to a scratch directory, to place the cuts.
    let probe_dir = tempfile::tempdir().unwrap();
    let full_len = {
        let mut probe = StateBackend::restore_with_storage(
            cfg.clone(),
            Some(Arc::new(FileStorage::new(probe_dir.path()))),
            &SnapshotHandle::latest(&format!("file://{}", root.display())).unwrap(),
        )
        .unwrap();
        fill(&mut probe, 2, 300);
        probe.checkpoint(2).unwrap().bytes_written
    };

    let cuts: Vec<u64> = (0..full_len)
        .step_by((full_len as usize / 200).max(1))
        .chain([full_len - 1])
        .collect();
    for cut in cuts {
        let storage = CrashingStorage {
            inner: FileStorage::new(&root),
            budget: Arc::new(AtomicU64::new(cut)),
        };
        let mut crashing = StateBackend::restore_with_storage(
            cfg.clone(),
            Some(Arc::new(storage)),
            &SnapshotHandle::latest(&format!("file://{}", root.display())).unwrap(),
        )
        .unwrap();
        fill(&mut crashing, 2, 300);
        assert!(
            crashing.snapshot(2).unwrap().write().is_err(),
            "cut at {cut}"
        );

        // What a restarted job sees: checkpoint 1, intact.
        let latest = SnapshotHandle::latest(&format!("file://{}", root.display())).unwrap();
        assert_eq!(latest.len(), 1, "cut at {cut}");
        let SnapshotHandle::Manifest(path) = &latest[0] else {
            panic!()
        };
        assert!(
            path.starts_with(root.join("chk-1")),
            "cut at {cut}: {}",
            path.display()
        );
        let restored = StateBackend::restore(cfg.clone(), &latest).unwrap();
        assert_eq!(dump(&[restored]), at_one, "cut at {cut}");
    }
}

/// The child half of `killed_process_keeps_previous_checkpoint`: checkpoints forever.
#[test]
fn crash_child_process() {
    let Ok(dir) = std::env::var("STATEBACKEND_CRASH_CHILD_DIR") else {
        return; // Only does something when started by the parent test.
    };
    let dir = Path::new(&dir);
    let cfg = config(BackendKind::Fs, dir, 16, 0, 1).with_retained_checkpoints(2);
    let mut b = StateBackend::restore(
        cfg,
        &SnapshotHandle::latest(&format!("file://{}", dir.join("checkpoints").display())).unwrap(),
    )
    .unwrap();
    let mut id = b.retained_checkpoints().last().copied().unwrap_or(0);
    loop {
        id += 1;
        // Every value of checkpoint `id` is `id`: a restore must see one id throughout.
        fill(&mut b, id as u8, 20_000);
        b.checkpoint(id).unwrap();
        std::fs::write(dir.join("progress"), id.to_string()).unwrap();
    }
}

#[test]
fn killed_process_keeps_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("checkpoints");
    let exe = std::env::current_exe().unwrap();
    let mut seen_ids = std::collections::BTreeSet::new();
    for round in 0..8u64 {
        let progress = dir.path().join("progress");
        let _ = std::fs::remove_file(&progress);
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "crash_child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("STATEBACKEND_CRASH_CHILD_DIR", dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Let it complete at least one checkpoint, then kill it at a varying instant.
        let start = std::time::Instant::now();
        while !progress.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "child made no progress"
            );
            if let Some(status) = child.try_wait().unwrap() {
                panic!("child exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(7 + round * 13));
        child.kill().unwrap(); // SIGKILL: no destructors, no cleanup.
        child.wait().unwrap();

        let latest = SnapshotHandle::latest(&format!("file://{}", root.display())).unwrap();
        assert_eq!(latest.len(), 1);
        let restored =
            StateBackend::restore(config(BackendKind::Fs, dir.path(), 16, 0, 1), &latest)
                .expect("the newest visible checkpoint restores");
        let values = dump(&[restored]);
        let ids: std::collections::BTreeSet<u8> = values
            .values()
            .map(|v| match v {
                common::DumpValue::Value(v) => v[0],
                common::DumpValue::List(l) => l.last().unwrap()[0],
                common::DumpValue::Map(_) => unreachable!(),
            })
            .collect();
        assert_eq!(ids.len(), 1, "a restore mixes checkpoints: {ids:?}");
        assert_eq!(values.len(), 40_000);
        seen_ids.extend(ids);
    }
    assert!(
        seen_ids.len() > 1,
        "the child never got past one checkpoint: {seen_ids:?}"
    );
}
