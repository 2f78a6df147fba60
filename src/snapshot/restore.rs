//! Restore: rebuilds a store from any number of snapshots written by instances with
//! other key-group ranges, keeping only the key groups this instance owns.

use super::incremental;
use super::manifest::KeyedData;
use super::reader::{self, OpenSnapshot};
use super::SnapshotHandle;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::operator::OperatorStateStore;
use crate::state::{StateId, StateKind, StateRegistry};
use crate::store::rocks::options::RocksOptions;
use crate::store::rocks::RocksStore;
use crate::store::{EntryRef, KeyedStore};

/// Opens every handle and checks that they can be restored together into `config`:
/// same max parallelism, disjoint key-group ranges. Sorted in old-instance order.
pub(crate) fn open_all(config: &Config, handles: &[SnapshotHandle]) -> Result<Vec<OpenSnapshot>> {
    let mut snapshots = handles
        .iter()
        .map(reader::open)
        .collect::<Result<Vec<OpenSnapshot>>>()?;
    // Old-instance order: operator state is redistributed in this order.
    snapshots.sort_by_key(|s| s.manifest.key_group_range.start());
    for s in &snapshots {
        let m = &s.manifest;
        if m.max_parallelism != config.max_parallelism {
            return Err(Error::Restore(format!(
                "{} was written with max parallelism {}, but this backend has {}; \
                 the max parallelism of a job cannot change across a restore",
                s.name, m.max_parallelism, config.max_parallelism
            )));
        }
    }
    for pair in snapshots.windows(2) {
        let (a, b) = (&pair[0].manifest, &pair[1].manifest);
        if a.key_group_range.intersect(&b.key_group_range).is_some() {
            return Err(Error::Restore(format!(
                "snapshots {} and {} overlap (key groups {} and {}); they are not from one checkpoint",
                pair[0].name, pair[1].name, a.key_group_range, b.key_group_range
            )));
        }
    }
    Ok(snapshots)
}

/// The incremental snapshot a RocksDB backend adopts as its working DB: the one
/// sharing the most key groups with this instance (the others are copied into it).
pub(crate) fn choose_base(config: &Config, snapshots: &[OpenSnapshot]) -> Option<usize> {
    snapshots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.db_files().is_some())
        .filter_map(|(i, s)| {
            let shared = s
                .manifest
                .key_group_range
                .intersect(&config.key_group_range)?;
            Some((shared.len(), i))
        })
        .max()
        .map(|(_, i)| i)
}

/// An entry of a snapshot with its state id mapped to this backend's (`ids`).
fn renumbered<'e>(ids: &[StateId], e: EntryRef<'e>) -> EntryRef<'e> {
    EntryRef {
        state: ids[e.state as usize],
        ..e
    }
}

/// Threads that read a snapshot's RocksDB files (`checkpoint.transfer.thread.num`).
fn transfer_threads(config: &Config) -> Result<usize> {
    Ok(RocksOptions::from_config(&config.rocksdb_options)?.transfer_threads)
}

/// Opens the RocksDB store of a restore from the incremental snapshot `base`: its
/// files become the working DB, and key groups this instance does not own are
/// deleted with range deletes.
pub(crate) fn open_base(config: &Config, base: &OpenSnapshot) -> Result<RocksStore> {
    let (sources, files) = base.db_files().expect("the base is incremental");
    let kinds: Vec<StateKind> = base.manifest.states.iter().map(|s| s.kind).collect();
    let threads = transfer_threads(config)?;
    let mut store = RocksStore::open_in(config, base.manifest.key_group_range, &kinds, |dir| {
        incremental::download(sources, files, dir, threads)
    })?;
    store.clip_to(config.key_group_range)?;
    Ok(store)
}

/// Reads `snapshots` into `registry` and `store`; returns this instance's operator
/// state. The snapshot at `adopted` is already the store's DB: only its states are
/// registered, first, so their ids match its column families.
pub(crate) fn restore(
    config: &Config,
    registry: &mut StateRegistry,
    store: &mut dyn KeyedStore,
    snapshots: &[OpenSnapshot],
    adopted: Option<usize>,
) -> Result<OperatorStateStore> {
    let own = config.key_group_range;
    let order = adopted
        .into_iter()
        .chain((0..snapshots.len()).filter(|&i| Some(i) != adopted));
    for i in order {
        let s = &snapshots[i];
        // Map the snapshot's state ids to this backend's.
        let mut ids = Vec::with_capacity(s.manifest.states.len());
        for info in &s.manifest.states {
            let (id, _) = registry.register(&info.name, info.kind, &info.metadata)?;
            if id as usize >= store.num_states() {
                store.add_state(id, info.kind)?;
            }
            ids.push(id);
        }
        if Some(i) == adopted {
            debug_assert!(ids.iter().enumerate().all(|(i, &id)| i as u32 == id));
            continue;
        }
        match &s.manifest.keyed {
            KeyedData::Full(full) => {
                let mut groups: Vec<(u32, u64)> = full
                    .key_group_offsets
                    .iter()
                    .copied()
                    .filter(|&(kg, _)| own.contains(kg))
                    .collect();
                // Ascending, so that a store can write sorted files.
                groups.sort_unstable();
                store.restore_entries(&mut |sink| {
                    for &(kg, offset) in &groups {
                        s.read_key_group(kg, offset, &mut |e: EntryRef<'_>| {
                            sink(kg, renumbered(&ids, e))
                        })?;
                    }
                    Ok(())
                })?;
            }
            KeyedData::Files(files) => {
                let Some(shared) = s.manifest.key_group_range.intersect(&own) else {
                    continue;
                };
                let sources = s.db_files().expect("incremental").0;
                let kinds: Vec<StateKind> = s.manifest.states.iter().map(|x| x.kind).collect();
                // A temporary DB from the snapshot's files; its entries of our key groups
                // are copied, then it is deleted (disk: the result plus one instance).
                let threads = transfer_threads(config)?;
                let source =
                    RocksStore::open_in(config, s.manifest.key_group_range, &kinds, |dir| {
                        incremental::download(sources, files, dir, threads)
                    })?;
                let view = source.view()?;
                store.restore_entries(&mut |sink| {
                    for kg in shared.iter() {
                        view.for_each_in_key_group(kg, None, &mut |e| {
                            sink(kg, renumbered(&ids, e))
                        })?;
                    }
                    Ok(())
                })?;
            }
        }
    }

    let old: Vec<&[_]> = snapshots
        .iter()
        .map(|s| s.manifest.operator_states.as_slice())
        .collect();
    let (index, parallelism) = config.subtask;
    OperatorStateStore::restore(&old, index, parallelism)
}
