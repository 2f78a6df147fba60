//! The store interface: where working state lives while the job runs.
//!
//! [`heap`] keeps it in native memory (Memory and Fs backends), [`rocks`] in an
//! embedded RocksDB (RocksDB backend). Both see fully checked arguments: the
//! backend (src/backend.rs) has already resolved the state, checked its kind and
//! the key group. Semantics shared by all stores (namespace merging, key
//! iteration, snapshots) are written once, in terms of these primitives.

pub mod heap;
mod huge_pages;
pub mod rocks;

use crate::error::Result;
use crate::metrics::{StateMetrics, WriteCacheMetrics};
use crate::state::{StateId, StateKind};
use std::path::PathBuf;
use std::sync::Arc;

/// One (key, namespace) entry of a state, as seen by snapshots and iteration.
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'a> {
    pub state: StateId,
    pub key: &'a [u8],
    pub namespace: &'a [u8],
    pub data: EntryData<'a>,
}

/// The payload of an entry.
#[derive(Debug, Clone, Copy)]
pub enum EntryData<'a> {
    Value(&'a [u8]),
    /// A list in its encoded form (see [`crate::codec::ListElements`]).
    List(&'a [u8]),
    /// One user key of a map state.
    MapEntry {
        user_key: &'a [u8],
        value: &'a [u8],
    },
}

/// Visitor over the (user key, value) pairs of one map; an error stops the walk.
pub type MapVisitor<'v> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'v;

/// Visitor over the elements of a sorted set: false stops the walk, as an error does.
pub type SetVisitor<'v> = dyn FnMut(&[u8]) -> Result<bool> + 'v;

/// Visitor over entries; returning an error stops the walk.
pub type EntryVisitor<'v> = dyn FnMut(EntryRef<'_>) -> Result<()> + 'v;

/// Where a restore puts entries: (key group, entry).
pub type RestoreSink<'v> = dyn FnMut(u32, EntryRef<'_>) -> Result<()> + 'v;

/// Produces a restore's entries into the sink it is given (see
/// [`KeyedStore::restore_entries`]).
pub type RestoreFeed<'v> = dyn FnMut(&mut RestoreSink<'_>) -> Result<()> + 'v;

/// The primitive operations of a keyed store.
pub trait KeyedStore: Send {
    /// Number of states the store has room for (ids `0..n`).
    fn num_states(&self) -> usize;

    /// The synchronous phase of an incremental checkpoint, for stores that have one.
    fn local_checkpoint(&self) -> Result<Option<CheckpointLink>> {
        Ok(None)
    }

    /// Makes room for a newly registered state.
    fn add_state(&mut self, id: StateId, kind: StateKind) -> Result<()>;

    fn value_get(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool>;
    fn value_put(&mut self, s: StateId, kg: u32, key: &[u8], ns: &[u8], value: &[u8])
        -> Result<()>;

    /// The encoded list (see [`crate::codec`]) appended to `out`; false if absent.
    fn list_get(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool>;
    /// Appends already-encoded elements.
    fn list_append(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        encoded: &[u8],
    ) -> Result<()>;
    /// Replaces the list with already-encoded elements (non-empty).
    /// Replaces a list with its encoded form. The key-value stores keep that form
    /// as the entry's value; the heap store overrides this.
    fn list_replace(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        encoded: &[u8],
    ) -> Result<()> {
        self.value_put(s, kg, key, ns, encoded)
    }

    #[allow(clippy::too_many_arguments)]
    fn map_get(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool>;
    #[allow(clippy::too_many_arguments)]
    fn map_put(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
        value: &[u8],
    ) -> Result<()>;
    /// Puts several (user key, value) pairs into one map: `entries` in the list
    /// encoding (see [`crate::codec::ListElements`]), user key and value
    /// alternately, already checked.
    fn map_put_all(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        entries: &[u8],
    ) -> Result<()> {
        let mut fields = crate::codec::ListElements::new(entries);
        while let (Some(user_key), Some(value)) = (fields.next(), fields.next()) {
            self.map_put(s, kg, key, ns, user_key, value)?;
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
    ) -> Result<()>;
    fn map_contains(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
    ) -> Result<bool>;
    fn map_is_empty(&self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<bool>;
    /// Visits every (user key, value) of one map.
    fn map_for_each(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        f: &mut MapVisitor<'_>,
    ) -> Result<()>;

    /// Adds `element` to sorted set `s` of key group `kg`: the user key of the map
    /// under an empty key and namespace, with an empty value.
    fn set_add(&mut self, s: StateId, kg: u32, element: &[u8]) -> Result<()> {
        self.map_put(s, kg, &[], &[], element, &[])
    }

    fn set_remove(&mut self, s: StateId, kg: u32, element: &[u8]) -> Result<()> {
        self.map_remove(s, kg, &[], &[], element)
    }

    /// Visits the elements of sorted set `s` of key group `kg` above `after` (all:
    /// None), ascending by bytes, while `f` returns true. By default the set is read
    /// whole and sorted (the heap store); the RocksDB stores seek.
    fn set_range(
        &self,
        s: StateId,
        kg: u32,
        after: Option<&[u8]>,
        f: &mut SetVisitor<'_>,
    ) -> Result<()> {
        let mut elements = Vec::new();
        self.map_for_each(s, kg, &[], &[], &mut |element, _| {
            if after.is_none_or(|a| element > a) {
                elements.push(element.to_vec());
            }
            Ok(())
        })?;
        elements.sort_unstable();
        for element in &elements {
            if !f(element)? {
                break;
            }
        }
        Ok(())
    }

    /// Removes whatever (key, namespace) holds in state `s`.
    fn clear(&mut self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<()>;

    /// Number of (key, namespace) entries over all states.
    fn num_entries(&self) -> Result<u64>;

    /// Estimates for state `s`, without a scan, with the values of the RocksDB
    /// `properties` of its column family (see [`crate::metrics`]); what a store does
    /// not know is None.
    fn state_metrics(&self, _s: StateId, properties: &[String]) -> StateMetrics {
        StateMetrics {
            entries: None,
            bytes: None,
            properties: vec![None; properties.len()],
        }
    }

    /// The values of the RocksDB statistics counters `metrics` (names of
    /// `rocks::options::STATISTICS_METRICS`) over the whole store; None where it has
    /// none.
    fn statistics(&self, metrics: &[&str]) -> Vec<Option<u64>> {
        vec![None; metrics.len()]
    }

    /// The counters of the store's write-back cache, if it has one.
    fn write_cache_metrics(&self) -> Option<WriteCacheMetrics> {
        None
    }

    /// Compacts what state `s` keeps on disk, if anything (RocksDB: a flush, then a
    /// manual compaction of the state's whole range).
    fn compact(&mut self, _s: StateId) -> Result<()> {
        Ok(())
    }

    /// The synchronous snapshot phase: a consistent, immutable view whose cost must
    /// not grow with the amount of state. Later writes never show in it.
    fn view(&self) -> Result<Box<dyn StoreView>>;

    /// Restores the entries `feed` produces: it calls the sink it is given once per
    /// entry, key groups in ascending order where it can. A store may write them
    /// faster than one [`KeyedStore::restore_entry`] each (RocksDB: sorted files
    /// ingested whole); by default it writes them one by one.
    fn restore_entries(&mut self, feed: &mut RestoreFeed<'_>) -> Result<()> {
        feed(&mut |kg, e| self.restore_entry(kg, e))
    }

    /// Writes one restored entry.
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

/// An immutable point-in-time view of a store, usable from another thread.
pub trait StoreView: Send + Sync {
    /// Visits the entries of one key group, state by state in ascending id order;
    /// with `only` set, just that state's entries.
    fn for_each_in_key_group(
        &self,
        kg: u32,
        only: Option<StateId>,
        f: &mut EntryVisitor<'_>,
    ) -> Result<()>;
}

/// The files of an incremental checkpoint, hard-linked into a local directory in
/// the synchronous phase, or later by a store that writes in the background (the
/// RocksDB store's write-back cache) once it has written what it held;
/// [`CheckpointLink::resolve`] waits for that on the asynchronous phase's thread.
pub struct CheckpointLink(Link);

enum Link {
    Linked(LocalCheckpoint),
    Deferred(Box<dyn FnOnce() -> Result<LocalCheckpoint> + Send>),
}

impl CheckpointLink {
    pub(crate) fn linked(local: LocalCheckpoint) -> Self {
        CheckpointLink(Link::Linked(local))
    }

    pub(crate) fn deferred(
        link: impl FnOnce() -> Result<LocalCheckpoint> + Send + 'static,
    ) -> Self {
        CheckpointLink(Link::Deferred(Box::new(link)))
    }

    /// The local checkpoint, once linked.
    pub fn resolve(self) -> Result<LocalCheckpoint> {
        match self.0 {
            Link::Linked(local) => Ok(local),
            Link::Deferred(link) => link(),
        }
    }
}

/// A store's files linked into a local directory. The directory is deleted when
/// this is dropped; until then it keeps the store's files alive (e.g. the DB open).
pub struct LocalCheckpoint {
    pub dir: PathBuf,
    _keep: Arc<dyn std::any::Any + Send + Sync>,
}

impl LocalCheckpoint {
    pub(crate) fn new(dir: PathBuf, keep: Arc<dyn std::any::Any + Send + Sync>) -> Self {
        LocalCheckpoint { dir, _keep: keep }
    }
}

impl Drop for LocalCheckpoint {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
