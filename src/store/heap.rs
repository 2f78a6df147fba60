//! The in-memory store of the Memory and Fs backends.
//!
//! Each state keeps one persistent hash map (a HAMT from `imbl`) per key group,
//! keyed by the composite key `varint(len(key)) ‖ key ‖ namespace`. Cloning such a
//! map is O(1) and shares all nodes; a write after a clone copies only the path to
//! the entry it touches. So the synchronous snapshot phase clones
//! `states × key groups` map roots, independent of how much state there is, and
//! the asynchronous phase reads the clones on another thread while the task keeps
//! writing. Flink's CopyOnWriteStateMap instead copies its bucket array, which
//! grows with the number of entries.

use super::{EntryData, EntryRef, EntryVisitor, KeyedStore, MapVisitor, StoreView};
use crate::codec::{composite_key, split_composite_key};
use crate::error::{Error, Result};
use crate::keygroup::KeyGroupRange;
use crate::state::{StateId, StateKind};
use std::cell::RefCell;

type Hasher = foldhash::fast::RandomState;
type Table<V> = imbl::GenericHashMap<Box<[u8]>, V, Hasher, imbl::shared_ptr::DefaultSharedPtr>;
type Bytes = Box<[u8]>;

/// One state's tables, one per owned key group.
#[derive(Clone)]
enum HeapState {
    Value(Vec<Table<Bytes>>),
    List(Vec<Table<Vec<u8>>>),
    Map(Vec<Table<Table<Bytes>>>),
}

fn new_tables<V: Clone>(n: u32, hasher: &Hasher) -> Vec<Table<V>> {
    (0..n).map(|_| Table::with_hasher(hasher.clone())).collect()
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

    #[inline]
    fn values(&self, s: StateId) -> &[Table<Bytes>] {
        match &self.states[s as usize] {
            HeapState::Value(t) => t,
            _ => unreachable!("kind checked by the backend"),
        }
    }

    #[inline]
    fn values_mut(&mut self, s: StateId, kg: u32) -> &mut Table<Bytes> {
        let i = self.idx(kg);
        match &mut self.states[s as usize] {
            HeapState::Value(t) => &mut t[i],
            _ => unreachable!("kind checked by the backend"),
        }
    }

    #[inline]
    fn lists(&self, s: StateId) -> &[Table<Vec<u8>>] {
        match &self.states[s as usize] {
            HeapState::List(t) => t,
            _ => unreachable!("kind checked by the backend"),
        }
    }

    #[inline]
    fn lists_mut(&mut self, s: StateId, kg: u32) -> &mut Table<Vec<u8>> {
        let i = self.idx(kg);
        match &mut self.states[s as usize] {
            HeapState::List(t) => &mut t[i],
            _ => unreachable!("kind checked by the backend"),
        }
    }

    #[inline]
    fn maps(&self, s: StateId) -> &[Table<Table<Bytes>>] {
        match &self.states[s as usize] {
            HeapState::Map(t) => t,
            _ => unreachable!("kind checked by the backend"),
        }
    }

    #[inline]
    fn maps_mut(&mut self, s: StateId, kg: u32) -> &mut Table<Table<Bytes>> {
        let i = self.idx(kg);
        match &mut self.states[s as usize] {
            HeapState::Map(t) => &mut t[i],
            _ => unreachable!("kind checked by the backend"),
        }
    }

    /// Runs `f` with the composite key of (key, ns) in the scratch buffer.
    #[inline]
    fn with_key<R>(&self, key: &[u8], ns: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
        let mut scratch = self.scratch.borrow_mut();
        composite_key(&mut scratch, key, ns);
        f(&scratch)
    }

    fn inner_map(&self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Option<&Table<Bytes>> {
        let table = &self.maps(s)[self.idx(kg)];
        self.with_key(key, ns, |ck| table.get(ck))
    }
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
        let table = &self.values(s)[self.idx(kg)];
        Ok(self.with_key(key, ns, |ck| match table.get(ck) {
            Some(v) => {
                out.extend_from_slice(v);
                true
            }
            None => false,
        }))
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
        let mut ck = std::mem::take(self.scratch.get_mut());
        composite_key(&mut ck, key, ns);
        let table = self.values_mut(s, kg);
        match table.get_mut(&ck[..]) {
            Some(v) if v.len() == value.len() => v.copy_from_slice(value),
            Some(v) => *v = value.into(),
            None => {
                table.insert(ck[..].into(), value.into());
            }
        }
        *self.scratch.get_mut() = ck;
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
        let table = &self.lists(s)[self.idx(kg)];
        Ok(self.with_key(key, ns, |ck| match table.get(ck) {
            Some(v) => {
                out.extend_from_slice(v);
                true
            }
            None => false,
        }))
    }

    fn list_append(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        encoded: &[u8],
    ) -> Result<()> {
        let mut ck = std::mem::take(self.scratch.get_mut());
        composite_key(&mut ck, key, ns);
        let table = self.lists_mut(s, kg);
        match table.get_mut(&ck[..]) {
            Some(list) => list.extend_from_slice(encoded),
            None => {
                table.insert(ck[..].into(), encoded.to_vec());
            }
        }
        *self.scratch.get_mut() = ck;
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
        let mut ck = std::mem::take(self.scratch.get_mut());
        composite_key(&mut ck, key, ns);
        self.lists_mut(s, kg)
            .insert(ck[..].into(), encoded.to_vec());
        *self.scratch.get_mut() = ck;
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
        Ok(
            match self.inner_map(s, kg, key, ns).and_then(|m| m.get(user_key)) {
                Some(v) => {
                    out.extend_from_slice(v);
                    true
                }
                None => false,
            },
        )
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
        let mut ck = std::mem::take(self.scratch.get_mut());
        composite_key(&mut ck, key, ns);
        let hasher = self.hasher.clone();
        let table = self.maps_mut(s, kg);
        match table.get_mut(&ck[..]) {
            Some(map) => {
                map.insert(user_key.into(), value.into());
            }
            None => {
                let mut map = Table::with_hasher(hasher);
                map.insert(user_key.into(), value.into());
                table.insert(ck[..].into(), map);
            }
        }
        *self.scratch.get_mut() = ck;
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
        let mut ck = std::mem::take(self.scratch.get_mut());
        composite_key(&mut ck, key, ns);
        let table = self.maps_mut(s, kg);
        // Look before writing: get_mut would copy shared nodes even for a miss.
        let present = table.get(&ck[..]).is_some_and(|m| m.contains_key(user_key));
        if present {
            let map = table.get_mut(&ck[..]).expect("present");
            map.remove(user_key);
            if map.is_empty() {
                table.remove(&ck[..]);
            }
        }
        *self.scratch.get_mut() = ck;
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
        Ok(self
            .inner_map(s, kg, key, ns)
            .is_some_and(|m| m.contains_key(user_key)))
    }

    fn map_is_empty(&self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<bool> {
        Ok(self.inner_map(s, kg, key, ns).is_none_or(|m| m.is_empty()))
    }

    fn map_for_each(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        f: &mut MapVisitor<'_>,
    ) -> Result<()> {
        if let Some(map) = self.inner_map(s, kg, key, ns) {
            for (k, v) in map.iter() {
                f(k, v)?;
            }
        }
        Ok(())
    }

    fn clear(&mut self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<()> {
        let mut ck = std::mem::take(self.scratch.get_mut());
        composite_key(&mut ck, key, ns);
        let i = self.idx(kg);
        // Removing a missing key from a shared map would still copy nodes: look first.
        match &mut self.states[s as usize] {
            HeapState::Value(t) => {
                if t[i].contains_key(&ck[..]) {
                    t[i].remove(&ck[..]);
                }
            }
            HeapState::List(t) => {
                if t[i].contains_key(&ck[..]) {
                    t[i].remove(&ck[..]);
                }
            }
            HeapState::Map(t) => {
                if t[i].contains_key(&ck[..]) {
                    t[i].remove(&ck[..]);
                }
            }
        }
        *self.scratch.get_mut() = ck;
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

    fn restore_entry(&mut self, kg: u32, e: EntryRef<'_>) -> Result<()> {
        match e.data {
            EntryData::Value(v) => self.value_put(e.state, kg, e.key, e.namespace, v),
            EntryData::List(l) => self.list_append(e.state, kg, e.key, e.namespace, l),
            EntryData::MapEntry { user_key, value } => {
                self.map_put(e.state, kg, e.key, e.namespace, user_key, value)
            }
        }
    }
}

/// The snapshot view: cloned map roots, shared with the live store until it writes.
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
                            data: EntryData::Value(v),
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
                                data: EntryData::MapEntry { user_key, value },
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
