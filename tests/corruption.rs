//! Flipped bits and truncation anywhere in a snapshot are detected on restore with
//! an error naming the file and offset: never a panic, never wrong state.

mod common;

use common::{config, dump};
use statebackend::{BackendKind, Error, SnapshotHandle, StateBackend, StateKind};
use std::path::{Path, PathBuf};

/// A backend with some of each kind of state, in many key groups.
fn populated(kind: BackendKind, dir: &Path) -> StateBackend {
    let mut b = StateBackend::open(config(kind, dir, 32, 0, 1)).unwrap();
    let v = b.register_state("v", StateKind::Value, b"meta-v").unwrap();
    let l = b.register_state("l", StateKind::List, b"").unwrap();
    let m = b.register_state("m", StateKind::Map, b"").unwrap();
    for k in 0..200i32 {
        let kg = common::kg_of(k, 32);
        let key = k.to_le_bytes();
        b.value_put(v, kg, &key, b"ns", &[k as u8; 5]).unwrap();
        if k % 3 == 0 {
            b.list_add_all(l, kg, &key, b"", &[&b"a"[..], b"bc"])
                .unwrap();
        }
        if k % 5 == 0 {
            b.map_put(m, kg, &key, b"", b"uk", b"uv").unwrap();
        }
    }
    b
}

fn assert_detected(result: Result<StateBackend, Error>, file_hint: &str, what: &str) {
    match result {
        Err(Error::Corrupted { file, offset, .. }) => {
            assert!(
                file.contains(file_hint),
                "{what}: error names {file}, expected {file_hint}"
            );
            let _ = offset;
        }
        Err(other) => panic!("{what}: expected a corruption error, got {other}"),
        Ok(_) => panic!("{what}: corruption was not detected"),
    }
}

/// Positions to damage: every byte of the first 64 and last 64, and a stride in between.
fn positions(len: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..len.min(64)).collect();
    p.extend((64..len).step_by((len / 300).max(1)));
    p.extend(len.saturating_sub(64)..len);
    p.sort();
    p.dedup();
    p
}

#[test]
fn fs_snapshot_bit_flips_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = populated(BackendKind::Fs, dir.path());
    let done = b.checkpoint(1).unwrap();
    let expected = dump(&[b]);
    let SnapshotHandle::Manifest(manifest) = &done.handle else {
        panic!()
    };
    let data = data_file(manifest);
    let cfg = || config(BackendKind::Fs, dir.path(), 32, 0, 1);

    // Untouched, it restores to exactly the state.
    let restored = StateBackend::restore(cfg(), std::slice::from_ref(&done.handle)).unwrap();
    assert_eq!(dump(&[restored]), expected);

    for file in [&data, manifest] {
        let original = std::fs::read(file).unwrap();
        let hint = file.file_name().unwrap().to_str().unwrap().to_string();
        for pos in positions(original.len()) {
            for bit in [0u8, 3, 7] {
                let mut bad = original.clone();
                bad[pos] ^= 1 << bit;
                std::fs::write(file, &bad).unwrap();
                assert_detected(
                    StateBackend::restore(cfg(), std::slice::from_ref(&done.handle)),
                    &hint,
                    &format!("bit {bit} of byte {pos} of {hint}"),
                );
            }
        }
        for len in positions(original.len()) {
            std::fs::write(file, &original[..len]).unwrap();
            assert_detected(
                StateBackend::restore(cfg(), std::slice::from_ref(&done.handle)),
                &hint,
                &format!("{hint} truncated to {len} bytes"),
            );
        }
        std::fs::write(file, &original).unwrap();
    }
    let restored = StateBackend::restore(cfg(), std::slice::from_ref(&done.handle)).unwrap();
    assert_eq!(dump(&[restored]), expected);
}

#[test]
fn inline_snapshot_bit_flips_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = populated(BackendKind::Memory, dir.path());
    let done = b.checkpoint(7).unwrap();
    let bytes = done.handle.as_bytes().unwrap().to_vec();
    let cfg = || config(BackendKind::Memory, dir.path(), 32, 0, 1);
    for pos in positions(bytes.len()) {
        for bit in [0u8, 5] {
            let mut bad = bytes.clone();
            bad[pos] ^= 1 << bit;
            assert_detected(
                StateBackend::restore(cfg(), &[SnapshotHandle::inline(bad)]),
                "inline snapshot",
                &format!("bit {bit} of byte {pos}"),
            );
        }
    }
    for len in positions(bytes.len()) {
        assert_detected(
            StateBackend::restore(cfg(), &[SnapshotHandle::inline(bytes[..len].to_vec())]),
            "inline snapshot",
            &format!("truncated to {len}"),
        );
    }
}

#[test]
fn error_message_names_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = populated(BackendKind::Fs, dir.path());
    let done = b.checkpoint(1).unwrap();
    let SnapshotHandle::Manifest(manifest) = &done.handle else {
        panic!()
    };
    let data = data_file(manifest);
    let mut bytes = std::fs::read(&data).unwrap();
    let pos = bytes.len() / 2;
    bytes[pos] ^= 0x10;
    std::fs::write(&data, &bytes).unwrap();
    let err = StateBackend::restore(
        config(BackendKind::Fs, dir.path(), 32, 0, 1),
        &[done.handle],
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&data.display().to_string()), "{msg}");
    assert!(msg.contains("offset"), "{msg}");
    let Error::Corrupted { offset, .. } = err else {
        panic!("{msg}")
    };
    assert!(
        offset <= pos as u64,
        "offset {offset} should be at or before the flipped byte {pos}"
    );
}

fn data_file(manifest: &Path) -> PathBuf {
    let dir = manifest.parent().unwrap();
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "data"))
        .unwrap()
}
