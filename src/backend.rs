//! [`StateBackend`]: one backend instance — its states, its store, its operator
//! state and its checkpoints. Every check and every rule shared by the C and JNI
//! layers lives here.

use crate::checkpoint_storage::{self, CheckpointStorage};
use crate::codec::{put_list_element, ListElements};
use crate::config::{BackendKind, Config};
use crate::error::{Error, Result};
use crate::iter::{EntriesIter, KeysIter, SortedMap};
use crate::keygroup::KeyGroupRange;
use crate::metrics::BackendMetrics;
use crate::operator::{Distribution, OperatorStateStore};
use crate::snapshot::manifest::{DbFiles, KeyedData, Manifest};
use crate::snapshot::{
    restore, IncrementalUpload, Payload, PendingSnapshot, Retention, SnapshotHandle, Target,
};
use crate::state::{StateId, StateInfo, StateKind, StateRegistry};
use crate::store::heap::HeapStore;
use crate::store::rocks::cache::{CacheSize, CachedRocksStore};
use crate::store::rocks::options::{MetricOptions, RocksOptions};
use crate::store::rocks::RocksStore;
use crate::store::{KeyedStore, MapVisitor};
use std::sync::{Arc, Mutex};

/// Largest key, namespace, user key or value accepted (1 GiB): every record must
/// fit a snapshot block (u32 length).
pub const MAX_FIELD_LEN: usize = 1 << 30;

/// The caller's reduce or aggregate function for merging values: (accumulated, next).
pub type ReduceFn<'r> = dyn FnMut(&[u8], &[u8]) -> Result<Vec<u8>> + 'r;

/// Checkpoint storage with the retention bookkeeping of this instance.
struct StorageTarget {
    storage: Arc<dyn CheckpointStorage>,
    retention: Arc<Mutex<Retention>>,
}

/// A keyed state backend instance owning one key-group range.
pub struct StateBackend {
    config: Config,
    registry: StateRegistry,
    store: Box<dyn KeyedStore>,
    operator: OperatorStateStore,
    storage: Option<StorageTarget>,
    /// Reused buffer for encoding list elements.
    list_buf: Vec<u8>,
}

impl std::fmt::Debug for StateBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateBackend")
            .field("backend", &self.config.backend)
            .field("key_group_range", &self.config.key_group_range)
            .field("states", &self.registry.all().len())
            .finish()
    }
}

impl StateBackend {
    /// Opens an empty backend.
    pub fn open(config: Config) -> Result<Self> {
        StateBackend::restore(config, &[])
    }

    /// Opens a backend restored from snapshots of any number of old instances,
    /// keeping the key groups `config.key_group_range` owns (rescaling).
    pub fn restore(config: Config, handles: &[SnapshotHandle]) -> Result<Self> {
        config.validate()?;
        let storage: Option<Arc<dyn CheckpointStorage>> = match config.backend {
            BackendKind::Memory => None,
            _ => {
                let url = config.checkpoint_dir.as_ref().ok_or_else(|| {
                    Error::invalid("a checkpoint directory is required for this backend")
                })?;
                Some(checkpoint_storage::open(url, &config.remote)?)
            }
        };
        StateBackend::restore_with_storage(config, storage, handles)
    }

    /// Like [`StateBackend::restore`], with snapshots going to `storage`. With None,
    /// snapshots are returned inline ([`PendingSnapshot::write`]) or streamed by the
    /// caller ([`PendingSnapshot::write_to`]), and no checkpoint directory is needed.
    pub fn restore_with_storage(
        config: Config,
        storage: Option<Arc<dyn CheckpointStorage>>,
        handles: &[SnapshotHandle],
    ) -> Result<Self> {
        config.validate_settings()?;
        let snapshots = restore::open_all(&config, handles)?;
        let adopted = match config.backend {
            BackendKind::RocksDb => restore::choose_base(&config, &snapshots),
            _ => None,
        };
        let mut store: Box<dyn KeyedStore> = match (config.backend, adopted) {
            (BackendKind::Memory | BackendKind::Fs, _) => {
                Box::new(HeapStore::new(config.key_group_range))
            }
            (BackendKind::RocksDb, None) => with_cache(&config, RocksStore::open(&config)?)?,
            (BackendKind::RocksDb, Some(i)) => {
                with_cache(&config, restore::open_base(&config, &snapshots[i])?)?
            }
        };
        let mut registry = StateRegistry::default();
        let operator =
            restore::restore(&config, &mut registry, store.as_mut(), &snapshots, adopted)?;
        let storage = match storage {
            Some(storage) => {
                let instance = instance_name(&config);
                let mut retention =
                    Retention::load(config.retained_checkpoints, Arc::clone(&storage), &instance)?;
                // Files restored from our own incremental checkpoint need no new upload.
                if let Some(i) = adopted {
                    if snapshots[i].manifest.key_group_range == config.key_group_range {
                        retention.restored_from(&snapshots[i].manifest);
                    }
                }
                Some(StorageTarget {
                    storage,
                    retention: Arc::new(Mutex::new(retention)),
                })
            }
            None => None,
        };
        Ok(StateBackend {
            config,
            registry,
            store,
            operator,
            storage,
            list_buf: Vec::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn key_group_range(&self) -> KeyGroupRange {
        self.config.key_group_range
    }

    pub fn max_parallelism(&self) -> u32 {
        self.config.max_parallelism
    }

    // ---- states -------------------------------------------------------------

    /// Registers a state (or returns the id of a known one, updating its metadata).
    /// Registering a known name with another kind is an error.
    pub fn register_state(
        &mut self,
        name: &str,
        kind: StateKind,
        metadata: &[u8],
    ) -> Result<StateId> {
        let (id, new) = self.registry.register(name, kind, metadata)?;
        if new {
            self.store.add_state(id, kind)?;
        }
        Ok(id)
    }

    /// A state by name (restored states are known before they are registered again).
    pub fn state(&self, name: &str) -> Option<&StateInfo> {
        self.registry.by_name(name)
    }

    pub fn states(&self) -> &[StateInfo] {
        self.registry.all()
    }

    #[inline]
    fn check(&self, s: StateId, kind: StateKind, kg: u32, fields: &[&[u8]]) -> Result<()> {
        self.registry.expect(s, kind)?;
        if !self.config.key_group_range.contains(kg) {
            return Err(Error::KeyGroupOutOfRange {
                key_group: kg,
                range: self.config.key_group_range,
            });
        }
        if fields.iter().any(|f| f.len() > MAX_FIELD_LEN) {
            return Err(Error::invalid(format!(
                "keys, namespaces and values are limited to {MAX_FIELD_LEN} bytes"
            )));
        }
        Ok(())
    }

    // ---- value state ----------------------------------------------------------

    /// Copies the value into `out` (cleared first); false if there is none.
    #[inline]
    pub fn value_get(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        self.check(s, StateKind::Value, kg, &[])?;
        out.clear();
        self.store.value_get(s, kg, key, ns, out)
    }

    #[inline]
    pub fn value_put(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        value: &[u8],
    ) -> Result<()> {
        self.check(s, StateKind::Value, kg, &[key, ns, value])?;
        self.store.value_put(s, kg, key, ns, value)
    }

    pub fn value_delete(&mut self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<()> {
        self.check(s, StateKind::Value, kg, &[])?;
        self.store.clear(s, kg, key, ns)
    }

    // ---- list state -------------------------------------------------------------

    /// The list in its encoded form (`varint(len) ‖ bytes` per element, see
    /// [`crate::codec::ListElements`]) into `out` (cleared first); false if absent.
    pub fn list_get_encoded(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        self.check(s, StateKind::List, kg, &[])?;
        out.clear();
        self.store.list_get(s, kg, key, ns, out)
    }

    /// The elements of a list (None if absent). Allocates; the hot path uses
    /// [`StateBackend::list_get_encoded`].
    pub fn list_get(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
    ) -> Result<Option<Vec<Vec<u8>>>> {
        let mut buf = Vec::new();
        Ok(self
            .list_get_encoded(s, kg, key, ns, &mut buf)?
            .then(|| ListElements::new(&buf).map(<[u8]>::to_vec).collect()))
    }

    pub fn list_add(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        element: &[u8],
    ) -> Result<()> {
        self.check(s, StateKind::List, kg, &[key, ns, element])?;
        self.list_buf.clear();
        put_list_element(&mut self.list_buf, element);
        self.store.list_append(s, kg, key, ns, &self.list_buf)
    }

    /// Appends elements; an empty slice changes nothing.
    pub fn list_add_all<E: AsRef<[u8]>>(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        elements: &[E],
    ) -> Result<()> {
        self.check(s, StateKind::List, kg, &[key, ns])?;
        if self.encode_elements(elements)? {
            self.store.list_append(s, kg, key, ns, &self.list_buf)?;
        }
        Ok(())
    }

    /// Replaces the list; an empty slice clears it (as Flink's `update`).
    pub fn list_update<E: AsRef<[u8]>>(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        elements: &[E],
    ) -> Result<()> {
        self.check(s, StateKind::List, kg, &[key, ns])?;
        if self.encode_elements(elements)? {
            self.store.list_replace(s, kg, key, ns, &self.list_buf)
        } else {
            self.store.clear(s, kg, key, ns)
        }
    }

    /// Replaces the list with elements already encoded as a list; empty clears it.
    pub fn list_update_encoded(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        encoded: &[u8],
    ) -> Result<()> {
        self.check(s, StateKind::List, kg, &[key, ns, encoded])?;
        if crate::codec::validate_list(encoded).is_none() {
            return Err(Error::invalid("malformed encoded list"));
        }
        if encoded.is_empty() {
            self.store.clear(s, kg, key, ns)
        } else {
            self.store.list_replace(s, kg, key, ns, encoded)
        }
    }

    /// Appends elements already encoded as a list (`varint(len) ‖ bytes` each).
    pub fn list_add_encoded(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        encoded: &[u8],
    ) -> Result<()> {
        self.check(s, StateKind::List, kg, &[key, ns, encoded])?;
        if crate::codec::validate_list(encoded).is_none() {
            return Err(Error::invalid("malformed encoded list"));
        }
        if encoded.is_empty() {
            return Ok(());
        }
        self.store.list_append(s, kg, key, ns, encoded)
    }

    fn encode_elements<E: AsRef<[u8]>>(&mut self, elements: &[E]) -> Result<bool> {
        self.list_buf.clear();
        for e in elements {
            let e = e.as_ref();
            if e.len() > MAX_FIELD_LEN {
                return Err(Error::invalid(format!(
                    "list elements are limited to {MAX_FIELD_LEN} bytes"
                )));
            }
            put_list_element(&mut self.list_buf, e);
        }
        Ok(!elements.is_empty())
    }

    // ---- map state ----------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub fn map_get(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        self.check(s, StateKind::Map, kg, &[])?;
        out.clear();
        self.store.map_get(s, kg, key, ns, user_key, out)
    }

    pub fn map_put(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        self.check(s, StateKind::Map, kg, &[key, ns, user_key, value])?;
        self.store.map_put(s, kg, key, ns, user_key, value)
    }

    /// Puts several (user key, value) pairs into one map, as Flink's `putAll` hands
    /// them over: `entries` in the list encoding (see [`crate::codec::ListElements`]),
    /// user key and value alternately. Checked whole before anything is written.
    pub fn map_put_all_encoded(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        entries: &[u8],
    ) -> Result<()> {
        self.check(s, StateKind::Map, kg, &[key, ns, entries])?;
        if crate::codec::validate_list(entries).is_none_or(|n| n % 2 != 0) {
            return Err(Error::invalid(
                "malformed map entries (user key and value alternately)",
            ));
        }
        self.store.map_put_all(s, kg, key, ns, entries)
    }

    pub fn map_remove(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
    ) -> Result<()> {
        self.check(s, StateKind::Map, kg, &[])?;
        self.store.map_remove(s, kg, key, ns, user_key)
    }

    pub fn map_contains(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        user_key: &[u8],
    ) -> Result<bool> {
        self.check(s, StateKind::Map, kg, &[])?;
        self.store.map_contains(s, kg, key, ns, user_key)
    }

    pub fn map_is_empty(&self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<bool> {
        self.check(s, StateKind::Map, kg, &[])?;
        self.store.map_is_empty(s, kg, key, ns)
    }

    /// Visits every (user key, value) of one map, in no particular order.
    pub fn map_for_each(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        f: &mut MapVisitor<'_>,
    ) -> Result<()> {
        self.check(s, StateKind::Map, kg, &[])?;
        self.store.map_for_each(s, kg, key, ns, f)
    }

    /// All (user key, value) pairs of one map, sorted by user key.
    pub fn map_entries(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut sorted = SortedMap::default();
        self.map_entries_sorted(s, kg, key, ns, &mut sorted)?;
        Ok(sorted
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect())
    }

    /// All (user key, value) pairs of one map, sorted by serialized user key (on
    /// every backend), into `out`, whose memory is reused.
    pub fn map_entries_sorted(
        &self,
        s: StateId,
        kg: u32,
        key: &[u8],
        ns: &[u8],
        out: &mut SortedMap,
    ) -> Result<()> {
        out.clear();
        self.map_for_each(s, kg, key, ns, &mut |k, v| {
            out.push(k, v);
            Ok(())
        })?;
        out.sort();
        Ok(())
    }

    // ---- sorted set state (timers) ---------------------------------------------------

    /// Adds `element` to the sorted set `s` of key group `kg` (nothing if it is there).
    pub fn set_add(&mut self, s: StateId, kg: u32, element: &[u8]) -> Result<()> {
        self.check(s, StateKind::SortedSet, kg, &[element])?;
        self.store.set_add(s, kg, element)
    }

    /// Removes `element` from the sorted set `s` of key group `kg` (nothing if it is
    /// not there).
    pub fn set_remove(&mut self, s: StateId, kg: u32, element: &[u8]) -> Result<()> {
        self.check(s, StateKind::SortedSet, kg, &[element])?;
        self.store.set_remove(s, kg, element)
    }

    /// Up to `limit` elements of the sorted set `s` of key group `kg` above `after`
    /// (from the smallest: None), ascending by bytes, appended to `out` in the list
    /// encoding (see [`crate::codec`]); returns how many.
    pub fn set_range(
        &self,
        s: StateId,
        kg: u32,
        after: Option<&[u8]>,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        self.check(s, StateKind::SortedSet, kg, &[])?;
        let mut n = 0;
        if limit == 0 {
            return Ok(0);
        }
        self.store.set_range(s, kg, after, &mut |element| {
            put_list_element(out, element);
            n += 1;
            Ok(n < limit)
        })?;
        Ok(n)
    }

    // ---- any state ------------------------------------------------------------------

    /// The kind of state `s`, which must be one with keys and namespaces.
    fn keyed_kind(&self, s: StateId) -> Result<StateKind> {
        let info = self.registry.get(s)?;
        if info.kind == StateKind::SortedSet {
            return Err(Error::State(format!(
                "state '{}' is a sorted set: it has no keys or namespaces; remove its \
                 elements one by one",
                info.name
            )));
        }
        Ok(info.kind)
    }

    /// Removes whatever (key, namespace) holds in state `s`, of any keyed kind.
    pub fn clear(&mut self, s: StateId, kg: u32, key: &[u8], ns: &[u8]) -> Result<()> {
        let kind = self.keyed_kind(s)?;
        self.check(s, kind, kg, &[])?;
        self.store.clear(s, kg, key, ns)
    }

    /// Merges the `sources` namespaces of (key) into `target` and clears them, as
    /// session windows do. Lists are concatenated, maps united (a source's entry wins
    /// over the target's); values need `reduce(accumulated, next)`, the caller's
    /// reduce or aggregate function: the sources are reduced in order, then the
    /// target with that result. If `reduce` fails, nothing has changed.
    #[allow(clippy::too_many_arguments)]
    pub fn merge_namespaces(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        target: &[u8],
        sources: &[&[u8]],
        reduce: Option<&mut ReduceFn<'_>>,
    ) -> Result<()> {
        let kind = self.keyed_kind(s)?;
        self.check(s, kind, kg, &[key, target])?;
        let sources: Vec<&[u8]> = sources.iter().copied().filter(|&n| n != target).collect();
        let mut buf = Vec::new();
        match kind {
            StateKind::List => {
                for &ns in &sources {
                    buf.clear();
                    if self.store.list_get(s, kg, key, ns, &mut buf)? {
                        self.store.clear(s, kg, key, ns)?;
                        if !buf.is_empty() {
                            self.store.list_append(s, kg, key, target, &buf)?;
                        }
                    }
                }
            }
            StateKind::SortedSet => unreachable!("refused by keyed_kind"),
            StateKind::Map => {
                for &ns in &sources {
                    let mut entries = Vec::new();
                    self.store.map_for_each(s, kg, key, ns, &mut |k, v| {
                        entries.push((k.to_vec(), v.to_vec()));
                        Ok(())
                    })?;
                    self.store.clear(s, kg, key, ns)?;
                    for (k, v) in entries {
                        self.store.map_put(s, kg, key, target, &k, &v)?;
                    }
                }
            }
            StateKind::Value => {
                let reduce = reduce.ok_or_else(|| {
                    Error::invalid(format!(
                        "merging namespaces of value state '{}' needs a reduce function",
                        self.registry.get(s).map(|i| i.name.as_str()).unwrap_or("?")
                    ))
                })?;
                // Reduce everything first: a failing reduce function leaves the
                // state unchanged.
                let mut acc: Option<Vec<u8>> = None;
                let mut merged = Vec::new();
                for &ns in &sources {
                    buf.clear();
                    if !merged.contains(&ns) && self.store.value_get(s, kg, key, ns, &mut buf)? {
                        acc = Some(match acc {
                            Some(a) => reduce(&a, &buf)?,
                            None => buf.clone(),
                        });
                        merged.push(ns);
                    }
                }
                if let Some(acc) = acc {
                    buf.clear();
                    let result = if self.store.value_get(s, kg, key, target, &mut buf)? {
                        reduce(&buf, &acc)?
                    } else {
                        acc
                    };
                    self.store.value_put(s, kg, key, target, &result)?;
                    for ns in merged {
                        self.store.clear(s, kg, key, ns)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// [`StateBackend::merge_namespaces`] with the source namespaces in the list
    /// encoding (see [`crate::codec`]), as the JNI bridge passes them.
    #[allow(clippy::too_many_arguments)]
    pub fn merge_namespaces_encoded(
        &mut self,
        s: StateId,
        kg: u32,
        key: &[u8],
        target: &[u8],
        encoded_sources: &[u8],
        reduce: Option<&mut ReduceFn<'_>>,
    ) -> Result<()> {
        if crate::codec::validate_list(encoded_sources).is_none() {
            return Err(Error::invalid("malformed encoded source namespaces"));
        }
        let sources: Vec<&[u8]> = crate::codec::ListElements::new(encoded_sources).collect();
        self.merge_namespaces(s, kg, key, target, &sources, reduce)
    }

    /// The keys of state `s` that have an entry in namespace `ns`, key group by key
    /// group. The iterator reads a point-in-time view: later writes do not show.
    pub fn keys(&self, s: StateId, ns: &[u8]) -> Result<KeysIter> {
        self.registry.get(s)?;
        Ok(KeysIter::new(
            self.store.view()?,
            self.config.key_group_range,
            s,
            Some(ns.to_vec()),
        ))
    }

    /// Every (key, namespace) of state `s`, key group by key group.
    pub fn keys_and_namespaces(&self, s: StateId) -> Result<KeysIter> {
        self.registry.get(s)?;
        Ok(KeysIter::new(
            self.store.view()?,
            self.config.key_group_range,
            s,
            None,
        ))
    }

    /// Every entry of every state, in key-group order (states in id order within a
    /// key group). A point-in-time view.
    pub fn entries(&self) -> Result<EntriesIter> {
        Ok(EntriesIter::new(
            self.store.view()?,
            self.config.key_group_range,
            None,
        ))
    }

    /// Migrates state `s`: every entry is handed to `migrate` (in batches, in place)
    /// and written back with the bytes it returns, as Flink's backends do when a
    /// restored state's new serializer is compatible only after migration. Lists come
    /// in the list encoding of [`crate::codec`]; with `user_keys_change`, a map's user
    /// keys may change too (each map is rewritten whole). Reads a point-in-time view.
    ///
    /// If `migrate` fails, the state is left partly migrated: discard this backend
    /// (the snapshot it was restored from is untouched) rather than use it.
    pub fn migrate_state(
        &mut self,
        s: StateId,
        user_keys_change: bool,
        migrate: &mut crate::migration::MigrateFn<'_>,
    ) -> Result<crate::migration::MigrationStats> {
        let kind = self.registry.get(s)?.kind;
        if kind == StateKind::SortedSet {
            return Err(Error::State(format!(
                "state '{}' is a sorted set (timers): sorted sets are not migrated, their \
                 elements are ordered by their serialized bytes",
                self.registry.get(s)?.name
            )));
        }
        let entries =
            crate::migration::entries_of(self.store.as_ref(), self.config.key_group_range, s)?;
        crate::migration::migrate(
            self.store.as_mut(),
            s,
            kind,
            entries,
            user_keys_change,
            migrate,
        )
    }

    /// Number of (key, namespace) entries over all states.
    pub fn num_entries(&self) -> Result<u64> {
        self.store.num_entries()
    }

    /// A reading of this backend's metrics (see [`crate::metrics`]): per state,
    /// estimates of its entries and bytes and the RocksDB properties enabled by
    /// `state.backend.rocksdb.metrics.*`; the RocksDB statistics counters enabled
    /// there; the write-back cache's counters. Cheap (no scan) and infallible: what
    /// cannot be read is None.
    pub fn metrics(&self) -> BackendMetrics {
        let options = self.metric_options();
        let properties = options.properties;
        let states = (0..self.registry.all().len() as StateId)
            .map(|s| self.store.state_metrics(s, &properties))
            .collect();
        BackendMetrics {
            properties,
            states,
            statistics: self.store.statistics(&options.statistics),
            statistic_names: options.statistics,
            write_cache: self.write_cache_metrics(),
        }
    }

    /// The estimates of one state, without the RocksDB properties of
    /// [`StateBackend::metrics`].
    pub fn state_metrics(&self, s: StateId) -> Result<crate::metrics::StateMetrics> {
        self.registry.get(s)?;
        Ok(self.store.state_metrics(s, &[]))
    }

    /// The write-back cache's counters, when the store has one.
    pub fn write_cache_metrics(&self) -> Option<crate::metrics::WriteCacheMetrics> {
        self.store.write_cache_metrics()
    }

    /// Which RocksDB properties and statistics counters [`StateBackend::metrics`]
    /// reads, and how Flink groups the properties (`state.backend.rocksdb.metrics.*`);
    /// none on the heap backends.
    pub fn metric_options(&self) -> MetricOptions {
        match self.config.backend {
            // Checked when the backend opened.
            BackendKind::RocksDb => RocksOptions::from_config(&self.config.rocksdb_options)
                .map(|o| o.metrics)
                .unwrap_or_default(),
            _ => MetricOptions::default(),
        }
    }

    /// Compacts what state `s` keeps on disk, now: the RocksDB backend writes its
    /// cache back, flushes and compacts the state's column family (tombstones and
    /// list appends folded, as after a bulk load or a large clear); the heap
    /// backends have nothing to compact. Blocks until done.
    pub fn compact_state(&mut self, s: StateId) -> Result<()> {
        self.registry.get(s)?;
        self.store.compact(s)
    }

    // ---- operator state -------------------------------------------------------------

    /// Operator (non-keyed) list state of this instance.
    pub fn operator_state(&mut self) -> &mut OperatorStateStore {
        &mut self.operator
    }

    /// Registers an operator list state (shortcut for `operator_state().register`).
    pub fn register_operator_state(&mut self, name: &str, mode: Distribution) -> Result<()> {
        self.operator.register(name, mode)
    }

    // ---- snapshots ------------------------------------------------------------------

    /// The synchronous snapshot phase: captures a consistent view in time independent
    /// of the state's size. Run [`PendingSnapshot::write`] (on any thread) to finish.
    /// The RocksDB backend with `incremental` set takes an incremental checkpoint.
    pub fn snapshot(&mut self, checkpoint_id: u64) -> Result<PendingSnapshot> {
        self.snapshot_as(checkpoint_id, self.config.incremental)
    }

    /// A full, self-contained snapshot whatever the configuration (a savepoint):
    /// every backend can restore it.
    pub fn savepoint(&mut self, checkpoint_id: u64) -> Result<PendingSnapshot> {
        self.snapshot_as(checkpoint_id, false)
    }

    fn snapshot_as(&mut self, checkpoint_id: u64, incremental: bool) -> Result<PendingSnapshot> {
        let local = match (&self.storage, incremental) {
            (Some(_), true) => self.store.local_checkpoint()?,
            _ => None,
        };
        let payload = match local {
            Some(checkpoint) => Payload::CheckpointLink(checkpoint),
            None => Payload::View(self.store.view()?),
        };
        let target = match &self.storage {
            // The per-state limit is the memory backend's: its snapshots travel to
            // the coordinator.
            None => Target::Inline {
                max_state_size: match self.config.backend {
                    BackendKind::Memory => self.config.max_state_size,
                    _ => u64::MAX,
                },
            },
            Some(t) => Target::Storage {
                storage: Arc::clone(&t.storage),
                retention: Arc::clone(&t.retention),
                instance: instance_name(&self.config),
                remote: self.config.remote.clone(),
            },
        };
        Ok(PendingSnapshot {
            checkpoint_id,
            backend: self.config.backend,
            max_parallelism: self.config.max_parallelism,
            range: self.config.key_group_range,
            states: self.registry.all().to_vec(),
            operator_states: self.operator.snapshot(),
            payload,
            target,
        })
    }

    /// The synchronous phase of an incremental RocksDB snapshot whose files the caller
    /// stores itself (e.g. in Flink's checkpoint streams). With the write-back cache
    /// it queues the memtable flush and the hard links behind the cache's writes, and
    /// the first use of the [`IncrementalUpload`] (on the asynchronous phase's
    /// thread) waits for them; without it, they happen here.
    pub fn incremental_snapshot(&mut self, checkpoint_id: u64) -> Result<IncrementalUpload> {
        let local = self
            .store
            .local_checkpoint()?
            .ok_or_else(|| Error::invalid("incremental snapshots need the RocksDB backend"))?;
        let manifest = Manifest {
            checkpoint_id,
            backend: self.config.backend,
            max_parallelism: self.config.max_parallelism,
            key_group_range: self.config.key_group_range,
            states: self.registry.all().to_vec(),
            keyed: KeyedData::Files(DbFiles::default()),
            operator_states: self.operator.snapshot(),
        };
        Ok(IncrementalUpload::new(manifest, local))
    }

    /// Both phases on the calling thread.
    pub fn checkpoint(&mut self, checkpoint_id: u64) -> Result<crate::CompletedSnapshot> {
        self.snapshot(checkpoint_id)?.write()
    }

    /// Ids of the checkpoints kept under the checkpoint directory (fs, rocksdb).
    pub fn retained_checkpoints(&self) -> Vec<u64> {
        match &self.storage {
            Some(t) => t.retention.lock().map(|r| r.retained()).unwrap_or_default(),
            None => Vec::new(),
        }
    }
}

/// The RocksDB store behind its write-back cache, unless the cache is configured away.
/// With a shared memory budget, the cache's size is this backend's share of it.
fn with_cache(config: &Config, rocks: RocksStore) -> Result<Box<dyn KeyedStore>> {
    let options = RocksOptions::from_config(&config.rocksdb_options)?;
    let size = match &config.memory {
        Some(shared) => shared.join_write_cache().map(CacheSize::Shared),
        None => {
            (options.write_cache_size > 0).then_some(CacheSize::Fixed(options.write_cache_size))
        }
    };
    Ok(match size {
        None => Box::new(rocks),
        Some(size) => Box::new(CachedRocksStore::new(
            rocks,
            size,
            options.write_cache_dirty_size,
        )?),
    })
}

/// The name of this instance's objects in a checkpoint: `kg-<start>-<end>`.
pub fn instance_name(config: &Config) -> String {
    format!("kg-{}", config.key_group_range)
}
