//! Restore: rebuilds a store from any number of snapshots written by instances with
//! other key-group ranges, keeping only the key groups this instance owns.

use super::reader::{self, OpenSnapshot};
use super::SnapshotHandle;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::operator::OperatorStateStore;
use crate::state::StateRegistry;
use crate::store::{EntryRef, KeyedStore};

/// Reads `handles` into `registry` and `store`; returns this instance's operator state.
pub(crate) fn restore(
    config: &Config,
    registry: &mut StateRegistry,
    store: &mut dyn KeyedStore,
    handles: &[SnapshotHandle],
) -> Result<OperatorStateStore> {
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
                s.data.name(),
                m.max_parallelism,
                config.max_parallelism
            )));
        }
    }
    for pair in snapshots.windows(2) {
        let (a, b) = (&pair[0].manifest, &pair[1].manifest);
        if a.key_group_range.intersect(&b.key_group_range).is_some() {
            return Err(Error::Restore(format!(
                "snapshots {} and {} overlap (key groups {} and {}); they are not from one checkpoint",
                pair[0].data.name(),
                pair[1].data.name(),
                a.key_group_range,
                b.key_group_range
            )));
        }
    }

    let own = config.key_group_range;
    for s in &snapshots {
        // Map the snapshot's state ids to this backend's.
        let mut ids = Vec::with_capacity(s.manifest.states.len());
        for info in &s.manifest.states {
            let (id, new) = registry.register(&info.name, info.kind, &info.metadata)?;
            if new {
                store.add_state(id, info.kind)?;
            }
            ids.push(id);
        }
        for &(kg, offset) in &s.manifest.keyed.key_group_offsets {
            if !own.contains(kg) {
                continue;
            }
            s.read_key_group(kg, offset, &mut |e: EntryRef<'_>| {
                store.restore_entry(
                    kg,
                    EntryRef {
                        state: ids[e.state as usize],
                        ..e
                    },
                )
            })?;
        }
    }

    let old: Vec<&[_]> = snapshots
        .iter()
        .map(|s| s.manifest.operator_states.as_slice())
        .collect();
    let (index, parallelism) = config.subtask;
    OperatorStateStore::restore(&old, index, parallelism)
}
