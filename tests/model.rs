//! Model-based property test: random operations, checkpoints (whose asynchronous
//! phase runs after further writes), and restores with rescaling, compared against
//! a plain BTreeMap model — for every backend.

mod common;

use common::{backends, config, dump, kg_of, owner, Dump, DumpValue};
use proptest::prelude::*;
use statebackend::keygroup::range_for_operator;
use statebackend::{BackendKind, PendingSnapshot, SnapshotHandle, StateBackend, StateKind};
use std::collections::BTreeMap;

const MAX_PAR: u32 = 16;
const STATES: [(&str, StateKind); 4] = [
    ("v", StateKind::Value),
    ("l", StateKind::List),
    ("m", StateKind::Map),
    ("t", StateKind::SortedSet),
];
/// The sorted set's id; its elements live under an empty key and namespace.
const SET: u32 = 3;

#[derive(Clone, Debug)]
enum Op {
    ValuePut(i32, u8, Vec<u8>),
    ValueDelete(i32, u8),
    ListAdd(i32, u8, Vec<u8>),
    ListAddAll(i32, u8, Vec<Vec<u8>>),
    ListUpdate(i32, u8, Vec<Vec<u8>>),
    MapPut(i32, u8, u8, Vec<u8>),
    MapRemove(i32, u8, u8),
    /// Into the sorted set, in the key group of the key.
    SetAdd(i32, Vec<u8>),
    SetRemove(i32, Vec<u8>),
    Clear(usize, i32, u8),
    Merge(usize, i32, u8, Vec<u8>),
    /// Synchronous phase now, asynchronous phase after the next operation.
    Checkpoint,
    /// Restore every instance from the last completed checkpoint, at a new parallelism.
    Restore(u32),
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..6)
}

/// Sorted-set elements: short, from a small alphabet, so that they collide, prefix
/// one another and sort unlike their lengths.
fn element() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![0u8, 1, 0x7f, 0xff]), 0..4)
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0i32..12;
    let ns = 0u8..3;
    prop_oneof![
        4 => (key.clone(), ns.clone(), bytes()).prop_map(|(k, n, v)| Op::ValuePut(k, n, v)),
        1 => (key.clone(), ns.clone()).prop_map(|(k, n)| Op::ValueDelete(k, n)),
        3 => (key.clone(), ns.clone(), bytes()).prop_map(|(k, n, v)| Op::ListAdd(k, n, v)),
        1 => (key.clone(), ns.clone(), prop::collection::vec(bytes(), 0..3))
            .prop_map(|(k, n, v)| Op::ListAddAll(k, n, v)),
        1 => (key.clone(), ns.clone(), prop::collection::vec(bytes(), 0..3))
            .prop_map(|(k, n, v)| Op::ListUpdate(k, n, v)),
        3 => (key.clone(), ns.clone(), 0u8..4, bytes()).prop_map(|(k, n, u, v)| Op::MapPut(k, n, u, v)),
        1 => (key.clone(), ns.clone(), 0u8..4).prop_map(|(k, n, u)| Op::MapRemove(k, n, u)),
        3 => (key.clone(), element()).prop_map(|(k, e)| Op::SetAdd(k, e)),
        2 => (key.clone(), element()).prop_map(|(k, e)| Op::SetRemove(k, e)),
        1 => (0usize..3, key.clone(), ns.clone()).prop_map(|(s, k, n)| Op::Clear(s, k, n)),
        1 => (0usize..3, key.clone(), ns.clone(), prop::collection::vec(0u8..3, 0..3))
            .prop_map(|(s, k, t, src)| Op::Merge(s, k, t, src)),
        1 => Just(Op::Checkpoint),
        1 => (1u32..5).prop_map(Op::Restore),
    ]
}

fn key_bytes(k: i32) -> Vec<u8> {
    k.to_be_bytes().to_vec()
}

fn ns_bytes(n: u8) -> Vec<u8> {
    // Namespaces of different lengths, including the empty one.
    vec![b'n'; n as usize]
}

fn concat(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

/// The reference: plain maps, same (state, key group, key, namespace) slots as the dump.
#[derive(Clone, Default, Debug)]
struct Model(Dump);

impl Model {
    fn slot(state: &str, k: i32, n: u8) -> (String, u32, Vec<u8>, Vec<u8>) {
        (
            state.to_string(),
            kg_of(k, MAX_PAR),
            key_bytes(k),
            ns_bytes(n),
        )
    }

    fn set_slot(k: i32) -> (String, u32, Vec<u8>, Vec<u8>) {
        ("t".to_string(), kg_of(k, MAX_PAR), Vec::new(), Vec::new())
    }

    /// The sorted set of the key group of `k`, ascending.
    fn set(&self, k: i32) -> Vec<Vec<u8>> {
        match self.0.get(&Self::set_slot(k)) {
            Some(DumpValue::Map(set)) => set.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    fn apply(&mut self, op: &Op) {
        let m = &mut self.0;
        match op {
            Op::ValuePut(k, n, v) => {
                m.insert(Self::slot("v", *k, *n), DumpValue::Value(v.clone()));
            }
            Op::ValueDelete(k, n) => {
                m.remove(&Self::slot("v", *k, *n));
            }
            Op::ListAdd(k, n, v) => {
                let e = m
                    .entry(Self::slot("l", *k, *n))
                    .or_insert(DumpValue::List(vec![]));
                let DumpValue::List(l) = e else {
                    unreachable!()
                };
                l.push(v.clone());
            }
            Op::ListAddAll(k, n, vs) => {
                if !vs.is_empty() {
                    let e = m
                        .entry(Self::slot("l", *k, *n))
                        .or_insert(DumpValue::List(vec![]));
                    let DumpValue::List(l) = e else {
                        unreachable!()
                    };
                    l.extend(vs.iter().cloned());
                }
            }
            Op::ListUpdate(k, n, vs) => {
                if vs.is_empty() {
                    m.remove(&Self::slot("l", *k, *n));
                } else {
                    m.insert(Self::slot("l", *k, *n), DumpValue::List(vs.clone()));
                }
            }
            Op::MapPut(k, n, u, v) => {
                let e = m
                    .entry(Self::slot("m", *k, *n))
                    .or_insert(DumpValue::Map(BTreeMap::new()));
                let DumpValue::Map(map) = e else {
                    unreachable!()
                };
                map.insert(vec![*u], v.clone());
            }
            Op::MapRemove(k, n, u) => {
                let slot = Self::slot("m", *k, *n);
                if let Some(DumpValue::Map(map)) = m.get_mut(&slot) {
                    map.remove(&vec![*u]);
                    if map.is_empty() {
                        m.remove(&slot);
                    }
                }
            }
            Op::SetAdd(k, e) => {
                let slot = Self::set_slot(*k);
                let set = m.entry(slot).or_insert(DumpValue::Map(BTreeMap::new()));
                let DumpValue::Map(set) = set else {
                    unreachable!()
                };
                set.insert(e.clone(), Vec::new());
            }
            Op::SetRemove(k, e) => {
                let slot = Self::set_slot(*k);
                if let Some(DumpValue::Map(set)) = m.get_mut(&slot) {
                    set.remove(e);
                    if set.is_empty() {
                        m.remove(&slot);
                    }
                }
            }
            Op::Clear(s, k, n) => {
                m.remove(&Self::slot(STATES[*s].0, *k, *n));
            }
            Op::Merge(s, k, t, sources) => {
                let name = STATES[*s].0;
                let target = Self::slot(name, *k, *t);
                let mut acc: Option<Vec<u8>> = None;
                for src in sources.iter().filter(|&&x| x != *t) {
                    let Some(v) = m.remove(&Self::slot(name, *k, *src)) else {
                        continue;
                    };
                    match v {
                        DumpValue::Value(v) => {
                            acc = Some(match acc {
                                Some(a) => concat(&a, &v),
                                None => v,
                            })
                        }
                        DumpValue::List(l) => {
                            let e = m.entry(target.clone()).or_insert(DumpValue::List(vec![]));
                            let DumpValue::List(tl) = e else {
                                unreachable!()
                            };
                            tl.extend(l);
                        }
                        DumpValue::Map(src_map) => {
                            let e = m
                                .entry(target.clone())
                                .or_insert(DumpValue::Map(BTreeMap::new()));
                            let DumpValue::Map(tm) = e else {
                                unreachable!()
                            };
                            tm.extend(src_map);
                        }
                    }
                }
                if let Some(merged) = acc {
                    let new = match m.get(&target) {
                        Some(DumpValue::Value(t)) => concat(t, &merged),
                        _ => merged,
                    };
                    m.insert(target, DumpValue::Value(new));
                }
            }
            Op::Checkpoint | Op::Restore(_) => {}
        }
    }
}

/// How a run configures its backends and reads them back.
#[derive(Clone, Copy, Debug)]
struct Variant {
    incremental: bool,
    /// RocksDB's write-back cache: `write-cache.size`, `write-cache.dirty-size`.
    write_cache: Option<(&'static str, &'static str)>,
    /// Whether reads after each operation include map scans (which write the
    /// RocksDB cache back); without them, cached writes outlive checkpoints.
    scans: bool,
}

const PLAIN: Variant = Variant {
    incremental: false,
    write_cache: None,
    scans: true,
};

/// The system under test: `parallelism` instances, each owning Flink's range.
struct Cluster {
    kind: BackendKind,
    variant: Variant,
    dir: std::path::PathBuf,
    instances: Vec<StateBackend>,
}

impl Cluster {
    fn open(
        kind: BackendKind,
        variant: Variant,
        dir: &std::path::Path,
        p: u32,
        handles: &[SnapshotHandle],
    ) -> Self {
        let instances = (0..p)
            .map(|i| {
                let mut config =
                    config(kind, dir, MAX_PAR, i, p).with_incremental(variant.incremental);
                if let Some((size, dirty)) = variant.write_cache {
                    let options = &mut config.rocksdb_options;
                    options.insert("write-cache.size".into(), size.into());
                    options.insert("write-cache.dirty-size".into(), dirty.into());
                }
                let mut b = StateBackend::restore(config, handles).expect("restore");
                for (name, kind) in STATES {
                    b.register_state(name, kind, name.as_bytes()).unwrap();
                }
                b
            })
            .collect();
        Cluster {
            kind,
            variant,
            dir: dir.to_path_buf(),
            instances,
        }
    }

    fn at(&mut self, k: i32) -> (&mut StateBackend, u32) {
        let kg = kg_of(k, MAX_PAR);
        let i = owner(kg, MAX_PAR, self.instances.len() as u32);
        (&mut self.instances[i], kg)
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::ValuePut(k, n, v) => {
                let (b, kg) = self.at(*k);
                b.value_put(0, kg, &key_bytes(*k), &ns_bytes(*n), v)
                    .unwrap();
            }
            Op::ValueDelete(k, n) => {
                let (b, kg) = self.at(*k);
                b.value_delete(0, kg, &key_bytes(*k), &ns_bytes(*n))
                    .unwrap();
            }
            Op::ListAdd(k, n, v) => {
                let (b, kg) = self.at(*k);
                b.list_add(1, kg, &key_bytes(*k), &ns_bytes(*n), v).unwrap();
            }
            Op::ListAddAll(k, n, vs) => {
                let (b, kg) = self.at(*k);
                b.list_add_all(1, kg, &key_bytes(*k), &ns_bytes(*n), vs)
                    .unwrap();
            }
            Op::ListUpdate(k, n, vs) => {
                let (b, kg) = self.at(*k);
                b.list_update(1, kg, &key_bytes(*k), &ns_bytes(*n), vs)
                    .unwrap();
            }
            Op::MapPut(k, n, u, v) => {
                let (b, kg) = self.at(*k);
                b.map_put(2, kg, &key_bytes(*k), &ns_bytes(*n), &[*u], v)
                    .unwrap();
            }
            Op::MapRemove(k, n, u) => {
                let (b, kg) = self.at(*k);
                b.map_remove(2, kg, &key_bytes(*k), &ns_bytes(*n), &[*u])
                    .unwrap();
            }
            Op::SetAdd(k, e) => {
                let (b, kg) = self.at(*k);
                b.set_add(SET, kg, e).unwrap();
            }
            Op::SetRemove(k, e) => {
                let (b, kg) = self.at(*k);
                b.set_remove(SET, kg, e).unwrap();
            }
            Op::Clear(s, k, n) => {
                let (b, kg) = self.at(*k);
                b.clear(*s as u32, kg, &key_bytes(*k), &ns_bytes(*n))
                    .unwrap();
            }
            Op::Merge(s, k, t, sources) => {
                let (b, kg) = self.at(*k);
                let sources: Vec<Vec<u8>> = sources.iter().map(|&n| ns_bytes(n)).collect();
                let sources: Vec<&[u8]> = sources.iter().map(Vec::as_slice).collect();
                let mut reduce = |a: &[u8], b: &[u8]| Ok(concat(a, b));
                b.merge_namespaces(
                    *s as u32,
                    kg,
                    &key_bytes(*k),
                    &ns_bytes(*t),
                    &sources,
                    Some(&mut reduce),
                )
                .unwrap();
            }
            Op::Checkpoint | Op::Restore(_) => {}
        }
    }

    /// The sorted set of `k`'s key group read in pages of `page` elements.
    fn set_pages(&self, k: i32, page: usize) -> Vec<Vec<u8>> {
        let kg = kg_of(k, MAX_PAR);
        let b = &self.instances[owner(kg, MAX_PAR, self.instances.len() as u32)];
        let mut all: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut out = Vec::new();
            let after = all.last().cloned();
            let n = b
                .set_range(SET, kg, after.as_deref(), page, &mut out)
                .unwrap();
            let elements: Vec<Vec<u8>> = statebackend::codec::ListElements::new(&out)
                .map(<[u8]>::to_vec)
                .collect();
            assert_eq!(elements.len(), n);
            assert!(n <= page);
            all.extend(elements);
            if n < page {
                return all;
            }
        }
    }

    /// Point reads of the slot an operation touched, against the model.
    fn check_reads(&self, op: &Op, model: &Model) {
        if let Op::SetAdd(k, _) | Op::SetRemove(k, _) = op {
            let want = model.set(*k);
            assert_eq!(
                self.set_pages(*k, usize::MAX),
                want,
                "sorted set of key {k}"
            );
            assert_eq!(
                self.set_pages(*k, 2),
                want,
                "sorted set of key {k} by pages"
            );
            return;
        }
        let (k, n) = match op {
            Op::ValuePut(k, n, _)
            | Op::ValueDelete(k, n)
            | Op::ListAdd(k, n, _)
            | Op::ListAddAll(k, n, _)
            | Op::ListUpdate(k, n, _)
            | Op::MapPut(k, n, _, _)
            | Op::MapRemove(k, n, _)
            | Op::Clear(_, k, n)
            | Op::Merge(_, k, n, _) => (*k, *n),
            _ => return,
        };
        let kg = kg_of(k, MAX_PAR);
        let b = &self.instances[owner(kg, MAX_PAR, self.instances.len() as u32)];
        let (key, ns) = (key_bytes(k), ns_bytes(n));
        let mut out = Vec::new();
        let v = b
            .value_get(0, kg, &key, &ns, &mut out)
            .unwrap()
            .then_some(out);
        let want = match model.0.get(&Model::slot("v", k, n)) {
            Some(DumpValue::Value(v)) => Some(v.clone()),
            _ => None,
        };
        assert_eq!(v, want, "value of key {k} ns {n}");
        let l = b.list_get(1, kg, &key, &ns).unwrap();
        let want = match model.0.get(&Model::slot("l", k, n)) {
            Some(DumpValue::List(l)) => Some(l.clone()),
            _ => None,
        };
        assert_eq!(l, want, "list of key {k} ns {n}");
        let want = match model.0.get(&Model::slot("m", k, n)) {
            Some(DumpValue::Map(m)) => m.clone(),
            _ => BTreeMap::new(),
        };
        if self.variant.scans {
            let got: BTreeMap<_, _> = b
                .map_entries(2, kg, &key, &ns)
                .unwrap()
                .into_iter()
                .collect();
            assert_eq!(got, want, "map of key {k} ns {n}");
            assert_eq!(b.map_is_empty(2, kg, &key, &ns).unwrap(), want.is_empty());
        }
        for u in 0u8..4 {
            let mut out = Vec::new();
            let found = b.map_get(2, kg, &key, &ns, &[u], &mut out).unwrap();
            assert_eq!(found.then_some(out), want.get(&vec![u]).cloned());
            assert_eq!(
                b.map_contains(2, kg, &key, &ns, &[u]).unwrap(),
                want.contains_key(&vec![u])
            );
        }
    }

    fn check_all(&self, model: &Model) {
        assert_eq!(
            dump(&self.instances),
            model.0,
            "{:?} full contents",
            self.kind
        );
        let total: u64 = self
            .instances
            .iter()
            .map(|b| b.num_entries().unwrap())
            .sum();
        assert_eq!(total, model.0.len() as u64, "num_entries");
        for n in 0u8..3 {
            for (s, (name, _)) in STATES[..3].iter().enumerate() {
                let mut got = Vec::new();
                for b in &self.instances {
                    for k in b.keys(s as u32, &ns_bytes(n)).unwrap() {
                        got.push(k.unwrap().key);
                    }
                }
                got.sort();
                let want: Vec<Vec<u8>> = model
                    .0
                    .keys()
                    .filter(|(st, _, _, ns)| st == name && *ns == ns_bytes(n))
                    .map(|(_, _, k, _)| k.clone())
                    .collect();
                let mut want = want;
                want.sort();
                assert_eq!(got, want, "keys of {name} in ns {n}");
            }
        }
    }
}

fn run(kind: BackendKind, ops: &[Op], start_parallelism: u32) {
    run_with(kind, PLAIN, ops, start_parallelism)
}

fn run_with(kind: BackendKind, variant: Variant, ops: &[Op], start_parallelism: u32) {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::open(kind, variant, dir.path(), start_parallelism, &[]);
    let mut model = Model::default();
    let mut next_checkpoint = 1u64;
    let mut pending: Option<(Vec<PendingSnapshot>, Model)> = None;
    let mut last: Option<(Vec<SnapshotHandle>, Model)> = None;

    for op in ops {
        match op {
            Op::Checkpoint => {
                if let Some((p, m)) = pending.take() {
                    last = Some((finish(p), m));
                }
                let snaps = cluster
                    .instances
                    .iter_mut()
                    .map(|b| b.snapshot(next_checkpoint).unwrap())
                    .collect();
                next_checkpoint += 1;
                pending = Some((snaps, model.clone()));
                continue;
            }
            Op::Restore(p) => {
                if let Some((snaps, m)) = pending.take() {
                    last = Some((finish(snaps), m));
                }
                let Some((handles, m)) = &last else { continue };
                cluster = Cluster::open(kind, variant, &cluster.dir, *p, handles);
                model = m.clone();
                cluster.check_all(&model);
                continue;
            }
            _ => {}
        }
        cluster.apply(op);
        model.apply(op);
        cluster.check_reads(op, &model);
        // The asynchronous phase runs after a write the snapshot must not see.
        if let Some((snaps, m)) = pending.take() {
            last = Some((finish(snaps), m));
        }
    }
    cluster.check_all(&model);
    if let Some((snaps, m)) = pending.take() {
        last = Some((finish(snaps), m));
    }
    if let Some((handles, m)) = last {
        let restored = Cluster::open(kind, variant, dir.path(), 3, &handles);
        restored.check_all(&m);
    }
}

fn finish(snaps: Vec<PendingSnapshot>) -> Vec<SnapshotHandle> {
    snaps
        .into_iter()
        .map(|p| p.write().unwrap().handle)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn memory_backend_matches_model(ops in prop::collection::vec(op(), 1..120), p in 1u32..4) {
        run(BackendKind::Memory, &ops, p);
    }

    #[test]
    fn rocksdb_backend_matches_model(ops in prop::collection::vec(op(), 1..120), p in 1u32..4) {
        run(BackendKind::RocksDb, &ops, p);
    }

    #[test]
    fn rocksdb_incremental_matches_model(ops in prop::collection::vec(op(), 1..120), p in 1u32..4) {
        run_with(BackendKind::RocksDb, Variant { incremental: true, ..PLAIN }, &ops, p);
    }

    // The write-back cache with writes that outlive checkpoints (views merge them),
    // with room for everything, with a cache so small that entries are written back
    // and evicted all the time, and without a cache.
    #[test]
    fn rocksdb_write_cache_matches_model(ops in prop::collection::vec(op(), 1..120), p in 1u32..4) {
        let variant = Variant { write_cache: Some(("64 mb", "16 mb")), scans: false, ..PLAIN };
        run_with(BackendKind::RocksDb, variant, &ops, p);
    }

    #[test]
    fn rocksdb_small_write_cache_matches_model(ops in prop::collection::vec(op(), 1..120), p in 1u32..4) {
        let variant = Variant { write_cache: Some(("2 kb", "512 b")), scans: false, ..PLAIN };
        run_with(BackendKind::RocksDb, variant, &ops, p);
    }

    #[test]
    fn rocksdb_incremental_write_cache_matches_model(ops in prop::collection::vec(op(), 1..120), p in 1u32..4) {
        let variant = Variant { incremental: true, write_cache: Some(("64 mb", "16 mb")), scans: false };
        run_with(BackendKind::RocksDb, variant, &ops, p);
    }

    #[test]
    fn rocksdb_without_write_cache_matches_model(ops in prop::collection::vec(op(), 1..120), p in 1u32..4) {
        let variant = Variant { write_cache: Some(("0", "0")), ..PLAIN };
        run_with(BackendKind::RocksDb, variant, &ops, p);
    }

    #[test]
    fn fs_backend_matches_model(ops in prop::collection::vec(op(), 1..120), p in 1u32..4) {
        run(BackendKind::Fs, &ops, p);
    }
}

#[test]
fn every_backend_is_covered() {
    // Keeps this file honest when a backend is added to common::backends().
    for kind in backends() {
        run(
            kind,
            &[
                Op::ValuePut(1, 0, vec![1]),
                Op::ListAdd(2, 1, vec![2]),
                Op::MapPut(3, 2, 1, vec![3]),
                Op::Checkpoint,
                Op::ValuePut(1, 0, vec![9]),
                Op::Restore(2),
            ],
            1,
        );
    }
    let _ = range_for_operator(MAX_PAR, 1, 0);
}
