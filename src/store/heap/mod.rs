//! The in-memory store of the Memory and Fs backends.
//!
//! Each state keeps one copy-on-write hash table ([`ByteTable`], [`MapTable`]) per
//! key group, keyed by (key, namespace). Cloning a table clones its segment
//! pointers, so the synchronous snapshot phase costs `states × key groups ×
//! segments` pointer copies, independent of the size of the keys and values, and
//! the asynchronous phase reads the clones on another thread while the task keeps
//! writing; a write copies only the segment it touches. Flink's
//! CopyOnWriteStateMap instead copies its bucket array, which grows with the
//! number of entries.

mod record;
pub mod table;

use self::table::{ByteTable, MapTable};
use super::{EntryData, EntryRef, EntryVisitor, KeyedStore, MapVisitor, StoreView};
use crate::error::{Error, Result};
use crate::keygroup::KeyGroupRange;
use crate::metrics::StateMetrics;
use crate::state::{StateId, StateKind};

/// One state's tables, one per owned key group. Lists are byte tables of encoded
/// lists; maps nest a byte table (user key → value) per (key, namespace).
#[derive(Clone)]
enum HeapState {
    Value(Vec<ByteTable>),
    List(Vec<ByteTable>),
    Map(Vec<MapTable>),
}

impl HeapState {
    /// Its (key, namespace) entries: the tables' lengths, one per key group.
    fn entries(&self) -> u64 {
        match self {
            HeapState::Value(t) | HeapState::List(t) => t.iter().map(|m| m.len() as u64).sum(),
            HeapState::Map(t) => t.iter().map(|m| m.len() as u64).sum(),
        }
    }
}

fn new_tables<T: Default>(n: u32) -> Vec<T> {
    (0..n).map(|_| T::default()).collect()
}

/// The in-memory keyed store.
pub struct HeapStore {
    range: KeyGroupRange,
    states: Vec<HeapState>,
}

impl HeapStore {
    pub fn new(range: KeyGroupRange) -> Self {
        HeapStore {
            range,
            states: Vec::new(),
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
            StateKind::Value => HeapState::Value(new_tables(n)),
            StateKind::List => HeapState::List(new_tables(n)),
            StateKind::Map | StateKind::SortedSet => HeapState::Map(new_tables(n)),
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
        Ok(match table.get(key, ns) {
            Some(v) => {
                out.extend_from_slice(v);
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
        tables!(mut self.states, s, Value)[i].set(key, ns, value);
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
        Ok(match table.get(key, ns) {
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
        tables!(mut self.states, s, List)[i].append(key, ns, encoded);
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
        tables!(mut self.states, s, List)[i].set(key, ns, encoded);
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
        Ok(
            match table.get(key, ns).and_then(|m| m.get(user_key, &[])) {
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
        let i = self.idx(kg);
        tables!(mut self.states, s, Map)[i]
            .get_or_insert(key, ns)
            .set(user_key, &[], value);
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
        let table = &mut tables!(mut self.states, s, Map)[i];
        // Look before writing: get_mut would copy a shared segment for nothing.
        if table
            .get(key, ns)
            .is_some_and(|m| m.contains(user_key, &[]))
        {
            let map = table.get_mut(key, ns).expect("present");
            map.remove(user_key, &[]);
            if map.is_empty() {
                table.remove(key, ns);
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
        Ok(table
            .get(key, ns)
            .is_some_and(|m| m.contains(user_key, &[])))
    }

    fn map_is_empty(&self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<bool> {
        let table = &tables!(self.states, s, Map)[self.idx(kg)];
        Ok(table.get(key, ns).is_none_or(|m| m.is_empty()))
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
        match table.get(key, ns) {
            Some(map) => map.try_for_each(|k, _, v| f(k, v)),
            None => Ok(()),
        }
    }

    fn clear(&mut self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<()> {
        let i = self.idx(kg);
        // Table::remove copies nothing on a miss.
        match &mut self.states[s as usize] {
            HeapState::Value(t) | HeapState::List(t) => t[i].remove(key, ns),
            HeapState::Map(t) => t[i].remove(key, ns),
        };
        Ok(())
    }

    fn num_entries(&self) -> Result<u64> {
        Ok(self.states.iter().map(HeapState::entries).sum())
    }

    /// Entries are counted exactly (one length per key group); bytes are not.
    fn state_metrics(&self, s: StateId, properties: &[String]) -> StateMetrics {
        StateMetrics {
            entries: self.states.get(s as usize).map(HeapState::entries),
            bytes: None,
            properties: vec![None; properties.len()],
        }
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
                HeapState::Value(t) => t[i].try_for_each(|key, namespace, v| {
                    f(EntryRef {
                        state,
                        key,
                        namespace,
                        data: EntryData::Value(v),
                    })
                })?,
                HeapState::List(t) => t[i].try_for_each(|key, namespace, l| {
                    f(EntryRef {
                        state,
                        key,
                        namespace,
                        data: EntryData::List(l),
                    })
                })?,
                HeapState::Map(t) => t[i].try_for_each(|key, namespace, m| {
                    m.try_for_each(|user_key, _, value| {
                        f(EntryRef {
                            state,
                            key,
                            namespace,
                            data: EntryData::MapEntry { user_key, value },
                        })
                    })
                })?,
            }
        }
        Ok(())
    }
}
