//! Behaviour of the public API: registration, misuse, limits, retention, operator
//! state, cross-backend restore.

mod common;

use common::{backends, config, dump};
use statebackend::{
    BackendKind, Config, Distribution, Error, SnapshotHandle, StateBackend, StateKind,
};

#[test]
fn registering_a_name_with_another_kind_fails() {
    let mut b = StateBackend::open(Config::memory()).unwrap();
    let id = b.register_state("s", StateKind::Value, b"m1").unwrap();
    assert_eq!(b.register_state("s", StateKind::Value, b"m2").unwrap(), id);
    assert_eq!(b.state("s").unwrap().metadata, b"m2");
    let err = b.register_state("s", StateKind::List, b"").unwrap_err();
    assert!(
        err.to_string().contains("registered as value state"),
        "{err}"
    );
    assert!(b.register_state("", StateKind::Value, b"").is_err());
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let mut b = StateBackend::open(
        Config::memory()
            .with_max_parallelism(16)
            .unwrap()
            .with_key_group_range(statebackend::KeyGroupRange::new(4, 7).unwrap()),
    )
    .unwrap();
    let v = b.register_state("v", StateKind::Value, b"").unwrap();
    let l = b.register_state("l", StateKind::List, b"").unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        b.value_put(v, 3, b"k", b"", b"x"),
        Err(Error::KeyGroupOutOfRange { key_group: 3, .. })
    ));
    assert!(b.value_get(v, 8, b"k", b"", &mut out).is_err());
    assert!(
        b.list_add(v, 4, b"k", b"", b"x").is_err(),
        "list op on a value state"
    );
    assert!(
        b.value_get(l, 4, b"k", b"", &mut out).is_err(),
        "value op on a list state"
    );
    assert!(
        b.value_get(99, 4, b"k", b"", &mut out).is_err(),
        "unknown state id"
    );
    assert!(
        b.list_add_encoded(l, 4, b"k", b"", &[9, 1]).is_err(),
        "malformed list"
    );
    let err = b
        .merge_namespaces(v, 4, b"k", b"t", &[b"a"], None)
        .unwrap_err();
    assert!(err.to_string().contains("reduce"), "{err}");
}

#[test]
fn memory_backend_limit_fails_the_checkpoint_clearly() {
    let mut b = StateBackend::open(Config::memory().with_max_state_size(10_000)).unwrap();
    let v = b.register_state("big", StateKind::Value, b"").unwrap();
    b.value_put(v, 0, b"a", b"", &[1; 100]).unwrap();
    let good = b.checkpoint(1).unwrap();
    let before = dump(std::slice::from_ref(&b));

    b.value_put(v, 1, b"b", b"", &[2; 20_000]).unwrap();
    let err = b.checkpoint(2).unwrap_err();
    match &err {
        Error::StateTooLarge {
            checkpoint_id,
            state,
            size,
            limit,
        } => {
            assert_eq!((*checkpoint_id, state.as_str(), *limit), (2, "big", 10_000));
            assert!(*size > 10_000);
        }
        other => panic!("expected StateTooLarge, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("'big'") && msg.contains("10000"), "{msg}");

    // The live state is untouched and the earlier checkpoint still restores.
    let mut out = Vec::new();
    assert!(b.value_get(v, 1, b"b", b"", &mut out).unwrap());
    let restored = StateBackend::restore(Config::memory(), &[good.handle]).unwrap();
    assert_eq!(dump(&[restored]), before);
    // Once the state shrinks, checkpoints succeed again.
    b.value_delete(v, 1, b"b", b"").unwrap();
    b.checkpoint(3).unwrap();
}

#[test]
fn restore_with_other_max_parallelism_fails() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = StateBackend::open(config(kind, dir.path(), 128, 0, 1)).unwrap();
        b.register_state("v", StateKind::Value, b"").unwrap();
        let done = b.checkpoint(1).unwrap();
        let err =
            StateBackend::restore(config(kind, dir.path(), 256, 0, 1), &[done.handle]).unwrap_err();
        assert!(matches!(err, Error::Restore(_)), "{err}");
        assert!(err.to_string().contains("max parallelism 128"), "{err}");
    }
}

#[test]
fn overlapping_snapshots_are_rejected() {
    let mut b = StateBackend::open(Config::memory()).unwrap();
    b.register_state("v", StateKind::Value, b"").unwrap();
    let one = b.checkpoint(1).unwrap().handle;
    let two = b.checkpoint(2).unwrap().handle;
    let err = StateBackend::restore(Config::memory(), &[one, two]).unwrap_err();
    assert!(err.to_string().contains("overlap"), "{err}");
}

#[test]
fn metadata_survives_restore() {
    let mut b = StateBackend::open(Config::memory()).unwrap();
    b.register_state("v", StateKind::Value, b"serializer-v1")
        .unwrap();
    let done = b.checkpoint(1).unwrap();
    let r = StateBackend::restore(Config::memory(), &[done.handle]).unwrap();
    let info = r.state("v").unwrap();
    assert_eq!(
        (info.kind, info.metadata.as_slice()),
        (StateKind::Value, &b"serializer-v1"[..])
    );
}

#[test]
fn retention_keeps_the_newest_n() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(BackendKind::Fs, dir.path(), 8, 0, 1).with_retained_checkpoints(3);
    let mut b = StateBackend::open(cfg.clone()).unwrap();
    let v = b.register_state("v", StateKind::Value, b"").unwrap();
    let mut handles = Vec::new();
    for id in 1..=10u64 {
        b.value_put(v, 0, b"k", b"", &id.to_le_bytes()).unwrap();
        handles.push((id, b.checkpoint(id).unwrap().handle));
    }
    assert_eq!(b.retained_checkpoints(), vec![8, 9, 10]);
    let root = dir.path().join("checkpoints");
    let mut dirs: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    dirs.sort();
    assert_eq!(dirs, ["chk-10", "chk-8", "chk-9"]);
    for (id, h) in handles.into_iter().filter(|(id, _)| *id >= 8) {
        let r = StateBackend::restore(cfg.clone(), &[h]).unwrap();
        let mut out = Vec::new();
        assert!(r.value_get(v, 0, b"k", b"", &mut out).unwrap());
        assert_eq!(out, id.to_le_bytes());
    }
    // A reopened backend knows its retained checkpoints and keeps pruning.
    let latest = SnapshotHandle::latest(&format!("file://{}", root.display())).unwrap();
    let mut b = StateBackend::restore(cfg, &latest).unwrap();
    assert_eq!(b.retained_checkpoints(), vec![8, 9, 10]);
    b.checkpoint(11).unwrap();
    assert_eq!(b.retained_checkpoints(), vec![9, 10, 11]);
    assert!(!root.join("chk-8").exists());
}

#[test]
fn operator_state_redistribution() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut handles = Vec::new();
        for i in 0..2u32 {
            let mut b = StateBackend::open(config(kind, dir.path(), 16, i, 2)).unwrap();
            b.register_operator_state("offsets", Distribution::EvenSplit)
                .unwrap();
            b.register_operator_state("all", Distribution::Union)
                .unwrap();
            for e in 0..3u8 {
                b.operator_state().add("offsets", &[i as u8, e]).unwrap();
            }
            b.operator_state().add("all", &[i as u8]).unwrap();
            handles.push(b.checkpoint(1).unwrap().handle);
        }
        let mut split = Vec::new();
        for i in 0..4u32 {
            let mut r =
                StateBackend::restore(config(kind, dir.path(), 16, i, 4), &handles).unwrap();
            assert_eq!(r.operator_state().get("all").unwrap(), &[vec![0], vec![1]]);
            let part = r.operator_state().get("offsets").unwrap().to_vec();
            assert!(part.len() == 1 || part.len() == 2, "{part:?}");
            split.extend(part);
        }
        assert_eq!(
            split,
            vec![
                vec![0, 0],
                vec![0, 1],
                vec![0, 2],
                vec![1, 0],
                vec![1, 1],
                vec![1, 2]
            ]
        );
    }
}

#[test]
fn any_backend_restores_any_other() {
    let dir = tempfile::tempdir().unwrap();
    for from in backends() {
        for to in backends() {
            let mut b = StateBackend::open(config(from, dir.path(), 32, 0, 1)).unwrap();
            let m = b.register_state("m", StateKind::Map, b"").unwrap();
            for k in 0..50u8 {
                b.map_put(m, u32::from(k) % 32, &[k], b"ns", &[k, 1], &[k])
                    .unwrap();
            }
            let done = b.checkpoint(1).unwrap();
            let expected = dump(&[b]);
            let restored =
                StateBackend::restore(config(to, dir.path(), 32, 0, 1), &[done.handle]).unwrap();
            assert_eq!(dump(&[restored]), expected, "{from:?} -> {to:?}");
        }
    }
}

#[test]
fn latest_ignores_checkpoints_without_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(BackendKind::Fs, dir.path(), 8, 0, 1).with_retained_checkpoints(5);
    let mut b = StateBackend::open(cfg).unwrap();
    b.register_state("v", StateKind::Value, b"").unwrap();
    b.checkpoint(1).unwrap();
    let root = dir.path().join("checkpoints");
    // A later checkpoint whose data made it but whose manifest did not.
    std::fs::create_dir_all(root.join("chk-2")).unwrap();
    std::fs::write(root.join("chk-2/kg-0-7.123.data"), b"partial").unwrap();
    std::fs::write(
        root.join("chk-2/kg-0-7.manifest.inprogress-1-1"),
        b"partial",
    )
    .unwrap();
    let latest = SnapshotHandle::latest(&format!("file://{}", root.display())).unwrap();
    assert_eq!(latest.len(), 1);
    let SnapshotHandle::Manifest(p) = &latest[0] else {
        panic!()
    };
    assert!(p.starts_with(root.join("chk-1")));
}

#[test]
fn rocksdb_working_directory_is_removed_and_stale_ones_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    // A directory left by a crashed process (no such pid) and one of a live process (us).
    let stale = local.join("statebackend-rocksdb-2147483646-kg-0-7-1");
    let live = local.join(format!(
        "statebackend-rocksdb-{}-kg-0-7-2",
        std::process::id()
    ));
    std::fs::create_dir_all(stale.join("db")).unwrap();
    std::fs::create_dir_all(&live).unwrap();

    let b = StateBackend::open(config(BackendKind::RocksDb, dir.path(), 8, 0, 1)).unwrap();
    assert!(
        !stale.exists(),
        "a dead process's working directory is removed"
    );
    assert!(live.exists(), "a live process's working directory is kept");
    let dirs = statebackend::store::rocks::working_dirs(&local);
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    drop(b);
    assert_eq!(statebackend::store::rocks::working_dirs(&local), vec![live]);
}

#[test]
fn rocksdb_options_are_checked() {
    let base = [
        ("state.backend.type", "rocksdb"),
        ("state.checkpoints.dir", "file:///tmp/x"),
    ];
    let ok = Config::from_pairs(base.iter().copied().chain([
        (
            "state.backend.rocksdb.predefined-options",
            "FLASH_SSD_OPTIMIZED",
        ),
        ("state.backend.rocksdb.block.blocksize", "16 kb"),
        ("state.backend.rocksdb.memory.fixed-per-slot", "128 mb"),
        ("state.backend.rocksdb.writebuffer.count", "3"),
        ("state.backend.rocksdb.compaction.style", "UNIVERSAL"),
        (
            "state.backend.rocksdb.compression.per.level",
            "NO_COMPRESSION;LZ4_COMPRESSION;ZSTD_COMPRESSION",
        ),
        ("state.backend.rocksdb.write-cache.size", "64 mb"),
        ("state.backend.rocksdb.write-cache.dirty-size", "8 mb"),
    ]));
    assert!(ok.is_ok(), "{ok:?}");
    for (key, value, fragment) in [
        (
            "state.backend.rocksdb.block.sizee",
            "4kb",
            "unknown RocksDB option",
        ),
        (
            "state.backend.rocksdb.compaction.style",
            "SIDEWAYS",
            "LEVEL",
        ),
        (
            "state.backend.rocksdb.compression.per.level",
            "SNAPPY_COMPRESSION",
            "SNAPPY_COMPRESSION",
        ),
        (
            "state.backend.rocksdb.predefined-options",
            "FAST",
            "FLASH_SSD_OPTIMIZED",
        ),
        ("state.backend.rocksdb.writebuffer.count", "0", "1 to 64"),
        ("state.backend.rocksdb.write-cache.size", "lots", "lots"),
    ] {
        let msg = Config::from_pairs(base.iter().copied().chain([(key, value)]))
            .unwrap_err()
            .to_string();
        assert!(msg.contains(key) && msg.contains(fragment), "{msg}");
    }
}

#[test]
fn single_stream_snapshots_round_trip_and_rescale() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = StateBackend::open(config(kind, dir.path(), 16, 0, 1)).unwrap();
        let v = b.register_state("v", StateKind::Value, b"m").unwrap();
        for k in 0..300i32 {
            b.value_put(
                v,
                common::kg_of(k, 16),
                &k.to_le_bytes(),
                b"",
                &[k as u8; 3],
            )
            .unwrap();
        }
        b.register_operator_state("offsets", Distribution::EvenSplit)
            .unwrap();
        b.operator_state().update("offsets", &[b"a", b"b"]).unwrap();
        let mut bytes = Vec::new();
        let done = b
            .savepoint(5)
            .unwrap()
            .write_to(&mut bytes, "stream")
            .unwrap();
        assert_eq!(done.bytes_written, bytes.len() as u64);
        let expected = dump(&[b]);

        let handle = SnapshotHandle::stream_bytes("savepoint-5", bytes.clone());
        let parts: Vec<StateBackend> = (0..3)
            .map(|i| {
                StateBackend::restore(
                    config(kind, dir.path(), 16, i, 3),
                    std::slice::from_ref(&handle),
                )
                .unwrap()
            })
            .collect();
        assert_eq!(dump(&parts), expected, "{kind:?}");

        for pos in (0..bytes.len()).step_by(37) {
            let mut bad = bytes.clone();
            bad[pos] ^= 0x08;
            let r = StateBackend::restore(
                config(kind, dir.path(), 16, 0, 1),
                &[SnapshotHandle::stream_bytes("savepoint-5", bad)],
            );
            assert!(
                matches!(r, Err(Error::Corrupted { .. })),
                "{kind:?}: flip at {pos} not detected"
            );
        }
        for len in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            let r = StateBackend::restore(
                config(kind, dir.path(), 16, 0, 1),
                &[SnapshotHandle::stream_bytes(
                    "savepoint-5",
                    bytes[..len].to_vec(),
                )],
            );
            assert!(
                matches!(r, Err(Error::Corrupted { .. })),
                "{kind:?}: truncation to {len}"
            );
        }
    }
}

#[test]
fn memory_limit_applies_to_stream_snapshots() {
    let mut b = StateBackend::open(Config::memory().with_max_state_size(1000)).unwrap();
    let v = b.register_state("big", StateKind::Value, b"").unwrap();
    b.value_put(v, 0, b"k", b"", &[0; 2000]).unwrap();
    let err = b
        .snapshot(1)
        .unwrap()
        .write_to(&mut Vec::new(), "s")
        .unwrap_err();
    assert!(matches!(err, Error::StateTooLarge { .. }), "{err}");
}

#[test]
fn failing_reduce_leaves_state_unchanged() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = StateBackend::open(config(kind, dir.path(), 8, 0, 1)).unwrap();
        let v = b.register_state("v", StateKind::Value, b"").unwrap();
        for ns in [&b"a"[..], b"b", b"t"] {
            b.value_put(v, 1, b"k", ns, ns).unwrap();
        }
        let before = dump(std::slice::from_ref(&b));
        let mut calls = 0;
        let mut reduce = |x: &[u8], y: &[u8]| {
            calls += 1;
            if calls == 2 {
                Err(Error::InvalidArgument("reduce failed".into()))
            } else {
                Ok([x, y].concat())
            }
        };
        let err = b
            .merge_namespaces(v, 1, b"k", b"t", &[b"a", b"b"], Some(&mut reduce))
            .unwrap_err();
        assert!(err.to_string().contains("reduce failed"));
        assert_eq!(dump(&[b]), before, "{kind:?}");
    }
}

#[test]
fn stream_only_backends_need_no_checkpoint_directory_and_no_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [BackendKind::Fs, BackendKind::RocksDb] {
        let mut cfg = config(kind, dir.path(), 8, 0, 1).with_max_state_size(10);
        cfg.checkpoint_dir = None;
        assert!(
            StateBackend::open(cfg.clone()).is_err(),
            "open() needs the directory"
        );
        let mut b = StateBackend::restore_with_storage(cfg.clone(), None, &[]).unwrap();
        let l = b.register_state("l", StateKind::List, b"").unwrap();
        let mut encoded = Vec::new();
        for e in [&b"first"[..], &[7u8; 100]] {
            statebackend::codec::put_list_element(&mut encoded, e);
        }
        b.list_update_encoded(l, 3, b"k", b"", &encoded).unwrap();
        let mut bytes = Vec::new();
        b.snapshot(1)
            .unwrap()
            .write_to(&mut bytes, "stream")
            .unwrap();
        let handle = SnapshotHandle::stream_bytes("s", bytes);
        let r = StateBackend::restore_with_storage(cfg, None, &[handle]).unwrap();
        assert_eq!(
            r.list_get(l, 3, b"k", b"").unwrap().unwrap(),
            vec![b"first".to_vec(), vec![7u8; 100]],
            "{kind:?}"
        );
        b.list_update_encoded(l, 3, b"k", b"", &[]).unwrap();
        assert_eq!(b.list_get(l, 3, b"k", b"").unwrap(), None);
    }
}

#[test]
fn latest_skips_checkpoints_some_instance_did_not_finish() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("checkpoints");
    let url = format!("file://{}", root.display());
    let mut a = StateBackend::open(config(BackendKind::Fs, dir.path(), 8, 0, 2)).unwrap();
    let mut b = StateBackend::open(config(BackendKind::Fs, dir.path(), 8, 1, 2)).unwrap();
    for x in [&mut a, &mut b] {
        x.register_state("v", StateKind::Value, b"").unwrap();
        x.checkpoint(1).unwrap();
    }
    // Checkpoint 2: only the first instance finished before the "crash".
    a.checkpoint(2).unwrap();
    let latest = SnapshotHandle::latest(&url).unwrap();
    assert_eq!(latest.len(), 2);
    for h in &latest {
        let SnapshotHandle::Manifest(p) = h else {
            panic!()
        };
        assert!(p.starts_with(root.join("chk-1")), "{}", p.display());
    }
    // An instance owning only the first half can use checkpoint 2.
    let own = a.key_group_range();
    let mine = SnapshotHandle::latest_covering(&url, own).unwrap();
    assert_eq!(mine.len(), 1);
    let SnapshotHandle::Manifest(p) = &mine[0] else {
        panic!()
    };
    assert!(p.starts_with(root.join("chk-2")));
    // Once both finish, checkpoint 2 is the latest.
    b.checkpoint(2).unwrap();
    let latest = SnapshotHandle::latest(&url).unwrap();
    assert!(latest
        .iter()
        .all(|h| matches!(h, SnapshotHandle::Manifest(p) if p.starts_with(root.join("chk-2")))));
}

/// Drops values whose first byte is 0 and marks the kept ones, for state `only`.
struct DropZeroes {
    only: u32,
}

impl statebackend::snapshot::SnapshotFilter for DropZeroes {
    fn filters(&self, state: u32) -> bool {
        state == self.only
    }

    fn filter(&mut self, _state: u32, value: &[u8]) -> statebackend::Result<Option<Vec<u8>>> {
        Ok((value.first() != Some(&0)).then(|| [b"kept:".as_slice(), value].concat()))
    }
}

#[test]
fn snapshot_filters_drop_and_rewrite_values_list_elements_and_map_values() {
    for kind in backends() {
        for filtered in ["v", "l", "m"] {
            let dir = tempfile::tempdir().unwrap();
            let mut b = StateBackend::open(config(kind, dir.path(), 4, 0, 1)).unwrap();
            let v = b.register_state("v", StateKind::Value, b"").unwrap();
            let l = b.register_state("l", StateKind::List, b"").unwrap();
            let m = b.register_state("m", StateKind::Map, b"").unwrap();
            let kg = 1;
            b.value_put(v, kg, b"a", b"", &[0, 1]).unwrap();
            b.value_put(v, kg, b"b", b"", &[1, 1]).unwrap();
            for e in [[0u8, 1], [1, 2], [0, 3]] {
                b.list_add(l, kg, b"a", b"", &e).unwrap();
            }
            b.list_add(l, kg, b"b", b"", &[0, 9]).unwrap(); // all elements dropped
            b.map_put(m, kg, b"a", b"", b"x", &[0, 1]).unwrap();
            b.map_put(m, kg, b"a", b"", b"y", &[1, 1]).unwrap();
            let id = b.state(filtered).unwrap().id;
            let entries = b.num_entries().unwrap();
            let mut bytes = Vec::new();
            b.savepoint(1)
                .unwrap()
                .write_filtered_to(&mut bytes, "stream", &mut DropZeroes { only: id })
                .unwrap();
            // The live state is unchanged.
            assert_eq!(b.num_entries().unwrap(), entries, "{kind:?}");
            let r = StateBackend::restore(
                config(kind, dir.path(), 4, 0, 1),
                &[SnapshotHandle::stream_bytes("s", bytes)],
            )
            .unwrap();
            let mut out = Vec::new();
            let value = |key: &[u8], out: &mut Vec<u8>| {
                r.value_get(v, kg, key, b"", out)
                    .unwrap()
                    .then(|| out.clone())
            };
            let list = |key: &[u8]| r.list_get(l, kg, key, b"").unwrap();
            let map = |uk: &[u8], out: &mut Vec<u8>| {
                r.map_get(m, kg, b"a", b"", uk, out)
                    .unwrap()
                    .then(|| out.clone())
            };
            if filtered == "v" {
                assert_eq!(value(b"a", &mut out), None, "{kind:?}");
                assert_eq!(value(b"b", &mut out), Some(b"kept:\x01\x01".to_vec()));
            } else {
                assert_eq!(value(b"a", &mut out), Some(vec![0, 1]), "{kind:?}");
            }
            if filtered == "l" {
                assert_eq!(
                    list(b"a"),
                    Some(vec![b"kept:\x01\x02".to_vec()]),
                    "{kind:?}"
                );
                assert_eq!(list(b"b"), None, "{kind:?}: a list with no element left");
            } else {
                assert_eq!(list(b"a").unwrap().len(), 3, "{kind:?}");
                assert_eq!(list(b"b").unwrap().len(), 1, "{kind:?}");
            }
            if filtered == "m" {
                assert_eq!(map(b"x", &mut out), None, "{kind:?}");
                assert_eq!(map(b"y", &mut out), Some(b"kept:\x01\x01".to_vec()));
            } else {
                assert_eq!(map(b"x", &mut out), Some(vec![0, 1]), "{kind:?}");
            }
        }
    }
}

#[test]
fn map_put_all_writes_every_pair_or_nothing() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = StateBackend::open(config(kind, dir.path(), 4, 0, 1)).unwrap();
        let m = b.register_state("m", StateKind::Map, b"").unwrap();
        let v = b.register_state("v", StateKind::Value, b"").unwrap();
        let mut entries = Vec::new();
        for (uk, value) in [(&b"a"[..], &b"1"[..]), (b"b", b""), (b"a", b"2")] {
            statebackend::codec::put_list_element(&mut entries, uk);
            statebackend::codec::put_list_element(&mut entries, value);
        }
        b.map_put_all_encoded(m, 0, b"k", b"", &entries).unwrap();
        assert_eq!(
            b.map_entries(m, 0, b"k", b"").unwrap(),
            vec![
                (b"a".to_vec(), b"2".to_vec()),
                (b"b".to_vec(), b"".to_vec())
            ],
            "{kind:?}: pairs apply in order, the last of equal user keys wins"
        );
        // An odd number of fields, a truncated field, the wrong kind: nothing written.
        let mut odd = Vec::new();
        statebackend::codec::put_list_element(&mut odd, b"c");
        assert!(b.map_put_all_encoded(m, 0, b"k2", b"", &odd).is_err());
        assert!(b
            .map_put_all_encoded(m, 0, b"k2", b"", &entries[..entries.len() - 1])
            .is_err());
        assert!(b.map_put_all_encoded(v, 0, b"k2", b"", &entries).is_err());
        assert!(b.map_is_empty(m, 0, b"k2", b"").unwrap(), "{kind:?}");
    }
}

/// A full snapshot of the RocksDB backend lists each key group's entries in RocksDB's
/// key order, so restoring it into RocksDB writes sorted files that RocksDB ingests
/// whole: the memtable stays empty. A heap backend's snapshot (hash order) restores
/// to the same state through the entries that come out of order.
#[test]
fn rocksdb_restore_ingests_sorted_files() {
    let dir = tempfile::tempdir().unwrap();
    let memtables = "rocksdb.cur-size-all-mem-tables";
    for from in backends() {
        let mut b = StateBackend::open(config(from, &dir.path().join("from"), 32, 0, 1)).unwrap();
        let v = b.register_state("v", StateKind::Value, b"").unwrap();
        let m = b.register_state("m", StateKind::Map, b"").unwrap();
        for k in 0..20_000u32 {
            let kg = k % 32;
            b.value_put(v, kg, &k.to_be_bytes(), b"", &[7; 100])
                .unwrap();
            b.map_put(
                m,
                kg,
                &(k % 100).to_be_bytes(),
                b"ns",
                &k.to_le_bytes(),
                &[1; 10],
            )
            .unwrap();
        }
        let done = b.savepoint(1).unwrap().write().unwrap();
        let expected = dump(&[b]);
        let mut c = config(BackendKind::RocksDb, &dir.path().join("to"), 32, 0, 1);
        c.set_rocksdb_option(
            "state.backend.rocksdb.metrics.cur-size-all-mem-tables",
            "true",
        )
        .unwrap();
        let restored = StateBackend::restore(c, &[done.handle]).unwrap();
        let metrics = restored.metrics();
        let at = metrics
            .properties
            .iter()
            .position(|p| p == memtables)
            .unwrap();
        let in_memtables: u64 = metrics
            .states
            .iter()
            .map(|s| s.properties[at].unwrap())
            .sum();
        if from == BackendKind::RocksDb {
            // An empty memtable takes about 2 KiB per column family.
            assert!(in_memtables < 64 << 10, "{in_memtables} bytes in memtables");
        }
        assert_eq!(dump(&[restored]), expected, "{from:?} -> RocksDB");
    }
}
