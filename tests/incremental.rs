//! Incremental RocksDB checkpoints: only new SST files are uploaded, shared files
//! are reference-counted across retained checkpoints, restores (with rescaling)
//! work from any retained checkpoint, and crashes and corruption are handled.

mod common;
#[path = "../examples/support/values.rs"]
mod values;

use common::{config, dump, CrashingStorage};
use statebackend::checkpoint_storage::file::FileStorage;
use statebackend::snapshot::manifest::{FileLocation, KeyedData};
use statebackend::{BackendKind, Config, Error, SnapshotHandle, StateBackend};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

const MAX_PAR: u32 = 32;

fn incremental(dir: &Path, index: u32, parallelism: u32) -> Config {
    config(BackendKind::RocksDb, dir, MAX_PAR, index, parallelism)
        .with_incremental(true)
        .with_retained_checkpoints(3)
}

fn shared_files(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let shared = root.join("shared");
    if let Ok(dirs) = std::fs::read_dir(&shared) {
        for d in dirs.flatten() {
            for f in std::fs::read_dir(d.path()).unwrap().flatten() {
                out.insert(f.path());
            }
        }
    }
    out
}

fn referenced(handle: &SnapshotHandle, root: &Path) -> BTreeSet<PathBuf> {
    let SnapshotHandle::Manifest(path) = handle else {
        panic!()
    };
    let bytes = std::fs::read(path).unwrap();
    let (m, _) = statebackend::snapshot::manifest::Manifest::decode(&bytes, "m").unwrap();
    let KeyedData::Files(files) = m.keyed else {
        panic!("not incremental")
    };
    files
        .files
        .iter()
        .filter_map(|f| match &f.location {
            FileLocation::Shared(n) => Some(root.join("shared").join(n)),
            FileLocation::Private(_) => None,
        })
        .collect()
}

#[test]
fn chain_of_checkpoints_with_retention() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("checkpoints");
    let mut b = StateBackend::open(incremental(dir.path(), 0, 1)).unwrap();
    let mut handles = Vec::new();
    let (mut uploaded, mut full) = (0u64, 0u64);
    for r in 0..12u32 {
        common::write_round(&mut b, 20_000, r, 100);
        let done = b.checkpoint(u64::from(r) + 1).unwrap();
        assert!(done.bytes_written <= done.full_size);
        if r > 0 {
            uploaded += done.bytes_written;
            full += done.full_size;
        }
        handles.push((done.handle, dump(std::slice::from_ref(&b))));
    }
    // Compactions rewrite files now and then, but most bytes are shared.
    assert!(uploaded * 2 < full, "uploaded {uploaded} of {full} bytes");
    assert_eq!(b.retained_checkpoints(), vec![10, 11, 12]);
    // Exactly the shared files the retained checkpoints refer to remain.
    let needed: BTreeSet<PathBuf> = handles[9..]
        .iter()
        .flat_map(|(h, _)| referenced(h, &root))
        .collect();
    assert_eq!(shared_files(&root), needed);
    for (h, expected) in &handles[9..] {
        let r =
            StateBackend::restore(incremental(dir.path(), 0, 1), std::slice::from_ref(h)).unwrap();
        assert_eq!(&dump(&[r]), expected);
    }
    // Older ones are gone entirely.
    assert!(StateBackend::restore(
        incremental(dir.path(), 0, 1),
        std::slice::from_ref(&handles[8].0)
    )
    .is_err());
}

#[test]
fn rescale_one_to_three_to_two() {
    let dir = tempfile::tempdir().unwrap();
    let mut one = StateBackend::open(incremental(dir.path(), 0, 1)).unwrap();
    common::write_round(&mut one, 5_000, 0, 1);
    common::write_round(&mut one, 5_000, 1, 7);
    let h1 = one.checkpoint(1).unwrap().handle;
    let expected = dump(&[one]);

    let mut three: Vec<StateBackend> = (0..3)
        .map(|i| {
            StateBackend::restore(incremental(dir.path(), i, 3), std::slice::from_ref(&h1)).unwrap()
        })
        .collect();
    assert_eq!(dump(&three), expected);
    for b in &mut three {
        common::write_round(b, 5_000, 2, 5);
    }
    let expected = dump(&three);
    let h3: Vec<SnapshotHandle> = three
        .iter_mut()
        .map(|b| b.checkpoint(2).unwrap().handle)
        .collect();

    let two: Vec<StateBackend> = (0..2)
        .map(|i| StateBackend::restore(incremental(dir.path(), i, 2), &h3).unwrap())
        .collect();
    assert_eq!(dump(&two), expected);
    // Incremental checkpoints restore into the other backends too.
    for kind in [BackendKind::Memory, BackendKind::Fs] {
        let r = StateBackend::restore(config(kind, dir.path(), MAX_PAR, 0, 1), &h3).unwrap();
        assert_eq!(dump(&[r]), expected, "{kind:?}");
    }
}

#[test]
fn crash_during_upload_keeps_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("checkpoints");
    let cfg = incremental(dir.path(), 0, 1).with_retained_checkpoints(1);
    let mut b = StateBackend::open(cfg.clone()).unwrap();
    common::write_round(&mut b, 10_000, 0, 1);
    let first = b.checkpoint(1).unwrap();
    let expected = dump(std::slice::from_ref(&b));
    let needed = referenced(&first.handle, &root);
    drop(b);

    for budget in [0u64, 100, 5_000, 50_000, 200_000, 400_000] {
        let storage = CrashingStorage {
            inner: FileStorage::new(&root),
            budget: Arc::new(AtomicU64::new(budget)),
        };
        let latest = SnapshotHandle::latest(&format!("file://{}", root.display())).unwrap();
        let mut b =
            StateBackend::restore_with_storage(cfg.clone(), Some(Arc::new(storage)), &latest)
                .unwrap();
        common::write_round(&mut b, 10_000, 1, 3);
        if b.checkpoint(2).is_ok() {
            continue; // The budget was enough: nothing to check.
        }
        drop(b);
        // No shared file of checkpoint 1 was deleted; the restart restores it.
        assert!(needed.iter().all(|p| p.exists()), "budget {budget}");
        let latest = SnapshotHandle::latest(&format!("file://{}", root.display())).unwrap();
        assert_eq!(latest.len(), 1);
        let SnapshotHandle::Manifest(p) = &latest[0] else {
            panic!()
        };
        assert!(p.starts_with(root.join("chk-1")), "budget {budget}");
        let r = StateBackend::restore(cfg.clone(), &latest).unwrap();
        assert_eq!(dump(&[r]), expected, "budget {budget}");
        // Opening again cleaned up what the interrupted upload left in shared/.
        assert_eq!(shared_files(&root), needed, "budget {budget}");
    }
}

#[test]
fn corrupted_sst_or_manifest_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("checkpoints");
    let mut b = StateBackend::open(incremental(dir.path(), 0, 1)).unwrap();
    common::write_round(&mut b, 10_000, 0, 1);
    let h = b.checkpoint(1).unwrap().handle;
    let sst = referenced(&h, &root)
        .into_iter()
        .next()
        .expect("an SST file");
    let original = std::fs::read(&sst).unwrap();

    let mut bad = original.clone();
    let pos = bad.len() / 2;
    bad[pos] ^= 0x40;
    std::fs::write(&sst, &bad).unwrap();
    let err =
        StateBackend::restore(incremental(dir.path(), 0, 1), std::slice::from_ref(&h)).unwrap_err();
    match &err {
        Error::Corrupted { file, offset, .. } => {
            assert_eq!(file, &sst.display().to_string());
            assert!(*offset <= pos as u64);
        }
        other => panic!("expected corruption, got {other}"),
    }
    std::fs::write(&sst, &original[..original.len() - 1]).unwrap();
    assert!(matches!(
        StateBackend::restore(incremental(dir.path(), 0, 1), std::slice::from_ref(&h)),
        Err(Error::Corrupted { .. })
    ));
    std::fs::write(&sst, &original).unwrap();

    let SnapshotHandle::Manifest(manifest) = &h else {
        panic!()
    };
    let original = std::fs::read(manifest).unwrap();
    let mut bad = original.clone();
    bad[30] ^= 1;
    std::fs::write(manifest, &bad).unwrap();
    let err =
        StateBackend::restore(incremental(dir.path(), 0, 1), std::slice::from_ref(&h)).unwrap_err();
    assert!(
        err.to_string().contains("manifest checksum mismatch"),
        "{err}"
    );
    std::fs::write(manifest, &original).unwrap();
    StateBackend::restore(incremental(dir.path(), 0, 1), std::slice::from_ref(&h)).unwrap();
}

/// `state.backend.rocksdb.incremental.compaction-wait` (30 s by default): after a bulk
/// load of 512 MiB (1 KiB incompressible values, 2 key groups), the first checkpoint
/// finds RocksDB far behind with its compactions and lets them finish before it links
/// its files, so the next checkpoints, each after 1% of the keys changed, upload about
/// that 1% (5 MiB) instead of the compactions' outputs (244 MiB for the second one with
/// `compaction-wait: 0`, measured with `examples/incremental_probe.rs`). With default
/// options.
#[test]
fn compaction_wait_keeps_later_checkpoints_to_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::rocksdb(&format!("file://{}", dir.path().join("ckpt").display()))
        .unwrap()
        .with_local_dir(dir.path().join("local"))
        .with_max_parallelism(2)
        .unwrap()
        .with_incremental(true)
        .with_retained_checkpoints(2);
    for metric in ["estimate-pending-compaction-bytes", "total-sst-files-size"] {
        config
            .set_rocksdb_option(&format!("state.backend.rocksdb.metrics.{metric}"), "true")
            .unwrap();
    }
    let mut b = StateBackend::open(config).unwrap();
    let s = b
        .register_state("v", statebackend::StateKind::Value, b"")
        .unwrap();
    let keys = 512 * 1024u64;
    let put = |b: &mut StateBackend, k: u64, round: u64| {
        let kg = statebackend::keygroup::key_group_for_hash(k as i32, 2).unwrap();
        b.value_put(s, kg, &k.to_be_bytes(), b"", &values::value(k, round))
            .unwrap();
    };
    for k in 0..keys {
        put(&mut b, k, 0);
    }
    let first = b.checkpoint(1).unwrap();
    assert!(first.bytes_written > 500 << 20, "{}", first.bytes_written);
    // The checkpoint waited for the load's compactions: RocksDB has caught up.
    let m = b.metrics();
    let property = |name: &str| {
        let i = m.properties.iter().position(|p| p == name).unwrap();
        m.states[s as usize].properties[i].unwrap()
    };
    let pending = property("rocksdb.estimate-pending-compaction-bytes");
    let sst = property("rocksdb.total-sst-files-size");
    assert!(
        pending * 4 < sst,
        "{} MiB of compactions pending in {} MiB of files after the first checkpoint",
        pending >> 20,
        sst >> 20
    );
    for id in 2..=4u64 {
        for k in (0..keys).step_by(100) {
            put(&mut b, k, id);
        }
        let done = b.checkpoint(id).unwrap();
        // 1% of 512 MiB is 5.1 MiB of values.
        assert!(
            done.bytes_written < 16 << 20,
            "checkpoint {id} uploaded {} MiB",
            done.bytes_written >> 20
        );
    }
}
