//! Incremental RocksDB snapshots whose files the caller stores (how the Flink bridge
//! writes `IncrementalRemoteKeyedStateHandle`s): upload or reuse each file, write the
//! meta stream, restore from the stored files, with rescaling, and reject missing or
//! corrupted files with the file and offset.

mod common;

use common::{config, dump};
use statebackend::checkpoint_storage::source::BytesSource;
use statebackend::{BackendKind, Config, Error, SnapshotHandle, StateBackend, StateKind};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const MAX_PAR: u32 = 32;

fn rocksdb(dir: &Path, index: u32, parallelism: u32) -> Config {
    config(BackendKind::RocksDb, dir, MAX_PAR, index, parallelism)
}

/// A backend whose snapshots the caller stores (no checkpoint storage of its own).
fn open(config: Config, handles: &[SnapshotHandle]) -> StateBackend {
    StateBackend::restore_with_storage(config, None, handles).unwrap()
}

/// What a caller keeps of one stored snapshot.
#[derive(Clone, Default)]
struct Stored {
    meta: Vec<u8>,
    /// File name → stored bytes.
    files: BTreeMap<String, Vec<u8>>,
    /// Shared file name → its upload record.
    records: BTreeMap<String, Vec<u8>>,
    uploaded_bytes: u64,
}

/// Takes an incremental snapshot and stores it, reusing `previous`'s shared files.
fn store(b: &mut StateBackend, id: u64, previous: &Stored) -> Stored {
    let mut upload = b.incremental_snapshot(id).unwrap();
    let mut out = Stored::default();
    for shared in [true, false] {
        for name in upload.files(shared).unwrap() {
            if let Some(record) = previous.records.get(&name) {
                if upload.reuse(record).unwrap() {
                    out.files
                        .insert(name.clone(), previous.files[&name].clone());
                    out.records.insert(name, record.clone());
                    continue;
                }
            }
            let mut bytes = Vec::new();
            let record = upload.upload(&name, &mut bytes, &name).unwrap();
            out.uploaded_bytes += bytes.len() as u64;
            out.files.insert(name.clone(), bytes);
            if shared {
                out.records.insert(name, record);
            }
        }
    }
    let written = upload.finish(&mut out.meta, "meta").unwrap();
    assert_eq!(written.bytes_written, out.meta.len() as u64);
    out
}

fn source(name: &str, bytes: &[u8]) -> Arc<BytesSource> {
    Arc::new(BytesSource::new(
        name.to_string(),
        bytes.to_vec().into(),
        0,
        bytes.len(),
    ))
}

fn handle(s: &Stored) -> SnapshotHandle {
    SnapshotHandle::Files {
        meta: source("meta", &s.meta),
        files: s
            .files
            .iter()
            .map(|(n, b)| (n.clone(), source(&format!("stored {n}"), b) as _))
            .collect(),
    }
}

#[test]
fn chain_reuses_shared_files_and_restores_each_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = open(rocksdb(dir.path(), 0, 1), &[]);
    common::write_round(&mut b, 3000, 0, 100);
    let first = store(&mut b, 1, &Stored::default());
    let expected_first = dump(std::slice::from_ref(&b));
    common::write_round(&mut b, 3000, 1, 100);
    let second = store(&mut b, 2, &first);
    let expected_second = dump(std::slice::from_ref(&b));

    // The second checkpoint refers to the first one's SST files and uploads less.
    let reused: Vec<_> = second
        .records
        .iter()
        .filter(|(n, r)| first.records.get(*n) == Some(r))
        .collect();
    assert!(!reused.is_empty(), "no shared file reused");
    assert!(second.uploaded_bytes < first.uploaded_bytes);

    for (stored, expected) in [(&first, &expected_first), (&second, &expected_second)] {
        let dir = tempfile::tempdir().unwrap();
        let restored = open(rocksdb(dir.path(), 0, 1), &[handle(stored)]);
        assert_eq!(&dump(&[restored]), expected);
    }
    // Any backend restores it.
    let dir2 = tempfile::tempdir().unwrap();
    let heap = open(
        config(BackendKind::Fs, dir2.path(), MAX_PAR, 0, 1),
        &[handle(&second)],
    );
    assert_eq!(dump(&[heap]), expected_second);
}

#[test]
fn rescale_one_to_three_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = open(rocksdb(dir.path(), 0, 1), &[]);
    common::write_round(&mut b, 2000, 0, 1);
    let stored = store(&mut b, 7, &Stored::default());
    let expected = dump(std::slice::from_ref(&b));

    let three: Vec<StateBackend> = (0..3)
        .map(|i| {
            open(
                rocksdb(&dir.path().join(format!("p{i}")), i, 3),
                &[handle(&stored)],
            )
        })
        .collect();
    assert_eq!(dump(&three), expected);
    let mut three = three;
    let parts: Vec<Stored> = three
        .iter_mut()
        .map(|b| store(b, 8, &Stored::default()))
        .collect();
    let one = open(
        rocksdb(&dir.path().join("back"), 0, 1),
        &parts.iter().map(handle).collect::<Vec<_>>(),
    );
    assert_eq!(dump(&[one]), expected);
}

#[test]
fn every_file_must_be_stored_and_reuse_checks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = open(rocksdb(dir.path(), 0, 1), &[]);
    common::write_round(&mut b, 500, 0, 1);
    let first = store(&mut b, 1, &Stored::default());

    // Leaving a file out fails the snapshot instead of writing an unrestorable one.
    let mut upload = b.incremental_snapshot(2).unwrap();
    let names = upload.files(false).unwrap();
    assert!(!names.is_empty());
    let err = upload.finish(&mut Vec::new(), "meta").unwrap_err();
    assert!(
        err.to_string().contains("neither uploaded nor reused"),
        "{err}"
    );

    // A record whose file is not in this checkpoint, or garbage, is not reused.
    let mut upload = b.incremental_snapshot(3).unwrap();
    let mut record = first.records.values().next().unwrap().clone();
    assert!(upload.reuse(&record).unwrap());
    let last = record.len() - 1;
    record.truncate(last / 2);
    assert!(upload.reuse(&record).is_err());
    assert!(upload
        .upload("no-such-file.sst", &mut Vec::new(), "x")
        .is_err());

    // Not a RocksDB backend.
    let mut heap = open(config(BackendKind::Fs, dir.path(), MAX_PAR, 0, 1), &[]);
    let err = heap.incremental_snapshot(1).err().unwrap();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[test]
fn missing_or_corrupted_files_fail_the_restore_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = open(rocksdb(dir.path(), 0, 1), &[]);
    // Values that do not compress, so the SST file spans several checksum chunks.
    let v = b.register_state("v", StateKind::Value, b"").unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for k in 0..3000u32 {
        let value: Vec<u8> = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        b.value_put(
            v,
            common::kg_of(k as i32, MAX_PAR),
            &k.to_be_bytes(),
            b"",
            &value,
        )
        .unwrap();
    }
    let stored = store(&mut b, 1, &Stored::default());
    let (sst, bytes) = stored
        .files
        .iter()
        .filter(|(n, _)| n.ends_with(".sst"))
        .max_by_key(|(_, b)| b.len())
        .unwrap();
    assert!(bytes.len() > 1 << 20, "SST of {} bytes", bytes.len());

    let restore = |s: &Stored| {
        let dir = tempfile::tempdir().unwrap();
        match StateBackend::restore_with_storage(rocksdb(dir.path(), 0, 1), None, &[handle(s)]) {
            Ok(_) => panic!("restore must fail"),
            Err(e) => e,
        }
    };

    let mut missing = stored.clone();
    missing.files.remove(sst);
    let err = restore(&missing).to_string();
    assert!(
        err.contains(sst.as_str()) && err.contains("not handed over"),
        "{err}"
    );

    let mut flipped = stored.clone();
    let offset = (1 << 20) + 12345;
    flipped.files.get_mut(sst).unwrap()[offset] ^= 0x40;
    match restore(&flipped) {
        Error::Corrupted { file, offset, .. } => {
            assert_eq!(file, format!("stored {sst}"));
            assert_eq!(
                offset,
                1 << 20,
                "the checksum chunk holding the flipped byte"
            );
        }
        other => panic!("{other}"),
    }

    let mut truncated = stored.clone();
    truncated.files.get_mut(sst).unwrap().pop();
    assert!(matches!(restore(&truncated), Error::Corrupted { .. }));

    let mut bad_meta = stored.clone();
    let n = bad_meta.meta.len();
    bad_meta.meta[n / 2] ^= 1;
    match restore(&bad_meta) {
        Error::Corrupted { file, .. } => assert_eq!(file, "meta"),
        other => panic!("{other}"),
    }
}
