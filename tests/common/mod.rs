//! Helpers shared by the integration tests.
#![allow(dead_code)]

use statebackend::keygroup::{key_group_for_hash, range_for_operator};
use statebackend::{BackendKind, Config, Entry, EntryValue, StateBackend};
use std::collections::BTreeMap;
use std::path::Path;

/// The backends every core test runs against.
pub fn backends() -> Vec<BackendKind> {
    vec![BackendKind::Memory, BackendKind::Fs, BackendKind::RocksDb]
}

/// A configuration of `kind` for subtask `index` of `parallelism`.
pub fn config(
    kind: BackendKind,
    dir: &Path,
    max_parallelism: u32,
    index: u32,
    parallelism: u32,
) -> Config {
    let url = format!("file://{}", dir.join("checkpoints").display());
    let base = match kind {
        BackendKind::Memory => Config::memory(),
        BackendKind::Fs => Config::fs(&url).unwrap(),
        BackendKind::RocksDb => Config::rocksdb(&url).unwrap(),
    };
    base.with_local_dir(dir.join("local"))
        .with_max_parallelism(max_parallelism)
        .unwrap()
        .with_subtask(index, parallelism)
        .unwrap()
}

/// Flink's key group of a small integer key (its Java hashCode is itself).
pub fn kg_of(key: i32, max_parallelism: u32) -> u32 {
    key_group_for_hash(key, max_parallelism).unwrap()
}

/// Which of `parallelism` instances owns `kg`.
pub fn owner(kg: u32, max_parallelism: u32, parallelism: u32) -> usize {
    (0..parallelism)
        .position(|i| {
            range_for_operator(max_parallelism, parallelism, i)
                .unwrap()
                .contains(kg)
        })
        .unwrap()
}

/// Everything in a set of backends, by (state name, key group, key, namespace).
pub type Dump = BTreeMap<(String, u32, Vec<u8>, Vec<u8>), DumpValue>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DumpValue {
    Value(Vec<u8>),
    List(Vec<Vec<u8>>),
    Map(BTreeMap<Vec<u8>, Vec<u8>>),
}

pub fn dump(backends: &[StateBackend]) -> Dump {
    let mut out = Dump::new();
    for b in backends {
        for e in b.entries().unwrap() {
            let Entry {
                key_group,
                state,
                key,
                namespace,
                value,
            } = e.unwrap();
            let name = b.states()[state as usize].name.clone();
            let slot = (name, key_group, key, namespace);
            match value {
                EntryValue::Value(v) => {
                    assert!(out.insert(slot, DumpValue::Value(v)).is_none());
                }
                EntryValue::List(l) => {
                    assert!(out.insert(slot, DumpValue::List(l)).is_none());
                }
                EntryValue::MapEntry { user_key, value } => {
                    let m = out
                        .entry(slot)
                        .or_insert_with(|| DumpValue::Map(BTreeMap::new()));
                    let DumpValue::Map(m) = m else {
                        panic!("mixed kinds")
                    };
                    assert!(m.insert(user_key, value).is_none());
                }
            }
        }
    }
    out
}
