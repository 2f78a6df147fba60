//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod s3;

use statebackend::checkpoint_storage::file::FileStorage;
use statebackend::checkpoint_storage::{CheckpointStorage, CheckpointWriter};
use statebackend::keygroup::{key_group_for_hash, range_for_operator};
use statebackend::{BackendKind, Config, Entry, EntryValue, StateBackend, StateKind};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// Writes `n` keys of value, list and map state (those of `b`'s key groups); round
/// `r` > 0 changes every key whose number is `r` modulo `every`.
pub fn write_round(b: &mut StateBackend, n: u32, r: u32, every: u32) {
    let v = b.register_state("v", StateKind::Value, b"").unwrap();
    let l = b.register_state("l", StateKind::List, b"").unwrap();
    let m = b.register_state("m", StateKind::Map, b"").unwrap();
    for k in (0..n).filter(|k| r == 0 || k % every == r % every) {
        let kg = kg_of(k as i32, b.max_parallelism());
        if !b.key_group_range().contains(kg) {
            continue;
        }
        let key = k.to_be_bytes();
        b.value_put(v, kg, &key, b"", &[r as u8; 100]).unwrap();
        b.list_add(l, kg, &key, b"", &[r as u8]).unwrap();
        b.map_put(m, kg, &key, b"ns", &[(r % 4) as u8], &r.to_le_bytes())
            .unwrap();
    }
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

/// File storage whose writers fail once `budget` bytes have been written in total,
/// and then leave their temporary files behind, as a crash would.
#[derive(Debug)]
pub struct CrashingStorage {
    pub inner: FileStorage,
    pub budget: Arc<AtomicU64>,
}

struct CrashingWriter {
    inner: Option<Box<dyn CheckpointWriter>>,
    budget: Arc<AtomicU64>,
}

impl Write for CrashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.budget.load(Ordering::SeqCst);
        if left == 0 {
            // Simulated crash: nothing is cleaned up.
            std::mem::forget(self.inner.take());
            return Err(io::Error::other("injected crash"));
        }
        let n = (buf.len() as u64).min(left) as usize;
        self.budget.fetch_sub(n as u64, Ordering::SeqCst);
        match self.inner.as_mut() {
            Some(w) => w.write(&buf[..n]),
            None => Err(io::Error::other("injected crash")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner
            .as_mut()
            .map_or(Err(io::Error::other("injected crash")), |w| w.flush())
    }
}

impl CheckpointWriter for CrashingWriter {
    fn commit(mut self: Box<Self>) -> statebackend::Result<String> {
        match self.inner.take() {
            Some(w) if self.budget.load(Ordering::SeqCst) > 0 => w.commit(),
            Some(w) => {
                std::mem::forget(w);
                Err(statebackend::Error::InvalidArgument(
                    "injected crash at commit".into(),
                ))
            }
            None => Err(statebackend::Error::InvalidArgument(
                "injected crash".into(),
            )),
        }
    }
}

impl CheckpointStorage for CrashingStorage {
    fn create(&self, id: u64, name: &str) -> statebackend::Result<Box<dyn CheckpointWriter>> {
        Ok(Box::new(CrashingWriter {
            inner: Some(self.inner.create(id, name)?),
            budget: Arc::clone(&self.budget),
        }))
    }
    fn discard(&self, id: u64, prefix: &str) -> statebackend::Result<()> {
        self.inner.discard(id, prefix)
    }
    fn checkpoints_with(&self, prefix: &str) -> statebackend::Result<Vec<u64>> {
        self.inner.checkpoints_with(prefix)
    }
    fn location(&self, id: u64, name: &str) -> String {
        self.inner.location(id, name)
    }
    fn checkpoint_ids(&self) -> statebackend::Result<Vec<u64>> {
        self.inner.checkpoint_ids()
    }
    fn list(&self, id: u64) -> statebackend::Result<Vec<String>> {
        self.inner.list(id)
    }
    fn read(&self, id: u64, name: &str) -> statebackend::Result<Vec<u8>> {
        self.inner.read(id, name)
    }
    fn modified(&self, id: u64, name: &str) -> statebackend::Result<Option<std::time::SystemTime>> {
        self.inner.modified(id, name)
    }
    fn create_shared(&self, name: &str) -> statebackend::Result<Box<dyn CheckpointWriter>> {
        Ok(Box::new(CrashingWriter {
            inner: Some(self.inner.create_shared(name)?),
            budget: Arc::clone(&self.budget),
        }))
    }
    fn discard_shared(&self, name: &str) -> statebackend::Result<()> {
        self.inner.discard_shared(name)
    }
    fn list_shared(&self, dir: &str) -> statebackend::Result<Vec<String>> {
        self.inner.list_shared(dir)
    }
}
