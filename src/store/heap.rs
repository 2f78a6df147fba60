//! The in-memory store of the Memory and Fs backends.
//!
//! Each state keeps one copy-on-write hash table ([`CowTable`]) per key group,
//! keyed by the composite key `varint(len(key)) ‖ key ‖ namespace`. Cloning a table
//! clones its segment pointers, so the synchronous snapshot phase costs
//! `states × key groups × segments` pointer copies, independent of the size of the
//! keys and values, and the asynchronous phase reads the clones on another thread
//! while the task keeps writing; a write copies only the segment it touches.
//! Flink's CopyOnWriteStateMap instead copies its bucket array, which grows with
//! the number of entries.

use super::table::{CowTable, SmallBytes};
use super::{EntryData, EntryRef, EntryVisitor, KeyedStore, MapVisitor, StoreView};
use crate::codec::{composite_key, split_composite_key};
use crate::error::{Error, Result};
use crate::keygroup::KeyGroupRange;
use crate::state::{StateId, StateKind};
use std::cell::RefCell;
use std::sync::Arc;

type Hasher = foldhash::fast::RandomState;
/// A list in its encoded form, shared until written (copy on write per entry).
type ListBytes = Arc<Vec<u8>>;
type MapTable = CowTable<SmallBytes>;

/// One state's tables, one per owned key group.
#[derive(Clone)]
enum HeapState {
    Value(Vec<CowTable<SmallBytes>>),
    List(Vec<CowTable<ListBytes>>),
    Map(Vec<CowTable<MapTable>>),
}

fn new_tables<V: Clone>(n: u32, hasher: &Hasher) -> Vec<CowTable<V>> {
    (0..n)
        .map(|_| CowTable::with_hasher(hasher.clone()))
        .collect()
}

/// The in-memory keyed store.
pub struct HeapStore {
    range: KeyGroupRange,
    hasher: Hasher,
    states: Vec<HeapState>,
    /// Reused buffer for composite keys, so lookups do not allocate.
    scratch: RefCell<Vec<u8>>,
}

impl HeapStore {
    pub fn new(range: KeyGroupRange) -> Self {
        HeapStore {
            range,
            hasher: Hasher::default(),
            states: Vec::new(),
            scratch: RefCell::new(Vec::with_capacity(64)),
        }
    }

    #[inline]
    fn idx(&self, kg: u32) -> usize {
        debug_assert!(self.range.contains(kg));
        (kg - self.range.start()) as usize
    }
}

/// Accessors of one kind's tables; the backend has checked the state's kind.
macro_rules! tables {
    ($states:expr, $s:expr, $kind:ident) => {
        match &$states[$s as usize] {
            HeapState::$kind(t) => t,
            _ => unreachable!("kind checked by the backend"),
        }
    };
    (mut $states:expr, $s:expr, $kind:ident) => {
        match &mut $states[$s as usize] {
            HeapState::$kind(t) => t,
            _ => unreachable!("kind checked by the backend"),
        }
    };
}

impl KeyedStore for HeapStore {
    fn num_states(&self) -> usize {
        self.states.len()
    }

    fn add_state(&mut self, id: StateId, kind: StateKind) -> Result<()> {
        if id as usize != self.states.len() {
            return Err(Error::State(format!(
                "state ids must be added in order: got {id}, expected {}",
                self.states.len()
            )));
        }
        let n = self.range.len();
        self.states.push(match kind {
            StateKind::Value => HeapState::Value(new_tables(n, &self.hasher)),
            StateKind::List => HeapState::List(new_tables(n, &self.hasher)),
            StateKind::Map => HeapState::Map(new_tables(n, &self.hasher)),
        });
        Ok(())
    }

    #[inline]
    fn value_get(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        let table = &tables!(self.states, s, Value)[self.idx(kg)];
        let mut ck = self.scratch.borrow_mut();
        composite_key(&mut ck, key, ns);
        Ok(match table.get(&ck) {
            Some(v) => {
                out.extend_from_slice(v.as_slice());
                true
            }
            None => false,
        })
    }

    #[inline]
    fn value_put(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        value: &[u8],
    ) -> Result<()> {
        let i = self.idx(kg);
        let ck = self.scratch.get_mut();
        composite_key(ck, key, ns);
        let table = &mut tables!(mut self.states, s, Value)[i];
        match table.get_mut(ck) {
            Some(v) => v.set(value),
            None => {
                table.insert(ck, SmallBytes::new(value));
            }
        }
        Ok(())
    }

    fn list_get(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        let table = &tables!(self.states, s, List)[self.idx(kg)];
        let mut ck = self.scratch.borrow_mut();
        composite_key(&mut ck, key, ns);
        Ok(match table.get(&ck) {
            Some(v) => {
                out.extend_from_slice(v);
                true
            }
            None => false,
        })
    }

    fn list_append(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        encoded: &[u8],
    ) -> Result<()> {
        let i = self.idx(kg);
        let ck = self.scratch.get_mut();
        composite_key(ck, key, ns);
        let table = &mut tables!(mut self.states, s, List)[i];
        match table.get_mut(ck) {
            Some(list) => Arc::make_mut(list).extend_from_slice(encoded),
            None => {
                table.insert(ck, Arc::new(encoded.to_vec()));
            }
        }
        Ok(())
    }

    fn list_replace(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        encoded: &[u8],
    ) -> Result<()> {
        let i = self.idx(kg);
        let ck = self.scratch.get_mut();
        composite_key(ck, key, ns);
        tables!(mut self.states, s, List)[i].insert(ck, Arc::new(encoded.to_vec()));
        Ok(())
    }

    fn map_get(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        let table = &tables!(self.states, s, Map)[self.idx(kg)];
        let mut ck = self.scratch.borrow_mut();
        composite_key(&mut ck, key, ns);
        Ok(match table.get(&ck).and_then(|m| m.get(user_key)) {
            Some(v) => {
                out.extend_from_slice(v.as_slice());
                true
            }
            None => false,
        })
    }

    fn map_put(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        let i = self.idx(kg);
        let ck = self.scratch.get_mut();
        composite_key(ck, key, ns);
        let table = &mut tables!(mut self.states, s, Map)[i];
        match table.get_mut(ck) {
            Some(map) => {
                map.insert(user_key, SmallBytes::new(value));
            }
            None => {
                let mut map = CowTable::with_hasher(self.hasher.clone());
                map.insert(user_key, SmallBytes::new(value));
                table.insert(ck, map);
            }
        }
        Ok(())
    }

    fn map_remove(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
    ) -> Result<()> {
        let i = self.idx(kg);
        let ck = self.scratch.get_mut();
        composite_key(ck, key, ns);
        let table = &mut tables!(mut self.states, s, Map)[i];
        // Look before writing: get_mut would copy a shared segment for nothing.
        if table.get(ck).is_some_and(|m| m.contains_key(user_key)) {
            let map = table.get_mut(ck).expect("present");
            map.remove(user_key);
            if map.is_empty() {
                table.remove(ck);
            }
        }
        Ok(())
    }

    fn map_contains(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
    ) -> Result<bool> {
        let table = &tables!(self.states, s, Map)[self.idx(kg)];
        let mut ck = self.scratch.borrow_mut();
        composite_key(&mut ck, key, ns);
        Ok(table.get(&ck).is_some_and(|m| m.contains_key(user_key)))
    }

    fn map_is_empty(&self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<bool> {
        let table = &tables!(self.states, s, Map)[self.idx(kg)];
        let mut ck = self.scratch.borrow_mut();
        composite_key(&mut ck, key, ns);
        Ok(table.get(&ck).is_none_or(|m| m.is_empty()))
    }

    fn map_for_each(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        f: &mut MapVisitor<'_>,
    ) -> Result<()> {
        let table = &tables!(self.states, s, Map)[self.idx(kg)];
        let map = {
            let mut ck = self.scratch.borrow_mut();
            composite_key(&mut ck, key, ns);
            table.get(&ck)
        };
        if let Some(map) = map {
            for (k, v) in map.iter() {
                f(k, v.as_slice())?;
            }
        }
        Ok(())
    }

    fn clear(&mut self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<()> {
        let i = self.idx(kg);
        let ck = self.scratch.get_mut();
        composite_key(ck, key, ns);
        // CowTable::remove copies nothing on a miss.
        match &mut self.states[s as usize] {
            HeapState::Value(t) => drop(t[i].remove(ck)),
            HeapState::List(t) => drop(t[i].remove(ck)),
            HeapState::Map(t) => drop(t[i].remove(ck)),
        }
        Ok(())
    }

    fn num_entries(&self) -> Result<u64> {
        Ok(self
            .states
            .iter()
            .map(|st| match st {
                HeapState::Value(t) => t.iter().map(|m| m.len() as u64).sum::<u64>(),
                HeapState::List(t) => t.iter().map(|m| m.len() as u64).sum(),
                HeapState::Map(t) => t.iter().map(|m| m.len() as u64).sum(),
            })
            .sum())
    }

    fn view(&self) -> Result<Box<dyn StoreView>> {
        Ok(Box::new(HeapView {
            range: self.range,
            states: self.states.clone(),
        }))
    }
}

/// The snapshot view: cloned tables, sharing segments with the live store until it writes.
struct HeapView {
    range: KeyGroupRange,
    states: Vec<HeapState>,
}

impl StoreView for HeapView {
    fn for_each_in_key_group(
        &self,
        kg: u32,
        only: Option<StateId>,
        f: &mut EntryVisitor<'_>,
    ) -> Result<()> {
        if !self.range.contains(kg) {
            return Ok(());
        }
        let i = (kg - self.range.start()) as usize;
        for (id, st) in self.states.iter().enumerate() {
            let state = id as StateId;
            if only.is_some_and(|o| o != state) {
                continue;
            }
            match st {
                HeapState::Value(t) => {
                    for (ck, v) in t[i].iter() {
                        let (key, namespace) = split(ck);
                        f(EntryRef {
                            state,
                            key,
                            namespace,
                            data: EntryData::Value(v.as_slice()),
                        })?;
                    }
                }
                HeapState::List(t) => {
                    for (ck, l) in t[i].iter() {
                        let (key, namespace) = split(ck);
                        f(EntryRef {
                            state,
                            key,
                            namespace,
                            data: EntryData::List(l),
                        })?;
                    }
                }
                HeapState::Map(t) => {
                    for (ck, m) in t[i].iter() {
                        let (key, namespace) = split(ck);
                        for (user_key, value) in m.iter() {
                            f(EntryRef {
                                state,
                                key,
                                namespace,
                                data: EntryData::MapEntry {
                                    user_key,
                                    value: value.as_slice(),
                                },
                            })?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn split(ck: &[u8]) -> (&[u8], &[u8]) {
    split_composite_key(ck).expect("composite keys are built by this store")
}
